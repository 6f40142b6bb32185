//! Per-stage counts of a refine run, the token counts behind them, and the examples the report
//! shows. Counts of shards add up; examples keep the first ones in input order.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Token-length histogram bins: `[0, 1), [1, 2), [2, 4), … [2^20, ∞)`.
pub fn hist_edges() -> Vec<u64> {
    let mut e = vec![0, 1];
    e.extend((1..=20).map(|k| 1u64 << k));
    e
}

/// The bin of a document of `n` tokens.
fn bin(n: u64) -> usize {
    if n == 0 {
        0
    } else {
        (64 - n.leading_zeros() as usize).min(21)
    }
}

/// How documents are measured in the report.
pub enum TokenCounter {
    /// White-space separated words (Unicode White_Space).
    Words,
    /// Tokens of a `tokenizer.json` (no special tokens added).
    Tokenizer(Box<tokenizers::Tokenizer>),
}

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.unit())
    }
}

impl TokenCounter {
    /// Words, or the tokens of `tokenizer`.
    pub fn new(tokenizer: Option<&Path>) -> Result<Self> {
        match tokenizer {
            None => Ok(TokenCounter::Words),
            Some(p) => {
                let t = tokenizers::Tokenizer::from_file(p).map_err(|e| {
                    Error::Config(format!("{}: not a tokenizer.json: {e}", p.display()))
                })?;
                Ok(TokenCounter::Tokenizer(Box::new(t)))
            }
        }
    }

    /// `words` or `tokens`.
    pub fn unit(&self) -> &'static str {
        match self {
            TokenCounter::Words => "words",
            TokenCounter::Tokenizer(_) => "tokens",
        }
    }

    /// The size of `text`.
    pub fn count(&self, text: &str) -> u32 {
        let n = match self {
            TokenCounter::Words => words(text),
            TokenCounter::Tokenizer(t) => t.encode_fast(text, false).map_or(0, |e| e.len()),
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// White-space separated words, as `str::split_whitespace` counts them. Every stage of a refine
/// run counts the words of its input, so this runs over the corpus several times: 64 bytes at a
/// time as bit masks (white space; possible first bytes of non-ASCII white space, checked one by
/// one), several GB/s where the `char` iterator does 0.2.
fn words(text: &str) -> usize {
    let b = text.as_bytes();
    let mut n = 0usize;
    // Whether the byte before the chunk is white space (the start of the text counts as one).
    let mut carry = 1u64;
    // White-space bits of a non-ASCII character that began in the previous chunk.
    let mut spill = 0u64;
    let mut start = 0;
    while start < b.len() {
        let len = (b.len() - start).min(64);
        let mut chunk = [b'a'; 64];
        chunk[..len].copy_from_slice(&b[start..start + len]);
        let (mut space, mut lead) = masks(&chunk);
        space |= spill;
        spill = 0;
        while lead != 0 {
            let i = lead.trailing_zeros() as usize;
            lead &= lead - 1;
            let k = unicode_space_len(b, start + i);
            if k > 0 {
                let bits = ((1u128 << k) - 1) << i;
                space |= bits as u64;
                spill = (bits >> 64) as u64;
            }
        }
        let valid = if len == 64 {
            u64::MAX
        } else {
            (1u64 << len) - 1
        };
        // A word starts at a byte that is not white space and follows one that is.
        n += (!space & ((space << 1) | carry) & valid).count_ones() as usize;
        carry = (space >> (len - 1)) & 1;
        start += len;
    }
    n
}

/// The byte length of the non-ASCII white-space character (U+0085, U+00A0, U+1680,
/// U+2000..=U+200A, U+2028, U+2029, U+202F, U+205F, U+3000) at `at`, or 0.
fn unicode_space_len(b: &[u8], at: usize) -> u32 {
    let x = |k: usize| b.get(at + k).copied().unwrap_or(0);
    match x(0) {
        0xC2 if matches!(x(1), 0x85 | 0xA0) => 2,
        0xE1 if x(1) == 0x9A && x(2) == 0x80 => 3,
        0xE2 if x(1) == 0x80 && matches!(x(2), 0x80..=0x8A | 0xA8 | 0xA9 | 0xAF) => 3,
        0xE2 if x(1) == 0x81 && x(2) == 0x9F => 3,
        0xE3 if x(1) == 0x80 && x(2) == 0x80 => 3,
        _ => 0,
    }
}

/// Bit masks of a chunk: ASCII white space (space, `\t \n \x0b \x0c \r`), and the bytes that
/// may begin non-ASCII white space (0xC2, 0xE1..=0xE3).
#[cfg(target_arch = "x86_64")]
fn masks(chunk: &[u8; 64]) -> (u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_sub_epi8,
    };
    let (mut space, mut lead) = (0u64, 0u64);
    for k in 0..4 {
        // SAFETY: SSE2 is part of every x86_64 CPU; the load reads 16 bytes inside `chunk`
        // (unaligned loads are allowed).
        let (s, l) = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().add(16 * k).cast::<__m128i>());
            // `c - 9 <= 4` (unsigned) is `\t..=\r`: min(d, 4) == d.
            let d = _mm_sub_epi8(v, _mm_set1_epi8(9));
            let control = _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(4)), d);
            let s = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8)), control);
            let e = _mm_sub_epi8(v, _mm_set1_epi8(0xE1u8 as i8));
            let e1_e3 = _mm_cmpeq_epi8(_mm_min_epu8(e, _mm_set1_epi8(2)), e);
            let l = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(0xC2u8 as i8)), e1_e3);
            (_mm_movemask_epi8(s), _mm_movemask_epi8(l))
        };
        space |= u64::from(s as u16) << (16 * k);
        lead |= u64::from(l as u16) << (16 * k);
    }
    (space, lead)
}

