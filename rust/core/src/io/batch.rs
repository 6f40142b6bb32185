//! Streaming inputs as batches of raw records: byte-bounded chunks of JSONL lines, or Arrow
//! record batches from Parquet. Memory stays bounded by the batch size, whatever the file size.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::input::{Compression, InputFile, InputFormat};
use crate::error::Location;
use crate::{Error, Result};

/// One line of a JSONL batch: byte range in the batch buffer (without the newline or a trailing
/// `\r`) and its 1-based line number in the file.
#[derive(Debug, Clone, Copy)]
pub struct LineSpan {
    /// Start offset in the buffer.
    pub start: usize,
    /// End offset (exclusive).
    pub end: usize,
    /// 1-based line number.
    pub line: u64,
}

/// Raw records from one file.
#[derive(Debug)]
pub enum BatchData {
    /// Complete JSONL lines; blank lines are not records and are left out.
    Jsonl {
        /// The bytes.
        buf: Vec<u8>,
        /// The non-blank lines in it.
        lines: Vec<LineSpan>,
    },
    /// Rows of a Parquet file.
    Arrow {
        /// The rows.
        batch: RecordBatch,
        /// 1-based row number of the first row in the file.
        first_row: u64,
    },
}

/// A batch of records from one input file.
#[derive(Debug)]
pub struct Batch {
    /// The file the records came from.
    pub file: Arc<InputFile>,
    /// Its index in the list of files being read.
    pub file_index: usize,
    /// The records.
    pub data: BatchData,
    /// JSON lines made from the rows of a Parquet file: their numbers are row numbers.
    pub from_rows: bool,
}

impl Batch {
    /// Where record number `n` (line, or row for [`Batch::from_rows`]) sits in its file.
    pub fn location(&self, n: u64) -> Location {
        if self.from_rows {
            Location::Row(n)
        } else {
            Location::Line(n)
        }
    }

    /// Number of records in the batch.
    pub fn len(&self) -> usize {
        match &self.data {
            BatchData::Jsonl { lines, .. } => lines.len(),
            BatchData::Arrow { batch, .. } => batch.num_rows(),
        }
    }

    /// Whether the batch has no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the reader hands to the pipeline.
#[derive(Debug)]
pub enum ReadItem {
    /// Records.
    Batch(Batch),
    /// The file could not be read past `location`; the reader moves on to the next file.
    Corrupt {
        /// The file.
        file: Arc<InputFile>,
        /// Its index in the list of files being read.
        file_index: usize,
        /// Where reading stopped.
        location: Location,
        /// Why.
        message: String,
    },
}

/// Counts bytes read from the underlying (compressed) file, for progress reporting.
struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Read `files` in order, calling `emit` for each batch or corrupt-file event; `emit` returns
/// `false` to stop early. Errors opening a file are returned as [`Error::Io`].
pub fn read_batches(
    files: &[InputFile],
    batch_bytes: usize,
    progress_bytes: Arc<AtomicU64>,
    emit: impl FnMut(ReadItem) -> bool,
) -> Result<()> {
    read_batches_with(files, batch_bytes, false, progress_bytes, emit)
}

/// [`read_batches`], turning Parquet rows into JSON lines when `rows_as_json` (for runs that
/// set fields inside objects, which only JSON records hold; the lines are what the writers
/// would write for those rows, numbered by row).
pub fn read_batches_with(
    files: &[InputFile],
    batch_bytes: usize,
    rows_as_json: bool,
    progress_bytes: Arc<AtomicU64>,
    mut emit: impl FnMut(ReadItem) -> bool,
) -> Result<()> {
    let mut emit = |item: ReadItem| match item {
        ReadItem::Batch(b) if rows_as_json => match rows_to_json(b) {
            Ok(b) => emit(ReadItem::Batch(b)),
            Err(corrupt) => emit(corrupt),
        },
        other => emit(other),
    };
    for (index, file) in files.iter().enumerate() {
        let file = Arc::new(file.clone());
        let go_on = match file.format {
            InputFormat::Parquet => read_parquet(&file, index, &progress_bytes, &mut emit)?,
            // Plain text is split into lines exactly like JSONL; readers tell them apart by
            // `batch.file.format`.
            InputFormat::Jsonl(c) | InputFormat::Text(c) => {
                read_jsonl(&file, index, c, batch_bytes, &progress_bytes, &mut emit)?
            }
        };
        if !go_on {
            break;
        }
    }
    Ok(())
}

/// A Parquet batch as JSON lines; a row that cannot be written as JSON ends the file as corrupt.
fn rows_to_json(batch: Batch) -> std::result::Result<Batch, ReadItem> {
    let BatchData::Arrow {
        batch: rb,
        first_row,
    } = &batch.data
    else {
        return Ok(batch);
    };
    let mut buf = Vec::new();
    {
        let mut w = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::LineDelimited>(&mut buf);
        if let Err(e) = w.write(rb).and_then(|_| w.finish()) {
            return Err(ReadItem::Corrupt {
                file: batch.file.clone(),
                file_index: batch.file_index,
                location: Location::Row(*first_row),
                message: format!("rows that cannot be written as JSON: {e}"),
            });
        }
    }
    let mut lines = Vec::with_capacity(rb.num_rows());
    let mut start = 0;
    let mut row = *first_row;
    while start < buf.len() {
        let end = memchr::memchr(b'\n', &buf[start..]).map_or(buf.len(), |i| start + i);
        lines.push(LineSpan {
            start,
            end,
            line: row,
        });
        row += 1;
        start = end + 1;
    }
    Ok(Batch {
        file: batch.file,
        file_index: batch.file_index,
        data: BatchData::Jsonl { buf, lines },
        from_rows: true,
    })
}

/// Standard input, read without Rust's own buffer so that waiting can be interrupted: on Unix
/// each read first waits for data in slices of 100 ms, checking for an interrupt between them
/// (a pipe that stays open and silent must not keep a stopped run alive).
struct InterruptibleStdin;

impl Read for InterruptibleStdin {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        #[cfg(unix)]
        {
            use std::os::fd::FromRawFd;
            loop {
                if crate::interrupt::received().is_some() {
                    // Not ErrorKind::Interrupted, which readers retry.
                    return Err(std::io::Error::other("interrupted"));
                }
                let mut fds = libc::pollfd {
                    fd: libc::STDIN_FILENO,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, for the duration of the call.
                let ready = unsafe { libc::poll(&mut fds, 1, 100) };
                if ready > 0 {
                    break;
                }
                if ready < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
            // SAFETY: fd 0 stays open for the life of the process; ManuallyDrop never closes it.
            let mut f =
                std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(libc::STDIN_FILENO) });
            f.read(buf)
        }
        #[cfg(not(unix))]
        {
            std::io::stdin().read(buf)
        }
    }
}

