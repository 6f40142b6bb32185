//! The two file formats (see [`super`]): writing their preamble and header, reading and
//! checking a file, and the checks and global order shared by the keep tables.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::text::{Hash128, Normalize};
use crate::{Error, Result};

/// First bytes of an exact-dedup signature file.
pub const EXACT_MAGIC: &[u8; 8] = b"TAMISSIG";
/// The exact format written (versions 1 and 2 are read; 2 added the optional scores).
pub const EXACT_VERSION: u32 = 2;
/// Exact signature files are named `{rank:05}.sig`.
pub const EXACT_SUFFIX: &str = ".sig";
/// First bytes of a line-dedup signature file.
pub const LINE_MAGIC: &[u8; 8] = b"TAMISLIN";
/// The line format written and read.
pub const LINE_VERSION: u32 = 1;
/// Line signature files are named `{rank:05}.lsig`.
pub const LINE_SUFFIX: &str = ".lsig";

/// Magic, version, header length.
pub(super) const PREAMBLE: usize = 16;
/// The hash function of both formats.
pub(super) const HASH: &str = "xxh3-128";
/// Hash, file index, index in file.
pub(super) const EXACT_RECORD: usize = 28;
/// A line record: its hash.
pub(super) const LINE_RECORD: usize = 16;

/// The name of task `rank`'s signature file: `{rank:05}{suffix}`.
pub fn file_name(rank: usize, suffix: &str) -> String {
    format!("{rank:05}{suffix}")
}

/// The JSON header of an exact signature file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExactHeader {
    /// The task that wrote the file.
    pub rank: usize,
    /// The number of tasks of its run.
    pub world_size: usize,
    /// Normalization applied before hashing.
    pub normalize: Normalize,
    /// Always `xxh3-128`.
    pub hash: String,
    /// Source paths, in the order the task met them.
    pub files: Vec<String>,
    /// Documents per file.
    pub counts: Vec<u64>,
    /// Records in the file (the sum of `counts`).
    pub records: u64,
    /// Whether each record ends with an `f64` score (version 2; absent in version 1).
    #[serde(default)]
    pub score: bool,
}

/// The JSON header of a line signature file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineHeader {
    /// The task that wrote the file.
    pub rank: usize,
    /// The number of tasks of its run.
    pub world_size: usize,
    /// Normalization applied to each line before hashing.
    pub normalize: Normalize,
    /// Lines with fewer characters were not eligible.
    pub min_line_chars: usize,
    /// Always `xxh3-128`.
    pub hash: String,
    /// Source paths, in the order the task met them.
    pub files: Vec<String>,
    /// Documents per file.
    pub documents: Vec<u64>,
    /// Eligible lines per file.
    pub lines: Vec<u64>,
    /// Records in the file (the sum of `lines`).
    pub records: u64,
}

pub(super) fn bad(name: &str, message: impl Into<String>) -> Error {
    Error::Intermediate {
        path: name.to_string(),
        message: message.into(),
    }
}

pub(super) fn same_len(a: usize, b: usize, what: &str) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(Error::Config(format!("{a} paths but {b} {what}")))
    }
}

pub(super) fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

pub(super) fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

pub(super) fn be_u128(b: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    u128::from_be_bytes(a)
}

/// The low 64 bits of a hash: what a keep table keeps to check stage 2's documents.
pub(super) fn low(h: Hash128) -> u64 {
    h as u64
}

/// Split a signature file into (version, header bytes, records).
pub(super) fn split<'a>(
    name: &str,
    data: &'a [u8],
    magic: &[u8; 8],
) -> Result<(u32, &'a [u8], &'a [u8])> {
    if data.len() < PREAMBLE {
        return Err(bad(name, format!("truncated: {} bytes", data.len())));
    }
    if &data[..8] != magic {
        return Err(bad(
            name,
            format!(
                "not a tamis signature file of this kind (it starts with {:?}, not {:?})",
                String::from_utf8_lossy(&data[..8]),
                String::from_utf8_lossy(magic)
            ),
        ));
    }
    let version = le_u32(&data[8..]);
    let end = PREAMBLE.saturating_add(le_u32(&data[12..]) as usize);
    let Some(header) = data.get(PREAMBLE..end) else {
        return Err(bad(name, "truncated in its header"));
    };
    Ok((version, header, &data[end..]))
}

