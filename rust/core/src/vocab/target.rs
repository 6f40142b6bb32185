//! Target selection for `vocab extend`: which corpus words new merges are learned from, and
//! the base-language reference whose words they should leave alone.
//!
//! - Scripts the base tokenizer covers poorly (Han, Hiragana, Hangul, … on an English base)
//!   are found from the corpus: per script, the base tokens per character of the words written
//!   in it. Merges are then learned only inside words holding a character of those scripts.
//! - Every candidate merge is also compared with the reference (given files, or the built-in
//!   English word list): a pair is learned only where it is at least `reference_ratio` times
//!   more frequent per word occurrence in the target than in the reference. This is what keeps
//!   a same-script extension (Dutch on English) from learning English merges.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;
use unicode_script::{Script, UnicodeScript};

use super::corpus::for_each_word;
use super::file::ModelKind;
use crate::{Error, Result};

/// Where new merges are learned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Only where the new language is: words in the scripts the base covers poorly (detected,
    /// or `scripts`), and pairs much more frequent in the corpus than in the reference.
    #[default]
    Auto,
    /// Every word of the corpus, every pair (plain continued BPE).
    All,
}

/// The built-in reference: English word frequencies from wordfreq 3.1.1 (data CC BY-SA 4.0);
/// see `assets/README.md` and `scripts/make_reference_en.py`.
const REFERENCE_EN: &[u8] = include_bytes!("../../assets/reference-en.tsv.zst");

/// Name of the built-in reference in summaries.
pub const BUILTIN_REFERENCE: &str = "builtin:en (wordfreq 3.1.1, 95,992 words)";

/// How running text writes a dictionary word, and how often: after a space in lower case,
/// after a space capitalized (sentence starts, names), and with nothing before it (line
/// starts, after punctuation). wordfreq lower-cases its words; these shares put case back.
const FORMS: [(Form, f64); 3] = [
    (Form::Spaced, 0.80),
    (Form::Capital, 0.12),
    (Form::Bare, 0.08),
];

#[derive(Clone, Copy)]
enum Form {
    Spaced,
    Capital,
    Bare,
}

/// The built-in reference's text: `word\tfrequency × 10⁹` lines.
fn builtin_text() -> Result<String> {
    let raw = zstd::decode_all(REFERENCE_EN).map_err(|e| damaged(e.to_string()))?;
    String::from_utf8(raw).map_err(|e| damaged(e.to_string()))
}

fn damaged(m: String) -> Error {
    Error::Config(format!("the built-in reference is damaged: {m}"))
}

/// The built-in reference's words (`word`, frequency × 10⁹), borrowed from its text.
fn builtin_entries(text: &str) -> Result<Vec<(&str, u64)>> {
    text.lines()
        .map(|line| {
            let bad = || damaged(format!("line {line:?}"));
            let (w, c) = line.split_once('\t').ok_or_else(bad)?;
            Ok((w, c.parse().map_err(|_| bad())?))
        })
        .collect()
}

