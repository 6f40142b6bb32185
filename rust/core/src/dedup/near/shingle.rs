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
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};
use xxhash_rust::xxh3::xxh3_64;

use crate::text::{is_ascii_symbol, is_punctuation, normalize, simple_for_each, Normalize};

/// What a shingle is made of.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Shingling {
    /// `n` consecutive words.
    #[default]
    #[serde(alias = "word")]
    Words,
    /// `n` consecutive characters.
    #[serde(alias = "char")]
    Chars,
}

impl Shingling {
    /// Every unit's name, as options spell it.
    pub const NAMES: &'static [&'static str] = &["words", "chars"];

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

/// What an ASCII byte is to [`simple_words`]: part of a word (as this byte), dropped
/// (punctuation, which `Simple` deletes, so the word goes on), or a separator (white space,
/// symbols, control characters).
const SEP: u8 = 0;
const DROP: u8 = 1;
const ASCII_CLASS: [u8; 128] = {
    let mut t = [SEP; 128];
    let mut b = 0u8;
    while b < 128 {
        let c = b as char;
        t[b as usize] = if b.is_ascii_digit() {
            b'0'
        } else if b.is_ascii_alphabetic() {
            b.to_ascii_lowercase()
        } else if b.is_ascii_punctuation() && !is_ascii_symbol(c) {
            DROP
        } else {
            SEP
        };
        b += 1;
    }
    t
};

/// Call `f` with each word of `normalize(text, Simple)`, in order, without building the
/// normalized text: the same words as [`for_each_word`] on it.
///
/// ASCII stretches go through a byte table. Each non-ASCII run is normalized on its own, with
/// the one ASCII character before it (`e` + U+0301 composes to `é`): splitting before an ASCII
/// character never changes NFKC, since no ASCII character reorders with or composes onto what
/// precedes it. Lowercasing goes character by character, which is `str::to_lowercase` except
/// for a final sigma; text that may hold a capital sigma after NFKC takes the whole-text path.
pub fn simple_words(text: &str, mut f: impl FnMut(&str)) {
    let mut words = WordSink {
        word: String::new(),
        f: &mut f,
    };
    let bytes = text.as_bytes();
    if text.is_ascii() {
        bytes.iter().for_each(|&b| words.ascii(b));
    } else if may_hold_capital_sigma(text) {
        simple_for_each(text, |c| {
            if c.is_ascii() {
                words.ascii(c as u8)
            } else {
                words.lowered(c)
            }
        });
    } else {
        let mut normalized = String::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let start = bytes[pos..]
                .iter()
                .position(|&b| b >= 0x80)
                .map_or(bytes.len(), |i| pos + i);
            let cut = if start < bytes.len() && start > pos {
                start - 1
            } else {
                start
            };
            bytes[pos..cut].iter().for_each(|&b| words.ascii(b));
            if start == bytes.len() {
                break;
            }
            let end = bytes[start..]
                .iter()
                .position(|&b| b < 0x80)
                .map_or(bytes.len(), |i| start + i);
            let run = &text[cut..end];
            let run = if is_nfkc_quick(run.chars()) == IsNormalized::Yes {
                run
            } else {
                normalized.clear();
                normalized.extend(run.nfkc());
                &normalized
            };
            for c in run.chars() {
                if c.is_ascii() {
                    words.ascii(c as u8);
                } else {
                    for l in c.to_lowercase() {
                        if l.is_ascii() {
                            words.ascii(l as u8);
                        } else {
                            words.lowered(l);
                        }
                    }
                }
            }
            pos = end;
        }
    }
    words.flush();
}

/// Whether NFKC of `text` may contain `Σ`, whose lowercase depends on its neighbours: `Σ`
/// itself, `Ϲ` and the mathematical Greek capitals.
fn may_hold_capital_sigma(text: &str) -> bool {
    memchr::memchr3(0xCE, 0xCF, 0xF0, text.as_bytes()).is_some()
        && text
            .chars()
            .any(|c| matches!(c, '\u{3a3}' | '\u{3f9}' | '\u{1d400}'..='\u{1d7ff}'))
}

/// Words being assembled from lowercased characters of `Simple`.
struct WordSink<'f, F: FnMut(&str)> {
    word: String,
    f: &'f mut F,
}

