//! The rows of new tokens: the decomposition `D(t)` by the old tokenizer's model, zip-tie and the
//! baselines, on embedding matrices held as raw little-endian bytes in f32, f16 or bf16.

use std::collections::{BTreeMap, HashSet};

use rayon::prelude::*;
use tokenizers::Model;

use super::EmbedError;
use crate::vocab::TokenizerFile;
use crate::{Error, Result};

/// How new rows are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Mean of the rows of `D(t)`, the old tokenizer's pieces of the new token (Bailong).
    #[default]
    #[serde(alias = "zip-tie")]
    Ziptie,
    /// Mean of all old rows (Hewitt).
    Mean,
    /// A sample from a normal with the old rows' mean and `1e-9` times their per-dimension
    /// variance (transformers' `mean_resizing`, with a diagonal covariance).
    #[serde(alias = "mean_resizing")]
    MeanResizing,
    /// N(0, 0.02²) noise.
    Random,
}

impl Method {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ziptie => "ziptie",
            Method::Mean => "mean",
            Method::MeanResizing => "mean-resizing",
            Method::Random => "random",
        }
    }

    /// Parse a command-line name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "ziptie" | "zip-tie" => Method::Ziptie,
            "mean" => Method::Mean,
            "mean-resizing" | "mean_resizing" => Method::MeanResizing,
            "random" => Method::Random,
            _ => {
                return Err(Error::Config(format!(
                    "unknown method {s:?}: expected ziptie, mean, mean-resizing or random"
                )))
            }
        })
    }
}

/// How the output (lm_head) rows of an untied model are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputInit {
    /// The method applied to the lm_head rows (for zip-tie: the mean of the lm_head rows of `D(t)`).
    #[default]
    Mean,
    /// Zip-tie only: the lm_head row of the first piece of `D(t)` (EEVE).
    First,
    /// A copy of the new input row.
    Tie,
}

impl OutputInit {
    /// Parse a command-line name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "mean" => OutputInit::Mean,
            "first" => OutputInit::First,
            "tie" => OutputInit::Tie,
            _ => {
                return Err(Error::Config(format!(
                    "unknown output init {s:?}: expected mean, first or tie"
                )))
            }
        })
    }
}

/// Largest accepted `pad_to_multiple_of`: rows are padded up to it, so a huge value would
/// allocate a huge matrix.
pub const MAX_PAD: u32 = 1 << 16;

/// Options of the initialization.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Debug, Clone)]
pub struct InitConfig {
    /// How new rows are made.
    pub method: Method,
    /// How lm_head rows of untied models are made.
    pub output_init: OutputInit,
    /// Round the number of rows up to a multiple of this (1: no padding).
    pub pad_to_multiple_of: u32,
    /// Seed of `mean-resizing` and `random`.
    pub seed: u64,
    /// Scale every new row to the median L2 norm of the old rows of its matrix.
    pub rescale_norm: bool,
}

impl Default for InitConfig {
    fn default() -> Self {
        InitConfig {
            method: Method::Ziptie,
            output_init: OutputInit::Mean,
            pad_to_multiple_of: 64,
            seed: 0,
            rescale_norm: false,
        }
    }
}

impl crate::options::Options for InitConfig {
    fn validate(&self) -> std::result::Result<(), crate::options::OptionError> {
        crate::options::check_range(
            "pad_to_multiple_of",
            self.pad_to_multiple_of,
            Some(1),
            Some(MAX_PAD),
        )
    }
}

