//! Argument definitions: one struct per subcommand, shared groups here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tamis_core::io::{ExtractOptions, OnError};
use tamis_core::pipeline::RunOptions;
use tamis_core::text::Normalize;

/// tamis: a fine sieve for LLM training corpora (dedup, refinement, vocabulary extension).
#[derive(Debug, Parser)]
#[command(
    name = "tamis",
    version,
    about,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Options for every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options for every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Worker threads (default: one per core). Output is identical for every value.
    #[arg(
        long,
        global = true,
        default_value_t = 0,
        value_name = "N",
        hide_default_value = true
    )]
    pub threads: usize,
    /// Print nothing but errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more about what is done.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// Commands.
// Parsed once per process: boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deduplicate documents or lines.
    #[command(subcommand)]
    Dedup(DedupCommand),
    /// Run ProX refining programs over a corpus, or write the prompts of the refining models.
    #[command(subcommand)]
    Prox(ProxCommand),
    /// Extend a tokenizer's vocabulary for a new language, and measure tokenizers.
    #[command(subcommand)]
    Vocab(VocabCommand),
    /// Initialize the embedding rows of new tokens after a vocabulary extension (zip-tie).
    #[command(subcommand)]
    Embed(EmbedCommand),
    /// Build a small sample corpus from text on this machine and run the pipeline on it.
    Demo(DemoArgs),
    /// The end-to-end pipeline with fastText filters and a report (Python: the `tamis` script of
    /// `pip install tamis`; see docs/refine.md).
    Refine(PythonOnlyArgs),
    /// fastText language and quality filters, and classifier training (Python: the `tamis`
    /// script of `pip install 'tamis[filters]'`).
    Filter(PythonOnlyArgs),
}

/// A command that lives in the Python package; this binary only says so.
#[derive(Debug, Args)]
pub struct PythonOnlyArgs {
    /// Arguments for the Python command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `tamis vocab ...`
#[derive(Debug, Subcommand)]
pub enum VocabCommand {
    /// Add new tokens to a BPE tokenizer.json by continued BPE on target-language text, after
    /// every existing id and merge, so that old ids and old text encodings stay as they were.
    Extend(VocabExtendArgs),
    /// Report tokens per character and word, bytes per token, continued words, new-token use,
    /// round trips and old-text invariance, side by side with a baseline tokenizer.
    Stats(VocabStatsArgs),
}

/// Corpus reading options of `tamis vocab`.
#[derive(Debug, Args)]
pub struct CorpusArgs {
    /// Field holding the text in JSONL and Parquet (.txt files are one document per line).
    #[arg(long, default_value = "text", value_name = "FIELD")]
    pub text_key: String,
    /// Fail on the first bad record, or skip bad records and count them.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    pub on_error: OnErrorArg,
}

impl CorpusArgs {
    /// Core corpus options.
    pub fn options(&self, threads: usize) -> tamis_core::vocab::CorpusOptions {
        tamis_core::vocab::CorpusOptions {
            text_key: self.text_key.clone(),
            on_error: match self.on_error {
                OnErrorArg::Fail => OnError::Fail,
                OnErrorArg::Skip => OnError::Skip,
            },
            threads,
            ..Default::default()
        }
    }
}

/// `tamis vocab extend`
#[derive(Debug, Args)]
pub struct VocabExtendArgs {
    /// The base tokenizer.json (BPE: byte-level, or SentencePiece-style with byte fallback).
    #[arg(long, value_name = "BASE.json")]
    pub tokenizer: PathBuf,
    /// Target-language text to learn from: JSONL (.gz, .zst), Parquet or .txt files,
    /// directories or globs.
    #[arg(long, num_args = 1.., value_name = "FILES")]
    pub corpus: Vec<String>,
    /// Number of new tokens to add (required with --corpus; without it, --merge-from adds all).
    #[arg(long, value_name = "N")]
    pub new_tokens: Option<usize>,
    /// The extended tokenizer.json to write.
    #[arg(short, long, value_name = "NEW.json")]
    pub output: PathBuf,
    /// Stop when the most frequent pair occurs fewer times than this.
    #[arg(long, default_value_t = 2, value_name = "F")]
    pub min_frequency: u64,
    /// Byte-fallback models: add missing characters until this share of character occurrences
    /// is covered.
    #[arg(long, default_value_t = 0.9995, value_name = "SHARE")]
    pub char_coverage: f64,
    /// Append the merges of another BPE tokenizer of the same kind first (old merges keep
    /// priority; tokens the old merges never form are reported and left out).
    #[arg(long, value_name = "OTHER.json")]
    pub merge_from: Option<PathBuf>,
    /// Report the embedding rows the model needs, rounded up to a multiple of this.
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
    pub pad_to_multiple_of: Option<u32>,
    /// Write the tokenizer report (JSON) comparing the base and the result.
    #[arg(long, value_name = "R.json")]
    pub report: Option<PathBuf>,
    /// Old-language text whose ids must not change: merges that would fire on it (and, with
    /// byte fallback, characters in it) are not added; the report checks its invariance.
    #[arg(long, num_args = 1.., value_name = "FILES")]
    pub protect: Vec<String>,
    /// Held-out target text for the report (default: the --corpus).
    #[arg(long, num_args = 1.., value_name = "FILES", requires = "report")]
    pub heldout: Vec<String>,
    /// Corpus reading options.
    #[command(flatten)]
    pub corpus_args: CorpusArgs,
}

/// `tamis vocab stats`
#[derive(Debug, Args)]
pub struct VocabStatsArgs {
    /// The tokenizer.json to measure.
    #[arg(long, value_name = "T.json")]
    pub tokenizer: PathBuf,
    /// A tokenizer.json to compare with (e.g. the base of an extension).
    #[arg(long, value_name = "B.json")]
    pub baseline: Option<PathBuf>,
    /// Target-language text (held out from training).
    #[arg(long, required = true, num_args = 1.., value_name = "FILES")]
    pub corpus: Vec<String>,
    /// Old-language text whose ids should not change (needs --baseline for the invariance rate).
    #[arg(long, num_args = 1.., value_name = "FILES")]
    pub protect: Vec<String>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "R.json")]
    pub report: Option<PathBuf>,
    /// Print the JSON report instead of the summary table.
    #[arg(long)]
    pub json: bool,
    /// Examples of changed protected documents to keep.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub examples: usize,
    /// Corpus reading options.
    #[command(flatten)]
    pub corpus_args: CorpusArgs,
}