pub(super) fn header_of<T: serde::de::DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| bad(name, format!("bad header: {e}")))
}

pub(super) fn check_records(name: &str, body: &[u8], records: u64, size: usize) -> Result<()> {
    let expected = usize::try_from(records)
        .ok()
        .and_then(|r| r.checked_mul(size));
    if expected != Some(body.len()) {
        return Err(bad(
            name,
            format!(
                "truncated: {} bytes of records, the header announces {records} of {size} bytes",
                body.len()
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_sum(
    name: &str,
    per_file: &[u64],
    files: usize,
    records: u64,
    what: &str,
) -> Result<()> {
    if per_file.len() != files {
        return Err(bad(
            name,
            format!("{} {what} for {files} files", per_file.len()),
        ));
    }
    if per_file.iter().sum::<u64>() != records {
        return Err(bad(
            name,
            format!("the {what} per file do not add up to {records} records"),
        ));
    }
    Ok(())
}

/// Parse and check an exact signature file: its header and its records (not yet their order).
pub(super) fn parse_exact<'a>(name: &str, data: &'a [u8]) -> Result<(ExactHeader, &'a [u8])> {
    let (version, header, body) = split(name, data, EXACT_MAGIC)?;
    if !(1..=EXACT_VERSION).contains(&version) {
        return Err(bad(
            name,
            format!("signature format {version}, this tamis reads 1 to {EXACT_VERSION}"),
        ));
    }
    let h: ExactHeader = header_of(name, header)?;
    if version == 1 && h.score {
        return Err(bad(name, "format 1 has no scores"));
    }
    check_header(name, h.rank, h.world_size, &h.hash)?;
    check_sum(name, &h.counts, h.files.len(), h.records, "counts")?;
    check_records(name, body, h.records, exact_record(h.score))?;
    Ok((h, body))
}

/// Parse and check a line signature file.
pub(super) fn parse_lines<'a>(name: &str, data: &'a [u8]) -> Result<(LineHeader, &'a [u8])> {
    let (version, header, body) = split(name, data, LINE_MAGIC)?;
    if version != LINE_VERSION {
        return Err(bad(
            name,
            format!("line signature format {version}, this tamis reads {LINE_VERSION}"),
        ));
    }
    let h: LineHeader = header_of(name, header)?;
    check_header(name, h.rank, h.world_size, &h.hash)?;
    check_sum(
        name,
        &h.documents,
        h.files.len(),
        h.documents.iter().sum(),
        "documents",
    )?;
    check_sum(name, &h.lines, h.files.len(), h.records, "lines")?;
    check_records(name, body, h.records, LINE_RECORD)?;
    Ok((h, body))
}

pub(super) fn check_header(name: &str, rank: usize, world_size: usize, hash: &str) -> Result<()> {
    if rank >= world_size {
        return Err(bad(name, format!("task {rank} of {world_size}")));
    }
    if hash != HASH {
        return Err(bad(
            name,
            format!("hash {hash:?}, this tamis uses {HASH:?}"),
        ));
    }
    Ok(())
}

pub(super) fn exact_record(score: bool) -> usize {
    EXACT_RECORD + if score { 8 } else { 0 }
}

/// The header of an exact signature file (`.sig`), after checking the file's structure.
pub fn read_exact_header(name: &str, data: &[u8]) -> Result<ExactHeader> {
    parse_exact(name, data).map(|(h, _)| h)
}

/// The header of a line signature file (`.lsig`), after checking the file's structure.
pub fn read_line_header(name: &str, data: &[u8]) -> Result<LineHeader> {
    parse_lines(name, data).map(|(h, _)| h)
}

/// The source files of one task, in arrival order; a file's documents must come together.
#[derive(Debug, Default)]
pub(super) struct Arrivals {
    pub(super) names: Vec<String>,
    pub(super) index: HashMap<String, usize>,
}

impl Arrivals {
    /// The index of `path` among the task's files, appending it when new.
    pub(super) fn file(&mut self, path: &str) -> Result<usize> {
        if self.names.last().is_some_and(|last| last == path) {
            return Ok(self.names.len() - 1);
        }
        if path.is_empty() {
            return Err(Error::Config("a document has no source path".into()));
        }
        if self.index.contains_key(path) {
            return Err(Error::Config(format!(
                "documents of {path} are not contiguous: readers read one file after another, so \
                 this source path probably comes from the data itself (e.g. JSONL written by an \
                 earlier datatrove pipeline); drop it in the reader's adapter (see docs/datatrove.md)"
            )));
        }
        if self.names.len() >= u32::MAX as usize {
            return Err(Error::Config("too many source files in one task".into()));
        }
        self.index.insert(path.to_string(), self.names.len());
        self.names.push(path.to_string());
        Ok(self.names.len() - 1)
    }
}

/// Preamble and header of a file being written.
pub(super) fn start_file(
    magic: &[u8; 8],
    version: u32,
    header: &impl Serialize,
) -> Result<Vec<u8>> {
    let json =
        serde_json::to_vec(header).map_err(|e| Error::Config(format!("signature header: {e}")))?;
    let len = u32::try_from(json.len())
        .map_err(|_| Error::Config("signature header over 4 GiB".into()))?;
    let mut out = Vec::with_capacity(PREAMBLE + json.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

pub(super) fn check_task(rank: usize, world_size: usize) -> Result<()> {
    if rank < world_size {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "task {rank} of {world_size}: the rank must be below the number of tasks"
        )))
    }
}
/// Stage 1 files must come from one run and cover every task: stale files of an earlier run,
/// or a task that never finished, would silently change what is kept.
pub(super) fn check_tasks(tasks: &[(&str, usize, usize)], what: &str) -> Result<()> {
    let Some(&(first, _, world_size)) = tasks.first() else {
        return Err(Error::Config(format!("no {what} files: run stage 1 first")));
    };
    if let Some(&(other, _, w)) = tasks.iter().find(|t| t.2 != world_size) {
        let mut sizes: Vec<usize> = tasks.iter().map(|t| t.2).collect();
        sizes.sort_unstable();
        sizes.dedup();
        return Err(Error::Config(format!(
            "{what} files come from runs with different numbers of tasks {sizes:?} ({first}: \
             {world_size}, {other}: {w}): stale files from an earlier run? Empty the folder and \
             rerun stage 1"
        )));
    }
    // By rank; the list is as long as the files, whatever world size a header claims.
    let mut ranks: Vec<(usize, &str)> = tasks.iter().map(|&(name, rank, _)| (rank, name)).collect();
    ranks.sort_unstable();
    if let Some(pair) = ranks.windows(2).find(|p| p[0].0 == p[1].0) {
        let (rank, a, b) = (pair[0].0, pair[0].1, pair[1].1);
        return Err(Error::Config(format!(
            "{a} and {b} are both task {rank} of {world_size}: files from different runs? Empty \
             the folder and rerun stage 1"
        )));
    }
    if ranks.len() < world_size {
        let mut missing = Vec::new();
        let mut present = ranks.iter().map(|r| r.0).peekable();
        for r in 0..world_size {
            if present.next_if_eq(&r).is_none() {
                missing.push(r);
                if missing.len() == 10 {
                    break;
                }
            }
        }
        let more = if world_size - ranks.len() > missing.len() {
            " and more"
        } else {
            ""
        };
        return Err(Error::Config(format!(
            "{what} files: expected tasks 0..{}, missing {missing:?}{more} (stage 1 not \
             finished?)",
            world_size - 1
        )));
    }
    Ok(())
}

/// The value of `key` every file has (`values`: (file, value), at least one), checked against
/// the one stage 2 expects (`wanted`); `show` writes a value as options spell it.
pub(super) fn recorded<T: PartialEq + Copy>(
    values: &[(&str, T)],
    key: &str,
    wanted: Option<T>,
    show: impl Fn(T) -> String,
) -> Result<T> {
    let Some(&(first, value)) = values.first() else {
        return Err(Error::Config(
            "no signature files: run stage 1 first".into(),
        ));
    };
    if let Some(&(other, v)) = values.iter().find(|(_, v)| *v != value) {
        return Err(Error::Config(format!(
            "signature files mix {key} values ({first}: {}, {other}: {}): files from different \
             runs? Empty the folder and rerun stage 1",
            show(value),
            show(v)
        )));
    }
    match wanted {
        Some(w) if w != value => Err(Error::Config(format!(
            "the signatures were made with {key}={}, not {key}={}: use the same value in both \
             stages (or leave it out in stage 2)",
            show(value),
            show(w)
        ))),
        _ => Ok(value),
    }
}

pub(super) fn show_mode(n: Normalize) -> String {
    n.as_str().to_string()
}

/// Every source file of a run in the command line's order, with its place among the records.
#[derive(Debug, Default)]
pub(super) struct Layout {
    /// Paths in global order.
    pub(super) paths: Vec<String>,
    pub(super) ids: HashMap<String, usize>,
    /// Per file (global order): records (documents or eligible lines) before it.
    pub(super) starts: Vec<usize>,
    /// Per file: its records.
    pub(super) records: Vec<usize>,
    pub(super) total: usize,
}

impl Layout {
    /// From `(signature file, its source files, records per source file)`; a source file in
    /// two signature files is an error.
    pub(super) fn new(per_task: &[(&str, &[String], &[u64])]) -> Result<Self> {
        let mut owner: HashMap<&str, (&str, u64)> = HashMap::new();
        for &(name, files, records) in per_task {
            for (path, &n) in files.iter().zip(records) {
                if let Some((prev, _)) = owner.insert(path, (name, n)) {
                    return Err(Error::Config(format!(
                        "{path} appears in both {prev} and {name}: signature files from \
                         different runs? Empty the signatures folder and rerun stage 1"
                    )));
                }
            }
        }
        let mut paths: Vec<&str> = owner.keys().copied().collect();
        paths.sort_by(|a, b| Path::new(a).cmp(Path::new(b)).then_with(|| a.cmp(b)));
        let mut layout = Layout::default();
        for path in paths {
            let n = usize::try_from(owner[path].1)
                .map_err(|_| bad(owner[path].0, "too many records"))?;
            layout.ids.insert(path.to_string(), layout.paths.len());
            layout.paths.push(path.to_string());
            layout.starts.push(layout.total);
            layout.records.push(n);
            layout.total = layout
                .total
                .checked_add(n)
                .ok_or_else(|| bad(owner[path].0, "too many records"))?;
        }
        Ok(layout)
    }

    pub(super) fn id(&self, path: &str) -> Result<usize> {
        self.ids.get(path).copied().ok_or_else(|| {
            Error::Config(format!(
                "{path} is not in the signatures: stage 2 must read the same files, with the same \
                 reader settings, as stage 1"
            ))
        })
    }

    /// The global file id of each document of a batch.
    pub(super) fn ids_of(&self, paths: &[&str]) -> Result<Vec<usize>> {
        let mut last: Option<(&str, usize)> = None;
        let mut out = Vec::with_capacity(paths.len());
        for &path in paths {
            let f = match last {
                Some((p, f)) if p == path => f,
                _ => self.id(path)?,
            };
            last = Some((path, f));
            out.push(f);
        }
        Ok(out)
    }
}

/// Per run of equal hashes in `sorted` ((hi, lo, position), sorted): the positions to keep,
/// by `pick`.
pub(super) fn decide_runs(
    sorted: &[(u64, u64, usize)],
    total: usize,
    mut pick: impl FnMut(&[(u64, u64, usize)], &mut [bool]),
) -> (Vec<bool>, usize) {
    let mut keep = vec![false; total];
    let mut runs = 0;
    for run in sorted.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        runs += 1;
        pick(run, &mut keep);
    }
    (keep, runs)
}
