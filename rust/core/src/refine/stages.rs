//! The stage registry: each stage type of `tamis refine` declared once, with its scope, where it
//! runs, its options type, the reasons it removes documents for and the defaults it sets apart
//! from its capability's own. Python reads it (`tamis._core.stage_types()`) for the datatrove
//! conversion and its own stage implementations.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dedup::near::NearOptions;
use crate::dedup::substring::SubstringOptions;
use crate::dedup::{ExactOptions, LinesOptions};
use crate::index::decont::DecontOptions;
use crate::options::{check_closed, check_range, OptionError, Options};
use crate::prox::Mode;
use crate::tokenize::TokenizeOptions;

/// Whether a stage needs one document at a time or the whole corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Runs on each shard (input file) on its own, batch by batch.
    Shard,
    /// Needs every document of every shard (the dedups).
    Global,
}

/// Options of the `language` stage: fastText language identification, run in Rust
/// ([`super::language`]) on the built-in `lid.176.ftz` or a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LanguageOptions {
    /// Languages to keep (fastText labels without `__label__`, e.g. `en`); empty keeps all and
    /// only annotates.
    pub languages: Vec<String>,
    /// Smallest score of the predicted language that keeps a document.
    pub min_score: f64,
    /// A fastText language-ID model file; default: the built-in `lid.176.ftz`.
    pub model: Option<PathBuf>,
    /// Documents per batch (the datatrove step's batch; `tamis refine` uses its own).
    pub batch_size: usize,
    /// Skip the stage (with a note) when `model` names a file that does not exist (the
    /// built-in model is always there).
    pub if_available: bool,
}

impl Default for LanguageOptions {
    fn default() -> Self {
        LanguageOptions {
            languages: Vec::new(),
            min_score: 0.65,
            model: None,
            batch_size: 1024,
            if_available: false,
        }
    }
}

impl Options for LanguageOptions {
    fn validate(&self) -> Result<(), OptionError> {
        check_closed("min_score", self.min_score, 0.0, 1.0)?;
        check_range("batch_size", self.batch_size, Some(1), Some(1 << 20))?;
        if self.languages.iter().any(|l| l.is_empty()) {
            return Err(OptionError::new("languages", "must not hold an empty name"));
        }
        Ok(())
    }
}

/// Options of the `tokenize` stage: the refined corpus into training shards in
/// `OUTPUT/tokens/`, as `tamis tokenize` writes them (its options, plus the `tokenizer`).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizeStageOptions {
    /// The `tokenizer.json` (required).
    pub tokenizer: PathBuf,
    /// Format, BOS/EOS, shuffle, shard size, dtype.
    pub shards: TokenizeOptions,
}

impl TokenizeStageOptions {
    fn parse(v: Value) -> Result<StageOptions, OptionError> {
        let Value::Object(mut m) = v else {
            return Err(OptionError::new("tokenize", "must be a table"));
        };
        let tokenizer = match m.remove("tokenizer") {
            Some(Value::String(t)) if !t.is_empty() => PathBuf::from(t),
            Some(Value::Null) | None => {
                return Err(OptionError::new(
                    "tokenizer",
                    "is required (a tokenizer.json)",
                ))
            }
            Some(other) => {
                return Err(OptionError::new(
                    "tokenizer",
                    format!("must be a path, got {other}"),
                ))
            }
        };
        let shards = TokenizeOptions::from_value(Value::Object(m))?;
        Ok(StageOptions::Tokenize(TokenizeStageOptions {
            tokenizer,
            shards,
        }))
    }

    fn to_value(&self) -> Value {
        let mut v = self.shards.to_value();
        if let Value::Object(m) = &mut v {
            m.insert(
                "tokenizer".into(),
                Value::from(self.tokenizer.display().to_string()),
            );
        }
        v
    }

    fn defaults() -> Value {
        let mut v = TokenizeOptions::defaults();
        if let Value::Object(m) = &mut v {
            m.insert("tokenizer".into(), Value::Null);
        }
        v
    }
}

/// Options of the `quality` stage: a fastText classifier (Python, `tamis[filters]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityOptions {
    /// The classifier (required), e.g. one trained with `tamis filter train`.
    pub model: Option<PathBuf>,
    /// The label whose probability is the score.
    pub keep_label: String,
    /// Smallest score that keeps a document.
    pub threshold: f64,
    /// Documents per fastText call.
    pub batch_size: usize,
}

impl Default for QualityOptions {
    fn default() -> Self {
        QualityOptions {
            model: None,
            keep_label: "hq".into(),
            threshold: 0.5,
            batch_size: 1024,
        }
    }
}

