//! Exact document deduplication.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::HashSet128;
use crate::io::{Doc, IoOptions, Output};
use crate::options::{OptionError, Options};
use crate::pipeline::{run, Decision, Progress, Stage};
use crate::text::{hash_text, Hash128, Normalize};
use crate::{Result, Stats};

/// Options of exact dedup (`tamis dedup exact`, `tamis.dedup.exact`, the `dedup_exact` stage,
/// the datatrove steps and polars).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExactOptions {
    /// Normalization applied before hashing.
    pub normalize: Normalize,
    /// Deduplicate on this string field (e.g. `url`) instead of the text.
    pub key: Option<String>,
}

impl Options for ExactOptions {
    fn validate(&self) -> std::result::Result<(), OptionError> {
        if self.key.as_deref() == Some("") {
            return Err(OptionError::new("key", "must name a field"));
        }
        Ok(())
    }
}

/// `tamis dedup exact`: keep the first occurrence of each document of `inputs` in `output`.
pub fn exact_dedup(
    inputs: &[String],
    output: &Output,
    io: &IoOptions,
    options: &ExactOptions,
    progress: &dyn Progress,
) -> Result<Stats> {
    options.validate()?;
    let opts = io.run_options(options.key.clone())?;
    let mut stage = ExactDedup::new(options);
    run("dedup exact", inputs, output, &opts, &mut stage, progress)
}

/// Exact dedup as a pipeline [`Stage`]: the first occurrence in input order is kept.
#[derive(Debug, Default)]
pub struct ExactDedup {
    normalize: Normalize,
    use_key: bool,
    seen: HashSet128,
}

impl ExactDedup {
    /// A fresh deduplicator. With [`ExactOptions::key`], the run must read that field
    /// ([`crate::io::ExtractOptions::key`]).
    pub fn new(options: &ExactOptions) -> Self {
        ExactDedup {
            normalize: options.normalize,
            use_key: options.key.is_some(),
            seen: HashSet128::default(),
        }
    }

    /// Number of distinct documents seen.
    pub fn distinct(&self) -> usize {
        self.seen.len()
    }
}

impl Stage for ExactDedup {
    type Prepared = Hash128;

    fn prepare(&self, doc: &Doc<'_>) -> Hash128 {
        let value = if self.use_key {
            doc.key.as_deref().unwrap_or("")
        } else {
            &doc.text
        };
        hash_text(value, self.normalize)
    }

    fn decide(&mut self, _doc: &Doc<'_>, hash: Hash128) -> Decision {
        if self.seen.insert(hash) {
            Decision::Keep
        } else {
            Decision::Remove("duplicate".into())
        }
    }

    fn finish(&mut self, stats: &mut Stats) {
        stats.set_counter("distinct_hashes", self.seen.len() as u64);
    }
}

/// Hash many texts in parallel (on the current rayon pool); `None` stays `None`.
pub fn hash_many(texts: &[Option<&str>], normalize: Normalize) -> Vec<Option<Hash128>> {
    texts
        .par_iter()
        .with_min_len(256)
        .map(|t| t.map(|t| hash_text(t, normalize)))
        .collect()
}

/// For in-memory columns: `true` for the first occurrence of each (normalized) text, `false` for
/// later ones. Missing values (`None`) are not documents and are always kept.
pub fn exact_keep_mask(texts: &[Option<&str>], normalize: Normalize) -> Vec<bool> {
    let hashes = hash_many(texts, normalize);
    let mut seen = HashSet128::default();
    hashes
        .into_iter()
        .map(|h| h.is_none_or(|h| seen.insert(h)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keeps_first_occurrences_and_nulls() {
        let texts = [Some("a"), Some("b"), Some("a"), None, None, Some(" b ")];
        assert_eq!(
            exact_keep_mask(&texts, Normalize::None),
            [true, true, false, true, true, true]
        );
        assert_eq!(
            exact_keep_mask(&texts, Normalize::Whitespace),
            [true, true, false, true, true, false]
        );
    }
}
