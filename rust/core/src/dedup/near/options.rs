//! [`NearOptions`]: every option of near-duplicate dedup, its defaults and its checks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::minhash::{optimal_bands_rows, MinHashParams, Sketch};
use super::shingle::Shingling;
use crate::dedup::Keep;
use crate::options::{check_closed, check_open, check_range, OptionError, Options};

/// Largest accepted `num_perm`: signatures cost 8 bytes × `num_perm` per document and time
/// proportional to it; datasketch's default is 128, FineWeb's 112.
pub const MAX_NUM_PERM: usize = 8192;
/// Largest accepted shingle size.
pub const MAX_NGRAM: usize = 1000;

/// Options of near-duplicate dedup (`tamis dedup near`, `tamis.dedup.near`, the `dedup_near`
/// stage, the datatrove steps and polars expressions).
///
/// Defaults are datatrove's (FineWeb's): 5-word shingles, 112 permutations as 14 bands × 8
/// rows, seed 1. `threshold` instead picks bands × rows for that Jaccard similarity as
/// datasketch does (false negatives weighted `recall_weight`, 0.5 by default) and is the Jaccard
/// `verify` requires (0.8 when not given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NearOptions {
    /// Similarity threshold (0 < t < 1): picks bands × rows; excludes `bands` and `rows`.
    pub threshold: Option<f64>,
    /// With `threshold`: weight of false negatives against false positives (0 to 1).
    pub recall_weight: Option<f64>,
    /// Shingle size, in words (or characters).
    pub ngram: usize,
    /// What shingles are made of.
    pub shingle: Shingling,
    /// Signature length (permutations, or bins with `sketch = "oph"`).
    pub num_perm: usize,
    /// LSH bands (default: `num_perm / rows`).
    pub bands: Option<usize>,
    /// Rows per band (default 8).
    pub rows: Option<usize>,
    /// Seed of the permutations.
    pub seed: u64,
    /// How signatures are computed.
    pub sketch: Sketch,
    /// Join candidate pairs only when their exact shingle-set Jaccard reaches the threshold.
    pub verify: bool,
    /// Keep every document and add `minhash_cluster_id` and `minhash_cluster_size` instead.
    pub annotate: bool,
    /// Which document a cluster keeps: `first` (in input order), `longest`, `shortest`,
    /// `max:FIELD` or `min:FIELD` (missing or null values are never preferred; ties go to the
    /// first in input order).
    pub keep: Keep,
    /// The older spelling of `keep = "min:FIELD"`.
    pub priority: Option<String>,
    /// Write one JSON line per member of each cluster of two or more documents here.
    pub clusters: Option<PathBuf>,
    /// Bound on the memory for band keys (bytes, or text like `8G`); beyond it they spill.
    #[serde(with = "crate::options::size")]
    pub memory_limit: Option<u64>,
    /// Where spill files go (default: the system temporary directory).
    pub spill_dir: Option<PathBuf>,
    /// Near indexes of what was already seen (`tamis index build --kind near`, built with the
    /// same MinHash parameters): a cluster holding a document whose band key is in an index
    /// keeps none of its documents (`indexed_duplicate`), as if the indexed corpus came first;
    /// with `annotate` they are kept and get `dup_of`.
    pub against: Vec<PathBuf>,
}

impl Default for NearOptions {
    fn default() -> Self {
        let p = MinHashParams::default();
        NearOptions {
            threshold: None,
            recall_weight: None,
            ngram: p.ngram,
            shingle: p.shingling,
            num_perm: p.num_perm,
            bands: None,
            rows: None,
            seed: p.seed,
            sketch: p.sketch,
            verify: false,
            annotate: false,
            keep: Keep::First,
            priority: None,
            clusters: None,
            memory_limit: None,
            spill_dir: None,
            against: Vec::new(),
        }
    }
}

/// Rows per band when neither `threshold` nor `rows` is given.
const DEFAULT_ROWS: usize = 8;
/// The Jaccard `verify` requires when no threshold is given.
const DEFAULT_VERIFY_THRESHOLD: f64 = 0.8;

impl NearOptions {
    /// The shingling, signature and banding parameters these options give.
    ///
    /// Checks, beyond [`Options::validate`], that the bands fit the signature; signatures alone
    /// ([`NearOptions::signature_params`]) do not need that.
    pub fn params(&self) -> Result<MinHashParams, OptionError> {
        self.validate()?;
        let (bands, rows) = match self.threshold {
            Some(t) => optimal_bands_rows(t, self.num_perm, self.recall_weight.unwrap_or(0.5))
                .map_err(|e| OptionError::new("threshold", e))?,
            None => self.given_bands_rows(),
        };
        if bands.saturating_mul(rows) > self.num_perm {
            return Err(OptionError::with_fields(
                &["bands", "rows", "num_perm"],
                format!(
                    "{{0}} × {{1}} = {bands} × {rows} needs {} permutations, more than {{2}} = {}",
                    bands.saturating_mul(rows),
                    self.num_perm
                ),
            ));
        }
        Ok(MinHashParams {
            num_perm: self.num_perm,
            bands,
            rows,
            ngram: self.ngram,
            shingling: self.shingle,
            seed: self.seed,
            sketch: self.sketch,
        })
    }

