//! Tokenization into training shards (`tamis tokenize`).
//!
//! - [`options`](TokenizeOptions): the format (`megatron`, `nanotron`, `numpy`), the BOS/EOS
//!   policy, shuffling, shard size and id width, with their defaults and checks.
//! - [`Encoder`]: a `tokenizer.json` loaded with the `tokenizers` library, giving exactly its
//!   `encode` ids, with BOS/EOS taken from its post-processor and special tokens by default.
//! - [`ShardFormatWriter`]: one shard in one layout (Megatron `.bin`/`.idx`, datatrove
//!   `.ds`/`.ds.index`/`.ds.metadata`, numpy `.npy`).
//! - [`ShardedWriter`]: documents' ids in, numbered shards with markers out (cut on document
//!   boundaries, shuffled on request, resumable per shard); reusable by any producer of ids.
//! - [`tokenize`]: the run over JSONL/Parquet inputs, parallel, ordered, with a manifest.
//! - [`TextShardWriter`]: the same shards from texts handed over in batches (a datatrove task),
//!   named by a prefix so that writers share a directory, each with its own manifest.
//!
//! The formats, the policy, the manifest and resuming are described in docs/tokenize.md.
//!
//! ```no_run
//! use tamis_core::io::IoOptions;
//! use tamis_core::pipeline::NoProgress;
//! use tamis_core::tokenize::{tokenize, TokenizeOptions};
//! let m = tokenize(&["data/".to_string()], "shards".as_ref(), "tokenizer.json".as_ref(),
//!                  &IoOptions::default(), &TokenizeOptions::default(), &NoProgress)?;
//! println!("{} tokens in {} shards", m.tokens, m.shards.len());
//! # Ok::<(), tamis_core::Error>(())
//! ```

mod encoder;
mod formats;
mod options;
mod run;
mod shards;
mod task;

pub use encoder::{
    load_tokenizer, Encoder, Special, SpecialSource, BOS_CANDIDATES, EOS_CANDIDATES,
};
pub use formats::{
    humanized_tokens, ShardFiles, ShardFormatWriter, MEGATRON_CODE_I32, MEGATRON_CODE_U16,
    MEGATRON_MAGIC,
};
pub use options::{Dtype, Format, TokenizeOptions, MAX_SHARD_TOKENS};
pub use run::{
    shard_plan, tokenize, InputCount, Manifest, TokenizerInfo, MANIFEST, SHARD_PREFIX, STATE_DIR,
};
pub use shards::{
    finished_shards, permutation, Position, ShardFile, ShardPlan, ShardRecord, ShardedWriter,
    SourceCount,
};
pub use task::{task_manifest_name, TextShardWriter};
