//! The configuration of a refine run: read from a TOML file, a JSON object (Python) or the
//! command line's defaults, checked as a whole before any work. Errors name the key as the
//! configuration spells it (`stage 4 (dedup_near): threshold must be …`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::stages::{stage_type, StageOptions, STAGE_TYPES};
use crate::io::{Compression, OnError, MAX_THREADS};
use crate::options::{check_range, deserialize, OptionError, Surface};
use crate::{Error, Result};

/// Compression of the refined shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardCompression {
    /// `.jsonl.gz` (written without a timestamp, so reruns give the same bytes).
    #[default]
    Gzip,
    /// `.jsonl.zst`.
    Zstd,
    /// `.jsonl`.
    None,
}

impl ShardCompression {
    /// Every name, as options spell them.
    pub const NAMES: &'static [&'static str] = &["gzip", "zstd", "none"];

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ShardCompression::Gzip => ".jsonl.gz",
            ShardCompression::Zstd => ".jsonl.zst",
            ShardCompression::None => ".jsonl",
        }
    }

    /// The stream compression.
    pub fn compression(self) -> Compression {
        match self {
            ShardCompression::Gzip => Compression::Gzip,
            ShardCompression::Zstd => Compression::Zstd,
            ShardCompression::None => Compression::None,
        }
    }
}

/// The `[report]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportOptions {
    /// Examples of removed and modified documents kept per stage.
    pub examples: usize,
    /// Count tokens with this `tokenizer.json` (default: white-space separated words).
    pub tokenizer: Option<PathBuf>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            examples: 5,
            tokenizer: None,
        }
    }
}

/// The top-level keys of a configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopLevel {
    inputs: Vec<String>,
    output: Option<String>,
    #[serde(default = "text_key")]
    text_key: String,
    #[serde(default = "id_key")]
    id_key: String,
    #[serde(default)]
    compression: ShardCompression,
    #[serde(default)]
    threads: usize,
    #[serde(default)]
    on_error: OnError,
}

fn text_key() -> String {
    "text".into()
}

fn id_key() -> String {
    "id".into()
}

/// One configured stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StageConfig {
    /// Unique name (default: the type, then `type_N`).
    pub name: String,
    /// 1-based position in the configuration, for messages.
    pub position: usize,
    /// Type and options.
    pub options: StageOptions,
    /// Why the stage is skipped, when it is (a model or package that is not installed).
    pub skipped: Option<String>,
}

impl StageConfig {
    /// `stage 2 (language)`: how messages name the stage.
    pub fn label(&self) -> String {
        format!("stage {} ({})", self.position, self.options.kind().name)
    }

    /// `{"type", "name", ...options}`.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), self.options.kind().name.into());
        m.insert("name".into(), self.name.clone().into());
        if let Value::Object(o) = self.options.to_value() {
            m.extend(o);
        }
        Value::Object(m)
    }
}

/// A checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RefineConfig {
    /// Input files, directories and globs (relative ones resolved against the base directory).
    pub inputs: Vec<String>,
    /// The output directory.
    pub output: PathBuf,
    /// Field holding the text.
    pub text_key: String,
    /// Field holding the id.
    pub id_key: String,
    /// Compression of the refined shards.
    pub compression: ShardCompression,
    /// Worker threads (0: one per core); the output is the same for every value.
    pub threads: usize,
    /// Fail on the first bad record, or skip and count bad records (kept in `OUTDIR/rejects/`).
    pub on_error: OnError,
    /// The `[report]` table.
    pub report: ReportOptions,
    /// The stages, in order.
    pub stages: Vec<StageConfig>,
}

fn config_error(prefix: &str, e: OptionError) -> Error {
    Error::Options(OptionError {
        fields: Vec::new(),
        message: e.render(&Surface::Config(prefix.to_string())),
    })
}

fn plain(message: impl Into<String>) -> Error {
    Error::Options(OptionError {
        fields: Vec::new(),
        message: message.into(),
    })
}