/// Bit masks of a chunk (see the x86_64 version).
#[cfg(not(target_arch = "x86_64"))]
fn masks(chunk: &[u8; 64]) -> (u64, u64) {
    let (mut space, mut lead) = (0u64, 0u64);
    for (i, &c) in chunk.iter().enumerate() {
        space |= u64::from(c == b' ' || c.wrapping_sub(b'\t') < 5) << i;
        lead |= u64::from(c == 0xC2 || c.wrapping_sub(0xE1) < 3) << i;
    }
    (space, lead)
}

/// Documents and tokens at one point of the pipeline, with their length histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Population {
    /// Documents.
    pub documents: u64,
    /// Tokens (or words).
    pub tokens: u64,
    /// Documents per bin of [`hist_edges`].
    pub histogram: Vec<u64>,
}

impl Default for Population {
    fn default() -> Self {
        Population {
            documents: 0,
            tokens: 0,
            histogram: vec![0; 22],
        }
    }
}

impl Population {
    /// Count one document of `tokens`.
    pub fn add(&mut self, tokens: u32) {
        self.documents += 1;
        self.tokens += u64::from(tokens);
        self.histogram[bin(u64::from(tokens))] += 1;
    }

    /// Add another population.
    pub fn merge(&mut self, other: &Population) {
        self.documents += other.documents;
        self.tokens += other.tokens;
        for (a, b) in self.histogram.iter_mut().zip(&other.histogram) {
            *a += b;
        }
    }
}

/// A removed document shown in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    /// Its id.
    pub id: String,
    /// Why.
    pub reason: String,
    /// The stage's description of its decision.
    pub detail: String,
    /// The start of its text.
    pub text: String,
}

/// A rewritten line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rewritten {
    /// Before.
    pub before: String,
    /// After.
    pub after: String,
}

/// A modified document shown in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Modified {
    /// Its id.
    pub id: String,
    /// Lines removed.
    pub removed_lines: Vec<String>,
    /// Lines rewritten.
    pub rewritten: Vec<Rewritten>,
    /// The stage's description of its decision.
    pub detail: String,
}

/// Examples of a stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Examples {
    /// Removed documents.
    pub dropped: Vec<Dropped>,
    /// Modified documents.
    pub modified: Vec<Modified>,
}

/// Counts of one stage (over a shard, or the whole run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    /// Documents in.
    pub documents_in: u64,
    /// Documents out.
    pub documents_out: u64,
    /// Tokens in.
    pub tokens_in: u64,
    /// Tokens out.
    pub tokens_out: u64,
    /// Text bytes in.
    pub bytes_in: u64,
    /// Text bytes out.
    pub bytes_out: u64,
    /// Kept documents whose text changed.
    pub modified: u64,
    /// Removed documents by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Stage counters.
    pub counters: BTreeMap<String, u64>,
    /// Seconds spent.
    pub seconds: f64,
    /// Per language: documents seen and kept (the language stage).
    pub languages: BTreeMap<String, (u64, u64)>,
    /// Examples.
    pub examples: Examples,
}

