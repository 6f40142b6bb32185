//! Output writers: JSONL (plain, `.gz`, `.zst`) or Parquet, chosen by the extension; `-` is JSONL
//! on stdout. Files are written through [`AtomicFile`]: nothing appears under the output name
//! unless the whole run succeeds.

use std::fs::File;
use std::io::{BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::atomic::AtomicFile;
use super::batch::{Batch, BatchData, LineSpan};
use super::input::Compression;
use super::record::{ExtractOptions, JsonFields};
use crate::{Error, Result};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// JSON lines, optionally compressed.
    Jsonl(Compression),
    /// Apache Parquet (zstd-compressed pages).
    Parquet,
}

/// Where and how to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// `None` for standard output.
    pub path: Option<PathBuf>,
    /// Format, from the extension.
    pub format: OutputFormat,
}

impl Output {
    /// `-` is JSONL on stdout; otherwise `.parquet`, `.gz`, `.zst` or plain JSONL.
    pub fn parse(spec: &str) -> Result<Self> {
        if let Some(ext) = super::input::unsupported_compression(spec) {
            return Err(Error::Config(format!(
                "{spec}: {ext} compression is not supported; write .jsonl, .jsonl.gz, .jsonl.zst or .parquet"
            )));
        }
        Ok(Self::parse_known(spec))
    }

    fn parse_known(spec: &str) -> Self {
        if spec == "-" {
            return Output {
                path: None,
                format: OutputFormat::Jsonl(Compression::None),
            };
        }
        let lower = spec.to_lowercase();
        let format = if lower.ends_with(".parquet") || lower.ends_with(".pq") {
            OutputFormat::Parquet
        } else if lower.ends_with(".gz") {
            OutputFormat::Jsonl(Compression::Gzip)
        } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
            OutputFormat::Jsonl(Compression::Zstd)
        } else {
            OutputFormat::Jsonl(Compression::None)
        };
        Output {
            path: Some(PathBuf::from(spec)),
            format,
        }
    }

    /// How the output is named in messages.
    pub fn display(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "<stdout>".into(), |p| p.display().to_string())
    }
}

/// Counts bytes written.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

type Base = Counting<Box<dyn Write + Send>>;

enum JsonlSink {
    Plain(BufWriter<Base>),
    Gzip(flate2::write::GzEncoder<BufWriter<Base>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<Base>>),
}

impl JsonlSink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            JsonlSink::Plain(w) => w,
            JsonlSink::Gzip(w) => w,
            JsonlSink::Zstd(w) => w,
        }
    }

    fn finish(self) -> std::io::Result<u64> {
        let mut buffered = match self {
            JsonlSink::Plain(w) => w,
            JsonlSink::Gzip(w) => w.finish()?,
            JsonlSink::Zstd(w) => w.finish()?,
        };
        buffered.flush()?;
        let base = buffered.into_inner().map_err(|e| e.into_error())?;
        Ok(base.count)
    }
}

struct ParquetSink {
    /// Fields stages set on records (which the input lines may lack), typed, first seen first.
    set_fields: Vec<Field>,
    file: Option<File>,
    writer: Option<ArrowWriter<Counting<File>>>,
    schema: Option<SchemaRef>,
    decoder: Option<arrow_json::reader::Decoder>,
}

enum Sink {
    Jsonl(JsonlSink),
    Parquet(Box<ParquetSink>),
}

/// Writes kept documents, in order, to one output.
pub struct OutputWriter {
    sink: Sink,
    atomic: Option<AtomicFile>,
    display: String,
    opts: ExtractOptions,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for OutputWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputWriter")
            .field("output", &self.display)
            .finish()
    }
}

/// A record to write: its index in the batch, its new text if a stage rewrote it, its
/// generated id if it had none, and fields stages set. Owned, so writing can run on its own
/// thread.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteItem {
    /// Index of the record in its batch.
    pub index: usize,
    /// Replacement text.
    pub new_text: Option<String>,
    /// Id to add (the record had none, or null).
    pub generated_id: Option<String>,
    /// Fields to set: replaced where the record has them, added at the end otherwise. Every
    /// item of a batch should name the same fields (a Parquet column is null where one lacks it).
    pub extra: Vec<FieldEdit>,
}

/// A field a stage sets on a record.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldEdit {
    /// Top-level field, or the object holding the field (`metadata` for `metadata.language`).
    pub name: Arc<str>,
    /// The field inside the object `name` (one level: `metadata.language`), if any.
    pub child: Option<Arc<str>>,
    /// The value.
    pub value: FieldValue,
    /// Set only where the record lacks the field (or holds null there).
    pub if_absent: bool,
}

