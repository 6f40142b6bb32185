//! Normalization modes applied before hashing. Each mode is defined exactly here so that other
//! tools (and the Python oracle in the tests) can reproduce it.

use std::borrow::Cow;
use std::str::FromStr;

use unicode_general_category::{get_general_category, GeneralCategory as G};
use unicode_normalization::UnicodeNormalization;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
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
        Normalize::Simple => {
            let lowered = text.nfkc().collect::<String>().to_lowercase();
            let mut out = String::with_capacity(lowered.len());
            for c in lowered.chars() {
                if c.is_ascii() {
                    // Fast path: ASCII categories are known without a table look-up.
                    if c.is_ascii_digit() {
                        out.push('0');
                    } else if !c.is_ascii_punctuation() || is_ascii_symbol(c) {
                        out.push(c);
                    }
                    continue;
                }
                match get_general_category(c) {
                    G::DecimalNumber => out.push('0'),
                    G::ConnectorPunctuation
                    | G::DashPunctuation
                    | G::OpenPunctuation
                    | G::ClosePunctuation
                    | G::InitialPunctuation
                    | G::FinalPunctuation
                    | G::OtherPunctuation => {}
                    _ => out.push(c),
                }
            }
            Cow::Owned(collapse_whitespace(&out).into_owned())
        }
    }
}

/// ASCII characters that Rust calls punctuation but Unicode files under symbols (`S*`):
/// `$ + < = > ^ ` | ~`. They are kept by `Simple`, as Python's `unicodedata` would.
fn is_ascii_symbol(c: char) -> bool {
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

    #[test]
    fn parse_modes() {
        assert_eq!("simple".parse::<Normalize>().ok(), Some(Normalize::Simple));
        assert!("bogus".parse::<Normalize>().is_err());
    }
}
