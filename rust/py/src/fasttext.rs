//! `tamis._core.FastText`: fastText classifiers run by tamis-core (`tamis_core::fasttext`), and
//! `tamis._core.LanguageIdentifier`: the `language` stage (`tamis_core::refine::language`).

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use rayon::prelude::*;
use tamis_core::fasttext::FastText as Model;
use tamis_core::pipeline::thread_pool;
use tamis_core::refine::language::LanguageStage;
use tamis_core::refine::LanguageOptions;

use crate::errors::{options, to_py, Threads};

/// A fastText supervised model (`.bin` or quantized `.ftz`), read and run in Rust.
#[pyclass(module = "tamis._core", frozen)]
pub struct FastText {
    inner: Arc<Model>,
}

#[pymethods]
impl FastText {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| Model::open(&path)).map_err(to_py)?;
        Ok(FastText {
            inner: Arc::new(inner),
        })
    }

    /// The built-in `lid.176.ftz`.
    #[staticmethod]
    fn embedded(py: Python<'_>) -> PyResult<Self> {
        let inner = py
            .detach(tamis_core::fasttext::embedded_lid)
            .map_err(to_py)?;
        Ok(FastText { inner })
    }

    /// The labels, in the model's order.
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.inner.labels().to_vec()
    }

    /// The `k` most likely labels of each text with their probabilities, most likely first
    /// (labels below `threshold` left out), as fastText's `predict`.
    #[pyo3(signature = (texts, k=1, threshold=0.0, threads=Threads(0)))]
    fn predict(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        k: usize,
        threshold: f32,
        threads: Threads,
    ) -> PyResult<Vec<Vec<(String, f32)>>> {
        let model = self.inner.clone();
        py.detach(move || -> tamis_core::Result<_> {
            let pool = thread_pool(threads.0)?;
            Ok(pool.install(|| {
                texts
                    .par_iter()
                    .with_min_len(64)
                    .map(|t| {
                        model
                            .predict(t, k, threshold)
                            .into_iter()
                            .map(|(l, p)| (l.to_string(), p))
                            .collect()
                    })
                    .collect()
            }))
        })
        .map_err(to_py)
    }
}

/// The `language` stage: predictions and decisions, as `tamis refine` makes them.
#[pyclass(module = "tamis._core", frozen)]
pub struct LanguageIdentifier {
    inner: Arc<LanguageStage>,
}

/// One document's language, probability and drop reason (`""` when kept).
type Decided = (String, f64, &'static str);

#[pymethods]
impl LanguageIdentifier {
    #[new]
    fn new(py: Python<'_>, options_json: &str) -> PyResult<Self> {
        let o: LanguageOptions = options(options_json)?;
        let inner = py.detach(|| LanguageStage::new(&o)).map_err(to_py)?;
        Ok(LanguageIdentifier {
            inner: Arc::new(inner),
        })
    }

    /// Per text: the language (without `__label__`), its probability and the drop reason
    /// (`"language"`, `"language_score"`, or `""` when kept).
    #[pyo3(signature = (texts, threads=Threads(0)))]
    fn decide(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        threads: Threads,
    ) -> PyResult<Vec<Decided>> {
        let stage = self.inner.clone();
        py.detach(move || -> tamis_core::Result<_> {
            let pool = thread_pool(threads.0)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            Ok(pool.install(|| stage.decide_all(&refs)))
        })
        .map(|d| {
            d.into_iter()
                .map(|d| (d.language, d.score, d.reason.unwrap_or_default()))
                .collect()
        })
        .map_err(to_py)
    }

    /// The stage's outcome for a batch as `tamis refine` writes it: (keep, reasons, languages,
    /// rounded scores, details).
    #[pyo3(signature = (texts, threads=Threads(0)))]
    #[allow(clippy::type_complexity)]
    fn outcome(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        threads: Threads,
    ) -> PyResult<(Vec<bool>, Vec<String>, Vec<String>, Vec<f64>, Vec<String>)> {
        let stage = self.inner.clone();
        let out = py
            .detach(move || -> tamis_core::Result<_> {
                let pool = thread_pool(threads.0)?;
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                Ok(pool.install(|| stage.outcome(&refs)))
            })
            .map_err(to_py)?;
        let column = |i: usize| {
            out.fields
                .get(i)
                .map(|c| c.values.clone())
                .unwrap_or_default()
        };
        let languages = column(0)
            .into_iter()
            .map(|v| match v {
                Some(tamis_core::io::FieldValue::Str(s)) => s,
                _ => String::new(),
            })
            .collect();
        let scores = column(1)
            .into_iter()
            .map(|v| match v {
                Some(tamis_core::io::FieldValue::Float(f)) => f,
                _ => 0.0,
            })
            .collect();
        Ok((
            out.keep,
            out.reasons,
            languages,
            scores,
            out.details.unwrap_or_default(),
        ))
    }
}
