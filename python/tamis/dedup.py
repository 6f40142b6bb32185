"""Deduplication: over files (JSONL, .gz, .zst, Parquet) or in-memory columns.

File functions run the same Rust pipeline as ``tamis dedup exact|lines|near`` with the GIL
released and return the run statistics (documents read, kept, removed by reason, bytes, seconds).
Near-duplicate detection (MinHash-LSH) is described in docs/near-dedup.md.
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


Shingle = Literal["words", "chars"]
# "kperm": num_perm permutations of every shingle; "oph": one permutation in num_perm densified bins.
Sketch = Literal["kperm", "oph"]


def _stats(raw: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(raw)
    return result


def _opt_path(p: PathLike | None) -> str | None:
    return os.fspath(p) if p is not None else None


def near(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    *,
    threshold: float | None = None,
    recall_weight: float | None = None,
    ngram: int = 5,
    shingle: Shingle = "words",
    num_perm: int = 112,
    bands: int | None = None,
    rows: int | None = None,
    seed: int = 1,
    sketch: Sketch = "kperm",
    verify: bool = False,
    annotate: bool = False,
    priority: str | None = None,
    clusters: PathLike | None = None,
    memory_limit: int | None = None,
    spill_dir: PathLike | None = None,
    text_key: str = "text",
    id_key: str = "id",
    on_error: OnError = "fail",
    rejects: PathLike | None = None,
    threads: int = 0,
) -> dict[str, Any]:
    """Remove near-duplicate documents (MinHash-LSH), as ``tamis dedup near``.

    Defaults are datatrove's (FineWeb's): 5-word shingles, 112 permutations as 14 bands × 8 rows.
    ``threshold`` instead picks bands × rows for that Jaccard similarity as datasketch does
    (false negatives weighted ``recall_weight``, 0.5 by default; 0.9 finds ≥ 95% of pairs 0.05
    above the threshold) and is what ``verify`` requires (0.8 by default). Each cluster keeps its
    first document in input order, or the one with the smallest ``priority`` field.
    ``annotate`` keeps everything and adds ``minhash_cluster_id`` / ``minhash_cluster_size``;
    ``memory_limit`` (bytes) spills band keys to ``spill_dir`` beyond it. Output is identical in
    every mode and for any ``threads``.
    """
    return _stats(
        _core.dedup_near(
            _paths(inputs),
            os.fspath(output),
            threshold=threshold,
            recall_weight=recall_weight,
            ngram=ngram,
            shingle=shingle,
            num_perm=num_perm,
            bands=bands,
            rows=rows,
            seed=seed,
            sketch=sketch,
            verify=verify,
            annotate=annotate,
            priority=priority,
            clusters=_opt_path(clusters),
            memory_limit=memory_limit,
            spill_dir=_opt_path(spill_dir),
            text_key=text_key,
            id_key=id_key,
            on_error=on_error,
            rejects=_opt_path(rejects),
            threads=threads,
        )
    )


def near_signatures(
    inputs: PathLike | Sequence[PathLike],
    workdir: PathLike,
    *,
    rank: int = 0,
    world_size: int = 1,
    threshold: float | None = None,
    recall_weight: float | None = None,
    ngram: int = 5,
    shingle: Shingle = "words",
    num_perm: int = 112,
    bands: int | None = None,
    rows: int | None = None,
    seed: int = 1,
    sketch: Sketch = "kperm",
    priority: str | None = None,
    memory_limit: int | None = None,
    text_key: str = "text",
    on_error: OnError = "fail",
    threads: int = 0,
) -> dict[str, Any]:
    """Stage 1 of the multi-task workflow (``tamis dedup near signatures``): task ``rank`` of
    ``world_size`` writes the signatures of input files ``i % world_size == rank`` to ``workdir``."""
    return _stats(
        _core.near_signatures(
            _paths(inputs),
            os.fspath(workdir),
            rank=rank,
            world_size=world_size,
            threshold=threshold,
            recall_weight=recall_weight,
            ngram=ngram,
            shingle=shingle,
            num_perm=num_perm,
            bands=bands,
            rows=rows,
            seed=seed,
            sketch=sketch,
            priority=priority,
            memory_limit=memory_limit,
            text_key=text_key,
            on_error=on_error,
            threads=threads,
        )
    )


def near_buckets(workdir: PathLike, *, rank: int = 0, world_size: int = 1) -> dict[str, Any]:
    """Stage 2 (``tamis dedup near buckets``): candidate pairs of this task's bands."""
    return _stats(_core.near_buckets(os.fspath(workdir), rank=rank, world_size=world_size))


def near_cluster(workdir: PathLike) -> dict[str, Any]:
    """Stage 3 (``tamis dedup near cluster``, one task): clusters and per-shard decisions."""
    return _stats(_core.near_cluster(os.fspath(workdir)))


def near_filter(
    inputs: PathLike | Sequence[PathLike],
    workdir: PathLike,
    output: str,
    *,
    rank: int = 0,
    world_size: int = 1,
    annotate: bool = False,
    clusters: PathLike | None = None,
    text_key: str = "text",
    id_key: str = "id",
    on_error: OnError = "fail",
    rejects: PathLike | None = None,
    threads: int = 0,
) -> dict[str, Any]:
    """Stage 4 (``tamis dedup near filter``): write the kept documents of input files
    ``i % world_size == rank``; ``{rank}`` in ``output`` becomes the 5-digit rank."""
    return _stats(
        _core.near_filter(
            _paths(inputs),
            os.fspath(workdir),
            output,
            rank=rank,
            world_size=world_size,
            annotate=annotate,
            clusters=_opt_path(clusters),
            text_key=text_key,
            id_key=id_key,
            on_error=on_error,
            rejects=_opt_path(rejects),
            threads=threads,
        )
    )


