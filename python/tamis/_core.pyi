"""The compiled part of tamis (Rust, PyO3). Every function releases the GIL while it works."""

from typing import Any, Final

__all__ = [
    "RECORD_ERROR_KINDS",
    "TOKENIZER_ERROR_KINDS",
    "TamisError",
    "__version__",
    "dedup_exact",
    "dedup_lines",
    "exact_keep_mask_arrow",
    "hash_texts",
    "main",
    "token_counts_arrow",
    "vocab_extend",
    "vocab_stats",
]

__version__: Final[str]
RECORD_ERROR_KINDS: Final[list[str]]
TOKENIZER_ERROR_KINDS: Final[list[str]]

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

def vocab_extend(
    tokenizer: str,
    tokenizer_name: str,
    corpus: list[str],
    *,
    new_tokens: int | None = None,
    min_frequency: int = 2,
    char_coverage: float = 0.9995,
    merge_from: str | None = None,
    merge_from_name: str = "<merge_from>",
    protect: list[str] = ...,
    pad_to_multiple_of: int | None = None,
    report: bool = False,
    heldout: list[str] = ...,
    text_key: str = "text",
    on_error: str = "fail",
    threads: int = 0,
) -> tuple[str, str, str | None]:
    """Extend a BPE tokenizer (JSON text) by continued BPE; returns (new tokenizer JSON, summary
    JSON, report JSON or None)."""

def vocab_stats(
    tokenizer: str,
    tokenizer_name: str,
    corpus: list[str],
    *,
    baseline: str | None = None,
    baseline_name: str = "<baseline>",
    protect: list[str] = ...,
    examples: int = 20,
    text_key: str = "text",
    on_error: str = "fail",
    threads: int = 0,
) -> tuple[str, str]:
    """The tokenizer report; returns (report JSON, summary text)."""

def token_counts_arrow(texts: Any, tokenizer: str, *, threads: int = 0) -> Any:
    """Tokens per text of an Arrow string array or stream (UInt32; nulls stay null), with the
    tokenizer given as JSON text; no special tokens are added."""
