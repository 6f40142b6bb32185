//! The `tamis` command line, as a library so that the Python package can ship the same CLI
//! (`tamis._core.main`) as `cargo install --path rust/cli`.
//!
//! Exit codes: 0 success (and a broken pipe on stdout), 1 runtime error, 2 usage error,
//! 128 + N when stopped by signal N (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).

mod args;
mod cmd;
mod help;
mod opts;
mod progress;

use std::ffi::OsString;

use clap::FromArgMatches;
use tamis_core::options::Surface;
use tamis_core::refine::{ExternalStages, NoExternal};

pub use args::Cli;

/// Parse `argv` (program name first) and run; returns the process exit code. Stages that run
/// outside Rust (fastText, torch) are unavailable.
pub fn run<I, T>(argv: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_with(argv, &mut NoExternal)
}

/// [`run`], with `external` running the stages that live outside Rust (the Python package
/// passes its fastText and torch stages).
pub fn run_with<I, T>(argv: I, external: &mut dyn ExternalStages) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let parsed = help::command()
        .try_get_matches_from(argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            return code;
        }
    };
    // Ctrl-C, SIGTERM and SIGHUP stop the work at the next batch: nothing is committed and
    // temporary files go with the error; a second signal exits at once.
    let guard = tamis_core::interrupt::Guard::command_line();
    let result = cmd::dispatch(&cli, external);
    // Whatever error the stop surfaced as (a cancelled write, an interrupted read), the signal
    // is what happened.
    let signal = tamis_core::interrupt::received();
    drop(guard);
    match result {
        Ok(()) => 0,
        Err(_) if signal.is_some() => {
            let signal = signal.unwrap_or_default();
            eprintln!(
                "tamis: interrupted by {}: stopped; nothing was written and the previous output is untouched",
                tamis_core::interrupt::signal_name(signal)
            );
            128 + signal
        }
        Err(e) => match e.downcast_ref::<tamis_core::Error>() {
            Some(tamis_core::Error::BrokenPipe) => 0,
            // Options the user gave are wrong: a usage error, named as the user wrote it.
            Some(tamis_core::Error::Options(o)) => {
                eprintln!("tamis: error: {}", o.render(&Surface::Cli));
                2
            }
            _ => {
                eprintln!("tamis: error: {e:#}");
                1
            }
        },
    }
}
