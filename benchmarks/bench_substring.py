#!/usr/bin/env python3
"""Exact-substring deduplication: ``tamis dedup substring`` side by side with Google's
``deduplicate-text-datasets`` (Lee et al. 2022, "ExactSubstr"), on the same documents and the
same minimum length, with a comparison of the duplicated spans the two find.

Google's tool (https://github.com/google-research/deduplicate-text-datasets) works on one byte
string, not on documents. The script writes that string the way its ``scripts/load_dataset.py``
does without ``--tokenize``: for every document, in input order, the separator
``b"\\xff\\xff" + struct.pack("<I", n)`` (n = 1, 2, ... the document's number) then the document's
text as UTF-8, and a ``.size`` file of uint64 offsets where each separator starts (0 first, the
file size last). Then, as its README runs it, each step timed with GNU time (peak RSS of the
largest process) and a sampler of the whole process tree's RSS:

1. suffix array: ``python scripts/make_suffix_array.py DATA`` (the README's way; it runs
   ``./target/debug/dedup_dataset make-part`` on 1, 4 or 96 pieces chosen by the file size, then
   ``merge`` with ``os.cpu_count()`` threads, in a directory holding ``tmp/``; the script gives it
   one whose ``target/debug/dedup_dataset`` is a link to the release binary), or with
   ``--sa-method make`` the single-process ``dedup_dataset make --data-file DATA``;
2. ``dedup_dataset self-similar --data-file DATA --length-threshold L --cache-dir CACHE
   --num-threads T`` (writes ``dups_*``/``sizes_*`` files of little-endian window offsets);
3. ``dedup_dataset collect --data-file DATA --cache-dir CACHE --length-threshold L`` (prints
   ``out`` and then one merged byte range ``a b`` per line: every byte of [a, b) lies in a
   duplicated window of L bytes).

Writing the data file ("load") is timed too, but it is this script's Python, and the Google total
is reported with and without it. Google's pipeline stops at byte ranges: turning them into a
deduplicated JSONL is left to the user (its README), while tamis' time includes writing it.

tamis: ``tamis dedup substring CORPUS -o OUT --min-length L --keep none --spans SPANS --threads T``
(``--keep none`` removes every duplicated window, Google's semantics), then the same with the
default ``--keep first`` for reference.

Comparison (byte offsets in each document's UTF-8 text; a span is (document, start, end)):

- Google's collected ranges are cut at the text regions of the documents (a range may start or
  end in a separator, or cover one and touch two documents: its windows may include separator
  bytes, e.g. a shared ``\\x00\\x00`` of the document numbers, see its issues #24 and #39), then
  merged per document and shrunk to UTF-8 character boundaries as tamis does (start moves right to
  the next character start, end moves left to the previous character end, empty spans dropped).
  How many ranges held separator bytes or touched two documents is reported on its own.
  Expected differences from tamis: Google also flags text next to a separator when the text
  plus separator bytes repeat, e.g. the last L-1 bytes of two documents (``text + b"\xff"``), the
  first L-3 bytes after numbers that share their high bytes (``b"\x00\x00\x00" + text``), or a
  whole document shorter than L that occurs twice.
- "Google windows": the same from Google's ``dups`` files, keeping only windows that lie inside
  one document's text: this is tamis' contract exactly (windows never cross documents), so it
  should equal tamis' ``--keep none`` spans span for span. On by default up to 200 MB of data
  (``--windows``/``--no-windows``); it holds every window offset in memory (8 bytes each).
- ``--oracle``: a brute-force Python reference (every L-byte window in a dict) for both keep
  policies, for small inputs.
- Printed: identical spans, spans only in one side, bytes in both / only in one, documents that
  differ, and a few examples of differences with their text.

Usage:
    python benchmarks/bench_substring.py --bytes 20M --google-dir /path/to/deduplicate-text-datasets
    python benchmarks/bench_substring.py benchmarks/data/corpus.jsonl --threads 2 --record
    python benchmarks/bench_substring.py --self-test

Google's tool must be built first: ``git clone https://github.com/google-research/deduplicate-text-datasets
DIR && cd DIR && cargo build --release`` (``--google-dir DIR``, or ``$GOOGLE_DEDUP_DIR``; default
``benchmarks/out/deduplicate-text-datasets``). Its ``make_suffix_array.py`` needs numpy
(``--google-python``, default this interpreter).

Disk, for N bytes of text: N (data) + 4N (suffix array: 4-byte offsets from 16 MB to 4 GB, 5 above)
+ while make_suffix_array.py ends, its parts (~4N) and two copies of the merged table (8N) + the
dups files (3-5 bytes per duplicated window) + tamis' outputs. The parts, the suffix array and the
dups files are deleted after use unless ``--keep-work``.
Memory (measured on 18 MB of benchmarks/data/corpus.jsonl: ``make`` 12.6 bytes per data byte,
``collect`` ~16.5 bytes per duplicated window): above 10^9 bytes make_suffix_array.py runs 96
``make-part`` processes at once (~13 GB for 1 GB); ``collect`` holds every duplicated window's
offset twice as u64. That corpus is cut from a 16 MB pool of text, so nearly every window of the
whole 1.1 GB corpus is duplicated: expect ``collect`` to need ~15 GB there.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import hashlib
import json
import mmap
import os
import platform
import re
import resource
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_CORPUS = HERE / "data" / "corpus.jsonl"
DEFAULT_OUT_DIR = HERE / "out" / "substring"
DEFAULT_GOOGLE_DIR = Path(os.environ.get("GOOGLE_DEDUP_DIR", HERE / "out" / "deduplicate-text-datasets"))
RESULTS = HERE / "RESULTS.md"
GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
SEP_PREFIX = b"\xff\xff"  # load_dataset.py's default --pre_sep (--post_sep is empty)
SEP_LEN = len(SEP_PREFIX) + 4  # + the document number, uint32 little-endian
WINDOWS_AUTO_MAX = 200_000_000  # data bytes up to which the Google-windows comparison is on by default
ORACLE_MAX = 3_000_000  # text bytes up to which --oracle is allowed
CHUNK = 16 << 20

Span = tuple[int, int, int]  # (document index, start, end), byte offsets into the document's text


# --------------------------------------------------------------------------------------------
# Pure functions (no files, no processes): the mapping and the comparison. --self-test checks them.
# --------------------------------------------------------------------------------------------


def separator(number: int) -> bytes:
    """The bytes load_dataset.py writes before document ``number`` (1-based)."""
    return SEP_PREFIX + struct.pack("<I", number)


def is_continuation(byte: int) -> bool:
    return 0x80 <= byte < 0xC0


def shrink_utf8(buf: Any, start: int, end: int, limit: int) -> tuple[int, int]:
    """Shrink [start, end) of ``buf`` to UTF-8 character boundaries, as tamis does: the start moves
    right to the next character start, the end moves left to the previous character end. ``limit``
    is the end of the text the span lies in (a boundary whatever byte follows). The result may be
    empty (start >= end)."""
    while start < end and is_continuation(buf[start]):
        start += 1
    while end > start and end < limit and is_continuation(buf[end]):
        end -= 1
    return start, end


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of half-open intervals as maximal intervals; touching ones ([a,b), [b,c)) merge."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(intervals):
        if s >= e:
            continue
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


@dataclass
class Layout:
    """Where each document lies in Google's data file: record k (0-based) is the separator of
    document k+1 at ``starts[k]``, then the text up to ``starts[k+1]`` (the file size at the end)."""

    starts: list[int]  # len = documents + 1

    @property
    def documents(self) -> int:
        return len(self.starts) - 1

    def text_start(self, doc: int) -> int:
        return self.starts[doc] + SEP_LEN

    def text_end(self, doc: int) -> int:
        return self.starts[doc + 1]

    @classmethod
    def from_texts(cls, texts: Sequence[bytes]) -> Layout:
        starts = [0]
        for t in texts:
            starts.append(starts[-1] + SEP_LEN + len(t))
        return cls(starts)


@dataclass
class RangeMapping:
    spans: list[Span]  # clipped to text regions, merged per document, NOT yet shrunk
    ranges: int = 0
    ranges_with_separator_bytes: int = 0  # ranges not contained in one document's text
    ranges_multi_document: int = 0  # ranges whose bytes touch the texts of two or more documents
    ranges_only_separator: int = 0  # ranges with no text byte at all
    separator_bytes: int = 0  # bytes of the ranges that lie in separators
    examples: list[tuple[int, int]] = field(default_factory=list)  # a few ranges with separator bytes


def map_ranges(ranges: Iterable[tuple[int, int]], layout: Layout, max_examples: int = 5) -> RangeMapping:
    """Google's global byte ranges [a, b) → per-document spans (cut at the text regions, merged)."""
    starts = layout.starts
    total = starts[-1]
    per_doc: dict[int, list[tuple[int, int]]] = {}
    m = RangeMapping([])
    for a, b in ranges:
        a, b = max(0, a), min(b, total)
        if a >= b:
            continue
        m.ranges += 1
        rec = bisect.bisect_right(starts, a) - 1
        text_bytes = 0
        docs = 0
        while rec < layout.documents and starts[rec] < b:
            s, e = max(a, layout.text_start(rec)), min(b, layout.text_end(rec))
            if s < e:
                per_doc.setdefault(rec, []).append((s - layout.text_start(rec), e - layout.text_start(rec)))
                text_bytes += e - s
                docs += 1
            rec += 1
        if text_bytes != b - a:
            m.ranges_with_separator_bytes += 1
            m.separator_bytes += b - a - text_bytes
            if len(m.examples) < max_examples:
                m.examples.append((a, b))
        if docs > 1:
            m.ranges_multi_document += 1
        if docs == 0:
            m.ranges_only_separator += 1
    m.spans = [(d, s, e) for d in sorted(per_doc) for s, e in merge_intervals(per_doc[d])]
    return m


