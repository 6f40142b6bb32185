//! `tamis dedup exact` and `tamis dedup lines`.

use anyhow::{Context, Result};
use tamis_core::dedup::{ExactConfig, ExactDedup, LineDedup, LinesConfig};
use tamis_core::io::Output;
use tamis_core::pipeline::run;
use tamis_core::Stats;

use crate::args::{ExactArgs, GlobalArgs, IoArgs, LinesArgs};
use crate::progress::Bar;

pub fn exact(g: &GlobalArgs, a: &ExactArgs) -> Result<()> {
    let opts = a.io.run_options(g.threads, a.key.clone());
    let mut stage = ExactDedup::new(ExactConfig {
        normalize: a.normalize.into(),
        use_key: a.key.is_some(),
    });
    let bar = Bar::new(g.quiet);
    let stats = run(
        "dedup exact",
        &a.io.inputs,
        &Output::parse(&a.io.output)?,
        &opts,
        &mut stage,
        &bar,
    )?;
    report(g, &a.io, &stats)
}

pub fn lines(g: &GlobalArgs, a: &LinesArgs) -> Result<()> {
    let opts = a.io.run_options(g.threads, None);
    let mut stage = LineDedup::new(LinesConfig {
        max_occurrences: a.max_occurrences,
        min_line_chars: a.min_line_chars,
        normalize: a.normalize.into(),
    })?;
    let bar = Bar::new(g.quiet);
    let stats = run(
        "dedup lines",
        &a.io.inputs,
        &Output::parse(&a.io.output)?,
        &opts,
        &mut stage,
        &bar,
    )?;
    report(g, &a.io, &stats)
}

/// Write --stats-json and print the one-line summary on stderr.
pub fn report(g: &GlobalArgs, io: &IoArgs, stats: &Stats) -> Result<()> {
    if let Some(path) = &io.stats_json {
        let (guard, mut file) = tamis_core::io::AtomicFile::create(path)?;
        std::io::Write::write_all(&mut file, stats.to_json().as_bytes())
            .with_context(|| format!("{}: cannot write stats", path.display()))?;
        drop(file);
        guard.commit()?;
    }
    if !g.quiet {
        eprintln!("{}", summary(stats));
        if g.verbose {
            eprintln!("{}", stats.to_json());
        }
    }
    Ok(())
}

pub fn summary(s: &Stats) -> String {
    let mut line = format!(
        "{}: read {} documents, kept {}, removed {}",
        s.command,
        s.documents_read,
        s.documents_kept,
        s.removed()
    );
    if !s.documents_removed.is_empty() {
        let reasons: Vec<String> = s
            .documents_removed
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        line.push_str(&format!(" ({})", reasons.join(", ")));
    }
    if let Some(n) = s.counters.get("lines_removed") {
        line.push_str(&format!(
            ", {n} lines removed from {} modified documents",
            s.documents_modified
        ));
    }
    if s.skipped() > 0 {
        let reasons: Vec<String> = s
            .records_skipped
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        line.push_str(&format!(
            ", skipped {} bad records ({})",
            s.skipped(),
            reasons.join(", ")
        ));
    }
    let mb = s.text_bytes_read as f64 / 1e6;
    line.push_str(&format!(
        " in {:.2}s ({:.0} docs/s, {:.0} MB/s of text)",
        s.seconds,
        s.documents_read as f64 / s.seconds.max(1e-9),
        mb / s.seconds.max(1e-9)
    ));
    line
}
