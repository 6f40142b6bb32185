//! Index segments: sorted `(key, record)` entries on disk, memory-mapped for queries.
//!
//! A segment `NAME` is four files in the index directory. Entries `(key, record)` are sorted by
//! key, then record (the record's ordinal within the segment). 128-bit keys (text and line
//! hashes) are stored plainly:
//! - `NAME.keys`: the keys, little-endian, 16 bytes each;
//! - `NAME.refs`: each entry's record, `u32` little-endian;
//!
//! 64-bit keys (n-gram hashes, band keys), uniform hashes, are stored packed (quotienting): with
//! `2^q` buckets (about 16 entries per bucket), an entry's top `q` key bits are its bucket, so
//! only the other `64 - q` bits and the record (as many bits as the largest ordinal needs) are
//! stored, about 8.5 bytes per entry instead of 12:
//! - `NAME.keys`: each entry's `remainder | record << (64 - q)`, `64 - q + record_bits` bits
//!   each, back to back, least significant bit first, then 16 zero bytes;
//! - `NAME.dir`: `2^q + 1` little-endian `u64`: the first entry of each bucket, then the count;
//!
//! and for both:
//! - `NAME.names`: the records' ids, UTF-8, front-coded in blocks of [`ID_BLOCK`] records: per
//!   record, a LEB128 varint of the bytes it shares with the previous id of its block (0 for a
//!   block's first), a varint of the bytes that follow, and those bytes (ids are often numbered:
//!   `doc-000123`, `doc-000124` cost about 3 bytes each instead of 10 plus an 8-byte offset);
//! - `NAME.ids`: `ceil(records / ID_BLOCK) + 1` little-endian `u64` offsets into `NAME.names`:
//!   where each block starts, then the end.
//!
//! The manifest holds each file's size and XXH3-64 checksum. Entries are gathered in memory up to
//! a budget, sorted, spilled as runs when the budget is reached, and merged into the segment.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use rayon::slice::ParallelSliceMut;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A key type of an index: stored little-endian, ordered as an unsigned integer.
pub trait Key: Copy + Ord + Send + Sync + std::fmt::Debug + 'static {
    /// Bytes per key on disk.
    const WIDTH: usize;
    /// Little-endian bytes into `out` (`WIDTH` long).
    fn put(self, out: &mut Vec<u8>);
    /// From `WIDTH` little-endian bytes.
    fn get(bytes: &[u8]) -> Self;
    /// The top 64 bits (keys are hashes: uniform, which interpolation search uses).
    fn top(self) -> u64;
}

impl Key for u64 {
    const WIDTH: usize = 8;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> Self {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[..8]);
        u64::from_le_bytes(b)
    }
    fn top(self) -> u64 {
        self
    }
}

impl Key for u128 {
    const WIDTH: usize = 16;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> Self {
        let mut b = [0u8; 16];
        b.copy_from_slice(&bytes[..16]);
        u128::from_le_bytes(b)
    }
    fn top(self) -> u64 {
        (self >> 64) as u64
    }
}

/// A file of a segment as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// File name inside the index directory.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// XXH3-64 of the content, hexadecimal.
    pub xxh3: String,
}

/// A segment as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// File name prefix.
    pub name: String,
    /// Ordinal (over the whole index) of the segment's first record.
    pub first_record: u64,
    /// Records (documents or evaluation items) in the segment.
    pub records: u64,
    /// Distinct `(key, record)` entries.
    pub entries: u64,
    /// The inputs it was built from, as given.
    pub inputs: Vec<String>,
    /// Its files: keys, refs (or dir), ids, names.
    pub files: Vec<FileMeta>,
    /// The files its records were read from, in order (none when read from standard input).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceFile>,
}

/// A file records of a segment were read from, to read them again (`dedup near --verify
/// --against`): where it is, what it was, and how it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// Absolute path.
    pub path: String,
    /// The name generated ids were made from (`NAME:LINE`).
    pub name: String,
    /// Size in bytes when indexed.
    pub bytes: u64,
    /// Modification time when indexed (nanoseconds since the Unix epoch).
    pub modified_ns: Option<u64>,
    /// Valid records read from it.
    pub records: u64,
    /// The reading options (`IoOptions`).
    pub io: serde_json::Value,
}

