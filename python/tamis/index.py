"""Persistent indexes and decontamination (``tamis index``, ``tamis decontaminate``).

An index is a directory of sorted, memory-mapped hash tables with the id of the record each hash
came from (docs/index.md):

- ``kind="ngram"``: word n-grams (13 words by default, near dedup's words) of evaluation sets,
  for :func:`decontaminate`, :func:`contaminated` and ``pl.col("text").tamis.contaminated``;
- ``kind="exact"``: text hashes of an older corpus, for ``tamis.dedup.exact(..., against=[INDEX])``;
- ``kind="lines"``: line hashes, for ``tamis.dedup.lines(..., against=[INDEX])``;
- ``kind="near"``: MinHash-LSH band keys, for ``tamis.dedup.near(..., against=[INDEX])``.

::

    tamis.index.build("mmlu.jsonl", "evals.idx", fields=["question", "choices", "answer"])
    tamis.index.decontaminate("corpus/", "clean.jsonl", against=["evals.idx"], matches="m.jsonl")
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tamis import _core
from tamis._options import IoOptions, default, split, to_json
from tamis._options import build as _build

Kind = Literal["ngram", "exact", "lines", "near"]
Shingle = Literal["words", "chars"]
Sketch = Literal["kperm", "oph"]
Mode = Literal["drop", "spans"]
Normalize = Literal["none", "whitespace", "simple"]
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class IndexOptions:
    """What an index holds (``tamis_core::index::IndexOptions``): ``kind`` ``"ngram"`` (``ngram``
    words per n-gram, 13 when not given), ``"exact"`` (text hashes under ``normalize``, or of the
    ``key`` field), ``"lines"`` (line hashes under ``normalize``, lines of at least
    ``min_line_chars`` characters) or ``"near"`` (MinHash band keys with ``num_perm``, ``bands``,
    ``rows`` or ``threshold``, ``seed``, ``shingle``, ``sketch`` and ``ngram`` as
    :class:`tamis.dedup.NearOptions`); ``fields`` indexes those fields of each record, joined by
    newlines, instead of the text (the first must be a string); ``memory_limit`` bounds the
    entries held before spilling to disk."""

    kind: Kind = default("index", "kind")
    ngram: int | None = default("index", "ngram")
    normalize: Normalize = default("index", "normalize")
    min_line_chars: int = default("index", "min_line_chars")
    num_perm: int | None = default("index", "num_perm")
    bands: int | None = default("index", "bands")
    rows: int | None = default("index", "rows")
    threshold: float | None = default("index", "threshold")
    seed: int | None = default("index", "seed")
    shingle: Shingle | None = default("index", "shingle")
    sketch: Sketch | None = default("index", "sketch")
    key: str | None = default("index", "key")
    fields: list[str] = default("index", "fields")
    memory_limit: int | str | None = default("index", "memory_limit")
    spill_dir: str | None = default("index", "spill_dir")


@dataclass(frozen=True)
class DecontOptions:
    """Decontamination (``tamis_core::index::decont::DecontOptions``): ``against`` the n-gram
    indexes of evaluation sets, ``mode`` ``"drop"`` (the document) or ``"spans"`` (cut the matched
    n-grams out); ``matches`` writes one JSON line per match (document id, index, item id, byte
    span, text)."""

    against: list[str] = default("decontaminate", "against")
    mode: Mode = default("decontaminate", "mode")
    matches: str | None = default("decontaminate", "matches")
    memory_limit: int | str | None = default("decontaminate", "memory_limit")


def _paths(inputs: PathLike | Sequence[PathLike]) -> list[str]:
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    return [os.fspath(p) for p in inputs]


def _stats(raw: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(raw)
    return result


def build(
    inputs: PathLike | Sequence[PathLike],
    index: PathLike,
    options: IndexOptions | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Build a new index in directory ``index`` (new or empty) from ``inputs``; returns the run
    statistics (``counters``: ``index_records``, ``index_entries``, ...).

    Keywords: the fields of :class:`IndexOptions` and :class:`tamis.IoOptions` (``id_key`` names
    the field stored as each record's id)."""
    own, io = split(kwargs, IndexOptions, IoOptions)
    o = to_json(_build(IndexOptions, options, own))
    return _stats(
        _core.index_build(_paths(inputs), os.fspath(index), o, to_json(_build(IoOptions, None, io)))
    )


def add(
    index: PathLike,
    inputs: PathLike | Sequence[PathLike],
    *,
    memory_limit: int | str | None = None,
    spill_dir: PathLike | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Add ``inputs`` to ``index`` as a new segment, read with the options the index was built with
    (keywords: the fields of :class:`tamis.IoOptions`); ``memory_limit``: bytes, or text like
    ``"2G"``."""
    (io,) = split(kwargs, IoOptions)
    return _stats(
        _core.index_add(
            os.fspath(index),
            _paths(inputs),
            to_json(_build(IoOptions, None, io)),
            None if memory_limit is None else str(memory_limit),
            None if spill_dir is None else os.fspath(spill_dir),
        )
    )


def info(index: PathLike) -> dict[str, Any]:
    """What ``index`` holds (kind, n, records, entries, bytes per entry, inputs), after checking the
    size and checksum of every file."""
    result: dict[str, Any] = json.loads(_core.index_info_json(os.fspath(index)))
    return result


def decontaminate(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    options: DecontOptions | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Drop the documents of ``inputs`` that hold an n-gram of the ``against`` indexes, or cut the
    matching spans out (``mode="spans"``), as ``tamis decontaminate``; returns the statistics
    (``counters``: ``contaminated_documents``, ``matched_ngrams``, ...).

    Keywords: the fields of :class:`DecontOptions` and :class:`tamis.IoOptions`."""
    own, io = split(kwargs, DecontOptions, IoOptions)
    o = to_json(_build(DecontOptions, options, own))
    return _stats(
        _core.decontaminate(_paths(inputs), os.fspath(output), o, to_json(_build(IoOptions, None, io)))
    )


_OPEN: dict[tuple[str, str], _core.NgramIndexes] = {}
_LOCK = threading.Lock()


def open_indexes(options: DecontOptions | None = None, **kwargs: Any) -> _core.NgramIndexes:
    """The ``against`` indexes opened for queries (checked once, then shared: every call with the
    same options and unchanged manifests reuses them)."""
    o = _build(DecontOptions, options, kwargs)
    j = to_json(o)
    stamp = json.dumps(
        [os.stat(os.path.join(p, "index.json")).st_mtime_ns for p in o.against if os.path.isdir(p)]
    )
    with _LOCK:
        got = _OPEN.get((j, stamp))
        if got is None:
            got = _core.NgramIndexes(j)
            _OPEN[(j, stamp)] = got
        return got


def contaminated(texts: Any, against: PathLike | Sequence[PathLike], *, threads: int = 0) -> Any:
    """``True`` for each text (a sequence, pyarrow or polars column) holding an n-gram of the
    ``against`` indexes; missing texts are ``False``. Returns what :func:`tamis.dedup` masks
    return for the same input type."""
    from tamis._arrow import like_input, to_arrow

    indexes = open_indexes(against=_paths(against))
    return like_input(indexes.contaminated(to_arrow(texts), threads=threads), texts)


def matches(text: str, against: PathLike | Sequence[PathLike]) -> list[tuple[str, str, int, int]]:
    """The indexed n-grams in ``text``: ``(index, item id, start, end)`` per n-gram and item, in
    text order (byte offsets into the UTF-8 text)."""
    return open_indexes(against=_paths(against)).hits(text)
