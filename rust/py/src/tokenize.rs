//! `tamis tokenize` and its writer of texts (`tamis_core::tokenize`).

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3_arrow::input::AnyArray;
use tamis_core::io::{string_values, IoOptions};
use tamis_core::pipeline::NoProgress;
use tamis_core::tokenize::{self as core, tokenize as run, TokenizeOptions};

use crate::arrow::chunks_of;
use crate::dedup::non_null;
use crate::errors::{interruptible, json, options, tamis_error, to_py, Threads};

/// Tokenize `inputs` with the tokenizer.json `tokenizer` into shards in the directory `output`
/// (`options`: TokenizeOptions JSON, `io`: IoOptions JSON); returns the manifest as JSON.
#[pyfunction]
pub fn tokenize(
    py: Python<'_>,
    inputs: Vec<String>,
    output: String,
    tokenizer: String,
    options_json: &str,
    io_json: &str,
) -> PyResult<String> {
    let o: TokenizeOptions = options(options_json)?;
    let io: IoOptions = options(io_json)?;
    let manifest = interruptible(py, || {
        run(
            &inputs,
            output.as_ref(),
            tokenizer.as_ref(),
            &io,
            &o,
            &NoProgress,
        )
    })?;
    json(&manifest)
}

/// Texts in, token shards out (`tamis_core::tokenize::TextShardWriter`): shards
/// `{prefix}_NNNNN` in `output`, the bytes `tokenize` writes for the same documents.
#[pyclass(module = "tamis._core")]
pub struct TextShardWriter {
    inner: Option<core::TextShardWriter>,
}

impl TextShardWriter {
    fn open(&mut self) -> PyResult<&mut core::TextShardWriter> {
        self.inner
            .as_mut()
            .ok_or_else(|| tamis_error("this TextShardWriter is finished"))
    }
}

#[pymethods]
impl TextShardWriter {
    /// `options_json`: TokenizeOptions JSON; `threads`: encoding threads (0: one per core).
    #[new]
    #[pyo3(signature = (output, tokenizer, options_json, prefix, threads=Threads(0)))]
    fn new(
        py: Python<'_>,
        output: PathBuf,
        tokenizer: PathBuf,
        options_json: &str,
        prefix: &str,
        threads: Threads,
    ) -> PyResult<Self> {
        let o: TokenizeOptions = options(options_json)?;
        let inner = py
            .detach(|| core::TextShardWriter::new(&output, &tokenizer, &o, prefix, threads.0))
            .map_err(to_py)?;
        Ok(TextShardWriter { inner: Some(inner) })
    }

    /// Encode and write `texts` (an Arrow string array without nulls), in order.
    fn add(&mut self, py: Python<'_>, texts: AnyArray) -> PyResult<()> {
        let chunks = chunks_of(texts)?;
        let inner = self.open()?;
        interruptible(py, || {
            let texts = non_null(string_values(&chunks)?)?;
            inner.add(&texts)
        })
    }

    /// Close the last shard and write `{prefix}.manifest.json`; returns the manifest as JSON.
    fn finish(&mut self, py: Python<'_>) -> PyResult<String> {
        let inner = self
            .inner
            .take()
            .ok_or_else(|| tamis_error("this TextShardWriter is finished"))?;
        let manifest = py.detach(|| inner.finish()).map_err(to_py)?;
        json(&manifest)
    }

    /// Documents added so far.
    #[getter]
    fn documents(&self) -> u64 {
        self.inner.as_ref().map_or(0, |w| w.documents())
    }
}
