//! Exact-substring dedup in three stages sharing a work directory, for documents that come from
//! elsewhere (datatrove tasks):
//!
//! ```text
//! DIR/seq/r00003-00001.txt   stage 1, any number of tasks: the texts of one source file, each
//!                            followed by 0xFF (the file's documents, in the order read)
//! DIR/seq/r00003.json        the task's manifest, written last: its source files
//! DIR/cuts/s00000017.cuts    stage 2, one task: per source file, the removed intervals of its
//!                            documents (little-endian: document u64, count u32, (start, end) u64s)
//! DIR/cuts/done.json         written last: the options and the statistics
//! ```
//!
//! Stage 2 orders the source files as the command line orders files (by path, component by
//! component), so the same document keeps the first copy of a span as with `tamis dedup
//! substring` over the same folder. Stage 3 ([`PathCutter`]) answers, per document of a source
//! file in the order read, its removed intervals, after checking the text is the one stage 1
//! saw.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use super::sa::{spill_file, SEPARATOR};
use super::{find_removed, intervals, Corpus, SubstringOptions};
use crate::dedup::near::cluster::list_files;
use crate::dedup::near::stages::Task;
use crate::options::Options;
use crate::pipeline::thread_pool;
use crate::{Error, Result, Stats};

const FORMAT: u32 = 1;

