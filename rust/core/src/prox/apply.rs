//! Corpus-level ProX: `tamis prox apply` (run the stored programs of every record) and
//! `tamis prox prompts` (write the exact prompts the refining models read).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, StructArray};
use arrow_schema::DataType;
use rayon::prelude::*;
use serde_json::value::RawValue;

use super::chunk::{chunk_prompts_with, split_chunks_with, ChunkOptions};
use super::count::LineCounter;
use super::prompt::{doc_prompt, load_tokenizer, PromptTemplate};
use super::{execute_doc, explain_chunk, Acceptance, Mode, Outcome, Reason};
use crate::error::{json_type_name, Location};
use crate::io::record::raw_str;
use crate::io::{
    expand_inputs, extract_docs, read_batches, AtomicFile, Batch, BatchColumns, BatchData,
    Compression, Doc, DocSource, FieldEdit, FieldValue, JsonFields, OnError, Output, OutputFormat,
    ReadItem, RejectsWriter,
};
use crate::pipeline::{run, skip_or_fail, thread_pool, Decision, Progress, RunOptions, Stage};
use crate::{Error, RecordError, Result, Stats};

/// Options of `prox apply`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyOptions {
    /// How programs are read.
    pub mode: Mode,
    /// The acceptance rule of chunk programs.
    pub accept: Acceptance,
    /// Field of the document program (dotted for nested fields, e.g. `metadata.doc_program`);
    /// `None` skips the document stage.
    pub doc_program_key: Option<String>,
    /// Field of the chunk (document-wide) program; `None` skips the chunk stage.
    pub chunk_program_key: Option<String>,
    /// Top-level field that receives the original text when the record lacks it; `None` to
    /// leave records without it.
    pub raw_key: Option<String>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            mode: Mode::Compat,
            accept: Acceptance::default(),
            doc_program_key: Some("doc_program".into()),
            chunk_program_key: Some("chunk_program".into()),
            raw_key: Some("raw_content".into()),
        }
    }
}

/// Look up a field of a JSON record: the key itself, or else a dotted path into nested objects.
fn json_field(raw: &str, key: &str) -> std::result::Result<String, RecordError> {
    let missing = || RecordError::MissingField(key.to_string());
    let fields: JsonFields<'_> =
        serde_json::from_str(raw).map_err(|e| RecordError::InvalidJson(e.to_string()))?;
    let value: &RawValue = match fields.get(key) {
        Some(v) => v,
        None => {
            let mut parts = key.split('.');
            let first = parts.next().ok_or_else(missing)?;
            let mut v = fields
                .get(first)
                .filter(|_| key.contains('.'))
                .ok_or_else(missing)?;
            for part in parts {
                let inner: JsonFields<'_> = serde_json::from_str(v.get()).map_err(|_| missing())?;
                v = inner.get(part).ok_or_else(missing)?;
            }
            v
        }
    };
    match raw_str(value) {
        Ok(s) => Ok(s.into_owned()),
        Err(_) => Err(RecordError::FieldNotString {
            key: key.to_string(),
            found: json_type_name(value.get()),
        }),
    }
}

