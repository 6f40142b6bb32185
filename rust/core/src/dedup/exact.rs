//! Exact document deduplication.
//!
//! With the default keep policy (`first`) one pass: the first occurrence of each hash in input
//! order is kept. With another ([`Keep`]) two: the first pass finds, per hash, the document of
//! smallest score (ties: the first), the second keeps it.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{HashMap128, HashSet128, Keep};
use crate::io::{expand_inputs, Batch, Doc, InputFile, IoOptions, Output};
use crate::options::{OptionError, Options};
use crate::pipeline::{run_files, scan, Decision, Progress, RunOptions, Stage};
use crate::text::{hash_text, Hash128, Normalize};
use crate::{RecordError, Result, Stats};

/// Options of exact dedup (`tamis dedup exact`, `tamis.dedup.exact`, the `dedup_exact` stage,
/// the datatrove steps and polars).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExactOptions {
    /// Normalization applied before hashing.
    pub normalize: Normalize,
    /// Deduplicate on this string field (e.g. `url`) instead of the text.
    pub key: Option<String>,
    /// Which document of a group of duplicates is kept: `first` (in input order), `longest`,
    /// `shortest`, `max:FIELD` or `min:FIELD` (missing or null values are never preferred; ties
    /// go to the first in input order).
    pub keep: Keep,
}

impl Options for ExactOptions {
    fn validate(&self) -> std::result::Result<(), OptionError> {
        if self.key.as_deref() == Some("") {
            return Err(OptionError::new("key", "must name a field"));
        }
        Ok(())
    }
}

/// `tamis dedup exact`: keep one document of each group of duplicates of `inputs` (the first,
/// or the best under [`ExactOptions::keep`]) in `output`.
pub fn exact_dedup(
    inputs: &[String],
    output: &Output,
    io: &IoOptions,
    options: &ExactOptions,
    progress: &dyn Progress,
) -> Result<Stats> {
    options.validate()?;
    let opts = io.run_options(options.key.clone())?;
    let files = expand_inputs(inputs)?;
    let mut stage = ExactDedup::new(options);
    if options.keep.scores() {
        crate::io::require_rereadable(&files, &format!("dedup exact --keep {}", options.keep))?;
        stage.plan(&files, &opts, progress)?;
    }
    run_files("dedup exact", files, output, &opts, &mut stage, progress)
}

/// Exact dedup as a pipeline [`Stage`]: one document of each hash is kept, the first in input
/// order; with a keep policy that scores documents, the one [`ExactDedup::plan`] chose.
#[derive(Debug, Default)]
pub struct ExactDedup {
    normalize: Normalize,
    use_key: bool,
    keep: Keep,
    seen: HashSet128,
    /// Per hash, the ordinal of the document kept (after [`ExactDedup::plan`]).
    winners: HashMap128<u64>,
    /// Valid documents decided so far.
    ordinal: u64,
}

impl ExactDedup {
    /// A fresh deduplicator. With [`ExactOptions::key`], the run must read that field
    /// ([`crate::io::ExtractOptions::key`]); with a keep policy that scores documents, call
    /// [`ExactDedup::plan`] before the run.
    pub fn new(options: &ExactOptions) -> Self {
        ExactDedup {
            normalize: options.normalize,
            use_key: options.key.is_some(),
            keep: options.keep.clone(),
            ..ExactDedup::default()
        }
    }

    /// Number of distinct documents seen.
    pub fn distinct(&self) -> usize {
        self.seen.len()
    }

    fn hash(&self, doc: &Doc<'_>) -> Hash128 {
        let value = if self.use_key {
            doc.key.as_deref().unwrap_or("")
        } else {
            &doc.text
        };
        hash_text(value, self.normalize)
    }

    /// The first pass of a keep policy that scores documents: read `files` and choose, per
    /// hash, the document of smallest score (ties: the first in input order). Bad records are
    /// passed over here (the run itself reports them).
    pub fn plan(
        &mut self,
        files: &[InputFile],
        opts: &RunOptions,
        progress: &dyn Progress,
    ) -> Result<()> {
        let opts = RunOptions {
            rejects: None,
            ..opts.clone()
        };
        let mut best: HashMap128<(f64, u64)> = HashMap128::default();
        let mut ordinal = 0u64;
        let me: &ExactDedup = self;
        let prepare = |batch: &Batch, doc: &Doc<'_>| -> std::result::Result<_, RecordError> {
            Ok((me.hash(doc), me.keep.score(batch, doc)?))
        };
        scan(
            files,
            &opts,
            &mut Stats::default(),
            progress,
            prepare,
            |s| {
                let (hash, score) = s.value;
                let e = best.entry(hash).or_insert((f64::INFINITY, ordinal));
                // Strictly smaller wins: ties keep the earlier document.
                if score < e.0 {
                    *e = (score, ordinal);
                }
                ordinal += 1;
                Ok(())
            },
        )?;
        self.winners = best.into_iter().map(|(h, (_, o))| (h, o)).collect();
        Ok(())
    }
}

impl Stage for ExactDedup {
    type Prepared = std::result::Result<Hash128, RecordError>;

    fn prepare(&self, doc: &Doc<'_>) -> Self::Prepared {
        Ok(self.hash(doc))
    }

    fn prepare_in(&self, batch: &Batch, doc: &Doc<'_>) -> Self::Prepared {
        // Records the plan refused (a field that is not a number) are refused again, so that
        // both passes count the same documents.
        if self.keep.field().is_some() {
            self.keep.score(batch, doc)?;
        }
        Ok(self.hash(doc))
    }

    fn decide(&mut self, _doc: &Doc<'_>, hash: Self::Prepared) -> Decision {
        let hash = match hash {
            Ok(h) => h,
            Err(e) => return Decision::Reject(e),
        };
        let ordinal = self.ordinal;
        self.ordinal += 1;
        let first = self.seen.insert(hash);
        let kept = if self.keep.scores() {
            self.winners.get(&hash) == Some(&ordinal)
        } else {
            first
        };
        if kept {
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

/// For in-memory columns: `true` for the document each group of duplicates keeps under `keep`
/// (`values`: the policy's field per row, for `max:`/`min:`), `false` for the others. Missing
/// texts (`None`) are not documents and are always kept.
pub fn exact_keep_mask_with(
    texts: &[Option<&str>],
    normalize: Normalize,
    keep: &Keep,
    values: Option<&[Option<f64>]>,
) -> Result<Vec<bool>> {
    if !keep.scores() {
        return Ok(exact_keep_mask(texts, normalize));
    }
    let scores = keep.scores_of(texts.iter().map(|t| t.unwrap_or("")), values)?;
    let hashes = hash_many(texts, normalize);
    let mut best: HashMap128<(f64, usize)> = HashMap128::default();
    for (i, h) in hashes.iter().enumerate() {
        if let Some(h) = h {
            let e = best.entry(*h).or_insert((f64::INFINITY, i));
            if scores[i] < e.0 {
                *e = (scores[i], i);
            }
        }
    }
    Ok(hashes
        .iter()
        .enumerate()
        .map(|(i, h)| h.is_none_or(|h| best.get(&h).is_some_and(|b| b.1 == i)))
        .collect())
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
