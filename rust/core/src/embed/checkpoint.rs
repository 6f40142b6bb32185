//! A Hugging Face model directory with safetensors weights: find the embedding and lm_head,
//! write a resized copy. Shards that hold neither are copied as files; the others are rewritten
//! tensor by tensor (other tensors streamed from the file with positioned reads, so they never
//! sit in memory). Only the two embedding matrices are mapped into memory.

use std::borrow::Borrow;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use memmap2::Mmap;
use safetensors::tensor::{Metadata, SafeTensors};
use safetensors::Dtype as StDtype;

use super::init::{Dtype, InitConfig, Initializer, Matrix, Plan, Which};
use super::EmbedError;
use crate::vocab::TokenizerFile;
use crate::{Error, Result};

/// Embedding names tried in order when `--embed-name` is not given.
pub const EMBED_NAMES: &[&str] = &[
    "model.embed_tokens.weight",
    "transformer.wte.weight",
    "model.language_model.embed_tokens.weight",
    "embed_tokens.weight",
    "wte.weight",
];
/// lm_head names tried in order when `--lm-head-name` is not given.
pub const LM_HEAD_NAMES: &[&str] = &["lm_head.weight", "model.lm_head.weight"];

/// Tokenizer files of the old vocabulary that would contradict the new `tokenizer.json`; they
/// are left out of the output (fast tokenizers load from `tokenizer.json` alone).
const STALE_TOKENIZER_FILES: &[&str] =
    &["tokenizer.model", "vocab.json", "merges.txt", "vocab.txt"];
const PICKLE_EXTENSIONS: &[&str] = &["bin", "pt", "pth", "ckpt", "pkl"];

/// Options of [`init_checkpoint`].
#[derive(Debug, Clone, Default)]
pub struct CheckpointConfig {
    /// The initialization.
    pub init: InitConfig,
    /// Name of the input embedding tensor (default: the first of [`EMBED_NAMES`] found).
    pub embed_name: Option<String>,
    /// Name of the lm_head tensor (default: the first of [`LM_HEAD_NAMES`] found).
    pub lm_head_name: Option<String>,
}

/// What [`init_checkpoint`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckpointSummary {
    /// The method.
    pub method: &'static str,
    /// The output init (untied models).
    pub output_init: Option<super::init::OutputInit>,
    /// Whether input and output embeddings are tied (one matrix).
    pub tied: bool,
    /// The embedding tensor.
    pub embed_name: String,
    /// The lm_head tensor, when the checkpoint stores one.
    pub lm_head_name: Option<String>,
    /// Element type of the embedding.
    pub dtype: Dtype,
    /// Hidden size.
    pub hidden_size: usize,
    /// Ids of the old tokenizer.
    pub old_ids: usize,
    /// Ids of the new tokenizer.
    pub new_ids: usize,
    /// Rows before.
    pub rows_before: usize,
    /// Rows after (the new `vocab_size`).
    pub rows_after: usize,
    /// New tokens initialized.
    pub new_tokens: usize,
    /// New tokens whose decomposition was empty (mean of all old rows).
    pub empty_decompositions: usize,
    /// New ids that landed on padding rows the checkpoint already had.
    pub overwritten_padding_rows: usize,
    /// Weight files rewritten.
    pub shards_rewritten: Vec<String>,
    /// Weight files copied unchanged.
    pub shards_copied: Vec<String>,
    /// Other files copied.
    pub files_copied: Vec<String>,
    /// Old tokenizer files left out (they describe the old vocabulary).
    pub files_left_out: Vec<String>,
}

struct Shard {
    file_name: String,
    path: PathBuf,
    map: Mmap,
    header_len: usize,
    metadata: Metadata,
}

fn st_dtype(d: StDtype) -> Option<Dtype> {
    match d {
        StDtype::F32 => Some(Dtype::F32),
        StDtype::F16 => Some(Dtype::F16),
        StDtype::BF16 => Some(Dtype::BF16),
        _ => None,
    }
}

