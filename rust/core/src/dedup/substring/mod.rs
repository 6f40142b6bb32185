//! Exact-substring deduplication (Lee et al. 2021, "Deduplicating Training Data Makes Language
//! Models Better") with suffix arrays, beyond RAM.
//!
//! A *window* is `min_length` consecutive bytes of one document's UTF-8 text. With
//! `keep = first` a window is removed when the same bytes occur as an earlier window (an earlier
//! document, or earlier in the same document); with `keep = none` every window whose bytes
//! occur twice or more is removed, the first included, as Lee et al. do. In each document the
//! removed windows make maximal intervals (touching ones join), each shrunk to character
//! boundaries, and the text is cut there. A document left empty (or with fewer than
//! `min_doc_chars` characters) is dropped.
//!
//! Pass 1 copies every document's text, each followed by a `0xFF` byte, to a spill file; the
//! suffix arrays of its parts ([`sa`]) find every repeated window; pass 2 reads the inputs again
//! and cuts. Memory: the text (memory-mapped: page cache), one bit per text byte for the
//! removed windows, 8 bytes per document, and while a part's suffix array is built 4 bytes per
//! byte of the part (5 with its text), parts being sized to `memory_limit`. Disk: the text,
//! and with more than one part 4 bytes per window start.

mod sa;
pub mod stages;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::io::{expand_inputs, Batch, Doc, FieldEdit, FieldValue, InputFile, IoOptions, Output};
use crate::options::{check_range, OptionError, Options};
use crate::pipeline::{run_files, scan, thread_pool, Decision, Progress, RunOptions, Stage};
use crate::{Error, RecordError, Result, Stats};
use tokenizers::Tokenizer;

use sa::{spill_file, Bitmap, Mark, SEPARATOR};

/// Largest accepted `min_length`.
pub const MAX_MIN_LENGTH: usize = 1 << 20;

/// Which copies of a repeated span are removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepCopies {
    /// Keep the first occurrence in input order, remove the later ones.
    #[default]
    First,
    /// Remove every occurrence (Lee et al.).
    None,
}

impl KeepCopies {
    /// The names the options accept.
    pub const NAMES: [&'static str; 2] = ["first", "none"];
}

/// What `min_length` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// UTF-8 bytes of the text.
    #[default]
    Bytes,
    /// Tokens of `tokenizer` (Lee et al.: 50 GPT-2 tokens).
    Tokens,
}

impl Unit {
    /// The names the options accept.
    pub const NAMES: [&'static str; 2] = ["bytes", "tokens"];
}

/// Options of exact-substring dedup (`tamis dedup substring`, `tamis.dedup.substring`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubstringOptions {
    /// Shortest repeated span removed, in `unit`s (Lee et al.: 50 GPT-2 tokens, about 100
    /// bytes).
    pub min_length: usize,
    /// What `min_length` counts: bytes, or tokens of `tokenizer`.
    pub unit: Unit,
    /// The `tokenizer.json` whose tokens `unit = "tokens"` counts.
    pub tokenizer: Option<PathBuf>,
    /// Which copies of a repeated span are removed.
    pub keep: KeepCopies,
    /// Documents with removals left with fewer characters than this are dropped.
    pub min_doc_chars: usize,
    /// Keep every document and add `substring_spans` and `substring_bytes` instead of cutting.
    pub annotate: bool,
    /// Write one JSON line per removed span here.
    pub spans: Option<PathBuf>,
    /// Bound on the memory for suffix arrays and the removal map (bytes, or text like `8G`);
    /// the text is cut into parts that fit.
    #[serde(with = "crate::options::size")]
    pub memory_limit: Option<u64>,
    /// Where the text copy and the parts' suffix arrays go (default: the system temporary
    /// directory).
    pub spill_dir: Option<PathBuf>,
}

impl Default for SubstringOptions {
    fn default() -> Self {
        SubstringOptions {
            min_length: 100,
            unit: Unit::Bytes,
            tokenizer: None,
            keep: KeepCopies::First,
            min_doc_chars: 0,
            annotate: false,
            spans: None,
            memory_limit: None,
            spill_dir: None,
        }
    }
}