/// Element type of a matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE single precision.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
        }
    }

    /// Parse `f32`/`float32`, `f16`/`float16`, `bf16`/`bfloat16` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().trim_start_matches("torch.") {
            "f32" | "float32" | "float" => Some(Dtype::F32),
            "f16" | "float16" | "half" => Some(Dtype::F16),
            "bf16" | "bfloat16" => Some(Dtype::BF16),
            _ => None,
        }
    }

    fn read(self, bytes: &[u8], out: &mut [f32]) {
        match self {
            Dtype::F32 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Dtype::F16 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            // bf16 is the top half of an f32: a shift, which the compiler vectorizes (exactly
            // `half::bf16::to_f32` for every value but NaN payloads).
            Dtype::BF16 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
                }
            }
        }
    }

    /// `out += row` with the row read from `bytes` (no intermediate buffer).
    fn add(self, bytes: &[u8], out: &mut [f32]) {
        match self {
            Dtype::F32 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o += f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Dtype::F16 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o += half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            Dtype::BF16 => simd::add_bf16(bytes, out),
        }
    }

    pub(super) fn write(self, row: &[f32], out: &mut [u8]) {
        match self {
            Dtype::F32 => {
                for (v, o) in row.iter().zip(out.chunks_exact_mut(4)) {
                    o.copy_from_slice(&v.to_le_bytes());
                }
            }
            // Round to nearest even, as torch's `.to(dtype)` does.
            Dtype::F16 => {
                for (v, o) in row.iter().zip(out.chunks_exact_mut(2)) {
                    o.copy_from_slice(&half::f16::from_f32(*v).to_le_bytes());
                }
            }
            Dtype::BF16 => simd::write_bf16(row, out),
        }
    }
}

/// The bf16 row loops, compiled for AVX-512, AVX2 and the baseline and chosen at run time (the
/// default x86-64 target has only SSE2): the same operations in the same order per element, so
/// every path gives the same bits.
mod simd {
    use super::bf16_bits;

    macro_rules! dispatch {
        ($name:ident, $generic:ident, ($($arg:ident: $ty:ty),*)) => {
            pub(super) fn $name($($arg: $ty),*) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,avx512bw")]
                    unsafe fn avx512($($arg: $ty),*) {
                        $generic($($arg),*)
                    }
                    #[target_feature(enable = "avx2")]
                    unsafe fn avx2($($arg: $ty),*) {
                        $generic($($arg),*)
                    }
                    if std::arch::is_x86_feature_detected!("avx512f")
                        && std::arch::is_x86_feature_detected!("avx512bw")
                    {
                        // SAFETY: the CPU has AVX-512 F and BW, checked just above.
                        return unsafe { avx512($($arg),*) };
                    }
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: the CPU has AVX2, checked just above.
                        return unsafe { avx2($($arg),*) };
                    }
                }
                $generic($($arg),*)
            }
        };
    }

    /// `out += row` for a bf16 row (bf16 is the top half of an f32).
    #[inline(always)]
    fn add_bf16_generic(bytes: &[u8], out: &mut [f32]) {
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            *o += f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
        }
    }

    #[inline(always)]
    fn write_bf16_generic(row: &[f32], out: &mut [u8]) {
        for (v, o) in row.iter().zip(out.chunks_exact_mut(2)) {
            o.copy_from_slice(&bf16_bits(*v).to_le_bytes());
        }
    }

    /// `sum += row` in f64 for a bf16 row (the statistics pass).
    #[inline(always)]
    fn sum_bf16_generic(bytes: &[u8], sum: &mut [f64]) {
        for (s, b) in sum.iter_mut().zip(bytes.chunks_exact(2)) {
            *s += f64::from(f32::from_bits(
                u32::from(u16::from_le_bytes([b[0], b[1]])) << 16,
            ));
        }
    }

    dispatch!(add_bf16, add_bf16_generic, (bytes: &[u8], out: &mut [f32]));
    dispatch!(write_bf16, write_bf16_generic, (row: &[f32], out: &mut [u8]));
    dispatch!(sum_bf16, sum_bf16_generic, (bytes: &[u8], sum: &mut [f64]));
}

