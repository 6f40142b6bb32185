//! fastText supervised models (`.bin`, and `.ftz` with product-quantized matrices), read and run
//! for prediction in Rust, so that language ID (`lid.176.ftz`) needs no Python package.
//!
//! Prediction follows fastText's own steps, so labels and probabilities are the same as
//! `fasttext.load_model(p).predict(line, k)`:
//! - the line is split on ASCII white space and `\0`, and ends with `</s>` (a newline);
//! - each word contributes its vocabulary row and the rows of its character n-grams (`minn` to
//!   `maxn` characters of `<word>`, hashed with 32-bit FNV-1a over signed bytes into `bucket`
//!   rows, remapped by the pruning index of quantized models); unknown words contribute their
//!   n-grams only; word n-grams are hashed as fastText does;
//! - the hidden vector is the mean of those rows;
//! - labels are scored by softmax, one-vs-all or hierarchical softmax (a Huffman tree over label
//!   counts, searched depth first), with fastText's `log(p + 1e-5)`.
//!
//! Every size read from the file is checked against the file's length before anything is
//! allocated: a hostile model is an error, never an abort.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use crate::{Error, Result};

/// The name of the built-in language-ID model.
pub const LID_176_NAME: &str = "lid.176.ftz";

/// fastText's `lid.176.ftz` (176 languages, CC BY-SA 3.0, Facebook AI Research), built into
/// every tamis program so that language ID needs nothing installed or downloaded; source,
/// license and checksum in `rust/core/assets/README.md`.
pub static LID_176_FTZ: &[u8] = include_bytes!("../assets/lid.176.ftz");

/// The built-in `lid.176.ftz`, read once per process.
pub fn embedded_lid() -> Result<Arc<FastText>> {
    static MODEL: OnceLock<std::result::Result<Arc<FastText>, String>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            FastText::from_bytes(&format!("(built-in) {LID_176_NAME}"), LID_176_FTZ)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(Error::Config)
}

/// The model at `path`, or the built-in `lid.176.ftz` for `None`, read once per process while
/// the file stays the same (length and modification time): a refine run loads it once, not
/// once per shard.
pub fn shared(path: Option<&Path>) -> Result<Arc<FastText>> {
    type Key = (PathBuf, u64, Option<SystemTime>);
    type Cache = Mutex<Vec<(Key, Arc<FastText>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let Some(path) = path else {
        return embedded_lid();
    };
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, m)) = cache.iter().find(|(k, _)| *k == key) {
        return Ok(m.clone());
    }
    let model = Arc::new(FastText::open(path)?);
    // A few models per process at most (language and quality stages); drop stale versions.
    cache.retain(|(k, _)| k.0 != key.0);
    cache.push((key, model.clone()));
    Ok(model)
}

const MAGIC: i32 = 793_712_314;
const VERSION: i32 = 12;
const EOS: &str = "</s>";
const KSUB: usize = 256;

/// How labels are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    Hs,
    Ns,
    Softmax,
    Ova,
}

/// A dense or product-quantized matrix.
#[derive(Debug)]
enum Matrix {
    Dense {
        cols: usize,
        data: Vec<f32>,
    },
    Quant {
        rows: usize,
        codes: Vec<u8>,
        pq: Pq,
        norms: Option<(Vec<u8>, Pq)>,
    },
}

/// A product quantizer: `nsubq` sub-vectors of `dsub` (the last of `lastdsub`) dimensions,
/// 256 centroids each.
#[derive(Debug)]
struct Pq {
    nsubq: usize,
    dsub: usize,
    lastdsub: usize,
    centroids: Vec<f32>,
}

impl Pq {
    fn centroid(&self, m: usize, code: u8) -> &[f32] {
        let i = code as usize;
        if m == self.nsubq - 1 {
            let at = m * KSUB * self.dsub + i * self.lastdsub;
            &self.centroids[at..at + self.lastdsub]
        } else {
            let at = (m * KSUB + i) * self.dsub;
            &self.centroids[at..at + self.dsub]
        }
    }

    fn add(&self, x: &mut [f32], codes: &[u8], alpha: f32) {
        for (m, &code) in codes.iter().enumerate() {
            for (j, c) in self.centroid(m, code).iter().enumerate() {
                x[m * self.dsub + j] += alpha * c;
            }
        }
    }