impl Options for QualityOptions {
    fn validate(&self) -> Result<(), OptionError> {
        if self.model.is_none() {
            return Err(OptionError::new("model", "is required"));
        }
        check_closed("threshold", self.threshold, 0.0, 1.0)?;
        check_range("batch_size", self.batch_size, Some(1), Some(1 << 20))?;
        if self.keep_label.is_empty() {
            return Err(OptionError::new("keep_label", "must name a label"));
        }
        Ok(())
    }
}

/// Inference backend of the ProX refining models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// torch + transformers in this process.
    #[default]
    Transformers,
    /// vLLM in this process.
    Vllm,
    /// Any OpenAI-compatible server (`base_url`).
    Openai,
}

/// Weights' type for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// bfloat16.
    Bf16,
    /// float16.
    Fp16,
    /// float32.
    Fp32,
}

/// Options of the `prox_doc` and `prox_chunk` stages: a ProX refining model (Python,
/// `tamis[prox]`). `doc_fast_tokens` is for `prox_doc` only, `constrain` for `prox_chunk` only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxModelOptions {
    /// A local model directory, or `auto`: `$TAMIS_PROX_DOC_MODEL` / `$TAMIS_PROX_CHUNK_MODEL`
    /// or the released model in the Hugging Face cache (never downloaded); skipped when none.
    pub model: String,
    /// How programs are read.
    pub mode: Mode,
    /// Where the model runs.
    pub backend: Backend,
    /// The server of the `openai` backend (e.g. `http://localhost:8000/v1`).
    pub base_url: Option<String>,
    /// `cuda`, `cuda:N` or `cpu` (default: cuda when available).
    pub device: Option<String>,
    /// Weights' type (default: bf16 on GPU, fp32 on CPU).
    pub dtype: Option<Dtype>,
    /// Tokens per generation batch (prompt and generated).
    pub batch_tokens: usize,
    /// Documents refined per call.
    pub window: usize,
    /// Field that receives the original text of an edited document, unless the record has it
    /// ("" for none).
    pub raw_key: String,
    /// `prox_doc`: decide keep/drop from this many decoding steps instead of a full generation.
    pub doc_fast_tokens: Option<usize>,
    /// `prox_chunk`: decode under the program grammar in strict mode (default true).
    pub constrain: Option<bool>,
    /// New tokens per generation (default: the reference's 2000 for documents, 256 for chunks).
    pub max_new_tokens: Option<usize>,
}

impl Default for ProxModelOptions {
    fn default() -> Self {
        ProxModelOptions {
            model: "auto".into(),
            mode: Mode::Compat,
            backend: Backend::Transformers,
            base_url: None,
            device: None,
            dtype: None,
            batch_tokens: 65536,
            window: 4096,
            raw_key: "raw_content".into(),
            doc_fast_tokens: None,
            constrain: None,
            max_new_tokens: None,
        }
    }
}

impl Options for ProxModelOptions {
    fn validate(&self) -> Result<(), OptionError> {
        check_range("batch_tokens", self.batch_tokens, Some(1), Some(1 << 30))?;
        check_range("window", self.window, Some(1), Some(1 << 24))?;
        if let Some(n) = self.doc_fast_tokens {
            check_range("doc_fast_tokens", n, Some(1), Some(1 << 16))?;
        }
        if let Some(n) = self.max_new_tokens {
            check_range("max_new_tokens", n, Some(1), Some(1 << 20))?;
        }
        if self.model.is_empty() {
            return Err(OptionError::new("model", "must be a directory or auto"));
        }
        if self.backend == Backend::Openai && self.base_url.is_none() {
            return Err(OptionError::with_fields(
                &["backend", "base_url"],
                "{0} openai needs {1} (e.g. http://localhost:8000/v1)",
            ));
        }
        Ok(())
    }
}

/// A stage's options, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum StageOptions {
    /// `dedup_exact`.
    DedupExact(ExactOptions),
    /// `dedup_lines`.
    DedupLines(LinesOptions),
    /// `dedup_near`.
    DedupNear(NearOptions),
    /// `dedup_substring`.
    DedupSubstring(SubstringOptions),
    /// `language`.
    Language(LanguageOptions),
    /// `quality`.
    Quality(QualityOptions),
    /// `prox_doc`.
    ProxDoc(ProxModelOptions),
    /// `prox_chunk`.
    ProxChunk(ProxModelOptions),
    /// `decontaminate`.
    Decontaminate(DecontOptions),
    /// `tokenize` (the last stage).
    Tokenize(TokenizeStageOptions),
}

