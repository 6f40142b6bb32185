//! Python bindings (`tamis._core`): conversion, GIL release and error mapping only; every
//! algorithm lives in tamis-core.

use std::path::PathBuf;

// mimalloc for Rust's allocations in the extension (Python keeps its own allocator): the
// tokenizers crate and the record pipelines allocate many small strings per line.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, FixedSizeListArray, UInt32Array, UInt64Array};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use pyo3_arrow::input::AnyArray;
use pyo3_arrow::{PyArray, PyChunkedArray};
use tamis_core::dedup::near::stages::{
    self, FilterOptions, ShardInfo, SignatureWriter, SignaturesOptions,
};
use tamis_core::dedup::near::{
    self, band_keys_many, minhash_matrix, minhash_matrix_from_hashes, near_clusters, near_dedup,
    s_curve_table, MinHashParams, NearConfig,
};
use tamis_core::dedup::{
    exact_keep_mask, hash_many, line_hashes_many, ExactConfig, ExactDedup, LineDedup, LinesConfig,
};
use tamis_core::io::{
    hashes_to_arrow, mask_to_arrow, string_values, ExtractOptions, OnError, Output,
};
use tamis_core::pipeline::{run, thread_pool, NoProgress, RunOptions};
use tamis_core::prox::chunk::{chunk_prompts_with, split_chunks_with, ChunkOptions};
use tamis_core::prox::count::LineCounter;
use tamis_core::prox::prompt::{cached_tokenizer, doc_prompt, PromptTemplate, TokenizerSource};
use tamis_core::prox::{self, Acceptance, Mode};
use tamis_core::text::Normalize;
use tamis_core::vocab::{
    extend, extension_report, stats, token_counts, tokenizer_from_json, CorpusOptions,
    ExtendConfig, StatsConfig, TokenizerFile,
};

create_exception!(
    _core,
    TamisError,
    PyValueError,
    "A tamis error. `.kind` is a stable snake_case slug (e.g. `invalid_json`, `io`)."
);

fn to_py(e: tamis_core::Error) -> PyErr {
    let err = TamisError::new_err(e.to_string());
    Python::attach(|py| {
        let _ = err.value(py).setattr("kind", e.slug());
        if let tamis_core::Error::Record { path, location, .. } = &e {
            let _ = err.value(py).setattr("path", path.as_str());
            let _ = err.value(py).setattr("location", location.to_string());
        }
    });
    err
}

fn parse<T: std::str::FromStr<Err = tamis_core::Error>>(s: &str) -> PyResult<T> {
    s.parse().map_err(to_py)
}

#[allow(clippy::too_many_arguments)]
fn options(
    text_key: String,
    id_key: String,
    key: Option<String>,
    on_error: &str,
    rejects: Option<PathBuf>,
    threads: usize,
) -> PyResult<RunOptions> {
    Ok(RunOptions {
        extract: ExtractOptions {
            text_key,
            id_key,
            key,
        },
        on_error: parse::<OnError>(on_error)?,
        rejects,
        threads,
        ..RunOptions::default()
    })
}

/// Run the `tamis` command line with `argv` (program name first); returns the exit code.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| tamis_cli::run(argv))
}

/// Exact dedup over files; returns the run statistics as JSON.
#[pyfunction]
#[pyo3(signature = (inputs, output, *, normalize="none", key=None, text_key="text", id_key="id", on_error="fail", rejects=None, threads=0))]
#[allow(clippy::too_many_arguments)]
fn dedup_exact(
    py: Python<'_>,
    inputs: Vec<String>,
    output: String,
    normalize: &str,
    key: Option<String>,
    text_key: &str,
    id_key: &str,
    on_error: &str,
    rejects: Option<PathBuf>,
    threads: usize,
) -> PyResult<String> {
    let config = ExactConfig {
        normalize: parse(normalize)?,
        use_key: key.is_some(),
    };
    let opts = options(
        text_key.into(),
        id_key.into(),
        key,
        on_error,
        rejects,
        threads,
    )?;
    py.detach(|| {
        let mut stage = ExactDedup::new(config);
        run(
            "dedup exact",
            &inputs,
            &Output::parse(&output)?,
            &opts,
            &mut stage,
            &NoProgress,
        )
    })
    .map(|s| s.to_json())
    .map_err(to_py)
}

/// Line dedup over files; returns the run statistics as JSON.
#[pyfunction]
#[pyo3(signature = (inputs, output, *, max_occurrences=1, min_line_chars=0, normalize="none", text_key="text", id_key="id", on_error="fail", rejects=None, threads=0))]
#[allow(clippy::too_many_arguments)]
fn dedup_lines(
    py: Python<'_>,
    inputs: Vec<String>,
    output: String,
    max_occurrences: u32,
    min_line_chars: usize,
    normalize: &str,
    text_key: &str,
    id_key: &str,
    on_error: &str,
    rejects: Option<PathBuf>,
    threads: usize,
) -> PyResult<String> {
    let config = LinesConfig {
        max_occurrences,
        min_line_chars,
        normalize: parse(normalize)?,
    };
    let opts = options(
        text_key.into(),
        id_key.into(),
        None,
        on_error,
        rejects,
        threads,
    )?;
    py.detach(|| {
        let mut stage = LineDedup::new(config)?;
        run(
            "dedup lines",
            &inputs,
            &Output::parse(&output)?,
            &opts,
            &mut stage,
            &NoProgress,
        )
    })
    .map(|s| s.to_json())
    .map_err(to_py)
}

fn chunks_of(array: AnyArray) -> PyResult<Vec<ArrayRef>> {
    let chunked: PyChunkedArray = array.into_chunked_array()?;
    Ok(chunked.chunks().to_vec())
}

fn single_chunk(array: ArrayRef, dtype: DataType) -> PyResult<PyChunkedArray> {
    PyChunkedArray::try_new(vec![array], Arc::new(Field::new("", dtype, true)))
}

/// 128-bit hashes (16-byte big-endian binary) of an Arrow string array or stream.
#[pyfunction]
#[pyo3(signature = (texts, *, normalize="none", threads=0))]
fn hash_texts(
    py: Python<'_>,
    texts: AnyArray,
    normalize: &str,
    threads: usize,
) -> PyResult<PyChunkedArray> {
    let mode: Normalize = parse(normalize)?;
    let chunks = chunks_of(texts)?;
    let out = py
        .detach(|| -> tamis_core::Result<_> {
            let values = string_values(&chunks)?;
            let pool = thread_pool(threads)?;
            Ok(hashes_to_arrow(&pool.install(|| hash_many(&values, mode))))
        })
        .map_err(to_py)?;
    single_chunk(Arc::new(out), DataType::Binary)
}

