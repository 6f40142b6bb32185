"""`tamis dedup substring`: exact-substring deduplication (suffix arrays), against a brute-force oracle.

The oracle below is the contract written naively in Python: every window of L bytes of every
document's UTF-8 text goes into a dict (window bytes -> occurrences in corpus order); keep first
removes every occurrence but the first, keep none every occurrence of a window seen twice; the
removed windows of a document are united into maximal intervals (touching ones merged), each shrunk
to character boundaries, and cut out. The `test_oracle_*` tests check the oracle itself on tiny
cases worked out by hand; the other tests run the command line and compare it with the oracle, and
check properties on real text (Python's own documentation) that hold whatever the oracle says.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    assert_stats_invariant,
    dump_record,
    leftovers,
    output_lines,
    read_stats,
    run_ok,
    write_bytes,
)

# The statistics flag of every `tamis dedup` command (SPEC.md writes `--stats FILE`; the shared
# input/output options of the command line call it `--stats-json`).
STATS_FLAG = "--stats-json"
# A memory limit far below the ~100 KB corpora of the part-count tests, so the suffix array is
# built in several parts.
TINY_MEMORY_LIMIT = "20K"

# Unicode White_Space (what Rust's char::is_whitespace tests): "empty or only white space".
WHITE_SPACE = frozenset(
    chr(c)
    for c in [
        *range(0x09, 0x0E),
        0x20,
        0x85,
        0xA0,
        0x1680,
        *range(0x2000, 0x200B),
        0x2028,
        0x2029,
        0x202F,
        0x205F,
        0x3000,
    ]
)

# ---------------------------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """One interval of a document, in byte offsets into its text."""

    start: int  # after shrinking to character boundaries
    end: int
    raw_start: int  # before shrinking: the start of its leftmost removed window (q0)
    raw_end: int
    first_doc: int  # where the window at raw_start occurs first in the corpus (document index)
    first_window: int  # ... and at which offset (f)

    @property
    def first_start(self) -> int:
        """s2 = f + (s - q0)."""
        return self.first_window + (self.start - self.raw_start)


@dataclass
class DocResult:
    text: str
    intervals: list[Interval]
    new_text: str  # the text with the intervals cut out (the text itself under --annotate)
    dropped: str | None  # the reason, or None when written


@dataclass
class SubstringResult:
    ids: list[str]
    docs: list[DocResult]
    spans: list[dict[str, Any]]
    counters: dict[str, int]
    removed: dict[str, int]  # documents removed, by reason (reasons with a count of 0 left out)
    min_length: int

    @property
    def kept(self) -> list[int]:
        return [i for i, d in enumerate(self.docs) if d.dropped is None]


def is_boundary(data: bytes, i: int) -> bool:
    """Whether byte offset i is a character boundary of the UTF-8 bytes data."""
    return i <= 0 or i >= len(data) or (data[i] & 0xC0) != 0x80


def window_occurrences(data: Sequence[bytes], L: int) -> dict[bytes, list[tuple[int, int]]]:
    """Every window of L bytes -> its occurrences (document, offset), in corpus order."""
    occurrences: dict[bytes, list[tuple[int, int]]] = {}
    for d, b in enumerate(data):
        for q in range(len(b) - L + 1):
            occurrences.setdefault(b[q : q + L], []).append((d, q))
    return occurrences


def removed_windows(
    occurrences: dict[bytes, list[tuple[int, int]]], n_docs: int, keep: str
) -> list[list[int]]:
    """The start offsets of each document's removed windows, sorted."""
    starts: list[list[int]] = [[] for _ in range(n_docs)]
    for occ in occurrences.values():
        if keep == "first":
            victims = occ[1:]
        elif keep == "none":
            victims = occ if len(occ) > 1 else []
        else:
            raise ValueError(keep)
        for d, q in victims:
            starts[d].append(q)
    return [sorted(s) for s in starts]


def union(starts: Sequence[int], L: int) -> list[tuple[int, int]]:
    """Maximal intervals of the union of [q, q+L) for q in sorted starts; touching ones merge."""
    out: list[list[int]] = []
    for q in starts:
        if out and q <= out[-1][1]:
            out[-1][1] = max(out[-1][1], q + L)
        else:
            out.append([q, q + L])
    return [(a, b) for a, b in out]


def shrink(data: bytes, a: int, b: int) -> tuple[int, int]:
    """Start right to the next character start, end left to the previous character end."""
    while a < b and not is_boundary(data, a):
        a += 1
    while b > a and not is_boundary(data, b):
        b -= 1
    return a, b


def cut(data: bytes, intervals: Sequence[Interval]) -> bytes:
    pieces = []
    pos = 0
    for iv in intervals:
        pieces.append(data[pos : iv.start])
        pos = iv.end
    pieces.append(data[pos:])
    return b"".join(pieces)


def substring_oracle(
    texts: Sequence[str],
    ids: Sequence[str] | None = None,
    *,
    min_length: int = 100,
    keep: str = "first",
    min_doc_chars: int = 0,
    annotate: bool = False,
) -> SubstringResult:
    L = min_length
    assert L >= 1
    ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
    data = [t.encode("utf-8") for t in texts]
    occurrences = window_occurrences(data, L)
    removed_starts = removed_windows(occurrences, len(data), keep)
    docs: list[DocResult] = []
    removed: dict[str, int] = {}
    for d, b in enumerate(data):
        intervals = []
        for a, e0 in union(removed_starts[d], L):
            s, e = shrink(b, a, e0)
            if s == e:
                continue  # left empty: dropped
            fd, f = occurrences[b[a : a + L]][0]
            intervals.append(Interval(s, e, a, e0, fd, f))
        new_text = texts[d] if annotate else cut(b, intervals).decode("utf-8")
        dropped = None
        if intervals and not annotate:
            if all(c in WHITE_SPACE for c in new_text):
                dropped = "empty_after_substring_dedup"
            elif min_doc_chars and len(new_text) < min_doc_chars:
                dropped = "short_after_substring_dedup"
        if dropped:
            removed[dropped] = removed.get(dropped, 0) + 1
        docs.append(DocResult(texts[d], intervals, new_text, dropped))
    # One line per interval of every document (dropped ones included), documents in input order.
    spans = [
        {
            "id": ids[d],
            "start": iv.start,
            "end": iv.end,
            "first": {"id": ids[iv.first_doc], "start": iv.first_start},
        }
        for d, doc in enumerate(docs)
        for iv in doc.intervals
    ]
    counters = {
        "substring_spans": len(spans),
        "substring_bytes_removed": sum(iv.end - iv.start for doc in docs for iv in doc.intervals),
        "documents_changed": sum(1 for doc in docs if doc.intervals),
    }
    return SubstringResult(ids, docs, spans, counters, removed, L)


def spans_of(result: SubstringResult) -> list[tuple[int, int, int, int]]:
    """(doc, start, end, first_start) of every interval, for compact assertions."""
    return [
        (d, iv.start, iv.end, iv.first_start) for d, doc in enumerate(result.docs) for iv in doc.intervals
    ]


def texts_of(result: SubstringResult) -> list[str | None]:
    """Each document's output text, None where dropped."""
    return [None if doc.dropped else doc.new_text for doc in result.docs]