impl StageOptions {
    /// The options as a JSON object (without `type` and `name`).
    pub fn to_value(&self) -> Value {
        match self {
            StageOptions::DedupExact(o) => o.to_value(),
            StageOptions::DedupLines(o) => o.to_value(),
            StageOptions::DedupNear(o) => o.to_value(),
            StageOptions::DedupSubstring(o) => o.to_value(),
            StageOptions::Language(o) => o.to_value(),
            StageOptions::Quality(o) => o.to_value(),
            StageOptions::Tokenize(o) => o.to_value(),
            StageOptions::Decontaminate(o) => o.to_value(),
            StageOptions::ProxDoc(o) | StageOptions::ProxChunk(o) => {
                let mut v = o.to_value();
                if let Value::Object(m) = &mut v {
                    // Each ProX stage has one of the two stage-specific options.
                    let drop = if matches!(self, StageOptions::ProxDoc(_)) {
                        "constrain"
                    } else {
                        "doc_fast_tokens"
                    };
                    m.remove(drop);
                }
                v
            }
        }
    }

    /// The registry entry of this stage's type.
    pub fn kind(&self) -> &'static StageType {
        let name = match self {
            StageOptions::DedupExact(_) => "dedup_exact",
            StageOptions::DedupLines(_) => "dedup_lines",
            StageOptions::DedupNear(_) => "dedup_near",
            StageOptions::DedupSubstring(_) => "dedup_substring",
            StageOptions::Language(_) => "language",
            StageOptions::Quality(_) => "quality",
            StageOptions::ProxDoc(_) => "prox_doc",
            StageOptions::ProxChunk(_) => "prox_chunk",
            StageOptions::Tokenize(_) => "tokenize",
            StageOptions::Decontaminate(_) => "decontaminate",
        };
        stage_type(name).unwrap_or(&STAGE_TYPES[0])
    }
}

/// One stage type of `tamis refine`.
#[derive(Debug)]
pub struct StageType {
    /// The `type` of a `[[stage]]` table.
    pub name: &'static str,
    /// Shard or global.
    pub scope: Scope,
    /// Whether it runs in the Python package (fastText, torch) rather than in Rust.
    pub python: bool,
    /// Reasons it removes documents for (`{name}` stands for the stage's name).
    pub reasons: &'static [&'static str],
    /// The field it writes each document's language to, for the report's languages table.
    pub language_field: Option<&'static str>,
    /// Defaults of this stage that differ from its capability's own options.
    pub refine_defaults: &'static [(&'static str, DefaultValue)],
    parse: fn(Value) -> Result<StageOptions, OptionError>,
    defaults: fn() -> Value,
}

/// A default value in the registry.
#[derive(Debug, Clone, Copy)]
pub enum DefaultValue {
    /// A string.
    Str(&'static str),
    /// An integer.
    Int(i64),
}

impl StageType {
    /// Parse a stage table's options (without `type` and `name`), with this stage's defaults.
    pub fn parse(&self, given: &Map<String, Value>) -> Result<StageOptions, OptionError> {
        let mut table = Map::new();
        for (k, v) in self.refine_defaults {
            let v = match v {
                DefaultValue::Str(s) => Value::from(*s),
                DefaultValue::Int(i) => Value::from(*i),
            };
            table.insert((*k).to_string(), v);
        }
        for (k, v) in given {
            table.insert(k.clone(), v.clone());
        }
        (self.parse)(Value::Object(table))
    }

    /// Every option of this stage with its default, as JSON.
    pub fn defaults(&self) -> Value {
        let mut v = (self.defaults)();
        if let Value::Object(m) = &mut v {
            for (k, d) in self.refine_defaults {
                let d = match d {
                    DefaultValue::Str(s) => Value::from(*s),
                    DefaultValue::Int(i) => Value::from(*i),
                };
                m.insert((*k).to_string(), d);
            }
        }
        v
    }

