//! Line dedup in two stages: [`LineSignatureWriter`] (stage 1, one task) and
//! [`LineKeepTable`] (stage 2, every task's files).

use std::borrow::Cow;

use rayon::prelude::*;

use super::format::{
    be_u128, check_task, check_tasks, decide_runs, low, parse_lines, recorded, same_len, show_mode,
    start_file, Arrivals, Layout, LineHeader, HASH, LINE_MAGIC, LINE_RECORD, LINE_VERSION,
};
use crate::dedup::{line_hashes, LinesOptions};
use crate::options::{check_range, Options};
use crate::pipeline::thread_pool;
use crate::text::{Hash128, Normalize};
use crate::{Error, Result};

/// Stage 1 of line dedup for one task: the hashes of the eligible lines, by source file.
#[derive(Debug)]
pub struct LineSignatureWriter {
    options: LinesOptions,
    threads: usize,
    arrivals: Arrivals,
    documents: Vec<u64>,
    lines: Vec<u64>,
    hashes: Vec<Hash128>,
}

/// Lines counted by a batch of [`LineSignatureWriter::add`] or [`LineKeepTable::dedup`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCounts {
    /// Lines read (a text of `k` newlines has `k + 1` lines).
    pub lines_read: u64,
    /// Lines eligible for removal.
    pub eligible_lines: u64,
    /// Lines removed (by [`LineKeepTable::dedup`]).
    pub lines_removed: u64,
}

impl LineSignatureWriter {
    /// A writer of line hashes with `options.normalize` and `options.min_line_chars`
    /// (`max_occurrences` is stage 2's), on `threads` threads (0: one per core).
    pub fn new(options: &LinesOptions, threads: usize) -> Result<Self> {
        options.validate()?;
        if !options.against.is_empty() {
            return Err(crate::options::OptionError::new(
                "against",
                "is for stage 2 of the two-stage line dedup (LineDedupFilter): the \
                 signatures only hash",
            )
            .into());
        }
        Ok(LineSignatureWriter {
            options: options.clone(),
            threads,
            arrivals: Arrivals::default(),
            documents: Vec::new(),
            lines: Vec::new(),
            hashes: Vec::new(),
        })
    }

    /// Add documents: `paths[i]` is the source file of `texts[i]`; the documents of a file
    /// must come together, in file order. Hashing runs in parallel.
    pub fn add(&mut self, paths: &[&str], texts: &[&str]) -> Result<LineCounts> {
        same_len(paths.len(), texts.len(), "texts")?;
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let f = self.arrivals.file(path)?;
            if f == self.documents.len() {
                self.documents.push(0);
                self.lines.push(0);
            }
            files.push(f);
        }
        let pool = thread_pool(self.threads)?;
        let options = &self.options;
        let per_text: Vec<Vec<Option<Hash128>>> = pool.install(|| {
            texts
                .par_iter()
                .with_min_len(64)
                .map(|t| line_hashes(t, options))
                .collect()
        });
        let mut counts = LineCounts::default();
        for (f, hashes) in files.into_iter().zip(per_text) {
            let before = self.hashes.len();
            counts.lines_read += hashes.len() as u64;
            self.hashes.extend(hashes.into_iter().flatten());
            let eligible = (self.hashes.len() - before) as u64;
            counts.eligible_lines += eligible;
            self.documents[f] += 1;
            self.lines[f] += eligible;
        }
        Ok(counts)
    }

    /// Documents added.
    pub fn documents(&self) -> u64 {
        self.documents.iter().sum()
    }

    /// Eligible lines hashed.
    pub fn eligible_lines(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// The signature file of task `rank` of `world_size` (also when it had no documents).
    pub fn to_bytes(&self, rank: usize, world_size: usize) -> Result<Vec<u8>> {
        check_task(rank, world_size)?;
        let header = LineHeader {
            rank,
            world_size,
            normalize: self.options.normalize,
            min_line_chars: self.options.min_line_chars,
            hash: HASH.into(),
            files: self.arrivals.names.clone(),
            documents: self.documents.clone(),
            lines: self.lines.clone(),
            records: self.eligible_lines(),
        };
        let mut out = start_file(LINE_MAGIC, LINE_VERSION, &header)?;
        out.reserve(self.hashes.len() * LINE_RECORD);
        for h in &self.hashes {
            out.extend_from_slice(&h.to_be_bytes());
        }
        Ok(out)
    }
}
/// What [`LineKeepTable::dedup`] did to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineEdits<'t> {
    /// Per document: `None` when it is dropped (nothing but white space left), the text itself
    /// (borrowed, byte for byte) when no line was removed, or the kept lines joined with `\n`.
    pub texts: Vec<Option<Cow<'t, str>>>,
    /// Lines read and removed.
    pub counts: LineCounts,
}

