//! Near-duplicate dedup (MinHash-LSH): over files, as scheduler stages, from datatrove, and over
//! in-memory columns. Every function takes the options as one `NearOptions` JSON object.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::UInt32Array;
use arrow_buffer::ScalarBuffer;
use arrow_schema::DataType;
use pyo3::prelude::*;
use pyo3_arrow::input::AnyArray;
use pyo3_arrow::PyChunkedArray;
use tamis_core::dedup::near::stages::{self, PathSignatureWriter, Task};
use tamis_core::dedup::near::{
    self, minhash_matrix, minhash_matrix_from_hashes, near_clusters_with, near_dedup,
    s_curve_table, NearOptions,
};
use tamis_core::io::{mask_to_arrow, number_values, string_values, IoOptions, Output};
use tamis_core::pipeline::{thread_pool, NoProgress};

use crate::arrow::{chunks_of, single_chunk, u64_values, U64Matrix};
use crate::errors::{interruptible, options, tamis_error, to_py, Threads};

fn near_options(json: &str) -> PyResult<NearOptions> {
    let o: NearOptions = options(json)?;
    o.params().map_err(|e| to_py(e.into()))?;
    Ok(o)
}

/// Resolved (bands, rows) for the options, and the S-curve as text.
#[pyfunction]
pub fn near_bands_rows(options_json: &str) -> PyResult<(usize, usize, String)> {
    let p = near_options(options_json)?
        .params()
        .map_err(|e| to_py(e.into()))?;
    Ok((p.bands, p.rows, s_curve_table(&p)))
}

/// Near-duplicate dedup over files; returns the run statistics as JSON.
#[pyfunction]
pub fn dedup_near(
    py: Python<'_>,
    inputs: Vec<String>,
    output: String,
    options_json: &str,
    io_json: &str,
) -> PyResult<String> {
    let o = near_options(options_json)?;
    let io: IoOptions = options(io_json)?;
    interruptible(py, || {
        near_dedup(&inputs, &Output::parse(&output)?, &io, &o, &NoProgress)
    })
    .map(|s| s.to_json())
}

/// Stage 1 over files (task `(rank, world_size)`); returns the stats as JSON.
#[pyfunction]
pub fn near_signatures(
    py: Python<'_>,
    inputs: Vec<String>,
    workdir: PathBuf,
    task_json: &str,
    options_json: &str,
    io_json: &str,
) -> PyResult<String> {
    let o = near_options(options_json)?;
    let io: IoOptions = options(io_json)?;
    let task: Task = options(task_json)?;
    interruptible(py, || {
        stages::signatures(&inputs, &workdir, task, &io, &o, &NoProgress)
    })
    .map(|s| s.to_json())
}

/// Stage 2 (task `rank` of `world_size`, as JSON); returns the stats as JSON.
#[pyfunction]
pub fn near_buckets(py: Python<'_>, workdir: PathBuf, task_json: &str) -> PyResult<String> {
    let task: Task = options(task_json)?;
    interruptible(py, || stages::buckets(&workdir, task.rank, task.world_size)).map(|s| s.to_json())
}

/// Stage 3 (single task); returns the stats as JSON.
#[pyfunction]
pub fn near_cluster(py: Python<'_>, workdir: PathBuf) -> PyResult<String> {
    interruptible(py, || stages::cluster(&workdir)).map(|s| s.to_json())
}

/// Stage 4 over files (task `(rank, world_size)`); returns the stats as JSON.
#[pyfunction]
pub fn near_filter(
    py: Python<'_>,
    inputs: Vec<String>,
    workdir: PathBuf,
    output: String,
    task_json: &str,
    options_json: &str,
    io_json: &str,
) -> PyResult<String> {
    let o: NearOptions = options(options_json)?;
    let io: IoOptions = options(io_json)?;
    let task: Task = options(task_json)?;
    interruptible(py, || {
        stages::filter(&inputs, &workdir, task, &output, &io, &o, &NoProgress)
    })
    .map(|s| s.to_json())
}

/// Signatures of one datatrove task: its documents are pushed in batches from Python, file by
/// file (`tamis_core::dedup::near::stages::PathSignatureWriter`).
#[pyclass(module = "tamis._core")]
pub struct NearSignatureWriter {
    inner: Option<PathSignatureWriter>,
}

