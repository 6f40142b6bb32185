//! Normalization modes applied before hashing. Each mode is defined exactly here so that other
//! tools (and the Python oracle in the tests) can reproduce it.

use std::borrow::Cow;
use std::str::FromStr;

use unicode_general_category::{get_general_category, GeneralCategory as G};
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// How text is normalized before it is hashed.
///
/// - `None`: the text as is (after JSON unescaping), byte for byte.
/// - `Whitespace`: every maximal run of Unicode `White_Space` characters becomes one ASCII space;
///   leading and trailing white space is removed.
/// - `Simple`, in this order: Unicode NFKC; full lowercase (`str::to_lowercase`, which handles final
///   sigma like Python's `str.lower`); every character of general category `Nd` (decimal digit)
///   becomes `0`; every character of general category `P*` (punctuation) is removed; then
///   `Whitespace`. Close to datatrove's `simplify_text`, except that punctuation is deleted rather
///   than turned into a space and digits are mapped one by one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// No normalization.
    #[default]
    None,
    /// Collapse and trim white space.
    Whitespace,
    /// NFKC, lowercase, digits to 0, punctuation removed, white space collapsed.
    Simple,
}

impl Normalize {
    /// Every mode's name, as options spell it.
    pub const NAMES: &'static [&'static str] = &["none", "whitespace", "simple"];

    /// The name used on the command line and in Python.
    pub fn as_str(self) -> &'static str {
        match self {
            Normalize::None => "none",
            Normalize::Whitespace => "whitespace",
            Normalize::Simple => "simple",
        }
    }
}

impl FromStr for Normalize {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Normalize::None),
            "whitespace" => Ok(Normalize::Whitespace),
            "simple" => Ok(Normalize::Simple),
            other => Err(crate::Error::Config(format!(
                "unknown normalization {other:?}: expected none, whitespace or simple"
            ))),
        }
    }
}

/// Normalize `text` with `mode`; borrows when nothing changes.
pub fn normalize(text: &str, mode: Normalize) -> Cow<'_, str> {
    match mode {
        Normalize::None => Cow::Borrowed(text),
        Normalize::Whitespace => collapse_whitespace(text),
        Normalize::Simple => Cow::Owned(simple(text)),
    }
}

/// `Simple` in one pass over the text.
fn simple(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    simple_for_each(text, |c| out.push(c));
    out
}

/// Call `emit` with each character of `Simple(text)` in order, without building the string.
/// NFKC is skipped when its quick check proves the text is already normalized (all ASCII text
/// is), and lowercasing goes character by character except for `Σ`, whose lowercase depends on
/// its neighbours (then the whole string is lowered first). Punctuation is dropped before white
/// space is collapsed, so `a . b` becomes `a b`.
pub(crate) fn simple_for_each(text: &str, mut emit: impl FnMut(char)) {
    let nfkc: Cow<'_, str> = if text.is_ascii() || is_nfkc_quick(text.chars()) == IsNormalized::Yes
    {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfkc().collect())
    };
    let mut state = SimpleState::default();
    if nfkc.is_ascii() {
        for &b in nfkc.as_bytes() {
            state.push(b.to_ascii_lowercase() as char, &mut emit);
        }
    } else if nfkc.contains('\u{3a3}') {
        for c in nfkc.to_lowercase().chars() {
            state.push(c, &mut emit);
        }
    } else {
        for c in nfkc.chars() {
            if c.is_ascii() {
                state.push(c.to_ascii_lowercase(), &mut emit);
            } else {
                for l in c.to_lowercase() {
                    state.push(l, &mut emit);
                }
            }
        }
    }
}

/// White-space collapsing state of [`simple_for_each`].
#[derive(Default)]
struct SimpleState {
    started: bool,
    pending_space: bool,
}

impl SimpleState {
    /// One lowercased character: digits become `0`, punctuation goes, white-space runs become
    /// one space between kept characters (none at either end).
    #[inline]
    fn push(&mut self, c: char, emit: &mut impl FnMut(char)) {
        let kept = if c.is_ascii() {
            // ASCII categories are known without a table look-up.
            if c.is_ascii_digit() {
                '0'
            } else if matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ') {
                self.pending_space = self.started;
                return;
            } else if c.is_ascii_punctuation() && !is_ascii_symbol(c) {
                return;
            } else {
                c
            }
        } else {
            match get_general_category(c) {
                G::DecimalNumber => '0',
                cat if is_punctuation(cat) => return,
                _ if c.is_whitespace() => {
                    self.pending_space = self.started;
                    return;
                }
                _ => c,
            }
        };
        if self.pending_space {
            emit(' ');
            self.pending_space = false;
        }
        self.started = true;
        emit(kept);
    }
}