/// `base/p`, with a leading `~/` taken from `$HOME`; absolute paths stay as they are.
pub fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let expanded = match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    };
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
}

impl RefineConfig {
    /// Read a TOML configuration file; relative paths are relative to its directory. `output`,
    /// when given, replaces the file's `output`.
    pub fn from_toml_file(path: &Path, output: Option<&Path>) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| plain(format!("{}: cannot read: {e}", path.display())))?;
        let value: Value = toml::from_str(&text)
            .map_err(|e| plain(format!("{}: invalid TOML: {}", path.display(), e.message())))?;
        let mut value = value;
        if let (Some(o), Value::Object(m)) = (output, &mut value) {
            m.insert("output".into(), o.display().to_string().into());
        }
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::from_value(value, base)
    }

    /// Check a configuration given as a JSON object (what a TOML file parses to); relative paths
    /// are resolved against `base`.
    pub fn from_value(raw: Value, base: &Path) -> Result<Self> {
        let Value::Object(mut raw) = raw else {
            return Err(plain("config: the configuration must be a table"));
        };
        let stages_raw = raw.remove("stage").or_else(|| raw.remove("stages"));
        let report_raw = raw
            .remove("report")
            .unwrap_or_else(|| Value::Object(Map::new()));
        if !raw.contains_key("inputs") {
            return Err(plain("config: inputs is required"));
        }
        let top: TopLevel =
            deserialize(Value::Object(raw)).map_err(|e| config_error("config", e))?;
        if top.inputs.is_empty() {
            return Err(plain("config: inputs is empty"));
        }
        let Some(output) = top.output.filter(|o| !o.is_empty()) else {
            return Err(plain("config: output is required"));
        };
        check_range("threads", top.threads, None, Some(MAX_THREADS))
            .map_err(|e| config_error("config", e))?;
        if top.id_key == top.text_key || top.text_key.is_empty() {
            return Err(plain(
                "config: text_key and id_key must name two different fields",
            ));
        }
        let mut report: ReportOptions =
            deserialize(report_raw).map_err(|e| config_error("[report]", e))?;
        if let Some(t) = &report.tokenizer {
            let t = resolve_path(base, &t.to_string_lossy());
            if !t.is_file() {
                return Err(plain(format!(
                    "[report]: tokenizer '{}': no such file",
                    t.display()
                )));
            }
            report.tokenizer = Some(t);
        }
        check_range("examples", report.examples, None, Some(1000))
            .map_err(|e| config_error("[report]", e))?;
        let Some(stages_raw) = stages_raw else {
            return Err(plain(
                "config: no [[stage]] tables (an empty list `stage = []` only copies the input)",
            ));
        };
        let Value::Array(stages_raw) = stages_raw else {
            return Err(plain("config: stage must be a list of tables ([[stage]])"));
        };
        let mut stages: Vec<StageConfig> = Vec::new();
        for (i, s) in stages_raw.into_iter().enumerate() {
            let position = i + 1;
            let Value::Object(mut table) = s else {
                return Err(plain("config: stage must be a list of tables ([[stage]])"));
            };
            let typ = table.remove("type");
            let Some(kind) = typ.as_ref().and_then(Value::as_str).and_then(stage_type) else {
                let known: Vec<&str> = STAGE_TYPES.iter().map(|t| t.name).collect();
                let got = typ.map_or_else(
                    || "none".to_string(),
                    |t| match t {
                        Value::String(s) => format!("'{s}'"),
                        other => other.to_string(),
                    },
                );
                return Err(plain(format!(
                    "stage {position}: unknown stage type {got} (known: {})",
                    known.join(", ")
                )));
            };
            let name = match table.remove("name") {
                None => {
                    if stages.iter().any(|s| s.name == kind.name) {
                        format!("{}_{position}", kind.name)
                    } else {
                        kind.name.to_string()
                    }
                }
                Some(Value::String(n))
                    if !n.is_empty()
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    n
                }
                Some(other) => {
                    return Err(plain(format!(
                        "stage {position}: name must be letters, digits or _, got {other}"
                    )))
                }
            };
            if stages.iter().any(|s| s.name == name) {
                return Err(plain(format!(
                    "stage {position}: name '{name}' is used twice"
                )));
            }
            let label = format!("stage {position} ({})", kind.name);
            let mut options = kind.parse(&table).map_err(|e| config_error(&label, e))?;
            resolve_stage_paths(&mut options, base);
            stages.push(StageConfig {
                name,
                position,
                options,
                skipped: None,
            });
        }
        // Shards are made of the refined corpus: tokenization comes last, once.
        if let Some(t) = stages
            .iter()
            .position(|s| matches!(s.options, StageOptions::Tokenize(_)))
        {
            if t + 1 != stages.len() {
                return Err(plain(format!(
                    "stage {} (tokenize): tokenize must be the last stage",
                    stages[t].position
                )));
            }
            if let StageOptions::Tokenize(o) = &stages[t].options {
                if !o.tokenizer.is_file() {
                    return Err(plain(format!(
                        "stage {} (tokenize): tokenizer '{}': no such file",
                        stages[t].position,
                        o.tokenizer.display()
                    )));
                }
            }
        }
        Ok(RefineConfig {
            inputs: top
                .inputs
                .iter()
                .map(|p| resolve_path(base, p).display().to_string())
                .collect(),
            output: resolve_path(base, &output),
            text_key: top.text_key,
            id_key: top.id_key,
            compression: top.compression,
            threads: top.threads,
            on_error: top.on_error,
            report,
            stages,
        })
    }

    /// Check the stages that run outside Rust with `external` (their packages and models): a
    /// stage that cannot run but may be skipped gets its note ([`StageConfig::skipped`]), one
    /// whose check resolved something (a model `auto`) gets its new options. Errors are
    /// configuration errors naming the stage.
    pub fn check_stages(&mut self, external: &mut dyn super::ExternalStages) -> Result<()> {
        use super::Checked;
        for stage in &mut self.stages {
            let kind = stage.options.kind();
            match super::external::check_stage(stage, external) {
                Ok(Checked::Run(None)) => {}
                Ok(Checked::Run(Some(Value::Object(m)))) => {
                    stage.options = kind
                        .parse(&m)
                        .map_err(|e| plain(format!("{}: {}", stage.label(), e)))?;
                }
                Ok(Checked::Run(Some(_))) => {
                    return Err(plain(format!(
                        "{}: bad options from its check",
                        stage.label()
                    )))
                }
                Ok(Checked::Skip(note)) => stage.skipped = Some(note),
                Err(message) => return Err(plain(format!("{}: {message}", stage.label()))),
            }
        }
        Ok(())
    }

    /// The configuration as plain data (what `report.json` records).
    pub fn to_value(&self) -> Value {
        serde_json::json!({
            "inputs": self.inputs,
            "output": self.output,
            "text_key": self.text_key,
            "id_key": self.id_key,
            "compression": self.compression,
            "threads": self.threads,
            "on_error": self.on_error,
            "report": self.report,
            "stages": self.stages.iter().map(StageConfig::to_value).collect::<Vec<_>>(),
        })
    }
}

