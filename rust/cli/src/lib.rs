//! The `tamis` command line, as a library so that the Python package can ship the same CLI
//! (`tamis._core.main`) as `cargo install --path rust/cli`.
//!
//! Exit codes: 0 success (and a broken pipe on stdout), 1 runtime error, 2 usage error.

mod args;
mod cmd;
mod progress;

use std::ffi::OsString;

use clap::Parser;

pub use args::Cli;

/// Parse `argv` (program name first) and run; returns the process exit code.
pub fn run<I, T>(argv: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            return code;
        }
    };
    match cmd::dispatch(&cli) {
        Ok(()) => 0,
        Err(e) => {
            if let Some(tamis_core::Error::BrokenPipe) = e.downcast_ref::<tamis_core::Error>() {
                return 0;
            }
            eprintln!("tamis: error: {e:#}");
            1
        }
    }
}