    fn dot(&self, x: &[f32], codes: &[u8], alpha: f32) -> f32 {
        let mut res = 0.0f32;
        for (m, &code) in codes.iter().enumerate() {
            for (j, c) in self.centroid(m, code).iter().enumerate() {
                res += x[m * self.dsub + j] * c;
            }
        }
        res * alpha
    }
}

impl Matrix {
    fn rows(&self) -> usize {
        match self {
            Matrix::Dense { cols, data } => data.len().checked_div(*cols).unwrap_or(0),
            Matrix::Quant { rows, .. } => *rows,
        }
    }

    /// The codes of row `i` of a quantized matrix and its norm (1 without norm codes).
    fn quant_row(&self, i: usize) -> (&[u8], f32) {
        match self {
            Matrix::Quant {
                codes, pq, norms, ..
            } => (
                &codes[i * pq.nsubq..(i + 1) * pq.nsubq],
                norms
                    .as_ref()
                    .map_or(1.0, |(n, npq)| npq.centroid(0, n[i])[0]),
            ),
            Matrix::Dense { .. } => (&[], 1.0),
        }
    }

    fn add_row(&self, x: &mut [f32], i: usize) {
        match self {
            Matrix::Dense { cols, data } => {
                for (a, b) in x.iter_mut().zip(&data[i * cols..(i + 1) * cols]) {
                    *a += b;
                }
            }
            Matrix::Quant { pq, .. } => {
                let (codes, alpha) = self.quant_row(i);
                pq.add(x, codes, alpha);
            }
        }
    }

    fn dot_row(&self, x: &[f32], i: usize) -> f32 {
        match self {
            Matrix::Dense { cols, data } => data[i * cols..(i + 1) * cols]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum(),
            Matrix::Quant { pq, .. } => {
                let (codes, alpha) = self.quant_row(i);
                pq.dot(x, codes, alpha)
            }
        }
    }
}

/// A node of the hierarchical-softmax tree.
#[derive(Debug, Clone, Copy)]
struct Node {
    left: i64,
    right: i64,
    count: i64,
}

/// A loaded supervised fastText model.
#[derive(Debug)]
pub struct FastText {
    name: String,
    dim: usize,
    minn: usize,
    maxn: usize,
    word_ngrams: usize,
    bucket: u64,
    loss: Loss,
    nwords: usize,
    words: HashMap<Vec<u8>, usize, Xxh3DefaultBuilder>,
    /// Row lists of vocabulary words: the word and its character n-grams.
    subwords: Vec<Vec<usize>>,
    labels: Vec<String>,
    /// `None`: not pruned; otherwise n-gram hash -> row offset after the words.
    prune: Option<HashMap<i64, i64, Xxh3DefaultBuilder>>,
    input: Matrix,
    output: Matrix,
    tree: Vec<Node>,
}

/// A bounded reader over the model's bytes: every length is checked before it is used.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    name: &'a str,
}

impl<'a> Reader<'a> {
    fn bad(&self, what: impl std::fmt::Display) -> Error {
        Error::Config(format!(
            "{}: not a fastText model: {what} (at byte {})",
            self.name, self.at
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| self.bad(format!("{n} more bytes needed, the file ends")))?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.i64()? as u64))
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// A count that must be within `0..=max` and whose `unit`-byte items fit in the rest of
    /// the file.
    fn count(&mut self, v: i64, unit: usize, what: &str) -> Result<usize> {
        let left = self.data.len() - self.at;
        match usize::try_from(v) {
            Ok(n) if n.checked_mul(unit).is_some_and(|b| b <= left) => Ok(n),
            _ => Err(self.bad(format!("{what} {v} does not fit in the file"))),
        }
    }

