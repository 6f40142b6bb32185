"""Line dedup (``tamis dedup lines``, CCNet-style) as two datatrove steps.

:class:`LineDedupSignature` hashes the eligible lines of each task's documents and writes one
signature file per task; :class:`LineDedupFilter` loads the files of every task and removes
exactly the lines the command line removes on the same files, whatever the number of tasks of
either step. Eligibility, the file format, the global order and the decisions are tamis-core's
(``rust/core/src/dedup/lines.rs`` and ``signatures/``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tamis import _core
from tamis._options import build, check, to_json
from tamis.datatrove._base import (
    DUP_OF,
    DecisionStep,
    PipelineStep,
    check_arrow_builder,
    check_batch_size,
    read_signature_files,
    source_paths,
    string_array,
    texts_of,
    write_signature_file,
)
from tamis.dedup import LinesOptions
from tamis.refine.stages import Decisions

if TYPE_CHECKING:
    from datatrove.data import Document, DocumentsPipeline
    from datatrove.io import DataFolderLike
    from datatrove.pipeline.writers.disk_base import DiskWriter

#: Line signature files are named ``{rank:05d}{LINE_SIGNATURE_SUFFIX}``.
LINE_SIGNATURE_SUFFIX: str = _core.LineSignatureWriter.SUFFIX


class LineDedupSignature(PipelineStep):
    """Stage 1 of line dedup: hash the eligible lines of this task's documents.

    Same rules as ``tamis dedup lines`` (docs/dedup.md): texts are split on ``\\n``; a line is
    eligible when its normalized form is not blank and it has at least ``min_line_chars``
    characters. Writes ``{rank:05d}.lsig`` to ``output_folder`` (any datatrove/fsspec location):
    16 bytes per eligible line and, per source file (``metadata[path_key]``), its numbers of
    documents and eligible lines, so that stage 2 knows every line's place in the command line's
    order. Hashing runs in Rust, a batch per call, with the GIL released. Stats: ``total``,
    ``lines_read``, ``eligible_lines``.

    A terminal step, written after the last document (see :class:`ExactDedupSignature`): put it
    after the same reader and steps that stage 2 runs before :class:`LineDedupFilter`.
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis line dedup: signatures"

    def __init__(
        self,
        output_folder: DataFolderLike,
        options: LinesOptions | None = None,
        *,
        batch_size: int = 10_000,
        path_key: str = "file_path",
        threads: int = 0,
        **kwargs: Any,
    ) -> None:
        """``options`` / keywords: :class:`tamis.dedup.LinesOptions` (``normalize`` and
        ``min_line_chars``; ``max_occurrences`` is stage 2's); ``path_key``: the metadata field
        naming the source file; ``threads``: Rust threads per batch (0: one per core)."""
        from datatrove.io import get_datafolder

        super().__init__()
        check_arrow_builder()
        self.options = build(LinesOptions, options, kwargs)
        check("lines", self.options)
        self.output_folder = get_datafolder(output_folder)
        self.batch_size = check_batch_size(batch_size)
        self.path_key = path_key
        self.threads = threads

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:  # type: ignore[override]
        """Hash this task's eligible lines and write its signature file (also when it had none)."""
        from datatrove.utils.batching import batched
        from datatrove.utils.typeshelper import StatHints

        writer = _core.LineSignatureWriter(to_json(self.options), self.threads)
        for batch in batched(data or (), self.batch_size):
            with self.track_time("batch"):
                read, eligible = writer.add(source_paths(batch, self.path_key), string_array(texts_of(batch)))
            self.stat_update(StatHints.total, value=len(batch), unit="batch")
            self.stat_update("lines_read", value=read)
            self.stat_update("eligible_lines", value=eligible)
        write_signature_file(
            self.output_folder, f"{rank:05d}{LINE_SIGNATURE_SUFFIX}", writer.finish(rank, world_size)
        )


