//! Decontamination: find the n-grams of evaluation items (an [`IndexKind::Ngram`] index) in
//! training documents, and drop those documents or cut the matching spans out.
//!
//! A document's words and n-grams are made exactly as the index's (near dedup's words; n from
//! the index). Every n-gram whose hash is in the index is looked up, so each reported match is
//! a window of the document whose n-gram hash equals an indexed one; the matched text is the
//! document's bytes from the window's first word to its last (punctuation inside included).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ngram_words, window_hashes, Index, IndexKind};
use crate::io::{expand_inputs, Batch, Doc, IoOptions, Output};
use crate::options::{OptionError, Options};
use crate::pipeline::{run_files, Decision, Progress, Stage};
use crate::{Error, Result, Stats};

/// What happens to a contaminated document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecontMode {
    /// Drop the whole document (datatrove's and dolma's practice).
    #[default]
    Drop,
    /// Remove the matching n-grams' spans (whole n-grams, on character boundaries); a document
    /// left with no text is dropped.
    Spans,
}

impl DecontMode {
    /// Every mode's name, as options spell it.
    pub const NAMES: &'static [&'static str] = &["drop", "spans"];
}

/// Options of `tamis decontaminate` (and `tamis.decontaminate`, the `decontaminate` stage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecontOptions {
    /// The n-gram indexes of the evaluation sets (`tamis index build --kind ngram`).
    pub against: Vec<PathBuf>,
    /// `drop` contaminated documents, or cut the matching `spans` out.
    pub mode: DecontMode,
    /// Write one JSON line per match here: document id, index, evaluation item id, byte span
    /// and matched text.
    pub matches: Option<PathBuf>,
    /// Memory for the indexes' query filters (bytes or text like `2G`; default 1G each).
    #[serde(with = "crate::options::size")]
    pub memory_limit: Option<u64>,
}

impl Default for DecontOptions {
    fn default() -> Self {
        DecontOptions {
            against: Vec::new(),
            mode: DecontMode::Drop,
            matches: None,
            memory_limit: None,
        }
    }
}

impl Options for DecontOptions {
    fn validate(&self) -> std::result::Result<(), OptionError> {
        if self.against.is_empty() {
            return Err(OptionError::new(
                "against",
                "must name at least one n-gram index (`tamis index build --kind ngram`)",
            ));
        }
        Ok(())
    }
}

/// `tamis decontaminate`: the documents of `inputs` without the evaluation sets' n-grams.
pub fn decontaminate(
    inputs: &[String],
    output: &Output,
    io: &IoOptions,
    options: &DecontOptions,
    progress: &dyn Progress,
) -> Result<Stats> {
    let started = std::time::Instant::now();
    options.validate()?;
    let opts = io.run_options(None)?;
    let files = expand_inputs(inputs)?;
    crate::pipeline::check_paths(&files, output, &opts)?;
    crate::dedup::near::check_side_path(
        options.matches.as_deref(),
        "matches file",
        &files,
        output,
        &opts,
    )?;
    let mut stage = DecontStage::open(options)?;
    let mut stats = run_files("decontaminate", files, output, &opts, &mut stage, progress)?;
    stage.close()?;
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// One indexed n-gram found in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    /// Which index.
    pub index: usize,
    /// The evaluation item (record ordinal in that index).
    pub record: u64,
    /// Byte span of the n-gram in the document.
    pub start: usize,
    /// See `start`.
    pub end: usize,
}

/// Buffers reused by every document a thread decontaminates (large documents would otherwise
/// allocate, and the kernel zero, fresh pages each time).
#[derive(Default)]
struct Scratch {
    words: Vec<(u64, usize, usize)>,
    hashes: Vec<u64>,
    candidates: Vec<usize>,
    found: Vec<u64>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The indexed n-grams of `text` in `indexes`, in text order (per index).
pub fn find_hits(indexes: &[Index], text: &str) -> Vec<Hit> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let Scratch {
            words,
            hashes,
            candidates,
            found,
        } = &mut *scratch;
        ngram_words(text, words);
        let mut hits = Vec::new();
        for (i, index) in indexes.iter().enumerate() {
            let n = index.ngram();
            window_hashes(words, n, hashes);
            candidates.clear();
            index.maybe_ngrams(hashes, candidates);
            for &j in candidates.iter() {
                found.clear();
                index.find_ngram_unfiltered(hashes[j], found);
                let (start, end) = (words[j].1, words[j + n - 1].2);
                hits.extend(found.iter().map(|&record| Hit {
                    index: i,
                    record,
                    start,
                    end,
                }));
            }
        }
        // Keep large buffers from pinning memory after a huge document.
        if words.capacity() > 1 << 20 {
            *scratch = Scratch::default();
        }
        hits
    })
}