impl FieldEdit {
    /// Set top-level field `name`.
    pub fn set(name: Arc<str>, value: FieldValue) -> Self {
        FieldEdit {
            name,
            child: None,
            value,
            if_absent: false,
        }
    }

    /// A field given as a path: `language` or `metadata.language` (split at the first dot).
    pub fn at_path(path: &str, value: FieldValue, if_absent: bool) -> Self {
        let (name, child) = match path.split_once('.') {
            Some((a, b)) => (Arc::from(a), Some(Arc::from(b))),
            None => (Arc::from(path), None),
        };
        FieldEdit {
            name,
            child,
            value,
            if_absent,
        }
    }

    /// The path as written by [`FieldEdit::at_path`].
    pub fn path(&self) -> String {
        match &self.child {
            Some(c) => format!("{}.{c}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// The value of a field set by a stage.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A 64-bit integer (Int64 in Parquet).
    Int(i64),
    /// A finite 64-bit float, written in its shortest exact form (Float64 in Parquet).
    Float(f64),
    /// A string (Utf8 in Parquet).
    Str(String),
    /// true or false.
    Bool(bool),
    /// null.
    Null,
    /// Byte ranges `[[start, end], ...]` (a list of two-integer lists; in Parquet
    /// `list<list<int64>>`).
    Spans(Vec<(u64, u64)>),
    /// A list of strings (`list<utf8>` in Parquet), e.g. the matched ids of `dup_of`.
    Strs(Vec<String>),
}

impl FieldValue {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            FieldValue::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            FieldValue::Float(f) if f.is_finite() => {
                // serde_json writes the shortest repr that reads back exactly (as Python does).
                let _ = serde_json::to_writer(&mut *out, f);
            }
            FieldValue::Float(_) | FieldValue::Null => out.extend_from_slice(b"null"),
            FieldValue::Str(s) => write_json_str(out, s),
            FieldValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            FieldValue::Spans(spans) => {
                out.push(b'[');
                for (i, (a, b)) in spans.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(format!("[{a},{b}]").as_bytes());
                }
                out.push(b']');
            }
            FieldValue::Strs(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_json_str(out, item);
                }
                out.push(b']');
            }
        }
    }

    /// The value as JSON text.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    fn as_text(&self) -> Option<String> {
        match self {
            FieldValue::Int(i) => Some(i.to_string()),
            FieldValue::Float(f) => Some(f.to_string()),
            FieldValue::Str(s) => Some(s.clone()),
            FieldValue::Bool(b) => Some(b.to_string()),
            FieldValue::Spans(_) | FieldValue::Strs(_) => Some(self.to_json()),
            FieldValue::Null => None,
        }
    }
}

