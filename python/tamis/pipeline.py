"""``tamis refine``: the end-to-end job, raw corpus in, refined corpus and a report out.

A pipeline is an ordered list of stages (see docs/refine.md):

- per-shard stages, run on each input file on its own: ``language`` and ``quality`` (fastText,
  :mod:`tamis.filters`), ``prox_doc`` and ``prox_chunk`` (ProX refining models,
  :class:`tamis.prox_infer.Refiner`);
- global stages, which need the whole corpus: ``dedup_exact``, ``dedup_lines`` and
  ``dedup_near`` (the Rust implementations of ``tamis dedup exact|lines|near``).

Consecutive per-shard stages form one *step* run shard by shard; each global stage is a step of
its own run over all shards at once. Every step writes one output file per input shard and a
completion marker (per shard, or one for a global step) after its outputs are in place, so a
re-run skips what is finished: a killed run resumes without duplicating or losing documents, and
its output is byte-identical to an uninterrupted run. Outputs of a step are removed once the next
step has finished with them.

Use it as ``tamis refine CONFIG.toml`` or ``tamis refine INPUT... -o OUTDIR``, or from Python:
``tamis.Pipeline.from_config("refine.toml").run()``.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGE_TYPES = ("dedup_exact", "language", "quality", "dedup_lines", "dedup_near", "prox_doc", "prox_chunk")
GLOBAL_STAGES = frozenset({"dedup_exact", "dedup_lines", "dedup_near"})
DEFAULT_STAGES = ("dedup_exact", "language", "dedup_lines", "dedup_near", "prox_doc", "prox_chunk")
NORMALIZE = ("none", "whitespace", "simple")
COMPRESSION = {"gzip": ".jsonl.gz", "zstd": ".jsonl.zst", "none": ".jsonl"}
# Token-length histogram bins: [0, 1), [1, 2), [2, 4), ... [2^20, inf).
HIST_EDGES = [0, 1] + [2**k for k in range(1, 21)]

PathLike = str | os.PathLike[str]


class ConfigError(ValueError):
    """The configuration is invalid; nothing was run (exit code 2)."""


# --------------------------------------------------------------------------------------------
# Configuration

_ANY = object()


@dataclass(frozen=True)
class _Param:
    kind: str  # str, int, float, bool, list, path, opt_str, opt_int, opt_float, opt_path
    default: Any = None
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None


_PROX_COMMON = {
    "model": _Param("str", "auto"),
    "mode": _Param("str", "compat", choices=("compat", "strict")),
    "backend": _Param("str", "transformers", choices=("transformers", "vllm", "openai")),
    "base_url": _Param("opt_str"),
    "device": _Param("opt_str"),
    "dtype": _Param("opt_str", choices=("bf16", "fp16", "fp32")),
    "batch_tokens": _Param("int", 65536, low=1),
    "window": _Param("int", 4096, low=1),
    "raw_key": _Param("str", "raw_content"),
}

STAGE_PARAMS: dict[str, dict[str, _Param]] = {
    "dedup_exact": {
        "normalize": _Param("str", "whitespace", choices=NORMALIZE),
        "key": _Param("opt_str"),
    },
    "language": {
        "languages": _Param("list", []),
        "min_score": _Param("float", 0.65, low=0.0, high=1.0),
        "model": _Param("opt_path"),
        "batch_size": _Param("int", 1024, low=1),
        "if_available": _Param("bool", False),
    },
    "quality": {
        "model": _Param("path"),
        "keep_label": _Param("str", "hq"),
        "threshold": _Param("float", 0.5, low=0.0, high=1.0),
        "batch_size": _Param("int", 1024, low=1),
    },
    "dedup_lines": {
        "max_occurrences": _Param("int", 1, low=1),
        "min_line_chars": _Param("int", 10, low=0),
        "normalize": _Param("str", "none", choices=NORMALIZE),
    },
    "dedup_near": {
        "threshold": _Param("opt_float", low=0.0, high=1.0),
        "recall_weight": _Param("opt_float", low=0.0, high=1.0),
        "ngram": _Param("int", 5, low=1),
        "shingle": _Param("str", "words", choices=("words", "chars")),
        "num_perm": _Param("int", 112, low=1),
        "bands": _Param("opt_int", low=1),
        "rows": _Param("opt_int", low=1),
        "seed": _Param("int", 1, low=0),
        "sketch": _Param("str", "kperm", choices=("kperm", "oph")),
        "verify": _Param("bool", False),
        "priority": _Param("opt_str"),
    },
    "prox_doc": {**_PROX_COMMON, "doc_fast_tokens": _Param("opt_int", low=1)},
    "prox_chunk": {**_PROX_COMMON, "constrain": _Param("bool", True)},
}

_TOP_KEYS = {
    "inputs": _Param("list"),
    "output": _Param("path"),
    "text_key": _Param("str", "text"),
    "id_key": _Param("str", "id"),
    "compression": _Param("str", "gzip", choices=tuple(COMPRESSION)),
    "threads": _Param("int", 0, low=0),
    "on_error": _Param("str", "fail", choices=("fail", "skip")),
}
_REPORT_KEYS = {"examples": _Param("int", 5, low=0), "tokenizer": _Param("opt_path")}


def _check(where: str, name: str, p: _Param, value: Any, base: Path) -> Any:
    kind = p.kind
    opt = kind.startswith("opt_")
    if opt and value is None:
        return None
    kind = kind.removeprefix("opt_")
    ok = {
        "str": isinstance(value, str),
        "path": isinstance(value, str) and value != "",
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "list": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }[kind]
    if not ok:
        wanted = {
            "list": "a list of strings",
            "path": "a path",
            "float": "a number",
            "int": "an integer",
            "bool": "true or false",
            "str": "a string",
        }[kind]
        raise ConfigError(f"{where}: {name} must be {wanted}, got {value!r}")
    if p.choices and value not in p.choices:
        raise ConfigError(f"{where}: {name} must be one of {', '.join(p.choices)}, got {value!r}")
    if p.low is not None and value < p.low:
        raise ConfigError(f"{where}: {name} must be >= {p.low}, got {value!r}")
    if p.high is not None and value > p.high:
        raise ConfigError(f"{where}: {name} must be <= {p.high}, got {value!r}")
    if kind == "float":
        value = float(value)
    if kind == "path":
        value = os.fspath(base / os.path.expanduser(value))
    return value


def _fill(where: str, spec: dict[str, _Param], given: dict[str, Any], base: Path) -> dict[str, Any]:
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ConfigError(
            f"{where}: unknown parameter {unknown[0]!r} (known: {', '.join(sorted(spec)) or 'none'})"
        )
    out = {}
    for name, p in spec.items():
        if name in given:
            out[name] = _check(where, name, p, given[name], base)
        elif p.kind in ("path", "list") and p.default is None:
            raise ConfigError(f"{where}: {name} is required")
        else:
            out[name] = list(p.default) if isinstance(p.default, list) else p.default
    return out


@dataclass
class StageConfig:
    """One configured stage: its ``type``, a unique ``name`` and checked parameters."""

    type: str
    name: str
    params: dict[str, Any]
    note: str = ""  # why the stage is skipped, when it is


@dataclass
class Config:
    """A checked pipeline configuration (see :meth:`Pipeline.from_config`)."""

    inputs: list[str]
    output: str
    stages: list[StageConfig]
    text_key: str = "text"
    id_key: str = "id"
    compression: str = "gzip"
    threads: int = 0
    on_error: str = "fail"
    examples: int = 5
    tokenizer: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The configuration as plain data (what report.json records)."""
        return {
            "inputs": self.inputs,
            "output": self.output,
            "text_key": self.text_key,
            "id_key": self.id_key,
            "compression": self.compression,
            "threads": self.threads,
            "on_error": self.on_error,
            "report": {"examples": self.examples, "tokenizer": self.tokenizer},
            "stages": [{"type": s.type, "name": s.name, **s.params} for s in self.stages],
        }


