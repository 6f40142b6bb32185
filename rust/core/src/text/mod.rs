//! Text normalization and content hashing shared by every dedup stage.

mod hash;
mod normalize;

pub use hash::{hash_bytes, hash_text, Hash128};
#[cfg(test)]
pub(crate) use normalize::random_texts;
pub(crate) use normalize::{is_ascii_symbol, is_punctuation, simple_for_each};
pub use normalize::{normalize, Normalize};