/// The built-in reference as the base tokenizer's words with counts (sorted, each word once),
/// and the occurrences of all its words. Entries `keep` refuses, and words `wanted` refuses,
/// count in the total only: `extend` leaves out the words no new merge can change.
pub(crate) fn builtin_reference(
    tokenizer: &Tokenizer,
    kind: ModelKind,
    pool: &rayon::ThreadPool,
    keep: impl Fn(&str) -> bool + Sync,
    wanted: impl Fn(&str) -> bool + Sync,
) -> Result<(Vec<(String, u64)>, u64)> {
    let text = builtin_text()?;
    let entries = builtin_entries(&text)?;
    // GPT-2's pre-tokenizer (no normalizer) is cut by tamis' scanner of its regex, which equals
    // the library's split below U+30000, without the per-call pipeline; any other tokenizer,
    // a word past U+30000 or one holding an added token's text goes through `tokenizers`.
    let added: Vec<String> = tokenizer
        .get_added_tokens_decoder()
        .into_values()
        .map(|t| t.content)
        .filter(|c| !c.is_empty())
        .collect();
    let gpt2 = tokenizer.get_normalizer().is_none()
        && matches!(
            tokenizer.get_pre_tokenizer(),
            Some(tokenizers::PreTokenizerWrapper::ByteLevel(b)) if b.use_regex && !b.add_prefix_space
        );
    // An added token is in a form of a word only where it is in the word, unless it holds a
    // space or a capital: the forms add a space and capitalize.
    let form_sensitive = added.iter().any(|a| {
        a.chars()
            .any(|c| c == ' ' || (c.is_alphabetic() && !c.is_lowercase()))
    });
    let scannable = |w: &str| {
        gpt2 && w.chars().all(|c| (c as u32) < 0x3_0000)
            && !added.iter().any(|a| {
                w.contains(a.as_str())
                    || (form_sensitive
                        && (format!(" {w}").contains(a.as_str())
                            || format!(" {}", capitalize(w)).contains(a.as_str())))
            })
    };
    type Part = (Vec<(String, u64)>, u64);
    let (mut words, total): Part = pool.install(|| {
        entries
            .par_iter()
            .with_min_len(512)
            .try_fold(
                || (Vec::new(), 0u64, String::new()),
                |(mut out, mut total, mut mapped), &(w, c)| {
                    for (form, share) in FORMS {
                        let n = ((c as f64) * share).round() as u64;
                        if n == 0 {
                            continue;
                        }
                        if !keep(w) {
                            total += n;
                            continue;
                        }
                        let mut take = |word: &str| {
                            total += n;
                            if wanted(word) {
                                out.push((word.to_string(), n));
                            }
                        };
                        cut_form(
                            tokenizer,
                            kind,
                            w,
                            form,
                            scannable(w),
                            &mut mapped,
                            &mut take,
                        )?;
                    }
                    Ok::<_, Error>((out, total, mapped))
                },
            )
            .map(|r| r.map(|(out, total, _)| (out, total)))
            .try_reduce(
                || (Vec::new(), 0),
                |(mut a, ta), (b, tb)| {
                    a.extend(b);
                    Ok((a, ta + tb))
                },
            )
    })?;
    pool.install(|| words.par_sort_unstable());
    words.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 += later.1;
        }
        same
    });
    Ok((words, total))
}

/// Call `take` with the base tokenizer's words of `w` written in `form`. `scan`: the base splits
/// as GPT-2 and `w` is in the scanner's range (`buf` holds each mapped word).
fn cut_form(
    tokenizer: &Tokenizer,
    kind: ModelKind,
    w: &str,
    form: Form,
    scan: bool,
    buf: &mut String,
    take: &mut dyn FnMut(&str),
) -> Result<()> {
    use crate::prox::count::{byte_char, gpt2_words};
    // A lower-case ASCII word is one word of GPT-2's in every form: its letters map to
    // themselves and the space to `Ġ`.
    if scan && !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()) {
        buf.clear();
        if let Form::Spaced | Form::Capital = form {
            buf.push(byte_char(b' '));
        }
        buf.push_str(w);
        if let Form::Capital = form {
            let at = buf.len() - w.len();
            buf[at..at + 1].make_ascii_uppercase();
        }
        take(buf);
        return Ok(());
    }
    if scan {
        let text = match form {
            Form::Spaced => format!(" {w}"),
            Form::Capital => format!(" {}", capitalize(w)),
            Form::Bare => w.to_string(),
        };
        gpt2_words(&text, |word| {
            buf.clear();
            buf.extend(word.bytes().map(byte_char));
            take(buf);
        });
        return Ok(());
    }
    let (text, skip) = match form {
        // A first word to take the line start, so that `w` follows a space.
        Form::Spaced => (format!("x {w}"), 1),
        Form::Capital => (format!("x {}", capitalize(w)), 1),
        Form::Bare => (w.to_string(), 0),
    };
    let mut i = 0;
    for_each_word(tokenizer, kind, &text, |word| {
        if i >= skip {
            take(word);
        }
        i += 1;
    })
}

