//! A BPE `tokenizer.json`: the checks that decide whether it can be extended, the facts continued
//! BPE needs (kind, byte fallback, merges and their format, next id), and byte-exact splicing of
//! new vocab entries and merges into the original text, so that every other byte of the file
//! (normalizer, pre-tokenizer, post-processor, decoder, added tokens, formatting) stays as it was.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokenizers::models::bpe::BPE;
use tokenizers::{ModelWrapper, Tokenizer};

use crate::io::JsonFields;
use crate::{Error, Result, TokenizerError};

/// What alphabet the model's vocabulary is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Byte-level BPE (GPT-2, Llama-3, Qwen2): vocab strings are bytes mapped to printable chars.
    ByteLevel,
    /// SentencePiece-style BPE: `▁` marks a space (Metaspace pre-tokenizer, or the legacy
    /// `Prepend("▁")` + `Replace(" ", "▁")` normalizer), usually with byte fallback.
    SentencePiece,
    /// Any other BPE (e.g. a whitespace pre-tokenizer).
    Other,
}

/// How the file writes its merges; new merges are written the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeFormat {
    /// `["a", "b"]` (tokenizers ≥ 0.20).
    Pairs,
    /// `"a b"` (legacy); parts containing a space cannot be written in it.
    Strings,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MergeEntry {
    Pair([String; 2]),
    Str(String),
}

/// A loaded BPE tokenizer file.
#[derive(Clone)]
pub struct TokenizerFile {
    name: String,
    json: Arc<str>,
    tokenizer: Tokenizer,
    kind: ModelKind,
    format: MergeFormat,
    merges: Vec<(String, String)>,
    vocab: HashMap<String, u32>,
    next_id: u32,
    vocab_span: (usize, usize),
    merges_span: (usize, usize),
}

/// Ids may leave gaps, but no more than this beyond twice the ids in use.
pub const MAX_ID_GAP: u64 = 1 << 16;

impl std::fmt::Debug for TokenizerFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenizerFile")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("vocab", &self.vocab.len())
            .field("merges", &self.merges.len())
            .field("next_id", &self.next_id)
            .finish()
    }
}

fn span_of(src: &str, raw: &RawValue) -> (usize, usize) {
    let start = raw.get().as_ptr() as usize - src.as_ptr() as usize;
    (start, start + raw.get().len())
}

fn contains_type(v: &serde_json::Value, pred: &dyn Fn(&serde_json::Value) -> bool) -> bool {
    if pred(v) {
        return true;
    }
    match v {
        serde_json::Value::Object(m) => m.values().any(|x| contains_type(x, pred)),
        serde_json::Value::Array(a) => a.iter().any(|x| contains_type(x, pred)),
        _ => false,
    }
}

fn is_type(v: &serde_json::Value, name: &str) -> bool {
    v.get("type").and_then(|t| t.as_str()) == Some(name)
}