impl<F: FnMut(&str)> WordSink<'_, F> {
    #[inline]
    fn flush(&mut self) {
        if !self.word.is_empty() {
            (self.f)(&self.word);
            self.word.clear();
        }
    }

    /// A lowercased ASCII byte, before `Simple`'s digit, punctuation and space rules.
    #[inline]
    fn ascii(&mut self, b: u8) {
        match ASCII_CLASS[b as usize] {
            DROP => {}
            SEP => self.flush(),
            w => self.word.push(w as char),
        }
    }

    /// A lowercased non-ASCII character, before `Simple`'s digit and punctuation rules.
    fn lowered(&mut self, c: char) {
        match get_general_category(c) {
            G::DecimalNumber => self.word.push('0'),
            cat if is_punctuation(cat) => {}
            cat => {
                if is_unspaced(c) {
                    self.flush();
                    let mut buf = [0u8; 4];
                    (self.f)(c.encode_utf8(&mut buf));
                } else if c.is_alphanumeric()
                    || matches!(cat, G::NonspacingMark | G::SpacingMark | G::EnclosingMark)
                {
                    self.word.push(c);
                } else {
                    self.flush();
                }
            }
        }
    }
}

/// [`simple_words`] with where each word lies in `text`: `f(word, start, end)`, byte offsets of
/// the first and past the last original character that made the word (punctuation dropped
/// inside a word is covered). Where NFKC maps a stretch of characters as a whole (composition
/// across characters, which no character-by-character mapping can place), every word of that
/// stretch gets the stretch's span: offsets always lie on character boundaries and always cover
/// the word.
pub fn simple_words_at(text: &str, mut f: impl FnMut(&str, usize, usize)) {
    // The bytes are UTF-8: whole characters are pushed.
    simple_word_bytes_at(text, |w, s, e| {
        f(std::str::from_utf8(w).unwrap_or(""), s, e)
    });
}

/// [`simple_words_at`] giving each word as its UTF-8 bytes (what hashing needs).
pub fn simple_word_bytes_at(text: &str, mut f: impl FnMut(&[u8], usize, usize)) {
    let mut sink = PosSink {
        word: Vec::new(),
        start: 0,
        end: 0,
        f: &mut f,
    };
    if text.is_ascii() {
        sink.ascii_run(text.as_bytes(), 0);
    } else if may_hold_capital_sigma(text) {
        // NFKC characters with the span of text each came from.
        struct Collect(Vec<(char, usize, usize)>);
        impl NfkcSink for Collect {
            fn ascii_run(&mut self, bytes: &[u8], base: usize) {
                let at = bytes.iter().enumerate();
                self.0
                    .extend(at.map(|(i, &b)| (b as char, base + i, base + i + 1)));
            }
            fn ch(&mut self, c: char, s: usize, e: usize) {
                self.0.push((c, s, e));
            }
        }
        let mut chars = Collect(Vec::new());
        nfkc_at(text, &mut chars);
        let chars = chars.0;
        // Σ lowers by context: lower the whole string, as `Simple` does, and line the result up
        // with the characters (every other character lowers on its own, Σ to one character).
        let nfkc: String = chars.iter().map(|c| c.0).collect();
        let mut lowered = nfkc.to_lowercase().chars().collect::<Vec<_>>().into_iter();
        for &(c, s, e) in &chars {
            let n = if c == '\u{3a3}' {
                1
            } else {
                c.to_lowercase().count()
            };
            for l in lowered.by_ref().take(n) {
                sink.char(l, s, e);
            }
        }
    } else {
        nfkc_at(text, &mut sink);
    }
    sink.flush();
}

/// Where [`nfkc_at`] sends the NFKC text: ASCII stretches whole, other characters one by one,
/// each with the span of text it came from.
trait NfkcSink {
    /// `bytes`, ASCII, found at byte `base` of the text (NFKC leaves them as they are).
    fn ascii_run(&mut self, bytes: &[u8], base: usize);
    /// A character of the NFKC text that came from `text[s..e]`.
    fn ch(&mut self, c: char, s: usize, e: usize);
}

/// The NFKC characters of `text` with the span each came from, in order. Text is cut before
/// ASCII characters (which never compose with what precedes them), and a non-ASCII run that is
/// not already NFKC is normalized a starter and its marks at a time; where that differs from
/// normalizing the run whole, the run's characters all take the run's span.
fn nfkc_at(text: &str, sink: &mut impl NfkcSink) {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut pieces: Vec<(char, usize, usize)> = Vec::new();
    while pos < bytes.len() {
        let start = bytes[pos..]
            .iter()
            .position(|&b| b >= 0x80)
            .map_or(bytes.len(), |i| pos + i);
        // The ASCII character before a run may compose with it (e + U+0301).
        let cut = if start < bytes.len() && start > pos {
            start - 1
        } else {
            start
        };
        if cut > pos {
            sink.ascii_run(&bytes[pos..cut], pos);
        }
        if start == bytes.len() {
            break;
        }
        let end = bytes[start..]
            .iter()
            .position(|&b| b < 0x80)
            .map_or(bytes.len(), |i| start + i);
        let run = &text[cut..end];
        if is_nfkc_quick(run.chars()) == IsNormalized::Yes {
            for (i, c) in run.char_indices() {
                sink.ch(c, cut + i, cut + i + c.len_utf8());
            }
        } else {
            let whole: String = run.nfkc().collect();
            pieces.clear();
            let mut seg_start = 0;
            let flush = |a: usize, b: usize, pieces: &mut Vec<(char, usize, usize)>| {
                pieces.extend(run[a..b].nfkc().map(|c| (c, cut + a, cut + b)));
            };
            for (i, c) in run.char_indices().skip(1) {
                if unicode_normalization::char::canonical_combining_class(c) == 0 {
                    flush(seg_start, i, &mut pieces);
                    seg_start = i;
                }
            }
            flush(seg_start, run.len(), &mut pieces);
            if pieces.iter().map(|p| p.0).eq(whole.chars()) {
                for &(c, s, e) in &pieces {
                    sink.ch(c, s, e);
                }
            } else {
                for c in whole.chars() {
                    sink.ch(c, cut, end);
                }
            }
        }
        pos = end;
    }
}