/// Records per front-coded block of ids.
pub const ID_BLOCK: u64 = 16;

/// Append `v` as a LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A LEB128 varint at `*pos` (advanced past it), `None` when malformed or cut.
fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Most records in one segment (refs are `u32`).
pub const MAX_RECORDS: u64 = u32::MAX as u64;

/// The four files of a segment with keys of `width` bytes, in manifest order.
pub fn extensions(width: usize) -> [&'static str; 4] {
    if width == 8 {
        ["keys", "dir", "ids", "names"]
    } else {
        ["keys", "refs", "ids", "names"]
    }
}

/// Every extension a segment file may have (to remove a segment's files).
pub const ALL_EXTENSIONS: [&str; 5] = ["keys", "refs", "dir", "ids", "names"];

/// Entries per bucket aimed at by the packed layout.
const BUCKET_ENTRIES: u64 = 16;
/// Most bucket bits.
const MAX_BUCKET_BITS: u32 = 40;
/// Zero bytes after the packed entries, so that any entry is read with one 16-byte load.
const PACKED_PAD: usize = 16;

/// Bits of a packed entry's remainder and record, with `2^buckets_log2` buckets and `records`
/// records.
fn packed_bits(buckets_log2: u32, records: u64) -> (u32, u32) {
    let record_bits = (64 - records.saturating_sub(1).leading_zeros()).max(1);
    (64 - buckets_log2, record_bits)
}

/// Bucket bits for about [`BUCKET_ENTRIES`] entries per bucket.
fn bucket_bits(entries: u64) -> u32 {
    let per = entries / BUCKET_ENTRIES;
    if per < 2 {
        0
    } else {
        (63 - per.leading_zeros()).min(MAX_BUCKET_BITS)
    }
}

/// Writes the packed layout from entries arriving in order.
struct PackedWriter {
    keys: BufWriter<File>,
    keys_path: PathBuf,
    dir: BufWriter<File>,
    dir_path: PathBuf,
    q: u32,
    rem_bits: u32,
    width: u32,
    acc: u128,
    nbits: u32,
    next_bucket: u64,
    entries: u64,
}

impl PackedWriter {
    fn push(&mut self, key: u64, record: u32) -> Result<()> {
        let bucket = key.checked_shr(self.rem_bits).unwrap_or(0);
        while self.next_bucket <= bucket {
            self.dir
                .write_all(&self.entries.to_le_bytes())
                .map_err(io(&self.dir_path))?;
            self.next_bucket += 1;
        }
        let rem = if self.rem_bits == 64 {
            key
        } else {
            key & ((1u64 << self.rem_bits) - 1)
        };
        self.put(rem, self.rem_bits)?;
        self.put(u64::from(record), self.width - self.rem_bits)?;
        self.entries += 1;
        Ok(())
    }

