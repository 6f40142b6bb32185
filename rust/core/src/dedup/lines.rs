//! CCNet-style line deduplication across a corpus.
//!
//! Documents are split on `\n`. A line is *eligible* when its normalized form is not empty and
//! the raw line has at least `min_line_chars` characters (Unicode scalar values); other lines are
//! always kept. Walking the corpus in input order, the first `max_occurrences` occurrences of each
//! eligible line (by 128-bit hash of its normalized form) are kept and every later one is removed,
//! together with its newline. Kept lines are joined with `\n`, so a document without removals is
//! unchanged byte for byte. A document left with only white space is dropped
//! (`empty_after_line_dedup`).
//!
//! With `against` (lines indexes of an older corpus, `tamis index build --kind lines`), a line
//! found in an index is removed wherever it occurs, as if the indexed corpus came first and had
//! used up its occurrences (`indexed_lines_removed`); with `annotate` such lines are kept and
//! the document gets `dup_of`, the ids of the indexed records holding them.

use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::HashMap128;
use crate::index::{Index, IndexKind};
use crate::io::{Doc, FieldEdit, FieldValue, IoOptions, Output};
use crate::options::{check_range, OptionError, Options};
use crate::pipeline::{run, Decision, Progress, Stage};
use crate::text::{hash_bytes, normalize, Hash128, Normalize};
use crate::{Result, Stats};

/// Options of line dedup (`tamis dedup lines`, `tamis.dedup.lines`, the `dedup_lines` stage and
/// the datatrove steps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinesOptions {
    /// Occurrences of a line kept across the corpus (≥ 1).
    pub max_occurrences: u32,
    /// Lines with fewer characters (Unicode scalar values) are never removed.
    pub min_line_chars: usize,
    /// Normalization applied to each line before hashing.
    pub normalize: Normalize,
    /// Lines indexes of what was already seen (`tamis index build --kind lines`, built with the
    /// same `normalize` and `min_line_chars`): a line found in one is removed wherever it
    /// occurs (`indexed_lines_removed`), as if the indexed corpus came first.
    pub against: Vec<PathBuf>,
    /// With `against`: keep the lines found in an index and add `dup_of` to their documents
    /// (the ids of the indexed records holding them) instead of removing them.
    pub annotate: bool,
}

impl Default for LinesOptions {
    fn default() -> Self {
        LinesOptions {
            max_occurrences: 1,
            min_line_chars: 0,
            normalize: Normalize::None,
            against: Vec::new(),
            annotate: false,
        }
    }
}

impl Options for LinesOptions {
    fn validate(&self) -> std::result::Result<(), OptionError> {
        check_range("max_occurrences", self.max_occurrences, Some(1), None)?;
        if self.annotate && self.against.is_empty() {
            return Err(OptionError::with_fields(
                &["annotate", "against"],
                "{0} needs {1} (an index to find duplicates in)",
            ));
        }
        Ok(())
    }
}

/// Open the lines indexes of `options.against`, checking that they hash lines as this run does.
pub fn open_lines_against(options: &LinesOptions) -> Result<Vec<Index>> {
    options
        .against
        .iter()
        .map(|p| {
            let index = Index::open_for(p, IndexKind::Lines, None)?;
            index.require_lines(options)?;
            Ok(index)
        })
        .collect()
}

/// `tamis dedup lines`: remove repeated lines of `inputs`, writing `output`.
pub fn lines_dedup(
    inputs: &[String],
    output: &Output,
    io: &IoOptions,
    options: &LinesOptions,
    progress: &dyn Progress,
) -> Result<Stats> {
    let opts = io.run_options(None)?;
    let mut stage = LineDedup::new(options)?;
    run("dedup lines", inputs, output, &opts, &mut stage, progress)
}

/// Per line of `text` (split on `\n`): the 128-bit hash of its normalized form when the line is
/// eligible for removal, `None` for a line that is always kept. The one definition of
/// eligibility, shared by [`LineDedup`] and the batched binding used by datatrove.
pub fn line_hashes(text: &str, config: &LinesOptions) -> Vec<Option<Hash128>> {
    text.split('\n')
        .map(|line| {
            let norm = normalize(line, config.normalize);
            let eligible = !norm.trim().is_empty()
                && (config.min_line_chars == 0 || line.chars().count() >= config.min_line_chars);
            eligible.then(|| hash_bytes(norm.as_bytes()))
        })
        .collect()
}

/// [`line_hashes`] of many texts in parallel (on the current rayon pool), flattened: every line
/// of every text in order; a text of `k` newlines has `k + 1` lines.
pub fn line_hashes_many(texts: &[&str], config: &LinesOptions) -> Vec<Option<Hash128>> {
    let per_text: Vec<Vec<Option<Hash128>>> = texts
        .par_iter()
        .with_min_len(64)
        .map(|t| line_hashes(t, config))
        .collect();
    per_text.into_iter().flatten().collect()
}

/// Line dedup as a pipeline [`Stage`].
#[derive(Debug)]
pub struct LineDedup {
    config: LinesOptions,
    counts: HashMap128<u32>,
    lines_read: u64,
    lines_removed: u64,
    against: Vec<Index>,
    indexed_lines: u64,
    dup_of: Arc<str>,
}

