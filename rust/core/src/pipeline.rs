//! The pipeline driver: read batches on one thread, turn records into documents and run the
//! stage's pure `prepare` step in parallel, then its stateful `decide` step in input order, and
//! write kept documents in input order. Output is therefore byte-identical for any thread count.
//!
//! A run writes one output ([`Targets::One`]) or one output per input file
//! ([`Targets::PerFile`], as `tamis refine` does for its shards).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use rayon::prelude::*;

use crate::error::Location;
use crate::io::{
    expand_inputs, extract_docs, read_batches_with, Batch, BatchColumns, BatchData, Doc,
    ExtractOptions, FieldEdit, InputFile, OnError, Output, OutputWriter, ReadItem, RejectsWriter,
    WriteItem,
};
use crate::{Error, RecordError, Result, Stats};

/// Why a document was removed: a stable snake_case name (`duplicate`, `near_duplicate`, …).
pub type Reason = Cow<'static, str>;

/// What a stage does with one document.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write it unchanged.
    Keep,
    /// Write it with this text.
    Rewrite(String),
    /// Write it with these fields set and, when given, a new text.
    Edit {
        /// Replacement text.
        text: Option<String>,
        /// Fields to set.
        fields: Vec<FieldEdit>,
    },
    /// Drop it, counted under this reason.
    Remove(Reason),
    /// A bad record: fail the run, or skip and count it under `--on-error skip`.
    Reject(RecordError),
}

/// A per-document stage. `prepare` must be pure (it runs in parallel); `decide` sees documents
/// one at a time, in input order.
pub trait Stage: Sync {
    /// Result of the parallel step.
    type Prepared: Send;
    /// Parallel, pure work on one document (normalizing, hashing).
    fn prepare(&self, doc: &Doc<'_>) -> Self::Prepared;
    /// [`Stage::prepare`] with the document's batch at hand (to read other fields of a Parquet
    /// row); the default calls `prepare`.
    fn prepare_in(&self, _batch: &Batch, doc: &Doc<'_>) -> Self::Prepared {
        self.prepare(doc)
    }
    /// Sequential decision, in input order.
    fn decide(&mut self, doc: &Doc<'_>, prepared: Self::Prepared) -> Decision;
    /// Decisions for the valid documents of a batch, in order. The default calls
    /// [`Stage::decide`] on each; stages that work a batch at a time (models) override it. An
    /// error stops the run.
    fn decide_batch(
        &mut self,
        _batch: &Batch,
        docs: &[&Doc<'_>],
        prepared: Vec<Self::Prepared>,
    ) -> Result<Vec<Decision>> {
        Ok(docs
            .iter()
            .zip(prepared)
            .map(|(d, p)| self.decide(d, p))
            .collect())
    }
    /// Called with each batch before its documents are prepared (stages that read other
    /// columns of a Parquet batch look them up here).
    fn begin_batch(&mut self, _batch: &Batch) {}
    /// Add stage counters at the end of the run.
    fn finish(&mut self, _stats: &mut Stats) {}
}

/// Progress reporting hooks (the CLI draws a bar; the library reports nothing by default).
pub trait Progress: Sync {
    /// Called once with the total input size in bytes (0 when unknown, e.g. stdin).
    fn start(&self, _total_bytes: u64) {}
    /// Called after each batch with the input bytes consumed and documents read so far.
    fn update(&self, _bytes: u64, _docs: u64) {}
    /// Called at the end.
    fn finish(&self) {}
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// Options shared by every data command.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Which fields make a document.
    pub extract: ExtractOptions,
    /// Fail or skip on bad records.
    pub on_error: OnError,
    /// Where skipped records go (only with [`OnError::Skip`]).
    pub rejects: Option<PathBuf>,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Target size of a JSONL batch in bytes (memory is a few batches).
    pub batch_bytes: usize,
    /// Read Parquet rows as JSON lines (for stages that set fields inside objects).
    pub rows_as_json: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            extract: ExtractOptions::default(),
            on_error: OnError::Fail,
            rejects: None,
            threads: 0,
            batch_bytes: 8 << 20,
            rows_as_json: false,
        }
    }
}

/// The items of `rx`, with [`crate::interrupt::check`] before each and every 100 ms while
/// waiting (a reader blocked on a slow input must not delay an interrupt).
pub(crate) fn interruptible<T>(
    rx: &crossbeam_channel::Receiver<T>,
) -> impl Iterator<Item = Result<T>> + '_ {
    std::iter::from_fn(move || loop {
        if let Err(e) = crate::interrupt::check() {
            return Some(Err(e));
        }
        match rx.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(item) => return Some(Ok(item)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return None,
        }
    })
}