    /// Append the low `n` (at most 64) bits of `v`; fewer than 64 bits stay pending.
    fn put(&mut self, v: u64, n: u32) -> Result<()> {
        self.acc |= u128::from(v) << self.nbits;
        self.nbits += n;
        if self.nbits >= 64 {
            self.keys
                .write_all(&(self.acc as u64).to_le_bytes())
                .map_err(io(&self.keys_path))?;
            self.acc >>= 64;
            self.nbits -= 64;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        while self.next_bucket <= (1u64 << self.q) {
            self.dir
                .write_all(&self.entries.to_le_bytes())
                .map_err(io(&self.dir_path))?;
            self.next_bucket += 1;
        }
        let tail = self.nbits.div_ceil(8) as usize;
        let bytes = self.acc.to_le_bytes();
        self.keys
            .write_all(&bytes[..tail])
            .and_then(|_| self.keys.write_all(&[0u8; PACKED_PAD]))
            .and_then(|_| self.keys.flush())
            .map_err(io(&self.keys_path))?;
        self.dir.flush().map_err(io(&self.dir_path))?;
        Ok(self.entries)
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path.display().to_string(), e)
}

/// Gathers the entries and record ids of one new segment.
pub struct SegmentWriter<K: Key> {
    dir: PathBuf,
    name: String,
    spill: PathBuf,
    buffer: Vec<(K, u32)>,
    /// Entries buffered before a run is spilled.
    budget: usize,
    runs: Vec<PathBuf>,
    /// Entries written to runs.
    spilled: u64,
    ids: BufWriter<File>,
    names: BufWriter<File>,
    names_len: u64,
    records: u64,
    /// The previous id of the current block, and the encoding of the next one.
    previous: Vec<u8>,
    encoded: Vec<u8>,
}

impl<K: Key> SegmentWriter<K> {
    /// A segment `name` in `dir`, spilling runs to `spill` beyond `memory` bytes of entries.
    pub fn create(dir: &Path, name: &str, spill: &Path, memory: u64) -> Result<Self> {
        let ids_path = dir.join(format!("{name}.ids"));
        let names_path = dir.join(format!("{name}.names"));
        let ids = BufWriter::new(File::create(&ids_path).map_err(io(&ids_path))?);
        let names = BufWriter::new(File::create(&names_path).map_err(io(&names_path))?);
        let entry = std::mem::size_of::<(K, u32)>() as u64;
        Ok(SegmentWriter {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            spill: spill.to_path_buf(),
            buffer: Vec::new(),
            budget: (memory / entry).max(1024) as usize,
            runs: Vec::new(),
            spilled: 0,
            ids,
            names,
            names_len: 0,
            records: 0,
            previous: Vec::new(),
            encoded: Vec::new(),
        })
    }

    /// Records added so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Add a record with its keys (any order, repeats allowed).
    pub fn add(&mut self, id: &str, keys: &[K]) -> Result<()> {
        if self.records >= MAX_RECORDS {
            return Err(Error::Config(format!(
                "an index segment holds at most {MAX_RECORDS} records: build or add in smaller steps"
            )));
        }
        let record = self.records as u32;
        let id = id.as_bytes();
        let shared = if self.records.is_multiple_of(ID_BLOCK) {
            let ids_path = self.dir.join(format!("{}.ids", self.name));
            self.ids
                .write_all(&self.names_len.to_le_bytes())
                .map_err(io(&ids_path))?;
            0
        } else {
            id.iter()
                .zip(&self.previous)
                .take_while(|(a, b)| a == b)
                .count()
        };
        self.records += 1;
        self.encoded.clear();
        put_varint(&mut self.encoded, shared as u64);
        put_varint(&mut self.encoded, (id.len() - shared) as u64);
        self.encoded.extend_from_slice(&id[shared..]);
        let names_path = self.dir.join(format!("{}.names", self.name));
        self.names
            .write_all(&self.encoded)
            .map_err(io(&names_path))?;
        self.names_len += self.encoded.len() as u64;
        self.previous.clear();
        self.previous.extend_from_slice(id);
        self.buffer.extend(keys.iter().map(|&k| (k, record)));
        if self.buffer.len() >= self.budget {
            self.spill_run()?;
        }
        Ok(())
    }

    /// Add one entry of an already added record (merging segments).
    pub fn push_entry(&mut self, key: K, record: u32) -> Result<()> {
        self.buffer.push((key, record));
        if self.buffer.len() >= self.budget {
            self.spill_run()?;
        }
        Ok(())
    }

    fn sort_buffer(&mut self) {
        self.buffer.par_sort_unstable();
        self.buffer.dedup();
    }

    fn spill_run(&mut self) -> Result<()> {
        self.sort_buffer();
        let path = self.spill.join(format!("run-{:06}", self.runs.len()));
        let mut w = BufWriter::new(File::create(&path).map_err(io(&path))?);
        let mut bytes = Vec::with_capacity(K::WIDTH + 4);
        for &(k, r) in &self.buffer {
            bytes.clear();
            k.put(&mut bytes);
            bytes.extend_from_slice(&r.to_le_bytes());
            w.write_all(&bytes).map_err(io(&path))?;
        }
        w.flush().map_err(io(&path))?;
        self.spilled += self.buffer.len() as u64;
        self.buffer.clear();
        self.runs.push(path);
        Ok(())
    }

