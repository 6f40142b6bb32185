//! Documents' ids in, numbered shards out ([`ShardedWriter`]): a shard is cut before a document
//! that would take it past `max_shard_tokens`, optionally shuffled, written in one of the
//! [`super::Format`]s, and followed by a marker (`STATE/NAME.json`, a [`ShardRecord`]) once all
//! its files are in place. A run that stops leaves finished shards with their markers and
//! nothing else; [`finished_shards`] reads them back so that the next run starts after them.
//!
//! The writer knows nothing of where documents come from: each carries a `source` (an input, or
//! a source of a mixture) for the per-source counts, and a [`Position`] that a resumed run
//! starts from.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::formats::ShardFormatWriter;
use super::options::{Dtype, Format};
use crate::{Error, Result};

/// Where a document was read: its source and its record number there (0-based, bad records
/// included). A resumed run skips everything before the position its last marker records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// Index of the source (input file).
    pub source: usize,
    /// Record number in that source.
    pub record: u64,
}

/// Documents and tokens a shard took from one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCount {
    /// Index of the source.
    pub source: usize,
    /// Documents.
    pub documents: u64,
    /// Tokens.
    pub tokens: u64,
}

/// One file of a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFile {
    /// Name in the output directory.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// A finished shard, as its marker records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// 0-based shard number.
    pub index: usize,
    /// Base name (`shard_00000`).
    pub name: String,
    /// Its files.
    pub files: Vec<ShardFile>,
    /// Documents in it.
    pub documents: u64,
    /// Tokens in it.
    pub tokens: u64,
    /// Documents and tokens per source.
    pub sources: Vec<SourceCount>,
    /// Documents with no tokens at all (not written), read while this shard was open.
    pub documents_empty: u64,
    /// Bad records skipped while this shard was open, by reason.
    pub records_skipped: BTreeMap<String, u64>,
    /// Where the next shard's first document is (or the end of the input).
    pub next: Position,
}

/// How a [`ShardedWriter`] writes.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    /// The output directory.
    pub dir: PathBuf,
    /// Where markers go (a hidden folder inside `dir`).
    pub state_dir: PathBuf,
    /// Shard names are `{prefix}_{index:05}`.
    pub prefix: String,
    /// The layout.
    pub format: Format,
    /// The id width (resolved: never `Auto`).
    pub dtype: Dtype,
    /// Cut before a document that would take a shard past this many tokens.
    pub max_shard_tokens: u64,
    /// Shuffle the documents of each shard with this seed.
    pub shuffle: Option<u64>,
    /// The tokenizer as `.ds.metadata` names it.
    pub tokenizer_name: String,
}

impl ShardPlan {
    fn name(&self, index: usize) -> String {
        format!("{}_{index:05}", self.prefix)
    }

    fn marker(&self, index: usize) -> PathBuf {
        self.state_dir.join(format!("{}.json", self.name(index)))
    }
}