fn io_err(path: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

impl OutputWriter {
    /// Open `output`; `opts` names the text and id fields to rewrite.
    pub fn create(output: &Output, opts: &ExtractOptions) -> Result<Self> {
        let display = output.display();
        let (atomic, file) = match &output.path {
            Some(p) => {
                check_parent(p)?;
                let (a, f) = AtomicFile::create(p)?;
                (Some(a), Some(f))
            }
            None => (None, None),
        };
        let sink = match output.format {
            OutputFormat::Parquet => Sink::Parquet(Box::new(ParquetSink {
                set_fields: Vec::new(),
                file,
                writer: None,
                schema: None,
                decoder: None,
            })),
            OutputFormat::Jsonl(c) => {
                let inner: Box<dyn Write + Send> = match file {
                    Some(f) => Box::new(f),
                    None => Box::new(std::io::stdout()),
                };
                let base = BufWriter::with_capacity(1 << 20, Counting { inner, count: 0 });
                Sink::Jsonl(match c {
                    Compression::None => JsonlSink::Plain(base),
                    Compression::Gzip => JsonlSink::Gzip(flate2::write::GzEncoder::new(
                        base,
                        flate2::Compression::new(6),
                    )),
                    Compression::Zstd => JsonlSink::Zstd(
                        zstd::stream::write::Encoder::new(base, 3).map_err(io_err(&display))?,
                    ),
                })
            }
        };
        Ok(OutputWriter {
            sink,
            atomic,
            display,
            opts: opts.clone(),
            scratch: Vec::new(),
        })
    }

    /// Write the kept records of `batch`, in order.
    pub fn write(&mut self, batch: &Batch, items: &[WriteItem]) -> Result<()> {
        match &batch.data {
            BatchData::Jsonl { buf, lines } => match &mut self.sink {
                Sink::Jsonl(sink) => emit_jsonl(
                    sink.writer(),
                    batch,
                    buf,
                    lines,
                    items,
                    &self.opts,
                    &self.display,
                ),
                Sink::Parquet(p) => {
                    p.note_fields(items);
                    let mut bytes = std::mem::take(&mut self.scratch);
                    bytes.clear();
                    emit_jsonl(
                        &mut bytes,
                        batch,
                        buf,
                        lines,
                        items,
                        &self.opts,
                        &self.display,
                    )?;
                    let r = p.write_json(&bytes, batch, &self.opts, &self.display);
                    self.scratch = bytes;
                    r
                }
            },
            BatchData::Arrow { batch: rb, .. } => {
                let edited = edit_batch(rb, items, &self.opts).map_err(|e| Error::Output {
                    path: self.display.clone(),
                    message: format!("{}: {e}", batch.file.display),
                })?;
                match &mut self.sink {
                    Sink::Jsonl(s) => {
                        let mut w = arrow_json::WriterBuilder::new()
                            .with_explicit_nulls(true)
                            .build::<_, arrow_json::writer::LineDelimited>(s.writer());
                        w.write(&edited)
                            .and_then(|_| w.finish())
                            .map_err(|e| arrow_write_error(e, &self.display))
                    }
                    Sink::Parquet(p) => p.write_batch(edited, &batch.file.display, &self.display),
                }
            }
        }
    }

    /// Flush, close and move the output into place; returns the bytes written.
    pub fn finish(self) -> Result<u64> {
        let (bytes, atomic) = self.close()?;
        if let Some(a) = atomic {
            a.commit()?;
        }
        Ok(bytes)
    }

    /// Flush and close, leaving the output under its temporary name: the returned guard moves
    /// it into place on commit and removes it when dropped. Returns the bytes written.
    pub fn close(self) -> Result<(u64, Option<AtomicFile>)> {
        let display = self.display;
        let bytes = match self.sink {
            Sink::Jsonl(s) => s.finish().map_err(io_err(&display))?,
            Sink::Parquet(mut p) => {
                if p.writer.is_none() {
                    // No rows at all: still write a valid, empty file with id and text columns.
                    let schema = Arc::new(Schema::new(vec![
                        Field::new(&self.opts.id_key, DataType::Utf8, true),
                        Field::new(&self.opts.text_key, DataType::Utf8, true),
                    ]));
                    p.open(schema, &display)?;
                }
                match p.writer {
                    Some(w) => {
                        let counting = w.into_inner().map_err(|e| pq_error(e, &display))?;
                        counting.inner.sync_all().map_err(io_err(&display))?;
                        counting.count
                    }
                    None => 0,
                }
            }
        };
        Ok((bytes, self.atomic))
    }
}

/// The directory of an output file must exist.
pub(crate) fn check_parent(p: &Path) -> Result<()> {
    if let Some(parent) = p.parent() {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            return Err(Error::io(
                p.display().to_string(),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "output directory does not exist",
                ),
            ));
        }
    }
    Ok(())
}

fn arrow_write_error(e: arrow_schema::ArrowError, display: &str) -> Error {
    match e {
        arrow_schema::ArrowError::IoError(_, io) => Error::io(display, io),
        other => Error::Output {
            path: display.into(),
            message: other.to_string(),
        },
    }
}

fn pq_error(e: parquet::errors::ParquetError, display: &str) -> Error {
    Error::Output {
        path: display.into(),
        message: e.to_string(),
    }
}

/// Write the kept lines of a JSONL batch. Unchanged lines are written straight from the read
/// buffer, adjacent ones in a single write; rewritten records are re-read and re-serialized.
fn emit_jsonl(
    out: &mut dyn Write,
    batch: &Batch,
    buf: &[u8],
    lines: &[LineSpan],
    items: &[WriteItem],
    opts: &ExtractOptions,
    display: &str,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io(display, e);
    let mut run: Option<(usize, usize)> = None;
    let mut record = Vec::new();
    for item in items {
        let span = lines[item.index];
        if item.new_text.is_none() && item.generated_id.is_none() && item.extra.is_empty() {
            run = match run {
                // The next line follows after exactly one newline: extend the run.
                Some((start, end)) if span.start == end + 1 && buf[end] == b'\n' => {
                    Some((start, span.end))
                }
                Some((start, end)) => {
                    out.write_all(&buf[start..end]).map_err(io)?;
                    out.write_all(b"\n").map_err(io)?;
                    Some((span.start, span.end))
                }
                None => Some((span.start, span.end)),
            };
            continue;
        }
        if let Some((start, end)) = run.take() {
            out.write_all(&buf[start..end]).map_err(io)?;
            out.write_all(b"\n").map_err(io)?;
        }
        let raw = &buf[span.start..span.end];
        let fields: JsonFields<'_> = serde_json::from_slice(raw).map_err(|e| Error::Output {
            path: display.into(),
            message: format!("{}: line {}: {e}", batch.file.display, span.line),
        })?;
        record.clear();
        write_json_record(
            &mut record,
            &fields,
            opts,
            item.new_text.as_deref(),
            item.generated_id.as_deref(),
            &item.extra,
        );
        record.push(b'\n');
        out.write_all(&record).map_err(io)?;
    }
    if let Some((start, end)) = run {
        out.write_all(&buf[start..end]).map_err(io)?;
        out.write_all(b"\n").map_err(io)?;
    }
    Ok(())
}