/// Line-dedup hashes of an Arrow string array (no nulls), for the datatrove steps: per line of
/// every text (split on `\n`), one byte, 1 when the line is eligible for removal; and the
/// 128-bit hashes of the eligible lines, in order, as a `m × 2` matrix of (high, low) halves.
#[pyfunction]
#[pyo3(signature = (texts, *, normalize="none", min_line_chars=0, threads=0))]
fn line_hashes<'py>(
    py: Python<'py>,
    texts: AnyArray,
    normalize: &str,
    min_line_chars: usize,
    threads: usize,
) -> PyResult<(Bound<'py, PyBytes>, U64Matrix)> {
    let config = LinesConfig {
        max_occurrences: 1,
        min_line_chars,
        normalize: parse(normalize)?,
    };
    let chunks = chunks_of(texts)?;
    let (eligible, halves) = py
        .detach(|| -> tamis_core::Result<_> {
            let values = string_values(&chunks)?;
            let texts = values
                .into_iter()
                .map(|t| t.ok_or_else(|| tamis_core::Error::Config("null text".into())))
                .collect::<tamis_core::Result<Vec<&str>>>()?;
            let pool = thread_pool(threads)?;
            let hashes = pool.install(|| line_hashes_many(&texts, &config));
            let eligible: Vec<u8> = hashes.iter().map(|h| u8::from(h.is_some())).collect();
            let halves: Vec<u64> = hashes
                .iter()
                .flatten()
                .flat_map(|h| [(h >> 64) as u64, *h as u64])
                .collect();
            Ok((eligible, halves))
        })
        .map_err(to_py)?;
    let rows = halves.len() / 2;
    Ok((
        PyBytes::new(py, &eligible),
        U64Matrix {
            values: ScalarBuffer::from(halves),
            rows,
            cols: 2,
        },
    ))
}

/// Keep mask of exact dedup over an Arrow string array or stream: first occurrences are true.
#[pyfunction]
#[pyo3(signature = (texts, *, normalize="none", threads=0))]
fn exact_keep_mask_arrow(
    py: Python<'_>,
    texts: AnyArray,
    normalize: &str,
    threads: usize,
) -> PyResult<PyChunkedArray> {
    let mode: Normalize = parse(normalize)?;
    let chunks = chunks_of(texts)?;
    let out = py
        .detach(|| -> tamis_core::Result<_> {
            let values = string_values(&chunks)?;
            let pool = thread_pool(threads)?;
            Ok(mask_to_arrow(
                &pool.install(|| exact_keep_mask(&values, mode)),
            ))
        })
        .map_err(to_py)?;
    single_chunk(Arc::new(out), DataType::Boolean)
}

#[allow(clippy::too_many_arguments)]
fn near_params(
    num_perm: usize,
    bands: Option<usize>,
    rows: Option<usize>,
    threshold: Option<f64>,
    recall_weight: Option<f64>,
    ngram: usize,
    shingle: &str,
    seed: u64,
    sketch: &str,
) -> PyResult<MinHashParams> {
    let mut p = MinHashParams::resolve(
        num_perm,
        bands,
        rows,
        threshold,
        recall_weight,
        ngram,
        parse(shingle)?,
        seed,
    )
    .map_err(to_py)?;
    p.sketch = parse(sketch)?;
    Ok(p)
}

/// Resolved (bands, rows) for the given options, and the S-curve as text.
#[pyfunction]
#[pyo3(signature = (*, num_perm=112, bands=None, rows=None, threshold=None, recall_weight=None))]
fn near_bands_rows(
    num_perm: usize,
    bands: Option<usize>,
    rows: Option<usize>,
    threshold: Option<f64>,
    recall_weight: Option<f64>,
) -> PyResult<(usize, usize, String)> {
    let p = near_params(
        num_perm,
        bands,
        rows,
        threshold,
        recall_weight,
        5,
        "words",
        1,
        "kperm",
    )?;
    Ok((p.bands, p.rows, s_curve_table(&p)))
}

/// Near-duplicate dedup over files; returns the run statistics as JSON.
#[pyfunction]
#[pyo3(signature = (inputs, output, *, threshold=None, recall_weight=None, ngram=5, shingle="words", num_perm=112, bands=None, rows=None, seed=1, sketch="kperm", verify=false, annotate=false, priority=None, clusters=None, memory_limit=None, spill_dir=None, text_key="text", id_key="id", on_error="fail", rejects=None, threads=0))]
#[allow(clippy::too_many_arguments)]
fn dedup_near(
    py: Python<'_>,
    inputs: Vec<String>,
    output: String,
    threshold: Option<f64>,
    recall_weight: Option<f64>,
    ngram: usize,
    shingle: &str,
    num_perm: usize,
    bands: Option<usize>,
    rows: Option<usize>,
    seed: u64,
    sketch: &str,
    verify: bool,
    annotate: bool,
    priority: Option<String>,
    clusters: Option<PathBuf>,
    memory_limit: Option<u64>,
    spill_dir: Option<PathBuf>,
    text_key: &str,
    id_key: &str,
    on_error: &str,
    rejects: Option<PathBuf>,
    threads: usize,
) -> PyResult<String> {
    let config = NearConfig {
        params: near_params(
            num_perm,
            bands,
            rows,
            threshold,
            recall_weight,
            ngram,
            shingle,
            seed,
            sketch,
        )?,
        verify: verify.then_some(threshold.unwrap_or(0.8)),
        annotate,
        priority,
        clusters,
        memory_limit,
        spill_dir,
    };
    let opts = options(
        text_key.into(),
        id_key.into(),
        None,
        on_error,
        rejects,
        threads,
    )?;
    py.detach(|| {
        near_dedup(
            &inputs,
            &Output::parse(&output)?,
            &opts,
            &config,
            &NoProgress,
        )
    })
    .map(|s| s.to_json())
    .map_err(to_py)
}

/// Stage 1 over files (task `rank` of `world_size`); returns the stats as JSON.
#[pyfunction]
#[pyo3(signature = (inputs, workdir, *, rank=0, world_size=1, threshold=None, recall_weight=None, ngram=5, shingle="words", num_perm=112, bands=None, rows=None, seed=1, sketch="kperm", priority=None, memory_limit=None, text_key="text", on_error="fail", threads=0))]
#[allow(clippy::too_many_arguments)]
fn near_signatures(
    py: Python<'_>,
    inputs: Vec<String>,
    workdir: PathBuf,
    rank: usize,
    world_size: usize,
    threshold: Option<f64>,
    recall_weight: Option<f64>,
    ngram: usize,
    shingle: &str,
    num_perm: usize,
    bands: Option<usize>,
    rows: Option<usize>,
    seed: u64,
    sketch: &str,
    priority: Option<String>,
    memory_limit: Option<u64>,
    text_key: &str,
    on_error: &str,
    threads: usize,
) -> PyResult<String> {
    let sig = SignaturesOptions {
        params: near_params(
            num_perm,
            bands,
            rows,
            threshold,
            recall_weight,
            ngram,
            shingle,
            seed,
            sketch,
        )?,
        priority,
        memory_limit,
    };
    let opts = options(text_key.into(), "id".into(), None, on_error, None, threads)?;
    py.detach(|| {
        stages::signatures(
            &inputs,
            &workdir,
            rank,
            world_size,
            &opts,
            &sig,
            &NoProgress,
        )
    })
    .map(|s| s.to_json())
    .map_err(to_py)
}

