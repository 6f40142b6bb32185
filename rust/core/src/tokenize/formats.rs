//! One shard in each on-disk layout: documents' ids go in one at a time, and the shard's files
//! appear (renamed from hidden temporary files) only when all of them are complete. The layouts
//! are specified in docs/tokenize.md.
//!
//! - Megatron `NAME.bin` + `NAME.idx`: the `MMIDIDX` index version 1 that Megatron-LM's and
//!   NeMo's `IndexedDataset` read, one sequence per document.
//! - datatrove/nanotron `NAME.ds` + `NAME.ds.index` (u64 cumulative document ends) +
//!   `NAME.ds.metadata` (`tokenizer|token size`, token count, humanized count).
//! - numpy `NAME.npy` (1-D tokens) + `NAME.index.npy` (u64 cumulative document ends).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::options::{Dtype, Format};
use crate::io::AtomicFile;
use crate::{Error, Result};

/// Megatron's index magic.
pub const MEGATRON_MAGIC: &[u8; 9] = b"MMIDIDX\x00\x00";
/// Megatron dtype codes (`megatron/core/datasets/indexed_dataset.py`): uint16 and int32.
pub const MEGATRON_CODE_U16: u8 = 8;
/// Megatron has no uint32 code: 32-bit ids are stored as int32.
pub const MEGATRON_CODE_I32: u8 = 4;

/// A file being written, with its name (relative to the output directory) and size.
struct Part {
    name: String,
    path: PathBuf,
    out: BufWriter<File>,
    atomic: AtomicFile,
    bytes: u64,
}

impl Part {
    fn create(dir: &Path, name: String) -> Result<Self> {
        let path = dir.join(&name);
        let (atomic, file) = AtomicFile::create(&path)?;
        Ok(Part {
            name,
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            atomic,
            bytes: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.bytes += bytes.len() as u64;
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(self.path.display().to_string(), e))
    }

    /// Flush and sync; the file is committed with the others by [`ShardFiles::commit`].
    fn close(self) -> Result<(String, u64, AtomicFile)> {
        let display = self.path.display().to_string();
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&display, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&display, e))?;
        Ok((self.name, self.bytes, self.atomic))
    }
}

/// The closed files of a shard, not yet in place.
#[derive(Debug)]
pub struct ShardFiles {
    /// (name, size in bytes) of each file.
    pub files: Vec<(String, u64)>,
    atomic: Vec<AtomicFile>,
}

impl ShardFiles {
    /// Move every file to its final name.
    pub fn commit(self) -> Result<Vec<(String, u64)>> {
        for a in self.atomic {
            a.commit()?;
        }
        Ok(self.files)
    }
}

/// Writes one shard in one layout.
pub struct ShardFormatWriter {
    format: Format,
    dtype: Dtype,
    tokens: Part,
    /// Tokens per document, in order.
    lengths: Vec<u64>,
    total: u64,
    scratch: Vec<u8>,
    dir: PathBuf,
    name: String,
    /// The tokenizer as the `.ds.metadata` names it.
    tokenizer_name: String,
}

/// Bytes reserved for a `.npy` header (rewritten with the real shape at the end): enough for
/// any 1-D shape, and a multiple of 64 as numpy's format version 1.0 asks.
const NPY_HEADER: usize = 128;