/// The rayon pool for `threads` (0 = one per core). Pools are built once per size and shared,
/// since building one costs far more than a small in-memory call from Python.
pub fn thread_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    // Every pool is built here: no caller can start more threads than this allows.
    crate::options::check_range("threads", threads, None, Some(crate::io::MAX_THREADS))
        .map_err(Error::Options)?;
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut pools = pools
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(pool) = pools.get(&threads) {
        return Ok(pool.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("tamis-{i}"))
        .build()
        .map_err(|e| Error::Config(format!("cannot start {threads} threads: {e}")))?;
    let pool = Arc::new(pool);
    pools.insert(threads, pool.clone());
    Ok(pool)
}

/// Where a path would land, for comparing outputs with inputs (the file need not exist yet).
pub fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (std::fs::canonicalize(parent), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// Refuse runs that would overwrite their own inputs or write two files to one path.
pub(crate) fn check_paths(files: &[InputFile], output: &Output, opts: &RunOptions) -> Result<()> {
    if opts.extract.id_key == opts.extract.text_key {
        return Err(Error::Config(
            "--id-key and --text-key must name different fields".into(),
        ));
    }
    let inputs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.path.as_deref())
        .map(resolved)
        .collect();
    let out = output.path.as_deref().map(resolved);
    for (what, path) in [("output", &output.path), ("rejects file", &opts.rejects)] {
        if let Some(p) = path {
            if inputs.contains(&resolved(p)) {
                return Err(Error::Config(format!(
                    "{}: the {what} is also an input",
                    p.display()
                )));
            }
        }
    }
    if let (Some(r), Some(o)) = (&opts.rejects, &out) {
        if resolved(r) == *o {
            return Err(Error::Config(format!(
                "{}: the rejects file is also the output",
                r.display()
            )));
        }
    }
    Ok(())
}

/// Where a run writes.
#[derive(Debug, Clone)]
pub enum Targets {
    /// Every kept document to one output; skipped records to [`RunOptions::rejects`].
    One(Output),
    /// The kept documents of input file `i` to `outputs[i]` (every output is written, empty or
    /// not) and its skipped records to `rejects[i]` (created only when there are some).
    PerFile {
        /// One output per input file.
        outputs: Vec<Output>,
        /// One rejects file per input file, or none.
        rejects: Vec<Option<PathBuf>>,
    },
}

/// Run `stage` over `inputs`, writing kept documents to `output`.
pub fn run<S: Stage>(
    command: &str,
    inputs: &[String],
    output: &Output,
    opts: &RunOptions,
    stage: &mut S,
    progress: &dyn Progress,
) -> Result<Stats> {
    if opts.rejects.is_some() && opts.on_error == OnError::Fail {
        return Err(Error::Config("--rejects needs --on-error skip".into()));
    }
    let files = expand_inputs(inputs)?;
    run_files(command, files, output, opts, stage, progress)
}

/// [`run`] over already expanded inputs.
pub fn run_files<S: Stage>(
    command: &str,
    files: Vec<InputFile>,
    output: &Output,
    opts: &RunOptions,
    stage: &mut S,
    progress: &dyn Progress,
) -> Result<Stats> {
    if opts.rejects.is_some() && opts.on_error == OnError::Fail {
        return Err(Error::Config("--rejects needs --on-error skip".into()));
    }
    check_paths(&files, output, opts)?;
    run_to(
        command,
        &files,
        Targets::One(output.clone()),
        opts,
        stage,
        progress,
    )
}

