//! The tokenizer as `tamis tokenize` uses it: loaded from its `tokenizer.json`, with the BOS/EOS
//! policy resolved once ([`Encoder::new`]), and documents encoded to exactly the ids of the
//! `tokenizers` library's `encode`.
//!
//! A document's ids are `bos + encode(text, add_special_tokens=false) + eos`. The defaults take
//! `bos` and `eos` from the post-processor: it is run once on a probe text, and the ids it puts
//! before and after the text's own ids are the prefix and suffix it adds to every single
//! sequence. So with the defaults a document is `encode(text).ids` (specials added) plus an
//! end-of-text token when the post-processor adds none.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokenizers::Tokenizer;

use super::options::TokenizeOptions;
use crate::options::OptionError;
use crate::prox::count::IdEncoder;
use crate::{Error, Result, TokenizerError};

/// End-of-text tokens looked for, in this order, when the post-processor adds no suffix:
/// Llama-2/Mistral, GPT-2/Qwen, Llama-3, Gemma.
pub const EOS_CANDIDATES: &[&str] = &["</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>"];
/// Beginning-of-text tokens looked for with `bos = true` when the post-processor adds none.
pub const BOS_CANDIDATES: &[&str] = &["<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"];

/// Text whose ids tell the post-processor's prefix and suffix apart from the text's own.
const PROBE: &str = "tamis probe: Hello, world!";

/// Where a BOS or EOS came from (recorded in the manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecialSource {
    /// The tokenizer's post-processor adds it.
    PostProcessor,
    /// A well-known token of the tokenizer ([`EOS_CANDIDATES`], [`BOS_CANDIDATES`]).
    Detected,
    /// Named by `bos_token` / `eos_token`.
    Option,
    /// None is added.
    None,
}

/// The ids put before or after each document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Special {
    /// The ids (empty: nothing added).
    pub ids: Vec<u32>,
    /// Their tokens, as the vocabulary spells them.
    pub tokens: Vec<String>,
    /// Where they came from.
    pub source: SpecialSource,
}

/// A loaded tokenizer with its BOS/EOS policy resolved.
pub struct Encoder {
    /// The tokenizer with tamis' cached fast path (`prox::count`): the library's ids, faster.
    ids: IdEncoder,
    /// Ids before each document.
    pub bos: Special,
    /// Ids after each document.
    pub eos: Special,
    /// Largest id in the vocabulary (added tokens included).
    pub max_id: u32,
    /// Number of ids in the vocabulary (added tokens included).
    pub vocab_size: usize,
    /// XXH3-128 of the file's bytes, hex.
    pub xxh3: String,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("max_id", &self.max_id)
            .finish_non_exhaustive()
    }
}

/// Read a `tokenizer.json`: a missing file is an I/O error naming it, anything the `tokenizers`
/// library cannot load a tokenizer error naming it.
pub fn load_tokenizer(path: &Path) -> Result<(Tokenizer, Vec<u8>)> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(&name, e))?;
    let malformed = |m: String| Error::Tokenizer {
        path: name.clone(),
        error: TokenizerError::Malformed(m),
    };
    let mut t = Tokenizer::from_bytes(&bytes).map_err(|e| malformed(e.to_string()))?;
    // Truncation or padding saved in the file would cut or pad documents: shards hold whole
    // documents, so both are off (as `encode` without them gives).
    t.with_truncation(None)
        .map_err(|e| malformed(e.to_string()))?;
    t.with_padding(None);
    Ok((t, bytes))
}

