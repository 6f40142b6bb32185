//! Exact and line dedup: over files, and over in-memory columns.

use std::sync::Arc;

use arrow_buffer::ScalarBuffer;
use arrow_schema::DataType;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3_arrow::input::AnyArray;
use pyo3_arrow::PyChunkedArray;
use tamis_core::dedup::{
    exact_dedup, exact_keep_mask, hash_many, line_hashes_many, lines_dedup, ExactOptions,
    LinesOptions,
};
use tamis_core::io::{hashes_to_arrow, mask_to_arrow, string_values, IoOptions, Output};
use tamis_core::pipeline::{thread_pool, NoProgress};

use crate::arrow::{chunks_of, single_chunk, U64Matrix};
use crate::errors::{options, to_py};

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
    py.detach(|| exact_dedup(&inputs, &Output::parse(&output)?, &io, &o, &NoProgress))
        .map(|s| s.to_json())
        .map_err(to_py)
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
    py.detach(|| lines_dedup(&inputs, &Output::parse(&output)?, &io, &o, &NoProgress))
        .map(|s| s.to_json())
        .map_err(to_py)
}

/// 128-bit hashes (16-byte big-endian binary) of an Arrow string array or stream, normalized
/// as `options` (ExactOptions JSON) says.
#[pyfunction]
#[pyo3(signature = (texts, options_json, threads=0))]
pub fn hash_texts(
    py: Python<'_>,
    texts: AnyArray,
    options_json: &str,
    threads: usize,
) -> PyResult<PyChunkedArray> {
    let o: ExactOptions = options(options_json)?;
    let chunks = chunks_of(texts)?;
    let out = py
        .detach(|| -> tamis_core::Result<_> {
            let values = string_values(&chunks)?;
            let pool = thread_pool(threads)?;
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
#[pyo3(signature = (texts, options_json, threads=0))]
pub fn line_hashes<'py>(
    py: Python<'py>,
    texts: AnyArray,
    options_json: &str,
    threads: usize,
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
#[pyo3(signature = (texts, options_json, threads=0))]
pub fn exact_keep_mask_arrow(
    py: Python<'_>,
    texts: AnyArray,
    options_json: &str,
    threads: usize,
) -> PyResult<PyChunkedArray> {
    let o: ExactOptions = options(options_json)?;
    let chunks = chunks_of(texts)?;
    let out = py
        .detach(|| -> tamis_core::Result<_> {
            let values = string_values(&chunks)?;
            let pool = thread_pool(threads)?;
            Ok(mask_to_arrow(
                &pool.install(|| exact_keep_mask(&values, o.normalize)),
            ))
        })
        .map_err(to_py)?;
    single_chunk(Arc::new(out), DataType::Boolean)
}
