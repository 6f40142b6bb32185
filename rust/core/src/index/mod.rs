//! Persistent indexes: what a model already saw, or the evaluation sets it will be judged on,
//! as sorted, memory-mapped tables of hashes with the id of the record each came from.
//!
//! - [`IndexKind::Ngram`]: the word n-grams (default 13 words) of each record, words as near
//!   dedup makes them ([`crate::dedup::near::shingle::simple_words`]: NFKC, lowercase, digits to
//!   0, punctuation removed; each CJK, kana, Thai… character a word), an n-gram hashed by a
//!   rolling polynomial over its words' XXH3-64 hashes ([`window_hashes`]). For decontamination
//!   ([`decont`]).
//! - [`IndexKind::Exact`]: the 128-bit hash of each record's text (or key field) under a
//!   [`Normalize`] mode, as `tamis dedup exact` computes it, for `dedup exact --against`.
//! - [`IndexKind::Lines`]: the 128-bit hash of each eligible line, as `tamis dedup lines`
//!   computes it ([`crate::dedup::line_hashes`]), for `dedup lines --against`.
//! - [`IndexKind::Near`]: each record's MinHash-LSH band keys, as `tamis dedup near` computes
//!   them, band `b`'s key stored as [`near_key`]`(b, key)`, for `dedup near --against`.
//!
//! An index is a directory: `index.json` (the manifest: kind, the options that fix what a key
//! means, records, entries, and each segment's files with size and checksum) and the segments'
//! files ([`segment`]). `build` writes one segment; `add` writes another, and merges all of
//! them into one when there are more than [`MAX_SEGMENTS`]. The manifest is replaced
//! atomically, last: an interrupted build or add leaves the index as it was.

pub mod decont;
pub mod segment;

use std::borrow::Cow;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::dedup::near::shingle::simple_word_bytes_at;

use crate::io::{expand_inputs, Doc, DocSource, IoOptions, JsonFields};
use crate::options::{check_range, OptionError, Options};
use crate::pipeline::{scan, Progress, RunOptions};
use crate::text::{hash_text, Normalize};
use crate::{Error, RecordError, Result, Stats};
use segment::{Key, Segment, SegmentMeta, SegmentWriter};

/// The manifest's file name inside an index directory.
pub const MANIFEST: &str = "index.json";
/// Format name and version written in (and required of) every manifest.
pub const FORMAT: &str = "tamis-index";
/// See [`FORMAT`].
pub const VERSION: u32 = 3;
/// `add` merges the segments into one when there are more than this.
pub const MAX_SEGMENTS: usize = 8;
/// Longest n-gram accepted.
pub const MAX_NGRAM: usize = 1024;
/// Memory for entries before they spill to sorted runs, by default.
const DEFAULT_MEMORY: u64 = 1 << 30;
/// Smallest `memory_limit` accepted.
const MIN_MEMORY: u64 = 16 << 20;

/// What an index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// Word n-gram hashes (decontamination).
    #[default]
    Ngram,
    /// Whole-text (or key field) hashes (`dedup exact --against`).
    Exact,
    /// Line hashes (`dedup lines --against`).
    Lines,
    /// MinHash-LSH band keys (`dedup near --against`).
    Near,
}

impl IndexKind {
    /// Every kind's name, as options spell it.
    pub const NAMES: &'static [&'static str] = &["ngram", "exact", "lines", "near"];

    /// The name used on the command line and in Python.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexKind::Ngram => "ngram",
            IndexKind::Exact => "exact",
            IndexKind::Lines => "lines",
            IndexKind::Near => "near",
        }
    }

    /// Keys are 64-bit (n-gram hashes, band keys) rather than 128-bit (text and line hashes).
    fn wide(self) -> bool {
        matches!(self, IndexKind::Exact | IndexKind::Lines)
    }
}

/// The stored key of band `band`'s key `key` in a near index: a bijection per band
/// (MurmurHash3's finalizer of the key offset by the band), so that equal keys of different
/// bands do not meet.
#[inline]
pub fn near_key(band: usize, key: u64) -> u64 {
    fmix64(key ^ (band as u64 + 1).wrapping_mul(NGRAM_BASE))
}

/// Options of `tamis index build` (and `tamis.index.build`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexOptions {
    /// What the index holds: `ngram` (word n-grams, for decontamination), `exact` (text
    /// hashes, for `dedup exact --against`), `lines` (line hashes, for `dedup lines --against`)
    /// or `near` (MinHash band keys, for `dedup near --against`).
    pub kind: IndexKind,
    /// Words per n-gram (`ngram` kind, default 13), or per shingle (`near` kind, default 5, as
    /// `dedup near --ngram`).
    pub ngram: Option<usize>,
    /// Normalization before hashing (`exact` and `lines` kinds; it must match the dedup run's
    /// `--normalize`).
    pub normalize: Normalize,
    /// Lines with fewer characters are not indexed (`lines` kind, as `dedup lines
    /// --min-line-chars`).
    pub min_line_chars: usize,
    /// `near` kind: the MinHash parameters of `dedup near` (`num_perm`, `bands`, `rows` or
    /// `threshold`, `seed`, `shingle`, `sketch`), with its defaults; a run against the index
    /// must use the same.
    pub num_perm: Option<usize>,
    /// See [`IndexOptions::num_perm`].
    pub bands: Option<usize>,
    /// See [`IndexOptions::num_perm`].
    pub rows: Option<usize>,
    /// See [`IndexOptions::num_perm`].
    pub threshold: Option<f64>,
    /// See [`IndexOptions::num_perm`].
    pub seed: Option<u64>,
    /// See [`IndexOptions::num_perm`].
    pub shingle: Option<crate::dedup::near::Shingling>,
    /// See [`IndexOptions::num_perm`].
    pub sketch: Option<crate::dedup::near::Sketch>,
    /// Hash this string field instead of the text (`exact` kind, like `dedup exact --key`).
    pub key: Option<String>,
    /// Index these fields of each record, joined by newlines (strings as they are, lists one
    /// item per line, numbers and booleans as written), instead of the text: an evaluation
    /// set's `question,choices,answer`. The first must be a string field.
    pub fields: Vec<String>,
    /// Memory for entries before they spill to sorted runs on disk (bytes, or text like `2G`;
    /// default 1G); also bounds the query filter when the index is used.
    #[serde(with = "crate::options::size")]
    pub memory_limit: Option<u64>,
    /// Where spilled runs go (default: the system temporary directory).
    pub spill_dir: Option<PathBuf>,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            kind: IndexKind::Ngram,
            ngram: None,
            normalize: Normalize::None,
            min_line_chars: 0,
            num_perm: None,
            bands: None,
            rows: None,
            threshold: None,
            seed: None,
            shingle: None,
            sketch: None,
            key: None,
            fields: Vec::new(),
            memory_limit: None,
            spill_dir: None,
        }
    }
}

