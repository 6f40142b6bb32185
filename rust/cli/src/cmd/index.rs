//! `tamis index build|add|info` and `tamis decontaminate`.

use anyhow::Result;
use tamis_core::index::decont::{decontaminate as run_decont, DecontOptions};
use tamis_core::index::{add_to_index, build_index, index_info, IndexOptions};
use tamis_core::io::{IoOptions, Output};
use tamis_core::options::parse_size;
use tamis_core::Stats;

use super::dedup::{check_stats_dir, check_stats_path, report};
use crate::args::{
    DecontArgs, GlobalArgs, IndexAddArgs, IndexBuildArgs, IndexInfoArgs, IndexIoArgs,
};
use crate::opts::{given, options};
use crate::progress::Bar;

fn index_io(g: &GlobalArgs, io: &IndexIoArgs) -> Result<IoOptions> {
    options(&[given(io), serde_json::json!({ "threads": g.threads })])
}

pub fn build(g: &GlobalArgs, a: &IndexBuildArgs) -> Result<()> {
    let options: IndexOptions = options(&[given(a)])?;
    let io = index_io(g, &a.io)?;
    check_stats_dir(a.io.stats_json.as_deref())?;
    let bar = Bar::new(g.quiet);
    let stats = build_index(&a.inputs, &a.output, &io, &options, &bar)?;
    report_index(g, a.io.stats_json.as_deref(), &stats)
}

/// Write --stats-json and print what the index holds now (the data commands' summary speaks
/// of kept and removed documents, which an index build has not).
fn report_index(g: &GlobalArgs, stats_json: Option<&std::path::Path>, stats: &Stats) -> Result<()> {
    report(
        &GlobalArgs {
            quiet: true,
            verbose: false,
            threads: g.threads,
        },
        stats_json,
        stats,
    )?;
    if !g.quiet {
        let c = |k: &str| stats.counters.get(k).copied().unwrap_or(0);
        eprintln!(
            "{}: {} records read ({} skipped), {} entries added; the index holds {} records, {} \
             entries in {} segment(s) ({:.2}s)",
            stats.command,
            c("records_indexed"),
            stats.skipped(),
            c("entries_added"),
            c("index_records"),
            c("index_entries"),
            c("index_segments"),
            stats.seconds
        );
        if g.verbose {
            eprintln!("{}", stats.to_json());
        }
    }
    Ok(())
}

pub fn add(g: &GlobalArgs, a: &IndexAddArgs) -> Result<()> {
    let io = index_io(g, &a.io)?;
    let memory = match &a.memory_limit {
        Some(s) => Some(parse_size(s).map_err(|e| anyhow::anyhow!("--memory-limit {e}"))?),
        None => None,
    };
    check_stats_dir(a.io.stats_json.as_deref())?;
    let bar = Bar::new(g.quiet);
    let stats = add_to_index(&a.index, &a.inputs, &io, memory, a.spill_dir.clone(), &bar)?;
    report_index(g, a.io.stats_json.as_deref(), &stats)
}

pub fn info(a: &IndexInfoArgs) -> Result<()> {
    let info = index_info(&a.index)?;
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(())
}

pub fn decontaminate(g: &GlobalArgs, a: &DecontArgs) -> Result<()> {
    let options: DecontOptions = options(&[given(a)])?;
    let io = crate::opts::io_options(g, &a.io)?;
    check_stats_path(&a.io)?;
    let bar = Bar::new(g.quiet);
    let output = Output::parse(a.io.output())?;
    let stats = run_decont(&a.io.inputs, &output, &io, &options, &bar)?;
    report(g, a.io.stats_json.as_deref(), &stats)
}