impl TokenizerFile {
    /// Read and check a `tokenizer.json` file.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let name = path.display().to_string();
        let json = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => Error::Tokenizer {
                path: name.clone(),
                error: TokenizerError::Malformed("not UTF-8 text".into()),
            },
            _ => Error::io(&name, e),
        })?;
        Self::from_json(&name, &json)
    }

    /// Check a `tokenizer.json` given as text; `name` is used in messages.
    pub fn from_json(name: &str, json: &str) -> Result<Self> {
        let err = |error| Error::Tokenizer {
            path: name.to_string(),
            error,
        };
        let malformed = |m: String| err(TokenizerError::Malformed(m));
        let top: JsonFields<'_> =
            serde_json::from_str(json).map_err(|e| malformed(e.to_string()))?;
        let model_raw = top
            .get("model")
            .ok_or_else(|| malformed("no \"model\" field".into()))?;
        let model: JsonFields<'_> = serde_json::from_str(model_raw.get())
            .map_err(|_| malformed("\"model\" is not an object".into()))?;
        let field = |k: &str| model.get(k).filter(|v| v.get() != "null");
        match field("type").map(|t| serde_json::from_str::<String>(t.get())) {
            Some(Ok(t)) if t == "BPE" => {}
            Some(Ok(t)) => return Err(err(TokenizerError::UnsupportedModel(t))),
            Some(Err(_)) => return Err(malformed("model \"type\" is not a string".into())),
            None if field("merges").is_some() => {}
            None => {
                let guess = if field("max_input_chars_per_word").is_some() {
                    "WordPiece"
                } else if model.get("vocab").is_some_and(|v| v.get().starts_with('[')) {
                    "Unigram"
                } else {
                    "WordLevel"
                };
                return Err(err(TokenizerError::UnsupportedModel(guess.into())));
            }
        }
        if let Some(d) = field("dropout") {
            let p: f64 = serde_json::from_str(d.get()).unwrap_or(1.0);
            if p != 0.0 {
                return Err(err(TokenizerError::Dropout(d.get().to_string())));
            }
        }
        for affix in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if field(affix).is_some_and(|v| v.get() != "\"\"") {
                return Err(err(TokenizerError::SubwordAffix(affix)));
            }
        }
        let vocab_raw = field("vocab").ok_or_else(|| malformed("no model \"vocab\"".into()))?;
        let merges_raw = field("merges").ok_or_else(|| malformed("no model \"merges\"".into()))?;
        if !vocab_raw.get().starts_with('{') || !merges_raw.get().starts_with('[') {
            return Err(malformed(
                "model \"vocab\" must be an object and \"merges\" a list".into(),
            ));
        }
        let entries: Vec<MergeEntry> = serde_json::from_str(merges_raw.get())
            .map_err(|e| malformed(format!("model \"merges\": {e}")))?;
        let format = match entries.first() {
            Some(MergeEntry::Str(_)) => MergeFormat::Strings,
            _ => MergeFormat::Pairs,
        };
        let mut merges = Vec::with_capacity(entries.len());
        for (i, e) in entries.into_iter().enumerate() {
            let pair = match (e, format) {
                (MergeEntry::Pair([a, b]), MergeFormat::Pairs) => (a, b),
                (MergeEntry::Str(s), MergeFormat::Strings) => match s.split_once(' ') {
                    Some((a, b)) if !b.contains(' ') => (a.to_string(), b.to_string()),
                    _ => return Err(malformed(format!("merge {i} {s:?} is not \"a b\""))),
                },
                _ => return Err(malformed("merges mix strings and pairs".into())),
            };
            merges.push(pair);
        }
        let tokenizer = measuring(
            Tokenizer::from_bytes(json.as_bytes()).map_err(|e| malformed(e.to_string()))?,
        )
        .map_err(|e| malformed(e.to_string()))?;
        let ModelWrapper::BPE(bpe) = tokenizer.get_model() else {
            return Err(err(TokenizerError::UnsupportedModel("not BPE".into())));
        };
        let vocab: HashMap<String, u32> = bpe.get_vocab();
        let max_model = vocab.values().copied().max();
        let max_added = tokenizer.get_added_tokens_decoder().keys().copied().max();
        let next_id = max_model.max(max_added).map_or(0, |m| m + 1);
        // The tokenizers library numbers an added token by the vocabulary (or after it),
        // whatever id the file gives it; other loaders take the file's id. A file where the two
        // differ means two things, so it is refused rather than read one way.
        #[derive(serde::Deserialize)]
        struct Declared {
            id: u32,
            content: String,
        }
        if let Some(raw) = top.get("added_tokens").filter(|v| v.get() != "null") {
            let declared: Vec<Declared> = serde_json::from_str(raw.get())
                .map_err(|e| malformed(format!("\"added_tokens\": {e}")))?;
            for d in declared {
                let given = tokenizer.token_to_id(&d.content);
                if given != Some(d.id) {
                    return Err(malformed(format!(
                        "added token {:?} has id {} in the file, but the tokenizer gives it id \
                         {} (the vocabulary, or the next id after it, decides); other loaders \
                         would use {}",
                        d.content,
                        d.id,
                        given.map_or("none".to_string(), |g| g.to_string()),
                        d.id
                    )));
                }
            }
        }
        // Tables are indexed by id, so ids must be nearly dense: a single id of 4e9 would
        // otherwise cost 16 bytes for every id below it.
        let mut ids: std::collections::HashSet<u32> = vocab.values().copied().collect();
        ids.extend(tokenizer.get_added_tokens_decoder().keys().copied());
        let dense_limit = (ids.len() as u64).saturating_mul(2) + MAX_ID_GAP;
        if u64::from(next_id) > dense_limit {
            let (token, id) = vocab
                .iter()
                .map(|(t, &i)| (t.clone(), i))
                .chain(
                    tokenizer
                        .get_added_tokens_decoder()
                        .iter()
                        .map(|(&i, t)| (t.content.clone(), i)),
                )
                .max_by_key(|&(_, i)| i)
                .unwrap_or_default();
            return Err(malformed(format!(
                "token {token:?} has id {id}, far past the {} ids in the file \
                 (ids must stay below {dense_limit}: twice the ids in use plus {MAX_ID_GAP})",
                ids.len()
            )));
        }

        let section = |k: &str| -> serde_json::Value {
            top.get(k)
                .and_then(|r| serde_json::from_str(r.get()).ok())
                .unwrap_or(serde_json::Value::Null)
        };
        let (normalizer, pre) = (section("normalizer"), section("pre_tokenizer"));
        let byte_level = |v: &serde_json::Value| is_type(v, "ByteLevel");
        let metaspace = |v: &serde_json::Value| {
            is_type(v, "Metaspace")
                || (is_type(v, "Replace") && v.get("content").and_then(|c| c.as_str()) == Some("▁"))
        };
        let kind = if contains_type(&pre, &byte_level) || contains_type(&normalizer, &byte_level) {
            ModelKind::ByteLevel
        } else if contains_type(&pre, &metaspace) || contains_type(&normalizer, &metaspace) {
            ModelKind::SentencePiece
        } else {
            ModelKind::Other
        };
        Ok(TokenizerFile {
            name: name.to_string(),
            json: json.into(),
            kind,
            format,
            merges,
            vocab,
            next_id,
            vocab_span: span_of(json, vocab_raw),
            merges_span: span_of(json, merges_raw),
            tokenizer,
        })
    }

    /// The name used in messages (the path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The loaded tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The BPE model.
    pub fn bpe(&self) -> &BPE {
        match self.tokenizer.get_model() {
            ModelWrapper::BPE(b) => b,
            // `from_json` only builds files whose model is BPE.
            _ => unreachable!("TokenizerFile holds a BPE model"),
        }
    }

    /// Byte-level, SentencePiece-style or other.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// How merges are written.
    pub fn merge_format(&self) -> MergeFormat {
        self.format
    }

    /// The merges, in rank order.
    pub fn merges(&self) -> &[(String, String)] {
        &self.merges
    }

    /// The model vocabulary (added tokens not included).
    pub fn vocab(&self) -> &HashMap<String, u32> {
        &self.vocab
    }

    /// `1 + ` the largest id in use, model vocabulary and added tokens together.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Whether unknown characters become `<0xXX>` byte tokens.
    pub fn byte_fallback(&self) -> bool {
        self.bpe().byte_fallback
    }

    /// Whether a pre-token found whole in the vocabulary is returned without merging.
    pub fn ignore_merges(&self) -> bool {
        self.bpe().ignore_merges
    }

    /// Added tokens that are not in the model vocabulary (Llama-3's and Qwen2's special tokens),
    /// by id. `tokenizers` numbers such tokens from the model vocabulary's size on load, so once
    /// the vocabulary grows they must be written into it with their ids, or they would be
    /// renumbered.
    pub fn added_outside_vocab(&self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = self
            .tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| !self.vocab.contains_key(&t.content))
            .map(|(id, t)| (t.content, id))
            .collect();
        out.sort_by_key(|(_, id)| *id);
        out
    }

    /// The file's text with `vocab` entries and `merges` appended at the end of the model's
    /// vocab and merges, written in the file's own layout; nothing else changes, except that
    /// [`Self::added_outside_vocab`] entries go into the vocab first when it grows.
    pub fn splice(&self, vocab: &[(String, u32)], merges: &[(String, String)]) -> Result<String> {
        let json = &*self.json;
        let mut entries = Vec::new();
        if !vocab.is_empty() {
            entries = self.added_outside_vocab();
        }
        entries.extend_from_slice(vocab);
        let vocab = &entries[..];
        let bad = |m: &str| Error::Tokenizer {
            path: self.name.clone(),
            error: TokenizerError::Malformed(m.to_string()),
        };
        let vocab_text = {
            let (start, end) = self.vocab_span;
            let layout = Layout::of(&json[start..end]).ok_or_else(|| bad("unreadable vocab"))?;
            let colon = layout
                .first
                .and_then(|first| {
                    let key_end = string_end(first, 0)?;
                    let rest = &first[key_end..];
                    let value_at = rest.find(|c: char| c.is_ascii_digit() || c == '-')?;
                    Some(rest[..value_at].to_string())
                })
                .unwrap_or_else(|| ":".into());
            let items: Vec<String> = vocab
                .iter()
                .map(|(tok, id)| format!("{}{colon}{id}", json_string(tok)))
                .collect();
            (layout.insert_at(start), layout.join(&items))
        };
        let merges_text = {
            let (start, end) = self.merges_span;
            let layout = Layout::of(&json[start..end]).ok_or_else(|| bad("unreadable merges"))?;
            let template = match self.format {
                MergeFormat::Pairs => layout.first.and_then(PairTemplate::of),
                MergeFormat::Strings => None,
            };
            let mut items = Vec::with_capacity(merges.len());
            for (a, b) in merges {
                items.push(match self.format {
                    MergeFormat::Strings => {
                        if a.contains(' ') || b.contains(' ') {
                            return Err(Error::Tokenizer {
                                path: self.name.clone(),
                                error: TokenizerError::Invalid(format!(
                                    "merge ({a:?}, {b:?}) has a space, which legacy \"a b\" merges cannot hold"
                                )),
                            });
                        }
                        json_string(&format!("{a} {b}"))
                    }
                    MergeFormat::Pairs => match &template {
                        Some(t) => t.render(a, b),
                        None => format!("[{},{}]", json_string(a), json_string(b)),
                    },
                });
            }
            (layout.insert_at(start), layout.join(&items))
        };
        let mut parts = [vocab_text, merges_text];
        parts.sort_by_key(|p| p.0);
        let mut out = String::with_capacity(json.len() + parts[0].1.len() + parts[1].1.len());
        let mut at = 0;
        for (pos, text) in parts {
            out.push_str(&json[at..pos]);
            out.push_str(&text);
            at = pos;
        }
        out.push_str(&json[at..]);
        Ok(out)
    }
}