/// Rewrite one JSON record: every field keeps its raw JSON text except the text (when `new_text`
/// is given), the id (when `generated_id` is given; added at the end if absent) and the `extra`
/// fields (replaced, or added at the end; a field inside an object, such as
/// `metadata.language`, is set inside that object, whose other fields keep their raw text).
pub(crate) fn write_json_record(
    out: &mut Vec<u8>,
    fields: &JsonFields<'_>,
    opts: &ExtractOptions,
    new_text: Option<&str>,
    generated_id: Option<&str>,
    extra: &[FieldEdit],
) {
    out.push(b'{');
    let mut id_written = false;
    let mut parent_written: Vec<&str> = Vec::new();
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    // A repeated key is written once (its last value is the one JSON readers see).
    let last_of = |k: &str| fields.0.iter().rposition(|(n, _)| n == k);
    for (i, (k, v)) in fields.0.iter().enumerate() {
        let edits: Vec<&FieldEdit> = extra.iter().filter(|e| *e.name == **k).collect();
        if !edits.is_empty() {
            if last_of(k) != Some(i) {
                continue;
            }
            sep(out);
            write_json_str(out, k);
            out.push(b':');
            write_edited(out, v.get(), &edits);
            parent_written.push(k);
            continue;
        }
        sep(out);
        write_json_str(out, k);
        out.push(b':');
        match (new_text, generated_id) {
            (Some(t), _) if *k == opts.text_key => write_json_str(out, t),
            (_, Some(id)) if *k == opts.id_key => {
                write_json_str(out, id);
                id_written = true;
            }
            _ => out.extend_from_slice(v.get().as_bytes()),
        }
    }
    if let (Some(id), false) = (generated_id, id_written) {
        sep(out);
        write_json_str(out, &opts.id_key);
        out.push(b':');
        write_json_str(out, id);
    }
    let mut added: Vec<&str> = Vec::new();
    for e in extra {
        if parent_written.contains(&&*e.name) || added.contains(&&*e.name) {
            continue;
        }
        added.push(&e.name);
        let edits: Vec<&FieldEdit> = extra.iter().filter(|x| x.name == e.name).collect();
        sep(out);
        write_json_str(out, &e.name);
        out.push(b':');
        write_edited(out, "null", &edits);
    }
    out.push(b'}');
}

/// The value of a field after `edits` (all naming that field): a top-level value replaced, or
/// an object with some of its fields set. `raw` is the current raw JSON value (`null` when
/// absent). Callers check with [`check_edits`] that objects edited inside are objects or null.
fn write_edited(out: &mut Vec<u8>, raw: &str, edits: &[&FieldEdit]) {
    if let Some(top) = edits.iter().rev().find(|e| e.child.is_none()) {
        if top.if_absent && raw != "null" {
            out.extend_from_slice(raw.as_bytes());
        } else {
            top.value.write_json(out);
        }
        return;
    }
    let inner: JsonFields<'_> = serde_json::from_str(raw).unwrap_or_default();
    out.push(b'{');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    let mut done: Vec<&str> = Vec::new();
    let last_of = |k: &str| inner.0.iter().rposition(|(n, _)| n == k);
    for (i, (k, v)) in inner.0.iter().enumerate() {
        let edit = edits
            .iter()
            .rev()
            .find(|e| e.child.as_deref() == Some(&**k));
        match edit {
            Some(e) => {
                if last_of(k) != Some(i) {
                    continue;
                }
                sep(out);
                write_json_str(out, k);
                out.push(b':');
                if e.if_absent && v.get() != "null" {
                    out.extend_from_slice(v.get().as_bytes());
                } else {
                    e.value.write_json(out);
                }
                done.push(k);
            }
            None => {
                sep(out);
                write_json_str(out, k);
                out.push(b':');
                out.extend_from_slice(v.get().as_bytes());
            }
        }
    }
    for (i, e) in edits.iter().enumerate() {
        let Some(c) = e.child.as_deref() else {
            continue;
        };
        // The last edit of a field wins; it is written once.
        if done.contains(&c) || edits[i + 1..].iter().any(|x| x.child.as_deref() == Some(c)) {
            continue;
        }
        sep(out);
        write_json_str(out, c);
        out.push(b':');
        e.value.write_json(out);
    }
    out.push(b'}');
}

