//! The few pieces of CPython's string and integer behaviour that the reference executor relies
//! on, reproduced exactly: `str.isspace`, `str.split()` word counts, `str.strip`, and `int(str)`
//! (Unicode digits, underscores, surrounding whitespace, the 4300-digit limit), with integers of
//! any size.

use std::cmp::Ordering;

/// `str.isspace()` for one character (CPython's `Py_UNICODE_ISSPACE`: Unicode White_Space plus
/// the ASCII separators U+001C..U+001F).
pub fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..=' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// ASCII bytes that `str.split()` treats as whitespace.
const ASCII_SPACE: [bool; 128] = {
    let mut t = [false; 128];
    let mut b = 9;
    while b <= 13 {
        t[b] = true;
        b += 1;
    }
    let mut b = 0x1c;
    while b <= 0x20 {
        t[b] = true;
        b += 1;
    }
    t
};

/// `len(s.split())`: the number of maximal runs of non-whitespace characters. Works on the UTF-8
/// bytes directly, 64 bytes at a time: a block without a lead byte of a non-ASCII space (0xC2,
/// 0xE1, 0xE2, 0xE3) is counted with branch-free byte comparisons the compiler vectorizes; only
/// the rare blocks that hold one are walked character by character.
pub fn word_count(s: &str) -> usize {
    const BLOCK: usize = 64;
    let b = s.as_bytes();
    let mut count = 0usize;
    let mut prev_space = true;
    let mut i = 0;
    while i < b.len() {
        let end = (i + BLOCK).min(b.len());
        let block = &b[i..end];
        // An integer OR-reduction (a `bool` fold is not vectorized).
        if block
            .iter()
            .fold(0u8, |acc, &c| acc | u8::from(may_lead_space(c)))
            == 0
        {
            // A word starts at each non-space byte that follows a space byte.
            let first = u8::from(prev_space) & u8::from(!ascii_space(block[0]));
            let starts: u32 = block[..block.len() - 1]
                .iter()
                .zip(&block[1..])
                .map(|(&a, &b)| u32::from(ascii_space(a) & !ascii_space(b)))
                .sum();
            count += usize::from(first) + starts as usize;
            prev_space = ascii_space(block[block.len() - 1]);
            i = end;
            continue;
        }
        // Character by character up to the block's end (a character may run past it).
        while i < end {
            let (space, width) = classify(b, i);
            if !space && prev_space {
                count += 1;
            }
            prev_space = space;
            i += width;
        }
    }
    count
}

/// ASCII whitespace for `str.split()`: U+0009..U+000D and U+001C..U+0020. Bytes ≥ 0x80 are not
/// (non-ASCII spaces are found by [`classify`]).
#[inline(always)]
fn ascii_space(c: u8) -> bool {
    c.wrapping_sub(9) < 5 || c.wrapping_sub(0x1c) < 5
}

/// Lead bytes of the UTF-8 encodings of the non-ASCII whitespace characters.
#[inline(always)]
fn may_lead_space(c: u8) -> bool {
    c == 0xC2 || c.wrapping_sub(0xE1) < 3
}

/// Whether the character at byte `i` is whitespace, and how many bytes to step: a whole
/// character for the non-ASCII spaces, one byte otherwise (continuation bytes are never spaces).
#[inline]
fn classify(b: &[u8], i: usize) -> (bool, usize) {
    let c = b[i];
    if c < 0x80 {
        return (ASCII_SPACE[c as usize], 1);
    }
    let b1 = b.get(i + 1).copied().unwrap_or(0);
    let b2 = b.get(i + 2).copied().unwrap_or(0);
    match c {
        // U+0085, U+00A0
        0xC2 if b1 == 0x85 || b1 == 0xA0 => (true, 2),
        // U+1680
        0xE1 if b1 == 0x9A && b2 == 0x80 => (true, 3),
        // U+2000..U+200A, U+2028, U+2029, U+202F, U+205F
        0xE2 if (b1 == 0x80 && (b2 <= 0x8A || b2 == 0xA8 || b2 == 0xA9 || b2 == 0xAF))
            || (b1 == 0x81 && b2 == 0x9F) =>
        {
            (true, 3)
        }
        // U+3000
        0xE3 if b1 == 0x80 && b2 == 0x80 => (true, 3),
        // Any other lead or continuation byte belongs to a non-space character.
        _ => (false, 1),
    }
}

/// `s.strip()` (Python whitespace, both ends).
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// `s.rstrip()` (Python whitespace).
pub fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_space)
}

/// An integer as Python holds it: small ones inline, others as decimal digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PyInt {
    /// Fits in an `i128`.
    Small(i128),
    /// Does not: sign and decimal magnitude without leading zeros (never zero).
    Big {
        /// Negative.
        neg: bool,
        /// ASCII decimal digits.
        digits: String,
    },
}

