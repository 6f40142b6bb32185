//! Text normalization and content hashing shared by every dedup stage.

mod hash;
mod normalize;

pub use hash::{hash_bytes, hash_text, Hash128};
pub use normalize::{normalize, Normalize};
