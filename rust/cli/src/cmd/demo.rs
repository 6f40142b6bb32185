//! `tamis demo`: build a sample corpus from text found on this machine (Python's documentation
//! topics, or files given with `--source`), plant exact duplicates, white-space variants,
//! boilerplate lines and documents in other languages, write it as shards, and run the main job,
//! `tamis refine`, on it (report included). `--dedup-only` runs exact then line dedup and reports
//! what was removed against what was planted.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::{Context, Result};
use tamis_core::dedup::{ExactDedup, ExactOptions, LineDedup, LinesOptions};
use tamis_core::io::{
    expand_inputs, extract_docs, read_batches, BatchColumns, ExtractOptions, Output, ReadItem,
};
use tamis_core::pipeline::{run as run_stage, NoProgress, RunOptions};
use tamis_core::refine::{summary, ExternalStages, Refine, RefineConfig};
use tamis_core::text::Normalize;

use crate::args::{DemoArgs, GlobalArgs};

/// Documents in other languages, written for this demo, so that language ID has something to
/// remove. Each is planted twice, the second time with its sentences on lines of their own.
const OTHER_LANGUAGES: [(&str, &str); 6] = [
    ("fr", "Une liste en Python garde ses éléments dans l'ordre où on les ajoute. On peut la \
            parcourir avec une boucle, la trier, ou y chercher une valeur ; les dictionnaires, eux, \
            associent une clé à chaque valeur et retrouvent celle-ci très rapidement."),
    ("de", "Eine Funktion fasst Anweisungen zusammen, die man mehrfach ausführen möchte. Sie \
            bekommt Argumente, gibt einen Wert zurück und kann Ausnahmen auslösen, wenn die \
            Eingaben nicht stimmen. Gute Namen machen den Code leichter lesbar."),
    ("es", "Los módulos permiten dividir un programa grande en archivos más pequeños. Cada módulo \
            tiene su propio espacio de nombres, y la instrucción import los carga una sola vez \
            aunque se importen desde muchos lugares distintos."),
    ("it", "Le eccezioni segnalano che qualcosa è andato storto durante l'esecuzione. Un blocco \
            try le intercetta, e la clausola finally viene eseguita in ogni caso, anche quando il \
            programma termina con un errore inatteso."),
    ("pt", "As classes descrevem objetos com atributos e métodos. Uma classe pode herdar de outra \
            e redefinir apenas o comportamento que muda, o que evita repetir o mesmo código em \
            vários lugares do programa."),
    ("nl", "Een generator levert waarden één voor één op, pas wanneer ze nodig zijn. Daardoor \
            kun je met zeer lange reeksen werken zonder ze eerst volledig in het geheugen te laden."),
];

/// Shards of the sample corpus.
const SHARDS: usize = 4;

/// Boilerplate lines a crawler would pick up from page chrome.
const BOILERPLATE_HEAD: [&str; 2] = [
    "Skip to main content",
    "Home | Library | Tutorials | Downloads | Community",
];
const BOILERPLATE_FOOT: [&str; 2] = [
    "Found a bug? Report it on the tracker.",
    "Copyright 2001-2026 Example Docs. All rights reserved.",
];

/// Used when neither `--source` nor Python's documentation is available.
const FALLBACK: &str = include_str!("demo_fallback.txt");

/// splitmix64: a tiny, well-known generator; the demo must be reproducible, not cryptographic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// (label, text) sources.
fn load_sources(a: &DemoArgs) -> Result<(String, Vec<(String, String)>)> {
    if !a.source.is_empty() {
        let mut out = Vec::new();
        for p in &a.source {
            let bytes =
                std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?;
            let text = String::from_utf8(bytes)
                .with_context(|| format!("{}: not UTF-8 text", p.display()))?;
            out.push((p.display().to_string(), text));
        }
        return Ok(("the given --source files".into(), out));
    }
    let python = std::env::var("TAMIS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import json, sys, platform, pydoc_data.topics as t; \
                  json.dump({'version': platform.python_version(), 'topics': t.topics}, sys.stdout)";
    if let Ok(out) = Command::new(&python).args(["-c", script]).output() {
        if out.status.success() {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                let version = v["version"].as_str().unwrap_or("3").to_string();
                if let Some(topics) = v["topics"].as_object() {
                    let mut items: Vec<(String, String)> = topics
                        .iter()
                        .filter_map(|(k, t)| {
                            t.as_str().map(|t| (format!("pydoc:{k}"), t.to_string()))
                        })
                        .collect();
                    items.sort();
                    if !items.is_empty() {
                        return Ok((
                            format!("Python {version}'s documentation topics (pydoc_data)"),
                            items,
                        ));
                    }
                }
            }
        }
    }
    Ok((
        "tamis's built-in sample text (no Python found)".into(),
        vec![("builtin".into(), FALLBACK.into())],
    ))
}