def windows_to_spans(positions: Iterable[int], length: int, layout: Layout) -> tuple[list[Span], int]:
    """Window start offsets (global) → per-document spans of the windows inside one text (merged,
    not shrunk), and the number of distinct windows that reach outside their document's text."""
    per_doc: dict[int, list[tuple[int, int]]] = {}
    crossing = 0
    for p in sorted(set(positions)):
        rec = bisect.bisect_right(layout.starts, p) - 1
        ts, te = layout.text_start(rec), layout.text_end(rec)
        if p >= ts and p + length <= te:
            per_doc.setdefault(rec, []).append((p - ts, p - ts + length))
        else:
            crossing += 1
    return [(d, s, e) for d in sorted(per_doc) for s, e in merge_intervals(per_doc[d])], crossing


def shrink_spans(spans: Iterable[Span], buf: Any, layout: Layout) -> list[Span]:
    """Shrink each span to UTF-8 boundaries (``buf`` is Google's data file); drop empty ones."""
    out: list[Span] = []
    for d, s, e in spans:
        base = layout.text_start(d)
        gs, ge = shrink_utf8(buf, base + s, base + e, layout.text_end(d))
        if gs < ge:
            out.append((d, gs - base, ge - base))
    return out


def oracle_spans(texts: Sequence[bytes], length: int, keep: str) -> list[Span]:
    """The contract of ``tamis dedup substring`` by brute force (small inputs only): every window
    of ``length`` bytes, removed when duplicated (keep none) or when an earlier window (earlier
    document, or same document at a smaller offset) has the same bytes (keep first); per document
    the union as maximal intervals, shrunk to UTF-8 character boundaries."""
    first: dict[bytes, tuple[int, int]] = {}
    count: dict[bytes, int] = {}
    for d, t in enumerate(texts):
        for q in range(len(t) - length + 1):
            w = t[q : q + length]
            if w not in first:
                first[w] = (d, q)
                count[w] = 1
            else:
                count[w] += 1
    out: list[Span] = []
    for d, t in enumerate(texts):
        removed = []
        for q in range(len(t) - length + 1):
            w = t[q : q + length]
            if (keep == "none" and count[w] > 1) or (keep == "first" and first[w] != (d, q)):
                removed.append((q, q + length))
        for s, e in merge_intervals(removed):
            s, e = shrink_utf8(t, s, e, len(t))
            if s < e:
                out.append((d, s, e))
    return out


