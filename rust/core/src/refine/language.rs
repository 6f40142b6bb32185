//! The `language` stage, run in Rust on tamis' own fastText inference: the built-in
//! `lid.176.ftz` or a model file. One implementation for `tamis refine`, `tamis filter language`,
//! the standalone binary, the Python API and the datatrove step, so the same metadata and
//! decisions everywhere.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use rayon::prelude::*;

use super::external::{Checked, FieldColumn, Outcome};
use super::stages::LanguageOptions;
use crate::fasttext::{self, FastText};
use crate::io::FieldValue;
use crate::Result;

/// The field each document's language goes to.
pub const LANGUAGE_FIELD: &str = "metadata.language";
/// The field its probability goes to (rounded to 4 digits).
pub const SCORE_FIELD: &str = "metadata.language_score";

/// A loaded language stage.
#[derive(Debug, Clone)]
pub struct LanguageStage {
    model: Arc<FastText>,
    languages: BTreeSet<String>,
    min_score: f64,
}

/// One document's prediction and decision.
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageDecision {
    /// The top label without `__label__` (`en`); empty when the text has no word.
    pub language: String,
    /// Its probability, at most 1.
    pub score: f64,
    /// Why the document is dropped; `None` when kept.
    pub reason: Option<&'static str>,
}

/// Check a language stage before any work: its model loads. With `if_available`, a model file
/// that does not exist skips the stage with a note instead.
pub fn check(o: &LanguageOptions) -> std::result::Result<Checked, String> {
    if let Some(p) = &o.model {
        if o.if_available && !p.exists() {
            return Ok(Checked::Skip(format!(
                "skipped: language model {} not found",
                p.display()
            )));
        }
    }
    LanguageStage::new(o).map_err(|e| e.to_string())?;
    Ok(Checked::Run(None))
}

/// fastText reads one line: line breaks become spaces, as datatrove does.
fn one_line(text: &str) -> Cow<'_, str> {
    if text.contains(['\n', '\r']) {
        Cow::Owned(text.replace(['\n', '\r'], " "))
    } else {
        Cow::Borrowed(text)
    }
}

/// `x` rounded to 4 decimal digits (correctly rounded, as Python's `round(x, 4)`).
fn round4(x: f64) -> f64 {
    format!("{x:.4}").parse().unwrap_or(x)
}

impl LanguageStage {
    /// Load the stage's model (once per process per file; see [`fasttext::shared`]).
    pub fn new(o: &LanguageOptions) -> Result<Self> {
        Ok(LanguageStage {
            model: fasttext::shared(o.model.as_deref())?,
            languages: o.languages.iter().cloned().collect(),
            min_score: o.min_score,
        })
    }

    /// The top language of `text` and its probability.
    pub fn predict(&self, text: &str) -> (String, f64) {
        let line = one_line(text);
        match self.model.predict(&line, 1, 0.0).first() {
            Some((label, p)) => (
                label.strip_prefix("__label__").unwrap_or(label).to_string(),
                f64::from(*p).min(1.0),
            ),
            None => (String::new(), 0.0),
        }
    }

    /// Predict and decide for one document: dropped for `language` when a list of languages
    /// is given and its language is not in it, for `language_score` when the probability is
    /// under `min_score`.
    pub fn decide_one(&self, text: &str) -> LanguageDecision {
        let (language, score) = self.predict(text);
        let reason = if !self.languages.is_empty() && !self.languages.contains(&language) {
            Some("language")
        } else if score < self.min_score {
            Some("language_score")
        } else {
            None
        };
        LanguageDecision {
            language,
            score,
            reason,
        }
    }

    /// Decisions for `texts`, in order, predicted in parallel on the current rayon pool.
    pub fn decide_all(&self, texts: &[&str]) -> Vec<LanguageDecision> {
        texts
            .par_iter()
            .with_min_len(64)
            .map(|t| self.decide_one(t))
            .collect()
    }

    /// The stage's outcome for a batch: decisions, `metadata.language` and
    /// `metadata.language_score` (rounded to 4 digits), and `en 0.91` as the report's detail.
    pub fn outcome(&self, texts: &[&str]) -> Outcome {
        let d = self.decide_all(texts);
        Outcome {
            keep: d.iter().map(|d| d.reason.is_none()).collect(),
            reasons: d
                .iter()
                .map(|d| d.reason.unwrap_or_default().to_string())
                .collect(),
            texts: None,
            fields: vec![
                FieldColumn {
                    path: LANGUAGE_FIELD.to_string(),
                    values: d
                        .iter()
                        .map(|d| Some(FieldValue::Str(d.language.clone())))
                        .collect(),
                    if_absent: false,
                },
                FieldColumn {
                    path: SCORE_FIELD.to_string(),
                    values: d
                        .iter()
                        .map(|d| Some(FieldValue::Float(round4(d.score))))
                        .collect(),
                    if_absent: false,
                },
            ],
            details: Some(
                d.iter()
                    .map(|d| format!("{} {:.2}", d.language, d.score))
                    .collect(),
            ),
            counters: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(languages: &[&str], min_score: f64) -> LanguageStage {
        LanguageStage::new(&LanguageOptions {
            languages: languages.iter().map(|s| s.to_string()).collect(),
            min_score,
            ..LanguageOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn decides_by_language_then_score() {
        let en = "The quick brown fox jumps over the lazy dog near the river bank.";
        let nl = "De snelle bruine vos springt over de luie hond bij de rivier.";
        let s = stage(&["en"], 0.5);
        let d = s.decide_all(&[en, nl, ""]);
        assert_eq!((d[0].language.as_str(), d[0].reason), ("en", None));
        assert_eq!(
            (d[1].language.as_str(), d[1].reason),
            ("nl", Some("language"))
        );
        // No word: fastText still sees the end of line, with a low score.
        assert_eq!(d[2].reason, Some("language_score"));
        let all = stage(&[], 0.999_999);
        assert_eq!(all.decide_one(en).reason, Some("language_score"));
    }

    #[test]
    fn line_breaks_are_spaces_and_scores_are_rounded() {
        let s = stage(&[], 0.0);
        let a = "Het is een mooie dag vandaag.\nWe gaan naar het strand.";
        assert_eq!(s.predict(a), s.predict(&a.replace('\n', " ")));
        let out = s.outcome(&[a]);
        let Some(FieldValue::Float(f)) = &out.fields[1].values[0] else {
            panic!("score is not a float")
        };
        assert!(format!("{f}").trim_start_matches("0.").len() <= 4, "{f}");
        assert_eq!(round4(0.123_456), 0.1235);
        assert_eq!(round4(1.0), 1.0);
    }

    #[test]
    fn a_missing_model_is_an_error_or_a_skip() {
        let mut o = LanguageOptions {
            model: Some("/nonexistent/lid.bin".into()),
            ..LanguageOptions::default()
        };
        let e = check(&o).unwrap_err();
        assert!(e.contains("/nonexistent/lid.bin"), "{e}");
        o.if_available = true;
        assert!(matches!(check(&o), Ok(Checked::Skip(_))));
    }
}
