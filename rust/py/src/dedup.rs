//! Exact and line dedup: over files, and over in-memory columns.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_buffer::ScalarBuffer;
use arrow_schema::DataType;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3_arrow::input::AnyArray;
use pyo3_arrow::PyChunkedArray;
use tamis_core::dedup::signatures as sig;
use tamis_core::dedup::{
    exact_dedup, exact_keep_mask_options, hash_many, line_hashes_many, lines_dedup, ExactOptions,
    LinesOptions,
};
use tamis_core::io::{
    hashes_to_arrow, mask_to_arrow, number_values, string_values, IoOptions, Output,
};
use tamis_core::pipeline::{thread_pool, NoProgress};
use tamis_core::text::Normalize;

use crate::arrow::{chunks_of, single_chunk, U64Matrix};
use crate::errors::{interruptible, json, options, to_py, Threads};

/// Exact dedup over files (`options`: ExactOptions JSON, `io`: IoOptions JSON); returns the
/// run statistics as JSON.
#[pyfunction]
pub fn dedup_exact(
    py: Python<'_>,
    inputs: Vec<String>,
    output: String,
    options_json: &str,
    io_json: &str,
) -> PyResult<String> {
    let o: ExactOptions = options(options_json)?;
    let io: IoOptions = options(io_json)?;
    interruptible(py, || {
        exact_dedup(&inputs, &Output::parse(&output)?, &io, &o, &NoProgress)
    })
    .map(|s| s.to_json())
}

/// The record field a keep policy reads (`max:FIELD`, `min:FIELD`, or near dedup's `priority`),
/// if any, from the options of `capability` (`exact` or `near`) as JSON: the surfaces that
/// hold columns ask here rather than parse the policy themselves.
#[pyfunction]
pub fn keep_field(capability: &str, options_json: &str) -> PyResult<Option<String>> {
    let keep = match capability {
        "exact" => options::<ExactOptions>(options_json)?.keep,
        "near" => options::<tamis_core::dedup::near::NearOptions>(options_json)?
            .keep_policy()
            .map_err(|e| to_py(e.into()))?,
        other => {
            return Err(to_py(tamis_core::Error::Config(format!(
                "no keep policy in {other} options"
            ))))
        }
    };
    Ok(keep.field().map(str::to_string))
}

/// Line dedup over files; returns the run statistics as JSON.
#[pyfunction]
pub fn dedup_lines(
    py: Python<'_>,
    inputs: Vec<String>,
    output: String,
    options_json: &str,
    io_json: &str,
) -> PyResult<String> {
    let o: LinesOptions = options(options_json)?;
    let io: IoOptions = options(io_json)?;
    interruptible(py, || {
        lines_dedup(&inputs, &Output::parse(&output)?, &io, &o, &NoProgress)
    })
    .map(|s| s.to_json())
}

/// 128-bit hashes (16-byte big-endian binary) of an Arrow string array or stream, normalized
/// as `options` (ExactOptions JSON) says.
#[pyfunction]
#[pyo3(signature = (texts, options_json, threads=Threads(0)))]
pub fn hash_texts(
    py: Python<'_>,
    texts: AnyArray,
    options_json: &str,
    threads: Threads,
) -> PyResult<PyChunkedArray> {
    let o: ExactOptions = options(options_json)?;
    let chunks = chunks_of(texts)?;
    let out = py
        .detach(|| -> tamis_core::Result<_> {
            let values = string_values(&chunks)?;
            let pool = thread_pool(threads.0)?;
            Ok(hashes_to_arrow(
                &pool.install(|| hash_many(&values, o.normalize)),
            ))
        })
        .map_err(to_py)?;
    single_chunk(Arc::new(out), DataType::Binary)
}