/// Stage 2 (task `rank` of `world_size`); returns the stats as JSON.
#[pyfunction]
#[pyo3(signature = (workdir, *, rank=0, world_size=1))]
fn near_buckets(
    py: Python<'_>,
    workdir: PathBuf,
    rank: usize,
    world_size: usize,
) -> PyResult<String> {
    py.detach(|| stages::buckets(&workdir, rank, world_size))
        .map(|s| s.to_json())
        .map_err(to_py)
}

/// Stage 3 (single task); returns the stats as JSON.
#[pyfunction]
fn near_cluster(py: Python<'_>, workdir: PathBuf) -> PyResult<String> {
    py.detach(|| stages::cluster(&workdir))
        .map(|s| s.to_json())
        .map_err(to_py)
}

/// Stage 4 over files (task `rank` of `world_size`); returns the stats as JSON.
#[pyfunction]
#[pyo3(signature = (inputs, workdir, output, *, rank=0, world_size=1, annotate=false, clusters=None, text_key="text", id_key="id", on_error="fail", rejects=None, threads=0))]
#[allow(clippy::too_many_arguments)]
fn near_filter(
    py: Python<'_>,
    inputs: Vec<String>,
    workdir: PathBuf,
    output: String,
    rank: usize,
    world_size: usize,
    annotate: bool,
    clusters: Option<PathBuf>,
    text_key: &str,
    id_key: &str,
    on_error: &str,
    rejects: Option<PathBuf>,
    threads: usize,
) -> PyResult<String> {
    let opts = options(
        text_key.into(),
        id_key.into(),
        None,
        on_error,
        rejects,
        threads,
    )?;
    let fopts = FilterOptions { annotate, clusters };
    py.detach(|| {
        stages::filter(
            &inputs,
            &workdir,
            rank,
            world_size,
            &output,
            &opts,
            &fopts,
            &NoProgress,
        )
    })
    .map(|s| s.to_json())
    .map_err(to_py)
}

/// Shard ids by source path, from the manifests of a work directory.
#[pyfunction]
fn near_shards(py: Python<'_>, workdir: PathBuf) -> PyResult<Vec<(String, u32, u64)>> {
    py.detach(|| stages::Manifests::load(&workdir))
        .map(|m| {
            m.shards
                .iter()
                .map(|s| (s.name.clone(), s.index, s.docs))
                .collect()
        })
        .map_err(to_py)
}

/// (ordinals, representatives, cluster sizes, first dense index).
type ShardDecisions = (Vec<u64>, Vec<u32>, Vec<u32>, u64);

/// Per-document decisions of one shard after `near_cluster`: (ordinals, representatives,
/// cluster sizes) of its documents in clusters of two or more, and the shard's first dense index.
#[pyfunction]
fn near_shard_decisions(py: Python<'_>, workdir: PathBuf, shard: u32) -> PyResult<ShardDecisions> {
    py.detach(|| -> tamis_core::Result<_> {
        let d = stages::shard_decisions(&workdir, shard)?;
        let offset = stages::shard_offset(&workdir, shard)?;
        Ok((
            d.iter().map(|x| x.0).collect(),
            d.iter().map(|x| x.1).collect(),
            d.iter().map(|x| x.2).collect(),
            offset,
        ))
    })
    .map_err(to_py)
}

/// `(min_words, min_keep_ratio, min_edit_ratio, max_errors)`.
type AcceptArgs = (usize, f64, f64, usize);

fn acceptance(a: AcceptArgs) -> PyResult<Acceptance> {
    let accept = Acceptance {
        min_words: a.0,
        min_keep_ratio: a.1,
        min_edit_ratio: a.2,
        max_errors: a.3,
    };
    accept.validate().map_err(to_py)?;
    Ok(accept)
}

/// Run one program: `level` is `doc` or `chunk`; `None` texts or programs give `None`.
fn execute_one<'t>(
    level: &str,
    text: Option<&'t str>,
    program: Option<&str>,
    mode: Mode,
    accept: &Acceptance,
) -> Option<std::borrow::Cow<'t, str>> {
    let (text, program) = (text?, program?);
    Some(match level {
        "doc" => std::borrow::Cow::Borrowed(prox::execute_doc(text, program, mode)),
        _ => prox::execute_chunk_cow(text, program, mode, accept),
    })
}

fn check_level(level: &str) -> PyResult<()> {
    match level {
        "doc" | "chunk" => Ok(()),
        other => Err(to_py(tamis_core::Error::Config(format!(
            "unknown ProX level {other:?}: expected doc or chunk"
        )))),
    }
}

/// Run ProX programs over lists of texts and programs (same length), in parallel.
#[pyfunction]
#[pyo3(signature = (level, texts, programs, mode, accept, threads=0))]
fn prox_execute_list<'py>(
    py: Python<'py>,
    level: &str,
    texts: Vec<String>,
    programs: Vec<String>,
    mode: &str,
    accept: AcceptArgs,
    threads: usize,
) -> PyResult<Bound<'py, PyList>> {
    check_level(level)?;
    let mode: Mode = parse(mode)?;
    let accept = acceptance(accept)?;
    if texts.len() != programs.len() {
        return Err(to_py(tamis_core::Error::Config(format!(
            "{} texts but {} programs",
            texts.len(),
            programs.len()
        ))));
    }
    let out = py
        .detach(|| -> tamis_core::Result<Vec<std::borrow::Cow<'_, str>>> {
            use rayon::prelude::*;
            let pool = thread_pool(threads)?;
            Ok(pool.install(|| {
                texts
                    .par_iter()
                    .zip(programs.par_iter())
                    .with_min_len(64)
                    .map(|(t, p)| {
                        execute_one(level, Some(t), Some(p), mode, &accept).unwrap_or_default()
                    })
                    .collect()
            }))
        })
        .map_err(to_py)?;
    // Kept documents are not copied in Rust: Python makes each `str` from the borrowed text.
    PyList::new(py, out.iter().map(|c| c.as_ref()))
}

/// Signatures of one datatrove task: its documents are pushed in batches from Python, file by
/// file; each source file is a shard with id `rank << 16 | file number in the task`.
#[pyclass(module = "tamis._core")]
struct NearSignatureWriter {
    inner: Option<SignatureWriter>,
    rank: u32,
    files: Vec<(String, u64)>,
    threads: usize,
}

