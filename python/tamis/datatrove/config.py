"""A ``tamis refine`` configuration as datatrove pipelines: :func:`to_datatrove` (phases),
:func:`run_local` (run them with ``LocalPipelineExecutor``) and :func:`stage_counts` (per-stage
counts from datatrove's stats, the names of ``tamis refine``'s report).

Each stage type's datatrove steps are declared once, in :data:`BUILDERS`; the configuration is
the one ``tamis refine`` checks (:attr:`tamis.refine.Pipeline.config`).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tamis._options import dumps
from tamis.datatrove._base import PipelineStep, source_path
from tamis.datatrove.exact import ExactDedupFilter, ExactDedupSignature
from tamis.datatrove.fasttext import LanguageFilter, QualityFilter
from tamis.datatrove.lines import LineDedupFilter, LineDedupSignature
from tamis.datatrove.near import NearDedupBuckets, NearDedupCluster, NearDedupFilter, NearDedupSignature
from tamis.datatrove.prox import ProxChunkStage, ProxDocStage
from tamis.datatrove.substring import SubstringFilter, SubstringFind, SubstringSequence
from tamis.dedup import ExactOptions, LinesOptions, NearOptions, SubstringOptions
from tamis.errors import ConfigError
from tamis.filters import LanguageOptions, QualityOptions
from tamis.prox_infer import ProxModelOptions

if TYPE_CHECKING:
    from datatrove.data import Document, DocumentsPipeline


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
                doc.metadata[SOURCE_KEY] = source_path(doc, self.path_key)
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


class Plan:
    """The phases of a configuration, built stage by stage by :data:`BUILDERS`.

    Documents flow from phase to phase: the first phases read the original data, each writing
    phase writes gzipped JSONL to ``work_folder/NN-<phase>/`` which the next read. Per-shard
    steps join the phase being built (:meth:`shard`); a global stage closes it, adds phases of
    its own (:meth:`phase`) and opens its filter phase (:meth:`filter`).
    """

    def __init__(
        self,
        config: dict[str, Any],
        work_folder: str,
        *,
        source: Callable[[], Any],
        output_folder: str,
        exclusion_folder: str | None,
        batch_size: int,
        threads: int,
    ) -> None:
        self.config = config
        self.work_folder = work_folder
        self.phases: list[DatatrovePhase] = []
        self.threads = threads
        #: Keywords every dedup step takes.
        self.common: dict[str, Any] = {"batch_size": batch_size, "path_key": SOURCE_KEY, "threads": threads}
        self._source = source
        self._output = output_folder
        self._exclusion = exclusion_folder
        self._reading: str | None = None  # the folder the next phase reads; None: the original data
        self._tail: DatatrovePhase | None = None  # the phase being built

    def join(self, *parts: str) -> str:
        """``parts`` joined with ``/`` (datatrove folders may be URLs)."""
        return "/".join([parts[0].rstrip("/"), *parts[1:]])

    def signatures(self, stage: str) -> str:
        """The signature folder (or near dedup's work directory) of ``stage``."""
        return self.join(self.work_folder, "signatures", stage)

    def excluded(self, stage: str) -> Any:
        """The exclusion writer of ``stage``: its dropped documents (or ``None``)."""
        if self._exclusion is None:
            return None
        from datatrove.pipeline.writers import JsonlWriter

        return JsonlWriter(self.join(self._exclusion, stage), adapter=_final_adapter)

    def _reader(self) -> Any:
        if self._reading is None:
            return self._source()
        from datatrove.pipeline.readers import JsonlReader

        return JsonlReader(self._reading, glob_pattern="*.jsonl.gz")

    def _start(self, name: str, stages: list[str]) -> DatatrovePhase:
        return DatatrovePhase(f"{len(self.phases) + 1:02d}-{name}", [self._reader(), _TagSource()], stages)

    def shard(self, stage: str, step: Any) -> None:
        """A per-shard stage: ``step`` joins the phase being built (or a phase of its own)."""
        if self._tail is None:
            self._tail = self._start(stage, [])
        self._tail.add(step, stage)

    def phase(
        self, name: str, stage: str, steps: list[Any], *, reads: bool = True, tasks: int | None = None
    ) -> None:
        """A phase of its own for ``stage`` (after the one being built): ``steps`` after the
        reader (``reads``), or alone."""
        self.close()
        phase = (
            self._start(name, [stage])
            if reads
            else DatatrovePhase(f"{len(self.phases) + 1:02d}-{name}", [], [stage], tasks=tasks)
        )
        phase.pipeline.extend(steps)
        self.phases.append(phase)

    def filter(self, stage: str, step: Any) -> None:
        """The step that decides for a global ``stage``, opening the phase that per-shard
        stages after it join."""
        self._tail = self._start(f"{stage}-filter", [])
        self._tail.add(step, stage)

    def close(self, final: bool = False) -> None:
        """Write the phase being built: to the work folder, or (``final``) to the output."""
        from datatrove.pipeline.writers import JsonlWriter

        tail = self._tail
        if tail is None:
            if not final:
                return
            tail = self._start("copy", [])  # no stage ran: the output is a copy
        if final:
            compression = self.config["compression"]
            ext = {"gzip": ".jsonl.gz", "zstd": ".jsonl.zst", "none": ".jsonl"}[compression]
            writer = JsonlWriter(
                self._output,
                output_filename="${rank}" + ext,
                compression=None if compression == "none" else compression,
                adapter=_final_adapter,
            )
            tail.output_folder = self._output
        else:
            tail.output_folder = self.join(self.work_folder, tail.name)
            writer = JsonlWriter(tail.output_folder, output_filename="${rank}.jsonl.gz")
        tail.pipeline.append(writer)
        self.phases.append(tail)
        self._reading = tail.output_folder
        self._tail = None


def _options(stage: dict[str, Any]) -> dict[str, Any]:
    """A configured stage's options: every key but ``type``, ``name`` and ``skipped``."""
    return {k: v for k, v in stage.items() if k not in ("type", "name", "skipped")}


def _dedup_exact(plan: Plan, s: dict[str, Any]) -> None:
    name, sigs, o = s["name"], plan.signatures(s["name"]), ExactOptions(**_options(s))
    plan.phase(f"{name}-signatures", name, [ExactDedupSignature(sigs, o, **plan.common)])
    plan.filter(name, ExactDedupFilter(sigs, o, exclusion_writer=plan.excluded(name), **plan.common))


def _dedup_lines(plan: Plan, s: dict[str, Any]) -> None:
    name, sigs, o = s["name"], plan.signatures(s["name"]), LinesOptions(**_options(s))
    plan.phase(f"{name}-signatures", name, [LineDedupSignature(sigs, o, **plan.common)])
    plan.filter(name, LineDedupFilter(sigs, o, exclusion_writer=plan.excluded(name), **plan.common))


def _dedup_near(plan: Plan, s: dict[str, Any]) -> None:
    name, workdir, o = s["name"], plan.signatures(s["name"]), NearOptions(**_options(s))
    if "://" in plan.work_folder:
        raise ConfigError(f"near dedup needs a local or mounted work_folder, got {plan.work_folder!r}")
    plan.phase(f"{name}-signatures", name, [NearDedupSignature(workdir, o, **plan.common)])
    plan.phase(f"{name}-buckets", name, [NearDedupBuckets(workdir)], reads=False)
    plan.phase(f"{name}-cluster", name, [NearDedupCluster(workdir)], reads=False, tasks=1)
    step = NearDedupFilter(workdir, o, exclusion_writer=plan.excluded(name), path_key=SOURCE_KEY)
    plan.filter(name, step)


def _dedup_substring(plan: Plan, s: dict[str, Any]) -> None:
    name, workdir, o = s["name"], plan.signatures(s["name"]), SubstringOptions(**_options(s))
    if "://" in plan.work_folder:
        raise ConfigError(f"substring dedup needs a local or mounted work_folder, got {plan.work_folder!r}")
    sequence = SubstringSequence(workdir, path_key=SOURCE_KEY, batch_size=plan.common["batch_size"])
    plan.phase(f"{name}-sequence", name, [sequence])
    plan.phase(f"{name}-find", name, [SubstringFind(workdir, o, threads=plan.threads)], reads=False, tasks=1)
    plan.filter(name, SubstringFilter(workdir, o, exclusion_writer=plan.excluded(name), path_key=SOURCE_KEY))


def _language(plan: Plan, s: dict[str, Any]) -> None:
    o = LanguageOptions(**_options(s))
    plan.shard(s["name"], LanguageFilter(o, exclusion_writer=plan.excluded(s["name"])))


def _decontaminate(plan: Plan, s: dict[str, Any]) -> None:
    from tamis.datatrove.decont import Decontaminate
    from tamis.index import DecontOptions

    o = DecontOptions(**_options(s))
    plan.shard(s["name"], Decontaminate(o, exclusion_writer=plan.excluded(s["name"]), threads=plan.threads))


def _quality(plan: Plan, s: dict[str, Any]) -> None:
    o = QualityOptions(**_options(s))
    plan.shard(s["name"], QualityFilter(o, name=s["name"], exclusion_writer=plan.excluded(s["name"])))


def _prox(plan: Plan, s: dict[str, Any]) -> None:
    cls = ProxDocStage if s["type"] == "prox_doc" else ProxChunkStage
    o = ProxModelOptions(**_options(s))
    plan.shard(s["name"], cls(options=o, exclusion_writer=plan.excluded(s["name"]), threads=plan.threads))


def _tokenize_phase(plan: Plan, s: dict[str, Any]) -> DatatrovePhase:
    """The ``tokenize`` stage (always last): a phase reading the refined output and writing
    token shards to ``<output>/tokens`` (:class:`tamis.datatrove.TokenizeShards`, one set of
    shards per task), as ``tamis refine`` writes ``OUTPUT/tokens``."""
    from datatrove.pipeline.readers import JsonlReader

    from tamis.datatrove.tokenize import TokenizeShards
    from tamis.tokenize import TokenizeOptions

    o = _options(s)
    tokenizer = o.pop("tokenizer")
    out = plan._output
    if "://" in out:
        raise ConfigError(f"stage {s['name']!r}: token shards are written to a local folder, got {out!r}")
    reader = JsonlReader(out, text_key=plan.config["text_key"], id_key=plan.config["id_key"])
    step = TokenizeShards(plan.join(out, "tokens"), tokenizer, TokenizeOptions(**o), threads=plan.threads)
    return DatatrovePhase(name=s["name"], pipeline=[reader, step], stages=[s["name"]])


#: How each stage type of ``tamis refine`` becomes datatrove steps, by stage type (the core's
#: registry, ``tamis.refine.REGISTRY``, says which are global; their builders add phases).
BUILDERS: dict[str, Callable[[Plan, dict[str, Any]], None]] = {
    "dedup_exact": _dedup_exact,
    "dedup_lines": _dedup_lines,
    "dedup_near": _dedup_near,
    "dedup_substring": _dedup_substring,
    "language": _language,
    "decontaminate": _decontaminate,
    "quality": _quality,
    "prox_doc": _prox,
    "prox_chunk": _prox,
    "tokenize": lambda plan, s: None,  # a phase of its own after the output (_tokenize_phase)
}


def _check_without_inputs(raw: dict[str, Any], base: Path, threads: int) -> dict[str, Any]:
    """Check a configuration whose documents come from a datatrove reader or a remote folder,
    which ``tamis refine`` cannot check: the options and the Python stages' resources, as a run
    checks them, without the inputs."""
    from tamis import _core
    from tamis.refine.stages import PythonStages

    placeholder = {**raw, "inputs": ["(datatrove reader)"]}  # never read
    checked: dict[str, Any] = json.loads(
        _core.refine_check(dumps(placeholder), os.fspath(base), PythonStages(threads), inputs=False)
    )
    return checked


def _checked(
    config: Any, data_folder: str | None, output_folder: str | None, base_dir: str | None, reader: Any
) -> tuple[dict[str, Any], list[str]]:
    """The checked configuration (as :attr:`tamis.refine.Pipeline.config`) and its inputs as
    written (URLs are not paths)."""
    from tamis.refine import Pipeline

    if isinstance(config, Pipeline):
        return config.config, list(config.config["inputs"])
    if isinstance(config, dict):
        raw = dict(config)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        from tamis import _core

        raw = json.loads(_core.read_toml(os.fspath(config)))
        base = Path(base_dir) if base_dir is not None else Path(config).resolve().parent
    if data_folder is not None:
        raw.setdefault("inputs", [data_folder])
    if output_folder is not None:
        raw.setdefault("output", output_folder)
    inputs = raw.get("inputs")
    written = [str(p) for p in inputs] if isinstance(inputs, list) else []
    threads = int(raw.get("threads", 0) or 0)
    if reader is not None or any("://" in p for p in written):
        return _check_without_inputs(raw, base, threads), written
    return Pipeline.from_config(raw, base_dir=base).config, written


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

    ``config``: a TOML path, the dict :meth:`tamis.refine.Pipeline.from_config` takes, or a
    :class:`tamis.refine.Pipeline`. It is checked as ``tamis refine`` checks it (unknown stage,
    bad option, missing model file: :class:`tamis.ConfigError` before anything is created);
    stages the configuration skips (a ProX stage without a model, an ``if_available`` language
    stage whose model file is missing) are left out, as ``tamis refine`` leaves them out.

    Documents are read with ``reader`` (any datatrove reader, a fresh copy per phase; then the
    configuration needs no ``inputs``) or a ``JsonlReader`` of ``data_folder`` (default: the
    configuration's single input directory or URL; ``text_key``/``id_key`` from the
    configuration). Phases write gzipped JSONL to ``work_folder/NN-<phase>/`` and read it back;
    the last writes ``output_folder`` (default: the configuration's ``output``) with the
    configured ``compression``, one file per task. Signatures go to
    ``work_folder/signatures/<stage>/``; near dedup's work directory must be a local or mounted
    path. ``exclusion_folder``: dropped documents of every stage, in ``exclusion_folder/<stage>/``.

    Stages run in the configured order, each built by its entry of :data:`BUILDERS`. Per-shard
    stages (``language``, ``quality``, ``prox_doc``, ``prox_chunk``) run inside the phase before
    them; each global stage first needs phases over the whole corpus: ``dedup_exact`` and
    ``dedup_lines`` a signature phase, then a filter phase; ``dedup_near`` signatures, buckets,
    cluster (one task), then a filter phase. Dedup keeps what ``tamis refine`` keeps on the same
    files: every document carries its original source file (``metadata["tamis_source"]``) so
    each dedup step orders documents as the command line does, whatever the number of tasks.
    """
    cfg, inputs = _checked(config, data_folder, output_folder, base_dir, reader)
    if reader is None and data_folder is None:
        if len(inputs) != 1 or not (os.path.isdir(cfg["inputs"][0]) or "://" in inputs[0]):
            raise ConfigError(
                "to_datatrove reads one data folder: give data_folder= or reader= (the configuration "
                f"has inputs {inputs})"
            )
        data_folder = inputs[0] if "://" in inputs[0] else cfg["inputs"][0]

    def source() -> Any:
        if reader is not None:
            return copy.deepcopy(reader)
        from datatrove.pipeline.readers import JsonlReader

        return JsonlReader(
            data_folder, text_key=cfg["text_key"], id_key=cfg["id_key"], glob_pattern=glob_pattern
        )

    plan = Plan(
        cfg,
        work_folder,
        source=source,
        output_folder=output_folder if output_folder is not None else cfg["output"],
        exclusion_folder=exclusion_folder,
        batch_size=batch_size,
        threads=cfg["threads"] if threads is None else threads,
    )
    for s in cfg["stages"]:
        if s.get("skipped"):
            continue
        builder = BUILDERS.get(s["type"])
        if builder is None:
            raise ConfigError(f"stage {s['name']!r}: stage type {s['type']!r} has no datatrove steps")
        try:
            builder(plan, s)
        except ConfigError as e:
            raise ConfigError(f"stage {s['name']!r}: {e}") from e
    plan.close(final=True)
    tokenize = [s for s in cfg["stages"] if s["type"] == "tokenize" and not s.get("skipped")]
    if tokenize:
        plan.phases.append(_tokenize_phase(plan, tokenize[0]))
    return plan.phases


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
    skip = {"total", "forwarded", "dropped", "modified", "doc_len", "batches"}
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
    "BUILDERS",
    "SOURCE_KEY",
    "DatatrovePhase",
    "Plan",
    "run_local",
    "stage_counts",
    "to_datatrove",
]
