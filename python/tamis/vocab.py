"""Tokenizer vocabulary extension for a new language (continued BPE), and the tokenizer report.

``extend`` adds target-language tokens to a BPE ``tokenizer.json`` (byte-level like GPT-2 and
Llama-3, or SentencePiece-style with byte fallback like Llama-2 and Mistral) by continued BPE:
the corpus is read in the base tokenizer's own words, segmented by its merges, and new merges are
learned from that state and appended after every existing id and merge. Old ids never change,
and old text keeps its encoding except where a new merge's pair meets (``protect=`` rules even
that out for the text given). ``stats`` measures tokenizers side by side.

Tokenizers are given as paths to ``tokenizer.json`` files or as ``tokenizers.Tokenizer`` objects
(``transformers`` fast tokenizers work too, through ``backend_tokenizer``). The work runs in Rust
with the GIL released. See docs/vocab.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tamis import _core
from tamis._options import build, default, to_json

OnError = Literal["fail", "skip"]
PathLike = str | os.PathLike[str]


def _error(message: str, kind: str) -> _core.TamisError:
    err = _core.TamisError(message)
    err.kind = kind
    return err


def _tokenizer_json(tokenizer: Any, what: str) -> tuple[str, str]:
    """(JSON text, name for messages) of a path, a ``tokenizers.Tokenizer`` or a fast tokenizer."""
    if isinstance(tokenizer, (str, os.PathLike)):
        path = os.fspath(tokenizer)
        try:
            with open(path, encoding="utf-8") as f:
                return f.read(), path
        except UnicodeDecodeError as e:
            raise _error(f"{path}: not a valid tokenizer.json: not UTF-8 text", "invalid_tokenizer") from e
        except OSError as e:
            raise _error(f"{path}: {e.strerror or e}", "io") from e
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if hasattr(backend, "to_str"):
        text: str = backend.to_str()
        return text, f"<{what}>"
    raise TypeError(
        f"{what}: expected a path to tokenizer.json or a tokenizers.Tokenizer, got {type(tokenizer).__name__}"
    )


def _paths(inputs: PathLike | Sequence[PathLike] | None) -> list[str]:
    if inputs is None:
        return []
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    return [os.fspath(p) for p in inputs]


def _write_atomic(path: PathLike, text: str) -> None:
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


@dataclass(frozen=True)
class Extended:
    """An extended tokenizer: its ``tokenizer.json`` text, what was done, and the report."""

    json: str
    """The new ``tokenizer.json``: the base file with vocab entries and merges appended."""
    summary: dict[str, Any]
    """New tokens, characters and merges added, ids, embedding rows, why learning stopped."""
    report: dict[str, Any] | None
    """The tokenizer report comparing the base and the result (when asked for)."""

    def tokenizer(self) -> Any:
        """The result as a ``tokenizers.Tokenizer`` (needs the ``tokenizers`` package)."""
        from tokenizers import Tokenizer

        return Tokenizer.from_str(self.json)

    def save(self, path: PathLike) -> None:
        """Write the ``tokenizer.json`` atomically."""
        _write_atomic(path, self.json)


@dataclass(frozen=True)
class Report:
    """The tokenizer report: ``data`` is the JSON report, ``summary`` the side-by-side table."""

    data: dict[str, Any]
    summary: str

    def __str__(self) -> str:
        return self.summary


@dataclass(frozen=True)
class ExtendOptions:
    """Options of a vocabulary extension (``tamis_core::vocab::ExtendOptions``)."""

    new_tokens: int | None = default("extend", "new_tokens")
    min_frequency: int = default("extend", "min_frequency")
    char_coverage: float = default("extend", "char_coverage")
    pad_to_multiple_of: int | None = default("extend", "pad_to_multiple_of")
    protect: list[str] = default("extend", "protect")
    target: Literal["auto", "all"] = default("extend", "target")
    scripts: list[str] = default("extend", "scripts")
    reference: list[str] = default("extend", "reference")
    reference_ratio: float = default("extend", "reference_ratio")
    text_key: str = default("extend", "text_key")
    on_error: OnError = default("extend", "on_error")
    threads: int = default("extend", "threads")


@dataclass(frozen=True)
class StatsOptions:
    """Options of the tokenizer report (``tamis_core::vocab::StatsOptions``)."""

    protect: list[str] = default("stats", "protect")
    examples: int = default("stats", "examples")
    text_key: str = default("stats", "text_key")
    on_error: OnError = default("stats", "on_error")
    threads: int = default("stats", "threads")


def extend(
    tokenizer: Any,
    corpus: PathLike | Sequence[PathLike] | None = None,
    output: PathLike | None = None,
    options: ExtendOptions | None = None,
    *,
    merge_from: Any = None,
    report: PathLike | bool = False,
    heldout: PathLike | Sequence[PathLike] | None = None,
    **kwargs: Any,
) -> Extended:
    """Add up to ``new_tokens`` tokens learned from ``corpus`` (files: JSONL, Parquet or ``.txt``).

    ``merge_from`` appends another BPE tokenizer's merges first (old merges keep priority; tokens
    the old merges never form are counted in ``summary["merge_from"]`` and left out).
    ``protect``: old-language text whose ids must not change. ``target="auto"`` (the default)
    learns merges only where the new language is: inside words of the scripts the base covers
    poorly (detected, or ``scripts=["Han", ...]``), and only pairs at least ``reference_ratio``
    times more frequent than in ``reference`` (files; default a built-in English word list);
    ``summary["selection"]`` says what was chosen. ``target="all"``: every word.
    ``report``: ``True`` to compute the
    report (on ``heldout``, default the corpus, and ``protect``), or a path to also write it as
    JSON. The result is written to ``output`` (atomically) when given; on error nothing is
    written and :class:`tamis.TamisError` is raised (``.kind``: ``unsupported_model``,
    ``bpe_dropout``, ``invalid_tokenizer``, ``empty_corpus``, ...). Keywords:
    :class:`ExtendOptions` fields.
    """
    base, base_name = _tokenizer_json(tokenizer, "tokenizer")
    other = _tokenizer_json(merge_from, "merge_from") if merge_from is not None else None
    for key in ("protect", "reference"):
        if key in kwargs:
            kwargs[key] = _paths(kwargs[key])
    o = to_json(build(ExtendOptions, options, kwargs))
    new_json, summary, report_json = _core.vocab_extend(
        (base_name, base),
        _paths(corpus),
        o,
        (other[1] or "<merge_from>", other[0]) if other is not None else None,
        _paths(heldout) if report is not False else None,
    )
    if output is not None:
        _write_atomic(output, new_json)
    if report is not False and report is not True and report_json is not None:
        _write_atomic(report, report_json + "\n")
    return Extended(
        json=new_json,
        summary=json.loads(summary),
        report=json.loads(report_json) if report_json is not None else None,
    )


def stats(
    tokenizer: Any,
    corpus: PathLike | Sequence[PathLike],
    options: StatsOptions | None = None,
    *,
    baseline: Any = None,
    **kwargs: Any,
) -> Report:
    """Measure ``tokenizer`` on ``corpus`` (target text), side by side with ``baseline``.

    Tokens per character and per word, bytes per token, words split into 2+ tokens, round trips;
    with a baseline also new-token use and reachability, and with ``protect`` the share of
    protected documents whose ids are unchanged, with examples of changes and their cause.
    Keywords: :class:`StatsOptions` fields.
    """
    tok, tok_name = _tokenizer_json(tokenizer, "tokenizer")
    base = _tokenizer_json(baseline, "baseline") if baseline is not None else None
    if "protect" in kwargs:
        kwargs["protect"] = _paths(kwargs["protect"])
    data, summary = _core.vocab_stats(
        (tok_name, tok),
        _paths(corpus),
        to_json(build(StatsOptions, options, kwargs)),
        (base[1] or "<baseline>", base[0]) if base is not None else None,
    )
    return Report(data=json.loads(data), summary=summary)


def token_counts(texts: Any, tokenizer: Any, *, threads: int = 0) -> Any:
    """Tokens per text (no special tokens added); nulls stay null.

    ``texts`` is a polars Series, a pyarrow array or a list of str (the result has the same kind).
    """
    from tamis._arrow import like_input, to_arrow

    tok, _ = _tokenizer_json(tokenizer, "tokenizer")
    return like_input(_core.token_counts_arrow(to_arrow(texts), tok, threads=threads), texts)


__all__ = ["ExtendOptions", "Extended", "Report", "StatsOptions", "extend", "stats", "token_counts"]
