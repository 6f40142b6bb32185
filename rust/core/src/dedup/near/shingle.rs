//! From text to 64-bit shingle hashes.
//!
//! The text is first normalized with [`Normalize::Simple`] (NFKC, lowercase, digits to `0`,
//! punctuation removed, white space collapsed). Then:
//!
//! - **Words** ([`Shingling::Words`]): a word is a maximal run of letters, digits and combining
//!   marks, except that every character of a script written without spaces between words (Han,
//!   Hiragana, Katakana, Bopomofo, Thai, Lao, Khmer, Myanmar, Tibetan, Yi) is a word of its own,
//!   so that Chinese and Japanese get meaningful shingles. Everything else (spaces, symbols)
//!   separates words. A shingle is `n` consecutive words; its hash is XXH3-64 of the words'
//!   XXH3-64 hashes, as little-endian bytes. A document with fewer than `n` words (but at least
//!   one) has a single shingle made of all its words.
//! - **Characters** ([`Shingling::Chars`]): a shingle is `n` consecutive characters of the
//!   normalized text (spaces included), hashed with XXH3-64 of their UTF-8 bytes; shorter texts
//!   have one shingle, the whole text.
//!
//! A document with no word (or an empty text) has no shingle.

use unicode_general_category::{get_general_category, GeneralCategory as G};
use xxhash_rust::xxh3::xxh3_64;

use crate::text::{normalize, Normalize};

/// What a shingle is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Shingling {
    /// `n` consecutive words.
    #[default]
    Words,
    /// `n` consecutive characters.
    Chars,
}

impl Shingling {
    /// The name used on the command line and in Python.
    pub fn as_str(self) -> &'static str {
        match self {
            Shingling::Words => "words",
            Shingling::Chars => "chars",
        }
    }
}

impl std::str::FromStr for Shingling {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "words" | "word" => Ok(Shingling::Words),
            "chars" | "char" => Ok(Shingling::Chars),
            other => Err(crate::Error::Config(format!(
                "unknown shingling {other:?}: expected words or chars"
            ))),
        }
    }
}

/// Scripts whose words are not separated by spaces: each character is a word.
fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF // Thai, Lao
        | 0x0F00..=0x0FFF // Tibetan
        | 0x1000..=0x109F // Myanmar
        | 0x1780..=0x17FF // Khmer
        | 0x2E80..=0x2FDF // CJK radicals, Kangxi radicals
        | 0x3005..=0x3007 // iteration mark, closing mark, ideographic zero
        | 0x3021..=0x3029 // Hangzhou numerals
        | 0x3040..=0x30FF // Hiragana, Katakana
        | 0x3100..=0x312F // Bopomofo
        | 0x31A0..=0x31FF // Bopomofo extended, Katakana phonetic extensions
        | 0x3400..=0x4DBF // CJK extension A
        | 0x4E00..=0x9FFF // CJK unified ideographs
        | 0xA000..=0xA4CF // Yi
        | 0xF900..=0xFAFF // CJK compatibility ideographs
        | 0xFF66..=0xFF9F // half-width Katakana
        | 0x1B000..=0x1B16F // Kana supplement and extensions
        | 0x20000..=0x3FFFF // CJK extensions B and later
    )
}

fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    c.is_alphanumeric()
        || matches!(
            get_general_category(c),
            G::NonspacingMark | G::SpacingMark | G::EnclosingMark
        )
}

/// Call `f` with each word of already normalized `text`, in order.
pub fn for_each_word<'a>(text: &'a str, mut f: impl FnMut(&'a str)) {
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() {
                start.get_or_insert(i);
            } else if let Some(s) = start.take() {
                f(&text[s..i]);
            }
            continue;
        }
        if is_unspaced(c) {
            if let Some(s) = start.take() {
                f(&text[s..i]);
            }
            f(&text[i..i + c.len_utf8()]);
        } else if is_word_char(c) {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            f(&text[s..i]);
        }
    }
    if let Some(s) = start {
        f(&text[s..]);
    }
}

/// The words of `text` after normalization (for inspection and tests).
pub fn words(text: &str) -> Vec<String> {
    let norm = normalize(text, Normalize::Simple);
    let mut out = Vec::new();
    for_each_word(&norm, |w| out.push(w.to_string()));
    out
}