/// Words per n-gram of an `ngram` index when not given.
const DEFAULT_NGRAM: usize = 13;

impl IndexOptions {
    /// The near dedup options a `near` index is built with (its MinHash parameters).
    pub fn near_options(&self) -> crate::dedup::near::NearOptions {
        let d = crate::dedup::near::NearOptions::default();
        crate::dedup::near::NearOptions {
            ngram: self.ngram.unwrap_or(d.ngram),
            shingle: self.shingle.unwrap_or(d.shingle),
            num_perm: self.num_perm.unwrap_or(d.num_perm),
            bands: self.bands,
            rows: self.rows,
            threshold: self.threshold,
            seed: self.seed.unwrap_or(d.seed),
            sketch: self.sketch.unwrap_or(d.sketch),
            ..d
        }
    }

    /// Words per n-gram of an `ngram` index.
    fn ngram_words(&self) -> usize {
        self.ngram.unwrap_or(DEFAULT_NGRAM)
    }
}

impl Options for IndexOptions {
    fn validate(&self) -> std::result::Result<(), OptionError> {
        let near_given = [
            ("num_perm", self.num_perm.is_some()),
            ("bands", self.bands.is_some()),
            ("rows", self.rows.is_some()),
            ("threshold", self.threshold.is_some()),
            ("seed", self.seed.is_some()),
            ("shingle", self.shingle.is_some()),
            ("sketch", self.sketch.is_some()),
        ];
        match self.kind {
            IndexKind::Near => {
                self.near_options().params()?;
            }
            _ => {
                if let Some((name, _)) = near_given.iter().find(|(_, given)| *given) {
                    return Err(OptionError::with_fields(
                        &[name, "kind"],
                        "{0} is only used with {1} near",
                    ));
                }
                if self.kind == IndexKind::Ngram {
                    check_range("ngram", self.ngram_words(), Some(1), Some(MAX_NGRAM))?;
                } else if self.ngram.is_some() {
                    return Err(OptionError::with_fields(
                        &["ngram", "kind"],
                        "{0} is only used with {1} ngram or near",
                    ));
                }
            }
        }
        if self.min_line_chars != 0 && self.kind != IndexKind::Lines {
            return Err(OptionError::with_fields(
                &["min_line_chars", "kind"],
                "{0} is only used with {1} lines",
            ));
        }
        if let Some(m) = self.memory_limit {
            check_range("memory_limit", m, Some(MIN_MEMORY), None)?;
        }
        if self.key.is_some() && self.kind != IndexKind::Exact {
            return Err(OptionError::with_fields(
                &["key", "kind"],
                "{0} is only used with {1} exact",
            ));
        }
        if self.key.as_deref() == Some("") {
            return Err(OptionError::new("key", "must name a field"));
        }
        if self.key.is_some() && !self.fields.is_empty() {
            return Err(OptionError::with_fields(
                &["key", "fields"],
                "{0} and {1} cannot be used together",
            ));
        }
        if self.fields.iter().any(|f| f.is_empty()) {
            return Err(OptionError::new(
                "fields",
                "must name fields, not empty names",
            ));
        }
        if matches!(self.kind, IndexKind::Ngram | IndexKind::Near)
            && self.normalize != Normalize::None
        {
            return Err(OptionError::with_fields(
                &["normalize", "kind"],
                "{0} is only used with {1} exact or lines (n-grams and shingles always use near \
                 dedup's words)",
            ));
        }
        Ok(())
    }
}

/// The manifest, `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// What the index holds.
    pub kind: IndexKind,
    /// Words per n-gram (`ngram` kind).
    pub ngram: Option<usize>,
    /// Normalization before hashing (`exact`; `simple` words for `ngram`).
    pub normalize: Normalize,
    /// How keys are computed, in words (checked by name at query time).
    pub hash: String,
    /// The field hashed instead of the text (`exact`).
    pub key: Option<String>,
    /// The fields indexed instead of the text.
    pub fields: Vec<String>,
    /// Shortest line indexed, in characters (`lines`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_line_chars: Option<usize>,
    /// The MinHash parameters of the band keys (`near`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minhash: Option<crate::dedup::near::MinHashParams>,
    /// Records over all segments.
    pub records: u64,
    /// Entries over all segments.
    pub entries: u64,
    /// The segments, in record order.
    pub segments: Vec<SegmentMeta>,
}

const HASH_NGRAM: &str =
    "fmix64(sum of the n words' xxh3-64 times 0x9e3779b97f4a7c15^(n-1-i), + n)";
const HASH_EXACT: &str = "xxh3-128 of the normalized text (dedup exact)";
const HASH_LINES: &str = "xxh3-128 of each eligible normalized line (dedup lines)";
const HASH_NEAR: &str = "band b's xxh3-64 band key k as fmix64(k ^ (b+1)*0x9e3779b97f4a7c15)";

fn hash_name(kind: IndexKind) -> &'static str {
    match kind {
        IndexKind::Ngram => HASH_NGRAM,
        IndexKind::Exact => HASH_EXACT,
        IndexKind::Lines => HASH_LINES,
        IndexKind::Near => HASH_NEAR,
    }
}

impl Manifest {
    /// The manifest of a new index (`options` validated).
    fn new(options: &IndexOptions) -> Result<Self> {
        let kind = options.kind;
        let minhash = match kind {
            IndexKind::Near => Some(options.near_options().params()?),
            _ => None,
        };
        Ok(Manifest {
            format: FORMAT.into(),
            version: VERSION,
            kind,
            ngram: (kind == IndexKind::Ngram).then_some(options.ngram_words()),
            normalize: match kind {
                IndexKind::Ngram => Normalize::Simple,
                IndexKind::Near => Normalize::None,
                IndexKind::Exact | IndexKind::Lines => options.normalize,
            },
            hash: hash_name(kind).into(),
            key: options.key.clone(),
            fields: options.fields.clone(),
            min_line_chars: (kind == IndexKind::Lines).then_some(options.min_line_chars),
            minhash,
            records: 0,
            entries: 0,
            segments: Vec::new(),
        })
    }

