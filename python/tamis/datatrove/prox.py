"""ProX (docs/prox.md) as datatrove steps: :class:`ProxDocStage` and :class:`ProxChunkStage` run
the refining models (the ``prox_doc`` / ``prox_chunk`` stages of ``tamis refine``, the same
implementation), :class:`ProxApply` runs programs already stored in the documents' metadata,
and :class:`ProxAnnotate` labels documents with a large model into SFT data
(``tamis prox annotate``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tamis._options import build
from tamis.datatrove._base import DecisionStep, PipelineStep, check_batch_size, local_workdir, texts_of
from tamis.datatrove._stage import StageStep
from tamis.prox_infer import ProxModelOptions
from tamis.refine.stages import Decisions

if TYPE_CHECKING:
    from datatrove.data import Document, DocumentsPipeline
    from datatrove.pipeline.writers.disk_base import DiskWriter


class ProxApply(DecisionStep):
    """Run the ProX programs stored in each document's metadata (see docs/prox.md).

    ``doc_program_key`` / ``chunk_program_key`` name the metadata fields holding the document
    program (``drop_doc()`` / ``keep_doc()``) and the chunk program (the per-chunk outputs joined
    with newlines); ``None`` skips that stage. Programs run in Rust, in batches, with the GIL
    released; results equal ``tamis prox apply`` and :mod:`tamis.prox`. The original text of
    every kept document goes to ``metadata[raw_key]`` unless already there. Dropped documents
    are counted (``dropped_drop_doc`` / ``dropped_chunk_program``) and sent to
    ``exclusion_writer`` with that reason in ``metadata["filter_reason"]``. A document without
    a needed program is an error.
    """

    type = "✂️ - FORMAT"
    name = "🦀 tamis ProX apply"
    reason = "drop_doc"

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

        super().__init__(exclusion_writer, batch_size)
        if mode not in ("compat", "strict"):
            raise ValueError(f"mode must be 'compat' or 'strict', got {mode!r}")
        if doc_program_key is None and chunk_program_key is None:
            raise ValueError("ProxApply needs doc_program_key, chunk_program_key or both")
        self.doc_program_key = doc_program_key
        self.chunk_program_key = chunk_program_key
        self.mode = mode
        self.accept = accept if accept is not None else DEFAULT
        self.raw_key = raw_key
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

    def decide(self, batch: list[Document]) -> Decisions:
        """Run the document programs, then the chunk programs of the documents left."""
        from tamis import _core

        texts = texts_of(batch)
        accept = self.accept._args()
        results: list[str | None] = list(texts)
        reasons = [""] * len(batch)
        if self.doc_program_key is not None:
            programs = self._programs(batch, self.doc_program_key)
            kept = _core.prox_execute_list("doc", texts, programs, self.mode, accept, self.threads)
            for i, (text, out) in enumerate(zip(texts, kept, strict=True)):
                if text and not out:
                    results[i], reasons[i] = None, "drop_doc"
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
                    results[i], reasons[i] = None, "chunk_program"
        elif self.doc_program_key is not None:
            for i, text in enumerate(texts):
                if results[i] is not None and not text:
                    results[i], reasons[i] = None, "chunk_program"
        decisions = Decisions(
            keep=[r is not None for r in results],
            reasons=reasons,
            texts=[r if r is not None and r != t else None for r, t in zip(results, texts, strict=True)],
        )
        if self.raw_key:
            decisions.defaults[self.raw_key] = [
                t if r is not None else None for r, t in zip(results, texts, strict=True)
            ]
        return decisions


class _ProxModelStep(StageStep):
    """A ProX refining-model stage; see :class:`ProxDocStage`, :class:`ProxChunkStage`."""

    type = "✂️ - FORMAT"
    level = "doc"

    def __init__(
        self,
        model: str | None = None,
        options: ProxModelOptions | None = None,
        *,
        exclusion_writer: DiskWriter | None = None,
        threads: int = 0,
        **kwargs: Any,
    ) -> None:
        """``model``: the refining model (a local directory; ``"auto"``: found as ``tamis refine``
        finds it); ``options`` / keywords: :class:`tamis.prox_infer.ProxModelOptions` (``mode``,
        ``device``, ``batch_tokens``, ``window`` documents per batch, ``raw_key``, …);
        ``threads``: Rust threads for the programs. Also accepted, as the
        :class:`tamis.prox_infer.Refiner` names them: ``{level}_max_new_tokens`` for
        ``max_new_tokens``, ``batch_size`` for ``window``, ``raw_key=None`` for ``""``."""
        alias = f"{self.level}_max_new_tokens"
        if alias in kwargs:
            kwargs["max_new_tokens"] = kwargs.pop(alias)
        if "batch_size" in kwargs:
            kwargs["window"] = kwargs.pop("batch_size")
        if "raw_key" in kwargs and kwargs["raw_key"] is None:
            kwargs["raw_key"] = ""
        if model is not None:
            kwargs["model"] = model
        o = build(ProxModelOptions, options, kwargs)
        super().__init__(
            o,
            stage_name=self.kind,
            exclusion_writer=exclusion_writer,
            batch_size=o.window,
            threads=threads,
        )
        if self.options["model"] == "auto":
            self.resolve()

    @property
    def model(self) -> str:
        """The refining model."""
        return str(self.options["model"])


class ProxDocStage(_ProxModelStep):
    """ProX document stage, ``prox_doc`` of ``tamis refine``: the doc refining model writes
    ``drop_doc()`` / ``keep_doc()`` for each document (in ``metadata["doc_program"]``); dropped
    documents are left out (``dropped_prox_doc``). One process per GPU
    (``SlurmPipelineExecutor``), as ProX ran it; see docs/prox.md."""

    name = "🦀 tamis ProX doc stage"
    kind = "prox_doc"
    level = "doc"


class ProxChunkStage(_ProxModelStep):
    """ProX chunk stage, ``prox_chunk`` of ``tamis refine``: the chunk refining model writes one
    program per chunk; the joined program (``metadata["chunk_program"]``) runs in Rust; the
    original text goes to ``metadata[raw_key]`` (``raw_content``)."""

    name = "🦀 tamis ProX chunk stage"
    kind = "prox_chunk"
    level = "chunk"


__all__ = ["ProxApply", "ProxChunkStage", "ProxDocStage"]


class ProxAnnotate(PipelineStep):
    """``tamis prox annotate`` as a datatrove step: each task labels its documents with the
    large model behind ``options.endpoint`` and writes the SFT records to
    ``{output_folder}/{rank:05d}.jsonl`` (a local or mounted folder), with the journal next to
    it, so a rerun of an interrupted task asks only what was not answered. Prompts are built in
    Rust from the documents' ids and texts exactly as the command line builds them, so a task's
    file equals ``tamis prox annotate`` on the same documents.

    A terminal step: it consumes its input and yields nothing. Counters (requests, retries,
    skipped requests, tokens, records, left out by reason) go to the task's stats.
    """

    type = "🏷 - ANNOTATE"
    name = "🦀 tamis ProX annotate"

    def __init__(
        self, output_folder: str, options: Any, *, batch_size: int = 1_000, threads: int = 0
    ) -> None:
        """``options``: a :class:`tamis.prox_annotate.AnnotateOptions`."""
        from tamis.prox_annotate import AnnotateOptions

        super().__init__()
        if not isinstance(options, AnnotateOptions):
            raise TypeError("options must be a tamis.prox_annotate.AnnotateOptions")
        self.output_folder = local_workdir(output_folder, "ProX annotation")
        self.options = options
        self.batch_size = check_batch_size(batch_size)
        self.threads = threads

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:  # type: ignore[override]
        """Annotate this task's documents into its SFT file."""
        import os

        from datatrove.utils.batching import batched

        from tamis import _core
        from tamis.prox_annotate import annotate_items

        prompt_options = self.options.prompt_options()

        def items() -> Iterator[Any]:
            for batch in batched(data, self.batch_size):
                with self.track_time(unit="batch"):
                    ids = [str(d.id) for d in batch]
                    per_doc = _core.prox_prompt_items(ids, texts_of(batch), prompt_options, self.threads)
                for doc_items in per_doc:
                    yield from doc_items

        os.makedirs(self.output_folder, exist_ok=True)
        counts = annotate_items(items(), os.path.join(self.output_folder, f"{rank:05d}.jsonl"), self.options)
        for k, v in counts.items():
            if isinstance(v, int):
                self.stat_update(k, value=v)
            elif isinstance(v, dict):
                for reason, n in v.items():
                    self.stat_update(f"{k}_{reason}", value=n)
