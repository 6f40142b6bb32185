//! [`ExtendOptions`] and [`StatsOptions`]: the options of `tamis vocab extend|stats` and of
//! `tamis.vocab`, with their defaults and checks.

use serde::{Deserialize, Serialize};

use super::corpus::CorpusOptions;
use super::extend::ExtendConfig;
use super::report::StatsConfig;
use super::target::Target;
use crate::io::{OnError, MAX_THREADS};
use crate::options::{check_closed, check_range, OptionError, Options};

/// Options of a vocabulary extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtendOptions {
    /// Most new tokens to add (required with a corpus; without one, merging adds all).
    pub new_tokens: Option<usize>,
    /// Stop when the most frequent pair occurs fewer times than this.
    pub min_frequency: u64,
    /// Byte-fallback models: add missing characters until this share of character occurrences
    /// is covered.
    pub char_coverage: f64,
    /// Report the embedding rows the model needs, rounded up to a multiple of this.
    pub pad_to_multiple_of: Option<u32>,
    /// Old-language text whose ids must not change.
    pub protect: Vec<String>,
    /// Where merges are learned: `auto` (only where the new language is) or `all`.
    pub target: Target,
    /// `auto`: learn only inside words of these Unicode scripts (empty: detect the scripts the
    /// base tokenizer covers poorly).
    pub scripts: Vec<String>,
    /// `auto`: base-language text to keep merges away from (empty: the built-in English list).
    pub reference: Vec<String>,
    /// `auto`: a merge is learned only where its pair is at least this many times more
    /// frequent per word occurrence in the corpus than in the reference.
    pub reference_ratio: f64,
    /// Field holding the text in JSONL and Parquet.
    pub text_key: String,
    /// Fail on the first bad record, or skip and count bad records.
    pub on_error: OnError,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

impl Default for ExtendOptions {
    fn default() -> Self {
        let c = ExtendConfig::default();
        ExtendOptions {
            new_tokens: c.new_tokens,
            min_frequency: c.min_frequency,
            char_coverage: c.char_coverage,
            pad_to_multiple_of: c.pad_to_multiple_of,
            protect: c.protect,
            target: c.target,
            scripts: c.scripts,
            reference: c.reference,
            reference_ratio: c.reference_ratio,
            text_key: c.corpus.text_key,
            on_error: c.corpus.on_error,
            threads: c.corpus.threads,
        }
    }
}

/// Largest number of new tokens accepted (ids stay below 2^31 in every tokenizer format).
pub const MAX_NEW_TOKENS: usize = 1 << 24;

impl Options for ExtendOptions {
    fn validate(&self) -> Result<(), OptionError> {
        if let Some(n) = self.new_tokens {
            check_range("new_tokens", n, Some(1), Some(MAX_NEW_TOKENS))?;
        }
        check_range("min_frequency", self.min_frequency, Some(1), None)?;
        check_closed("char_coverage", self.char_coverage, 0.0, 1.0)?;
        check_closed("reference_ratio", self.reference_ratio, 0.0, 1e9)?;
        for n in &self.scripts {
            if super::target::script_named(n).is_none() {
                return Err(OptionError::new(
                    "scripts",
                    format!("has {n:?}, which is not {}", super::target::SCRIPT_EXAMPLES),
                ));
            }
        }
        if let Some(m) = self.pad_to_multiple_of {
            check_range(
                "pad_to_multiple_of",
                m,
                Some(1),
                Some(crate::embed::MAX_PAD),
            )?;
        }
        check_range("threads", self.threads, None, Some(MAX_THREADS))
    }
}

impl ExtendOptions {
    /// The extension's configuration.
    pub fn config(&self) -> ExtendConfig {
        ExtendConfig {
            new_tokens: self.new_tokens,
            min_frequency: self.min_frequency,
            char_coverage: self.char_coverage,
            pad_to_multiple_of: self.pad_to_multiple_of,
            protect: self.protect.clone(),
            target: self.target,
            scripts: self.scripts.clone(),
            reference: self.reference.clone(),
            reference_ratio: self.reference_ratio,
            corpus: self.corpus(),
        }
    }

    /// How corpora are read.
    pub fn corpus(&self) -> CorpusOptions {
        CorpusOptions {
            text_key: self.text_key.clone(),
            on_error: self.on_error,
            threads: self.threads,
            ..CorpusOptions::default()
        }
    }
}

/// Options of the tokenizer report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsOptions {
    /// Old-language text whose ids should not change.
    pub protect: Vec<String>,
    /// Examples of changed protected documents kept.
    pub examples: usize,
    /// Field holding the text in JSONL and Parquet.
    pub text_key: String,
    /// Fail on the first bad record, or skip and count bad records.
    pub on_error: OnError,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

impl Default for StatsOptions {
    fn default() -> Self {
        let c = StatsConfig::default();
        StatsOptions {
            protect: Vec::new(),
            examples: c.examples,
            text_key: c.corpus.text_key,
            on_error: c.corpus.on_error,
            threads: c.corpus.threads,
        }
    }
}

impl Options for StatsOptions {
    fn validate(&self) -> Result<(), OptionError> {
        check_range("examples", self.examples, None, Some(100_000))?;
        check_range("threads", self.threads, None, Some(MAX_THREADS))
    }
}

impl StatsOptions {
    /// The report's configuration.
    pub fn config(&self) -> StatsConfig {
        StatsConfig {
            corpus: CorpusOptions {
                text_key: self.text_key.clone(),
                on_error: self.on_error,
                threads: self.threads,
                ..CorpusOptions::default()
            },
            examples: self.examples,
        }
    }
}
