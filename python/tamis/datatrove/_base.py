"""What every tamis datatrove step shares: the ``PipelineStep`` stand-in when datatrove is missing,
texts as Arrow arrays, source paths, signature files, and :class:`DecisionStep`, the one loop that
applies a batch's :class:`tamis.refine.Decisions` to datatrove documents (stats, exclusion writer,
metadata), so that each step only decides.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tamis.errors import ConfigError
from tamis.refine.stages import Decisions

if TYPE_CHECKING:
    from datatrove.data import Document, DocumentsPipeline
    from datatrove.io import DataFolder
    from datatrove.pipeline.writers.disk_base import DiskWriter

# The field ``against`` with ``annotate`` adds: the ids of the indexed records a document
# duplicates (``tamis_core::dedup::DUP_OF_FIELD``).
DUP_OF = "dup_of"

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


def check_arrow_builder() -> None:
    """Texts reach Rust as an Arrow array, built by polars or pyarrow: fail early without either."""
    import importlib.util

    if importlib.util.find_spec("polars") is None and importlib.util.find_spec("pyarrow") is None:
        raise ImportError(
            "tamis.datatrove passes texts to Rust as Arrow arrays and needs polars or pyarrow: "
            "pip install 'tamis[polars]'"
        )


def local_workdir(path: Any, what: str) -> str:
    """A work directory shared by a step's tasks (``what`` names the step family in the
    message): a local or mounted path, not a URL."""
    if not isinstance(path, (str, os.PathLike)) or "://" in os.fspath(path):
        raise ConfigError(
            f"the {what} work directory must be a local (or shared, mounted) path, got {path!r}"
        )
    return os.fspath(path)


def check_batch_size(batch_size: int) -> int:
    """``batch_size`` if it is at least 1."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return batch_size


def string_array(texts: list[str]) -> Any:
    """An object exposing ``__arrow_c_array__``/``__arrow_c_stream__`` holding ``texts``."""
    try:
        import polars as pl
    except ImportError:
        import pyarrow as pa

        return pa.array(texts, type=pa.large_string())
    return pl.Series(values=texts, dtype=pl.String)


def texts_of(batch: list[Document]) -> list[str]:
    """The texts of ``batch``; a text that is not a ``str`` is an error naming its document."""
    for doc in batch:
        if not isinstance(doc.text, str):
            raise TypeError(f"document {doc.id!r}: text is {type(doc.text).__name__}, not str")
    return [doc.text for doc in batch]


def source_path(doc: Document, path_key: str) -> str:
    """The source file of ``doc``, from ``doc.metadata[path_key]``."""
    path = doc.metadata.get(path_key)
    if not isinstance(path, str) or not path:
        raise ValueError(
            f"document {doc.id!r} has no metadata[{path_key!r}]: dedup needs the source file of each "
            "document to order them as the command line does; read with a datatrove disk reader "
            "with add_file_path=True (the default)"
        )
    return path


def source_paths(batch: list[Document], path_key: str) -> list[str]:
    """The source file of each document of ``batch``."""
    return [source_path(doc, path_key) for doc in batch]


# --------------------------------------------------------------------------------------------
# Signature files: written and read here, as bytes; the formats are tamis-core's
# (rust/core/src/dedup/signatures/), through tamis._core.


def keep_values(batch: list[Document], field: str | None) -> list[float | None] | None:
    """The values of a ``max:``/``min:`` keep policy's metadata field per document (``None``:
    missing or null), or ``None`` when the policy reads no field. A value that is not a number
    is refused naming the document, as the command line refuses the record."""
    if field is None:
        return None
    out: list[float | None] = []
    for doc in batch:
        value = doc.metadata.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(
                f"document {doc.id!r}: metadata[{field!r}] is {type(value).__name__}, not a number"
            )
        out.append(None if value is None else float(value))
    return out


def write_signature_file(folder: DataFolder, name: str, data: bytes) -> None:
    """Write one task's signature file (any datatrove/fsspec location)."""
    with folder.open(name, mode="wb") as f:
        f.write(data)


def read_signature_files(folder: DataFolder, suffix: str, stage_1: str) -> list[tuple[str, bytes]]:
    """Every ``*{suffix}`` file of ``folder``, as ``(path, contents)``."""
    names = sorted(folder.list_files(glob_pattern=f"*{suffix}", recursive=False))
    if not names:
        raise FileNotFoundError(f"no *{suffix} files in {folder.path}: run {stage_1} first")
    files = []
    for name in names:
        with folder.open(name, mode="rb") as f:
            files.append((f"{folder.path.rstrip('/')}/{name}", f.read()))
    return files


