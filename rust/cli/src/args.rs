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
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deduplicate documents or lines.
    #[command(subcommand)]
    Dedup(DedupCommand),
    /// Extend a tokenizer's vocabulary for a new language, and measure tokenizers.
    #[command(subcommand)]
    Vocab(VocabCommand),
    /// Build a small sample corpus from text on this machine and run the pipeline on it.
    Demo(DemoArgs),
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

/// `tamis dedup ...`
#[derive(Debug, Subcommand)]
pub enum DedupCommand {
    /// Keep the first occurrence (in input order) of each document with identical normalized text.
    Exact(ExactArgs),
    /// Remove every occurrence of a line beyond the first N across the corpus (CCNet-style).
    Lines(LinesArgs),
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
    #[arg(short, long, value_name = "OUTPUT")]
    pub output: String,
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
