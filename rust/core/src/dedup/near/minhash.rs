//! MinHash signatures and LSH band keys.
//!
//! Permutation `i` maps a 64-bit shingle hash `x` to `a_i * x + b_i (mod 2^64)` with `a_i` odd: a
//! bijection of the 64-bit space, so over XXH3 shingle hashes it behaves as a random
//! permutation. Signature value `i` is the minimum of that map over *every* shingle of the
//! document (full-set MinHash, no sampling). `a_i`, `b_i` come from SplitMix64 seeded with the
//! seed. Band `j` of a signature is rows `j*r .. (j+1)*r`; its key is XXH3-64 of those values as
//! little-endian bytes.
//!
//! [`Sketch::OnePermutation`] instead applies the first permutation only: the 64-bit space is cut
//! into `num_perm` equal ranges (bins), value `i` is the smallest permuted shingle in bin `i`, and
//! an empty bin takes the value of the first non-empty bin on its own probe sequence (a hash of
//! the seed, the bin and the attempt, the same for every document): one-permutation hashing with
//! optimal densification (Li, Owen and Zhang 2012; Shrivastava 2017). Two documents agree on a
//! value with probability close to their Jaccard similarity, as with `num_perm` permutations, for
//! O(shingles + num_perm) work instead of O(shingles × num_perm).

use xxhash_rust::xxh3::xxh3_64;

use super::shingle::{shingle_hashes_into, Shingling};
use crate::{Error, Result};

/// How a signature is computed from a document's shingle hashes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Sketch {
    /// `num_perm` independent permutations of every shingle (classic MinHash, datatrove's).
    #[default]
    #[serde(rename = "kperm")]
    Permutations,
    /// One permutation, `num_perm` bins, densified (see the module docs).
    #[serde(rename = "oph")]
    OnePermutation,
}

impl Sketch {
    /// Every sketch's name, as options spell it.
    pub const NAMES: &'static [&'static str] = &["kperm", "oph"];

    /// The name used on the command line and in Python.
    pub fn as_str(self) -> &'static str {
        match self {
            Sketch::Permutations => "kperm",
            Sketch::OnePermutation => "oph",
        }
    }
}

impl std::str::FromStr for Sketch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "kperm" => Ok(Sketch::Permutations),
            "oph" => Ok(Sketch::OnePermutation),
            other => Err(Error::Config(format!(
                "unknown sketch {other:?}: expected kperm or oph"
            ))),
        }
    }
}

/// Parameters of near-duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinHashParams {
    /// Signature length (number of permutations).
    pub num_perm: usize,
    /// LSH bands.
    pub bands: usize,
    /// Rows (signature values) per band; `bands * rows <= num_perm`.
    pub rows: usize,
    /// Shingle size (words or characters).
    pub ngram: usize,
    /// What shingles are made of.
    pub shingling: Shingling,
    /// Seed of the permutations.
    pub seed: u64,
    /// How signatures are computed.
    pub sketch: Sketch,
}

impl Default for MinHashParams {
    /// datatrove's (and FineWeb's) choice: 5-word shingles, 112 permutations as 14 bands × 8.
    fn default() -> Self {
        MinHashParams {
            num_perm: 112,
            bands: 14,
            rows: 8,
            ngram: 5,
            shingling: Shingling::Words,
            seed: 1,
            sketch: Sketch::Permutations,
        }
    }
}

impl MinHashParams {
    /// Check the parameters.
    pub fn validate(&self) -> Result<()> {
        if self.num_perm == 0 || self.bands == 0 || self.rows == 0 || self.ngram == 0 {
            return Err(Error::Config(
                "--num-perm, --bands, --rows and --ngram must be at least 1".into(),
            ));
        }
        if self.bands * self.rows > self.num_perm {
            return Err(Error::Config(format!(
                "{} bands × {} rows need {} permutations, more than --num-perm {}",
                self.bands,
                self.rows,
                self.bands * self.rows,
                self.num_perm
            )));
        }
        Ok(())
    }