/// Edits inside an object (`metadata.language`) need that field to be an object, or absent or
/// null: the name of the first field in the way.
pub(crate) fn check_edits(raw: &str, extra: &[FieldEdit]) -> Option<String> {
    if extra.iter().all(|e| e.child.is_none()) {
        return None;
    }
    let fields: JsonFields<'_> = serde_json::from_str(raw).ok()?;
    for e in extra.iter().filter(|e| e.child.is_some()) {
        if extra.iter().any(|x| x.name == e.name && x.child.is_none()) {
            continue;
        }
        if let Some(v) = fields.get(&e.name) {
            let t = v.get();
            if t != "null" && !t.starts_with('{') {
                return Some(e.name.to_string());
            }
        }
    }
    None
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `rb` cast to `schema` when both have the same column names in the same order and every column
/// casts without loss of meaning (e.g. polars' large or view strings to the plain strings that
/// JSON inference gives, or 32- to 64-bit integers).
fn conform(rb: &RecordBatch, schema: &SchemaRef) -> Option<RecordBatch> {
    let from = rb.schema();
    if from.fields().len() != schema.fields().len() {
        return None;
    }
    let mut columns = Vec::with_capacity(rb.num_columns());
    for ((col, f), t) in rb.columns().iter().zip(from.fields()).zip(schema.fields()) {
        if f.name() != t.name() || !same_meaning(f.data_type(), t.data_type()) {
            return None;
        }
        let options = arrow_cast::CastOptions {
            safe: false,
            ..Default::default()
        };
        columns.push(arrow_cast::cast_with_options(col, t.data_type(), &options).ok()?);
    }
    RecordBatch::try_new(schema.clone(), columns).ok()
}

/// Types whose values convert exactly: string layouts, integer widening, and lists of those.
fn same_meaning(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let string = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let int = |t: &DataType| matches!(t, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32);
    match (from, to) {
        _ if from == to => true,
        (a, b) if string(a) && string(b) => true,
        (a, Int64) if int(a) => true,
        (Float32, Float64) => true,
        (List(a) | LargeList(a) | ListView(a) | LargeListView(a), List(b) | LargeList(b)) => {
            same_meaning(a.data_type(), b.data_type())
        }
        _ => false,
    }
}

fn describe(schema: &Schema) -> String {
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    cols.join(", ")
}

/// A string column with the values `pick` gives replaced, cast back to `target`.
fn replace_strings(
    column: &ArrayRef,
    target: &DataType,
    items: &[WriteItem],
    pick: &dyn Fn(&WriteItem) -> Option<&str>,
) -> std::result::Result<ArrayRef, String> {
    let old = arrow_cast::cast(column, &DataType::Utf8).map_err(|e| e.to_string())?;
    let old = old
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or("not a string column")?;
    let new: StringArray = items
        .iter()
        .enumerate()
        .map(|(i, it)| pick(it).or_else(|| (!old.is_null(i)).then(|| old.value(i))))
        .collect();
    arrow_cast::cast(&new, target).map_err(|e| e.to_string())
}

/// Keep the selected rows of a record batch, replace rewritten texts, fill in generated ids.
fn edit_batch(
    rb: &RecordBatch,
    items: &[WriteItem],
    opts: &ExtractOptions,
) -> std::result::Result<RecordBatch, String> {
    let rows: Vec<u32> = items.iter().map(|it| it.index as u32).collect();
    let taken = arrow_select::take::take_record_batch(rb, &UInt32Array::from(rows))
        .map_err(|e| e.to_string())?;
    let schema = taken.schema();
    let mut columns: Vec<ArrayRef> = taken.columns().to_vec();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let text_idx = schema.index_of(&opts.text_key).ok();
    if let (Some(idx), true) = (text_idx, items.iter().any(|it| it.new_text.is_some())) {
        columns[idx] = replace_strings(&columns[idx], fields[idx].data_type(), items, &|it| {
            it.new_text.as_deref()
        })?;
    }
    let any_generated = items.iter().any(|it| it.generated_id.is_some());
    match schema.index_of(&opts.id_key).ok() {
        None => {
            let ids: StringArray = items.iter().map(|it| it.generated_id.as_deref()).collect();
            columns.push(Arc::new(ids));
            fields.push(Field::new(&opts.id_key, DataType::Utf8, true));
        }
        // Null ids in a string column get their generated ids, as in JSONL; a null in a column of
        // another type (say integers) stays null, since a generated id is text.
        Some(idx)
            if any_generated
                && matches!(
                    fields[idx].data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) =>
        {
            columns[idx] = replace_strings(&columns[idx], fields[idx].data_type(), items, &|it| {
                it.generated_id.as_deref()
            })?;
        }
        Some(_) => {}
    }
    add_extra_columns(items, &mut fields, &mut columns)?;
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        columns,
    )
    .map_err(|e| e.to_string())
}