def _find_prox_model(stage: str) -> str | None:
    """A refining model available locally: ``$TAMIS_PROX_DOC_MODEL`` / ``$TAMIS_PROX_CHUNK_MODEL``,
    or the released model in the Hugging Face cache (never downloaded here)."""
    env = os.environ.get(f"TAMIS_PROX_{stage.upper()}_MODEL")
    if env:
        return env
    try:
        from huggingface_hub import snapshot_download

        from tamis.prox_infer import DEFAULT_CHUNK_MODEL, DEFAULT_DOC_MODEL

        repo = DEFAULT_DOC_MODEL if stage == "doc" else DEFAULT_CHUNK_MODEL
        return str(snapshot_download(repo, local_files_only=True))
    except Exception:
        return None


def _check_stage_resources(s: StageConfig) -> None:
    """Model files exist and optional packages are installed: checked before any work."""
    from tamis import filters

    p = s.params
    where = f"stage {s.name!r}"
    if s.type in ("language", "quality"):
        try:
            import fasttext  # noqa: F401
        except ImportError as e:
            if p.get("if_available"):
                s.note = f"skipped: {filters._MISSING_FASTTEXT}"
                return
            raise ConfigError(f"{where}: {filters._MISSING_FASTTEXT} ({e})") from e
        try:
            if s.type == "language" and p["model"] is None and p["if_available"]:
                try:
                    filters.embedded_lid_model()
                except filters.FilterConfigError as e:
                    s.note = f"skipped: {e}"
                    return
            if s.type == "language":
                filters.LanguageFilter(p["languages"], min_score=p["min_score"], model=p["model"])
            else:
                filters.QualityFilter(
                    p["model"], keep_label=p["keep_label"], threshold=p["threshold"], name=s.name
                ).model()
        except filters.FilterConfigError as e:
            raise ConfigError(f"{where}: {e}") from e
        except ValueError as e:  # fastText cannot read the file
            raise ConfigError(f"{where}: model {p['model']!r}: {e}") from e
    elif s.type in ("prox_doc", "prox_chunk"):
        level = s.type.removeprefix("prox_")
        model = p["model"]
        if model == "auto":
            found = _find_prox_model(level)
            if found is None:
                s.note = (
                    f"skipped: no {level} refining model configured or found locally (set model = DIR in "
                    f"the stage, or $TAMIS_PROX_{level.upper()}_MODEL, or download "
                    f"gair-prox/web-{level}-refining-lm into the Hugging Face cache)"
                )
                return
            model = found
        if p["backend"] != "openai" and not Path(model).is_dir():
            raise ConfigError(f"{where}: refining model {model!r}: no such directory")
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as e:
            if p["model"] == "auto":
                s.note = (
                    f"skipped: the ProX stages need torch and transformers: pip install 'tamis[prox]' ({e})"
                )
                return
            raise ConfigError(
                f"{where}: needs torch and transformers: pip install 'tamis[prox]' ({e})"
            ) from e
        from tamis.prox_infer import ProxModelError, resolve_model

        if p["backend"] != "openai":
            try:
                resolve_model(model)
            except ProxModelError as e:
                raise ConfigError(f"{where}: {e}") from e
        p["model"] = model


def parse_config(raw: dict[str, Any], *, base_dir: PathLike = ".", check_resources: bool = True) -> Config:
    """Check a configuration (as read from TOML) and return it; raises :class:`ConfigError`.

    Relative paths are resolved against ``base_dir`` (the config file's directory)."""
    base = Path(base_dir)
    raw = dict(raw)
    stages_raw = raw.pop("stage", raw.pop("stages", None))
    report_raw = raw.pop("report", {})
    if not isinstance(report_raw, dict):
        raise ConfigError("[report] must be a table")
    top = _fill("config", _TOP_KEYS, raw, base)
    if not top["inputs"]:
        raise ConfigError("config: inputs is empty")
    rep = _fill("[report]", _REPORT_KEYS, report_raw, base)
    if stages_raw is None:
        raise ConfigError("config: no [[stage]] tables (an empty list `stage = []` only copies the input)")
    if not isinstance(stages_raw, list) or not all(isinstance(s, dict) for s in stages_raw):
        raise ConfigError("config: stage must be a list of tables ([[stage]])")
    stages: list[StageConfig] = []
    names: set[str] = set()
    for i, s in enumerate(stages_raw, 1):
        s = dict(s)
        typ = s.pop("type", None)
        if typ not in STAGE_TYPES:
            raise ConfigError(f"stage {i}: unknown stage type {typ!r} (known: {', '.join(STAGE_TYPES)})")
        name = s.pop("name", None)
        if name is None:
            name = typ if typ not in names else f"{typ}_{i}"
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise ConfigError(f"stage {i}: name must be letters, digits or _, got {name!r}")
        if name in names:
            raise ConfigError(f"stage {i}: name {name!r} is used twice")
        names.add(name)
        stages.append(StageConfig(typ, name, _fill(f"stage {i} ({typ})", STAGE_PARAMS[typ], s, base)))
    inputs = [os.fspath(base / os.path.expanduser(p)) for p in top["inputs"]]
    cfg = Config(
        inputs=inputs,
        output=top["output"],
        stages=stages,
        text_key=top["text_key"],
        id_key=top["id_key"],
        compression=top["compression"],
        threads=top["threads"],
        on_error=top["on_error"],
        examples=rep["examples"],
        tokenizer=rep["tokenizer"],
    )
    if cfg.tokenizer is not None and not Path(cfg.tokenizer).is_file():
        raise ConfigError(f"[report]: tokenizer {cfg.tokenizer!r}: no such file")
    if check_resources:
        for s in stages:
            _check_stage_resources(s)
    return cfg