/// CPython's default `sys.int_info.default_max_str_digits`.
pub const MAX_STR_DIGITS: usize = 4300;

/// First code point of each run of ten Unicode decimal digits (`unicodedata.decimal(c) == 0`),
/// Unicode 14 as in Python 3.11.
const DIGIT_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66,
    0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
    0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10,
    0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650,
    0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50,
    0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
];

/// The decimal value of a Unicode decimal digit (`unicodedata.decimal`).
fn decimal_value(c: char) -> Option<u8> {
    let cp = c as u32;
    let i = DIGIT_ZEROS.partition_point(|&z| z <= cp);
    let zero = *DIGIT_ZEROS.get(i.checked_sub(1)?)?;
    (cp - zero < 10).then(|| (cp - zero) as u8)
}

/// Whitespace that `int()` skips around the number: ASCII `isspace` (not U+001C..U+001F, which
/// CPython leaves as they are) and non-ASCII Python whitespace (turned into spaces first).
fn is_int_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | ' ') || (c as u32 > 0x7f && is_py_space(c))
}

impl PyInt {
    /// `int(s)` with base 10; `None` where Python raises `ValueError`.
    pub fn parse(s: &str) -> Option<PyInt> {
        let s = s.trim_matches(is_int_space);
        let (neg, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let mut digits = String::with_capacity(body.len());
        let mut prev_underscore = true; // no leading underscore
        for c in body.chars() {
            if c == '_' {
                if prev_underscore {
                    return None;
                }
                prev_underscore = true;
            } else {
                let d = decimal_value(c)?;
                digits.push((b'0' + d) as char);
                prev_underscore = false;
            }
        }
        if digits.is_empty() || prev_underscore || digits.len() > MAX_STR_DIGITS {
            return None;
        }
        Some(Self::from_digits(neg, &digits))
    }

    fn from_digits(neg: bool, digits: &str) -> PyInt {
        let digits = digits.trim_start_matches('0');
        if digits.is_empty() {
            return PyInt::Small(0);
        }
        if digits.len() <= 39 {
            // Up to 39 decimal digits fit in a u128; keep the value inline when it fits an i128.
            let mut mag: u128 = 0;
            let mut fits = true;
            for b in digits.bytes() {
                match mag
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(u128::from(b - b'0')))
                {
                    Some(m) => mag = m,
                    None => fits = false,
                }
            }
            if fits {
                if neg && mag == 1u128 << 127 {
                    return PyInt::Small(i128::MIN);
                }
                if let Ok(v) = i128::try_from(mag) {
                    return PyInt::Small(if neg { -v } else { v });
                }
            }
        }
        PyInt::Big {
            neg,
            digits: digits.to_string(),
        }
    }

    /// The value as an `i128`, when it fits.
    pub fn small(&self) -> Option<i128> {
        match self {
            PyInt::Small(v) => Some(*v),
            PyInt::Big { .. } => None,
        }
    }

    fn sign_digits(&self) -> (bool, String) {
        match self {
            PyInt::Small(v) => (*v < 0, v.unsigned_abs().to_string()),
            PyInt::Big { neg, digits } => (*neg, digits.clone()),
        }
    }

    /// `self + 1`.
    pub fn succ(&self) -> PyInt {
        if let PyInt::Small(v) = self {
            if let Some(n) = v.checked_add(1) {
                return PyInt::Small(n);
            }
        }
        let (neg, digits) = self.sign_digits();
        let mut d: Vec<u8> = digits.into_bytes();
        if neg {
            // -(m - 1), with m >= 1.
            let mut i = d.len();
            while i > 0 {
                i -= 1;
                if d[i] == b'0' {
                    d[i] = b'9';
                } else {
                    d[i] -= 1;
                    break;
                }
            }
        } else {
            let mut i = d.len();
            loop {
                if i == 0 {
                    d.insert(0, b'1');
                    break;
                }
                i -= 1;
                if d[i] == b'9' {
                    d[i] = b'0';
                } else {
                    d[i] += 1;
                    break;
                }
            }
        }
        Self::from_digits(neg, &String::from_utf8_lossy(&d))
    }

    /// Whether `self >= n` for a non-negative `n`.
    pub fn ge_usize(&self, n: usize) -> bool {
        *self >= PyInt::Small(n as i128)
    }
}

