//! The stages of a refine step, wrapped so that their decisions feed the report: [`Observed`]
//! around a Rust stage (the dedups), [`Chain`] running the external stages of a shard step one
//! after another on each batch.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rayon::prelude::*;

use super::config::StageConfig;
use super::external::{ExternalStages, Outcome, StageBatch};
use super::language::LanguageStage;
use super::stages::StageOptions;
use super::stats::{Population, StageStats, TokenCounter};
use crate::index::decont::{decide_text, find_hits, open_indexes, DecontMode, TextDecision};
use crate::index::Index;
use crate::io::{Batch, Doc, DocSource, FieldEdit, FieldValue, JsonFields};
use crate::pipeline::{Decision, Stage};
use crate::{Result, Stats};

/// What a step measured: documents before and after, and each stage's counts.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    pub input: Population,
    pub output: Population,
    pub stages: Vec<StageStats>,
}

/// The new text of a decision, if it has one.
fn new_text(d: &Decision) -> Option<&str> {
    match d {
        Decision::Rewrite(t) => Some(t),
        Decision::Edit { text: Some(t), .. } => Some(t),
        _ => None,
    }
}

/// A Rust stage whose decisions are counted for the report.
pub(crate) struct Observed<'c, S: Stage> {
    pub inner: S,
    counter: &'c TokenCounter,
    pool: Arc<rayon::ThreadPool>,
    examples: usize,
    pub measured: Measured,
    started: Option<Instant>,
}

impl<'c, S: Stage> Observed<'c, S> {
    pub fn new(
        inner: S,
        counter: &'c TokenCounter,
        pool: Arc<rayon::ThreadPool>,
        examples: usize,
    ) -> Self {
        Observed {
            inner,
            counter,
            pool,
            examples,
            measured: Measured {
                stages: vec![StageStats::default()],
                ..Measured::default()
            },
            started: None,
        }
    }

    fn record(&mut self, doc: &Doc<'_>, tokens: u32, decision: &Decision, new_tokens: Option<u32>) {
        let st = &mut self.measured.stages[0];
        if matches!(decision, Decision::Reject(_)) {
            return;
        }
        self.measured.input.add(tokens);
        st.documents_in += 1;
        st.tokens_in += u64::from(tokens);
        st.bytes_in += doc.text.len() as u64;
        match decision {
            Decision::Remove(reason) => {
                st.drop_doc(reason, &doc.id, &doc.text, "", self.examples);
            }
            d => {
                let (text, tokens) = match (new_text(d), new_tokens) {
                    (Some(t), Some(n)) => {
                        st.modify_doc(&doc.id, &doc.text, t, "", self.examples);
                        (t, n)
                    }
                    _ => (&*doc.text, tokens),
                };
                st.documents_out += 1;
                st.tokens_out += u64::from(tokens);
                st.bytes_out += text.len() as u64;
                self.measured.output.add(tokens);
            }
        }
    }
}

impl<S: Stage> Stage for Observed<'_, S> {
    type Prepared = (S::Prepared, u32);

    fn prepare(&self, doc: &Doc<'_>) -> Self::Prepared {
        (self.inner.prepare(doc), self.counter.count(&doc.text))
    }

    fn prepare_in(&self, batch: &Batch, doc: &Doc<'_>) -> Self::Prepared {
        (
            self.inner.prepare_in(batch, doc),
            self.counter.count(&doc.text),
        )
    }

    fn decide(&mut self, doc: &Doc<'_>, (p, tokens): Self::Prepared) -> Decision {
        let d = self.inner.decide(doc, p);
        let new_tokens = new_text(&d).map(|t| self.counter.count(t));
        self.record(doc, tokens, &d, new_tokens);
        d
    }

    fn decide_batch(
        &mut self,
        batch: &Batch,
        docs: &[&Doc<'_>],
        prepared: Vec<Self::Prepared>,
    ) -> Result<Vec<Decision>> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let (inner, tokens): (Vec<S::Prepared>, Vec<u32>) = prepared.into_iter().unzip();
        let decisions = self.inner.decide_batch(batch, docs, inner)?;
        let counter = self.counter;
        let new_tokens: Vec<Option<u32>> = self.pool.install(|| {
            decisions
                .par_iter()
                .with_min_len(64)
                .map(|d| new_text(d).map(|t| counter.count(t)))
                .collect()
        });
        for (((doc, d), t), n) in docs.iter().zip(&decisions).zip(tokens).zip(new_tokens) {
            self.record(doc, t, d, n);
        }
        self.measured.stages[0].seconds = started.elapsed().as_secs_f64();
        Ok(decisions)
    }

    fn begin_batch(&mut self, batch: &Batch) {
        self.inner.begin_batch(batch);
    }

    fn finish(&mut self, stats: &mut Stats) {
        self.inner.finish(stats);
    }
}

