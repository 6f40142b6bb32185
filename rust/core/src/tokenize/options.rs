//! Options of `tamis tokenize` ([`TokenizeOptions`]), with their defaults and checks.

use serde::{Deserialize, Serialize};

use crate::options::{check_range, OptionError, Options};

/// Largest `max_shard_tokens` accepted: 1e12 tokens (4 TB of 32-bit ids), far beyond any
/// useful shard, small enough that a typo is refused.
pub const MAX_SHARD_TOKENS: u64 = 1_000_000_000_000;

/// The on-disk layout of the shards (described in docs/tokenize.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Megatron-LM / NeMo indexed dataset: `NAME.bin` + `NAME.idx` (`MMIDIDX`, version 1).
    #[default]
    Megatron,
    /// datatrove / nanotron tokenized files: `NAME.ds`, `NAME.ds.index`, `NAME.ds.metadata`.
    Nanotron,
    /// Flat numpy arrays: `NAME.npy` (the tokens) + `NAME.index.npy` (document ends).
    Numpy,
}

impl Format {
    /// Every name, as options spell them.
    pub const NAMES: &'static [&'static str] = &["megatron", "nanotron", "numpy"];

    /// The name, as options spell it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Megatron => "megatron",
            Format::Nanotron => "nanotron",
            Format::Numpy => "numpy",
        }
    }
}

/// Width of a stored token id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// uint16 when every id of the tokenizer is below 65,536, else 32 bits.
    #[default]
    Auto,
    /// 16 bits (refused for a tokenizer with ids of 65,536 or more).
    Uint16,
    /// 32 bits (Megatron stores them as int32, the widest integer code its readers map ids to).
    Uint32,
}

impl Dtype {
    /// Every name, as options spell them.
    pub const NAMES: &'static [&'static str] = &["auto", "uint16", "uint32"];

    /// The width for a tokenizer whose largest id is `max_id` (never `Auto`); an error names
    /// the option when uint16 cannot hold the ids.
    pub fn resolve(self, max_id: u32) -> Result<Dtype, OptionError> {
        match self {
            Dtype::Auto if max_id <= u32::from(u16::MAX) => Ok(Dtype::Uint16),
            Dtype::Auto => Ok(Dtype::Uint32),
            Dtype::Uint16 if max_id > u32::from(u16::MAX) => Err(OptionError::new(
                "dtype",
                format!(
                    "uint16 cannot hold this tokenizer's ids: its largest id is {max_id}, and \
                     uint16 holds ids up to 65535 (use uint32 or auto)"
                ),
            )),
            d => Ok(d),
        }
    }

    /// Bytes per token (2 or 4; 4 for `Auto`, which is resolved before use).
    pub fn size(self) -> usize {
        match self {
            Dtype::Uint16 => 2,
            Dtype::Auto | Dtype::Uint32 => 4,
        }
    }

    /// The name, as options spell it.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Auto => "auto",
            Dtype::Uint16 => "uint16",
            Dtype::Uint32 => "uint32",
        }
    }
}

/// Options of tokenization into training shards (`tamis tokenize`, `tamis.tokenize`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizeOptions {
    /// Shard layout: `megatron`, `nanotron` (datatrove) or `numpy`.
    pub format: Format,
    /// Put a BOS before each document: `null` (default) does what the tokenizer's
    /// post-processor does (`<s> $A` adds `<s>`; GPT-2 adds nothing).
    pub bos: Option<bool>,
    /// Put an EOS after each document: `null` (default) uses the post-processor's suffix, or
    /// else the tokenizer's end-of-text token (`</s>`, `<|endoftext|>`, `<|end_of_text|>`,
    /// `<eos>`) when it has one.
    pub eos: Option<bool>,
    /// The BOS token (text, e.g. `<s>`), replacing the post-processor's and the detected one.
    pub bos_token: Option<String>,
    /// The EOS token (text, e.g. `<|endoftext|>`), replacing the post-processor's and the
    /// detected one.
    pub eos_token: Option<String>,
    /// Shuffle the documents inside each shard (with `seed`); shards still follow input order.
    pub shuffle: bool,
    /// Seed of the shuffle.
    pub seed: u64,
    /// Start a new shard before a document that would take a shard past this many tokens (a
    /// longer document gets a shard of its own).
    pub max_shard_tokens: u64,
    /// Width of a stored id: `auto`, `uint16` or `uint32`.
    pub dtype: Dtype,
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        TokenizeOptions {
            format: Format::Megatron,
            bos: None,
            eos: None,
            bos_token: None,
            eos_token: None,
            shuffle: false,
            seed: 0,
            max_shard_tokens: 1_000_000_000,
            dtype: Dtype::Auto,
        }
    }
}

impl Options for TokenizeOptions {
    fn validate(&self) -> Result<(), OptionError> {
        check_range(
            "max_shard_tokens",
            self.max_shard_tokens,
            Some(1),
            Some(MAX_SHARD_TOKENS),
        )?;
        for (flag, token, name) in [
            ("bos", self.bos, &self.bos_token),
            ("eos", self.eos, &self.eos_token),
        ] {
            let field = format!("{flag}_token");
            match name.as_deref() {
                Some("") => return Err(OptionError::new(&field, "must name a token")),
                Some(_) if token == Some(false) => {
                    return Err(OptionError::with_fields(
                        &[&field, flag],
                        format!(
                            "{{0}} names a token but {{1}} is false (no {} token)",
                            flag.to_uppercase()
                        ),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Surface;

    #[test]
    fn defaults_and_checks() {
        let o = TokenizeOptions::from_json("{}").expect("defaults");
        assert_eq!(o, TokenizeOptions::default());
        let e = |j: &str| {
            TokenizeOptions::from_json(j)
                .unwrap_err()
                .render(&Surface::Cli)
        };
        assert_eq!(
            e(r#"{"max_shard_tokens": 0}"#),
            "--max-shard-tokens must be from 1 to 1000000000000, got 0"
        );
        assert_eq!(
            e(r#"{"format": "arrow"}"#),
            "--format must be one of megatron, nanotron, numpy, got 'arrow'"
        );
        assert_eq!(
            e(r#"{"dtype": "int8"}"#),
            "--dtype must be one of auto, uint16, uint32, got 'int8'"
        );
        assert_eq!(
            e(r#"{"eos": false, "eos_token": "</s>"}"#),
            "--eos-token names a token but --eos is false (no EOS token)"
        );
        assert_eq!(e(r#"{"bos_token": ""}"#), "--bos-token must name a token");
        assert_eq!(
            e(r#"{"seed": -1}"#),
            "--seed must be an integer >= 0, got -1"
        );
    }

    #[test]
    fn dtype_resolution() {
        assert_eq!(Dtype::Auto.resolve(50_256), Ok(Dtype::Uint16));
        assert_eq!(Dtype::Auto.resolve(65_535), Ok(Dtype::Uint16));
        assert_eq!(Dtype::Auto.resolve(65_536), Ok(Dtype::Uint32));
        assert_eq!(Dtype::Uint32.resolve(10), Ok(Dtype::Uint32));
        let e = Dtype::Uint16.resolve(128_255).unwrap_err();
        assert_eq!(e.fields, vec!["dtype".to_string()]);
        assert!(e
            .render(&Surface::Cli)
            .starts_with("--dtype uint16 cannot hold"));
    }
}
