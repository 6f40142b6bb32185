//! Texts in, token shards out, for producers that hold documents rather than files: a datatrove
//! task (`tamis.datatrove.TokenizeShards`), or any program that streams texts.
//!
//! A [`TextShardWriter`] encodes batches of texts with the [`Encoder`] (in parallel, written in
//! the order given) and hands their ids to a [`ShardedWriter`], so its shards are the bytes
//! [`super::tokenize`] writes for the same documents with the same options. Its shards are
//! named `{prefix}_00000`, `{prefix}_00001`, …, so writers with distinct prefixes share an
//! output directory; each writes its manifest to `{prefix}.manifest.json` there.
//!
//! Resuming: the writer records its options and tokenizer in
//! `OUTDIR/.tamis-tokenize/{prefix}.run.json` (a writer with other ones is refused) and keeps the
//! finished shards of an earlier writer of the same prefix: given the same documents again, it
//! skips those the finished shards hold without encoding them, and writes the rest as an
//! uninterrupted writer would.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::encoder::Encoder;
use super::options::{Dtype, TokenizeOptions};
use super::run::{build_manifest, shard_plan, InputCount, Manifest, RunRecord, STATE_DIR};
use super::shards::{finished_shards, Position, ShardRecord, ShardedWriter};
use crate::options::{OptionError, Options};
use crate::pipeline::thread_pool;
use crate::{Error, Result, TokenizerError};

/// The manifest of the writer with prefix `prefix`: `{prefix}.manifest.json`.
pub fn task_manifest_name(prefix: &str) -> String {
    format!("{prefix}.manifest.json")
}

/// A prefix is a plain file name: ASCII letters, digits, `_`, `-`, `.`, not starting with `.`.
fn check_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && !prefix.starts_with('.')
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        return Ok(());
    }
    Err(Error::Options(OptionError::new(
        "prefix",
        format!(
            "must be a plain file name (ASCII letters, digits, '_', '-', '.', not starting \
             with '.'), got {prefix:?}"
        ),
    )))
}

/// Encodes texts into numbered shards in one output directory (see the module documentation).
pub struct TextShardWriter {
    encoder: Encoder,
    dtype: Dtype,
    options: TokenizeOptions,
    tokenizer: PathBuf,
    output: PathBuf,
    prefix: String,
    pool: Arc<rayon::ThreadPool>,
    writer: ShardedWriter,
    /// Finished shards of an earlier writer, kept.
    done: Vec<ShardRecord>,
    /// Documents those shards hold (and the empty ones read with them): skipped, not encoded.
    skip: u64,
    /// Documents received so far.
    received: u64,
    /// UTF-8 bytes of the texts received.
    bytes: u64,
}

