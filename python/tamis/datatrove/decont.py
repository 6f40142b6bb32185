"""Decontamination as a datatrove step: :class:`Decontaminate`, what ``tamis decontaminate``
does, against the same read-only n-gram indexes (opened once per worker process and shared by
its tasks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tamis._options import build
from tamis.datatrove._base import DecisionStep
from tamis.index import DecontOptions, open_indexes
from tamis.refine.stages import Decisions

if TYPE_CHECKING:
    from datatrove.data import Document
    from datatrove.pipeline.writers.disk_base import DiskWriter


class Decontaminate(DecisionStep):
    """Drop the documents holding a word n-gram of the ``against`` indexes
    (:func:`tamis.index.build` of the evaluation sets), or with ``mode="spans"`` cut the matching
    n-grams out (a document left empty is dropped); the same decisions and texts as ``tamis
    decontaminate``. A dropped document reaches ``exclusion_writer`` with
    ``metadata["contaminated_items"]``, the ids of the evaluation items found. Stats:
    ``dropped_contaminated``, ``modified``, ``contaminated_documents``.

    The indexes are checked when the step is created; ``matches`` files are written by the
    command line and :func:`tamis.decontaminate` (use ``exclusion_writer`` here)."""

    type = "🦠 - DECONT"
    name = "🦀 tamis decontaminate"
    reason = "contaminated"

    def __init__(
        self,
        options: DecontOptions | None = None,
        *,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 1000,
        threads: int = 1,
        **kwargs: Any,
    ) -> None:
        """``options`` / keywords: :class:`tamis.index.DecontOptions` (``against``, ``mode``,
        ``memory_limit``); ``threads`` per task. Raises :class:`tamis.ConfigError` for a bad
        option and :class:`tamis.TamisError` for a missing or damaged index."""
        super().__init__(exclusion_writer, batch_size)
        o = build(DecontOptions, options, kwargs)
        if o.matches is not None:
            raise ValueError(
                "Decontaminate writes no matches file: use exclusion_writer (or tamis decontaminate)"
            )
        self.options = o
        self.threads = threads
        open_indexes(o)

    def decide(self, batch: list[Document]) -> Decisions:
        decided = open_indexes(self.options).decide([d.text for d in batch], threads=self.threads)
        keep = [k for k, _, _ in decided]
        return Decisions(
            keep=keep,
            texts=[t for _, t, _ in decided],
            fields={"contaminated_items": [None if k else items for k, _, items in decided]},
            counters={"contaminated_documents": sum(1 for _, _, items in decided if items)},
        )


__all__ = ["Decontaminate"]
