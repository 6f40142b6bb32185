"""ProX ("Programming Every Example"): run the programs that ProX refining models write, and
format the prompts those models read.

Programs are parsed in Rust, never evaluated. ``mode="compat"`` (the default) returns exactly
what the reference executor returns, quirks included, so released ProX corpora can be
reproduced; ``mode="strict"`` is a real parser (keyword or positional arguments, quoted strings
with escapes) that reports malformed lines. See ``docs/prox.md``.

- :func:`execute_doc` / :func:`execute_chunk`: one document; ``""`` means dropped.
- :func:`execute_docs` / :func:`execute_chunks`: many at once (lists, or Arrow arrays / polars
  Series, which cross into Rust without per-row conversion), in parallel with the GIL released.
- :func:`explain`: lines removed, replacements made, errors, and why the document was kept,
  edited or dropped.
- :func:`split_chunks`, :func:`chunk_prompts`, :func:`doc_prompt`, :func:`join_programs`:
  byte-compatible prompt formatting for the released refining models.
- :class:`Refiner`: run the refining models themselves (``pip install 'tamis[prox]'``; defined in
  :mod:`tamis.prox_infer`, imported on first use so that ``import tamis`` never needs torch).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tamis import _core
from tamis._arrow import like_input
from tamis._options import argument, default, to_json

Mode = Literal["compat", "strict"]
Level = Literal["doc", "chunk"]


@dataclass(frozen=True)
class Acceptance:
    """The rule applied after a chunk program ran (``tamis_core::prox::Acceptance``; see
    ``docs/prox.md``). Defaults: the reference.

    - drop when ``words_after / words_before <= min_keep_ratio`` and errors ``<= max_errors``;
    - drop when fewer than ``min_words`` words remain;
    - return the edit when the ratio is ``>= min_edit_ratio`` and errors ``<= max_errors``;
    - otherwise return the original text.
    """

    min_keep_ratio: float = default("acceptance", "min_keep_ratio")
    min_edit_ratio: float = default("acceptance", "min_edit_ratio")
    min_words: int = default("acceptance", "min_words")
    max_errors: int = default("acceptance", "max_errors")

    def _args(self) -> str:
        return to_json(self)


@dataclass(frozen=True)
class PromptTemplate:
    """``prefix + content + suffix`` with ``{system}`` and ``{user}`` filled into ``content``,
    which is stripped of whitespace when ``strip_content`` (as Llama-2's template does)
    (``tamis_core::prox::prompt::PromptTemplate``; default: Llama-2 chat with ProX's system
    prompt)."""

    prefix: str = default("template", "prefix")
    content: str = default("template", "content")
    suffix: str = default("template", "suffix")
    system: str = default("template", "system")
    strip_content: bool = default("template", "strip_content")

    def render(self, user: str) -> str:
        """The prompt for one user message."""
        return _core.prox_render(user, self._args())

    def _args(self) -> str:
        return to_json(self)


@dataclass(frozen=True)
class ChunkOptions:
    """How documents are cut into chunks of numbered lines and wrapped
    (``tamis_core::prox::chunk::ChunkOptions``; defaults: the reference)."""

    max_tokens: int = default("chunk", "max_tokens")
    number_width: int = default("chunk", "number_width")
    add_special_tokens: bool = default("chunk", "add_special_tokens")
    open: str = default("chunk", "open")
    close: str = default("chunk", "close")

    def _args(self) -> str:
        return to_json(self)


LLAMA2 = PromptTemplate()
"""The Llama-2 chat template with the ProX system prompt (what the released models read)."""
PLAIN = PromptTemplate(prefix="", content="{user}", suffix="", system="", strip_content=False)
"""No template: the user message alone."""

DEFAULT = Acceptance()


def execute_doc(text: str, program: str, mode: Mode = "compat") -> str:
    """Run a document program (``drop_doc()`` / ``keep_doc()``): ``""`` if dropped, else ``text``."""
    return _core.prox_execute_list("doc", [text], [program], mode, DEFAULT._args(), 1)[0]


def execute_chunk(text: str, program: str, mode: Mode = "compat", accept: Acceptance = DEFAULT) -> str:
    """Run a chunk (document-wide) program: the edited text, the original text, or ``""`` if dropped."""
    a = argument("accept", accept, Acceptance)
    return _core.prox_execute_list("chunk", [text], [program], mode, a, 1)[0]


def _execute_many(
    level: Level, texts: Any, programs: Any, mode: Mode, accept: Acceptance, threads: int
) -> Any:
    a = argument("accept", accept, Acceptance)
    if isinstance(texts, list) and isinstance(programs, list):
        return _core.prox_execute_list(level, texts, programs, mode, a, threads)
    result = _core.prox_execute_arrow(level, texts, programs, mode, a, threads)
    return like_input(result, texts)


def execute_docs(texts: Any, programs: Any, mode: Mode = "compat", *, threads: int = 0) -> Any:
    """:func:`execute_doc` over lists (returns a list) or Arrow string arrays / polars Series
    (returns the same kind; nulls give nulls)."""
    return _execute_many("doc", texts, programs, mode, DEFAULT, threads)


def execute_chunks(
    texts: Any, programs: Any, mode: Mode = "compat", accept: Acceptance = DEFAULT, *, threads: int = 0
) -> Any:
    """:func:`execute_chunk` over lists (returns a list) or Arrow string arrays / polars Series
    (returns the same kind; nulls give nulls)."""
    return _execute_many("chunk", texts, programs, mode, accept, threads)


def explain(
    text: str, program: str, *, level: Level = "chunk", mode: Mode = "compat", accept: Acceptance = DEFAULT
) -> dict[str, Any]:
    """What a program did: ``text`` (the result), ``outcome`` (``dropped``, ``edited`` or
    ``original``), ``reason`` (``drop_doc``, ``keep_doc``, ``no_words``, ``too_little_left``,
    ``too_few_words``, ``accepted``, ``too_many_errors``, ``below_edit_ratio``), ``words_before``,
    ``words_after``, ``removed_lines`` (inclusive 0-based ranges), ``replacements`` (source,
    target, count) and ``errors`` (line, source, message)."""
    a = argument("accept", accept, Acceptance)
    result: dict[str, Any] = json.loads(_core.prox_explain(level, text, program, mode, a))
    result["removed_lines"] = [tuple(r) for r in result["removed_lines"]]
    return result


def _tokenizer(tokenizer: Any) -> tuple[str, bool]:
    if isinstance(tokenizer, (str, os.PathLike)):
        return os.fspath(tokenizer), False
    to_str = getattr(tokenizer, "to_str", None)
    if callable(to_str):  # a tokenizers.Tokenizer
        return str(to_str()), True
    raise TypeError(
        f"expected a tokenizer.json path or a tokenizers.Tokenizer, got {type(tokenizer).__name__}"
    )


def _chunk(chunk: ChunkOptions | None, max_tokens: int | None, kwargs: dict[str, Any]) -> ChunkOptions:
    from tamis._options import build

    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    return build(ChunkOptions, chunk, kwargs)


def split_chunks(
    text: str,
    tokenizer: Any,
    max_tokens: int | None = None,
    *,
    chunk: ChunkOptions | None = None,
    **kwargs: Any,
) -> list[str]:
    """The numbered chunk bodies of ``text`` (before wrapping): lines split on ``\\n``, numbered
    ``[000]``, ``[001]``, … document-wide, packed greedily while the sum of per-line token counts
    (``len(tokenizer.encode(numbered_line))``, special tokens included) stays ``<= max_tokens``.

    ``tokenizer`` is a ``tokenizer.json`` path or a ``tokenizers.Tokenizer``; keywords are
    :class:`ChunkOptions` fields."""
    return split_chunks_many([text], tokenizer, max_tokens, chunk=chunk, threads=1, **kwargs)[0]


def split_chunks_many(
    texts: Sequence[str],
    tokenizer: Any,
    max_tokens: int | None = None,
    *,
    chunk: ChunkOptions | None = None,
    threads: int = 0,
    **kwargs: Any,
) -> list[list[str]]:
    """:func:`split_chunks` over many texts, in parallel."""
    source, is_json = _tokenizer(tokenizer)
    o = _chunk(chunk, max_tokens, {**kwargs, "open": "", "close": ""})
    return _core.prox_chunks(list(texts), source, is_json, o._args(), None, threads)


def chunk_prompts(
    text: str,
    tokenizer: Any,
    max_tokens: int | None = None,
    *,
    template: PromptTemplate = LLAMA2,
    chunk: ChunkOptions | None = None,
    **kwargs: Any,
) -> list[str]:
    """The chunk-stage prompts of ``text``: each chunk of :func:`split_chunks` wrapped in
    ``open``/``close`` and rendered with ``template``. An empty text has none."""
    source, is_json = _tokenizer(tokenizer)
    o = _chunk(chunk, max_tokens, kwargs)
    return _core.prox_chunks([text], source, is_json, o._args(), template._args(), 1)[0]


@dataclass(frozen=True)
class DocPrompt:
    """A document-stage prompt: the token ids sent to the model, the text they cover, and
    whether tokens were cut off (the trailing ``[/INST]`` is then gone, as in the reference)."""

    ids: list[int]
    text: str
    truncated: bool


#: Token limit of a document prompt in the reference (right truncation).
DOC_MAX_TOKENS = 2000


def doc_prompt(
    text: str, tokenizer: Any, max_tokens: int = DOC_MAX_TOKENS, *, template: PromptTemplate = LLAMA2
) -> DocPrompt:
    """The document-stage prompt: ``text`` rendered with ``template``, encoded without adding
    special tokens (the template holds the BOS), right-truncated at ``max_tokens`` tokens."""
    source, is_json = _tokenizer(tokenizer)
    ids, rendered, truncated = _core.prox_doc_prompts(
        [text], source, is_json, max_tokens, template._args(), 1
    )[0]
    return DocPrompt(ids=list(ids), text=rendered, truncated=truncated)


def join_programs(outputs: Sequence[str]) -> str:
    """The document program from per-chunk model outputs: each stripped of spaces, joined with
    ``\\n`` in chunk order (as the reference merges them)."""
    return "\n".join(o.strip(" ") for o in outputs)


def __getattr__(name: str) -> Any:
    if name in ("Refiner", "RefineResult", "ProxModelError"):
        from tamis import prox_infer

        return getattr(prox_infer, name)
    raise AttributeError(f"module 'tamis.prox' has no attribute {name!r}")


__all__ = [
    "DEFAULT",
    "LLAMA2",
    "PLAIN",
    "Acceptance",
    "ChunkOptions",
    "DocPrompt",
    "PromptTemplate",
    "chunk_prompts",
    "doc_prompt",
    "execute_chunk",
    "execute_chunks",
    "execute_doc",
    "execute_docs",
    "explain",
    "join_programs",
    "split_chunks",
    "split_chunks_many",
]
