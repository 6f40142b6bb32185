//! Exact-substring dedup: over files, and as the three datatrove stages.

use std::path::PathBuf;

use pyo3::prelude::*;
use tamis_core::dedup::near::stages::Task;
use tamis_core::dedup::substring::{apply_cuts, stages, substring_dedup, Cut, SubstringOptions};
use tamis_core::io::{IoOptions, Output};
use tamis_core::pipeline::NoProgress;

use crate::errors::{interruptible, options, to_py, Threads};

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

/// Stage 1 for a datatrove task (`tamis_core::dedup::substring::stages::SequenceWriter`).
#[pyclass(module = "tamis._core")]
pub struct SubstringSequenceWriter {
    inner: Option<stages::SequenceWriter>,
}

#[pymethods]
impl SubstringSequenceWriter {
    /// Task `task_json` (`{"rank", "world_size"}`) writing to `workdir`.
    #[new]
    fn new(workdir: PathBuf, task_json: &str) -> PyResult<Self> {
        let task: Task = options(task_json)?;
        let inner = stages::SequenceWriter::new(&workdir, task).map_err(to_py)?;
        Ok(SubstringSequenceWriter { inner: Some(inner) })
    }

    /// Add the next documents of source file `path`.
    fn add(&mut self, py: Python<'_>, path: String, texts: Vec<String>) -> PyResult<()> {
        let Some(inner) = self.inner.as_mut() else {
            return Err(to_py(tamis_core::Error::Config(
                "the writer is finished".into(),
            )));
        };
        py.detach(|| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            inner.add(&path, &refs)
        })
        .map_err(to_py)
    }

    /// Write the manifest; returns the task's statistics as JSON.
    fn finish(&mut self, py: Python<'_>) -> PyResult<String> {
        let Some(inner) = self.inner.take() else {
            return Err(to_py(tamis_core::Error::Config(
                "the writer is finished".into(),
            )));
        };
        py.detach(|| inner.finish())
            .map(|s| s.to_json())
            .map_err(to_py)
    }
}

/// Stage 2 (one task): suffix arrays and each source file's removed spans; returns the
/// statistics as JSON.
#[pyfunction]
#[pyo3(signature = (workdir, options_json, threads=Threads(0)))]
pub fn substring_find(
    py: Python<'_>,
    workdir: PathBuf,
    options_json: &str,
    threads: Threads,
) -> PyResult<String> {
    let o: SubstringOptions = options(options_json)?;
    interruptible(py, || stages::find(&workdir, &o, threads.0)).map(|s| s.to_json())
}

/// What [`SubstringPathCutter::cut`] answers: kind, new text or drop reason, spans.
type CutResult = (String, Option<String>, Vec<(u64, u64)>);

/// Stage 3 for a datatrove task (`tamis_core::dedup::substring::stages::PathCutter`).
#[pyclass(module = "tamis._core")]
pub struct SubstringPathCutter {
    inner: stages::PathCutter,
    options: SubstringOptions,
}

#[pymethods]
impl SubstringPathCutter {
    /// The spans of the work directory (after the find stage); `options_json`:
    /// SubstringOptions (this stage uses `annotate` and `min_doc_chars`).
    #[new]
    fn new(py: Python<'_>, workdir: PathBuf, options_json: &str) -> PyResult<Self> {
        let options: SubstringOptions = crate::errors::options(options_json)?;
        let inner = py
            .detach(|| stages::PathCutter::new(&workdir))
            .map_err(to_py)?;
        Ok(SubstringPathCutter { inner, options })
    }

    /// The next document of source file `path`: ("keep", None, []), ("annotate", None, spans),
    /// ("text", new text, spans) or ("drop", reason, spans).
    fn cut(&mut self, py: Python<'_>, path: String, text: String) -> PyResult<CutResult> {
        let (inner, options) = (&mut self.inner, &self.options);
        py.detach(|| -> tamis_core::Result<_> {
            let spans = inner.next(&path, &text)?;
            Ok(match apply_cuts(&text, &spans, options) {
                Cut::Keep => ("keep".to_string(), None, spans),
                Cut::Annotate(..) => ("annotate".to_string(), None, spans),
                Cut::Text(t) => ("text".to_string(), Some(t), spans),
                Cut::Drop(reason) => ("drop".to_string(), Some(reason.to_string()), spans),
            })
        })
        .map_err(to_py)
    }
}