fn npy_header(descr: &str, len: u64) -> Vec<u8> {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({len},), }}");
    // Magic (6) + version (2) + header length (2) + dict + padding + newline = NPY_HEADER.
    while 10 + dict.len() + 1 < NPY_HEADER {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = Vec::with_capacity(NPY_HEADER);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((dict.len()) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// The `.npy` descr of a dtype.
fn npy_descr(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::Uint16 => "<u2",
        Dtype::Auto | Dtype::Uint32 => "<u4",
    }
}

/// `value` as datatrove's `.ds.metadata` writes its count (`humanize.metric(n, unit="T")`):
/// three significant digits and an SI prefix, e.g. `1.23 MT`, `12.0 T`, `0.00 T`.
pub fn humanized_tokens(value: u64) -> String {
    if value == 0 {
        return "0.00 T".into();
    }
    let exponent = (value as f64).log10().floor() as i32;
    let scaled = value as f64 / 10f64.powi(exponent / 3 * 3);
    let prefix = match exponent / 3 {
        0 => "",
        1 => "k",
        2 => "M",
        3 => "G",
        4 => "T",
        5 => "P",
        _ => "E",
    };
    let decimals = (3 - (exponent % 3) - 1).max(0) as usize;
    format!("{scaled:.decimals$} {prefix}T")
}

impl ShardFormatWriter {
    /// Start shard `name` (e.g. `shard_00000`) in `dir`.
    pub fn create(
        dir: &Path,
        name: &str,
        format: Format,
        dtype: Dtype,
        tokenizer_name: &str,
    ) -> Result<Self> {
        let file = match format {
            Format::Megatron => format!("{name}.bin"),
            Format::Nanotron => format!("{name}.ds"),
            Format::Numpy => format!("{name}.npy"),
        };
        let mut tokens = Part::create(dir, file)?;
        if format == Format::Numpy {
            tokens.write(&npy_header(npy_descr(dtype), 0))?;
        }
        Ok(ShardFormatWriter {
            format,
            dtype,
            tokens,
            lengths: Vec::new(),
            total: 0,
            scratch: Vec::new(),
            dir: dir.to_path_buf(),
            name: name.to_string(),
            tokenizer_name: tokenizer_name.to_string(),
        })
    }

    /// Tokens written so far.
    pub fn tokens(&self) -> u64 {
        self.total
    }

    /// Documents written so far.
    pub fn documents(&self) -> usize {
        self.lengths.len()
    }

    /// Append one document.
    pub fn add(&mut self, ids: &[u32]) -> Result<()> {
        if self.format == Format::Megatron && ids.len() > i32::MAX as usize {
            return Err(Error::Config(format!(
                "a document of {} tokens is longer than a Megatron sequence can be (2^31 - 1)",
                ids.len()
            )));
        }
        self.scratch.clear();
        match self.dtype {
            Dtype::Uint16 => {
                for &id in ids {
                    let v = u16::try_from(id).map_err(|_| {
                        Error::Config(format!("id {id} does not fit the uint16 dtype"))
                    })?;
                    self.scratch.extend_from_slice(&v.to_le_bytes());
                }
            }
            Dtype::Auto | Dtype::Uint32 => {
                for &id in ids {
                    if self.format == Format::Megatron && id > i32::MAX as u32 {
                        return Err(Error::Config(format!(
                            "id {id} does not fit Megatron's int32 dtype"
                        )));
                    }
                    self.scratch.extend_from_slice(&id.to_le_bytes());
                }
            }
        }
        let bytes = std::mem::take(&mut self.scratch);
        let written = self.tokens.write(&bytes);
        self.scratch = bytes;
        written?;
        self.lengths.push(ids.len() as u64);
        self.total += ids.len() as u64;
        Ok(())
    }

    /// Cumulative document ends, in tokens, as u64 little-endian.
    fn ends_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lengths.len() * 8);
        let mut end = 0u64;
        for &l in &self.lengths {
            end += l;
            out.extend_from_slice(&end.to_le_bytes());
        }
        out
    }

    /// Write the index files and close every file (not yet renamed into place).
    pub fn finish(self) -> Result<ShardFiles> {
        let mut parts = Vec::new();
        match self.format {
            Format::Megatron => {
                let item = self.dtype.size() as u64;
                let n = self.lengths.len() as u64;
                let mut idx = Vec::with_capacity(34 + self.lengths.len() * 20 + 8);
                idx.extend_from_slice(MEGATRON_MAGIC);
                idx.extend_from_slice(&1u64.to_le_bytes());
                idx.push(match self.dtype {
                    Dtype::Uint16 => MEGATRON_CODE_U16,
                    Dtype::Auto | Dtype::Uint32 => MEGATRON_CODE_I32,
                });
                idx.extend_from_slice(&n.to_le_bytes());
                idx.extend_from_slice(&(n + 1).to_le_bytes());
                for &l in &self.lengths {
                    // Checked against i32::MAX in `add`.
                    idx.extend_from_slice(&(l as i32).to_le_bytes());
                }
                let mut pointer = 0i64;
                for &l in &self.lengths {
                    idx.extend_from_slice(&pointer.to_le_bytes());
                    pointer += (l * item) as i64;
                }
                // One sequence per document: document i ends after sequence i.
                for i in 0..=n {
                    idx.extend_from_slice(&(i as i64).to_le_bytes());
                }
                let mut p = Part::create(&self.dir, format!("{}.idx", self.name))?;
                p.write(&idx)?;
                parts.push(p);
            }
            Format::Nanotron => {
                let mut index = Part::create(&self.dir, format!("{}.ds.index", self.name))?;
                index.write(&self.ends_bytes())?;
                parts.push(index);
                let mut meta = Part::create(&self.dir, format!("{}.ds.metadata", self.name))?;
                let text = format!(
                    "{}|{}\n{}\n{}",
                    self.tokenizer_name,
                    self.dtype.size(),
                    self.total,
                    humanized_tokens(self.total)
                );
                meta.write(text.as_bytes())?;
                parts.push(meta);
            }
            Format::Numpy => {
                let mut index = Part::create(&self.dir, format!("{}.index.npy", self.name))?;
                index.write(&npy_header("<u8", self.lengths.len() as u64))?;
                index.write(&self.ends_bytes())?;
                parts.push(index);
            }
        }
        let mut tokens = self.tokens;
        if self.format == Format::Numpy {
            // The header went out with a placeholder shape: now the length is known.
            let display = tokens.path.display().to_string();
            let header = npy_header(npy_descr(self.dtype), self.total);
            tokens.out.flush().map_err(|e| Error::io(&display, e))?;
            let f = tokens.out.get_mut();
            f.seek(SeekFrom::Start(0))
                .and_then(|_| f.write_all(&header))
                .map_err(|e| Error::io(&display, e))?;
        }
        parts.insert(0, tokens);
        let mut files = Vec::new();
        let mut atomic = Vec::new();
        for p in parts {
            let (name, bytes, a) = p.close()?;
            files.push((name, bytes));
            atomic.push(a);
        }
        Ok(ShardFiles { files, atomic })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_u64s(b: &[u8]) -> Vec<u64> {
        b.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect()
    }

    fn write(format: Format, dtype: Dtype, docs: &[&[u32]]) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut w =
            ShardFormatWriter::create(dir.path(), "s", format, dtype, "tok.json").expect("create");
        for d in docs {
            w.add(d).expect("add");
        }
        let files = w.finish().expect("finish");
        assert!(
            !dir.path().join("s.bin").exists() && !dir.path().join("s.ds").exists(),
            "visible before commit"
        );
        let names = files
            .commit()
            .expect("commit")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        (dir, names)
    }

    const DOCS: &[&[u32]] = &[&[1, 2, 3], &[70_000], &[], &[5, 6]];

    #[test]
    fn megatron_index_layout() {
        let (dir, names) = write(Format::Megatron, Dtype::Uint32, DOCS);
        assert_eq!(names, ["s.bin", "s.idx"]);
        let bin = std::fs::read(dir.path().join("s.bin")).expect("bin");
        assert_eq!(bin.len(), 6 * 4);
        assert_eq!(&bin[12..16], &70_000u32.to_le_bytes());
        let idx = std::fs::read(dir.path().join("s.idx")).expect("idx");
        assert_eq!(&idx[..9], MEGATRON_MAGIC);
        assert_eq!(u64::from_le_bytes(idx[9..17].try_into().expect("8")), 1);
        assert_eq!(idx[17], MEGATRON_CODE_I32);
        assert_eq!(u64::from_le_bytes(idx[18..26].try_into().expect("8")), 4);
        assert_eq!(u64::from_le_bytes(idx[26..34].try_into().expect("8")), 5);
        let lengths: Vec<i32> = idx[34..50]
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4")))
            .collect();
        assert_eq!(lengths, [3, 1, 0, 2]);
        let pointers = read_u64s(&idx[50..82]);
        assert_eq!(pointers, [0, 12, 16, 16]);
        assert_eq!(read_u64s(&idx[82..]), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn megatron_uint16_code() {
        let (dir, _) = write(Format::Megatron, Dtype::Uint16, &[&[1, 65_535]]);
        let idx = std::fs::read(dir.path().join("s.idx")).expect("idx");
        assert_eq!(idx[17], MEGATRON_CODE_U16);
        let bin = std::fs::read(dir.path().join("s.bin")).expect("bin");
        assert_eq!(bin, [1, 0, 255, 255]);
    }

    #[test]
    fn datatrove_files() {
        let (dir, names) = write(Format::Nanotron, Dtype::Uint32, DOCS);
        assert_eq!(names, ["s.ds", "s.ds.index", "s.ds.metadata"]);
        let index = std::fs::read(dir.path().join("s.ds.index")).expect("index");
        assert_eq!(read_u64s(&index), [3, 4, 4, 6]);
        let meta = std::fs::read_to_string(dir.path().join("s.ds.metadata")).expect("meta");
        assert_eq!(meta, "tok.json|4\n6\n6.00 T");
    }

    #[test]
    fn numpy_header_is_rewritten() {
        let (dir, names) = write(Format::Numpy, Dtype::Uint16, &[&[1, 2, 3], &[4]]);
        assert_eq!(names, ["s.npy", "s.index.npy"]);
        let npy = std::fs::read(dir.path().join("s.npy")).expect("npy");
        assert_eq!(npy.len(), NPY_HEADER + 8);
        let header = std::str::from_utf8(&npy[10..NPY_HEADER]).expect("utf8");
        assert!(header.starts_with("{'descr': '<u2', 'fortran_order': False, 'shape': (4,), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(&npy[NPY_HEADER..], &[1, 0, 2, 0, 3, 0, 4, 0]);
    }

    #[test]
    fn uint16_refuses_large_ids() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut w =
            ShardFormatWriter::create(dir.path(), "s", Format::Nanotron, Dtype::Uint16, "t")
                .expect("create");
        assert!(w.add(&[70_000]).is_err());
    }

    #[test]
    fn humanized_like_datatrove() {
        assert_eq!(humanized_tokens(0), "0.00 T");
        assert_eq!(humanized_tokens(6), "6.00 T");
        assert_eq!(humanized_tokens(12), "12.0 T");
        assert_eq!(humanized_tokens(999), "999 T");
        assert_eq!(humanized_tokens(1_000), "1.00 kT");
        assert_eq!(humanized_tokens(1_234_567), "1.23 MT");
        assert_eq!(humanized_tokens(45_600_000_000), "45.6 GT");
    }
}