def _intersection(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int:
    """Bytes in both of two sorted lists of disjoint intervals."""
    i = j = n = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            n += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return n


@dataclass
class Comparison:
    left: str
    right: str
    left_spans: int = 0
    right_spans: int = 0
    identical: int = 0
    only_left: int = 0
    only_right: int = 0
    bytes_left: int = 0
    bytes_right: int = 0
    bytes_both: int = 0
    docs_left: int = 0
    docs_right: int = 0
    docs_differ: int = 0
    # (document, spans only on the left, spans only on the right), the first few documents that differ
    examples: list[tuple[int, list[tuple[int, int]], list[tuple[int, int]]]] = field(default_factory=list)

    @property
    def bytes_only_left(self) -> int:
        return self.bytes_left - self.bytes_both

    @property
    def bytes_only_right(self) -> int:
        return self.bytes_right - self.bytes_both

    @property
    def same(self) -> bool:
        return self.only_left == 0 and self.only_right == 0

    def summary(self) -> str:
        return (
            f"{self.left} vs {self.right}: {self.identical:,} identical spans, "
            f"{self.only_left:,} only in {self.left}, {self.only_right:,} only in {self.right} "
            f"({self.left_spans:,} / {self.right_spans:,} spans); bytes: {self.bytes_both:,} in both, "
            f"{self.bytes_only_left:,} only in {self.left}, {self.bytes_only_right:,} only in {self.right}; "
            f"documents with spans {self.docs_left:,} / {self.docs_right:,}, {self.docs_differ:,} differ"
        )


def compare_spans(
    left: Iterable[Span], right: Iterable[Span], left_name: str, right_name: str, max_examples: int = 5
) -> Comparison:
    """Compare two sets of spans: span for span (as sets), and byte for byte (the union per document)."""
    lt: dict[int, list[tuple[int, int]]] = {}
    rt: dict[int, list[tuple[int, int]]] = {}
    for d, s, e in left:
        lt.setdefault(d, []).append((s, e))
    for d, s, e in right:
        rt.setdefault(d, []).append((s, e))
    c = Comparison(left_name, right_name)
    for d in sorted(lt.keys() | rt.keys()):
        a, b = sorted(lt.get(d, [])), sorted(rt.get(d, []))
        sa, sb = set(a), set(b)
        both = sa & sb
        c.left_spans += len(a)
        c.right_spans += len(b)
        c.identical += len(both)
        c.only_left += len(sa - both)
        c.only_right += len(sb - both)
        ma, mb = merge_intervals(a), merge_intervals(b)  # bytes count once even if spans overlap
        c.bytes_left += sum(e - s for s, e in ma)
        c.bytes_right += sum(e - s for s, e in mb)
        c.bytes_both += _intersection(ma, mb)
        c.docs_left += bool(a)
        c.docs_right += bool(b)
        if sa != sb:
            c.docs_differ += 1
            if len(c.examples) < max_examples:
                c.examples.append((d, sorted(sa - both), sorted(sb - both)))
    return c


def read_collect_output(path: Path) -> list[tuple[int, int]]:
    """The ranges ``collect`` prints after its ``out`` line (before it: progress lines)."""
    ranges: list[tuple[int, int]] = []
    seen_out = False
    with path.open() as f:
        for line in f:
            if not seen_out:
                seen_out = line.strip() == "out"
                continue
            parts = line.split()
            if len(parts) == 2:
                ranges.append((int(parts[0]), int(parts[1])))
    return ranges


def read_tamis_spans(path: Path, ids: Sequence[str]) -> list[Span]:
    """tamis' ``--spans`` file → spans. Lines come in output (= input) order, so an id that occurs
    more than once in the input is resolved to its first occurrence at or after the previous line's
    document."""
    where: dict[str, list[int]] = {}
    for i, x in enumerate(ids):
        where.setdefault(x, []).append(i)
    out: list[Span] = []
    cursor = 0
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            key = rec["id"] if isinstance(rec["id"], str) else json.dumps(rec["id"])
            cands = where.get(key)
            if not cands:
                raise ValueError(f"{path}: span for unknown id {key!r}")
            k = bisect.bisect_left(cands, cursor)
            doc = cands[k] if k < len(cands) else cands[-1]
            cursor = doc
            out.append((doc, int(rec["start"]), int(rec["end"])))
    return out


def id_of(rec: Any, name: str, line_no: int) -> str:
    """The id tamis uses for a record: the id field as a string, or ``NAME:LINE`` when missing."""
    v = rec.get("id") if isinstance(rec, dict) else None
    if v is None:
        return f"{name}:{line_no}"
    return v if isinstance(v, str) else json.dumps(v)


# --------------------------------------------------------------------------------------------
# Processes: timing, peak RSS
# --------------------------------------------------------------------------------------------


def busy_seconds() -> float:
    """CPU seconds spent not idle, over all cores, since boot (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return float(user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def tree_rss_kib(root: int) -> int:
    """Sum of the resident set sizes of ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page_kib
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(pid, []))
    return total


