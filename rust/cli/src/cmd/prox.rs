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
use tamis_core::refine::{run_stages, stage_type, ExternalStages, StageConfig};

use crate::args::{
    GlobalArgs, ProxApplyArgs, ProxApplyStage, ProxModeArg, ProxPromptStage, ProxPromptsArgs,
    ProxRefineArgs, ProxTemplateArg,
};
use crate::opts::{given, io_options};
use crate::progress::Bar;

pub fn apply(g: &GlobalArgs, a: &ProxApplyArgs) -> Result<()> {
    check_stats_path(&a.io)?;
    let opts = io_options(g, &a.io)?.run_options(None)?;
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
    let opts = io_options(g, &a.io)?.run_options(None)?;
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

/// `tamis prox refine`: the doc model on every document, the chunk model on the kept ones,
/// run by the external stages (the Python package's torch models); records stay here.
pub fn refine(g: &GlobalArgs, a: &ProxRefineArgs, external: &mut dyn ExternalStages) -> Result<()> {
    let io = io_options(g, &a.io)?;
    check_stats_path(&a.io)?;
    let common = given(a);
    let mut stages = Vec::new();
    let levels: &[(&str, bool)] = match a.stage {
        ProxApplyStage::Doc => &[("prox_doc", true)],
        ProxApplyStage::Chunk => &[("prox_chunk", false)],
        ProxApplyStage::Both => &[("prox_doc", true), ("prox_chunk", false)],
    };
    for &(kind, doc) in levels {
        let mut table = match &common {
            serde_json::Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        let (model, new_tokens) = if doc {
            if let Some(n) = a.doc_fast_tokens {
                table.insert("doc_fast_tokens".into(), n.into());
            }
            (&a.doc_model, a.doc_max_new_tokens)
        } else {
            if a.no_constrain {
                table.insert("constrain".into(), false.into());
            }
            (&a.chunk_model, a.chunk_max_new_tokens)
        };
        if let Some(m) = model {
            table.insert("model".into(), m.clone().into());
        }
        if let Some(n) = new_tokens {
            table.insert("max_new_tokens".into(), n.into());
        }
        let t = stage_type(kind).ok_or_else(|| anyhow::anyhow!("no stage type {kind}"))?;
        let options = t
            .parse(&table)
            .map_err(|e| anyhow::Error::new(tamis_core::Error::Options(e)))?;
        stages.push(StageConfig {
            name: kind.to_string(),
            position: stages.len() + 1,
            options,
            skipped: None,
        });
    }
    let bar = Bar::new(g.quiet);
    let output = Output::parse(a.io.output())?;
    let (stats, _) = run_stages(
        "prox refine",
        &a.io.inputs,
        &output,
        &io,
        stages,
        external,
        &bar,
    )?;
    report(g, a.io.stats_json.as_deref(), &stats)
}