/// Arrow type of a field's values across a batch: integers, floats (integers among them widen),
/// booleans, or text.
fn column_type<'a>(values: impl Iterator<Item = &'a FieldValue>) -> DataType {
    let mut t: Option<DataType> = None;
    for v in values {
        let this = match v {
            FieldValue::Null => continue,
            FieldValue::Int(_) => DataType::Int64,
            FieldValue::Float(_) => DataType::Float64,
            FieldValue::Bool(_) => DataType::Boolean,
            FieldValue::Str(_) => DataType::Utf8,
            FieldValue::Spans(_) => spans_type(),
            FieldValue::Strs(_) => strs_type(),
        };
        t = Some(match (t, this) {
            (None, x) => x,
            (Some(a), b) if a == b => a,
            (Some(DataType::Int64), DataType::Float64)
            | (Some(DataType::Float64), DataType::Int64) => DataType::Float64,
            _ => DataType::Utf8,
        });
    }
    t.unwrap_or(DataType::Utf8)
}

/// The Arrow type of [`FieldValue::Spans`]: `list<list<int64>>`.
fn spans_type() -> DataType {
    let pair = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
    DataType::List(Arc::new(Field::new("item", pair, true)))
}

/// The Arrow type of [`FieldValue::Strs`]: `list<utf8>`.
fn strs_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// A `list<utf8>` column of [`FieldValue::Strs`] (anything else: null).
fn strs_array(values: &[Option<FieldValue>]) -> ArrayRef {
    use arrow_array::builder::{ListBuilder, StringBuilder};
    let mut b = ListBuilder::new(StringBuilder::new());
    for v in values {
        match v {
            Some(FieldValue::Strs(items)) => {
                for item in items {
                    b.values().append_value(item);
                }
                b.append(true);
            }
            _ => b.append(false),
        }
    }
    Arc::new(b.finish())
}

/// A `list<list<int64>>` column of [`FieldValue::Spans`] (anything else: null).
fn spans_array(values: &[Option<FieldValue>]) -> ArrayRef {
    use arrow_array::builder::{Int64Builder, ListBuilder};
    let mut b = ListBuilder::new(ListBuilder::new(Int64Builder::new()));
    for v in values {
        match v {
            Some(FieldValue::Spans(spans)) => {
                for &(s, e) in spans {
                    b.values().values().append_value(s as i64);
                    b.values().values().append_value(e as i64);
                    b.values().append(true);
                }
                b.append(true);
            }
            _ => b.append(false),
        }
    }
    Arc::new(b.finish())
}

