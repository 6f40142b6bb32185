//! Deduplication.
//!
//! - [`ExactDedup`]: keeps the first occurrence, in input order, of each document whose
//!   normalized text (or key field) has the same 128-bit hash. State: one 16-byte hash per
//!   distinct document in a hash set, about 30 bytes per distinct document with the table's
//!   overhead (1 GB per ~35 million distinct documents).
//! - [`LineDedup`]: CCNet-style: removes every occurrence of a line beyond the first
//!   `max_occurrences` across the corpus. State: about 40 bytes per distinct line.
//! - [`near`]: near-duplicate documents with MinHash-LSH, in one process or as four stages.
//! - [`substring`]: repeated spans of at least `min_length` bytes, found with suffix arrays.
//! - [`signatures`]: exact and line dedup in two stages over many tasks (the datatrove steps).

mod exact;
mod keep;
mod lines;
pub mod near;
pub mod signatures;
pub mod substring;

pub use exact::{
    exact_dedup, exact_keep_mask, exact_keep_mask_options, exact_keep_mask_with, hash_many,
    open_against, ExactDedup, ExactOptions, DUP_OF_FIELD,
};
pub use keep::Keep;
pub use lines::{line_hashes, line_hashes_many, lines_dedup, LineDedup, LinesOptions};

use std::hash::{BuildHasherDefault, Hasher};

/// The keys are already uniform 128-bit hashes: hashing them again would only cost time.
#[derive(Default, Clone, Copy)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
}

pub(crate) type HashSet128 = std::collections::HashSet<u128, BuildHasherDefault<PassThrough>>;
pub(crate) type HashMap128<V> = std::collections::HashMap<u128, V, BuildHasherDefault<PassThrough>>;