/// Open the indexes of `options.against` for queries (n-gram kind, files checked), sharing
/// `options.memory_limit` among their filters.
pub fn open_indexes(options: &DecontOptions) -> Result<Vec<Index>> {
    options.validate()?;
    let per_index = options
        .memory_limit
        .map(|m| m / options.against.len().max(1) as u64);
    options
        .against
        .iter()
        .map(|p| Index::open_for(p, IndexKind::Ngram, per_index))
        .collect()
}

/// For in-memory columns: `true` for each text holding an n-gram of `indexes` (in parallel on
/// the current rayon pool); missing texts are not contaminated.
pub fn contaminated_mask(indexes: &[Index], texts: &[Option<&str>]) -> Vec<bool> {
    use rayon::prelude::*;
    texts
        .par_iter()
        .with_min_len(64)
        .map(|t| t.is_some_and(|t| !find_hits(indexes, t).is_empty()))
        .collect()
}

/// Maximal spans of overlapping or touching `(start, end)` spans, sorted.
fn merge_spans(mut spans: Vec<(usize, usize)>) -> Vec<(usize, usize, u64)> {
    spans.sort_unstable();
    let mut out: Vec<(usize, usize, u64)> = Vec::new();
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 => {
                last.1 = last.1.max(e);
                last.2 += 1;
            }
            _ => out.push((s, e, 1)),
        }
    }
    out
}

/// Per evaluation item, the maximal spans its n-grams cover: `(start, end, n-grams, index,
/// record)`, ordered by start, then index and record.
pub fn group_hits(hits: &[Hit]) -> Vec<Group> {
    let mut by_item: Vec<Hit> = hits.to_vec();
    by_item.sort_unstable_by_key(|h| (h.index, h.record, h.start, h.end));
    let mut out = Vec::new();
    let mut i = 0;
    while i < by_item.len() {
        let (index, record) = (by_item[i].index, by_item[i].record);
        let j = by_item[i..]
            .iter()
            .position(|h| (h.index, h.record) != (index, record))
            .map_or(by_item.len(), |k| i + k);
        let spans = by_item[i..j].iter().map(|h| (h.start, h.end)).collect();
        for (s, e, n) in merge_spans(spans) {
            out.push((s, e, n, index, record));
        }
        i = j;
    }
    out.sort_unstable_by_key(|m| (m.0, m.3, m.4, m.1));
    out
}

/// `text` without the spans of `hits` (whole n-grams), or `None` when nothing but white space
/// would be left.
pub fn cut_hits(text: &str, hits: &[Hit]) -> Option<String> {
    let spans = merge_spans(hits.iter().map(|h| (h.start, h.end)).collect());
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (s, e, _) in spans {
        out.push_str(&text[pos..s]);
        pos = e;
    }
    out.push_str(&text[pos..]);
    (!out.trim().is_empty()).then_some(out)
}

/// What decontamination does to one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextDecision {
    /// No indexed n-gram.
    Clean,
    /// Drop it (`drop` mode, or nothing left after cutting).
    Drop,
    /// Keep this text (`spans` mode).
    Cut(String),
}

/// The decision of `mode` for `text` with `hits` ([`find_hits`]).
pub fn decide_text(text: &str, hits: &[Hit], mode: DecontMode) -> TextDecision {
    if hits.is_empty() {
        return TextDecision::Clean;
    }
    match mode {
        DecontMode::Drop => TextDecision::Drop,
        DecontMode::Spans => cut_hits(text, hits).map_or(TextDecision::Drop, TextDecision::Cut),
    }
}

/// `--matches FILE`, written atomically after the output.
struct MatchWriter {
    file: BufWriter<File>,
    atomic: crate::io::AtomicFile,
    path: String,
}

impl MatchWriter {
    fn create(path: &Path) -> Result<Self> {
        let (atomic, file) = crate::io::AtomicFile::create(path)?;
        Ok(MatchWriter {
            file: BufWriter::new(file),
            atomic,
            path: path.display().to_string(),
        })
    }