/// `tamis embed ...`
#[derive(Debug, Subcommand)]
pub enum EmbedCommand {
    /// Write a copy of a safetensors model whose embeddings have rows for the new tokenizer.
    Init(EmbedInitArgs),
    /// Bits per byte of a model on held-out text (Python: `pip install 'tamis[prox]'`).
    Eval(PythonArgs),
}

/// How new rows are made.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EmbedMethodArg {
    /// Mean of the old rows of the old tokenizer's pieces of the token.
    Ziptie,
    /// Mean of all old rows.
    Mean,
    /// Old rows' mean plus tiny noise (transformers' mean_resizing, diagonal covariance).
    MeanResizing,
    /// N(0, 0.02^2).
    Random,
}

/// How lm_head rows of untied models are made.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputInitArg {
    /// The method on the lm_head rows.
    Mean,
    /// The lm_head row of the first piece (ziptie only).
    First,
    /// A copy of the new input row.
    Tie,
}

/// `tamis embed init`
#[derive(Debug, Args)]
pub struct EmbedInitArgs {
    /// Hugging Face model directory (config.json and safetensors weights).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The tokenizer.json the model was trained with.
    #[arg(long, value_name = "OLD.json")]
    pub old_tokenizer: PathBuf,
    /// Its extension (`tamis vocab extend`); copied into the output as tokenizer.json.
    #[arg(long, value_name = "NEW.json")]
    pub new_tokenizer: PathBuf,
    /// Output model directory (must not exist, or be empty).
    #[arg(short, long, value_name = "OUT_DIR")]
    pub output: PathBuf,
    /// How new rows are made.
    #[arg(long, value_enum, default_value_t = EmbedMethodArg::Ziptie)]
    pub method: EmbedMethodArg,
    /// How lm_head rows of untied models are made.
    #[arg(long, value_enum, default_value_t = OutputInitArg::Mean)]
    pub output_init: OutputInitArg,
    /// Round the number of rows up to a multiple of this when they grow.
    #[arg(long, default_value_t = 64, value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
    pub pad_to_multiple_of: u32,
    /// Seed of mean-resizing and random.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Scale each new row to the median L2 norm of the old rows of its matrix.
    #[arg(long)]
    pub rescale_norm: bool,
    /// Name of the input embedding tensor (default: Llama/Mistral/Qwen2 or GPT-2 names).
    #[arg(long, value_name = "NAME")]
    pub embed_name: Option<String>,
    /// Name of the lm_head tensor (default: lm_head.weight).
    #[arg(long, value_name = "NAME")]
    pub lm_head_name: Option<String>,
    /// Write the summary (JSON) to this file.
    #[arg(long, value_name = "S.json")]
    pub summary: Option<PathBuf>,
}