/// The top-level fields stages add to `items`, typed, in first-seen order.
fn extra_fields(items: &[WriteItem]) -> Vec<Field> {
    let mut names: Vec<&Arc<str>> = Vec::new();
    for it in items {
        for e in &it.extra {
            if e.child.is_none() && !names.contains(&&e.name) {
                names.push(&e.name);
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
            let values = items.iter().flat_map(|it| {
                it.extra
                    .iter()
                    .filter(|e| &e.name == name)
                    .map(|e| &e.value)
            });
            Field::new(name.as_ref(), column_type(values), true)
        })
        .collect()
}

/// Set the stages' extra fields as columns (replacing same-named ones), in first-seen order.
fn add_extra_columns(
    items: &[WriteItem],
    fields: &mut Vec<Field>,
    columns: &mut Vec<ArrayRef>,
) -> std::result::Result<(), String> {
    if let Some(e) = items
        .iter()
        .flat_map(|it| &it.extra)
        .find(|e| e.child.is_some())
    {
        return Err(format!(
            "a stage sets {}, a field inside an object, which needs JSON records: read JSONL",
            e.path()
        ));
    }
    for field in extra_fields(items) {
        let name = field.name().as_str();
        let existing = fields.iter().position(|f| f.name() == name);
        let value = |i: usize, it: &WriteItem| -> Option<FieldValue> {
            let e = it.extra.iter().rev().find(|e| &*e.name == name)?;
            // `if_absent` keeps a value already there.
            if e.if_absent {
                if let Some(c) = existing {
                    if !columns[c].is_null(i) {
                        return None;
                    }
                }
            }
            Some(e.value.clone())
        };
        let set: Vec<Option<FieldValue>> = items
            .iter()
            .enumerate()
            .map(|(i, it)| value(i, it))
            .collect();
        let keep_old = |i: usize| existing.is_some() && set[i].is_none();
        let array: ArrayRef = match field.data_type() {
            DataType::Int64 => Arc::new(Int64Array::from_iter(set.iter().map(|v| match v {
                Some(FieldValue::Int(i)) => Some(*i),
                _ => None,
            }))),
            DataType::Float64 => Arc::new(Float64Array::from_iter(set.iter().map(|v| match v {
                Some(FieldValue::Int(i)) => Some(*i as f64),
                Some(FieldValue::Float(f)) => Some(*f),
                _ => None,
            }))),
            DataType::Boolean => Arc::new(BooleanArray::from_iter(set.iter().map(|v| match v {
                Some(FieldValue::Bool(b)) => Some(*b),
                _ => None,
            }))),
            t if *t == strs_type() => strs_array(&set),
            DataType::List(_) => spans_array(&set),
            _ => Arc::new(StringArray::from_iter(
                set.iter().map(|v| v.as_ref().and_then(FieldValue::as_text)),
            )),
        };
        let array = match existing {
            // Rows whose value is kept take the old one (cast to the new type).
            Some(c) if (0..items.len()).any(keep_old) => {
                let old =
                    arrow_cast::cast(&columns[c], field.data_type()).map_err(|e| e.to_string())?;
                let mask = BooleanArray::from_iter((0..items.len()).map(|i| Some(keep_old(i))));
                arrow_select::zip::zip(&mask, &old, &array).map_err(|e| e.to_string())?
            }
            _ => array,
        };
        match existing {
            Some(i) => {
                fields[i] = field;
                columns[i] = array;
            }
            None => {
                fields.push(field);
                columns.push(array);
            }
        }
    }
    Ok(())
}

impl ParquetSink {
    fn note_fields(&mut self, items: &[WriteItem]) {
        for f in extra_fields(items) {
            if self.set_fields.iter().all(|s| s.name() != f.name()) {
                self.set_fields.push(f);
            }
        }
    }

    fn open(&mut self, schema: SchemaRef, display: &str) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Err(Error::Config(
                "Parquet output needs a file name, not stdout".into(),
            ));
        };
        let props = WriterProperties::builder()
            .set_compression(PqCompression::ZSTD(
                ZstdLevel::try_new(3).map_err(|e| pq_error(e, display))?,
            ))
            .build();
        let w = ArrowWriter::try_new(
            Counting {
                inner: file,
                count: 0,
            },
            schema.clone(),
            Some(props),
        )
        .map_err(|e| pq_error(e, display))?;
        self.writer = Some(w);
        self.schema = Some(schema);
        Ok(())
    }

    fn write_batch(&mut self, rb: RecordBatch, input: &str, display: &str) -> Result<()> {
        let rb = match &self.schema {
            None => {
                self.open(rb.schema(), display)?;
                rb
            }
            Some(s) if s.fields() == rb.schema().fields() => rb,
            Some(s) => conform(&rb, s).ok_or_else(|| Error::Output {
                path: display.into(),
                message: format!(
                    "{input}: its columns ({}) do not match those of the first input ({}), and one \
                     Parquet file holds one schema; write JSONL instead, or convert the inputs separately",
                    describe(&rb.schema()),
                    describe(s)
                ),
            })?,
        };
        if rb.num_rows() == 0 {
            return Ok(());
        }
        match &mut self.writer {
            Some(w) => w.write(&rb).map_err(|e| pq_error(e, display)),
            None => Ok(()),
        }
    }

    /// Decode JSON lines into the writer's schema (inferred from the first JSONL batch when the
    /// first input was JSONL). Fields not in that schema are an error, never silently dropped.
    fn write_json(
        &mut self,
        lines: &[u8],
        batch: &Batch,
        opts: &ExtractOptions,
        display: &str,
    ) -> Result<()> {
        if self.schema.is_none() {
            let sample = sample_lines(batch, opts);
            if sample.is_empty() {
                // No valid document in this batch, so nothing to write either: let the first
                // batch that has some decide the schema.
                return Ok(());
            }
            let (schema, _) = arrow_json::reader::infer_json_schema(Cursor::new(&sample), None)
                .map_err(|e| Error::Output {
                    path: display.into(),
                    message: format!("{}: {e}", batch.file.display),
                })?;
            // arrow-json infers fields in sorted order; keep the records' own field order instead.
            let order = field_order(&sample);
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.sort_by_key(|f| {
                order
                    .iter()
                    .position(|k| k == f.name())
                    .unwrap_or(usize::MAX)
            });
            // Generated ids ("name:line") are text: an id column inferred as text or null (or
            // absent) becomes text. A numeric id column keeps its type; a record without an id
            // among numeric ones is then reported as not fitting the schema.
            let id_at = fields.iter().position(|f| f.name() == &opts.id_key);
            match id_at {
                None => fields.push(Field::new(&opts.id_key, DataType::Utf8, true)),
                Some(i) if matches!(fields[i].data_type(), DataType::Null | DataType::Utf8) => {
                    fields[i] = Field::new(&opts.id_key, DataType::Utf8, true);
                }
                Some(_) => {}
            }
            // Fields that stages add are not in the input records: their types are known.
            for extra in &self.set_fields {
                match fields.iter().position(|f| f.name() == extra.name()) {
                    Some(i) => fields[i] = extra.clone(),
                    None => fields.push(extra.clone()),
                }
            }
            self.open(Arc::new(Schema::new(fields)), display)?;
        }
        let Some(schema) = self.schema.clone() else {
            return Ok(());
        };
        refuse_truncation(&schema, lines, batch, display)?;
        if self.decoder.is_none() {
            let d = arrow_json::ReaderBuilder::new(schema)
                .with_strict_mode(true)
                .with_batch_size(8192)
                .build_decoder()
                .map_err(|e| pq_error(e.into(), display))?;
            self.decoder = Some(d);
        }
        let mut offset = 0;
        while offset < lines.len() {
            let Some(decoder) = self.decoder.as_mut() else {
                break;
            };
            let n = decoder
                .decode(&lines[offset..])
                .map_err(|e| json_schema_error(e, batch, display))?;
            offset += n;
            let flushed = decoder
                .flush()
                .map_err(|e| json_schema_error(e, batch, display))?;
            if let (Some(rb), Some(w)) = (flushed, self.writer.as_mut()) {
                w.write(&rb).map_err(|e| pq_error(e, display))?;
            }
            if n == 0 {
                break;
            }
        }
        Ok(())
    }
}