def read_signature_header(folder: DataFolder | str, name: str) -> dict[str, Any]:
    """The JSON header of the signature file ``name`` (``.sig``: exact dedup, ``.lsig``: line
    dedup) in ``folder``, after checking the file's structure (see docs/datatrove.md)."""
    from datatrove.io import get_datafolder

    from tamis import _core

    folder = get_datafolder(folder)
    with folder.open(name, mode="rb") as f:
        data = f.read()
    table = _core.LineKeepTable if name.endswith(_core.LineSignatureWriter.SUFFIX) else _core.ExactKeepTable
    header: dict[str, Any] = json.loads(table.read_header(name, data))
    return header


# --------------------------------------------------------------------------------------------
# Decisions applied to datatrove documents


def _set_field(doc: Document, name: str, value: Any, only_if_absent: bool) -> None:
    """Set field ``name`` of a record on a datatrove document: ``metadata.x`` (and a top-level
    ``x``, which datatrove's readers put in metadata) is ``doc.metadata["x"]``; more dots go
    into nested objects."""
    path = name.split(".")
    if path[0] == "metadata" and len(path) > 1:
        path = path[1:]
    target: Any = doc.metadata
    for key in path[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise ValueError(
                f"document {doc.id!r}: metadata field {key!r} is not an object, cannot set {name}"
            )
    if only_if_absent and path[-1] in target:
        return
    target[path[-1]] = value


def apply_decisions(
    step: Any,
    batch: list[Document],
    decisions: Decisions,
    *,
    reason: str,
    writer: DiskWriter | None = None,
    rank: int = 0,
) -> Iterator[Document]:
    """Apply ``decisions`` (a stage's, for ``batch``) to the documents and yield the kept ones.

    Fields are set on every document (``decisions.fields``; ``defaults`` only where absent),
    so dropped documents reach ``writer`` annotated. Stats of ``step``: ``total``,
    ``forwarded``, ``dropped`` and ``dropped_<reason>`` (``reason`` where the stage gives none),
    ``modified``, and the stage's counters; a dropped document goes to ``writer`` with
    ``metadata["filter_reason"] = <reason>``. These are the names of ``tamis refine``'s report.
    """
    from datatrove.utils.typeshelper import StatHints

    n = len(batch)
    lists: list[Any] = [decisions.keep, decisions.reasons, decisions.texts]
    lists += [*decisions.fields.values(), *decisions.defaults.values()]
    if any(values is not None and len(values) != n for values in lists):
        raise ValueError(f"a stage decided for a batch of {n} documents with lists of other lengths")
    for key, value in decisions.counters.items():
        step.stat_update(key, value=int(value))
    for only_if_absent, table in ((False, decisions.fields), (True, decisions.defaults)):
        for name, values in table.items():
            for doc, value in zip(batch, values, strict=True):
                if value is not None:
                    _set_field(doc, name, value, only_if_absent)
    for i, doc in enumerate(batch):
        step.stat_update(StatHints.total)
        if not decisions.keep[i]:
            why = (decisions.reasons[i] if decisions.reasons is not None else "") or reason
            step.stat_update(StatHints.dropped, f"dropped_{why}")
            if writer is not None:
                doc.metadata["filter_reason"] = why
                writer.write(doc, rank)
            continue
        new = decisions.texts[i] if decisions.texts is not None else None
        if new is not None and new != doc.text:
            step.stat_update("modified")
            doc.text = new
        step.stat_update(StatHints.forwarded)
        step.update_doc_stats(doc)
        yield doc


class DecisionStep(PipelineStep):
    """A step that decides for batches of documents (:meth:`decide` returns
    :class:`tamis.refine.Decisions`) and forwards, edits, annotates or drops them with
    :func:`apply_decisions`. ``reason``: the drop reason where the decisions give none."""

    reason = "dropped"

    def __init__(self, exclusion_writer: DiskWriter | None, batch_size: int) -> None:
        super().__init__()
        self.exclusion_writer = exclusion_writer
        self.batch_size = check_batch_size(batch_size)

    def start(self, rank: int, world_size: int) -> None:
        """Called once before the first batch of a task."""

    def decide(self, batch: list[Document]) -> Decisions:
        """The decisions for ``batch``."""
        raise NotImplementedError  # pragma: no cover

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield the kept documents of ``data``, in order; drop (and count) the others."""
        from datatrove.utils.batching import batched

        self.start(rank, world_size)
        writer_context = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with writer_context as writer:
            for batch in batched(data or (), self.batch_size):
                with self.track_time("batch"):
                    decisions = self.decide(batch)
                yield from apply_decisions(
                    self, batch, decisions, reason=self.reason, writer=writer, rank=rank
                )


__all__ = [
    "DecisionStep",
    "PipelineStep",
    "apply_decisions",
    "check_arrow_builder",
    "check_batch_size",
    "read_signature_files",
    "read_signature_header",
    "source_path",
    "source_paths",
    "string_array",
    "texts_of",
    "write_signature_file",
]