/// A column of a Parquet batch by name, or by dotted path through struct columns.
fn arrow_field(rb: &RecordBatch, key: &str) -> std::result::Result<StringArray, RecordError> {
    let missing = || RecordError::MissingField(key.to_string());
    let column: ArrayRef = match rb.column_by_name(key) {
        Some(c) => c.clone(),
        None if key.contains('.') => {
            let mut parts = key.split('.');
            let first = parts.next().ok_or_else(missing)?;
            let mut col = rb.column_by_name(first).ok_or_else(missing)?.clone();
            for part in parts {
                let s = col
                    .as_any()
                    .downcast_ref::<StructArray>()
                    .ok_or_else(missing)?;
                let child = s.column_by_name(part).ok_or_else(missing)?.clone();
                // A null parent makes the child null too.
                col = if s.null_count() > 0 {
                    let parent_null: BooleanArray =
                        (0..s.len()).map(|i| Some(s.is_null(i))).collect();
                    arrow_select::nullif::nullif(&child, &parent_null).map_err(|_| missing())?
                } else {
                    child
                };
            }
            col
        }
        None => return Err(missing()),
    };
    let not_string = || RecordError::FieldNotString {
        key: key.to_string(),
        found: "a non-string column",
    };
    if !matches!(
        column.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) && !matches!(column.data_type(), DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
    {
        return Err(not_string());
    }
    let cast = arrow_cast::cast(&column, &DataType::Utf8).map_err(|_| not_string())?;
    cast.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(not_string)
}

type Column = Option<std::result::Result<StringArray, RecordError>>;

/// The stage behind `prox apply`.
#[derive(Debug)]
pub struct ProxApply {
    opts: ApplyOptions,
    /// Program columns of the current Parquet batch, and whether it has the raw field.
    doc_col: Column,
    chunk_col: Column,
    batch_has_raw: bool,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    program_errors: u64,
    programs_discarded: u64,
    lines_removed: u64,
    replacements: u64,
}

/// What `prepare` found for one document.
#[derive(Debug)]
pub struct Applied {
    result: std::result::Result<Done, RecordError>,
}

#[derive(Debug)]
struct Done {
    /// `Some(reason)` when dropped.
    dropped: Option<&'static str>,
    /// The new text, when it changed.
    text: Option<String>,
    /// Whether the record already has the raw field.
    has_raw: bool,
    errors: u64,
    discarded: bool,
    lines_removed: u64,
    replacements: u64,
}

impl ProxApply {
    /// A stage with these options.
    pub fn new(opts: ApplyOptions) -> Result<Self> {
        crate::options::Options::validate(&opts.accept)?;
        if opts.doc_program_key.is_none() && opts.chunk_program_key.is_none() {
            return Err(Error::Config(
                "prox apply needs a document program, a chunk program, or both".into(),
            ));
        }
        Ok(ProxApply {
            opts,
            doc_col: None,
            chunk_col: None,
            batch_has_raw: false,
            counters: Counters::default(),
        })
    }

    fn program(
        &self,
        doc: &Doc<'_>,
        key: &str,
        col: &Column,
    ) -> std::result::Result<String, RecordError> {
        match (&doc.source, col) {
            (DocSource::Json { raw }, _) => json_field(raw, key),
            (DocSource::Row(i), Some(Ok(c))) => {
                if c.is_null(*i) {
                    Err(RecordError::FieldNotString {
                        key: key.to_string(),
                        found: "null",
                    })
                } else {
                    Ok(c.value(*i).to_string())
                }
            }
            (DocSource::Row(_), Some(Err(e))) => Err(e.clone()),
            (DocSource::Row(_), None) => Err(RecordError::MissingField(key.to_string())),
        }
    }

    fn has_raw(&self, doc: &Doc<'_>) -> bool {
        let Some(raw_key) = &self.opts.raw_key else {
            return true;
        };
        match &doc.source {
            DocSource::Json { raw } => serde_json::from_str::<JsonFields<'_>>(raw)
                .map(|f| f.get(raw_key).is_some())
                .unwrap_or(false),
            DocSource::Row(_) => self.batch_has_raw,
        }
    }

    fn run_doc(&self, doc: &Doc<'_>) -> std::result::Result<Done, RecordError> {
        let doc_program = match &self.opts.doc_program_key {
            Some(k) => Some(self.program(doc, k, &self.doc_col)?),
            None => None,
        };
        let chunk_program = match &self.opts.chunk_program_key {
            Some(k) => Some(self.program(doc, k, &self.chunk_col)?),
            None => None,
        };
        let mut done = Done {
            dropped: None,
            text: None,
            has_raw: self.has_raw(doc),
            errors: 0,
            discarded: false,
            lines_removed: 0,
            replacements: 0,
        };
        if let Some(p) = doc_program {
            if execute_doc(&doc.text, &p, self.opts.mode).is_empty() && !doc.text.is_empty() {
                done.dropped = Some(Reason::DropDoc.as_str());
                return Ok(done);
            }
            if self.opts.chunk_program_key.is_none() && super::pyrt::word_count(&doc.text) == 0 {
                // No words (empty or only whitespace): the reference's next stage would divide
                // by zero on it; drop it, as the chunk stage does.
                done.dropped = Some(Reason::NoWords.as_str());
                return Ok(done);
            }
        }
        if let Some(p) = chunk_program {
            let e = explain_chunk(&doc.text, &p, self.opts.mode, &self.opts.accept);
            done.errors = e.errors.len() as u64;
            match e.outcome {
                Outcome::Dropped => done.dropped = Some(e.reason.as_str()),
                Outcome::Original => done.discarded = true,
                Outcome::Edited => {
                    done.lines_removed = e
                        .removed_lines
                        .iter()
                        .map(|(a, b)| (b - a + 1) as u64)
                        .sum();
                    done.replacements = e.replacements.iter().map(|r| r.count as u64).sum();
                    if e.text != doc.text {
                        done.text = Some(e.text);
                    }
                }
            }
        }
        Ok(done)
    }
}

impl Stage for ProxApply {
    type Prepared = Applied;

    fn begin_batch(&mut self, batch: &Batch) {
        let rb = match &batch.data {
            BatchData::Arrow { batch, .. } => batch,
            BatchData::Jsonl { .. } => {
                self.doc_col = None;
                self.chunk_col = None;
                return;
            }
        };
        self.doc_col = self
            .opts
            .doc_program_key
            .as_ref()
            .map(|k| arrow_field(rb, k));
        self.chunk_col = self
            .opts
            .chunk_program_key
            .as_ref()
            .map(|k| arrow_field(rb, k));
        self.batch_has_raw = self
            .opts
            .raw_key
            .as_ref()
            .is_some_and(|k| rb.column_by_name(k).is_some());
    }

    fn prepare(&self, doc: &Doc<'_>) -> Applied {
        Applied {
            result: self.run_doc(doc),
        }
    }

    fn decide(&mut self, doc: &Doc<'_>, prepared: Applied) -> Decision {
        let done = match prepared.result {
            Ok(d) => d,
            Err(e) => return Decision::Reject(e),
        };
        self.counters.program_errors += done.errors;
        self.counters.programs_discarded += u64::from(done.discarded);
        self.counters.lines_removed += done.lines_removed;
        self.counters.replacements += done.replacements;
        if let Some(reason) = done.dropped {
            return Decision::Remove(reason.into());
        }
        let fields = match (&self.opts.raw_key, done.has_raw) {
            (Some(k), false) => vec![FieldEdit::set(
                Arc::from(k.as_str()),
                FieldValue::Str(doc.text.to_string()),
            )],
            _ => Vec::new(),
        };
        if fields.is_empty() && done.text.is_none() {
            Decision::Keep
        } else {
            Decision::Edit {
                text: done.text,
                fields,
            }
        }
    }

    fn finish(&mut self, stats: &mut Stats) {
        stats.set_counter("program_errors", self.counters.program_errors);
        stats.set_counter("programs_discarded", self.counters.programs_discarded);
        stats.set_counter("lines_removed", self.counters.lines_removed);
        stats.set_counter("replacements", self.counters.replacements);
    }
}

/// Run `prox apply` over `inputs`.
pub fn apply(
    inputs: &[String],
    output: &Output,
    run_opts: &RunOptions,
    opts: ApplyOptions,
    progress: &dyn Progress,
) -> Result<Stats> {
    let mut stage = ProxApply::new(opts)?;
    run("prox apply", inputs, output, run_opts, &mut stage, progress)
}

/// Which prompts to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptStage {
    #[default]
    /// One prompt per document, as token ids (what the reference sends) and text.
    Doc,
    /// One prompt per chunk.
    Chunk,
}

