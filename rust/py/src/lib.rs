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
use tamis_core::prox::chunk::{chunk_prompts, split_chunks, ChunkOptions};
use tamis_core::prox::prompt::{doc_prompt, load_tokenizer, tokenizer_from_str, PromptTemplate};
use tamis_core::prox::{self, Acceptance, Mode};
use tamis_core::text::Normalize;

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
fn execute_one(
    level: &str,
    text: Option<&str>,
    program: Option<&str>,
    mode: Mode,
    accept: &Acceptance,
) -> Option<String> {
    let (text, program) = (text?, program?);
    Some(match level {
        "doc" => prox::execute_doc(text, program, mode).to_string(),
        _ => prox::execute_chunk(text, program, mode, accept),
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
fn prox_execute_list(
    py: Python<'_>,
    level: &str,
    texts: Vec<String>,
    programs: Vec<String>,
    mode: &str,
    accept: AcceptArgs,
    threads: usize,
) -> PyResult<Vec<String>> {
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
    py.detach(|| -> tamis_core::Result<Vec<String>> {
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
    .map_err(to_py)
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
        .detach(|| -> tamis_core::Result<arrow_array::StringArray> {
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
            let results: Vec<Option<String>> = pool.install(|| {
                t.par_iter()
                    .zip(p.par_iter())
                    .with_min_len(64)
                    .map(|(t, p)| execute_one(level, *t, *p, mode, &accept))
                    .collect()
            });
            Ok(results.iter().map(|r| r.as_deref()).collect())
        })
        .map_err(to_py)?;
    single_chunk(Arc::new(out), DataType::Utf8)
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
fn tokenizer(source: &str, is_json: bool) -> tamis_core::Result<tokenizers::Tokenizer> {
    if is_json {
        tokenizer_from_str(source)
    } else {
        load_tokenizer(std::path::Path::new(source))
    }
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
        let pool = thread_pool(threads)?;
        pool.install(|| {
            texts
                .par_iter()
                .with_min_len(4)
                .map(|t| match &template {
                    Some(tpl) => chunk_prompts(&tok, t, &opts, tpl),
                    None => split_chunks(&tok, t, &opts),
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

/// Render one prompt with a template.
#[pyfunction]
fn prox_render(user: &str, prompt_template: TemplateArgs) -> String {
    template(prompt_template).render(user)
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
    m.add_function(wrap_pyfunction!(prox_execute_list, m)?)?;
    m.add_function(wrap_pyfunction!(prox_execute_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(prox_explain, m)?)?;
    m.add_function(wrap_pyfunction!(prox_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(prox_doc_prompts, m)?)?;
    m.add_function(wrap_pyfunction!(prox_render, m)?)?;
    Ok(())
}
