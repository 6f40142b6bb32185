//! Exact document deduplication.

use rayon::prelude::*;

use super::HashSet128;
use crate::io::Doc;
use crate::pipeline::{Decision, Stage};
use crate::text::{hash_text, Hash128, Normalize};
use crate::Stats;

/// Options of exact dedup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExactConfig {
    /// Normalization applied before hashing.
    pub normalize: Normalize,
    /// Hash the key field ([`crate::io::ExtractOptions::key`]) instead of the text.
    pub use_key: bool,
}

/// Exact dedup as a pipeline [`Stage`]: the first occurrence in input order is kept.
#[derive(Debug, Default)]
pub struct ExactDedup {
    config: ExactConfig,
    seen: HashSet128,
}

impl ExactDedup {
    /// A fresh deduplicator.
    pub fn new(config: ExactConfig) -> Self {
        ExactDedup {
            config,
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
        let value = if self.config.use_key {
            doc.key.as_deref().unwrap_or("")
        } else {
            &doc.text
        };
        hash_text(value, self.config.normalize)
    }

    fn decide(&mut self, _doc: &Doc<'_>, hash: Hash128) -> Decision {
        if self.seen.insert(hash) {
            Decision::Keep
        } else {
            Decision::Remove("duplicate")
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