impl Options for SubstringOptions {
    fn validate(&self) -> std::result::Result<(), OptionError> {
        check_range("min_length", self.min_length, Some(1), Some(MAX_MIN_LENGTH))?;
        match (self.unit, &self.tokenizer) {
            (Unit::Tokens, None) => Err(OptionError::with_fields(
                &["unit", "tokenizer"],
                "{0} tokens needs {1} (a tokenizer.json)",
            )),
            (Unit::Bytes, Some(_)) => Err(OptionError::with_fields(
                &["tokenizer", "unit"],
                "{0} is only used with {1} tokens",
            )),
            _ => Ok(()),
        }
    }
}

/// Names of the fields `annotate` adds.
pub const SPANS_FIELD: &str = "substring_spans";
/// See [`SPANS_FIELD`].
pub const BYTES_FIELD: &str = "substring_bytes";

/// Parts larger than this would overflow libsais' 32-bit suffix arrays.
const MAX_PART: u64 = i32::MAX as u64 - 1;
/// Refuse limits that would cut the corpus into more parts than this.
const MAX_PARTS: usize = 65_536;

/// Bytes per token in the text of `unit = "tokens"`: base-255 digits, never the separator.
const TOKEN_WIDTH: usize = 3;
/// Token ids that fit [`TOKEN_WIDTH`] digits.
const MAX_TOKEN_ID: u32 = 255 * 255 * 255 - 1;

/// With `unit = "tokens"`: where each token lies in its document, and each document's hash.
struct Tokens {
    /// (start, end) byte offsets of every token in its document, little-endian `u32` pairs, in
    /// corpus order (`None` when there is none).
    offsets: Option<Mmap>,
    /// xxh3 of each document's text, which pass 2 checks.
    hashes: Vec<u64>,
}

/// The corpus text (pass 1), memory-mapped, and where each document starts. With tokens, the
/// text holds each token as [`TOKEN_WIDTH`] bytes.
struct Corpus {
    /// `None` when there is no text (an empty file cannot be mapped).
    map: Option<Mmap>,
    /// Start of each document in `text`, then the text length.
    starts: Vec<u64>,
    tokens: Option<Tokens>,
}

impl Corpus {
    /// Bytes of the text per unit.
    fn step(&self) -> usize {
        if self.tokens.is_some() {
            TOKEN_WIDTH
        } else {
            1
        }
    }

    /// The byte span in document `d` of its token `t` (with tokens).
    fn token_span(&self, d: usize, t: u64) -> (u64, u64) {
        let Some(Tokens {
            offsets: Some(map), ..
        }) = &self.tokens
        else {
            return (0, 0);
        };
        let first = (self.starts[d] - d as u64) / TOKEN_WIDTH as u64;
        let at = 8 * (first + t) as usize;
        let word = |i: usize| {
            u64::from(u32::from_le_bytes([
                map[i],
                map[i + 1],
                map[i + 2],
                map[i + 3],
            ]))
        };
        (word(at), word(at + 4))
    }

    /// The byte offset in document `d`'s text of text position `offset` of it (a unit start).
    fn byte_offset(&self, d: usize, offset: u64) -> u64 {
        if self.tokens.is_some() {
            self.token_span(d, offset / TOKEN_WIDTH as u64).0
        } else {
            offset
        }
    }

