//! tamis-core: the algorithms of tamis, a data refinement toolkit for LLM pre-training corpora.
//!
//! This crate has no Python and no command-line code: the `tamis` binary (`tamis-cli`) and the
//! Python extension (`tamis-py`) are thin layers over it.
//!
//! - [`io`]: streaming readers (JSONL plain/`.gz`/`.zst`, Parquet) and atomic writers, with
//!   record-level error handling ([`io::OnError`]) and rejects files.
//! - [`text`]: text normalization ([`text::Normalize`]) and 128-bit content hashing.
//! - [`dedup`]: exact document deduplication and CCNet-style line deduplication.
//! - [`vocab`]: tokenizer vocabulary extension for a new language (continued BPE on a
//!   `tokenizer.json`) and the tokenizer report (fertility, invariance, reachability).
//! - [`tokenize`]: tokenization into training shards (Megatron, datatrove/nanotron, numpy),
//!   resumable, with a manifest.
//! - [`embed`]: embedding rows for the new tokens of an extended vocabulary (zip-tie and
//!   baselines) on safetensors checkpoints.
//! - [`options`]: one serde options type per capability, with defaults and checks, and errors
//!   that name options in the words of the surface they came from.
//! - [`refine`]: the end-to-end, resumable `tamis refine` job and its report.
//! - [`pipeline`]: the driver that runs a per-document stage over inputs in parallel while
//!   keeping output byte-identical for any thread count.
//!
//! ```
//! use tamis_core::text::{hash_text, Normalize};
//! let a = hash_text("Hello,  World 42!", Normalize::Simple);
//! let b = hash_text("hello world 00", Normalize::Simple);
//! assert_eq!(a, b);
//! ```
#![deny(clippy::print_stdout)]

pub mod dedup;
pub mod embed;
mod error;
pub mod fasttext;
pub mod index;
pub mod interrupt;
pub mod io;
pub mod mix;
pub mod options;
pub mod pipeline;
pub mod prox;
pub mod refine;
pub mod stats;
pub mod text;
pub mod tokenize;
pub mod vocab;

pub use error::{Error, Location, RecordError, Result, TokenizerError};
pub use stats::Stats;
