//! 128-bit content hashes (XXH3-128, seed 0) of normalized text.

use xxhash_rust::xxh3::xxh3_128;

use super::{normalize, Normalize};

/// A 128-bit content hash. At 10^10 documents the chance of any collision is about 1.5e-19.
pub type Hash128 = u128;

/// XXH3-128 of raw bytes.
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> Hash128 {
    xxh3_128(bytes)
}

/// XXH3-128 of `text` after normalization with `mode`.
#[inline]
pub fn hash_text(text: &str, mode: Normalize) -> Hash128 {
    hash_bytes(normalize(text, mode).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_value_is_stable() {
        // Pinned so that hashes written by one release can be compared with the next.
        assert_eq!(
            hash_text("", Normalize::None),
            0x99aa06d3014798d86001c324468d497f
        );
    }

    #[test]
    fn whitespace_mode_equates_spacing() {
        assert_eq!(
            hash_text("a  b\n", Normalize::Whitespace),
            hash_text("a b", Normalize::Whitespace)
        );
        assert_ne!(
            hash_text("a  b", Normalize::None),
            hash_text("a b", Normalize::None)
        );
    }
}
