//! Data I/O: discovering inputs, streaming them as batches, turning records into documents, and
//! writing outputs atomically.
//!
//! A document is its text (`text_key`, default `text`), its id (`id_key`, default `id`; when
//! missing or null, `"{file name}:{line or row}"`, which is added to the output) and every other
//! field, passed through unchanged. JSONL records that are kept unchanged are written back byte
//! for byte; rewritten records keep every other field's raw JSON text.

mod atomic;
mod batch;
mod columns;
mod input;
mod output;
pub(crate) mod record;
mod rejects;

pub use atomic::AtomicFile;
pub use batch::{read_batches, Batch, BatchData, LineSpan, ReadItem};
pub use columns::{hashes_to_arrow, mask_to_arrow, string_values};
pub use input::{expand_inputs, expand_text_inputs, Compression, InputFile, InputFormat};
pub use output::{FieldValue, Output, OutputFormat, OutputWriter, WriteItem};
pub use record::{extract_docs, BatchColumns, Doc, DocSource, ExtractOptions, JsonFields};
pub use rejects::RejectsWriter;

/// What to do with a bad record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop with an error naming file and line/row; no output is left behind.
    #[default]
    Fail,
    /// Skip it, count it by reason, and write it to the rejects file when one is given.
    Skip,
}

impl std::str::FromStr for OnError {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fail" => Ok(OnError::Fail),
            "skip" => Ok(OnError::Skip),
            other => Err(crate::Error::Config(format!(
                "unknown --on-error value {other:?}: expected fail or skip"
            ))),
        }
    }
}
