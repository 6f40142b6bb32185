"""Tokenization into training shards (``tamis tokenize``) as a datatrove step.

:class:`TokenizeShards` writes, for the documents of each task, the files ``tamis tokenize``
writes (Megatron ``.bin``/``.idx``, datatrove/nanotron ``.ds`` files or numpy ``.npy``): the
texts go to Rust in batches (``tamis_core::tokenize::TextShardWriter``), which encodes them and
writes the shards; nothing is re-serialized in Python.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from tamis import _core
from tamis._options import build, to_json
from tamis.datatrove._base import PipelineStep, check_arrow_builder, check_batch_size, string_array, texts_of
from tamis.tokenize import TokenizeOptions

if TYPE_CHECKING:
    from datatrove.data import DocumentsPipeline

PathLike = str | os.PathLike[str]


def task_prefix(rank: int) -> str:
    """The shard name prefix of task ``rank``: ``{rank:05d}_shard``, so that task 3 writes
    ``00003_shard_00000.bin``, ``00003_shard_00001.bin``, … and ``00003_shard.manifest.json``.
    Sorted by name, the files of all tasks list in task order, then shard order."""
    return f"{rank:05d}_shard"


def task_manifest(output_folder: PathLike, rank: int) -> dict[str, Any]:
    """The manifest task ``rank`` wrote in ``output_folder``."""
    path = os.path.join(os.fspath(output_folder), f"{task_prefix(rank)}.manifest.json")
    with open(path, encoding="utf-8") as f:
        manifest: dict[str, Any] = json.load(f)
    return manifest


class TokenizeShards(PipelineStep):
    """Encode each task's documents and write them as token shards in ``output_folder``.

    Task ``rank`` writes the shards ``{rank:05d}_shard_00000``, ``_00001``, … (cut before a
    document that would pass ``max_shard_tokens``, shuffled inside a shard with ``shuffle``) and
    its manifest ``{rank:05d}_shard.manifest.json``, the one ``tamis tokenize`` writes (documents
    and tokens per shard, the tokenizer's hash, BOS/EOS, options; its one input is named after
    the prefix). Ids are those of the ``tokenizers`` library's ``encode`` for ``tokenizer`` with
    the BOS/EOS policy of docs/tokenize.md, so with one task the files are byte for byte those
    of :func:`tamis.tokenize.tokenize` over the same documents (only the names differ); with
    several tasks, the tasks' shards in name order hold the documents in the order the tasks
    read them.

    A terminal step, like datatrove's ``DocumentTokenizer``: it consumes its input and yields
    nothing. A task run again (after a crash) keeps the shards its earlier run finished and
    writes the rest; a task run again with other options or another tokenizer is refused
    (``.tamis-tokenize/{prefix}.run.json`` records them).

    Stats: ``documents`` and ``tokens`` (per task), ``shards``.
    """

    type = "🔢 - TOKENIZER"
    name = "🦀 tamis tokenize: shards"

    def __init__(
        self,
        output_folder: PathLike,
        tokenizer: PathLike,
        options: TokenizeOptions | None = None,
        *,
        batch_size: int = 1_000,
        threads: int = 0,
        **kwargs: Any,
    ) -> None:
        """``output_folder``: a local directory (Rust writes the files); ``tokenizer``: a
        ``tokenizer.json`` file; ``options`` / keywords: :class:`tamis.tokenize.TokenizeOptions`
        (``format``, ``bos``, ``eos``, ``bos_token``, ``eos_token``, ``shuffle``, ``seed``,
        ``max_shard_tokens``, ``dtype``); ``batch_size``: documents per Rust call (the GIL is
        released while they are encoded); ``threads``: encoding threads per task (0: one per
        core; 1 when running one task per core)."""
        super().__init__()
        check_arrow_builder()
        if (
            isinstance(output_folder, str)
            and "://" in output_folder
            and not output_folder.startswith("file://")
        ):
            raise ValueError(f"TokenizeShards writes to a local directory, got {output_folder!r}")
        self.output_folder = os.fspath(output_folder).removeprefix("file://")
        self.tokenizer = os.fspath(tokenizer)
        self.options = build(TokenizeOptions, options, kwargs)
        self.batch_size = check_batch_size(batch_size)
        self.threads = threads
        _core.check_options("tokenize", to_json(self.options))  # refused now, not in the tasks
        if not os.path.isfile(self.tokenizer):
            raise FileNotFoundError(f"{self.tokenizer}: No such file")

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:  # type: ignore[override]
        """Encode this task's documents into its shards; write its manifest (also when it had
        no documents)."""
        from datatrove.utils.batching import batched

        writer = _core.TextShardWriter(
            self.output_folder, self.tokenizer, to_json(self.options), task_prefix(rank), self.threads
        )
        for batch in batched(data or (), self.batch_size):
            with self.track_time("batch"):
                writer.add(string_array(texts_of(batch)))
        manifest = json.loads(writer.finish())
        self.stat_update("documents", value=int(manifest["documents"]), unit="task")
        self.stat_update("tokens", value=int(manifest["tokens"]), unit="task")
        self.stat_update("shards", value=len(manifest["shards"]), unit="task")


__all__ = ["TokenizeShards", "task_manifest", "task_prefix"]
