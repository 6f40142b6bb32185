//! Running a parsed chunk program over a document: replacements over the whole text in program
//! order, then line removal, then the acceptance rule. Both modes share this; they differ in how
//! programs are parsed and in how out-of-range intervals are counted.

use std::borrow::Cow;

use super::pyrt::{word_count, PyInt};
use super::{Acceptance, Mode};

/// An error in a program, as counted by the acceptance rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProgramError {
    /// 1-based line of the program, when the error belongs to one line.
    pub line: Option<usize>,
    /// That line.
    pub source: String,
    /// What is wrong.
    pub message: String,
}

/// A `normalize` that ran: every occurrence of `source` became `target`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Replacement {
    /// String replaced.
    pub source: String,
    /// Replacement.
    pub target: String,
    /// Occurrences replaced (0 when the string was not found).
    pub count: usize,
}

/// What became of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Dropped: the result is `""`.
    Dropped,
    /// The program's edits were applied (possibly none).
    Edited,
    /// The original text is returned.
    Original,
}

impl Outcome {
    /// `dropped`, `edited` or `original`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Dropped => "dropped",
            Outcome::Edited => "edited",
            Outcome::Original => "original",
        }
    }
}

/// Why the acceptance rule decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The document program says drop.
    DropDoc,
    /// The document program keeps the document.
    KeepDoc,
    /// The text has no words (the reference divides by zero here).
    NoWords,
    /// Too small a share of the words is left.
    TooLittleLeft,
    /// Fewer than `min_words` words are left.
    TooFewWords,
    /// The edits were accepted.
    Accepted,
    /// More than `max_errors` errors: the program is discarded.
    TooManyErrors,
    /// The share of words left is below `min_edit_ratio`: the program is discarded.
    BelowEditRatio,
}

impl Reason {
    /// Stable snake_case name (stats counters, Python).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::DropDoc => "drop_doc",
            Reason::KeepDoc => "keep_doc",
            Reason::NoWords => "no_words",
            Reason::TooLittleLeft => "too_little_left",
            Reason::TooFewWords => "too_few_words",
            Reason::Accepted => "accepted",
            Reason::TooManyErrors => "too_many_errors",
            Reason::BelowEditRatio => "below_edit_ratio",
        }
    }
}

/// The result of a program, with what it did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explanation {
    /// The resulting text (`""` when dropped).
    pub text: String,
    /// Dropped, edited or original.
    pub outcome: Outcome,
    /// Why.
    pub reason: Reason,
    /// `len(text.split())` of the input.
    pub words_before: usize,
    /// `len(edited.split())` of the edited text (before the acceptance rule).
    pub words_after: usize,
    /// Inclusive 0-based line ranges the program removed (before the acceptance rule).
    pub removed_lines: Vec<(usize, usize)>,
    /// Replacements, in program order.
    pub replacements: Vec<Replacement>,
    /// Errors, as counted.
    pub errors: Vec<ProgramError>,
}

/// A parsed chunk program.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// `(source, target)` in program order.
    pub replacements: Vec<(String, String)>,
    /// `(start, end, program line)`, inclusive, as written (possibly reversed or out of range).
    pub intervals: Vec<(PyInt, PyInt, usize)>,
    /// `remove_lines(all=True)` was seen.
    pub remove_all: bool,
    /// Parse errors.
    pub errors: Vec<ProgramError>,
    /// Program lines, for messages about intervals.
    pub lines: Vec<String>,
}

/// How far `normalize` calls may grow a text: to [`GROWTH_FACTOR`] times its original size or
/// [`GROWTH_FLOOR`] bytes, whichever is larger. Untrusted programs repeating
/// `normalize(source_str="o", target_str="oo")` would otherwise double the text per line; a
/// replacement past the cap is not applied and counts as a program error.
pub const GROWTH_FACTOR: usize = 16;
/// See [`GROWTH_FACTOR`].
pub const GROWTH_FLOOR: usize = 1 << 20;

/// The most bytes replacements may grow a text of `original` bytes to.
fn growth_cap(original: usize) -> usize {
    original.saturating_mul(GROWTH_FACTOR).max(GROWTH_FLOOR)
}

