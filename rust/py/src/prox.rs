//! ProX programs: execution, explanation, prompts and chunks. Acceptance rules, chunking and
//! templates come as their core options types' JSON.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field};
use pyo3::prelude::*;
use pyo3::types::PyList;
use pyo3_arrow::input::AnyArray;
use pyo3_arrow::PyChunkedArray;
use tamis_core::io::string_values;
use tamis_core::pipeline::thread_pool;
use tamis_core::prox::chunk::{chunk_prompts_with, split_chunks_with, ChunkOptions};
use tamis_core::prox::count::LineCounter;
use tamis_core::prox::prompt::{cached_tokenizer, doc_prompt, PromptTemplate, TokenizerSource};
use tamis_core::prox::{self, Acceptance, Mode};

use crate::arrow::chunks_of;
use crate::errors::{options, tamis_error, to_py, Threads};

fn mode_of(s: &str) -> PyResult<Mode> {
    s.parse().map_err(to_py)
}

/// Run one program: `level` is `doc` or `chunk`; `None` texts or programs give `None`.
fn execute_one<'t>(
    level: &str,
    text: Option<&'t str>,
    program: Option<&str>,
    mode: Mode,
    accept: &Acceptance,
) -> Option<std::borrow::Cow<'t, str>> {
    let (text, program) = (text?, program?);
    Some(match level {
        "doc" => std::borrow::Cow::Borrowed(prox::execute_doc(text, program, mode)),
        _ => prox::execute_chunk_cow(text, program, mode, accept),
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
#[pyo3(signature = (level, texts, programs, mode, accept_json, threads=Threads(0)))]
pub fn prox_execute_list<'py>(
    py: Python<'py>,
    level: &str,
    texts: Vec<String>,
    programs: Vec<String>,
    mode: &str,
    accept_json: &str,
    threads: Threads,
) -> PyResult<Bound<'py, PyList>> {
    check_level(level)?;
    let mode: Mode = mode_of(mode)?;
    let accept: Acceptance = options(accept_json)?;
    if texts.len() != programs.len() {
        return Err(to_py(tamis_core::Error::Config(format!(
            "{} texts but {} programs",
            texts.len(),
            programs.len()
        ))));
    }
    let out = py
        .detach(|| -> tamis_core::Result<Vec<std::borrow::Cow<'_, str>>> {
            use rayon::prelude::*;
            let pool = thread_pool(threads.0)?;
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
        .map_err(to_py)?;
    // Kept documents are not copied in Rust: Python makes each `str` from the borrowed text.
    PyList::new(py, out.iter().map(|c| c.as_ref()))
}

/// Run ProX programs over Arrow string arrays; a null text or program gives a null.
#[pyfunction]
#[pyo3(signature = (level, texts, programs, mode, accept_json, threads=Threads(0)))]
pub fn prox_execute_arrow(
    py: Python<'_>,
    level: &str,
    texts: AnyArray,
    programs: AnyArray,
    mode: &str,
    accept_json: &str,
    threads: Threads,
) -> PyResult<PyChunkedArray> {
    check_level(level)?;
    let mode: Mode = mode_of(mode)?;
    let accept: Acceptance = options(accept_json)?;
    let (texts, programs) = (chunks_of(texts)?, chunks_of(programs)?);
    let out = py
        .detach(|| -> tamis_core::Result<Vec<ArrayRef>> {
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
            let pool = thread_pool(threads.0)?;
            // One output chunk per block of documents, built in place: each result is written
            // once, straight into its chunk (no per-document string, no final concatenation).
            const BLOCK: usize = 2048;
            Ok(pool.install(|| {
                t.par_chunks(BLOCK)
                    .zip(p.par_chunks(BLOCK))
                    .map(|(t, p)| {
                        let bytes = t.iter().map(|s| s.map_or(0, str::len)).sum();
                        let mut b =
                            arrow_array::builder::StringBuilder::with_capacity(t.len(), bytes);
                        for (t, p) in t.iter().zip(p) {
                            b.append_option(execute_one(level, *t, *p, mode, &accept));
                        }
                        Arc::new(b.finish()) as ArrayRef
                    })
                    .collect()
            }))
        })
        .map_err(to_py)?;
    let out = if out.is_empty() {
        vec![Arc::new(arrow_array::StringArray::from(Vec::<&str>::new())) as ArrayRef]
    } else {
        out
    };
    PyChunkedArray::try_new(out, Arc::new(Field::new("", DataType::Utf8, true)))
}

/// What a program did, as JSON.
#[pyfunction]
pub fn prox_explain(
    py: Python<'_>,
    level: &str,
    text: &str,
    program: &str,
    mode: &str,
    accept_json: &str,
) -> PyResult<String> {
    check_level(level)?;
    let mode: Mode = mode_of(mode)?;
    let accept: Acceptance = options(accept_json)?;
    let e = py.detach(|| match level {
        "doc" => prox::explain_doc(text, program, mode),
        _ => prox::explain_chunk(text, program, mode, &accept),
    });
    serde_json::to_string(&e).map_err(|e| tamis_error(e.to_string()))
}

/// A tokenizer from a `tokenizer.json` path, or from its JSON text.
fn tokenizer(
    source: &str,
    is_json: bool,
) -> tamis_core::Result<std::sync::Arc<tokenizers::Tokenizer>> {
    cached_tokenizer(if is_json {
        TokenizerSource::Json(source)
    } else {
        TokenizerSource::Path(std::path::Path::new(source))
    })
}

/// Numbered chunk bodies of each text (`prompts=False`) or their rendered prompts.
#[pyfunction]
#[pyo3(signature = (texts, tokenizer_source, is_json, chunk_json, template_json=None, threads=Threads(0)))]
pub fn prox_chunks(
    py: Python<'_>,
    texts: Vec<String>,
    tokenizer_source: &str,
    is_json: bool,
    chunk_json: &str,
    template_json: Option<&str>,
    threads: Threads,
) -> PyResult<Vec<Vec<String>>> {
    let opts: ChunkOptions = options(chunk_json)?;
    let template: Option<PromptTemplate> = template_json.map(options).transpose()?;
    py.detach(|| -> tamis_core::Result<Vec<Vec<String>>> {
        use rayon::prelude::*;
        let tok = tokenizer(tokenizer_source, is_json)?;
        let counter = LineCounter::shared(&tok);
        let pool = thread_pool(threads.0)?;
        pool.install(|| {
            texts
                .par_iter()
                .with_min_len(4)
                .map(|t| match &template {
                    Some(tpl) => chunk_prompts_with(&counter, t, &opts, tpl),
                    None => split_chunks_with(&counter, t, &opts),
                })
                .collect()
        })
    })
    .map_err(to_py)
}

/// Document-stage prompts: `(token ids, text, truncated)` for each text.
#[pyfunction]
#[pyo3(signature = (texts, tokenizer_source, is_json, max_tokens, template_json, threads=Threads(0)))]
pub fn prox_doc_prompts(
    py: Python<'_>,
    texts: Vec<String>,
    tokenizer_source: &str,
    is_json: bool,
    max_tokens: usize,
    template_json: &str,
    threads: Threads,
) -> PyResult<Vec<(Vec<u32>, String, bool)>> {
    let tpl: PromptTemplate = options(template_json)?;
    py.detach(|| -> tamis_core::Result<Vec<(Vec<u32>, String, bool)>> {
        use rayon::prelude::*;
        let tok = tokenizer(tokenizer_source, is_json)?;
        let pool = thread_pool(threads.0)?;
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

/// One row of [`prox_outcomes`]: `(text, outcome, reason, program errors)`.
type OutcomeRow = (String, &'static str, &'static str, usize);

/// Run ProX programs over lists and report, for each, the result with its outcome, reason and
/// number of program errors (what `explain` gives, without the details), in parallel.
#[pyfunction]
#[pyo3(signature = (level, texts, programs, mode, accept_json, threads=Threads(0)))]
pub fn prox_outcomes(
    py: Python<'_>,
    level: &str,
    texts: Vec<String>,
    programs: Vec<String>,
    mode: &str,
    accept_json: &str,
    threads: Threads,
) -> PyResult<Vec<OutcomeRow>> {
    check_level(level)?;
    let mode: Mode = mode_of(mode)?;
    let accept: Acceptance = options(accept_json)?;
    if texts.len() != programs.len() {
        return Err(to_py(tamis_core::Error::Config(format!(
            "{} texts but {} programs",
            texts.len(),
            programs.len()
        ))));
    }
    py.detach(|| -> tamis_core::Result<Vec<OutcomeRow>> {
        use rayon::prelude::*;
        let pool = thread_pool(threads.0)?;
        Ok(pool.install(|| {
            texts
                .par_iter()
                .zip(programs.par_iter())
                .with_min_len(64)
                .map(|(t, p)| {
                    let e = match level {
                        "doc" => prox::explain_doc(t, p, mode),
                        _ => prox::explain_chunk(t, p, mode, &accept),
                    };
                    (
                        e.text,
                        e.outcome.as_str(),
                        e.reason.as_str(),
                        e.errors.len(),
                    )
                })
                .collect()
        }))
    })
    .map_err(to_py)
}

/// Number of tokens of each text (no special tokens added), in parallel.
#[pyfunction]
#[pyo3(signature = (texts, tokenizer_source, is_json, threads=Threads(0)))]
pub fn prox_token_counts(
    py: Python<'_>,
    texts: Vec<String>,
    tokenizer_source: &str,
    is_json: bool,
    threads: Threads,
) -> PyResult<Vec<usize>> {
    py.detach(|| -> tamis_core::Result<Vec<usize>> {
        use rayon::prelude::*;
        let tok = tokenizer(tokenizer_source, is_json)?;
        let counter = LineCounter::shared(&tok);
        let pool = thread_pool(threads.0)?;
        pool.install(|| {
            texts
                .par_iter()
                .with_min_len(16)
                .map(|t| counter.count(t, false))
                .collect()
        })
    })
    .map_err(to_py)
}

/// Render one prompt with a template.
#[pyfunction]
pub fn prox_render(user: &str, template_json: &str) -> PyResult<String> {
    let t: PromptTemplate = options(template_json)?;
    Ok(t.render(user))
}

/// One prompt item as Python receives it: (id, chunk, chunks, prompt, prompt token ids,
/// truncated, numbered body, text, first line, lines).
type ItemTuple = (
    String,
    usize,
    usize,
    String,
    Vec<u32>,
    bool,
    String,
    String,
    usize,
    usize,
);

fn item_tuple(i: tamis_core::prox::apply::PromptItem) -> ItemTuple {
    (
        i.id,
        i.chunk,
        i.chunks,
        i.prompt,
        i.prompt_token_ids,
        i.truncated,
        i.body,
        i.text,
        i.first_line,
        i.lines,
    )
}

/// The prompt items of documents given as lists of ids and texts (the datatrove step's path),
/// one list per document, in parallel with the GIL released.
#[pyfunction]
#[pyo3(signature = (ids, texts, options_json, threads=Threads(0)))]
pub fn prox_prompt_items(
    py: Python<'_>,
    ids: Vec<String>,
    texts: Vec<String>,
    options_json: &str,
    threads: Threads,
) -> PyResult<Vec<Vec<ItemTuple>>> {
    use rayon::prelude::*;
    let opts: tamis_core::prox::apply::PromptOptions = options(options_json)?;
    if ids.len() != texts.len() {
        return Err(to_py(tamis_core::Error::Config(format!(
            "{} ids for {} texts",
            ids.len(),
            texts.len()
        ))));
    }
    py.detach(|| -> tamis_core::Result<_> {
        let tok = tamis_core::prox::prompt::load_tokenizer(&opts.tokenizer)?;
        let counter = LineCounter::new(&tok);
        let pool = thread_pool(threads.0)?;
        pool.install(|| {
            ids.par_iter()
                .zip(texts.par_iter())
                .map(|(id, text)| {
                    tamis_core::prox::apply::prompt_items_of(&counter, id, text, &opts)
                        .map(|v| v.into_iter().map(item_tuple).collect())
                })
                .collect()
        })
    })
    .map_err(to_py)
}

enum ItemsMsg {
    Items(Vec<ItemTuple>),
    Done(String),
    Failed(tamis_core::Error),
}

/// The refining models' prompts of a corpus with their texts (`tamis prox annotate`), read in
/// Rust on a thread of its own, a batch of documents' items per `next()`; `stats()` gives the
/// reading statistics (JSON) once the iterator is exhausted.
#[pyclass(module = "tamis._core")]
pub struct ProxPromptItems {
    rx: crossbeam_channel::Receiver<ItemsMsg>,
    stats: Option<String>,
}

#[pymethods]
impl ProxPromptItems {
    #[new]
    fn new(inputs: Vec<String>, options_json: &str, io_json: &str) -> PyResult<Self> {
        let opts: tamis_core::prox::apply::PromptOptions = options(options_json)?;
        let io: tamis_core::io::IoOptions = options(io_json)?;
        let run = io.run_options(None).map_err(to_py)?;
        let (tx, rx) = crossbeam_channel::bounded(4);
        std::thread::spawn(move || {
            let mut pending: Vec<ItemTuple> = Vec::new();
            let result = tamis_core::prox::apply::prompt_items_each(
                &inputs,
                &run,
                &opts,
                &tamis_core::pipeline::NoProgress,
                |items| {
                    pending.extend(items.into_iter().map(item_tuple));
                    if pending.len() >= 256 {
                        // The reader stops when Python drops the iterator.
                        tx.send(ItemsMsg::Items(std::mem::take(&mut pending)))
                            .map_err(|_| tamis_core::Error::Config("stopped".into()))?;
                    }
                    Ok(())
                },
            );
            let last = match result {
                Ok(stats) => {
                    if !pending.is_empty() && tx.send(ItemsMsg::Items(pending)).is_err() {
                        return;
                    }
                    ItemsMsg::Done(stats.to_json())
                }
                Err(e) => ItemsMsg::Failed(e),
            };
            let _ = tx.send(last);
        });
        Ok(ProxPromptItems { rx, stats: None })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Vec<ItemTuple>>> {
        loop {
            match py.detach(|| self.rx.recv()) {
                Ok(ItemsMsg::Items(items)) => return Ok(Some(items)),
                Ok(ItemsMsg::Done(s)) => self.stats = Some(s),
                Ok(ItemsMsg::Failed(e)) => return Err(to_py(e)),
                Err(_) => return Ok(None),
            }
        }
    }

    /// The reading statistics (JSON), once every item was read; `None` before.
    fn stats(&self) -> Option<String> {
        self.stats.clone()
    }
}