impl std::fmt::Debug for TextShardWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextShardWriter")
            .field("output", &self.output)
            .field("prefix", &self.prefix)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl TextShardWriter {
    /// A writer of shards `{prefix}_NNNNN` in `output` (created when missing), encoding with
    /// the `tokenizer.json` at `tokenizer`; `threads`: encoding threads (0: one per core).
    /// Checks everything before writing anything but the run record.
    pub fn new(
        output: &Path,
        tokenizer: &Path,
        options: &TokenizeOptions,
        prefix: &str,
        threads: usize,
    ) -> Result<Self> {
        options.validate()?;
        check_prefix(prefix)?;
        let pool = thread_pool(threads)?;
        let encoder = Encoder::open(tokenizer, options)?;
        let plan = shard_plan(output, prefix, &encoder, options, tokenizer)?;
        let record = RunRecord {
            format: 1,
            options: options.to_value(),
            text_key: "text".into(),
            on_error: "fail".into(),
            tokenizer_xxh3: encoder.xxh3.clone(),
            inputs: Vec::new(),
        };
        let run_file = output.join(STATE_DIR).join(format!("{prefix}.run.json"));
        record.check_or_write(&run_file, output)?;
        let done = finished_shards(&plan)?;
        let skip = done.last().map_or(0, |s| s.next.record);
        let dtype = plan.dtype;
        let writer = ShardedWriter::new(plan, done.len())?;
        Ok(TextShardWriter {
            encoder,
            dtype,
            options: options.clone(),
            tokenizer: tokenizer.to_path_buf(),
            output: output.to_path_buf(),
            prefix: prefix.to_string(),
            pool,
            writer,
            done,
            skip,
            received: 0,
            bytes: 0,
        })
    }

    /// Encode `texts` (in parallel) and write their ids, in this order. An empty document
    /// without BOS/EOS is counted, not written.
    pub fn add<S: AsRef<str> + Sync>(&mut self, texts: &[S]) -> Result<()> {
        let first = self.received;
        let skip = self.skip.saturating_sub(first).min(texts.len() as u64) as usize;
        let encoder = &self.encoder;
        let ids: Vec<std::result::Result<Vec<u32>, String>> = self.pool.install(|| {
            texts[skip..]
                .par_iter()
                .with_min_len(16)
                .map(|t| encoder.encode(t.as_ref()))
                .collect()
        });
        for (i, ids) in ids.into_iter().enumerate() {
            let record = first + (skip + i) as u64;
            let ids = ids.map_err(|e| Error::Tokenizer {
                path: self.tokenizer.display().to_string(),
                error: TokenizerError::Malformed(format!(
                    "cannot encode the text of document {record} of {}: {e}",
                    self.prefix
                )),
            })?;
            self.writer.add(&ids, 0, Position { source: 0, record })?;
        }
        self.received += texts.len() as u64;
        self.bytes += texts.iter().map(|t| t.as_ref().len() as u64).sum::<u64>();
        Ok(())
    }

    /// Documents received so far (skipped ones of a resumed writer included).
    pub fn documents(&self) -> u64 {
        self.received
    }

    /// Close the last shard and write the manifest (`{prefix}.manifest.json` in the output
    /// directory); returns it. Its one input is named `prefix`, with the bytes of the texts
    /// this writer received.
    pub fn finish(self) -> Result<Manifest> {
        let end = Position {
            source: 0,
            record: self.received,
        };
        let (written, tail_empty, tail_skipped) = self.writer.finish(end)?;
        let mut shards = self.done;
        shards.extend(written);
        let input = InputCount {
            path: self.prefix.clone(),
            bytes: self.bytes,
            documents: 0,
            tokens: 0,
        };
        let manifest = build_manifest(
            &self.encoder,
            self.dtype,
            &self.options,
            "text",
            &self.tokenizer,
            vec![input],
            shards,
            (tail_empty, tail_skipped),
        );
        let path = self.output.join(task_manifest_name(&self.prefix));
        crate::vocab::write_atomic(&path, &manifest.to_json())?;
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::IoOptions;
    use crate::options::Surface;
    use crate::pipeline::NoProgress;
    use crate::tokenize::Format;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
    use tokenizers::{AddedToken, Tokenizer};

    const WORDS: &[&str] = &["<unk>", "</s>", "a", "b", "c", "d", "e"];

    /// One token per known word, `</s>` as the detected EOS.
    fn tokenizer(dir: &Path) -> PathBuf {
        let vocab = WORDS
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), i as u32))
            .collect();
        let model = WordLevel::builder()
            .vocab(vocab)
            .unk_token("<unk>".into())
            .build()
            .expect("model");
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(WhitespaceSplit));
        tok.add_special_tokens([AddedToken::from("</s>", true)])
            .expect("special");
        let path = dir.join("tok.json");
        tok.save(&path, false).expect("save");
        path
    }

    fn texts() -> Vec<String> {
        (0..40)
            .map(|i| WORDS[2..][..i % 5 + 1].join(" ").repeat(1 + i % 3))
            .chain(["".to_string(), "x y".to_string()])
            .collect()
    }

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.is_file() && !p.to_string_lossy().ends_with(".json"))
            .map(|p| {
                let name = p.file_name().expect("name").to_string_lossy().into_owned();
                (name, std::fs::read(&p).expect("read"))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn same_bytes_as_tokenize_and_resumes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let tok = tokenizer(tmp.path());
        let texts = texts();
        let jsonl: String = texts
            .iter()
            .map(|t| serde_json::json!({ "text": t }).to_string() + "\n")
            .collect();
        let input = tmp.path().join("in.jsonl");
        std::fs::write(&input, jsonl).expect("write");
        for format in [Format::Megatron, Format::Nanotron, Format::Numpy] {
            let options = TokenizeOptions {
                format,
                max_shard_tokens: 30,
                ..TokenizeOptions::default()
            };
            let a = tmp.path().join(format!("a-{}", format.name()));
            let m = crate::tokenize::tokenize(
                &[input.display().to_string()],
                &a,
                &tok,
                &IoOptions::default(),
                &options,
                &NoProgress,
            )
            .expect("tokenize");
            assert!(m.shards.len() > 2);
            let b = tmp.path().join(format!("b-{}", format.name()));
            let mut w = TextShardWriter::new(&b, &tok, &options, "shard", 2).expect("new");
            for batch in texts.chunks(7) {
                w.add(batch).expect("add");
            }
            let t = w.finish().expect("finish");
            assert_eq!(files(&a), files(&b));
            assert_eq!((t.documents, t.tokens), (m.documents, m.tokens));
            assert_eq!(t.documents_empty, 0);
            assert_eq!(t.inputs[0].documents, m.documents);
            // The same shards; the last one's `next` is the task's end (its record count).
            let mut shards = m.shards.clone();
            if let Some(s) = shards.last_mut() {
                s.next = Position {
                    source: 0,
                    record: texts.len() as u64,
                };
            }
            assert_eq!(t.shards, shards);
            let on_disk = std::fs::read_to_string(b.join("shard.manifest.json")).expect("m");
            assert_eq!(on_disk, t.to_json());

            // A lost last shard is written again; the others are kept, their texts not encoded.
            let last = t.shards.last().expect("shards");
            std::fs::remove_file(b.join(STATE_DIR).join(format!("{}.json", last.name)))
                .expect("rm");
            for f in &last.files {
                std::fs::remove_file(b.join(&f.name)).expect("rm");
            }
            let mut w = TextShardWriter::new(&b, &tok, &options, "shard", 1).expect("new");
            assert_eq!(w.skip, t.shards[t.shards.len() - 2].next.record);
            w.add(&texts).expect("add");
            assert_eq!(w.finish().expect("finish"), t);
            assert_eq!(files(&a), files(&b));
            // A finished writer run again writes nothing new.
            let mut w = TextShardWriter::new(&b, &tok, &options, "shard", 1).expect("new");
            w.add(&texts).expect("add");
            assert_eq!(w.finish().expect("finish"), t);
            assert_eq!(files(&a), files(&b));
        }
        // Other options on the same prefix are refused; another prefix is free.
        let b = tmp.path().join("b-numpy");
        let other = TokenizeOptions {
            format: Format::Numpy,
            max_shard_tokens: 31,
            ..TokenizeOptions::default()
        };
        let e = TextShardWriter::new(&b, &tok, &other, "shard", 1).expect_err("refused");
        assert!(
            e.to_string()
                .contains("max_shard_tokens (30 before, 31 now)"),
            "{e}"
        );
        TextShardWriter::new(&b, &tok, &other, "other", 1).expect("another prefix");
    }

    #[test]
    fn prefixes_are_plain_names() {
        for good in ["00000_shard", "task-1", "a.b"] {
            assert!(check_prefix(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "é"] {
            let Err(Error::Options(e)) = check_prefix(bad) else {
                panic!("{bad:?} accepted");
            };
            assert!(e.render(&Surface::Cli).starts_with("--prefix must be"));
        }
    }
}
