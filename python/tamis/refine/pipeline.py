"""The :class:`Pipeline` of ``tamis refine`` from Python: the configuration is checked by the
Rust core, which reads, refines and writes every record; the fastText and torch stages run here
(:mod:`tamis.refine.stages`), on batches of texts."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tamis import _core
from tamis._options import IoOptions, build, dumps, to_json
from tamis.refine.stages import PythonStages

PathLike = str | os.PathLike[str]


class Pipeline:
    """A checked, resumable refinement; :meth:`run` it.

    ``config`` is the configuration as plain data, with paths made absolute; :attr:`config`
    (checked with the stages' resources: packages, models) also says which stages are skipped
    and why. Every configuration error is a :class:`tamis.ConfigError` raised before any work.
    """

    def __init__(self, raw: dict[str, Any], base_dir: PathLike = ".", *, stages: Any = None) -> None:
        self._raw = dumps(raw)
        self._base = os.fspath(base_dir)
        self._stages = stages if stages is not None else PythonStages(threads=int(raw.get("threads", 0) or 0))
        # Checked now: a bad configuration fails here, before any work.
        self.config: dict[str, Any] = json.loads(_core.refine_check(self._raw, self._base, self._stages))

    @classmethod
    def from_config(
        cls,
        config: PathLike | dict[str, Any],
        *,
        output: PathLike | None = None,
        base_dir: PathLike | None = None,
    ) -> Pipeline:
        """From a TOML file or an already parsed dict (relative paths: against the file's
        directory, or ``base_dir`` / the current directory for a dict); ``output`` overrides
        the configuration's."""
        if isinstance(config, dict):
            raw = dict(config)
            if output is not None:
                raw["output"] = os.fspath(Path(output).resolve())
            return cls(raw, base_dir if base_dir is not None else Path.cwd())
        out = os.fspath(Path(output).resolve()) if output is not None else None
        checked = json.loads(_core.refine_config_file(os.fspath(config), out))
        return cls(checked, "/")

    @classmethod
    def from_args(cls, inputs: Sequence[PathLike], output: PathLike, **options: Any) -> Pipeline:
        """The defaults of ``tamis refine INPUT... -o OUTDIR``: exact dedup (white space
        normalized), language ID (filtering when ``languages`` is given), a quality filter when
        ``quality_model`` is given, line dedup, near dedup, and the ProX stages when their models
        are found. ``options``: ``stages``, ``languages``, ``min_score``, ``quality_model``,
        ``keep_label``, ``threshold``, ``prox_doc_model``, ``prox_chunk_model``, ``text_key``,
        ``id_key``, ``compression``, ``on_error``, ``threads``."""
        quick = {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in options.items()}
        if "stages" in quick and quick["stages"] is not None:
            quick["stages"] = list(quick["stages"])
        if "languages" in quick:
            quick["languages"] = list(quick["languages"])
        raw = json.loads(
            _core.refine_quick_config([os.fspath(p) for p in inputs], os.fspath(output), dumps(quick))
        )
        return cls(raw, Path.cwd())

    @property
    def out(self) -> Path:
        """The output directory."""
        return Path(self.config["output"])

    def run(self, *, restart: bool = False) -> dict[str, Any]:
        """Run (or resume) the refinement; returns the report (also written to ``report.json``
        and ``report.html`` in the output directory). ``restart`` discards a previous run."""
        report: dict[str, Any] = json.loads(
            _core.refine_run(self._raw, self._base, self._stages, restart=restart)
        )
        return report


def summary(report: dict[str, Any]) -> str:
    """A plain-text summary of a report, one line per stage."""
    return _core.refine_summary(json.dumps(report))


def run_stages(
    stages: Sequence[dict[str, Any]],
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    io: IoOptions | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run Python-run stages (``[{"type": "language", ...}]``) over files into one output file,
    as ``tamis filter language|quality`` does: records are read and written in Rust. Returns
    ``{"stats": run statistics, "stages": {name: counts}}``."""
    paths = [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(p) for p in inputs]
    o = build(IoOptions, io, kwargs)
    result: dict[str, Any] = json.loads(
        _core.run_stages(paths, os.fspath(output), dumps(list(stages)), to_json(o), PythonStages(o.threads))
    )
    return result


__all__ = ["Pipeline", "run_stages", "summary"]
