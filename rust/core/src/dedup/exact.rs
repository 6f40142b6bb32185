//! Exact document deduplication.
//!
//! With the default keep policy (`first`) one pass: the first occurrence of each hash in input
//! order is kept. With another ([`Keep`]) two: the first pass finds, per hash, the document of
//! smallest score (ties: the first), the second keeps it.

use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{HashMap128, HashSet128, Keep};
use crate::index::{Index, IndexKind};
use crate::io::{expand_inputs, Batch, Doc, FieldEdit, FieldValue, InputFile, IoOptions, Output};
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
    /// Exact indexes of what was already seen (`tamis index build --kind exact`, built with the
    /// same `normalize` and `key`): a document whose hash is in one is removed
    /// (`indexed_duplicate`) whatever the keep policy, as if the indexed corpus came first.
    pub against: Vec<PathBuf>,
    /// With `against`: keep the documents found in an index and add `dup_of`, the ids of the
    /// indexed records they duplicate, instead of removing them (duplicates within the input
    /// are still removed).
    pub annotate: bool,
}

/// The field `annotate` adds.
pub const DUP_OF_FIELD: &str = "dup_of";

impl Options for ExactOptions {
    fn validate(&self) -> std::result::Result<(), OptionError> {
        if self.key.as_deref() == Some("") {
            return Err(OptionError::new("key", "must name a field"));
        }
        if self.annotate && self.against.is_empty() {
            return Err(OptionError::with_fields(
                &["annotate", "against"],
                "{0} needs {1} (an index to find duplicates in)",
            ));
        }
        Ok(())
    }
}

/// Open the exact indexes of `options.against`, checking that they hash what this run hashes.
pub fn open_against(options: &ExactOptions) -> Result<Vec<Index>> {
    options
        .against
        .iter()
        .map(|p| {
            let index = Index::open_for(p, IndexKind::Exact, None)?;
            index.require_normalize(options.normalize)?;
            let m = &index.manifest;
            if m.key != options.key || !m.fields.is_empty() {
                let what = |key: &Option<String>, fields: &[String]| match (key, fields) {
                    (Some(k), _) => format!("field {k:?}"),
                    (None, []) => "the text".to_string(),
                    (None, f) => format!("fields {}", f.join(",")),
                };
                return Err(crate::Error::Config(format!(
                    "{}: the index hashes {}, this run hashes {}",
                    p.display(),
                    what(&m.key, &m.fields),
                    what(&options.key, &[])
                )));
            }
            Ok(index)
        })
        .collect()
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
    let mut stage = ExactDedup::new(options)?;
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
    against: Vec<Index>,
    annotate: bool,
    dup_of: Arc<str>,
    indexed: u64,
}

impl ExactDedup {
    /// A fresh deduplicator. With [`ExactOptions::key`], the run must read that field
    /// ([`crate::io::ExtractOptions::key`]); with a keep policy that scores documents, call
    /// [`ExactDedup::plan`] before the run. Opens the indexes of [`ExactOptions::against`].
    pub fn new(options: &ExactOptions) -> Result<Self> {
        options.validate()?;
        Ok(ExactDedup {
            normalize: options.normalize,
            use_key: options.key.is_some(),
            keep: options.keep.clone(),
            against: open_against(options)?,
            annotate: options.annotate,
            dup_of: Arc::from(DUP_OF_FIELD),
            ..ExactDedup::default()
        })
    }

    /// The ids of the indexed records with hash `hash`, in index order.
    fn indexed(&self, hash: Hash128) -> Vec<String> {
        let mut found = Vec::new();
        let mut ids = Vec::new();
        for index in &self.against {
            found.clear();
            index.find_exact(hash, &mut found);
            ids.extend(found.iter().map(|&r| index.record_id(r)));
        }
        ids
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
        if !kept {
            return Decision::Remove("duplicate".into());
        }
        if self.against.is_empty() {
            return Decision::Keep;
        }
        let ids = self.indexed(hash);
        if ids.is_empty() {
            return Decision::Keep;
        }
        self.indexed += 1;
        if self.annotate {
            Decision::Edit {
                text: None,
                fields: vec![FieldEdit::set(self.dup_of.clone(), FieldValue::Strs(ids))],
            }
        } else {
            Decision::Remove("indexed_duplicate".into())
        }
    }

    fn finish(&mut self, stats: &mut Stats) {
        stats.set_counter("distinct_hashes", self.seen.len() as u64);
        if !self.against.is_empty() {
            stats.set_counter("indexed_duplicates", self.indexed);
        }
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

/// For in-memory columns: [`exact_keep_mask_with`] under `options`, and `false` for every text
/// found in an index of [`ExactOptions::against`].
pub fn exact_keep_mask_options(
    texts: &[Option<&str>],
    options: &ExactOptions,
    values: Option<&[Option<f64>]>,
) -> Result<Vec<bool>> {
    options.validate()?;
    if options.annotate {
        return Err(OptionError::new(
            "annotate",
            "adds a field to records: it is for files (dedup exact), not a keep mask",
        )
        .into());
    }
    let mut mask = exact_keep_mask_with(texts, options.normalize, &options.keep, values)?;
    if options.against.is_empty() {
        return Ok(mask);
    }
    let against = open_against(options)?;
    let hashes = hash_many(texts, options.normalize);
    let mut found = Vec::new();
    for (m, h) in mask.iter_mut().zip(hashes) {
        if let (true, Some(h)) = (*m, h) {
            for index in &against {
                found.clear();
                index.find_exact(h, &mut found);
                if !found.is_empty() {
                    *m = false;
                }
            }
        }
    }
    Ok(mask)
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
