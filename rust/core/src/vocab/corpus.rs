//! Streaming a corpus (JSONL, Parquet or plain text, through [`crate::io`]) as batches of texts,
//! and turning texts into the base tokenizer's words: added tokens cut out, the base normalizer
//! and pre-tokenizer applied, so that words are in the model's alphabet (byte-level mapped
//! characters, or `▁`-marked strings).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;
use tokenizers::{OffsetReferential, OffsetType, PreTokenizer, Tokenizer};

use super::file::ModelKind;
use crate::error::Location;
use crate::io::{
    expand_text_inputs, extract_docs, read_batches, BatchColumns, BatchData, ExtractOptions,
    InputFormat, OnError, ReadItem,
};
use crate::pipeline::Progress;
use crate::{Error, RecordError, Result};

/// Word → occurrences.
pub type WordCounts = HashMap<String, u64, rustc_hash::FxBuildHasher>;

/// How a corpus is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusOptions {
    /// Field holding the text in JSONL and Parquet (plain text files are one document per line).
    pub text_key: String,
    /// Fail on a bad record, or skip and count it.
    pub on_error: OnError,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Target size of a JSONL or text batch in bytes.
    pub batch_bytes: usize,
}

impl Default for CorpusOptions {
    fn default() -> Self {
        CorpusOptions {
            text_key: "text".into(),
            on_error: OnError::Fail,
            threads: 0,
            batch_bytes: 8 << 20,
        }
    }
}

/// What was read from a corpus.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CorpusSummary {
    /// The inputs as given.
    pub inputs: Vec<String>,
    /// Files read.
    pub files: usize,
    /// Documents read (records with text; lines of plain text files).
    pub documents: u64,
    /// UTF-8 bytes of text.
    pub text_bytes: u64,
    /// Bad records skipped under `on_error = skip`, by reason.
    pub skipped: BTreeMap<String, u64>,
}

/// One document of a batch.
pub(crate) struct Text<'a> {
    pub text: Cow<'a, str>,
    pub file: &'a str,
    pub location: Location,
}

impl Text<'_> {
    /// `name:line` (or `name:row`), to point at the document in examples.
    pub fn origin(&self) -> String {
        match self.location {
            Location::Line(n) | Location::Row(n) => format!("{}:{n}", self.file),
            Location::File => self.file.to_string(),
        }
    }
}