    /// The similarity where the S-curve is steepest, about (1/b)^(1/r).
    pub fn threshold(&self) -> f64 {
        (1.0 / self.bands as f64).powf(1.0 / self.rows as f64)
    }

    /// Probability that a pair with Jaccard `s` shares at least one band: 1 − (1 − s^r)^b.
    pub fn candidate_probability(&self, s: f64) -> f64 {
        candidate_probability(s, self.bands, self.rows)
    }
}

/// 1 − (1 − s^r)^b.
pub fn candidate_probability(s: f64, bands: usize, rows: usize) -> f64 {
    1.0 - (1.0 - s.powi(rows as i32)).powi(bands as i32)
}

fn integrate(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    // Composite Simpson's rule; the integrands are smooth polynomials.
    let n = 200;
    let h = (hi - lo) / n as f64;
    let mut sum = f(lo) + f(hi);
    for i in 1..n {
        let x = lo + h * i as f64;
        sum += if i % 2 == 1 { 4.0 } else { 2.0 } * f(x);
    }
    sum * h / 3.0
}

/// The (bands, rows) with `bands * rows <= num_perm` minimizing the area of false positives
/// (candidates below `threshold`) weighted `1 - recall_weight` plus false negatives
/// (non-candidates above it) weighted `recall_weight`: datasketch's `_optimal_param`, whose
/// default weights are 0.5 and 0.5. Ties go to fewer bands, then fewer rows.
pub fn optimal_bands_rows(
    threshold: f64,
    num_perm: usize,
    recall_weight: f64,
) -> Result<(usize, usize)> {
    if !(threshold > 0.0 && threshold < 1.0) {
        return Err(Error::Config(format!(
            "--threshold must be between 0 and 1 (exclusive), not {threshold}"
        )));
    }
    if !(0.0..=1.0).contains(&recall_weight) {
        return Err(Error::Config(format!(
            "--recall-weight must be between 0 and 1, not {recall_weight}"
        )));
    }
    let mut best = (1, 1);
    let mut best_err = f64::INFINITY;
    for b in 1..=num_perm {
        for r in 1..=(num_perm / b) {
            let fp = integrate(|s| candidate_probability(s, b, r), 0.0, threshold);
            let fn_ = integrate(|s| 1.0 - candidate_probability(s, b, r), threshold, 1.0);
            let err = (1.0 - recall_weight) * fp + recall_weight * fn_;
            if err < best_err {
                best_err = err;
                best = (b, r);
            }
        }
    }
    Ok(best)
}

/// The S-curve as text: candidate probability at similarities 0.5 … 1.0.
pub fn s_curve_table(params: &MinHashParams) -> String {
    let mut out = format!(
        "{} bands × {} rows ({} of {} permutations), steepest near {:.3}\n  similarity:",
        params.bands,
        params.rows,
        params.bands * params.rows,
        params.num_perm,
        params.threshold()
    );
    let points = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0];
    for s in points {
        out.push_str(&format!(" {s:>5.2}"));
    }
    out.push_str("\n  P(found):  ");
    for s in points {
        out.push_str(&format!(" {:>5.3}", params.candidate_probability(s)));
    }
    out
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const LANES: usize = 8;

/// Probes per bin kept in a table for [`Sketch::OnePermutation`]: with a quarter of the bins
/// filled, 32 probes all miss with probability 0.75^32 ≈ 1e-4.
const PROBES: usize = 32;

/// Bin of a 64-bit value among `k` equal ranges.
fn bin_of(v: u64, k: usize) -> usize {
    ((u128::from(v) * k as u128) >> 64) as usize
}