#[pymethods]
impl NearSignatureWriter {
    /// Task `rank` of `world_size` writing to `workdir` (`options.keep` picks what a cluster
    /// keeps).
    #[new]
    #[pyo3(signature = (workdir, rank, world_size, options_json, *, threads=Threads(0)))]
    fn new(
        workdir: PathBuf,
        rank: usize,
        world_size: usize,
        options_json: &str,
        threads: Threads,
    ) -> PyResult<Self> {
        let o = near_options(options_json)?;
        let task = Task { rank, world_size };
        let inner = PathSignatureWriter::new(&workdir, &o, task, threads.0).map_err(to_py)?;
        Ok(NearSignatureWriter { inner: Some(inner) })
    }

    /// Add the next documents of source file `path` (an Arrow string array), with the keep
    /// policy's field per document (`max:FIELD`/`min:FIELD`; `None` where missing). A file's
    /// documents must come together.
    #[pyo3(signature = (path, texts, values=None))]
    fn add(
        &mut self,
        py: Python<'_>,
        path: String,
        texts: AnyArray,
        values: Option<Vec<Option<f64>>>,
    ) -> PyResult<()> {
        let chunks = chunks_of(texts)?;
        let Some(inner) = self.inner.as_mut() else {
            return Err(tamis_error("this writer is finished"));
        };
        py.detach(|| {
            let texts = string_values(&chunks)?;
            inner.add(&path, &texts, values.as_deref())
        })
        .map_err(to_py)
    }

    /// Write the remaining files and the manifest; returns the stats as JSON.
    fn finish(&mut self, py: Python<'_>) -> PyResult<String> {
        let Some(inner) = self.inner.take() else {
            return Err(tamis_error("this writer is finished"));
        };
        py.detach(|| inner.finish())
            .map(|s| s.to_json())
            .map_err(to_py)
    }
}

/// Per document: kept, cluster id, cluster size, `dup_of`.
type PathDecisions = (Vec<bool>, Vec<u64>, Vec<u32>, Vec<Option<Vec<String>>>);

/// Stage 4 for a datatrove task (`tamis_core::dedup::near::stages::PathFilter`): decisions for
/// documents given by their source path, in order.
#[pyclass(module = "tamis._core")]
pub struct NearPathFilter {
    inner: stages::PathFilter,
}

#[pymethods]
impl NearPathFilter {
    /// The decisions of the work directory (after the cluster stage).
    #[new]
    fn new(py: Python<'_>, workdir: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| stages::PathFilter::new(&workdir))
            .map_err(to_py)?;
        Ok(NearPathFilter { inner })
    }

    /// For the next documents, by source path: (kept, cluster ids, cluster sizes, dup_of: the
    /// ids of the indexed records a document's cluster duplicates, or None).
    fn decide(&mut self, py: Python<'_>, paths: Vec<String>) -> PyResult<PathDecisions> {
        let inner = &mut self.inner;
        py.detach(|| -> tamis_core::Result<_> {
            let mut out = PathDecisions::default();
            for p in &paths {
                let d = inner.next(p)?;
                out.0.push(d.kept);
                out.1.push(d.rep);
                out.2.push(d.size);
                out.3.push(d.dup_of);
            }
            Ok(out)
        })
        .map_err(to_py)
    }
}

/// MinHash signatures of an Arrow string array (nulls and texts without shingles: all
/// 2^64 - 1); bands and rows of the options are not used.
#[pyfunction]
#[pyo3(signature = (texts, options_json, threads=Threads(0)))]
pub fn minhash(
    py: Python<'_>,
    texts: AnyArray,
    options_json: &str,
    threads: Threads,
) -> PyResult<U64Matrix> {
    let o: NearOptions = options(options_json)?;
    let params = o.signature_params().map_err(|e| to_py(e.into()))?;
    let chunks = chunks_of(texts)?;
    let (values, rows) = py
        .detach(|| -> tamis_core::Result<_> {
            let values = string_values(&chunks)?;
            let pool = thread_pool(threads.0)?;
            Ok((
                pool.install(|| minhash_matrix(&values, &params))?,
                values.len(),
            ))
        })
        .map_err(to_py)?;
    Ok(U64Matrix {
        values: ScalarBuffer::from(values),
        rows,
        cols: params.num_perm,
    })
}