def minhash(
    texts: Any,
    *,
    num_perm: int = 112,
    ngram: int = 5,
    shingle: Shingle = "words",
    seed: int = 1,
    sketch: Sketch = "kperm",
    threads: int = 0,
    output: Literal["numpy", "arrow"] = "numpy",
) -> Any:
    """MinHash signatures of ``texts`` (a list of str, polars Series or Arrow string array).

    ``output="numpy"``: a ``(len(texts), num_perm)`` uint64 array viewing the Rust buffer (no
    copy); ``"arrow"``: an Arrow ``FixedSizeList<UInt64>[num_perm]`` array object (Arrow PyCapsule
    interface; ``pyarrow.array(...)`` or ``polars.Series(...)`` take it without copying). Nulls and
    texts without any word get all ``2**64 - 1``. The same signatures as ``tamis dedup near``.
    """
    matrix = _core.minhash(
        to_arrow(texts),
        num_perm=num_perm,
        ngram=ngram,
        shingle=shingle,
        seed=seed,
        sketch=sketch,
        threads=threads,
    )
    if output == "arrow":
        return matrix.to_arrow()
    if output != "numpy":
        raise ValueError(f"output must be 'numpy' or 'arrow', got {output!r}")
    import numpy as np

    return np.asarray(matrix)


def minhash_hashes(
    values: Any,
    offsets: Any,
    *,
    num_perm: int = 112,
    seed: int = 1,
    sketch: Sketch = "kperm",
    threads: int = 0,
) -> Any:
    """MinHash signatures of pre-shingled documents, as a ``(len(offsets) - 1, num_perm)`` uint64
    numpy array: document ``i`` is the 64-bit shingle hashes ``values[offsets[i]:offsets[i+1]]``
    (numpy arrays, polars Series or Arrow arrays; numpy input crosses without a copy)."""
    import numpy as np
    import polars as pl

    def arrow(x: Any) -> Any:
        return pl.Series(np.ascontiguousarray(x, dtype=np.uint64)) if isinstance(x, np.ndarray) else x

    return np.asarray(
        _core.minhash_hashes(
            arrow(values), arrow(offsets), num_perm=num_perm, seed=seed, sketch=sketch, threads=threads
        )
    )


def near_clusters(
    texts: Any,
    *,
    threshold: float | None = None,
    recall_weight: float | None = None,
    ngram: int = 5,
    shingle: Shingle = "words",
    num_perm: int = 112,
    bands: int | None = None,
    rows: int | None = None,
    seed: int = 1,
    sketch: Sketch = "kperm",
    verify: bool = False,
    threads: int = 0,
) -> tuple[Any, Any]:
    """Near-duplicate clusters of an in-memory column: per text, the index of its cluster's kept
    text (its first member) and the cluster size, as two columns of the input's kind."""
    reps, sizes = _core.near_clusters_arrow(
        to_arrow(texts),
        threshold=threshold,
        recall_weight=recall_weight,
        ngram=ngram,
        shingle=shingle,
        num_perm=num_perm,
        bands=bands,
        rows=rows,
        seed=seed,
        sketch=sketch,
        verify=verify,
        threads=threads,
    )
    return like_input(reps, texts), like_input(sizes, texts)


def near_keep_mask(
    texts: Any,
    *,
    threshold: float | None = None,
    recall_weight: float | None = None,
    ngram: int = 5,
    shingle: Shingle = "words",
    num_perm: int = 112,
    bands: int | None = None,
    rows: int | None = None,
    seed: int = 1,
    sketch: Sketch = "kperm",
    verify: bool = False,
    threads: int = 0,
) -> Any:
    """``True`` for the text each near-duplicate cluster keeps (its first), ``False`` for the
    others; nulls are kept. Same kept rows as ``tamis dedup near`` over the rows in order."""
    mask = _core.near_keep_mask_arrow(
        to_arrow(texts),
        threshold=threshold,
        recall_weight=recall_weight,
        ngram=ngram,
        shingle=shingle,
        num_perm=num_perm,
        bands=bands,
        rows=rows,
        seed=seed,
        sketch=sketch,
        verify=verify,
        threads=threads,
    )
    return like_input(mask, texts)


def shingle_hashes(text: str, *, ngram: int = 5, shingle: Shingle = "words") -> list[int]:
    """The 64-bit shingle hashes of ``text`` as near-dedup computes them (repeats kept)."""
    return _core.shingle_hashes(text, ngram=ngram, shingle=shingle)


def shingle_words(text: str) -> list[str]:
    """The words of ``text`` after normalization (every Han/Kana/Thai/... character is a word)."""
    return _core.shingle_words(text)


def bands_rows(
    *,
    threshold: float | None = None,
    recall_weight: float | None = None,
    num_perm: int = 112,
    bands: int | None = None,
    rows: int | None = None,
) -> tuple[int, int]:
    """The (bands, rows) ``near`` uses for these options (``threshold``: datasketch's optimum,
    false negatives weighted ``recall_weight``, 0.5 by default)."""
    b, r, _ = _core.near_bands_rows(
        num_perm=num_perm, bands=bands, rows=rows, threshold=threshold, recall_weight=recall_weight
    )
    return b, r


__all__ = [
    "bands_rows",
    "exact",
    "exact_keep_mask",
    "lines",
    "minhash",
    "minhash_hashes",
    "near",
    "near_buckets",
    "near_cluster",
    "near_clusters",
    "near_filter",
    "near_keep_mask",
    "near_signatures",
    "shingle_hashes",
    "shingle_words",
]