impl std::str::FromStr for PromptStage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "doc" => Ok(PromptStage::Doc),
            "chunk" => Ok(PromptStage::Chunk),
            other => Err(Error::Config(format!(
                "unknown ProX stage {other:?}: expected doc or chunk"
            ))),
        }
    }
}

/// Options of `prox prompts` (and of the prompts `prox annotate` labels).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptOptions {
    /// Document or chunk stage.
    pub stage: PromptStage,
    /// The refining model's `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// Chat template.
    pub template: PromptTemplate,
    /// Token limit of a document prompt (reference: 2000).
    pub doc_max_tokens: usize,
    /// Chunking.
    pub chunk: ChunkOptions,
}

impl Default for PromptOptions {
    fn default() -> Self {
        PromptOptions {
            stage: PromptStage::Doc,
            tokenizer: PathBuf::new(),
            template: PromptTemplate::llama2(),
            doc_max_tokens: 2000,
            chunk: ChunkOptions::default(),
        }
    }
}

impl crate::options::Options for PromptOptions {
    fn validate(&self) -> std::result::Result<(), crate::options::OptionError> {
        if self.tokenizer.as_os_str().is_empty() {
            return Err(crate::options::OptionError::new(
                "tokenizer",
                "must name the refining model's tokenizer.json",
            ));
        }
        crate::options::check_range(
            "doc_max_tokens",
            self.doc_max_tokens,
            Some(1),
            Some(1 << 24),
        )?;
        self.template.validate()?;
        self.chunk.validate()
    }
}

