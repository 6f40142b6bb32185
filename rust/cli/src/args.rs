//! Argument definitions: one struct per subcommand, shared groups here.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use tamis_core::dedup::near::{Shingling, Sketch};
use tamis_core::dedup::substring::{KeepCopies, Unit};
use tamis_core::index::decont::DecontMode;
use tamis_core::index::IndexKind;
use tamis_core::io::OnError;
use tamis_core::prox::Mode;
use tamis_core::refine::ShardCompression;
use tamis_core::text::Normalize;

// Flags that set an option are `Option`s without clap defaults: the defaults live in the core
// options types (shown in `--help` by `crate::help`), and what the user gave is serialized and
// read by those types, which check it and name the flag in their errors.

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
    /// Refine a corpus end to end (dedup, fastText filters, ProX) into shards and a report.
    /// Resumable: re-running the same command skips finished work (see docs/refine.md).
    Refine(RefineArgs),
    /// fastText language and quality filters, and classifier training.
    #[command(subcommand)]
    Filter(FilterCommand),
    /// Tokenize documents into training shards (Megatron .bin/.idx, datatrove/nanotron .ds,
    /// numpy .npy) with a manifest; resumable per shard (see docs/tokenize.md).
    Tokenize(TokenizeArgs),
    /// Persistent indexes of what a model saw or will be judged on: word n-grams of evaluation
    /// sets (for decontaminate) or exact text hashes of an old corpus (for dedup exact
    /// --against); see docs/index.md.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Remove evaluation-set n-grams from a corpus (--against an n-gram index): drop the
    /// documents that hold one, or cut the matching spans out (see docs/index.md).
    Decontaminate(DecontArgs),
    /// Mix sources to a token budget in given proportions (new data and replay), repeating a
    /// small source for up to --max-epochs epochs; writes the chosen documents and a manifest.
    Mix(MixArgs),
}

/// `tamis tokenize INPUT... -o OUTDIR --tokenizer T.json`
#[derive(Debug, Args, Serialize)]
pub struct TokenizeArgs {
    /// Input files, directories (read recursively, sorted), glob patterns, or - for stdin.
    /// JSONL (.jsonl, .jsonl.gz, .jsonl.zst) or Parquet.
    #[arg(required = true, value_name = "INPUT")]
    #[serde(skip)]
    pub inputs: Vec<String>,
    /// The output directory (created when missing): shards, manifest.json, and the markers
    /// that let a re-run of the same command resume.
    #[arg(short, long, value_name = "OUTDIR")]
    #[serde(skip)]
    pub output: PathBuf,
    /// The tokenizer.json (Hugging Face tokenizers format).
    #[arg(long, value_name = "T.json")]
    #[serde(skip)]
    pub tokenizer: PathBuf,
    /// Shard layout.
    #[arg(long, value_parser = PossibleValuesParser::new(tamis_core::tokenize::Format::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Put a BOS token before each document (default: as the tokenizer's post-processor does).
    #[arg(long, overrides_with = "no_bos")]
    #[serde(skip)]
    pub bos: bool,
    /// Put no BOS token before documents.
    #[arg(long, overrides_with = "bos")]
    #[serde(skip)]
    pub no_bos: bool,
    /// Put an EOS token after each document (default: the post-processor's, else the
    /// tokenizer's end-of-text token when it has one).
    #[arg(long, overrides_with = "no_eos")]
    #[serde(skip)]
    pub eos: bool,
    /// Put no EOS token after documents.
    #[arg(long, overrides_with = "eos")]
    #[serde(skip)]
    pub no_eos: bool,
    /// The BOS token, e.g. "<s>" (replaces the post-processor's).
    #[arg(long, value_name = "TOKEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bos_token: Option<String>,
    /// The EOS token, e.g. "<|endoftext|>" (replaces the post-processor's).
    #[arg(long, value_name = "TOKEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eos_token: Option<String>,
    /// Shuffle the documents inside each shard (with --seed).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shuffle: bool,
    /// Seed of the shuffle.
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Start a new shard before a document that would take a shard past N tokens.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_shard_tokens: Option<i64>,
    /// Width of a stored id (auto: uint16 when every id is below 65536).
    #[arg(long, value_parser = PossibleValuesParser::new(tamis_core::tokenize::Dtype::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Field holding the document text.
    #[arg(long, value_name = "FIELD")]
    #[serde(skip)]
    pub text_key: Option<String>,
    /// Fail on the first bad record, or skip bad records and count them.
    #[arg(long, value_parser = PossibleValuesParser::new(OnError::NAMES))]
    #[serde(skip)]
    pub on_error: Option<String>,
    /// With --on-error skip: write skipped records (file, line, reason, raw record) to this
    /// JSONL file.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub rejects: Option<PathBuf>,
}

