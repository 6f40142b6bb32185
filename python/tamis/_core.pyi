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