/// `half::bf16::from_f32(v).to_bits()` (round to nearest even; NaN stays NaN, quieted), written
/// without branches so the row loop vectorizes: `half`'s per-value branches made the cast the
/// largest cost of writing new rows.
#[inline(always)]
fn bf16_bits(v: f32) -> u16 {
    let x = v.to_bits();
    let rounded = (x.wrapping_add(0x7FFF + ((x >> 16) & 1)) >> 16) as u16;
    let nan = ((x >> 16) as u16) | 0x0040;
    if x & 0x7FFF_FFFF > 0x7F80_0000 {
        nan
    } else {
        rounded
    }
}

/// A row-major `[rows, cols]` matrix as raw little-endian bytes.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    /// `rows * cols * dtype.size()` bytes.
    pub data: &'a [u8],
    /// Element type.
    pub dtype: Dtype,
    /// Number of rows.
    pub rows: usize,
    /// Row length (hidden size).
    pub cols: usize,
    /// The file holding `data` and the offset of its first byte, when it comes from a file: old
    /// rows are then copied file to file (through a handle of their own, so that writers of
    /// several shards at once never share a file offset).
    source: Option<(&'a std::path::Path, u64)>,
}

impl<'a> Matrix<'a> {
    /// Check that `data` has the size the shape says.
    pub fn new(data: &'a [u8], dtype: Dtype, rows: usize, cols: usize) -> Result<Self> {
        if rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(dtype.size()))
            != Some(data.len())
        {
            return Err(Error::Config(format!(
                "a [{rows}, {cols}] {dtype:?} matrix needs {} bytes, got {}",
                rows * cols * dtype.size(),
                data.len()
            )));
        }
        Ok(Matrix {
            data,
            dtype,
            rows,
            cols,
            source: None,
        })
    }

    /// Say that `data` is the bytes of `file` from `offset` on (a memory map of it), so that
    /// runs of old rows can be copied inside the kernel instead of through this process.
    pub fn with_source(mut self, file: &'a std::path::Path, offset: u64) -> Self {
        self.source = Some((file, offset));
        self
    }

    /// The file and offset given to [`Self::with_source`].
    pub(crate) fn source(&self) -> Option<(&'a std::path::Path, u64)> {
        self.source
    }

    fn row_bytes(&self, r: usize) -> &'a [u8] {
        let n = self.cols * self.dtype.size();
        &self.data[r * n..(r + 1) * n]
    }

    fn row(&self, r: usize, out: &mut [f32]) {
        self.dtype.read(self.row_bytes(r), out);
    }
}

/// A token of the new tokenizer that the old one does not have.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewToken {
    /// Its id.
    pub id: u32,
    /// Its vocab string (or added-token content).
    pub token: String,
    /// `D(t)`: the old model's ids for that string, unknown ids dropped.
    pub pieces: Vec<u32>,
}

/// What the new tokenizer adds, and how many rows the matrices need.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Number of ids of the old tokenizer (`1 +` its largest id): rows below it are old rows.
    pub old_ids: usize,
    /// New tokens by id.
    pub new_tokens: Vec<NewToken>,
    /// `1 +` the new tokenizer's largest id.
    pub new_ids: usize,
}

/// Every (string, id) of a tokenizer: model vocabulary and added tokens.
fn all_ids(t: &TokenizerFile) -> BTreeMap<u32, String> {
    let mut out: BTreeMap<u32, String> = t.vocab().iter().map(|(s, id)| (*id, s.clone())).collect();
    for (id, tok) in t.tokenizer().get_added_tokens_decoder() {
        out.entry(id).or_insert(tok.content);
    }
    out
}

