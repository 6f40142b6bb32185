//! `tamis dedup near` and its stages.

use anyhow::Result;
use tamis_core::dedup::near::{
    self, memory_plan, s_curve_table,
    stages::{self, FilterOptions, SignaturesOptions},
    MinHashParams, NearConfig, Shingling, Sketch,
};
use tamis_core::io::{ExtractOptions, OnError, Output};
use tamis_core::pipeline::RunOptions;

use super::dedup::{check_stats_path, report};
use crate::args::{GlobalArgs, MinHashArgs, NearCmd, NearStage, OnErrorArg, ShingleArg, SketchArg};
use crate::progress::Bar;

/// Resolve the parameters; prints the S-curve unless quiet.
fn params(g: &GlobalArgs, a: &MinHashArgs) -> Result<MinHashParams> {
    let mut p = MinHashParams::resolve(
        a.num_perm,
        a.bands,
        a.rows,
        a.threshold,
        a.recall_weight,
        a.ngram,
        match a.shingle {
            ShingleArg::Words => Shingling::Words,
            ShingleArg::Chars => Shingling::Chars,
        },
        a.seed,
    )?;
    p.sketch = match a.sketch {
        SketchArg::Kperm => Sketch::Permutations,
        SketchArg::Oph => Sketch::OnePermutation,
    };
    if !g.quiet {
        eprintln!("{}", s_curve_table(&p));
    }
    Ok(p)
}

pub fn run(g: &GlobalArgs, cmd: &NearCmd) -> Result<()> {
    match &cmd.stage {
        None => single(g, cmd),
        Some(NearStage::Signatures(a)) => {
            let p = params(g, &a.minhash)?;
            let opts = RunOptions {
                extract: ExtractOptions {
                    text_key: a.text_key.clone(),
                    ..ExtractOptions::default()
                },
                on_error: match a.on_error {
                    OnErrorArg::Fail => OnError::Fail,
                    OnErrorArg::Skip => OnError::Skip,
                },
                threads: g.threads,
                ..RunOptions::default()
            };
            let bar = Bar::new(g.quiet);
            let stats = stages::signatures(
                &a.inputs,
                &a.task.workdir,
                a.task.rank,
                a.task.world_size,
                &opts,
                &SignaturesOptions {
                    params: p,
                    priority: a.minhash.priority.clone(),
                    memory_limit: a.memory_limit,
                },
                &bar,
            )?;
            report(g, a.stats_json.as_deref(), &stats)
        }
        Some(NearStage::Buckets(a)) => {
            let stats = stages::buckets(&a.task.workdir, a.task.rank, a.task.world_size)?;
            report(g, a.stats_json.as_deref(), &stats)
        }
        Some(NearStage::Cluster(a)) => {
            let stats = stages::cluster(&a.workdir)?;
            report(g, a.stats_json.as_deref(), &stats)
        }
        Some(NearStage::Filter(a)) => {
            check_stats_path(&a.io)?;
            let opts = a.io.run_options(g.threads, None);
            let bar = Bar::new(g.quiet);
            let stats = stages::filter(
                &a.io.inputs,
                &a.task.workdir,
                a.task.rank,
                a.task.world_size,
                a.io.output(),
                &opts,
                &FilterOptions {
                    annotate: a.annotate,
                    clusters: a.clusters.clone(),
                },
                &bar,
            )?;
            report(g, a.io.stats_json.as_deref(), &stats)
        }
    }
}

fn single(g: &GlobalArgs, cmd: &NearCmd) -> Result<()> {
    let a = &cmd.run;
    check_stats_path(&a.io)?;
    let p = params(g, &a.minhash)?;
    let config = NearConfig {
        params: p,
        verify: a.verify.then_some(a.minhash.threshold.unwrap_or(0.8)),
        annotate: a.annotate,
        priority: a.minhash.priority.clone(),
        clusters: a.clusters.clone(),
        memory_limit: a.memory_limit,
        spill_dir: a.spill_dir.clone(),
    };
    if !g.quiet {
        eprintln!("{}", memory_plan(&p, &config));
    }
    let opts = a.io.run_options(g.threads, None);
    let bar = Bar::new(g.quiet);
    let stats = near::near_dedup(
        &a.io.inputs,
        &Output::parse(a.io.output())?,
        &opts,
        &config,
        &bar,
    )?;
    report(g, a.io.stats_json.as_deref(), &stats)
}
