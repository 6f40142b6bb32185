//! Suffix arrays of the corpus text, in parts, and the repeated windows they reveal.
//!
//! The text is every document's UTF-8 bytes followed by a `0xFF` byte, which UTF-8 text never
//! holds, so no window of `L` bytes without `0xFF` crosses a document. The text is cut at
//! document ends into parts; each part gets a suffix array from libsais. Each part's array is
//! sorted by whole suffixes, hence by their first `L` bytes (cut at the part's end): merging the
//! parts' arrays on those keys lines up every group of equal keys, whatever part each member is
//! in, and a group whose key is a window (`L` bytes, no `0xFF`) is a group of repeated windows;
//! other groups are passed over. The merge is cut by splitter keys into chunks that threads
//! merge on their own, and a group never straddles two chunks (each part's range starts at the
//! first key not below the splitter). Marks go to one shared bitmap of window starts, so the
//! result does not depend on the thread count, the chunks or the parts.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use libsais::{SuffixArrayConstruction, ThreadCount};
use memmap2::Mmap;
use rayon::prelude::*;

use crate::{Error, Result};

/// The byte after every document: never part of UTF-8 text.
pub(crate) const SEPARATOR: u8 = 0xFF;

/// A set of positions of the text, shared by threads.
pub(crate) struct Bitmap {
    words: Vec<AtomicU64>,
}

impl Bitmap {
    pub(crate) fn new(len: u64) -> Self {
        let n = len.div_ceil(64) as usize;
        let mut words = Vec::with_capacity(n);
        // Before the first write: the merge sets bits at random.
        advise_huge_pages(words.as_ptr() as *const u8, n * 8);
        words.resize_with(n, || AtomicU64::new(0));
        Bitmap { words }
    }

    fn prefetch(&self, i: u64) {
        prefetch(&self.words, (i / 64) as usize);
    }

    fn set(&self, i: u64) {
        self.words[(i / 64) as usize].fetch_or(1 << (i % 64), AtomicOrdering::Relaxed);
    }

    #[cfg(test)]
    fn get(&self, i: u64) -> bool {
        self.words[(i / 64) as usize].load(AtomicOrdering::Relaxed) & (1 << (i % 64)) != 0
    }

    /// The set positions in `start..end`, in order.
    pub(crate) fn ones(&self, start: u64, end: u64) -> impl Iterator<Item = u64> + '_ {
        let first = start / 64;
        let last = end.div_ceil(64);
        (first..last).flat_map(move |w| {
            let mut bits = self.words[w as usize].load(AtomicOrdering::Relaxed);
            std::iter::from_fn(move || {
                while bits != 0 {
                    let b = bits.trailing_zeros() as u64;
                    bits &= bits - 1;
                    let i = w * 64 + b;
                    if i >= start && i < end {
                        return Some(i);
                    }
                }
                None
            })
        })
    }
}

/// Ask the kernel to back the memory at `ptr` (`bytes` long, not yet written) with transparent
/// huge pages where it allows them on request (`madvise` mode, common): suffix sorting and the
/// merge read the text and the suffix array at random, and with 4 KiB pages most of those reads
/// also miss the TLB (measured on 500 MB: 59 s without, 48 s with this on the text, the suffix
/// array and the marks). A hint: it changes no result, and a refusal is ignored.
pub(crate) fn advise_huge_pages(ptr: *const u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + bytes) / HUGE * HUGE;
        if start < end {
            // SAFETY: the range lies inside one allocation of ours; the advice changes how it
            // is backed, never its contents.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, bytes);
}

/// How far ahead the merge prefetches: SA order visits the text and the bitmap at random, and
/// each visit is a cache miss without it.
const AHEAD: usize = 16;

