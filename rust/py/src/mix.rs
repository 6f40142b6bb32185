//! `tamis mix` (`tamis_core::mix`).

use std::path::PathBuf;

use pyo3::prelude::*;
use tamis_core::io::{IoOptions, Output};
use tamis_core::mix::{mix as run, MixOptions};
use tamis_core::tokenize::TokenizeOptions;

use crate::errors::{interruptible, json, options};

/// Mix sources to a token budget (`options`: MixOptions JSON, `io`: IoOptions JSON) into
/// `output`; returns the manifest as JSON.
#[pyfunction]
pub fn mix(py: Python<'_>, options_json: &str, io_json: &str, output: String) -> PyResult<String> {
    let o: MixOptions = options(options_json)?;
    let io: IoOptions = options(io_json)?;
    let manifest = interruptible(py, || run(&o, &io, &Output::parse(&output)?))?;
    json(&manifest)
}

/// Mix sources straight into token shards in `outdir` (`tokenize`: TokenizeOptions JSON);
/// returns `{"mix": ..., "shards": ...}` as JSON.
#[pyfunction]
pub fn mix_to_shards(
    py: Python<'_>,
    options_json: &str,
    tokenize_json: &str,
    io_json: &str,
    outdir: PathBuf,
) -> PyResult<String> {
    let o: MixOptions = options(options_json)?;
    let t: TokenizeOptions = options(tokenize_json)?;
    let io: IoOptions = options(io_json)?;
    let out = interruptible(py, || tamis_core::mix::mix_to_shards(&o, &t, &io, &outdir))?;
    json(&out)
}