/// The compression whose magic bytes `head` starts with.
fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

fn open_jsonl(
    file: &InputFile,
    compression: Compression,
    counter: &Arc<AtomicU64>,
) -> Result<Box<dyn Read + Send>> {
    let (raw, compression): (Box<dyn BufRead + Send>, Compression) = match &file.path {
        Some(path) => {
            let f = File::open(path).map_err(|e| Error::io(&file.display, e))?;
            let counting = Counting {
                inner: f,
                counter: counter.clone(),
            };
            let mut r = BufReader::with_capacity(1 << 16, counting);
            // A compressed file named like a plain one (`x.jsonl` holding gzip) is read by its
            // magic bytes, as stdin is: no JSON text starts with them.
            let compression = match compression {
                Compression::None => sniff(r.fill_buf().map_err(|e| Error::io(&file.display, e))?),
                c => c,
            };
            (Box::new(r), compression)
        }
        None => {
            let mut stdin = Counting {
                inner: InterruptibleStdin,
                counter: counter.clone(),
            };
            // Sniff the magic bytes, reading until 4 bytes or the end even if they trickle in.
            let mut head = Vec::with_capacity(4);
            while head.len() < 4 {
                let mut bytes = [0u8; 4];
                match stdin.read(&mut bytes[..4 - head.len()]) {
                    Ok(0) => break,
                    Ok(n) => head.extend_from_slice(&bytes[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io(&file.display, e)),
                }
            }
            let sniffed = sniff(&head);
            let r = BufReader::with_capacity(1 << 16, std::io::Cursor::new(head).chain(stdin));
            (Box::new(r), sniffed)
        }
    };
    Ok(match compression {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(raw)
                .map_err(|e| Error::io(&file.display, e))?,
        ),
    })
}