impl LineDedup {
    /// A fresh line deduplicator; the options are checked and the indexes of
    /// [`LinesOptions::against`] opened.
    pub fn new(config: &LinesOptions) -> Result<Self> {
        config.validate()?;
        Ok(LineDedup {
            config: config.clone(),
            counts: HashMap128::default(),
            lines_read: 0,
            lines_removed: 0,
            against: open_lines_against(config)?,
            indexed_lines: 0,
            dup_of: Arc::from(super::DUP_OF_FIELD),
        })
    }
}

/// A document's lines as [`LineDedup`] prepares them (in parallel).
#[derive(Debug, Default)]
pub struct PreparedLines {
    /// Per line: the hash of an eligible line, `None` for a line that is always kept.
    hashes: Vec<Option<Hash128>>,
    /// Per line, whether an index of `against` holds it (empty without `against`).
    indexed: Vec<bool>,
    /// With `annotate`: per indexed line, (line, index number, record ordinal).
    found: Vec<(usize, usize, u64)>,
}

impl Stage for LineDedup {
    type Prepared = PreparedLines;

    fn prepare(&self, doc: &Doc<'_>) -> Self::Prepared {
        let hashes = line_hashes(&doc.text, &self.config);
        let mut p = PreparedLines::default();
        if !self.against.is_empty() {
            let mut out = Vec::new();
            p.indexed = hashes
                .iter()
                .enumerate()
                .map(|(j, h)| {
                    let Some(h) = h else { return false };
                    let mut hit = false;
                    for (i, index) in self.against.iter().enumerate() {
                        out.clear();
                        index.find_exact(*h, &mut out);
                        hit |= !out.is_empty();
                        if self.config.annotate {
                            p.found.extend(out.iter().map(|&r| (j, i, r)));
                        }
                    }
                    hit
                })
                .collect();
        }
        p.hashes = hashes;
        p
    }

    fn decide(&mut self, doc: &Doc<'_>, prepared: Self::Prepared) -> Decision {
        let PreparedLines {
            hashes,
            indexed,
            found,
        } = prepared;
        self.lines_read += hashes.len() as u64;
        let mut keep = Vec::with_capacity(hashes.len());
        let mut removed = 0u64;
        let remove_indexed = !self.config.annotate;
        for (j, h) in hashes.into_iter().enumerate() {
            if indexed.get(j) == Some(&true) {
                self.indexed_lines += 1;
                if remove_indexed {
                    removed += 1;
                    keep.push(false);
                    continue;
                }
            }
            let k = match h {
                None => true,
                Some(h) => {
                    let count = self.counts.entry(h).or_insert(0);
                    if *count >= self.config.max_occurrences {
                        false
                    } else {
                        *count += 1;
                        true
                    }
                }
            };
            removed += u64::from(!k);
            keep.push(k);
        }
        let mut fields = Vec::new();
        // The indexed records holding the lines that stay (a line removed as a repeat within
        // the input is not in the output to be annotated).
        let mut found: Vec<(usize, u64)> = found
            .into_iter()
            .filter(|&(j, _, _)| keep[j])
            .map(|(_, i, r)| (i, r))
            .collect();
        if !found.is_empty() {
            found.sort_unstable();
            found.dedup();
            let ids = found
                .iter()
                .map(|&(i, r)| self.against[i].record_id(r))
                .collect();
            fields.push(FieldEdit::set(self.dup_of.clone(), FieldValue::Strs(ids)));
        }
        if removed == 0 {
            if fields.is_empty() {
                return Decision::Keep;
            }
            return Decision::Edit { text: None, fields };
        }
        self.lines_removed += removed;
        let mut out = String::with_capacity(doc.text.len());
        let mut first = true;
        for (line, k) in doc.text.split('\n').zip(keep) {
            if k {
                if !first {
                    out.push('\n');
                }
                out.push_str(line);
                first = false;
            }
        }
        if out.trim().is_empty() {
            Decision::Remove("empty_after_line_dedup".into())
        } else if fields.is_empty() {
            Decision::Rewrite(out)
        } else {
            Decision::Edit {
                text: Some(out),
                fields,
            }
        }
    }

    fn finish(&mut self, stats: &mut Stats) {
        stats.set_counter("lines_read", self.lines_read);
        stats.set_counter("lines_removed", self.lines_removed);
        stats.set_counter("distinct_lines", self.counts.len() as u64);
        if !self.against.is_empty() {
            let name = if self.config.annotate {
                "indexed_lines_found"
            } else {
                "indexed_lines_removed"
            };
            stats.set_counter(name, self.indexed_lines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligible_lines_are_hashed_others_not() {
        let config = LinesOptions {
            max_occurrences: 1,
            min_line_chars: 4,
            normalize: Normalize::Whitespace,
            ..LinesOptions::default()
        };
        let hashes = line_hashes("a long line\n\n  \nabc\n a  long line ", &config);
        assert_eq!(hashes.len(), 5);
        assert!(hashes[0].is_some());
        assert_eq!(hashes[1..4], [None, None, None]); // blank, white space, too short
        assert_eq!(hashes[4], hashes[0]); // equal under white-space normalization
        let many = line_hashes_many(&["x\ny", "a long line"], &config);
        assert_eq!(many, [None, None, hashes[0]]);
    }
}
