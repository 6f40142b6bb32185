//! What a run was started on: its configuration and the content of every input. A resumed run
//! must see the same, or its output would mix old and new data.
//!
//! Each input is recorded with its size, modification and change times, inode and the
//! XXH3-128 hash of its bytes. On resume a file whose size, times and inode are all unchanged is
//! taken as unchanged; any other file is hashed again and compared (so a copied corpus with new
//! times still resumes, and an edit that keeps the size and modification time is still seen: it
//! changes the change time, which no tool can set back).

use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::io::InputFile;
use crate::{Error, Result};

/// One input as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputPrint {
    /// The path as found.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch (0 when unknown).
    pub mtime_ns: i128,
    /// Status change time (0 when unknown).
    pub ctime_ns: i128,
    /// Inode (0 when unknown).
    pub inode: u64,
    /// XXH3-128 of the bytes, hex.
    pub xxh3: String,
}

/// The record of a run (`OUTDIR/.tamis/run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Format of this file.
    pub format: u32,
    /// The configuration, without what does not change the output (output, threads, inputs as
    /// given).
    pub config: Value,
    /// The inputs, in order.
    pub inputs: Vec<InputPrint>,
}

struct Stat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
}

fn stat(path: &Path) -> Result<Stat> {
    let m = std::fs::metadata(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let mtime_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    #[cfg(unix)]
    let (ctime_ns, inode) = {
        use std::os::unix::fs::MetadataExt;
        (
            i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            m.ino(),
        )
    };
    #[cfg(not(unix))]
    let (ctime_ns, inode) = (0, 0);
    Ok(Stat {
        size: m.len(),
        mtime_ns,
        ctime_ns,
        inode,
    })
}

/// XXH3-128 of a file's bytes, hex.
fn hash_file(path: &Path) -> Result<String> {
    let io = |e| Error::io(path.display().to_string(), e);
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:032x}", h.digest128()))
}

fn print_of(path: &Path) -> Result<InputPrint> {
    let s = stat(path)?;
    Ok(InputPrint {
        path: path.display().to_string(),
        size: s.size,
        mtime_ns: s.mtime_ns,
        ctime_ns: s.ctime_ns,
        inode: s.inode,
        xxh3: hash_file(path)?,
    })
}

fn paths(files: &[InputFile]) -> Vec<PathBuf> {
    files.iter().filter_map(|f| f.path.clone()).collect()
}

/// Record `files` (hashed in parallel on `pool`).
pub fn record(config: Value, files: &[InputFile], pool: &rayon::ThreadPool) -> Result<RunRecord> {
    let inputs = pool.install(|| {
        paths(files)
            .par_iter()
            .map(|p| print_of(p))
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(RunRecord {
        format: 1,
        config,
        inputs,
    })
}

/// Why `files` and `config` are not what `old` recorded, if they are not.
pub fn compare(
    old: &RunRecord,
    config: &Value,
    files: &[InputFile],
    pool: &rayon::ThreadPool,
) -> Result<Option<String>> {
    if old.config != *config {
        return Ok(Some("another configuration".into()));
    }
    let now = paths(files);
    let old_paths: Vec<&str> = old.inputs.iter().map(|p| p.path.as_str()).collect();
    let new_paths: Vec<String> = now.iter().map(|p| p.display().to_string()).collect();
    if old_paths != new_paths {
        return Ok(Some("other input files".into()));
    }
    let changed = pool.install(|| {
        old.inputs
            .par_iter()
            .zip(now.par_iter())
            .map(|(o, p)| -> Result<Option<String>> {
                let s = stat(p)?;
                let same_stat = s.size == o.size
                    && s.mtime_ns == o.mtime_ns
                    && s.ctime_ns == o.ctime_ns
                    && s.inode == o.inode
                    && o.ctime_ns != 0;
                if same_stat || (s.size == o.size && hash_file(p)? == o.xxh3) {
                    Ok(None)
                } else {
                    Ok(Some(p.display().to_string()))
                }
            })
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(changed
        .into_iter()
        .flatten()
        .next()
        .map(|p| format!("other inputs ({p} changed since the run started)")))
}
