//! `tamis prox apply` and `tamis prox prompts` (`tamis prox refine` is Python).

use anyhow::Result;
use tamis_core::io::Output;
use tamis_core::prox::apply::{
    apply as run_apply, prompts as run_prompts, ApplyOptions, PromptOptions, PromptStage,
};
use tamis_core::prox::chunk::ChunkOptions;
use tamis_core::prox::prompt::PromptTemplate;
use tamis_core::prox::{Acceptance, Mode};

use super::dedup::{check_stats_path, report};
use crate::args::{
    GlobalArgs, ProxApplyArgs, ProxApplyStage, ProxModeArg, ProxPromptStage, ProxPromptsArgs,
    ProxTemplateArg,
};
use crate::progress::Bar;

pub fn apply(g: &GlobalArgs, a: &ProxApplyArgs) -> Result<()> {
    check_stats_path(&a.io)?;
    let opts = a.io.run_options(g.threads, None);
    let key = |k: &str, wanted: bool| wanted.then(|| k.to_string());
    let config = ApplyOptions {
        mode: match a.mode {
            ProxModeArg::Compat => Mode::Compat,
            ProxModeArg::Strict => Mode::Strict,
        },
        accept: Acceptance {
            min_keep_ratio: a.min_keep_ratio,
            min_edit_ratio: a.min_edit_ratio,
            min_words: a.min_words,
            max_errors: a.max_errors,
        },
        doc_program_key: key(&a.doc_program_key, a.stage != ProxApplyStage::Chunk),
        chunk_program_key: key(&a.chunk_program_key, a.stage != ProxApplyStage::Doc),
        raw_key: (!a.raw_key.is_empty()).then(|| a.raw_key.clone()),
    };
    let bar = Bar::new(g.quiet);
    let stats = run_apply(
        &a.io.inputs,
        &Output::parse(a.io.output())?,
        &opts,
        config,
        &bar,
    )?;
    report(g, a.io.stats_json.as_deref(), &stats)
}

pub fn prompts(g: &GlobalArgs, a: &ProxPromptsArgs) -> Result<()> {
    check_stats_path(&a.io)?;
    let opts = a.io.run_options(g.threads, None);
    let mut template = match a.template {
        ProxTemplateArg::Llama2 => PromptTemplate::llama2(),
        ProxTemplateArg::Plain => PromptTemplate::plain(),
    };
    if let Some(s) = &a.system {
        template.system = s.clone();
    }
    let config = PromptOptions {
        stage: match a.stage {
            ProxPromptStage::Doc => PromptStage::Doc,
            ProxPromptStage::Chunk => PromptStage::Chunk,
        },
        tokenizer: a.tokenizer.clone(),
        template,
        doc_max_tokens: a.doc_max_tokens,
        chunk: ChunkOptions {
            max_tokens: a.max_tokens,
            number_width: a.number_width,
            ..ChunkOptions::default()
        },
    };
    let bar = Bar::new(g.quiet);
    let stats = run_prompts(
        &a.io.inputs,
        &Output::parse(a.io.output())?,
        &opts,
        &config,
        &bar,
    )?;
    report(g, a.io.stats_json.as_deref(), &stats)
}

/// Model inference needs torch: it is in the Python package's `tamis` script.
pub fn refine() -> Result<()> {
    anyhow::bail!(
        "`tamis prox refine` runs the refining models with torch, so it lives in the Python package: \
         install it with `pip install 'tamis[prox]'` and run the `tamis` script it installs \
         (or `python -m tamis prox refine ...`); this binary only runs programs (`tamis prox apply`) \
         and writes prompts (`tamis prox prompts`)"
    )
}