# ---------------------------------------------------------------------------------------------
# Generated corpora: words, planted passages (with multibyte characters at their edges), repeats
# within and across documents, periodic text, nested and overlapping passages
# ---------------------------------------------------------------------------------------------

SUB_WORDS = [
    "alpha",
    "beta",
    "gamma",
    "river",
    "stone",
    "sieve",
    "grain",
    "café",
    "naïve",
    "中文",
    "数据",
    "日本語",
    "Ωmega",
    "🦀",
    "🎉",
    "x",
    "a.b",
    "€5",
    "1.50",
]
# Pairs that share trailing bytes (é/©, 中/席) or leading bytes (é/è, 🦀/🦁): repeats next to them
# start or end inside a character.
EDGE_CHARS = ["é", "©", "è", "中", "席", "🦀", "🦁", "ß", "€", "ü"]
PERIODIC_UNITS = ["abc", "ab", "é", "中a", "🦀x", "a", "xyz "]
EDGE_SPACE = ["", " ", "\n\t", "\u3000", "\u00a0", "\u0085", "\u2029", "\x1f", "\u200b"]
JOINERS = [" ", "\n", "", "  ", "\t", " \n "]


def _words(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(SUB_WORDS) for _ in range(rng.randint(lo, hi)))


def _passage(rng: random.Random) -> str:
    target = rng.choice([3, 6, 10, 20, 30, 45, 60, 90, 120, 200, 300])
    words: list[str] = []
    while len(" ".join(words).encode()) < target:
        words.append(rng.choice(SUB_WORDS) + rng.choice(["", "", str(rng.randrange(100))]))
    text = " ".join(words)
    if rng.random() < 0.5:
        text = rng.choice(EDGE_CHARS) + text
    if rng.random() < 0.5:
        text += rng.choice(EDGE_CHARS)
    return text


def _edged(rng: random.Random, text: str) -> str:
    """The text with (sometimes) a multibyte character glued to either edge."""
    if rng.random() < 0.6:
        text = rng.choice(EDGE_CHARS) + text
    if rng.random() < 0.6:
        text += rng.choice(EDGE_CHARS)
    return text


