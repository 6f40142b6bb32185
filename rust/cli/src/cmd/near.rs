//! `tamis dedup near` and its stages.

use anyhow::Result;
use serde_json::json;
use tamis_core::dedup::near::stages::{self, Task};
use tamis_core::dedup::near::{self, memory_plan, s_curve_table, NearOptions};
use tamis_core::io::{IoOptions, Output};

use super::dedup::{check_stats_dir, check_stats_path, report};
use crate::args::{GlobalArgs, NearCmd, NearStage, NearTaskArgs};
use crate::opts::{given, io_options, options};
use crate::progress::Bar;

/// The options; prints the S-curve unless quiet.
fn near_options(g: &GlobalArgs, given: serde_json::Value) -> Result<NearOptions> {
    let o: NearOptions = options(&[given])?;
    let p = o.params().map_err(tamis_core::Error::Options)?;
    if !g.quiet {
        eprintln!("{}", s_curve_table(&p));
    }
    Ok(o)
}

fn task(t: &NearTaskArgs) -> Task {
    Task {
        rank: t.rank,
        world_size: t.world_size,
    }
}

pub fn run(g: &GlobalArgs, cmd: &NearCmd) -> Result<()> {
    match &cmd.stage {
        None => single(g, cmd),
        Some(NearStage::Signatures(a)) => {
            check_stats_dir(a.stats_json.as_deref())?;
            let o = near_options(g, given(a))?;
            let io: IoOptions = options(&[json!({
                "text_key": a.text_key, "on_error": a.on_error, "threads": g.threads,
            })
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()])?;
            let bar = Bar::new(g.quiet);
            let stats =
                stages::signatures(&a.inputs, &a.task.workdir, task(&a.task), &io, &o, &bar)?;
            report(g, a.stats_json.as_deref(), &stats)
        }
        Some(NearStage::Buckets(a)) => {
            check_stats_dir(a.stats_json.as_deref())?;
            let stats = stages::buckets(&a.task.workdir, a.task.rank, a.task.world_size)?;
            report(g, a.stats_json.as_deref(), &stats)
        }
        Some(NearStage::Cluster(a)) => {
            check_stats_dir(a.stats_json.as_deref())?;
            let stats = stages::cluster(&a.workdir)?;
            report(g, a.stats_json.as_deref(), &stats)
        }
        Some(NearStage::Filter(a)) => {
            let o: NearOptions = options(&[given(a)])?;
            let io = io_options(g, &a.io)?;
            check_stats_path(&a.io)?;
            let bar = Bar::new(g.quiet);
            let stats = stages::filter(
                &a.io.inputs,
                &a.task.workdir,
                task(&a.task),
                a.io.output(),
                &io,
                &o,
                &bar,
            )?;
            report(g, a.io.stats_json.as_deref(), &stats)
        }
    }
}

fn single(g: &GlobalArgs, cmd: &NearCmd) -> Result<()> {
    let a = &cmd.run;
    let o = near_options(g, given(a))?;
    let io = io_options(g, &a.io)?;
    check_stats_path(&a.io)?;
    if !g.quiet {
        eprintln!(
            "{}",
            memory_plan(&o.params().map_err(tamis_core::Error::Options)?, &o)
        );
    }
    let bar = Bar::new(g.quiet);
    let output = Output::parse(a.io.output())?;
    let stats = near::near_dedup(&a.io.inputs, &output, &io, &o, &bar)?;
    report(g, a.io.stats_json.as_deref(), &stats)
}