/// One source file's documents as written by a task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Segment {
    /// The source path.
    name: String,
    /// The text file, in `DIR/seq`.
    file: String,
    docs: u64,
    bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct SeqManifest {
    format: u32,
    rank: usize,
    world_size: usize,
    segments: Vec<Segment>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Done {
    format: u32,
    /// Source path → cuts file, in the global order.
    segments: Vec<(String, String)>,
    options: SubstringOptions,
    /// The find stage's counters.
    counters: std::collections::BTreeMap<String, u64>,
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Config(format!("{}: {what}", path.display()))
}

/// The sort key of a source path: its components (how the command line orders files).
fn order(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// Stage 1: one task's texts, source file after source file.
#[derive(Debug)]
pub struct SequenceWriter {
    dir: PathBuf,
    task: Task,
    segments: Vec<Segment>,
    current: Option<BufWriter<File>>,
}

impl SequenceWriter {
    /// Task `task` writing to `workdir`.
    pub fn new(workdir: &Path, task: Task) -> Result<Self> {
        task.validate()?;
        let dir = workdir.join("seq");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        // A rerun of the task starts over: its manifest goes first.
        let manifest = dir.join(format!("r{:05}.json", task.rank));
        match std::fs::remove_file(&manifest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(manifest.display().to_string(), e)),
        }
        Ok(SequenceWriter {
            dir,
            task,
            segments: Vec::new(),
            current: None,
        })
    }

    /// Add the next documents of source file `path` (a file's documents must come together).
    pub fn add(&mut self, path: &str, texts: &[&str]) -> Result<()> {
        if self.segments.last().is_none_or(|s| s.name != path) {
            if self.segments.iter().any(|s| s.name == path) {
                return Err(Error::Config(format!(
                    "documents of {path} are not contiguous"
                )));
            }
            self.close_current()?;
            let file = format!("r{:05}-{:05}.txt", self.task.rank, self.segments.len());
            let p = self.dir.join(&file);
            let f = File::create(&p).map_err(|e| Error::io(p.display().to_string(), e))?;
            self.current = Some(BufWriter::with_capacity(1 << 20, f));
            self.segments.push(Segment {
                name: path.to_string(),
                file,
                docs: 0,
                bytes: 0,
            });
        }
        let (Some(w), Some(seg)) = (self.current.as_mut(), self.segments.last_mut()) else {
            return Err(Error::Config("no current source file".into()));
        };
        let p = self.dir.join(&seg.file);
        for t in texts {
            w.write_all(t.as_bytes())
                .and_then(|_| w.write_all(&[SEPARATOR]))
                .map_err(|e| Error::io(p.display().to_string(), e))?;
            seg.docs += 1;
            seg.bytes += t.len() as u64 + 1;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some(w) = self.current.take() {
            let name = self
                .segments
                .last()
                .map_or(String::new(), |s| s.file.clone());
            let p = self.dir.join(name);
            let f = w
                .into_inner()
                .map_err(|e| Error::io(p.display().to_string(), e.into_error()))?;
            f.sync_all()
                .map_err(|e| Error::io(p.display().to_string(), e))?;
        }
        Ok(())
    }

    /// Close the last file and write the manifest; returns the task's statistics.
    pub fn finish(mut self) -> Result<Stats> {
        self.close_current()?;
        let m = SeqManifest {
            format: FORMAT,
            rank: self.task.rank,
            world_size: self.task.world_size,
            segments: self.segments,
        };
        let path = self.dir.join(format!("r{:05}.json", self.task.rank));
        write_json(&path, &m)?;
        let docs = m.segments.iter().map(|s| s.docs).sum();
        Ok(Stats {
            command: "dedup substring sequence".into(),
            documents_read: docs,
            documents_kept: docs,
            text_bytes_read: m.segments.iter().map(|s| s.bytes - s.docs).sum(),
            ..Default::default()
        })
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let (guard, mut f) = crate::io::AtomicFile::create(path)?;
    let text = serde_json::to_vec(value).map_err(|e| Error::Config(e.to_string()))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(path.display().to_string(), e))?;
    drop(f);
    guard.commit()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    serde_json::from_slice(&bytes).map_err(|e| corrupt(path, format!("unreadable: {e}")))
}

/// Every task's segments, checked complete, in the global order.
fn load_segments(workdir: &Path) -> Result<Vec<Segment>> {
    let dir = workdir.join("seq");
    let files = list_files(&dir, "json")?;
    if files.is_empty() {
        return Err(Error::Config(format!(
            "{}: no texts found: run the sequence stage first",
            dir.display()
        )));
    }
    let mut manifests: Vec<SeqManifest> = Vec::new();
    for f in &files {
        let m: SeqManifest = read_json(f)?;
        if m.format != FORMAT {
            return Err(corrupt(
                f,
                format!("format {} (expected {FORMAT})", m.format),
            ));
        }
        if manifests
            .first()
            .is_some_and(|first| first.world_size != m.world_size)
        {
            return Err(corrupt(
                f,
                "written by another number of tasks than the others",
            ));
        }
        manifests.push(m);
    }
    let world = manifests[0].world_size;
    let mut ranks: Vec<usize> = manifests.iter().map(|m| m.rank).collect();
    ranks.sort_unstable();
    ranks.dedup();
    if ranks.len() != world || ranks.iter().enumerate().any(|(i, &r)| i != r) {
        let missing: Vec<String> = (0..world)
            .filter(|r| !ranks.contains(r))
            .map(|r| r.to_string())
            .collect();
        return Err(Error::Config(format!(
            "{}: texts incomplete: tasks {} of {world} have not finished",
            dir.display(),
            missing.join(", ")
        )));
    }
    let mut segments: Vec<Segment> = manifests.into_iter().flat_map(|m| m.segments).collect();
    segments.sort_by(|a, b| order(&a.name).cmp(&order(&b.name)));
    if let Some(w) = segments.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(corrupt(
            &dir,
            format!("{} was read by two tasks", w[0].name),
        ));
    }
    Ok(segments)
}

/// Stage 2 (one task): the suffix arrays of every task's texts and each source file's removed
/// intervals. Uses `min_length`, `keep`, `memory_limit` and `spill_dir`.
pub fn find(workdir: &Path, options: &SubstringOptions, threads: usize) -> Result<Stats> {
    let started = std::time::Instant::now();
    options.validate()?;
    if options.unit != super::Unit::Bytes {
        return Err(Error::Config(
            "unit tokens is not available in the datatrove stages yet: use unit bytes".into(),
        ));
    }
    let segments = load_segments(workdir)?;
    let pool = thread_pool(threads)?;
    let tmp = super::spill_dir(options)?;
    // The texts in the global order, in one file.
    let text_path = tmp.path().join("text");
    let err = |e: std::io::Error| Error::io(text_path.display().to_string(), e);
    let mut out = BufWriter::with_capacity(1 << 20, spill_file(&text_path).map_err(err)?);
    let mut starts = vec![0u64];
    for seg in &segments {
        let p = workdir.join("seq").join(&seg.file);
        let bytes = std::fs::read(&p).map_err(|e| Error::io(p.display().to_string(), e))?;
        if bytes.len() as u64 != seg.bytes {
            return Err(corrupt(
                &p,
                format!("{} bytes, the manifest says {}", bytes.len(), seg.bytes),
            ));
        }
        let base = *starts.last().unwrap_or(&0);
        let before = starts.len();
        starts.extend(memchr::memchr_iter(SEPARATOR, &bytes).map(|i| base + i as u64 + 1));
        if (starts.len() - before) as u64 != seg.docs
            || bytes.last().is_some_and(|&b| b != SEPARATOR)
        {
            return Err(corrupt(&p, format!("does not hold {} documents", seg.docs)));
        }
        out.write_all(&bytes).map_err(err)?;
        crate::interrupt::check()?;
    }
    let file = out.into_inner().map_err(|e| err(e.into_error()))?;
    let n = *starts.last().unwrap_or(&0);
    let map = if n == 0 {
        None
    } else {
        // SAFETY: the file is ours (a private temporary directory) and is not changed while
        // mapped.
        Some(unsafe { Mmap::map(&file) }.map_err(err)?)
    };
    let corpus = Corpus {
        map,
        starts,
        tokens: None,
    };
    let (removed, parts, count) = find_removed(&corpus, options, &pool, tmp.path())?;
    drop(parts);

    let cuts_dir = workdir.join("cuts");
    std::fs::create_dir_all(&cuts_dir).map_err(|e| Error::io(cuts_dir.display().to_string(), e))?;
    let _ = std::fs::remove_file(cuts_dir.join("done.json"));
    let mut stats = Stats {
        command: "dedup substring find".into(),
        documents_read: corpus.docs() as u64,
        documents_kept: corpus.docs() as u64,
        text_bytes_read: n.saturating_sub(corpus.docs() as u64),
        ..Default::default()
    };
    let (mut spans, mut bytes, mut changed) = (0u64, 0u64, 0u64);
    let mut doc = 0usize;
    let mut listed = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        let name = format!("s{i:08}.cuts");
        let p = cuts_dir.join(&name);
        let (guard, f) = crate::io::AtomicFile::create(&p)?;
        let mut w = BufWriter::new(f);
        let werr = |e: std::io::Error| Error::io(p.display().to_string(), e);
        for local in 0..seg.docs {
            let ivs = intervals(&corpus, &removed, doc, options.min_length, corpus.doc(doc));
            doc += 1;
            if ivs.is_empty() {
                continue;
            }
            changed += 1;
            spans += ivs.len() as u64;
            w.write_all(&local.to_le_bytes()).map_err(werr)?;
            w.write_all(&(ivs.len() as u32).to_le_bytes())
                .map_err(werr)?;
            for iv in &ivs {
                bytes += iv.end - iv.start;
                w.write_all(&iv.start.to_le_bytes()).map_err(werr)?;
                w.write_all(&iv.end.to_le_bytes()).map_err(werr)?;
            }
        }
        let f = w.into_inner().map_err(|e| werr(e.into_error()))?;
        f.sync_all().map_err(werr)?;
        drop(f);
        guard.commit()?;
        listed.push((seg.name.clone(), name));
    }
    stats.set_counter("substring_spans", spans);
    stats.set_counter("substring_bytes_removed", bytes);
    stats.set_counter("documents_changed", changed);
    stats.set_counter("substring_parts", count as u64);
    stats.seconds = started.elapsed().as_secs_f64();
    write_json(
        &cuts_dir.join("done.json"),
        &Done {
            format: FORMAT,
            segments: listed,
            options: options.clone(),
            counters: stats.counters.clone(),
        },
    )?;
    Ok(stats)
}