    fn text(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    fn docs(&self) -> usize {
        self.starts.len() - 1
    }

    /// The document holding text position `pos`, and the offset in it.
    fn locate(&self, pos: u64) -> (usize, u64) {
        let d = self.starts.partition_point(|&s| s <= pos) - 1;
        (d, pos - self.starts[d])
    }

    /// A document's bytes (without its separator).
    fn doc(&self, d: usize) -> &[u8] {
        &self.text()[self.starts[d] as usize..self.starts[d + 1] as usize - 1]
    }
}

/// What pass 1 keeps of a document: its text (or tokens), and with tokens their offsets and
/// the text's hash.
struct Collected {
    text: Vec<u8>,
    offsets: Vec<u8>,
    hash: u64,
}

/// The tokens of `text` as [`TOKEN_WIDTH`]-byte symbols, their byte offsets, and its hash.
fn tokenized(tokenizer: &Tokenizer, text: &str) -> std::result::Result<Collected, RecordError> {
    let bad = |m: String| RecordError::CorruptFile(format!("cannot tokenize the text: {m}"));
    if text.len() > u32::MAX as usize {
        return Err(bad("a text of 4 GiB or more".into()));
    }
    let enc = tokenizer
        .encode(text, false)
        .map_err(|e| bad(e.to_string()))?;
    let mut symbols = Vec::with_capacity(TOKEN_WIDTH * enc.get_ids().len());
    let mut offsets = Vec::with_capacity(8 * enc.get_ids().len());
    for (&id, &(a, b)) in enc.get_ids().iter().zip(enc.get_offsets()) {
        if id > MAX_TOKEN_ID {
            return Err(bad(format!("token id {id} is past {MAX_TOKEN_ID}")));
        }
        symbols.extend_from_slice(&[
            (id / 65_025) as u8,
            (id / 255 % 255) as u8,
            (id % 255) as u8,
        ]);
        offsets.extend_from_slice(&(a as u32).to_le_bytes());
        offsets.extend_from_slice(&(b as u32).to_le_bytes());
    }
    Ok(Collected {
        text: symbols,
        offsets,
        hash: xxhash_rust::xxh3::xxh3_64(text.as_bytes()),
    })
}

/// Pass 1: every valid document's text (or tokens) and a separator, to `dir/text`.
fn collect(
    files: &[InputFile],
    opts: &RunOptions,
    options: &SubstringOptions,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Corpus> {
    let tokenizer = match (&options.unit, &options.tokenizer) {
        (Unit::Tokens, Some(p)) => Some(crate::prox::prompt::load_tokenizer(p)?),
        _ => None,
    };
    let path = dir.join("text");
    let err = |e: std::io::Error| Error::io(path.display().to_string(), e);
    let mut w = BufWriter::with_capacity(1 << 20, spill_file(&path).map_err(err)?);
    let offsets_path = dir.join("offsets");
    let mut offsets_out = match &tokenizer {
        Some(_) => Some(BufWriter::with_capacity(
            1 << 20,
            spill_file(&offsets_path)
                .map_err(|e| Error::io(offsets_path.display().to_string(), e))?,
        )),
        None => None,
    };
    let mut hashes = Vec::new();
    let mut starts = vec![0u64];
    let mut at = 0u64;
    let mut io_error: Option<std::io::Error> = None;
    scan(
        files,
        opts,
        &mut Stats::default(),
        progress,
        |_, doc: &Doc<'_>| -> std::result::Result<Collected, RecordError> {
            match &tokenizer {
                Some(t) => tokenized(t, &doc.text),
                None => Ok(Collected {
                    text: doc.text.as_bytes().to_vec(),
                    offsets: Vec::new(),
                    hash: 0,
                }),
            }
        },
        |s| {
            let c = s.value;
            if io_error.is_none() {
                let written = w
                    .write_all(&c.text)
                    .and_then(|_| w.write_all(&[SEPARATOR]))
                    .and_then(|_| match offsets_out.as_mut() {
                        Some(o) => o.write_all(&c.offsets),
                        None => Ok(()),
                    });
                if let Err(e) = written {
                    io_error = Some(e);
                }
            }
            at += c.text.len() as u64 + 1;
            starts.push(at);
            if tokenizer.is_some() {
                hashes.push(c.hash);
            }
            Ok(())
        },
    )?;
    if let Some(e) = io_error {
        return Err(err(e));
    }
    let file = w.into_inner().map_err(|e| err(e.into_error()))?;
    // SAFETY (both maps): the files are ours (a private temporary directory) and are not
    // changed while mapped.
    let map = if at == 0 {
        None
    } else {
        let map = unsafe { Mmap::map(&file) }.map_err(err)?;
        if options.memory_limit.is_none() {
            Some(huge_page_copy(&map).map_err(err)?)
        } else {
            Some(map)
        }
    };
    let tokens = match offsets_out {
        None => None,
        Some(o) => {
            let oerr = |e: std::io::Error| Error::io(offsets_path.display().to_string(), e);
            let f = o.into_inner().map_err(|e| oerr(e.into_error()))?;
            let len = f.metadata().map_err(oerr)?.len();
            let offsets = if len == 0 {
                None
            } else {
                Some(unsafe { Mmap::map(&f) }.map_err(oerr)?)
            };
            Some(Tokens { offsets, hashes })
        }
    };
    Ok(Corpus {
        map,
        starts,
        tokens,
    })
}

/// A copy of `data` in anonymous memory backed by huge pages where the system allows it (see
/// [`sa::advise_huge_pages`]): the suffix sorting and the merge read the text at random, and a
/// file's pages are 4 KiB. Memory mode only: the copy is as large as the text.
fn huge_page_copy(data: &[u8]) -> std::io::Result<Mmap> {
    let mut copy = memmap2::MmapOptions::new().len(data.len()).map_anon()?;
    sa::advise_huge_pages(copy.as_ptr(), copy.len());
    copy.copy_from_slice(data);
    copy.make_read_only()
}

/// `tamis dedup substring`: remove repeated spans of `inputs`, writing `output`.
pub fn substring_dedup(
    inputs: &[String],
    output: &Output,
    io: &IoOptions,
    options: &SubstringOptions,
    progress: &dyn Progress,
) -> Result<Stats> {
    let started = std::time::Instant::now();
    options.validate()?;
    let opts = io.run_options(None)?;
    let files = expand_inputs(inputs)?;
    crate::pipeline::check_paths(&files, output, &opts)?;
    crate::dedup::near::check_side_path(
        options.spans.as_deref(),
        "spans file",
        &files,
        output,
        &opts,
    )?;
    let plan = SubstringPlan::build(&files, &opts, options, progress)?;
    let mut stage = plan.stage()?;
    let mut stats = run_files(
        "dedup substring",
        files,
        output,
        &opts,
        &mut stage,
        progress,
    )?;
    stage.close()?;
    stats.set_counter("substring_parts", plan.parts as u64);
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Passes 1 and the suffix arrays: every removed window of the corpus, ready for the pass that
/// cuts ([`SubstringPlan::stage`]) over the same files in the same order.
pub struct SubstringPlan {
    corpus: Corpus,
    removed: Bitmap,
    /// Text position of each span's leading window → where that window first occurs (with
    /// `spans` only).
    firsts: HashMap<u64, u64>,
    options: SubstringOptions,
    before: Vec<(u64, Option<std::time::SystemTime>)>,
    files: Vec<InputFile>,
    /// Suffix-array parts used.
    pub parts: usize,
    // Last: the spill directory outlives the maps of its files.
    _dir: tempfile::TempDir,
}

impl SubstringPlan {
    /// Read `files` (bad records are passed over: the cutting pass reports them), build the
    /// suffix arrays and find the removed windows.
    pub fn build(
        files: &[InputFile],
        opts: &RunOptions,
        options: &SubstringOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        options.validate()?;
        crate::io::require_rereadable(files, "dedup substring")?;
        let pool = thread_pool(opts.threads)?;
        let dir = spill_dir(options)?;
        let before = crate::dedup::near::fingerprints(files);
        let scan_opts = RunOptions {
            rejects: None,
            ..opts.clone()
        };
        let corpus = collect(files, &scan_opts, options, dir.path(), progress)?;
        let len = options.min_length;
        let (removed, parts, count) = find_removed(&corpus, options, &pool, dir.path())?;
        let firsts: HashMap<u64, u64> = if options.spans.is_some() {
            let queries: Vec<u64> = (0..corpus.docs())
                .flat_map(|d| {
                    raw_intervals(&corpus, &removed, d, len)
                        .into_iter()
                        .map(|(_, _, q)| q)
                })
                .collect();
            let width = len * corpus.step();
            let found =
                pool.install(|| sa::first_occurrences(corpus.text(), &parts, width, &queries));
            queries.into_iter().zip(found).collect()
        } else {
            HashMap::new()
        };
        drop(parts);
        Ok(SubstringPlan {
            corpus,
            removed,
            firsts,
            options: options.clone(),
            before,
            files: files.to_vec(),
            parts: count,
            _dir: dir,
        })
    }

    /// The stage that cuts, for a run over the same files in the same order; call
    /// [`SubstringStage::close`] after the run.
    pub fn stage(&self) -> Result<SubstringStage<'_>> {
        crate::dedup::near::check_unchanged(&self.files, &self.before)?;
        let spans = match &self.options.spans {
            Some(p) => Some(SpansWriter::create(p)?),
            None => None,
        };
        let referenced: HashSet<usize> = self
            .firsts
            .values()
            .map(|&g| self.corpus.locate(g).0)
            .collect();
        Ok(SubstringStage {
            plan: self,
            ordinal: 0,
            referenced,
            ids: HashMap::new(),
            spans,
            field_spans: Arc::from(SPANS_FIELD),
            field_bytes: Arc::from(BYTES_FIELD),
            spans_count: 0,
            bytes_removed: 0,
            changed: 0,
            error: None,
        })
    }
}

/// A private temporary directory in `options.spill_dir` (default: the system's) for the text
/// copy and the parts' suffix arrays; removed when dropped.
fn spill_dir(options: &SubstringOptions) -> Result<tempfile::TempDir> {
    crate::io::spill_dir(options.spill_dir.as_deref(), "substring")
}

/// The suffix arrays of `corpus` (parts sized to `options.memory_limit`, spilled to `dir`) and
/// the window starts they mark as removed; returns the marks, the parts and their number.
fn find_removed(
    corpus: &Corpus,
    options: &SubstringOptions,
    pool: &rayon::ThreadPool,
    dir: &Path,
) -> Result<(Bitmap, Vec<sa::Part>, usize)> {
    let len = options.min_length * corpus.step();
    let n = corpus.text().len() as u64;
    // Parts: with a memory limit, what is left after the removal map and the document table,
    // at 5 bytes per byte of part (suffix array and text).
    let fixed = n.div_ceil(8) + 8 * corpus.starts.len() as u64;
    let cap = match options.memory_limit {
        None => MAX_PART,
        Some(limit) => {
            let cap = limit.saturating_sub(fixed) / 5;
            if cap == 0 {
                return Err(Error::Config(format!(
                    "--memory-limit {limit} is too small for {n} bytes of text: the removal map and document table alone take {fixed} bytes"
                )));
            }
            cap.min(MAX_PART)
        }
    };
    let plan = sa::plan_parts(&corpus.starts[1..], cap).map_err(|size| {
        Error::Config(format!(
            "a document of {size} bytes does not fit a suffix-array part of {cap} bytes: raise --memory-limit"
        ))
    })?;
    if plan.len() > MAX_PARTS {
        return Err(Error::Config(format!(
            "--memory-limit cuts the text into {} parts (at most {MAX_PARTS}): raise it",
            plan.len()
        )));
    }
    let spill = (plan.len() > 1 && options.memory_limit.is_some()).then_some(dir);
    let removed = Bitmap::new(n);
    let mark = match options.keep {
        KeepCopies::First => Mark::AllButFirst,
        KeepCopies::None => Mark::All,
    };
    let threads = pool.current_num_threads();
    let parts = pool.install(|| -> Result<_> {
        let parts = sa::build_parts(corpus.text(), &plan, len, corpus.step(), threads, spill)?;
        sa::mark_repeats(corpus.text(), &parts, len, mark, threads * 8, &removed)?;
        Ok(parts)
    })?;
    Ok((removed, parts, plan.len()))
}

/// What a document becomes once its removed intervals (byte offsets on character boundaries,
/// increasing, not touching) are applied under `options` (`annotate`, `min_doc_chars`).
#[derive(Debug, Clone, PartialEq)]
pub enum Cut {
    /// No interval: unchanged.
    Keep,
    /// `annotate`: unchanged text, these spans and their total bytes.
    Annotate(Vec<(u64, u64)>, u64),
    /// The text without the intervals.
    Text(String),
    /// Dropped for this reason.
    Drop(&'static str),
}

/// Apply the removed `spans` of a document's `text` (see [`Cut`]).
pub fn apply_cuts(text: &str, spans: &[(u64, u64)], options: &SubstringOptions) -> Cut {
    if spans.is_empty() {
        return Cut::Keep;
    }
    let bytes: u64 = spans.iter().map(|(s, e)| e - s).sum();
    if options.annotate {
        return Cut::Annotate(spans.to_vec(), bytes);
    }
    let mut out = String::with_capacity(text.len().saturating_sub(bytes as usize));
    let mut at = 0usize;
    for &(s, e) in spans {
        out.push_str(&text[at..s as usize]);
        at = e as usize;
    }
    out.push_str(&text[at..]);
    if out.trim().is_empty() {
        Cut::Drop("empty_after_substring_dedup")
    } else if options.min_doc_chars > 0 && out.chars().count() < options.min_doc_chars {
        Cut::Drop("short_after_substring_dedup")
    } else {
        Cut::Text(out)
    }
}

/// One removed interval of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interval {
    /// Byte offsets in the document, on character boundaries.
    start: u64,
    end: u64,
    /// Text position of the leftmost removed window of the interval (before shrinking).
    window: u64,
    /// Offset of that window in the document.
    window_offset: u64,
}

/// The unions of document `d`'s removed windows: (start, end) in its part of the text and the
/// text position of the leftmost window of each. `len` counts units.
fn raw_intervals(corpus: &Corpus, removed: &Bitmap, d: usize, len: usize) -> Vec<(u64, u64, u64)> {
    let start = corpus.starts[d];
    let n = corpus.starts[d + 1] - 1 - start;
    let width = (len * corpus.step()) as u64;
    if n < width {
        return Vec::new();
    }
    let mut raw: Vec<(u64, u64, u64)> = Vec::new();
    for q in removed.ones(start, start + n - width + 1) {
        let (a, b) = (q - start, q - start + width);
        match raw.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => raw.push((a, b, q)),
        }
    }
    raw
}

