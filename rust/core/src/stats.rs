//! Run statistics, written by `--stats-json` and returned to Python. Invariant:
//! `documents_read == documents_kept + Σ documents_removed + Σ records_skipped`.

use std::collections::BTreeMap;

use serde::Serialize;

/// Counters of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// The command that ran, e.g. `dedup exact`.
    pub command: String,
    /// Number of input files.
    pub input_files: usize,
    /// Records read (valid documents and skipped bad records).
    pub documents_read: u64,
    /// Documents written.
    pub documents_kept: u64,
    /// Kept documents whose text was rewritten (e.g. lines removed).
    pub documents_modified: u64,
    /// Documents removed, by reason (`duplicate`, `empty_after_line_dedup`, ...).
    pub documents_removed: BTreeMap<String, u64>,
    /// Bad records skipped under `--on-error skip`, by reason slug.
    pub records_skipped: BTreeMap<String, u64>,
    /// Stage-specific counters (`lines_read`, `lines_removed`, ...).
    pub counters: BTreeMap<String, u64>,
    /// UTF-8 bytes of text read.
    pub text_bytes_read: u64,
    /// UTF-8 bytes of text written.
    pub text_bytes_kept: u64,
    /// Bytes written to the output file (after compression).
    pub bytes_written: u64,
    /// Bytes read from the input files (before decompression).
    pub input_bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Worker threads used.
    pub threads: usize,
}

impl Stats {
    /// Add `n` to a named counter.
    pub fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
        if n > 0 {
            *map.entry(key.to_string()).or_insert(0) += n;
        }
    }

    /// Set a stage counter (present even when zero, so readers need no defaults).
    pub fn set_counter(&mut self, key: &str, n: u64) {
        self.counters.insert(key.to_string(), n);
    }

    /// Total documents removed.
    pub fn removed(&self) -> u64 {
        self.documents_removed.values().sum()
    }

    /// Total records skipped.
    pub fn skipped(&self) -> u64 {
        self.records_skipped.values().sum()
    }

    /// As pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }
}