/// The current source file of a [`PathCutter`].
#[derive(Debug)]
struct Current {
    name: String,
    cuts: HashMap<u64, Vec<(u64, u64)>>,
    /// The texts stage 1 wrote, and where each starts.
    text: Option<Mmap>,
    starts: Vec<u64>,
    seen: u64,
}

/// Stage 3: the removed intervals of each document, by source path and order in it.
#[derive(Debug)]
pub struct PathCutter {
    workdir: PathBuf,
    /// Source path → (cuts file, text file, documents).
    files: HashMap<String, (String, String, u64)>,
    done: Vec<String>,
    current: Option<Current>,
}

impl PathCutter {
    /// The cuts in `workdir` (after [`find`]).
    pub fn new(workdir: &Path) -> Result<Self> {
        let done_path = workdir.join("cuts").join("done.json");
        if !done_path.exists() {
            return Err(Error::Config(format!(
                "{}: not found: run the find stage first",
                done_path.display()
            )));
        }
        let done: Done = read_json(&done_path)?;
        let segments = load_segments(workdir)?;
        if segments.len() != done.segments.len()
            || segments
                .iter()
                .zip(&done.segments)
                .any(|(s, (name, _))| &s.name != name)
        {
            return Err(corrupt(
                &done_path,
                "the texts changed since the find stage: run it again",
            ));
        }
        let files = segments
            .into_iter()
            .zip(done.segments)
            .map(|(s, (name, cuts))| (name, (cuts, s.file, s.docs)))
            .collect();
        Ok(PathCutter {
            workdir: workdir.to_path_buf(),
            files,
            done: Vec::new(),
            current: None,
        })
    }