/// `tamis refine CONFIG.toml` or `tamis refine INPUT... -o OUTDIR`
#[derive(Debug, Args, Serialize)]
pub struct RefineArgs {
    /// A CONFIG.toml, or input files, directories and globs.
    #[arg(required = true, value_name = "INPUT")]
    #[serde(skip)]
    pub inputs: Vec<String>,
    /// The output directory (required without a configuration file; replaces its `output`).
    #[arg(short, long, value_name = "OUTDIR")]
    #[serde(skip)]
    pub output: Option<PathBuf>,
    /// Discard a previous run in the output directory and start over.
    #[arg(long)]
    #[serde(skip)]
    pub restart: bool,
    /// Comma-separated stages (default: dedup_exact,language,dedup_lines,dedup_near,prox_doc,prox_chunk).
    #[arg(long, value_delimiter = ',', value_name = "STAGES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<String>>,
    /// Languages to keep, e.g. en,fr (default: annotate only).
    #[arg(long, value_delimiter = ',', value_name = "LANGS")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// Smallest language score (default 0.65 with --languages, else 0).
    #[arg(long, value_name = "S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    /// A fastText quality classifier: adds a quality stage after language ID.
    #[arg(long, value_name = "MODEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_model: Option<String>,
    /// The quality classifier's label to keep.
    #[arg(long, value_name = "LABEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_label: Option<String>,
    /// Smallest quality score.
    #[arg(long, value_name = "T")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The ProX doc refining model (a local directory).
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prox_doc_model: Option<String>,
    /// The ProX chunk refining model (a local directory).
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prox_chunk_model: Option<String>,
    /// Field holding the document text.
    #[arg(long, value_name = "FIELD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_key: Option<String>,
    /// Field holding the document id.
    #[arg(long, value_name = "FIELD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_key: Option<String>,
    /// Compression of the refined shards.
    #[arg(long, value_parser = PossibleValuesParser::new(ShardCompression::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Fail on the first bad record, or skip bad records (kept in OUTDIR/rejects/) and count them.
    #[arg(long, value_parser = PossibleValuesParser::new(OnError::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
}

/// `tamis filter ...`
#[derive(Debug, Subcommand)]
pub enum FilterCommand {
    /// Keep documents in given languages (fastText language ID); annotate metadata.language.
    Language(FilterLanguageArgs),
    /// Keep documents a fastText classifier scores high; annotate metadata.<name>_score.
    Quality(FilterQualityArgs),
    /// Train a fastText quality classifier, DCLM's recipe (Python: `pip install 'tamis[filters]'`).
    Train(PythonOnlyArgs),
}

/// `tamis filter language`
#[derive(Debug, Args, Serialize)]
pub struct FilterLanguageArgs {
    /// Inputs and output.
    #[command(flatten)]
    #[serde(skip)]
    pub io: IoArgs,
    /// Languages to keep, e.g. en,fr (default: all, annotating only).
    #[arg(long, value_delimiter = ',', value_name = "LANGS")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// Smallest score of the predicted language.
    #[arg(long, value_name = "S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    /// A fastText language-ID model (default: fastText's lid.176.ftz, built in; CC BY-SA 3.0,
    /// see rust/core/assets/README.md).
    #[arg(long, value_name = "MODEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    /// Documents per fastText call.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
}

