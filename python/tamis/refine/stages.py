"""The stages that run in Python (fastText, torch), declared once each.

The stage registry is the Rust core's (``tamis._core.stage_types()``: name, scope, runtime,
removal reasons, defaults); this module adds, per stage type, what only Python has: its options
dataclass, its implementation (a :class:`Stage`: texts in, :class:`Decisions` out) and its
datatrove step. Records never come here: ``tamis refine``, ``tamis filter`` and ``tamis prox
refine`` read, edit and write them in Rust and hand each stage batches of ids and texts
(:class:`PythonStages` is the bridge); the datatrove steps hand it their documents' texts and
apply the same :class:`Decisions` to the documents.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tamis import _core
from tamis._options import check
from tamis.errors import ConfigError, ModelError

#: The core's registry, by stage type.
REGISTRY: dict[str, dict[str, Any]] = {t["name"]: t for t in json.loads(_core.stage_types())}


@dataclass
class Decisions:
    """What a stage decided for a batch of documents.

    - ``keep``: per document;
    - ``reasons``: why each dropped document was dropped (``""`` for kept ones; default: the
      stage's first removal reason);
    - ``texts``: new texts (``None`` where unchanged), when the stage edits;
    - ``fields``: values to set per document (``None``: leave it), by field name; a dotted name
      (``metadata.language``) sets a field inside an object;
    - ``defaults``: like ``fields``, set only where the record lacks the field;
    - ``details``: a short description per document for the report's examples;
    - ``counters``: stage counters, added up over the run.
    """

    keep: list[bool]
    reasons: list[str] | None = None
    texts: list[str | None] | None = None
    fields: dict[str, list[Any]] = field(default_factory=dict)
    defaults: dict[str, list[Any]] = field(default_factory=dict)
    details: list[str] | None = None
    counters: dict[str, int] = field(default_factory=dict)


class Stage(Protocol):
    """A stage implementation: decide for a batch of documents. A stage that reads record fields
    besides the text lists them in ``fields`` (``url``, ``metadata.source``) and gets their
    values, per document, as ``decide``'s ``fields`` argument."""

    fields: Sequence[str]

    def decide(
        self, ids: Sequence[str], texts: Sequence[str], fields: dict[str, list[Any]] | None = None
    ) -> Decisions:
        """Decisions for the documents, in order."""
        ...


class LanguageStage:
    """``language``: fastText language identification, run in Rust (the same code as ``tamis
    refine``); writes ``metadata.language`` and ``metadata.language_score`` (rounded to 4
    digits). Used by the datatrove step and the Python API."""

    fields: Sequence[str] = ()

    def __init__(self, name: str, options: dict[str, Any], threads: int = 0) -> None:
        from tamis.filters import LanguageFilter

        self.filter = LanguageFilter(**options)
        self.threads = threads

    def decide(
        self, ids: Sequence[str], texts: Sequence[str], fields: dict[str, list[Any]] | None = None
    ) -> Decisions:
        keep, reasons, langs, scores, details = self.filter.identifier().outcome(list(texts), self.threads)
        return Decisions(
            keep=keep,
            reasons=reasons,
            fields={"metadata.language": langs, "metadata.language_score": scores},
            details=details,
        )


class QualityStage:
    """``quality``: a fastText classifier; writes ``metadata.<name>_score`` (the probability of
    ``keep_label``, rounded to 6 digits); drop reason ``<name>_score``."""

    fields: Sequence[str] = ()

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        from tamis.filters import QualityFilter

        self.filter = QualityFilter(
            options["model"],
            name=name,
            keep_label=options["keep_label"],
            threshold=options["threshold"],
            batch_size=options["batch_size"],
        )

    def decide(
        self, ids: Sequence[str], texts: Sequence[str], fields: dict[str, list[Any]] | None = None
    ) -> Decisions:
        keep, scores = self.filter.apply(texts)
        key = self.filter.score_key
        return Decisions(
            keep=keep,
            reasons=["" if k else key for k in keep],
            fields={f"metadata.{key}": [round(s, 6) for s in scores]},
            details=[f"{key} {s:.4f}" for s in scores],
        )


class ProxStage:
    """``prox_doc`` / ``prox_chunk``: a ProX refining model writes a program per document (or
    chunk), run in Rust; the program goes to ``metadata.<level>_program``, the original text of
    every kept document to ``raw_key`` unless the record has it (as ``tamis prox apply``)."""

    fields: Sequence[str] = ()

    def __init__(self, level: Literal["doc", "chunk"], options: dict[str, Any], threads: int = 0) -> None:
        from tamis.prox_infer import Refiner

        self.level, self.options = level, options
        extra: dict[str, Any] = {}
        if level == "doc":
            extra["doc_fast_tokens"] = options.get("doc_fast_tokens")
            if options.get("max_new_tokens"):
                extra["doc_max_new_tokens"] = options["max_new_tokens"]
        else:
            extra["constrain"] = options.get("constrain")
            if options.get("max_new_tokens"):
                extra["chunk_max_new_tokens"] = options["max_new_tokens"]
        models = {"doc_model": None, "chunk_model": None, f"{level}_model": options["model"]}
        self.refiner = Refiner(
            **models,
            stage=level,
            mode=options["mode"],
            backend=options["backend"],
            base_url=options["base_url"],
            device=options["device"],
            dtype=options["dtype"],
            batch_tokens=options["batch_tokens"],
            threads=threads,
            **extra,
        )

    def decide(
        self, ids: Sequence[str], texts: Sequence[str], fields: dict[str, list[Any]] | None = None
    ) -> Decisions:
        window = self.options["window"]
        new: list[str] = []
        programs: list[str | None] = []
        counters: dict[str, int] = {}
        for k in range(0, len(texts), window):
            res = self.refiner.refine(list(texts[k : k + window]))
            new += res.texts
            programs += res.doc_programs if self.level == "doc" else res.chunk_programs
            for key, v in res.stats[self.level].as_dict().items():
                if isinstance(v, int) and not isinstance(v, bool):
                    counters[f"prox_{key}"] = counters.get(f"prox_{key}", 0) + v
        raw_key = self.options["raw_key"]
        out = Decisions(
            keep=[bool(t) for t in new],
            reasons=["" if t else f"prox_{self.level}" for t in new],
            texts=[t if t else None for t in new],
            fields={f"metadata.{self.level}_program": [p if p is not None else "" for p in programs]},
            details=[(p or "").strip()[:200] for p in programs],
            counters=counters,
        )
        if raw_key:
            # Every kept document records its original text, as `tamis prox apply` does.
            out.defaults[raw_key] = [old if t else None for old, t in zip(texts, new, strict=True)]
        return out


def _find_prox_model(level: str) -> str | None:
    """A refining model available locally: ``$TAMIS_PROX_DOC_MODEL`` / ``$TAMIS_PROX_CHUNK_MODEL``,
    or the released model in the Hugging Face cache (never downloaded here)."""
    env = os.environ.get(f"TAMIS_PROX_{level.upper()}_MODEL")
    if env:
        return env
    try:
        from huggingface_hub import snapshot_download

        from tamis.prox_infer import DEFAULT_CHUNK_MODEL, DEFAULT_DOC_MODEL

        repo = DEFAULT_DOC_MODEL if level == "doc" else DEFAULT_CHUNK_MODEL
        return str(snapshot_download(repo, local_files_only=True))
    except Exception:
        return None


def _check_language(options: dict[str, Any]) -> Any:
    from pathlib import Path

    from tamis import filters

    model = options["model"]
    if model is not None and options["if_available"] and not Path(model).exists():
        return ("skip", f"skipped: language model {model} not found")
    filters.LanguageFilter(**options)
    return None


def _check_quality(name: str, options: dict[str, Any]) -> Any:
    from tamis import filters

    try:
        import fasttext  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"{filters._MISSING_FASTTEXT} ({e})") from e
    try:
        filters.QualityFilter(
            options["model"], name=name, keep_label=options["keep_label"], threshold=options["threshold"]
        ).model()
    except ValueError as e:  # fastText cannot read the file
        if isinstance(e, ConfigError):
            raise
        raise ModelError(f"model {options['model']!r}: {e}") from e
    return None


