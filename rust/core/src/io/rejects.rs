//! The rejects file: one JSON object per skipped record, naming its file, line or row, the
//! reason slug and message, and the raw record (JSONL input) so nothing is lost: `record` as
//! text, or `record_base64` (its exact bytes) when it is not valid UTF-8.

use std::path::Path;

use serde::Serialize;

use super::atomic::AtomicFile;
use crate::error::Location;
use crate::{Error, RecordError, Result};

#[derive(Serialize)]
struct Reject<'a> {
    file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<u64>,
    reason: &'static str,
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_base64: Option<String>,
}

/// Writes rejected records as JSONL, atomically.
#[derive(Debug)]
pub struct RejectsWriter {
    out: std::io::BufWriter<std::fs::File>,
    atomic: AtomicFile,
    display: String,
}

impl RejectsWriter {
    /// Create the rejects file (it appears when [`RejectsWriter::finish`] succeeds).
    pub fn create(path: &Path) -> Result<Self> {
        let (atomic, file) = AtomicFile::create(path)?;
        Ok(RejectsWriter {
            out: std::io::BufWriter::new(file),
            atomic,
            display: path.display().to_string(),
        })
    }

    /// Record one rejected record; `raw` is its bytes when known.
    pub fn add(
        &mut self,
        file: &str,
        location: Location,
        error: &RecordError,
        raw: Option<&[u8]>,
    ) -> Result<()> {
        let (line, row) = match location {
            Location::Line(n) => (Some(n), None),
            Location::Row(n) => (None, Some(n)),
            Location::File => (None, None),
        };
        use base64::Engine;
        let (record, record_base64) = match raw.map(std::str::from_utf8) {
            None => (None, None),
            Some(Ok(text)) => (Some(text.to_string()), None),
            Some(Err(_)) => (
                None,
                raw.map(|r| base64::engine::general_purpose::STANDARD.encode(r)),
            ),
        };
        let rec = Reject {
            file,
            line,
            row,
            reason: error.slug(),
            error: error.to_string(),
            record,
            record_base64,
        };
        let mut line = serde_json::to_vec(&rec).map_err(|e| Error::Output {
            path: self.display.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        std::io::Write::write_all(&mut self.out, &line).map_err(|e| Error::io(&self.display, e))
    }

    /// Flush and move the file into place.
    pub fn finish(self) -> Result<()> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&self.display, e.into_error()))?;
        drop(file);
        self.atomic.commit()
    }
}
