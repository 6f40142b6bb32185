//! The tokenizer report (`tamis vocab stats`, `vocab extend --report`): compression and
//! fertility on target-language text, new-token use and reachability, round trips, and how much
//! old-language ("protected") text keeps its exact ids, with each change explained.
//!
//! Definitions (research notes §4): tokens per character and per word (fertility; words are
//! white-space separated, so a CJK sentence counts as few words), UTF-8 bytes per token, the
//! share of words split into two or more tokens (Rust et al. 2021), the share of new tokens used
//! at least once, and the share of documents for which `decode(encode(x)) == x`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use rayon::prelude::*;
use serde::Serialize;
use tokenizers::{Model, Tokenizer};

use super::corpus::{for_each_batch, CorpusOptions, CorpusSummary, Text};
use super::extend::{ExtendSummary, WordChange};
use super::file::{ModelKind, TokenizerFile};
use crate::pipeline::{thread_pool, Progress};
use crate::{Error, Result};

/// Options of [`stats`].
#[derive(Debug, Clone, PartialEq)]
pub struct StatsConfig {
    /// How corpora are read.
    pub corpus: CorpusOptions,
    /// Most examples of changed protected documents kept in the report.
    pub examples: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            corpus: CorpusOptions::default(),
            examples: 20,
        }
    }
}

/// Facts about a tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenizerInfo {
    /// Its file.
    pub name: String,
    /// Its kind.
    pub kind: ModelKind,
    /// Model vocabulary size.
    pub vocab_size: usize,
    /// Added tokens.
    pub added_tokens: usize,
    /// Merges.
    pub merges: usize,
    /// `1 +` the largest id.
    pub next_id: u32,
}

impl TokenizerInfo {
    fn of(t: &TokenizerFile) -> Self {
        TokenizerInfo {
            name: t.name().to_string(),
            kind: t.kind(),
            vocab_size: t.vocab().len(),
            added_tokens: t.tokenizer().get_added_tokens_decoder().len(),
            merges: t.merges().len(),
            next_id: t.next_id(),
        }
    }
}

/// Measurements of one tokenizer on one corpus.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Documents.
    pub documents: u64,
    /// Unicode characters.
    pub characters: u64,
    /// UTF-8 bytes.
    pub bytes: u64,
    /// White-space separated words.
    pub words: u64,
    /// Tokens (no special tokens added).
    pub tokens: u64,
    /// Tokens per character.
    pub tokens_per_char: f64,
    /// Tokens per word (fertility).
    pub tokens_per_word: f64,
    /// UTF-8 bytes per token.
    pub bytes_per_token: f64,
    /// Words split into two or more tokens.
    pub continued_words: u64,
    /// `continued_words / words`.
    pub continued_word_share: f64,
    /// Documents with `decode(encode(x)) == x`.
    pub round_trip_exact: u64,
    /// `round_trip_exact / documents`.
    pub round_trip_rate: f64,
}

impl Metrics {
    fn add(&mut self, d: &DocMetrics) {
        self.documents += 1;
        self.tokens += d.tokens;
        self.continued_words += d.continued;
        self.round_trip_exact += u64::from(d.round_trip);
    }

    fn finish(&mut self, characters: u64, bytes: u64, words: u64) {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        self.characters = characters;
        self.bytes = bytes;
        self.words = words;
        self.tokens_per_char = ratio(self.tokens, characters);
        self.tokens_per_word = ratio(self.tokens, words);
        self.bytes_per_token = ratio(bytes, self.tokens);
        self.continued_word_share = ratio(self.continued_words, words);
        self.round_trip_rate = ratio(self.round_trip_exact, self.documents);
    }
}

/// A corpus measured with the tokenizer and, when given, the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorpusReport {
    /// What was read.
    pub corpus: CorpusSummary,
    /// The tokenizer's measurements.
    pub tokenizer: Metrics,
    /// The baseline's measurements.
    pub baseline: Option<Metrics>,
}