impl StageStats {
    /// Add another shard's counts (examples: the first `examples` in order).
    pub fn merge(&mut self, other: &StageStats, examples: usize) {
        self.documents_in += other.documents_in;
        self.documents_out += other.documents_out;
        self.tokens_in += other.tokens_in;
        self.tokens_out += other.tokens_out;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.modified += other.modified;
        self.seconds += other.seconds;
        for (k, v) in &other.dropped {
            *self.dropped.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &other.counters {
            *self.counters.entry(k.clone()).or_insert(0) += v;
        }
        for (k, (s, kept)) in &other.languages {
            let e = self.languages.entry(k.clone()).or_insert((0, 0));
            e.0 += s;
            e.1 += kept;
        }
        let room = examples.saturating_sub(self.examples.dropped.len());
        self.examples
            .dropped
            .extend(other.examples.dropped.iter().take(room).cloned());
        let room = examples.saturating_sub(self.examples.modified.len());
        self.examples
            .modified
            .extend(other.examples.modified.iter().take(room).cloned());
    }

    /// Count a removed document.
    pub fn drop_doc(&mut self, reason: &str, id: &str, text: &str, detail: &str, examples: usize) {
        *self.dropped.entry(reason.to_string()).or_insert(0) += 1;
        if self.examples.dropped.len() < examples {
            self.examples.dropped.push(Dropped {
                id: id.to_string(),
                reason: reason.to_string(),
                detail: detail.to_string(),
                text: snippet(text, 400),
            });
        }
    }

    /// Count a modified document.
    pub fn modify_doc(&mut self, id: &str, old: &str, new: &str, detail: &str, examples: usize) {
        self.modified += 1;
        if self.examples.modified.len() < examples {
            let (removed_lines, rewritten) = changes(old, new, 6);
            self.examples.modified.push(Modified {
                id: id.to_string(),
                removed_lines,
                rewritten,
                detail: detail.to_string(),
            });
        }
    }
}

/// The first `n` characters of `text`, with `…` when cut.
pub fn snippet(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        None => text.to_string(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// Lines removed and lines rewritten between two versions of a document (a line diff).
pub fn changes(old: &str, new: &str, limit: usize) -> (Vec<String>, Vec<Rewritten>) {
    let a: Vec<&str> = old.split('\n').collect();
    let b: Vec<&str> = new.split('\n').collect();
    let mut removed = Vec::new();
    let mut rewritten = Vec::new();
    let diff = similar::TextDiff::configure()
        .algorithm(similar::Algorithm::Myers)
        .diff_slices(&a, &b);
    for op in diff.ops() {
        match *op {
            similar::DiffOp::Delete {
                old_index, old_len, ..
            } => removed.extend(a[old_index..old_index + old_len].iter().copied()),
            similar::DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                for k in 0..old_len.min(new_len) {
                    rewritten.push(Rewritten {
                        before: snippet(a[old_index + k], 200),
                        after: snippet(b[new_index + k], 200),
                    });
                }
                if old_len > new_len {
                    removed.extend(a[old_index + new_len..old_index + old_len].iter().copied());
                }
            }
            _ => {}
        }
    }
    let removed = removed
        .into_iter()
        .take(limit)
        .map(|l| snippet(l, 200))
        .collect();
    rewritten.truncate(limit);
    (removed, rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_the_edges() {
        let edges = hist_edges();
        assert_eq!(edges.len(), 22);
        for n in [0u64, 1, 2, 3, 4, 7, 8, 1000, 1 << 20, 1 << 30] {
            let expected = edges.iter().rposition(|&e| e <= n).unwrap_or(0);
            assert_eq!(bin(n), expected, "{n}");
        }
    }

    #[test]
    fn words_and_changes() {
        assert_eq!(words("  a b\tc\n"), 3);
        assert_eq!(words("día  señor"), 2);
        assert_eq!(words("a\u{3000}b\u{a0}c"), 3);
        // The 64-byte chunks agree with split_whitespace across their edges, for every kind of
        // white space.
        let spaces: Vec<char> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
            .collect();
        for &w in &spaces {
            for pre in 0..70 {
                for x in ['a', 'é', '’', '東', w] {
                    let a: String = std::iter::repeat_n(x, pre).chain([w, w, 'b']).collect();
                    assert_eq!(words(&a), a.split_whitespace().count(), "{a:?}");
                    let b: String = std::iter::repeat_n('a', pre)
                        .chain([w])
                        .chain(std::iter::repeat_n(x, 3))
                        .collect();
                    assert_eq!(words(&b), b.split_whitespace().count(), "{b:?}");
                }
            }
        }
        let (removed, rewritten) = changes("a\nb\nc\nd", "a\nc\nD", 6);
        assert_eq!(removed, ["b"]);
        assert_eq!(rewritten[0].before, "d");
        assert_eq!(snippet("abcdef", 3), "abc…");
    }
}