    /// Write the entries (merging spilled runs) and return the segment's manifest entry.
    pub fn finish(mut self, first_record: u64, inputs: Vec<String>) -> Result<SegmentMeta> {
        let exts = extensions(K::WIDTH);
        let keys_path = self.dir.join(format!("{}.keys", self.name));
        let side_path = self.dir.join(format!("{}.{}", self.name, exts[1]));
        let keys = BufWriter::new(File::create(&keys_path).map_err(io(&keys_path))?);
        let side = BufWriter::new(File::create(&side_path).map_err(io(&side_path))?);
        if self.runs.is_empty() {
            self.sort_buffer();
        } else if !self.buffer.is_empty() {
            self.spill_run()?;
        }
        let upper = self.spilled + self.buffer.len() as u64;
        let entries = if K::WIDTH == 8 {
            let q = bucket_bits(upper);
            let (rem_bits, record_bits) = packed_bits(q, self.records);
            let mut w = PackedWriter {
                keys,
                keys_path: keys_path.clone(),
                dir: side,
                dir_path: side_path.clone(),
                q,
                rem_bits,
                width: rem_bits + record_bits,
                acc: 0,
                nbits: 0,
                next_bucket: 0,
                entries: 0,
            };
            self.emit_all(&mut |k: K, r| w.push(k.top(), r))?;
            w.finish()?
        } else {
            let (mut keys, mut refs) = (keys, side);
            let mut entries = 0u64;
            let mut bytes = Vec::with_capacity(K::WIDTH);
            self.emit_all(&mut |k: K, r: u32| {
                bytes.clear();
                k.put(&mut bytes);
                keys.write_all(&bytes).map_err(io(&keys_path))?;
                refs.write_all(&r.to_le_bytes()).map_err(io(&side_path))?;
                entries += 1;
                Ok(())
            })?;
            keys.flush().map_err(io(&keys_path))?;
            refs.flush().map_err(io(&side_path))?;
            entries
        };
        let ids_path = self.dir.join(format!("{}.ids", self.name));
        let names_path = self.dir.join(format!("{}.names", self.name));
        self.ids
            .write_all(&self.names_len.to_le_bytes())
            .map_err(io(&ids_path))?;
        self.ids.flush().map_err(io(&ids_path))?;
        self.names.flush().map_err(io(&names_path))?;
        let mut files = Vec::new();
        for ext in exts {
            files.push(file_meta(&self.dir, &format!("{}.{ext}", self.name))?);
        }
        Ok(SegmentMeta {
            name: self.name.clone(),
            first_record,
            records: self.records,
            entries,
            inputs,
            files,
            sources: Vec::new(),
        })
    }

