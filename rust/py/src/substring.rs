//! Exact-substring dedup over files.

use pyo3::prelude::*;
use tamis_core::dedup::substring::{substring_dedup, SubstringOptions};
use tamis_core::io::{IoOptions, Output};
use tamis_core::pipeline::NoProgress;

use crate::errors::{interruptible, options};

/// Exact-substring dedup over files (`options`: SubstringOptions JSON, `io`: IoOptions JSON);
/// returns the run statistics as JSON.
#[pyfunction]
pub fn dedup_substring(
    py: Python<'_>,
    inputs: Vec<String>,
    output: String,
    options_json: &str,
    io_json: &str,
) -> PyResult<String> {
    let o: SubstringOptions = options(options_json)?;
    let io: IoOptions = options(io_json)?;
    interruptible(py, || {
        substring_dedup(&inputs, &Output::parse(&output)?, &io, &o, &NoProgress)
    })
    .map(|s| s.to_json())
}