fn capitalize(w: &str) -> String {
    let mut chars = w.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A script's place in the corpus and how well the base tokenizer covers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScriptStat {
    /// Unicode script name (`Han`, `Latin`, `Hiragana`, …).
    pub script: String,
    /// Share of the character occurrences in a script (Common and Inherited left out), in
    /// the corpus's most frequent words (20,000).
    pub share: f64,
    /// Base tokens per character of the words written mainly in this script.
    pub tokens_per_char: f64,
    /// Whether merges are learned inside its words.
    pub selected: bool,
}

/// A script is covered poorly when its words take at least this many base tokens per
/// character (English words in GPT-2: about 0.25; Dutch: 0.35; Chinese: over 1).
pub const POOR_TOKENS_PER_CHAR: f64 = 0.75;
/// Scripts under this share of the corpus's characters are not selected by detection.
pub const MIN_SCRIPT_SHARE: f64 = 0.01;

/// The script named `name` (`Han`, `hiragana`, `Hira`, …: `unicode-script`'s full or short
/// names, any case).
pub fn script_named(name: &str) -> Option<Script> {
    let want = name.trim().to_ascii_lowercase();
    all_scripts().find(|s| {
        s.full_name().eq_ignore_ascii_case(&want) || s.short_name().eq_ignore_ascii_case(&want)
    })
}

/// What a bad script name gets told.
pub const SCRIPT_EXAMPLES: &str =
    "a Unicode script name such as Han, Hiragana, Katakana, Hangul, Cyrillic, Arabic, Devanagari or Thai";

/// Parse script names.
pub fn parse_scripts(names: &[String]) -> Result<Vec<Script>> {
    names
        .iter()
        .map(|n| {
            script_named(n)
                .ok_or_else(|| Error::Config(format!("scripts: {n:?} is not {SCRIPT_EXAMPLES}")))
        })
        .collect()
}

fn all_scripts() -> impl Iterator<Item = Script> {
    // Every script some character has: the table's scripts, found by walking the planes that
    // hold scripts once.
    static ALL: std::sync::OnceLock<Vec<Script>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut v: Vec<Script> = (0u32..0x3_2000)
            .filter_map(char::from_u32)
            .map(|c| c.script())
            .collect();
        v.sort_by_key(|s| s.full_name());
        v.dedup();
        v
    })
    .iter()
    .copied()
}

/// The text of a word in the base model's alphabet.
pub(crate) fn word_text(kind: ModelKind, word: &str) -> String {
    match kind {
        ModelKind::ByteLevel => {
            let bytes: Vec<u8> = word
                .chars()
                .filter_map(crate::prox::count::char_byte)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => word.replace('▁', " "),
    }
}

fn is_scripted(s: Script) -> bool {
    !matches!(s, Script::Common | Script::Inherited | Script::Unknown)
}

/// CJK punctuation and full-width forms (script Common) belong to the CJK scripts' words.
fn is_cjk_common(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x303F | 0xFF00..=0xFFEF | 0x3200..=0x33FF | 0xFE30..=0xFE4F)
}

fn is_cjk(s: Script) -> bool {
    matches!(
        s,
        Script::Han | Script::Hiragana | Script::Katakana | Script::Hangul | Script::Bopomofo
    )
}

/// Whether `text` holds a character of `scripts` (or, when a CJK script is among them, CJK
/// punctuation).
pub(crate) fn in_scripts(text: &str, scripts: &[Script]) -> bool {
    let cjk = scripts.iter().any(|&s| is_cjk(s));
    text.chars()
        .any(|c| scripts.contains(&c.script()) || (cjk && is_cjk_common(c)))
}