    /// The build options this index was made with (for `add`), with this run's memory.
    fn options(&self, memory_limit: Option<u64>, spill_dir: Option<PathBuf>) -> IndexOptions {
        let p = self.minhash;
        IndexOptions {
            kind: self.kind,
            ngram: self.ngram.or(p.map(|p| p.ngram)),
            normalize: if self.kind.wide() {
                self.normalize
            } else {
                Normalize::None
            },
            min_line_chars: self.min_line_chars.unwrap_or(0),
            num_perm: p.map(|p| p.num_perm),
            bands: p.map(|p| p.bands),
            rows: p.map(|p| p.rows),
            threshold: None,
            seed: p.map(|p| p.seed),
            shingle: p.map(|p| p.shingling),
            sketch: p.map(|p| p.sketch),
            key: self.key.clone(),
            fields: self.fields.clone(),
            memory_limit,
            spill_dir,
        }
    }

    fn width(&self) -> usize {
        if self.kind.wide() {
            u128::WIDTH
        } else {
            u64::WIDTH
        }
    }

    fn read(dir: &Path) -> Result<Manifest> {
        if !dir.is_dir() {
            return Err(Error::Config(format!(
                "{}: no such index (an index is a directory made by `tamis index build`)",
                dir.display()
            )));
        }
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Config(format!(
                    "{}: not a tamis index (no {MANIFEST}; make one with `tamis index build`)",
                    dir.display()
                ))
            } else {
                Error::io(path.display().to_string(), e)
            }
        })?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "{}: not a valid index manifest: {e}",
                path.display()
            ))
        })?;
        if m.format != FORMAT || m.version != VERSION {
            return Err(Error::Config(format!(
                "{}: format {:?} version {}, this tamis reads {FORMAT:?} version {VERSION} \
                 (build the index again with this tamis)",
                path.display(),
                m.format,
                m.version
            )));
        }
        let expected_hash = hash_name(m.kind);
        let mut next = 0u64;
        let mut entries = 0u64;
        for s in &m.segments {
            // Names become file paths, which `add` also removes after a merge: only our own.
            let digits = s.name.strip_prefix("seg-").unwrap_or("");
            if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::Config(format!(
                    "{}: segment name {:?} is not one tamis writes (seg-NNNNNN)",
                    path.display(),
                    s.name
                )));
            }
            if s.first_record != next || s.records > segment::MAX_RECORDS {
                return Err(Error::Config(format!(
                    "{}: segment {} does not follow the one before it",
                    path.display(),
                    s.name
                )));
            }
            let from_sources = s
                .sources
                .iter()
                .map(|f| f.records)
                .fold(0u64, u64::saturating_add);
            if !s.sources.is_empty() && from_sources != s.records {
                return Err(Error::Config(format!(
                    "{}: segment {} lists sources of {from_sources} records, not {}",
                    path.display(),
                    s.name,
                    s.records
                )));
            }
            next = next.saturating_add(s.records);
            entries = entries.saturating_add(s.entries);
        }
        if m.hash != expected_hash
            || next != m.records
            || entries != m.entries
            || (m.kind == IndexKind::Ngram) != m.ngram.is_some()
            || m.ngram.is_some_and(|n| n == 0 || n > MAX_NGRAM)
            || (m.kind == IndexKind::Lines) != m.min_line_chars.is_some()
            || (m.kind == IndexKind::Near) != m.minhash.is_some()
            || m.minhash.is_some_and(|p| {
                !(1..=crate::dedup::near::MAX_NUM_PERM).contains(&p.num_perm)
                    || !(1..=crate::dedup::near::MAX_NGRAM).contains(&p.ngram)
                    || p.bands == 0
                    || p.rows == 0
                    || p.bands.saturating_mul(p.rows) > p.num_perm
            })
        {
            return Err(Error::Config(format!(
                "{}: the manifest is inconsistent (damaged or edited by hand)",
                path.display()
            )));
        }
        Ok(m)
    }

    fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let (guard, mut file) = crate::io::AtomicFile::create(&path)?;
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .and_then(|_| std::io::Write::write_all(&mut file, b"\n"))
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io(path.display().to_string(), e))?;
        drop(file);
        guard.commit()
    }
}

/// The words of `text` for n-grams: each word's XXH3-64 and byte span (see
/// [`crate::dedup::near::shingle::simple_words_at`]), into `words` (cleared first).
pub fn ngram_words(text: &str, words: &mut Vec<(u64, usize, usize)>) {
    words.clear();
    simple_word_bytes_at(text, |w, s, e| {
        words.push((xxhash_rust::xxh3::xxh3_64(w), s, e))
    });
}

/// Each window of `n` of `words` (from [`ngram_words`]): `f(hash, start, end)`, its hash
/// ([`window_hashes`]) and the span from the first word's start to the last word's end. A text
/// with fewer than `n` words has none.
pub fn for_each_window(
    words: &[(u64, usize, usize)],
    n: usize,
    mut f: impl FnMut(u64, usize, usize),
) {
    let mut hashes = Vec::new();
    window_hashes(words, n, &mut hashes);
    for (j, h) in hashes.into_iter().enumerate() {
        f(h, words[j].1, words[j + n - 1].2);
    }
}

/// Multiplier of the n-gram hash polynomial (odd: invertible modulo 2^64).
const NGRAM_BASE: u64 = 0x9e37_79b9_7f4a_7c15;

/// MurmurHash3's 64-bit finalizer: every input bit reaches every output bit.
#[inline]
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash of each window of `n` of `words` into `out` (cleared first): `out[j]` for the
/// window starting at word `j`. With `w_i` the words' XXH3-64 hashes and `B` =
/// [`NGRAM_BASE`], a window's hash is `fmix64(Σ_{i<n} w_{j+i}·B^(n-1-i) + n)` modulo 2^64,
/// computed rolling (one multiply-add per word instead of hashing `8n` bytes per window).
pub fn window_hashes(words: &[(u64, usize, usize)], n: usize, out: &mut Vec<u64>) {
    out.clear();
    if n == 0 || words.len() < n {
        return;
    }
    // B^(n-1), the weight of the word leaving the window.
    let mut top = 1u64;
    for _ in 1..n {
        top = top.wrapping_mul(NGRAM_BASE);
    }
    let mut h = 0u64;
    for w in &words[..n] {
        h = h.wrapping_mul(NGRAM_BASE).wrapping_add(w.0);
    }
    out.reserve(words.len() - n + 1);
    out.push(fmix64(h.wrapping_add(n as u64)));
    for j in n..words.len() {
        h = h
            .wrapping_sub(words[j - n].0.wrapping_mul(top))
            .wrapping_mul(NGRAM_BASE)
            .wrapping_add(words[j].0);
        out.push(fmix64(h.wrapping_add(n as u64)));
    }
}