/// `tamis filter quality`
#[derive(Debug, Args, Serialize)]
pub struct FilterQualityArgs {
    /// Inputs and output.
    #[command(flatten)]
    #[serde(skip)]
    pub io: IoArgs,
    /// The fastText classifier (.bin/.ftz).
    #[arg(long, value_name = "MODEL", required = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    /// The label whose probability is the score.
    #[arg(long, value_name = "LABEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_label: Option<String>,
    /// Smallest score that keeps a document.
    #[arg(long, value_name = "T")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Documents per fastText call.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// The score goes to metadata.<name>_score.
    #[arg(long, value_name = "NAME", default_value = "quality")]
    #[serde(skip)]
    pub name: String,
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
#[derive(Debug, Args, Serialize)]
pub struct CorpusArgs {
    /// Field holding the text in JSONL and Parquet (.txt files are one document per line).
    #[arg(long, value_name = "FIELD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_key: Option<String>,
    /// Fail on the first bad record, or skip bad records and count them.
    #[arg(long, value_parser = PossibleValuesParser::new(OnError::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
}

/// `tamis vocab extend`
#[derive(Debug, Args, Serialize)]
pub struct VocabExtendArgs {
    /// The base tokenizer.json (BPE: byte-level, or SentencePiece-style with byte fallback).
    #[arg(long, value_name = "BASE.json")]
    #[serde(skip)]
    pub tokenizer: PathBuf,
    /// Target-language text to learn from: JSONL (.gz, .zst), Parquet or .txt files,
    /// directories or globs.
    #[arg(long, num_args = 1.., value_name = "FILES")]
    #[serde(skip)]
    pub corpus: Vec<String>,
    /// Number of new tokens to add (required with --corpus; without it, --merge-from adds all).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_tokens: Option<usize>,
    /// The extended tokenizer.json to write.
    #[arg(short, long, value_name = "NEW.json")]
    #[serde(skip)]
    pub output: PathBuf,
    /// Stop when the most frequent pair occurs fewer times than this.
    #[arg(long, value_name = "F")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_frequency: Option<u64>,
    /// Byte-fallback models: add missing characters until this share of character occurrences
    /// is covered.
    #[arg(long, value_name = "SHARE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub char_coverage: Option<f64>,
    /// Append the merges of another BPE tokenizer of the same kind first (old merges keep
    /// priority; tokens the old merges never form are reported and left out).
    #[arg(long, value_name = "OTHER.json")]
    #[serde(skip)]
    pub merge_from: Option<PathBuf>,
    /// Report the embedding rows the model needs, rounded up to a multiple of this.
    #[arg(long, value_name = "M")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pad_to_multiple_of: Option<u32>,
    /// Write the tokenizer report (JSON) comparing the base and the result.
    #[arg(long, value_name = "R.json")]
    #[serde(skip)]
    pub report: Option<PathBuf>,
    /// Old-language text whose ids must not change: merges that would fire on it (and, with
    /// byte fallback, characters in it) are not added; the report checks its invariance.
    #[arg(long, num_args = 1.., value_name = "FILES")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protect: Vec<String>,
    /// Where merges are learned: auto (default: only where the new language is: words of the
    /// scripts the base covers poorly, pairs much more frequent than in the reference) or all
    /// (every word: plain continued BPE).
    #[arg(long, value_name = "auto|all")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// auto: learn only inside words of these Unicode scripts, e.g. Han,Hiragana,Katakana
    /// (default: detected from the corpus).
    #[arg(long, value_delimiter = ',', num_args = 1.., value_name = "SCRIPTS")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<String>,
    /// auto: base-language text whose frequent pairs are not learned (default: the built-in
    /// English word list).
    #[arg(long, num_args = 1.., value_name = "FILES")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reference: Vec<String>,
    /// auto: learn a pair only where it is at least this many times more frequent per word
    /// in the corpus than in the reference.
    #[arg(long, value_name = "R")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_ratio: Option<f64>,
    /// Held-out target text for the report (default: the --corpus).
    #[arg(long, num_args = 1.., value_name = "FILES", requires = "report")]
    #[serde(skip)]
    pub heldout: Vec<String>,
    /// Corpus reading options.
    #[command(flatten)]
    #[serde(flatten)]
    pub corpus_args: CorpusArgs,
}

/// `tamis vocab stats`
#[derive(Debug, Args, Serialize)]
pub struct VocabStatsArgs {
    /// The tokenizer.json to measure.
    #[arg(long, value_name = "T.json")]
    #[serde(skip)]
    pub tokenizer: PathBuf,
    /// A tokenizer.json to compare with (e.g. the base of an extension).
    #[arg(long, value_name = "B.json")]
    #[serde(skip)]
    pub baseline: Option<PathBuf>,
    /// Target-language text (held out from training).
    #[arg(long, required = true, num_args = 1.., value_name = "FILES")]
    #[serde(skip)]
    pub corpus: Vec<String>,
    /// Old-language text whose ids should not change (needs --baseline for the invariance rate).
    #[arg(long, num_args = 1.., value_name = "FILES")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protect: Vec<String>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "R.json")]
    #[serde(skip)]
    pub report: Option<PathBuf>,
    /// Print the JSON report instead of the summary table.
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
    /// Examples of changed protected documents to keep.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub examples: Option<usize>,
    /// Corpus reading options.
    #[command(flatten)]
    #[serde(flatten)]
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
#[derive(Debug, Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
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
#[derive(Debug, Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputInitArg {
    /// The method on the lm_head rows.
    Mean,
    /// The lm_head row of the first piece (ziptie only).
    First,
    /// A copy of the new input row.
    Tie,
}

/// `tamis embed init`
#[derive(Debug, Args, Serialize)]
pub struct EmbedInitArgs {
    /// Hugging Face model directory (config.json and safetensors weights).
    #[arg(long, value_name = "DIR")]
    #[serde(skip)]
    pub model: PathBuf,
    /// The tokenizer.json the model was trained with.
    #[arg(long, value_name = "OLD.json")]
    #[serde(skip)]
    pub old_tokenizer: PathBuf,
    /// Its extension (`tamis vocab extend`); copied into the output as tokenizer.json.
    #[arg(long, value_name = "NEW.json")]
    #[serde(skip)]
    pub new_tokenizer: PathBuf,
    /// Output model directory (must not exist, or be empty).
    #[arg(short, long, value_name = "OUT_DIR")]
    #[serde(skip)]
    pub output: PathBuf,
    /// How new rows are made.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<EmbedMethodArg>,
    /// How lm_head rows of untied models are made.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_init: Option<OutputInitArg>,
    /// Round the number of rows up to a multiple of this when they grow.
    #[arg(long, value_name = "M")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pad_to_multiple_of: Option<u32>,
    /// Seed of mean-resizing and random.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Scale each new row to the median L2 norm of the old rows of its matrix.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rescale_norm: bool,
    /// Name of the input embedding tensor (default: Llama/Mistral/Qwen2 or GPT-2 names).
    #[arg(long, value_name = "NAME")]
    #[serde(skip)]
    pub embed_name: Option<String>,
    /// Name of the lm_head tensor (default: lm_head.weight).
    #[arg(long, value_name = "NAME")]
    #[serde(skip)]
    pub lm_head_name: Option<String>,
    /// Write the summary (JSON) to this file.
    #[arg(long, value_name = "S.json")]
    #[serde(skip)]
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
    /// Label documents with a large model behind an OpenAI-compatible endpoint: SFT data for
    /// the refining models (Python: `pip install 'tamis[annotate]'`).
    Annotate(PythonArgs),
    /// Fine-tune a refining model on SFT data (Python: `pip install 'tamis[prox]'`).
    Train(PythonArgs),
    /// Score refining models on held-out SFT data: F1, malformed programs, kept tokens
    /// (Python: `pip install 'tamis[prox]'`).
    Eval(PythonArgs),
}

/// `tamis prox refine`: the refining models (run by the Python package; see docs/prox.md).
#[derive(Debug, Args, Serialize)]
pub struct ProxRefineArgs {
    /// Inputs and output.
    #[command(flatten)]
    #[serde(skip)]
    pub io: IoArgs,
    /// The doc refining model (a local directory).
    #[arg(long, value_name = "DIR")]
    #[serde(skip)]
    pub doc_model: Option<String>,
    /// The chunk refining model (a local directory).
    #[arg(long, value_name = "DIR")]
    #[serde(skip)]
    pub chunk_model: Option<String>,
    /// Which models to run.
    #[arg(long, value_enum, default_value_t = ProxApplyStage::Both)]
    #[serde(skip)]
    pub stage: ProxApplyStage,
    /// How programs are read.
    #[arg(long, value_parser = PossibleValuesParser::new(Mode::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// transformers, vllm or openai.
    #[arg(long, value_parser = ["transformers", "vllm", "openai"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The openai backend's server, e.g. http://localhost:8000/v1.
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// cuda, cuda:N or cpu (default: cuda when available).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Weights' type (default: bf16 on GPU, fp32 on CPU).
    #[arg(long, value_parser = ["bf16", "fp16", "fp32"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Tokens per generation batch.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_tokens: Option<usize>,
    /// Documents refined per call.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// Field that receives the original text of edited documents ("" for none).
    #[arg(long, value_name = "FIELD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_key: Option<String>,
    /// Decide keep/drop from this many decoding steps of the doc model.
    #[arg(long, value_name = "N")]
    #[serde(skip)]
    pub doc_fast_tokens: Option<usize>,
    /// Strict mode: do not constrain the chunk model's decoding to the program grammar.
    #[arg(long)]
    #[serde(skip)]
    pub no_constrain: bool,
    /// New tokens of the doc model (default 2000).
    #[arg(long, value_name = "N")]
    #[serde(skip)]
    pub doc_max_new_tokens: Option<usize>,
    /// New tokens of the chunk model (default 256).
    #[arg(long, value_name = "N")]
    #[serde(skip)]
    pub chunk_max_new_tokens: Option<usize>,
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
    /// Remove repeated spans of at least --min-length bytes (suffix arrays; Lee et al. 2021):
    /// every later copy (--keep first) or every copy (--keep none).
    Substring(SubstringArgs),
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

/// Shingling, MinHash and LSH parameters (`tamis_core::dedup::near::NearOptions`).
#[derive(Debug, Args, Clone, Serialize)]
pub struct MinHashArgs {
    /// Similarity threshold: picks bands × rows minimizing false positives + false negatives
    /// (as datasketch does) and is the Jaccard --verify requires (0.8 there when not given).
    #[arg(long, value_name = "T")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// With --threshold: weight of false negatives against false positives when choosing bands ×
    /// rows (0.5 as datasketch when not given; 0.9 finds ≥ 95% of pairs 0.05 above the threshold).
    #[arg(long, value_name = "W")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall_weight: Option<f64>,
    /// Shingle size, in words (or characters with --shingle chars).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ngram: Option<usize>,
    /// Shingles made of words (every Han/Kana/Thai/... character is a word) or characters.
    #[arg(long, value_parser = PossibleValuesParser::new(Shingling::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shingle: Option<String>,
    /// Signature length (permutations).
    #[arg(long, value_name = "K")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_perm: Option<usize>,
    /// LSH bands (default: num-perm / rows, 14 with 8 rows as datatrove/FineWeb).
    #[arg(long, value_name = "B")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bands: Option<usize>,
    /// Rows per band (default 8).
    #[arg(long, value_name = "R")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    /// Seed of the permutations.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Signature: K independent permutations of every shingle (kperm, datatrove's), or one
    /// permutation cut into K densified bins (oph: one-permutation hashing, O(shingles + K)).
    #[arg(long, value_parser = PossibleValuesParser::new(Sketch::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sketch: Option<String>,
    /// Which document of each cluster is kept: first (in input order), longest,
    /// shortest (in characters), max:FIELD or min:FIELD (largest or smallest value of a numeric
    /// field; missing or null never preferred). Ties go to the first in input order.
    #[arg(long, value_name = "POLICY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<String>,
    /// Same as --keep min:FIELD (kept for older command lines).
    #[arg(long, value_name = "FIELD", conflicts_with = "keep")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
}

/// `tamis dedup near INPUT... -o OUTPUT`
#[derive(Debug, Args, Serialize)]
pub struct NearArgs {
    /// Inputs and output.
    #[command(flatten)]
    #[serde(skip)]
    pub io: IoArgs,
    /// Parameters.
    #[command(flatten)]
    #[serde(flatten)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clusters: Option<PathBuf>,
    /// Bound memory for band keys (e.g. 8G, 512M): beyond it they spill to sorted files.
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    /// Directory for spill files (default: the system temporary directory).
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spill_dir: Option<PathBuf>,
    /// Also remove every document of a cluster that shares a band with a document of this near
    /// index of an older corpus (`tamis index build --kind near`, same MinHash parameters);
    /// repeat for several. With --annotate: keep them and add dup_of.
    #[arg(long, value_name = "INDEX")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub against: Vec<PathBuf>,
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
#[derive(Debug, Args, Serialize)]
pub struct NearSignaturesArgs {
    /// Input files, directories or globs (the same list, in the same order, for every task and stage).
    #[arg(required = true, value_name = "INPUT")]
    #[serde(skip)]
    pub inputs: Vec<String>,
    /// Task.
    #[command(flatten)]
    #[serde(skip)]
    pub task: NearTaskArgs,
    /// Parameters.
    #[command(flatten)]
    #[serde(flatten)]
    pub minhash: MinHashArgs,
    /// Field holding the document text.
    #[arg(long, value_name = "FIELD")]
    #[serde(skip)]
    pub text_key: Option<String>,
    /// Fail on the first bad record, or skip bad records (the filter stage writes the rejects).
    #[arg(long, value_parser = PossibleValuesParser::new(OnError::NAMES))]
    #[serde(skip)]
    pub on_error: Option<String>,
    /// Memory for buffered band keys before they are written out (default 1G).
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    /// Also look band keys up in this near index of an older corpus (`tamis index build --kind
    /// near`, same MinHash parameters; every task must reach it): the filter stage then removes
    /// every document of a cluster that shares a band with an indexed document (with
    /// --annotate: keeps them and adds dup_of). Repeat for several.
    #[arg(long, value_name = "INDEX")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub against: Vec<PathBuf>,
    /// Write run statistics as JSON.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub stats_json: Option<PathBuf>,
}

/// `tamis dedup near filter`
#[derive(Debug, Args, Serialize)]
pub struct NearFilterArgs {
    /// Inputs and output (the output name may hold {rank}, required with several tasks).
    #[command(flatten)]
    #[serde(skip)]
    pub io: IoArgs,
    /// Task.
    #[command(flatten)]
    #[serde(skip)]
    pub task: NearTaskArgs,
    /// Keep every document and add minhash_cluster_id and minhash_cluster_size instead.
    #[arg(long)]
    pub annotate: bool,
    /// Write cluster memberships of this task's documents (JSONL).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clusters: Option<PathBuf>,
}

/// Inputs, output and record options shared by every data command
/// (`tamis_core::io::IoOptions`).
#[derive(Debug, Args, Serialize)]
pub struct IoArgs {
    /// Input files, directories (read recursively, sorted), glob patterns, or - for stdin.
    /// JSONL (.jsonl, .jsonl.gz, .jsonl.zst) or Parquet.
    #[arg(required = true, value_name = "INPUT")]
    #[serde(skip)]
    pub inputs: Vec<String>,
    /// Output file; the extension picks the format (.jsonl, .jsonl.gz, .jsonl.zst, .parquet); - is stdout.
    // An Option so that `dedup near STAGE` (which has no output of this kind) can leave it out;
    // clap still requires it everywhere else.
    #[arg(short, long, value_name = "OUTPUT", required = true)]
    #[serde(skip)]
    pub output: Option<String>,
    /// Field holding the document text.
    #[arg(long, value_name = "FIELD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_key: Option<String>,
    /// Field holding the document id (when missing or null, "NAME:LINE" is generated and added).
    #[arg(long, value_name = "FIELD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_key: Option<String>,
    /// Fail on the first bad record, or skip bad records and count them.
    #[arg(long, value_parser = PossibleValuesParser::new(OnError::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    /// With --on-error skip: write skipped records (file, line, reason, raw record) to this JSONL file.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejects: Option<PathBuf>,
    /// Write run statistics (documents read, kept, removed by reason, bytes, seconds) as JSON.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub stats_json: Option<PathBuf>,
}

impl IoArgs {
    /// The output (always given: clap requires it).
    pub fn output(&self) -> &str {
        self.output.as_deref().unwrap_or("-")
    }
}

/// `tamis dedup exact`
#[derive(Debug, Args, Serialize)]
pub struct ExactArgs {
    /// Inputs and output.
    #[command(flatten)]
    #[serde(skip)]
    pub io: IoArgs,
    /// Normalization applied before hashing (see docs/normalization.md).
    #[arg(long, value_parser = PossibleValuesParser::new(Normalize::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<String>,
    /// Deduplicate on this string field (e.g. url) instead of the text.
    #[arg(long, value_name = "FIELD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Which document of each group of duplicates is kept: first (in input order), longest,
    /// shortest (in characters), max:FIELD or min:FIELD (largest or smallest value of a numeric
    /// field; missing or null never preferred). Ties go to the first in input order.
    #[arg(long, value_name = "POLICY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<String>,
    /// Also remove documents found in this exact index of an older corpus (`tamis index build
    /// --kind exact`, same --normalize and --key); repeat for several.
    #[arg(long, value_name = "INDEX")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub against: Vec<PathBuf>,
    /// With --against: keep the documents found in an index and add dup_of (the ids of the
    /// indexed records they duplicate) instead of removing them.
    #[arg(long)]
    pub annotate: bool,
}

/// `tamis index`
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Build a new index (a directory) from inputs.
    Build(Box<IndexBuildArgs>),
    /// Add inputs to an index as a new segment, with the options it was built with.
    Add(IndexAddArgs),
    /// Check an index (every file's size and checksum) and print what it holds, as JSON.
    Info(IndexInfoArgs),
}

/// How an index command reads records.
#[derive(Debug, Args, Serialize)]
pub struct IndexIoArgs {
    /// Field holding the document text.
    #[arg(long, value_name = "FIELD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_key: Option<String>,
    /// Field holding the record id stored with each entry (when missing or null, "NAME:LINE").
    #[arg(long, value_name = "FIELD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_key: Option<String>,
    /// Fail on the first bad record, or skip bad records and count them.
    #[arg(long, value_parser = PossibleValuesParser::new(OnError::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    /// Write run statistics as JSON.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub stats_json: Option<PathBuf>,
}

/// `tamis index build INPUT... -o INDEX`
#[derive(Debug, Args, Serialize)]
pub struct IndexBuildArgs {
    /// Input files, directories (read recursively, sorted), glob patterns, or - for stdin.
    #[arg(required = true, value_name = "INPUT")]
    #[serde(skip)]
    pub inputs: Vec<String>,
    /// The index directory to create (new or empty).
    #[arg(short, long, value_name = "INDEX")]
    #[serde(skip)]
    pub output: PathBuf,
    /// How records are read.
    #[command(flatten)]
    #[serde(skip)]
    pub io: IndexIoArgs,
    /// ngram: word n-grams (decontamination); exact: text hashes (dedup exact --against);
    /// lines: line hashes (dedup lines --against); near: MinHash band keys (dedup near
    /// --against).
    #[arg(long, value_parser = PossibleValuesParser::new(IndexKind::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Words per n-gram (ngram kind, default 13), or per shingle (near kind, default 5).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ngram: Option<i64>,
    /// Normalization before hashing (exact and lines kinds; use the one the dedup run uses).
    #[arg(long, value_parser = PossibleValuesParser::new(Normalize::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<String>,
    /// Lines shorter than this many characters are not indexed (lines kind; use dedup lines'
    /// --min-line-chars).
    #[arg(long, value_name = "C")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_line_chars: Option<i64>,
    /// Signature length (near kind; as dedup near --num-perm).
    #[arg(long, value_name = "K")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_perm: Option<i64>,
    /// LSH bands (near kind; as dedup near --bands).
    #[arg(long, value_name = "B")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bands: Option<i64>,
    /// Rows per band (near kind; as dedup near --rows).
    #[arg(long, value_name = "R")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// Similarity threshold choosing bands × rows (near kind; as dedup near --threshold).
    #[arg(long, value_name = "T")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Seed of the permutations (near kind; as dedup near --seed).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Shingles of words or characters (near kind; as dedup near --shingle).
    #[arg(long, value_parser = PossibleValuesParser::new(Shingling::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shingle: Option<String>,
    /// Signature kind (near kind; as dedup near --sketch).
    #[arg(long, value_parser = PossibleValuesParser::new(Sketch::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sketch: Option<String>,
    /// Hash this string field instead of the text (exact kind).
    #[arg(long, value_name = "FIELD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Index these fields, joined by newlines, instead of the text (e.g.
    /// question,choices,answer; lists give one line per item). The first must be a string.
    #[arg(long, value_name = "FIELDS", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Memory for entries before they spill to sorted runs on disk (e.g. 2G; default 1G).
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    /// Directory for spilled runs (default: the system temporary directory).
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spill_dir: Option<PathBuf>,
}

/// `tamis index add INDEX INPUT...`
#[derive(Debug, Args)]
pub struct IndexAddArgs {
    /// The index (a directory made by `tamis index build`).
    #[arg(value_name = "INDEX")]
    pub index: PathBuf,
    /// Input files, directories, glob patterns, or - for stdin.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// How records are read.
    #[command(flatten)]
    pub io: IndexIoArgs,
    /// Memory for entries before they spill to sorted runs on disk (e.g. 2G; default 1G).
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// Directory for spilled runs (default: the system temporary directory).
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
}

/// `tamis index info INDEX`
#[derive(Debug, Args)]
pub struct IndexInfoArgs {
    /// The index directory.
    #[arg(value_name = "INDEX")]
    pub index: PathBuf,
}

/// `tamis decontaminate INPUT... -o OUTPUT --against INDEX`
#[derive(Debug, Args, Serialize)]
pub struct DecontArgs {
    /// Inputs and output.
    #[command(flatten)]
    #[serde(skip)]
    pub io: IoArgs,
    /// An n-gram index of evaluation sets (`tamis index build --kind ngram`); repeat for
    /// several.
    #[arg(long, value_name = "INDEX", required = true)]
    pub against: Vec<PathBuf>,
    /// drop: remove contaminated documents; spans: cut the matching n-grams out (a document
    /// left empty is removed).
    #[arg(long, value_parser = PossibleValuesParser::new(DecontMode::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Write one JSON line per match: {"id", "index", "item", "start", "end", "ngrams",
    /// "text"} (byte offsets into the document's text; item: the evaluation record's id).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<PathBuf>,
    /// Memory for the indexes' query filters (e.g. 512M; default 1G).
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
}

/// `tamis dedup substring`
#[derive(Debug, Args, Serialize)]
pub struct SubstringArgs {
    /// Inputs and output.
    #[command(flatten)]
    #[serde(skip)]
    pub io: IoArgs,
    /// Shortest repeated span removed, in --unit (default 100 bytes: Lee et al.'s 50 GPT-2
    /// tokens).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_length: Option<i64>,
    /// What --min-length counts: bytes of the text, or tokens of --tokenizer.
    #[arg(long, value_parser = PossibleValuesParser::new(Unit::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The tokenizer.json whose tokens --unit tokens counts.
    #[arg(long, value_name = "TOKENIZER.json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<PathBuf>,
    /// Which copies of a repeated span are removed: first keeps the first occurrence in input
    /// order and removes the later ones; none removes every copy (Lee et al.).
    #[arg(long, value_parser = PossibleValuesParser::new(KeepCopies::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<String>,
    /// Drop documents that removals leave with fewer characters than this.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_doc_chars: Option<i64>,
    /// Keep every document and add substring_spans ([[start, end], ...] byte offsets) and
    /// substring_bytes instead of cutting.
    #[arg(long)]
    pub annotate: bool,
    /// Write one JSON line per removed span: {"id", "start", "end", "first"} (byte offsets;
    /// first: where the span's leading bytes first occur).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spans: Option<PathBuf>,
    /// Bound the memory for suffix arrays and the removal map (e.g. 2G): the text is cut into
    /// parts that fit, whose suffix arrays go to disk.
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    /// Directory for the text copy and suffix arrays (default: the system temporary directory).
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spill_dir: Option<PathBuf>,
}

/// `tamis dedup lines`
#[derive(Debug, Args, Serialize)]
pub struct LinesArgs {
    /// Inputs and output.
    #[command(flatten)]
    #[serde(skip)]
    pub io: IoArgs,
    /// Occurrences of each line kept across the corpus.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_occurrences: Option<i64>,
    /// Lines shorter than this many characters are always kept.
    #[arg(long, value_name = "C")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_line_chars: Option<i64>,
    /// Normalization applied to each line before comparing (see docs/normalization.md).
    #[arg(long, value_parser = PossibleValuesParser::new(Normalize::NAMES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<String>,
    /// Also remove every line found in this lines index of an older corpus (`tamis index build
    /// --kind lines`, same --normalize and --min-line-chars); repeat for several.
    #[arg(long, value_name = "INDEX")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub against: Vec<PathBuf>,
    /// With --against: keep the lines found in an index and add dup_of (the ids of the indexed
    /// records holding them) to their documents instead of removing them.
    #[arg(long)]
    pub annotate: bool,
}

/// `tamis demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the sample corpus (DIR/corpus/), the refined corpus and its report
    /// (DIR/refined/report.html) go (default: tamis-demo; with --dedup-only: a temporary
    /// directory, removed).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Plain-text files to build the corpus from (default: Python's documentation topics, found
    /// through python3, or a built-in text).
    #[arg(long, value_name = "FILE")]
    pub source: Vec<PathBuf>,
    /// Seed for choosing duplicates and boilerplate.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Only run exact and line dedup and compare what they removed with what was planted.
    #[arg(long)]
    pub dedup_only: bool,
    /// Only write the sample corpus (DIR/corpus/) and print what was planted as JSON.
    #[arg(long)]
    pub corpus_only: bool,
    /// A fastText quality classifier: adds a quality stage.
    #[arg(long, value_name = "MODEL")]
    pub quality_model: Option<String>,
    /// The ProX doc refining model (default: found locally, else skipped).
    #[arg(long, value_name = "DIR")]
    pub prox_doc_model: Option<String>,
    /// The ProX chunk refining model (default: found locally, else skipped).
    #[arg(long, value_name = "DIR")]
    pub prox_chunk_model: Option<String>,
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
    fn near_stages_parse() {
        let c = Cli::try_parse_from(["tamis", "dedup", "near", "a.jsonl", "-o", "b.jsonl"]);
        assert!(c.is_ok());
        let c = Cli::try_parse_from(["tamis", "dedup", "near", "cluster", "--workdir", "w"]);
        assert!(c.is_ok());
    }
}

/// `tamis mix --source NAME=INPUT:WEIGHT... --tokens N --tokenizer T.json -o OUTPUT`
#[derive(Debug, Args, Serialize)]
pub struct MixArgs {
    /// A source: NAME=INPUT:WEIGHT (INPUT: files, directories or globs, comma-separated;
    /// WEIGHT: its share, relative to the others). Repeat for each source.
    #[arg(long = "source", required = true, value_name = "NAME=INPUT:WEIGHT")]
    #[serde(skip)]
    pub sources: Vec<String>,
    /// The total token budget.
    #[arg(long, value_name = "N", required = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// The tokenizer.json that counts tokens (with its special tokens, as training sees them).
    #[arg(long, value_name = "T.json", required = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<PathBuf>,
    /// The most times a source is read.
    #[arg(long, value_name = "E")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_epochs: Option<u32>,
    /// Seed of the documents a partial epoch takes.
    #[arg(long, value_name = "S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Output file; the extension picks the format (.jsonl, .jsonl.gz, .jsonl.zst, .parquet).
    /// With --format: the directory of the token shards.
    #[arg(short, long, value_name = "OUTPUT", required = true)]
    #[serde(skip)]
    pub output: String,
    /// Write token shards (as `tamis tokenize` does, with its BOS/EOS defaults) instead of
    /// documents: megatron, nanotron or numpy.
    #[arg(long, value_parser = PossibleValuesParser::new(tamis_core::tokenize::Format::NAMES))]
    #[serde(skip)]
    pub format: Option<String>,
    /// With --format: shuffle the documents inside each shard (with --seed).
    #[arg(long, requires = "format")]
    #[serde(skip)]
    pub shuffle: bool,
    /// With --format: start a new shard before a document that would pass this many tokens.
    #[arg(long, value_name = "N", requires = "format")]
    #[serde(skip)]
    pub max_shard_tokens: Option<u64>,
    /// With --format: width of a stored id (auto, uint16, uint32).
    #[arg(long, value_parser = PossibleValuesParser::new(tamis_core::tokenize::Dtype::NAMES), requires = "format")]
    #[serde(skip)]
    pub dtype: Option<String>,
    /// Where the manifest goes (default: OUTPUT.manifest.json; with --format, OUTDIR/mix.json).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub manifest: Option<PathBuf>,
    /// Field holding the document text.
    #[arg(long, value_name = "FIELD")]
    #[serde(skip)]
    pub text_key: Option<String>,
    /// Field holding the document id.
    #[arg(long, value_name = "FIELD")]
    #[serde(skip)]
    pub id_key: Option<String>,
    /// Fail on the first bad record, or skip bad records and count them.
    #[arg(long, value_parser = PossibleValuesParser::new(OnError::NAMES))]
    #[serde(skip)]
    pub on_error: Option<String>,
    /// With --on-error skip: write skipped records to this JSONL file.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub rejects: Option<PathBuf>,
}
