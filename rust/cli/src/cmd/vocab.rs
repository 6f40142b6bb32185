//! `tamis vocab extend` and `tamis vocab stats`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use tamis_core::io::expand_text_inputs;
use tamis_core::pipeline::resolved;
use tamis_core::vocab::{
    extend as extend_vocab, extension_report, stats as measure, write_atomic, ExtendOptions,
    StatsConfig, StatsOptions, TokenizerFile,
};

use crate::args::{GlobalArgs, VocabExtendArgs, VocabStatsArgs};
use crate::opts::{given, options};
use crate::progress::Bar;

/// Refuse outputs that would overwrite an input or each other, before any work is done.
fn check_outputs(outputs: &[&Path], inputs: &[&[String]], tokenizers: &[&Path]) -> Result<()> {
    let mut taken: Vec<PathBuf> = tokenizers.iter().map(|p| resolved(p)).collect();
    for specs in inputs.iter().filter(|s| !s.is_empty()) {
        taken.extend(
            expand_text_inputs(specs)?
                .iter()
                .filter_map(|f| f.path.as_deref())
                .map(resolved),
        );
    }
    for (i, out) in outputs.iter().enumerate() {
        let r = resolved(out);
        if taken.contains(&r) || outputs[..i].iter().any(|o| resolved(o) == r) {
            bail!(
                "{}: the output is also an input or another output",
                out.display()
            );
        }
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            bail!("{}: the output directory does not exist", out.display());
        }
    }
    Ok(())
}

pub fn extend(g: &GlobalArgs, a: &VocabExtendArgs) -> Result<()> {
    let mut outputs = vec![a.output.as_path()];
    outputs.extend(a.report.as_deref());
    let mut tokenizers = vec![a.tokenizer.as_path()];
    tokenizers.extend(a.merge_from.as_deref());
    check_outputs(
        &outputs,
        &[&a.corpus, &a.protect, &a.heldout, &a.reference],
        &tokenizers,
    )?;
    let base = TokenizerFile::open(&a.tokenizer)?;
    let other = a
        .merge_from
        .as_deref()
        .map(TokenizerFile::open)
        .transpose()?;
    let o: ExtendOptions = options(&[given(a), serde_json::json!({ "threads": g.threads })])?;
    let cfg = o.config();
    let corpus = cfg.corpus.clone();
    let bar = Bar::new(g.quiet);
    let ext = extend_vocab(&base, &a.corpus, other.as_ref(), &cfg, &bar)?;
    let report = match &a.report {
        Some(_) => {
            let heldout = if a.heldout.is_empty() {
                &a.corpus
            } else {
                &a.heldout
            };
            if heldout.is_empty() {
                bail!("--report needs target text: give --corpus or --heldout");
            }
            let scfg = StatsConfig {
                corpus,
                ..StatsConfig::default()
            };
            Some(extension_report(
                &base,
                &ext,
                heldout,
                &a.protect,
                &o.reference,
                &scfg,
                &bar,
            )?)
        }
        None => None,
    };
    ext.write(&a.output)?;
    if let (Some(path), Some(r)) = (&a.report, &report) {
        write_atomic(path, &(r.to_json() + "\n"))?;
    }
    if !g.quiet {
        let s = &ext.summary;
        eprintln!(
            "vocab extend: {} new tokens ({} characters, {} merges; stopped by {}), ids {}..{}, embedding rows {} -> {}",
            s.new_tokens,
            s.characters_added,
            s.merges_added,
            s.stopped_by,
            s.first_new_id,
            s.next_id,
            s.embedding_rows,
            a.output.display()
        );
        if let Some(sel) = &s.selection {
            eprintln!("{}", selection_line(sel));
        }
        if let Some(r) = &report {
            eprint!("{}", r.summary());
        }
        if g.verbose {
            eprintln!(
                "{}",
                serde_json::to_string_pretty(&ext.summary).unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// One line on what target selection chose.
fn selection_line(sel: &tamis_core::vocab::Selection) -> String {
    let scripts = if sel.scripts.is_empty() {
        "every word (no poorly covered script)".to_string()
    } else {
        format!(
            "words in {} ({})",
            sel.scripts.join(", "),
            if sel.scripts_given {
                "given"
            } else {
                "detected"
            }
        )
    };
    let share = sel.occurrences_used as f64 / sel.occurrences.max(1) as f64;
    let inv = &sel.reference_invariance;
    format!(
        "target auto: learned from {scripts}, {:.1}% of word occurrences; reference {}: {:.3}% of its word occurrences keep their ids ({} pairs skipped as too frequent there)",
        share * 100.0,
        sel.reference,
        inv.rate * 100.0,
        sel.reference_skipped
    )
}

pub fn stats(g: &GlobalArgs, a: &VocabStatsArgs) -> Result<()> {
    let outputs: Vec<&Path> = a.report.as_deref().into_iter().collect();
    let mut tokenizers = vec![a.tokenizer.as_path()];
    tokenizers.extend(a.baseline.as_deref());
    check_outputs(&outputs, &[&a.corpus, &a.protect], &tokenizers)?;
    let tokenizer = TokenizerFile::open(&a.tokenizer)?;
    let baseline = a.baseline.as_deref().map(TokenizerFile::open).transpose()?;
    let o: StatsOptions = options(&[given(a), serde_json::json!({ "threads": g.threads })])?;
    let cfg = o.config();
    let bar = Bar::new(g.quiet);
    let report = measure(
        &tokenizer,
        baseline.as_ref(),
        &a.corpus,
        &a.protect,
        &[],
        &cfg,
        &bar,
    )?;
    if let Some(path) = &a.report {
        write_atomic(path, &(report.to_json() + "\n"))?;
    }
    let text = if a.json {
        report.to_json() + "\n"
    } else {
        report.summary()
    };
    if !g.quiet || a.json {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                return Err(e.into());
            }
        }
    }
    Ok(())
}