fn read_jsonl(
    file: &Arc<InputFile>,
    file_index: usize,
    compression: Compression,
    batch_bytes: usize,
    counter: &Arc<AtomicU64>,
    emit: &mut impl FnMut(ReadItem) -> bool,
) -> Result<bool> {
    const READ_CHUNK: usize = 256 * 1024;
    if compression != Compression::None {
        if let Some(path) = &file.path {
            let len = std::fs::metadata(path)
                .map_err(|e| Error::io(&file.display, e))?
                .len();
            if len == 0 {
                let message = "empty file is not a valid compressed stream".to_string();
                return Ok(emit(ReadItem::Corrupt {
                    file: file.clone(),
                    file_index,
                    location: Location::File,
                    message,
                }));
            }
        }
    }
    let mut reader = open_jsonl(file, compression, counter)?;
    let mut carry: Vec<u8> = Vec::new();
    let mut line_no: u64 = 0;
    let mut searched: usize = 0;
    loop {
        // One allocation per batch, filled without zeroing or regrowing: with the allocator
        // returning freed pages at once, every regrowth is a fresh round of page faults.
        // A line longer than a batch keeps growing its own buffer (amortized by `Vec`).
        let mut buf = if carry.len() >= batch_bytes {
            std::mem::take(&mut carry)
        } else {
            let mut b = Vec::with_capacity(batch_bytes + READ_CHUNK);
            b.append(&mut carry);
            b
        };
        let mut eof = false;
        let mut failure: Option<std::io::Error> = None;
        loop {
            let old = buf.len();
            // `read_to_end` retries interrupted reads and keeps what it read before an error.
            match (&mut reader).take(READ_CHUNK as u64).read_to_end(&mut buf) {
                Ok(_) => eof = buf.len() < old + READ_CHUNK,
                Err(e) => failure = Some(e),
            }
            if eof || failure.is_some() || buf.len() >= batch_bytes {
                break;
            }
        }
        let cut = if eof {
            buf.len()
        } else {
            // Bytes carried over from a line longer than a batch hold no newline: skip them.
            match memchr::memrchr(b'\n', &buf[searched..]) {
                Some(i) => searched + i + 1,
                None if failure.is_some() => 0,
                None => {
                    // A line longer than the batch: keep reading until it ends.
                    searched = buf.len();
                    carry = buf;
                    continue;
                }
            }
        };
        searched = 0;
        carry = buf.split_off(cut);
        let mut lines = Vec::new();
        let mut start = 0;
        if line_no == 0 && buf.starts_with(b"\xEF\xBB\xBF") {
            // A UTF-8 byte order mark (as some Windows tools write) is not part of the first record.
            start = 3;
        }
        while start < buf.len() {
            let end_nl = memchr::memchr(b'\n', &buf[start..]).map_or(buf.len(), |i| start + i);
            line_no += 1;
            let mut end = end_nl;
            if end > start && buf[end - 1] == b'\r' {
                end -= 1;
            }
            if !buf[start..end].iter().all(u8::is_ascii_whitespace) {
                lines.push(LineSpan {
                    start,
                    end,
                    line: line_no,
                });
            }
            start = end_nl + 1;
        }
        if !lines.is_empty() {
            let batch = Batch {
                file: file.clone(),
                file_index,
                data: BatchData::Jsonl { buf, lines },
                from_rows: false,
            };
            if !emit(ReadItem::Batch(batch)) {
                return Ok(false);
            }
        }
        if let Some(e) = failure {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Err(Error::io(&file.display, e));
            }
            let message = match compression {
                Compression::None => format!("read failed: {e}"),
                Compression::Gzip => format!("truncated or corrupt gzip stream: {e}"),
                Compression::Zstd => format!("truncated or corrupt zstd stream: {e}"),
            };
            let location = Location::Line(line_no + 1);
            return Ok(emit(ReadItem::Corrupt {
                file: file.clone(),
                file_index,
                location,
                message,
            }));
        }
        if eof {
            return Ok(true);
        }
    }
}

fn read_parquet(
    file: &Arc<InputFile>,
    file_index: usize,
    counter: &Arc<AtomicU64>,
    emit: &mut impl FnMut(ReadItem) -> bool,
) -> Result<bool> {
    let Some(path) = &file.path else {
        return Err(Error::Config("Parquet cannot be read from stdin".into()));
    };
    let f = File::open(path).map_err(|e| Error::io(&file.display, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(&file.display, e))?.len();
    let corrupt = |location, e: &dyn std::fmt::Display| ReadItem::Corrupt {
        file: file.clone(),
        file_index,
        location,
        message: format!("not a readable Parquet file: {e}"),
    };
    let builder = match ParquetRecordBatchReaderBuilder::try_new(f) {
        Ok(b) => b,
        Err(e) => return Ok(emit(corrupt(Location::File, &e))),
    };
    let total_rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
    let reader = match builder.with_batch_size(8192).build() {
        Ok(r) => r,
        Err(e) => return Ok(emit(corrupt(Location::File, &e))),
    };
    let mut next_row: u64 = 1;
    for batch in reader {
        match batch {
            Ok(batch) => {
                let rows = batch.num_rows() as u64;
                counter.fetch_add(file_len * rows / total_rows, Ordering::Relaxed);
                let data = BatchData::Arrow {
                    batch,
                    first_row: next_row,
                };
                next_row += rows;
                if !emit(ReadItem::Batch(Batch {
                    file: file.clone(),
                    file_index,
                    data,
                    from_rows: false,
                })) {
                    return Ok(false);
                }
            }
            Err(e) => return Ok(emit(corrupt(Location::Row(next_row), &e))),
        }
    }
    Ok(true)
}