/// JSON lines of one document's prompts, the number of prompts, and whether one was truncated.
type PromptLines = (Vec<u8>, u64, u64);

fn prompt_lines(
    counter: &LineCounter<'_>,
    doc: &Doc<'_>,
    opts: &PromptOptions,
) -> Result<PromptLines> {
    let tok = counter.tokenizer();
    #[derive(serde::Serialize)]
    struct DocLine<'a> {
        id: &'a str,
        prompt: &'a str,
        prompt_token_ids: &'a [u32],
        truncated: bool,
    }
    #[derive(serde::Serialize)]
    struct ChunkLine<'a> {
        id: &'a str,
        chunk: usize,
        chunks: usize,
        prompt: &'a str,
    }
    let mut out = Vec::new();
    let ser = |e: serde_json::Error| Error::Config(e.to_string());
    match opts.stage {
        PromptStage::Doc => {
            let p = doc_prompt(tok, &doc.text, &opts.template, opts.doc_max_tokens)?;
            serde_json::to_writer(
                &mut out,
                &DocLine {
                    id: &doc.id,
                    prompt: &p.text,
                    prompt_token_ids: &p.ids,
                    truncated: p.truncated,
                },
            )
            .map_err(ser)?;
            out.push(b'\n');
            Ok((out, 1, u64::from(p.truncated)))
        }
        PromptStage::Chunk => {
            let prompts = chunk_prompts_with(counter, &doc.text, &opts.chunk, &opts.template)?;
            for (i, p) in prompts.iter().enumerate() {
                serde_json::to_writer(
                    &mut out,
                    &ChunkLine {
                        id: &doc.id,
                        chunk: i,
                        chunks: prompts.len(),
                        prompt: p,
                    },
                )
                .map_err(ser)?;
                out.push(b'\n');
            }
            Ok((out, prompts.len() as u64, 0))
        }
    }
}

/// Run `prox prompts`: one JSON line per prompt (`{"id", "prompt", "prompt_token_ids",
/// "truncated"}` per document, or `{"id", "chunk", "chunks", "prompt"}` per chunk), in input
/// order, to a JSONL output (plain, `.gz`, `.zst` or `-`).
pub fn prompts(
    inputs: &[String],
    output: &Output,
    run_opts: &RunOptions,
    opts: &PromptOptions,
    progress: &dyn Progress,
) -> Result<Stats> {
    let OutputFormat::Jsonl(compression) = output.format else {
        return Err(Error::Config(
            "prox prompts writes JSONL (.jsonl, .jsonl.gz, .jsonl.zst or -)".into(),
        ));
    };
    let files = expand_inputs(inputs)?;
    if let Some(p) = &output.path {
        let out = crate::pipeline::resolved(p);
        if files
            .iter()
            .filter_map(|f| f.path.as_deref())
            .any(|i| crate::pipeline::resolved(i) == out)
        {
            return Err(Error::Config(format!(
                "{}: the output is also an input",
                p.display()
            )));
        }
    }
    if run_opts.rejects.is_some() && run_opts.on_error == OnError::Fail {
        return Err(Error::Config("--rejects needs --on-error skip".into()));
    }
    let display = output.display();
    let (atomic, sink): (Option<AtomicFile>, Box<dyn Write>) = match &output.path {
        Some(p) => {
            let (a, f) = AtomicFile::create(p)?;
            (Some(a), Box::new(f))
        }
        None => (None, Box::new(std::io::stdout())),
    };
    let buffered = std::io::BufWriter::with_capacity(1 << 20, sink);
    let mut out: Box<dyn Write> = match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::write::GzEncoder::new(
            buffered,
            flate2::Compression::new(6),
        )),
        Compression::Zstd => Box::new(
            zstd::stream::write::Encoder::new(buffered, 3)
                .map_err(|e| Error::io(&display, e))?
                .auto_finish(),
        ),
    };
    let (mut n_prompts, mut n_truncated, mut bytes_out) = (0u64, 0u64, 0u64);
    let mut stats = for_each_prompted(
        "prox prompts",
        &files,
        run_opts,
        opts,
        progress,
        |counter, doc| prompt_lines(counter, doc, opts),
        |(bytes, n, t)| {
            n_prompts += n;
            n_truncated += t;
            bytes_out += bytes.len() as u64;
            out.write_all(&bytes).map_err(|e| Error::io(&display, e))
        },
    )?;
    out.flush().map_err(|e| Error::io(&display, e))?;
    drop(out);
    if let Some(a) = atomic {
        a.commit()?;
    }
    stats.set_counter("prompts", n_prompts);
    stats.set_counter("truncated", n_truncated);
    stats.bytes_written = bytes_out;
    Ok(stats)
}