/// Use and reachability of the tokens the tokenizer has and the baseline has not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewTokens {
    /// New tokens (ids the baseline does not have).
    pub count: usize,
    /// New tokens used at least once on the target corpus.
    pub used: usize,
    /// `used / count`.
    pub utilization: f64,
    /// New tokens whose own string does not encode to them (model level).
    pub unreachable: usize,
    /// The first unreachable tokens, in id order.
    pub unreachable_examples: Vec<String>,
}

/// One protected document whose ids changed, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `file:line` or `file:row`.
    pub document: String,
    /// `new_merge` (a new merge joined two old tokens), `new_character` (a character that fell
    /// back to bytes now has a token), or `other`.
    pub cause: String,
    /// The first new token in the document's new encoding.
    pub token: Option<String>,
    /// The merge that made it, for `new_merge`.
    pub merge: Option<[String; 2]>,
    /// The text around it.
    pub context: String,
    /// The baseline's tokens for that span.
    pub baseline_tokens: Vec<String>,
    /// The tokenizer's tokens for that span.
    pub tokens: Vec<String>,
}

/// Old-text invariance on the protected corpus.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invariance {
    /// Protected documents.
    pub documents: u64,
    /// Documents whose ids are identical under both tokenizers.
    pub unchanged: u64,
    /// `unchanged / documents`.
    pub rate: f64,
    /// Changed documents by cause.
    pub causes: BTreeMap<String, u64>,
    /// The first changed documents, in input order.
    pub examples: Vec<Change>,
    /// Word occurrences (white-space separated).
    pub words: u64,
    /// Word occurrences whose tokens are unchanged.
    pub words_unchanged: u64,
    /// `words_unchanged / words`.
    pub word_rate: f64,
    /// The most frequent changed words, with the new merge that changed each.
    pub changed_words: Vec<WordChange>,
}

/// The tokenizer report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The tokenizer measured.
    pub tokenizer: TokenizerInfo,
    /// The tokenizer it is compared with (the base, for `extend --report`).
    pub baseline: Option<TokenizerInfo>,
    /// Target-language text.
    pub target: CorpusReport,
    /// Old-language text whose encoding should not change.
    pub protected: Option<CorpusReport>,
    /// New tokens (needs a baseline).
    pub new_tokens: Option<NewTokens>,
    /// Old-text invariance (needs a baseline and a protected corpus).
    pub invariance: Option<Invariance>,
    /// Base-language reference text (`extend --reference` files).
    pub reference: Option<CorpusReport>,
    /// Invariance on the reference text.
    pub reference_invariance: Option<Invariance>,
    /// What `extend` did, in `extend --report`.
    pub extension: Option<ExtendSummary>,
}

struct DocMetrics {
    tokens: u64,
    continued: u64,
    round_trip: bool,
}

struct DocResult {
    characters: u64,
    bytes: u64,
    words: u64,
    tokenizer: DocMetrics,
    baseline: Option<DocMetrics>,
    new_ids: Vec<u32>,
    change: Option<Change>,
    changed: bool,
    /// Protected documents: the changed word occurrences.
    word_changes: Vec<WordChange>,
}

/// What a new id is, for explaining changes.
#[derive(Clone)]
enum Origin {
    Merge(String, String),
    Character,
    Other,
}

struct Context<'a> {
    tokenizer: &'a Tokenizer,
    baseline: Option<&'a Tokenizer>,
    new: HashMap<u32, Origin>,
}

/// A document's metrics, ids and byte offsets under one tokenizer.
type Measured = (DocMetrics, Vec<u32>, Vec<(usize, usize)>);

fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

fn measure(t: &Tokenizer, text: &str, words: &[(usize, usize)]) -> Result<Measured> {
    let enc = t
        .encode(text, false)
        .map_err(|e| Error::Config(format!("encoding failed: {e}")))?;
    let ids = enc.get_ids().to_vec();
    let offsets = enc.get_offsets().to_vec();
    let mut per_word = vec![0u32; words.len()];
    let mut w = 0;
    for &(s, e) in &offsets {
        if e <= s {
            continue;
        }
        while w < words.len() && words[w].1 <= s {
            w += 1;
        }
        let mut k = w;
        while k < words.len() && words[k].0 < e {
            per_word[k] += 1;
            k += 1;
        }
    }
    let decoded = t.decode(&ids, false).ok();
    Ok((
        DocMetrics {
            tokens: ids.len() as u64,
            continued: per_word.iter().filter(|&&n| n >= 2).count() as u64,
            round_trip: decoded.as_deref() == Some(text),
        },
        ids,
        offsets,
    ))
}

