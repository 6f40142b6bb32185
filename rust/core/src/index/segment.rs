//! Index segments: sorted `(key, record)` entries on disk, memory-mapped for queries.
//!
//! A segment `NAME` is four files in the index directory:
//! - `NAME.keys`: the keys, sorted ascending, little-endian (8 bytes for n-gram hashes, 16 for
//!   exact-text hashes);
//! - `NAME.refs`: for each key, the record it came from (`u32`, little-endian, ordinal within
//!   the segment); equal keys are ordered by record;
//! - `NAME.ids`: `records + 1` little-endian `u64` offsets into `NAME.names`;
//! - `NAME.names`: the records' ids, UTF-8, back to back.
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
    /// Its files: keys, refs, ids, names.
    pub files: Vec<FileMeta>,
}

/// Most records in one segment (refs are `u32`).
pub const MAX_RECORDS: u64 = u32::MAX as u64;

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
    ids: BufWriter<File>,
    names: BufWriter<File>,
    names_len: u64,
    records: u64,
}

impl<K: Key> SegmentWriter<K> {
    /// A segment `name` in `dir`, spilling runs to `spill` beyond `memory` bytes of entries.
    pub fn create(dir: &Path, name: &str, spill: &Path, memory: u64) -> Result<Self> {
        let ids_path = dir.join(format!("{name}.ids"));
        let names_path = dir.join(format!("{name}.names"));
        let mut ids = BufWriter::new(File::create(&ids_path).map_err(io(&ids_path))?);
        ids.write_all(&0u64.to_le_bytes()).map_err(io(&ids_path))?;
        let names = BufWriter::new(File::create(&names_path).map_err(io(&names_path))?);
        let entry = std::mem::size_of::<(K, u32)>() as u64;
        Ok(SegmentWriter {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            spill: spill.to_path_buf(),
            buffer: Vec::new(),
            budget: (memory / entry).max(1024) as usize,
            runs: Vec::new(),
            ids,
            names,
            names_len: 0,
            records: 0,
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
        self.records += 1;
        let names_path = self.dir.join(format!("{}.names", self.name));
        self.names
            .write_all(id.as_bytes())
            .map_err(io(&names_path))?;
        self.names_len += id.len() as u64;
        let ids_path = self.dir.join(format!("{}.ids", self.name));
        self.ids
            .write_all(&self.names_len.to_le_bytes())
            .map_err(io(&ids_path))?;
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
        self.buffer.clear();
        self.runs.push(path);
        Ok(())
    }

    /// Write the keys and refs (merging spilled runs) and return the segment's manifest entry.
    pub fn finish(mut self, first_record: u64, inputs: Vec<String>) -> Result<SegmentMeta> {
        let keys_path = self.dir.join(format!("{}.keys", self.name));
        let refs_path = self.dir.join(format!("{}.refs", self.name));
        let mut keys = BufWriter::new(File::create(&keys_path).map_err(io(&keys_path))?);
        let mut refs = BufWriter::new(File::create(&refs_path).map_err(io(&refs_path))?);
        let mut entries = 0u64;
        let mut bytes = Vec::with_capacity(K::WIDTH);
        let mut emit = |k: K, r: u32| -> Result<()> {
            bytes.clear();
            k.put(&mut bytes);
            keys.write_all(&bytes).map_err(io(&keys_path))?;
            refs.write_all(&r.to_le_bytes()).map_err(io(&refs_path))?;
            entries += 1;
            Ok(())
        };
        if self.runs.is_empty() {
            self.sort_buffer();
            for &(k, r) in &self.buffer {
                emit(k, r)?;
            }
        } else {
            if !self.buffer.is_empty() {
                self.spill_run()?;
            }
            merge_runs::<K>(&self.runs, &mut emit)?;
            for r in &self.runs {
                let _ = std::fs::remove_file(r);
            }
        }
        keys.flush().map_err(io(&keys_path))?;
        refs.flush().map_err(io(&refs_path))?;
        drop(keys);
        drop(refs);
        let ids_path = self.dir.join(format!("{}.ids", self.name));
        let names_path = self.dir.join(format!("{}.names", self.name));
        self.ids.flush().map_err(io(&ids_path))?;
        self.names.flush().map_err(io(&names_path))?;
        let mut files = Vec::new();
        for ext in ["keys", "refs", "ids", "names"] {
            files.push(file_meta(&self.dir, &format!("{}.{ext}", self.name))?);
        }
        Ok(SegmentMeta {
            name: self.name.clone(),
            first_record,
            records: self.records,
            entries,
            inputs,
            files,
        })
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
    refs: Option<Mmap>,
    ids: Option<Mmap>,
    names: Option<Mmap>,
    width: usize,
    /// Entries.
    pub entries: usize,
    /// Ordinal of the first record.
    pub first_record: u64,
    /// Records.
    pub records: u64,
}

fn bytes(m: &Option<Mmap>) -> &[u8] {
    m.as_deref().unwrap_or(&[])
}

impl Segment {
    /// Open the segment `meta` of the index in `dir`, checking every file's size and checksum
    /// and the files' consistency.
    pub fn open(dir: &Path, meta: &SegmentMeta, width: usize) -> Result<Segment> {
        let mut maps = Vec::new();
        for (i, ext) in ["keys", "refs", "ids", "names"].iter().enumerate() {
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
        let (keys, refs, ids, names) = (
            it.next().flatten(),
            it.next().flatten(),
            it.next().flatten(),
            it.next().flatten(),
        );
        let seg = Segment {
            entries: meta.entries as usize,
            first_record: meta.first_record,
            records: meta.records,
            width,
            keys,
            refs,
            ids,
            names,
        };
        let len = |m: &Option<Mmap>| Some(bytes(m).len() as u64);
        let consistent = len(&seg.keys) == meta.entries.checked_mul(width as u64)
            && len(&seg.refs) == meta.entries.checked_mul(4)
            && len(&seg.ids) == meta.records.checked_add(1).and_then(|r| r.checked_mul(8))
            && seg.name_offset(meta.records as usize) == bytes(&seg.names).len() as u64;
        if !consistent {
            return Err(Error::Config(format!(
                "{}: the segment's files do not agree with its entry and record counts",
                dir.join(&meta.name).display()
            )));
        }
        Ok(seg)
    }

    #[inline]
    fn key<K: Key>(&self, i: usize) -> K {
        K::get(&bytes(&self.keys)[i * self.width..])
    }

    #[inline]
    fn record(&self, i: usize) -> u32 {
        let b = &bytes(&self.refs)[i * 4..i * 4 + 4];
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
        (self.key(i), self.first_record + self.record(i) as u64)
    }

    /// The id of record `r` (ordinal within the segment).
    pub fn name(&self, r: u64) -> &str {
        let (a, b) = (
            self.name_offset(r as usize) as usize,
            self.name_offset(r as usize + 1) as usize,
        );
        bytes(&self.names)
            .get(a..b)
            .and_then(|s| std::str::from_utf8(s).ok())
            .unwrap_or("")
    }

    /// Every key, in order (to build the query filter).
    pub fn for_each_key<K: Key>(&self, mut f: impl FnMut(K)) {
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