impl Encoder {
    /// Load `path` and resolve the BOS/EOS policy of `options`.
    pub fn open(path: &Path, options: &TokenizeOptions) -> Result<Self> {
        let (tokenizer, bytes) = load_tokenizer(path)?;
        let xxh3 = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes));
        Self::new(tokenizer, &path.display().to_string(), xxh3, options)
    }

    /// Resolve the BOS/EOS policy of `options` for `tokenizer` (`name` is used in messages).
    pub fn new(
        tokenizer: Tokenizer,
        name: &str,
        xxh3: String,
        options: &TokenizeOptions,
    ) -> Result<Self> {
        let vocab = tokenizer.get_vocab(true);
        let max_id = vocab.values().copied().max().unwrap_or(0);
        let vocab_size = vocab.len();
        let encode = |special: bool| {
            tokenizer
                .encode_fast(PROBE, special)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| Error::Tokenizer {
                    path: name.to_string(),
                    error: TokenizerError::Malformed(format!("cannot encode text: {e}")),
                })
        };
        let plain = encode(false)?;
        let with = encode(true)?;
        let at = (0..=with.len().saturating_sub(plain.len()))
            .find(|&i| with[i..].starts_with(&plain))
            .ok_or_else(|| {
                Error::Tokenizer {
                path: name.to_string(),
                error: TokenizerError::Malformed(
                    "the post-processor changes the text's own ids, so its BOS/EOS cannot be \
                     told apart; set --bos/--no-bos and --eos/--no-eos with --bos-token/--eos-token"
                        .into(),
                ),
            }
            });
        let tokens = |ids: &[u32]| -> Vec<String> {
            ids.iter()
                .map(|&i| tokenizer.id_to_token(i).unwrap_or_default())
                .collect()
        };
        let special = |ids: Vec<u32>, source| Special {
            tokens: tokens(&ids),
            ids,
            source,
        };
        let named = |field: &str, token: &str| -> Result<Special> {
            let id = tokenizer.token_to_id(token).ok_or_else(|| {
                Error::Options(OptionError::new(
                    field,
                    format!("names {token:?}, which is not a token of {name}"),
                ))
            })?;
            Ok(special(vec![id], SpecialSource::Option))
        };
        let detect = |candidates: &[&str]| -> Option<Special> {
            candidates.iter().find_map(|c| {
                tokenizer
                    .token_to_id(c)
                    .map(|id| special(vec![id], SpecialSource::Detected))
            })
        };
        let none = || special(Vec::new(), SpecialSource::None);
        let missing = |field: &str, what: &str, token_field: &str| {
            Error::Options(OptionError::with_fields(
                &[field, token_field],
                format!(
                    "{{0}} is true but {name} adds no {what} and has none of the usual {what} \
                     tokens; name one with {{1}}"
                ),
            ))
        };
        // The probe fails only for post-processors that rewrite the text's ids; explicit
        // choices for both ends do not need it.
        let (prefix, suffix) = match &at {
            Ok(i) => (with[..*i].to_vec(), with[i + plain.len()..].to_vec()),
            Err(_) => (Vec::new(), Vec::new()),
        };
        let needs_probe =
            |flag: Option<bool>, token: &Option<String>| token.is_none() && flag != Some(false);
        if needs_probe(options.bos, &options.bos_token)
            || needs_probe(options.eos, &options.eos_token)
        {
            at?;
        }
        let bos = match (&options.bos_token, options.bos) {
            (Some(t), _) => named("bos_token", t)?,
            (None, Some(false)) => none(),
            (None, _) if !prefix.is_empty() => special(prefix, SpecialSource::PostProcessor),
            (None, None) => none(),
            (None, Some(true)) => {
                detect(BOS_CANDIDATES).ok_or_else(|| missing("bos", "BOS", "bos_token"))?
            }
        };
        let eos = match (&options.eos_token, options.eos) {
            (Some(t), _) => named("eos_token", t)?,
            (None, Some(false)) => none(),
            (None, _) if !suffix.is_empty() => special(suffix, SpecialSource::PostProcessor),
            (None, None) => detect(EOS_CANDIDATES).unwrap_or_else(none),
            (None, Some(true)) => {
                detect(EOS_CANDIDATES).ok_or_else(|| missing("eos", "EOS", "eos_token"))?
            }
        };
        Ok(Encoder {
            ids: IdEncoder::new(Arc::new(tokenizer)),
            bos,
            eos,
            max_id,
            vocab_size,
            xxh3,
        })
    }

    /// The ids of one document: BOS, the text's ids, EOS.
    pub fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, String> {
        let mut content = Vec::new();
        self.ids
            .encode(text, false, &mut content)
            .map_err(|e| e.to_string())?;
        let mut ids = Vec::with_capacity(self.bos.ids.len() + content.len() + self.eos.ids.len());
        ids.extend_from_slice(&self.bos.ids);
        ids.extend_from_slice(&content);
        ids.extend_from_slice(&self.eos.ids);
        Ok(ids)
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        self.ids.tokenizer()
    }
}