/// The output writers of a run, opened as their files come. Finished outputs stay under their
/// temporary names until the whole run has succeeded ([`Writers::commit`]).
struct Writers {
    targets: Vec<Output>,
    per_file: bool,
    extract: ExtractOptions,
    current: Option<(usize, OutputWriter)>,
    /// Outputs before this index are finished.
    next: usize,
    bytes: u64,
    closed: Vec<crate::io::AtomicFile>,
}

impl Writers {
    fn for_file(&mut self, file: usize) -> Result<&mut OutputWriter> {
        let index = if self.per_file { file } else { 0 };
        if self.current.as_ref().map(|c| c.0) != Some(index) {
            self.finish_until(index)?;
            let w = OutputWriter::create(&self.targets[index], &self.extract)?;
            self.current = Some((index, w));
            self.next = index + 1;
        }
        match &mut self.current {
            Some((_, w)) => Ok(w),
            None => Err(Error::Config("no output writer".into())),
        }
    }

    /// Close the open output and write the empty ones before `end`.
    fn finish_until(&mut self, end: usize) -> Result<()> {
        if let Some((_, w)) = self.current.take() {
            self.close(w)?;
        }
        while self.next < end.min(self.targets.len()) {
            let w = OutputWriter::create(&self.targets[self.next], &self.extract)?;
            self.close(w)?;
            self.next += 1;
        }
        Ok(())
    }

    fn close(&mut self, w: OutputWriter) -> Result<()> {
        let (bytes, atomic) = w.close()?;
        self.bytes += bytes;
        self.closed.extend(atomic);
        Ok(())
    }

    /// Move every output into place; returns the bytes written.
    fn commit(self) -> Result<u64> {
        for a in self.closed {
            a.commit()?;
        }
        Ok(self.bytes)
    }
}

/// The rejects files of a run, created at their first record.
struct Rejects {
    paths: Vec<Option<PathBuf>>,
    per_file: bool,
    current: Option<(usize, RejectsWriter)>,
    done: Vec<RejectsWriter>,
}

impl Rejects {
    fn for_file(&mut self, file: usize) -> Result<Option<&mut RejectsWriter>> {
        let index = if self.per_file { file } else { 0 };
        let Some(Some(path)) = self.paths.get(index) else {
            return Ok(None);
        };
        if self.current.as_ref().map(|c| c.0) != Some(index) {
            let w = RejectsWriter::create(path)?;
            if let Some((_, old)) = self.current.replace((index, w)) {
                self.done.push(old);
            }
        }
        Ok(self.current.as_mut().map(|c| &mut c.1))
    }

    fn finish(mut self) -> Result<()> {
        self.done.extend(self.current.take().map(|c| c.1));
        for w in self.done {
            w.finish()?;
        }
        Ok(())
    }
}