def load_toml(path: PathLike) -> dict[str, Any]:
    """Read a TOML file; syntax errors become :class:`ConfigError`."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{os.fspath(path)}: cannot read: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{os.fspath(path)}: invalid TOML: {e}") from e
    return data


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Input files in the command line's order: given files as given, a directory's files sorted
    as Rust sorts paths (hidden files skipped), glob patterns expanded and sorted."""
    import glob

    files: list[str] = []
    for p in inputs:
        if os.path.isdir(p):
            found = []
            for root, dirs, names in os.walk(p):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found += [os.path.join(root, n) for n in names if not n.startswith(".")]
            files += sorted(found, key=lambda x: tuple(c for c in x.split("/") if c not in ("", ".")))
        elif os.path.exists(p):
            files.append(p)
        elif any(c in p for c in "*?["):
            matched = sorted(m for m in glob.glob(p, recursive=True) if os.path.isfile(m))
            if not matched:
                raise ConfigError(f"input pattern {p!r} matches no file")
            files += matched
        else:
            raise ConfigError(f"input {p!r}: no such file or directory")
    if not files:
        raise ConfigError("no input files")
    return files


# --------------------------------------------------------------------------------------------
# Reading and writing shards


def _open_text(path: str, mode: str) -> Any:
    from tamis.prox_infer import _open_text as open_text

    return open_text(path, mode)