impl<F: FnMut(&[u8], usize, usize)> NfkcSink for PosSink<'_, F> {
    fn ascii_run(&mut self, bytes: &[u8], base: usize) {
        // Runs of word bytes at a time: the same as `self.ascii` on each byte.
        let mut i = 0;
        while i < bytes.len() {
            match ASCII_CLASS[bytes[i] as usize] {
                SEP => self.flush(),
                DROP => {
                    if !self.word.is_empty() {
                        self.end = base + i + 1;
                    }
                }
                _ => {
                    let run = i;
                    let mut as_is = true;
                    // Lowercase letters (their own class: word bytes as they are) 8 at a time.
                    i = skip_lowercase(bytes, i);
                    while i < bytes.len() {
                        let c = ASCII_CLASS[bytes[i] as usize];
                        if c <= DROP {
                            break;
                        }
                        as_is &= c == bytes[i];
                        i += 1;
                    }
                    if self.word.is_empty() && as_is {
                        // A whole word already normalized (ended by punctuation, then a
                        // separator): given from the text itself, without a copy.
                        let mut k = i;
                        while k < bytes.len() && ASCII_CLASS[bytes[k] as usize] == DROP {
                            k += 1;
                        }
                        if k < bytes.len() && ASCII_CLASS[bytes[k] as usize] == SEP {
                            (self.f)(&bytes[run..i], base + run, base + k);
                            i = k;
                            continue;
                        }
                    }
                    if self.word.is_empty() {
                        self.start = base + run;
                    }
                    self.word
                        .extend(bytes[run..i].iter().map(|&b| ASCII_CLASS[b as usize]));
                    self.end = base + i;
                    continue;
                }
            }
            i += 1;
        }
    }

    fn ch(&mut self, c: char, s: usize, e: usize) {
        if c.is_ascii() {
            self.ascii(c.to_ascii_lowercase() as u8, s, e);
        } else {
            for l in c.to_lowercase() {
                self.char(l, s, e);
            }
        }
    }
}

/// The first position from `i` in `bytes` (ASCII) that is not a lowercase letter, 8 bytes at a
/// time while 8 remain (SWAR: for ASCII bytes, adding 0x1f sets the top bit from `a` up and
/// adding 0x05 from `{` up, without carries between bytes).
#[inline]
fn skip_lowercase(bytes: &[u8], mut i: usize) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let v = u64::from_le_bytes(b);
        let from_a = v.wrapping_add(0x1f1f_1f1f_1f1f_1f1f);
        let past_z = v.wrapping_add(0x0505_0505_0505_0505);
        let other = !(from_a & !past_z) & HIGH;
        if other != 0 {
            return i + (other.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

/// [`WordSink`] with positions.
struct PosSink<'f, F: FnMut(&[u8], usize, usize)> {
    word: Vec<u8>,
    start: usize,
    end: usize,
    f: &'f mut F,
}

impl<F: FnMut(&[u8], usize, usize)> PosSink<'_, F> {
    #[inline]
    fn flush(&mut self) {
        if !self.word.is_empty() {
            (self.f)(&self.word, self.start, self.end);
            self.word.clear();
        }
    }

    #[inline]
    fn push(&mut self, c: char, s: usize, e: usize) {
        if self.word.is_empty() {
            self.start = s;
        }
        let mut buf = [0u8; 4];
        self.word
            .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        self.end = e;
    }

    #[inline]
    fn push_byte(&mut self, b: u8, s: usize, e: usize) {
        if self.word.is_empty() {
            self.start = s;
        }
        self.word.push(b);
        self.end = e;
    }

    /// A lowercased ASCII byte (as [`WordSink::ascii`]).
    #[inline]
    fn ascii(&mut self, b: u8, s: usize, e: usize) {
        match ASCII_CLASS[b as usize] {
            DROP => {
                if !self.word.is_empty() {
                    self.end = e;
                }
            }
            SEP => self.flush(),
            w => self.push_byte(w, s, e),
        }
    }

    /// A lowercased character (as [`WordSink::lowered`]).
    fn char(&mut self, c: char, s: usize, e: usize) {
        if c.is_ascii() {
            return self.ascii(c as u8, s, e);
        }
        match get_general_category(c) {
            G::DecimalNumber => self.push('0', s, e),
            cat if is_punctuation(cat) => {
                if !self.word.is_empty() {
                    self.end = e;
                }
            }
            cat => {
                if is_unspaced(c) {
                    self.flush();
                    let mut buf = [0u8; 4];
                    (self.f)(c.encode_utf8(&mut buf).as_bytes(), s, e);
                } else if c.is_alphanumeric()
                    || matches!(cat, G::NonspacingMark | G::SpacingMark | G::EnclosingMark)
                {
                    self.push(c, s, e);
                } else {
                    self.flush();
                }
            }
        }
    }
}