/// The text a record is indexed by: its `fields` joined by newlines, or its text.
fn record_text<'d>(
    doc: &'d Doc<'_>,
    fields: &[String],
) -> std::result::Result<Cow<'d, str>, RecordError> {
    if fields.is_empty() {
        return Ok(Cow::Borrowed(&doc.text));
    }
    let DocSource::Json { raw } = &doc.source else {
        return Ok(Cow::Borrowed(&doc.text));
    };
    let record: JsonFields<'_> =
        serde_json::from_str(raw).map_err(|e| RecordError::InvalidJson(e.to_string()))?;
    let mut out = String::new();
    for f in fields {
        let v = record
            .get(f)
            .ok_or_else(|| RecordError::MissingField(f.clone()))?;
        let before = out.len();
        flatten(v, &mut out, f)?;
        if out.len() > before {
            out.push('\n');
        }
    }
    Ok(Cow::Owned(out))
}

/// A field value as lines of text: strings as they are, lists and objects item by item,
/// numbers and booleans as written, null as nothing.
fn flatten(v: &RawValue, out: &mut String, field: &str) -> std::result::Result<(), RecordError> {
    let value: serde_json::Value =
        serde_json::from_str(v.get()).map_err(|_| RecordError::FieldNotString {
            key: field.to_string(),
            found: "unreadable",
        })?;
    fn walk(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) => push_line(out, s),
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            serde_json::Value::Object(map) => map.values().for_each(|i| walk(i, out)),
            other => push_line(out, &other.to_string()),
        }
    }
    fn push_line(out: &mut String, s: &str) {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(s);
    }
    walk(&value, out);
    Ok(())
}

/// Keys of one record: 64-bit (n-grams, band keys) or 128-bit (texts, lines).
enum Keys {
    Narrow(Vec<u64>),
    Wide(Vec<u128>),
}

/// Computes the keys of records for an index described by a manifest.
struct KeyMaker<'m> {
    m: &'m Manifest,
    hasher: Option<crate::dedup::near::MinHasher>,
    lines: crate::dedup::LinesOptions,
}

impl<'m> KeyMaker<'m> {
    fn new(m: &'m Manifest) -> Result<Self> {
        let hasher = match m.minhash {
            Some(p) => Some(crate::dedup::near::MinHasher::new(p)?),
            None => None,
        };
        let lines = crate::dedup::LinesOptions {
            normalize: m.normalize,
            min_line_chars: m.min_line_chars.unwrap_or(0),
            ..Default::default()
        };
        Ok(KeyMaker { m, hasher, lines })
    }

    fn keys(&self, doc: &Doc<'_>) -> std::result::Result<Keys, RecordError> {
        let m = self.m;
        match m.kind {
            IndexKind::Ngram => {
                let text = record_text(doc, &m.fields)?;
                let mut keys = Vec::new();
                let mut words = Vec::new();
                ngram_words(&text, &mut words);
                for_each_window(&words, m.ngram.unwrap_or(DEFAULT_NGRAM), |h, _, _| {
                    keys.push(h)
                });
                keys.sort_unstable();
                keys.dedup();
                Ok(Keys::Narrow(keys))
            }
            IndexKind::Exact => {
                let value: Cow<'_, str> = match &m.key {
                    Some(_) => Cow::Borrowed(doc.key.as_deref().unwrap_or("")),
                    None => record_text(doc, &m.fields)?,
                };
                Ok(Keys::Wide(vec![hash_text(&value, m.normalize)]))
            }
            IndexKind::Lines => {
                let text = record_text(doc, &m.fields)?;
                let mut keys: Vec<u128> = crate::dedup::line_hashes(&text, &self.lines)
                    .into_iter()
                    .flatten()
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                Ok(Keys::Wide(keys))
            }
            IndexKind::Near => {
                let text = record_text(doc, &m.fields)?;
                let Some(hasher) = &self.hasher else {
                    return Ok(Keys::Narrow(Vec::new()));
                };
                Ok(Keys::Narrow(
                    near_band_keys(hasher, &text).unwrap_or_default(),
                ))
            }
        }
    }
}

/// The stored keys ([`near_key`]) of a text's bands, sorted; `None` for a text without
/// shingles (never a near duplicate).
pub fn near_band_keys(hasher: &crate::dedup::near::MinHasher, text: &str) -> Option<Vec<u64>> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<(crate::dedup::near::Scratch, Vec<u64>)> =
            Default::default();
    }
    let params = hasher.params();
    let mut keys = SCRATCH.with(|s| {
        let (scratch, sig) = &mut *s.borrow_mut();
        sig.resize(params.num_perm, 0);
        hasher.signature(text, scratch, sig);
        if scratch.shingles.is_empty() {
            return None;
        }
        let mut keys = vec![0u64; params.bands];
        hasher.band_keys(sig, &mut keys);
        Some(keys)
    })?;
    for (b, k) in keys.iter_mut().enumerate() {
        *k = near_key(b, *k);
    }
    keys.sort_unstable();
    keys.dedup();
    Some(keys)
}

fn run_options(io: &IoOptions, m: &Manifest) -> Result<RunOptions> {
    let mut opts = io.run_options(m.key.clone())?;
    if let Some(first) = m.fields.first() {
        opts.extract.text_key = first.clone();
        if opts.extract.id_key == *first {
            return Err(Error::Options(OptionError::with_fields(
                &["fields", "id_key"],
                "the first of {0} must not be the id field ({1})",
            )));
        }
    }
    // Fields are read from each record's JSON, Parquet rows included.
    opts.rows_as_json = !m.fields.is_empty();
    Ok(opts)
}

/// A private spill directory for sorted runs.
fn spill_dir(options: &IndexOptions) -> Result<tempfile::TempDir> {
    crate::io::spill_dir(options.spill_dir.as_deref(), "index")
}