    fn open(&self, path: &str) -> Result<Current> {
        let Some((cuts_file, text_file, docs)) = self.files.get(path) else {
            return Err(Error::Config(format!(
                "{path}: not among the files the sequence stage read"
            )));
        };
        let p = self.workdir.join("cuts").join(cuts_file);
        let raw = std::fs::read(&p).map_err(|e| Error::io(p.display().to_string(), e))?;
        let mut cuts = HashMap::new();
        let mut at = 0usize;
        let u64_at = |i: usize| -> Option<u64> {
            raw.get(i..i + 8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        };
        while at < raw.len() {
            let bad = || corrupt(&p, format!("truncated or damaged at byte {at}"));
            let doc = u64_at(at).ok_or_else(bad)?;
            let count = raw
                .get(at + 8..at + 12)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
                .ok_or_else(bad)? as usize;
            let end = at + 12 + 16 * count;
            if end > raw.len() || doc >= *docs {
                return Err(bad());
            }
            let spans = (0..count)
                .map(|k| {
                    let s = at + 12 + 16 * k;
                    Ok((u64_at(s).ok_or_else(bad)?, u64_at(s + 8).ok_or_else(bad)?))
                })
                .collect::<Result<Vec<_>>>()?;
            cuts.insert(doc, spans);
            at = end;
        }
        let tp = self.workdir.join("seq").join(text_file);
        let f = File::open(&tp).map_err(|e| Error::io(tp.display().to_string(), e))?;
        let len = f
            .metadata()
            .map_err(|e| Error::io(tp.display().to_string(), e))?
            .len();
        let text = if len == 0 {
            None
        } else {
            // SAFETY: read only; the stage-1 files are not rewritten while stage 3 runs (the
            // manifests were checked against the find stage's).
            Some(unsafe { Mmap::map(&f) }.map_err(|e| Error::io(tp.display().to_string(), e))?)
        };
        let mut starts = vec![0u64];
        if let Some(t) = &text {
            starts.extend(memchr::memchr_iter(SEPARATOR, t).map(|i| i as u64 + 1));
        }
        Ok(Current {
            name: path.to_string(),
            cuts,
            text,
            starts,
            seen: 0,
        })
    }

    /// The removed intervals (byte offsets in `text`) of the next document of source file
    /// `path`, whose text must be the one the sequence stage saw.
    pub fn next(&mut self, path: &str, text: &str) -> Result<Vec<(u64, u64)>> {
        if self.current.as_ref().map(|c| c.name.as_str()) != Some(path) {
            if self.done.iter().any(|d| d == path) {
                return Err(Error::Config(format!(
                    "documents of {path} are not contiguous"
                )));
            }
            if let Some(c) = self.current.take() {
                self.done.push(c.name);
            }
            self.current = Some(self.open(path)?);
        }
        let Some(c) = self.current.as_mut() else {
            return Err(Error::Config("no current source file".into()));
        };
        let i = c.seen as usize;
        if i + 1 >= c.starts.len() {
            return Err(Error::Config(format!(
                "{path}: more documents than the sequence stage saw ({}): both stages must read \
                 the same data with the same reader and upstream steps",
                c.starts.len() - 1
            )));
        }
        let seen =
            &c.text.as_deref().unwrap_or(&[])[c.starts[i] as usize..c.starts[i + 1] as usize - 1];
        if seen != text.as_bytes() {
            return Err(Error::Config(format!(
                "{path}: document {} is not the text the sequence stage saw",
                i + 1
            )));
        }
        c.seen += 1;
        Ok(c.cuts.remove(&(i as u64)).unwrap_or_default())
    }
}