/// The removed intervals of document `d` (whose text is `text`): its removed windows' unions as
/// byte ranges (through the tokens' offsets with tokens), shrunk to character boundaries,
/// empty ones left out.
fn intervals(
    corpus: &Corpus,
    removed: &Bitmap,
    d: usize,
    len: usize,
    text: &[u8],
) -> Vec<Interval> {
    let start = corpus.starts[d];
    let n = text.len() as u64;
    let mut spans: Vec<Interval> = Vec::new();
    for (a, b, q) in raw_intervals(corpus, removed, d, len) {
        let (a, b, window_offset) = if corpus.tokens.is_some() {
            let w = TOKEN_WIDTH as u64;
            let first = corpus.token_span(d, a / w).0;
            let last = corpus.token_span(d, b / w - 1).1;
            (
                first,
                last.max(first),
                corpus.token_span(d, (q - start) / w).0,
            )
        } else {
            (a, b, q - start)
        };
        let (a, b) = (a.min(n), b.min(n));
        // Tokens' byte ranges may meet (tokens inside one character share its bytes).
        match spans.last_mut() {
            Some(last) if a <= last.end => last.end = last.end.max(b),
            _ => spans.push(Interval {
                start: a,
                end: b,
                window: q,
                window_offset,
            }),
        }
    }
    let boundary = |i: u64| i == n || (text[i as usize] as i8) >= -0x40;
    spans
        .into_iter()
        .filter_map(|mut iv| {
            while iv.start < iv.end && !boundary(iv.start) {
                iv.start += 1;
            }
            while iv.end > iv.start && !boundary(iv.end) {
                iv.end -= 1;
            }
            (iv.start < iv.end).then_some(iv)
        })
        .collect()
}

