//! indicatif progress bar on stderr; it draws nothing when stderr is not a terminal.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tamis_core::pipeline::Progress;

/// Bytes-based bar with docs/s and MB/s.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar, hidden under `-q` or when stderr is not a terminal.
    pub fn new(quiet: bool) -> Self {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr_with_hz(4)
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        Bar { bar }
    }
}

impl Bar {
    /// Print a line on stderr above the bar (also when the bar is hidden).
    pub fn println(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Remove the bar.
    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn start(&self, total_bytes: u64) {
        // `vocab` reads several corpora in turn (training, protected, held-out): each starts over.
        self.bar.reset();
        self.bar.set_length(total_bytes);
    }
    fn update(&self, bytes: u64, docs: u64) {
        self.bar.set_position(bytes);
        let secs = self.bar.elapsed().as_secs_f64().max(1e-3);
        self.bar
            .set_message(format!("{docs} docs ({:.0} docs/s)", docs as f64 / secs));
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
