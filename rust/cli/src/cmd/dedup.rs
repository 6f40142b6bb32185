//! `tamis dedup exact`, `tamis dedup lines` and `tamis dedup substring`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tamis_core::dedup::substring::{substring_dedup, SubstringOptions};
use tamis_core::dedup::{exact_dedup, lines_dedup, ExactOptions, LinesOptions};
use tamis_core::io::{expand_inputs, Output};
use tamis_core::pipeline::resolved;
use tamis_core::Stats;

use crate::args::{ExactArgs, GlobalArgs, IoArgs, LinesArgs, SubstringArgs};
use crate::opts::{given, io_options, options};
use crate::progress::Bar;

pub fn exact(g: &GlobalArgs, a: &ExactArgs) -> Result<()> {
    let options: ExactOptions = options(&[given(a)])?;
    let io = io_options(g, &a.io)?;
    check_stats_path(&a.io)?;
    let bar = Bar::new(g.quiet);
    let output = Output::parse(a.io.output())?;
    let stats = exact_dedup(&a.io.inputs, &output, &io, &options, &bar)?;
    report(g, a.io.stats_json.as_deref(), &stats)
}

pub fn lines(g: &GlobalArgs, a: &LinesArgs) -> Result<()> {
    let options: LinesOptions = options(&[given(a)])?;
    let io = io_options(g, &a.io)?;
    check_stats_path(&a.io)?;
    let bar = Bar::new(g.quiet);
    let output = Output::parse(a.io.output())?;
    let stats = lines_dedup(&a.io.inputs, &output, &io, &options, &bar)?;
    report(g, a.io.stats_json.as_deref(), &stats)
}

pub fn substring(g: &GlobalArgs, a: &SubstringArgs) -> Result<()> {
    let options: SubstringOptions = options(&[given(a)])?;
    let io = io_options(g, &a.io)?;
    check_stats_path(&a.io)?;
    let bar = Bar::new(g.quiet);
    let output = Output::parse(a.io.output())?;
    let stats = substring_dedup(&a.io.inputs, &output, &io, &options, &bar)?;
    report(g, a.io.stats_json.as_deref(), &stats)
}

/// The stats file is written after the output is in place, so check up front that it can be
/// written and that it clobbers nothing the run reads or writes.
pub fn check_stats_path(io: &IoArgs) -> Result<()> {
    let Some(stats) = &io.stats_json else {
        return Ok(());
    };
    check_stats_dir(Some(stats))?;
    let target = resolved(stats);
    let mut taken: Vec<PathBuf> = expand_inputs(&io.inputs)?
        .iter()
        .filter_map(|f| f.path.as_deref())
        .map(resolved)
        .collect();
    if io.output() != "-" {
        taken.push(resolved(Path::new(io.output())));
    }
    taken.extend(io.rejects.as_deref().map(resolved));
    if taken.contains(&target) {
        bail!(
            "{}: --stats-json names a file the run reads or writes",
            stats.display()
        );
    }
    Ok(())
}

/// That a --stats-json file can be created where it is asked for: its directory exists and
/// takes a new file (checked by creating and removing one), before any work is done.
pub fn check_stats_dir(stats: Option<&Path>) -> Result<()> {
    let Some(stats) = stats else {
        return Ok(());
    };
    let parent = stats
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        bail!(
            "{}: the directory for --stats-json does not exist",
            stats.display()
        );
    }
    tempfile::Builder::new()
        .prefix(".tamis-stats-probe")
        .tempfile_in(parent)
        .with_context(|| {
            format!(
                "{}: cannot create --stats-json in {}",
                stats.display(),
                parent.display()
            )
        })?;
    Ok(())
}

/// Write --stats-json and print the one-line summary on stderr.
pub fn report(g: &GlobalArgs, stats_json: Option<&Path>, stats: &Stats) -> Result<()> {
    if let Some(path) = stats_json {
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
    if let Some(n) = s.counters.get("duplicate_clusters") {
        line.push_str(&format!(", {n} clusters of near-duplicates"));
    }
    if let Some(n) = s.counters.get("lines_removed") {
        line.push_str(&format!(
            ", {n} lines removed from {} modified documents",
            s.documents_modified
        ));
    }
    if let Some(n) = s.counters.get("substring_bytes_removed") {
        line.push_str(&format!(
            ", {n} bytes in {} repeated spans removed from {} documents",
            s.counters.get("substring_spans").copied().unwrap_or(0),
            s.counters.get("documents_changed").copied().unwrap_or(0)
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