/// `--spans FILE`: one JSON line per removed span, written atomically.
struct SpansWriter {
    file: BufWriter<File>,
    atomic: crate::io::AtomicFile,
    path: String,
}

impl SpansWriter {
    fn create(path: &Path) -> Result<Self> {
        let (atomic, file) = crate::io::AtomicFile::create(path)?;
        Ok(SpansWriter {
            file: BufWriter::new(file),
            atomic,
            path: path.display().to_string(),
        })
    }

    fn add(&mut self, id: &str, iv: &Interval, first_id: &str, first_start: u64) -> Result<()> {
        let text = |s: &str| serde_json::to_string(s).unwrap_or_default();
        writeln!(
            self.file,
            r#"{{"id":{},"start":{},"end":{},"first":{{"id":{},"start":{first_start}}}}}"#,
            text(id),
            iv.start,
            iv.end,
            text(first_id)
        )
        .map_err(|e| Error::io(self.path.clone(), e))
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

/// Pass 2: cut the removed intervals out of each document, in input order.
pub struct SubstringStage<'a> {
    plan: &'a SubstringPlan,
    /// Valid documents decided so far.
    ordinal: u64,
    /// Documents holding a first occurrence (their ids are kept for the spans file).
    referenced: HashSet<usize>,
    ids: HashMap<usize, String>,
    spans: Option<SpansWriter>,
    field_spans: Arc<str>,
    field_bytes: Arc<str>,
    spans_count: u64,
    bytes_removed: u64,
    changed: u64,
    error: Option<Error>,
}

impl SubstringStage<'_> {
    /// After the run: report a mismatch between the passes, and write the spans file.
    pub fn close(&mut self) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.ordinal != self.plan.corpus.docs() as u64 {
            return Err(Error::Config(
                "the inputs changed between passes: fewer documents than before".into(),
            ));
        }
        if let Some(w) = self.spans.take() {
            w.finish()?;
        }
        Ok(())
    }

    fn write_spans(&mut self, d: usize, id: &str, ivs: &[Interval]) -> Result<()> {
        let Some(w) = self.spans.as_mut() else {
            return Ok(());
        };
        for iv in ivs {
            let first = self
                .plan
                .firsts
                .get(&iv.window)
                .copied()
                .unwrap_or(iv.window);
            let (fd, offset) = self.plan.corpus.locate(first);
            let offset = self.plan.corpus.byte_offset(fd, offset);
            let first_id: Cow<'_, str> = if fd == d {
                Cow::Borrowed(id)
            } else {
                Cow::Borrowed(self.ids.get(&fd).map_or("", |s| s.as_str()))
            };
            w.add(id, iv, &first_id, offset + (iv.start - iv.window_offset))?;
        }
        Ok(())
    }
}

