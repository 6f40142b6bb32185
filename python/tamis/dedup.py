"""Deduplication: over files (JSONL, .gz, .zst, Parquet) or in-memory columns.

Options are dataclasses mirroring the Rust core's options types, which hold the defaults and
the checks: :class:`ExactOptions`, :class:`LinesOptions`, :class:`NearOptions`,
:class:`SubstringOptions` (and :class:`tamis.IoOptions` for reading). Every function takes an
options object, keyword arguments for its fields, or both (keywords win)::

    tamis.dedup.exact("data/", "out.jsonl", normalize="whitespace")
    tamis.dedup.near("data/", "out.jsonl", NearOptions(threshold=0.8), threads=4)

File functions run the same Rust pipeline as ``tamis dedup exact|lines|near|substring`` with the GIL
released and return the run statistics (documents read, kept, removed by reason, bytes,
seconds). Near-duplicate detection (MinHash-LSH) is described in docs/near-dedup.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tamis import _core
from tamis._arrow import like_input, to_arrow, to_arrow_numbers
from tamis._options import IoOptions, build, default, split, to_json

Normalize = Literal["none", "whitespace", "simple"]
OnError = Literal["fail", "skip"]
Shingle = Literal["words", "chars"]
# "kperm": num_perm permutations of every shingle; "oph": one permutation in num_perm densified bins.
Sketch = Literal["kperm", "oph"]
# Which document of a group of duplicates is kept: "first", "longest", "shortest",
# "max:FIELD" or "min:FIELD" (largest or smallest value of a numeric field; missing never preferred).
Keep = str
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ExactOptions:
    """Exact dedup (``tamis_core::dedup::ExactOptions``): one document of each group with the
    same text is kept; ``normalize`` applies before hashing, ``key`` dedups on another string
    field (e.g. ``"url"``) instead of the text. ``keep`` picks the one kept: ``"first"`` in
    input order, ``"longest"``, ``"shortest"`` (in characters), ``"max:FIELD"`` or
    ``"min:FIELD"`` (a numeric field; missing or null never preferred); ties go to the first.
    ``against`` lists exact indexes of an older corpus (:func:`tamis.index.build` with
    ``kind="exact"``, same ``normalize`` and ``key``): documents found there are removed too, or
    with ``annotate`` kept with ``dup_of``, the ids of the indexed records they duplicate."""

    normalize: Normalize = default("exact", "normalize")
    key: str | None = default("exact", "key")
    keep: Keep = default("exact", "keep")
    against: list[str] = default("exact", "against")
    annotate: bool = default("exact", "annotate")


@dataclass(frozen=True)
class LinesOptions:
    """Line dedup, CCNet-style (``tamis_core::dedup::LinesOptions``): every occurrence of a line
    beyond the first ``max_occurrences`` is removed; lines shorter than ``min_line_chars``
    characters, and blank lines, are always kept. ``against`` lists lines indexes of an older
    corpus (:func:`tamis.index.build` with ``kind="lines"``, same ``normalize`` and
    ``min_line_chars``): lines found there are removed wherever they occur, or with ``annotate``
    kept, their documents getting ``dup_of``, the ids of the indexed records holding them."""

    max_occurrences: int = default("lines", "max_occurrences")
    min_line_chars: int = default("lines", "min_line_chars")
    normalize: Normalize = default("lines", "normalize")
    against: list[str] = default("lines", "against")
    annotate: bool = default("lines", "annotate")


@dataclass(frozen=True)
class NearOptions:
    """Near-duplicate dedup, MinHash-LSH (``tamis_core::dedup::near::NearOptions``).

    Defaults are datatrove's (FineWeb's): 5-word shingles, 112 permutations as 14 bands × 8
    rows. ``threshold`` instead picks bands × rows for that Jaccard similarity as datasketch
    does (false negatives weighted ``recall_weight``, 0.5 when not given; 0.9 finds ≥ 95% of
    pairs 0.05 above the threshold) and is what ``verify`` requires (0.8 when not given). Each
    cluster keeps one document, picked by ``keep`` as :class:`ExactOptions` does (``priority``:
    the older spelling of ``keep="min:FIELD"``). ``annotate`` keeps everything and adds
    ``minhash_cluster_id`` / ``minhash_cluster_size``; ``memory_limit`` (bytes, or text like
    ``"8G"``) spills band keys to ``spill_dir`` beyond it. Output is identical in every mode and
    for any ``threads``. ``against`` lists near indexes of an older corpus
    (:func:`tamis.index.build` with ``kind="near"``, the same MinHash parameters): a cluster with
    a document sharing a band with an indexed one keeps none of its documents
    (``indexed_duplicate``), as if the indexed corpus came first; with ``annotate`` they are kept
    with ``dup_of``."""

    threshold: float | None = default("near", "threshold")
    recall_weight: float | None = default("near", "recall_weight")
    ngram: int = default("near", "ngram")
    shingle: Shingle = default("near", "shingle")
    num_perm: int = default("near", "num_perm")
    bands: int | None = default("near", "bands")
    rows: int | None = default("near", "rows")
    seed: int = default("near", "seed")
    sketch: Sketch = default("near", "sketch")
    verify: bool = default("near", "verify")
    annotate: bool = default("near", "annotate")
    keep: Keep = default("near", "keep")
    priority: str | None = default("near", "priority")
    clusters: PathLike | None = default("near", "clusters")
    memory_limit: int | str | None = default("near", "memory_limit")
    spill_dir: PathLike | None = default("near", "spill_dir")
    against: list[str] = default("near", "against")


# Which copies of a repeated span are removed: "first" keeps the first occurrence, "none" keeps none.
KeepCopies = Literal["first", "none"]


@dataclass(frozen=True)
class SubstringOptions:
    """Exact-substring dedup with suffix arrays (``tamis_core::dedup::substring::SubstringOptions``).

    Every span of at least ``min_length`` bytes (or, with ``unit="tokens"``, tokens of
    ``tokenizer``, a ``tokenizer.json``) that occurs twice or more in the corpus (across
    documents or within one) is cut from every occurrence after the first (``keep="first"``) or
    from all of them (``"none"``, as Lee et al.), on character boundaries. Documents left empty,
    or with fewer than ``min_doc_chars`` characters, are dropped. ``annotate`` keeps everything and
    adds ``substring_spans`` (``[[start, end], ...]`` byte offsets) and ``substring_bytes``;
    ``spans`` writes one JSON line per removed span. ``memory_limit`` (bytes, or text like
    ``"2G"``) cuts the text into suffix-array parts that fit, spilled to ``spill_dir``. Output is
    identical for any ``threads`` and any ``memory_limit``."""

    min_length: int = default("substring", "min_length")
    unit: Literal["bytes", "tokens"] = default("substring", "unit")
    tokenizer: PathLike | None = default("substring", "tokenizer")
    keep: KeepCopies = default("substring", "keep")
    min_doc_chars: int = default("substring", "min_doc_chars")
    annotate: bool = default("substring", "annotate")
    spans: PathLike | None = default("substring", "spans")
    memory_limit: int | str | None = default("substring", "memory_limit")
    spill_dir: PathLike | None = default("substring", "spill_dir")


def keep_field(options: ExactOptions | NearOptions) -> str | None:
    """The field the keep policy of ``options`` reads (``max:FIELD``, ``min:FIELD``,
    ``priority``), if any, as the core reads the policy."""
    capability = "exact" if isinstance(options, ExactOptions) else "near"
    return _core.keep_field(capability, to_json(options))


def _values(values: Any) -> Any:
    return None if values is None else to_arrow_numbers(values)


def _paths(inputs: PathLike | Sequence[PathLike]) -> list[str]:
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    return [os.fspath(p) for p in inputs]


def _stats(raw: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(raw)
    return result


def _options(cls: type, options: Any, kwargs: dict[str, Any]) -> tuple[str, str]:
    """(options JSON, IoOptions JSON) from an options object and keywords."""
    own, io = split(kwargs, cls, IoOptions)
    return to_json(build(cls, options, own)), to_json(build(IoOptions, None, io))


def exact(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    options: ExactOptions | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Keep the first occurrence, in input order, of each document with identical normalized text.

    Keywords: the fields of :class:`ExactOptions` and :class:`tamis.IoOptions`. Raises
    :class:`tamis.TamisError` (a ``ValueError`` with ``.kind``) on bad input unless
    ``on_error="skip"``; no output file is left behind on error.
    """
    o, io = _options(ExactOptions, options, kwargs)
    return _stats(_core.dedup_exact(_paths(inputs), os.fspath(output), o, io))