def _read_input(path: str, text_key: str, on_error: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records of an input file, and the bad ones skipped under ``on_error="skip"``."""
    records: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []

    def bad(where: str, reason: str, raw: Any) -> None:
        if on_error == "fail":
            raise ValueError(f"{path}: {where}: {reason}")
        rejects.append({"file": path, "location": where, "error": reason, "record": raw})

    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        for n, rec in enumerate(pq.read_table(path).to_pylist(), 1):
            if not isinstance(rec.get(text_key), str):
                bad(f"row {n}", f"field {text_key!r} is missing or not a string", None)
            else:
                records.append(rec)
        return records, rejects
    with _open_text(path, "r") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                bad(f"line {n}", f"invalid JSON: {e}", line.rstrip("\n"))
                continue
            if not isinstance(rec, dict):
                bad(f"line {n}", "not a JSON object", line.rstrip("\n"))
            elif not isinstance(rec.get(text_key), str):
                bad(f"line {n}", f"field {text_key!r} is missing or not a string", line.rstrip("\n"))
            else:
                records.append(rec)
    return records, rejects


def _read_shard(path: str) -> list[dict[str, Any]]:
    with _open_text(path, "r") as f:
        return [json.loads(line) for line in f if line.strip()]


def _write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Write atomically; gzip without a timestamp or name, so equal records give equal bytes."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    try:
        with open(tmp, "wb") as raw:
            if path.name.endswith(".gz"):
                with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
                    gz.write(data)
            elif path.name.endswith(".zst"):
                import zstandard

                raw.write(zstandard.ZstdCompressor().compress(data))
            else:
                raw.write(data)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Stages


@dataclass
class Outcome:
    """What a stage decided for each document of a batch."""

    keep: list[bool]
    reasons: list[str]
    texts: list[str] | None = None  # new texts (same length), None when unchanged
    details: list[str] | None = None  # shown with examples (e.g. ``de 0.91``)
    counters: dict[str, int] = field(default_factory=dict)


class _Stage:
    """A configured stage, loaded lazily."""

    def __init__(self, cfg: StageConfig, pipeline: Config) -> None:
        self.cfg, self.pipeline = cfg, pipeline
        self._impl: Any = None

    @property
    def is_global(self) -> bool:
        return self.cfg.type in GLOBAL_STAGES

    def process(self, records: list[dict[str, Any]], texts: list[str]) -> Outcome:
        raise NotImplementedError  # pragma: no cover


def _meta(rec: dict[str, Any]) -> dict[str, Any]:
    m = rec.get("metadata")
    if not isinstance(m, dict):
        m = {}
        rec["metadata"] = m
    return m


class _LanguageStage(_Stage):
    def process(self, records: list[dict[str, Any]], texts: list[str]) -> Outcome:
        from tamis.filters import LanguageFilter

        p = self.cfg.params
        if self._impl is None:
            self._impl = LanguageFilter(
                p["languages"], min_score=p["min_score"], model=p["model"], batch_size=p["batch_size"]
            )
        keep, preds = self._impl.apply(texts)
        reasons = []
        for rec, k, (lang, score) in zip(records, keep, preds, strict=True):
            m = _meta(rec)
            m["language"], m["language_score"] = lang, round(score, 4)
            reasons.append(
                ""
                if k
                else ("language" if p["languages"] and lang not in p["languages"] else "language_score")
            )
        return Outcome(keep, reasons, details=[f"{lang} {score:.2f}" for lang, score in preds])


class _QualityStage(_Stage):
    def process(self, records: list[dict[str, Any]], texts: list[str]) -> Outcome:
        from tamis.filters import QualityFilter

        p = self.cfg.params
        if self._impl is None:
            self._impl = QualityFilter(
                p["model"],
                keep_label=p["keep_label"],
                threshold=p["threshold"],
                name=self.cfg.name,
                batch_size=p["batch_size"],
            )
        keep, scores = self._impl.apply(texts)
        key = self._impl.score_key
        for rec, s in zip(records, scores, strict=True):
            _meta(rec)[key] = round(s, 6)
        return Outcome(
            keep,
            ["" if k else key for k in keep],
            details=[f"{key} {s:.4f}" for s in scores],
        )


class _ProxStage(_Stage):
    def _refiner(self) -> Any:
        if self._impl is None:
            from tamis.prox_infer import Refiner

            p = self.cfg.params
            level = self.cfg.type.removeprefix("prox_")
            options: dict[str, Any] = {
                "stage": level,
                "mode": p["mode"],
                "backend": p["backend"],
                "base_url": p["base_url"],
                "device": p["device"],
                "dtype": p["dtype"],
                "batch_tokens": p["batch_tokens"],
                "threads": self.pipeline.threads,
            }
            if level == "doc":
                options["doc_fast_tokens"] = p["doc_fast_tokens"]
            else:
                options["constrain"] = None if p["constrain"] else False
            models = {"doc_model": None, "chunk_model": None, f"{level}_model": p["model"]}
            self._impl = Refiner(**models, **options)
        return self._impl

    def process(self, records: list[dict[str, Any]], texts: list[str]) -> Outcome:
        refiner = self._refiner()
        p = self.cfg.params
        level = self.cfg.type.removeprefix("prox_")
        keep: list[bool] = []
        new: list[str] = []
        reasons: list[str] = []
        programs: list[str | None] = []
        for k in range(0, len(texts), p["window"]):
            res = refiner.refine(texts[k : k + p["window"]])
            new += res.texts
            programs += res.doc_programs if level == "doc" else res.chunk_programs
        for rec, old, out, prog in zip(records, texts, new, programs, strict=True):
            keep.append(bool(out))
            reasons.append("" if out else f"prox_{level}")
            m = _meta(rec)
            m[f"{level}_program"] = prog if prog is not None else ""
            if out and out != old and p["raw_key"] and p["raw_key"] not in rec:
                rec[p["raw_key"]] = old
        details = [(prog or "").strip()[:200] for prog in programs]
        return Outcome(keep, reasons, texts=new, details=details)


_PER_SHARD: dict[str, type[_Stage]] = {
    "language": _LanguageStage,
    "quality": _QualityStage,
    "prox_doc": _ProxStage,
    "prox_chunk": _ProxStage,
}


def _run_global_rust(cfg: StageConfig, pipeline: Config, inputs: list[str], output: str) -> dict[str, Any]:
    """Run the Rust dedup of ``cfg`` over the minimal records of all shards."""
    from tamis import dedup

    p = cfg.params
    common: dict[str, Any] = {"text_key": "text", "id_key": "id", "threads": pipeline.threads}
    if cfg.type == "dedup_exact":
        return dedup.exact(inputs, output, normalize=p["normalize"], key=p["key"], **common)
    if cfg.type == "dedup_lines":
        return dedup.lines(
            inputs,
            output,
            max_occurrences=p["max_occurrences"],
            min_line_chars=p["min_line_chars"],
            normalize=p["normalize"],
            **common,
        )
    return dedup.near(
        inputs,
        output,
        threshold=p["threshold"],
        recall_weight=p["recall_weight"],
        ngram=p["ngram"],
        shingle=p["shingle"],
        num_perm=p["num_perm"],
        bands=p["bands"],
        rows=p["rows"],
        seed=p["seed"],
        sketch=p["sketch"],
        verify=p["verify"],
        priority=p["priority"],
        **common,
    )


_GLOBAL_REASON = {
    "dedup_exact": "duplicate",
    "dedup_lines": "empty_after_line_dedup",
    "dedup_near": "near_duplicate",
}


# --------------------------------------------------------------------------------------------
# Stats and examples


def _hist(lengths: Sequence[int]) -> list[int]:
    import bisect

    counts = [0] * len(HIST_EDGES)
    for n in lengths:
        counts[bisect.bisect_right(HIST_EDGES, n) - 1] += 1
    return counts


def _snippet(text: str, n: int = 400) -> str:
    return text if len(text) <= n else text[:n] + "…"


def _changes(old: str, new: str, limit: int = 6) -> tuple[list[str], list[dict[str, str]]]:
    """Lines removed and lines rewritten between two versions of a document."""
    a, b = old.split("\n"), new.split("\n")
    removed: list[str] = []
    changed: list[dict[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "delete":
            removed += a[i1:i2]
        elif op == "replace":
            for x, y in zip(a[i1:i2], b[j1:j2], strict=False):
                changed.append({"before": _snippet(x, 200), "after": _snippet(y, 200)})
            removed += a[i1 + (j2 - j1) : i2]
    return [_snippet(x, 200) for x in removed[:limit]], changed[:limit]


def _new_stage_stats() -> dict[str, Any]:
    return {
        "documents_in": 0,
        "documents_out": 0,
        "tokens_in": 0,
        "tokens_out": 0,
        "bytes_in": 0,
        "bytes_out": 0,
        "modified": 0,
        "dropped": {},
        "counters": {},
        "seconds": 0.0,
        "languages": {},
        "examples": {"dropped": [], "modified": []},
    }


def _merge_stats(into: dict[str, Any], other: dict[str, Any], examples: int) -> None:
    for k in (
        "documents_in",
        "documents_out",
        "tokens_in",
        "tokens_out",
        "bytes_in",
        "bytes_out",
        "modified",
    ):
        into[k] += other[k]
    into["seconds"] += other["seconds"]
    for k in ("dropped", "counters"):
        for r, n in other[k].items():
            into[k][r] = into[k].get(r, 0) + n
    for lang, (seen, kept) in other["languages"].items():
        s, kp = into["languages"].get(lang, (0, 0))
        into["languages"][lang] = (s + seen, kp + kept)
    for k in ("dropped", "modified"):
        room = examples - len(into["examples"][k])
        if room > 0:
            into["examples"][k] += other["examples"][k][:room]


class _Tokens:
    """Token counts for the report: a tokenizer.json if configured, else whitespace words."""

    def __init__(self, tokenizer: str | None) -> None:
        self.unit = "words"
        self._tok: Any = None
        if tokenizer:
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_file(tokenizer)
            self.unit = "tokens"

    def count(self, texts: Sequence[str]) -> list[int]:
        if self._tok is None:
            return [len(t.split()) for t in texts]
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]


def _apply_outcome(
    stage: StageConfig,
    records: list[dict[str, Any]],
    texts: list[str],
    ntok: list[int],
    out: Outcome,
    stats: dict[str, Any],
    tokens: _Tokens,
    text_key: str,
    id_key: str,
    examples: int,
) -> tuple[list[dict[str, Any]], list[str], list[int]]:
    """Apply a stage's decisions to a batch; update ``stats`` and collect examples."""
    stats["documents_in"] += len(records)
    stats["tokens_in"] += sum(ntok)
    stats["bytes_in"] += sum(len(t.encode("utf-8")) for t in texts)
    new_texts = out.texts if out.texts is not None else texts
    changed = [i for i, (k, a, b) in enumerate(zip(out.keep, texts, new_texts, strict=True)) if k and a != b]
    counts = dict(zip(changed, tokens.count([new_texts[i] for i in changed]), strict=True))
    kept_recs, kept_texts, kept_tok = [], [], []
    for i, (rec, keep) in enumerate(zip(records, out.keep, strict=True)):
        detail = out.details[i] if out.details is not None else ""
        if stage.type == "language":
            lang = _meta(rec).get("language", "")
            seen, kp = stats["languages"].get(lang, (0, 0))
            stats["languages"][lang] = (seen + 1, kp + keep)
        if not keep:
            reason = out.reasons[i] or "dropped"
            stats["dropped"][reason] = stats["dropped"].get(reason, 0) + 1
            if len(stats["examples"]["dropped"]) < examples:
                stats["examples"]["dropped"].append(
                    {
                        "id": str(rec.get(id_key, "")),
                        "reason": reason,
                        "detail": detail,
                        "text": _snippet(texts[i]),
                    }
                )
            continue
        text = new_texts[i]
        if i in counts:
            stats["modified"] += 1
            rec[text_key] = text
            if len(stats["examples"]["modified"]) < examples:
                removed, rewritten = _changes(texts[i], text)
                stats["examples"]["modified"].append(
                    {
                        "id": str(rec.get(id_key, "")),
                        "removed_lines": removed,
                        "rewritten": rewritten,
                        "detail": detail,
                    }
                )
        kept_recs.append(rec)
        kept_texts.append(text)
        kept_tok.append(counts.get(i, ntok[i]))
    for k, v in out.counters.items():
        stats["counters"][k] = stats["counters"].get(k, 0) + v
    stats["documents_out"] += len(kept_recs)
    stats["tokens_out"] += sum(kept_tok)
    stats["bytes_out"] += sum(len(t.encode("utf-8")) for t in kept_texts)
    return kept_recs, kept_texts, kept_tok


# --------------------------------------------------------------------------------------------
# The pipeline


@dataclass
class _Step:
    index: int
    stages: list[StageConfig]  # one global stage, or per-shard stages (possibly none)

    @property
    def is_global(self) -> bool:
        return len(self.stages) == 1 and self.stages[0].type in GLOBAL_STAGES


class Pipeline:
    """A checked, resumable refinement pipeline; :meth:`run` it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.out = Path(config.output)
        self.state = self.out / ".tamis"
        self.progress: Callable[[str], None] = lambda msg: None

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: PathLike | dict[str, Any],
        *,
        output: PathLike | None = None,
        base_dir: PathLike | None = None,
    ) -> Pipeline:
        """From a TOML file path or an already parsed dict; ``output`` overrides its ``output``.
        Raises :class:`ConfigError` before any work when the configuration is invalid."""
        if isinstance(config, dict):
            raw = dict(config)
            base = Path(base_dir) if base_dir is not None else Path.cwd()
        else:
            raw = load_toml(config)
            base = Path(base_dir) if base_dir is not None else Path(config).resolve().parent
        if output is not None:
            raw["output"] = os.fspath(Path(output).resolve())
        return cls(parse_config(raw, base_dir=base))

    @classmethod
    def from_args(
        cls,
        inputs: Sequence[PathLike],
        output: PathLike,
        *,
        stages: Sequence[str] | None = None,
        languages: Sequence[str] = (),
        min_score: float | None = None,
        quality_model: PathLike | None = None,
        keep_label: str = "hq",
        threshold: float = 0.5,
        prox_doc_model: PathLike | None = None,
        prox_chunk_model: PathLike | None = None,
        **top: Any,
    ) -> Pipeline:
        """The defaults of ``tamis refine INPUT... -o OUTDIR``: exact dedup (white space
        normalized), language ID (filtering when ``languages`` is given), a quality filter when
        ``quality_model`` is given, line dedup, near dedup, and the ProX stages when their models
        are found."""
        chosen = list(stages) if stages is not None else list(DEFAULT_STAGES)
        if quality_model is not None and stages is None:
            chosen.insert(chosen.index("language") + 1, "quality")
        table: list[dict[str, Any]] = []
        for typ in chosen:
            s: dict[str, Any] = {"type": typ}
            if typ == "language":
                s["languages"] = list(languages)
                s["min_score"] = min_score if min_score is not None else (0.65 if languages else 0.0)
            elif typ == "quality" and quality_model is not None:
                s.update(model=os.fspath(quality_model), keep_label=keep_label, threshold=threshold)
            elif typ == "prox_doc" and prox_doc_model is not None:
                s["model"] = os.fspath(prox_doc_model)
            elif typ == "prox_chunk" and prox_chunk_model is not None:
                s["model"] = os.fspath(prox_chunk_model)
            table.append(s)
        raw = {"inputs": [os.fspath(p) for p in inputs], "output": os.fspath(output), "stage": table, **top}
        return cls.from_config(raw, base_dir=Path.cwd())

    # --- layout --------------------------------------------------------------------------------

    def _steps(self) -> list[_Step]:
        steps: list[_Step] = []
        run: list[StageConfig] = []
        for s in self.config.stages:
            if s.note:
                continue
            if s.type in GLOBAL_STAGES:
                if run:
                    steps.append(_Step(len(steps), run))
                    run = []
                steps.append(_Step(len(steps), [s]))
            else:
                run.append(s)
        if run or not steps:
            steps.append(_Step(len(steps), run))
        return steps

    def _shard_name(self, i: int, final: bool) -> str:
        return f"{i:05d}" + (COMPRESSION[self.config.compression] if final else ".jsonl")

    def _data_dir(self, step: _Step, n_steps: int) -> Path:
        return (
            self.out / "data" if step.index == n_steps - 1 else self.state / f"step-{step.index:02d}" / "data"
        )

    def _fingerprint(self, files: list[str]) -> dict[str, Any]:
        cfg = self.config.as_dict()
        for k in ("output", "threads", "inputs"):
            cfg.pop(k)
        sizes = [os.path.getsize(f) for f in files]
        digest = hashlib.sha256(json.dumps([cfg, files, sizes], sort_keys=True).encode()).hexdigest()
        return {"fingerprint": digest, "inputs": files}

    # --- running -------------------------------------------------------------------------------

    def run(self, *, restart: bool = False) -> dict[str, Any]:
        """Run (or resume) the pipeline; returns the report (also written to ``report.json`` and
        ``report.html`` in the output directory)."""
        cfg = self.config
        files = expand_inputs(cfg.inputs)
        self.out.mkdir(parents=True, exist_ok=True)
        run_file = self.state / "run.json"
        fp = self._fingerprint(files)
        if restart and self.state.exists():
            shutil.rmtree(self.state)
            for d in (self.out / "data", self.out / "rejects"):
                if d.exists():
                    shutil.rmtree(d)
        if run_file.exists():
            previous = json.loads(run_file.read_text(encoding="utf-8"))
            if previous.get("fingerprint") != fp["fingerprint"]:
                raise ConfigError(
                    f"{self.out} holds a run of another configuration or other inputs; use another output "
                    "directory, or restart it (--restart)"
                )
        else:
            if (self.out / "data").exists() and any((self.out / "data").iterdir()):
                raise ConfigError(f"{self.out / 'data'} already holds files not written by this run")
            self.state.mkdir(parents=True, exist_ok=True)
            _write_json(run_file, fp)
        tokens = _Tokens(cfg.tokenizer)
        steps = self._steps()
        t_start = time.perf_counter()
        kill_after = int(os.environ.get("TAMIS_REFINE_KILL_AFTER_SHARDS", "0") or 0)
        self._shards_done = 0
        inputs = files
        step_results: list[dict[str, Any]] = []
        for step in steps:
            out_dir = self._data_dir(step, len(steps))
            out_dir.mkdir(parents=True, exist_ok=True)
            final = step.index == len(steps) - 1
            outputs = [os.fspath(out_dir / self._shard_name(i, final)) for i in range(len(files))]
            if step.is_global:
                res = self._run_global(step, inputs, outputs, tokens, first=step.index == 0)
            else:
                res = self._run_shards(
                    step, inputs, outputs, tokens, first=step.index == 0, kill_after=kill_after
                )
            step_results.append(res)
            if step.index > 0:  # the previous step's outputs are no longer needed
                prev = self.state / f"step-{step.index - 1:02d}" / "data"
                if prev.exists():
                    shutil.rmtree(prev)
            inputs = outputs
        report = self._report(files, steps, step_results, tokens.unit, time.perf_counter() - t_start)
        _write_json(self.out / "report.json", report)
        from tamis.report import render_html

        html = render_html(report)
        tmp = self.out / f".report.html.tmp-{os.getpid()}"
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, self.out / "report.html")
        return report

    def _read_step_input(self, path: str, first: bool, shard: int) -> list[dict[str, Any]]:
        if not first:
            return _read_shard(path)
        records, rejects = _read_input(path, self.config.text_key, self.config.on_error)
        if rejects:
            d = self.out / "rejects"
            d.mkdir(exist_ok=True)
            _write_jsonl(d / f"{shard:05d}.jsonl", rejects)
        elif (self.out / "rejects" / f"{shard:05d}.jsonl").exists():
            (self.out / "rejects" / f"{shard:05d}.jsonl").unlink()
        self._skipped = len(rejects)
        return records

    def _shard_input_stats(self, texts: list[str], ntok: list[int]) -> dict[str, Any]:
        return {"documents": len(texts), "tokens": sum(ntok), "histogram": _hist(ntok)}

    def _run_shards(
        self,
        step: _Step,
        inputs: list[str],
        outputs: list[str],
        tokens: _Tokens,
        *,
        first: bool,
        kill_after: int,
    ) -> dict[str, Any]:
        cfg = self.config
        done_dir = self.state / f"step-{step.index:02d}" / "done"
        done_dir.mkdir(parents=True, exist_ok=True)
        stages = [_PER_SHARD[s.type](s, cfg) for s in step.stages]
        shard_results = []
        for i, (src, dst) in enumerate(zip(inputs, outputs, strict=True)):
            marker = done_dir / f"{i:05d}.json"
            if marker.exists():
                shard_results.append(json.loads(marker.read_text(encoding="utf-8")))
                continue
            self.progress(f"step {step.index} shard {i + 1}/{len(inputs)}")
            self._skipped = 0
            records = self._read_step_input(src, first, i)
            texts = [r[cfg.text_key] for r in records]
            ntok = tokens.count(texts)
            result: dict[str, Any] = {"input": self._shard_input_stats(texts, ntok), "skipped": self._skipped}
            per_stage = {}
            for st in stages:
                stats = _new_stage_stats()
                t0 = time.perf_counter()
                outcome = st.process(records, texts) if records else Outcome([], [])
                stats["seconds"] = time.perf_counter() - t0
                records, texts, ntok = _apply_outcome(
                    st.cfg,
                    records,
                    texts,
                    ntok,
                    outcome,
                    stats,
                    tokens,
                    cfg.text_key,
                    cfg.id_key,
                    cfg.examples,
                )
                per_stage[st.cfg.name] = stats
            _write_jsonl(Path(dst), records)
            result["stages"] = per_stage
            result["output"] = self._shard_input_stats(texts, ntok)
            _write_json(marker, result)
            shard_results.append(result)
            self._shards_done += 1
            if kill_after and self._shards_done >= kill_after:
                # Fault injection for the resume tests: die as a crash would, without cleanup.
                os.kill(os.getpid(), signal.SIGKILL)
        return self._combine(step, shard_results)

    def _combine(self, step: _Step, shard_results: list[dict[str, Any]]) -> dict[str, Any]:
        stages = {s.name: _new_stage_stats() for s in step.stages}
        total_in: dict[str, Any] = {"documents": 0, "tokens": 0, "histogram": [0] * len(HIST_EDGES)}
        total_out: dict[str, Any] = {"documents": 0, "tokens": 0, "histogram": [0] * len(HIST_EDGES)}
        skipped = 0
        for r in shard_results:
            skipped += r.get("skipped", 0)
            for tot, part in ((total_in, r["input"]), (total_out, r["output"])):
                tot["documents"] += part["documents"]
                tot["tokens"] += part["tokens"]
                tot["histogram"] = [a + b for a, b in zip(tot["histogram"], part["histogram"], strict=True)]
            for name, st in r["stages"].items():
                st = dict(st)
                st["languages"] = {k: tuple(v) for k, v in st["languages"].items()}
                _merge_stats(stages[name], st, self.config.examples)
        return {"input": total_in, "output": total_out, "stages": stages, "skipped": skipped}

    def _run_global(
        self, step: _Step, inputs: list[str], outputs: list[str], tokens: _Tokens, *, first: bool
    ) -> dict[str, Any]:
        cfg = self.config
        stage = step.stages[0]
        step_dir = self.state / f"step-{step.index:02d}"
        marker = step_dir / "done.json"
        if marker.exists():
            res: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
            for st in res["stages"].values():
                st["languages"] = {}
            return res
        self.progress(f"step {step.index}: {stage.name} over {len(inputs)} shards")
        tmp = step_dir / "tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        t0 = time.perf_counter()
        extra = [k for k in (stage.params.get("key"), stage.params.get("priority")) if k]
        # Minimal records (position, text, and the fields the stage reads) go through the same Rust
        # code as `tamis dedup ...`; the decisions are then applied to the full records per shard.
        mini = tmp / "all.jsonl"
        pos = 0
        shard_records: list[int] = []
        skipped = 0
        with open(mini, "w", encoding="utf-8") as f:
            for i, src in enumerate(inputs):
                self._skipped = 0
                records = self._read_step_input(src, first, i)
                skipped += self._skipped
                shard_records.append(len(records))
                for r in records:
                    m = {"id": str(pos), "text": r[cfg.text_key]}
                    for k in extra:
                        if k in r:
                            m[k] = r[k]
                    f.write(json.dumps(m, ensure_ascii=False) + "\n")
                    pos += 1
        kept_file = tmp / "kept.jsonl"
        rust = _run_global_rust(stage, cfg, [os.fspath(mini)], os.fspath(kept_file))
        seconds = time.perf_counter() - t0

        def kept_iter() -> Iterator[tuple[int, str]]:
            with open(kept_file, encoding="utf-8") as f:
                for line in f:
                    r = json.loads(line)
                    yield int(r["id"]), r["text"]

        it = kept_iter()
        nxt = next(it, None)
        stats = _new_stage_stats()
        total_in: dict[str, Any] = {"documents": 0, "tokens": 0, "histogram": [0] * len(HIST_EDGES)}
        total_out: dict[str, Any] = {"documents": 0, "tokens": 0, "histogram": [0] * len(HIST_EDGES)}
        reason = _GLOBAL_REASON[stage.type]
        pos = 0
        for src, dst in zip(inputs, outputs, strict=True):
            records = _read_shard(src) if not first else _read_input(src, cfg.text_key, cfg.on_error)[0]
            texts = [r[cfg.text_key] for r in records]
            ntok = tokens.count(texts)
            keep, new = [], []
            for t in texts:
                if nxt is not None and nxt[0] == pos:
                    keep.append(True)
                    new.append(nxt[1])
                    nxt = next(it, None)
                else:
                    keep.append(False)
                    new.append(t)
                pos += 1
            outcome = Outcome(keep, ["" if k else reason for k in keep], texts=new)
            total_in["documents"] += len(texts)
            total_in["tokens"] += sum(ntok)
            total_in["histogram"] = [a + b for a, b in zip(total_in["histogram"], _hist(ntok), strict=True)]
            records, texts, ntok = _apply_outcome(
                stage, records, texts, ntok, outcome, stats, tokens, cfg.text_key, cfg.id_key, cfg.examples
            )
            total_out["documents"] += len(texts)
            total_out["tokens"] += sum(ntok)
            total_out["histogram"] = [a + b for a, b in zip(total_out["histogram"], _hist(ntok), strict=True)]
            _write_jsonl(Path(dst), records)
        if nxt is not None:
            raise RuntimeError(f"stage {stage.name}: the dedup output has a document not in its input")
        stats["seconds"] = seconds
        stats["counters"] = {k: v for k, v in rust.get("counters", {}).items() if isinstance(v, int)}
        stats["languages"] = {}
        res = {"input": total_in, "output": total_out, "stages": {stage.name: stats}, "skipped": skipped}
        _write_json(marker, res)
        shutil.rmtree(tmp)
        return res

    # --- the report ----------------------------------------------------------------------------

    def _report(
        self,
        files: list[str],
        steps: list[_Step],
        results: list[dict[str, Any]],
        unit: str,
        seconds: float,
    ) -> dict[str, Any]:
        from tamis import __version__

        cfg = self.config
        by_name: dict[str, dict[str, Any]] = {}
        for r in results:
            by_name.update(r["stages"])
        stages = []
        languages: dict[str, dict[str, int]] = {}
        for s in cfg.stages:
            entry: dict[str, Any] = {
                "name": s.name,
                "type": s.type,
                "scope": "global" if s.type in GLOBAL_STAGES else "shard",
            }
            if s.note:
                entry.update(status="skipped", note=s.note)
                stages.append(entry)
                continue
            st = by_name[s.name]
            entry["status"] = "ran"
            for k in (
                "documents_in",
                "documents_out",
                "tokens_in",
                "tokens_out",
                "bytes_in",
                "bytes_out",
                "modified",
            ):
                entry[k] = st[k]
            entry["dropped"] = dict(sorted(st["dropped"].items()))
            entry["counters"] = dict(sorted(st["counters"].items()))
            entry["seconds"] = round(st["seconds"], 3)
            entry["docs_per_second"] = (
                round(st["documents_in"] / st["seconds"], 1) if st["seconds"] > 0 else None
            )
            entry["examples"] = st["examples"]
            for lang, (seen, kept) in st["languages"].items():
                d = languages.setdefault(lang, {"documents": 0, "kept": 0})
                d["documents"] += seen
                d["kept"] += kept
            stages.append(entry)
        first, last = results[0], results[-1]
        funnel = [
            {"stage": "input", "documents": first["input"]["documents"], "tokens": first["input"]["tokens"]}
        ]
        for e in stages:
            if e["status"] == "ran":
                funnel.append(
                    {"stage": e["name"], "documents": e["documents_out"], "tokens": e["tokens_out"]}
                )
        notes = [f"{e['name']}: {e['note']}" for e in stages if e["status"] == "skipped"]
        out_dir = self.out / "data"
        return {
            "tamis_version": __version__,
            "config": cfg.as_dict(),
            "inputs": files,
            "shards": len(files),
            "records_skipped": first.get("skipped", 0),
            "token_unit": unit,
            "stages": stages,
            "funnel": funnel,
            "histograms": {
                "unit": unit,
                "edges": HIST_EDGES,
                "before": first["input"]["histogram"],
                "after": last["output"]["histogram"],
            },
            "languages": dict(sorted(languages.items(), key=lambda kv: (-kv[1]["documents"], kv[0]))),
            "notes": notes,
            "output": {
                "dir": os.fspath(out_dir),
                "files": [os.fspath(out_dir / self._shard_name(i, True)) for i in range(len(files))],
                "documents": last["output"]["documents"],
                "tokens": last["output"]["tokens"],
            },
            "seconds": round(seconds, 3),
        }


def filter_files(
    stage: dict[str, Any], inputs: Sequence[str], output: str, *, text_key: str = "text"
) -> dict[str, Any]:
    """Run one per-shard stage (``language`` or ``quality``) over files into one output file;
    returns its stats (``tamis filter language|quality``)."""
    cfg = parse_config({"inputs": list(inputs), "output": ".", "text_key": text_key, "stage": [stage]})
    st = _PER_SHARD[cfg.stages[0].type](cfg.stages[0], cfg)
    tokens = _Tokens(None)
    stats = _new_stage_stats()
    kept: list[dict[str, Any]] = []
    for path in expand_inputs(cfg.inputs):
        records, _ = _read_input(path, text_key, "fail")
        texts = [r[text_key] for r in records]
        t0 = time.perf_counter()
        outcome = st.process(records, texts) if records else Outcome([], [])
        stats["seconds"] += time.perf_counter() - t0
        recs, _, _ = _apply_outcome(
            cfg.stages[0], records, texts, tokens.count(texts), outcome, stats, tokens, text_key, "id", 0
        )
        kept += recs
    from tamis.prox_infer import write_records

    write_records(output, kept)
    return {
        "documents": stats["documents_in"],
        "kept": stats["documents_out"],
        "dropped": stats["dropped"],
        "languages": {k: v[0] for k, v in sorted(stats["languages"].items())},
        "seconds": round(stats["seconds"], 3),
        "docs_per_second": round(stats["documents_in"] / stats["seconds"], 1)
        if stats["seconds"] > 0
        else None,
    }


# --------------------------------------------------------------------------------------------
# The `tamis refine` command


def cli_refine(argv: Sequence[str]) -> int:
    """``tamis refine CONFIG.toml`` or ``tamis refine INPUT... -o OUTDIR``; returns the exit code."""
    import argparse

    p = argparse.ArgumentParser(
        prog="tamis refine",
        description="Refine a corpus end to end (dedup, fastText filters, ProX) and write a report. "
        "Resumable: re-running the same command skips finished shards.",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="a CONFIG.toml, or input files/directories/globs"
    )
    p.add_argument("-o", "--output", help="output directory (required without a config)")
    p.add_argument(
        "--stages", default=None, help=f"comma-separated stages (default: {','.join(DEFAULT_STAGES)})"
    )
    p.add_argument(
        "--languages", default="", help="keep these languages, e.g. en,fr (default: annotate only)"
    )
    p.add_argument("--min-score", type=float, default=None)
    p.add_argument("--quality-model", default=None, help="a fastText classifier: adds a quality stage")
    p.add_argument("--keep-label", default="hq")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--prox-doc-model", default=None)
    p.add_argument("--prox-chunk-model", default=None)
    p.add_argument("--text-key", default="text")
    p.add_argument("--id-key", default="id")
    p.add_argument("--compression", default="gzip", choices=tuple(COMPRESSION))
    p.add_argument("--on-error", default="fail", choices=("fail", "skip"))
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--restart", action="store_true", help="discard a previous run in the output directory")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(list(argv))
    try:
        if len(a.inputs) == 1 and a.inputs[0].endswith(".toml"):
            pipe = Pipeline.from_config(a.inputs[0], output=a.output)
        else:
            if not a.output:
                p.error("give a CONFIG.toml, or INPUT... -o OUTDIR")
            pipe = Pipeline.from_args(
                a.inputs,
                a.output,
                stages=[s for s in a.stages.split(",") if s] if a.stages is not None else None,
                languages=[x for x in a.languages.split(",") if x],
                min_score=a.min_score,
                quality_model=a.quality_model,
                keep_label=a.keep_label,
                threshold=a.threshold,
                prox_doc_model=a.prox_doc_model,
                prox_chunk_model=a.prox_chunk_model,
                text_key=a.text_key,
                id_key=a.id_key,
                compression=a.compression,
                on_error=a.on_error,
                threads=a.threads,
            )
        if not a.quiet:
            pipe.progress = lambda msg: print(f"tamis refine: {msg}", file=sys.stderr)
        report = pipe.run(restart=a.restart)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError, ImportError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not a.quiet:
        print(summary(report, pipe.out))
    return 0


def summary(report: dict[str, Any], out: Path) -> str:
    """A plain-text summary of a report."""
    unit = report["token_unit"]
    lines = [f"tamis refine: {report['shards']} shards -> {out}"]
    first = report["funnel"][0]
    lines.append(f"  {'input':<14} {first['documents']:>9} documents {first['tokens']:>11} {unit}")
    for e in report["stages"]:
        if e["status"] == "skipped":
            lines.append(f"  {e['name']:<14} {e['note']}")
            continue
        dropped = ", ".join(f"{k} {v}" for k, v in e["dropped"].items()) or "none dropped"
        rate = f"{e['docs_per_second']:.0f} docs/s" if e["docs_per_second"] else ""
        lines.append(
            f"  {e['name']:<14} {e['documents_out']:>9} documents {e['tokens_out']:>11} {unit}  "
            f"({dropped}; {e['modified']} modified; {rate})"
        )
    lines.append(f"  report         {out / 'report.html'} and report.json")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_STAGES",
    "STAGE_PARAMS",
    "STAGE_TYPES",
    "Config",
    "ConfigError",
    "Pipeline",
    "StageConfig",
    "cli_refine",
    "expand_inputs",
    "filter_files",
    "load_toml",
    "parse_config",
    "summary",
]
