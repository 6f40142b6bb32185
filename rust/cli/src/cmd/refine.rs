//! `tamis refine` and `tamis filter language|quality`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use serde_json::Value;
use tamis_core::io::Output;
use tamis_core::options::OptionError;
use tamis_core::pipeline::Progress;
use tamis_core::refine::{
    run_stages, stage_type, summary, ExternalStages, QuickOptions, Refine, RefineConfig,
    RefineObserver, StageConfig,
};

use super::dedup::{check_stats_path, report};
use crate::args::{FilterLanguageArgs, FilterQualityArgs, GlobalArgs, RefineArgs};
use crate::opts::{given, io_options};
use crate::progress::Bar;

/// Messages on stderr, a progress bar, and the fault injection of the resume tests.
struct Observer {
    quiet: bool,
    bar: Bar,
    shards: AtomicUsize,
    kill_after: usize,
}

impl RefineObserver for Observer {
    fn message(&self, message: &str) {
        if !self.quiet {
            self.bar.println(&format!("tamis refine: {message}"));
        }
    }

    fn shard_done(&self) {
        let n = self.shards.fetch_add(1, Ordering::SeqCst) + 1;
        if self.kill_after > 0 && n >= self.kill_after {
            // Die as a crash would, without any cleanup (tests of resuming).
            // SAFETY: sending a signal to this very process.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }

    fn progress(&self) -> &dyn Progress {
        &self.bar
    }
}

fn usage(message: String) -> anyhow::Error {
    anyhow::Error::new(tamis_core::Error::Options(OptionError {
        fields: Vec::new(),
        message,
    }))
}

/// The configuration of `tamis refine CONFIG.toml` or `tamis refine INPUT... -o OUTDIR`.
pub fn config_of(g: &GlobalArgs, a: &RefineArgs) -> Result<RefineConfig> {
    let mut config = if a.inputs.len() == 1 && a.inputs[0].ends_with(".toml") {
        RefineConfig::from_toml_file(Path::new(&a.inputs[0]), a.output.as_deref())?
    } else {
        let Some(output) = &a.output else {
            return Err(usage("give a CONFIG.toml, or INPUT... -o OUTDIR".into()));
        };
        let quick: QuickOptions =
            serde_json::from_value(given(a)).map_err(|e| usage(format!("refine: {e}")))?;
        let raw = quick.to_config(&a.inputs, &output.display().to_string());
        let cwd = std::env::current_dir()?;
        RefineConfig::from_value(raw, &cwd)?
    };
    if g.threads != 0 {
        config.threads = g.threads;
    }
    Ok(config)
}

pub fn refine(g: &GlobalArgs, a: &RefineArgs, external: &mut dyn ExternalStages) -> Result<()> {
    let config = config_of(g, a)?;
    let mut run = Refine::new(config, external)?;
    let observer = Observer {
        quiet: g.quiet,
        bar: Bar::new(g.quiet),
        shards: AtomicUsize::new(0),
        kill_after: std::env::var("TAMIS_REFINE_KILL_AFTER_SHARDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    };
    let report = run.run(a.restart, &observer)?;
    observer.bar.finish_and_clear();
    if !g.quiet {
        println!("{}", summary(&report));
    }
    Ok(())
}

fn filter(
    g: &GlobalArgs,
    io: &crate::args::IoArgs,
    kind: &str,
    name: &str,
    given: Value,
    external: &mut dyn ExternalStages,
) -> Result<()> {
    let Value::Object(table) = given else {
        return Err(usage("bad flags".into()));
    };
    let t = stage_type(kind).ok_or_else(|| usage(format!("no stage type {kind}")))?;
    let options = t
        .parse(&table)
        .map_err(|e| anyhow::Error::new(tamis_core::Error::Options(e)))?;
    let io_opts = io_options(g, io)?;
    check_stats_path(io)?;
    let stage = StageConfig {
        name: name.to_string(),
        position: 1,
        options,
        skipped: None,
    };
    let bar = Bar::new(g.quiet);
    let output = Output::parse(io.output())?;
    let command = format!("filter {kind}");
    let (stats, _) = run_stages(
        &command,
        &io.inputs,
        &output,
        &io_opts,
        vec![stage],
        external,
        &bar,
    )?;
    report(g, io.stats_json.as_deref(), &stats)
}

pub fn language(
    g: &GlobalArgs,
    a: &FilterLanguageArgs,
    external: &mut dyn ExternalStages,
) -> Result<()> {
    filter(g, &a.io, "language", "language", given(a), external)
}

pub fn quality(
    g: &GlobalArgs,
    a: &FilterQualityArgs,
    external: &mut dyn ExternalStages,
) -> Result<()> {
    if a.name.is_empty()
        || !a
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(usage(format!(
            "--name must be letters, digits or _, got {:?}",
            a.name
        )));
    }
    filter(g, &a.io, "quality", &a.name, given(a), external)
}