#[pymethods]
impl NearSignatureWriter {
    #[new]
    #[pyo3(signature = (workdir, *, rank, world_size, threshold=None, recall_weight=None, ngram=5, shingle="words", num_perm=112, bands=None, rows=None, seed=1, sketch="kperm", priority=false, memory_limit=None, threads=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        workdir: PathBuf,
        rank: usize,
        world_size: usize,
        threshold: Option<f64>,
        recall_weight: Option<f64>,
        ngram: usize,
        shingle: &str,
        num_perm: usize,
        bands: Option<usize>,
        rows: Option<usize>,
        seed: u64,
        sketch: &str,
        priority: bool,
        memory_limit: Option<u64>,
        threads: usize,
    ) -> PyResult<Self> {
        let params = near_params(
            num_perm,
            bands,
            rows,
            threshold,
            recall_weight,
            ngram,
            shingle,
            seed,
            sketch,
        )?;
        if rank >= 1 << 16 {
            return Err(TamisError::new_err("at most 65536 signature tasks"));
        }
        let budget = (memory_limit.unwrap_or(1 << 30) / 2 / (params.bands as u64 * 8 + 9)) as usize;
        let inner = SignatureWriter::new(
            &workdir,
            params,
            priority.then(|| "priority".to_string()),
            rank,
            world_size,
            0,
            budget,
        )
        .map_err(to_py)?;
        Ok(NearSignatureWriter {
            inner: Some(inner),
            rank: rank as u32,
            files: Vec::new(),
            threads,
        })
    }

    /// Add the next documents of source file `path` (an Arrow string array or a list of str),
    /// with optional priorities (smaller wins). A file's documents must come together.
    #[pyo3(signature = (path, texts, priorities=None))]
    fn add(
        &mut self,
        py: Python<'_>,
        path: String,
        texts: AnyArray,
        priorities: Option<Vec<f64>>,
    ) -> PyResult<()> {
        let chunks = chunks_of(texts)?;
        if self.files.last().is_none_or(|(p, _)| *p != path) {
            if self.files.iter().any(|(p, _)| *p == path) {
                return Err(TamisError::new_err(format!(
                    "documents of {path} are not contiguous"
                )));
            }
            if self.files.len() >= 1 << 16 {
                return Err(TamisError::new_err("at most 65536 files per task"));
            }
            self.files.push((path, 0));
        }
        let shard = (self.rank << 16) | (self.files.len() as u32 - 1);
        let threads = self.threads;
        let first = self.files.last().map_or(0, |f| f.1);
        let Some(inner) = self.inner.as_mut() else {
            return Err(TamisError::new_err("this writer is finished"));
        };
        let added = py
            .detach(|| -> tamis_core::Result<u64> {
                let values = string_values(&chunks)?;
                if let Some(p) = &priorities {
                    if p.len() != values.len() {
                        return Err(tamis_core::Error::Config(
                            "priorities and texts differ in length".into(),
                        ));
                    }
                }
                let pool = thread_pool(threads)?;
                let hasher = inner.hasher().clone();
                let keys = pool.install(|| band_keys_many(&hasher, &values));
                for (i, k) in keys.iter().enumerate() {
                    let prio = priorities.as_ref().map_or(f64::INFINITY, |p| p[i]);
                    inner.push(shard, first + i as u64, k.as_deref(), prio)?;
                }
                Ok(values.len() as u64)
            })
            .map_err(to_py)?;
        if let Some(f) = self.files.last_mut() {
            f.1 += added;
        }
        Ok(())
    }

    /// Write the remaining files and the manifest; returns the stats as JSON.
    fn finish(&mut self, py: Python<'_>) -> PyResult<String> {
        let Some(mut inner) = self.inner.take() else {
            return Err(TamisError::new_err("this writer is finished"));
        };
        let mut docs = 0;
        for (i, (path, n)) in self.files.iter().enumerate() {
            docs += n;
            inner.add_shard(ShardInfo {
                index: (self.rank << 16) | i as u32,
                name: path.clone(),
                docs: *n,
                size: 0,
                mtime_ns: 0,
                // Rust orders paths component by component; so does this key.
                order: path
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .map(String::from)
                    .collect(),
            });
        }
        let mut stats = tamis_core::Stats {
            command: "dedup near signatures".into(),
            documents_read: docs,
            documents_kept: docs,
            ..Default::default()
        };
        py.detach(|| inner.finish(&mut stats)).map_err(to_py)?;
        Ok(stats.to_json())
    }
}

/// A row-major `rows × cols` matrix of u64 that numpy views without copying
/// (`numpy.asarray(m)`) and Arrow takes as a FixedSizeList array (`m.to_arrow()`).
#[pyclass(module = "tamis._core", frozen)]
struct U64Matrix {
    values: ScalarBuffer<u64>,
    rows: usize,
    cols: usize,
}

#[pymethods]
impl U64Matrix {
    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("shape", (self.rows, self.cols))?;
        d.set_item("typestr", "<u8")?;
        d.set_item("data", (self.values.as_ptr() as usize, true))?;
        d.set_item("version", 3)?;
        Ok(d)
    }

    fn __len__(&self) -> usize {
        self.rows
    }

    /// The rows as an Arrow `FixedSizeList<UInt64>[cols]` array (sharing the memory).
    fn to_arrow(&self) -> PyResult<PyArray> {
        let item = Arc::new(Field::new("item", DataType::UInt64, false));
        let values = UInt64Array::new(self.values.clone(), None);
        let list =
            FixedSizeListArray::try_new(item.clone(), self.cols as i32, Arc::new(values), None)
                .map_err(|e| TamisError::new_err(e.to_string()))?;
        let dtype = DataType::FixedSizeList(item, self.cols as i32);
        PyArray::try_new(
            Arc::new(list),
            Arc::new(Field::new("minhash", dtype, false)),
        )
        .map_err(|e| TamisError::new_err(e.to_string()))
    }
}

/// MinHash signatures of an Arrow string array (nulls and texts without shingles: all
/// 2^64 - 1).
#[pyfunction]
#[pyo3(signature = (texts, *, num_perm=112, ngram=5, shingle="words", seed=1, sketch="kperm", threads=0))]
#[allow(clippy::too_many_arguments)]
fn minhash(
    py: Python<'_>,
    texts: AnyArray,
    num_perm: usize,
    ngram: usize,
    shingle: &str,
    seed: u64,
    sketch: &str,
    threads: usize,
) -> PyResult<U64Matrix> {
    let params = MinHashParams {
        num_perm,
        bands: 1,
        rows: 1,
        ngram,
        shingling: parse(shingle)?,
        seed,
        sketch: parse(sketch)?,
    };
    let chunks = chunks_of(texts)?;
    let (values, rows) = py
        .detach(|| -> tamis_core::Result<_> {
            let values = string_values(&chunks)?;
            let pool = thread_pool(threads)?;
            Ok((
                pool.install(|| minhash_matrix(&values, &params))?,
                values.len(),
            ))
        })
        .map_err(to_py)?;
    Ok(U64Matrix {
        values: ScalarBuffer::from(values),
        rows,
        cols: num_perm,
    })
}