fn json_schema_error(e: arrow_schema::ArrowError, batch: &Batch, display: &str) -> Error {
    let lines = match &batch.data {
        BatchData::Jsonl { lines, .. } => match (lines.first(), lines.last()) {
            (Some(a), Some(b)) => format!("lines {}-{}", a.line, b.line),
            _ => String::new(),
        },
        BatchData::Arrow { .. } => String::new(),
    };
    Error::Output {
        path: display.into(),
        message: format!(
            "{} {lines}: a record does not fit the Parquet schema inferred from the first records ({e}); \
             write JSONL instead, or make the records' fields consistent",
            batch.file.display
        ),
    }
}

/// The JSON decoder truncates a fractional number written to an integer column (1.5 → 1), and a
/// float column rounds long integers, without complaint. Refuse such records instead: never
/// change data silently.
fn refuse_truncation(schema: &Schema, lines: &[u8], batch: &Batch, display: &str) -> Result<()> {
    let columns_where = |pred: fn(&DataType) -> bool| -> Vec<&str> {
        schema
            .fields()
            .iter()
            .filter(|f| pred(f.data_type()))
            .map(|f| f.name().as_str())
            .collect()
    };
    let int_columns = columns_where(DataType::is_integer);
    let float_columns = columns_where(DataType::is_floating);
    if (int_columns.is_empty() && float_columns.is_empty()) || lines.is_empty() {
        return Ok(());
    }
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(fields) = serde_json::from_slice::<JsonFields<'_>>(line) else {
            continue;
        };
        for (k, v) in &fields.0 {
            let raw = v.get();
            let number = raw.starts_with(|c: char| c == '-' || c.is_ascii_digit());
            let fractional = number && raw.contains(['.', 'e', 'E']);
            // A float64 holds integers exactly up to 2^53 (16 digits); longer ones would round.
            let long_int = number && !fractional && raw.trim_start_matches('-').len() > 15;
            if (fractional && int_columns.contains(&k.as_ref()))
                || (long_int && float_columns.contains(&k.as_ref()))
            {
                return Err(Error::Output {
                    path: display.into(),
                    message: format!(
                        "{}: field {k:?} holds {raw}, but the Parquet schema inferred from the first \
                         records cannot hold it exactly; write JSONL instead, or make the field's \
                         type consistent",
                        batch.file.display
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Top-level keys in order of first appearance.
fn field_order(lines: &[u8]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for line in lines.split(|b| *b == b'\n') {
        if let Ok(fields) = serde_json::from_slice::<JsonFields<'_>>(line) {
            for (k, _) in fields.0 {
                if !order.iter().any(|o| *o == k) {
                    order.push(k.into_owned());
                }
            }
        }
    }
    order
}

/// The lines of a JSONL batch that parse as objects, for schema inference.
fn sample_lines(batch: &Batch, opts: &ExtractOptions) -> Vec<u8> {
    let mut out = Vec::new();
    if let BatchData::Jsonl { buf, lines } = &batch.data {
        for span in lines {
            let line = &buf[span.start..span.end];
            // Only valid documents: records skipped as bad must not shape the schema.
            if super::record::parse_line(line, span.line, &batch.file.name, opts).is_ok() {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
        }
    }
    out
}