/// Resize the embeddings of the model in `model_dir` for the `new` tokenizer (an extension of
/// `old`) and write the whole model, with `new` as its `tokenizer.json`, to `out_dir`, which
/// must not exist yet (or be empty). The directory appears complete or not at all.
pub fn init_checkpoint(
    model_dir: &Path,
    old: &TokenizerFile,
    new: &TokenizerFile,
    out_dir: &Path,
    cfg: &CheckpointConfig,
) -> Result<CheckpointSummary> {
    init_checkpoint_with(model_dir, || Ok((old, new)), out_dir, cfg)
}

/// [`init_checkpoint`] with the tokenizers given by `load` (say, read from files), called once
/// the model is checked and while other threads copy what does not depend on the new vocabulary: tensors other than
/// the embeddings, and the old rows of the first resized matrix of each shard (placed after the
/// shard's other tensors, behind a header with room for any size).
pub fn init_checkpoint_with<T: Borrow<TokenizerFile>>(
    model_dir: &Path,
    load: impl FnOnce() -> Result<(T, T)>,
    out_dir: &Path,
    cfg: &CheckpointConfig,
) -> Result<CheckpointSummary> {
    let dir_name = model_dir.display().to_string();
    let fail = |path: &Path, error| Error::Embed {
        path: path.display().to_string(),
        error,
    };
    if !model_dir.is_dir() {
        return Err(fail(
            model_dir,
            EmbedError::MissingFile("the model directory".into()),
        ));
    }
    let config_path = model_dir.join("config.json");
    let config_text = std::fs::read_to_string(&config_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            fail(&config_path, EmbedError::MissingFile("config.json".into()))
        }
        _ => Error::io(config_path.display().to_string(), e),
    })?;
    let mut config: serde_json::Value = serde_json::from_str(&config_text)
        .map_err(|e| fail(&config_path, EmbedError::Malformed(e.to_string())))?;
    if !config.is_object() {
        return Err(fail(
            &config_path,
            EmbedError::Malformed("not a JSON object".into()),
        ));
    }

    // The weight files: an index of shards, or one file; pickles are refused.
    let index_path = model_dir.join("model.safetensors.index.json");
    let mut index: Option<serde_json::Value> = None;
    let shard_names: Vec<String> = if index_path.is_file() {
        let text = std::fs::read_to_string(&index_path)
            .map_err(|e| Error::io(index_path.display().to_string(), e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| fail(&index_path, EmbedError::Malformed(e.to_string())))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| {
                fail(
                    &index_path,
                    EmbedError::Malformed("no \"weight_map\" object".into()),
                )
            })?;
        let mut files: Vec<String> = Vec::new();
        for f in map.values() {
            let f = f.as_str().ok_or_else(|| {
                fail(
                    &index_path,
                    EmbedError::Malformed("a weight_map value is not a string".into()),
                )
            })?;
            if f.contains('/') || f.contains('\\') || f.starts_with('.') {
                return Err(fail(
                    &index_path,
                    EmbedError::Malformed(format!(
                        "shard {f:?} is not a file name in the model directory"
                    )),
                ));
            }
            if !files.iter().any(|x| x == f) {
                files.push(f.to_string());
            }
        }
        files.sort();
        index = Some(v);
        files
    } else if model_dir.join("model.safetensors").is_file() {
        vec!["model.safetensors".to_string()]
    } else {
        let pickles: Vec<String> = list_files(model_dir)?
            .into_iter()
            .filter(|n| {
                Path::new(n)
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| PICKLE_EXTENSIONS.contains(&e))
            })
            .collect();
        if let Some(p) = pickles.first() {
            return Err(fail(&model_dir.join(p), EmbedError::Pickle));
        }
        return Err(fail(
            model_dir,
            EmbedError::MissingFile("model.safetensors (or model.safetensors.index.json)".into()),
        ));
    };

    let mut shards = Vec::with_capacity(shard_names.len());
    for name in &shard_names {
        let path = model_dir.join(name);
        let file = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => fail(&path, EmbedError::MissingFile(name.clone())),
            _ => Error::io(path.display().to_string(), e),
        })?;
        // SAFETY: the map is read-only; like every safetensors reader we assume the file is
        // not truncated while we run (a concurrent writer would be a user error).
        let map =
            unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path.display().to_string(), e))?;
        let (header_len, metadata) = read_header(&map, &path)?;
        shards.push(Shard {
            file_name: name.clone(),
            path,
            map,
            header_len,
            metadata,
        });
    }
    let find = |name: &str| shards.iter().position(|s| s.metadata.info(name).is_some());
    let pick = |given: &Option<String>, defaults: &[&str]| -> Option<(String, Option<usize>)> {
        match given {
            Some(n) => Some((n.clone(), find(n))),
            None => defaults
                .iter()
                .find_map(|n| find(n).map(|i| (n.to_string(), Some(i)))),
        }
    };
    let (embed_name, embed_shard) = match pick(&cfg.embed_name, EMBED_NAMES) {
        Some((n, Some(i))) => (n, i),
        Some((n, None)) => return Err(fail(model_dir, EmbedError::UnknownTensor(n))),
        None => {
            return Err(fail(
                model_dir,
                EmbedError::UnknownTensor(format!(
                    "none of {} (give --embed-name)",
                    EMBED_NAMES.join(", ")
                )),
            ))
        }
    };
    let lm_head = match pick(&cfg.lm_head_name, LM_HEAD_NAMES) {
        Some((n, Some(i))) => Some((n, i)),
        Some((n, None)) => return Err(fail(model_dir, EmbedError::UnknownTensor(n))),
        None => None,
    };
    let tied = match config.get("tie_word_embeddings").and_then(|v| v.as_bool()) {
        Some(t) => t,
        None => lm_head.is_none(),
    };
    if !tied {
        // An untied model's output matrix must be resized with its input: naming the input as
        // the lm_head, or another tensor while a usual lm_head is stored, would leave the real
        // one short of the rows config.json is about to promise.
        if let Some((n, _)) = lm_head.as_ref().filter(|(n, _)| *n == embed_name) {
            return Err(fail(
                model_dir,
                EmbedError::WrongTensor(format!(
                    "--lm-head-name {n} is the input embedding, but config.json says \
                     tie_word_embeddings is false: give the output matrix"
                )),
            ));
        }
        if let (Some((n, _)), Some(other)) = (
            &lm_head,
            LM_HEAD_NAMES
                .iter()
                .find(|d| Some(**d) != lm_head.as_ref().map(|l| l.0.as_str()) && find(d).is_some()),
        ) {
            return Err(fail(
                model_dir,
                EmbedError::WrongTensor(format!(
                    "--lm-head-name {n} is given, but the model also stores {other}, which \
                     would be left with the old number of rows"
                )),
            ));
        }
    }
    if !tied && lm_head.is_none() {
        return Err(fail(
            model_dir,
            EmbedError::UnknownTensor(format!(
                "config.json says tie_word_embeddings is false, but none of {} is stored (give --lm-head-name)",
                LM_HEAD_NAMES.join(", ")
            )),
        ));
    }

    let matrix = |name: &str, shard: usize| -> Result<Matrix<'_>> {
        let s = &shards[shard];
        let path = model_dir.join(&s.file_name);
        let info = s
            .metadata
            .info(name)
            .ok_or_else(|| fail(&path, EmbedError::UnknownTensor(name.to_string())))?;
        let dtype = st_dtype(info.dtype).ok_or_else(|| {
            fail(
                &path,
                EmbedError::Malformed(format!(
                    "{name} is {:?}; only F32, F16 and BF16 embeddings are supported",
                    info.dtype
                )),
            )
        })?;
        let [rows, cols] = info.shape[..] else {
            return Err(fail(
                &path,
                EmbedError::Malformed(format!(
                    "{name} has shape {:?}, not [rows, hidden]",
                    info.shape
                )),
            ));
        };
        let base = 8 + s.header_len;
        let data = s
            .map
            .get(base + info.data_offsets.0..base + info.data_offsets.1)
            .ok_or_else(|| {
                fail(
                    &path,
                    EmbedError::Malformed("tensor data past the end of the file".into()),
                )
            })?;
        Ok(Matrix::new(data, dtype, rows, cols)?
            .with_source(&s.path, (base + info.data_offsets.0) as u64))
    };
    let input = matrix(&embed_name, embed_shard)?;
    let output = match (&lm_head, tied) {
        (Some((n, i)), false) => Some(matrix(n, *i)?),
        _ => None,
    };
    if let (Some((n, i)), true) = (&lm_head, tied) {
        // A tied checkpoint that stores both gets two equal copies of the input matrix.
        let o = matrix(n, *i)?;
        if o.rows != input.rows || o.cols != input.cols || o.dtype != input.dtype {
            return Err(fail(
                model_dir,
                EmbedError::Malformed(format!(
                    "tied {n} differs in shape or dtype from {embed_name}"
                )),
            ));
        }
    }
    // The output directory, built next to its final place and renamed at the end.
    let out_parent = out_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if crate::pipeline::resolved(out_dir) == crate::pipeline::resolved(model_dir) {
        return Err(Error::Config(format!(
            "{}: the output directory is the model directory",
            out_dir.display()
        )));
    }
    if out_dir.exists()
        && std::fs::read_dir(out_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::Config(format!(
            "{}: the output directory exists and is not empty",
            out_dir.display()
        )));
    }
    let tmp = tempfile::Builder::new()
        .prefix(".tamis-embed-")
        .tempdir_in(out_parent)
        .map_err(|e| Error::io(out_parent.display().to_string(), e))?;

    let replace = |name: &str| -> Option<Which> {
        if name == embed_name {
            Some(Which::Input)
        } else if lm_head.as_ref().is_some_and(|l| l.0 == name) {
            Some(if tied { Which::Input } else { Which::Output })
        } else {
            None
        }
    };
    let source = |which: Which| match (which, &output) {
        (Which::Output, Some(m)) => *m,
        _ => input,
    };
    let layouts: Vec<Option<ShardLayout>> = shards
        .iter()
        .map(|s| ShardLayout::new(s, &replace, &source))
        .collect::<Result<_>>()?;

    // Shards are written by a few threads (one per file: ext4 serializes the writers of one
    // file) in two phases: first what the vocabulary does not change, then, once this thread has
    // read the tokenizers and planned the new rows, the resized matrices and the header.
    let plan_cell: OnceLock<Plan> = OnceLock::new();
    let init_cell: OnceLock<Initializer<'_>> = OnceLock::new();
    let gate = Gate::default();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(shards.len());
    let next = AtomicUsize::new(0);
    let (loaded, mut done) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        if crate::interrupt::received().is_some() {
                            break; // reported below, once every worker has stopped
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let (Some(s), Some(layout)) = (shards.get(i), layouts.get(i)) else {
                            break;
                        };
                        let src = model_dir.join(&s.file_name);
                        let dst = tmp.path().join(&s.file_name);
                        let r = match layout {
                            None => std::fs::copy(&src, &dst)
                                .map(|_| (s.metadata.data_len() as u64, false))
                                .map_err(|e| Error::io(src.display().to_string(), e)),
                            Some(layout) => layout
                                .write_early(&src, &dst)
                                .and_then(|f| match gate.wait() {
                                    true => match init_cell.get() {
                                        Some(init) => layout.write_late(f, &dst, init),
                                        None => Err(Error::Config("no initializer".into())),
                                    },
                                    false => Err(Error::Config("stopped".into())),
                                })
                                .map(|size| (size, true)),
                        };
                        mine.push((i, r));
                    }
                    mine
                })
            })
            .collect();
        let loaded = (|| -> Result<(T, T)> {
            let (old, new) = load()?;
            let plan = Plan::new(old.borrow(), new.borrow())?;
            let plan = plan_cell.get_or_init(|| plan);
            let init = Initializer::new(&dir_name, plan, &cfg.init, input, output)?;
            let _ = init_cell.set(init);
            Ok((old, new))
        })();
        gate.open(loaded.is_ok());
        if let (Ok(_), Some(init)) = (&loaded, init_cell.get()) {
            // The pass over the old rows for their statistics, beside the copying.
            init.prepare_stats();
        }
        let mut done: Vec<Option<Result<(u64, bool)>>> = (0..shards.len()).map(|_| None).collect();
        for h in handles {
            if let Ok(mine) = h.join() {
                for (i, r) in mine {
                    done[i] = Some(r);
                }
            }
        }
        (loaded, done)
    });
    crate::interrupt::check()?;
    let (_, new) = loaded?;
    let new: &TokenizerFile = new.borrow();
    let (Some(plan), Some(init)) = (plan_cell.get(), init_cell.get()) else {
        return Err(Error::Config("the initialization was not planned".into()));
    };

    let mut summary = CheckpointSummary {
        method: cfg.init.method.name(),
        output_init: (!tied).then_some(cfg.init.output_init),
        tied,
        embed_name: embed_name.clone(),
        lm_head_name: lm_head.as_ref().map(|l| l.0.clone()),
        dtype: input.dtype,
        hidden_size: input.cols,
        old_ids: plan.old_ids,
        new_ids: plan.new_ids,
        rows_before: input.rows,
        rows_after: init.rows_out(),
        new_tokens: plan.new_tokens.len(),
        empty_decompositions: init.empty_decompositions(),
        overwritten_padding_rows: init.overwritten_rows(),
        shards_rewritten: Vec::new(),
        shards_copied: Vec::new(),
        files_copied: Vec::new(),
        files_left_out: Vec::new(),
    };
    // Errors are reported for the first failing shard in order, the same for any scheduling.
    let mut total_size = 0u64;
    for (s, r) in shards.iter().zip(done.iter_mut()) {
        let (size, rewritten) = r
            .take()
            .ok_or_else(|| Error::Config(format!("{}: a writing thread stopped", s.file_name)))??;
        total_size += size;
        if rewritten {
            summary.shards_rewritten.push(s.file_name.clone());
        } else {
            summary.shards_copied.push(s.file_name.clone());
        }
    }
    if let Some(mut v) = index {
        if let Some(m) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            if m.contains_key("total_size") {
                m.insert("total_size".into(), total_size.into());
            }
        }
        write_json(&tmp.path().join("model.safetensors.index.json"), &v)?;
    }
    if let Some(c) = config.as_object_mut() {
        c.insert("vocab_size".into(), init.rows_out().into());
    }
    write_json(&tmp.path().join("config.json"), &config)?;
    let new_tok = tmp.path().join("tokenizer.json");
    std::fs::write(&new_tok, new.json())
        .map_err(|e| Error::io(new_tok.display().to_string(), e))?;

    let skip: Vec<&str> = [
        "config.json",
        "model.safetensors.index.json",
        "tokenizer.json",
    ]
    .into_iter()
    .chain(shard_names.iter().map(|s| s.as_str()))
    .collect();
    for name in list_files(model_dir)? {
        if skip.contains(&name.as_str()) {
            continue;
        }
        let is_pickle = Path::new(&name)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| PICKLE_EXTENSIONS.contains(&e) || e == "safetensors");
        if STALE_TOKENIZER_FILES.contains(&name.as_str()) || is_pickle || name.starts_with('.') {
            summary.files_left_out.push(name);
            continue;
        }
        let src = model_dir.join(&name);
        std::fs::copy(&src, tmp.path().join(&name))
            .map_err(|e| Error::io(src.display().to_string(), e))?;
        summary.files_copied.push(name);
    }
    let tmp_path: PathBuf = tmp.keep();
    if out_dir.exists() {
        // Empty (checked above); rename cannot replace a directory on every platform.
        let _ = std::fs::remove_dir(out_dir);
    }
    std::fs::rename(&tmp_path, out_dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp_path);
        Error::io(out_dir.display().to_string(), e)
    })?;
    Ok(summary)
}

