//! Intermediate files of near-dedup: fixed-size records of two little-endian `u64`, with a
//! header giving the kind and the record count and a footer with an XXH3-64 checksum of the
//! records. A truncated file (wrong size), a bad checksum or, for sorted kinds, records out of
//! order are errors naming the file: a full disk or a killed task never turns into a silently
//! smaller result.
//!
//! Layout: `TAMISNR1` | kind `u32` | reserved `u32` | count `u64` | count × (`u64`, `u64`) |
//! checksum `u64` | `TAMISEND`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"TAMISNR1";
const END: &[u8; 8] = b"TAMISEND";
const HEADER: u64 = 24;
const FOOTER: u64 = 16;

/// What an intermediate file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// (band key, document), sorted.
    Signatures = 1,
    /// (document, document): candidate pairs.
    Pairs = 2,
    /// (ordinal in file, representative << 32 | cluster size), sorted.
    Clusters = 3,
    /// (document, priority as f64 bits), sorted.
    Priorities = 4,
    /// (document, index << 48 | indexed record): the indexed documents (`against`) a document
    /// shares a band key with, sorted.
    Hits = 5,
}

impl Kind {
    fn sorted(self) -> bool {
        !matches!(self, Kind::Pairs)
    }
}

pub(crate) fn corrupt(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Intermediate {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Write `records` (already sorted for sorted kinds) to `path`, through a temporary name.
pub fn write_records(path: &Path, kind: Kind, records: &[(u64, u64)]) -> Result<()> {
    let tmp = tmp_name(path);
    let io = |e: std::io::Error| Error::io(path.display().to_string(), e);
    let file = File::create(&tmp).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Xxh3::new();
    let result = (|| -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        w.write_all(&(kind as u32).to_le_bytes())?;
        w.write_all(&0u32.to_le_bytes())?;
        w.write_all(&(records.len() as u64).to_le_bytes())?;
        let mut buf = Vec::with_capacity(16 * 4096);
        for chunk in records.chunks(4096) {
            buf.clear();
            for (a, b) in chunk {
                buf.extend_from_slice(&a.to_le_bytes());
                buf.extend_from_slice(&b.to_le_bytes());
            }
            hasher.update(&buf);
            w.write_all(&buf)?;
        }
        w.write_all(&hasher.digest().to_le_bytes())?;
        w.write_all(END)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::rename(&tmp, path).map_err(io)
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Streams the records of one file, checking size, order and checksum.
pub struct RecordReader {
    path: PathBuf,
    reader: BufReader<File>,
    kind: Kind,
    remaining: u64,
    hasher: Xxh3,
    last: Option<(u64, u64)>,
    verified: bool,
}

impl std::fmt::Debug for RecordReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReader")
            .field("path", &self.path)
            .finish()
    }
}

impl RecordReader {
    /// Open `path`, expecting records of `kind`.
    pub fn open(path: &Path, kind: Kind) -> Result<Self> {
        let io = |e: std::io::Error| Error::io(path.display().to_string(), e);
        let file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut header = [0u8; HEADER as usize];
        reader
            .read_exact(&mut header)
            .map_err(|_| corrupt(path, "truncated: no header"))?;
        if &header[..8] != MAGIC {
            return Err(corrupt(path, "not a tamis near-dedup file"));
        }
        let found = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if found != kind as u32 {
            return Err(corrupt(
                path,
                format!("holds records of kind {found}, expected {}", kind as u32),
            ));
        }
        let mut count = [0u8; 8];
        count.copy_from_slice(&header[16..24]);
        let count = u64::from_le_bytes(count);
        let expected = count
            .checked_mul(16)
            .and_then(|n| n.checked_add(HEADER + FOOTER));
        if expected != Some(size) {
            return Err(corrupt(
                path,
                format!("truncated or padded: {size} bytes for {count} records"),
            ));
        }
        Ok(RecordReader {
            path: path.to_path_buf(),
            reader,
            kind,
            remaining: count,
            hasher: Xxh3::new(),
            last: None,
            verified: false,
        })
    }

    /// Number of records not read yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next record; at the end, the checksum is verified and `None` returned.
    pub fn next_record(&mut self) -> Result<Option<(u64, u64)>> {
        if self.remaining == 0 {
            if !self.verified {
                self.verify_footer()?;
                self.verified = true;
            }
            return Ok(None);
        }
        let mut buf = [0u8; 16];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| Error::io(self.path.display().to_string(), e))?;
        self.hasher.update(&buf);
        self.remaining -= 1;
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&buf[..8]);
        b.copy_from_slice(&buf[8..]);
        let rec = (u64::from_le_bytes(a), u64::from_le_bytes(b));
        if self.kind.sorted() {
            if let Some(last) = self.last {
                if rec < last {
                    return Err(corrupt(&self.path, "records out of order"));
                }
            }
        }
        self.last = Some(rec);
        Ok(Some(rec))
    }

    /// Every remaining record (checked), for small files.
    pub fn read_all(mut self) -> Result<Vec<(u64, u64)>> {
        let mut out = Vec::with_capacity(self.remaining as usize);
        while let Some(r) = self.next_record()? {
            out.push(r);
        }
        Ok(out)
    }

    fn verify_footer(&mut self) -> Result<()> {
        let mut footer = [0u8; FOOTER as usize];
        self.reader
            .read_exact(&mut footer)
            .map_err(|_| corrupt(&self.path, "truncated: no footer"))?;
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&footer[..8]);
        if &footer[8..] != END || u64::from_le_bytes(sum) != self.hasher.digest() {
            return Err(corrupt(&self.path, "checksum mismatch"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.sig");
        let recs = vec![(1, 2), (1, 3), (5, 0)];
        write_records(&p, Kind::Signatures, &recs).unwrap();
        assert_eq!(
            RecordReader::open(&p, Kind::Signatures)
                .unwrap()
                .read_all()
                .unwrap(),
            recs
        );
        assert!(RecordReader::open(&p, Kind::Pairs).is_err());
        // Truncation.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        let e = RecordReader::open(&p, Kind::Signatures).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        // A flipped bit.
        let mut bad = bytes.clone();
        bad[64] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        let e = RecordReader::open(&p, Kind::Signatures)
            .unwrap()
            .read_all()
            .unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        // Out of order.
        write_records(&p, Kind::Signatures, &[(5, 0), (1, 1)]).unwrap();
        let e = RecordReader::open(&p, Kind::Signatures)
            .unwrap()
            .read_all()
            .unwrap_err();
        assert!(e.to_string().contains("order"), "{e}");
    }
}