    /// The reasons this stage removes documents for, for a stage called `name`.
    pub fn reasons_for(&self, name: &str) -> Vec<String> {
        self.reasons
            .iter()
            .map(|r| r.replace("{name}", name))
            .collect()
    }
}

fn prox_stage(v: Value, doc: bool) -> Result<StageOptions, OptionError> {
    let other = if doc { "constrain" } else { "doc_fast_tokens" };
    if let Value::Object(m) = &v {
        if m.contains_key(other) {
            return Err(OptionError {
                fields: Vec::new(),
                message: format!(
                    "unknown parameter '{other}' (it belongs to the {} stage)",
                    if doc { "prox_chunk" } else { "prox_doc" }
                ),
            });
        }
    }
    let o = ProxModelOptions::from_value(v)?;
    Ok(if doc {
        StageOptions::ProxDoc(o)
    } else {
        StageOptions::ProxChunk(o)
    })
}

fn prox_defaults(doc: bool) -> Value {
    let o = ProxModelOptions::default();
    if doc {
        StageOptions::ProxDoc(o).to_value()
    } else {
        StageOptions::ProxChunk(o).to_value()
    }
}

/// Every stage type, in the order of the default pipeline.
pub static STAGE_TYPES: &[StageType] = &[
    StageType {
        name: "dedup_exact",
        scope: Scope::Global,
        python: false,
        reasons: &["duplicate", "indexed_duplicate"],
        language_field: None,
        // White-space variants of a document are the same document in a refined corpus.
        refine_defaults: &[("normalize", DefaultValue::Str("whitespace"))],
        parse: |v| Ok(StageOptions::DedupExact(ExactOptions::from_value(v)?)),
        defaults: ExactOptions::defaults,
    },
    StageType {
        name: "decontaminate",
        scope: Scope::Shard,
        python: false,
        reasons: &["contaminated"],
        language_field: None,
        refine_defaults: &[],
        parse: |v| {
            let o = DecontOptions::from_value(v)?;
            if o.matches.is_some() {
                return Err(OptionError::new(
                    "matches",
                    "is for `tamis decontaminate`; in refine the report shows examples and \
                     --stats-json the counts",
                ));
            }
            Ok(StageOptions::Decontaminate(o))
        },
        defaults: || {
            let mut v = DecontOptions::defaults();
            if let Value::Object(m) = &mut v {
                m.remove("matches");
            }
            v
        },
    },
    StageType {
        name: "language",
        scope: Scope::Shard,
        python: false,
        reasons: &["language", "language_score"],
        language_field: Some("metadata.language"),
        refine_defaults: &[],
        parse: |v| Ok(StageOptions::Language(LanguageOptions::from_value(v)?)),
        defaults: LanguageOptions::defaults,
    },
    StageType {
        name: "quality",
        scope: Scope::Shard,
        python: true,
        reasons: &["{name}_score"],
        language_field: None,
        refine_defaults: &[],
        parse: |v| Ok(StageOptions::Quality(QualityOptions::from_value(v)?)),
        defaults: QualityOptions::defaults,
    },
    StageType {
        name: "dedup_lines",
        scope: Scope::Global,
        python: false,
        reasons: &["empty_after_line_dedup"],
        language_field: None,
        // Short lines such as `}` or `)` survive line dedup in a refined corpus.
        refine_defaults: &[("min_line_chars", DefaultValue::Int(10))],
        parse: |v| Ok(StageOptions::DedupLines(LinesOptions::from_value(v)?)),
        defaults: LinesOptions::defaults,
    },
    StageType {
        name: "dedup_near",
        scope: Scope::Global,
        python: false,
        reasons: &["near_duplicate", "indexed_duplicate"],
        language_field: None,
        refine_defaults: &[],
        parse: |v| {
            let o = NearOptions::from_value(v)?;
            o.params()?;
            Ok(StageOptions::DedupNear(o))
        },
        defaults: NearOptions::defaults,
    },
    StageType {
        name: "dedup_substring",
        scope: Scope::Global,
        python: false,
        reasons: &["empty_after_substring_dedup", "short_after_substring_dedup"],
        language_field: None,
        refine_defaults: &[],
        parse: |v| {
            Ok(StageOptions::DedupSubstring(SubstringOptions::from_value(
                v,
            )?))
        },
        defaults: SubstringOptions::defaults,
    },
    StageType {
        name: "prox_doc",
        scope: Scope::Shard,
        python: true,
        reasons: &["prox_doc"],
        language_field: None,
        refine_defaults: &[],
        parse: |v| prox_stage(v, true),
        defaults: || prox_defaults(true),
    },
    StageType {
        name: "prox_chunk",
        scope: Scope::Shard,
        python: true,
        reasons: &["prox_chunk"],
        language_field: None,
        refine_defaults: &[],
        parse: |v| prox_stage(v, false),
        defaults: || prox_defaults(false),
    },
    StageType {
        name: "tokenize",
        scope: Scope::Global,
        python: false,
        reasons: &[],
        language_field: None,
        refine_defaults: &[],
        parse: TokenizeStageOptions::parse,
        defaults: TokenizeStageOptions::defaults,
    },
];

/// The registry entry named `name`.
pub fn stage_type(name: &str) -> Option<&'static StageType> {
    STAGE_TYPES.iter().find(|t| t.name == name)
}

/// The registry as JSON: per type, its scope, runtime, reasons, language field and defaults.
pub fn registry_json() -> Value {
    Value::Array(
        STAGE_TYPES
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "scope": t.scope,
                    "python": t.python,
                    "reasons": t.reasons,
                    "language_field": t.language_field,
                    "defaults": t.defaults(),
                })
            })
            .collect(),
    )
}
