//! `tamis tokenize`: read the inputs in batches on one thread, encode each batch's documents in
//! parallel on the pool, and hand their ids to a [`ShardedWriter`] in input order, so the
//! shards are identical for any thread count. Memory: two batches in flight plus the open
//! shard's index (8–12 bytes per document).
//!
//! Resume: `OUTDIR/.tamis-tokenize/run.json` records what the run was started on (options,
//! tokenizer hash, inputs and their sizes). A run on an output directory that has one must
//! match it; it then keeps the finished shards ([`finished_shards`]), reads past the records
//! they hold without encoding them, and writes the rest.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::encoder::{Encoder, Special};
use super::options::{Dtype, Format, TokenizeOptions};
use super::shards::{finished_shards, Position, ShardPlan, ShardRecord, ShardedWriter};
use crate::error::Location;
use crate::io::{
    expand_inputs, extract_docs, read_batches_with, BatchColumns, BatchData, IoOptions, ReadItem,
    RejectsWriter,
};
use crate::options::Options;
use crate::pipeline::{skip_or_fail, thread_pool, Progress};
use crate::{Error, RecordError, Result, Stats};

/// The hidden folder of an output directory holding the run record and the shard markers.
pub const STATE_DIR: &str = ".tamis-tokenize";
/// The manifest's file name in the output directory.
pub const MANIFEST: &str = "manifest.json";
/// Shard base names are `shard_00000`, `shard_00001`, …
pub const SHARD_PREFIX: &str = "shard";

/// One input as the run record and the manifest name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputCount {
    /// The path as found.
    pub path: String,
    /// Size in bytes (0 for stdin).
    pub bytes: u64,
    /// Documents written from it.
    pub documents: u64,
    /// Tokens written from it.
    pub tokens: u64,
}

/// The tokenizer, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    /// The file as given.
    pub path: String,
    /// XXH3-128 of its bytes, hex.
    pub xxh3: String,
    /// Ids in the vocabulary, added tokens included.
    pub vocab_size: usize,
    /// The largest id.
    pub max_id: u32,
}

/// `OUTDIR/manifest.json`: what was written, from what, how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The tamis version that wrote it.
    pub tamis_version: String,
    /// `megatron`, `nanotron` or `numpy`.
    pub format: String,
    /// `uint16` or `uint32` (Megatron stores 32-bit ids as int32).
    pub dtype: String,
    /// The tokenizer.
    pub tokenizer: TokenizerInfo,
    /// Ids put before each document.
    pub bos: Value,
    /// Ids put after each document.
    pub eos: Value,
    /// The options, every default filled in.
    pub options: Value,
    /// The text field read.
    pub text_key: String,
    /// Documents written.
    pub documents: u64,
    /// Tokens written.
    pub tokens: u64,
    /// Documents with no tokens (empty text and no BOS/EOS): not written.
    pub documents_empty: u64,
    /// Bad records skipped (`on_error = "skip"`), by reason.
    pub records_skipped: BTreeMap<String, u64>,
    /// Per input, in order.
    pub inputs: Vec<InputCount>,
    /// Per shard, in order.
    pub shards: Vec<ShardRecord>,
}

impl Manifest {
    /// As pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// What a run is started on; a resumed run must see the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RunRecord {
    pub(super) format: u32,
    pub(super) options: Value,
    pub(super) text_key: String,
    pub(super) on_error: String,
    pub(super) tokenizer_xxh3: String,
    pub(super) inputs: Vec<(String, u64)>,
}

impl RunRecord {
    /// Compare with the record of `path` if there is one (refusing another run's), else write
    /// it there.
    pub(super) fn check_or_write(&self, path: &Path, output: &Path) -> Result<()> {
        if let Ok(text) = std::fs::read_to_string(path) {
            let old: RunRecord = serde_json::from_str(&text).map_err(|e| Error::Intermediate {
                path: path.display().to_string(),
                message: format!("unreadable run record ({e}); remove the directory to start over"),
            })?;
            return check_same(&old, self, output);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        }
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        crate::vocab::write_atomic(path, &text)
    }
}

/// The [`ShardPlan`] of shards named `{prefix}_NNNNN` in `output` for `encoder` and `options`
/// (markers in `output/STATE_DIR`), with the id width resolved; refuses ids that do not fit
/// the format. `tokenizer` is the path as `.ds.metadata` names it.
pub fn shard_plan(
    output: &Path,
    prefix: &str,
    encoder: &Encoder,
    options: &TokenizeOptions,
    tokenizer: &Path,
) -> Result<ShardPlan> {
    let dtype = options.dtype.resolve(encoder.max_id)?;
    if options.format == Format::Megatron && encoder.max_id > i32::MAX as u32 {
        return Err(Error::Config(format!(
            "{}: ids up to {} do not fit Megatron's int32",
            tokenizer.display(),
            encoder.max_id
        )));
    }
    if output.exists() && !output.is_dir() {
        return Err(Error::Config(format!(
            "{}: the output must be a directory",
            output.display()
        )));
    }
    Ok(ShardPlan {
        dir: output.to_path_buf(),
        state_dir: output.join(STATE_DIR),
        prefix: prefix.to_string(),
        format: options.format,
        dtype,
        max_shard_tokens: options.max_shard_tokens,
        shuffle: options.shuffle.then_some(options.seed),
        tokenizer_name: tokenizer.display().to_string(),
    })
}

