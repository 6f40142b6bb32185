"""Mixing sources to a token budget: new-domain data and replay of general data, in given
proportions, with a small source repeated for up to ``max_epochs`` epochs (``tamis mix``;
``tamis_core::mix``). Documents are written byte for byte with their source's name added as
``metadata.source``; the manifest says what was taken from where::

    manifest = tamis.mix.mix(
        {"zh": ("refined/zh/", 0.75), "en": ("replay/en/", 0.25)},
        "mixed.jsonl.gz",
        tokens=2_000_000_000,
        tokenizer="extended/tokenizer.json",
    )
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tamis import _core
from tamis._options import IoOptions, build, default, dumps, split, to_json

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class MixSource:
    """One source: its ``name`` (written to ``metadata.source``), ``inputs`` (files, directories,
    globs) and ``weight`` (its share of the budget, relative to the other weights)."""

    name: str
    inputs: list[str]
    weight: float


@dataclass(frozen=True)
class MixOptions:
    """``tamis_core::mix::MixOptions``: the ``sources``, the total budget ``tokens``, the
    ``tokenizer`` that counts them (with its special tokens, as training sees them), at most
    ``max_epochs`` readings of a source, and the ``seed`` of the documents a partial epoch
    takes."""

    sources: list[MixSource] = field(default_factory=list)
    tokens: int = default("mix", "tokens")
    tokenizer: PathLike | None = default("mix", "tokenizer")
    max_epochs: int = default("mix", "max_epochs")
    seed: int = default("mix", "seed")


def _sources(sources: Mapping[str, tuple[Any, float]] | Sequence[MixSource]) -> list[MixSource]:
    if isinstance(sources, Mapping):
        out = []
        for name, spec in sources.items():
            if not (isinstance(spec, tuple) and len(spec) == 2):
                raise TypeError(f"source {name!r}: give (inputs, weight), got {spec!r}")
            inputs, weight = spec
            paths = (
                [os.fspath(inputs)]
                if isinstance(inputs, (str, os.PathLike))
                else [os.fspath(p) for p in inputs]
            )
            out.append(MixSource(name, paths, weight))
        return out
    for s in sources:
        if not isinstance(s, MixSource):
            raise TypeError(f"sources must be MixSource objects or a dict, got {type(s).__name__}")
    return list(sources)


def mix(
    sources: Mapping[str, tuple[Any, float]] | Sequence[MixSource],
    output: PathLike,
    options: MixOptions | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Draw documents from ``sources`` (``{name: (inputs, weight)}`` or :class:`MixSource`
    objects) to ``tokens`` tokens in proportion to the weights, into ``output`` (.jsonl, .gz,
    .zst or .parquet). Returns the manifest: per source its documents and tokens, the budget
    asked, what was taken, epochs, shares, and any shortfall (a source that ran out within
    ``max_epochs``).

    Keywords: the fields of :class:`MixOptions` and :class:`tamis.IoOptions`. Deterministic for
    a given seed, whatever ``threads``."""
    mine, io = split(kwargs, MixOptions, IoOptions)
    mine["sources"] = _sources(sources)
    o = build(MixOptions, options, mine)
    payload = {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
    payload["sources"] = [dataclasses.asdict(s) for s in o.sources]
    manifest: dict[str, Any] = json.loads(
        _core.mix(dumps(payload), to_json(IoOptions(**io)), os.fspath(output))
    )
    return manifest


def mix_to_shards(
    sources: Mapping[str, tuple[Any, float]] | Sequence[MixSource],
    outdir: PathLike,
    options: MixOptions | None = None,
    tokenize: Any = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`mix`, writing token shards into the directory ``outdir`` as
    :func:`tamis.tokenize.tokenize` does (``tokenize``: a
    :class:`tamis.tokenize.TokenizeOptions`: format, BOS/EOS, shuffle, shard size); tokens are
    counted with its BOS/EOS policy. Returns ``{"mix": <mix manifest>, "shards": <tokenize
    manifest>}``; both are also in ``outdir`` (``mix.json``, ``manifest.json``)."""
    from tamis._options import argument
    from tamis.tokenize import TokenizeOptions

    mine, io = split(kwargs, MixOptions, IoOptions)
    mine["sources"] = _sources(sources)
    o = build(MixOptions, options, mine)
    payload = {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
    payload["sources"] = [dataclasses.asdict(s) for s in o.sources]
    t = argument("tokenize", tokenize if tokenize is not None else TokenizeOptions(), TokenizeOptions)
    result: dict[str, Any] = json.loads(
        _core.mix_to_shards(dumps(payload), t, to_json(IoOptions(**io)), os.fspath(outdir))
    )
    return result


__all__ = ["MixOptions", "MixSource", "mix", "mix_to_shards"]