fn u64_values(array: AnyArray, what: &str) -> PyResult<ScalarBuffer<u64>> {
    let mut parts = Vec::new();
    for chunk in chunks_of(array)? {
        let cast = arrow_cast::cast(&chunk, &DataType::UInt64)
            .map_err(|e| TamisError::new_err(format!("{what}: {e}")))?;
        let a = cast
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| TamisError::new_err(format!("{what}: not unsigned integers")))?;
        if a.null_count() > 0 {
            return Err(TamisError::new_err(format!(
                "{what}: nulls are not allowed"
            )));
        }
        parts.push(a.values().clone());
    }
    // One chunk (a numpy array or a contiguous Series) is used in place, without a copy.
    Ok(match parts.len() {
        1 => parts.swap_remove(0),
        _ => parts.iter().flat_map(|p| p.iter().copied()).collect(),
    })
}

/// MinHash signatures of pre-shingled documents: `values` (UInt64 shingle hashes) cut by
/// `offsets` (n + 1 positions).
#[pyfunction]
#[pyo3(signature = (values, offsets, *, num_perm=112, seed=1, sketch="kperm", threads=0))]
fn minhash_hashes(
    py: Python<'_>,
    values: AnyArray,
    offsets: AnyArray,
    num_perm: usize,
    seed: u64,
    sketch: &str,
    threads: usize,
) -> PyResult<U64Matrix> {
    let params = MinHashParams {
        num_perm,
        bands: 1,
        rows: 1,
        seed,
        sketch: parse(sketch)?,
        ..MinHashParams::default()
    };
    let values = u64_values(values, "values")?;
    let offsets = u64_values(offsets, "offsets")?;
    let rows = offsets.len().saturating_sub(1);
    let out = py
        .detach(|| -> tamis_core::Result<_> {
            let pool = thread_pool(threads)?;
            pool.install(|| minhash_matrix_from_hashes(&values, &offsets, &params))
        })
        .map_err(to_py)?;
    Ok(U64Matrix {
        values: ScalarBuffer::from(out),
        rows,
        cols: num_perm,
    })
}

/// In-memory near-dedup of an Arrow string array: (representative index, cluster size) per row.
#[pyfunction]
#[pyo3(signature = (texts, *, threshold=None, recall_weight=None, ngram=5, shingle="words", num_perm=112, bands=None, rows=None, seed=1, sketch="kperm", verify=false, threads=0))]
#[allow(clippy::too_many_arguments)]
fn near_clusters_arrow(
    py: Python<'_>,
    texts: AnyArray,
    threshold: Option<f64>,
    recall_weight: Option<f64>,
    ngram: usize,
    shingle: &str,
    num_perm: usize,
    bands: Option<usize>,
    rows: Option<usize>,
    seed: u64,
    sketch: &str,
    verify: bool,
    threads: usize,
) -> PyResult<(PyChunkedArray, PyChunkedArray)> {
    let config = NearConfig {
        params: near_params(
            num_perm,
            bands,
            rows,
            threshold,
            recall_weight,
            ngram,
            shingle,
            seed,
            sketch,
        )?,
        verify: verify.then_some(threshold.unwrap_or(0.8)),
        ..NearConfig::default()
    };
    let chunks = chunks_of(texts)?;
    let (reps, sizes) = py
        .detach(|| -> tamis_core::Result<_> {
            let values = string_values(&chunks)?;
            let pool = thread_pool(threads)?;
            pool.install(|| near_clusters(&values, &config))
        })
        .map_err(to_py)?;
    Ok((
        single_chunk(Arc::new(UInt32Array::from(reps)), DataType::UInt32)?,
        single_chunk(Arc::new(UInt32Array::from(sizes)), DataType::UInt32)?,
    ))
}

/// Keep mask of in-memory near-dedup: true for the text each cluster keeps (nulls kept).
#[pyfunction]
#[pyo3(signature = (texts, *, threshold=None, recall_weight=None, ngram=5, shingle="words", num_perm=112, bands=None, rows=None, seed=1, sketch="kperm", verify=false, threads=0))]
#[allow(clippy::too_many_arguments)]
fn near_keep_mask_arrow(
    py: Python<'_>,
    texts: AnyArray,
    threshold: Option<f64>,
    recall_weight: Option<f64>,
    ngram: usize,
    shingle: &str,
    num_perm: usize,
    bands: Option<usize>,
    rows: Option<usize>,
    seed: u64,
    sketch: &str,
    verify: bool,
    threads: usize,
) -> PyResult<PyChunkedArray> {
    let config = NearConfig {
        params: near_params(
            num_perm,
            bands,
            rows,
            threshold,
            recall_weight,
            ngram,
            shingle,
            seed,
            sketch,
        )?,
        verify: verify.then_some(threshold.unwrap_or(0.8)),
        ..NearConfig::default()
    };
    let chunks = chunks_of(texts)?;
    let mask = py
        .detach(|| -> tamis_core::Result<_> {
            let values = string_values(&chunks)?;
            let pool = thread_pool(threads)?;
            let (reps, _) = pool.install(|| near_clusters(&values, &config))?;
            let keep: Vec<bool> = reps
                .iter()
                .enumerate()
                .map(|(i, &r)| r as usize == i)
                .collect();
            Ok(mask_to_arrow(&keep))
        })
        .map_err(to_py)?;
    single_chunk(Arc::new(mask), DataType::Boolean)
}

/// The 64-bit shingle hashes of one text, in order (for inspection and cross-checks).
#[pyfunction]
#[pyo3(signature = (text, *, ngram=5, shingle="words"))]
fn shingle_hashes(text: &str, ngram: usize, shingle: &str) -> PyResult<Vec<u64>> {
    Ok(near::shingle_hashes(text, parse(shingle)?, ngram))
}

/// The words of one text as near-dedup sees them (normalized, CJK split per character).
#[pyfunction]
fn shingle_words(text: &str) -> Vec<String> {
    near::words(text)
}