/// Stage 2 of line dedup: which eligible lines of the whole corpus to keep (the first
/// `max_occurrences` of each in the global order), from the signature files of every task of
/// stage 1; [`Self::dedup`] edits documents as stage 2 meets them.
#[derive(Debug)]
pub struct LineKeepTable {
    options: LinesOptions,
    threads: usize,
    layout: Layout,
    /// Per file (global order): its documents.
    documents: Vec<u64>,
    keep: Vec<bool>,
    check: Vec<u64>,
    distinct: u64,
    removed: u64,
    /// Per file: documents and eligible lines met so far by this task.
    seen: Vec<(u64, usize)>,
    /// Lines indexes of what was already seen ([`LineKeepTable::against`]).
    against: Vec<crate::index::Index>,
    /// For each document of the last [`LineKeepTable::dedup`] call (with `annotate`): the ids
    /// of the indexed records holding its lines that stay.
    dup_of: Vec<Option<Vec<String>>>,
}

impl LineKeepTable {
    /// Also remove every line found in a lines index of `options.against` (or with
    /// `options.annotate`, keep it and name the indexed records in
    /// [`LineKeepTable::dup_of`]), as `tamis dedup lines --against` does. The indexes must
    /// hash lines as the signatures do.
    pub fn against(&mut self, against: &[std::path::PathBuf], annotate: bool) -> Result<()> {
        let options = LinesOptions {
            against: against.to_vec(),
            annotate,
            ..self.options.clone()
        };
        options.validate()?;
        self.against = crate::dedup::lines::open_lines_against(&options)?;
        self.options = options;
        Ok(())
    }

    /// See [`LineKeepTable::against`].
    pub fn dup_of(&self) -> &[Option<Vec<String>>] {
        &self.dup_of
    }