class LineDedupFilter(DecisionStep):
    """Stage 2 of line dedup: remove every occurrence of a line beyond the first
    ``max_occurrences`` in the global order; drop documents left blank.

    Keeps exactly the lines ``tamis dedup lines`` keeps on the same data: the decisions come
    from the signature files of all tasks of stage 1 (loaded on the first batch of each task),
    in the command line's order. Kept lines are joined with ``\\n``, so a document with no
    removed line is forwarded unchanged. Needs the same data read with the same reader and
    upstream steps as stage 1, in any number of tasks; every eligible line is hashed again and
    checked against its stage-1 record, so a mismatch fails loudly.

    Stats: ``total``, ``forwarded``, ``modified``, ``dropped_empty_after_line_dedup`` and the
    CLI's counters ``lines_read``, ``lines_removed`` (summed over tasks) and ``distinct_lines``
    (counted by task 0 only, so the merged stats hold the corpus' number). Dropped documents go
    to ``exclusion_writer`` with ``metadata["filter_reason"] = "empty_after_line_dedup"``.
    With ``against`` (lines indexes of an older corpus, built with the same ``normalize`` and
    ``min_line_chars``), lines found in an index are removed too, or with ``annotate`` kept and
    named in ``metadata["dup_of"]``: as ``tamis dedup lines --against``.
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis line dedup: filter"
    reason = "empty_after_line_dedup"

    def __init__(
        self,
        signatures_folder: DataFolderLike,
        options: LinesOptions | None = None,
        *,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 10_000,
        path_key: str = "file_path",
        threads: int = 0,
        **kwargs: Any,
    ) -> None:
        """``options`` / keywords: :class:`tamis.dedup.LinesOptions`; ``max_occurrences`` is this
        step's, and only the ``normalize`` / ``min_line_chars`` given are checked against the
        signatures (``LineDedupFilter(folder, max_occurrences=2)``, or ``None`` for either, takes
        theirs). Other arguments as in :class:`LineDedupSignature`."""
        from datatrove.io import get_datafolder

        super().__init__(exclusion_writer, batch_size)
        check_arrow_builder()
        for key in ("normalize", "min_line_chars"):
            if kwargs.get(key, "") is None:  # None: the signatures' (as not given)
                del kwargs[key]
        built = build(LinesOptions, options, kwargs)
        check("lines", built)
        given = {**(vars(options) if options is not None else {}), **kwargs}
        self.max_occurrences: int = built.max_occurrences
        self.normalize: str | None = given.get("normalize")
        self.min_line_chars: int | None = given.get("min_line_chars")
        self.against = [os.fspath(p) for p in built.against]
        self.annotate = built.annotate
        self.signatures_folder = get_datafolder(signatures_folder)
        self.path_key = path_key
        self.threads = threads
        self._table: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle configuration only: the table is loaded where the step runs."""
        state = self.__dict__.copy()
        state["_table"] = None
        return state

    def table(self) -> Any:
        """The keep table (a ``tamis._core.LineKeepTable``), loaded on first use."""
        if self._table is None:
            from datatrove.utils.logging import logger

            files = read_signature_files(self.signatures_folder, LINE_SIGNATURE_SUFFIX, "LineDedupSignature")
            self._table = _core.LineKeepTable(
                files, self.max_occurrences, self.normalize, self.min_line_chars, self.threads
            )
            if self.against:
                self._table.against(self.against, self.annotate)
            del files
            t = self._table
            logger.info(
                f"tamis line dedup: {t.eligible_lines} eligible lines in signatures, "
                f"{t.distinct_lines} distinct, {t.lines_to_remove} to remove"
            )
        return self._table

    def start(self, rank: int, world_size: int) -> None:
        """Load the table; task 0 records the corpus' number of distinct lines."""
        table = self.table()
        table.reset()
        if rank == 0:
            self.stat_update("distinct_lines", value=table.distinct_lines)

    def decide(self, batch: list[Document]) -> Decisions:
        """The documents without their repeated lines; fails on a line stage 1 did not hash."""
        table = self.table()
        paths, docs = source_paths(batch, self.path_key), string_array(texts_of(batch))
        keep, texts, read, removed = table.dedup(paths, docs)
        counters = {"lines_read": read, "lines_removed": removed}
        if self.annotate:
            return Decisions(keep=keep, texts=texts, counters=counters, fields={DUP_OF: table.dup_of()})
        return Decisions(keep=keep, texts=texts, counters=counters)


__all__ = ["LINE_SIGNATURE_SUFFIX", "LineDedupFilter", "LineDedupSignature"]