/// Run ProX programs over Arrow string arrays; a null text or program gives a null.
#[pyfunction]
#[pyo3(signature = (level, texts, programs, mode, accept, threads=0))]
fn prox_execute_arrow(
    py: Python<'_>,
    level: &str,
    texts: AnyArray,
    programs: AnyArray,
    mode: &str,
    accept: AcceptArgs,
    threads: usize,
) -> PyResult<PyChunkedArray> {
    check_level(level)?;
    let mode: Mode = parse(mode)?;
    let accept = acceptance(accept)?;
    let (texts, programs) = (chunks_of(texts)?, chunks_of(programs)?);
    let out = py
        .detach(|| -> tamis_core::Result<Vec<ArrayRef>> {
            use rayon::prelude::*;
            let t = string_values(&texts)?;
            let p = string_values(&programs)?;
            if t.len() != p.len() {
                return Err(tamis_core::Error::Config(format!(
                    "{} texts but {} programs",
                    t.len(),
                    p.len()
                )));
            }
            let pool = thread_pool(threads)?;
            // One output chunk per block of documents, built in place: each result is written
            // once, straight into its chunk (no per-document string, no final concatenation).
            const BLOCK: usize = 2048;
            Ok(pool.install(|| {
                t.par_chunks(BLOCK)
                    .zip(p.par_chunks(BLOCK))
                    .map(|(t, p)| {
                        let bytes = t.iter().map(|s| s.map_or(0, str::len)).sum();
                        let mut b =
                            arrow_array::builder::StringBuilder::with_capacity(t.len(), bytes);
                        for (t, p) in t.iter().zip(p) {
                            b.append_option(execute_one(level, *t, *p, mode, &accept));
                        }
                        Arc::new(b.finish()) as ArrayRef
                    })
                    .collect()
            }))
        })
        .map_err(to_py)?;
    let out = if out.is_empty() {
        vec![Arc::new(arrow_array::StringArray::from(Vec::<&str>::new())) as ArrayRef]
    } else {
        out
    };
    PyChunkedArray::try_new(out, Arc::new(Field::new("", DataType::Utf8, true)))
}

/// What a program did, as JSON.
#[pyfunction]
fn prox_explain(
    py: Python<'_>,
    level: &str,
    text: &str,
    program: &str,
    mode: &str,
    accept: AcceptArgs,
) -> PyResult<String> {
    check_level(level)?;
    let mode: Mode = parse(mode)?;
    let accept = acceptance(accept)?;
    let e = py.detach(|| match level {
        "doc" => prox::explain_doc(text, program, mode),
        _ => prox::explain_chunk(text, program, mode, &accept),
    });
    serde_json::to_string(&e).map_err(|e| TamisError::new_err(e.to_string()))
}

/// A tokenizer from a `tokenizer.json` path, or from its JSON text.
fn tokenizer(
    source: &str,
    is_json: bool,
) -> tamis_core::Result<std::sync::Arc<tokenizers::Tokenizer>> {
    cached_tokenizer(if is_json {
        TokenizerSource::Json(source)
    } else {
        TokenizerSource::Path(std::path::Path::new(source))
    })
}

/// `(prefix, content, suffix, system, strip_content)`.
type TemplateArgs = (String, String, String, String, bool);

fn template(t: TemplateArgs) -> PromptTemplate {
    PromptTemplate {
        prefix: t.0,
        content: t.1,
        suffix: t.2,
        system: t.3,
        strip_content: t.4,
    }
}

/// `(max_tokens, number_width, add_special_tokens, open, close)`.
type ChunkArgs = (usize, usize, bool, String, String);

fn chunk_options(c: ChunkArgs) -> ChunkOptions {
    ChunkOptions {
        max_tokens: c.0,
        number_width: c.1,
        add_special_tokens: c.2,
        open: c.3,
        close: c.4,
    }
}

/// Numbered chunk bodies of each text (`prompts=False`) or their rendered prompts.
#[pyfunction]
#[pyo3(signature = (texts, tokenizer_source, is_json, chunk, prompt_template=None, threads=0))]
fn prox_chunks(
    py: Python<'_>,
    texts: Vec<String>,
    tokenizer_source: &str,
    is_json: bool,
    chunk: ChunkArgs,
    prompt_template: Option<TemplateArgs>,
    threads: usize,
) -> PyResult<Vec<Vec<String>>> {
    let opts = chunk_options(chunk);
    let template = prompt_template.map(template);
    py.detach(|| -> tamis_core::Result<Vec<Vec<String>>> {
        use rayon::prelude::*;
        let tok = tokenizer(tokenizer_source, is_json)?;
        let counter = LineCounter::shared(&tok);
        let pool = thread_pool(threads)?;
        pool.install(|| {
            texts
                .par_iter()
                .with_min_len(4)
                .map(|t| match &template {
                    Some(tpl) => chunk_prompts_with(&counter, t, &opts, tpl),
                    None => split_chunks_with(&counter, t, &opts),
                })
                .collect()
        })
    })
    .map_err(to_py)
}

/// Document-stage prompts: `(token ids, text, truncated)` for each text.
#[pyfunction]
#[pyo3(signature = (texts, tokenizer_source, is_json, max_tokens, prompt_template, threads=0))]
fn prox_doc_prompts(
    py: Python<'_>,
    texts: Vec<String>,
    tokenizer_source: &str,
    is_json: bool,
    max_tokens: usize,
    prompt_template: TemplateArgs,
    threads: usize,
) -> PyResult<Vec<(Vec<u32>, String, bool)>> {
    let tpl = template(prompt_template);
    py.detach(|| -> tamis_core::Result<Vec<(Vec<u32>, String, bool)>> {
        use rayon::prelude::*;
        let tok = tokenizer(tokenizer_source, is_json)?;
        let pool = thread_pool(threads)?;
        pool.install(|| {
            texts
                .par_iter()
                .with_min_len(4)
                .map(|t| {
                    doc_prompt(&tok, t, &tpl, max_tokens).map(|p| (p.ids, p.text, p.truncated))
                })
                .collect()
        })
    })
    .map_err(to_py)
}

/// One row of [`prox_outcomes`]: `(text, outcome, reason, program errors)`.
type OutcomeRow = (String, &'static str, &'static str, usize);

/// Run ProX programs over lists and report, for each, the result with its outcome, reason and
/// number of program errors (what `explain` gives, without the details), in parallel.
#[pyfunction]
#[pyo3(signature = (level, texts, programs, mode, accept, threads=0))]
fn prox_outcomes(
    py: Python<'_>,
    level: &str,
    texts: Vec<String>,
    programs: Vec<String>,
    mode: &str,
    accept: AcceptArgs,
    threads: usize,
) -> PyResult<Vec<OutcomeRow>> {
    check_level(level)?;
    let mode: Mode = parse(mode)?;
    let accept = acceptance(accept)?;
    if texts.len() != programs.len() {
        return Err(to_py(tamis_core::Error::Config(format!(
            "{} texts but {} programs",
            texts.len(),
            programs.len()
        ))));
    }
    py.detach(|| -> tamis_core::Result<Vec<OutcomeRow>> {
        use rayon::prelude::*;
        let pool = thread_pool(threads)?;
        Ok(pool.install(|| {
            texts
                .par_iter()
                .zip(programs.par_iter())
                .with_min_len(64)
                .map(|(t, p)| {
                    let e = match level {
                        "doc" => prox::explain_doc(t, p, mode),
                        _ => prox::explain_chunk(t, p, mode, &accept),
                    };
                    (
                        e.text,
                        e.outcome.as_str(),
                        e.reason.as_str(),
                        e.errors.len(),
                    )
                })
                .collect()
        }))
    })
    .map_err(to_py)
}