    /// Load the signature files `(name, contents)` of every task of one stage-1 run, keeping
    /// `max_occurrences` (≥ 1) occurrences of each line. `normalize` and `min_line_chars`: the
    /// values stage 2 expects (`None`: those recorded). Errors as [`super::ExactKeepTable::load`].
    pub fn load<B: AsRef<[u8]>>(
        files: &[(String, B)],
        max_occurrences: u32,
        normalize: Option<Normalize>,
        min_line_chars: Option<usize>,
        threads: usize,
    ) -> Result<Self> {
        check_range("max_occurrences", max_occurrences, Some(1), None)?;
        let parsed = files
            .iter()
            .map(|(name, data)| Ok((name.as_str(), parse_lines(name, data.as_ref())?)))
            .collect::<Result<Vec<_>>>()?;
        let tasks: Vec<_> = parsed
            .iter()
            .map(|(n, (h, _))| (*n, h.rank, h.world_size))
            .collect();
        check_tasks(&tasks, "line signature")?;
        let modes: Vec<_> = parsed.iter().map(|(n, (h, _))| (*n, h.normalize)).collect();
        let mode = recorded(&modes, "normalize", normalize, show_mode)?;
        let chars: Vec<_> = parsed
            .iter()
            .map(|(n, (h, _))| (*n, h.min_line_chars))
            .collect();
        let min_chars = recorded(&chars, "min_line_chars", min_line_chars, |c| c.to_string())?;
        let per_task: Vec<_> = parsed
            .iter()
            .map(|(n, (h, _))| (*n, h.files.as_slice(), h.lines.as_slice()))
            .collect();
        let layout = Layout::new(&per_task)?;
        let mut documents = vec![0u64; layout.paths.len()];

        let total = layout.total;
        let mut check = vec![0u64; total];
        let mut sorted: Vec<(u64, u64, usize)> = Vec::with_capacity(total);
        for (_, (h, body)) in &parsed {
            let mut records = body.chunks_exact(LINE_RECORD);
            for (path, &docs) in h.files.iter().zip(&h.documents) {
                let g = layout.id(path)?;
                documents[g] = docs;
                let start = layout.starts[g];
                for (i, r) in records.by_ref().take(layout.records[g]).enumerate() {
                    let hash = be_u128(r);
                    check[start + i] = low(hash);
                    sorted.push(((hash >> 64) as u64, low(hash), start + i));
                }
            }
        }
        let pool = thread_pool(threads)?;
        pool.install(|| sorted.par_sort_unstable());
        let max = max_occurrences as usize;
        let (keep, distinct) = decide_runs(&sorted, total, |run, keep| {
            for &(_, _, pos) in run.iter().take(max) {
                keep[pos] = true;
            }
        });
        let kept = sorted.iter().filter(|t| keep[t.2]).count();
        drop(sorted);
        Ok(LineKeepTable {
            options: LinesOptions {
                max_occurrences,
                min_line_chars: min_chars,
                normalize: mode,
                ..LinesOptions::default()
            },
            threads,
            seen: vec![(0, 0); layout.paths.len()],
            against: Vec::new(),
            dup_of: Vec::new(),
            layout,
            documents,
            keep,
            check,
            distinct: distinct as u64,
            removed: (total - kept) as u64,
        })
    }

    /// Remove the lines not kept from each document: `paths[i]` is the source file of
    /// `texts[i]`. Documents are counted per file as they come, so a task must hand over every
    /// document it reads, in order. Lines are hashed again (in parallel) and checked against
    /// their stage-1 records.
    pub fn dedup<'t>(&mut self, paths: &[&str], texts: &[&'t str]) -> Result<LineEdits<'t>> {
        same_len(paths.len(), texts.len(), "texts")?;
        let ids = self.layout.ids_of(paths)?;
        let pool = thread_pool(self.threads)?;
        let options = &self.options;
        let per_text: Vec<Vec<Option<Hash128>>> = pool.install(|| {
            texts
                .par_iter()
                .with_min_len(64)
                .map(|t| line_hashes(t, options))
                .collect()
        });
        let mut counts = LineCounts::default();
        let mut out = Vec::with_capacity(texts.len());
        let mut keep_line = Vec::new();
        let annotate = self.options.annotate;
        self.dup_of.clear();
        let (mut found, mut hits) = (Vec::new(), Vec::new());
        for ((&f, hashes), &text) in ids.iter().zip(&per_text).zip(texts) {
            let path = &self.layout.paths[f];
            let (docs, lines) = self.seen[f];
            let eligible = hashes.iter().flatten().count();
            if docs >= self.documents[f] || lines + eligible > self.layout.records[f] {
                return Err(Error::Config(format!(
                    "{path}: document {docs} (counted from 0) seen in stage 2 is not one stage 1 \
                     hashed ({} documents, {} eligible lines there): both stages must read the \
                     same data with the same reader and upstream steps",
                    self.documents[f], self.layout.records[f]
                )));
            }
            self.seen[f] = (docs + 1, lines + eligible);
            let mut pos = self.layout.starts[f] + lines;
            keep_line.clear();
            let mut removed = 0u64;
            for h in hashes {
                let k = match h {
                    None => true,
                    Some(h) => {
                        if self.check[pos] != low(*h) {
                            return Err(Error::Config(format!(
                                "{path}: document {docs} (counted from 0) has a line stage 1 did \
                                 not hash there: both stages must read the same data with the \
                                 same reader and upstream steps"
                            )));
                        }
                        pos += 1;
                        let mut k = self.keep[pos - 1];
                        let mut indexed = false;
                        for (i, index) in self.against.iter().enumerate() {
                            found.clear();
                            index.find_exact(*h, &mut found);
                            indexed |= !found.is_empty();
                            if annotate && k {
                                hits.extend(found.iter().map(|&r| (i, r)));
                            }
                        }
                        if indexed && !annotate {
                            k = false;
                        }
                        k
                    }
                };
                removed += u64::from(!k);
                keep_line.push(k);
            }
            if !self.against.is_empty() {
                hits.sort_unstable();
                hits.dedup();
                let ids: Vec<String> = hits
                    .drain(..)
                    .map(|(i, r)| self.against[i].record_id(r))
                    .collect();
                self.dup_of.push((!ids.is_empty()).then_some(ids));
            }
            counts.lines_read += hashes.len() as u64;
            counts.eligible_lines += eligible as u64;
            counts.lines_removed += removed;
            out.push(if removed == 0 {
                Some(Cow::Borrowed(text))
            } else {
                join_kept(text, &keep_line).map(Cow::Owned)
            });
        }
        Ok(LineEdits { texts: out, counts })
    }

    /// Forget the documents met so far (a new task, or the same task again).
    pub fn reset(&mut self) {
        self.seen.iter_mut().for_each(|s| *s = (0, 0));
    }

    /// The options of the signatures, with this table's `max_occurrences`.
    pub fn options(&self) -> &LinesOptions {
        &self.options
    }

    /// Eligible lines in the signatures.
    pub fn eligible_lines(&self) -> u64 {
        self.layout.total as u64
    }

    /// Distinct eligible lines.
    pub fn distinct_lines(&self) -> u64 {
        self.distinct
    }

    /// Eligible lines that are removed.
    pub fn lines_to_remove(&self) -> u64 {
        self.removed
    }

    /// The source files, in the global order.
    pub fn files(&self) -> &[String] {
        &self.layout.paths
    }
}

