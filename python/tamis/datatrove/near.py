"""Near-duplicate dedup (MinHash-LSH) as four datatrove steps sharing a work directory, the same
files as ``tamis dedup near signatures|buckets|cluster|filter``: :class:`NearDedupSignature`,
:class:`NearDedupBuckets`, :class:`NearDedupCluster` (one task), :class:`NearDedupFilter`. They
keep the same documents as ``tamis dedup near`` over the same folder (docs/near-dedup.md).
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from tamis._options import build, check, to_json
from tamis.datatrove._base import (
    DUP_OF,
    PipelineStep,
    check_arrow_builder,
    check_batch_size,
    keep_values,
    local_workdir,
    source_path,
    string_array,
    texts_of,
)
from tamis.dedup import NearOptions, keep_field
from tamis.errors import ConfigError

if TYPE_CHECKING:
    from datatrove.data import DocumentsPipeline
    from datatrove.pipeline.writers.disk_base import DiskWriter


def _workdir(path: Any) -> str:
    return local_workdir(path, "near-dedup")


def _options(options: NearOptions | None, kwargs: dict[str, Any]) -> NearOptions:
    """The options, checked; the single-process ones are refused."""
    o = build(NearOptions, options, kwargs)
    for name in ("verify", "clusters"):
        if getattr(o, name):
            raise ConfigError(f"{name} is a single-process option, not available in datatrove")
    check("near", o)
    return o


class NearDedupSignature(PipelineStep):
    """Stage 1 of near-duplicate dedup (MinHash-LSH): signatures of this task's documents.

    Writes the same files as ``tamis dedup near signatures`` to ``workdir`` (a local or mounted
    path shared by every task): sorted, checksummed band-key runs and a manifest, last, that
    marks the task done. Each source file (``metadata[path_key]``) is a shard; files sort as the
    command line sorts them, so every stage keeps the same document per cluster as
    ``tamis dedup near`` over the same folder. ``keep`` picks the document a cluster keeps as
    on the command line (``max:``/``min:`` read a numeric metadata field). With ``against``
    (near indexes of an older corpus, read-only, reachable by every task), band keys are looked
    up in them too, and the filter removes every document of a cluster that shares a band with
    an indexed document, as ``tamis dedup near --against``. Terminal step: yields
    nothing. Then run :class:`NearDedupBuckets` (any number of tasks), :class:`NearDedupCluster`
    (one task) and :class:`NearDedupFilter` after the same reader.
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis near dedup: signatures"

    def __init__(
        self,
        workdir: str,
        options: NearOptions | None = None,
        *,
        batch_size: int = 10_000,
        path_key: str = "file_path",
        threads: int = 0,
        **kwargs: Any,
    ) -> None:
        """``options`` / keywords: :class:`tamis.dedup.NearOptions` (``verify`` and
        ``clusters`` are single-process options, refused); ``threads``: Rust threads per batch."""
        super().__init__()
        check_arrow_builder()
        self.workdir = _workdir(workdir)
        self.options = _options(options, kwargs)
        self.batch_size = check_batch_size(batch_size)
        self.path_key = path_key
        self.threads = threads

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:  # type: ignore[override]
        """Compute and write the signatures of this task's documents."""
        from datatrove.utils.batching import batched
        from datatrove.utils.typeshelper import StatHints

        from tamis import _core

        field = keep_field(self.options)
        writer = _core.NearSignatureWriter(
            self.workdir, rank, world_size, to_json(self.options), threads=self.threads
        )
        for batch in batched(data or (), self.batch_size):
            with self.track_time("batch"):
                # Consecutive documents of one file go to Rust together.
                start = 0
                while start < len(batch):
                    path = source_path(batch[start], self.path_key)
                    end = start + 1
                    while end < len(batch) and source_path(batch[end], self.path_key) == path:
                        end += 1
                    docs = batch[start:end]
                    writer.add(path, string_array(texts_of(docs)), keep_values(docs, field))
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
            task = json.dumps({"rank": rank, "world_size": world_size})
            stats = json.loads(_core.near_buckets(self.workdir, task))
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
    steps), in any number of tasks. With the option ``annotate`` every document is forwarded
    with ``metadata["minhash_cluster_id"]`` (the cluster's kept document, as a 0-based position
    in the global order) and ``metadata["minhash_cluster_size"]``. Dropped documents go to
    ``exclusion_writer`` with ``metadata["filter_reason"] = "near_duplicate"``. When the
    signatures used ``against``, documents of a cluster that duplicates an index are dropped with
    ``"indexed_duplicate"``, or, with ``annotate``, forwarded with ``metadata["dup_of"]`` (the
    ids of the indexed records).
    """

    type = "🫂 - DEDUPS"
    name = "🦀 tamis near dedup: filter"

    def __init__(
        self,
        workdir: str,
        options: NearOptions | None = None,
        *,
        exclusion_writer: DiskWriter | None = None,
        path_key: str = "file_path",
        **kwargs: Any,
    ) -> None:
        """``options`` / keywords: :class:`tamis.dedup.NearOptions` (this step uses
        ``annotate``)."""
        super().__init__()
        self.workdir = _workdir(workdir)
        self.options = _options(options, kwargs)
        self.exclusion_writer = exclusion_writer
        self.path_key = path_key

    @property
    def annotate(self) -> bool:
        """Whether every document is forwarded, annotated with its cluster."""
        return bool(self.options.annotate)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield kept (or annotated) documents."""
        from datatrove.utils.typeshelper import StatHints

        from tamis import _core

        # The decisions live in the work directory; the core answers per document, by source
        # path, in the order this task reads them.
        decisions = _core.NearPathFilter(self.workdir)
        writer_context = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with writer_context as writer:
            for doc in data or ():
                self.stat_update(StatHints.total)
                kept_flags, reps, sizes, dup_of = decisions.decide(
                    [source_path(doc, self.path_key)]
                )
                if self.annotate:
                    doc.metadata["minhash_cluster_id"] = reps[0]
                    doc.metadata["minhash_cluster_size"] = sizes[0]
                    if dup_of[0] is not None:
                        doc.metadata[DUP_OF] = dup_of[0]
                if kept_flags[0] or self.annotate:
                    self.stat_update(StatHints.forwarded)
                    yield doc
                else:
                    reason = "near_duplicate" if dup_of[0] is None else "indexed_duplicate"
                    self.stat_update(StatHints.dropped, f"dropped_{reason}")
                    if writer is not None:
                        doc.metadata["filter_reason"] = reason
                        writer.write(doc, rank)


__all__ = ["NearDedupBuckets", "NearDedupCluster", "NearDedupFilter", "NearDedupSignature"]
