//! `tamis mix`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tamis_core::io::{IoOptions, Output};
use tamis_core::mix::{mix, mix_to_shards, MixManifest, MixOptions, MixSource};
use tamis_core::tokenize::TokenizeOptions;

use crate::args::{GlobalArgs, MixArgs};
use crate::opts::{given, options};

pub fn run(g: &GlobalArgs, a: &MixArgs) -> Result<()> {
    let sources = a
        .sources
        .iter()
        .map(|s| MixSource::parse(s))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| anyhow::Error::new(tamis_core::Error::Options(e)))?;
    let mut flags = given(a);
    if let Some(m) = flags.as_object_mut() {
        m.insert("sources".into(), serde_json::to_value(&sources)?);
    }
    let opts: MixOptions = options(&[flags])?;
    let io: IoOptions = options(&[serde_json::json!({
        "text_key": a.text_key.as_deref().unwrap_or("text"),
        "id_key": a.id_key.as_deref().unwrap_or("id"),
        "on_error": a.on_error.as_deref().unwrap_or("fail"),
        "rejects": a.rejects,
        "threads": g.threads,
    })])?;
    if let Some(format) = &a.format {
        let mut t = serde_json::json!({"format": format, "shuffle": a.shuffle, "seed": opts.seed});
        if let Some(n) = a.max_shard_tokens {
            t["max_shard_tokens"] = n.into();
        }
        if let Some(d) = &a.dtype {
            t["dtype"] = d.as_str().into();
        }
        let tok: TokenizeOptions = options(&[t])?;
        let out = mix_to_shards(&opts, &tok, &io, std::path::Path::new(&a.output))?;
        if !g.quiet {
            summary(&out.mix, &opts, None);
            eprintln!(
                "  shards       {} ({} tokens in {} {} shards); mix.json and manifest.json there",
                a.output,
                out.shards.tokens,
                out.shards.shards.len(),
                out.shards.format
            );
        }
        return Ok(());
    }
    let output = Output::parse(&a.output)?;
    let manifest_path = match (&a.manifest, a.output.as_str()) {
        (Some(p), _) => Some(p.clone()),
        (None, "-") => None,
        (None, o) => Some(PathBuf::from(format!("{o}.manifest.json"))),
    };
    // The manifest is written after the output: check first that it can be.
    super::dedup::check_stats_dir(manifest_path.as_deref())?;
    let manifest = mix(&opts, &io, &output)?;
    let text = serde_json::to_string_pretty(&manifest)? + "\n";
    if let Some(p) = &manifest_path {
        let (guard, mut file) = tamis_core::io::AtomicFile::create(p)?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .with_context(|| format!("{}: cannot write the manifest", p.display()))?;
        drop(file);
        guard.commit()?;
    }
    if !g.quiet {
        summary(&manifest, &opts, manifest_path.as_deref());
    }
    Ok(())
}

fn summary(manifest: &MixManifest, opts: &MixOptions, manifest_path: Option<&std::path::Path>) {
    eprintln!(
        "tamis mix: {} documents, {} tokens -> {}",
        manifest.documents, manifest.tokens, manifest.output
    );
    for s in &manifest.sources {
        let mut line = format!(
            "  {:<12} {} tokens ({:.1}%, asked {:.1}%), {} documents, {:.2} epochs",
            s.name,
            s.tokens_taken,
            100.0 * s.share,
            100.0 * s.requested_share,
            s.documents_taken,
            s.epochs
        );
        if s.tokens == 0 {
            line += "; the source is empty";
        } else if s.shortfall > 0 {
            line += &format!(
                "; ran out after {} epochs: {} tokens short of its {}",
                opts.max_epochs, s.shortfall, s.budget
            );
        }
        eprintln!("{line}");
    }
    if let Some(p) = manifest_path {
        eprintln!("  manifest     {}", p.display());
    }
}