/// `text.replace(from, to)` and the number of occurrences replaced; `Err(len)` with the length
/// the result would have when it exceeds `cap` bytes (nothing is built).
fn replace_count(
    text: &str,
    from: &str,
    to: &str,
    cap: usize,
) -> Result<Option<(String, usize)>, u128> {
    if from.is_empty() {
        return Ok(None);
    }
    if to.len() > from.len() {
        let count = text.matches(from).count() as u128;
        let len = text.len() as u128 + count * (to.len() - from.len()) as u128;
        if len > cap as u128 {
            return Err(len);
        }
    }
    let mut out = String::new();
    let mut last = 0;
    let mut count = 0;
    for (i, _) in text.match_indices(from) {
        if count == 0 {
            out.reserve(text.len());
        }
        out.push_str(&text[last..i]);
        out.push_str(to);
        last = i + from.len();
        count += 1;
    }
    if count == 0 {
        return Ok(None);
    }
    out.push_str(&text[last..]);
    Ok(Some((out, count)))
}

/// `[lo, hi]` of `[start, end]` clipped to lines `0..n`, if any line is left.
fn clip(start: &PyInt, end: &PyInt, n: usize) -> Option<(usize, usize)> {
    if n == 0 || start > end || !PyInt::Small(n as i128 - 1).ge(start) || end < &PyInt::Small(0) {
        return None;
    }
    let lo = start.small().map_or(0, |s| s.max(0) as usize);
    // `end >= 0` here; a value past `usize` (or past `i128`) ends at the last line, never wraps.
    let hi = end
        .small()
        .and_then(|e| usize::try_from(e).ok())
        .map_or(n - 1, |e| e.min(n - 1));
    Some((lo, hi))
}

/// The reference's check after merging intervals: sort by start, merge an interval into the
/// previous one when `start <= previous end + 1`, then count one error per merged interval that
/// starts past the last line or ends past it.
fn merged_interval_errors(plan: &Plan, n: usize) -> Vec<ProgramError> {
    let mut sorted: Vec<&(PyInt, PyInt, usize)> = plan.intervals.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0)); // stable, like Python's sort
    let mut merged: Vec<(PyInt, PyInt)> = Vec::new();
    for (s, e, _) in sorted {
        match merged.last_mut() {
            Some(prev) if *s <= prev.1.succ() => {
                if *e > prev.1 {
                    prev.1 = e.clone();
                }
            }
            _ => merged.push((s.clone(), e.clone())),
        }
    }
    let mut errors = Vec::new();
    for (s, e) in merged {
        let message = if s.ge_usize(n) {
            format!("removal of lines {s}..{e} starts past the last line ({n} lines)")
        } else if e.ge_usize(n) {
            format!("removal of lines {s}..{e} ends past the last line ({n} lines)")
        } else {
            continue;
        };
        errors.push(ProgramError {
            line: None,
            source: String::new(),
            message,
        });
    }
    errors
}

/// Strict mode counts each interval on its own, against the line it came from.
fn strict_interval_errors(plan: &Plan, n: usize) -> Vec<ProgramError> {
    let mut errors = Vec::new();
    for (s, e, line) in &plan.intervals {
        let message = if s.ge_usize(n) {
            format!("line_start {s} is past the last line (the text has {n} lines)")
        } else if e.ge_usize(n) {
            format!("line_end {e} is past the last line (the text has {n} lines)")
        } else {
            continue;
        };
        errors.push(ProgramError {
            line: Some(*line),
            source: plan.lines.get(line - 1).cloned().unwrap_or_default(),
            message,
        });
    }
    errors
}

pub(crate) fn run(original: &str, plan: Plan, mode: Mode, accept: &Acceptance) -> Explanation {
    let (text, mut e) = run_cow(original, plan, mode, accept);
    e.text = text.into_owned();
    e
}