/// Read `inputs` into a new segment of the index in `dir` described by `m`, updating `m`.
fn append_segment(
    dir: &Path,
    m: &mut Manifest,
    inputs: &[String],
    io: &IoOptions,
    options: &IndexOptions,
    progress: &dyn Progress,
    stats: &mut Stats,
) -> Result<()> {
    let opts = run_options(io, m)?;
    let files = expand_inputs(inputs)?;
    let name = next_segment_name(m);
    let spill = spill_dir(options)?;
    let memory = options.memory_limit.unwrap_or(DEFAULT_MEMORY);
    let mut no_keys = 0u64;
    let first_record = m.records;
    let maker = KeyMaker::new(m)?;
    // One generic pass per key type; `keys` takes a record's keys out of `Keys`.
    fn write<K: Key>(
        w: &mut SegmentWriter<K>,
        files: &[crate::io::InputFile],
        opts: &RunOptions,
        stats: &mut Stats,
        progress: &dyn Progress,
        maker: &KeyMaker<'_>,
        keys: fn(Keys) -> Vec<K>,
    ) -> Result<(u64, Vec<u64>)> {
        let mut no_keys = 0u64;
        let counts = scan(
            files,
            opts,
            stats,
            progress,
            |_, doc| Ok((doc.id.to_string(), keys(maker.keys(doc)?))),
            |s| {
                let (id, k) = s.value;
                no_keys += k.is_empty() as u64;
                w.add(&id, &k)
            },
        )?;
        Ok((no_keys, counts))
    }
    let mut counts = Vec::new();
    let result = (|| -> Result<SegmentMeta> {
        let (spill, inputs) = (spill.path(), inputs.to_vec());
        if m.kind.wide() {
            let mut w = SegmentWriter::<u128>::create(dir, &name, spill, memory)?;
            let keys = |k| match k {
                Keys::Wide(k) => k,
                Keys::Narrow(_) => Vec::new(),
            };
            (no_keys, counts) = write(&mut w, &files, &opts, stats, progress, &maker, keys)?;
            w.finish(first_record, inputs)
        } else {
            let mut w = SegmentWriter::<u64>::create(dir, &name, spill, memory)?;
            let keys = |k| match k {
                Keys::Narrow(k) => k,
                Keys::Wide(_) => Vec::new(),
            };
            (no_keys, counts) = write(&mut w, &files, &opts, stats, progress, &maker, keys)?;
            w.finish(first_record, inputs)
        }
    })();
    let mut seg = match result {
        Ok(s) => s,
        Err(e) => {
            remove_segment_files(dir, &name);
            return Err(e);
        }
    };
    seg.sources = source_files(&files, &counts, io);
    stats.set_counter("records_indexed", seg.records);
    stats.set_counter("entries_added", seg.entries);
    match m.kind {
        IndexKind::Ngram => stats.set_counter("records_shorter_than_ngram", no_keys),
        IndexKind::Near => stats.set_counter("records_without_shingles", no_keys),
        IndexKind::Lines => stats.set_counter("records_without_eligible_lines", no_keys),
        IndexKind::Exact => {}
    }
    m.records += seg.records;
    m.entries += seg.entries;
    m.segments.push(seg);
    Ok(())
}

/// Where the records of `files` (with `counts` valid records each) can be read again; none when
/// one is standard input or cannot be resolved.
fn source_files(
    files: &[crate::io::InputFile],
    counts: &[u64],
    io: &IoOptions,
) -> Vec<segment::SourceFile> {
    let io = serde_json::to_value(io).unwrap_or(serde_json::Value::Null);
    let mut out = Vec::with_capacity(files.len());
    for (f, &records) in files.iter().zip(counts) {
        let Some(path) = f.path.as_ref().and_then(|p| std::fs::canonicalize(p).ok()) else {
            return Vec::new();
        };
        let Ok(meta) = std::fs::metadata(&path) else {
            return Vec::new();
        };
        out.push(segment::SourceFile {
            path: path.display().to_string(),
            name: f.name.clone(),
            bytes: meta.len(),
            modified_ns: modified_ns(&meta),
            records,
            io: io.clone(),
        });
    }
    out
}

fn modified_ns(meta: &std::fs::Metadata) -> Option<u64> {
    let t = meta.modified().ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(d.as_nanos()).ok()
}

fn next_segment_name(m: &Manifest) -> String {
    let next = m
        .segments
        .iter()
        .filter_map(|s| s.name.strip_prefix("seg-")?.parse::<u64>().ok())
        .max()
        .map_or(0, |n| n + 1);
    format!("seg-{next:06}")
}

fn remove_segment_files(dir: &Path, name: &str) {
    for ext in segment::ALL_EXTENSIONS {
        let _ = std::fs::remove_file(dir.join(format!("{name}.{ext}")));
    }
}

/// `tamis index build`: a new index in directory `dir` (which must not exist, or be empty)
/// from `inputs`.
pub fn build_index(
    inputs: &[String],
    dir: &Path,
    io: &IoOptions,
    options: &IndexOptions,
    progress: &dyn Progress,
) -> Result<Stats> {
    let started = std::time::Instant::now();
    options.validate()?;
    let created = if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir.display().to_string(), e))?
            .next()
            .is_none();
        if !empty || !dir.is_dir() {
            return Err(Error::Config(format!(
                "{}: already exists: an index is built into a new or empty directory (use \
                 `tamis index add` to add to an index)",
                dir.display()
            )));
        }
        false
    } else {
        crate::io::check_parent(dir)?;
        std::fs::create_dir(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        true
    };
    let mut stats = Stats {
        command: "index build".into(),
        ..Stats::default()
    };
    let mut m = Manifest::new(options)?;
    let result = append_segment(dir, &mut m, inputs, io, options, progress, &mut stats)
        .and_then(|_| m.write(dir));
    if let Err(e) = result {
        if created {
            let _ = std::fs::remove_dir_all(dir);
        } else {
            for s in &m.segments {
                remove_segment_files(dir, &s.name);
            }
        }
        return Err(e);
    }
    finish_stats(&mut stats, &m, started);
    progress.finish();
    Ok(stats)
}

/// `tamis index add`: add `inputs` to the index in `dir` as a new segment (read with the
/// options the index was built with); more than [`MAX_SEGMENTS`] segments are merged into one.
pub fn add_to_index(
    dir: &Path,
    inputs: &[String],
    io: &IoOptions,
    memory_limit: Option<u64>,
    spill_dir: Option<PathBuf>,
    progress: &dyn Progress,
) -> Result<Stats> {
    let started = std::time::Instant::now();
    // Verify what is there before adding to it.
    let index = Index::open(dir)?;
    let mut m = index.manifest.clone();
    drop(index);
    let options = m.options(memory_limit, spill_dir);
    options.validate()?;
    let mut stats = Stats {
        command: "index add".into(),
        ..Stats::default()
    };
    append_segment(dir, &mut m, inputs, io, &options, progress, &mut stats)?;
    let new_name = m
        .segments
        .last()
        .map(|s| s.name.clone())
        .unwrap_or_default();
    let mut old_files: Vec<String> = Vec::new();
    let merged = if m.segments.len() > MAX_SEGMENTS && m.records <= segment::MAX_RECORDS {
        let merged = merge_segments(dir, &m, &options);
        match merged {
            Ok(seg) => {
                old_files = m.segments.iter().map(|s| s.name.clone()).collect();
                m.segments = vec![seg];
                true
            }
            Err(e) => {
                remove_segment_files(dir, &new_name);
                return Err(e);
            }
        }
    } else {
        false
    };
    if let Err(e) = m.write(dir) {
        remove_segment_files(dir, &new_name);
        if merged {
            if let Some(s) = m.segments.first() {
                remove_segment_files(dir, &s.name);
            }
        }
        return Err(e);
    }
    for name in old_files {
        remove_segment_files(dir, &name);
    }
    stats.set_counter("segments_merged", merged as u64);
    finish_stats(&mut stats, &m, started);
    progress.finish();
    Ok(stats)
}