/// Number of tokens of each text (no special tokens added), in parallel.
#[pyfunction]
#[pyo3(signature = (texts, tokenizer_source, is_json, threads=0))]
fn prox_token_counts(
    py: Python<'_>,
    texts: Vec<String>,
    tokenizer_source: &str,
    is_json: bool,
    threads: usize,
) -> PyResult<Vec<usize>> {
    py.detach(|| -> tamis_core::Result<Vec<usize>> {
        use rayon::prelude::*;
        let tok = tokenizer(tokenizer_source, is_json)?;
        let counter = LineCounter::shared(&tok);
        let pool = thread_pool(threads)?;
        pool.install(|| {
            texts
                .par_iter()
                .with_min_len(16)
                .map(|t| counter.count(t, false))
                .collect()
        })
    })
    .map_err(to_py)
}

/// Render one prompt with a template.
#[pyfunction]
fn prox_render(user: &str, prompt_template: TemplateArgs) -> String {
    template(prompt_template).render(user)
}

fn corpus_options(text_key: &str, on_error: &str, threads: usize) -> PyResult<CorpusOptions> {
    Ok(CorpusOptions {
        text_key: text_key.into(),
        on_error: parse::<OnError>(on_error)?,
        threads,
        ..CorpusOptions::default()
    })
}

/// Extend a BPE tokenizer (JSON text) by continued BPE; returns (new tokenizer JSON, summary
/// JSON, report JSON or None).
#[pyfunction]
#[pyo3(signature = (tokenizer, tokenizer_name, corpus, *, new_tokens=None, min_frequency=2, char_coverage=0.9995, merge_from=None, merge_from_name="<merge_from>", protect=Vec::new(), pad_to_multiple_of=None, report=false, heldout=Vec::new(), text_key="text", on_error="fail", threads=0))]
#[allow(clippy::too_many_arguments)]
fn vocab_extend(
    py: Python<'_>,
    tokenizer: String,
    tokenizer_name: String,
    corpus: Vec<String>,
    new_tokens: Option<usize>,
    min_frequency: u64,
    char_coverage: f64,
    merge_from: Option<String>,
    merge_from_name: &str,
    protect: Vec<String>,
    pad_to_multiple_of: Option<u32>,
    report: bool,
    heldout: Vec<String>,
    text_key: &str,
    on_error: &str,
    threads: usize,
) -> PyResult<(String, String, Option<String>)> {
    let corpus_opts = corpus_options(text_key, on_error, threads)?;
    let cfg = ExtendConfig {
        new_tokens,
        min_frequency,
        char_coverage,
        pad_to_multiple_of,
        protect: protect.clone(),
        corpus: corpus_opts.clone(),
    };
    py.detach(|| -> tamis_core::Result<_> {
        let base = TokenizerFile::from_json(&tokenizer_name, &tokenizer)?;
        let other = merge_from
            .as_deref()
            .map(|j| TokenizerFile::from_json(merge_from_name, j))
            .transpose()?;
        let ext = extend(&base, &corpus, other.as_ref(), &cfg, &NoProgress)?;
        let summary = serde_json::to_string(&ext.summary)
            .map_err(|e| tamis_core::Error::Config(e.to_string()))?;
        let rep = if report {
            let target = if heldout.is_empty() {
                &corpus
            } else {
                &heldout
            };
            if target.is_empty() {
                return Err(tamis_core::Error::Config(
                    "report=True needs target text: give corpus or heldout".into(),
                ));
            }
            let scfg = StatsConfig {
                corpus: corpus_opts,
                ..StatsConfig::default()
            };
            Some(extension_report(&base, &ext, target, &protect, &scfg, &NoProgress)?.to_json())
        } else {
            None
        };
        Ok((ext.json, summary, rep))
    })
    .map_err(to_py)
}

/// The tokenizer report; returns (report JSON, summary text).
#[pyfunction]
#[pyo3(signature = (tokenizer, tokenizer_name, corpus, *, baseline=None, baseline_name="<baseline>", protect=Vec::new(), examples=20, text_key="text", on_error="fail", threads=0))]
#[allow(clippy::too_many_arguments)]
fn vocab_stats(
    py: Python<'_>,
    tokenizer: String,
    tokenizer_name: String,
    corpus: Vec<String>,
    baseline: Option<String>,
    baseline_name: &str,
    protect: Vec<String>,
    examples: usize,
    text_key: &str,
    on_error: &str,
    threads: usize,
) -> PyResult<(String, String)> {
    let cfg = StatsConfig {
        corpus: corpus_options(text_key, on_error, threads)?,
        examples,
    };
    py.detach(|| -> tamis_core::Result<_> {
        let t = TokenizerFile::from_json(&tokenizer_name, &tokenizer)?;
        let b = baseline
            .as_deref()
            .map(|j| TokenizerFile::from_json(baseline_name, j))
            .transpose()?;
        let r = stats(&t, b.as_ref(), &corpus, &protect, &cfg, &NoProgress)?;
        Ok((r.to_json(), r.summary()))
    })
    .map_err(to_py)
}

/// Tokens per text of an Arrow string array or stream (UInt32; nulls stay null), with the
/// tokenizer given as JSON text; no special tokens are added.
#[pyfunction]
#[pyo3(signature = (texts, tokenizer, *, threads=0))]
fn token_counts_arrow(
    py: Python<'_>,
    texts: AnyArray,
    tokenizer: String,
    threads: usize,
) -> PyResult<PyChunkedArray> {
    let chunks = chunks_of(texts)?;
    let out = py
        .detach(|| -> tamis_core::Result<_> {
            let tok = tokenizer_from_json(&tokenizer)?;
            let values = string_values(&chunks)?;
            let pool = thread_pool(threads)?;
            let counts = pool.install(|| token_counts(&tok, &values))?;
            Ok(arrow_array::UInt32Array::from(counts))
        })
        .map_err(to_py)?;
    single_chunk(Arc::new(out), DataType::UInt32)
}

fn init_config(
    method: &str,
    output_init: &str,
    pad_to_multiple_of: u32,
    seed: u64,
    rescale_norm: bool,
) -> PyResult<tamis_core::embed::InitConfig> {
    use tamis_core::embed::{InitConfig, Method, OutputInit};
    if pad_to_multiple_of == 0 {
        return Err(TamisError::new_err("pad_to_multiple_of must be at least 1"));
    }
    Ok(InitConfig {
        method: Method::parse(method).map_err(to_py)?,
        output_init: OutputInit::parse(output_init).map_err(to_py)?,
        pad_to_multiple_of,
        seed,
        rescale_norm,
    })
}