/// One prompt of the refining models with what an annotator needs next to it (`tamis prox
/// annotate`): the document or chunk text and where the chunk's lines sit in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptItem {
    /// The document's id.
    pub id: String,
    /// Index of the chunk in its document (0 for a document prompt).
    pub chunk: usize,
    /// Chunks of the document (1 for a document prompt).
    pub chunks: usize,
    /// The prompt exactly as `prox prompts` writes it.
    pub prompt: String,
    /// Token ids of a document prompt (empty for a chunk).
    pub prompt_token_ids: Vec<u32>,
    /// Whether a document prompt was truncated.
    pub truncated: bool,
    /// The numbered lines of a chunk (`[000]...`), or the document text.
    pub body: String,
    /// The chunk's lines without numbers, or the document text.
    pub text: String,
    /// Document-global index of the chunk's first line (0 for a document).
    pub first_line: usize,
    /// Lines in the chunk (or the document).
    pub lines: usize,
}

fn prompt_items(
    counter: &LineCounter<'_>,
    doc: &Doc<'_>,
    opts: &PromptOptions,
) -> Result<Vec<PromptItem>> {
    prompt_items_of(counter, &doc.id, &doc.text, opts)
}

/// The [`PromptItem`]s of one document (none for an empty document at the chunk stage).
pub fn prompt_items_of(
    counter: &LineCounter<'_>,
    id: &str,
    text: &str,
    opts: &PromptOptions,
) -> Result<Vec<PromptItem>> {
    let tok = counter.tokenizer();
    let doc = Doc0 { id, text };
    match opts.stage {
        PromptStage::Doc => {
            let p = doc_prompt(tok, doc.text, &opts.template, opts.doc_max_tokens)?;
            Ok(vec![PromptItem {
                id: doc.id.to_string(),
                chunk: 0,
                chunks: 1,
                prompt: p.text,
                prompt_token_ids: p.ids,
                truncated: p.truncated,
                body: doc.text.to_string(),
                text: doc.text.to_string(),
                first_line: 0,
                lines: doc.text.split('\n').count(),
            }])
        }
        PromptStage::Chunk => {
            if doc.text.is_empty() {
                return Ok(Vec::new());
            }
            let bodies = split_chunks_with(counter, doc.text, &opts.chunk)?;
            let all: Vec<&str> = doc.text.split('\n').collect();
            let mut first = 0usize;
            let n = bodies.len();
            let mut items = Vec::with_capacity(n);
            for (i, body) in bodies.into_iter().enumerate() {
                let lines = body.split('\n').count();
                let text = all[first..first + lines].join("\n");
                let prompt = opts
                    .template
                    .render(&format!("{}{body}{}", opts.chunk.open, opts.chunk.close));
                items.push(PromptItem {
                    id: doc.id.to_string(),
                    chunk: i,
                    chunks: n,
                    prompt,
                    prompt_token_ids: Vec::new(),
                    truncated: false,
                    body,
                    text,
                    first_line: first,
                    lines,
                });
                first += lines;
            }
            Ok(items)
        }
    }
}

struct Doc0<'a> {
    id: &'a str,
    text: &'a str,
}

