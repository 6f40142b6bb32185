//! Persistent indexes and decontamination: tamis_core::index.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::DataType;
use pyo3::prelude::*;
use pyo3_arrow::input::AnyArray;
use pyo3_arrow::PyChunkedArray;
use tamis_core::index::decont::{
    contaminated_mask, decide_text, decontaminate as run_decont, find_hits, group_hits,
    open_indexes, DecontMode, DecontOptions, TextDecision,
};
use tamis_core::index::{add_to_index, build_index, index_info, Index, IndexOptions};
use tamis_core::io::{mask_to_arrow, string_values, IoOptions, Output};
use tamis_core::pipeline::{thread_pool, NoProgress};

use crate::arrow::{chunks_of, single_chunk};
use crate::errors::{interruptible, json, options, to_py, Threads};

/// Build a new index in directory `index` from `inputs` (`options`: IndexOptions JSON);
/// returns the run statistics as JSON.
#[pyfunction]
pub fn index_build(
    py: Python<'_>,
    inputs: Vec<String>,
    index: PathBuf,
    options_json: &str,
    io_json: &str,
) -> PyResult<String> {
    let o: IndexOptions = options(options_json)?;
    let io: IoOptions = options(io_json)?;
    interruptible(py, || build_index(&inputs, &index, &io, &o, &NoProgress)).map(|s| s.to_json())
}

/// Add `inputs` to the index in `index` as a new segment; returns the statistics as JSON.
#[pyfunction]
#[pyo3(signature = (index, inputs, io_json, memory_limit=None, spill_dir=None))]
pub fn index_add(
    py: Python<'_>,
    index: PathBuf,
    inputs: Vec<String>,
    io_json: &str,
    memory_limit: Option<String>,
    spill_dir: Option<PathBuf>,
) -> PyResult<String> {
    let io: IoOptions = options(io_json)?;
    let memory_limit = match memory_limit {
        Some(s) => Some(
            tamis_core::options::parse_size(&s)
                .map_err(|e| to_py(tamis_core::Error::Config(format!("memory_limit {e}"))))?,
        ),
        None => None,
    };
    interruptible(py, || {
        add_to_index(&index, &inputs, &io, memory_limit, spill_dir, &NoProgress)
    })
    .map(|s| s.to_json())
}

/// What the index in `index` holds, as JSON, after checking every file.
#[pyfunction]
pub fn index_info_json(py: Python<'_>, index: PathBuf) -> PyResult<String> {
    let info = py.detach(|| index_info(&index)).map_err(to_py)?;
    json(&info)
}

/// Decontaminate `inputs` into `output` (`options`: DecontOptions JSON); returns the
/// statistics as JSON.
#[pyfunction]
pub fn decontaminate(
    py: Python<'_>,
    inputs: Vec<String>,
    output: String,
    options_json: &str,
    io_json: &str,
) -> PyResult<String> {
    let o: DecontOptions = options(options_json)?;
    let io: IoOptions = options(io_json)?;
    interruptible(py, || {
        run_decont(&inputs, &Output::parse(&output)?, &io, &o, &NoProgress)
    })
    .map(|s| s.to_json())
}

/// The n-gram indexes of a DecontOptions, opened once (checked, with their query filters) and
/// shared by every call: for polars expressions and datatrove steps.
#[pyclass(frozen)]
pub struct NgramIndexes {
    indexes: Arc<Vec<Index>>,
    names: Vec<String>,
    mode: DecontMode,
}

#[pymethods]
impl NgramIndexes {
    #[new]
    fn new(py: Python<'_>, options_json: &str) -> PyResult<Self> {
        let o: DecontOptions = options(options_json)?;
        let indexes = py.detach(|| open_indexes(&o)).map_err(to_py)?;
        Ok(NgramIndexes {
            indexes: Arc::new(indexes),
            names: o
                .against
                .iter()
                .map(|p| Path::new(p).display().to_string())
                .collect(),
            mode: o.mode,
        })
    }

    /// `True` for each text of an Arrow string array or stream that holds an indexed n-gram.
    #[pyo3(signature = (texts, threads=Threads(0)))]
    fn contaminated(
        &self,
        py: Python<'_>,
        texts: AnyArray,
        threads: Threads,
    ) -> PyResult<PyChunkedArray> {
        let chunks = chunks_of(texts)?;
        let indexes = self.indexes.clone();
        let out = py
            .detach(|| -> tamis_core::Result<_> {
                let values = string_values(&chunks)?;
                let pool = thread_pool(threads.0)?;
                Ok(mask_to_arrow(
                    &pool.install(|| contaminated_mask(&indexes, &values)),
                ))
            })
            .map_err(to_py)?;
        single_chunk(Arc::new(out), DataType::Boolean)
    }

    /// Decontaminate `texts` as `tamis decontaminate` does (the options' mode): per text,
    /// `(keep, new text or None, ids of the evaluation items found)`.
    #[pyo3(signature = (texts, threads=Threads(0)))]
    #[allow(clippy::type_complexity)]
    fn decide(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        threads: Threads,
    ) -> PyResult<Vec<(bool, Option<String>, Vec<String>)>> {
        use rayon::prelude::*;
        let indexes = self.indexes.clone();
        let mode = self.mode;
        py.detach(|| -> tamis_core::Result<_> {
            let pool = thread_pool(threads.0)?;
            Ok(pool.install(|| {
                texts
                    .par_iter()
                    .map(|t| {
                        let hits = find_hits(&indexes, t);
                        let mut items: Vec<String> = group_hits(&hits)
                            .iter()
                            .map(|g| indexes[g.3].record_id(g.4))
                            .collect();
                        items.sort();
                        items.dedup();
                        match decide_text(t, &hits, mode) {
                            TextDecision::Clean => (true, None, items),
                            TextDecision::Drop => (false, None, items),
                            TextDecision::Cut(c) => (true, Some(c), items),
                        }
                    })
                    .collect()
            }))
        })
        .map_err(to_py)
    }

    /// The indexed n-grams of `text`: `(index, item id, start, end)` per n-gram and item, in
    /// text order (byte offsets).
    fn hits(&self, py: Python<'_>, text: &str) -> Vec<(String, String, usize, usize)> {
        let hits = py.detach(|| find_hits(&self.indexes, text));
        hits.iter()
            .map(|h| {
                (
                    self.names[h.index].clone(),
                    self.indexes[h.index].record_id(h.record),
                    h.start,
                    h.end,
                )
            })
            .collect()
    }
}