fn finish_stats(stats: &mut Stats, m: &Manifest, started: std::time::Instant) {
    stats.set_counter("index_records", m.records);
    stats.set_counter("index_entries", m.entries);
    stats.set_counter("index_segments", m.segments.len() as u64);
    stats.seconds = started.elapsed().as_secs_f64();
}

/// Merge every segment of `m` into one new segment (same entries, same record ordinals).
fn merge_segments(dir: &Path, m: &Manifest, options: &IndexOptions) -> Result<SegmentMeta> {
    let segs: Vec<Segment> = m
        .segments
        .iter()
        .map(|s| Segment::open(dir, s, m.width()))
        .collect::<Result<_>>()?;
    let mut probe = m.clone();
    probe.segments.push(SegmentMeta {
        name: next_segment_name(m),
        first_record: 0,
        records: 0,
        entries: 0,
        inputs: Vec::new(),
        files: Vec::new(),
        sources: Vec::new(),
    });
    let name = next_segment_name(&probe);
    let spill = spill_dir(options)?;
    let memory = options.memory_limit.unwrap_or(DEFAULT_MEMORY);
    let inputs: Vec<String> = m.segments.iter().flat_map(|s| s.inputs.clone()).collect();
    let result = if m.kind.wide() {
        merge_into::<u128>(dir, &name, spill.path(), memory, &segs, inputs)
    } else {
        merge_into::<u64>(dir, &name, spill.path(), memory, &segs, inputs)
    };
    // Sources are kept only when every segment has them (none read from standard input).
    let result = result.map(|mut seg| {
        if m.segments
            .iter()
            .all(|s| !s.sources.is_empty() || s.records == 0)
        {
            seg.sources = m.segments.iter().flat_map(|s| s.sources.clone()).collect();
        }
        seg
    });
    if result.is_err() {
        remove_segment_files(dir, &name);
    }
    result
}

fn merge_into<K: Key>(
    dir: &Path,
    name: &str,
    spill: &Path,
    memory: u64,
    segs: &[Segment],
    inputs: Vec<String>,
) -> Result<SegmentMeta> {
    let mut w = SegmentWriter::<K>::create(dir, name, spill, memory)?;
    // Records in order, without keys (names and offsets), then the keys merged in order.
    for s in segs {
        for r in 0..s.records {
            w.add(&s.name(r), &[])?;
        }
    }
    let mut heap = BinaryHeap::new();
    let mut cursors = vec![0usize; segs.len()];
    let entry =
        |s: &Segment, i: usize| -> Option<(K, u64)> { (i < s.entries).then(|| s.entry::<K>(i)) };
    for (i, s) in segs.iter().enumerate() {
        if let Some(e) = entry(s, 0) {
            heap.push(std::cmp::Reverse((e, i)));
        }
    }
    while let Some(std::cmp::Reverse(((k, r), i))) = heap.pop() {
        // One merged segment from record 0: refs are the ordinals.
        w.push_entry(k, r as u32)?;
        cursors[i] += 1;
        if let Some(e) = entry(&segs[i], cursors[i]) {
            heap.push(std::cmp::Reverse((e, i)));
        }
    }
    w.finish(0, inputs)
}

/// An open index: verified segments and, for queries, a filter over every key that answers
/// "certainly absent" for most keys without touching the segments.
pub struct Index {
    /// The directory.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    segments: Vec<Segment>,
    filter: FilterWords,
    filter_shift: u32,
}

/// The query filter's words, in anonymous memory asked to be backed by huge pages: its probes
/// are random, and an 8 MB filter spans 4 pages of 2 MB instead of 2,048 of 4 KB, so that most
/// probes no longer miss the TLB as well as the cache.
#[derive(Default)]
struct FilterWords {
    map: Option<memmap2::MmapMut>,
    len: usize,
}

impl FilterWords {
    fn zeroed(words: usize) -> Result<Self> {
        let bytes = words.checked_mul(8).ok_or_else(|| {
            Error::Config(format!("a query filter of {words} words is too large"))
        })?;
        let map = memmap2::MmapMut::map_anon(bytes.max(8))
            .map_err(|e| Error::io("query filter (anonymous memory)".to_string(), e))?;
        // A hint: without huge pages the filter works the same.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Ok(FilterWords {
            map: Some(map),
            len: words,
        })
    }

    #[inline]
    fn words(&self) -> &[u64] {
        match &self.map {
            // SAFETY: the map is page-aligned (so aligned for u64), `len * 8` bytes long, and
            // any bit pattern is a valid u64.
            Some(m) => unsafe { std::slice::from_raw_parts(m.as_ptr().cast::<u64>(), self.len) },
            None => &[],
        }
    }

    fn words_mut(&mut self) -> &mut [u64] {
        match &mut self.map {
            // SAFETY: as in `words`, and the map is borrowed mutably.
            Some(m) => unsafe {
                std::slice::from_raw_parts_mut(m.as_mut_ptr().cast::<u64>(), self.len)
            },
            None => &mut [],
        }
    }
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("path", &self.path)
            .field("kind", &self.manifest.kind)
            .field("records", &self.manifest.records)
            .finish()
    }
}

/// Filter bits per entry: three bits of one 64-bit word per key; about 0.5% false positives.
const FILTER_BITS_PER_ENTRY: u64 = 16;

/// Hint that `word` will be read soon.
#[inline(always)]
fn prefetch(word: &u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and changes no state visible to the program.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (word as *const u64).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = word;
}

#[inline]
fn filter_mask(h: u64) -> u64 {
    (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63)) | (1u64 << ((h >> 12) & 63))
}

impl Index {
    /// Open the index in `dir`, checking its manifest and every file's size and checksum.
    pub fn open(dir: &Path) -> Result<Index> {
        let manifest = Manifest::read(dir)?;
        let width = manifest.width();
        let segments = manifest
            .segments
            .iter()
            .map(|s| Segment::open(dir, s, width))
            .collect::<Result<Vec<_>>>()?;
        Ok(Index {
            path: dir.to_path_buf(),
            manifest,
            segments,
            filter: FilterWords::default(),
            filter_shift: 64,
        })
    }