fn snippet(text: &str, start: usize, end: usize) -> String {
    let mut a = start.min(text.len());
    let mut b = end.min(text.len());
    for _ in 0..30 {
        if let Some(c) = text[..a].chars().next_back() {
            a -= c.len_utf8();
        }
        if let Some(c) = text[b..].chars().next() {
            b += c.len_utf8();
        }
    }
    text[a..b].to_string()
}

impl Context<'_> {
    fn doc(&self, t: &Text<'_>, protected: bool) -> Result<DocResult> {
        let text: &str = &t.text;
        let words = word_spans(text);
        let (tm, ids, offsets) = measure(self.tokenizer, text, &words)?;
        let mut new_ids: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| self.new.contains_key(id))
            .collect();
        new_ids.sort_unstable();
        new_ids.dedup();
        let (bm, changed, change, word_changes) = match self.baseline {
            None => (None, false, None, Vec::new()),
            Some(b) => {
                let (bm, bids, boffsets) = measure(b, text, &words)?;
                let changed = bids != ids;
                let (change, word_changes) = if protected && changed {
                    (
                        Some(self.explain(t, &ids, &offsets, &bids, &boffsets, b)),
                        self.changed_words(text, &words, (&ids, &offsets), (&bids, &boffsets), b),
                    )
                } else {
                    (None, Vec::new())
                };
                (Some(bm), changed, change, word_changes)
            }
        };
        Ok(DocResult {
            characters: text.chars().count() as u64,
            bytes: text.len() as u64,
            words: words.len() as u64,
            tokenizer: tm,
            baseline: bm,
            new_ids,
            change,
            changed,
            word_changes,
        })
    }

    /// The word occurrences of `text` whose overlapping tokens differ between the tokenizer
    /// and the baseline, each with the first new merge among its new tokens.
    fn changed_words(
        &self,
        text: &str,
        words: &[(usize, usize)],
        new: (&[u32], &[(usize, usize)]),
        old: (&[u32], &[(usize, usize)]),
        baseline: &Tokenizer,
    ) -> Vec<WordChange> {
        let in_words = |offsets: &[(usize, usize)]| -> Vec<(usize, usize)> {
            let mut out = Vec::with_capacity(words.len());
            let mut k = 0;
            for &(ws, we) in words {
                while k < offsets.len() && (offsets[k].1 <= ws || offsets[k].1 <= offsets[k].0) {
                    k += 1;
                }
                let mut j = k;
                while j < offsets.len() && offsets[j].0 < we {
                    j += 1;
                }
                out.push((k, j));
            }
            out
        };
        let (nw, ow) = (in_words(new.1), in_words(old.1));
        let mut out = Vec::new();
        for (i, &(ws, we)) in words.iter().enumerate() {
            let (a, b) = (&new.0[nw[i].0..nw[i].1], &old.0[ow[i].0..ow[i].1]);
            if a == b {
                continue;
            }
            let merge = a.iter().find_map(|id| match self.new.get(id) {
                Some(Origin::Merge(l, r)) => Some([l.clone(), r.clone()]),
                _ => None,
            });
            out.push(WordChange {
                word: text[ws..we].to_string(),
                occurrences: 1,
                merge,
                before: b
                    .iter()
                    .map(|&id| baseline.id_to_token(id).unwrap_or_default())
                    .collect(),
                after: a
                    .iter()
                    .map(|&id| self.tokenizer.id_to_token(id).unwrap_or_default())
                    .collect(),
            });
        }
        out
    }

    fn explain(
        &self,
        t: &Text<'_>,
        ids: &[u32],
        offsets: &[(usize, usize)],
        bids: &[u32],
        boffsets: &[(usize, usize)],
        baseline: &Tokenizer,
    ) -> Change {
        let text: &str = &t.text;
        let first_new = ids.iter().position(|id| self.new.contains_key(id));
        let (cause, token, merge, span) = match first_new {
            Some(i) => {
                let id = ids[i];
                let token = self.tokenizer.id_to_token(id);
                match self.new.get(&id) {
                    Some(Origin::Merge(a, b)) => {
                        ("new_merge", token, Some([a.clone(), b.clone()]), offsets[i])
                    }
                    Some(Origin::Character) => ("new_character", token, None, offsets[i]),
                    _ => ("other", token, None, offsets[i]),
                }
            }
            None => {
                let i = ids
                    .iter()
                    .zip(bids)
                    .position(|(a, b)| a != b)
                    .unwrap_or(ids.len().min(bids.len()));
                let span = offsets
                    .get(i)
                    .or_else(|| boffsets.get(i))
                    .copied()
                    .unwrap_or((0, 0));
                ("other", None, None, span)
            }
        };
        let overlapping = |offs: &[(usize, usize)], ids: &[u32], tk: &Tokenizer| -> Vec<String> {
            offs.iter()
                .zip(ids)
                .filter(|((s, e), _)| *s < span.1.max(span.0 + 1) && *e > span.0)
                .map(|(_, id)| tk.id_to_token(*id).unwrap_or_default())
                .collect()
        };
        Change {
            document: t.origin(),
            cause: cause.to_string(),
            token,
            merge,
            context: snippet(text, span.0, span.1),
            baseline_tokens: overlapping(boffsets, bids, baseline),
            tokens: overlapping(offsets, ids, self.tokenizer),
        }
    }
}