/// The lines of `text` whose flag is set, joined with `\n`; `None` when only white space is
/// left (as [`crate::dedup::LineDedup`] decides).
fn join_kept(text: &str, keep: &[bool]) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut first = true;
    for (line, &k) in text.split('\n').zip(keep) {
        if k {
            if !first {
                out.push('\n');
            }
            out.push_str(line);
            first = false;
        }
    }
    (!out.trim().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::signatures::{file_name, read_line_header, LINE_SUFFIX};
    use crate::dedup::LineDedup;
    use std::collections::HashMap;

    fn lines_options(max: u32, chars: usize, normalize: Normalize) -> LinesOptions {
        LinesOptions {
            max_occurrences: max,
            min_line_chars: chars,
            normalize,
            ..LinesOptions::default()
        }
    }

    fn line_corpus() -> Vec<(&'static str, Vec<&'static str>)> {
        vec![
            ("d/a-b.jsonl", vec!["one\ntwo\n\nthree", "two\n two \nfour"]),
            ("d/a.jsonl", vec!["one\nfive", "  \n\t", "one"]),
            ("d/part/x.jsonl", vec!["five\r\nsix", "four\nfour\nseven"]),
            ("d/part.jsonl", vec!["six\nseven", "x\ntwo"]),
        ]
    }

    fn line_files(options: &LinesOptions, tasks: usize) -> Vec<(String, Vec<u8>)> {
        let mut by_string = line_corpus();
        by_string.sort_by_key(|(p, _)| *p);
        (0..tasks)
            .map(|rank| {
                let mut w = LineSignatureWriter::new(options, 2).unwrap();
                for (path, texts) in by_string.iter().skip(rank).step_by(tasks) {
                    w.add(&vec![*path; texts.len()], texts).unwrap();
                }
                (
                    file_name(rank, LINE_SUFFIX),
                    w.to_bytes(rank, tasks).unwrap(),
                )
            })
            .collect()
    }

    /// What the one-process stage decides: (new text or None, lines read, removed, distinct).
    fn reference_lines(options: &LinesOptions) -> (Vec<Option<String>>, crate::Stats) {
        use crate::io::{Doc, DocSource};
        use crate::pipeline::{Decision, Stage};
        let mut stage = LineDedup::new(options).unwrap();
        let mut out = Vec::new();
        for (_, texts) in line_corpus() {
            for t in texts {
                let doc = Doc {
                    id: Cow::Borrowed("id"),
                    id_generated: false,
                    text: Cow::Borrowed(t),
                    key: None,
                    location: crate::Location::Line(1),
                    source: DocSource::Row(0),
                };
                let prepared = stage.prepare(&doc);
                out.push(match stage.decide(&doc, prepared) {
                    Decision::Keep => Some(t.to_string()),
                    Decision::Rewrite(s) => Some(s),
                    _ => None,
                });
            }
        }
        let mut stats = crate::Stats::default();
        stage.finish(&mut stats);
        (out, stats)
    }

    #[test]
    fn lines_keep_what_one_process_keeps_for_any_number_of_tasks() {
        for options in [
            lines_options(1, 0, Normalize::None),
            lines_options(1, 4, Normalize::Whitespace),
            lines_options(2, 0, Normalize::Simple),
        ] {
            let (expected, stats) = reference_lines(&options);
            for tasks in [1, 2, 3, 5] {
                let files = line_files(&options, tasks);
                let mut t =
                    LineKeepTable::load(&files, options.max_occurrences, None, None, 2).unwrap();
                let mut got = HashMap::new();
                let mut counts = LineCounts::default();
                for (path, texts) in line_corpus().into_iter().rev() {
                    let edits = t.dedup(&vec![path; texts.len()], &texts).unwrap();
                    for (text, new) in texts.iter().zip(&edits.texts) {
                        if let Some(Cow::Borrowed(b)) = new {
                            assert!(std::ptr::eq(*b, *text)); // unchanged: the input itself
                        }
                    }
                    counts.lines_read += edits.counts.lines_read;
                    counts.lines_removed += edits.counts.lines_removed;
                    got.insert(
                        path,
                        edits.texts.into_iter().map(|t| t.map(Cow::into_owned)),
                    );
                }
                let got: Vec<Option<String>> = line_corpus()
                    .iter()
                    .flat_map(|(p, _)| got.remove(p).unwrap())
                    .collect();
                assert_eq!(got, expected, "{options:?} {tasks}");
                assert_eq!(counts.lines_read, stats.counters["lines_read"]);
                assert_eq!(counts.lines_removed, stats.counters["lines_removed"]);
                assert_eq!(t.lines_to_remove(), stats.counters["lines_removed"]);
                assert_eq!(t.distinct_lines(), stats.counters["distinct_lines"]);
            }
        }
    }

    #[test]
    fn line_tables_check_their_inputs() {
        let options = lines_options(1, 4, Normalize::Whitespace);
        let files = line_files(&options, 2);
        let e = LineKeepTable::load(&files, 0, None, None, 1).unwrap_err();
        assert!(matches!(e, Error::Options(_)));
        assert_eq!(e.to_string(), "max_occurrences must be at least 1, got 0");
        let e = LineKeepTable::load(&files, 1, None, Some(0), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_line_chars=4, not min_line_chars=0"), "{e}");
        let e = LineKeepTable::load(&files, 1, Some(Normalize::None), None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("normalize=whitespace"), "{e}");
        let e = LineKeepTable::load(&files[..1], 1, None, None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing [1]"), "{e}");
        let h = read_line_header("x", &files[0].1).unwrap();
        assert_eq!((h.rank, h.world_size, h.min_line_chars), (0, 2, 4));

        let mut t = LineKeepTable::load(&files, 1, None, Some(4), 1).unwrap();
        let e = t
            .dedup(&["d/a.jsonl"], &["one\nfive\nnew line"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not one stage 1 hashed"), "{e}");
        t.reset();
        let e = t
            .dedup(&["d/a.jsonl"], &["one\nfivé"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("has a line stage 1 did not hash there"), "{e}");
        let e = t.dedup(&["zzz"], &["one"]).unwrap_err().to_string();
        assert!(e.contains("zzz is not in the signatures"), "{e}");
    }
}