/// Shingle hashes of `text`, appended to `out` (cleared first), in text order, repeats kept.
/// `word_hashes` is scratch space reused across calls.
pub fn shingle_hashes_into(
    text: &str,
    mode: Shingling,
    n: usize,
    out: &mut Vec<u64>,
    word_hashes: &mut Vec<u64>,
) {
    out.clear();
    let n = n.max(1);
    let norm = normalize(text, Normalize::Simple);
    match mode {
        Shingling::Words => {
            word_hashes.clear();
            for_each_word(&norm, |w| word_hashes.push(xxh3_64(w.as_bytes())));
            if word_hashes.is_empty() {
                return;
            }
            let mut buf = [0u8; 8 * 32];
            let window = n.min(word_hashes.len());
            if window <= 32 {
                for win in word_hashes.windows(window) {
                    for (slot, h) in buf.chunks_exact_mut(8).zip(win) {
                        slot.copy_from_slice(&h.to_le_bytes());
                    }
                    out.push(xxh3_64(&buf[..8 * window]));
                }
            } else {
                let mut bytes = Vec::with_capacity(8 * window);
                for win in word_hashes.windows(window) {
                    bytes.clear();
                    for h in win {
                        bytes.extend_from_slice(&h.to_le_bytes());
                    }
                    out.push(xxh3_64(&bytes));
                }
            }
        }
        Shingling::Chars => {
            if norm.is_empty() {
                return;
            }
            let bounds: Vec<usize> = norm
                .char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(norm.len()))
                .collect();
            let chars = bounds.len() - 1;
            let window = n.min(chars);
            for i in 0..=(chars - window) {
                out.push(xxh3_64(&norm.as_bytes()[bounds[i]..bounds[i + window]]));
            }
        }
    }
}

/// Shingle hashes of `text` (see [`shingle_hashes_into`]).
pub fn shingle_hashes(text: &str, mode: Shingling, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    shingle_hashes_into(text, mode, n, &mut out, &mut Vec::new());
    out
}

/// The sorted, distinct shingle hashes of `text`: its shingle set.
pub fn shingle_set(text: &str, mode: Shingling, n: usize) -> Vec<u64> {
    let mut s = shingle_hashes(text, mode, n);
    s.sort_unstable();
    s.dedup();
    s
}

/// Exact Jaccard similarity of two sorted, distinct sets (two empty sets: 1).
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_punctuation_and_symbols() {
        assert_eq!(
            words("Hello, World! a+b 42x"),
            ["hello", "world", "a", "b", "00x"]
        );
    }

    #[test]
    fn unspaced_scripts_give_one_word_per_character() {
        assert_eq!(words("我爱北京 abc"), ["我", "爱", "北", "京", "abc"]);
        assert_eq!(words("ひらがなカタ"), ["ひ", "ら", "が", "な", "カ", "タ"]);
        assert_eq!(words("ภาษาไทย"), ["ภ", "า", "ษ", "า", "ไ", "ท", "ย"]);
        // Hangul is written with spaces: words stay whole.
        assert_eq!(words("한국어 문장"), ["한국어", "문장"]);
        // Combining marks stay inside the word (Devanagari vowel signs).
        assert_eq!(words("हिन्दी भाषा"), ["हिन्दी", "भाषा"]);
    }

    #[test]
    fn shingles_count_and_short_documents() {
        assert_eq!(shingle_hashes("a b c d e f", Shingling::Words, 5).len(), 2);
        assert_eq!(shingle_hashes("a b", Shingling::Words, 5).len(), 1);
        assert!(shingle_hashes(" ,. ", Shingling::Words, 5).is_empty());
        assert_eq!(shingle_hashes("abcdef", Shingling::Chars, 5).len(), 2);
        assert_eq!(shingle_hashes("ab", Shingling::Chars, 5).len(), 1);
        // Normalization makes these the same shingles.
        assert_eq!(
            shingle_hashes("The  Cat, sat on THE mat.", Shingling::Words, 3),
            shingle_hashes("the cat sat on the mat", Shingling::Words, 3)
        );
    }

    #[test]
    fn shingle_hash_is_the_documented_formula() {
        let h: Vec<u8> = ["a", "b"]
            .iter()
            .flat_map(|w| xxh3_64(w.as_bytes()).to_le_bytes())
            .collect();
        assert_eq!(shingle_hashes("A, b", Shingling::Words, 2), [xxh3_64(&h)]);
    }

    #[test]
    fn jaccard_of_sets() {
        assert_eq!(jaccard(&[1, 2, 3], &[2, 3, 4]), 0.5);
        assert_eq!(jaccard(&[], &[]), 1.0);
        assert_eq!(jaccard(&[1], &[]), 0.0);
    }
}