impl Plan {
    /// Check that `new` extends `old` (every old id keeps its string) and decompose each new
    /// token with the old model: `D(t)` is the old BPE model run directly on the token's vocab
    /// string, which is already in the model's alphabet (no normalizer, pre-tokenizer or
    /// post-processor, so no `▁` or BOS is added), with the unknown token's id dropped.
    pub fn new(old: &TokenizerFile, new: &TokenizerFile) -> Result<Self> {
        let (old_map, new_map) = (all_ids(old), all_ids(new));
        for (id, s) in &old_map {
            match new_map.get(id) {
                Some(n) if n == s => {}
                found => {
                    return Err(Error::Embed {
                        path: new.name().to_string(),
                        error: EmbedError::NotAnExtension(format!(
                            "id {id} is {s:?} in {} but {} here",
                            old.name(),
                            found.map_or("missing".to_string(), |n| format!("{n:?}"))
                        )),
                    })
                }
            }
        }
        let bpe = old.bpe();
        let unk = bpe
            .get_unk_token()
            .as_ref()
            .and_then(|u| old.vocab().get(u).copied());
        let old_ids = old.next_id() as usize;
        let new_tokens = new_map
            .iter()
            .filter(|(id, _)| !old_map.contains_key(id))
            .map(|(id, s)| {
                // An error here means the string holds a character the old model cannot
                // represent (no byte fallback, no unk): it then has no pieces.
                let pieces = bpe
                    .tokenize(s)
                    .map(|toks| {
                        toks.into_iter()
                            .map(|t| t.id)
                            .filter(|i| Some(*i) != unk && (*i as usize) < old_ids)
                            .collect()
                    })
                    .unwrap_or_default();
                NewToken {
                    id: *id,
                    token: s.clone(),
                    pieces,
                }
            })
            .collect();
        Ok(Plan {
            old_ids,
            new_tokens,
            new_ids: new.next_id() as usize,
        })
    }

    /// Rows of the resized matrix: at least `rows` (the checkpoint's), enough for every new id,
    /// rounded up to a multiple of `pad` when it has to grow.
    pub fn rows_out(&self, rows: usize, pad: u32) -> usize {
        if self.new_ids <= rows {
            return rows;
        }
        let m = pad.max(1) as usize;
        self.new_ids.div_ceil(m) * m
    }
}

/// Which matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The input embedding.
    Input,
    /// The output embedding (lm_head) of an untied model.
    Output,
}

/// Per-matrix statistics of the old rows.
struct Stats {
    mean: Vec<f32>,
    std: Vec<f32>,
    median_norm: f32,
}

/// Rows per block of the statistics pass: each block is summed on its own and the block sums
/// are added in block order.
const STATS_BLOCK: usize = 512;

/// Which statistics the configuration needs: the mean always (padding rows and empty
/// decompositions use it), the per-dimension spread only for `mean-resizing`, row norms only for
/// `--rescale-norm`.
fn stats(m: &Matrix<'_>, old: usize, cfg: &InitConfig) -> Stats {
    let need_sq = cfg.method == Method::MeanResizing;
    let need_norms = cfg.rescale_norm;
    // f64 sums over the old rows, row by row in id order within a block: deterministic and
    // accurate for 100k+ rows.
    // Sequential on purpose: it runs on its own thread beside the writing, and rows that need
    // the statistics wait for them inside the rayon pool, which must not be needed to finish
    // them (that could deadlock).
    let blocks: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = (0..old.div_ceil(STATS_BLOCK))
        .map(|b| {
            let mut sum = vec![0f64; m.cols];
            let mut sq = vec![0f64; if need_sq { m.cols } else { 0 }];
            let mut norms = Vec::new();
            let mut row = vec![0f32; m.cols];
            for r in b * STATS_BLOCK..((b + 1) * STATS_BLOCK).min(old) {
                if m.dtype == Dtype::BF16 && !need_sq && !need_norms {
                    simd::sum_bf16(m.row_bytes(r), &mut sum);
                    continue;
                }
                m.row(r, &mut row);
                for (s, v) in sum.iter_mut().zip(&row) {
                    *s += f64::from(*v);
                }
                if need_sq {
                    for (q, v) in sq.iter_mut().zip(&row) {
                        *q += f64::from(*v) * f64::from(*v);
                    }
                }
                if need_norms {
                    norms.push(
                        row.iter()
                            .map(|v| f64::from(*v).powi(2))
                            .sum::<f64>()
                            .sqrt(),
                    );
                }
            }
            (sum, sq, norms)
        })
        .collect();
    let mut sum = vec![0f64; m.cols];
    let mut sq = vec![0f64; m.cols];
    let mut norms = Vec::with_capacity(if need_norms { old } else { 0 });
    for (bs, bq, bn) in blocks {
        sum.iter_mut().zip(&bs).for_each(|(s, v)| *s += v);
        sq.iter_mut().zip(&bq).for_each(|(q, v)| *q += v);
        norms.extend(bn);
    }
    let k = old.max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / k).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, mu)| ((q / k - mu * mu).max(0.0)).sqrt() as f32)
        .collect();
    norms.sort_by(f64::total_cmp);
    let median_norm = match norms.len() {
        0 => 0.0,
        n if n % 2 == 1 => norms[n / 2],
        n => (norms[n / 2 - 1] + norms[n / 2]) / 2.0,
    } as f32;
    Stats {
        mean: mean.iter().map(|v| *v as f32).collect(),
        std,
        median_norm,
    }
}