    fn floats(&mut self, n: usize) -> Result<Vec<f32>> {
        let bytes = self.take(
            n.checked_mul(4)
                .ok_or_else(|| self.bad("matrix too large"))?,
        )?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn pq(&mut self) -> Result<Pq> {
        let dim = self.i32()?;
        let nsubq = self.i32()?;
        let dsub = self.i32()?;
        let lastdsub = self.i32()?;
        let ok = dim > 0 && nsubq > 0 && dsub > 0 && lastdsub > 0;
        let (dim, nsubq, dsub, lastdsub) = (
            dim as usize,
            nsubq as usize,
            dsub as usize,
            lastdsub as usize,
        );
        if !ok || (nsubq - 1) * dsub + lastdsub != dim {
            return Err(self.bad("inconsistent product quantizer"));
        }
        let n = self.count((dim * KSUB) as i64, 4, "centroid count")?;
        Ok(Pq {
            nsubq,
            dsub,
            lastdsub,
            centroids: self.floats(n)?,
        })
    }

    fn matrix(&mut self, quant: bool, dim: usize) -> Result<Matrix> {
        if !quant {
            let m = self.i64()?;
            let n = self.i64()?;
            if n != dim as i64 {
                return Err(self.bad(format!("matrix of {n} columns for dimension {dim}")));
            }
            let rows = self.count(m, dim * 4, "row count")?;
            let data = self.floats(rows * dim)?;
            return Ok(Matrix::Dense { cols: dim, data });
        }
        let qnorm = self.u8()? != 0;
        let m = self.i64()?;
        let n = self.i64()?;
        let codesize = self.i32()?;
        if n != dim as i64 {
            return Err(self.bad(format!("matrix of {n} columns for dimension {dim}")));
        }
        let codesize = self.count(codesize.into(), 1, "code size")?;
        let codes = self.take(codesize)?.to_vec();
        let pq = self.pq()?;
        // Centroids are added into a vector of the model's dimension: the quantizer must cover
        // exactly that many (a hostile file could otherwise index past it).
        if (pq.nsubq - 1) * pq.dsub + pq.lastdsub != dim {
            return Err(self.bad("the quantizer's dimension is not the model's"));
        }
        let rows = self.count(m, 0, "row count")?;
        if pq.nsubq.checked_mul(rows) != Some(codesize) {
            return Err(self.bad("codes do not match the rows"));
        }
        let norms = if qnorm {
            let codes = self.take(rows)?.to_vec();
            let npq = self.pq()?;
            if npq.nsubq != 1 || npq.dsub != 1 || npq.lastdsub != 1 {
                return Err(self.bad("norm quantizer is not one-dimensional"));
            }
            Some((codes, npq))
        } else {
            None
        };
        Ok(Matrix::Quant {
            rows,
            codes,
            pq,
            norms,
        })
    }
}

/// fastText's string hash: 32-bit FNV-1a over the bytes taken as signed chars.
fn hash(s: &[u8]) -> u32 {
    let mut h: u32 = 2_166_136_261;
    for &b in s {
        h ^= b as i8 as i32 as u32;
        h = h.wrapping_mul(16_777_619);
    }
    h
}

impl FastText {
    /// Read a model file.
    pub fn open(path: &Path) -> Result<FastText> {
        let data = std::fs::read(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        FastText::from_bytes(&path.display().to_string(), &data)
    }

    /// Read a model from its bytes; `name` is used in messages.
    pub fn from_bytes(name: &str, data: &[u8]) -> Result<FastText> {
        let mut r = Reader { data, at: 0, name };
        if r.i32()? != MAGIC || r.i32()? != VERSION {
            return Err(r.bad("wrong magic number or version (fastText 0.9 files are version 12)"));
        }
        let dim = r.i32()?;
        let _ws = r.i32()?;
        let _epoch = r.i32()?;
        let _min_count = r.i32()?;
        let _neg = r.i32()?;
        let word_ngrams = r.i32()?;
        let loss = match r.i32()? {
            1 => Loss::Hs,
            2 => Loss::Ns,
            3 => Loss::Softmax,
            4 => Loss::Ova,
            l => return Err(r.bad(format!("unknown loss {l}"))),
        };
        let model = r.i32()?;
        let bucket = r.i32()?;
        let minn = r.i32()?;
        let maxn = r.i32()?;
        let _lr_update = r.i32()?;
        let _t = r.f64()?;
        if model != 3 {
            return Err(r.bad("not a supervised (classification) model"));
        }
        if !(1..=1 << 16).contains(&dim) || bucket < 0 || minn < 0 || !(0..=64).contains(&maxn) {
            return Err(r.bad("dimensions out of range"));
        }
        let (dim, bucket) = (dim as usize, bucket as u64);
        let size = r.i32()?;
        let nwords = r.i32()?;
        let nlabels = r.i32()?;
        let _ntokens = r.i64()?;
        let prune_size = r.i64()?;
        let size = r.count(size.into(), 10, "dictionary size")?;
        if nwords < 0 || nlabels < 0 || nwords as i64 + nlabels as i64 != size as i64 {
            return Err(r.bad("dictionary counts disagree"));
        }
        let mut words = HashMap::with_capacity_and_hasher(nwords as usize, Xxh3DefaultBuilder);
        let mut word_list: Vec<Vec<u8>> = Vec::with_capacity(nwords as usize);
        let mut labels = Vec::with_capacity(nlabels as usize);
        let mut counts = Vec::with_capacity(nlabels as usize);
        for _ in 0..size {
            let rest = &r.data[r.at..];
            let len = memchr::memchr(0, rest).ok_or_else(|| r.bad("unterminated word"))?;
            let w = r.take(len)?.to_vec();
            r.take(1)?;
            let count = r.i64()?;
            match r.u8()? {
                0 => {
                    words.insert(w.clone(), word_list.len());
                    word_list.push(w);
                }
                1 => {
                    labels.push(String::from_utf8_lossy(&w).into_owned());
                    counts.push(count);
                }
                t => return Err(r.bad(format!("unknown entry type {t}"))),
            }
        }
        if word_list.len() != nwords as usize {
            return Err(r.bad("word count disagrees with the entries"));
        }
        let prune = if prune_size >= 0 {
            let n = r.count(prune_size, 8, "pruning index size")?;
            let mut m = HashMap::with_capacity_and_hasher(n, Xxh3DefaultBuilder);
            for _ in 0..n {
                let (a, b) = (r.i32()?, r.i32()?);
                m.insert(i64::from(a), i64::from(b));
            }
            Some(m)
        } else {
            None
        };
        let quant_input = r.u8()? != 0;
        let input = r.matrix(quant_input, dim)?;
        if !quant_input && prune.is_some() {
            return Err(r.bad("a pruned dictionary needs a quantized input matrix"));
        }
        let quant_output = r.u8()? != 0;
        let output = r.matrix(quant_output, dim)?;
        if output.rows() < labels.len() || labels.is_empty() {
            return Err(r.bad("fewer output rows than labels"));
        }
        let mut ft = FastText {
            name: name.to_string(),
            dim,
            minn: minn as usize,
            maxn: maxn as usize,
            word_ngrams: word_ngrams.max(1) as usize,
            bucket,
            loss,
            nwords: word_list.len(),
            words,
            subwords: Vec::new(),
            labels,
            prune,
            input,
            output,
            tree: Vec::new(),
        };
        // Every row a word or n-gram can reach must exist.
        let reachable = ft.nwords as u64
            + match &ft.prune {
                Some(p) => p.values().map(|&v| v as u64 + 1).max().unwrap_or(0),
                None => ft.bucket,
            };
        if (ft.input.rows() as u64) < reachable {
            return Err(Error::Config(format!(
                "{name}: not a fastText model: {} input rows, {reachable} needed",
                ft.input.rows()
            )));
        }
        ft.subwords = word_list
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut rows = vec![i];
                if w != EOS.as_bytes() {
                    ft.char_ngrams(w, &mut rows);
                }
                rows
            })
            .collect();
        if loss == Loss::Hs {
            ft.tree = huffman(&counts);
        }
        Ok(ft)
    }

