//! Embedding rows for the new tokens of an extended vocabulary: zip-tie (Bailong) and the
//! baselines it is compared with, on Hugging Face safetensors checkpoints.
//!
//! For a new token `t`, `D(t)` is the list of ids the **old** tokenizer's BPE model gives for
//! `t`'s vocab string, run on the model directly (the string is already in the model's
//! alphabet, so no normalizer `▁` and no BOS get in), unknown ids dropped. Zip-tie sets the
//! input row to the mean of the old input rows of `D(t)`, summed in f32 in the order of `D(t)`
//! and stored in the checkpoint's dtype; the output (lm_head) row of an untied model is the same
//! mean over lm_head rows (`mean`), the first piece's row (`first`) or a copy of the new input
//! row (`tie`). An empty `D(t)` gives the mean of all old rows. Old rows stay bit-identical.
//! See docs/embed.md.
//!
//! ```no_run
//! use tamis_core::embed::{init_checkpoint, CheckpointConfig};
//! use tamis_core::vocab::TokenizerFile;
//! let old = TokenizerFile::open("llama/tokenizer.json".as_ref())?;
//! let new = TokenizerFile::open("tokenizer-zh.json".as_ref())?;
//! let s = init_checkpoint("llama".as_ref(), &old, &new, "llama-zh".as_ref(), &CheckpointConfig::default())?;
//! println!("{} new rows", s.new_tokens);
//! # Ok::<(), tamis_core::Error>(())
//! ```

mod checkpoint;
mod init;
#[cfg(test)]
mod tests;

pub use checkpoint::{
    init_checkpoint, init_checkpoint_with, CheckpointConfig, CheckpointSummary, EMBED_NAMES,
    LM_HEAD_NAMES,
};
pub use init::{
    Dtype, InitConfig, Initializer, Matrix, Method, NewToken, OutputInit, Plan, Which, MAX_PAD,
    MEAN_RESIZING_SCALE, RANDOM_STD,
};

/// What is wrong with a checkpoint or a tokenizer pair (`tamis embed`). Each kind has a slug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The new tokenizer changes or drops an old id.
    #[error("not an extension of the old tokenizer: {0}")]
    NotAnExtension(String),
    /// The embedding matrix has fewer rows than the old tokenizer has ids.
    #[error("the embedding has {rows} rows but the old tokenizer has {vocab} ids: wrong tokenizer or model")]
    TooFewRows {
        /// Rows of the matrix.
        rows: usize,
        /// Ids of the old tokenizer.
        vocab: usize,
    },
    /// A tensor name that the checkpoint does not hold.
    #[error("no tensor {0}")]
    UnknownTensor(String),
    /// A tensor that exists but cannot play the role it was given.
    #[error("{0}")]
    WrongTensor(String),
    /// A file the model directory must have.
    #[error("missing {0}")]
    MissingFile(String),
    /// Pickle weights (`.bin`, `.pt`): loading them can run code.
    #[error(
        "pickle checkpoint: tamis reads safetensors only, because loading a pickle can run code; \
         convert it with transformers (`model.save_pretrained(dir, safe_serialization=True)`) in an environment you trust"
    )]
    Pickle,
    /// A config, index or safetensors file that cannot be used.
    #[error("{0}")]
    Malformed(String),
}

impl EmbedError {
    /// Stable snake_case name of this kind of error.
    pub fn slug(&self) -> &'static str {
        match self {
            EmbedError::NotAnExtension(_) => "not_an_extension",
            EmbedError::TooFewRows { .. } => "too_few_rows",
            EmbedError::UnknownTensor(_) => "unknown_tensor",
            EmbedError::WrongTensor(_) => "wrong_tensor",
            EmbedError::MissingFile(_) => "missing_file",
            EmbedError::Pickle => "pickle_checkpoint",
            EmbedError::Malformed(_) => "invalid_checkpoint",
        }
    }

    /// Every slug, for documentation and coverage tests.
    pub const SLUGS: &'static [&'static str] = &[
        "not_an_extension",
        "too_few_rows",
        "unknown_tensor",
        "missing_file",
        "pickle_checkpoint",
        "invalid_checkpoint",
    ];
}
