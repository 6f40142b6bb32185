//! Exact and line dedup in two stages over many tasks (the datatrove steps): stage 1 hashes the
//! documents of each task and writes one *signature file* per task; stage 2 loads the files of
//! every task into a keep table and decides, for any document of the corpus, exactly what
//! `tamis dedup exact` / `tamis dedup lines` decide on the same files, whatever the number of
//! tasks of either stage.
//!
//! **Order.** "First" is in the order of the command line: source files sorted by
//! [`std::path::Path`] (component by component, so `part/x.jsonl` < `part.jsonl`, unlike a
//! string sort), then documents in file order, then lines. Tasks read interleaved shards of
//! the files (datatrove deals them round-robin), so each file's records carry their source
//! path and their place in it, and stage 2 ranks all of them globally. Both stages are handed,
//! per document, its source path; the documents of one path must arrive together, and stage 2
//! must see the same documents as stage 1 in the same order: every document (every eligible
//! line) is hashed again and checked against its stage-1 record, so a different reader,
//! upstream step or normalization is an error, never a wrong decision.
//!
//! **Exact files** (`{rank:05}.sig`, [`ExactSignatureWriter`], [`ExactKeepTable`]),
//! little-endian: `b"TAMISSIG"`, `u32` format version (2; version 1 is read too), `u32` header
//! length, a UTF-8 JSON header ([`ExactHeader`]: `rank`, `world_size`, `normalize`,
//! `hash: "xxh3-128"`, `files` (source paths in arrival order), `counts` (documents per file),
//! `records`, and, from version 2, `score`), then one record per document in arrival order:
//! the 16-byte XXH3-128 hash of the normalized text (big-endian, as `tamis.text.hash` returns
//! it), `u32` index into `files`, `u64` index of the document in that file, and, when `score` is
//! true, an `f64` score. A cluster of equal hashes keeps its smallest score, ties (and files
//! without scores, all `+inf`) going to the first in the global order.
//!
//! **Line files** (`{rank:05}.lsig`, [`LineSignatureWriter`], [`LineKeepTable`]),
//! little-endian: `b"TAMISLIN"`, `u32` format version (1), `u32` header length, a UTF-8 JSON
//! header ([`LineHeader`]: `rank`, `world_size`, `normalize`, `min_line_chars`, `hash`,
//! `files`, `documents` and `lines` (documents and eligible lines per file), `records`), then
//! one 16-byte record (the big-endian hash) per eligible line ([`crate::dedup::line_hashes`] decides
//! eligibility), file after file, in document and line order: a record's place is its order
//! key.
//!
//! **Memory.** Writers hold 16 bytes per document (per eligible line; 24 with scores). A keep
//! table holds 9 bytes per document (per eligible line) of the whole corpus: the decision and
//! the low 64 bits of the hash for the check. Loading peaks at 24 more bytes per record (a
//! sorted copy of the hashes with their positions; 32 with scores), besides the files, which
//! are borrowed.
//!
//! ```
//! use tamis_core::dedup::signatures::{ExactKeepTable, ExactSignatureWriter};
//! use tamis_core::dedup::ExactOptions;
//!
//! let mut task0 = ExactSignatureWriter::new(&ExactOptions::default(), 1)?;
//! task0.add(&["d/b.jsonl", "d/b.jsonl"], &["x", "y"], None)?;
//! let mut task1 = ExactSignatureWriter::new(&ExactOptions::default(), 1)?;
//! task1.add(&["d/a.jsonl"], &["y"], None)?;
//! let files = vec![
//!     ("00000.sig".to_string(), task0.to_bytes(0, 2)?),
//!     ("00001.sig".to_string(), task1.to_bytes(1, 2)?),
//! ];
//! let mut table = ExactKeepTable::load(&files, None, 1)?;
//! // d/a.jsonl comes first, so its "y" is kept and the one of d/b.jsonl is not.
//! assert_eq!(table.keep(&["d/b.jsonl", "d/b.jsonl"], &["x", "y"])?, [true, false]);
//! assert_eq!(table.keep(&["d/a.jsonl"], &["y"])?, [true]);
//! # Ok::<(), tamis_core::Error>(())
//! ```

mod exact;
mod format;
mod lines;

pub use exact::{ExactKeepTable, ExactSignatureWriter};
pub use format::{
    file_name, read_exact_header, read_line_header, ExactHeader, LineHeader, EXACT_MAGIC,
    EXACT_SUFFIX, EXACT_VERSION, LINE_MAGIC, LINE_SUFFIX, LINE_VERSION,
};
pub use lines::{LineCounts, LineEdits, LineKeepTable, LineSignatureWriter};