/// The tokenizer with truncation and padding off: a saved `tokenizer.json` may set them
/// (`max_length: 512`), which would cut documents short when counting tokens. Only the loaded
/// object changes; the file's text is kept as it is.
pub(crate) fn measuring(mut t: Tokenizer) -> tokenizers::Result<Tokenizer> {
    t.with_truncation(None)?;
    t.with_padding(None);
    Ok(t)
}

/// `s` as a JSON string literal, escaped as serde_json (and so the `tokenizers` library) writes it.
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// End (exclusive) of the JSON string literal starting at byte `start` of `s`.
fn string_end(s: &str, start: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    if bytes.get(start) != Some(&b'"') {
        return None;
    }
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The white space around the items of a JSON object or array, as the file writes it.
struct Layout<'a> {
    /// White space before each item (after `{`/`[` or `,`).
    lead: &'a str,
    /// Length of the white space between the last item and the closing bracket.
    trail_len: usize,
    /// Length of the container text.
    len: usize,
    /// The first item's text (up to the next top-level `,` or the end), when there is one.
    first: Option<&'a str>,
}

impl<'a> Layout<'a> {
    fn of(container: &'a str) -> Option<Self> {
        let inner = container.get(1..container.len().checked_sub(1)?)?;
        let trimmed = inner.trim_start();
        let lead = &inner[..inner.len() - trimmed.len()];
        let trail_len = inner.len() - inner.trim_end().len();
        let first = if trimmed.trim().is_empty() {
            None
        } else {
            if container.starts_with('{') {
                // An object item is `"key": value`.
                let key_end = string_end(trimmed, 0)?;
                let after = &trimmed[key_end..];
                let colon = after.find(':')?;
                let value = after[colon + 1..].trim_start();
                let value_at = trimmed.len() - value.len();
                let mut vs = serde_json::Deserializer::from_str(value).into_iter::<&RawValue>();
                vs.next()?.ok()?;
                Some(&trimmed[..value_at + vs.byte_offset()])
            } else {
                let mut stream =
                    serde_json::Deserializer::from_str(trimmed).into_iter::<&RawValue>();
                stream.next()?.ok()?;
                Some(&trimmed[..stream.byte_offset()])
            }
        };
        Some(Layout {
            lead: if first.is_some() { lead } else { "" },
            trail_len,
            len: container.len(),
            first,
        })
    }