class TreeSampler(threading.Thread):
    """Samples the RSS of a process tree every ``interval`` seconds; keeps the peak."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root, self.interval, self.peak_kib = root, interval, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak_kib = max(self.peak_kib, tree_rss_kib(self.root))
            self.done.wait(self.interval)


@dataclass
class Step:
    tool: str
    name: str
    cmd: list[str]
    wall: float = 0.0
    user: float = 0.0
    sys: float = 0.0
    other: float = 0.0  # CPU seconds other processes used meanwhile
    maxrss_kib: int = 0  # largest single process (GNU time)
    tree_kib: int = 0  # sampled sum over the process tree
    rc: int = 0
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0


def raise_nofile() -> None:
    """Google's README: run with a high open-file limit (make_suffix_array.py opens many files)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_step(step: Step, log_dir: Path, cwd: Path | None = None, stdout: Path | None = None) -> Step:
    """Run a step under GNU time; fill in its times, peak RSS and exit status."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{step.tool}-{step.name}").strip("-")
    out_path = stdout or log_dir / f"{slug}.stdout"
    err_path = log_dir / f"{slug}.stderr"
    usage = log_dir / f"{slug}.rusage"
    cmd = [GNU_TIME, "-f", "%U %S %M", "-o", str(usage), *step.cmd] if GNU_TIME else step.cmd
    os.sync()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        b0 = busy_seconds()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd, preexec_fn=raise_nofile
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, ru = os.wait4(proc.pid, 0)
        step.wall = time.perf_counter() - t0
        busy = busy_seconds() - b0
        sampler.done.set()
        sampler.join()
    step.rc = os.waitstatus_to_exitcode(status)
    step.user, step.sys, step.maxrss_kib = ru.ru_utime, ru.ru_stime, ru.ru_maxrss
    if GNU_TIME and usage.exists():
        lines = usage.read_text().strip().splitlines()
        try:
            u, s, m = lines[-1].split()
            step.user, step.sys, step.maxrss_kib = float(u), float(s), int(m)
        except (IndexError, ValueError):
            pass
        usage.unlink()
    step.tree_kib = max(sampler.peak_kib, step.maxrss_kib)
    step.other = max(0.0, busy - ru.ru_utime - ru.ru_stime)
    if step.rc != 0:
        tail = err_path.read_text(errors="replace").strip().splitlines()
        tail = tail or out_path.read_text(errors="replace").strip().splitlines()
        step.note = f"FAILED (exit {step.rc}): {tail[-1] if tail else ''}"
    print(
        f"  {step.tool:7s} {step.name:32s} {step.wall:8.2f} s wall, user {step.user:.2f} s, "
        f"sys {step.sys:.2f} s, peak RSS {step.maxrss_kib / 1024:,.0f} MiB "
        f"(tree {step.tree_kib / 1024:,.0f} MiB), other load {step.other / max(step.wall, 1e-9):.2f} cores"
        + (f": {step.note}" if step.note else ""),
        flush=True,
    )
    return step


# --------------------------------------------------------------------------------------------
# Input: the slice, and Google's data file (the "load" worker runs in its own process)
# --------------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgG]?)[bB]?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(float(m.group(1)) * {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[m.group(2).lower()])


def make_slice(corpus: Path, out: Path, docs: int | None, nbytes: int | None) -> tuple[int, int]:
    """The first documents of the corpus (whole lines) up to ``docs`` lines or ``nbytes`` bytes."""
    n = written = 0
    with corpus.open("rb") as src, out.open("wb") as dst:
        for line in src:
            if docs is not None and n >= docs:
                break
            if nbytes is not None and written + len(line) > nbytes and n > 0:
                break
            dst.write(line)
            written += len(line)
            n += bool(line.strip())
    return n, written


def worker_load(inp: Path, data: Path, ids_path: Path) -> dict[str, Any]:
    """Write Google's data file as load_dataset.py does (bytes mode), its ``.size`` file, and the
    ids tamis will use (to read tamis' spans back)."""
    t0 = time.perf_counter()
    sizes = array("Q", [0])
    ids: list[str] = []
    number = 0
    with inp.open("rb") as f, data.open("wb", buffering=1 << 20) as out:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            text = rec["text"].encode("utf-8")
            number += 1
            piece = separator(number) + text
            out.write(piece)
            sizes.append(sizes[-1] + len(piece))
            ids.append(id_of(rec, inp.name, line_no))
    with open(f"{data}.size", "wb") as g:
        sizes.tofile(g)
    ids_path.write_text(json.dumps(ids))
    return {"seconds": time.perf_counter() - t0, "documents": number, "bytes": sizes[-1]}


def read_layout(data: Path) -> Layout:
    sizes = array("Q")
    with open(f"{data}.size", "rb") as f:
        sizes.frombytes(f.read())
    return Layout(list(sizes))


# --------------------------------------------------------------------------------------------
# Google's pipeline
# --------------------------------------------------------------------------------------------


def google_binary(gdir: Path) -> Path | None:
    for p in (gdir / "target" / "release" / "dedup_dataset", gdir / "target" / "debug" / "dedup_dataset"):
        if p.exists():
            return p
    return None


def google_commit(gdir: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(gdir), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def read_dups(cache: Path, data: Path, width: int) -> Any:
    """All window offsets in the ``dups_*`` files (numpy uint64, unsorted, may repeat)."""
    import numpy as np

    parts = []
    for p in sorted(cache.glob(f"dups_{data.name}_*")):
        raw = np.fromfile(p, dtype=np.uint8)
        if raw.size % width:
            raise ValueError(f"{p}: size {raw.size} is not a multiple of the pointer width {width}")
        if width in (1, 2, 4, 8):
            parts.append(raw.view(f"<u{width}").astype(np.uint64))
        else:
            cols = raw.reshape(-1, width).astype(np.uint64)
            parts.append(sum(cols[:, k] << np.uint64(8 * k) for k in range(width)))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def windows_from_dups(
    cache: Path, data: Path, width: int, length: int, layout: Layout
) -> tuple[list[Span], int]:
    """Google's duplicated windows inside one text → merged per-document spans (numpy for the
    bulk; same result as windows_to_spans), and the number of distinct windows reaching outside."""
    import numpy as np

    pos = read_dups(cache, data, width)
    pos.sort()  # (np.unique hashes first in numpy 2: much slower here)
    if pos.size:
        pos = pos[np.concatenate(([True], pos[1:] != pos[:-1]))]
    starts = np.asarray(layout.starts, dtype=np.uint64)
    rec = np.searchsorted(starts, pos, side="right") - 1
    ts = starts[rec] + np.uint64(SEP_LEN)
    te = starts[rec + 1]
    inside = (pos >= ts) & (pos + np.uint64(length) <= te)
    crossing = int(pos.size - int(inside.sum()))
    pos, rec = pos[inside], rec[inside]
    del ts, te, inside
    if pos.size == 0:
        return [], crossing
    # windows of one length: a new interval starts where the gap to the previous start exceeds L
    brk = np.flatnonzero(np.diff(pos) > np.uint64(length)) + 1
    first = np.concatenate(([0], brk))
    last = np.concatenate((brk - 1, [pos.size - 1]))
    g_s, g_e, docs = pos[first], pos[last] + np.uint64(length), rec[first]
    base = starts[docs] + np.uint64(SEP_LEN)
    spans = list(zip(docs.tolist(), (g_s - base).tolist(), (g_e - base).tolist(), strict=True))
    return spans, crossing


def run_google(
    args: argparse.Namespace, gbin: Path, data: Path, work: Path, logs: Path
) -> tuple[list[Step], Path | None, str]:
    """Suffix array, self-similar, collect. Returns the steps, the ranges file and a note."""
    steps: list[Step] = []
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)  # collect reads every dups_NAME_* file there
    for p in list(work.glob(f"{data.name}.part.*")) + [Path(f"{data}.table.bin")]:
        p.unlink(missing_ok=True)
    note = ""
    if args.sa_method == "script":
        # make_suffix_array.py runs ./target/debug/dedup_dataset and writes tmp/out.table.bin.* in
        # its working directory: give it one where that path is the release binary.
        (work / "target" / "debug").mkdir(parents=True, exist_ok=True)
        link = work / "target" / "debug" / "dedup_dataset"
        link.unlink(missing_ok=True)
        link.symlink_to(gbin.resolve())
        (work / "tmp").mkdir(exist_ok=True)
        for p in (work / "tmp").glob("out.table.bin*"):
            p.unlink()
        script = args.google_dir / "scripts" / "make_suffix_array.py"
        sa = Step(
            "google", "suffix array (make_suffix_array.py)", [args.google_python, str(script), data.name]
        )
        size = data.stat().st_size
        jobs = 96 if size > 1e9 else 4 if size > 10e6 else 1
        sa.note = f"{jobs} make-part jobs at once, merge with {os.cpu_count()} threads (os.cpu_count())"
        run_step(sa, logs, cwd=work)
        # the script leaves its pieces behind
        for p in list(work.glob(f"{data.name}.part.*")) + list((work / "tmp").glob("out.table.bin*")):
            if not args.keep_work:
                p.unlink()
    else:
        sa = Step("google", "suffix array (make)", [str(gbin), "make", "--data-file", str(data)])
        sa.note = "one process, one thread"
        run_step(sa, logs)
    steps.append(sa)
    table = Path(f"{data}.table.bin")
    if not sa.ok or not table.exists() or table.stat().st_size % data.stat().st_size:
        sa.rc = sa.rc or 1
        sa.note = sa.note if sa.note.startswith("FAILED") else f"FAILED: no valid {table.name}; {sa.note}"
        return steps, None, note
    ss = Step(
        "google",
        "self-similar",
        [
            str(gbin),
            "self-similar",
            "--data-file",
            str(data),
            "--length-threshold",
            str(args.min_length),
            "--cache-dir",
            str(cache),
            "--num-threads",
            str(args.threads),
        ],
    )
    run_step(ss, logs)
    steps.append(ss)
    if ss.ok:
        out = (logs / "google-self-similar.stdout").read_text(errors="replace")
        m = re.search(r"Duplicates found: (\d+)", out)
        if m:
            ss.note = f"duplicates found: {int(m.group(1)):,} (window offsets written)"
    if not ss.ok:
        return steps, None, note
    ranges = work / "ranges.txt"
    co = Step(
        "google",
        "collect",
        [
            str(gbin),
            "collect",
            "--data-file",
            str(data),
            "--cache-dir",
            str(cache),
            "--length-threshold",
            str(args.min_length),
        ],
    )
    run_step(co, logs, stdout=ranges)
    steps.append(co)
    return steps, ranges if co.ok else None, note


# --------------------------------------------------------------------------------------------
# tamis
# --------------------------------------------------------------------------------------------


def tamis_stats_flag(tamis: str) -> str | None:
    """``--stats`` (the contract) or ``--stats-json`` (the other dedup commands), whichever exists."""
    try:
        text = subprocess.run(
            [tamis, "dedup", "substring", "--help"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for flag in ("--stats-json", "--stats"):
        if re.search(rf"{re.escape(flag)}\b(?!-)", text):
            return flag
    return None


def run_tamis(args: argparse.Namespace, corpus: Path, work: Path, logs: Path, keep: str) -> tuple[Step, Path]:
    out = work / f"tamis-keep-{keep}.jsonl"
    spans = work / f"tamis-keep-{keep}.spans.jsonl"
    stats = work / f"tamis-keep-{keep}.stats.json"
    for p in (out, spans, stats):
        p.unlink(missing_ok=True)
    cmd = [
        *shlex.split(args.tamis),
        "dedup",
        "substring",
        str(corpus),
        "-o",
        str(out),
        "--min-length",
        str(args.min_length),
        "--keep",
        keep,
        "--spans",
        str(spans),
        "--threads",
        str(args.threads),
    ]
    if args.stats_flag:
        cmd += [args.stats_flag, str(stats)]
    step = run_step(Step("tamis", f"dedup substring --keep {keep}", cmd), logs)
    if step.ok and stats.exists():
        try:
            info = json.loads(stats.read_text())
            counters = info.get("counters", info)
            bits = [
                f"{k}={counters[k]:,}"
                for k in (
                    "substring_spans",
                    "substring_bytes_removed",
                    "documents_changed",
                    "substring_parts",
                )
                if isinstance(counters.get(k), int)
            ]
            if isinstance(info.get("seconds"), (int, float)):
                bits.insert(0, f"in-process {info['seconds']:.2f} s")
            step.note = ", ".join(bits)
        except (ValueError, AttributeError):
            pass
    return step, spans


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def snippet(buf: Any, lo: int, hi: int, s: int, e: int, ctx: int = 24, width: int = 60) -> str:
    """Text of global [s, e) with ``ctx`` bytes of context, the span in ⟦ ⟧, long middles elided."""

    def show(b: bytes) -> str:
        return repr(bytes(b))[2:-1]

    mid = bytes(buf[s:e])
    if len(mid) > width:
        mid_s = show(mid[: width // 2]) + f"…({len(mid) - width} bytes)…" + show(mid[-width // 2 :])
    else:
        mid_s = show(mid)
    return f"{show(buf[max(lo, s - ctx) : s])}⟦{mid_s}⟧{show(buf[e : min(hi, e + ctx)])}"


def describe_examples(c: Comparison, buf: Any, layout: Layout, ids: Sequence[str]) -> list[str]:
    lines = []
    for d, only_l, only_r in c.examples:
        ts, te = layout.text_start(d), layout.text_end(d)
        lines.append(f"document {d} (id {ids[d]!r}, {te - ts:,} bytes):")
        for side, spans in ((c.left, only_l), (c.right, only_r)):
            for s, e in spans[:3]:
                where = []
                if s == 0:
                    where.append("at text start")
                if ts + e == te:
                    where.append("at text end")
                at = f" ({', '.join(where)})" if where else ""
                lines.append(
                    f"  only {side}: [{s}, {e}) {e - s} bytes{at}: {snippet(buf, ts, te, ts + s, ts + e)}"
                )
            if len(spans) > 3:
                lines.append(f"  only {side}: … {len(spans) - 3} more")
    return lines


def fenced(lines: Iterable[str]) -> str:
    """Example lines (raw text, escapes) as a fenced block, for the console and for Markdown."""
    return "\n".join(["  ```", *(f"  {line}" for line in lines), "  ```"])


def fmt_mib(kib: int) -> str:
    return f"{kib / 1024:,.0f}"


def steps_table(steps: list[Step], text_bytes: int) -> str:
    head = [
        "tool",
        "step",
        "wall s",
        "MB/s",
        "user s",
        "sys s",
        "CPU",
        "peak RSS MiB (largest process)",
        "peak RSS MiB (process tree, sampled)",
        "other load",
        "note",
    ]
    rows = ["| " + " | ".join(head) + " |", "|---|---" + "|---:" * 8 + "|---|"]
    for s in steps:
        rows.append(
            "| "
            + " | ".join(
                [
                    s.tool,
                    s.name,
                    f"{s.wall:.2f}",
                    f"{text_bytes / 1e6 / s.wall:.1f}" if s.wall else "",
                    f"{s.user:.2f}",
                    f"{s.sys:.2f}",
                    f"{100 * (s.user + s.sys) / max(s.wall, 1e-9):.0f}%",
                    fmt_mib(s.maxrss_kib),
                    fmt_mib(s.tree_kib),
                    f"{s.other / max(s.wall, 1e-9):.2f}",
                    s.note.replace("|", "\\|"),
                ]
            )
            + " |"
        )
    return "\n".join(rows)


def fingerprint(path: Path) -> str:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    built = dt.datetime.fromtimestamp(path.stat().st_mtime).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{path} (sha256 {sha}…, built {built})"


def machine() -> list[str]:
    def cmd_out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "n/a"

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "n/a",
    )
    mem = next(
        (
            f"{int(ln.split()[1]) / 1024**2:.1f} GiB"
            for ln in Path("/proc/meminfo").read_text().splitlines()
            if ln.startswith("MemTotal")
        ),
        "n/a",
    )
    os_name = platform.platform()
    try:
        os_name = platform.freedesktop_os_release()["PRETTY_NAME"] + f", Linux {platform.release()}"
    except OSError:
        pass
    return [
        f"CPU: {cpu}, {os.cpu_count()} logical cores ({len(os.sched_getaffinity(0))} usable)",
        f"RAM: {mem}",
        f"OS: {os_name}",
        f"rustc: {cmd_out(['rustc', '-V'])}",
        f"Python: {platform.python_version()} ({sys.executable})",
    ]


# --------------------------------------------------------------------------------------------
# Self-test of the pure functions (fake spans, tiny texts)
# --------------------------------------------------------------------------------------------


def self_test() -> None:
    # UTF-8 shrink: "é" is C3 A9, "€" is E2 82 AC
    t = "aé€b".encode()  # 61 C3 A9 E2 82 AC 62
    assert shrink_utf8(t, 0, len(t), len(t)) == (0, 7)
    assert shrink_utf8(t, 2, 7, 7) == (3, 7)  # start inside é moves right to €
    assert shrink_utf8(t, 1, 5, 7) == (1, 3)  # end inside € moves left to the end of é
    assert shrink_utf8(t, 4, 5, 7) == (5, 5)  # inside one character: empty
    assert shrink_utf8(t, 3, 6, 6) == (3, 6)  # end at the limit is a boundary
    assert merge_intervals([(5, 7), (0, 2), (2, 3), (6, 9), (9, 9)]) == [(0, 3), (5, 9)]

    # layout of three documents, and ranges into it
    texts = [b"0123456789", b"", b"abcdef"]
    lay = Layout.from_texts(texts)
    data = b"".join(separator(i + 1) + x for i, x in enumerate(texts))
    assert lay.starts == [0, 16, 22, 34] and len(data) == 34
    assert data[lay.text_start(2) : lay.text_end(2)] == b"abcdef"
    m = map_ranges([(6, 10), (8, 12), (12, 30), (3, 6), (17, 20)], lay)
    # (6,10)+(8,12) → doc 0 [0,6); (12,30) → doc 0 [6,10) (merged: [0,10)) and doc 2 [0,2);
    # (3,6) only separator; (17,20) separator of the empty document 1
    assert m.spans == [(0, 0, 10), (2, 0, 2)], m.spans
    assert (m.ranges, m.ranges_with_separator_bytes, m.ranges_multi_document, m.ranges_only_separator) == (
        5,
        3,
        1,
        2,
    ), m
    assert m.separator_bytes == (30 - 12 - 4 - 2) + 3 + 3
    spans, crossing = windows_to_spans([6, 7, 9, 12, 28, 29, 3], 3, lay)
    # 6,7 → [0,4) in doc 0; 9 → [3,6) merges (touching 4? no: [0,4) and [3,6) overlap) → [0,6);
    # 12 → [6,9) touches → [0,9); 28 → doc 2 [0,3); 29 → [1,4) → [0,4); 3 crosses
    assert spans == [(0, 0, 9), (2, 0, 4)] and crossing == 1, (spans, crossing)

    # shrink through the data file
    texts = ["xé".encode(), "€€".encode()]
    lay = Layout.from_texts(texts)
    data = b"".join(separator(i + 1) + x for i, x in enumerate(texts))
    assert shrink_spans([(0, 0, 2), (1, 1, 6), (1, 4, 5)], data, lay) == [(0, 0, 1), (1, 3, 6)]

    # comparison with fake spans
    left = [(0, 0, 10), (0, 20, 30), (2, 5, 8), (3, 0, 4)]
    right = [(0, 0, 10), (0, 22, 30), (2, 5, 8), (4, 1, 2)]
    c = compare_spans(left, right, "L", "R")
    assert (c.identical, c.only_left, c.only_right) == (2, 2, 2), c
    assert (c.bytes_left, c.bytes_right, c.bytes_both) == (27, 22, 21), c
    assert (c.docs_left, c.docs_right, c.docs_differ) == (3, 3, 3), c
    assert c.examples[0] == (0, [(20, 30)], [(22, 30)])
    assert compare_spans(left, left, "a", "b").same
    c = compare_spans([(0, 0, 10), (0, 5, 12)], [(0, 0, 12)], "L", "R")  # overlapping spans count once
    assert (c.identical, c.only_left, c.only_right, c.bytes_left, c.bytes_both) == (0, 2, 1, 12, 12), c

    # the oracle: planted repeats, L = 4
    texts = [b"abcdXYZabcd", b"--abcd--", b"qrstu", b"rstuv"]
    assert oracle_spans(texts, 4, "none") == [(0, 0, 4), (0, 7, 11), (1, 2, 6), (2, 1, 5), (3, 0, 4)]
    assert oracle_spans(texts, 4, "first") == [(0, 7, 11), (1, 2, 6), (3, 0, 4)]
    # overlapping self-repeat: "aaaaa" has windows aaaa at 0 and 1
    assert oracle_spans([b"aaaaa"], 4, "none") == [(0, 0, 5)]
    assert oracle_spans([b"aaaaa"], 4, "first") == [(0, 1, 5)]
    # the oracle's windows = windows_to_spans on a brute-force list of duplicated window starts
    texts = [b"hello world", b"say hello world!", b"o wor"]
    lay = Layout.from_texts(texts)
    data = b"".join(separator(i + 1) + x for i, x in enumerate(texts))
    dup = [p for p in range(len(data) - 4) if data.count(data[p : p + 5]) > 1]
    spans, crossing = windows_to_spans(dup, 5, lay)
    assert shrink_spans(spans, data, lay) == oracle_spans(texts, 5, "none")

    # reading tamis spans back: repeated ids resolve in order
    tmpdir = tempfile.TemporaryDirectory()
    tmp = Path(tmpdir.name) / "spans.jsonl"
    tmp.write_text(
        '{"id":"a","start":0,"end":3,"first":{"id":"a","start":0}}\n'
        '{"id":"b","start":1,"end":2,"first":{"id":"a","start":0}}\n'
        '{"id":"a","start":4,"end":5,"first":{"id":"a","start":0}}\n'
        '{"id":7,"start":0,"end":1,"first":{"id":"a","start":0}}\n'
    )
    assert read_tamis_spans(tmp, ["a", "b", "a", "7"]) == [(0, 0, 3), (1, 1, 2), (2, 4, 5), (3, 0, 1)]
    coll = Path(tmpdir.name) / "ranges.txt"
    coll.write_text("S 12\nS 4\nMerging.\nout\n3 45\n54 81\n")
    assert read_collect_output(coll) == [(3, 45), (54, 81)]
    tmpdir.cleanup()
    assert parse_size("20M") == 20_000_000 and parse_size("1.5g") == 1_500_000_000
    print("self-test ok")


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "corpus",
        nargs="?",
        type=Path,
        default=DEFAULT_CORPUS,
        help=f"JSONL corpus (default {DEFAULT_CORPUS.relative_to(REPO)})",
    )
    lim = p.add_mutually_exclusive_group()
    lim.add_argument("--docs", type=int, help="use only the first N documents")
    lim.add_argument(
        "--bytes",
        "--size",
        dest="nbytes",
        type=parse_size,
        help="use only the first SIZE bytes of JSONL, whole lines (e.g. 20M, 1G; 10^6 per M)",
    )
    p.add_argument("--min-length", type=int, default=100, help="L, bytes (Google's --length-threshold)")
    p.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="threads for both tools (default: usable cores)",
    )
    p.add_argument("--tamis", default=shutil.which("tamis"), help="tamis command (default: tamis on PATH)")
    p.add_argument(
        "--google-dir",
        type=Path,
        default=DEFAULT_GOOGLE_DIR,
        help="checkout of google-research/deduplicate-text-datasets, built with cargo build --release",
    )
    p.add_argument(
        "--google-python",
        default=sys.executable,
        help="Python (with numpy) for its make_suffix_array.py (default: this one)",
    )
    p.add_argument(
        "--sa-method",
        choices=["script", "make"],
        default="script",
        help="suffix array by scripts/make_suffix_array.py (README, default) or one `make` process",
    )
    p.add_argument("--only", nargs="+", choices=["google", "tamis"], default=["google", "tamis"])
    p.add_argument(
        "--windows",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"also compare Google's in-document windows (default: on up to "
        f"{WINDOWS_AUTO_MAX / 1e6:.0f} MB of data)",
    )
    p.add_argument(
        "--oracle",
        action="store_true",
        help=f"also compare a brute-force Python reference (≤ {ORACLE_MAX / 1e6:.0f} MB of text)",
    )
    p.add_argument("--examples", type=int, default=5, help="differences to print per comparison")
    p.add_argument(
        "--out-dir", type=Path, default=DEFAULT_OUT_DIR, help=f"work directory (default {DEFAULT_OUT_DIR})"
    )
    p.add_argument(
        "--keep-work",
        action="store_true",
        help="keep the suffix array, its parts and the dups files (default: deleted after use)",
    )
    p.add_argument("--record", action="store_true", help=f"append the results to {RESULTS}")
    p.add_argument(
        "--self-test", action="store_true", help="check the mapping and comparison code, then exit"
    )
    p.add_argument("--worker-load", nargs=3, metavar=("IN", "DATA", "IDS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker_load:
        print(json.dumps(worker_load(*map(Path, args.worker_load))))
        return 0
    if args.self_test:
        self_test()
        return 0

    run_google_half = "google" in args.only
    run_tamis_half = "tamis" in args.only
    gbin = google_binary(args.google_dir) if run_google_half else None
    if run_google_half and not gbin:
        p.error(
            f"no dedup_dataset binary under {args.google_dir}/target: build it (cargo build --release) "
            "or pass --google-dir"
        )
    if run_tamis_half and not args.tamis:
        p.error("no tamis on PATH: activate the environment or pass --tamis")
    if not args.corpus.exists():
        p.error(f"{args.corpus} does not exist (python benchmarks/gen_corpus.py --size-gb 1.1)")

    work = args.out_dir.resolve()
    logs = work / "logs"
    gwork = work / "google"
    for d in (work, logs, gwork):
        d.mkdir(parents=True, exist_ok=True)
    corpus = args.corpus.resolve()
    if args.docs is not None or args.nbytes is not None:
        sliced = work / "input.jsonl"
        n, size = make_slice(corpus, sliced, args.docs, args.nbytes)
        print(f"slice: the first {n:,} documents ({size:,} bytes) of {corpus} → {sliced}")
        corpus = sliced
    size = corpus.stat().st_size
    with corpus.open("rb", buffering=0) as f:  # warm the page cache
        while f.read(CHUNK):
            pass

    problems: list[str] = []
    steps: list[Step] = []
    data = gwork / "data"
    ids_path = work / "ids.json"
    load = Step(
        "google",
        "load (JSONL → data file, Python)",
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker-load",
            str(corpus),
            str(data),
            str(ids_path),
        ],
    )
    print(f"input: {corpus} ({size:,} bytes), L = {args.min_length}, {args.threads} threads")
    run_step(load, logs)
    if not load.ok:
        print((logs / "google-load-JSONL-data-file-Python.stderr").read_text(errors="replace")[-3000:])
        return 1
    info = json.loads(
        (logs / "google-load-JSONL-data-file-Python.stdout").read_text().strip().splitlines()[-1]
    )
    load.note = f"{info['documents']:,} documents, {info['bytes']:,} bytes (separators included)"
    steps.append(load)
    layout = read_layout(data)
    ids: list[str] = json.loads(ids_path.read_text())
    text_bytes = layout.starts[-1] - SEP_LEN * layout.documents
    print(f"{layout.documents:,} documents, {text_bytes:,} bytes of text")

    google_ranges: Path | None = None
    gsteps: list[Step] = []
    width = 0
    if run_google_half and gbin:
        print(f"Google: {gbin}, commit {google_commit(args.google_dir)}")
        gsteps, google_ranges, _ = run_google(args, gbin, data, gwork, logs)
        steps.extend(gsteps)
        table = Path(f"{data}.table.bin")
        if table.exists():
            width = table.stat().st_size // data.stat().st_size
        for s in gsteps:
            if not s.ok:
                problems.append(f"Google {s.name} failed: {s.note}")

    tsteps: list[Step] = []
    tamis_spans: dict[str, Path] = {}
    tamis_version = "n/a"
    if run_tamis_half:
        tamis_version = (
            subprocess.run(
                [*shlex.split(args.tamis), "--version"], capture_output=True, text=True
            ).stdout.strip()
            or "n/a"
        )
        args.stats_flag = tamis_stats_flag(args.tamis)
        print(f"tamis: {args.tamis} ({tamis_version})")
        for keep in ("none", "first"):
            step, spans = run_tamis(args, corpus, work, logs, keep)
            tsteps.append(step)
            steps.append(step)
            if step.ok:
                tamis_spans[keep] = spans
            else:
                problems.append(f"tamis --keep {keep} failed: {step.note}")

    # ---- spans
    report: list[str] = []
    comparisons: list[Comparison] = []
    fd = data.open("rb")
    buf = mmap.mmap(fd.fileno(), 0, access=mmap.ACCESS_READ) if data.stat().st_size else b""
    sets: dict[str, list[Span]] = {}
    mapping: RangeMapping | None = None
    if google_ranges:
        raw = read_collect_output(google_ranges)
        mapping = map_ranges(raw, layout, args.examples)
        sets["Google collect"] = shrink_spans(mapping.spans, buf, layout)
        report.append(
            f"- Google collect: {mapping.ranges:,} ranges, {sum(b - a for a, b in raw):,} bytes; "
            f"{mapping.ranges_with_separator_bytes:,} ranges hold separator bytes "
            f"({mapping.separator_bytes:,} bytes; {mapping.ranges_only_separator:,} only separator bytes), "
            f"{mapping.ranges_multi_document:,} touch two or more documents; after cutting at the texts, "
            f"merging and the UTF-8 shrink: {len(sets['Google collect']):,} spans"
        )
        if mapping.examples:
            report.append(
                fenced(
                    f"range [{a}, {b}): {snippet(buf, max(0, a - 8), min(len(buf), b + 8), a, b, ctx=8)}"
                    for a, b in mapping.examples[: min(3, args.examples)]
                )
            )
    want_windows = args.windows if args.windows is not None else data.stat().st_size <= WINDOWS_AUTO_MAX
    cache = gwork / "cache"
    if google_ranges and want_windows and width:
        t0 = time.perf_counter()
        wspans, crossing = windows_from_dups(cache, data, width, args.min_length, layout)
        sets["Google windows"] = shrink_spans(wspans, buf, layout)
        report.append(
            f"- Google windows (dups files, {width}-byte offsets): {crossing:,} distinct duplicated windows "
            f"reach into a separator (left out); the others give {len(sets['Google windows']):,} spans "
            f"({time.perf_counter() - t0:.1f} s)"
        )
    for keep, path in tamis_spans.items():
        try:
            sets[f"tamis keep {keep}"] = read_tamis_spans(path, ids)
        except (ValueError, KeyError) as e:
            problems.append(f"cannot read tamis spans {path}: {e}")
    if args.oracle:
        if text_bytes > ORACLE_MAX:
            report.append(f"- oracle skipped: {text_bytes:,} bytes of text > {ORACLE_MAX:,}")
        else:
            texts = [bytes(buf[layout.text_start(d) : layout.text_end(d)]) for d in range(layout.documents)]
            for keep in ("none", "first"):
                sets[f"oracle keep {keep}"] = oracle_spans(texts, args.min_length, keep)
    if not args.keep_work:
        shutil.rmtree(cache, ignore_errors=True)
        Path(f"{data}.table.bin").unlink(missing_ok=True)

    pairs = [
        ("tamis keep none", "Google collect"),
        ("tamis keep none", "Google windows"),
        ("Google windows", "Google collect"),
        ("oracle keep none", "Google windows"),
        ("oracle keep none", "tamis keep none"),
        ("oracle keep first", "tamis keep first"),
    ]
    for a, b in pairs:
        if a in sets and b in sets:
            c = compare_spans(sets[a], sets[b], a, b, args.examples)
            comparisons.append(c)
            report.append(f"- {c.summary()}")
            if not c.same:
                report.append(fenced(describe_examples(c, buf, layout, ids)))
            must_match = {
                ("tamis keep none", "Google windows"),
                ("oracle keep none", "Google windows"),
                ("oracle keep none", "tamis keep none"),
                ("oracle keep first", "tamis keep first"),
            }
            if (a, b) in must_match and not c.same:
                problems.append(f"{a} and {b} differ (they implement the same windows): {c.summary()}")
    if "tamis keep first" in sets and "tamis keep none" in sets:
        c = compare_spans(sets["tamis keep first"], sets["tamis keep none"], "keep first", "keep none")
        report.append(
            f"- tamis keep first: {c.left_spans:,} spans, {c.bytes_left:,} bytes "
            f"({c.bytes_only_left:,} bytes outside keep none's spans: must be 0); "
            f"keep none: {c.right_spans:,} spans, {c.bytes_right:,} bytes"
        )
        if c.bytes_only_left:
            problems.append(f"tamis keep first removes {c.bytes_only_left:,} bytes that keep none keeps")

    # ---- totals
    ok_g = [s for s in gsteps if s.ok]
    g_total = sum(s.wall for s in ok_g) if gsteps and len(ok_g) == len(gsteps) else None
    totals = []
    if g_total is not None:
        totals.append(
            f"Google total (suffix array + self-similar + collect): {g_total:.2f} s, "
            f"{g_total + load.wall:.2f} s with the load step; peak RSS of its steps "
            f"{fmt_mib(max(s.maxrss_kib for s in gsteps))} MiB (largest process), "
            f"{fmt_mib(max(s.tree_kib for s in gsteps))} MiB (process tree)"
        )
    t_none = next((s for s in tsteps if s.name.endswith("none") and s.ok), None)
    if t_none:
        totals.append(f"tamis --keep none: {t_none.wall:.2f} s, peak RSS {fmt_mib(t_none.maxrss_kib)} MiB")
        if g_total is not None:
            totals.append(
                f"Google's three steps / tamis --keep none: {g_total / t_none.wall:.2f}× "
                f"({(g_total + load.wall) / t_none.wall:.2f}× counting the load step; "
                "above 1: tamis is faster)"
            )

    tbl = steps_table(steps, text_bytes)
    print()
    print(tbl)
    print()
    print("\n".join(totals))
    print("\n".join(report))
    for prob in problems:
        print(f"\n!!!!!! MISMATCH / FAILURE: {prob} !!!!!!", file=sys.stderr)

    if args.record:
        now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        cmdline = " ".join(
            shlex.quote(a)
            for a in [
                Path(sys.executable).name,
                os.path.relpath(__file__),
                *(argv if argv is not None else sys.argv[1:]),
            ]
        )
        gline = (
            f"- Google deduplicate-text-datasets: commit {google_commit(args.google_dir)}, "
            f"binary {fingerprint(gbin)}, suffix array by `{args.sa_method}`"
            if gbin
            else "- Google: not run"
        )
        section = [
            f"\n## Exact-substring dedup against Google's deduplicate-text-datasets, {now}\n",
            *[f"- {m}" for m in machine()],
            f"- tamis: {tamis_version}" + (f" (`{args.tamis}`)" if run_tamis_half else " (not run)"),
            gline,
            f"- input: `{os.path.relpath(corpus)}`, {size:,} bytes, {layout.documents:,} documents, "
            f"{text_bytes:,} bytes of text; L = {args.min_length}; {args.threads} threads",
            f"- command: `{cmdline}`",
            "",
            tbl,
            "",
            *[f"- {t}" for t in totals],
            *report,
            *[f"- **MISMATCH / FAILURE: {prob}**" for prob in problems],
            "",
        ]
        with RESULTS.open("a") as f:
            f.write("\n".join(section))
        print(f"\nappended to {RESULTS}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