/// Line-dedup hashes of an Arrow string array (no nulls): per line of every text (split on
/// `\n`), one byte, 1 when the line is eligible for removal; and the 128-bit hashes of the
/// eligible lines, in order, as a `m × 2` matrix of (high, low) halves.
#[pyfunction]
#[pyo3(signature = (texts, options_json, threads=Threads(0)))]
pub fn line_hashes<'py>(
    py: Python<'py>,
    texts: AnyArray,
    options_json: &str,
    threads: Threads,
) -> PyResult<(Bound<'py, PyBytes>, U64Matrix)> {
    let config: LinesOptions = options(options_json)?;
    let chunks = chunks_of(texts)?;
    let (eligible, halves) = py
        .detach(|| -> tamis_core::Result<_> {
            let values = string_values(&chunks)?;
            let texts = values
                .into_iter()
                .map(|t| t.ok_or_else(|| tamis_core::Error::Config("null text".into())))
                .collect::<tamis_core::Result<Vec<&str>>>()?;
            let pool = thread_pool(threads.0)?;
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

/// Keep mask of exact dedup over an Arrow string array or stream: the document each group
/// keeps (by `options.keep`; `values`: its field's numeric column) is true.
#[pyfunction]
#[pyo3(signature = (texts, options_json, threads=Threads(0), values=None))]
pub fn exact_keep_mask_arrow(
    py: Python<'_>,
    texts: AnyArray,
    options_json: &str,
    threads: Threads,
    values: Option<AnyArray>,
) -> PyResult<PyChunkedArray> {
    let o: ExactOptions = options(options_json)?;
    let chunks = chunks_of(texts)?;
    let value_chunks = values.map(chunks_of).transpose()?;
    let out = py
        .detach(|| -> tamis_core::Result<_> {
            let texts = string_values(&chunks)?;
            let values = value_chunks.as_deref().map(number_values).transpose()?;
            let pool = thread_pool(threads.0)?;
            let mask = pool.install(|| exact_keep_mask_options(&texts, &o, values.as_deref()))?;
            Ok(mask_to_arrow(&mask))
        })
        .map_err(to_py)?;
    single_chunk(Arc::new(out), DataType::Boolean)
}

// ---------------------------------------------------------------------------------------------
// Signature files of the two-stage (datatrove) exact and line dedup: tamis_core::dedup::signatures

/// The strings of an Arrow string column that has no nulls.
pub(crate) fn non_null(values: Vec<Option<&str>>) -> tamis_core::Result<Vec<&str>> {
    values
        .into_iter()
        .map(|t| t.ok_or_else(|| tamis_core::Error::Config("null text".into())))
        .collect()
}

fn mode_of(name: Option<&str>) -> PyResult<Option<Normalize>> {
    name.map(|n| n.parse::<Normalize>().map_err(to_py))
        .transpose()
}

fn header_json<T: serde::Serialize>(header: tamis_core::Result<T>) -> PyResult<String> {
    json(&header.map_err(to_py)?)
}

/// Stage 1 of exact dedup for one task: `add` documents with their source paths, then
/// `finish(rank, world_size)` gives the task's signature file.
#[pyclass(module = "tamis._core")]
pub struct ExactSignatureWriter {
    inner: sig::ExactSignatureWriter,
}

#[pymethods]
impl ExactSignatureWriter {
    /// Signature files are named `{rank:05d}` + this.
    #[classattr]
    const SUFFIX: &'static str = sig::EXACT_SUFFIX;

    /// `options_json`: ExactOptions JSON (`key` is refused); `threads`: 0 is one per core.
    #[new]
    #[pyo3(signature = (options_json, threads=Threads(0)))]
    fn new(options_json: &str, threads: Threads) -> PyResult<Self> {
        let o: ExactOptions = options(options_json)?;
        let inner = sig::ExactSignatureWriter::new(&o, threads.0).map_err(to_py)?;
        Ok(ExactSignatureWriter { inner })
    }

    /// Add documents: `paths[i]` is the source file of `texts[i]` (an Arrow string array);
    /// a file's documents come together. `values`: the keep policy's field per document
    /// (`max:FIELD`/`min:FIELD`; `None` where missing).
    #[pyo3(signature = (paths, texts, values=None))]
    fn add(
        &mut self,
        py: Python<'_>,
        paths: Vec<String>,
        texts: AnyArray,
        values: Option<Vec<Option<f64>>>,
    ) -> PyResult<()> {
        let chunks = chunks_of(texts)?;
        let inner = &mut self.inner;
        py.detach(|| {
            let texts = non_null(string_values(&chunks)?)?;
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            inner.add(&paths, &texts, values.as_deref())
        })
        .map_err(to_py)
    }

    /// The signature file of task `rank` of `world_size`.
    fn finish<'py>(
        &self,
        py: Python<'py>,
        rank: usize,
        world_size: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = py
            .detach(|| self.inner.to_bytes(rank, world_size))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Documents added.
    #[getter]
    fn documents(&self) -> u64 {
        self.inner.documents()
    }

    /// Source files met.
    #[getter]
    fn files(&self) -> usize {
        self.inner.files()
    }
}

/// Stage 2 of exact dedup: the keep decisions of the whole corpus, from every task's signature
/// file; `keep` answers for documents in the order a task reads them.
#[pyclass(module = "tamis._core")]
pub struct ExactKeepTable {
    inner: sig::ExactKeepTable,
}

#[pymethods]
impl ExactKeepTable {
    /// `files`: `(name, contents)` of every signature file of one stage-1 run; `normalize`:
    /// the mode expected (`None`: the recorded one).
    #[new]
    #[pyo3(signature = (files, normalize=None, threads=Threads(0)))]
    fn new(
        py: Python<'_>,
        files: Vec<(String, Bound<'_, PyBytes>)>,
        normalize: Option<&str>,
        threads: Threads,
    ) -> PyResult<Self> {
        let normalize = mode_of(normalize)?;
        let views: Vec<(String, &[u8])> = files
            .iter()
            .map(|(name, data)| (name.clone(), data.as_bytes()))
            .collect();
        let inner = py
            .detach(|| sig::ExactKeepTable::load(&views, normalize, threads.0))
            .map_err(to_py)?;
        Ok(ExactKeepTable { inner })
    }

    /// Also remove the documents found in the exact indexes `against` (with `annotate`: keep
    /// them and name the indexed records in `dup_of`).
    #[pyo3(signature = (against, annotate=false))]
    fn against(&mut self, py: Python<'_>, against: Vec<PathBuf>, annotate: bool) -> PyResult<()> {
        let inner = &mut self.inner;
        py.detach(|| inner.against(&against, annotate))
            .map_err(to_py)
    }

    /// For each document of the last `keep` call: the ids of the indexed records it
    /// duplicates (`None` when not found in an index).
    fn dup_of(&self) -> Vec<Option<Vec<String>>> {
        self.inner.dup_of().to_vec()
    }

    /// Whether to keep each document (`paths[i]`: the source file of `texts[i]`); every
    /// text is checked against its stage-1 hash.
    fn keep(&mut self, py: Python<'_>, paths: Vec<String>, texts: AnyArray) -> PyResult<Vec<bool>> {
        let chunks = chunks_of(texts)?;
        let inner = &mut self.inner;
        py.detach(|| {
            let texts = non_null(string_values(&chunks)?)?;
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            inner.keep(&paths, &texts)
        })
        .map_err(to_py)
    }

    /// Forget the documents met so far (before a task runs).
    fn reset(&mut self) {
        self.inner.reset();
    }

    /// The normalization of the signatures.
    #[getter]
    fn normalize(&self) -> &'static str {
        self.inner.normalize().as_str()
    }

    /// Documents in the signatures.
    #[getter]
    fn documents(&self) -> u64 {
        self.inner.documents()
    }

    /// Documents not kept.
    #[getter]
    fn duplicates(&self) -> u64 {
        self.inner.duplicates()
    }

    /// Source files, in the global order (the command line's).
    #[getter]
    fn files(&self) -> Vec<String> {
        self.inner.files().to_vec()
    }

    /// The JSON header of an exact signature file, after checking its structure.
    #[staticmethod]
    fn read_header(name: &str, data: &[u8]) -> PyResult<String> {
        header_json(sig::read_exact_header(name, data))
    }
}

/// Stage 1 of line dedup for one task: `add` documents with their source paths, then
/// `finish(rank, world_size)` gives the task's signature file.
#[pyclass(module = "tamis._core")]
pub struct LineSignatureWriter {
    inner: sig::LineSignatureWriter,
}

#[pymethods]
impl LineSignatureWriter {
    /// Signature files are named `{rank:05d}` + this.
    #[classattr]
    const SUFFIX: &'static str = sig::LINE_SUFFIX;

    /// `options_json`: LinesOptions JSON (`normalize`, `min_line_chars`).
    #[new]
    #[pyo3(signature = (options_json, threads=Threads(0)))]
    fn new(options_json: &str, threads: Threads) -> PyResult<Self> {
        let o: LinesOptions = options(options_json)?;
        let inner = sig::LineSignatureWriter::new(&o, threads.0).map_err(to_py)?;
        Ok(LineSignatureWriter { inner })
    }

    /// Add documents (`paths[i]`: the source file of `texts[i]`); returns (lines read,
    /// eligible lines).
    fn add(&mut self, py: Python<'_>, paths: Vec<String>, texts: AnyArray) -> PyResult<(u64, u64)> {
        let chunks = chunks_of(texts)?;
        let inner = &mut self.inner;
        py.detach(|| {
            let texts = non_null(string_values(&chunks)?)?;
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            inner.add(&paths, &texts)
        })
        .map(|c| (c.lines_read, c.eligible_lines))
        .map_err(to_py)
    }

    /// The signature file of task `rank` of `world_size`.
    fn finish<'py>(
        &self,
        py: Python<'py>,
        rank: usize,
        world_size: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = py
            .detach(|| self.inner.to_bytes(rank, world_size))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Documents added.
    #[getter]
    fn documents(&self) -> u64 {
        self.inner.documents()
    }

    /// Eligible lines hashed.
    #[getter]
    fn eligible_lines(&self) -> u64 {
        self.inner.eligible_lines()
    }
}

/// (kept, new texts (`None`: unchanged or dropped), lines read, lines removed).
type LineResult = (Vec<bool>, Vec<Option<String>>, u64, u64);

/// Stage 2 of line dedup: the kept lines of the whole corpus, from every task's signature
/// file; `dedup` edits documents in the order a task reads them.
#[pyclass(module = "tamis._core")]
pub struct LineKeepTable {
    inner: sig::LineKeepTable,
}

#[pymethods]
impl LineKeepTable {
    /// `files`: `(name, contents)` of every signature file of one stage-1 run; keeps
    /// `max_occurrences` of each line; `normalize`, `min_line_chars`: the values expected
    /// (`None`: the recorded ones).
    #[new]
    #[pyo3(signature = (files, max_occurrences=1, normalize=None, min_line_chars=None, threads=Threads(0)))]
    fn new(
        py: Python<'_>,
        files: Vec<(String, Bound<'_, PyBytes>)>,
        max_occurrences: u32,
        normalize: Option<&str>,
        min_line_chars: Option<usize>,
        threads: Threads,
    ) -> PyResult<Self> {
        let normalize = mode_of(normalize)?;
        let views: Vec<(String, &[u8])> = files
            .iter()
            .map(|(name, data)| (name.clone(), data.as_bytes()))
            .collect();
        let inner = py
            .detach(|| {
                sig::LineKeepTable::load(
                    &views,
                    max_occurrences,
                    normalize,
                    min_line_chars,
                    threads.0,
                )
            })
            .map_err(to_py)?;
        Ok(LineKeepTable { inner })
    }

    /// Also remove the lines found in the lines indexes `against` (with `annotate`: keep them
    /// and name the indexed records in `dup_of`).
    #[pyo3(signature = (against, annotate=false))]
    fn against(&mut self, py: Python<'_>, against: Vec<PathBuf>, annotate: bool) -> PyResult<()> {
        let inner = &mut self.inner;
        py.detach(|| inner.against(&against, annotate))
            .map_err(to_py)
    }

    /// With `annotate`: for each document of the last `dedup` call, the ids of the indexed
    /// records holding its lines that stay (`None`: none).
    fn dup_of(&self) -> Vec<Option<Vec<String>>> {
        self.inner.dup_of().to_vec()
    }

    /// Remove the lines not kept (`paths[i]`: the source file of `texts[i]`): per document,
    /// whether it is kept (`False`: only white space left) and its new text (`None` when
    /// unchanged); then lines read and lines removed.
    fn dedup(
        &mut self,
        py: Python<'_>,
        paths: Vec<String>,
        texts: AnyArray,
    ) -> PyResult<LineResult> {
        let chunks = chunks_of(texts)?;
        let inner = &mut self.inner;
        py.detach(|| -> tamis_core::Result<LineResult> {
            let texts = non_null(string_values(&chunks)?)?;
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            let edits = inner.dedup(&paths, &texts)?;
            let mut kept = Vec::with_capacity(edits.texts.len());
            let mut new = Vec::with_capacity(edits.texts.len());
            for t in edits.texts {
                kept.push(t.is_some());
                new.push(match t {
                    Some(Cow::Owned(s)) => Some(s),
                    _ => None,
                });
            }
            Ok((
                kept,
                new,
                edits.counts.lines_read,
                edits.counts.lines_removed,
            ))
        })
        .map_err(to_py)
    }

    /// Forget the documents met so far (before a task runs).
    fn reset(&mut self) {
        self.inner.reset();
    }

    /// The normalization of the signatures.
    #[getter]
    fn normalize(&self) -> &'static str {
        self.inner.options().normalize.as_str()
    }

    /// The `min_line_chars` of the signatures.
    #[getter]
    fn min_line_chars(&self) -> usize {
        self.inner.options().min_line_chars
    }

    /// Occurrences of a line kept.
    #[getter]
    fn max_occurrences(&self) -> u32 {
        self.inner.options().max_occurrences
    }

    /// Eligible lines in the signatures.
    #[getter]
    fn eligible_lines(&self) -> u64 {
        self.inner.eligible_lines()
    }

    /// Distinct eligible lines.
    #[getter]
    fn distinct_lines(&self) -> u64 {
        self.inner.distinct_lines()
    }

    /// Eligible lines removed across the corpus.
    #[getter]
    fn lines_to_remove(&self) -> u64 {
        self.inner.lines_to_remove()
    }

    /// Source files, in the global order (the command line's).
    #[getter]
    fn files(&self) -> Vec<String> {
        self.inner.files().to_vec()
    }

    /// The JSON header of a line signature file, after checking its structure.
    #[staticmethod]
    fn read_header(name: &str, data: &[u8]) -> PyResult<String> {
        header_json(sig::read_line_header(name, data))
    }
}