/// SplitMix64: a tiny, well-known generator; one stream per (seed, matrix, row), so rows do
/// not depend on the order or thread they are computed in.
pub(super) struct Rng(u64);

impl Rng {
    fn new(seed: u64, which: Which, row: usize) -> Self {
        let tag = match which {
            Which::Input => 0x9e37_79b9_7f4a_7c15u64,
            Which::Output => 0xbf58_476d_1ce4_e5b9,
        };
        let mut r = Rng(seed ^ tag);
        r.0 ^= r.next().wrapping_add(row as u64);
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normals by Box–Muller, two at a time.
    pub(super) fn normals(&mut self, out: &mut [f32]) {
        for pair in out.chunks_mut(2) {
            let (u, v) = (self.uniform(), self.uniform());
            let r = (-2.0 * u.ln()).sqrt();
            let t = std::f64::consts::TAU * v;
            pair[0] = (r * t.cos()) as f32;
            if let Some(x) = pair.get_mut(1) {
                *x = (r * t.sin()) as f32;
            }
        }
    }
}

#[cfg(test)]
pub(super) fn tests_rng(seed: u64) -> Rng {
    Rng::new(seed, Which::Input, 0)
}

/// Standard deviation of `--method random` (the old transformers default `initializer_range`).
pub const RANDOM_STD: f32 = 0.02;
/// Covariance scale of `--method mean-resizing` (transformers uses `1e-9 * Σ`).
pub const MEAN_RESIZING_SCALE: f64 = 1e-9;

/// Computes the rows of the resized matrices.
pub struct Initializer<'a> {
    plan: &'a Plan,
    cfg: InitConfig,
    input: Matrix<'a>,
    output: Option<Matrix<'a>>,
    rows_out: usize,
    new_at: Vec<Option<usize>>,
    /// Computed on first use (or ahead by [`Initializer::prepare_stats`] on another thread,
    /// while old rows are being copied).
    input_stats: std::sync::OnceLock<Stats>,
    output_stats: std::sync::OnceLock<Stats>,
}