/// Open once with `true` (go on) or `false` (stop); waiters block until then.
#[derive(Default)]
struct Gate {
    state: Mutex<Option<bool>>,
    opened: Condvar,
}

impl Gate {
    fn open(&self, go: bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s = Some(go);
        self.opened.notify_all();
    }

    fn wait(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(go) = *s {
                return go;
            }
            s = self.opened.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn list_files(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io(dir.display().to_string(), e))?;
        if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
            if let Some(n) = e.file_name().to_str() {
                out.push(n.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::Config(e.to_string()))? + "\n";
    std::fs::write(path, text).map_err(|e| Error::io(path.display().to_string(), e))
}

/// Read and check a safetensors header through a map of the whole file: `read_metadata` checks
/// the tensor table against the file length but reads only the header's pages.
fn read_header(map: &Mmap, path: &Path) -> Result<(usize, Metadata)> {
    SafeTensors::read_metadata(map).map_err(|e| Error::Embed {
        path: path.display().to_string(),
        error: EmbedError::Malformed(format!("not a safetensors file: {e}")),
    })
}

/// Write every shard into `tmp`: rewritten when it holds a resized tensor, copied otherwise.
#[allow(clippy::too_many_arguments)]
/// Where everything goes in a rewritten shard: the unchanged tensors first, in their order,
/// then the resized matrices, so that only the header and the matrices depend on the new
/// vocabulary. The header is written last, padded with spaces to the room reserved for it.
struct ShardLayout {
    shard_header_len: usize,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Unchanged tensors: (name, dtype, shape, offset in the source file's data, length).
    others: Vec<(String, StDtype, Vec<usize>, usize, usize)>,
    /// Resized matrices: (name, dtype, which) in order.
    matrices: Vec<(String, StDtype, Which)>,
    /// Where the old rows of each matrix come from: (file, offset), and bytes per matrix row.
    sources: Vec<(PathBuf, u64)>,
    row_bytes: usize,
    cols: usize,
    old_rows: usize,
    /// Room for the header (a multiple of 8).
    header_room: usize,
}

impl ShardLayout {
    /// `None` when the shard holds no resized matrix (it is copied as a file).
    fn new<'m>(
        s: &Shard,
        replace: &dyn Fn(&str) -> Option<Which>,
        source: &dyn Fn(Which) -> Matrix<'m>,
    ) -> Result<Option<Self>> {
        let mut others = Vec::new();
        let mut matrices = Vec::new();
        let mut sources = Vec::new();
        let mut shape = (0, 0, 0);
        for name in s.metadata.offset_keys() {
            let Some(info) = s.metadata.info(&name) else {
                continue;
            };
            match replace(&name) {
                Some(which) => {
                    let m = source(which);
                    let Some((path, offset)) = m.source() else {
                        return Err(Error::Config(format!("{name}: no source file")));
                    };
                    shape = (m.rows, m.cols * m.dtype.size(), m.cols);
                    sources.push((path.to_path_buf(), offset));
                    matrices.push((name, info.dtype, which));
                }
                None => others.push((
                    name,
                    info.dtype,
                    info.shape.clone(),
                    info.data_offsets.0,
                    info.data_offsets.1 - info.data_offsets.0,
                )),
            }
        }
        if matrices.is_empty() {
            return Ok(None);
        }
        let metadata = s.metadata.metadata().as_ref().map(|meta| {
            meta.iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect()
        });
        let mut layout = ShardLayout {
            shard_header_len: s.header_len,
            metadata,
            others,
            matrices,
            sources,
            row_bytes: shape.1,
            cols: shape.2,
            old_rows: shape.0,
            header_room: 0,
        };
        // Each matrix puts at most three numbers that grow with the row count in the header
        // (its rows, its end, the start of the next), none longer than 20 digits.
        let (at_old_size, _) = layout.header(layout.old_rows)?;
        layout.header_room = (at_old_size.len() + 60 * layout.matrices.len()).next_multiple_of(8);
        Ok(Some(layout))
    }

    fn others_len(&self) -> usize {
        self.others.iter().map(|o| o.4).sum()
    }

    /// The header for matrices of `rows` rows (unpadded) and the data size.
    fn header(&self, rows: usize) -> Result<(String, usize)> {
        let mut table = serde_json::Map::new();
        if let Some(m) = &self.metadata {
            table.insert("__metadata__".into(), m.clone().into());
        }
        let mut offset = 0usize;
        for (name, dtype, shape, _, len) in &self.others {
            table.insert(
                name.clone(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
            );
            offset += len;
        }
        let size = rows * self.row_bytes;
        for (name, dtype, _) in &self.matrices {
            table.insert(
                name.clone(),
                serde_json::json!({
                    "dtype": dtype,
                    "shape": [rows, self.cols],
                    "data_offsets": [offset, offset + size],
                }),
            );
            offset += size;
        }
        let header = serde_json::to_string(&table).map_err(|e| Error::Config(e.to_string()))?;
        Ok((header, offset))
    }

    /// Copy the unchanged tensors and the first matrix's old rows into a new file at `dst`
    /// (file to file: `copy_file_range` on Linux, as `cp` does).
    fn write_early(&self, src: &Path, dst: &Path) -> Result<File> {
        let io_dst = |e| Error::io(dst.display().to_string(), e);
        let mut out = File::create(dst).map_err(io_dst)?;
        out.seek(SeekFrom::Start(8 + self.header_room as u64))
            .map_err(io_dst)?;
        let base = 8 + self.shard_header_len as u64;
        for (_, _, _, start, len) in &self.others {
            copy_range(src, base + *start as u64, *len as u64, &mut out, dst)?;
        }
        self.copy_old_rows(0, &mut out, dst)?;
        Ok(out)
    }

    /// The old rows of matrix `k`, from its source file to the current position of `out`.
    fn copy_old_rows(&self, k: usize, out: &mut File, dst: &Path) -> Result<()> {
        let (path, offset) = &self.sources[k];
        copy_range(
            path,
            *offset,
            (self.old_rows * self.row_bytes) as u64,
            out,
            dst,
        )
    }

    /// The rest once the new rows are planned: the other matrices' old rows, every matrix's new
    /// and padding rows, then the header. Returns the data size.
    fn write_late(&self, out: File, dst: &Path, init: &Initializer<'_>) -> Result<u64> {
        let io_dst = |e| Error::io(dst.display().to_string(), e);
        let rows = init.rows_out();
        let data = 8 + self.header_room as u64;
        let matrix_bytes = (rows * self.row_bytes) as u64;
        let mut out = out;
        for (k, (_, _, which)) in self.matrices.iter().enumerate() {
            let start = data + self.others_len() as u64 + k as u64 * matrix_bytes;
            if k > 0 {
                out.seek(SeekFrom::Start(start)).map_err(io_dst)?;
                self.copy_old_rows(k, &mut out, dst)?;
            }
            // Runs of new and padding rows, written over (or after) the copied old rows.
            let mut r = 0;
            while r < rows {
                if !init.is_written(r) {
                    r += 1;
                    continue;
                }
                let mut end = r + 1;
                while end < rows && init.is_written(end) {
                    end += 1;
                }
                out.seek(SeekFrom::Start(start + (r * self.row_bytes) as u64))
                    .map_err(io_dst)?;
                let mut w = BufWriter::with_capacity(1 << 20, &mut out);
                init.write_rows(*which, r, end, &mut w)
                    .and_then(|()| w.flush())
                    .map_err(io_dst)?;
                drop(w);
                r = end;
            }
        }
        let (mut header, size) = self.header(rows)?;
        if header.len() > self.header_room {
            return Err(Error::Config(format!(
                "{}: header of {} bytes exceeds the {} reserved",
                dst.display(),
                header.len(),
                self.header_room
            )));
        }
        // safetensors allows the header to be padded with spaces (this also aligns the data).
        header.extend(std::iter::repeat_n(' ', self.header_room - header.len()));
        out.seek(SeekFrom::Start(0)).map_err(io_dst)?;
        out.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io_dst)?;
        out.write_all(header.as_bytes()).map_err(io_dst)?;
        // Not fsynced, like `cp`: the directory appears by rename once complete; run `sync` for
        // durability across a power loss.
        Ok(size as u64)
    }
}

/// Copy `len` bytes of `src` from `from` to the current position of `out`.
fn copy_range(src: &Path, from: u64, len: u64, out: &mut File, dst: &Path) -> Result<()> {
    let io_src = |e| Error::io(src.display().to_string(), e);
    let mut f = File::open(src).map_err(io_src)?;
    f.seek(SeekFrom::Start(from)).map_err(io_src)?;
    let got = std::io::copy(&mut f.take(len), out)
        .map_err(|e| Error::io(dst.display().to_string(), e))?;
    if got != len {
        return Err(Error::io(
            src.display().to_string(),
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file truncated"),
        ));
    }
    Ok(())
}