fn resolve_stage_paths(options: &mut StageOptions, base: &Path) {
    let fix = |p: &mut Option<PathBuf>| {
        if let Some(x) = p {
            *x = resolve_path(base, &x.to_string_lossy());
        }
    };
    match options {
        StageOptions::Language(o) => fix(&mut o.model),
        StageOptions::Quality(o) => fix(&mut o.model),
        StageOptions::DedupNear(o) => {
            fix(&mut o.clusters);
            fix(&mut o.spill_dir);
            for p in &mut o.against {
                *p = resolve_path(base, &p.to_string_lossy());
            }
        }
        StageOptions::ProxDoc(o) | StageOptions::ProxChunk(o) => {
            if o.model != "auto" {
                let p = resolve_path(base, &o.model);
                // A relative name that is no local path stays as given (the check reports it).
                if p.exists() {
                    o.model = p.display().to_string();
                }
            }
        }
        StageOptions::Tokenize(o) => {
            o.tokenizer = resolve_path(base, &o.tokenizer.to_string_lossy());
        }
        StageOptions::DedupSubstring(o) => {
            fix(&mut o.tokenizer);
            fix(&mut o.spans);
            fix(&mut o.spill_dir);
        }
        StageOptions::DedupExact(o) => {
            for p in &mut o.against {
                *p = resolve_path(base, &p.to_string_lossy());
            }
        }
        StageOptions::Decontaminate(o) => {
            for p in &mut o.against {
                *p = resolve_path(base, &p.to_string_lossy());
            }
        }
        StageOptions::DedupLines(o) => {
            for p in &mut o.against {
                *p = resolve_path(base, &p.to_string_lossy());
            }
        }
    }
}

