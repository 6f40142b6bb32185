//! The report's `tokens` section, for a run ending with the `tokenize` stage: the shards' format
//! and tokenizer, tokens per input (each refined shard) and per token shard, and the
//! distribution of document lengths in tokens, read back from the shards' own indexes (what a
//! trainer will see, BOS and EOS included).

use std::path::Path;

use serde_json::{json, Value};

use super::stats::hist_edges;
use crate::tokenize::{Format, Manifest};
use crate::{Error, Result};

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path.display().to_string(), e))
}

fn bad(path: &Path, what: &str) -> Error {
    Error::Intermediate {
        path: path.display().to_string(),
        message: format!("not a shard index this run wrote: {what}"),
    }
}

fn u64s(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
}

/// Document lengths of one shard, from its index file.
fn lengths(dir: &Path, name: &str, format: Format, out: &mut Vec<u64>) -> Result<()> {
    match format {
        Format::Megatron => {
            // MMIDIDX: 9-byte magic, version u64, dtype u8, sequence count u64, document
            // count u64, then the sequence lengths (i32).
            let path = dir.join(format!("{name}.idx"));
            let b = read(&path)?;
            let n = b
                .get(18..26)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .ok_or_else(|| bad(&path, "too short"))?;
            let end = usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_mul(4))
                .and_then(|n| n.checked_add(34))
                .filter(|&e| e <= b.len())
                .ok_or_else(|| bad(&path, "sequence count past the end"))?;
            out.extend(
                b[34..end]
                    .chunks_exact(4)
                    .map(|c| u64::from(u32::from_le_bytes(c.try_into().unwrap_or([0; 4])))),
            );
        }
        Format::Nanotron | Format::Numpy => {
            let (path, skip) = if format == Format::Nanotron {
                (dir.join(format!("{name}.ds.index")), 0)
            } else {
                // `.npy` version 1: magic (6), version (2), header length u16, header.
                let path = dir.join(format!("{name}.index.npy"));
                let b = read(&path)?;
                let len = b
                    .get(8..10)
                    .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])))
                    .ok_or_else(|| bad(&path, "too short"))?;
                (path, 10 + len)
            };
            let b = read(&path)?;
            let body = b.get(skip..).ok_or_else(|| bad(&path, "too short"))?;
            let mut prev = 0;
            for end in u64s(body) {
                out.push(end.saturating_sub(prev));
                prev = end;
            }
        }
    }
    Ok(())
}

/// The `tokens` section of the report for the shards `manifest` describes, in `dir`.
pub(crate) fn section(manifest: &Manifest, dir: &Path) -> Result<Value> {
    let format = match manifest.format.as_str() {
        "nanotron" => Format::Nanotron,
        "numpy" => Format::Numpy,
        _ => Format::Megatron,
    };
    let edges = hist_edges();
    let mut histogram = vec![0u64; edges.len()];
    let mut all = Vec::new();
    for shard in &manifest.shards {
        all.clear();
        lengths(dir, &shard.name, format, &mut all)?;
        for &n in &all {
            let bin = if n == 0 {
                0
            } else {
                (64 - n.leading_zeros() as usize).min(edges.len() - 1)
            };
            histogram[bin] += 1;
        }
    }
    Ok(json!({
        "dir": dir,
        "format": manifest.format,
        "dtype": manifest.dtype,
        "tokenizer": manifest.tokenizer,
        "bos": manifest.bos,
        "eos": manifest.eos,
        "documents": manifest.documents,
        "tokens": manifest.tokens,
        "inputs": manifest.inputs,
        "shards": manifest.shards.iter().map(|s| json!({
            "name": s.name, "documents": s.documents, "tokens": s.tokens,
        })).collect::<Vec<_>>(),
        "lengths": {"edges": edges, "documents": histogram},
    }))
}