/// Split a text into documents of a few paragraphs (~1.5 KB).
fn split_docs(text: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    for para in text
        .split("\n\n")
        .map(str::trim_end)
        .filter(|p| !p.trim().is_empty())
    {
        if !cur.is_empty() {
            cur.push_str("\n\n");
        }
        cur.push_str(para);
        if cur.len() > 1500 {
            docs.push(std::mem::take(&mut cur));
        }
    }
    if cur.trim().len() > 40 {
        docs.push(cur);
    }
    docs
}

struct Planted {
    docs: usize,
    exact_copies: usize,
    whitespace_variants: usize,
    boilerplate_lines: usize,
    other_languages: usize,
}

/// Write the sample corpus as [`SHARDS`] shards in `dir`; returns what was planted.
fn build_corpus(dir: &Path, sources: &[(String, String)], seed: u64) -> Result<Planted> {
    let mut rng = Rng(seed);
    let mut base: Vec<(String, String)> = Vec::new();
    for (label, text) in sources {
        base.extend(split_docs(text).into_iter().map(|d| (label.clone(), d)));
    }
    if base.len() < 30 {
        // Too little text for a meaningful demo (the built-in fallback): use every paragraph, and
        // every pair of paragraphs, as documents.
        let paras: Vec<String> = sources
            .iter()
            .flat_map(|(_, t)| {
                t.split("\n\n")
                    .map(|p| p.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|p| !p.is_empty())
            .collect();
        base = paras
            .iter()
            .map(|p| ("builtin".to_string(), p.clone()))
            .collect();
        for i in 0..paras.len() {
            for j in i + 1..paras.len() {
                base.push(("builtin".into(), format!("{}\n\n{}", paras[i], paras[j])));
            }
        }
    }
    let mut boilerplate_lines = 0;
    for (_, text) in &mut base {
        if rng.chance(40) {
            let head = BOILERPLATE_HEAD.join("\n");
            *text = format!("{head}\n{text}");
            boilerplate_lines += BOILERPLATE_HEAD.len();
        }
        if rng.chance(40) {
            text.push('\n');
            text.push_str(&BOILERPLATE_FOOT.join("\n"));
            boilerplate_lines += BOILERPLATE_FOOT.len();
        }
    }
    // Copies are inserted after their original, at a random later position.
    let mut corpus: Vec<(String, String, &str)> = base
        .iter()
        .map(|(l, t)| (l.clone(), t.clone(), "original"))
        .collect();
    let (mut exact_copies, mut whitespace_variants) = (0, 0);
    for (label, text) in &base {
        if rng.chance(15) {
            let variant = rng.chance(30);
            let copy = if variant {
                format!("  {}\n", text.replace(". ", ".  "))
            } else {
                text.clone()
            };
            if variant {
                whitespace_variants += 1;
            } else {
                exact_copies += 1;
            }
            let orig = corpus
                .iter()
                .position(|(l, t, _)| l == label && t == text)
                .unwrap_or(0);
            let at = orig + 1 + rng.below(corpus.len() - orig);
            corpus.insert(
                at,
                (
                    label.clone(),
                    copy,
                    if variant {
                        "whitespace_variant"
                    } else {
                        "exact_copy"
                    },
                ),
            );
        }
    }
    let mut records: Vec<serde_json::Value> = corpus
        .iter()
        .enumerate()
        .map(|(i, (label, text, kind))| {
            serde_json::json!({"id": format!("doc-{:05}", i + 1), "text": text, "source": label, "planted": kind})
        })
        .collect();
    // Other-language documents spread through the corpus at fixed positions.
    let step = (records.len() / (2 * OTHER_LANGUAGES.len() + 1)).max(1);
    let mut at = step;
    let mut other_languages = 0;
    for (lang, text) in OTHER_LANGUAGES {
        for variant in [text.to_string(), text.replace(". ", ".\n")] {
            other_languages += 1;
            let rec = serde_json::json!({
                "id": format!("other-{other_languages:02}"), "text": variant,
                "source": format!("demo:{lang}"), "planted": "language",
            });
            records.insert(at.min(records.len()), rec);
            at += step + 1;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let per = records.len().div_ceil(SHARDS).max(1);
    for (i, part) in records.chunks(per).enumerate() {
        let path = dir.join(format!("part-{i:04}.jsonl.gz"));
        let file = std::fs::File::create(&path)
            .with_context(|| format!("{}: cannot create", path.display()))?;
        let mut gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::default(),
        );
        for rec in part {
            serde_json::to_writer(&mut gz, rec)?;
            gz.write_all(b"\n")?;
        }
        gz.finish()?.flush()?;
    }
    Ok(Planted {
        docs: records.len(),
        exact_copies,
        whitespace_variants,
        boilerplate_lines,
        other_languages,
    })
}

/// How often each boilerplate line occurs in a JSONL file.
fn count_boilerplate(path: &Path) -> Result<BTreeMap<&'static str, usize>> {
    let mut counts: BTreeMap<&'static str, usize> = BOILERPLATE_HEAD
        .iter()
        .chain(BOILERPLATE_FOOT.iter())
        .map(|l| (*l, 0))
        .collect();
    let files = expand_inputs(&[path.to_string_lossy()])?;
    let opts = ExtractOptions::default();
    let mut failure = None;
    read_batches(&files, 1 << 20, Arc::new(AtomicU64::new(0)), |item| {
        if let ReadItem::Batch(b) = item {
            match BatchColumns::new(&b, &opts) {
                Ok(cols) => {
                    for doc in extract_docs(&b, &cols, &opts).into_iter().flatten() {
                        for line in doc.text.split('\n') {
                            if let Some(c) = counts.get_mut(line) {
                                *c += 1;
                            }
                        }
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        true
    })?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    Ok(counts)
}

/// The demo's refine configuration (what `tamis refine` would read from TOML).
fn demo_config(corpus: &Path, out: &Path, a: &DemoArgs, threads: usize) -> serde_json::Value {
    let mut stages = vec![
        serde_json::json!({"type": "dedup_exact", "normalize": "whitespace"}),
        // Documentation pages hold code, which lowers language-ID scores: a lenient threshold.
        serde_json::json!({"type": "language", "languages": ["en"], "min_score": 0.3}),
    ];
    if let Some(m) = &a.quality_model {
        stages.push(serde_json::json!({"type": "quality", "model": m}));
    }
    stages.push(
        serde_json::json!({"type": "dedup_lines", "max_occurrences": 1, "min_line_chars": 10}),
    );
    stages.push(serde_json::json!({"type": "dedup_near"}));
    stages.push(serde_json::json!({"type": "prox_doc", "model": a.prox_doc_model.as_deref().unwrap_or("auto")}));
    stages.push(serde_json::json!({"type": "prox_chunk", "model": a.prox_chunk_model.as_deref().unwrap_or("auto")}));
    serde_json::json!({
        "inputs": [corpus], "output": out, "threads": threads, "stage": stages,
    })
}

pub fn run(g: &GlobalArgs, a: &DemoArgs, external: &mut dyn ExternalStages) -> Result<()> {
    let tmp;
    let dir: PathBuf = match &a.out_dir {
        Some(d) => d.clone(),
        None if !a.dedup_only => PathBuf::from("tamis-demo"),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let dir = dir.canonicalize()?;
    let (label, sources) = load_sources(a)?;
    let corpus = dir.join("corpus");
    if corpus.exists() {
        std::fs::remove_dir_all(&corpus)?;
    }
    let planted = build_corpus(&corpus, &sources, a.seed)?;
    let planted_line = format!(
        "tamis demo: a sample corpus built from {label}: {} documents in {SHARDS} shards; planted {} exact copies, \
         {} white-space variants, {} boilerplate lines and {} documents in other languages",
        planted.docs, planted.exact_copies, planted.whitespace_variants, planted.boilerplate_lines,
        planted.other_languages
    );
    if a.corpus_only {
        let info = serde_json::json!({
            "source": label,
            "corpus": corpus.to_string_lossy(),
            "documents": planted.docs,
            "exact_copies": planted.exact_copies,
            "whitespace_variants": planted.whitespace_variants,
            "boilerplate_lines": planted.boilerplate_lines,
            "other_language_documents": planted.other_languages,
        });
        println!("{info}");
        return Ok(());
    }
    if !a.dedup_only {
        let raw = demo_config(&corpus, &dir.join("refined"), a, g.threads);
        let config = RefineConfig::from_value(raw, &dir)?;
        let mut run = Refine::new(config, external)?;
        let report = run.run(true, &tamis_core::refine::Quiet)?;
        if !g.quiet {
            println!("{planted_line}");
            println!("{}", summary(&report));
            let shell = format!(
                "tamis refine {} -o DIR --languages en --min-score 0.3",
                corpus.display()
            );
            println!("  config         the same job from the shell: {shell}");
        }
        return Ok(());
    }
    let exact_out = dir.join("exact.jsonl.gz");
    let clean_out = dir.join("clean.jsonl.gz");
    let opts = RunOptions {
        threads: g.threads,
        ..RunOptions::default()
    };

    let mut exact = ExactDedup::new(&ExactOptions {
        normalize: Normalize::Whitespace,
        ..ExactOptions::default()
    })?;
    let inputs = [corpus.to_string_lossy().into_owned()];
    let s1 = run_stage(
        "dedup exact",
        &inputs,
        &Output::parse(&exact_out.to_string_lossy())?,
        &opts,
        &mut exact,
        &NoProgress,
    )?;
    let mut lines = LineDedup::new(&LinesOptions {
        max_occurrences: 1,
        min_line_chars: 10,
        normalize: Normalize::None,
        ..LinesOptions::default()
    })?;
    let inputs = [exact_out.to_string_lossy().into_owned()];
    let s2 = run_stage(
        "dedup lines",
        &inputs,
        &Output::parse(&clean_out.to_string_lossy())?,
        &opts,
        &mut lines,
        &NoProgress,
    )?;

    let before = count_boilerplate(&corpus)?;
    let after = count_boilerplate(&clean_out)?;
    let dup = s1.documents_removed.get("duplicate").copied().unwrap_or(0);
    let mb = |n: u64| n as f64 / 1e6;
    let mut out = String::new();
    out.push_str(&format!("tamis demo: a sample corpus built from {label}\n"));
    out.push_str(&format!(
        "  corpus       {} documents, {:.2} MB of text; planted {} exact copies, {} white-space variants, {} boilerplate lines\n",
        planted.docs,
        mb(s1.text_bytes_read),
        planted.exact_copies,
        planted.whitespace_variants,
        planted.boilerplate_lines
    ));
    out.push_str(&format!(
        "  dedup exact  --normalize whitespace: removed {dup} duplicate documents (planted {}; any others repeat in the source itself), kept {}\n",
        planted.exact_copies + planted.whitespace_variants,
        s1.documents_kept
    ));
    out.push_str(&format!(
        "  dedup lines  --max-occurrences 1 --min-line-chars 10: removed {} repeated lines (planted boilerplate and lines the sources repeat) from {} documents, dropped {} left empty\n",
        s2.counters.get("lines_removed").copied().unwrap_or(0),
        s2.documents_modified,
        s2.documents_removed.get("empty_after_line_dedup").copied().unwrap_or(0)
    ));
    out.push_str("  boilerplate  occurrences before -> after:\n");
    for (line, n) in &before {
        out.push_str(&format!(
            "    {:>5} -> {:<3} {line:?}\n",
            n,
            after.get(line).copied().unwrap_or(0)
        ));
    }
    out.push_str(&format!(
        "  result       {} documents, {:.2} MB of text ({:.1}% of the text removed)\n",
        s2.documents_kept,
        mb(s2.text_bytes_kept),
        100.0 * (1.0 - s2.text_bytes_kept as f64 / s1.text_bytes_read.max(1) as f64)
    ));
    match &a.out_dir {
        Some(d) => out.push_str(&format!(
            "  files        {}/corpus/ -> exact.jsonl.gz -> clean.jsonl.gz\n",
            d.display()
        )),
        None => out.push_str("  files        written to a temporary directory and removed (keep them with --out-dir DIR)\n"),
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    Ok(())
}