struct Totals {
    tokenizer: Metrics,
    baseline: Option<Metrics>,
    characters: u64,
    bytes: u64,
    words: u64,
    used: HashSet<u32>,
    unchanged: u64,
    causes: BTreeMap<String, u64>,
    examples: Vec<Change>,
    words_changed: u64,
    changed_words: HashMap<String, WordChange>,
}

impl Totals {
    /// Invariance of this (protected or reference) corpus.
    fn invariance(&self, examples: usize) -> Invariance {
        let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
        let mut changed: Vec<WordChange> = self.changed_words.values().cloned().collect();
        changed.sort_by(|a, b| b.occurrences.cmp(&a.occurrences).then(a.word.cmp(&b.word)));
        changed.truncate(examples);
        let words_unchanged = self.words - self.words_changed;
        Invariance {
            documents: self.tokenizer.documents,
            unchanged: self.unchanged,
            rate: ratio(self.unchanged, self.tokenizer.documents),
            causes: self.causes.clone(),
            examples: self.examples.clone(),
            words: self.words,
            words_unchanged,
            word_rate: ratio(words_unchanged, self.words),
            changed_words: changed,
        }
    }
}

fn run_corpus(
    ctx: &Context<'_>,
    inputs: &[String],
    cfg: &StatsConfig,
    pool: &rayon::ThreadPool,
    protected: bool,
    progress: &dyn Progress,
) -> Result<(Totals, CorpusSummary)> {
    let mut totals = Totals {
        tokenizer: Metrics::default(),
        baseline: ctx.baseline.map(|_| Metrics::default()),
        characters: 0,
        bytes: 0,
        words: 0,
        used: HashSet::new(),
        unchanged: 0,
        causes: BTreeMap::new(),
        examples: Vec::new(),
        words_changed: 0,
        changed_words: HashMap::new(),
    };
    let summary = for_each_batch(inputs, &cfg.corpus, pool, progress, |texts| {
        let results: Vec<DocResult> = pool.install(|| {
            texts
                .par_iter()
                .with_min_len(8)
                .map(|t| {
                    ctx.doc(t, protected)
                        .map_err(|e| Error::Config(format!("{}: {e}", t.origin())))
                })
                .collect::<Result<_>>()
        })?;
        for r in results {
            totals.characters += r.characters;
            totals.bytes += r.bytes;
            totals.words += r.words;
            totals.tokenizer.add(&r.tokenizer);
            if let (Some(m), Some(d)) = (totals.baseline.as_mut(), r.baseline.as_ref()) {
                m.add(d);
            }
            totals.used.extend(r.new_ids);
            if !r.changed {
                totals.unchanged += 1;
            }
            totals.words_changed += r.word_changes.len() as u64;
            for w in r.word_changes {
                match totals.changed_words.get_mut(&w.word) {
                    Some(e) => e.occurrences += 1,
                    None => {
                        totals.changed_words.insert(w.word.clone(), w);
                    }
                }
            }
            if let Some(c) = r.change {
                *totals.causes.entry(c.cause.clone()).or_default() += 1;
                if totals.examples.len() < cfg.examples {
                    totals.examples.push(c);
                }
            }
        }
        Ok(())
    })?;
    if summary.documents == 0 {
        return Err(Error::EmptyCorpus(inputs.join(" ")));
    }
    let (c, b, w) = (totals.characters, totals.bytes, totals.words);
    totals.tokenizer.finish(c, b, w);
    if let Some(m) = totals.baseline.as_mut() {
        m.finish(c, b, w);
    }
    Ok((totals, summary))
}