impl<'a> Initializer<'a> {
    /// `input` is the embedding matrix, `output` the lm_head of an untied model (same shape).
    /// `name` is used in messages.
    pub fn new(
        name: &str,
        plan: &'a Plan,
        cfg: &InitConfig,
        input: Matrix<'a>,
        output: Option<Matrix<'a>>,
    ) -> Result<Self> {
        let err = |error| Error::Embed {
            path: name.to_string(),
            error,
        };
        for m in std::iter::once(&input).chain(output.as_ref()) {
            if m.rows < plan.old_ids {
                return Err(err(EmbedError::TooFewRows {
                    rows: m.rows,
                    vocab: plan.old_ids,
                }));
            }
        }
        if let Some(o) = &output {
            if o.cols != input.cols || o.rows != input.rows {
                return Err(err(EmbedError::Malformed(format!(
                    "the lm_head is [{}, {}] but the embedding is [{}, {}]",
                    o.rows, o.cols, input.rows, input.cols
                ))));
            }
        }
        if cfg.output_init == OutputInit::First && cfg.method != Method::Ziptie {
            return Err(Error::Config(
                "--output-init first needs --method ziptie (the other methods have no pieces)"
                    .into(),
            ));
        }
        let rows_out = plan.rows_out(input.rows, cfg.pad_to_multiple_of);
        let mut new_at = vec![None; rows_out];
        for (i, t) in plan.new_tokens.iter().enumerate() {
            new_at[t.id as usize] = Some(i);
        }
        Ok(Initializer {
            plan,
            cfg: cfg.clone(),
            input,
            output,
            rows_out,
            new_at,
            input_stats: std::sync::OnceLock::new(),
            output_stats: std::sync::OnceLock::new(),
        })
    }

    /// The statistics of the old rows of a matrix, computed once.
    fn stats_of(&self, which: Which) -> &Stats {
        match (which, &self.output) {
            (Which::Output, Some(m)) => self
                .output_stats
                .get_or_init(|| stats(m, self.plan.old_ids, &self.cfg)),
            _ => self
                .input_stats
                .get_or_init(|| stats(&self.input, self.plan.old_ids, &self.cfg)),
        }
    }

    /// Compute the statistics of both matrices now (call it from another thread to overlap the
    /// pass over the old rows with writing).
    pub fn prepare_stats(&self) {
        self.stats_of(Which::Input);
        if self.output.is_some() {
            self.stats_of(Which::Output);
        }
    }

    /// Rows of the resized matrices.
    pub fn rows_out(&self) -> usize {
        self.rows_out
    }

    /// Row length.
    pub fn cols(&self) -> usize {
        self.input.cols
    }

    /// Element type of the input matrix.
    pub fn dtype(&self) -> Dtype {
        self.input.dtype
    }

    /// Whether `r` is a row this initialization writes (a new id, or padding past the old matrix).
    pub(crate) fn is_written(&self, r: usize) -> bool {
        self.new_at[r].is_some() || r >= self.input.rows
    }

    /// The new row `r` of a matrix, in f32, before the cast.
    fn compute(&self, which: Which, r: usize, out: &mut [f32]) {
        let m = match (which, &self.output) {
            (Which::Output, Some(m)) => m,
            _ => &self.input,
        };
        let st = || self.stats_of(which);
        if which == Which::Output && self.cfg.output_init == OutputInit::Tie {
            return self.compute(Which::Input, r, out);
        }
        let pieces: &[u32] = match self.new_at[r] {
            Some(i) => &self.plan.new_tokens[i].pieces,
            // Padding rows are never produced by the tokenizer; they get the old rows' mean.
            None => &[],
        };
        let method = if self.new_at[r].is_none() {
            Method::Mean
        } else {
            self.cfg.method
        };
        match method {
            Method::Ziptie if !pieces.is_empty() => {
                if which == Which::Output && self.cfg.output_init == OutputInit::First {
                    m.row(pieces[0] as usize, out);
                } else {
                    // f32 sum in the order of D(t), then one division.
                    out.fill(0.0);
                    for p in pieces {
                        m.dtype.add(m.row_bytes(*p as usize), out);
                    }
                    let k = pieces.len() as f32;
                    out.iter_mut().for_each(|o| *o /= k);
                }
            }
            Method::Ziptie | Method::Mean => out.copy_from_slice(&st().mean),
            Method::MeanResizing => {
                Rng::new(self.cfg.seed, which, r).normals(out);
                let s = MEAN_RESIZING_SCALE.sqrt() as f32;
                let st = st();
                for ((o, mu), sd) in out.iter_mut().zip(&st.mean).zip(&st.std) {
                    *o = mu + s * sd * *o;
                }
            }
            Method::Random => {
                Rng::new(self.cfg.seed, which, r).normals(out);
                out.iter_mut().for_each(|o| *o *= RANDOM_STD);
            }
        }
        if self.cfg.rescale_norm && self.new_at[r].is_some() {
            let n = out
                .iter()
                .map(|v| f64::from(*v).powi(2))
                .sum::<f64>()
                .sqrt();
            if n > 0.0 {
                let s = (f64::from(st().median_norm) / n) as f32;
                out.iter_mut().for_each(|o| *o *= s);
            }
        }
    }