    /// The labels, in the model's order (e.g. `__label__en`).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Where the model came from (messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn push_hash(&self, rows: &mut Vec<usize>, id: i64) {
        match &self.prune {
            None => rows.push(self.nwords + id as usize),
            Some(p) => {
                if let Some(&j) = p.get(&id) {
                    rows.push(self.nwords + j as usize);
                }
            }
        }
    }

    /// The rows of the character n-grams of `word` (`<` and `>` added here).
    fn char_ngrams(&self, word: &[u8], rows: &mut Vec<usize>) {
        if self.maxn == 0 || self.bucket == 0 {
            return;
        }
        let mut w = Vec::with_capacity(word.len() + 2);
        w.push(b'<');
        w.extend_from_slice(word);
        w.push(b'>');
        for i in 0..w.len() {
            if w[i] & 0xC0 == 0x80 {
                continue;
            }
            let mut j = i;
            let mut n = 1;
            while j < w.len() && n <= self.maxn {
                j += 1;
                while j < w.len() && w[j] & 0xC0 == 0x80 {
                    j += 1;
                }
                if n >= self.minn && !(n == 1 && (i == 0 || j == w.len())) {
                    let h = u64::from(hash(&w[i..j])) % self.bucket;
                    self.push_hash(rows, h as i64);
                }
                n += 1;
            }
        }
    }

    /// The input rows of a line, as fastText's `getLine` gives them for prediction.
    fn line_rows(&self, line: &str) -> Vec<usize> {
        let mut rows = Vec::new();
        let mut hashes: Vec<u32> = Vec::new();
        let is_space = |b: &u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c | 0);
        let tokens = line
            .as_bytes()
            .split(is_space)
            .filter(|t| !t.is_empty())
            .chain(std::iter::once(EOS.as_bytes()));
        for token in tokens {
            let h = hash(token);
            match self.words.get(token) {
                Some(&wid) => {
                    if self.maxn == 0 {
                        rows.push(wid);
                    } else {
                        rows.extend_from_slice(&self.subwords[wid]);
                    }
                }
                None => {
                    if token.starts_with(b"__label__") {
                        continue; // a label in the text is not a feature
                    }
                    if token != EOS.as_bytes() {
                        self.char_ngrams(token, &mut rows);
                    }
                }
            }
            hashes.push(h);
        }
        if self.word_ngrams > 1 && self.bucket > 0 {
            for i in 0..hashes.len() {
                // fastText keeps the hashes as int32 and widens them to uint64 (sign extension).
                let widen = |h: u32| h as i32 as i64 as u64;
                let mut h = widen(hashes[i]);
                for &next in hashes.iter().skip(i + 1).take(self.word_ngrams - 1) {
                    h = h.wrapping_mul(116_049_371).wrapping_add(widen(next));
                    self.push_hash(&mut rows, (h % self.bucket) as i64);
                }
            }
        }
        rows
    }

    /// The `k` most likely labels of `line` (one line: no `\n`) with their probabilities,
    /// most likely first; labels below `threshold` are left out. As fastText's `predict`.
    pub fn predict(&self, line: &str, k: usize, threshold: f32) -> Vec<(&str, f32)> {
        let rows = self.line_rows(line);
        if rows.is_empty() || k == 0 {
            return Vec::new();
        }
        let mut hidden = vec![0.0f32; self.dim];
        for &r in &rows {
            self.input.add_row(&mut hidden, r);
        }
        let scale = 1.0 / rows.len() as f32;
        for h in &mut hidden {
            *h *= scale;
        }
        let mut heap: Vec<(f32, usize)> = Vec::new();
        match self.loss {
            Loss::Hs => {
                let root = self.tree.len() - 1;
                self.dfs(k, threshold, root, 0.0, &mut heap, &hidden);
            }
            Loss::Ova => {
                for i in 0..self.labels.len() {
                    let p = sigmoid(self.output.dot_row(&hidden, i));
                    push_top(&mut heap, k, threshold, p, i);
                }
            }
            Loss::Softmax | Loss::Ns => {
                let out: Vec<f32> = (0..self.labels.len())
                    .map(|i| self.output.dot_row(&hidden, i))
                    .collect();
                let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f32> = out.iter().map(|o| (o - max).exp()).collect();
                let z: f32 = exps.iter().sum();
                for (i, e) in exps.iter().enumerate() {
                    push_top(&mut heap, k, threshold, e / z, i);
                }
            }
        }
        // Most likely first; ties in label order, as fastText's heap sort gives them.
        heap.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        heap.into_iter()
            .map(|(score, i)| (self.labels[i].as_str(), score.exp()))
            .collect()
    }

    fn dfs(
        &self,
        k: usize,
        threshold: f32,
        node: usize,
        score: f32,
        heap: &mut Vec<(f32, usize)>,
        hidden: &[f32],
    ) {
        if score < std_log(threshold) {
            return;
        }
        if heap.len() == k && heap.iter().all(|h| score < h.0) {
            return;
        }
        let osz = self.labels.len();
        let n = self.tree[node];
        if n.left == -1 && n.right == -1 {
            heap.push((score, node));
            if heap.len() > k {
                // Drop the worst (fastText's min-heap pop).
                if let Some((w, _)) = heap
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
                {
                    heap.swap_remove(w);
                }
            }
            return;
        }
        let f = 1.0 / (1.0 + (-self.output.dot_row(hidden, node - osz)).exp());
        self.dfs(
            k,
            threshold,
            n.left as usize,
            score + std_log(1.0 - f),
            heap,
            hidden,
        );
        self.dfs(
            k,
            threshold,
            n.right as usize,
            score + std_log(f),
            heap,
            hidden,
        );
    }
}