/// MinHash signatures of pre-shingled documents: `values` (UInt64 shingle hashes) cut by
/// `offsets` (n + 1 positions).
#[pyfunction]
#[pyo3(signature = (values, offsets, options_json, threads=Threads(0)))]
pub fn minhash_hashes(
    py: Python<'_>,
    values: AnyArray,
    offsets: AnyArray,
    options_json: &str,
    threads: Threads,
) -> PyResult<U64Matrix> {
    let o: NearOptions = options(options_json)?;
    let params = o.signature_params().map_err(|e| to_py(e.into()))?;
    let values = u64_values(values, "values")?;
    let offsets = u64_values(offsets, "offsets")?;
    let rows = offsets.len().saturating_sub(1);
    let out = py
        .detach(|| -> tamis_core::Result<_> {
            let pool = thread_pool(threads.0)?;
            pool.install(|| minhash_matrix_from_hashes(&values, &offsets, &params))
        })
        .map_err(to_py)?;
    Ok(U64Matrix {
        values: ScalarBuffer::from(out),
        rows,
        cols: params.num_perm,
    })
}

/// In-memory near-dedup of an Arrow string array: (representative index, cluster size) per row.
#[pyfunction]
#[pyo3(signature = (texts, options_json, threads=Threads(0), values=None))]
pub fn near_clusters_arrow(
    py: Python<'_>,
    texts: AnyArray,
    options_json: &str,
    threads: Threads,
    values: Option<AnyArray>,
) -> PyResult<(PyChunkedArray, PyChunkedArray)> {
    let o = near_options(options_json)?;
    let chunks = chunks_of(texts)?;
    let value_chunks = values.map(chunks_of).transpose()?;
    let (reps, sizes) = py
        .detach(|| -> tamis_core::Result<_> {
            let texts = string_values(&chunks)?;
            let values = value_chunks.as_deref().map(number_values).transpose()?;
            let pool = thread_pool(threads.0)?;
            pool.install(|| near_clusters_with(&texts, &o, values.as_deref()))
        })
        .map_err(to_py)?;
    Ok((
        single_chunk(Arc::new(UInt32Array::from(reps)), DataType::UInt32)?,
        single_chunk(Arc::new(UInt32Array::from(sizes)), DataType::UInt32)?,
    ))
}

/// Keep mask of in-memory near-dedup: true for the text each cluster keeps (by `options.keep`;
/// `values`: its field's numeric column), nulls kept.
#[pyfunction]
#[pyo3(signature = (texts, options_json, threads=Threads(0), values=None))]
pub fn near_keep_mask_arrow(
    py: Python<'_>,
    texts: AnyArray,
    options_json: &str,
    threads: Threads,
    values: Option<AnyArray>,
) -> PyResult<PyChunkedArray> {
    let o = near_options(options_json)?;
    let chunks = chunks_of(texts)?;
    let value_chunks = values.map(chunks_of).transpose()?;
    let mask = py
        .detach(|| -> tamis_core::Result<_> {
            let texts = string_values(&chunks)?;
            let values = value_chunks.as_deref().map(number_values).transpose()?;
            let pool = thread_pool(threads.0)?;
            let keep = pool.install(|| near::near_keep_mask(&texts, &o, values.as_deref()))?;
            Ok(mask_to_arrow(&keep))
        })
        .map_err(to_py)?;
    single_chunk(Arc::new(mask), DataType::Boolean)
}

/// The 64-bit shingle hashes of one text, in order (for inspection and cross-checks).
#[pyfunction]
pub fn shingle_hashes(text: &str, options_json: &str) -> PyResult<Vec<u64>> {
    let o: NearOptions = options(options_json)?;
    Ok(near::shingle_hashes(text, o.shingle, o.ngram))
}

/// The words of one text as near-dedup sees them (normalized, CJK split per character).
#[pyfunction]
pub fn shingle_words(text: &str) -> Vec<String> {
    near::words(text)
}
