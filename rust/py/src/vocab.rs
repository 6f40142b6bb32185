//! Vocabulary extension and the tokenizer report. Tokenizers come as `(name, JSON text)`;
//! options as `ExtendOptions` / `StatsOptions` JSON.

use std::sync::Arc;

use arrow_schema::DataType;
use pyo3::prelude::*;
use pyo3_arrow::input::AnyArray;
use pyo3_arrow::PyChunkedArray;
use tamis_core::io::string_values;
use tamis_core::pipeline::{thread_pool, NoProgress};
use tamis_core::vocab::{
    extend, extension_report, stats, token_counts, tokenizer_from_json, ExtendOptions,
    StatsOptions, TokenizerFile,
};

use crate::arrow::{chunks_of, single_chunk};
use crate::errors::{interruptible, options, to_py, Threads};

/// A tokenizer given as `(name, JSON text)`.
type Named = (String, String);

fn file(t: &Named) -> tamis_core::Result<TokenizerFile> {
    TokenizerFile::from_json(&t.0, &t.1)
}

/// Extend a BPE tokenizer by continued BPE; returns (new tokenizer JSON, summary JSON, report
/// JSON or None). With `heldout` (possibly empty: the corpus), the report is made.
#[pyfunction]
#[pyo3(signature = (tokenizer, corpus, options_json, merge_from=None, heldout=None))]
pub fn vocab_extend(
    py: Python<'_>,
    tokenizer: Named,
    corpus: Vec<String>,
    options_json: &str,
    merge_from: Option<Named>,
    heldout: Option<Vec<String>>,
) -> PyResult<(String, String, Option<String>)> {
    let o: ExtendOptions = options(options_json)?;
    interruptible(py, || -> tamis_core::Result<_> {
        let base = file(&tokenizer)?;
        let other = merge_from.as_ref().map(file).transpose()?;
        let cfg = o.config();
        let ext = extend(&base, &corpus, other.as_ref(), &cfg, &NoProgress)?;
        let summary = serde_json::to_string(&ext.summary)
            .map_err(|e| tamis_core::Error::Config(e.to_string()))?;
        let rep = match heldout {
            None => None,
            Some(heldout) => {
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
                let scfg = tamis_core::vocab::StatsConfig {
                    corpus: o.corpus(),
                    ..Default::default()
                };
                Some(
                    extension_report(
                        &base,
                        &ext,
                        target,
                        &o.protect,
                        &o.reference,
                        &scfg,
                        &NoProgress,
                    )?
                    .to_json(),
                )
            }
        };
        Ok((ext.json, summary, rep))
    })
}

/// The tokenizer report; returns (report JSON, summary text).
#[pyfunction]
#[pyo3(signature = (tokenizer, corpus, options_json, baseline=None))]
pub fn vocab_stats(
    py: Python<'_>,
    tokenizer: Named,
    corpus: Vec<String>,
    options_json: &str,
    baseline: Option<Named>,
) -> PyResult<(String, String)> {
    let o: StatsOptions = options(options_json)?;
    interruptible(py, || -> tamis_core::Result<_> {
        let t = file(&tokenizer)?;
        let b = baseline.as_ref().map(file).transpose()?;
        let r = stats(
            &t,
            b.as_ref(),
            &corpus,
            &o.protect,
            &[],
            &o.config(),
            &NoProgress,
        )?;
        Ok((r.to_json(), r.summary()))
    })
}

/// Tokens per text of an Arrow string array or stream (UInt32; nulls stay null), with the
/// tokenizer given as JSON text; no special tokens are added.
#[pyfunction]
#[pyo3(signature = (texts, tokenizer, *, threads=Threads(0)))]
pub fn token_counts_arrow(
    py: Python<'_>,
    texts: AnyArray,
    tokenizer: String,
    threads: Threads,
) -> PyResult<PyChunkedArray> {
    let chunks = chunks_of(texts)?;
    let out = py
        .detach(|| -> tamis_core::Result<_> {
            let tok = tokenizer_from_json(&tokenizer)?;
            let values = string_values(&chunks)?;
            let pool = thread_pool(threads.0)?;
            let counts = pool.install(|| token_counts(&tok, &values))?;
            Ok(arrow_array::UInt32Array::from(counts))
        })
        .map_err(to_py)?;
    single_chunk(Arc::new(out), DataType::UInt32)
}

/// The texts of a corpus, batch by batch (`for texts in _core.TextBatches(inputs, ...)`): read
/// and parsed in Rust on a thread of its own (`.txt` files: one document per line).
#[pyclass(module = "tamis._core")]
pub struct TextBatches {
    rx: crossbeam_channel::Receiver<tamis_core::Result<Vec<String>>>,
}

#[pymethods]
impl TextBatches {
    #[new]
    #[pyo3(signature = (inputs, text_key="text", on_error="fail"))]
    fn new(inputs: Vec<String>, text_key: &str, on_error: &str) -> PyResult<Self> {
        let opts = tamis_core::vocab::CorpusOptions {
            text_key: text_key.to_string(),
            on_error: on_error.parse().map_err(to_py)?,
            ..Default::default()
        };
        let (tx, rx) = crossbeam_channel::bounded(2);
        std::thread::spawn(move || {
            let result = tamis_core::vocab::read_texts(&inputs, &opts, &NoProgress, |texts| {
                // The reader stops when Python drops the iterator.
                tx.send(Ok(texts))
                    .map_err(|_| tamis_core::Error::Config("stopped".into()))
            });
            if let Err(e) = result {
                let _ = tx.send(Err(e));
            }
        });
        Ok(TextBatches { rx })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Vec<String>>> {
        match py.detach(|| self.rx.recv()) {
            Ok(Ok(texts)) => Ok(Some(texts)),
            Ok(Err(e)) => Err(to_py(e)),
            Err(_) => Ok(None),
        }
    }
}