/// Run `stage` over `files` into `targets` (paths are the caller's to check).
pub fn run_to<S: Stage>(
    command: &str,
    files: &[InputFile],
    targets: Targets,
    opts: &RunOptions,
    stage: &mut S,
    progress: &dyn Progress,
) -> Result<Stats> {
    let started = Instant::now();
    let pool = thread_pool(opts.threads)?;
    let mut stats = Stats {
        command: command.to_string(),
        input_files: files.len(),
        threads: pool.current_num_threads(),
        ..Stats::default()
    };
    let total: u64 = files
        .iter()
        .filter_map(|f| f.path.as_ref())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    progress.start(total);
    let (outputs, rejects, per_file) = match targets {
        Targets::One(o) => (vec![o], vec![opts.rejects.clone()], false),
        Targets::PerFile { outputs, rejects } => {
            if outputs.len() != files.len() || rejects.len() != files.len() {
                return Err(Error::Config(
                    "one output and one rejects entry per input file are needed".into(),
                ));
            }
            (outputs, rejects, true)
        }
    };
    for o in &outputs {
        // Fail before reading anything when an output cannot be written.
        if let Some(p) = &o.path {
            crate::io::check_parent(p)?;
        }
    }
    let mut writers = Writers {
        targets: outputs,
        per_file,
        extract: opts.extract.clone(),
        current: None,
        next: 0,
        bytes: 0,
        closed: Vec::new(),
    };
    let mut rejects = Rejects {
        paths: rejects,
        per_file,
        current: None,
        done: Vec::new(),
    };
    let bytes_in = Arc::new(AtomicU64::new(0));
    // Three threads in a row: the reader (I/O, decompression), this one (parsing on the pool,
    // then decisions in input order) and the writer (serialization, compression, I/O), with two
    // batches in flight between each, so that memory stays bounded and the stages overlap.
    let (read_tx, read_rx) = crossbeam_channel::bounded::<ReadItem>(2);
    let (write_tx, write_rx) = crossbeam_channel::bounded::<(Batch, Vec<WriteItem>)>(2);

    let writers = std::thread::scope(|scope| -> Result<Writers> {
        let reader_bytes = bytes_in.clone();
        let reader = scope.spawn(move || {
            let send = |item| read_tx.send(item).is_ok();
            read_batches_with(
                files,
                opts.batch_bytes,
                opts.rows_as_json,
                reader_bytes,
                send,
            )
        });
        let writing = scope.spawn(move || -> Result<Writers> {
            if !writers.per_file {
                // One output: there from the start (under its temporary name), even for a
                // stream that is slow to come.
                writers.for_file(0)?;
            }
            for (batch, items) in write_rx {
                writers.for_file(batch.file_index)?.write(&batch, &items)?;
            }
            Ok(writers)
        });
        let consumed = consume(
            &read_rx,
            &write_tx,
            opts,
            stage,
            &mut rejects,
            &mut stats,
            &pool,
            (progress, &bytes_in),
        );
        drop(read_rx);
        drop(write_tx);
        let read = reader
            .join()
            .map_err(|_| Error::Config("the reader thread panicked".into()))?;
        let written = writing
            .join()
            .map_err(|_| Error::Config("the writer thread panicked".into()))?;
        // The first failure in input order wins: a bad record, then a reader error, then the writer.
        consumed?;
        read?;
        written
    })?;

    let mut writers = writers;
    writers.finish_until(usize::MAX)?;
    stage.finish(&mut stats);
    stats.input_bytes = bytes_in.load(Ordering::Relaxed);
    stats.bytes_written = writers.commit()?;
    rejects.finish()?;
    progress.finish();
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

#[allow(clippy::too_many_arguments)]
fn consume<S: Stage>(
    rx: &crossbeam_channel::Receiver<ReadItem>,
    tx: &crossbeam_channel::Sender<(Batch, Vec<WriteItem>)>,
    opts: &RunOptions,
    stage: &mut S,
    rejects: &mut Rejects,
    stats: &mut Stats,
    pool: &rayon::ThreadPool,
    (progress, bytes_in): (&dyn Progress, &AtomicU64),
) -> Result<()> {
    for item in interruptible(rx) {
        let batch = match item? {
            ReadItem::Batch(b) => b,
            ReadItem::Corrupt {
                file,
                file_index,
                location,
                message,
            } => {
                let error = RecordError::CorruptFile(message);
                stats.documents_read += 1;
                let mut w = rejects.for_file(file_index)?;
                skip_or_fail(opts, stats, &mut w, &file.display, location, error, None)?;
                continue;
            }
        };
        let cols = BatchColumns::new(&batch, &opts.extract)?;
        stage.begin_batch(&batch);
        let items = {
            let (docs, prepared) = pool.install(|| {
                let docs = extract_docs(&batch, &cols, &opts.extract);
                let shared: &S = stage;
                let prepared: Vec<Option<S::Prepared>> = docs
                    .par_iter()
                    .with_min_len(64)
                    .map(|d| d.as_ref().ok().map(|d| shared.prepare_in(&batch, d)))
                    .collect();
                (docs, prepared)
            });
            let valid: Vec<&Doc<'_>> = docs.iter().filter_map(|d| d.as_ref().ok()).collect();
            let prepared: Vec<S::Prepared> = prepared.into_iter().flatten().collect();
            let mut decisions = stage.decide_batch(&batch, &valid, prepared)?.into_iter();
            if decisions.len() != valid.len() {
                return Err(Error::Config(format!(
                    "a stage decided for {} of {} documents",
                    decisions.len(),
                    valid.len()
                )));
            }
            let raw_at = |index: usize| match &batch.data {
                BatchData::Jsonl { buf, lines } => {
                    let span = lines[index];
                    (Some(&buf[span.start..span.end]), batch.location(span.line))
                }
                BatchData::Arrow { first_row, .. } => {
                    (None, Location::Row(first_row + index as u64))
                }
            };
            let mut items = Vec::with_capacity(docs.len());
            for (index, doc) in docs.iter().enumerate() {
                stats.documents_read += 1;
                let doc = match doc {
                    Ok(d) => d,
                    Err(e) => {
                        let (raw, location) = raw_at(index);
                        let mut w = rejects.for_file(batch.file_index)?;
                        let file = &batch.file.display;
                        skip_or_fail(opts, stats, &mut w, file, location, e.clone(), raw)?;
                        continue;
                    }
                };
                let decision = decisions.next().unwrap_or(Decision::Keep);
                stats.text_bytes_read += doc.text.len() as u64;
                let generated_id = doc.id_generated.then(|| doc.id.to_string());
                let (new_text, extra) = match decision {
                    Decision::Keep => (None, Vec::new()),
                    Decision::Rewrite(t) => (Some(t), Vec::new()),
                    Decision::Edit { text, fields } => {
                        if let (Some(raw), _) = raw_at(index) {
                            let raw = std::str::from_utf8(raw).unwrap_or_default();
                            if let Some(name) = crate::io::check_edits(raw, &fields) {
                                stats.text_bytes_read -= doc.text.len() as u64;
                                let error = RecordError::FieldNotObject(name);
                                let (raw, location) = raw_at(index);
                                let mut w = rejects.for_file(batch.file_index)?;
                                let file = &batch.file.display;
                                skip_or_fail(opts, stats, &mut w, file, location, error, raw)?;
                                continue;
                            }
                        }
                        (text, fields)
                    }
                    Decision::Reject(error) => {
                        // Counted as read and skipped, not as a valid document.
                        stats.text_bytes_read -= doc.text.len() as u64;
                        let (raw, location) = raw_at(index);
                        let mut w = rejects.for_file(batch.file_index)?;
                        let file = &batch.file.display;
                        skip_or_fail(opts, stats, &mut w, file, location, error, raw)?;
                        continue;
                    }
                    Decision::Remove(reason) => {
                        Stats::bump(&mut stats.documents_removed, &reason, 1);
                        continue;
                    }
                };
                if new_text.is_some() {
                    stats.documents_modified += 1;
                }
                stats.text_bytes_kept +=
                    new_text.as_ref().map_or(doc.text.len(), |t| t.len()) as u64;
                items.push(WriteItem {
                    index,
                    new_text,
                    generated_id,
                    extra,
                });
            }
            items
        };
        stats.documents_kept += items.len() as u64;
        progress.update(bytes_in.load(Ordering::Relaxed), stats.documents_read);
        if tx.send((batch, items)).is_err() {
            // The writer stopped on an error, which `run` reports.
            break;
        }
    }
    Ok(())
}

pub(crate) fn skip_or_fail(
    opts: &RunOptions,
    stats: &mut Stats,
    rejects: &mut Option<&mut RejectsWriter>,
    path: &str,
    location: Location,
    error: RecordError,
    raw: Option<&[u8]>,
) -> Result<()> {
    match opts.on_error {
        OnError::Fail => Err(Error::Record {
            path: path.to_string(),
            location,
            error,
        }),
        OnError::Skip => {
            Stats::bump(&mut stats.records_skipped, error.slug(), 1);
            if let Some(r) = rejects {
                r.add(path, location, &error, raw)?;
            }
            Ok(())
        }
    }
}

/// One document seen by [`scan`]: the index of its file in the input list, its 0-based ordinal
/// among that file's valid documents, and what `prepare` made of it.
#[derive(Debug)]
pub struct Scanned<T> {
    /// Index of the file in the list given to [`scan`].
    pub file: usize,
    /// 0-based position among the file's valid documents.
    pub ordinal: u64,
    /// The prepared value.
    pub value: T,
}

/// Read `files` and call `prepare` on every valid document in parallel, then `consume` on the
/// results in input order. Bad records fail the scan or, with [`OnError::Skip`], are passed over
/// (counted in `stats`, not written anywhere: the pass that writes the output reports them). A
/// `prepare` error is a bad record too. Returns the number of valid documents of each file.
pub fn scan<T: Send>(
    files: &[InputFile],
    opts: &RunOptions,
    stats: &mut Stats,
    progress: &dyn Progress,
    prepare: impl Fn(&Batch, &Doc<'_>) -> std::result::Result<T, RecordError> + Sync,
    mut consume: impl FnMut(Scanned<T>) -> Result<()>,
) -> Result<Vec<u64>> {
    let pool = thread_pool(opts.threads)?;
    let mut counts = vec![0u64; files.len()];
    let bytes_in = Arc::new(AtomicU64::new(0));
    let (tx, rx) = crossbeam_channel::bounded::<ReadItem>(2);
    std::thread::scope(|scope| -> Result<()> {
        let reader_bytes = bytes_in.clone();
        let reader = scope.spawn(move || {
            let send = |item| tx.send(item).is_ok();
            read_batches_with(
                files,
                opts.batch_bytes,
                opts.rows_as_json,
                reader_bytes,
                send,
            )
        });
        let mut current = 0usize;
        let mut file_index = |f: &InputFile| -> usize {
            // Files come in order: search forward from the last one.
            if let Some(i) = files[current..].iter().position(|x| x == f) {
                current += i;
            }
            current
        };
        let mut run = || -> Result<()> {
            for item in interruptible(&rx) {
                let batch = match item? {
                    ReadItem::Batch(b) => b,
                    ReadItem::Corrupt {
                        file,
                        location,
                        message,
                        ..
                    } => {
                        stats.documents_read += 1;
                        skip_or_fail(
                            opts,
                            stats,
                            &mut None,
                            &file.display,
                            location,
                            RecordError::CorruptFile(message),
                            None,
                        )?;
                        continue;
                    }
                };
                let fi = file_index(&batch.file);
                let cols = BatchColumns::new(&batch, &opts.extract)?;
                let prepared: Vec<std::result::Result<T, RecordError>> = pool.install(|| {
                    let docs = extract_docs(&batch, &cols, &opts.extract);
                    docs.into_par_iter()
                        .with_min_len(16)
                        .map(|d| d.and_then(|d| prepare(&batch, &d)))
                        .collect()
                });
                for (index, value) in prepared.into_iter().enumerate() {
                    stats.documents_read += 1;
                    match value {
                        Ok(value) => {
                            let ordinal = counts[fi];
                            counts[fi] += 1;
                            consume(Scanned {
                                file: fi,
                                ordinal,
                                value,
                            })?;
                        }
                        Err(e) => {
                            let location = match &batch.data {
                                BatchData::Jsonl { lines, .. } => batch.location(lines[index].line),
                                BatchData::Arrow { first_row, .. } => {
                                    Location::Row(first_row + index as u64)
                                }
                            };
                            skip_or_fail(
                                opts,
                                stats,
                                &mut None,
                                &batch.file.display,
                                location,
                                e,
                                None,
                            )?;
                        }
                    }
                }
                progress.update(bytes_in.load(Ordering::Relaxed), stats.documents_read);
            }
            Ok(())
        };
        let scanned = run();
        drop(rx);
        let read = reader
            .join()
            .map_err(|_| Error::Config("the reader thread panicked".into()))?;
        scanned?;
        read
    })?;
    stats.input_bytes += bytes_in.load(Ordering::Relaxed);
    Ok(counts)
}