def _check_prox(level: str, options: dict[str, Any]) -> Any:
    model = options["model"]
    if model == "auto":
        found = _find_prox_model(level)
        if found is None:
            return (
                "skip",
                f"skipped: no {level} refining model configured or found locally (set model = DIR in "
                f"the stage, or $TAMIS_PROX_{level.upper()}_MODEL, or download "
                f"gair-prox/web-{level}-refining-lm into the Hugging Face cache)",
            )
        model = found
    if options["backend"] != "openai" and not os.path.isdir(model):
        raise ModelError(f"refining model {model!r}: no such directory")
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        if options["model"] == "auto":
            return (
                "skip",
                f"skipped: the ProX stages need torch and transformers: pip install 'tamis[prox]' ({e})",
            )
        raise ConfigError(f"needs torch and transformers: pip install 'tamis[prox]' ({e})") from e
    from tamis.prox_infer import resolve_model

    if options["backend"] != "openai":
        resolve_model(model)
    if model != options["model"]:
        return json.dumps({**options, "model": model})
    return None


@dataclass(frozen=True)
class PythonStage:
    """One Python-run stage type: its options dataclass (a name in :mod:`tamis.filters` or
    :mod:`tamis.prox_infer`), how its configuration is checked, and its implementation."""

    options: str
    check: Callable[[str, dict[str, Any]], Any]
    make: Callable[[str, dict[str, Any], int], Stage]


