"""Text normalization and 128-bit content hashes (XXH3-128), computed in Rust.

Normalization modes (exact definitions in docs/normalization.md): ``"none"``, ``"whitespace"``
(runs of white space to one space, trimmed) and ``"simple"`` (NFKC, lowercase, decimal digits to
``0``, punctuation removed, then ``"whitespace"``).
"""

from __future__ import annotations

from typing import Any, Literal

from tamis import _core
from tamis._arrow import like_input, to_arrow
from tamis._options import to_json
from tamis.dedup import ExactOptions

Normalize = Literal["none", "whitespace", "simple"]


def hash(texts: Any, *, normalize: Normalize = "none", threads: int = 0) -> Any:  # noqa: A001
    """Hash each text to 16 big-endian bytes; nulls stay null.

    ``texts`` is a polars Series, a pyarrow array or a list of str; the result has the same kind
    (a list of ``bytes`` for a list). Equal hashes mean equal normalized texts (XXH3-128).
    """
    options = to_json(ExactOptions(normalize=normalize))
    return like_input(_core.hash_texts(to_arrow(texts), options, threads), texts)


__all__ = ["Normalize", "hash"]