/// [`run`] with the resulting text borrowed from `original` when it is unchanged (no copy for
/// documents kept as they are); the explanation's `text` is left empty.
pub(crate) fn run_cow<'a>(
    original: &'a str,
    mut plan: Plan,
    mode: Mode,
    accept: &Acceptance,
) -> (Cow<'a, str>, Explanation) {
    let mut replacements = Vec::with_capacity(plan.replacements.len());
    let mut edited: Option<String> = None;
    let cap = growth_cap(original.len());
    for (source, target) in std::mem::take(&mut plan.replacements) {
        let current = edited.as_deref().unwrap_or(original);
        let count = match replace_count(current, &source, &target, cap) {
            Ok(Some((next, count))) => {
                edited = Some(next);
                count
            }
            Ok(None) => 0,
            Err(len) => {
                plan.errors.push(ProgramError {
                    line: None,
                    source: String::new(),
                    message: format!(
                        "normalize {source:?} -> {target:?} not applied: the text would grow to \
                         {len} bytes, past the cap of {cap} ({GROWTH_FACTOR} times its {} bytes, \
                         at least {GROWTH_FLOOR})",
                        original.len()
                    ),
                });
                0
            }
        };
        replacements.push(Replacement {
            source,
            target,
            count,
        });
    }
    let text = edited.as_deref().unwrap_or(original);
    // Replacements never add or remove a newline (program lines cannot hold one), so numbering
    // is that of the original text.
    let n = memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1;
    let mut removed_lines: Vec<(usize, usize)> = Vec::new();
    if plan.remove_all {
        removed_lines.push((0, n - 1));
    } else {
        let mut ranges: Vec<(usize, usize)> = plan
            .intervals
            .iter()
            .filter_map(|(s, e, _)| clip(s, e, n))
            .collect();
        ranges.sort_unstable();
        for (lo, hi) in ranges {
            match removed_lines.last_mut() {
                Some(prev) if lo <= prev.1 + 1 => prev.1 = prev.1.max(hi),
                _ => removed_lines.push((lo, hi)),
            }
        }
    }
    let processed: Cow<'_, str> = if removed_lines.is_empty() {
        Cow::Borrowed(text)
    } else {
        let mut out = String::with_capacity(text.len());
        let mut ranges = removed_lines.iter().peekable();
        let mut first = true;
        for (i, line) in text.split('\n').enumerate() {
            while ranges.peek().is_some_and(|r| r.1 < i) {
                ranges.next();
            }
            if ranges.peek().is_some_and(|r| r.0 <= i) {
                continue;
            }
            if !first {
                out.push('\n');
            }
            out.push_str(line);
            first = false;
        }
        Cow::Owned(out)
    };
    let mut errors = std::mem::take(&mut plan.errors);
    errors.extend(match mode {
        Mode::Compat => merged_interval_errors(&plan, n),
        Mode::Strict => strict_interval_errors(&plan, n),
    });
    let words_before = word_count(original);
    // Lines join with `\n`, a separator, so word counts add up over lines: without replacements
    // the words left are those of the original minus those of the removed lines.
    let words_after = if edited.is_some() {
        word_count(&processed)
    } else if removed_lines.is_empty() {
        words_before
    } else {
        let mut ranges = removed_lines.iter().peekable();
        let mut removed = 0;
        for (i, line) in text.split('\n').enumerate() {
            while ranges.peek().is_some_and(|r| r.1 < i) {
                ranges.next();
            }
            match ranges.peek() {
                Some(r) if r.0 <= i => removed += word_count(line),
                Some(_) => {}
                None => break,
            }
        }
        words_before - removed
    };
    let (outcome, reason) = accept.decide(words_before, words_after, errors.len());
    let result: Cow<'a, str> = match outcome {
        Outcome::Dropped => Cow::Borrowed(""),
        // Unchanged by the program: the original, borrowed.
        Outcome::Edited if edited.is_none() && removed_lines.is_empty() => Cow::Borrowed(original),
        Outcome::Edited => Cow::Owned(processed.into_owned()),
        Outcome::Original => Cow::Borrowed(original),
    };
    let explanation = Explanation {
        text: String::new(),
        outcome,
        reason,
        words_before,
        words_after,
        removed_lines,
        replacements,
        errors,
    };
    (result, explanation)
}

impl Acceptance {
    /// The acceptance rule (see [`Acceptance`]).
    pub fn decide(&self, before: usize, after: usize, errors: usize) -> (Outcome, Reason) {
        if before == 0 {
            return (Outcome::Dropped, Reason::NoWords);
        }
        // Python's int / int: the correctly rounded quotient, as f64 division of exact values.
        let ratio = after as f64 / before as f64;
        let few_errors = errors <= self.max_errors;
        if ratio <= self.min_keep_ratio && few_errors {
            (Outcome::Dropped, Reason::TooLittleLeft)
        } else if after < self.min_words {
            (Outcome::Dropped, Reason::TooFewWords)
        } else if ratio >= self.min_edit_ratio && few_errors {
            (Outcome::Edited, Reason::Accepted)
        } else if few_errors {
            (Outcome::Original, Reason::BelowEditRatio)
        } else {
            (Outcome::Original, Reason::TooManyErrors)
        }
    }
}