    /// The signature parameters alone (shingling, `num_perm`, seed, sketch), for computing
    /// signatures without banding them: bands and rows are not checked.
    pub fn signature_params(&self) -> Result<MinHashParams, OptionError> {
        check_range("ngram", self.ngram, Some(1), Some(MAX_NGRAM))?;
        check_range("num_perm", self.num_perm, Some(1), Some(MAX_NUM_PERM))?;
        Ok(MinHashParams {
            num_perm: self.num_perm,
            bands: 1,
            rows: 1,
            ngram: self.ngram,
            shingling: self.shingle,
            seed: self.seed,
            sketch: self.sketch,
        })
    }

    /// Bands and rows without a threshold: `rows` defaults to 8, `bands` to `num_perm / rows`.
    fn given_bands_rows(&self) -> (usize, usize) {
        let rows = self.rows.unwrap_or(DEFAULT_ROWS);
        (self.bands.unwrap_or((self.num_perm / rows).max(1)), rows)
    }

    /// Which document a cluster keeps (`keep`, or `priority` as `min:FIELD`).
    pub fn keep_policy(&self) -> Result<Keep, OptionError> {
        crate::dedup::keep::resolve(&self.keep, self.priority.as_deref())
    }

    /// The Jaccard similarity verification requires, when `verify` is on.
    pub fn verify_threshold(&self) -> Option<f64> {
        self.verify
            .then_some(self.threshold.unwrap_or(DEFAULT_VERIFY_THRESHOLD))
    }
}

impl Options for NearOptions {
    fn validate(&self) -> Result<(), OptionError> {
        if let Some(t) = self.threshold {
            check_open("threshold", t, 0.0, 1.0)?;
            if self.bands.is_some() || self.rows.is_some() {
                let other = if self.bands.is_some() {
                    "bands"
                } else {
                    "rows"
                };
                return Err(OptionError::with_fields(
                    &["threshold", other],
                    "give either {0} or {1} (bands and rows), not both",
                ));
            }
        }
        if let Some(w) = self.recall_weight {
            check_closed("recall_weight", w, 0.0, 1.0)?;
            if self.threshold.is_none() {
                return Err(OptionError::with_fields(
                    &["recall_weight", "threshold"],
                    "{0} only applies with {1}",
                ));
            }
        }
        check_range("ngram", self.ngram, Some(1), Some(MAX_NGRAM))?;
        check_range("num_perm", self.num_perm, Some(1), Some(MAX_NUM_PERM))?;
        if let Some(b) = self.bands {
            check_range("bands", b, Some(1), Some(self.num_perm))?;
        }
        if let Some(r) = self.rows {
            check_range("rows", r, Some(1), Some(self.num_perm))?;
        }
        self.keep_policy()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Surface;

    #[test]
    fn defaults_are_datatroves() {
        let p = NearOptions::default().params().expect("params");
        assert_eq!((p.num_perm, p.bands, p.rows, p.ngram), (112, 14, 8, 5));
    }

    #[test]
    fn bad_values_are_caught_before_any_work() {
        let err = |j: &str| {
            NearOptions::from_json(j)
                .and_then(|o| o.params().map(|_| o))
                .unwrap_err()
                .render(&Surface::Cli)
        };
        for t in ["0", "1", "1.5", "-0.1"] {
            assert!(err(&format!(r#"{{"threshold": {t}}}"#))
                .starts_with("--threshold must be greater than 0"));
        }
        assert_eq!(
            err(r#"{"rows": 200}"#),
            "--rows must be from 1 to 112, got 200"
        );
        assert_eq!(
            err(r#"{"bands": 20, "rows": 8}"#),
            "--bands × --rows = 20 × 8 needs 160 permutations, more than --num-perm = 112"
        );
        assert_eq!(
            err(r#"{"threshold": 0.8, "bands": 4}"#),
            "give either --threshold or --bands (bands and rows), not both"
        );
        assert_eq!(
            err(r#"{"num_perm": 100000000}"#),
            "--num-perm must be from 1 to 8192, got 100000000"
        );
        assert!(err(r#"{"seed": -1}"#).starts_with("--seed must be an integer >= 0"));
        assert_eq!(
            err(r#"{"memory_limit": "lots"}"#),
            "--memory-limit must be a size like 512M or 8G, got \"lots\""
        );
        assert_eq!(
            err(r#"{"bands": 20}"#),
            "--bands × --rows = 20 × 8 needs 160 permutations, more than --num-perm = 112"
        );
    }
}