/// fastText's `std::log(x + 1e-5)`: the sum and the logarithm in double precision.
fn std_log(x: f32) -> f32 {
    (f64::from(x) + 1e-5).ln() as f32
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn push_top(heap: &mut Vec<(f32, usize)>, k: usize, threshold: f32, p: f32, i: usize) {
    if p < threshold {
        return;
    }
    heap.push((std_log(p), i));
    if heap.len() > k {
        if let Some((w, _)) = heap
            .iter()
            .enumerate()
            .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))
        {
            heap.swap_remove(w);
        }
    }
}

/// fastText's Huffman tree over label counts (labels are stored by decreasing count).
fn huffman(counts: &[i64]) -> Vec<Node> {
    let osz = counts.len();
    let mut tree = vec![
        Node {
            left: -1,
            right: -1,
            count: 1_000_000_000_000_000,
        };
        2 * osz - 1
    ];
    for (t, &c) in tree.iter_mut().zip(counts) {
        t.count = c;
    }
    let mut leaf = osz as i64 - 1;
    let mut node = osz;
    for i in osz..2 * osz - 1 {
        let mut mini = [0usize; 2];
        for m in &mut mini {
            if leaf >= 0 && tree[leaf as usize].count < tree[node].count {
                *m = leaf as usize;
                leaf -= 1;
            } else {
                *m = node;
                node += 1;
            }
        }
        tree[i].left = mini[0] as i64;
        tree[i].right = mini[1] as i64;
        tree[i].count = tree[mini[0]].count + tree[mini[1]].count;
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_is_the_published_file() {
        // The checksum assets/README.md states (as xxh3-64 here; SHA-256 there).
        assert_eq!(LID_176_FTZ.len(), 938_013);
        assert_eq!(
            xxhash_rust::xxh3::xxh3_64(LID_176_FTZ),
            0xd958_bea1_490f_b5da
        );
        let m = embedded_lid().unwrap();
        assert_eq!(m.labels().len(), 176);
        let top = m.predict(
            "the cat sat on the mat and looked out of the window",
            1,
            0.0,
        );
        assert_eq!(top[0].0, "__label__en");
        let top = m.predict("de kat zat op de mat en keek uit het raam", 1, 0.0);
        assert_eq!(top[0].0, "__label__nl");
        assert!(Arc::ptr_eq(&m, &shared(None).unwrap()));
    }

    /// A small dense model: words `a`, `</s>`; labels `x` (count 5), `y` (3), `z` (1);
    /// dimension 2, 4 buckets of character n-grams (2 to 3), hierarchical softmax.
    fn model_bytes(loss: i32) -> Vec<u8> {
        let mut b = Vec::new();
        let i32s = |b: &mut Vec<u8>, v: &[i32]| v.iter().for_each(|x| b.extend(x.to_le_bytes()));
        i32s(&mut b, &[MAGIC, VERSION]);
        // dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate
        i32s(&mut b, &[2, 5, 5, 1, 5, 2, loss, 3, 4, 2, 3, 100]);
        b.extend(1e-4f64.to_le_bytes());
        i32s(&mut b, &[5, 2, 3]);
        b.extend(10i64.to_le_bytes());
        b.extend((-1i64).to_le_bytes());
        for (w, c, t) in [
            ("a", 9i64, 0u8),
            ("</s>", 9, 0),
            ("__label__x", 5, 1),
            ("__label__y", 3, 1),
            ("__label__z", 1, 1),
        ] {
            b.extend(w.as_bytes());
            b.push(0);
            b.extend(c.to_le_bytes());
            b.push(t);
        }
        b.push(0); // dense input
        b.extend(6i64.to_le_bytes());
        b.extend(2i64.to_le_bytes());
        for v in [
            0.5f32, -0.25, 0.1, 0.2, -0.3, 0.4, 0.05, -0.1, 0.7, 0.0, -0.6, 0.3,
        ] {
            b.extend(v.to_le_bytes());
        }
        b.push(0); // dense output
        b.extend(3i64.to_le_bytes());
        b.extend(2i64.to_le_bytes());
        for v in [1.0f32, -2.0, 0.5, 0.25, -1.5, 1.0] {
            b.extend(v.to_le_bytes());
        }
        b
    }

    #[test]
    fn probabilities_of_all_labels_sum_to_one() {
        for loss in [1, 3, 4] {
            let m = FastText::from_bytes("m.bin", &model_bytes(loss)).expect("model");
            assert_eq!(m.labels(), ["__label__x", "__label__y", "__label__z"]);
            for line in ["a", "a b c", "", "é 龍 a a", "__label__x a"] {
                let p = m.predict(line, 3, 0.0);
                assert_eq!(p.len(), 3, "{line:?}");
                assert!(p.windows(2).all(|w| w[0].1 >= w[1].1));
                let total: f32 = p.iter().map(|x| x.1).sum();
                if loss != 4 {
                    // fastText adds 1e-5 inside each log: each probability is p + 1e-5.
                    assert!((total - 1.0).abs() < 1e-4, "{loss} {line:?} {total}");
                }
                assert_eq!(m.predict(line, 1, 0.0)[0], p[0]);
                assert!(m.predict(line, 3, 0.999).len() <= 1);
            }
        }
    }

    #[test]
    fn every_truncation_and_hostile_count_is_an_error() {
        let good = model_bytes(1);
        for n in 0..good.len() {
            let e = FastText::from_bytes("cut.ftz", &good[..n]).expect_err("truncated");
            assert!(
                e.to_string().starts_with("cut.ftz: not a fastText model"),
                "{e}"
            );
        }
        // Dictionary size, row count and code size far past the file: refused, not allocated.
        for (at, v) in [(64usize, i32::MAX), (64, -1)] {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            assert!(FastText::from_bytes("bad.ftz", &b).is_err());
        }
        let mut b = good.clone();
        // The input matrix's row count: before its columns, its 12 floats and the output block.
        let rows_at = b.len() - (1 + 8 + 8 + 6 * 4) - 12 * 4 - 8 - 8;
        b[rows_at..rows_at + 8].copy_from_slice(&(1i64 << 60).to_le_bytes());
        assert!(FastText::from_bytes("bad.ftz", &b).is_err());
    }

    #[test]
    fn a_quantizer_of_another_dimension_is_refused() {
        let mut b = vec![0u8]; // no norm codes
        b.extend(1i64.to_le_bytes());
        b.extend(2i64.to_le_bytes());
        b.extend(1i32.to_le_bytes());
        b.push(0);
        for v in [4i32, 1, 4, 4] {
            b.extend(v.to_le_bytes()); // dim 4, one sub-quantizer of 4: the model has 2
        }
        b.extend(vec![0u8; 4 * KSUB * 4]);
        let mut r = Reader {
            data: &b,
            at: 0,
            name: "q.ftz",
        };
        let e = r.matrix(true, 2).expect_err("dimension");
        assert!(e.to_string().contains("quantizer's dimension"), "{e}");
        // The same block in a model of dimension 4 (4 columns) is fine.
        b[9..17].copy_from_slice(&4i64.to_le_bytes());
        let mut r = Reader {
            data: &b,
            at: 0,
            name: "q.ftz",
        };
        assert!(r.matrix(true, 4).is_ok());
    }

    #[test]
    fn hash_is_fnv1a_over_signed_bytes() {
        assert_eq!(hash(b""), 2_166_136_261);
        assert_eq!(hash(b"a"), 0xe40c_292c);
        // A byte >= 0x80 is sign-extended before the xor (fastText hashes `int8_t`s).
        let by_hand = (2_166_136_261u32 ^ 0xffff_ffc3).wrapping_mul(16_777_619);
        assert_eq!(hash(&[0xc3]), by_hand);
    }

    #[test]
    fn huffman_tree_merges_the_two_smallest() {
        let t = huffman(&[5, 3, 1]);
        assert_eq!(t.len(), 5);
        assert_eq!((t[3].left, t[3].right, t[3].count), (2, 1, 4));
        assert_eq!((t[4].left, t[4].right, t[4].count), (3, 0, 9));
    }
}