/// A command that runs in the Python package; this binary only says so.
#[derive(Debug, Args)]
pub struct PythonArgs {
    /// Arguments for the Python command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `tamis prox ...`
#[derive(Debug, Subcommand)]
pub enum ProxCommand {
    /// Apply the stored document and chunk programs of each record (see docs/prox.md).
    Apply(ProxApplyArgs),
    /// Write the exact prompts the refining models read, one JSON line per prompt.
    Prompts(ProxPromptsArgs),
    /// Run the refining models (Python: `pip install 'tamis[prox]'`, then the `tamis` script).
    Refine(ProxRefineArgs),
}

/// `tamis prox refine`: model inference lives in the Python package; this binary only says so.
#[derive(Debug, Args)]
pub struct ProxRefineArgs {
    /// Arguments for the Python `tamis prox refine`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// How programs are read.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum ProxModeArg {
    /// Exactly what the reference executor does, quirks included (reproduces released corpora).
    #[default]
    Compat,
    /// A real parser: keyword or positional arguments, quoted strings; bad lines are errors.
    Strict,
}

/// Which programs `prox apply` runs.
#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum ProxApplyStage {
    /// The document program, then the chunk program.
    #[default]
    Both,
    /// Only the document program (drop_doc / keep_doc).
    Doc,
    /// Only the chunk program (remove_lines / normalize).
    Chunk,
}

/// `tamis prox apply`
#[derive(Debug, Args)]
pub struct ProxApplyArgs {
    /// Inputs and output.
    #[command(flatten)]
    pub io: IoArgs,
    /// Field holding the document program; a dotted path reaches nested fields (metadata.doc_program).
    #[arg(long, default_value = "doc_program", value_name = "FIELD")]
    pub doc_program_key: String,
    /// Field holding the chunk program (the per-chunk outputs joined with newlines).
    #[arg(long, default_value = "chunk_program", value_name = "FIELD")]
    pub chunk_program_key: String,
    /// Which programs to run.
    #[arg(long, value_enum, default_value_t = ProxApplyStage::Both)]
    pub stage: ProxApplyStage,
    /// How programs are read.
    #[arg(long, value_enum, default_value_t = ProxModeArg::Compat)]
    pub mode: ProxModeArg,
    /// Field that receives the original text when the record lacks it ("" for none).
    #[arg(long, default_value = "raw_content", value_name = "FIELD")]
    pub raw_key: String,
    /// Drop documents left with fewer words than this (reference: 11, i.e. "10 or fewer").
    #[arg(long, default_value_t = 11, value_name = "N")]
    pub min_words: usize,
    /// Drop documents whose share of words left is at most this (reference: 1 - 0.95 in floating point).
    #[arg(long, default_value_t = 1.0 - 0.95, value_name = "R")]
    pub min_keep_ratio: f64,
    /// Keep the original text when the share of words left is below this (reference: 0).
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    pub min_edit_ratio: f64,
    /// Discard a program (keep the original text) with more errors than this (reference: 1).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub max_errors: usize,
}

/// Which prompts `prox prompts` writes.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProxPromptStage {
    /// One prompt per document: token ids right-truncated at --doc-max-tokens, and the text.
    Doc,
    /// One prompt per chunk of numbered lines.
    Chunk,
}

/// Chat template of the prompts.
#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum ProxTemplateArg {
    /// Llama-2 chat with the ProX system prompt (what the released models were trained on).
    #[default]
    Llama2,
    /// The user message alone.
    Plain,
}

/// `tamis prox prompts`
#[derive(Debug, Args)]
pub struct ProxPromptsArgs {
    /// Inputs and output (JSONL).
    #[command(flatten)]
    pub io: IoArgs,
    /// The refining model's tokenizer.json.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: PathBuf,
    /// Document or chunk stage.
    #[arg(long, value_enum)]
    pub stage: ProxPromptStage,
    /// Token budget of a chunk (a chunk may reach it exactly).
    #[arg(long, default_value_t = 1500, value_name = "N")]
    pub max_tokens: usize,
    /// Token limit of a document prompt (right truncation).
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub doc_max_tokens: usize,
    /// Minimum digits of line numbers ([000]).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub number_width: usize,
    /// Chat template.
    #[arg(long, value_enum, default_value_t = ProxTemplateArg::Llama2)]
    pub template: ProxTemplateArg,
    /// System prompt (default: the ProX one).
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
}