fn special_json(s: &Special) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// Tokenize `inputs` with the `tokenizer.json` at `tokenizer` into shards in `output` (a
/// directory, created when missing); returns the manifest, also written to
/// `output/manifest.json`.
pub fn tokenize(
    inputs: &[String],
    output: &Path,
    tokenizer: &Path,
    io: &IoOptions,
    options: &TokenizeOptions,
    progress: &dyn Progress,
) -> Result<Manifest> {
    options.validate()?;
    let opts = io.run_options(None)?;
    let encoder = Encoder::open(tokenizer, options)?;
    let plan = shard_plan(output, SHARD_PREFIX, &encoder, options, tokenizer)?;
    let dtype = plan.dtype;
    let files = expand_inputs(inputs)?;
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| {
            f.path
                .as_ref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or(0, |m| m.len())
        })
        .collect();
    let record = RunRecord {
        format: 1,
        options: options.to_value(),
        text_key: io.text_key.clone(),
        on_error: format!("{:?}", io.on_error).to_lowercase(),
        tokenizer_xxh3: encoder.xxh3.clone(),
        inputs: files
            .iter()
            .zip(&sizes)
            .map(|(f, &s)| (f.display.clone(), s))
            .collect(),
    };
    record.check_or_write(&plan.state_dir.join("run.json"), output)?;
    let done = finished_shards(&plan)?;
    let start = done.last().map(|s| s.next).unwrap_or_default();
    let mut writer = ShardedWriter::new(plan, done.len())?;
    // When every shard was finished, only the manifest is left to write.
    if start.source < files.len() {
        let pool = thread_pool(opts.threads)?;
        let mut rejects = opts
            .rejects
            .as_deref()
            .map(RejectsWriter::create)
            .transpose()?;
        let mut stats = Stats::default();
        let bytes_in = Arc::new(AtomicU64::new(0));
        progress.start(sizes[start.source..].iter().sum());
        let todo = &files[start.source..];
        let (tx, rx) = crossbeam_channel::bounded::<ReadItem>(2);
        let mut records = vec![0u64; files.len()];
        let result = std::thread::scope(|scope| -> Result<()> {
            let reader_bytes = bytes_in.clone();
            let reader = scope.spawn(move || {
                read_batches_with(todo, opts.batch_bytes, false, reader_bytes, |item| {
                    tx.send(item).is_ok()
                })
            });
            let mut consume = || -> Result<()> {
                for item in crate::pipeline::interruptible(&rx) {
                    let batch = match item? {
                        ReadItem::Batch(b) => b,
                        ReadItem::Corrupt {
                            file,
                            file_index,
                            location,
                            message,
                        } => {
                            let source = start.source + file_index;
                            let at = Position {
                                source,
                                record: records[source],
                            };
                            records[source] += 1;
                            if at >= start {
                                stats.documents_read += 1;
                                let error = RecordError::CorruptFile(message);
                                writer.skipped(error.slug());
                                let mut w = rejects.as_mut();
                                skip_or_fail(
                                    &opts,
                                    &mut stats,
                                    &mut w,
                                    &file.display,
                                    location,
                                    error,
                                    None,
                                )?;
                            }
                            continue;
                        }
                    };
                    let source = start.source + batch.file_index;
                    let first = records[source];
                    records[source] += batch.len() as u64;
                    // Records before `start` belong to finished shards: parsed, not encoded.
                    let skip = if source == start.source {
                        start.record.saturating_sub(first).min(batch.len() as u64) as usize
                    } else {
                        0
                    };
                    let cols = BatchColumns::new(&batch, &opts.extract)?;
                    let (docs, ids) = pool.install(|| {
                        let docs = extract_docs(&batch, &cols, &opts.extract);
                        let ids: Vec<Option<std::result::Result<Vec<u32>, String>>> = docs
                            .par_iter()
                            .enumerate()
                            .with_min_len(16)
                            .map(|(i, d)| match d {
                                Ok(d) if i >= skip => Some(encoder.encode(&d.text)),
                                _ => None,
                            })
                            .collect();
                        (docs, ids)
                    });
                    for (i, (doc, ids)) in docs.iter().zip(ids).enumerate().skip(skip) {
                        stats.documents_read += 1;
                        let at = Position {
                            source,
                            record: first + i as u64,
                        };
                        let location = || match &batch.data {
                            BatchData::Jsonl { lines, .. } => batch.location(lines[i].line),
                            BatchData::Arrow { first_row, .. } => {
                                Location::Row(first_row + i as u64)
                            }
                        };
                        let raw = || match &batch.data {
                            BatchData::Jsonl { buf, lines } => {
                                Some(&buf[lines[i].start..lines[i].end])
                            }
                            BatchData::Arrow { .. } => None,
                        };
                        match (doc, ids) {
                            (Err(e), _) => {
                                writer.skipped(e.slug());
                                let mut w = rejects.as_mut();
                                skip_or_fail(
                                    &opts,
                                    &mut stats,
                                    &mut w,
                                    &batch.file.display,
                                    location(),
                                    e.clone(),
                                    raw(),
                                )?;
                            }
                            (Ok(_), Some(Ok(ids))) => writer.add(&ids, source, at)?,
                            (Ok(_), Some(Err(e))) => {
                                return Err(Error::Tokenizer {
                                    path: tokenizer.display().to_string(),
                                    error: crate::TokenizerError::Malformed(format!(
                                        "cannot encode the text of {} {}: {e}",
                                        batch.file.display,
                                        location()
                                    )),
                                })
                            }
                            (Ok(_), None) => {}
                        }
                    }
                    progress.update(bytes_in.load(Ordering::Relaxed), stats.documents_read);
                }
                Ok(())
            };
            let consumed = consume();
            drop(rx);
            let read = reader
                .join()
                .map_err(|_| Error::Config("the reader thread panicked".into()))?;
            consumed?;
            read
        });
        result?;
        if let Some(r) = rejects {
            r.finish()?;
        }
        progress.finish();
    }
    let end = Position {
        source: files.len(),
        record: 0,
    };
    let (written, tail_empty, tail_skipped) = writer.finish(end)?;
    let mut shards = done;
    shards.extend(written);
    let inputs = files
        .iter()
        .zip(&sizes)
        .map(|(f, &bytes)| InputCount {
            path: f.display.clone(),
            bytes,
            documents: 0,
            tokens: 0,
        })
        .collect();
    let manifest = build_manifest(
        &encoder,
        dtype,
        options,
        &io.text_key,
        tokenizer,
        inputs,
        shards,
        (tail_empty, tail_skipped),
    );
    crate::vocab::write_atomic(&output.join(MANIFEST), &manifest.to_json())?;
    Ok(manifest)
}