    /// Rows `start..end` of the resized matrix as bytes in its dtype: old rows copied
    /// bit for bit, new and padding rows computed.
    pub fn rows(&self, which: Which, start: usize, end: usize) -> Vec<u8> {
        let mut out = Vec::new();
        self.rows_into(which, start, end, &mut out);
        out
    }

    /// [`Self::rows`] into a buffer that is reused (fresh pages cost a page fault each).
    fn rows_into(&self, which: Which, start: usize, end: usize, out: &mut Vec<u8>) {
        let m = match (which, &self.output) {
            (Which::Output, Some(m)) => m,
            _ => &self.input,
        };
        let n = m.cols * m.dtype.size();
        out.resize((end - start) * n, 0);
        out.par_chunks_mut(n).enumerate().for_each_init(
            || vec![0f32; m.cols],
            |row, (i, dst)| {
                let r = start + i;
                if self.is_written(r) {
                    self.compute(which, r, row);
                    m.dtype.write(row, dst);
                } else {
                    dst.copy_from_slice(m.row_bytes(r));
                }
            },
        );
    }

    /// Write the whole resized matrix, in blocks of rows.
    pub fn write_matrix(
        &self,
        which: Which,
        w: &mut (dyn std::io::Write + Send),
    ) -> std::io::Result<()> {
        self.write_rows(which, 0, self.rows_out, w)
    }

    /// Rows `start..end`, block after block: the next block is computed on the pool while the
    /// current one is being written.
    pub(crate) fn write_rows(
        &self,
        which: Which,
        start: usize,
        end: usize,
        w: &mut (dyn std::io::Write + Send),
    ) -> std::io::Result<()> {
        const BLOCK: usize = 1024;
        if start >= end {
            return Ok(());
        }
        let (mut cur, mut next) = (Vec::new(), Vec::new());
        let mut stop = (start + BLOCK).min(end);
        self.rows_into(which, start, stop, &mut cur);
        while stop < end {
            if crate::interrupt::received().is_some() {
                // Not ErrorKind::Interrupted, which writers retry.
                return Err(std::io::Error::other("interrupted"));
            }
            let (from, to) = (stop, (stop + BLOCK).min(end));
            let (written, ()) = rayon::join(
                || w.write_all(&cur),
                || self.rows_into(which, from, to, &mut next),
            );
            written?;
            std::mem::swap(&mut cur, &mut next);
            stop = to;
        }
        w.write_all(&cur)
    }

    /// Byte size of one resized matrix.
    pub fn matrix_bytes(&self) -> usize {
        self.rows_out * self.input.cols * self.input.dtype.size()
    }

    /// How many new tokens had no pieces (and got the mean of all old rows).
    pub fn empty_decompositions(&self) -> usize {
        self.plan
            .new_tokens
            .iter()
            .filter(|t| t.pieces.is_empty())
            .count()
    }

    /// Ids of new tokens that land on rows the checkpoint already had (padding rows).
    pub fn overwritten_rows(&self) -> usize {
        self.plan
            .new_tokens
            .iter()
            .filter(|t| (t.id as usize) < self.input.rows)
            .count()
    }

    /// The distinct ids used as pieces (for reports).
    pub fn pieces_used(&self) -> usize {
        let s: HashSet<u32> = self
            .plan
            .new_tokens
            .iter()
            .flat_map(|t| t.pieces.iter().copied())
            .collect();
        s.len()
    }
}