/// Ask for the cache line holding `data[at]` (a hint: no effect on results).
#[inline(always)]
fn prefetch<T>(data: &[T], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < data.len() {
        // SAFETY: `at` is in bounds; prefetching reads nothing and cannot fault.
        unsafe {
            core::arch::x86_64::_mm_prefetch(
                data.as_ptr().add(at) as *const i8,
                core::arch::x86_64::_MM_HINT_T0,
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, at);
}

/// Prefetch the window at `pos`: the cache lines of its first 256 bytes (a comparison of equal
/// windows reads them all; most differing ones stop in the first line).
#[inline(always)]
fn prefetch_window(text: &[u8], pos: u64, len: usize) {
    let (first, last) = (pos as usize, pos as usize + len.min(256) - 1);
    let mut at = first;
    while at / 64 < last / 64 {
        prefetch(text, at);
        at += 64;
    }
    prefetch(text, last);
}

/// One part's window starts (positions relative to the part), sorted by suffix.
enum Starts {
    Memory(Vec<u32>),
    /// Little-endian `u32`s in a spill file.
    File(Mmap),
}

/// A stretch of the text (whole documents) and its sorted window starts.
pub(crate) struct Part {
    /// Offset of the part in the text.
    start: u64,
    /// Offset after the part's last byte: keys are cut there, so that they sort as the part's
    /// suffixes do.
    end: u64,
    starts: Starts,
}

impl Part {
    fn len(&self) -> usize {
        match &self.starts {
            Starts::Memory(v) => v.len(),
            Starts::File(m) => m.len() / 4,
        }
    }

    /// The text position of the `i`-th smallest window of the part.
    fn at(&self, i: usize) -> u64 {
        let local = match &self.starts {
            Starts::Memory(v) => v[i],
            Starts::File(m) => {
                let b = &m[4 * i..4 * i + 4];
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
        };
        self.start + u64::from(local)
    }
}

/// Cut the text into parts of at most `cap` bytes at document ends (`ends`: the offset after
/// each document's separator, increasing). A document longer than `cap` is an error.
pub(crate) fn plan_parts(ends: &[u64], cap: u64) -> std::result::Result<Vec<(u64, u64)>, u64> {
    let mut parts = Vec::new();
    let mut start = 0u64;
    let mut prev = 0u64;
    for &end in ends {
        if end - prev > cap {
            return Err(end - prev);
        }
        if end - start > cap {
            parts.push((start, prev));
            start = prev;
        }
        prev = end;
    }
    if prev > start {
        parts.push((start, prev));
    }
    Ok(parts)
}

/// Whether each position of `text` starts a window of `len` bytes without a separator, at a
/// multiple of `step` bytes before the next separator (documents of `step`-byte symbols).
fn window_starts(text: &[u8], len: usize, step: usize) -> Vec<u64> {
    let mut bits = vec![0u64; text.len().div_ceil(64)];
    // Bytes from each position to the next separator (or the end), capped at `len`, and the
    // same modulo `step`.
    let (mut run, mut phase) = (0usize, 0usize);
    for i in (0..text.len()).rev() {
        if text[i] == SEPARATOR {
            (run, phase) = (0, 0);
        } else {
            run = (run + 1).min(len);
            phase = (phase + 1) % step;
        }
        if run >= len && phase == 0 {
            bits[i / 64] |= 1 << (i % 64);
        }
    }
    bits
}

/// The suffix array of one part. With `step` 1 it keeps every position: a window that holds a
/// separator (or runs past the part) never equals a valid one, and the merge leaves its groups
/// alone, which saves a pass of random lookups over the whole array. With larger steps it keeps
/// only the window starts (every `step` bytes before a separator), which the bytes alone cannot
/// tell.
fn part_starts(text: &[u8], len: usize, step: usize, threads: usize) -> Result<Vec<u32>> {
    if text.len() >= i32::MAX as usize {
        return Err(Error::Config(format!(
            "a suffix-array part of {} bytes is too large (at most {})",
            text.len(),
            i32::MAX - 1
        )));
    }
    let threads = u16::try_from(threads.max(1)).unwrap_or(u16::MAX);
    // Zeroed memory comes fresh from the system, untouched: the advice applies to every page.
    let mut sa: Vec<i32> = vec![0; text.len()];
    advise_huge_pages(sa.as_ptr() as *const u8, sa.len() * 4);
    SuffixArrayConstruction::for_text(text)
        .in_borrowed_buffer(&mut sa)
        .multi_threaded(ThreadCount::fixed(threads))
        .run()
        .map_err(|e| Error::Config(format!("suffix array construction failed: {e:?}")))?;
    // Same size and alignment: the conversion reuses the buffer, as does `retain`.
    let mut sa: Vec<u32> = sa.into_iter().map(|p| p as u32).collect();
    if step > 1 {
        let valid = window_starts(text, len, step);
        sa.retain(|&p| valid[p as usize / 64] & (1 << (p % 64)) != 0);
    }
    Ok(sa)
}

/// Build the parts' suffix arrays over `text`. With `spill`, every part's window starts go to a
/// file there (memory holds one part at a time); without, they stay in memory.
pub(crate) fn build_parts(
    text: &[u8],
    plan: &[(u64, u64)],
    len: usize,
    step: usize,
    threads: usize,
    spill: Option<&Path>,
) -> Result<Vec<Part>> {
    let mut parts = Vec::with_capacity(plan.len());
    for (i, &(start, end)) in plan.iter().enumerate() {
        crate::interrupt::check()?;
        let starts = part_starts(&text[start as usize..end as usize], len, step, threads)?;
        let starts = match spill {
            None => Starts::Memory(starts),
            Some(dir) => {
                let path = dir.join(format!("part-{i:05}.sa"));
                let err = |e: std::io::Error| Error::io(path.display().to_string(), e);
                let mut w = BufWriter::with_capacity(1 << 20, spill_file(&path).map_err(err)?);
                for p in &starts {
                    w.write_all(&p.to_le_bytes()).map_err(err)?;
                }
                let file = w.into_inner().map_err(|e| err(e.into_error()))?;
                drop(starts);
                // SAFETY: the file is ours (a private temporary directory) and is not changed
                // while mapped.
                Starts::File(unsafe { Mmap::map(&file) }.map_err(err)?)
            }
        };
        parts.push(Part { start, end, starts });
    }
    Ok(parts)
}

/// A new file for reading back through a memory map (which needs read access).
pub(crate) fn spill_file(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
}

/// The first `len` bytes at `pos` (a window start: they hold no separator).
fn key(text: &[u8], pos: u64, len: usize) -> &[u8] {
    &text[pos as usize..pos as usize + len]
}

/// The first `len` bytes at `pos` of `part`, or fewer at its end: keys in a part's order are
/// then sorted as its suffixes are. A key is a window only if it is `len` bytes long without a
/// separator ([`is_window`]).
fn part_key<'t>(text: &'t [u8], part: &Part, pos: u64, len: usize) -> &'t [u8] {
    &text[pos as usize..(pos + len as u64).min(part.end) as usize]
}

/// Whether a key of `len` bytes wanted is a window (within one document).
fn is_window(k: &[u8], len: usize) -> bool {
    k.len() == len && !k.contains(&SEPARATOR)
}

/// First index of `part` whose key is not below `k`.
fn lower_bound(text: &[u8], part: &Part, k: &[u8], len: usize) -> usize {
    let (mut lo, mut hi) = (0usize, part.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if part_key(text, part, part.at(mid), len) < k {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// What happens to a group of two or more equal windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Every member but the one at the smallest position.
    AllButFirst,
    /// Every member.
    All,
}

struct Head<'t> {
    key: &'t [u8],
    part: usize,
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head<'_> {}
impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head<'_> {
    /// Reversed: `BinaryHeap` pops the smallest key first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .key
            .cmp(self.key)
            .then_with(|| other.part.cmp(&self.part))
    }
}

/// Mark the windows of every group of equal windows (two or more) in `out`.
pub(crate) fn mark_repeats(
    text: &[u8],
    parts: &[Part],
    len: usize,
    mark: Mark,
    chunks: usize,
    out: &Bitmap,
) -> Result<()> {
    let Some(largest) = parts.iter().max_by_key(|p| p.len()) else {
        return Ok(());
    };
    let chunks = chunks.clamp(1, largest.len().max(1));
    // Splitter keys: windows at even steps of the largest part.
    let splitters: Vec<&[u8]> = (1..chunks)
        .map(|j| part_key(text, largest, largest.at(j * largest.len() / chunks), len))
        .collect();
    let bounds: Vec<Vec<usize>> = parts
        .par_iter()
        .map(|p| {
            let mut b = Vec::with_capacity(chunks + 1);
            b.push(0);
            b.extend(splitters.iter().map(|k| lower_bound(text, p, k, len)));
            b.push(p.len());
            b
        })
        .collect();
    (0..chunks).into_par_iter().try_for_each(|c| {
        let ranges: Vec<(usize, usize)> = bounds.iter().map(|b| (b[c], b[c + 1])).collect();
        merge_chunk(text, parts, &ranges, len, mark, out)
    })
}

/// Merge the parts' ranges of one chunk and mark its groups.
fn merge_chunk(
    text: &[u8],
    parts: &[Part],
    ranges: &[(usize, usize)],
    len: usize,
    mark: Mark,
    out: &Bitmap,
) -> Result<()> {
    let mut cursor: Vec<usize> = ranges.iter().map(|r| r.0).collect();
    let mut heap: BinaryHeap<Head<'_>> = BinaryHeap::with_capacity(parts.len());
    for (i, &(s, e)) in ranges.iter().enumerate() {
        if s < e {
            heap.push(Head {
                key: part_key(text, &parts[i], parts[i].at(s), len),
                part: i,
            });
        }
    }
    // One group: a range of indices in each of some parts.
    let mut group: Vec<(usize, usize, usize)> = Vec::with_capacity(parts.len());
    let mut groups = 0u64;
    while let Some(head) = heap.pop() {
        let k = head.key;
        group.clear();
        let mut take = |part: usize, cursor: &mut [usize]| {
            let p = &parts[part];
            let s = cursor[part];
            let end = ranges[part].1;
            let mut e = s + 1;
            while e < end {
                if e + AHEAD < end {
                    prefetch_window(text, p.at(e + AHEAD), len);
                }
                if part_key(text, p, p.at(e), len) != k {
                    break;
                }
                e += 1;
            }
            cursor[part] = e;
            group.push((part, s, e));
        };
        take(head.part, &mut cursor);
        while heap.peek().is_some_and(|h| h.key == k) {
            if let Some(h) = heap.pop() {
                take(h.part, &mut cursor);
            }
        }
        let size: usize = group.iter().map(|&(_, s, e)| e - s).sum();
        if size >= 2 && is_window(k, len) {
            let first = match mark {
                Mark::All => None,
                Mark::AllButFirst => group
                    .iter()
                    .flat_map(|&(part, s, e)| (s..e).map(move |i| parts[part].at(i)))
                    .min(),
            };
            for &(part, s, e) in &group {
                let p = &parts[part];
                for i in s..e {
                    if i + AHEAD < e {
                        out.prefetch(p.at(i + AHEAD));
                    }
                    let pos = p.at(i);
                    if Some(pos) != first {
                        out.set(pos);
                    }
                }
            }
        }
        for &(part, _, _) in &group {
            let c = cursor[part];
            if c < ranges[part].1 {
                heap.push(Head {
                    key: part_key(text, &parts[part], parts[part].at(c), len),
                    part,
                });
            }
        }
        groups += 1;
        if groups.is_multiple_of(1 << 16) {
            crate::interrupt::check()?;
        }
    }
    Ok(())
}

/// The smallest position holding the same window as each position of `queries` (window
/// starts), found by binary search in every part. Queries with equal windows (copies of one
/// boilerplate) share one search.
pub(crate) fn first_occurrences(
    text: &[u8],
    parts: &[Part],
    len: usize,
    queries: &[u64],
) -> Vec<u64> {
    let mut order: Vec<usize> = (0..queries.len()).collect();
    order.par_sort_unstable_by(|&a, &b| {
        key(text, queries[a], len)
            .cmp(key(text, queries[b], len))
            .then(a.cmp(&b))
    });
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, &qi) in order.iter().enumerate() {
        let k = key(text, queries[qi], len);
        match runs.last_mut() {
            Some(r) if key(text, queries[order[r.0]], len) == k => r.1 = i + 1,
            _ => runs.push((i, i + 1)),
        }
    }
    let firsts: Vec<u64> = runs
        .par_iter()
        .map(|&(s, _)| {
            let q = queries[order[s]];
            let k = key(text, q, len);
            parts
                .iter()
                .filter_map(|p| {
                    let mut i = lower_bound(text, p, k, len);
                    let mut min: Option<u64> = None;
                    while i < p.len() && part_key(text, p, p.at(i), len) == k {
                        let pos = p.at(i);
                        min = Some(min.map_or(pos, |m| m.min(pos)));
                        i += 1;
                    }
                    min
                })
                .min()
                .unwrap_or(q)
        })
        .collect();
    let mut out = vec![0u64; queries.len()];
    for (&(s, e), &first) in runs.iter().zip(&firsts) {
        for &i in &order[s..e] {
            out[i] = first;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every window start marked by brute force: windows equal to an earlier one (or to any
    /// other, with `Mark::All`).
    fn brute(text: &[u8], len: usize, mark: Mark) -> Vec<u64> {
        let valid = window_starts(text, len, 1);
        let starts: Vec<usize> = (0..text.len())
            .filter(|&i| valid[i / 64] & (1 << (i % 64)) != 0)
            .collect();
        let mut out = Vec::new();
        for &i in &starts {
            let w = &text[i..i + len];
            let earlier = starts.iter().any(|&j| j < i && &text[j..j + len] == w);
            let other = starts.iter().any(|&j| j != i && &text[j..j + len] == w);
            if (mark == Mark::AllButFirst && earlier) || (mark == Mark::All && other) {
                out.push(i as u64);
            }
        }
        out
    }

    fn corpus(seed: u64, docs: usize) -> (Vec<u8>, Vec<u64>) {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut text = Vec::new();
        let mut ends = Vec::new();
        for _ in 0..docs {
            let n = (next() % 60) as usize;
            for _ in 0..n {
                // A small alphabet: many repeats.
                text.push(b"abc"[(next() % 3) as usize]);
            }
            text.push(SEPARATOR);
            ends.push(text.len() as u64);
        }
        (text, ends)
    }

    #[test]
    fn marks_equal_brute_force_for_any_parts_and_chunks() {
        for seed in 1..6u64 {
            let (text, ends) = corpus(seed, 40);
            for len in [1, 3, 8] {
                for mark in [Mark::AllButFirst, Mark::All] {
                    let expected = brute(&text, len, mark);
                    for cap in [u64::MAX, 200, 64] {
                        let plan = plan_parts(&ends, cap).expect("plan");
                        let dir = tempfile::tempdir().expect("tmp");
                        for spill in [None, Some(dir.path())] {
                            let parts = build_parts(&text, &plan, len, 1, 2, spill).expect("build");
                            for chunks in [1, 3, 16] {
                                let out = Bitmap::new(text.len() as u64);
                                mark_repeats(&text, &parts, len, mark, chunks, &out).expect("mark");
                                let got: Vec<u64> = out.ones(0, text.len() as u64).collect();
                                assert_eq!(
                                    got, expected,
                                    "seed {seed} len {len} cap {cap} chunks {chunks}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn first_occurrence_is_the_smallest_equal_window() {
        let (text, ends) = corpus(9, 30);
        let len = 4;
        let plan = plan_parts(&ends, 100).expect("plan");
        let parts = build_parts(&text, &plan, len, 1, 1, None).expect("build");
        let valid = window_starts(&text, len, 1);
        let queries: Vec<u64> = (0..text.len() as u64)
            .filter(|&i| valid[i as usize / 64] & (1 << (i % 64)) != 0)
            .collect();
        let firsts = first_occurrences(&text, &parts, len, &queries);
        for (&q, &f) in queries.iter().zip(&firsts) {
            let w = &text[q as usize..q as usize + len];
            let expected = queries
                .iter()
                .find(|&&j| &text[j as usize..j as usize + len] == w)
                .copied();
            assert_eq!(Some(f), expected);
        }
    }

    #[test]
    fn window_starts_are_aligned_to_symbols() {
        // Two documents of 3-byte symbols: "abcdef" (2 symbols), "ghi" (1).
        let text = b"abcdef\xffghi\xff";
        let bits = window_starts(text, 3, 3);
        let set: Vec<usize> = (0..text.len())
            .filter(|&i| bits[i / 64] & (1 << (i % 64)) != 0)
            .collect();
        assert_eq!(set, vec![0, 3, 7]);
        let bits = window_starts(text, 6, 3);
        assert_eq!(bits[0], 1);
    }

    #[test]
    fn plan_cuts_at_document_ends() {
        assert_eq!(plan_parts(&[3, 6, 9], 6), Ok(vec![(0, 6), (6, 9)]));
        assert_eq!(plan_parts(&[3, 6, 9], 100), Ok(vec![(0, 9)]));
        assert_eq!(plan_parts(&[3, 10], 5), Err(7));
        assert_eq!(plan_parts(&[], 5), Ok(vec![]));
    }

    #[test]
    fn bitmap_ones_in_range() {
        let b = Bitmap::new(200);
        for i in [0, 5, 63, 64, 130, 199] {
            b.set(i);
        }
        assert_eq!(b.ones(5, 131).collect::<Vec<_>>(), vec![5, 63, 64, 130]);
        assert!(b.get(199) && !b.get(198));
    }
}