/// General categories `P*`, which `Simple` deletes.
pub(crate) fn is_punctuation(cat: G) -> bool {
    matches!(
        cat,
        G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation
    )
}

/// ASCII characters that Rust calls punctuation but Unicode files under symbols (`S*`):
/// `$ + < = > ^ ` | ~`. They are kept by `Simple`, as Python's `unicodedata` would.
pub(crate) const fn is_ascii_symbol(c: char) -> bool {
    matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~')
}

fn collapse_whitespace(text: &str) -> Cow<'_, str> {
    let trimmed = text.trim();
    let mut needs_work = trimmed.len() != text.len();
    if !needs_work {
        let mut prev_space = false;
        for c in trimmed.chars() {
            let ws = c.is_whitespace();
            if ws && (prev_space || c != ' ') {
                needs_work = true;
                break;
            }
            prev_space = ws;
        }
    }
    if !needs_work {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(trimmed.len());
    for (i, word) in trimmed
        .split(char::is_whitespace)
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    Cow::Owned(out)
}

/// `n` pseudo-random texts of 0–31 characters drawn from `alphabet` (for tests that compare two
/// implementations on many inputs).
#[cfg(test)]
pub(crate) fn random_texts(alphabet: &[char], n: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    (0..n)
        .map(|round| {
            state = state.rotate_left(29) ^ round as u64;
            let len = (state >> 59) as usize;
            (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    alphabet[(state >> 33) as usize % alphabet.len()]
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_identity() {
        assert_eq!(normalize("  A b\n", Normalize::None), "  A b\n");
    }

    #[test]
    fn whitespace_collapses_and_trims() {
        assert_eq!(
            normalize("  a \t\n b\u{3000}c  ", Normalize::Whitespace),
            "a b c"
        );
        assert!(matches!(
            normalize("a b", Normalize::Whitespace),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn simple_matches_the_documented_rules() {
        assert_eq!(
            normalize("Hello, World! 2024", Normalize::Simple),
            "hello world 0000"
        );
        // NFKC folds the full-width letters and digits; U+0663 is an Arabic-Indic digit (Nd).
        assert_eq!(
            normalize("ＡＢＣ１２ \u{663}", Normalize::Simple),
            "abc00 0"
        );
        // Symbols are not punctuation.
        assert_eq!(normalize("a+b=c $5", Normalize::Simple), "a+b=c $0");
        // CJK punctuation is removed, CJK text kept.
        assert_eq!(normalize("你好，世界。", Normalize::Simple), "你好世界");
        assert_eq!(normalize("ΟΔΟΣ", Normalize::Simple), "οδος");
    }

    /// The rules of `Simple` applied step by step, as documented.
    fn simple_by_steps(text: &str) -> String {
        let lowered = text.nfkc().collect::<String>().to_lowercase();
        let kept: String = lowered
            .chars()
            .filter_map(|c| match get_general_category(c) {
                G::DecimalNumber => Some('0'),
                G::ConnectorPunctuation
                | G::DashPunctuation
                | G::OpenPunctuation
                | G::ClosePunctuation
                | G::InitialPunctuation
                | G::FinalPunctuation
                | G::OtherPunctuation => None,
                _ => Some(c),
            })
            .collect();
        kept.split(char::is_whitespace)
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn one_pass_simple_equals_the_steps() {
        let alphabet: Vec<char> = "aZ9 .,!$+\t\n\r\u{b}\u{c}\u{85}\u{a0}\u{3000}ＡＢ１\u{663}ΣσΟΔİﬁé\u{301}e你好，。「」—_-'\"ß"
            .chars()
            .collect();
        for s in random_texts(&alphabet, 20_000, 0x9e37_79b9_7f4a_7c15) {
            assert_eq!(
                normalize(&s, Normalize::Simple),
                simple_by_steps(&s),
                "{s:?}"
            );
        }
    }

    #[test]
    fn parse_modes() {
        assert_eq!("simple".parse::<Normalize>().ok(), Some(Normalize::Simple));
        assert!("bogus".parse::<Normalize>().is_err());
    }
}