/// What `tamis refine INPUT... -o OUTDIR` takes besides inputs and output.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuickOptions {
    /// Stages to run (default: [`DEFAULT_STAGES`], plus `quality` with a quality model).
    pub stages: Option<Vec<String>>,
    /// Languages to keep (default: annotate only).
    pub languages: Vec<String>,
    /// Smallest language score (default 0.65 with languages, else 0).
    pub min_score: Option<f64>,
    /// A fastText quality classifier: adds a `quality` stage.
    pub quality_model: Option<String>,
    /// The quality classifier's label to keep.
    pub keep_label: Option<String>,
    /// Smallest quality score.
    pub threshold: Option<f64>,
    /// The ProX doc refining model.
    pub prox_doc_model: Option<String>,
    /// The ProX chunk refining model.
    pub prox_chunk_model: Option<String>,
    /// Field holding the text.
    pub text_key: Option<String>,
    /// Field holding the id.
    pub id_key: Option<String>,
    /// Shard compression.
    pub compression: Option<ShardCompression>,
    /// `fail` or `skip`.
    pub on_error: Option<OnError>,
    /// Worker threads.
    pub threads: Option<usize>,
}

/// The stages of `tamis refine INPUT... -o OUTDIR`.
pub const DEFAULT_STAGES: &[&str] = &[
    "dedup_exact",
    "language",
    "dedup_lines",
    "dedup_near",
    "prox_doc",
    "prox_chunk",
];

impl QuickOptions {
    /// The configuration these options stand for, as a table (checked by
    /// [`RefineConfig::from_value`]): exact dedup (white space normalized), language ID
    /// (filtering only with `languages`; skipped with a note where fastText is missing when it
    /// only annotates), a quality filter with `quality_model`, line dedup, near dedup, and the
    /// ProX stages when their models are found.
    pub fn to_config(&self, inputs: &[String], output: &str) -> Value {
        let mut chosen: Vec<String> = match &self.stages {
            Some(s) => s.clone(),
            None => DEFAULT_STAGES.iter().map(|s| s.to_string()).collect(),
        };
        if self.quality_model.is_some() && self.stages.is_none() {
            let at = chosen
                .iter()
                .position(|s| s == "language")
                .map_or(0, |i| i + 1);
            chosen.insert(at, "quality".into());
        }
        let stages: Vec<Value> = chosen
            .iter()
            .map(|typ| {
                let mut s = Map::new();
                s.insert("type".into(), typ.clone().into());
                match typ.as_str() {
                    "language" => {
                        let filtering = !self.languages.is_empty();
                        s.insert("languages".into(), self.languages.clone().into());
                        let min = self.min_score.unwrap_or(if filtering { 0.65 } else { 0.0 });
                        s.insert("min_score".into(), min.into());
                        s.insert("if_available".into(), (!filtering).into());
                    }
                    "quality" => {
                        if let Some(m) = &self.quality_model {
                            s.insert("model".into(), m.clone().into());
                        }
                        if let Some(l) = &self.keep_label {
                            s.insert("keep_label".into(), l.clone().into());
                        }
                        if let Some(t) = self.threshold {
                            s.insert("threshold".into(), t.into());
                        }
                    }
                    "prox_doc" | "prox_chunk" => {
                        let m = if typ == "prox_doc" {
                            &self.prox_doc_model
                        } else {
                            &self.prox_chunk_model
                        };
                        if let Some(m) = m {
                            s.insert("model".into(), m.clone().into());
                        }
                    }
                    _ => {}
                }
                Value::Object(s)
            })
            .collect();
        let mut top = serde_json::json!({
            "inputs": inputs,
            "output": output,
            "stage": stages,
        });
        if let Value::Object(m) = &mut top {
            let mut set = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            };
            set("text_key", self.text_key.clone().map(Value::from));
            set("id_key", self.id_key.clone().map(Value::from));
            set(
                "compression",
                self.compression.and_then(|c| serde_json::to_value(c).ok()),
            );
            set(
                "on_error",
                self.on_error.and_then(|c| serde_json::to_value(c).ok()),
            );
            set("threads", self.threads.map(Value::from));
        }
        top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> std::result::Result<RefineConfig, String> {
        RefineConfig::from_value(v, Path::new("/base")).map_err(|e| e.to_string())
    }