/// Per-script statistics of `words` (text, base token count, occurrences), most frequent
/// script first, with the poorly covered ones selected.
pub(crate) fn script_stats(words: &[(String, usize, u64)]) -> Vec<ScriptStat> {
    let mut chars: HashMap<Script, u64> = HashMap::new();
    let mut main: HashMap<Script, (u64, u64)> = HashMap::new();
    for (text, tokens, count) in words {
        let mut here: HashMap<Script, u64> = HashMap::new();
        let mut n = 0u64;
        for c in text.chars() {
            if c == ' ' {
                continue;
            }
            n += 1;
            let s = c.script();
            if is_scripted(s) {
                *here.entry(s).or_default() += 1;
            }
        }
        for (&s, &k) in &here {
            *chars.entry(s).or_default() += k * count;
        }
        if let Some((&s, _)) = here
            .iter()
            .max_by_key(|(s, k)| (**k, std::cmp::Reverse(s.full_name())))
        {
            let e = main.entry(s).or_default();
            e.0 += *tokens as u64 * count;
            e.1 += n * count;
        }
    }
    let total: u64 = chars.values().sum();
    let mut out: Vec<ScriptStat> = chars
        .iter()
        .map(|(&s, &k)| {
            let (t, n) = main.get(&s).copied().unwrap_or((0, 0));
            let share = if total == 0 {
                0.0
            } else {
                k as f64 / total as f64
            };
            let tokens_per_char = if n == 0 { 0.0 } else { t as f64 / n as f64 };
            ScriptStat {
                script: s.full_name().to_string(),
                share,
                tokens_per_char,
                selected: tokens_per_char >= POOR_TOKENS_PER_CHAR && share >= MIN_SCRIPT_SHARE,
            }
        })
        .collect();
    out.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.script.cmp(&b.script)));
    out
}

/// Which new tokens target selection allows.
#[derive(Debug, Clone)]
pub(crate) enum Allowed {
    /// Tokens holding a character of these scripts (or a partial UTF-8 sequence that can only
    /// start one): text without them is text the base language writes too.
    Scripts(Vec<Script>),
    /// Tokens holding a letter: punctuation, digits and spaces are no language's own.
    Letters,
}