/// Resize a safetensors model directory's embeddings for an extended tokenizer (JSON texts);
/// returns the summary JSON.
#[pyfunction]
#[pyo3(signature = (model, old_tokenizer, old_name, new_tokenizer, new_name, output, *, method="ziptie", output_init="mean", pad_to_multiple_of=64, seed=0, rescale_norm=false, embed_name=None, lm_head_name=None))]
#[allow(clippy::too_many_arguments)]
fn embed_init_checkpoint(
    py: Python<'_>,
    model: PathBuf,
    old_tokenizer: String,
    old_name: String,
    new_tokenizer: String,
    new_name: String,
    output: PathBuf,
    method: &str,
    output_init: &str,
    pad_to_multiple_of: u32,
    seed: u64,
    rescale_norm: bool,
    embed_name: Option<String>,
    lm_head_name: Option<String>,
) -> PyResult<String> {
    let cfg = tamis_core::embed::CheckpointConfig {
        init: init_config(method, output_init, pad_to_multiple_of, seed, rescale_norm)?,
        embed_name,
        lm_head_name,
    };
    py.detach(|| -> tamis_core::Result<String> {
        // Parsed while the tensors they do not affect are being copied.
        let load = || {
            Ok((
                TokenizerFile::from_json(&old_name, &old_tokenizer)?,
                TokenizerFile::from_json(&new_name, &new_tokenizer)?,
            ))
        };
        let s = tamis_core::embed::init_checkpoint_with(&model, load, &output, &cfg)?;
        serde_json::to_string(&s).map_err(|e| tamis_core::Error::Config(e.to_string()))
    })
    .map_err(to_py)
}

/// The resized embedding matrices (raw little-endian bytes of `dtype`, `[rows, cols]`) for an
/// extended tokenizer; returns (rows after, input bytes, output bytes or None, summary JSON).
#[pyfunction]
#[pyo3(signature = (old_tokenizer, old_name, new_tokenizer, new_name, input, output, dtype, rows, cols, *, method="ziptie", output_init="mean", pad_to_multiple_of=64, seed=0, rescale_norm=false))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn embed_rows<'py>(
    py: Python<'py>,
    old_tokenizer: String,
    old_name: String,
    new_tokenizer: String,
    new_name: String,
    input: &[u8],
    output: Option<&[u8]>,
    dtype: &str,
    rows: usize,
    cols: usize,
    method: &str,
    output_init: &str,
    pad_to_multiple_of: u32,
    seed: u64,
    rescale_norm: bool,
) -> PyResult<(
    usize,
    Bound<'py, PyBytes>,
    Option<Bound<'py, PyBytes>>,
    String,
)> {
    use tamis_core::embed::{Dtype, Initializer, Matrix, Plan, Which};
    let cfg = init_config(method, output_init, pad_to_multiple_of, seed, rescale_norm)?;
    let dt = Dtype::parse(dtype).ok_or_else(|| {
        TamisError::new_err(format!(
            "dtype {dtype}: only float32, float16 and bfloat16 embeddings are supported"
        ))
    })?;
    let (n, a, b, summary) = py
        .detach(|| -> tamis_core::Result<_> {
            let old = TokenizerFile::from_json(&old_name, &old_tokenizer)?;
            let new = TokenizerFile::from_json(&new_name, &new_tokenizer)?;
            let plan = Plan::new(&old, &new)?;
            let m = Matrix::new(input, dt, rows, cols)?;
            let o = output.map(|d| Matrix::new(d, dt, rows, cols)).transpose()?;
            let init = Initializer::new("<model>", &plan, &cfg, m, o)?;
            let n = init.rows_out();
            let a = init.rows(Which::Input, 0, n);
            let b = o.map(|_| init.rows(Which::Output, 0, n));
            let summary = serde_json::json!({
                "method": cfg.method.name(),
                "old_ids": plan.old_ids,
                "new_ids": plan.new_ids,
                "rows_before": rows,
                "rows_after": n,
                "new_tokens": plan.new_tokens.len(),
                "empty_decompositions": init.empty_decompositions(),
                "overwritten_padding_rows": init.overwritten_rows(),
            });
            Ok((n, a, b, summary.to_string()))
        })
        .map_err(to_py)?;
    Ok((
        n,
        PyBytes::new(py, &a),
        b.map(|b| PyBytes::new(py, &b)),
        summary,
    ))
}

/// The compiled part of tamis.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TamisError", m.py().get_type::<TamisError>())?;
    m.add(
        "RECORD_ERROR_KINDS",
        tamis_core::RecordError::SLUGS.to_vec(),
    )?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(dedup_exact, m)?)?;
    m.add_function(wrap_pyfunction!(dedup_lines, m)?)?;
    m.add_function(wrap_pyfunction!(hash_texts, m)?)?;
    m.add_function(wrap_pyfunction!(exact_keep_mask_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(line_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(near_bands_rows, m)?)?;
    m.add_function(wrap_pyfunction!(dedup_near, m)?)?;
    m.add_function(wrap_pyfunction!(near_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(near_buckets, m)?)?;
    m.add_function(wrap_pyfunction!(near_cluster, m)?)?;
    m.add_function(wrap_pyfunction!(near_filter, m)?)?;
    m.add_function(wrap_pyfunction!(near_shard_decisions, m)?)?;
    m.add_function(wrap_pyfunction!(near_shards, m)?)?;
    m.add_function(wrap_pyfunction!(minhash, m)?)?;
    m.add_function(wrap_pyfunction!(minhash_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(near_clusters_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(near_keep_mask_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(shingle_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(shingle_words, m)?)?;
    m.add_class::<NearSignatureWriter>()?;
    m.add_class::<U64Matrix>()?;
    m.add_function(wrap_pyfunction!(prox_execute_list, m)?)?;
    m.add_function(wrap_pyfunction!(prox_execute_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(prox_explain, m)?)?;
    m.add_function(wrap_pyfunction!(prox_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(prox_doc_prompts, m)?)?;
    m.add_function(wrap_pyfunction!(prox_render, m)?)?;
    m.add_function(wrap_pyfunction!(vocab_extend, m)?)?;
    m.add_function(wrap_pyfunction!(vocab_stats, m)?)?;
    m.add_function(wrap_pyfunction!(token_counts_arrow, m)?)?;
    m.add(
        "TOKENIZER_ERROR_KINDS",
        tamis_core::TokenizerError::SLUGS.to_vec(),
    )?;
    m.add_function(wrap_pyfunction!(embed_init_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(embed_rows, m)?)?;
    m.add(
        "EMBED_ERROR_KINDS",
        tamis_core::embed::EmbedError::SLUGS.to_vec(),
    )?;
    m.add_function(wrap_pyfunction!(prox_outcomes, m)?)?;
    m.add_function(wrap_pyfunction!(prox_token_counts, m)?)?;
    Ok(())
}