/// The contiguous finished shards `0..k` of an earlier run (marker present and readable, every
/// file there with its recorded size). Markers after the first gap are removed: those shards
/// are written again.
pub fn finished_shards(plan: &ShardPlan) -> Result<Vec<ShardRecord>> {
    let mut done = Vec::new();
    loop {
        let path = plan.marker(done.len());
        let Ok(text) = std::fs::read_to_string(&path) else {
            break;
        };
        let Ok(record) = serde_json::from_str::<ShardRecord>(&text) else {
            break;
        };
        let intact = record.index == done.len()
            && record.files.iter().all(|f| {
                std::fs::metadata(plan.dir.join(&f.name)).is_ok_and(|m| m.len() == f.bytes)
            });
        if !intact {
            break;
        }
        done.push(record);
    }
    // Stale markers past the gap would otherwise be taken as finished on a later resume.
    let mut stale = done.len();
    loop {
        let path = plan.marker(stale);
        if !path.exists() {
            break;
        }
        std::fs::remove_file(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
        stale += 1;
    }
    Ok(done)
}

/// A shard's documents held for shuffling: their ids in a temporary file (so memory stays at
/// 12 bytes per document however large the shard), read back in shuffled order at the end.
struct Spill {
    out: BufWriter<tempfile::NamedTempFile>,
    /// (offset in ids, length) per document.
    docs: Vec<(u64, u64)>,
    tokens: u64,
}

enum Open {
    Direct(ShardFormatWriter),
    Shuffled(Spill),
}

/// The shard being filled.
struct Current {
    open: Open,
    documents: u64,
    tokens: u64,
    sources: BTreeMap<usize, (u64, u64)>,
}

/// SplitMix64: a small, well-mixed generator, so that a shuffle depends only on its seed.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A permutation of `0..n` from `seed` (Fisher–Yates; the bound's bias is below 2^-40 for any
/// shard that fits in memory).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Writes documents into numbered shards (see the module documentation).
pub struct ShardedWriter {
    plan: ShardPlan,
    index: usize,
    current: Option<Current>,
    pending_empty: u64,
    pending_skipped: BTreeMap<String, u64>,
    written: Vec<ShardRecord>,
}

impl ShardedWriter {
    /// A writer whose first shard is number `first` (after the finished ones of a resumed run).
    pub fn new(plan: ShardPlan, first: usize) -> Result<Self> {
        std::fs::create_dir_all(&plan.state_dir)
            .map_err(|e| Error::io(plan.state_dir.display().to_string(), e))?;
        Ok(ShardedWriter {
            plan,
            index: first,
            current: None,
            pending_empty: 0,
            pending_skipped: BTreeMap::new(),
            written: Vec::new(),
        })
    }

    /// Count a bad record skipped at this point of the input.
    pub fn skipped(&mut self, reason: &str) {
        *self.pending_skipped.entry(reason.to_string()).or_insert(0) += 1;
    }

    /// Add one document's ids, read at `at` from `source`. A document without tokens is
    /// counted, not written.
    pub fn add(&mut self, ids: &[u32], source: usize, at: Position) -> Result<()> {
        if ids.is_empty() {
            self.pending_empty += 1;
            return Ok(());
        }
        let len = ids.len() as u64;
        if let Some(c) = &self.current {
            if c.tokens > 0 && c.tokens + len > self.plan.max_shard_tokens {
                self.close(at)?;
            }
        }
        if self.current.is_none() {
            self.current = Some(self.open()?);
        }
        let Some(c) = self.current.as_mut() else {
            return Err(Error::Config("no open shard".into()));
        };
        match &mut c.open {
            Open::Direct(w) => w.add(ids)?,
            Open::Shuffled(s) => {
                let mut bytes = Vec::with_capacity(ids.len() * 4);
                for id in ids {
                    bytes.extend_from_slice(&id.to_le_bytes());
                }
                s.out
                    .write_all(&bytes)
                    .map_err(|e| Error::io("shuffle spill file", e))?;
                s.docs.push((s.tokens, len));
                s.tokens += len;
            }
        }
        c.documents += 1;
        c.tokens += len;
        let e = c.sources.entry(source).or_insert((0, 0));
        e.0 += 1;
        e.1 += len;
        Ok(())
    }

    fn open(&self) -> Result<Current> {
        let open = if self.plan.shuffle.is_some() {
            let tmp = tempfile::Builder::new()
                .prefix(&format!(".{}.spill.tamis-tmp-", self.plan.name(self.index)))
                .tempfile_in(&self.plan.dir)
                .map_err(|e| Error::io(self.plan.dir.display().to_string(), e))?;
            Open::Shuffled(Spill {
                out: BufWriter::with_capacity(1 << 20, tmp),
                docs: Vec::new(),
                tokens: 0,
            })
        } else {
            Open::Direct(self.format_writer()?)
        };
        Ok(Current {
            open,
            documents: 0,
            tokens: 0,
            sources: BTreeMap::new(),
        })
    }

    fn format_writer(&self) -> Result<ShardFormatWriter> {
        ShardFormatWriter::create(
            &self.plan.dir,
            &self.plan.name(self.index),
            self.plan.format,
            self.plan.dtype,
            &self.plan.tokenizer_name,
        )
    }

    /// Finish the open shard: write it (shuffled when asked), move its files into place, then
    /// its marker. `next` is where the following shard starts.
    fn close(&mut self, next: Position) -> Result<()> {
        let Some(c) = self.current.take() else {
            return Ok(());
        };
        let writer = match c.open {
            Open::Direct(w) => w,
            Open::Shuffled(s) => self.unspill(s)?,
        };
        let files = writer.finish()?.commit()?;
        let record = ShardRecord {
            index: self.index,
            name: self.plan.name(self.index),
            files: files
                .into_iter()
                .map(|(name, bytes)| ShardFile { name, bytes })
                .collect(),
            documents: c.documents,
            tokens: c.tokens,
            sources: c
                .sources
                .into_iter()
                .map(|(source, (documents, tokens))| SourceCount {
                    source,
                    documents,
                    tokens,
                })
                .collect(),
            documents_empty: std::mem::take(&mut self.pending_empty),
            records_skipped: std::mem::take(&mut self.pending_skipped),
            next,
        };
        let text = serde_json::to_string_pretty(&record)
            .map_err(|e| Error::Config(format!("cannot write a shard marker: {e}")))?;
        crate::vocab::write_atomic(&self.plan.marker(self.index), &text)?;
        self.written.push(record);
        self.index += 1;
        Ok(())
    }

    /// Write a spilled shard in the order of its permutation.
    fn unspill(&self, s: Spill) -> Result<ShardFormatWriter> {
        let tmp = s
            .out
            .into_inner()
            .map_err(|e| Error::io("shuffle spill file", e.into_error()))?;
        let file: &File = tmp.as_file();
        // SAFETY: the spill file is private to this writer (a fresh temporary file, unlinked
        // on drop) and not written while mapped.
        let map = if s.tokens == 0 {
            None
        } else {
            Some(
                unsafe { memmap2::Mmap::map(file) }
                    .map_err(|e| Error::io("shuffle spill file", e))?,
            )
        };
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let seed = self
            .plan
            .shuffle
            .unwrap_or(0)
            .wrapping_add((self.index as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
        let mut w = self.format_writer()?;
        let mut ids = Vec::new();
        for i in permutation(s.docs.len(), seed) {
            let (start, len) = s.docs[i];
            let span = bytes
                .get(start as usize * 4..(start + len) as usize * 4)
                .ok_or_else(|| Error::Config("the shuffle spill file is short".into()))?;
            ids.clear();
            ids.extend(
                span.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            w.add(&ids)?;
        }
        Ok(w)
    }

    /// Close the last shard (`end`: the position after the last record) and return the shards
    /// written by this writer, with what was read after the last document (skipped or empty
    /// records when no shard was open to take them).
    pub fn finish(
        mut self,
        end: Position,
    ) -> Result<(Vec<ShardRecord>, u64, BTreeMap<String, u64>)> {
        self.close(end)?;
        Ok((self.written, self.pending_empty, self.pending_skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan(dir: &Path, max: u64, shuffle: Option<u64>) -> ShardPlan {
        ShardPlan {
            dir: dir.to_path_buf(),
            state_dir: dir.join(".state"),
            prefix: "shard".into(),
            format: Format::Nanotron,
            dtype: Dtype::Uint32,
            max_shard_tokens: max,
            shuffle,
            tokenizer_name: "t".into(),
        }
    }

    fn at(record: u64) -> Position {
        Position { source: 0, record }
    }

    fn ends(dir: &Path, name: &str) -> Vec<u64> {
        std::fs::read(dir.join(format!("{name}.ds.index")))
            .expect("index")
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect()
    }

    #[test]
    fn cuts_on_document_boundaries() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut w = ShardedWriter::new(plan(dir.path(), 5, None), 0).expect("new");
        let docs: [&[u32]; 5] = [&[1, 2], &[3, 4, 5], &[6], &[7, 8, 9, 10, 11, 12], &[]];
        for (i, d) in docs.iter().enumerate() {
            w.add(d, 0, at(i as u64)).expect("add");
        }
        w.skipped("invalid_json");
        let (shards, empty, skipped) = w.finish(at(6)).expect("finish");
        assert_eq!(shards.len(), 3);
        assert_eq!(
            shards.iter().map(|s| s.tokens).collect::<Vec<_>>(),
            [5, 1, 6]
        );
        assert_eq!(shards[0].next, at(2));
        assert_eq!(shards[2].next, at(6));
        assert_eq!(shards[2].documents_empty, 1);
        assert_eq!(shards[2].records_skipped.get("invalid_json"), Some(&1));
        assert_eq!((empty, skipped.len()), (0, 0));
        assert_eq!(ends(dir.path(), "shard_00000"), [2, 5]);
        let done = finished_shards(&plan(dir.path(), 5, None)).expect("done");
        assert_eq!(done, shards);
        // A shard whose file changed is not finished, nor is any after it.
        std::fs::write(dir.path().join("shard_00001.ds"), b"x").expect("write");
        let done = finished_shards(&plan(dir.path(), 5, None)).expect("done");
        assert_eq!(done.len(), 1);
        assert!(!dir.path().join(".state/shard_00002.json").exists());
    }

    #[test]
    fn shuffle_is_a_seeded_permutation_of_the_shard() {
        let write = |seed: u64| {
            let dir = tempfile::tempdir().expect("tmp");
            let mut w = ShardedWriter::new(plan(dir.path(), 1000, Some(seed)), 0).expect("new");
            for i in 0..20u32 {
                w.add(&vec![i; i as usize + 1], 0, at(i.into()))
                    .expect("add");
            }
            w.finish(at(20)).expect("finish");
            let tokens = std::fs::read(dir.path().join("shard_00000.ds")).expect("ds");
            let leftovers = std::fs::read_dir(dir.path())
                .expect("ls")
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains("tamis-tmp"))
                .count();
            assert_eq!(leftovers, 0);
            (tokens, ends(dir.path(), "shard_00000"))
        };
        let (a, ends_a) = write(7);
        let (b, _) = write(7);
        let (c, _) = write(8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 4 * (1..=20).sum::<usize>());
        // Each document is whole: its length is one more than its value.
        let ids: Vec<u32> = a
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
            .collect();
        let mut start = 0;
        let mut seen = Vec::new();
        for end in ends_a {
            let doc = &ids[start..end as usize];
            assert!(doc.iter().all(|&v| v == doc[0]) && doc.len() == doc[0] as usize + 1);
            seen.push(doc[0]);
            start = end as usize;
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
    }
}
