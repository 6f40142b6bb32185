//! `tamis embed init` (`tamis embed eval` is Python).

use anyhow::Result;
use tamis_core::embed::{init_checkpoint_with, CheckpointConfig, InitConfig};
use tamis_core::vocab::{write_atomic, TokenizerFile};

use crate::args::{EmbedInitArgs, GlobalArgs};
use crate::opts::{given, options};

pub fn init(g: &GlobalArgs, a: &EmbedInitArgs) -> Result<()> {
    let cfg = CheckpointConfig {
        init: options::<InitConfig>(&[given(a)])?,
        embed_name: a.embed_name.clone(),
        lm_head_name: a.lm_head_name.clone(),
    };
    // The tokenizers are read while the tensors they do not affect are being copied.
    let load = || {
        Ok((
            TokenizerFile::open(&a.old_tokenizer)?,
            TokenizerFile::open(&a.new_tokenizer)?,
        ))
    };
    let s = init_checkpoint_with(&a.model, load, &a.output, &cfg)?;
    let json = serde_json::to_string_pretty(&s)?;
    if let Some(path) = &a.summary {
        write_atomic(path, &(json.clone() + "\n"))?;
    }
    if !g.quiet {
        eprintln!(
            "embed init: {} new tokens ({} with no pieces), {} {} rows {} -> {} ({}; {}), {} rewritten, {} copied -> {}",
            s.new_tokens,
            s.empty_decompositions,
            s.method,
            if s.tied { "tied" } else { "untied" },
            s.rows_before,
            s.rows_after,
            s.embed_name,
            s.lm_head_name.as_deref().unwrap_or("no lm_head"),
            s.shards_rewritten.len(),
            s.shards_copied.len(),
            a.output.display()
        );
        if g.verbose {
            eprintln!("{json}");
        }
    }
    Ok(())
}

/// Evaluation needs torch: it is in the Python package's `tamis` script.
pub fn eval() -> Result<()> {
    anyhow::bail!(
        "`tamis embed eval` runs the model with torch, so it lives in the Python package: \
         install it with `pip install 'tamis[prox]'` and run the `tamis` script it installs \
         (or `python -m tamis embed eval ...`); this binary initializes checkpoints (`tamis embed init`)"
    )
}