/// The external stages of a shard step, run one after another on each batch: each sees the
/// documents the earlier ones kept, with their texts as edited.
pub(crate) struct Chain<'a> {
    stages: Vec<StageConfig>,
    /// The record fields each stage reads.
    wanted: Vec<Vec<String>>,
    external: Mutex<&'a mut dyn ExternalStages>,
    /// The stages run in Rust (`language`, `decontaminate`), by position.
    core: Vec<Option<CoreStage>>,
    counter: &'a TokenCounter,
    pool: Arc<rayon::ThreadPool>,
    examples: usize,
    pub measured: Measured,
}

impl<'a> Chain<'a> {
    pub fn new(
        stages: Vec<StageConfig>,
        external: &'a mut dyn ExternalStages,
        counter: &'a TokenCounter,
        pool: Arc<rayon::ThreadPool>,
        examples: usize,
    ) -> Result<Self> {
        let n = stages.len();
        let mut wanted = Vec::with_capacity(n);
        let mut core = Vec::with_capacity(n);
        for s in &stages {
            if let StageOptions::Language(o) = &s.options {
                core.push(Some(CoreStage::Language(LanguageStage::new(o)?)));
                wanted.push(Vec::new());
            } else if let StageOptions::Decontaminate(o) = &s.options {
                core.push(Some(CoreStage::Decont(open_indexes(o)?, o.mode)));
                wanted.push(Vec::new());
            } else {
                core.push(None);
                wanted.push(external.fields(s)?);
            }
        }
        Ok(Chain {
            stages,
            wanted,
            core,
            external: Mutex::new(external),
            counter,
            pool,
            examples,
            measured: Measured {
                stages: vec![StageStats::default(); n],
                ..Measured::default()
            },
        })
    }
}

/// A shard stage that runs in Rust.
enum CoreStage {
    Language(LanguageStage),
    Decont(Vec<Index>, DecontMode),
}

/// `decontaminate` on a batch: drop or cut, with the evaluation items found as details.
fn decont_outcome(indexes: &[Index], mode: DecontMode, texts: &[&str]) -> Outcome {
    let decided: Vec<(TextDecision, String)> = texts
        .par_iter()
        .map(|t| {
            let hits = find_hits(indexes, t);
            let mut items: Vec<String> = hits
                .iter()
                .map(|h| indexes[h.index].record_id(h.record))
                .collect();
            items.sort_unstable();
            items.dedup();
            (decide_text(t, &hits, mode), items.join(" "))
        })
        .collect();
    let contaminated = decided
        .iter()
        .filter(|d| d.0 != TextDecision::Clean)
        .count();
    Outcome {
        keep: decided
            .iter()
            .map(|d| !matches!(d.0, TextDecision::Drop))
            .collect(),
        reasons: Vec::new(),
        texts: Some(
            decided
                .iter()
                .map(|d| match &d.0 {
                    TextDecision::Cut(t) => Some(t.clone()),
                    _ => None,
                })
                .collect(),
        ),
        fields: Vec::new(),
        details: Some(decided.into_iter().map(|d| d.1).collect()),
        counters: [("contaminated_documents".to_string(), contaminated as u64)]
            .into_iter()
            .collect(),
    }
}

/// The JSON text of field `path` (`name` or `object.name`) of a document: as an earlier stage
/// set it, else as the record holds it.
fn field_json(doc: &Doc<'_>, edits: &[FieldEdit], path: &str) -> Option<String> {
    if let Some(e) = edits.iter().rev().find(|e| e.path() == path) {
        return Some(e.value.to_json());
    }
    let DocSource::Json { raw } = &doc.source else {
        return None;
    };
    let fields: JsonFields<'_> = serde_json::from_str(raw).ok()?;
    match path.split_once('.') {
        None => fields.get(path).map(|v| v.get().to_string()),
        Some((object, name)) => {
            let inner: JsonFields<'_> = serde_json::from_str(fields.get(object)?.get()).ok()?;
            inner.get(name).map(|v| v.get().to_string())
        }
    }
}

/// A document on its way through the chain.
struct Live<'t> {
    text: Cow<'t, str>,
    tokens: u32,
    changed: bool,
    removed: Option<String>,
    fields: Vec<FieldEdit>,
}

fn label(v: &FieldValue) -> String {
    match v {
        FieldValue::Str(s) => s.clone(),
        FieldValue::Int(i) => i.to_string(),
        FieldValue::Float(f) => f.to_string(),
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::Null => String::new(),
        FieldValue::Spans(_) | FieldValue::Strs(_) => v.to_json(),
    }
}

