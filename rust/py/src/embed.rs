//! Embedding rows for new tokens (zip-tie and baselines). Tokenizers come as `(name, JSON
//! text)`; the initialization as `InitConfig` JSON.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tamis_core::embed::{CheckpointConfig, InitConfig};
use tamis_core::vocab::TokenizerFile;

use crate::errors::{interruptible, options, tamis_error, to_py};

/// A tokenizer given as `(name, JSON text)`.
type Named = (String, String);

/// Resize a safetensors model directory's embeddings for an extended tokenizer; `names` are the
/// embedding and lm_head tensor names (default: found by name). Returns the summary JSON.
#[pyfunction]
#[pyo3(signature = (model, old, new, output, init_json, names=(None, None)))]
pub fn embed_init_checkpoint(
    py: Python<'_>,
    model: PathBuf,
    old: Named,
    new: Named,
    output: PathBuf,
    init_json: &str,
    names: (Option<String>, Option<String>),
) -> PyResult<String> {
    let cfg = CheckpointConfig {
        init: options(init_json)?,
        embed_name: names.0,
        lm_head_name: names.1,
    };
    interruptible(py, || -> tamis_core::Result<String> {
        // Parsed while the tensors they do not affect are being copied.
        let load = || {
            Ok((
                TokenizerFile::from_json(&old.0, &old.1)?,
                TokenizerFile::from_json(&new.0, &new.1)?,
            ))
        };
        let s = tamis_core::embed::init_checkpoint_with(&model, load, &output, &cfg)?;
        serde_json::to_string(&s).map_err(|e| tamis_core::Error::Config(e.to_string()))
    })
}

/// Rows after, input bytes, output bytes, summary JSON.
type Rows<'py> = (
    usize,
    Bound<'py, PyBytes>,
    Option<Bound<'py, PyBytes>>,
    String,
);

/// The resized embedding matrices (raw little-endian bytes of `shape.0`, `[shape.1, shape.2]`)
/// for an extended tokenizer; returns (rows after, input bytes, output bytes or None, summary
/// JSON).
#[pyfunction]
pub fn embed_rows<'py>(
    py: Python<'py>,
    old: Named,
    new: Named,
    matrices: (&[u8], Option<&[u8]>),
    shape: (String, usize, usize),
    init_json: &str,
) -> PyResult<Rows<'py>> {
    use tamis_core::embed::{Dtype, Initializer, Matrix, Plan, Which};
    let cfg: InitConfig = options(init_json)?;
    let (input, output) = matrices;
    let (dtype, rows, cols) = shape;
    let dt = Dtype::parse(&dtype).ok_or_else(|| {
        tamis_error(format!(
            "dtype {dtype}: only float32, float16 and bfloat16 embeddings are supported"
        ))
    })?;
    let (n, a, b, summary) = py
        .detach(|| -> tamis_core::Result<_> {
            let old = TokenizerFile::from_json(&old.0, &old.1)?;
            let new = TokenizerFile::from_json(&new.0, &new.1)?;
            let plan = Plan::new(&old, &new)?;
            let m = Matrix::new(input, dt, rows, cols)?;
            let o = output.map(|d| Matrix::new(d, dt, rows, cols)).transpose()?;
            let init = Initializer::new("<model>", &plan, &cfg, m, o)?;
            let n = init.rows_out();
            let a = init.rows(Which::Input, 0, n);
            let b = o.map(|_| init.rows(Which::Output, 0, n));
            let summary = serde_json::json!({
                "method": cfg.method.name(),
                "old_ids": plan.old_ids,
                "new_ids": plan.new_ids,
                "rows_before": rows,
                "rows_after": n,
                "new_tokens": plan.new_tokens.len(),
                "empty_decompositions": init.empty_decompositions(),
                "overwritten_padding_rows": init.overwritten_rows(),
            });
            Ok((n, a, b, summary.to_string()))
        })
        .map_err(to_py)?;
    Ok((
        n,
        PyBytes::new(py, &a),
        b.map(|b| PyBytes::new(py, &b)),
        summary,
    ))
}