    /// Open for queries of `kind`, building the filter within `memory` bytes (default: 16 bits
    /// per entry, at most 1 GiB).
    pub fn open_for(dir: &Path, kind: IndexKind, memory: Option<u64>) -> Result<Index> {
        let mut index = Index::open(dir)?;
        if index.manifest.kind != kind {
            return Err(Error::Config(format!(
                "{}: an index of kind {}, but this needs kind {} (build one with `tamis index \
                 build --kind {}`)",
                dir.display(),
                index.manifest.kind.as_str(),
                kind.as_str(),
                kind.as_str()
            )));
        }
        let want = index.manifest.entries.saturating_mul(FILTER_BITS_PER_ENTRY) / 8;
        let budget = memory.unwrap_or(DEFAULT_MEMORY).max(MIN_MEMORY);
        let bytes = want.min(budget).max(8);
        // A power of two of 64-bit words, addressed by the top bits of the key: the nearest to
        // the target (a smaller filter stays in cache better), within the budget.
        let target = (bytes / 8).max(1);
        let up = target.next_power_of_two().min(1 << 40);
        let mut words = if up - target <= target - up / 2 {
            up
        } else {
            up / 2
        };
        while words > 1 && words * 8 > budget {
            words /= 2;
        }
        let words = words.max(1);
        let bits = words.trailing_zeros();
        index.filter = FilterWords::zeroed(words as usize)?;
        index.filter_shift = 64 - bits;
        let shift = index.filter_shift;
        let filter = index.filter.words_mut();
        for s in &index.segments {
            if kind.wide() {
                s.for_each_key::<u128>(|k| {
                    let t = k.top();
                    let slot = t.checked_shr(shift).unwrap_or(0) as usize;
                    filter[slot] |= filter_mask(k as u64);
                })
            } else {
                s.for_each_key::<u64>(|k| {
                    let slot = k.checked_shr(shift).unwrap_or(0) as usize;
                    filter[slot] |= filter_mask(k);
                })
            }
        }
        Ok(index)
    }

    /// Words per n-gram (n-gram indexes).
    pub fn ngram(&self) -> usize {
        self.manifest.ngram.unwrap_or(DEFAULT_NGRAM)
    }

    #[inline]
    fn maybe(&self, top: u64, low: u64) -> bool {
        let filter = self.filter.words();
        if filter.is_empty() {
            return true;
        }
        let slot = top.checked_shr(self.filter_shift).unwrap_or(0) as usize;
        let m = filter_mask(low);
        filter[slot] & m == m
    }

    /// The ordinals of the records holding n-gram `key` (ascending), appended to `out`.
    pub fn find_ngram(&self, key: u64, out: &mut Vec<u64>) {
        if self.maybe(key, key) {
            self.find_ngram_unfiltered(key, out);
        }
    }

    /// The positions in `keys` of the n-grams the filter does not rule out, appended to `out`.
    /// The probes are independent loads, which the processor overlaps.
    pub fn maybe_ngrams(&self, keys: &[u64], out: &mut Vec<usize>) {
        let filter = self.filter.words();
        if filter.is_empty() {
            out.extend(0..keys.len());
            return;
        }
        let shift = self.filter_shift;
        let slot = |k: u64| k.checked_shr(shift).unwrap_or(0) as usize;
        // Filter words are cache misses (the filter is megabytes): ask for them a few keys
        // ahead, so that many are in flight at once.
        // 32 rather than 8: 4-8% faster on one thread (1.1 GB, benchmarks/RESULTS.md), as the
        // last-level cache's latency covers more than 8 probes.
        const AHEAD: usize = 32;
        for (j, &k) in keys.iter().enumerate() {
            if let Some(&next) = keys.get(j + AHEAD) {
                prefetch(&filter[slot(next)]);
            }
            let m = filter_mask(k);
            if filter[slot(k)] & m == m {
                out.push(j);
            }
        }
    }

    /// [`Index::find_ngram`] without asking the filter (for keys it let through).
    pub fn find_ngram_unfiltered(&self, key: u64, out: &mut Vec<u64>) {
        for s in &self.segments {
            s.find(key, out);
        }
    }

    /// Whether some record has band key `key` in band `band` (near indexes), and if so, its
    /// ordinals appended to `out`.
    pub fn find_band(&self, band: usize, key: u64, out: &mut Vec<u64>) {
        self.find_ngram(near_key(band, key), out);
    }

    /// The ordinals of the records whose text (or one of whose lines) hashes to `key`, appended
    /// to `out`.
    pub fn find_exact(&self, key: u128, out: &mut Vec<u64>) {
        if self.maybe(key.top(), key as u64) {
            for s in &self.segments {
                s.find(key, out);
            }
        }
    }

    /// The id of record `ordinal` (empty when out of range).
    pub fn record_id(&self, ordinal: u64) -> String {
        let i = self
            .segments
            .partition_point(|s| s.first_record + s.records <= ordinal);
        match self.segments.get(i) {
            Some(s) => s.name(ordinal - s.first_record),
            None => String::new(),
        }
    }

    /// Read the indexed records `ordinals` (ascending) again from the files the index was built
    /// from, calling `f(ordinal, text)` for each (the text it was indexed by). Every file read
    /// must be unchanged (size and modification time) and hold the same records (each id is
    /// checked); otherwise, or when the index was built from standard input, an error names it.
    pub fn for_each_source_text(
        &self,
        ordinals: &[u64],
        progress: &dyn Progress,
        mut f: impl FnMut(u64, &str) -> Result<()>,
    ) -> Result<()> {
        let mut want = ordinals.iter().copied().peekable();
        for seg in &self.manifest.segments {
            if want.peek().is_none() {
                break;
            }
            if seg.sources.is_empty() && seg.records > 0 {
                return Err(Error::Config(format!(
                    "{}: segment {} does not record its source files (it was built from \
                     standard input, or from files that could not be resolved): its documents \
                     cannot be read again (build the index from files)",
                    self.path.display(),
                    seg.name
                )));
            }
            let mut start = seg.first_record;
            for src in &seg.sources {
                let end = start + src.records;
                let mut needed = Vec::new();
                while let Some(&o) = want.peek() {
                    if o >= end {
                        break;
                    }
                    if o >= start {
                        needed.push(o - start);
                    }
                    want.next();
                }
                if !needed.is_empty() {
                    self.read_source(src, start, &needed, progress, &mut f)?;
                }
                start = end;
            }
        }
        Ok(())
    }