/// Measure `tokenizer` (and `baseline`, when given, side by side) on `corpus` (target-language
/// text), `protect` and `reference` (old-language text; the invariance rates, per document and
/// per word occurrence, need a baseline). `progress` hears about each corpus read.
pub fn stats(
    tokenizer: &TokenizerFile,
    baseline: Option<&TokenizerFile>,
    corpus: &[String],
    protect: &[String],
    reference: &[String],
    cfg: &StatsConfig,
    progress: &dyn Progress,
) -> Result<Report> {
    if corpus.is_empty() {
        return Err(Error::Config("no corpus given".into()));
    }
    let pool = thread_pool(cfg.corpus.threads)?;
    let mut new: HashMap<u32, Origin> = HashMap::new();
    if let Some(b) = baseline {
        let old_ids: HashSet<u32> = b
            .vocab()
            .values()
            .copied()
            .chain(b.tokenizer().get_added_tokens_decoder().into_keys())
            .collect();
        let by_result: HashMap<String, (&String, &String)> = tokenizer
            .merges()
            .iter()
            .map(|(a, bb)| (format!("{a}{bb}"), (a, bb)))
            .collect();
        for (s, &id) in tokenizer.vocab() {
            if old_ids.contains(&id) {
                continue;
            }
            let origin = match by_result.get(s) {
                Some((a, bb)) => Origin::Merge(a.to_string(), bb.to_string()),
                None if s.chars().count() == 1 => Origin::Character,
                None => Origin::Other,
            };
            new.insert(id, origin);
        }
    }
    let ctx = Context {
        tokenizer: tokenizer.tokenizer(),
        baseline: baseline.map(|b| b.tokenizer()),
        new,
    };
    let (target, target_summary) = run_corpus(&ctx, corpus, cfg, &pool, false, progress)?;
    let new_tokens = baseline.map(|_| {
        let model = tokenizer.bpe();
        let mut ids: Vec<(u32, &String)> = tokenizer
            .vocab()
            .iter()
            .filter(|(_, id)| ctx.new.contains_key(id))
            .map(|(s, &id)| (id, s))
            .collect();
        ids.sort_unstable();
        let unreachable: Vec<String> = pool.install(|| {
            ids.par_iter()
                .filter(|(id, s)| {
                    model
                        .tokenize(s)
                        .map(|t| t.len() != 1 || t[0].id != *id)
                        .unwrap_or(true)
                })
                .map(|(_, s)| s.to_string())
                .collect()
        });
        let count = ids.len();
        let used = target.used.len();
        NewTokens {
            count,
            used,
            utilization: if count == 0 {
                0.0
            } else {
                used as f64 / count as f64
            },
            unreachable: unreachable.len(),
            unreachable_examples: unreachable.into_iter().take(50).collect(),
        }
    });
    let old_text = |inputs: &[String]| -> Result<(Option<CorpusReport>, Option<Invariance>)> {
        if inputs.is_empty() {
            return Ok((None, None));
        }
        let (p, summary) = run_corpus(&ctx, inputs, cfg, &pool, true, progress)?;
        let invariance = baseline.map(|_| p.invariance(cfg.examples));
        Ok((
            Some(CorpusReport {
                corpus: summary,
                tokenizer: p.tokenizer,
                baseline: p.baseline,
            }),
            invariance,
        ))
    };
    let (protected, invariance) = old_text(protect)?;
    let (reference, reference_invariance) = old_text(reference)?;
    Ok(Report {
        tokenizer: TokenizerInfo::of(tokenizer),
        baseline: baseline.map(TokenizerInfo::of),
        target: CorpusReport {
            corpus: target_summary,
            tokenizer: target.tokenizer,
            baseline: target.baseline,
        },
        protected,
        new_tokens,
        invariance,
        reference,
        reference_invariance,
        extension: None,
    })
}

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// A readable summary comparing the baseline and the tokenizer side by side.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let name = |i: &TokenizerInfo| {
            format!(
                "{} ({} tokens, next id {})",
                i.name,
                i.vocab_size + i.added_tokens,
                i.next_id
            )
        };
        let _ = writeln!(out, "tokenizer: {}", name(&self.tokenizer));
        if let Some(b) = &self.baseline {
            let _ = writeln!(out, "baseline:  {}", name(b));
        }
        if let Some(x) = &self.extension {
            let _ = writeln!(
                out,
                "extension: {} new tokens ({} characters, {} merges; stopped by {}), ids {}..{}, embedding rows {}",
                x.new_tokens,
                x.characters_added,
                x.merges_added,
                x.stopped_by,
                x.first_new_id,
                x.next_id,
                x.embedding_rows
            );
            if x.protected_skipped > 0 || x.unreachable_skipped > 0 {
                let _ = writeln!(
                    out,
                    "skipped candidate pairs: {} meeting in protected text, {} unreachable",
                    x.protected_skipped, x.unreachable_skipped
                );
            }
            if let Some(m) = &x.merge_from {
                let _ = writeln!(
                    out,
                    "merge-from: {} of {} merges added, {} already present, {} unreachable, {} missing a part",
                    m.added, m.merges, m.already_present, m.unreachable, m.missing_part
                );
            }
        }
        let pct = |v: f64| format!("{:.1}%", v * 100.0);
        let num = |v: f64| format!("{v:.3}");
        let rows = |out: &mut String, title: &str, r: &CorpusReport| {
            let _ = writeln!(
                out,
                "\n{title}: {} documents, {} characters, {} words",
                r.tokenizer.documents, r.tokenizer.characters, r.tokenizer.words
            );
            let _ = writeln!(
                out,
                "  {:<26}{:>12}{:>12}{:>10}",
                "", "baseline", "tokenizer", "change"
            );
            type Get = fn(&Metrics) -> f64;
            let lines: [(&str, Get, bool); 6] = [
                ("tokens", |m| m.tokens as f64, false),
                ("tokens per character", |m| m.tokens_per_char, false),
                ("tokens per word", |m| m.tokens_per_word, false),
                ("bytes per token", |m| m.bytes_per_token, false),
                ("words split in 2+ tokens", |m| m.continued_word_share, true),
                ("exact round trip", |m| m.round_trip_rate, true),
            ];
            for (label, get, share) in lines {
                let fmt = |v: f64| {
                    if share {
                        pct(v)
                    } else if label == "tokens" {
                        format!("{v:.0}")
                    } else {
                        num(v)
                    }
                };
                let t = get(&r.tokenizer);
                let (b, change) = match &r.baseline {
                    Some(bm) => {
                        let b = get(bm);
                        let change = if b == 0.0 {
                            String::new()
                        } else {
                            format!("{:+.1}%", (t / b - 1.0) * 100.0)
                        };
                        (fmt(b), change)
                    }
                    None => ("-".into(), String::new()),
                };
                let _ = writeln!(out, "  {label:<26}{b:>12}{:>12}{change:>10}", fmt(t));
            }
        };
        rows(&mut out, "target text", &self.target);
        if let Some(n) = &self.new_tokens {
            let _ = writeln!(
                out,
                "  new tokens used: {} of {} ({}); unreachable: {}",
                n.used,
                n.count,
                pct(n.utilization),
                n.unreachable
            );
        }
        let word_line = |out: &mut String, inv: &Invariance| {
            let _ = writeln!(
                out,
                "  word occurrences unchanged: {} of {} ({:.3}%)",
                inv.words_unchanged,
                inv.words,
                inv.word_rate * 100.0
            );
            for w in inv.changed_words.iter().take(5) {
                let _ = writeln!(out, "    {}", word_change_line(w));
            }
        };
        if let Some(sel) = self.extension.as_ref().and_then(|x| x.selection.as_ref()) {
            let inv = &sel.reference_invariance;
            let _ = writeln!(
                out,
                "\ntarget selection: {}; reference {}: {:.3}% of its word occurrences unchanged",
                if sel.scripts.is_empty() {
                    "every word, letters only".to_string()
                } else {
                    format!("words in {}", sel.scripts.join(", "))
                },
                sel.reference,
                inv.rate * 100.0
            );
            for w in inv.examples.iter().take(5) {
                let _ = writeln!(out, "    {}", word_change_line(w));
            }
        }
        if let (Some(p), Some(inv)) = (&self.reference, &self.reference_invariance) {
            rows(&mut out, "reference text", p);
            let _ = writeln!(
                out,
                "  ids unchanged: {} of {} documents ({})",
                inv.unchanged,
                inv.documents,
                pct(inv.rate)
            );
            word_line(&mut out, inv);
        }
        if let Some(p) = &self.protected {
            rows(&mut out, "protected text", p);
        }
        if let Some(inv) = &self.invariance {
            let causes: Vec<String> = inv
                .causes
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(
                out,
                "  ids unchanged: {} of {} documents ({}){}",
                inv.unchanged,
                inv.documents,
                pct(inv.rate),
                if causes.is_empty() {
                    String::new()
                } else {
                    format!("; changed by {}", causes.join(", "))
                }
            );
            for c in inv.examples.iter().take(3) {
                let _ = writeln!(
                    out,
                    "    {}: {} {:?} in {:?}: {:?} -> {:?}",
                    c.document,
                    c.cause,
                    c.token.as_deref().unwrap_or(""),
                    c.context,
                    c.baseline_tokens,
                    c.tokens
                );
            }
            word_line(&mut out, inv);
        }
        out
    }
}

