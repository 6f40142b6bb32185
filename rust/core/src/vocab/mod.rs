//! Tokenizer vocabulary extension for a new language, and the tokenizer report.
//!
//! - [`extend`]: continued BPE on a Hugging Face `tokenizer.json` whose model is BPE, byte-level
//!   (GPT-2, Llama-3, Qwen2) or SentencePiece-style (`▁`, byte fallback: Llama-2, Mistral). The
//!   target corpus is read in the base tokenizer's own words (its normalizer and pre-tokenizer,
//!   added tokens cut out), each word is segmented by the old merges, and new merges are
//!   learned from that state. New vocab entries and merges go after all existing ones, with ids
//!   from `1 +` the largest id in use, so old ids never change and every old merge fires as
//!   before. `merge_from` appends another tokenizer's merges the same way (the Chinese-LLaMA
//!   recipe without its `score=0` reordering). The result is reloaded with `tokenizers` and
//!   checked before it is returned.
//! - [`stats`]: tokens per character and per word, bytes per token, continued words, new-token
//!   use and reachability, round trips and old-text invariance, side by side with a baseline.
//!
//! See docs/vocab.md for the algorithm and why old text keeps its ids.
//!
//! ```no_run
//! use tamis_core::pipeline::NoProgress;
//! use tamis_core::vocab::{extend, ExtendConfig, TokenizerFile};
//! let base = TokenizerFile::open("tokenizer.json".as_ref())?;
//! let cfg = ExtendConfig { new_tokens: Some(8000), ..ExtendConfig::default() };
//! let ext = extend(&base, &["zh.jsonl".to_string()], None, &cfg, &NoProgress)?;
//! ext.write("tokenizer-zh.json".as_ref())?;
//! # Ok::<(), tamis_core::Error>(())
//! ```

mod bpe;
mod corpus;
mod extend;
mod file;
mod learn;
mod options;
mod report;
mod target;
#[cfg(test)]
mod tests;

pub use corpus::{read_texts, CorpusOptions, CorpusSummary};
pub use extend::{
    extend, write_atomic, ExtendConfig, ExtendSummary, Extension, MergeFromSummary, Selection,
    WordChange, WordInvariance, DEFAULT_REFERENCE_RATIO,
};
pub use file::{MergeFormat, ModelKind, TokenizerFile};
pub use options::{ExtendOptions, StatsOptions, MAX_NEW_TOKENS};
pub use report::{
    stats, token_counts, tokenizer_from_json, Change, CorpusReport, Invariance, Metrics, NewTokens,
    Report, StatsConfig, TokenizerInfo,
};
pub use target::{ScriptStat, Target, BUILTIN_REFERENCE};

/// The report of an extension: [`stats`] of the result against its base, on `corpus` (held-out
/// target text), `protect` and, with target selection, `reference` (old-language text), with
/// what [`extend`] did.
pub fn extension_report(
    base: &TokenizerFile,
    extension: &Extension,
    corpus: &[String],
    protect: &[String],
    reference: &[String],
    cfg: &StatsConfig,
    progress: &dyn crate::pipeline::Progress,
) -> crate::Result<Report> {
    let new = TokenizerFile::from_json(base.name(), &extension.json)?;
    let reference = extension
        .summary
        .selection
        .as_ref()
        .map(|_| reference)
        .unwrap_or_default();
    let mut report = stats(&new, Some(base), corpus, protect, reference, cfg, progress)?;
    report.extension = Some(extension.summary.clone());
    Ok(report)
}