/// Start of bin `j`'s probe sequence: it depends on the seed and the bin only, so two documents
/// with the same filled bins borrow the same values.
fn probe_state(seed: u64, j: usize) -> u64 {
    seed ^ (j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Computes signatures for one parameter set; cheap to share across threads.
#[derive(Debug, Clone)]
pub struct MinHasher {
    params: MinHashParams,
    a: Vec<u64>,
    b: Vec<u64>,
    /// [`Sketch::OnePermutation`]: the first [`PROBES`] bins of each bin's probe sequence.
    probes: Vec<u32>,
}

impl MinHasher {
    /// Draw the permutations for `params`.
    pub fn new(params: MinHashParams) -> Result<Self> {
        params.validate()?;
        let mut state = params.seed;
        let mut a = Vec::with_capacity(params.num_perm);
        let mut b = Vec::with_capacity(params.num_perm);
        for _ in 0..params.num_perm {
            a.push(splitmix64(&mut state) | 1);
            b.push(splitmix64(&mut state));
        }
        let mut probes = Vec::new();
        if params.sketch == Sketch::OnePermutation {
            probes.reserve(params.num_perm * PROBES);
            for j in 0..params.num_perm {
                let mut state = probe_state(params.seed, j);
                for _ in 0..PROBES {
                    probes.push(bin_of(splitmix64(&mut state), params.num_perm) as u32);
                }
            }
        }
        Ok(MinHasher {
            params,
            a,
            b,
            probes,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &MinHashParams {
        &self.params
    }

    /// Signature of a set of shingle hashes into `out` (length `num_perm`). No shingle gives
    /// all `u64::MAX`.
    pub fn signature_of_hashes(&self, shingles: &[u64], out: &mut [u64]) {
        debug_assert_eq!(out.len(), self.params.num_perm);
        if self.params.sketch == Sketch::OnePermutation {
            return self.one_permutation(shingles, out);
        }
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
            {
                // SAFETY: the CPU supports AVX-512 F and DQ, checked just above.
                unsafe { minhash_avx512(shingles, &self.a, &self.b, out) };
                return;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                unsafe { minhash_avx2(shingles, &self.a, &self.b, out) };
                return;
            }
        }
        minhash_generic(shingles, &self.a, &self.b, out);
    }

    /// [`Sketch::OnePermutation`]: bins of the first permutation, then densification. A bin is
    /// empty when its value is still `u64::MAX` (a shingle permuted to exactly 2^64 − 1 counts
    /// as none: still a function of the set alone); no separate occupancy array, whose
    /// read-modify-write on a couple of words would serialize the loop.
    fn one_permutation(&self, shingles: &[u64], out: &mut [u64]) {
        let k = out.len();
        out.fill(u64::MAX);
        if shingles.is_empty() {
            return;
        }
        let (a, b) = (self.a[0], self.b[0]);
        for &x in shingles {
            let v = a.wrapping_mul(x).wrapping_add(b);
            let bin = bin_of(v, k);
            out[bin] = out[bin].min(v);
        }
        if !out.contains(&u64::MAX) {
            return;
        }
        // Which bins the shingles filled, before any is borrowed into (borrowers never lend).
        let words = k.div_ceil(64);
        let (mut stack, mut heap) = ([0u64; 8], Vec::new());
        let filled: &mut [u64] = if words <= stack.len() {
            &mut stack[..words]
        } else {
            heap.resize(words, 0);
            &mut heap
        };
        for (j, v) in out.iter().enumerate() {
            if *v != u64::MAX {
                filled[j / 64] |= 1 << (j % 64);
            }
        }
        if filled.iter().all(|w| *w == 0) {
            return;
        }
        let filled = &*filled;
        let is_filled = |i: usize| filled[i / 64] >> (i % 64) & 1 == 1;
        for j in 0..k {
            if is_filled(j) {
                continue;
            }
            let first = self.probes[j * PROBES..(j + 1) * PROBES]
                .iter()
                .map(|&i| i as usize)
                .find(|&i| is_filled(i));
            let from = first.unwrap_or_else(|| {
                // Past the table: the same sequence, drawn on (practically never reached).
                let mut state = probe_state(self.params.seed, j);
                for _ in 0..PROBES {
                    splitmix64(&mut state);
                }
                (PROBES..64 * k)
                    .map(|_| bin_of(splitmix64(&mut state), k))
                    .find(|&i| is_filled(i))
                    .or_else(|| (1..k).map(|d| (j + d) % k).find(|&i| is_filled(i)))
                    .unwrap_or(j)
            });
            out[j] = out[from];
        }
    }

    /// Signature of `text` (normalized and shingled as in [`super::shingle`]).
    pub fn signature(&self, text: &str, scratch: &mut Scratch, out: &mut [u64]) {
        shingle_hashes_into(
            text,
            self.params.shingling,
            self.params.ngram,
            &mut scratch.shingles,
            &mut scratch.words,
        );
        self.signature_of_hashes(&scratch.shingles, out);
    }

    /// Band keys of a signature into `out` (length `bands`).
    pub fn band_keys(&self, signature: &[u64], out: &mut [u64]) {
        let r = self.params.rows;
        let mut bytes = Vec::with_capacity(8 * r);
        for (j, key) in out.iter_mut().enumerate().take(self.params.bands) {
            bytes.clear();
            for v in &signature[j * r..(j + 1) * r] {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            *key = xxh3_64(&bytes);
        }
    }
}

/// Reusable buffers for [`MinHasher::signature`].
#[derive(Debug, Default)]
pub struct Scratch {
    /// Shingle hashes of the last document.
    pub shingles: Vec<u64>,
    words: Vec<u64>,
}

// AVX-512 DQ has 64-bit multiplies and unsigned minimums: one instruction each per 8 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn minhash_avx512(shingles: &[u64], a: &[u64], b: &[u64], out: &mut [u64]) {
    minhash_generic(shingles, a, b, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn minhash_avx2(shingles: &[u64], a: &[u64], b: &[u64], out: &mut [u64]) {
    minhash_generic(shingles, a, b, out)
}

/// Blocks of 8 permutations stay in registers while every shingle streams past them, a shape
/// the compiler turns into vector multiplies and compares.
#[inline(always)]
fn minhash_generic(shingles: &[u64], a: &[u64], b: &[u64], out: &mut [u64]) {
    let mut start = 0;
    while start + LANES <= out.len() {
        let mut ab = [0u64; LANES];
        let mut bb = [0u64; LANES];
        ab.copy_from_slice(&a[start..start + LANES]);
        bb.copy_from_slice(&b[start..start + LANES]);
        let mut m = [u64::MAX; LANES];
        for &x in shingles {
            for j in 0..LANES {
                let v = ab[j].wrapping_mul(x).wrapping_add(bb[j]);
                m[j] = if v < m[j] { v } else { m[j] };
            }
        }
        out[start..start + LANES].copy_from_slice(&m);
        start += LANES;
    }
    for i in start..out.len() {
        out[i] = shingles
            .iter()
            .map(|&x| a[i].wrapping_mul(x).wrapping_add(b[i]))
            .min()
            .unwrap_or(u64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::super::shingle::{jaccard, shingle_set};
    use super::*;

    #[test]
    fn datasketch_optimal_params() {
        // datasketch's choices, as documented by SlimPajama/TxT360 (128 perms at 0.8).
        assert_eq!(optimal_bands_rows(0.8, 128, 0.5).ok(), Some((9, 13)));
        assert!(optimal_bands_rows(1.5, 128, 0.5).is_err());
        // Weighting recall shifts the S-curve left: FineWeb's 14 × 8 is the 0.75 optimum at 0.8.
        assert_eq!(optimal_bands_rows(0.75, 112, 0.8).ok(), Some((14, 8)));
    }

    #[test]
    fn candidate_probability_matches_the_table() {
        let p = MinHashParams::default();
        assert!((p.candidate_probability(0.8) - 0.924).abs() < 0.001);
        assert!((p.threshold() - 0.719).abs() < 0.001);
    }

    #[test]
    fn vector_and_scalar_paths_agree() {
        let h = MinHasher::new(MinHashParams {
            num_perm: 37,
            bands: 4,
            rows: 9,
            ..Default::default()
        })
        .unwrap();
        let shingles: Vec<u64> = (0..500u64).map(|i| i.wrapping_mul(0x9E37_79B9)).collect();
        let mut fast = vec![0; 37];
        h.signature_of_hashes(&shingles, &mut fast);
        let mut slow = vec![0; 37];
        for (i, s) in slow.iter_mut().enumerate() {
            *s = shingles
                .iter()
                .map(|&x| h.a[i].wrapping_mul(x).wrapping_add(h.b[i]))
                .min()
                .unwrap();
        }
        assert_eq!(fast, slow);
        let mut empty = vec![0; 37];
        h.signature_of_hashes(&[], &mut empty);
        assert!(empty.iter().all(|&v| v == u64::MAX));
    }

    #[test]
    fn estimates_jaccard_within_the_standard_error() {
        let ratio = jaccard_error_ratio(Sketch::Permutations, 400);
        assert!(
            ratio < 1.3,
            "error {ratio:.2}× the theoretical standard error"
        );
    }

    #[test]
    fn one_permutation_estimates_jaccard_too() {
        // 100 words over 256 bins leave two thirds of the bins empty, 400 a fifth: densified
        // bins still agree with probability close to the Jaccard similarity.
        for words in [100, 400, 1000] {
            let ratio = jaccard_error_ratio(Sketch::OnePermutation, words);
            assert!(
                ratio < 1.3,
                "{words} words: error {ratio:.2}× the standard error"
            );
        }
        // Without densification the empty bins (all u64::MAX in both) would agree by default.
        let h = MinHasher::new(MinHashParams {
            num_perm: 64,
            bands: 8,
            rows: 8,
            ngram: 1,
            sketch: Sketch::OnePermutation,
            ..Default::default()
        })
        .unwrap();
        let mut sig = vec![0; 64];
        h.signature("just three words", &mut Scratch::default(), &mut sig);
        assert!(sig.iter().all(|&v| v != u64::MAX));
        assert!(sig.iter().collect::<std::collections::HashSet<_>>().len() <= 3);
    }

    /// Pairs of documents with known overlap: the share of equal signature values estimates
    /// their Jaccard similarity with error about sqrt(J(1-J)/k). Returns the root mean squared
    /// error over that.
    fn jaccard_error_ratio(sketch: Sketch, words: usize) -> f64 {
        let k = 256;
        let h = MinHasher::new(MinHashParams {
            num_perm: k,
            bands: 32,
            rows: 8,
            ngram: 1,
            sketch,
            ..Default::default()
        })
        .unwrap();
        let mut sq_err = 0.0;
        let mut sq_expected = 0.0;
        let trials = 60;
        for t in 0..trials {
            // Letters only: `Simple` maps every digit to 0, which would merge numbered words.
            let letters = |mut n: usize| {
                let mut w = String::from("w");
                loop {
                    w.push((b'a' + (n % 26) as u8) as char);
                    n /= 26;
                    if n == 0 {
                        return w;
                    }
                }
            };
            let base: Vec<String> = (0..words)
                .map(|i| format!("{}q{}", letters(t), letters(i)))
                .collect();
            let mut other = base.clone();
            for w in other.iter_mut().take((40 + 3 * t) * words / 400) {
                w.push('z');
            }
            let (a, b) = (base.join(" "), other.join(" "));
            let j = jaccard(
                &shingle_set(&a, Shingling::Words, 1),
                &shingle_set(&b, Shingling::Words, 1),
            );
            let (mut sa, mut sb) = (vec![0; k], vec![0; k]);
            let mut scratch = Scratch::default();
            h.signature(&a, &mut scratch, &mut sa);
            h.signature(&b, &mut scratch, &mut sb);
            let est = sa.iter().zip(&sb).filter(|(x, y)| x == y).count() as f64 / k as f64;
            sq_err += (est - j).powi(2);
            sq_expected += j * (1.0 - j) / k as f64;
        }
        (sq_err / sq_expected).sqrt()
    }
}
