//! `report.json`: the configuration; per stage documents and tokens in and out, bytes, documents
//! modified, dropped by reason, stage counters, seconds, docs/s and examples; the funnel; length
//! histograms before and after; the language distribution; notes on skipped stages.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::config::RefineConfig;
use super::run::StepResult;
use super::stats::{hist_edges, StageStats};
use crate::io::InputFile;

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// The report of a run from the results of its steps, in order.
pub(crate) fn build_report(
    config: &RefineConfig,
    files: &[InputFile],
    results: &[StepResult],
    unit: &str,
    outputs: &[PathBuf],
    seconds: f64,
) -> Value {
    let mut by_name: BTreeMap<&str, &StageStats> = BTreeMap::new();
    for r in results {
        for (k, v) in &r.stages {
            by_name.insert(k, v);
        }
    }
    let mut stages = Vec::new();
    let mut languages: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut funnel = Vec::new();
    let first = results.first().cloned().unwrap_or_default();
    let last = results.last().cloned().unwrap_or_default();
    funnel.push(
        json!({"stage": "input", "documents": first.input.documents, "tokens": first.input.tokens}),
    );
    for s in &config.stages {
        if matches!(s.options, super::stages::StageOptions::Tokenize(_)) {
            continue; // not a filter: its section is `tokens`
        }
        let kind = s.options.kind();
        let scope = serde_json::to_value(kind.scope).unwrap_or(Value::Null);
        if let Some(note) = &s.skipped {
            notes.push(format!("{}: {note}", s.name));
            stages.push(json!({
                "name": s.name, "type": kind.name, "scope": scope,
                "status": "skipped", "note": note,
            }));
            continue;
        }
        let empty = StageStats::default();
        let st = by_name.get(s.name.as_str()).copied().unwrap_or(&empty);
        for (lang, (seen, kept)) in &st.languages {
            let e = languages.entry(lang.clone()).or_insert((0, 0));
            e.0 += seen;
            e.1 += kept;
        }
        let rate = (st.seconds > 0.0).then(|| round(st.documents_in as f64 / st.seconds, 1));
        funnel
            .push(json!({"stage": s.name, "documents": st.documents_out, "tokens": st.tokens_out}));
        stages.push(json!({
            "name": s.name,
            "type": kind.name,
            "scope": scope,
            "status": "ran",
            "documents_in": st.documents_in,
            "documents_out": st.documents_out,
            "tokens_in": st.tokens_in,
            "tokens_out": st.tokens_out,
            "bytes_in": st.bytes_in,
            "bytes_out": st.bytes_out,
            "modified": st.modified,
            "dropped": st.dropped,
            "counters": st.counters,
            "seconds": round(st.seconds, 3),
            "docs_per_second": rate,
            "examples": st.examples,
        }));
    }
    let languages: serde_json::Map<String, Value> = languages
        .into_iter()
        .map(|(k, (d, kept))| (k, json!({"documents": d, "kept": kept})))
        .collect();
    json!({
        "tamis_version": env!("CARGO_PKG_VERSION"),
        "config": config.to_value(),
        "inputs": files.iter().map(|f| f.display.clone()).collect::<Vec<_>>(),
        "shards": files.len(),
        "records_skipped": first.skipped,
        "token_unit": unit,
        "stages": stages,
        "funnel": funnel,
        "histograms": {
            "unit": unit,
            "edges": hist_edges(),
            "before": first.input.histogram,
            "after": last.output.histogram,
        },
        "languages": languages,
        "notes": notes,
        "output": {
            "dir": config.output.join("data"),
            "files": outputs,
            "documents": last.output.documents,
            "tokens": last.output.tokens,
        },
        "seconds": round(seconds, 3),
    })
}

/// A plain-text summary of a report, one line per stage.
pub fn summary(report: &Value) -> String {
    let unit = report["token_unit"].as_str().unwrap_or("words");
    let mut lines = vec![format!(
        "tamis refine: {} shards -> {}",
        report["shards"],
        report["config"]["output"].as_str().unwrap_or("")
    )];
    let first = &report["funnel"][0];
    lines.push(format!(
        "  {:<14} {:>9} documents {:>11} {unit}",
        "input", first["documents"], first["tokens"]
    ));
    for e in report["stages"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or("");
        if e["status"] == "skipped" {
            lines.push(format!("  {name:<14} {}", e["note"].as_str().unwrap_or("")));
            continue;
        }
        let dropped: Vec<String> = e["dropped"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let dropped = if dropped.is_empty() {
            "none dropped".to_string()
        } else {
            dropped.join(", ")
        };
        let rate = e["docs_per_second"]
            .as_f64()
            .map_or(String::new(), |r| format!("{r:.0} docs/s"));
        lines.push(format!(
            "  {name:<14} {:>9} documents {:>11} {unit}  ({dropped}; {} modified; {rate})",
            e["documents_out"], e["tokens_out"], e["modified"]
        ));
    }
    lines.push(format!(
        "  report         {} and report.json",
        PathBuf::from(report["config"]["output"].as_str().unwrap_or(""))
            .join("report.html")
            .display()
    ));
    lines.join("\n")
}