    /// Absolute position where new items go: after the last item, before the trailing space.
    fn insert_at(&self, container_start: usize) -> usize {
        container_start + self.len - 1 - self.trail_len
    }

    fn join(&self, items: &[String]) -> String {
        let mut out = String::new();
        for (i, item) in items.iter().enumerate() {
            if i > 0 || self.first.is_some() {
                out.push(',');
            }
            out.push_str(self.lead);
            out.push_str(item);
        }
        out
    }
}

/// The layout of one `["a", "b"]` merge (pretty-printed files put each part on its own line).
struct PairTemplate {
    open: String,
    mid: String,
    close: String,
}

impl PairTemplate {
    fn of(first: &str) -> Option<Self> {
        let a_start = first.find('"')?;
        let a_end = string_end(first, a_start)?;
        let b_start = a_end + first[a_end..].find('"')?;
        let b_end = string_end(first, b_start)?;
        Some(PairTemplate {
            open: first[..a_start].to_string(),
            mid: first[a_end..b_start].to_string(),
            close: first[b_end..].to_string(),
        })
    }

    fn render(&self, a: &str, b: &str) -> String {
        format!(
            "{}{}{}{}{}",
            self.open,
            json_string(a),
            self.mid,
            json_string(b),
            self.close
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRETTY: &str = r#"{
  "version": "1.0",
  "added_tokens": [],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
  "post_processor": null,
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {
    "type": "BPE",
    "dropout": null,
    "unk_token": null,
    "continuing_subword_prefix": null,
    "end_of_word_suffix": null,
    "fuse_unk": false,
    "byte_fallback": false,
    "ignore_merges": false,
    "vocab": {
      "a": 0,
      "b": 1,
      "ab": 2
    },
    "merges": [
      [
        "a",
        "b"
      ]
    ]
  }
}"#;

    #[test]
    fn an_id_far_past_the_others_is_refused_before_any_table_is_built() {
        let sparse = PRETTY.replace("\"ab\": 2", "\"ab\": 4000000000");
        let e = TokenizerFile::from_json("t.json", &sparse)
            .expect_err("refused")
            .to_string();
        assert!(
            e.contains("t.json") && e.contains("\"ab\" has id 4000000000"),
            "{e}"
        );
        // Gaps up to the limit are fine (some real tokenizers leave holes).
        let gap = PRETTY.replace("\"ab\": 2", &format!("\"ab\": {}", 6 + MAX_ID_GAP - 1));
        let f = TokenizerFile::from_json("t.json", &gap).expect("a gap is allowed");
        assert_eq!(u64::from(f.next_id()), 6 + MAX_ID_GAP);
    }

    #[test]
    fn splicing_keeps_the_layout() {
        let f = TokenizerFile::from_json("t.json", PRETTY).expect("load");
        assert_eq!(f.kind(), ModelKind::ByteLevel);
        assert_eq!(f.next_id(), 3);
        let out = f
            .splice(&[("abb".into(), 3)], &[("ab".into(), "b".into())])
            .expect("splice");
        let expected = PRETTY
            .replace("\"ab\": 2\n", "\"ab\": 2,\n      \"abb\": 3\n")
            .replace(
                "        \"b\"\n      ]\n    ]",
                "        \"b\"\n      ],\n      [\n        \"ab\",\n        \"b\"\n      ]\n    ]",
            );
        assert_eq!(out, expected);
        let again = TokenizerFile::from_json("t.json", &out).expect("reload");
        assert_eq!(again.merges().len(), 2);
        assert_eq!(again.vocab()["abb"], 3);
    }

    #[test]
    fn legacy_string_merges_stay_strings() {
        let compact = PRETTY
            .replace(['\n', ' '], "")
            .replace(r#"["a","b"]"#, r#""a b""#);
        let f = TokenizerFile::from_json("t.json", &compact).expect("load");
        assert_eq!(f.merge_format(), MergeFormat::Strings);
        let out = f
            .splice(&[("abb".into(), 3)], &[("ab".into(), "b".into())])
            .expect("splice");
        assert!(out.contains(r#""ab":2,"abb":3}"#), "{out}");
        assert!(out.contains(r#""merges":["a b","ab b"]"#), "{out}");
    }

    #[test]
    fn rejects_what_cannot_be_extended() {
        let slug = |json: &str| {
            TokenizerFile::from_json("t.json", json)
                .expect_err("must fail")
                .slug()
        };
        assert_eq!(slug("{not json"), "invalid_tokenizer");
        assert_eq!(
            slug(&PRETTY.replace("\"type\": \"BPE\"", "\"type\": \"WordPiece\"")),
            "unsupported_model"
        );
        assert_eq!(
            slug(&PRETTY.replace("\"type\": \"BPE\"", "\"type\": \"Unigram\"")),
            "unsupported_model"
        );
        assert_eq!(
            slug(&PRETTY.replace("\"dropout\": null", "\"dropout\": 0.1")),
            "bpe_dropout"
        );
        assert_eq!(
            slug(&PRETTY.replace(
                "\"continuing_subword_prefix\": null",
                "\"continuing_subword_prefix\": \"##\""
            )),
            "subword_affix"
        );
        assert_eq!(
            slug(&PRETTY.replace("\"ab\": 2", "\"xy\": 2")),
            "invalid_tokenizer"
        );
    }
}
