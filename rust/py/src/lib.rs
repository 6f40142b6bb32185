//! Python bindings (`tamis._core`): conversion, GIL release and error mapping only; every
//! algorithm lives in tamis-core.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_arrow::input::AnyArray;
use pyo3_arrow::PyChunkedArray;
use tamis_core::dedup::{
    exact_keep_mask, hash_many, ExactConfig, ExactDedup, LineDedup, LinesConfig,
};
use tamis_core::io::{
    hashes_to_arrow, mask_to_arrow, string_values, ExtractOptions, OnError, Output,
};
use tamis_core::pipeline::{run, thread_pool, NoProgress, RunOptions};
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
    m.add_function(wrap_pyfunction!(vocab_extend, m)?)?;
    m.add_function(wrap_pyfunction!(vocab_stats, m)?)?;
    m.add_function(wrap_pyfunction!(token_counts_arrow, m)?)?;
    m.add(
        "TOKENIZER_ERROR_KINDS",
        tamis_core::TokenizerError::SLUGS.to_vec(),
    )?;
    Ok(())
}