/// The prompts of every document of `inputs` with their texts ([`PromptItem`]), handed to
/// `sink` document by document in input order; bad records fail or are skipped as `run_opts`
/// says (rejects included).
pub fn prompt_items_each(
    inputs: &[String],
    run_opts: &RunOptions,
    opts: &PromptOptions,
    progress: &dyn Progress,
    sink: impl FnMut(Vec<PromptItem>) -> Result<()>,
) -> Result<Stats> {
    if run_opts.rejects.is_some() && run_opts.on_error == OnError::Fail {
        return Err(Error::Config("--rejects needs --on-error skip".into()));
    }
    let files = expand_inputs(inputs)?;
    for_each_prompted(
        "prox annotate",
        &files,
        run_opts,
        opts,
        progress,
        |counter, doc| prompt_items(counter, doc, opts),
        sink,
    )
}

/// Read `files`, build each document's value with `make` (in parallel) and hand them to
/// `sink` in input order; bad records fail or are skipped as `run_opts` says.
fn for_each_prompted<T: Send>(
    command: &str,
    files: &[crate::io::InputFile],
    run_opts: &RunOptions,
    opts: &PromptOptions,
    progress: &dyn Progress,
    make: impl Fn(&LineCounter<'_>, &Doc<'_>) -> Result<T> + Sync,
    mut sink: impl FnMut(T) -> Result<()>,
) -> Result<Stats> {
    let started = Instant::now();
    let tok = load_tokenizer(&opts.tokenizer)?;
    let counter = LineCounter::new(&tok);
    let pool = thread_pool(run_opts.threads)?;
    let mut rejects = match &run_opts.rejects {
        Some(p) => Some(RejectsWriter::create(p)?),
        None => None,
    };
    let mut stats = Stats {
        command: command.into(),
        input_files: files.len(),
        threads: pool.current_num_threads(),
        ..Stats::default()
    };
    let bytes_in = Arc::new(AtomicU64::new(0));
    progress.start(
        files
            .iter()
            .filter_map(|f| f.path.as_ref())
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum(),
    );
    let mut failure: Option<Error> = None;
    let mut handle = |item: ReadItem| -> Result<()> {
        let batch = match item {
            ReadItem::Batch(b) => b,
            ReadItem::Corrupt {
                file,
                location,
                message,
                ..
            } => {
                stats.documents_read += 1;
                return skip_or_fail(
                    run_opts,
                    &mut stats,
                    &mut rejects.as_mut(),
                    &file.display,
                    location,
                    RecordError::CorruptFile(message),
                    None,
                );
            }
        };
        let cols = BatchColumns::new(&batch, &run_opts.extract)?;
        let (docs, made) = pool.install(|| {
            let docs = extract_docs(&batch, &cols, &run_opts.extract);
            let made: Vec<Option<Result<T>>> = docs
                .par_iter()
                .with_min_len(8)
                .map(|d| d.as_ref().ok().map(|d| make(&counter, d)))
                .collect();
            (docs, made)
        });
        for (index, (doc, value)) in docs.into_iter().zip(made).enumerate() {
            stats.documents_read += 1;
            match (doc, value) {
                (Ok(d), Some(Ok(v))) => {
                    stats.documents_kept += 1;
                    stats.text_bytes_read += d.text.len() as u64;
                    sink(v)?;
                }
                (Ok(_), Some(Err(e))) => return Err(e),
                (Err(e), _) => {
                    let (raw, location) = match &batch.data {
                        BatchData::Jsonl { buf, lines } => {
                            let s = lines[index];
                            (Some(&buf[s.start..s.end]), Location::Line(s.line))
                        }
                        BatchData::Arrow { first_row, .. } => {
                            (None, Location::Row(first_row + index as u64))
                        }
                    };
                    skip_or_fail(
                        run_opts,
                        &mut stats,
                        &mut rejects.as_mut(),
                        &batch.file.display,
                        location,
                        e,
                        raw,
                    )?;
                }
                (Ok(_), None) => {}
            }
        }
        progress.update(bytes_in.load(Ordering::Relaxed), stats.documents_read);
        Ok(())
    };
    let read = read_batches(
        files,
        run_opts.batch_bytes,
        bytes_in.clone(),
        |item| match handle(item) {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        },
    );
    if let Some(e) = failure {
        return Err(e);
    }
    read?;
    if let Some(r) = rejects {
        r.finish()?;
    }
    progress.finish();
    stats.input_bytes = bytes_in.load(Ordering::Relaxed);
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}