/// Whether a new token with vocab string `token` is allowed.
pub(crate) fn token_allowed(kind: ModelKind, token: &str, rule: &Allowed) -> bool {
    let bytes: Vec<u8> = match kind {
        ModelKind::ByteLevel => token
            .chars()
            .filter_map(crate::prox::count::char_byte)
            .collect(),
        _ => token.replace('▁', " ").into_bytes(),
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let ok = match rule {
                Allowed::Scripts(s) => {
                    s.contains(&c.script()) || (s.iter().any(|&x| is_cjk(x)) && is_cjk_common(c))
                }
                Allowed::Letters => c.is_alphabetic(),
            };
            if ok {
                return true;
            }
        }
        let partial = chunk.invalid();
        if !partial.is_empty() {
            match rule {
                // A piece of a character not in ASCII: letters of the base language's script
                // that the base splits into bytes are the new language's (é, ĳ).
                Allowed::Letters => return true,
                Allowed::Scripts(s) => {
                    if partial_in_scripts(partial, s) {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// Whether most assigned characters a partial UTF-8 sequence can start (lead byte and any
/// continuation bytes present) are in `scripts`. Lone continuation bytes can end any
/// character, so they never decide.
fn partial_in_scripts(partial: &[u8], scripts: &[Script]) -> bool {
    // A lone 4-byte lead stands for 2^18 code points: each (sequence, scripts) is counted once.
    type Seen = std::sync::Mutex<HashMap<(Vec<u8>, Vec<Script>), bool>>;
    static SEEN: std::sync::OnceLock<Seen> = std::sync::OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    let key = (partial.to_vec(), scripts.to_vec());
    if let Some(&known) = seen.lock().ok().as_ref().and_then(|m| m.get(&key)) {
        return known;
    }
    let answer = count_partial(partial, scripts);
    if let Ok(mut m) = seen.lock() {
        m.insert(key, answer);
    }
    answer
}

fn count_partial(partial: &[u8], scripts: &[Script]) -> bool {
    let Some(&lead) = partial.first() else {
        return false;
    };
    let (len, bits) = match lead {
        0xC2..=0xDF => (2, u32::from(lead & 0x1F)),
        0xE0..=0xEF => (3, u32::from(lead & 0x0F)),
        0xF0..=0xF4 => (4, u32::from(lead & 0x07)),
        _ => return false,
    };
    let mut cp = bits;
    let mut known = 1;
    for &b in partial.iter().skip(1).take(len - 1) {
        if b & 0xC0 != 0x80 {
            break;
        }
        cp = (cp << 6) | u32::from(b & 0x3F);
        known += 1;
    }
    let free = 6 * (len - known) as u32;
    let low = cp << free;
    let high = low + (1 << free);
    let cjk = scripts.iter().any(|&s| is_cjk(s));
    let (mut hit, mut assigned) = (0u32, 0u32);
    for c in (low..high).filter_map(char::from_u32) {
        let s = c.script();
        if s == Script::Unknown {
            continue;
        }
        assigned += 1;
        if scripts.contains(&s) || (cjk && is_cjk_common(c)) {
            hit += 1;
        }
    }
    assigned > 0 && 2 * hit > assigned
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GPT-2's alphabet for `s`'s bytes.
    fn gpt2(s: &[u8]) -> String {
        s.iter()
            .map(|&b| crate::prox::count::byte_char(b))
            .collect()
    }

    #[test]
    fn tokens_need_a_character_of_the_target() {
        let han = Allowed::Scripts(vec![Script::Han]);
        let bl = ModelKind::ByteLevel;
        assert!(token_allowed(bl, &gpt2("中文".as_bytes()), &han));
        // Part of 中 (E4 B8 AD): its lead byte can only start CJK characters here.
        assert!(token_allowed(bl, &gpt2(&[0xE4, 0xB8]), &han));
        // ’ and the bytes it starts with (E2 80) are English punctuation too.
        assert!(!token_allowed(bl, &gpt2("’".as_bytes()), &han));
        assert!(!token_allowed(bl, &gpt2(&[0xE2, 0x80]), &han));
        // Continuation bytes alone end any character.
        assert!(!token_allowed(bl, &gpt2(&[0xB8, 0xAD]), &han));
        assert!(!token_allowed(bl, &gpt2(b" RESTRICT"), &han));
        // CJK punctuation goes with Han.
        assert!(token_allowed(bl, &gpt2("，".as_bytes()), &han));
        let sp = ModelKind::SentencePiece;
        assert!(token_allowed(sp, "▁中", &han));
        assert!(!token_allowed(sp, "▁the", &han));
        // Same script: letters only.
        let letters = Allowed::Letters;
        assert!(token_allowed(bl, &gpt2(b" het"), &letters));
        assert!(!token_allowed(bl, &gpt2(b"...]"), &letters));
        assert!(!token_allowed(bl, &gpt2(b"[--"), &letters));
        assert!(token_allowed(bl, &gpt2(&[0xC3]), &letters));
        assert!(!token_allowed(sp, "▁▁", &letters));
    }

    #[test]
    fn scripts_by_name_and_detection() {
        assert_eq!(
            parse_scripts(&["han".into(), "Hira".into()]).expect("names"),
            vec![Script::Han, Script::Hiragana]
        );
        let e = parse_scripts(&["Klingon".into()]).expect_err("unknown");
        assert!(e.to_string().contains("Klingon"), "{e}");
        let words = vec![
            ("中文字".to_string(), 5, 10),
            (" the".to_string(), 1, 100),
            (" unbelievable".to_string(), 3, 10),
        ];
        let stats = script_stats(&words);
        let han = stats.iter().find(|s| s.script == "Han").expect("Han");
        let latin = stats.iter().find(|s| s.script == "Latin").expect("Latin");
        assert!(han.selected && !latin.selected, "{stats:?}");
        assert!((han.tokens_per_char - 5.0 / 3.0).abs() < 1e-9);
        assert!(in_scripts("ls命令", &[Script::Han]));
        assert!(!in_scripts("command", &[Script::Han]));
    }

    #[test]
    fn gpt2_reference_words_are_the_pipelines() {
        // The scanner paths (lower-case words built directly, others through the scanner of
        // GPT-2's regex) against `tokenizers` for GPT-2's pre-tokenizer on every form.
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
            "normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,
            "trim_offsets":true,"use_regex":true},"post_processor":null,"decoder":null,
            "model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,
            "end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,
            "vocab":{"a":0},"merges":[]}}"#;
        let tok = Tokenizer::from_bytes(json.as_bytes()).expect("tokenizer");
        let text = builtin_text().expect("reference");
        let entries = builtin_entries(&text).expect("entries");
        let odd = entries
            .iter()
            .filter(|(w, _)| !w.bytes().all(|b| b.is_ascii_lowercase()))
            .count();
        assert!(odd > 1000, "both paths are tried: {odd}");
        let mut buf = String::new();
        for (i, (w, _)) in entries.iter().enumerate() {
            // Every word that is not plain lower case, and every seventh that is.
            if i % 7 != 0 && w.bytes().all(|b| b.is_ascii_lowercase()) {
                continue;
            }
            for (form, _) in FORMS {
                let mut piped = Vec::new();
                cut_form(
                    &tok,
                    ModelKind::ByteLevel,
                    w,
                    form,
                    false,
                    &mut buf,
                    &mut |x| piped.push(x.to_string()),
                )
                .expect("words");
                let mut fast = Vec::new();
                cut_form(
                    &tok,
                    ModelKind::ByteLevel,
                    w,
                    form,
                    true,
                    &mut buf,
                    &mut |x| fast.push(x.to_string()),
                )
                .expect("words");
                assert_eq!(piped, fast, "{w:?}");
            }
        }
    }

    #[test]
    fn added_tokens_are_cut_out_of_every_form() {
        // An added token `The` cuts " The" (the capitalized form of "the") as the pipeline does:
        // the scanner must not see it as one word.
        let json = |added: &str| {
            format!(
                r#"{{"version":"1.0","truncation":null,"padding":null,"added_tokens":[{added}],
                "normalizer":null,"pre_tokenizer":{{"type":"ByteLevel","add_prefix_space":false,
                "trim_offsets":true,"use_regex":true}},"post_processor":null,"decoder":null,
                "model":{{"type":"BPE","dropout":null,"unk_token":null,
                "continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,
                "byte_fallback":false,"vocab":{{"a":0}},"merges":[]}}}}"#
            )
        };
        let pool = crate::pipeline::thread_pool(2).expect("pool");
        let words = |added: &str| {
            let tok = Tokenizer::from_bytes(json(added).as_bytes()).expect("tokenizer");
            let (words, _) =
                builtin_reference(&tok, ModelKind::ByteLevel, &pool, |_| true, |_| true)
                    .expect("reference");
            words.into_iter().map(|(w, _)| w).collect::<Vec<_>>()
        };
        let plain = words("");
        assert!(plain.iter().any(|w| w == "ĠThe"));
        let token = r#"{"id":1,"content":"The","single_word":false,"lstrip":false,
            "rstrip":false,"normalized":false,"special":true}"#;
        let cut = words(token);
        assert!(
            !cut.iter().any(|w| w.contains("The")),
            "added token inside a word"
        );
        assert!(cut.iter().any(|w| w == "Ġthe") && cut.iter().any(|w| w == "Ġ"));
    }

    #[test]
    fn builtin_reference_reads() {
        let text = builtin_text().expect("reference");
        let entries = builtin_entries(&text).expect("reference");
        assert_eq!(entries.len(), 95_992);
        assert_eq!(entries[0].0, "the");
        assert!(entries.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}