    fn finish(self) -> Result<()> {
        let path = self.path;
        let file = self
            .file
            .into_inner()
            .map_err(|e| Error::io(path.clone(), e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(path.clone(), e))?;
        self.atomic.commit()
    }
}

/// The decontamination stage: hits are found in parallel, decisions and matches in order.
pub struct DecontStage {
    indexes: Vec<Index>,
    names: Vec<String>,
    mode: DecontMode,
    matches: Option<MatchWriter>,
    contaminated: u64,
    ngrams: u64,
    spans: u64,
    bytes_removed: u64,
    error: Option<Error>,
}

impl DecontStage {
    /// Open the indexes of `options` (checked: n-gram kind, files intact) and the matches file.
    pub fn open(options: &DecontOptions) -> Result<Self> {
        let indexes = open_indexes(options)?;
        let matches = match &options.matches {
            Some(p) => Some(MatchWriter::create(p)?),
            None => None,
        };
        Ok(DecontStage {
            names: options
                .against
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            indexes,
            mode: options.mode,
            matches,
            contaminated: 0,
            ngrams: 0,
            spans: 0,
            bytes_removed: 0,
            error: None,
        })
    }

    /// After the run: commit the matches file.
    pub fn close(&mut self) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if let Some(w) = self.matches.take() {
            w.finish()?;
        }
        Ok(())
    }

    fn write_matches(&mut self, doc: &Doc<'_>, groups: &[Group]) -> Result<()> {
        let Some(w) = self.matches.as_mut() else {
            return Ok(());
        };
        let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
        for &(start, end, ngrams, index, record) in groups {
            writeln!(
                w.file,
                r#"{{"id":{},"index":{},"item":{},"start":{start},"end":{end},"ngrams":{ngrams},"text":{}}}"#,
                json(&doc.id),
                json(&self.names[index]),
                json(&self.indexes[index].record_id(record)),
                json(&doc.text[start..end]),
            )
            .map_err(|e| Error::io(w.path.clone(), e))?;
        }
        Ok(())
    }
}

/// A maximal span of one evaluation item's n-grams in a document: `(start, end, n-grams,
/// index, record)` ([`group_hits`]).
type Group = (usize, usize, u64, usize, u64);

/// What the parallel step found in a document: its matches grouped per item, the number of
/// distinct matching n-grams, and the decision.
#[derive(Debug)]
pub struct Found {
    groups: Vec<Group>,
    ngrams: u64,
    decision: TextDecision,
}

impl Stage for DecontStage {
    type Prepared = Found;

    fn prepare(&self, doc: &Doc<'_>) -> Found {
        let hits = find_hits(&self.indexes, &doc.text);
        if hits.is_empty() {
            return Found {
                groups: Vec::new(),
                ngrams: 0,
                decision: TextDecision::Clean,
            };
        }
        let mut windows: Vec<(usize, usize, usize)> =
            hits.iter().map(|h| (h.index, h.start, h.end)).collect();
        windows.dedup();
        Found {
            // Grouping sorts every hit: only for the matches file.
            groups: if self.matches.is_some() {
                group_hits(&hits)
            } else {
                Vec::new()
            },
            ngrams: windows.len() as u64,
            decision: decide_text(&doc.text, &hits, self.mode),
        }
    }

    /// A matches file that cannot be written stops the run before its output is committed.
    fn decide_batch(
        &mut self,
        _batch: &Batch,
        docs: &[&Doc<'_>],
        prepared: Vec<Found>,
    ) -> Result<Vec<Decision>> {
        let mut out = Vec::with_capacity(docs.len());
        for (d, p) in docs.iter().zip(prepared) {
            out.push(self.decide(d, p));
            if let Some(e) = self.error.take() {
                return Err(e);
            }
        }
        Ok(out)
    }

    fn decide(&mut self, doc: &Doc<'_>, found: Found) -> Decision {
        if found.decision == TextDecision::Clean {
            return Decision::Keep;
        }
        self.contaminated += 1;
        self.ngrams += found.ngrams;
        self.spans += found.groups.len() as u64;
        if let Err(e) = self.write_matches(doc, &found.groups) {
            self.error = Some(e);
            return Decision::Keep;
        }
        match found.decision {
            TextDecision::Cut(t) => {
                self.bytes_removed += (doc.text.len() - t.len()) as u64;
                Decision::Rewrite(t)
            }
            TextDecision::Clean | TextDecision::Drop => {
                self.bytes_removed += doc.text.len() as u64;
                Decision::Remove("contaminated".into())
            }
        }
    }

    fn finish(&mut self, stats: &mut Stats) {
        stats.set_counter("contaminated_documents", self.contaminated);
        stats.set_counter("matched_ngrams", self.ngrams);
        if self.matches.is_some() || self.spans > 0 {
            stats.set_counter("matched_spans", self.spans);
        }
        stats.set_counter("contaminated_bytes_removed", self.bytes_removed);
    }
}