/// `tamis dedup ...`
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum DedupCommand {
    /// Keep the first occurrence (in input order) of each document with identical normalized text.
    Exact(ExactArgs),
    /// Remove every occurrence of a line beyond the first N across the corpus (CCNet-style).
    Lines(LinesArgs),
    /// Remove near-duplicate documents (MinHash-LSH), in one process or as scheduler stages.
    ///
    /// One process: `tamis dedup near INPUT... -o OUTPUT`. As four stages sharing a work
    /// directory, each runnable as many tasks: `tamis dedup near signatures|buckets|cluster|filter
    /// --workdir DIR ...` (see docs/near-dedup.md).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Near(NearCmd),
}

/// `tamis dedup near`: a single-process run, or one of the stages.
#[derive(Debug, Args)]
pub struct NearCmd {
    /// A stage of the multi-task workflow.
    #[command(subcommand)]
    pub stage: Option<NearStage>,
    /// The single-process run.
    #[command(flatten)]
    pub run: NearArgs,
}

/// The stages of `tamis dedup near`.
#[derive(Debug, Subcommand)]
pub enum NearStage {
    /// Stage 1: signatures of the input files with index % world-size == rank.
    Signatures(NearSignaturesArgs),
    /// Stage 2: candidate pairs of this task's bands (or band slices).
    Buckets(NearBucketsArgs),
    /// Stage 3 (one task): clusters and per-file decisions.
    Cluster(NearWorkdirArgs),
    /// Stage 4: write the kept documents of the input files with index % world-size == rank.
    Filter(NearFilterArgs),
}

/// Shingling, MinHash and LSH parameters.
#[derive(Debug, Args, Clone)]
pub struct MinHashArgs {
    /// Similarity threshold: picks bands × rows minimizing false positives + false negatives
    /// (as datasketch does) and is the Jaccard --verify requires (default 0.8 there).
    #[arg(long, value_name = "T", conflicts_with_all = ["bands", "rows"])]
    pub threshold: Option<f64>,
    /// With --threshold: weight of false negatives against false positives when choosing bands ×
    /// rows (default 0.5 as datasketch; 0.9 finds ≥ 95% of pairs 0.05 above the threshold).
    #[arg(long, value_name = "W", requires = "threshold")]
    pub recall_weight: Option<f64>,
    /// Shingle size, in words (or characters with --shingle chars).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub ngram: usize,
    /// Shingles made of words or characters.
    #[arg(long, value_enum, default_value_t = ShingleArg::Words)]
    pub shingle: ShingleArg,
    /// Signature length (permutations).
    #[arg(long, default_value_t = 112, value_name = "K")]
    pub num_perm: usize,
    /// LSH bands (default 14, with 8 rows: datatrove/FineWeb).
    #[arg(long, value_name = "B")]
    pub bands: Option<usize>,
    /// Rows per band (default 8).
    #[arg(long, value_name = "R")]
    pub rows: Option<usize>,
    /// Seed of the permutations.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Signature: K independent permutations of every shingle (kperm, datatrove's), or one
    /// permutation cut into K densified bins (oph: one-permutation hashing, O(shingles + K)).
    #[arg(long, value_enum, default_value_t = SketchArg::Kperm)]
    pub sketch: SketchArg,
    /// Keep, in each cluster, the document with the smallest value of this numeric field
    /// (missing or null count as largest; ties go to the first in input order).
    #[arg(long, value_name = "FIELD")]
    pub priority: Option<String>,
}

/// How MinHash signatures are computed.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum SketchArg {
    /// K permutations of every shingle.
    #[default]
    Kperm,
    /// One permutation, K densified bins.
    Oph,
}

/// Shingle unit.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum ShingleArg {
    /// Words (every Han/Kana/Thai/... character is a word).
    #[default]
    Words,
    /// Characters of the normalized text.
    Chars,
}

