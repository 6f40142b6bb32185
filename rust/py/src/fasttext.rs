//! `tamis._core.FastText`: fastText classifiers run by tamis-core (`tamis_core::fasttext`).

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use rayon::prelude::*;
use tamis_core::fasttext::FastText as Model;
use tamis_core::pipeline::thread_pool;

use crate::errors::{to_py, Threads};

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
