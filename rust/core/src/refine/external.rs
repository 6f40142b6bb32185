//! Stages that run outside Rust (fastText and torch models, in the Python package). They never
//! see records: each gets batches of documents (ids and current texts) and returns decisions,
//! new texts and fields to set; records are read, edited and written here.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::StageConfig;
use super::stages::StageOptions;
use crate::io::FieldValue;
use crate::{Error, Result};

/// The documents of one batch, as a stage sees them.
#[derive(Debug)]
pub struct StageBatch<'a> {
    /// Document ids.
    pub ids: Vec<&'a str>,
    /// Current texts (after the earlier stages of the step).
    pub texts: Vec<&'a str>,
    /// The record fields the stage asked for ([`ExternalStages::fields`]), per document: the
    /// field's JSON text (as set by an earlier stage of the step, if one did), or `None` when
    /// the record lacks it.
    pub fields: Vec<(String, Vec<Option<String>>)>,
}

/// Values of one field, per document of a batch (`None`: leave that document's field alone).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldColumn {
    /// `name`, or `object.name` for a field inside an object (`metadata.language`).
    pub path: String,
    /// One value per document.
    pub values: Vec<Option<FieldValue>>,
    /// Set only where the record lacks the field.
    pub if_absent: bool,
}

/// What a stage decided for a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Whether each document is kept.
    pub keep: Vec<bool>,
    /// Why each dropped document was dropped (ignored for kept ones; empty: the stage's name).
    pub reasons: Vec<String>,
    /// New texts (`None`: unchanged), when the stage edits texts.
    pub texts: Option<Vec<Option<String>>>,
    /// Fields to set on the records.
    pub fields: Vec<FieldColumn>,
    /// A short description of each decision, shown with the report's examples (`en 0.91`).
    pub details: Option<Vec<String>>,
    /// Stage counters, added up over the run.
    pub counters: BTreeMap<String, u64>,
}

impl Outcome {
    /// Refuse an outcome that does not cover exactly `n` documents.
    pub fn check(&self, stage: &str, n: usize) -> Result<()> {
        let bad = |what: &str, len: usize| {
            Err(Error::Config(format!(
                "stage {stage:?} returned {len} {what} for {n} documents"
            )))
        };
        if self.keep.len() != n {
            return bad("decisions", self.keep.len());
        }
        if !self.reasons.is_empty() && self.reasons.len() != n {
            return bad("reasons", self.reasons.len());
        }
        if let Some(t) = &self.texts {
            if t.len() != n {
                return bad("texts", t.len());
            }
        }
        if let Some(d) = &self.details {
            if d.len() != n {
                return bad("details", d.len());
            }
        }
        for f in &self.fields {
            if f.values.len() != n {
                return bad(&format!("values of {}", f.path), f.values.len());
            }
            if f.path.is_empty() || f.path.starts_with('.') || f.path.ends_with('.') {
                return Err(Error::Config(format!(
                    "stage {stage:?} set a field with an empty name ({:?})",
                    f.path
                )));
            }
        }
        Ok(())
    }
}

/// What [`ExternalStages::check`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// Run the stage; with new options where the check resolved something (e.g. the model
    /// `auto` to the directory it found).
    Run(Option<Value>),
    /// Skip the stage, saying why (an optional model or package that is not installed).
    Skip(String),
}

/// The implementations of the stages that run outside Rust (the registry's `python` stages).
pub trait ExternalStages: Send {
    /// Check a stage before any work: its packages are installed, its models exist and load.
    /// An error message here is a configuration error.
    fn check(&mut self, stage: &StageConfig) -> std::result::Result<Checked, String>;

    /// Decide for a batch of documents.
    fn process(&mut self, stage: &StageConfig, batch: &StageBatch<'_>) -> Result<Outcome>;

    /// Record fields the stage reads besides the id and the text (`url`, or `metadata.source`
    /// inside an object); they come with each batch.
    fn fields(&mut self, _stage: &StageConfig) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// Check a shard stage before any work: Rust stages (`language`) here, the others with
/// `external`.
pub fn check_stage(
    stage: &StageConfig,
    external: &mut dyn ExternalStages,
) -> std::result::Result<Checked, String> {
    match &stage.options {
        StageOptions::Language(o) => super::language::check(o),
        StageOptions::Decontaminate(o) => crate::index::decont::open_indexes(o)
            .map(|_| Checked::Run(None))
            .map_err(|e| e.to_string()),
        _ if stage.options.kind().python => external.check(stage),
        _ => Ok(Checked::Run(None)),
    }
}

/// No stage implementations: the standalone `tamis` binary. ProX stages looking for a model
/// are skipped; the other Python stages are configuration errors pointing to the Python
/// package.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoExternal;

impl ExternalStages for NoExternal {
    fn check(&mut self, stage: &StageConfig) -> std::result::Result<Checked, String> {
        let (extra, runs_with) = match &stage.options {
            StageOptions::ProxDoc(_) | StageOptions::ProxChunk(_) => ("prox", "torch"),
            _ => ("filters", "the fastText package"),
        };
        let why = format!(
            "runs in the Python package ({runs_with}): install it with `pip install \
             'tamis[{extra}]'` and run the `tamis` command it installs (or `python -m tamis ...`)"
        );
        match &stage.options {
            StageOptions::ProxDoc(o) | StageOptions::ProxChunk(o) if o.model == "auto" => {
                Ok(Checked::Skip(format!("skipped: ProX inference {why}")))
            }
            _ => Err(format!("this stage {why}")),
        }
    }

    fn process(&mut self, stage: &StageConfig, _batch: &StageBatch<'_>) -> Result<Outcome> {
        Err(Error::Config(format!(
            "stage {:?} has no implementation in this program",
            stage.name
        )))
    }
}