#: The Python side of every shard stage type of the core's registry: the Python-run ones
#: (``quality``, ProX) and, for the datatrove step and the Python API, ``language`` (which
#: ``tamis refine`` runs in Rust, as this wrapper does).
PYTHON_STAGES: dict[str, PythonStage] = {
    "language": PythonStage(
        "tamis.filters.LanguageOptions",
        lambda name, o: _check_language(o),
        lambda name, o, threads: LanguageStage(name, o, threads),
    ),
    "quality": PythonStage(
        "tamis.filters.QualityOptions",
        _check_quality,
        lambda name, o, threads: QualityStage(name, o),
    ),
    "prox_doc": PythonStage(
        "tamis.prox_infer.ProxModelOptions",
        lambda name, o: _check_prox("doc", o),
        lambda name, o, threads: ProxStage("doc", o, threads),
    ),
    "prox_chunk": PythonStage(
        "tamis.prox_infer.ProxModelOptions",
        lambda name, o: _check_prox("chunk", o),
        lambda name, o, threads: ProxStage("chunk", o, threads),
    ),
}


def _split_stage(stage_json: str) -> tuple[str, str, dict[str, Any]]:
    table: dict[str, Any] = json.loads(stage_json)
    return table.pop("type"), table.pop("name"), table


class PythonStages:
    """The Python stages for the Rust driver: ``check`` before any work, ``process`` per batch.
    Stages are loaded on their first batch and kept for the run."""

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads
        self._loaded: dict[str, Stage] = {}

    def check(self, stage_json: str) -> Any:
        """``None`` (run it), new options as JSON (run with them), or ``("skip", note)``."""
        kind, name, options = _split_stage(stage_json)
        impl = PYTHON_STAGES.get(kind)
        if impl is None:
            raise ConfigError(f"no Python implementation of stage type {kind!r}")
        return impl.check(name, options)

    def _stage(self, stage_json: str) -> Stage:
        stage = self._loaded.get(stage_json)
        if stage is None:
            kind, name, options = _split_stage(stage_json)
            stage = PYTHON_STAGES[kind].make(name, options, self.threads)
            self._loaded[stage_json] = stage
        return stage

    def fields(self, stage_json: str) -> list[str]:
        """The record fields the stage reads besides the text."""
        return list(self._stage(stage_json).fields)

    def process(self, stage_json: str, batch: Any) -> Decisions:
        """The decisions for one batch (a ``tamis._core.Batch``: ``ids``, ``texts``, and
        ``field(name)`` for the fields the stage reads)."""
        stage = self._stage(stage_json)
        fields = {f: batch.field(f) for f in stage.fields}
        return stage.decide(batch.ids, batch.texts, fields)


def stage_options(kind: str, options: dict[str, Any]) -> Any:
    """The options dataclass of a Python-run stage, checked by the core."""
    import importlib

    module, _, cls_name = PYTHON_STAGES[kind].options.rpartition(".")
    cls = getattr(importlib.import_module(module), cls_name)
    capability = {"language": "language", "quality": "quality"}.get(kind, "prox_model")
    return cls(**{k: v for k, v in check(capability, cls(**options)).items()})


__all__ = [
    "PYTHON_STAGES",
    "REGISTRY",
    "Decisions",
    "LanguageStage",
    "ProxStage",
    "PythonStage",
    "PythonStages",
    "QualityStage",
    "Stage",
    "stage_options",
]
