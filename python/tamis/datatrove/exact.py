"""Exact dedup (``tamis dedup exact``) as two datatrove steps.

:class:`ExactDedupSignature` hashes the documents of each task and writes one signature file per
task; :class:`ExactDedupFilter` loads the files of every task and keeps exactly the documents the
command line keeps on the same files, whatever the number of tasks of either step. The file
format, the global order and the keep decisions are tamis-core's
(``rust/core/src/dedup/signatures/``); these steps hand it batches of texts and source paths.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tamis import _core
from tamis._options import build, check, to_json
from tamis.datatrove._base import (
    DUP_OF,
    DecisionStep,
    PipelineStep,
    check_arrow_builder,
    check_batch_size,
    keep_values,
    read_signature_files,
    source_paths,
    string_array,
    texts_of,
    write_signature_file,
)
from tamis.dedup import ExactOptions, keep_field
from tamis.refine.stages import Decisions

if TYPE_CHECKING:
    from datatrove.data import Document, DocumentsPipeline
    from datatrove.io import DataFolderLike
    from datatrove.pipeline.writers.disk_base import DiskWriter

#: Exact signature files are named ``{rank:05d}{SIGNATURE_SUFFIX}`` in the signatures folder.
SIGNATURE_SUFFIX: str = _core.ExactSignatureWriter.SUFFIX


def _writer(options: ExactOptions, threads: int) -> Any:
    """A core signature writer: checks the options (``key`` is refused: the files hash the text)."""
    return _core.ExactSignatureWriter(to_json(options), threads)


class ExactDedupSignature(PipelineStep):
    """Stage 1 of exact dedup: hash every document and write one signature file per task.

    For the documents of its task, computes the XXH3-128 hash of the normalized text in batches
    of ``batch_size`` (one Rust call each, GIL released) and writes ``{rank:05d}.sig`` to
    ``output_folder`` (any datatrove/fsspec location) with, per document, the hash and its order
    key: its source file (``metadata[path_key]``, set by datatrove's disk readers) and its index
    among the documents of that file. The key is what lets stage 2 find the first occurrence in
    the command line's order although tasks read interleaved shards of files.

    A terminal step, like datatrove's own dedup signature steps: it consumes its input, yields
    nothing, and writes the file after the last document (an unfinished task leaves no file,
    which stage 2 reports). Put it after the same reader and steps that stage 2 runs before
    :class:`ExactDedupFilter`: both stages must see the same documents in the same order.
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis exact dedup: signatures"

    def __init__(
        self,
        output_folder: DataFolderLike,
        options: ExactOptions | None = None,
        *,
        batch_size: int = 10_000,
        path_key: str = "file_path",
        threads: int = 0,
        **kwargs: Any,
    ) -> None:
        """``options`` / keywords: :class:`tamis.dedup.ExactOptions` (``normalize``, ``keep``,
        whose ``max:``/``min:`` field is read from the metadata; ``key`` is not supported);
        ``path_key``: the metadata field naming the source file; ``threads``:
        Rust threads per batch (0: one per core; 1 when running one task per core)."""
        from datatrove.io import get_datafolder

        super().__init__()
        check_arrow_builder()
        self.options = build(ExactOptions, options, kwargs)
        _writer(self.options, threads)  # checked now, not in the tasks
        self.output_folder = get_datafolder(output_folder)
        self.batch_size = check_batch_size(batch_size)
        self.path_key = path_key
        self.threads = threads

    @property
    def normalize(self) -> str:
        """The normalization applied before hashing."""
        return self.options.normalize

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:  # type: ignore[override]
        """Hash this task's documents and write its signature file (also when it had none)."""
        from datatrove.utils.batching import batched
        from datatrove.utils.typeshelper import StatHints

        writer = _writer(self.options, self.threads)
        field = keep_field(self.options)
        for batch in batched(data or (), self.batch_size):
            with self.track_time("batch"):
                values = keep_values(batch, field)
                writer.add(source_paths(batch, self.path_key), string_array(texts_of(batch)), values)
            self.stat_update(StatHints.total, value=len(batch), unit="batch")
        self.stat_update("input_files", value=writer.files, unit="task")
        write_signature_file(
            self.output_folder, f"{rank:05d}{SIGNATURE_SUFFIX}", writer.finish(rank, world_size)
        )


class ExactDedupFilter(DecisionStep):
    """Stage 2 of exact dedup: keep a document only if it is the first occurrence of its hash.

    "First" is in the command line's order (files sorted by path component by component, then
    position in file), computed from the signature files of all tasks of stage 1, loaded on the
    first batch of each task (every task needs all of them: duplicates cross shards). Needs the
    same data read with the same reader, in any number of tasks. Each document is hashed again
    and checked against its stage-1 record, so a different reader, upstream step or
    ``normalize`` fails loudly instead of dropping the wrong documents.

    Stats: ``total``, ``forwarded``, ``dropped`` and ``dropped_duplicate``; dropped documents go
    to ``exclusion_writer`` with ``metadata["filter_reason"] = "duplicate"`` when it is given.
    With ``against`` (exact indexes of an older corpus, built with the same ``normalize``), the
    first occurrences found in an index are dropped too (``indexed_duplicate``), or with
    ``annotate`` kept with ``metadata["dup_of"]``, the ids of the indexed records: as ``tamis
    dedup exact --against``.
    Like datatrove's own ``ExactDedupFilter`` it derives from ``PipelineStep``
    (``datatrove.pipeline.filters`` needs datatrove's ``processing`` extra).
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis exact dedup: filter"
    reason = "duplicate"

    def __init__(
        self,
        signatures_folder: DataFolderLike,
        options: ExactOptions | None = None,
        *,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 10_000,
        path_key: str = "file_path",
        threads: int = 0,
        **kwargs: Any,
    ) -> None:
        """``options`` / keywords: the :class:`tamis.dedup.ExactOptions` stage 1 used. Only what
        is given is checked against the signatures: ``ExactDedupFilter(folder)`` (or
        ``normalize=None``) takes their ``normalize``, ``ExactDedupFilter(folder,
        normalize="none")`` refuses other signatures.
        Other arguments as in :class:`ExactDedupSignature`."""
        from datatrove.io import get_datafolder

        super().__init__(exclusion_writer, batch_size)
        check_arrow_builder()
        if kwargs.get("normalize", "") is None:  # None: the signatures' (as not given)
            del kwargs["normalize"]
        full = build(ExactOptions, options, kwargs)
        # The options are checked now by core: all of them, then what stage 1 hashes with
        # (``against`` and ``annotate`` are this stage's).
        check("exact", full)
        _writer(replace(full, against=[], annotate=False), threads)
        given = {**(vars(options) if options is not None else {}), **kwargs}
        self.normalize: str | None = given.get("normalize")
        self.against = [os.fspath(p) for p in full.against]
        self.annotate = full.annotate
        self.signatures_folder = get_datafolder(signatures_folder)
        self.path_key = path_key
        self.threads = threads
        self._table: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle configuration only: the keep table is loaded where the step runs."""
        state = self.__dict__.copy()
        state["_table"] = None
        return state

    def table(self) -> Any:
        """The keep table (a ``tamis._core.ExactKeepTable``), loaded on first use."""
        if self._table is None:
            from datatrove.utils.logging import logger

            files = read_signature_files(self.signatures_folder, SIGNATURE_SUFFIX, "ExactDedupSignature")
            self._table = _core.ExactKeepTable(files, self.normalize, self.threads)
            if self.against:
                self._table.against(self.against, self.annotate)
            del files
            logger.info(
                f"tamis exact dedup: {self._table.documents} documents in signatures, "
                f"{self._table.duplicates} duplicates"
            )
        return self._table

    def start(self, rank: int, world_size: int) -> None:
        """Load the table; count documents per file from the start of this task."""
        self.table().reset()

    def decide(self, batch: list[Document]) -> Decisions:
        """Keep the first occurrences; fails if a document is not the one stage 1 hashed."""
        table = self.table()
        keep = table.keep(source_paths(batch, self.path_key), string_array(texts_of(batch)))
        if not self.against:
            return Decisions(keep=keep)
        dup_of = table.dup_of()
        if self.annotate:
            return Decisions(keep=keep, fields={DUP_OF: dup_of})
        reasons = ["" if ids is None else "indexed_duplicate" for ids in dup_of]
        return Decisions(keep=keep, reasons=reasons)


__all__ = ["SIGNATURE_SUFFIX", "ExactDedupFilter", "ExactDedupSignature"]