/// `tamis dedup near INPUT... -o OUTPUT`
#[derive(Debug, Args)]
pub struct NearArgs {
    /// Inputs and output.
    #[command(flatten)]
    pub io: IoArgs,
    /// Parameters.
    #[command(flatten)]
    pub minhash: MinHashArgs,
    /// Join candidate pairs only when their exact shingle-set Jaccard reaches the threshold
    /// (removes LSH false positives; reads the inputs once more).
    #[arg(long)]
    pub verify: bool,
    /// Keep every document and add minhash_cluster_id and minhash_cluster_size instead.
    #[arg(long)]
    pub annotate: bool,
    /// Write one JSON line (id, cluster_id, cluster_size, kept) per member of each cluster of
    /// two or more documents.
    #[arg(long, value_name = "FILE")]
    pub clusters: Option<PathBuf>,
    /// Bound memory for band keys (e.g. 8G, 512M): beyond it they spill to sorted files.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<u64>,
    /// Directory for spill files (default: the system temporary directory).
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
}

/// A work directory.
#[derive(Debug, Args)]
pub struct NearWorkdirArgs {
    /// Work directory shared by the stages.
    #[arg(long, value_name = "DIR")]
    pub workdir: PathBuf,
    /// Write run statistics as JSON.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
}

/// `tamis dedup near buckets`
#[derive(Debug, Args)]
pub struct NearBucketsArgs {
    /// Task.
    #[command(flatten)]
    pub task: NearTaskArgs,
    /// Write run statistics as JSON.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
}

/// A task of a stage.
#[derive(Debug, Args)]
pub struct NearTaskArgs {
    /// Work directory shared by the stages.
    #[arg(long, value_name = "DIR")]
    pub workdir: PathBuf,
    /// This task's index, 0-based (e.g. $SLURM_ARRAY_TASK_ID).
    #[arg(long, default_value_t = 0)]
    pub rank: usize,
    /// Number of tasks of this stage.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub world_size: usize,
}

/// `tamis dedup near signatures`
#[derive(Debug, Args)]
pub struct NearSignaturesArgs {
    /// Input files, directories or globs (the same list, in the same order, for every task and stage).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Task.
    #[command(flatten)]
    pub task: NearTaskArgs,
    /// Parameters.
    #[command(flatten)]
    pub minhash: MinHashArgs,
    /// Field holding the document text.
    #[arg(long, default_value = "text", value_name = "FIELD")]
    pub text_key: String,
    /// Fail on the first bad record, or skip bad records (the filter stage writes the rejects).
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    pub on_error: OnErrorArg,
    /// Memory for buffered band keys before they are written out (default 1G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<u64>,
    /// Write run statistics as JSON.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
}

/// `tamis dedup near filter`
#[derive(Debug, Args)]
pub struct NearFilterArgs {
    /// Inputs and output (the output name may hold {rank}, required with several tasks).
    #[command(flatten)]
    pub io: IoArgs,
    /// Task.
    #[command(flatten)]
    pub task: NearTaskArgs,
    /// Keep every document and add minhash_cluster_id and minhash_cluster_size instead.
    #[arg(long)]
    pub annotate: bool,
    /// Write cluster memberships of this task's documents (JSONL).
    #[arg(long, value_name = "FILE")]
    pub clusters: Option<PathBuf>,
}

/// Parse a byte size: `123`, `64K`, `512M`, `8G`, `1.5T` (binary units; a trailing `B` or `iB`
/// is accepted).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (num, mult) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 1u64 << 10),
        Some('M') => (&body[..body.len() - 1], 1 << 20),
        Some('G') => (&body[..body.len() - 1], 1 << 30),
        Some('T') => (&body[..body.len() - 1], 1 << 40),
        _ => (body, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 512M or 8G"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("{s:?}: the size must be positive"));
    }
    Ok((v * mult as f64) as u64)
}

/// Normalization before hashing (see docs/normalization.md).
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum NormalizeArg {
    /// The text as is.
    #[default]
    None,
    /// White-space runs collapsed to one space, trimmed.
    Whitespace,
    /// NFKC, lowercase, digits to 0, punctuation removed, white space collapsed.
    Simple,
}

impl From<NormalizeArg> for Normalize {
    fn from(n: NormalizeArg) -> Self {
        match n {
            NormalizeArg::None => Normalize::None,
            NormalizeArg::Whitespace => Normalize::Whitespace,
            NormalizeArg::Simple => Normalize::Simple,
        }
    }
}

/// What to do with bad records.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum OnErrorArg {
    /// Stop with an error naming the file and line; write no output.
    #[default]
    Fail,
    /// Skip bad records, count them by reason, and write them to --rejects.
    Skip,
}