/// Read `inputs` in order and call `each` with the documents of every batch.
pub(crate) fn for_each_batch(
    inputs: &[String],
    opts: &CorpusOptions,
    pool: &rayon::ThreadPool,
    progress: &dyn Progress,
    mut each: impl FnMut(&[Text<'_>]) -> Result<()>,
) -> Result<CorpusSummary> {
    let files = expand_text_inputs(inputs)?;
    let total: u64 = files
        .iter()
        .filter_map(|f| f.path.as_ref())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    progress.start(total);
    let bytes_in = Arc::new(AtomicU64::new(0));
    let mut summary = CorpusSummary {
        inputs: inputs.to_vec(),
        files: files.len(),
        ..CorpusSummary::default()
    };
    let extract = ExtractOptions {
        text_key: opts.text_key.clone(),
        ..ExtractOptions::default()
    };
    let (tx, rx) = crossbeam_channel::bounded::<ReadItem>(2);
    std::thread::scope(|scope| -> Result<()> {
        let files = &files;
        let counter = bytes_in.clone();
        let reader = scope.spawn(move || {
            read_batches(files, opts.batch_bytes, counter, |item| {
                tx.send(item).is_ok()
            })
        });
        let consumed = (|| -> Result<()> {
            for item in &rx {
                let batch = match item {
                    ReadItem::Batch(b) => b,
                    ReadItem::Corrupt {
                        file,
                        location,
                        message,
                        ..
                    } => {
                        skip_or_fail(
                            opts,
                            &mut summary,
                            &file.display,
                            location,
                            RecordError::CorruptFile(message),
                        )?;
                        continue;
                    }
                };
                let file = batch.file.name.as_str();
                let cols = BatchColumns::new(&batch, &extract)?;
                let mut texts = Vec::with_capacity(batch.len());
                let mut bad = Vec::new();
                match (&batch.data, batch.file.format) {
                    (BatchData::Jsonl { buf, lines }, InputFormat::Text(_)) => {
                        for span in lines {
                            let location = Location::Line(span.line);
                            match std::str::from_utf8(&buf[span.start..span.end]) {
                                Ok(t) => texts.push(Text {
                                    text: Cow::Borrowed(t),
                                    file,
                                    location,
                                }),
                                Err(e) => {
                                    bad.push((location, RecordError::InvalidUtf8(e.to_string())))
                                }
                            }
                        }
                    }
                    _ => {
                        let docs = pool.install(|| extract_docs(&batch, &cols, &extract));
                        for (i, d) in docs.into_iter().enumerate() {
                            match d {
                                Ok(d) => texts.push(Text {
                                    text: d.text,
                                    file,
                                    location: d.location,
                                }),
                                Err(e) => {
                                    let location = match &batch.data {
                                        BatchData::Jsonl { lines, .. } => {
                                            Location::Line(lines[i].line)
                                        }
                                        BatchData::Arrow { first_row, .. } => {
                                            Location::Row(first_row + i as u64)
                                        }
                                    };
                                    bad.push((location, e));
                                }
                            }
                        }
                    }
                }
                for (location, e) in bad {
                    skip_or_fail(opts, &mut summary, &batch.file.display, location, e)?;
                }
                summary.documents += texts.len() as u64;
                summary.text_bytes += texts.iter().map(|t| t.text.len() as u64).sum::<u64>();
                each(&texts)?;
                progress.update(bytes_in.load(Ordering::Relaxed), summary.documents);
            }
            Ok(())
        })();
        drop(rx);
        let read = reader
            .join()
            .map_err(|_| Error::Config("the reader thread panicked".into()))?;
        consumed?;
        read
    })?;
    progress.finish();
    Ok(summary)
}

/// Read the texts of `inputs` (JSONL and Parquet records' `text_key`, `.txt` files one document
/// per non-blank line) in order, calling `each` with every batch of them: how Python's training
/// and evaluation code reads corpora without parsing records itself.
pub fn read_texts(
    inputs: &[String],
    opts: &CorpusOptions,
    progress: &dyn Progress,
    mut each: impl FnMut(Vec<String>) -> Result<()>,
) -> Result<CorpusSummary> {
    let pool = crate::pipeline::thread_pool(opts.threads)?;
    for_each_batch(inputs, opts, &pool, progress, |texts| {
        each(texts.iter().map(|t| t.text.to_string()).collect())
    })
}

fn skip_or_fail(
    opts: &CorpusOptions,
    summary: &mut CorpusSummary,
    path: &str,
    location: Location,
    error: RecordError,
) -> Result<()> {
    match opts.on_error {
        OnError::Fail => Err(Error::Record {
            path: path.to_string(),
            location,
            error,
        }),
        OnError::Skip => {
            *summary.skipped.entry(error.slug().to_string()).or_default() += 1;
            Ok(())
        }
    }
}

/// Call `f` on each word of `text` as the base tokenizer sees it: added (special) tokens are
/// cut out first, then the normalizer and pre-tokenizer run. For SentencePiece-style models,
/// words are also cut before each `▁` that follows another character, because SentencePiece
/// allows `▁` only at the start of a piece (legacy files have no pre-tokenizer at all).
pub(crate) fn for_each_word(
    tokenizer: &Tokenizer,
    kind: ModelKind,
    text: &str,
    mut f: impl FnMut(&str),
) -> Result<()> {
    let mut pre = tokenizer
        .get_added_vocabulary()
        .extract_and_normalize(tokenizer.get_normalizer(), text);
    if let Some(p) = tokenizer.get_pre_tokenizer() {
        p.pre_tokenize(&mut pre)
            .map_err(|e| Error::Config(format!("pre-tokenizer failed: {e}")))?;
    }
    for (word, _, tokens) in pre.get_splits(OffsetReferential::Normalized, OffsetType::None) {
        if tokens.is_some() || word.is_empty() {
            continue;
        }
        if kind == ModelKind::SentencePiece {
            let mut start = 0;
            let mut prev_is_mark = true;
            for (i, c) in word.char_indices() {
                let mark = c == '▁';
                if mark && !prev_is_mark && i > start {
                    f(&word[start..i]);
                    start = i;
                }
                prev_is_mark = mark;
            }
            f(&word[start..]);
        } else {
            f(word);
        }
    }
    Ok(())
}

/// Count the base tokenizer's words over a corpus.
pub(crate) fn count_words(
    tokenizer: &Tokenizer,
    kind: ModelKind,
    inputs: &[String],
    opts: &CorpusOptions,
    pool: &rayon::ThreadPool,
    progress: &dyn Progress,
) -> Result<(WordCounts, CorpusSummary)> {
    let mut counts = WordCounts::default();
    let summary = for_each_batch(inputs, opts, pool, progress, |texts| {
        let batch: WordCounts = pool.install(|| {
            texts
                .par_iter()
                .with_min_len(16)
                .try_fold(WordCounts::default, |mut m, t| {
                    for_each_word(tokenizer, kind, &t.text, |w| match m.get_mut(w) {
                        Some(c) => *c += 1,
                        None => {
                            m.insert(w.to_string(), 1);
                        }
                    })
                    .map_err(|e| with_origin(e, t))?;
                    Ok::<_, Error>(m)
                })
                .try_reduce(WordCounts::default, |a, b| Ok(merge(a, b)))
        })?;
        counts = merge(std::mem::take(&mut counts), batch);
        Ok(())
    })?;
    Ok((counts, summary))
}

fn with_origin(e: Error, t: &Text<'_>) -> Error {
    Error::Config(format!("{}: {e}", t.origin()))
}

fn merge(a: WordCounts, b: WordCounts) -> WordCounts {
    let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    for (w, c) in small {
        *big.entry(w).or_default() += c;
    }
    big
}
