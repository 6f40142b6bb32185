//! Shared by the fuzz targets: run exact dedup over `data` written as an input file named
//! `name` (the extension picks the reader), in skip mode and in fail mode. Any result is fine;
//! a panic, an abort or a hang is the bug.

use std::sync::OnceLock;

use tamis_core::dedup::{exact_dedup, ExactOptions};
use tamis_core::io::{IoOptions, OnError, Output};
use tamis_core::pipeline::NoProgress;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
}

pub fn dedup_over(name: &str, data: &[u8]) {
    let input = dir().path().join(name);
    if std::fs::write(&input, data).is_err() {
        return;
    }
    let inputs = vec![input.display().to_string()];
    let out = dir().path().join("out.jsonl").display().to_string();
    for on_error in [OnError::Fail, OnError::Skip] {
        let io = IoOptions {
            on_error,
            threads: 1,
            ..IoOptions::default()
        };
        if let Ok(output) = Output::parse(&out) {
            let _ = exact_dedup(&inputs, &output, &io, &ExactOptions::default(), &NoProgress);
        }
    }
}
