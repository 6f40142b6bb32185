"""Exact-substring dedup (suffix arrays) as three datatrove steps sharing a work directory:
:class:`SubstringSequence` (any number of tasks: writes the texts), :class:`SubstringFind` (one
task: suffix arrays and each source file's removed spans) and :class:`SubstringFilter` (any
number of tasks, after the same reader: cuts). They cut the same spans as
``tamis dedup substring`` over the same folder (docs/dedup.md).
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from tamis._options import build, check, to_json
from tamis.datatrove._base import PipelineStep, check_batch_size, local_workdir, source_path
from tamis.dedup import SubstringOptions
from tamis.errors import ConfigError

if TYPE_CHECKING:
    from datatrove.data import DocumentsPipeline
    from datatrove.pipeline.writers.disk_base import DiskWriter


def _workdir(path: Any) -> str:
    return local_workdir(path, "substring-dedup")


def _options(options: SubstringOptions | None, kwargs: dict[str, Any]) -> SubstringOptions:
    o = build(SubstringOptions, options, kwargs)
    if o.spans is not None:
        raise ConfigError("spans is a single-process option, not available in datatrove")
    check("substring", o)
    return o


class SubstringSequence(PipelineStep):
    """Stage 1 of exact-substring dedup: this task's texts, to ``workdir``.

    Each source file (``metadata[path_key]``) is written as one piece; files sort as the command
    line sorts them, so the same copy of a span stays as with ``tamis dedup substring`` over the
    same folder. Terminal step: yields nothing. Then run :class:`SubstringFind` (one task) and
    :class:`SubstringFilter` after the same reader.
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis substring dedup: sequence"

    def __init__(self, workdir: str, *, path_key: str = "file_path", batch_size: int = 1000) -> None:
        """``workdir``: a local or mounted directory shared by every task."""
        super().__init__()
        self.workdir = _workdir(workdir)
        self.path_key = path_key
        self.batch_size = check_batch_size(batch_size)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:  # type: ignore[override]
        """Write this task's texts and its manifest."""
        from datatrove.utils.batching import batched
        from datatrove.utils.typeshelper import StatHints

        from tamis import _core

        task = json.dumps({"rank": rank, "world_size": world_size})
        writer = _core.SubstringSequenceWriter(self.workdir, task)
        for batch in batched(data or (), self.batch_size):
            with self.track_time("batch"):
                start = 0
                while start < len(batch):
                    path = source_path(batch[start], self.path_key)
                    end = start + 1
                    while end < len(batch) and source_path(batch[end], self.path_key) == path:
                        end += 1
                    writer.add(path, [d.text for d in batch[start:end]])
                    start = end
            self.stat_update(StatHints.total, value=len(batch), unit="batch")
        writer.finish()


class SubstringFind(PipelineStep):
    """Stage 2 of exact-substring dedup (one task): suffix arrays of every task's texts and each
    source file's removed spans. Uses ``min_length``, ``keep``, ``memory_limit`` and
    ``spill_dir`` of :class:`tamis.dedup.SubstringOptions`; needs no input documents."""

    type = "🫂 - DEDUPS"
    name = "🦀 tamis substring dedup: find"

    def __init__(
        self, workdir: str, options: SubstringOptions | None = None, *, threads: int = 0, **kwargs: Any
    ) -> None:
        """``options`` / keywords: :class:`tamis.dedup.SubstringOptions`."""
        super().__init__()
        self.workdir = _workdir(workdir)
        self.options = _options(options, kwargs)
        self.threads = threads

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:  # type: ignore[override]
        """Find the spans; refuses to run as more than one task."""
        from tamis import _core

        if world_size != 1:
            raise ValueError("SubstringFind runs as a single task (tasks=1)")
        with self.track_time():
            stats = json.loads(_core.substring_find(self.workdir, to_json(self.options), self.threads))
        for key in ("substring_spans", "substring_bytes_removed", "documents_changed"):
            self.stat_update(key, value=stats["counters"].get(key, 0))


class SubstringFilter(PipelineStep):
    """Stage 3 of exact-substring dedup: cut each document's removed spans.

    Needs the same documents as :class:`SubstringSequence` saw (same reader and upstream steps),
    in any number of tasks. Uses ``annotate`` and ``min_doc_chars`` of
    :class:`tamis.dedup.SubstringOptions`: with ``annotate`` every document is forwarded
    unchanged, those with spans with ``metadata["substring_spans"]`` (``[[start, end], ...]``
    byte offsets) and ``metadata["substring_bytes"]``. Documents left empty (or shorter than
    ``min_doc_chars`` characters) go to ``exclusion_writer`` with ``metadata["filter_reason"]``
    (``empty_after_substring_dedup``, ``short_after_substring_dedup``).
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis substring dedup: filter"

    def __init__(
        self,
        workdir: str,
        options: SubstringOptions | None = None,
        *,
        exclusion_writer: DiskWriter | None = None,
        path_key: str = "file_path",
        **kwargs: Any,
    ) -> None:
        """``options`` / keywords: :class:`tamis.dedup.SubstringOptions`."""
        super().__init__()
        self.workdir = _workdir(workdir)
        self.options = _options(options, kwargs)
        self.exclusion_writer = exclusion_writer
        self.path_key = path_key

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield the documents with their spans cut (or annotated)."""
        from datatrove.utils.typeshelper import StatHints

        from tamis import _core

        cutter = _core.SubstringPathCutter(self.workdir, to_json(self.options))
        writer_context = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with writer_context as writer:
            for doc in data or ():
                self.stat_update(StatHints.total)
                kind, value, spans = cutter.cut(source_path(doc, self.path_key), doc.text)
                if kind == "annotate":
                    doc.metadata["substring_spans"] = [list(s) for s in spans]
                    doc.metadata["substring_bytes"] = sum(e - s for s, e in spans)
                elif kind == "text":
                    doc.text = value
                    self.stat_update("modified")
                elif kind == "drop":
                    self.stat_update(StatHints.dropped, f"dropped_{value}")
                    if writer is not None:
                        doc.metadata["filter_reason"] = value
                        writer.write(doc, rank)
                    continue
                self.stat_update(StatHints.forwarded)
                yield doc


__all__ = ["SubstringFilter", "SubstringFind", "SubstringSequence"]