/// Inputs, output and record options shared by every data command.
#[derive(Debug, Args)]
pub struct IoArgs {
    /// Input files, directories (read recursively, sorted), glob patterns, or - for stdin.
    /// JSONL (.jsonl, .jsonl.gz, .jsonl.zst) or Parquet.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Output file; the extension picks the format (.jsonl, .jsonl.gz, .jsonl.zst, .parquet); - is stdout.
    // An Option so that `dedup near STAGE` (which has no output of this kind) can leave it out;
    // clap still requires it everywhere else.
    #[arg(short, long, value_name = "OUTPUT", required = true)]
    pub output: Option<String>,
    /// Field holding the document text.
    #[arg(long, default_value = "text", value_name = "FIELD")]
    pub text_key: String,
    /// Field holding the document id (when missing or null, "NAME:LINE" is generated and added).
    #[arg(long, default_value = "id", value_name = "FIELD")]
    pub id_key: String,
    /// Fail on the first bad record, or skip bad records and count them.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    pub on_error: OnErrorArg,
    /// With --on-error skip: write skipped records (file, line, reason, raw record) to this JSONL file.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Write run statistics (documents read, kept, removed by reason, bytes, seconds) as JSON.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
}

impl IoArgs {
    /// The output (always given: clap requires it).
    pub fn output(&self) -> &str {
        self.output.as_deref().unwrap_or("-")
    }

    /// Core run options.
    pub fn run_options(&self, threads: usize, key: Option<String>) -> RunOptions {
        RunOptions {
            extract: ExtractOptions {
                text_key: self.text_key.clone(),
                id_key: self.id_key.clone(),
                key,
            },
            on_error: match self.on_error {
                OnErrorArg::Fail => OnError::Fail,
                OnErrorArg::Skip => OnError::Skip,
            },
            rejects: self.rejects.clone(),
            threads,
            ..RunOptions::default()
        }
    }
}

/// `tamis dedup exact`
#[derive(Debug, Args)]
pub struct ExactArgs {
    /// Inputs and output.
    #[command(flatten)]
    pub io: IoArgs,
    /// Normalization applied before hashing.
    #[arg(long, value_enum, default_value_t = NormalizeArg::None)]
    pub normalize: NormalizeArg,
    /// Deduplicate on this string field (e.g. url) instead of the text.
    #[arg(long, value_name = "FIELD")]
    pub key: Option<String>,
}

/// `tamis dedup lines`
#[derive(Debug, Args)]
pub struct LinesArgs {
    /// Inputs and output.
    #[command(flatten)]
    pub io: IoArgs,
    /// Occurrences of each line kept across the corpus.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_occurrences: u32,
    /// Lines shorter than this many characters are always kept.
    #[arg(long, default_value_t = 0, value_name = "C")]
    pub min_line_chars: usize,
    /// Normalization applied to each line before comparing.
    #[arg(long, value_enum, default_value_t = NormalizeArg::None)]
    pub normalize: NormalizeArg,
}

/// `tamis demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the sample corpus and outputs in this directory (default: a temporary one, removed).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Plain-text files to build the corpus from (default: Python's documentation topics, found
    /// through python3, or a built-in text).
    #[arg(long, value_name = "FILE")]
    pub source: Vec<PathBuf>,
    /// Seed for choosing duplicates and boilerplate.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Only run exact and line dedup (what this binary does; the full pipeline demo with
    /// language ID, near dedup and the report is the Python `tamis demo`).
    #[arg(long)]
    pub dedup_only: bool,
    /// Only write the sample corpus (corpus.jsonl.gz) into --out-dir and print what was planted
    /// as JSON (used by the Python `tamis demo`).
    #[arg(long, requires = "out_dir")]
    pub corpus_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("512mb"), Ok(512 << 20));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn near_stages_parse() {
        let c = Cli::try_parse_from(["tamis", "dedup", "near", "a.jsonl", "-o", "b.jsonl"]);
        assert!(c.is_ok());
        let c = Cli::try_parse_from(["tamis", "dedup", "near", "cluster", "--workdir", "w"]);
        assert!(c.is_ok());
        let c = Cli::try_parse_from([
            "tamis",
            "dedup",
            "near",
            "a",
            "-o",
            "b",
            "--threshold",
            "0.8",
            "--bands",
            "4",
        ]);
        assert!(c.is_err());
    }

    #[test]
    fn max_occurrences_must_be_positive() {
        let r = Cli::try_parse_from([
            "tamis",
            "dedup",
            "lines",
            "a.jsonl",
            "-o",
            "b.jsonl",
            "--max-occurrences",
            "0",
        ]);
        assert!(r.is_err());
    }
}