impl Stage for SubstringStage<'_> {
    type Prepared = ();

    fn prepare(&self, _doc: &Doc<'_>) {}

    /// A document that differs from pass 1, or a spans file that cannot be written, stops the
    /// run before its output is committed.
    fn decide_batch(
        &mut self,
        _batch: &Batch,
        docs: &[&Doc<'_>],
        _prepared: Vec<()>,
    ) -> Result<Vec<Decision>> {
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            out.push(self.decide(d, ()));
            if let Some(e) = self.error.take() {
                return Err(e);
            }
        }
        Ok(out)
    }

    fn decide(&mut self, doc: &Doc<'_>, _: ()) -> Decision {
        let d = self.ordinal as usize;
        self.ordinal += 1;
        if self.error.is_some() {
            return Decision::Keep;
        }
        let corpus = &self.plan.corpus;
        let same = d < corpus.docs()
            && match &corpus.tokens {
                Some(t) => t.hashes[d] == xxhash_rust::xxh3::xxh3_64(doc.text.as_bytes()),
                None => corpus.doc(d) == doc.text.as_bytes(),
            };
        if !same {
            self.error = Some(Error::Config(format!(
                "the inputs changed between passes (document {} at {} differs)",
                doc.id, doc.location
            )));
            return Decision::Keep;
        }
        if self.referenced.contains(&d) {
            self.ids.insert(d, doc.id.to_string());
        }
        let ivs = intervals(
            corpus,
            &self.plan.removed,
            d,
            self.plan.options.min_length,
            doc.text.as_bytes(),
        );
        if ivs.is_empty() {
            return Decision::Keep;
        }
        if let Err(e) = self.write_spans(d, &doc.id, &ivs) {
            self.error = Some(e);
            return Decision::Keep;
        }
        let spans: Vec<(u64, u64)> = ivs.iter().map(|iv| (iv.start, iv.end)).collect();
        self.spans_count += ivs.len() as u64;
        self.bytes_removed += spans.iter().map(|(s, e)| e - s).sum::<u64>();
        self.changed += 1;
        match apply_cuts(&doc.text, &spans, &self.plan.options) {
            Cut::Keep => Decision::Keep,
            Cut::Annotate(spans, bytes) => Decision::Edit {
                text: None,
                fields: vec![
                    FieldEdit::set(self.field_spans.clone(), FieldValue::Spans(spans)),
                    FieldEdit::set(self.field_bytes.clone(), FieldValue::Int(bytes as i64)),
                ],
            },
            Cut::Text(t) => Decision::Rewrite(t),
            Cut::Drop(reason) => Decision::Remove(reason.into()),
        }
    }

    fn finish(&mut self, stats: &mut Stats) {
        stats.set_counter("substring_spans", self.spans_count);
        stats.set_counter("substring_bytes_removed", self.bytes_removed);
        stats.set_counter("documents_changed", self.changed);
    }
}