def lines(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    options: LinesOptions | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Remove every occurrence of a line beyond the first ``max_occurrences`` across the corpus;
    documents left blank are dropped (``documents_removed["empty_after_line_dedup"]``).

    Keywords: the fields of :class:`LinesOptions` and :class:`tamis.IoOptions`."""
    o, io = _options(LinesOptions, options, kwargs)
    return _stats(_core.dedup_lines(_paths(inputs), os.fspath(output), o, io))


def substring(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    options: SubstringOptions | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Remove repeated spans of at least ``min_length`` bytes, as ``tamis dedup substring``
    (suffix arrays; docs/dedup.md); documents left empty are dropped
    (``documents_removed["empty_after_substring_dedup"]``).

    Keywords: the fields of :class:`SubstringOptions` and :class:`tamis.IoOptions`."""
    o, io = _options(SubstringOptions, options, kwargs)
    return _stats(_core.dedup_substring(_paths(inputs), os.fspath(output), o, io))


def exact_keep_mask(
    texts: Any, options: ExactOptions | None = None, *, values: Any = None, **kwargs: Any
) -> Any:
    """``True`` for the text each group of equal normalized texts keeps (by ``keep``: the first
    by default), ``False`` for the others.

    ``texts`` is a polars Series, a pyarrow array or a list of str (the result has the same kind);
    ``values`` the numeric column a ``max:``/``min:`` keep policy reads (same length). Nulls are
    not documents and are always kept. Keywords: ``normalize``, ``keep``, ``threads``."""
    threads = kwargs.pop("threads", 0)
    o = to_json(build(ExactOptions, options, kwargs))
    return like_input(_core.exact_keep_mask_arrow(to_arrow(texts), o, threads, _values(values)), texts)


def near(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    options: NearOptions | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Remove near-duplicate documents (MinHash-LSH), as ``tamis dedup near``.

    Keywords: the fields of :class:`NearOptions` and :class:`tamis.IoOptions`."""
    o, io = _options(NearOptions, options, kwargs)
    return _stats(_core.dedup_near(_paths(inputs), os.fspath(output), o, io))


def _task(rank: int, world_size: int) -> str:
    """The task as JSON for core, which checks it (``rank`` below ``world_size``, both ints)."""
    return json.dumps({"rank": rank, "world_size": world_size})


def near_signatures(
    inputs: PathLike | Sequence[PathLike],
    workdir: PathLike,
    options: NearOptions | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
    **kwargs: Any,
) -> dict[str, Any]:
    """Stage 1 of the multi-task workflow (``tamis dedup near signatures``): task ``rank`` of
    ``world_size`` writes the signatures of input files ``i % world_size == rank`` to ``workdir``."""
    o, io = _options(NearOptions, options, kwargs)
    return _stats(_core.near_signatures(_paths(inputs), os.fspath(workdir), _task(rank, world_size), o, io))


def near_buckets(workdir: PathLike, *, rank: int = 0, world_size: int = 1) -> dict[str, Any]:
    """Stage 2 (``tamis dedup near buckets``): candidate pairs of this task's bands."""
    return _stats(_core.near_buckets(os.fspath(workdir), _task(rank, world_size)))


def near_cluster(workdir: PathLike) -> dict[str, Any]:
    """Stage 3 (``tamis dedup near cluster``, one task): clusters and per-shard decisions."""
    return _stats(_core.near_cluster(os.fspath(workdir)))


def near_filter(
    inputs: PathLike | Sequence[PathLike],
    workdir: PathLike,
    output: str,
    options: NearOptions | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
    **kwargs: Any,
) -> dict[str, Any]:
    """Stage 4 (``tamis dedup near filter``): write the kept documents of input files
    ``i % world_size == rank``; ``{rank}`` in ``output`` becomes the 5-digit rank. Uses the
    ``annotate`` and ``clusters`` options."""
    o, io = _options(NearOptions, options, kwargs)
    task = _task(rank, world_size)
    return _stats(_core.near_filter(_paths(inputs), os.fspath(workdir), output, task, o, io))


def _near_json(options: NearOptions | None, kwargs: dict[str, Any]) -> tuple[str, int]:
    threads = kwargs.pop("threads", 0)
    return to_json(build(NearOptions, options, kwargs)), threads


def minhash(
    texts: Any,
    options: NearOptions | None = None,
    *,
    output: Literal["numpy", "arrow"] = "numpy",
    **kwargs: Any,
) -> Any:
    """MinHash signatures of ``texts`` (a list of str, polars Series or Arrow string array).

    ``output="numpy"`` (needs numpy): a ``(len(texts), num_perm)`` uint64 array viewing the Rust
    buffer (no copy); ``"arrow"`` (no other package): an Arrow ``FixedSizeList<UInt64>[num_perm]``
    array object (Arrow PyCapsule interface; ``pyarrow.array(...)`` or ``polars.Series(...)`` take
    it without copying, ``.to_pylist()`` gives lists of ints). Nulls and texts without any word
    get all ``2**64 - 1``. The same signatures as ``tamis dedup near``.
    Keywords: the :class:`NearOptions` fields (``num_perm``, ``ngram``, ``shingle``, ``seed``,
    ``sketch``) and ``threads``."""
    o, threads = _near_json(options, kwargs)
    matrix = _core.minhash(to_arrow(texts), o, threads)
    if output == "arrow":
        return matrix.to_arrow()
    if output != "numpy":
        raise ValueError(f"output must be 'numpy' or 'arrow', got {output!r}")
    try:
        import numpy as np
    except ImportError as e:
        raise ImportError(
            "minhash(output='numpy') needs numpy (pip install numpy); output='arrow' needs nothing else"
        ) from e

    return np.asarray(matrix)


def minhash_hashes(values: Any, offsets: Any, options: NearOptions | None = None, **kwargs: Any) -> Any:
    """MinHash signatures of pre-shingled documents, as a ``(len(offsets) - 1, num_perm)`` uint64
    numpy array: document ``i`` is the 64-bit shingle hashes ``values[offsets[i]:offsets[i+1]]``
    (numpy arrays, polars Series or Arrow arrays; numpy input crosses without a copy)."""
    import numpy as np
    import polars as pl

    def arrow(x: Any) -> Any:
        return pl.Series(np.ascontiguousarray(x, dtype=np.uint64)) if isinstance(x, np.ndarray) else x

    o, threads = _near_json(options, kwargs)
    return np.asarray(_core.minhash_hashes(arrow(values), arrow(offsets), o, threads))


def near_clusters(
    texts: Any, options: NearOptions | None = None, *, values: Any = None, **kwargs: Any
) -> tuple[Any, Any]:
    """Near-duplicate clusters of an in-memory column: per text, the index of its cluster's kept
    text (by ``keep``; ``values``: the column a ``max:``/``min:`` policy reads) and the cluster
    size, as two columns of the input's kind."""
    o, threads = _near_json(options, kwargs)
    reps, sizes = _core.near_clusters_arrow(to_arrow(texts), o, threads, _values(values))
    return like_input(reps, texts), like_input(sizes, texts)


def near_keep_mask(
    texts: Any, options: NearOptions | None = None, *, values: Any = None, **kwargs: Any
) -> Any:
    """``True`` for the text each near-duplicate cluster keeps (by ``keep``, the first by
    default; ``values``: the column a ``max:``/``min:`` policy reads), ``False`` for the others;
    nulls are kept. Same kept rows as ``tamis dedup near`` over the rows in order."""
    o, threads = _near_json(options, kwargs)
    return like_input(_core.near_keep_mask_arrow(to_arrow(texts), o, threads, _values(values)), texts)


def shingle_hashes(text: str, options: NearOptions | None = None, **kwargs: Any) -> list[int]:
    """The 64-bit shingle hashes of ``text`` as near-dedup computes them (repeats kept)."""
    return _core.shingle_hashes(text, to_json(build(NearOptions, options, kwargs)))


def shingle_words(text: str) -> list[str]:
    """The words of ``text`` after normalization (every Han/Kana/Thai/... character is a word)."""
    return _core.shingle_words(text)


def bands_rows(options: NearOptions | None = None, **kwargs: Any) -> tuple[int, int]:
    """The (bands, rows) ``near`` uses for these options (``threshold``: datasketch's optimum,
    false negatives weighted ``recall_weight``, 0.5 by default)."""
    b, r, _ = _core.near_bands_rows(to_json(build(NearOptions, options, kwargs)))
    return b, r


__all__ = [
    "ExactOptions",
    "IoOptions",
    "LinesOptions",
    "NearOptions",
    "SubstringOptions",
    "bands_rows",
    "exact",
    "exact_keep_mask",
    "keep_field",
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
    "substring",
]