    #[test]
    fn errors_use_the_configurations_words() {
        let cfg =
            |stage: Value| serde_json::json!({"inputs": ["in"], "output": "out", "stage": [stage]});
        let err = |stage: Value| parse(cfg(stage)).unwrap_err();
        assert_eq!(
            err(serde_json::json!({"type": "dedup_near", "threshold": 1.0})),
            "stage 1 (dedup_near): threshold must be greater than 0 and less than 1, got 1"
        );
        assert_eq!(
            err(serde_json::json!({"type": "dedup_near", "bands": 20, "rows": 8})),
            "stage 1 (dedup_near): bands × rows = 20 × 8 needs 160 permutations, more than num_perm = 112"
        );
        assert_eq!(
            err(serde_json::json!({"type": "language", "min_scor": 0.5})),
            "stage 1 (language): unknown parameter 'min_scor' (known: languages, min_score, model, batch_size, if_available)"
        );
        assert_eq!(
            err(serde_json::json!({"type": "quality"})),
            "stage 1 (quality): model is required"
        );
        assert!(err(serde_json::json!({"type": "dedup_fuzzy"}))
            .starts_with("stage 1: unknown stage type 'dedup_fuzzy' (known: dedup_exact,"));
        assert!(
            err(serde_json::json!({"type": "prox_doc", "constrain": false}))
                .contains("unknown parameter 'constrain'")
        );
        let twice = serde_json::json!({"inputs": ["in"], "output": "o", "stage": [
            {"type": "dedup_exact", "name": "x"}, {"type": "dedup_near", "name": "x"}]});
        assert_eq!(parse(twice).unwrap_err(), "stage 2: name 'x' is used twice");
        let top =
            serde_json::json!({"inputs": ["in"], "output": "o", "threads": 5000, "stage": []});
        assert_eq!(
            parse(top).unwrap_err(),
            "config: threads must be at most 1024, got 5000"
        );
    }

    #[test]
    fn defaults_paths_and_names() {
        let c = parse(
            serde_json::json!({"inputs": ["in", "/abs"], "output": "out", "stage": [
            {"type": "dedup_exact"}, {"type": "dedup_lines"}, {"type": "dedup_exact"}]}),
        )
        .expect("config");
        assert_eq!(c.inputs, ["/base/in", "/abs"]);
        assert_eq!(c.output, PathBuf::from("/base/out"));
        let names: Vec<&str> = c.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["dedup_exact", "dedup_lines", "dedup_exact_3"]);
        match &c.stages[0].options {
            StageOptions::DedupExact(o) => {
                assert_eq!(o.normalize, crate::text::Normalize::Whitespace)
            }
            other => panic!("{other:?}"),
        }
        match &c.stages[1].options {
            StageOptions::DedupLines(o) => assert_eq!(o.min_line_chars, 10),
            other => panic!("{other:?}"),
        }
    }
}