    /// Every entry in order: the sorted buffer, or the spilled runs merged (then removed).
    fn emit_all(&mut self, emit: &mut dyn FnMut(K, u32) -> Result<()>) -> Result<()> {
        if self.runs.is_empty() {
            for &(k, r) in &self.buffer {
                emit(k, r)?;
            }
            return Ok(());
        }
        merge_runs::<K>(&self.runs, emit)?;
        for r in &self.runs {
            let _ = std::fs::remove_file(r);
        }
        Ok(())
    }
}

/// K-way merge of sorted runs, dropping repeated entries.
fn merge_runs<K: Key>(runs: &[PathBuf], emit: &mut dyn FnMut(K, u32) -> Result<()>) -> Result<()> {
    struct Run {
        reader: BufReader<File>,
        path: PathBuf,
    }
    fn next<K: Key>(run: &mut Run) -> Result<Option<(K, u32)>> {
        let mut buf = [0u8; 20];
        let width = K::WIDTH + 4;
        match run.reader.read_exact(&mut buf[..width]) {
            Ok(()) => {
                let mut r = [0u8; 4];
                r.copy_from_slice(&buf[K::WIDTH..width]);
                Ok(Some((K::get(&buf), u32::from_le_bytes(r))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(Error::io(run.path.display().to_string(), e)),
        }
    }
    let mut readers = Vec::with_capacity(runs.len());
    let mut heap = BinaryHeap::new();
    for (i, path) in runs.iter().enumerate() {
        let file = File::open(path).map_err(io(path))?;
        let mut run = Run {
            reader: BufReader::with_capacity(1 << 16, file),
            path: path.clone(),
        };
        if let Some(e) = next::<K>(&mut run)? {
            heap.push(std::cmp::Reverse((e, i)));
        }
        readers.push(run);
    }
    let mut last: Option<(K, u32)> = None;
    while let Some(std::cmp::Reverse((e, i))) = heap.pop() {
        if last != Some(e) {
            emit(e.0, e.1)?;
            last = Some(e);
        }
        if let Some(n) = next::<K>(&mut readers[i])? {
            heap.push(std::cmp::Reverse((n, i)));
        }
    }
    Ok(())
}

/// Size and checksum of `dir/name`.
pub fn file_meta(dir: &Path, name: &str) -> Result<FileMeta> {
    let path = dir.join(name);
    let map = map_file(&path)?;
    let bytes = map.as_deref().unwrap_or(&[]);
    Ok(FileMeta {
        name: name.to_string(),
        bytes: bytes.len() as u64,
        xxh3: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes)),
    })
}

/// Memory-map `path` read-only (`None` for an empty file).
fn map_file(path: &Path) -> Result<Option<Mmap>> {
    let file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: index files are written once and never modified in place (updates write new
    // segments and a new manifest); a file changed underneath would give wrong answers, not
    // memory errors, since every access is bounds-checked.
    let map = unsafe { Mmap::map(&file) }.map_err(io(path))?;
    Ok(Some(map))
}

/// An open, verified segment.
pub struct Segment {
    keys: Option<Mmap>,
    /// `.refs` (plain layout) or `.dir` (packed layout).
    side: Option<Mmap>,
    ids: Option<Mmap>,
    names: Option<Mmap>,
    width: usize,
    packed: Option<Packed>,
    /// Entries.
    pub entries: usize,
    /// Ordinal of the first record.
    pub first_record: u64,
    /// Records.
    pub records: u64,
}

/// The shape of a packed segment.
#[derive(Debug, Clone, Copy)]
struct Packed {
    /// Buckets (a power of two).
    buckets: u64,
    rem_bits: u32,
    record_bits: u32,
}

fn bytes(m: &Option<Mmap>) -> &[u8] {
    m.as_deref().unwrap_or(&[])
}

impl Segment {
    /// Open the segment `meta` of the index in `dir`, checking every file's size and checksum
    /// and the files' consistency.
    pub fn open(dir: &Path, meta: &SegmentMeta, width: usize) -> Result<Segment> {
        let mut maps = Vec::new();
        for (i, ext) in extensions(width).iter().enumerate() {
            let name = format!("{}.{ext}", meta.name);
            let path = dir.join(&name);
            let bad = |what: String| Error::Config(format!("{}: {what}", path.display()));
            let expected = meta
                .files
                .get(i)
                .filter(|f| f.name == name)
                .ok_or_else(|| bad("not listed in the index manifest".into()))?;
            if !path.exists() {
                return Err(bad("missing: the index is incomplete".into()));
            }
            let map = map_file(&path)?;
            let data = bytes(&map);
            if data.len() as u64 != expected.bytes {
                return Err(bad(format!(
                    "{} bytes, the manifest says {}: the index is truncated or damaged",
                    data.len(),
                    expected.bytes
                )));
            }
            let sum = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(data));
            if sum != expected.xxh3 {
                return Err(bad(format!(
                    "checksum {sum} differs from the manifest's {}: the index is corrupted",
                    expected.xxh3
                )));
            }
            maps.push(map);
        }
        let mut it = maps.into_iter();
        let (keys, side, ids, names) = (
            it.next().flatten(),
            it.next().flatten(),
            it.next().flatten(),
            it.next().flatten(),
        );
        let mut seg = Segment {
            entries: meta.entries as usize,
            first_record: meta.first_record,
            records: meta.records,
            width,
            packed: None,
            keys,
            side,
            ids,
            names,
        };
        let len = |m: &Option<Mmap>| Some(bytes(m).len() as u64);
        let blocks = meta.records.div_ceil(ID_BLOCK);
        let records_ok = len(&seg.ids) == blocks.checked_add(1).and_then(|b| b.checked_mul(8))
            && seg.name_offset(blocks as usize) == bytes(&seg.names).len() as u64;
        let entries_ok = if width == 8 {
            seg.packed = seg.packed_shape(meta);
            seg.packed.is_some()
        } else {
            len(&seg.keys) == meta.entries.checked_mul(width as u64)
                && len(&seg.side) == meta.entries.checked_mul(4)
        };
        if !(records_ok && entries_ok) {
            return Err(Error::Config(format!(
                "{}: the segment's files do not agree with its entry and record counts",
                dir.join(&meta.name).display()
            )));
        }
        Ok(seg)
    }

    /// The packed layout's shape, when the `.dir` and `.keys` files agree with the counts: a
    /// power of two of buckets, offsets from 0 to `entries` never decreasing, and the bits.
    fn packed_shape(&self, meta: &SegmentMeta) -> Option<Packed> {
        let dir = bytes(&self.side);
        let slots = (dir.len() / 8) as u64;
        if !dir.len().is_multiple_of(8) || slots < 2 || !(slots - 1).is_power_of_two() {
            return None;
        }
        let buckets = slots - 1;
        let q = buckets.trailing_zeros();
        if q > MAX_BUCKET_BITS {
            return None;
        }
        let mut last = 0u64;
        for c in dir.chunks_exact(8) {
            let o = u64::get(c);
            if o < last || o > meta.entries {
                return None;
            }
            last = o;
        }
        if u64::get(dir) != 0 || last != meta.entries {
            return None;
        }
        let (rem_bits, record_bits) = packed_bits(q, meta.records);
        let bits = meta
            .entries
            .checked_mul(u64::from(rem_bits + record_bits))?;
        let want = bits.div_ceil(8).checked_add(PACKED_PAD as u64)?;
        (bytes(&self.keys).len() as u64 == want).then_some(Packed {
            buckets,
            rem_bits,
            record_bits,
        })
    }

    /// First entry of bucket `b` (`b == buckets`: the entry count).
    #[inline]
    fn bucket_start(&self, b: u64) -> usize {
        let d = bytes(&self.side);
        let at = b as usize * 8;
        u64::get(&d[at..at + 8]) as usize
    }

    /// Packed entry `i`: its key's remainder and its record.
    #[inline]
    fn packed_at(&self, p: &Packed, i: usize) -> (u64, u32) {
        let width = u64::from(p.rem_bits + p.record_bits);
        let bit = i as u64 * width;
        let at = (bit / 8) as usize;
        let mut b = [0u8; 16];
        b.copy_from_slice(&bytes(&self.keys)[at..at + 16]);
        let v = u128::from_le_bytes(b) >> (bit % 8);
        let rem = if p.rem_bits == 64 {
            v as u64
        } else {
            v as u64 & ((1u64 << p.rem_bits) - 1)
        };
        let record = (v >> p.rem_bits) as u64 & ((1u64 << p.record_bits) - 1);
        (rem, record as u32)
    }

    /// The full key of packed entry `i` in bucket `bucket`.
    #[inline]
    fn packed_key(p: &Packed, bucket: u64, rem: u64) -> u64 {
        bucket.checked_shl(p.rem_bits).unwrap_or(0) | rem
    }

    /// The bucket holding packed entry `i`.
    fn bucket_of(&self, p: &Packed, i: usize) -> u64 {
        // The last bucket whose start is <= i.
        let (mut lo, mut hi) = (0u64, p.buckets);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.bucket_start(mid) <= i {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    #[inline]
    fn key<K: Key>(&self, i: usize) -> K {
        K::get(&bytes(&self.keys)[i * self.width..])
    }

    #[inline]
    fn record(&self, i: usize) -> u32 {
        let b = &bytes(&self.side)[i * 4..i * 4 + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    fn name_offset(&self, r: usize) -> u64 {
        let b = bytes(&self.ids);
        match b.get(r * 8..r * 8 + 8) {
            Some(s) => u64::get(s),
            None => u64::MAX,
        }
    }

    /// Entry `i`: its key and the ordinal (over the whole index) of its record.
    pub fn entry<K: Key>(&self, i: usize) -> (K, u64) {
        if let Some(p) = self.packed {
            let (rem, record) = self.packed_at(&p, i);
            let key = Self::packed_key(&p, self.bucket_of(&p, i), rem);
            return (
                K::get(&key.to_le_bytes()),
                self.first_record + u64::from(record),
            );
        }
        (self.key(i), self.first_record + self.record(i) as u64)
    }

    /// The id of record `r` (ordinal within the segment); empty when out of range.
    pub fn name(&self, r: u64) -> String {
        let block = (r / ID_BLOCK) as usize;
        let (a, b) = (self.name_offset(block), self.name_offset(block + 1));
        let Some(data) = usize::try_from(a)
            .ok()
            .zip(usize::try_from(b).ok())
            .and_then(|(a, b)| bytes(&self.names).get(a..b))
        else {
            return String::new();
        };
        // The checksum vouches for the file; a malformed block still never reads out of it.
        let decode = || -> Option<Vec<u8>> {
            let mut id: Vec<u8> = Vec::new();
            let mut pos = 0usize;
            for _ in 0..=r % ID_BLOCK {
                let shared = usize::try_from(get_varint(data, &mut pos)?).ok()?;
                let rest = usize::try_from(get_varint(data, &mut pos)?).ok()?;
                if shared > id.len() {
                    return None;
                }
                id.truncate(shared);
                id.extend_from_slice(data.get(pos..pos.checked_add(rest)?)?);
                pos += rest;
            }
            Some(id)
        };
        decode()
            .and_then(|id| String::from_utf8(id).ok())
            .unwrap_or_default()
    }

    /// Every key, in order (to build the query filter).
    pub fn for_each_key<K: Key>(&self, mut f: impl FnMut(K)) {
        if let Some(p) = self.packed {
            for b in 0..p.buckets {
                for i in self.bucket_start(b)..self.bucket_start(b + 1) {
                    let key = Self::packed_key(&p, b, self.packed_at(&p, i).0);
                    f(K::get(&key.to_le_bytes()));
                }
            }
            return;
        }
        for chunk in bytes(&self.keys).chunks_exact(self.width) {
            f(K::get(chunk));
        }
    }

    /// First entry whose key is `>= key`: an interpolation guess (keys are uniform hashes),
    /// then a galloping search to bracket the key, then binary search.
    fn lower_bound<K: Key>(&self, key: K) -> usize {
        let n = self.entries;
        if n == 0 {
            return 0;
        }
        let guess = (((key.top() as u128) * (n as u128)) >> 64) as usize;
        let guess = guess.min(n - 1);
        let (mut lo, mut hi);
        if self.key::<K>(guess) < key {
            lo = guess + 1;
            hi = n;
            let mut step = 1;
            while lo + step - 1 < n {
                let probe = lo + step - 1;
                if self.key::<K>(probe) >= key {
                    hi = probe;
                    break;
                }
                lo = probe + 1;
                step *= 2;
            }
        } else {
            hi = guess;
            lo = 0;
            let mut step = 1;
            while hi >= step {
                let probe = hi - step;
                if self.key::<K>(probe) < key {
                    lo = probe + 1;
                    break;
                }
                hi = probe;
                step *= 2;
            }
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.key::<K>(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Append the ordinals (over the whole index) of the records holding `key`, ascending.
    pub fn find<K: Key>(&self, key: K, out: &mut Vec<u64>) {
        if let Some(p) = self.packed {
            let key = key.top();
            let bucket = key.checked_shr(p.rem_bits).unwrap_or(0);
            let rem = if p.rem_bits == 64 {
                key
            } else {
                key & ((1u64 << p.rem_bits) - 1)
            };
            let (mut lo, mut hi) = (self.bucket_start(bucket), self.bucket_start(bucket + 1));
            let end = hi;
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if self.packed_at(&p, mid).0 < rem {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            while lo < end {
                let (r, record) = self.packed_at(&p, lo);
                if r != rem {
                    break;
                }
                out.push(self.first_record + u64::from(record));
                lo += 1;
            }
            return;
        }
        let mut i = self.lower_bound(key);
        while i < self.entries && self.key::<K>(i) == key {
            out.push(self.first_record + self.record(i) as u64);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_coded_ids_read_back_exactly() {
        // Shared prefixes within and across blocks, empty ids, multi-byte characters cut in
        // the middle by a shared prefix, long ids (two-byte varints), a last partial block.
        let mut ids: Vec<String> = vec![String::new(), "a".into(), String::new()];
        ids.extend((0..40).map(|i| format!("shard-0007/doc-{i:06}")));
        ids.extend(["é", "éa", "èb", "ü", "", "x".repeat(300).as_str(), "xy"].map(String::from));
        ids.extend((0..21).map(|i| format!("{}-{i}", "日本語".repeat(i % 4))));
        for n in [0, 1, 15, 16, 17, ids.len()] {
            let dir = tempfile::tempdir().unwrap();
            let spill = tempfile::tempdir().unwrap();
            let mut w =
                SegmentWriter::<u64>::create(dir.path(), "s", spill.path(), 1 << 20).unwrap();
            for id in &ids[..n] {
                w.add(id, &[7]).unwrap();
            }
            let meta = w.finish(0, Vec::new()).unwrap();
            let seg = Segment::open(dir.path(), &meta, 8).unwrap();
            for (r, id) in ids[..n].iter().enumerate() {
                assert_eq!(&seg.name(r as u64), id, "record {r} of {n}");
            }
            assert_eq!(seg.name(n as u64), "");
            assert_eq!(seg.name(u64::MAX), "");
        }
    }

    #[test]
    fn written_segments_find_every_key_with_and_without_runs() {
        for memory in [1u64 << 30, 1] {
            let dir = tempfile::tempdir().unwrap();
            let spill = tempfile::tempdir().unwrap();
            let mut w =
                SegmentWriter::<u64>::create(dir.path(), "s", spill.path(), memory).unwrap();
            let mut expected: Vec<(u64, u32)> = Vec::new();
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for r in 0..3000u32 {
                let mut keys = Vec::new();
                for _ in 0..5 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    // Few distinct keys: shared between records and repeated within one.
                    let k = (x >> 50).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    keys.push(k);
                    expected.push((k, r));
                }
                w.add(&format!("doc-{r}"), &keys).unwrap();
            }
            let meta = w.finish(100, vec!["in".into()]).unwrap();
            expected.sort_unstable();
            expected.dedup();
            assert_eq!(meta.entries as usize, expected.len());
            let seg = Segment::open(dir.path(), &meta, 8).unwrap();
            assert_eq!(seg.name(7), "doc-7");
            for &(k, _) in &expected {
                let mut got = Vec::new();
                seg.find(k, &mut got);
                let want: Vec<u64> = expected
                    .iter()
                    .filter(|e| e.0 == k)
                    .map(|e| 100 + e.1 as u64)
                    .collect();
                assert_eq!(got, want);
            }
            let mut none = Vec::new();
            for k in [0u64, 1, 12345, u64::MAX - 1, u64::MAX] {
                if !expected.iter().any(|e| e.0 == k) {
                    seg.find(k, &mut none);
                }
            }
            assert!(none.is_empty());
        }
    }
}
