//! ProX ("Programming Every Example", GAIR-NLP): running the small programs that refining models
//! write for each document, and formatting the prompts those models read.
//!
//! - Document programs (`drop_doc()` / `keep_doc()`) and chunk programs (`remove_lines(...)`,
//!   `normalize(...)`, no-ops) are parsed, never evaluated: they are untrusted model output.
//! - [`Mode::Compat`] reproduces the reference executor exactly, quirks included, so that the
//!   released ProX corpora can be reproduced; [`Mode::Strict`] is a real parser that reports
//!   malformed lines (see `docs/prox.md` for every difference).
//! - [`explain_chunk`] / [`explain_doc`] say what a program did and why the acceptance rule
//!   decided as it did.
//! - [`prompt`] renders the Llama-2 chat prompts and [`chunk`] numbers and packs lines into
//!   chunks by token count, byte-compatible with the released refining models.
//!
//! ```
//! use tamis_core::prox::{execute_chunk, execute_doc, Acceptance, Mode};
//! assert_eq!(execute_doc("some text", "drop_doc()", Mode::Compat), "");
//! let text = "Home | About\none two three four five six seven eight nine ten eleven";
//! let out = execute_chunk(text, "remove_lines(line_start=0, line_end=0)", Mode::Compat, &Acceptance::default());
//! assert_eq!(out, "one two three four five six seven eight nine ten eleven");
//! ```

pub mod apply;
pub mod chunk;
mod compat;
pub mod count;
mod exec;
pub mod prompt;
pub mod pyrt;
mod strict;

pub use exec::{Explanation, Outcome, ProgramError, Reason, Replacement};
pub use strict::{parse_program, Arg, Call, ParseError, Value};

use crate::{Error, Result};

/// How programs are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Exactly what the reference executor returns, quirks included.
    #[default]
    Compat,
    /// A real parser: keyword or positional arguments, quoted strings with escapes; malformed
    /// lines and unknown functions are errors.
    Strict,
}

impl Mode {
    /// Both names, as options spell them.
    pub const NAMES: &'static [&'static str] = &["compat", "strict"];

    /// `compat` or `strict`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Compat => "compat",
            Mode::Strict => "strict",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "compat" => Ok(Mode::Compat),
            "strict" => Ok(Mode::Strict),
            other => Err(Error::Config(format!(
                "unknown ProX mode {other:?}: expected compat or strict"
            ))),
        }
    }
}

/// The acceptance rule applied after a chunk program ran, in this order:
/// 1. drop the document when `words_after / words_before <= min_keep_ratio` and the program had
///    at most `max_errors` errors;
/// 2. drop it when fewer than `min_words` words remain (whatever the error count);
/// 3. return the edited text when `words_after / words_before >= min_edit_ratio` and the program
///    had at most `max_errors` errors;
/// 4. otherwise return the original text (the whole program is discarded).
///
/// A text without any word is dropped (the reference divides by zero there).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Acceptance {
    /// Reference `1 - threshold_2` with `threshold_2 = 0.95`, computed in floating point as the
    /// reference does: `0.050000000000000044`.
    pub min_keep_ratio: f64,
    /// Reference `threshold_1` (default 0.0).
    pub min_edit_ratio: f64,
    /// Reference: documents left with 10 words or fewer are dropped, so 11.
    pub min_words: usize,
    /// Reference `error_op - 1` with `error_op = 2`, so 1.
    pub max_errors: usize,
}

impl Default for Acceptance {
    fn default() -> Self {
        Acceptance {
            min_keep_ratio: 1.0 - 0.95,
            min_edit_ratio: 0.0,
            min_words: 11,
            max_errors: 1,
        }
    }
}

impl crate::options::Options for Acceptance {
    /// Refuse values that cannot be meant (NaN or infinite ratios).
    fn validate(&self) -> std::result::Result<(), crate::options::OptionError> {
        for (name, v) in [
            ("min_keep_ratio", self.min_keep_ratio),
            ("min_edit_ratio", self.min_edit_ratio),
        ] {
            if !v.is_finite() {
                return Err(crate::options::OptionError::new(
                    name,
                    format!("must be a number, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// Run a document-level program: `""` when the document is dropped, else `text`.
pub fn execute_doc<'t>(text: &'t str, program: &str, mode: Mode) -> &'t str {
    let drop = match mode {
        Mode::Compat => compat::doc_drops(program),
        Mode::Strict => strict::doc_decision(program).0,
    };
    if drop {
        ""
    } else {
        text
    }
}

/// What a document-level program did, and why.
pub fn explain_doc(text: &str, program: &str, mode: Mode) -> Explanation {
    let (drop, errors) = match mode {
        Mode::Compat => (compat::doc_drops(program), Vec::new()),
        Mode::Strict => strict::doc_decision(program),
    };
    let words = pyrt::word_count(text);
    Explanation {
        text: if drop {
            String::new()
        } else {
            text.to_string()
        },
        outcome: if drop {
            Outcome::Dropped
        } else {
            Outcome::Original
        },
        reason: if drop {
            Reason::DropDoc
        } else {
            Reason::KeepDoc
        },
        words_before: words,
        words_after: if drop { 0 } else { words },
        removed_lines: Vec::new(),
        replacements: Vec::new(),
        errors,
    }
}

/// Run a chunk-level (document) program over `text`: the edited text, the original text, or
/// `""` when the document is dropped.
pub fn execute_chunk(text: &str, program: &str, mode: Mode, accept: &Acceptance) -> String {
    explain_chunk(text, program, mode, accept).text
}

/// [`execute_chunk`] without copying a document the program leaves as it is: the result
/// borrows `text` unless lines were removed or strings replaced.
pub fn execute_chunk_cow<'t>(
    text: &'t str,
    program: &str,
    mode: Mode,
    accept: &Acceptance,
) -> std::borrow::Cow<'t, str> {
    let plan = match mode {
        Mode::Compat => compat::plan(program),
        Mode::Strict => strict::plan(program),
    };
    exec::run_cow(text, plan, mode, accept).0
}

/// What a chunk-level program did (lines removed, replacements, errors) and why the acceptance
/// rule decided as it did.
pub fn explain_chunk(text: &str, program: &str, mode: Mode, accept: &Acceptance) -> Explanation {
    let plan = match mode {
        Mode::Compat => compat::plan(program),
        Mode::Strict => strict::plan(program),
    };
    exec::run(text, plan, mode, accept)
}