/// The words of `text` after normalization (for inspection and tests).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    simple_words(text, |w| out.push(w.to_string()));
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
    match mode {
        Shingling::Words => {
            word_hashes.clear();
            simple_words(text, |w| word_hashes.push(xxh3_64(w.as_bytes())));
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
            let norm = normalize(text, Normalize::Simple);
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
    use crate::text::random_texts;

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
    fn fused_words_equal_words_of_the_normalized_text() {
        let alphabet: Vec<char> =
            "aZ9 .,!$+\t\n\u{1}\u{85}\u{a0}ＡＢ１\u{663}ΣΟ𝚺Ϲσİﬁé\u{301}你好，。「」—_-'…½한ภาी"
                .chars()
                .collect();
        // An ASCII letter composes with the combining accent after it.
        assert_eq!(words("ca\u{301}fe\u{301} x"), ["cáfé", "x"]);
        // Every other text is ASCII only, to cover the byte-table path.
        let ascii = random_texts(&alphabet[..9], 10_000, 0x2545_f491_4f6c_dd1d);
        let mixed = random_texts(&alphabet, 10_000, 0x2545_f491_4f6c_dd1e);
        for s in ascii.iter().zip(&mixed).flat_map(|(a, m)| [a, m]) {
            let mut fused = Vec::new();
            simple_words(s, |w| fused.push(w.to_string()));
            let norm = normalize(s, Normalize::Simple);
            let mut steps = Vec::new();
            for_each_word(&norm, |w| steps.push(w.to_string()));
            assert_eq!(fused, steps, "{s:?}");
        }
    }

    #[test]
    fn positioned_words_are_the_words_and_cover_their_text() {
        let alphabet: Vec<char> =
            "aZ9 .,!$+\t\n\u{1}\u{85}\u{a0}ＡＢ１\u{663}ΣΟ𝚺Ϲσİﬁé\u{301}你好，。「」—_-'…½한ภาी"
                .chars()
                .collect();
        let mut texts = random_texts(&alphabet, 10_000, 0x51ab_0c3e_9d2f_7711);
        // Mostly lowercase ASCII: runs of eight letters and more, which are skipped 8 at a time,
        // ending on every kind of byte at every offset.
        let ascii: Vec<char> = "abcdefghijklmnopqrstuvwxyzeeeeaaaaoooo `{@[Z9.,'_-\n"
            .chars()
            .collect();
        texts.extend(random_texts(&ascii, 10_000, 0x2f0e_77a1_c3b5_9d41));
        for s in texts
            .iter()
            .map(String::as_str)
            .chain(["ΟΔΟΣ ΑΣ.", "e\u{301}x ＡＢ，你"])
        {
            let mut at = Vec::new();
            simple_words_at(s, |w, a, b| at.push((w.to_string(), a, b)));
            let plain: Vec<String> = at.iter().map(|w| w.0.clone()).collect();
            assert_eq!(plain, words(s), "{s:?}");
            for (w, a, b) in &at {
                assert!(
                    s.is_char_boundary(*a) && s.is_char_boundary(*b) && a < b,
                    "{s:?}"
                );
                // The span's own words hold the word (its letters, lowercased as in context
                // except for a final sigma cut from what follows it).
                let inner = words(&s[*a..*b]).concat().replace('ς', "σ");
                assert!(
                    inner.contains(&w.replace('ς', "σ")),
                    "{s:?}: {w:?} not in {inner:?}"
                );
            }
        }
        let mut at = Vec::new();
        simple_words_at("Hello, wörld! 你好", |w, a, b| {
            at.push((w.to_string(), a, b))
        });
        assert_eq!(
            at,
            [
                ("hello".to_string(), 0, 6),
                ("wörld".to_string(), 7, 14),
                ("你".to_string(), 15, 18),
                ("好".to_string(), 18, 21)
            ]
        );
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
