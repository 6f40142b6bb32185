"""Deduplication: over files (JSONL, .gz, .zst, Parquet) or in-memory columns.

File functions run the same Rust pipeline as ``tamis dedup exact|lines`` with the GIL released
and return the run statistics (documents read, kept, removed by reason, bytes, seconds).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, Literal

from tamis import _core
from tamis._arrow import like_input, to_arrow
from tamis.text import Normalize

OnError = Literal["fail", "skip"]
PathLike = str | os.PathLike[str]


def _paths(inputs: PathLike | Sequence[PathLike]) -> list[str]:
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    return [os.fspath(p) for p in inputs]


def exact(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    *,
    normalize: Normalize = "none",
    key: str | None = None,
    text_key: str = "text",
    id_key: str = "id",
    on_error: OnError = "fail",
    rejects: PathLike | None = None,
    threads: int = 0,
) -> dict[str, Any]:
    """Keep the first occurrence, in input order, of each document with identical normalized text.

    ``key`` deduplicates on another string field (e.g. ``"url"``). Raises :class:`tamis.TamisError`
    (a ``ValueError`` with ``.kind``) on bad input unless ``on_error="skip"``; no output file is
    left behind on error.
    """
    stats = _core.dedup_exact(
        _paths(inputs),
        os.fspath(output),
        normalize=normalize,
        key=key,
        text_key=text_key,
        id_key=id_key,
        on_error=on_error,
        rejects=os.fspath(rejects) if rejects is not None else None,
        threads=threads,
    )
    result: dict[str, Any] = json.loads(stats)
    return result


def lines(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    *,
    max_occurrences: int = 1,
    min_line_chars: int = 0,
    normalize: Normalize = "none",
    text_key: str = "text",
    id_key: str = "id",
    on_error: OnError = "fail",
    rejects: PathLike | None = None,
    threads: int = 0,
) -> dict[str, Any]:
    """Remove every occurrence of a line beyond the first ``max_occurrences`` across the corpus.

    Lines shorter than ``min_line_chars`` characters, and blank lines, are always kept; documents
    left blank are dropped (``documents_removed["empty_after_line_dedup"]``).
    """
    stats = _core.dedup_lines(
        _paths(inputs),
        os.fspath(output),
        max_occurrences=max_occurrences,
        min_line_chars=min_line_chars,
        normalize=normalize,
        text_key=text_key,
        id_key=id_key,
        on_error=on_error,
        rejects=os.fspath(rejects) if rejects is not None else None,
        threads=threads,
    )
    result: dict[str, Any] = json.loads(stats)
    return result


def exact_keep_mask(texts: Any, *, normalize: Normalize = "none", threads: int = 0) -> Any:
    """``True`` for the first occurrence of each normalized text, ``False`` for repeats.

    ``texts`` is a polars Series, a pyarrow array or a list of str (the result has the same kind).
    Nulls are not documents and are always kept.
    """
    return like_input(
        _core.exact_keep_mask_arrow(to_arrow(texts), normalize=normalize, threads=threads), texts
    )


__all__ = ["exact", "exact_keep_mask", "lines"]