impl Ord for PyInt {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PyInt::Small(a), PyInt::Small(b)) => a.cmp(b),
            (PyInt::Small(_), PyInt::Big { neg, .. }) => {
                if *neg {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (PyInt::Big { .. }, PyInt::Small(_)) => other.cmp(self).reverse(),
            (PyInt::Big { neg: na, digits: a }, PyInt::Big { neg: nb, digits: b }) => {
                match (na, nb) {
                    (false, true) => Ordering::Greater,
                    (true, false) => Ordering::Less,
                    _ => {
                        let mag = a.len().cmp(&b.len()).then_with(|| a.cmp(b));
                        if *na {
                            mag.reverse()
                        } else {
                            mag
                        }
                    }
                }
            }
        }
    }
}

impl PartialOrd for PyInt {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for PyInt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PyInt::Small(v) => write!(f, "{v}"),
            PyInt::Big { neg, digits } => write!(f, "{}{digits}", if *neg { "-" } else { "" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_count_matches_python_split() {
        // Expected values from CPython: len(s.split()).
        let cases = [
            ("", 0),
            ("   ", 0),
            ("a b", 2),
            ("a\u{a0}b", 2),
            ("a\u{1c}b\u{1f}c", 3),
            ("a\u{200b}b", 1), // zero-width space is not whitespace
            ("a\u{3000}b\u{2029}c\u{85}d", 4),
            ("é ü\u{202f}ß", 3),
            ("\r\n\t x \u{b}\u{c}", 1),
            ("\u{180e}", 1), // Mongolian vowel separator: not whitespace since Unicode 6.3
        ];
        for (s, n) in cases {
            assert_eq!(word_count(s), n, "{s:?}");
        }
    }

    /// The block path against the definition, on texts mixing ASCII, non-ASCII spaces and
    /// other multi-byte characters, at every offset around the 64-byte block boundaries.
    #[test]
    fn word_count_blocks_agree_with_the_definition() {
        let pieces = [
            "a",
            " ",
            "\n",
            "\u{a0}",
            "\u{3000}",
            "\u{2009}",
            "é",
            "東",
            "\u{1680}",
            "\u{85}",
            "\u{1c}",
            "xyz",
            "\u{e1}",
            "\u{2029}",
            "\u{200b}",
            "\t\r",
            "\u{e2}\u{80}",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..4000 {
            let mut s = String::new();
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (state >> 33) % 200;
            for _ in 0..n {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push_str(pieces[((state >> 33) % pieces.len() as u64) as usize]);
            }
            let expected = s.split(is_py_space).filter(|w| !w.is_empty()).count();
            assert_eq!(word_count(&s), expected, "{s:?}");
        }
    }

    #[test]
    fn word_count_agrees_with_is_py_space_on_every_char() {
        for cp in 0..0x11_0000u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let s = format!("a{c}b");
            let expected = if is_py_space(c) { 2 } else { 1 };
            assert_eq!(word_count(&s), expected, "U+{cp:04X}");
        }
    }

    #[test]
    fn int_parsing_follows_python() {
        let ok = [
            (" 5 ", 5),
            ("+5", 5),
            ("-3", -3),
            ("007", 7),
            ("1_000", 1000),
            ("\u{a0}4\u{3000}", 4),
            ("\u{85}5", 5),
            ("\u{665}", 5),
            ("\u{ff11}\u{ff12}", 12),
            ("\u{663}_\u{663}", 33),
        ];
        for (s, v) in ok {
            assert_eq!(PyInt::parse(s), Some(PyInt::Small(v)), "{s:?}");
        }
        for s in [
            "", " ", "+", "- 5", "+-1", "_1", "1_", "1__2", "-_1", "\u{1c}5", "5\u{1c}", "1.0",
            "0x10", "1e3", "五", "²",
        ] {
            assert_eq!(PyInt::parse(s), None, "{s:?}");
        }
        assert!(PyInt::parse(&"0".repeat(4300)).is_some());
        assert!(PyInt::parse(&"0".repeat(4301)).is_none());
        assert!(PyInt::parse(&format!("{}_1", "1".repeat(4299))).is_some());
    }

    #[test]
    fn big_integers_compare_and_increment() {
        let big = |s: &str| PyInt::parse(s).expect("int");
        let a = big(&"9".repeat(50));
        let b = a.succ();
        assert_eq!(b.to_string(), format!("1{}", "0".repeat(50)));
        assert!(b > a && a > PyInt::Small(i128::MAX));
        let n = big(&format!("-1{}", "0".repeat(50)));
        assert_eq!(n.succ().to_string(), format!("-{}", "9".repeat(50)));
        assert!(n < PyInt::Small(i128::MIN));
        assert_eq!(
            PyInt::Small(i128::MAX).succ().to_string(),
            "170141183460469231731687303715884105728"
        );
        let m = big(&format!(
            "-{}",
            "0".repeat(10) + "170141183460469231731687303715884105729"
        ));
        assert_eq!(m.succ(), PyInt::Small(i128::MIN));
        assert!(a.ge_usize(usize::MAX) && !n.ge_usize(0));
    }
}
