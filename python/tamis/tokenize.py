"""Tokenization into training shards (``tamis tokenize``; ``tamis_core::tokenize``).

Documents are encoded in Rust with the ``tokenizers`` library (exactly its ``encode`` ids) and
written as Megatron-LM indexed datasets (``.bin`` + ``.idx``), datatrove/nanotron files (``.ds``,
``.ds.index``, ``.ds.metadata``) or numpy arrays (``.npy``), in shards cut on document
boundaries, with a manifest. Re-running the same call resumes after the finished shards::

    manifest = tamis.tokenize.tokenize("refined/", "shards/", "tokenizer.json", format="megatron")
    print(manifest["tokens"], [s["name"] for s in manifest["shards"]])

Formats, the BOS/EOS policy and the manifest are described in docs/tokenize.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tamis import _core
from tamis._options import IoOptions, build, default, split, to_json

Format = Literal["megatron", "nanotron", "numpy"]
Dtype = Literal["auto", "uint16", "uint32"]
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class TokenizeOptions:
    """``tamis_core::tokenize::TokenizeOptions``: the shard ``format``; ``bos`` / ``eos``
    (``None``: as the tokenizer's post-processor does, plus its end-of-text token as EOS when
    the post-processor adds none); ``bos_token`` / ``eos_token`` to name them; ``shuffle`` the
    documents inside each shard with ``seed``; ``max_shard_tokens`` per shard; the id
    ``dtype`` (``auto``: uint16 when every id is below 65,536)."""

    format: Format = default("tokenize", "format")
    bos: bool | None = default("tokenize", "bos")
    eos: bool | None = default("tokenize", "eos")
    bos_token: str | None = default("tokenize", "bos_token")
    eos_token: str | None = default("tokenize", "eos_token")
    shuffle: bool = default("tokenize", "shuffle")
    seed: int = default("tokenize", "seed")
    max_shard_tokens: int = default("tokenize", "max_shard_tokens")
    dtype: Dtype = default("tokenize", "dtype")


def tokenize(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    tokenizer: PathLike,
    options: TokenizeOptions | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Tokenize ``inputs`` (JSONL, .gz, .zst, Parquet files, directories or globs) with the
    ``tokenizer.json`` at ``tokenizer`` into shards in the directory ``output``. Keywords are
    fields of :class:`TokenizeOptions` or :class:`tamis.IoOptions` (``text_key``, ``on_error``,
    ``rejects``, ``threads``). Returns the manifest (also written to ``output/manifest.json``):
    documents and tokens per input and per shard, the tokenizer's hash, BOS/EOS and options."""
    own, io = split(kwargs, TokenizeOptions, IoOptions)
    paths = [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(p) for p in inputs]
    raw = _core.tokenize(
        paths,
        os.fspath(output),
        os.fspath(tokenizer),
        to_json(build(TokenizeOptions, options, own)),
        to_json(build(IoOptions, None, io)),
    )
    manifest: dict[str, Any] = json.loads(raw)
    return manifest


__all__ = ["TokenizeOptions", "tokenize"]