/// `"word" ×N: [before] -> [after] by merge (a, b)`.
fn word_change_line(w: &WordChange) -> String {
    format!(
        "{:?} ×{}: {:?} -> {:?}{}",
        w.word,
        w.occurrences,
        w.before,
        w.after,
        match &w.merge {
            Some([a, b]) => format!(" by merge ({a:?}, {b:?})"),
            None => " by a new character".to_string(),
        }
    )
}

/// A tokenizer parsed from its JSON text, cached by content: polars calls once per batch, and
/// parsing a 50k-token file costs far more than counting a batch.
pub fn tokenizer_from_json(json: &str) -> Result<std::sync::Arc<Tokenizer>> {
    use std::sync::{Arc, Mutex, OnceLock};
    type Cache = Mutex<Vec<(u128, Arc<Tokenizer>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = xxhash_rust::xxh3::xxh3_128(json.as_bytes());
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    if let Some((_, t)) = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(k, _)| *k == key)
    {
        return Ok(t.clone());
    }
    let t = Arc::new(
        Tokenizer::from_bytes(json.as_bytes())
            .and_then(super::file::measuring)
            .map_err(|e| Error::Tokenizer {
                path: "<tokenizer>".into(),
                error: crate::TokenizerError::Malformed(e.to_string()),
            })?,
    );
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= 4 {
        cache.remove(0);
    }
    cache.push((key, t.clone()));
    Ok(t)
}

/// Tokens per text (no special tokens added); `None` stays `None`. Runs on the current rayon
/// pool; the result is in input order.
pub fn token_counts(tokenizer: &Tokenizer, texts: &[Option<&str>]) -> Result<Vec<Option<u32>>> {
    texts
        .par_iter()
        .with_min_len(64)
        .map(|t| match t {
            None => Ok(None),
            Some(t) => tokenizer
                .encode_fast(*t, false)
                .map(|e| Some(e.len() as u32))
                .map_err(|e| Error::Config(format!("encoding failed: {e}"))),
        })
        .collect()
}