/// Refuse to resume a run started on other options, another tokenizer or other inputs.
fn check_same(old: &RunRecord, new: &RunRecord, output: &Path) -> Result<()> {
    let mut differ = Vec::new();
    if old.format != new.format {
        differ.push("the tamis run format".to_string());
    }
    if let (Value::Object(a), Value::Object(b)) = (&old.options, &new.options) {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            if a.get(k) != b.get(k) {
                differ.push(format!(
                    "{k} ({} before, {} now)",
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null)
                ));
            }
        }
    } else if old.options != new.options {
        differ.push("the options".into());
    }
    if old.text_key != new.text_key {
        differ.push("text_key".into());
    }
    if old.on_error != new.on_error {
        differ.push("on_error".into());
    }
    if old.tokenizer_xxh3 != new.tokenizer_xxh3 {
        differ.push("the tokenizer file".into());
    }
    if old.inputs != new.inputs {
        differ.push("the inputs (names or sizes)".into());
    }
    if differ.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{}: holds shards of another run; these differ: {}. Write to a new directory, or \
         remove this one to start over",
        output.display(),
        differ.join(", ")
    )))
}

/// The manifest of `shards` written from `inputs` (whose counts are filled in here); `tail`:
/// the empty documents and skipped records read after the last shard's last document.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_manifest(
    encoder: &Encoder,
    dtype: Dtype,
    options: &TokenizeOptions,
    text_key: &str,
    tokenizer: &Path,
    mut inputs: Vec<InputCount>,
    shards: Vec<ShardRecord>,
    tail: (u64, BTreeMap<String, u64>),
) -> Manifest {
    let (tail_empty, tail_skipped) = tail;
    let mut records_skipped = tail_skipped;
    let mut documents_empty = tail_empty;
    for s in &shards {
        for c in &s.sources {
            if let Some(i) = inputs.get_mut(c.source) {
                i.documents += c.documents;
                i.tokens += c.tokens;
            }
        }
        for (k, v) in &s.records_skipped {
            *records_skipped.entry(k.clone()).or_insert(0) += v;
        }
        documents_empty += s.documents_empty;
    }
    Manifest {
        tamis_version: env!("CARGO_PKG_VERSION").to_string(),
        format: options.format.name().to_string(),
        dtype: dtype.name().to_string(),
        tokenizer: TokenizerInfo {
            path: tokenizer.display().to_string(),
            xxh3: encoder.xxh3.clone(),
            vocab_size: encoder.vocab_size,
            max_id: encoder.max_id,
        },
        bos: special_json(&encoder.bos),
        eos: special_json(&encoder.eos),
        options: options.to_value(),
        text_key: text_key.to_string(),
        documents: shards.iter().map(|s| s.documents).sum(),
        tokens: shards.iter().map(|s| s.tokens).sum(),
        documents_empty,
        records_skipped,
        inputs,
        shards,
    }
}
