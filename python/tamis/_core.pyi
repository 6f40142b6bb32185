"""The compiled part of tamis (Rust, PyO3). Every function releases the GIL while it works."""

from typing import Any, Final

__all__ = [
    "RECORD_ERROR_KINDS",
    "TamisError",
    "__version__",
    "dedup_exact",
    "dedup_lines",
    "exact_keep_mask_arrow",
    "hash_texts",
    "main",
    "prox_chunks",
    "prox_doc_prompts",
    "prox_execute_arrow",
    "prox_execute_list",
    "prox_explain",
    "prox_render",
]

__version__: Final[str]
RECORD_ERROR_KINDS: Final[list[str]]

class TamisError(ValueError):
    """A tamis error; ``kind`` is a stable snake_case slug (``invalid_json``, ``io``, ...).

    Record errors also carry ``path`` (the file) and ``location`` (``"line 3"`` or ``"row 3"``).
    """

    kind: str
    path: str
    location: str

def main(argv: list[str]) -> int:
    """Run the ``tamis`` command line with ``argv`` (program name first); returns the exit code."""

def dedup_exact(
    inputs: list[str],
    output: str,
    *,
    normalize: str = "none",
    key: str | None = None,
    text_key: str = "text",
    id_key: str = "id",
    on_error: str = "fail",
    rejects: str | None = None,
    threads: int = 0,
) -> str:
    """Exact dedup over files; returns the run statistics as JSON."""

def dedup_lines(
    inputs: list[str],
    output: str,
    *,
    max_occurrences: int = 1,
    min_line_chars: int = 0,
    normalize: str = "none",
    text_key: str = "text",
    id_key: str = "id",
    on_error: str = "fail",
    rejects: str | None = None,
    threads: int = 0,
) -> str:
    """Line dedup over files; returns the run statistics as JSON."""

def hash_texts(texts: Any, *, normalize: str = "none", threads: int = 0) -> Any:
    """16-byte big-endian XXH3-128 hashes of an Arrow string array or stream (Arrow chunked array)."""

def exact_keep_mask_arrow(texts: Any, *, normalize: str = "none", threads: int = 0) -> Any:
    """Keep mask of exact dedup (first occurrences true, nulls kept) as an Arrow chunked array."""

def prox_execute_list(
    level: str,
    texts: list[str],
    programs: list[str],
    mode: str,
    accept: tuple[int, float, float, int],
    threads: int = 0,
) -> list[str]:
    """Run ProX programs (``level`` ``doc`` or ``chunk``) over lists; ``accept`` is
    ``(min_words, min_keep_ratio, min_edit_ratio, max_errors)``."""

def prox_execute_arrow(
    level: str,
    texts: Any,
    programs: Any,
    mode: str,
    accept: tuple[int, float, float, int],
    threads: int = 0,
) -> Any:
    """Run ProX programs over Arrow string arrays (Arrow chunked array; nulls give nulls)."""

def prox_explain(
    level: str, text: str, program: str, mode: str, accept: tuple[int, float, float, int]
) -> str:
    """What a program did, as JSON."""

def prox_chunks(
    texts: list[str],
    tokenizer_source: str,
    is_json: bool,
    chunk: tuple[int, int, bool, str, str],
    prompt_template: tuple[str, str, str, str, bool] | None = None,
    threads: int = 0,
) -> list[list[str]]:
    """Numbered chunk bodies of each text, or their rendered prompts when a template is given."""

def prox_doc_prompts(
    texts: list[str],
    tokenizer_source: str,
    is_json: bool,
    max_tokens: int,
    prompt_template: tuple[str, str, str, str, bool],
    threads: int = 0,
) -> list[tuple[list[int], str, bool]]:
    """Document-stage prompts: ``(token ids, text, truncated)`` for each text."""

def prox_render(user: str, prompt_template: tuple[str, str, str, str, bool]) -> str:
    """Render one prompt with a template ``(prefix, content, suffix, system, strip_content)``."""