impl Stage for Chain<'_> {
    type Prepared = u32;

    fn prepare(&self, doc: &Doc<'_>) -> u32 {
        self.counter.count(&doc.text)
    }

    fn decide(&mut self, _doc: &Doc<'_>, _tokens: u32) -> Decision {
        // Only called through `decide_batch`, which sees whole batches.
        Decision::Keep
    }

    fn decide_batch(
        &mut self,
        _batch: &Batch,
        docs: &[&Doc<'_>],
        tokens: Vec<u32>,
    ) -> Result<Vec<Decision>> {
        let mut live: Vec<Live<'_>> = docs
            .iter()
            .zip(&tokens)
            .map(|(d, &t)| Live {
                text: Cow::Borrowed(&*d.text),
                tokens: t,
                changed: false,
                removed: None,
                fields: Vec::new(),
            })
            .collect();
        for &t in &tokens {
            self.measured.input.add(t);
        }
        let external = self
            .external
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (si, stage) in self.stages.iter().enumerate() {
            let idx: Vec<usize> = (0..live.len())
                .filter(|&i| live[i].removed.is_none())
                .collect();
            if idx.is_empty() {
                continue;
            }
            let started = Instant::now();
            let fields = self.wanted[si]
                .iter()
                .map(|f| {
                    let values = idx
                        .iter()
                        .map(|&i| field_json(docs[i], &live[i].fields, f))
                        .collect();
                    (f.clone(), values)
                })
                .collect();
            let batch = StageBatch {
                ids: idx.iter().map(|&i| &*docs[i].id).collect(),
                texts: idx.iter().map(|&i| &*live[i].text).collect(),
                fields,
            };
            let out = match &self.core[si] {
                Some(CoreStage::Language(lang)) => self.pool.install(|| lang.outcome(&batch.texts)),
                Some(CoreStage::Decont(indexes, mode)) => self
                    .pool
                    .install(|| decont_outcome(indexes, *mode, &batch.texts)),
                None => external.process(stage, &batch)?,
            };
            out.check(&stage.name, idx.len())?;
            let counter = self.counter;
            let new_tokens: Vec<Option<u32>> = match &out.texts {
                Some(texts) => self.pool.install(|| {
                    texts
                        .par_iter()
                        .map(|t| t.as_deref().map(|t| counter.count(t)))
                        .collect()
                }),
                None => vec![None; idx.len()],
            };
            let kind = stage.options.kind();
            let default_reason = kind
                .reasons_for(&stage.name)
                .into_iter()
                .next()
                .unwrap_or_else(|| stage.name.clone());
            let language = kind
                .language_field
                .and_then(|f| out.fields.iter().find(|c| c.path == f));
            let st = &mut self.measured.stages[si];
            for (k, &i) in idx.iter().enumerate() {
                let doc = docs[i];
                let l = &mut live[i];
                let detail = out.details.as_ref().map_or("", |d| d[k].as_str());
                st.documents_in += 1;
                st.tokens_in += u64::from(l.tokens);
                st.bytes_in += l.text.len() as u64;
                let keep = out.keep[k];
                if let Some(col) = language {
                    let lang = col.values[k].as_ref().map(label).unwrap_or_default();
                    let e = st.languages.entry(lang).or_insert((0, 0));
                    e.0 += 1;
                    e.1 += u64::from(keep);
                }
                if !keep {
                    let reason = out
                        .reasons
                        .get(k)
                        .filter(|r| !r.is_empty())
                        .cloned()
                        .unwrap_or_else(|| default_reason.clone());
                    st.drop_doc(&reason, &doc.id, &l.text, detail, self.examples);
                    l.removed = Some(reason);
                    continue;
                }
                if let (Some(Some(new)), Some(n)) =
                    (out.texts.as_ref().map(|t| &t[k]), new_tokens[k])
                {
                    if *new != *l.text {
                        st.modify_doc(&doc.id, &l.text, new, detail, self.examples);
                        l.text = Cow::Owned(new.clone());
                        l.tokens = n;
                        l.changed = true;
                    }
                }
                for col in &out.fields {
                    if let Some(v) = &col.values[k] {
                        l.fields
                            .push(FieldEdit::at_path(&col.path, v.clone(), col.if_absent));
                    }
                }
                st.documents_out += 1;
                st.tokens_out += u64::from(l.tokens);
                st.bytes_out += l.text.len() as u64;
            }
            for (k, v) in &out.counters {
                *st.counters.entry(k.clone()).or_insert(0) += v;
            }
            st.seconds += started.elapsed().as_secs_f64();
        }
        let mut decisions = Vec::with_capacity(live.len());
        for l in live {
            decisions.push(match l.removed {
                Some(reason) => Decision::Remove(reason.into()),
                None => {
                    self.measured.output.add(l.tokens);
                    if !l.changed && l.fields.is_empty() {
                        Decision::Keep
                    } else {
                        Decision::Edit {
                            text: l.changed.then(|| l.text.into_owned()),
                            fields: l.fields,
                        }
                    }
                }
            });
        }
        Ok(decisions)
    }
}
