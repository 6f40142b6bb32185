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
pub use batch::{read_batches, read_batches_with, Batch, BatchData, LineSpan, ReadItem};
pub use columns::{hashes_to_arrow, mask_to_arrow, number_values, string_values};
pub use input::{
    expand_inputs, expand_text_inputs, require_rereadable, Compression, InputFile, InputFormat,
};
pub(crate) use output::{check_edits, check_parent};
pub use output::{FieldEdit, FieldValue, Output, OutputFormat, OutputWriter, WriteItem};
pub use record::{extract_docs, BatchColumns, Doc, DocSource, ExtractOptions, JsonFields};
pub use rejects::RejectsWriter;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::options::{check_range, OptionError, Options};
use crate::pipeline::RunOptions;

/// Most worker threads accepted: more than any machine has cores, and few enough that a typo
/// (`--threads 100000`) is refused instead of spawning threads for a minute.
pub const MAX_THREADS: usize = 1024;

/// How every data command reads records and handles bad ones: `--text-key`, `--id-key`,
/// `--on-error`, `--rejects`, `--threads` on the command line, the same keywords in Python.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IoOptions {
    /// Field holding the text.
    pub text_key: String,
    /// Field holding the id (when missing or null, `NAME:LINE` is generated and added).
    pub id_key: String,
    /// Fail on the first bad record, or skip bad records and count them.
    pub on_error: OnError,
    /// With `on_error = "skip"`: where skipped records go (JSONL).
    pub rejects: Option<PathBuf>,
    /// Worker threads; 0 means one per core. Output is identical for every value.
    pub threads: usize,
}

impl Default for IoOptions {
    fn default() -> Self {
        IoOptions {
            text_key: "text".into(),
            id_key: "id".into(),
            on_error: OnError::Fail,
            rejects: None,
            threads: 0,
        }
    }
}

impl Options for IoOptions {
    fn validate(&self) -> std::result::Result<(), OptionError> {
        check_range("threads", self.threads, None, Some(MAX_THREADS))?;
        if self.text_key.is_empty() {
            return Err(OptionError::new("text_key", "must name a field"));
        }
        if self.id_key == self.text_key {
            return Err(OptionError::with_fields(
                &["id_key", "text_key"],
                "{0} and {1} must name different fields",
            ));
        }
        if self.rejects.is_some() && self.on_error == OnError::Fail {
            return Err(OptionError::with_fields(
                &["rejects", "on_error"],
                "{0} needs {1} skip",
            ));
        }
        Ok(())
    }
}

impl IoOptions {
    /// The pipeline's run options, reading the string field `key` too when given.
    pub fn run_options(&self, key: Option<String>) -> crate::Result<RunOptions> {
        self.validate()?;
        Ok(RunOptions {
            extract: ExtractOptions {
                text_key: self.text_key.clone(),
                id_key: self.id_key.clone(),
                key,
            },
            on_error: self.on_error,
            rejects: self.rejects.clone(),
            threads: self.threads,
            ..RunOptions::default()
        })
    }
}

/// What to do with a bad record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop with an error naming file and line/row; no output is left behind.
    #[default]
    Fail,
    /// Skip it, count it by reason, and write it to the rejects file when one is given.
    Skip,
}

impl OnError {
    /// Both names, as options spell them.
    pub const NAMES: &'static [&'static str] = &["fail", "skip"];
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

/// A private temporary directory for spilled data of `what` (`substring`, `index`) in `dir`
/// (default: the system's temporary directory); removed when dropped.
pub(crate) fn spill_dir(
    dir: Option<&std::path::Path>,
    what: &str,
) -> crate::Result<tempfile::TempDir> {
    match dir {
        Some(d) => tempfile::Builder::new()
            .prefix(&format!(".tamis-{what}-"))
            .tempdir_in(d),
        None => tempfile::Builder::new()
            .prefix(&format!("tamis-{what}-"))
            .tempdir(),
    }
    .map_err(|e| {
        crate::Error::io(
            dir.map_or("the temporary directory".into(), |d| {
                d.display().to_string()
            }),
            e,
        )
    })
}