def substring_corpus(seed: int, n_docs: int) -> list[dict[str, Any]]:
    """Documents with ids and passthrough fields; their texts repeat one another in every way."""
    rng = random.Random(seed)
    passages = [_passage(rng) for _ in range(max(8, n_docs // 4))]
    texts: list[str] = []
    for _ in range(n_docs):
        r = rng.random()
        if texts and r < 0.05:
            text = rng.choice(texts)  # a whole copy
        elif texts and r < 0.08:
            # Around a whole copy: Unicode white space, and characters that are not white space to
            # Rust (U+001F is to Python's str.isspace, U+200B to neither).
            text = rng.choice(EDGE_SPACE) + rng.choice(texts) + rng.choice(EDGE_SPACE)
        elif r < 0.12:
            text = _words(rng, 1, 4)  # short, usually without repeats
        else:
            segments: list[str] = []
            for _ in range(rng.randint(1, 13)):
                k = rng.random()
                if k < 0.30:
                    seg = _words(rng, 2, 25)
                elif k < 0.52:
                    seg = _edged(rng, rng.choice(passages))
                elif k < 0.62 and segments:
                    seg = _edged(rng, rng.choice(segments))  # repeated within the document
                elif k < 0.74 and texts:
                    src = rng.choice(texts)  # part of an earlier document, cut anywhere
                    i = rng.randrange(len(src) + 1)
                    seg = _edged(rng, src[i : i + rng.randint(4, 250)])
                elif k < 0.82:
                    seg = rng.choice(PERIODIC_UNITS) * rng.randint(2, 60)
                elif k < 0.90:
                    p = rng.choice(passages)  # nested: a piece of a passage
                    i = rng.randrange(len(p) + 1)
                    seg = p[i : i + rng.randint(3, 150)]
                else:
                    a, b = rng.choice(passages), rng.choice(passages)  # overlapping: a passage's tail
                    seg = a + b[: rng.randrange(len(b) + 1)]  # and another's head, back to back
                segments.append(seg)
            text = "".join(s + rng.choice(JOINERS) for s in segments)[: rng.choice([10**6, 10**6, 400])]
        texts.append(text)
    docs = []
    for i, text in enumerate(texts):
        doc: dict[str, Any] = {"id": f"s{i:04d}", "text": text, "n": rng.randrange(-(10**12), 10**12)}
        if rng.random() < 0.5:
            doc["meta"] = {"src": rng.choice(["web", "books"]), "score": round(rng.random(), 4)}
        docs.append(doc)
    return docs


# (min_length, keep, seed, documents) of test_cli_matches_the_contract; its corpus is
# substring_corpus(seed * 100 + min_length, documents).
CLI_CASES = [
    (L, keep, seed, n)
    for L in (8, 20, 50, 100)
    for keep in ("first", "none")
    for seed, n in ((1, 40), (2, 150))
]

RAW_NUMBERS = b',"price":1.50,"big":1E+2,"neg":-0.0}'


def raw_lines(docs: Sequence[dict[str, Any]], seed: int = 0) -> list[bytes]:
    """JSONL lines in assorted JSON styles; every third record also carries numbers Python would
    re-serialize differently (1.50, 1E+2, -0.0), to see they pass through byte for byte."""
    rng = random.Random(seed)
    lines = []
    for i, doc in enumerate(docs):
        line = dump_record(doc, rng.randrange(4)).encode("utf-8")
        if i % 3 == 0:
            line = line[:-1] + RAW_NUMBERS
        lines.append(line)
    return lines


def write_lines(path: Path, lines: Sequence[bytes]) -> Path:
    return write_bytes(path, b"".join(line + b"\n" for line in lines))


def texts_ids(lines: Sequence[bytes]) -> tuple[list[str], list[str]]:
    recs = [json.loads(line) for line in lines]
    return [r["text"] for r in recs], [r["id"] for r in recs]


# ---------------------------------------------------------------------------------------------
# The oracle on hand-worked cases
# ---------------------------------------------------------------------------------------------


def test_oracle_repeat_across_documents() -> None:
    texts = ["hello world", "say hello there"]
    # Shared 5-byte windows: "hello" and "ello " (d1 at 4 and 5): d1 loses [4, 10) = "hello ".
    r = substring_oracle(texts, ["a", "b"], min_length=5, keep="first")
    assert texts_of(r) == ["hello world", "say there"]
    assert r.spans == [{"id": "b", "start": 4, "end": 10, "first": {"id": "a", "start": 0}}]
    assert r.counters == {"substring_spans": 1, "substring_bytes_removed": 6, "documents_changed": 1}
    assert r.removed == {}
    # keep none: the first occurrence goes too, and its earliest occurrence is itself.
    r = substring_oracle(texts, ["a", "b"], min_length=5, keep="none")
    assert texts_of(r) == ["world", "say there"]
    assert r.spans == [
        {"id": "a", "start": 0, "end": 6, "first": {"id": "a", "start": 0}},
        {"id": "b", "start": 4, "end": 10, "first": {"id": "a", "start": 0}},
    ]
    assert r.counters["documents_changed"] == 2


def test_oracle_repeat_within_one_document() -> None:
    r = substring_oracle(["abcd-abcd"], ["a"], min_length=4, keep="first")
    assert texts_of(r) == ["abcd-"]
    assert spans_of(r) == [(0, 5, 9, 0)]
    r = substring_oracle(["abcd-abcd"], ["a"], min_length=4, keep="none")
    assert texts_of(r) == ["-"]
    assert spans_of(r) == [(0, 0, 4, 0), (0, 5, 9, 0)]


def test_oracle_periodic_text() -> None:
    # L=3: windows abc bca cab abc bca cab abc; those at 3..6 repeat earlier ones.
    r = substring_oracle(["abcabcabc"], min_length=3, keep="first")
    assert texts_of(r) == ["abc"] and spans_of(r) == [(0, 3, 9, 0)]
    r = substring_oracle(["abcabcabc"], min_length=4, keep="first")
    assert texts_of(r) == ["abc"] and spans_of(r) == [(0, 3, 9, 0)]
    # keep none: every window is duplicated, the whole text goes and the document with it.
    r = substring_oracle(["abcabcabc"], min_length=3, keep="none")
    assert texts_of(r) == [None] and spans_of(r) == [(0, 0, 9, 0)]
    assert r.removed == {"empty_after_substring_dedup": 1}
    # Overlapping occurrences of one window: "aa" at 0..4, those at 1..4 are removed.
    r = substring_oracle(["aaaaaa"], min_length=2, keep="first")
    assert texts_of(r) == ["a"] and spans_of(r) == [(0, 1, 6, 0)]
    # A multibyte period: "éé" windows of 4 bytes at even and odd offsets.
    r = substring_oracle(["éééé"], min_length=4, keep="first")  # 8 bytes
    # windows at 0 (é é), 1 (A9 é C3), 2 (é é) -> removed 2, 3 (A9 é C3 from 1), 4 -> [2, 8)
    assert texts_of(r) == ["é"] and spans_of(r) == [(0, 2, 8, 0)]


def test_oracle_nested_repeats() -> None:
    texts = ["0123456789", "ab3456cd", "ef0123456789gh"]
    r = substring_oracle(texts, ["p", "q", "r"], min_length=4, keep="first")
    assert texts_of(r) == ["0123456789", "abcd", "efgh"]
    assert r.spans == [
        {"id": "q", "start": 2, "end": 6, "first": {"id": "p", "start": 3}},
        {"id": "r", "start": 2, "end": 12, "first": {"id": "p", "start": 0}},
    ]
    r = substring_oracle(texts, ["p", "q", "r"], min_length=4, keep="none")
    assert texts_of(r) == [None, "abcd", "efgh"]
    assert spans_of(r) == [(0, 0, 10, 0), (1, 2, 6, 3), (2, 2, 12, 0)]
    assert r.removed == {"empty_after_substring_dedup": 1}
    assert r.counters == {"substring_spans": 3, "substring_bytes_removed": 24, "documents_changed": 3}


@pytest.mark.parametrize(
    "texts, min_length, expected_text, span",
    [
        # é = C3 A9, © = C2 A9: the repeat [A9 a b c d] starts inside ©; start moves from 1 to 2.
        (["éabcd", "©abcd"], 4, "©", (1, 2, 6, 2)),
        # è = C3 A8: the repeat [a b c d C3] ends inside è; end moves from 5 to 4.
        (["abcdé", "abcdè"], 4, "è", (1, 0, 4, 0)),
        # 中 = E4 B8 AD, 席 = E5 B8 AD: [B8 AD a b] -> [3, 5); first = 1 + (3 - 1).
        (["中ab!", "席ab?"], 4, "席?", (1, 3, 5, 3)),
        # 🦀 = F0 9F A6 80, 🦁 = F0 9F A6 81: [0, 6) ends three bytes into 🦁 -> [0, 3).
        (["xyz🦀", "xyz🦁"], 4, "🦁", (1, 0, 3, 0)),
    ],
)
def test_oracle_interval_shrinks_to_character_boundaries(
    texts: list[str], min_length: int, expected_text: str, span: tuple[int, int, int, int]
) -> None:
    r = substring_oracle(texts, min_length=min_length, keep="first")
    assert texts_of(r) == [texts[0], expected_text]
    assert spans_of(r) == [span]
    iv = r.docs[1].intervals[0]
    # The located first occurrence matches the interval's leading bytes.
    m = min(iv.end, iv.raw_start + min_length) - iv.start
    a, b = texts[0].encode(), texts[1].encode()
    assert m > 0 and a[iv.first_start : iv.first_start + m] == b[iv.start : iv.start + m]


def test_oracle_interval_shrunk_to_nothing_is_dropped() -> None:
    # L=2: "中" and "席" share [B8 AD]: d1's interval [1, 3) holds no whole character.
    r = substring_oracle(["中", "席"], min_length=2, keep="first")
    assert texts_of(r) == ["中", "席"] and r.spans == [] and r.counters["documents_changed"] == 0
    r = substring_oracle(["中", "席"], min_length=2, keep="none")
    assert texts_of(r) == ["中", "席"] and r.spans == [] and r.removed == {}


def test_oracle_touching_intervals_merge() -> None:
    # Removed windows "abc" at 0 and "def" at 3: [0, 3) and [3, 6) touch -> one interval.
    r = substring_oracle(["abc-def", "abcdef!"], min_length=3, keep="first")
    assert texts_of(r) == ["abc-def", "!"] and spans_of(r) == [(1, 0, 6, 0)]
    # One byte apart: two intervals, each with its own first occurrence.
    r = substring_oracle(["abc-def", "abcXdef!"], min_length=3, keep="first")
    assert texts_of(r) == ["abc-def", "X!"] and spans_of(r) == [(1, 0, 3, 0), (1, 4, 7, 4)]
    assert r.counters == {"substring_spans": 2, "substring_bytes_removed": 6, "documents_changed": 1}


def test_oracle_empty_and_white_space_remainders_are_dropped() -> None:
    texts = ["hello", " hello\n", "hello", "hi"]
    r = substring_oracle(texts, min_length=5, keep="first")
    assert texts_of(r) == ["hello", None, None, "hi"]
    assert r.removed == {"empty_after_substring_dedup": 2}
    assert spans_of(r) == [(1, 1, 6, 0), (2, 0, 5, 0)]
    r = substring_oracle(texts, min_length=5, keep="none")
    assert texts_of(r) == [None, None, None, "hi"]
    assert r.removed == {"empty_after_substring_dedup": 3}
    # Unicode white space (U+3000, U+00A0) counts; a zero-width space does not.
    r = substring_oracle(["hello", "\u3000hello\u00a0", "\u200bhello"], min_length=5)
    assert texts_of(r) == ["hello", None, "\u200b"]


def test_oracle_min_doc_chars_counts_characters() -> None:
    texts = ["hello world", "ab hello world", "éé hello world", "hi"]
    r = substring_oracle(texts, min_length=5, keep="first", min_doc_chars=4)
    # d1 keeps "ab " (3 characters); d2 also loses its space, as " hell" first occurs in d1, and
    # keeps "éé" (2 characters, 4 bytes); "hi" has no removals: kept.
    assert texts_of(r) == ["hello world", None, None, "hi"]
    assert r.removed == {"short_after_substring_dedup": 2}
    assert spans_of(r) == [(1, 3, 14, 0), (2, 4, 16, 2)]
    assert r.spans[1]["first"] == {"id": "1", "start": 2}
    r = substring_oracle(texts, min_length=5, keep="first", min_doc_chars=3)
    assert texts_of(r) == ["hello world", "ab ", None, "hi"]
    assert r.removed == {"short_after_substring_dedup": 1}
    r = substring_oracle(texts, min_length=5, keep="first", min_doc_chars=2)
    assert texts_of(r) == ["hello world", "ab ", "éé", "hi"] and r.removed == {}
    # Empty remainders stay `empty_...` with --min-doc-chars.
    r = substring_oracle(["hello", "hello"], min_length=5, min_doc_chars=10)
    assert r.removed == {"empty_after_substring_dedup": 1}


def test_oracle_annotate_removes_nothing() -> None:
    texts = ["abcabcabc", "abc", "xyz"]
    r = substring_oracle(texts, min_length=3, keep="none", annotate=True, min_doc_chars=100)
    assert texts_of(r) == texts and r.removed == {}
    assert spans_of(r) == [(0, 0, 9, 0), (1, 0, 3, 0)]


def test_oracle_short_documents_have_no_windows() -> None:
    r = substring_oracle(["abc", "abc", ""], min_length=4, keep="none")
    assert texts_of(r) == ["abc", "abc", ""] and r.spans == []


def test_oracle_first_location_rule() -> None:
    # The interval's leftmost window "XYZW" first occurs in d1, though "YZW!" first occurs in d0.
    texts = ["YZW!", "XYZW", "XYZW!"]
    r = substring_oracle(texts, ["a", "b", "c"], min_length=4, keep="first")
    assert texts_of(r) == ["YZW!", "XYZW", None] and r.removed == {"empty_after_substring_dedup": 1}
    assert r.spans == [{"id": "c", "start": 0, "end": 5, "first": {"id": "b", "start": 0}}]


def _union_by_mask(data: bytes, starts: Sequence[int], L: int) -> list[tuple[int, int]]:
    """The union again, as runs of a per-byte mask."""
    mask = [False] * len(data)
    for q in starts:
        for p in range(q, q + L):
            mask[p] = True
    runs = []
    p = 0
    while p < len(mask):
        if mask[p]:
            q = p
            while q < len(mask) and mask[q]:
                q += 1
            runs.append((p, q))
            p = q
        else:
            p += 1
    return runs


@pytest.mark.parametrize("L, keep", [(3, "first"), (8, "first"), (8, "none"), (20, "none"), (50, "first")])
def test_oracle_invariants_on_generated_corpora(L: int, keep: str) -> None:
    docs = substring_corpus(seed=L, n_docs=60)
    texts = [d["text"] for d in docs]
    data = [t.encode() for t in texts]
    r = substring_oracle(texts, [d["id"] for d in docs], min_length=L, keep=keep)
    occurrences = window_occurrences(data, L)
    starts = removed_windows(occurrences, len(data), keep)
    # With keep first, exactly one occurrence of each distinct window survives.
    if keep == "first":
        assert sum(len(s) for s in starts) == sum(len(o) - 1 for o in occurrences.values())
    for d, doc in enumerate(r.docs):
        raw = [(iv.raw_start, iv.raw_end) for iv in doc.intervals]
        mask_runs = _union_by_mask(data[d], starts[d], L)
        # The same runs, but those that held no whole character.
        assert raw == [(a, b) for a, b in mask_runs if shrink(data[d], a, b)[0] < shrink(data[d], a, b)[1]]
        for iv in doc.intervals:
            assert iv.raw_start <= iv.start < iv.end <= iv.raw_end
            assert iv.start - iv.raw_start <= 3 and iv.raw_end - iv.end <= 3
            assert is_boundary(data[d], iv.start) and is_boundary(data[d], iv.end)
            # The spans' first location holds the interval's leading bytes.
            m = min(iv.end, iv.raw_start + L) - iv.start
            first = data[iv.first_doc][iv.first_start : iv.first_start + m]
            assert m > 0 and first == data[d][iv.start : iv.start + m]
            if keep == "first":
                assert (iv.first_doc, iv.first_window) < (d, iv.raw_start)
        # Every byte the mask covers is removed, but for bytes of characters it only partly covers.
        removed = {p for iv in doc.intervals for p in range(iv.start, iv.end)}
        covered = {p for a, b in mask_runs for p in range(a, b)}
        assert removed <= covered
        assert all(not is_boundary(data[d], p) or not is_boundary(data[d], p + 1) for p in covered - removed)
        if doc.dropped is None:
            assert doc.new_text.encode() == cut(data[d], doc.intervals)


def test_oracle_cli_corpora_cover_the_cases() -> None:
    """The corpora of test_cli_matches_the_contract hold repeats across and within documents,
    intervals shrunk at either end, unions of several windows, documents with several intervals
    and without any, edited records with raw numbers, and both drop reasons."""
    for L, keep, seed, n_docs in CLI_CASES:
        docs = substring_corpus(seed * 100 + L, n_docs)
        texts = [d["text"] for d in docs]
        r = substring_oracle(texts, min_length=L, keep=keep, min_doc_chars=30)
        assert r.spans, (L, keep, n_docs)
        if n_docs < 100:
            continue
        ivs = [(d, iv) for d, doc in enumerate(r.docs) for iv in doc.intervals]
        assert any(iv.first_doc != d for d, iv in ivs), L
        assert any(iv.first_doc == d for d, iv in ivs), L
        assert any(iv.start != iv.raw_start for _, iv in ivs), L
        assert any(iv.end != iv.raw_end for _, iv in ivs), L
        assert any(iv.raw_end - iv.raw_start > L for _, iv in ivs), L
        assert any(len(doc.intervals) > 1 for doc in r.docs), L
        assert any(not doc.intervals for doc in r.docs), L
        assert r.removed.get("empty_after_substring_dedup", 0) > 0, L
        assert r.removed.get("short_after_substring_dedup", 0) > 0, L
        r = substring_oracle(texts, min_length=L, keep=keep)  # as the test runs it
        assert any(doc.intervals and not doc.dropped and i % 3 == 0 for i, doc in enumerate(r.docs)), L


# ---------------------------------------------------------------------------------------------
# The command line against the oracle
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    out: Path
    spans: list[dict[str, Any]]
    stats: dict[str, Any]
    lines: list[bytes] = field(default_factory=list)
    stderr: str = ""


def run_substring(tmp_path: Path, inputs: Path | Sequence[Path], *args: Any, tag: str = "") -> Run:
    out = tmp_path / f"out{tag}.jsonl"
    spans = tmp_path / f"spans{tag}.jsonl"
    stats = tmp_path / f"stats{tag}.json"
    srcs = [inputs] if isinstance(inputs, Path) else list(inputs)
    global_args: list[Any] = []
    rest = list(args)
    if "--threads" in rest:  # a global option, given before the command
        i = rest.index("--threads")
        global_args = rest[i : i + 2]
        del rest[i : i + 2]
    r = run_ok(
        "-q", *global_args, "dedup", "substring", *srcs, "-o", out, "--spans", spans, STATS_FLAG, stats, *rest
    )
    span_lines = spans.read_bytes()
    assert span_lines == b"" or span_lines.endswith(b"\n")
    return Run(
        out,
        [json.loads(line) for line in span_lines.splitlines()],
        read_stats(stats),
        output_lines(out),
        r.stderr,
    )


def assert_output(
    run: Run, input_lines: Sequence[bytes], result: SubstringResult, *, annotate: bool = False
) -> None:
    """Written records: the kept ones, in order; unchanged ones byte for byte, edited ones with
    only their text changed (or, annotated, two fields added) and other fields' bytes kept."""
    expected_ids = [result.ids[i] for i in result.kept]
    got = [json.loads(line) for line in run.lines]
    assert [g.get("id") for g in got] == expected_ids
    for line, rec, i in zip(run.lines, got, result.kept, strict=True):
        doc = result.docs[i]
        if not doc.intervals:
            assert line == input_lines[i], result.ids[i]
            continue
        expected = json.loads(input_lines[i])
        if annotate:
            expected["substring_spans"] = [[iv.start, iv.end] for iv in doc.intervals]
            expected["substring_bytes"] = sum(iv.end - iv.start for iv in doc.intervals)
        else:
            expected["text"] = doc.new_text
        assert rec == expected, result.ids[i]
        if input_lines[i].endswith(RAW_NUMBERS):
            for token in (b'"price":1.50', b'"big":1E+2', b'"neg":-0.0'):
                assert token in line, (result.ids[i], line)


def assert_counts(run: Run, result: SubstringResult, *, skipped: int = 0, annotate: bool = False) -> None:
    stats = run.stats
    assert stats["documents_read"] == len(result.docs) + skipped
    assert stats["documents_kept"] == len(result.kept)
    assert stats["documents_removed"] == result.removed
    assert_stats_invariant(stats)
    counters = stats["counters"]
    assert counters["substring_parts"] >= 1
    if annotate:
        return
    for key, value in result.counters.items():
        assert counters[key] == value, key
    assert stats["text_bytes_read"] == sum(len(d.text.encode()) for d in result.docs)
    assert stats["text_bytes_kept"] == sum(len(result.docs[i].new_text.encode()) for i in result.kept)


@pytest.mark.parametrize(
    "L, keep, seed, n_docs", CLI_CASES, ids=[f"L{c[0]}-{c[1]}-{c[3]}docs" for c in CLI_CASES]
)
def test_cli_matches_the_contract(tmp_path: Path, L: int, keep: str, seed: int, n_docs: int) -> None:
    lines = raw_lines(substring_corpus(seed * 100 + L, n_docs), seed)
    src = write_lines(tmp_path / "in.jsonl", lines)
    texts, ids = texts_ids(lines)
    result = substring_oracle(texts, ids, min_length=L, keep=keep)
    assert result.spans  # the corpus has repeats at this length
    run = run_substring(tmp_path, src, "--min-length", L, "--keep", keep)
    assert_output(run, lines, result)
    assert run.spans == result.spans
    assert_counts(run, result)


def test_cli_defaults_are_min_length_100_keep_first(tmp_path: Path) -> None:
    lines = raw_lines(substring_corpus(77, 120), 3)
    src = write_lines(tmp_path / "in.jsonl", lines)
    texts, ids = texts_ids(lines)
    result = substring_oracle(texts, ids, min_length=100, keep="first")
    assert result.spans
    run = run_substring(tmp_path, src)
    assert_output(run, lines, result)
    assert run.spans == result.spans
    assert_counts(run, result)


@pytest.fixture(scope="module")
def part_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    """A ~100 KB corpus for the thread and part-count tests."""
    lines = raw_lines(substring_corpus(4242, 200), 9)
    assert sum(len(t.encode()) for t in texts_ids(lines)[0]) > 80_000
    src = write_lines(tmp_path_factory.mktemp("parts") / "in.jsonl", lines)
    return src, lines


SETTINGS = {
    "threads1": ["--threads", "1"],
    "threads2": ["--threads", "2"],
    "tiny_memory": ["--memory-limit", TINY_MEMORY_LIMIT],
    "tiny_memory_threads2": ["--memory-limit", TINY_MEMORY_LIMIT, "--threads", "2"],
}


@pytest.mark.parametrize("keep", ["first", "none"])
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_cli_output_is_the_same_for_any_threads_and_parts(
    tmp_path: Path, part_corpus: tuple[Path, list[bytes]], setting: str, keep: str
) -> None:
    src, lines = part_corpus
    spill = tmp_path / "spill"
    spill.mkdir()
    common = ["--min-length", 30, "--keep", keep, "--spill-dir", spill]
    base = run_substring(tmp_path, src, *common, tag="base")
    run = run_substring(tmp_path, src, *common, *SETTINGS[setting], tag=setting)
    assert run.out.read_bytes() == base.out.read_bytes()
    assert (tmp_path / f"spans{setting}.jsonl").read_bytes() == (tmp_path / "spansbase.jsonl").read_bytes()
    for key in ("substring_spans", "substring_bytes_removed", "documents_changed"):
        assert run.stats["counters"][key] == base.stats["counters"][key]
    assert run.stats["documents_removed"] == base.stats["documents_removed"]
    if "tiny_memory" in setting:
        assert run.stats["counters"]["substring_parts"] >= 2, run.stats["counters"]
    texts, ids = texts_ids(lines)
    result = substring_oracle(texts, ids, min_length=30, keep=keep)
    assert_output(run, lines, result)
    assert run.spans == result.spans
    assert_counts(run, result)
    assert leftovers(tmp_path) == [] and list(spill.iterdir()) == []


@pytest.mark.parametrize("keep", ["first", "none"])
def test_cli_annotate(tmp_path: Path, keep: str) -> None:
    lines = raw_lines(substring_corpus(31, 100), 4)
    src = write_lines(tmp_path / "in.jsonl", lines)
    texts, ids = texts_ids(lines)
    result = substring_oracle(texts, ids, min_length=20, keep=keep, annotate=True)
    assert result.spans and any(not d.intervals for d in result.docs)
    run = run_substring(
        tmp_path, src, "--min-length", 20, "--keep", keep, "--annotate", "--min-doc-chars", 50
    )
    assert len(run.lines) == len(lines)
    assert_output(run, lines, result, annotate=True)
    assert run.spans == result.spans
    assert_counts(run, result, annotate=True)
    # Not annotated: written unchanged, without the fields.
    for line, doc in zip(run.lines, result.docs, strict=True):
        if not doc.intervals:
            assert b"substring_spans" not in line


@pytest.mark.parametrize("min_doc_chars", [1, 30, 200])
def test_cli_min_doc_chars(tmp_path: Path, min_doc_chars: int) -> None:
    lines = raw_lines(substring_corpus(1020, 120), 5)
    src = write_lines(tmp_path / "in.jsonl", lines)
    texts, ids = texts_ids(lines)
    result = substring_oracle(texts, ids, min_length=20, keep="first", min_doc_chars=min_doc_chars)
    if min_doc_chars > 1:
        assert result.removed.get("short_after_substring_dedup", 0) > 0
        # Documents without removals are kept however short.
        assert any(not d.intervals and len(d.text) < min_doc_chars for d in result.docs)
    run = run_substring(tmp_path, src, "--min-length", 20, "--min-doc-chars", min_doc_chars)
    assert_output(run, lines, result)
    assert run.spans == result.spans
    assert_counts(run, result)


def test_cli_records_pass_through_byte_for_byte(tmp_path: Path) -> None:
    shared = "the same sentence, shared by two records — “quoted” and 中文 🦀 "
    lines = [
        b'{"id":"a","text":' + json.dumps(shared + "first").encode() + b',"x":1.50,"y":1E+2}',
        b'{ "id" : "b" , "text" : '
        + json.dumps("unrelated words", ensure_ascii=False).encode()
        + b', "z":-0.0 }',
        b'{"id":"c","n":12345678901234567890,"text":'
        + json.dumps("then " + shared + "again", ensure_ascii=False).encode()
        + b',"w":3.0e-7,"u":"\\u00e9\\/"}',
        b'{"text":"\\u4e2d\\u6587 tail","id":"d","v":1E+2}',
    ]
    src = write_lines(tmp_path / "in.jsonl", lines)
    texts, ids = texts_ids(lines)
    result = substring_oracle(texts, ids, min_length=12, keep="first")
    assert [bool(d.intervals) for d in result.docs] == [False, False, True, False]
    run = run_substring(tmp_path, src, "--min-length", 12)
    assert run.lines[0] == lines[0] and run.lines[1] == lines[1] and run.lines[3] == lines[3]
    assert_output(run, lines, result)
    # The edited record: only its text changed; the other fields' bytes are as read.
    for token in (b'"n":12345678901234567890', b'"w":3.0e-7', b'"u":"\\u00e9\\/"'):
        assert token in run.lines[2]
    assert json.loads(run.lines[2])["text"] == "then again"
    assert run.spans == [
        {"id": "c", "start": 5, "end": 5 + len(shared.encode()), "first": {"id": "a", "start": 0}}
    ]


def test_cli_generated_ids_in_output_and_spans(tmp_path: Path) -> None:
    text = "a passage long enough to be repeated across documents"
    lines = [
        json.dumps({"text": "one\n" + text}).encode(),
        json.dumps({"text": "two " + text, "id": None}).encode(),
        json.dumps({"text": "three", "id": "k"}).encode(),
    ]
    src = write_lines(tmp_path / "gen.jsonl", lines)
    run = run_substring(tmp_path, src, "--min-length", 16)
    recs = [json.loads(line) for line in run.lines]
    assert [r["id"] for r in recs] == ["gen.jsonl:1", "gen.jsonl:2", "k"]
    assert [r["text"] for r in recs] == ["one\n" + text, "two ", "three"]
    assert run.spans == [
        {"id": "gen.jsonl:2", "start": 4, "end": 4 + len(text), "first": {"id": "gen.jsonl:1", "start": 4}}
    ]


def test_cli_several_compressed_inputs(tmp_path: Path) -> None:
    lines = raw_lines(substring_corpus(55, 90), 6)
    a = write_lines(tmp_path / "a.jsonl.gz", lines[:40])
    b = write_lines(tmp_path / "b.jsonl.zst", lines[40:])
    texts, ids = texts_ids(lines)
    result = substring_oracle(texts, ids, min_length=20, keep="first")
    run = run_substring(tmp_path, [a, b], "--min-length", 20)
    assert_output(run, lines, result)
    assert run.spans == result.spans
    assert_counts(run, result)


def test_cli_empty_input(tmp_path: Path) -> None:
    src = tmp_path / "empty.jsonl"
    src.write_bytes(b"")
    run = run_substring(tmp_path, src, "--min-length", 10)
    assert run.lines == [] and run.spans == []
    assert run.stats["documents_read"] == 0 and run.stats["counters"]["substring_spans"] == 0


# ---------------------------------------------------------------------------------------------
# Real text: properties that hold whatever the oracle says
# ---------------------------------------------------------------------------------------------


def pydoc_corpus(seed: int = 5, target_bytes: int = 220_000) -> list[dict[str, Any]]:
    """Python's topic help, in documents of a few paragraphs, with some documents copied whole and
    some in part (pieces of one or two documents with other text around), placed anywhere."""
    from pydoc_data.topics import topics

    rng = random.Random(seed)
    texts: list[str] = []
    total = 0
    for key in sorted(topics):
        chunk: list[str] = []
        limit = rng.randint(600, 3000)
        for paragraph in topics[key].split("\n\n"):
            chunk.append(paragraph)
            if len("\n\n".join(chunk).encode()) > limit:
                texts.append("\n\n".join(chunk))
                chunk, limit = [], rng.randint(600, 3000)
        if chunk:
            texts.append("\n\n".join(chunk))
        total = sum(len(t.encode()) for t in texts)
        if total > target_bytes:
            break
    for _ in range(len(texts) // 3):
        src = rng.choice(texts)
        r = rng.random()
        if r < 0.25:
            text = src
        else:
            i = rng.randrange(len(src))
            piece = src[i : i + rng.randint(40, 1500)]
            other = rng.choice(texts)
            j = rng.randrange(len(other))
            around = other[j : j + rng.randint(0, 300)]
            text = around + piece if r < 0.6 else piece + "\n" + around + rng.choice(texts)[:200]
        texts.insert(rng.randrange(len(texts) + 1), text)
    return [{"id": f"p{i:04d}", "text": t, "source": "pydoc"} for i, t in enumerate(texts)]


def test_cli_real_text_properties(tmp_path: Path) -> None:
    L = 50
    docs = pydoc_corpus()
    lines = [json.dumps(d, ensure_ascii=False).encode() for d in docs]
    src = write_lines(tmp_path / "pydoc.jsonl", lines)
    run = run_substring(tmp_path, src, "--min-length", L, "--keep", "first")
    index = {d["id"]: i for i, d in enumerate(docs)}
    data = [d["text"].encode() for d in docs]
    out = {r["id"]: r["text"] for r in (json.loads(line) for line in run.lines)}
    assert list(out) == [d["id"] for d in docs if d["id"] in out]  # order kept
    spans_by_doc: dict[int, list[dict[str, Any]]] = {}
    for s in run.spans:
        spans_by_doc.setdefault(index[s["id"]], []).append(s)
    assert run.spans == sorted(run.spans, key=lambda s: (index[s["id"]], s["start"]))
    assert len(run.spans) > 20

    # (a) Every removed byte lies in an interval whose leading window occurs earlier in the corpus,
    # where the spans file says.
    for s in run.spans:
        d, d2 = index[s["id"]], index[s["first"]["id"]]
        start, end, s2 = s["start"], s["end"], s["first"]["start"]
        assert 0 <= start < end <= len(data[d]) and end - start >= L - 6, s
        m = min(end - start, L - 3)  # the interval starts at most 3 bytes after its window (q0)
        assert data[d2][s2 : s2 + m] == data[d][start : start + m], s
        assert (d2, s2) < (d, start), s
        # The whole leading window: at q0 = start - k for a k of 0..3 (the shrink), found at s2 - k.
        assert any(
            start - k >= 0
            and s2 - k >= 0
            and len(data[d][start - k : start - k + L]) == L
            and data[d2][s2 - k : s2 - k + L] == data[d][start - k : start - k + L]
            for k in range(4)
        ), s
    for d, text in enumerate(data):
        doc_spans = spans_by_doc.get(d, [])
        for a, b in zip(doc_spans, doc_spans[1:], strict=False):
            assert a["end"] < b["start"]  # disjoint, not touching
        pieces, pos = [], 0
        for s in doc_spans:
            pieces.append(text[pos : s["start"]])
            pos = s["end"]
        pieces.append(text[pos:])
        remaining = b"".join(pieces).decode("utf-8")
        if docs[d]["id"] in out:
            assert out[docs[d]["id"]] == remaining
            if not doc_spans:
                assert run.lines[list(out).index(docs[d]["id"])] == lines[d]
        else:
            assert doc_spans and all(c in WHITE_SPACE for c in remaining)

    # (b) No window of L bytes occurs twice in the output, except windows across a cut point.
    seen: dict[bytes, tuple[str, int]] = {}
    for doc_id, text in out.items():
        b = text.encode()
        cuts, removed = [], 0
        for s in spans_by_doc.get(index[doc_id], []):
            cuts.append(s["start"] - removed)
            removed += s["end"] - s["start"]
        for p in range(len(b) - L + 1):
            if any(p < c < p + L for c in cuts):
                continue
            w = b[p : p + L]
            assert w not in seen, (doc_id, p, seen.get(w))
            seen[w] = (doc_id, p)

    # And the oracle agrees on real text.
    result = substring_oracle([d["text"] for d in docs], [d["id"] for d in docs], min_length=L, keep="first")
    assert run.spans == result.spans
    assert_output(run, lines, result)
    assert_counts(run, result)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--min-length", "0"], "--min-length"),
        (["--min-length", "ten"], "--min-length"),
        (["--min-length=-5"], "--min-length"),
        (["--keep", "last"], "--keep"),
        (["--min-doc-chars", "x"], "--min-doc-chars"),
        (["--memory-limit", "lots"], "--memory-limit"),
    ],
)
def test_cli_bad_options_are_named(tmp_path: Path, run_tamis: Any, args: list[str], flag: str) -> None:
    src = write_lines(tmp_path / "in.jsonl", [b'{"id":"a","text":"some text"}'])
    out = tmp_path / "out.jsonl"
    r = run_tamis("dedup", "substring", src, "-o", out, *args)
    assert r.returncode != 0, r.stderr
    assert flag in r.stderr, r.stderr
    assert not out.exists() and leftovers(tmp_path) == []


GOOD = [
    json.dumps({"id": "g1", "text": "a shared passage of some length, then one"}).encode(),
    json.dumps({"id": "g2", "text": "a shared passage of some length, then two", "x": 1}).encode(),
    json.dumps({"id": "g3", "text": "unrelated"}).encode(),
]


def test_cli_malformed_line_fails(tmp_path: Path, run_tamis: Any) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_bytes(GOOD[0] + b"\n" + GOOD[1] + b"\n{not json\n" + GOOD[2] + b"\n")
    out = tmp_path / "out.jsonl"
    spans = tmp_path / "spans.jsonl"
    r = run_tamis("dedup", "substring", src, "-o", out, "--min-length", 10, "--spans", spans)
    assert r.returncode == 1, r.stderr
    assert src.name in r.stderr and re.search(r"\bline 3\b", r.stderr), r.stderr
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_cli_malformed_line_skipped(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_bytes(GOOD[0] + b"\n" + GOOD[1] + b"\n{not json\n" + b'{"id":"n","text":5}\n' + GOOD[2] + b"\n")
    rejects = tmp_path / "rejects.jsonl"
    run = run_substring(
        tmp_path, src, "--min-length", 10, "--on-error", "skip", "--rejects", rejects, "--keep", "first"
    )
    texts, ids = texts_ids(GOOD)
    result = substring_oracle(texts, ids, min_length=10, keep="first")
    assert texts_of(result) == [texts[0], "two", "unrelated"]
    assert_output(run, GOOD, result)
    assert run.spans == result.spans
    assert run.stats["records_skipped"] == {"invalid_json": 1, "text_not_string": 1}
    assert_counts(run, result, skipped=2)
    rej = [json.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [(r["line"], r["reason"]) for r in rej] == [(3, "invalid_json"), (4, "text_not_string")]


def test_cli_output_that_is_an_input_is_refused(tmp_path: Path, run_tamis: Any) -> None:
    src = write_lines(tmp_path / "in.jsonl", GOOD)
    before = src.read_bytes()
    r = run_tamis("dedup", "substring", src, "-o", src, "--min-length", 10)
    assert r.returncode == 1, r.stderr
    assert "the output is also an input" in r.stderr, r.stderr
    assert src.read_bytes() == before
    # The rejects file may not be an input either.
    out = tmp_path / "out.jsonl"
    r = run_tamis("dedup", "substring", src, "-o", out, "--on-error", "skip", "--rejects", src)
    assert r.returncode == 1 and "also an input" in r.stderr, r.stderr
    assert src.read_bytes() == before and not out.exists()
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Other surfaces: Python and `tamis refine`
# ---------------------------------------------------------------------------------------------


def test_python_function_equals_the_command_line(tmp_path: Path) -> None:
    import tamis.dedup

    lines = raw_lines(substring_corpus(5, 80), 5)
    src = write_lines(tmp_path / "in.jsonl", lines)
    cli = run_substring(tmp_path, src, "--min-length", 20, "--min-doc-chars", 30, tag="cli")
    out = tmp_path / "py.jsonl"
    spans = tmp_path / "py_spans.jsonl"
    options = tamis.dedup.SubstringOptions(min_length=20, spans=spans)
    stats = tamis.dedup.substring(src, out, options, min_doc_chars=30, threads=1)
    assert out.read_bytes() == cli.out.read_bytes()
    assert spans.read_bytes() == (tmp_path / "spanscli.jsonl").read_bytes()
    assert stats["counters"] == cli.stats["counters"]
    assert stats["documents_removed"] == cli.stats["documents_removed"]


def test_python_options_are_checked_by_the_core(tmp_path: Path) -> None:
    import tamis.dedup
    from tamis.errors import ConfigError

    src = write_lines(tmp_path / "in.jsonl", raw_lines(substring_corpus(1, 5), 1))
    with pytest.raises(ConfigError, match="min_length must be from 1"):
        tamis.dedup.substring(src, tmp_path / "o.jsonl", min_length=0)
    with pytest.raises(ConfigError, match="keep"):
        tamis.dedup.substring(src, tmp_path / "o.jsonl", keep="last")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown option 'min_len'"):
        tamis.dedup.substring(src, tmp_path / "o.jsonl", min_len=5)
    assert not (tmp_path / "o.jsonl").exists()


def test_refine_stage_equals_the_command_line_over_shards(tmp_path: Path) -> None:
    """The `dedup_substring` stage of `tamis refine` is global: repeats across shards are found,
    and the shards hold what the command line writes for the same files in the same order."""
    import gzip

    from tamis.refine import Pipeline

    lines = raw_lines(substring_corpus(11, 120), 11)
    a = write_lines(tmp_path / "a.jsonl", lines[:60])
    b = write_lines(tmp_path / "b.jsonl", lines[60:])
    cli = run_substring(tmp_path, [a, b], "--min-length", 30, "--keep", "none", tag="cli")
    spans = tmp_path / "refine_spans.jsonl"
    cfg = {
        "inputs": [str(a), str(b)],
        "output": str(tmp_path / "R"),
        "stage": [{"type": "dedup_substring", "min_length": 30, "keep": "none", "spans": str(spans)}],
    }
    Pipeline.from_config(cfg).run()
    shards = sorted((tmp_path / "R" / "data").glob("*.jsonl.gz"))
    assert len(shards) == 2
    data = b"".join(gzip.decompress(p.read_bytes()) for p in shards)
    assert data == cli.out.read_bytes()
    assert spans.read_bytes() == (tmp_path / "spanscli.jsonl").read_bytes()
    in_a = {json.loads(x)["id"] for x in lines[:60]}
    assert any(s["id"] not in in_a and s["first"]["id"] in in_a for s in cli.spans)  # across shards


def test_refine_config_errors_name_the_key(tmp_path: Path) -> None:
    from tamis.refine import ConfigError, Pipeline

    cfg = {
        "inputs": [str(tmp_path)],
        "output": str(tmp_path / "out"),
        "stage": [{"type": "dedup_substring", "min_length": 0}],
    }
    with pytest.raises(ConfigError, match=r"stage 1 \(dedup_substring\): min_length must be from 1"):
        Pipeline.from_config(cfg)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# --unit tokens (Lee et al. count 50 GPT-2 tokens)
# ---------------------------------------------------------------------------------------------


def token_oracle(
    texts: Sequence[str], tok: Any, *, min_length: int, keep: str
) -> tuple[list[str], list[tuple[int, int, int, int, int]]]:
    """Windows of L token ids; a document's removed windows unite in tokens, map to bytes (first
    token's start to last token's end; byte ranges that meet join) and shrink to characters.
    Returns the output texts and (doc, start, end, first doc, first start) per interval."""
    encs = [tok.encode(t, add_special_tokens=False) for t in texts]
    data = [tuple(e.ids) for e in encs]
    byte_offsets = []
    for t, e in zip(texts, encs, strict=True):
        at = [0]
        for ch in t:
            at.append(at[-1] + len(ch.encode("utf-8")))
        byte_offsets.append([(at[a], at[b]) for a, b in e.offsets])
    occurrences: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    for d, ids in enumerate(data):
        for q in range(len(ids) - min_length + 1):
            occurrences.setdefault(ids[q : q + min_length], []).append((d, q))
    removed = removed_windows(occurrences, len(data), keep)  # type: ignore[arg-type]
    out_texts, spans = [], []
    for d, t in enumerate(texts):
        b = t.encode("utf-8")
        merged: list[list[int]] = []
        for ta, tb in union(removed[d], min_length):
            s, e = byte_offsets[d][ta][0], byte_offsets[d][tb - 1][1]
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e, ta])
        ivs = []
        for s0, e0, q0 in merged:
            s, e = shrink(b, s0, e0)
            if s == e:
                continue
            fd, f = occurrences[data[d][q0 : q0 + min_length]][0]
            first = byte_offsets[fd][f][0] + (s - byte_offsets[d][q0][0])
            ivs.append(Interval(s, e, s0, e0, fd, f))
            spans.append((d, s, e, fd, first))
        out_texts.append(cut(b, ivs).decode("utf-8"))
    return out_texts, spans


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    from conftest import load_benchmark
    from tokenizers import Tokenizer

    path = load_benchmark("vocab_data").gpt2_tokenizer(tmp_path_factory.mktemp("gpt2") / "gpt2.json")
    return Tokenizer.from_file(str(path)), path


@pytest.mark.parametrize("keep", ["first", "none"])
@pytest.mark.parametrize("L", [3, 12])
def test_cli_tokens_unit_matches_the_token_oracle(
    tmp_path: Path, gpt2: tuple[Any, Path], L: int, keep: str
) -> None:
    tok, path = gpt2
    docs = substring_corpus(31, 60)
    src = write_lines(tmp_path / "in.jsonl", raw_lines(docs, 31))
    texts = [d["text"] for d in docs]
    ids = [d["id"] for d in docs]
    expected_texts, expected_spans = token_oracle(texts, tok, min_length=L, keep=keep)
    assert any(s[3] != s[0] for s in expected_spans)  # repeats across documents
    flags = ["--min-length", L, "--keep", keep, "--unit", "tokens", "--tokenizer", path]
    run = run_substring(tmp_path, src, *flags, "--memory-limit", TINY_MEMORY_LIMIT, tag="tok")
    got = {json.loads(line)["id"]: json.loads(line)["text"] for line in run.lines}
    for i, t in zip(ids, expected_texts, strict=True):
        if i in got:
            assert got[i] == t, i
        else:
            assert not t.strip(), i  # dropped: left empty
    assert [
        (ids.index(s["id"]), s["start"], s["end"], ids.index(s["first"]["id"]), s["first"]["start"])
        for s in run.spans
    ] == expected_spans
    # the same with the suffix arrays in memory and another thread count
    again = run_substring(tmp_path, src, *flags, "--threads", 1, tag="tok1")
    assert again.out.read_bytes() == run.out.read_bytes() and again.spans == run.spans


def test_tokens_unit_options_are_checked(tmp_path: Path, run_tamis: Any) -> None:
    src = write_lines(tmp_path / "in.jsonl", raw_lines(substring_corpus(1, 5), 1))
    r = run_tamis("dedup", "substring", src, "-o", tmp_path / "o.jsonl", "--unit", "tokens")
    assert r.returncode != 0 and "--unit tokens needs --tokenizer" in r.stderr
    r = run_tamis("dedup", "substring", src, "-o", tmp_path / "o.jsonl", "--tokenizer", src)
    assert r.returncode != 0 and "--tokenizer is only used with --unit tokens" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    r = run_tamis(
        "dedup", "substring", src, "-o", tmp_path / "o.jsonl", "--unit", "tokens", "--tokenizer", bad
    )
    assert r.returncode == 1 and "bad.json" in r.stderr
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--min-length", "18446744073709551616"], "--min-length"),
        (["--min-length", "1048577"], "--min-length must be from 1 to 1048576"),
        (["--memory-limit", "99999999999999999999G"], "--memory-limit"),
        (["--memory-limit", "1"], "--memory-limit 1 is too small"),
    ],
)
def test_hostile_numbers_are_refused_under_a_memory_limit(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    """Absurd numbers size nothing: a clear error within 1 GiB of address space, no output."""
    import resource
    import subprocess

    from conftest import TAMIS

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    src = write_lines(tmp_path / "in.jsonl", raw_lines(substring_corpus(2, 20), 2))
    out = tmp_path / "o.jsonl"
    r = subprocess.run(
        [*TAMIS, "dedup", "substring", str(src), "-o", str(out), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
    )
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert not out.exists() and leftovers(tmp_path) == []