    fn read_source(
        &self,
        src: &segment::SourceFile,
        start: u64,
        needed: &[u64],
        progress: &dyn Progress,
        f: &mut dyn FnMut(u64, &str) -> Result<()>,
    ) -> Result<()> {
        let changed = |what: &str| {
            Error::Config(format!(
                "{}: {what} since the index {} was built from it: its documents cannot be read \
                 again (rebuild the index)",
                src.path,
                self.path.display()
            ))
        };
        let meta = std::fs::metadata(&src.path).map_err(|e| Error::io(src.path.clone(), e))?;
        if meta.len() != src.bytes || modified_ns(&meta) != src.modified_ns {
            return Err(changed("changed (size or modification time)"));
        }
        let io: IoOptions = serde_json::from_value(src.io.clone()).map_err(|e| {
            Error::Config(format!(
                "{}: the reading options of {} are not valid: {e}",
                self.path.join(MANIFEST).display(),
                src.path
            ))
        })?;
        let mut opts = run_options(&io, &self.manifest)?;
        opts.rejects = None;
        let mut file = crate::io::InputFile::from_path(Path::new(&src.path));
        file.name = src.name.clone();
        let fields = &self.manifest.fields;
        let mut k = 0u64;
        let mut next = 0usize;
        let mut scratch = Stats::default();
        scan(
            std::slice::from_ref(&file),
            &opts,
            &mut scratch,
            progress,
            |_, doc| Ok((doc.id.to_string(), record_text(doc, fields)?.into_owned())),
            |s| {
                let (id, text) = s.value;
                let ordinal = start + k;
                k += 1;
                if needed.get(next) == Some(&(ordinal - start)) {
                    next += 1;
                    if id != self.record_id(ordinal) {
                        return Err(changed(&format!(
                            "holds record {id:?} where the index has {:?}",
                            self.record_id(ordinal)
                        )));
                    }
                    f(ordinal, &text)?;
                }
                Ok(())
            },
        )?;
        if k != src.records {
            return Err(changed(&format!("holds {k} records, not {}", src.records)));
        }
        Ok(())
    }

    /// What the index holds, as a checksum of its manifest (which lists every file's
    /// checksum): equal fingerprints, equal indexes.
    pub fn fingerprint(&self) -> String {
        let bytes = serde_json::to_vec(&self.manifest).unwrap_or_default();
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))
    }

    /// Total bytes of the index's files (manifest included).
    pub fn bytes(&self) -> u64 {
        let files: u64 = self
            .manifest
            .segments
            .iter()
            .flat_map(|s| &s.files)
            .map(|f| f.bytes)
            .sum();
        files
            + std::fs::metadata(self.path.join(MANIFEST))
                .map(|m| m.len())
                .unwrap_or(0)
    }

    /// Check that this lines index hashes lines as `options` do.
    pub fn require_lines(&self, options: &crate::dedup::LinesOptions) -> Result<()> {
        self.require_normalize(options.normalize)?;
        let built = self.manifest.min_line_chars.unwrap_or(0);
        if built != options.min_line_chars {
            return Err(Error::Config(format!(
                "{}: built with min_line_chars {built}, but this run uses {}: other lines would \
                 be indexed than this run removes",
                self.path.display(),
                options.min_line_chars
            )));
        }
        self.require_text()
    }

    /// Check that this index holds records' texts, not `fields`.
    fn require_text(&self) -> Result<()> {
        if !self.manifest.fields.is_empty() {
            return Err(Error::Config(format!(
                "{}: indexes fields {}, not the text",
                self.path.display(),
                self.manifest.fields.join(",")
            )));
        }
        Ok(())
    }

    /// Check that this near index holds band keys made with `params`.
    pub fn require_minhash(&self, params: &crate::dedup::near::MinHashParams) -> Result<()> {
        let built = self.manifest.minhash;
        if built.as_ref() != Some(params) {
            let show = |p: &crate::dedup::near::MinHashParams| {
                format!(
                    "num_perm {}, bands {}, rows {}, ngram {}, shingle {}, seed {}, sketch {}",
                    p.num_perm,
                    p.bands,
                    p.rows,
                    p.ngram,
                    p.shingling.as_str(),
                    p.seed,
                    p.sketch.as_str()
                )
            };
            return Err(Error::Config(format!(
                "{}: built with {}, but this run uses {}: the band keys would not match",
                self.path.display(),
                built
                    .as_ref()
                    .map_or_else(|| "no MinHash parameters".into(), show),
                show(params)
            )));
        }
        self.require_text()
    }

    /// Check that this index hashes exact texts under `normalize`.
    pub fn require_normalize(&self, normalize: Normalize) -> Result<()> {
        if self.manifest.normalize != normalize {
            return Err(Error::Config(format!(
                "{}: built with normalize {}, but this run uses {}: the hashes would not match",
                self.path.display(),
                self.manifest.normalize.as_str(),
                normalize.as_str()
            )));
        }
        Ok(())
    }
}

/// `tamis index info`: the manifest with sizes, after checking every file.
pub fn index_info(dir: &Path) -> Result<serde_json::Value> {
    let index = Index::open(dir)?;
    let m = &index.manifest;
    let bytes = index.bytes();
    let per = |n: u64| {
        if n == 0 {
            serde_json::Value::Null
        } else {
            serde_json::json!((bytes as f64 / n as f64 * 100.0).round() / 100.0)
        }
    };
    Ok(serde_json::json!({
        "path": dir.display().to_string(),
        "kind": m.kind.as_str(),
        "ngram": m.ngram,
        "normalize": m.normalize.as_str(),
        "min_line_chars": m.min_line_chars,
        "minhash": m.minhash,
        "hash": m.hash,
        "key": m.key,
        "fields": m.fields,
        "records": m.records,
        "entries": m.entries,
        "segments": m.segments.len(),
        "bytes": bytes,
        "bytes_per_entry": per(m.entries),
        "bytes_per_record": per(m.records),
        "inputs": m.segments.iter().flat_map(|s| s.inputs.clone()).collect::<Vec<_>>(),
        "verified": true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_window_hashes_equal_the_formula() {
        let words: Vec<(u64, usize, usize)> = (0..40u64)
            .map(|i| (xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()), 0, 0))
            .collect();
        for n in [1usize, 2, 13, 40] {
            let mut got = Vec::new();
            window_hashes(&words, n, &mut got);
            assert_eq!(got.len(), words.len() - n + 1);
            for (j, &g) in got.iter().enumerate() {
                let mut h = 0u64;
                for (i, w) in words[j..j + n].iter().enumerate() {
                    let mut weight = 1u64;
                    for _ in 0..(n - 1 - i) {
                        weight = weight.wrapping_mul(NGRAM_BASE);
                    }
                    h = h.wrapping_add(w.0.wrapping_mul(weight));
                }
                assert_eq!(g, fmix64(h.wrapping_add(n as u64)));
            }
        }
        let mut none = Vec::new();
        window_hashes(&words[..5], 13, &mut none);
        assert!(none.is_empty());
    }
}
