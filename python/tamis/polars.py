"""polars integration: importing this module registers a ``tamis`` namespace.

- ``pl.col("text").tamis.hash(normalize=...)``: elementwise 16-byte XXH3-128 content hash
  (``pl.Binary``), equal for equal normalized texts.
- ``pl.col("text").tamis.is_first(normalize=...)``: ``True`` for the first occurrence of each
  normalized text in frame order (a whole-column operation, never elementwise).
- ``pl.col("text").tamis.token_count(tokenizer)``: elementwise number of tokens (``pl.UInt32``)
  of each text under a tokenizer (a ``tokenizer.json`` path or a ``tokenizers.Tokenizer``),
  counted in parallel in Rust; for corpus statistics such as tokens per character.
- ``df.tamis.exact_dedup("text")`` / ``lf.tamis.exact_dedup("text")`` and
  ``lf.pipe(tamis.polars.exact_dedup, column="text")``: keep first occurrences, in order.

Columns cross into Rust through the Arrow C stream interface; nothing is converted row by row.
Null texts are not documents: they are always kept.
"""

from __future__ import annotations

from typing import Any, TypeVar

import polars as pl

from tamis import _core
from tamis.text import Normalize
from tamis.vocab import _tokenizer_json

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def _hash_series(s: pl.Series, normalize: Normalize) -> pl.Series:
    return pl.Series(_core.hash_texts(s, normalize=normalize)).alias(s.name)


def _is_first_series(s: pl.Series, normalize: Normalize) -> pl.Series:
    return pl.Series(_core.exact_keep_mask_arrow(s, normalize=normalize)).alias(s.name)


@pl.api.register_expr_namespace("tamis")
class TamisExpr:
    """``pl.col(...).tamis``: tamis operations on string expressions."""

    def __init__(self, expr: pl.Expr) -> None:
        self._expr = expr

    def hash(self, normalize: Normalize = "none") -> pl.Expr:
        """16-byte content hash of each (normalized) text; nulls stay null."""
        return self._expr.map_batches(
            lambda s: _hash_series(s, normalize), return_dtype=pl.Binary, is_elementwise=True
        )

    def is_first(self, normalize: Normalize = "none") -> pl.Expr:
        """``True`` for the first occurrence of each normalized text, in frame order."""
        return self._expr.map_batches(lambda s: _is_first_series(s, normalize), return_dtype=pl.Boolean)

    def token_count(self, tokenizer: Any, *, threads: int = 0) -> pl.Expr:
        """Number of tokens of each text (no special tokens added); nulls stay null.

        ``tokenizer`` is a path to a ``tokenizer.json`` or a ``tokenizers.Tokenizer``; it is read
        once, when the expression is built.
        """
        tok, _ = _tokenizer_json(tokenizer, "tokenizer")

        def count(s: pl.Series) -> pl.Series:
            return pl.Series(_core.token_counts_arrow(s, tok, threads=threads)).alias(s.name)

        return self._expr.map_batches(count, return_dtype=pl.UInt32, is_elementwise=True)


def exact_dedup(frame: Frame, column: str = "text", *, normalize: Normalize = "none") -> Frame:
    """Keep the first occurrence of each normalized ``column`` value, preserving row order.

    Works on a DataFrame or a LazyFrame (for ``lf.pipe(tamis.polars.exact_dedup, column=...)``);
    the result is the same kind of frame. Same kept rows as ``tamis dedup exact`` over the rows in
    the same order.
    """
    return frame.filter(TamisExpr(pl.col(column)).is_first(normalize=normalize))


@pl.api.register_dataframe_namespace("tamis")
class TamisFrame:
    """``df.tamis``: whole-frame tamis operations."""

    def __init__(self, df: pl.DataFrame) -> None:
        self._df = df

    def exact_dedup(self, column: str = "text", *, normalize: Normalize = "none") -> pl.DataFrame:
        """See :func:`tamis.polars.exact_dedup`."""
        return exact_dedup(self._df, column, normalize=normalize)


@pl.api.register_lazyframe_namespace("tamis")
class TamisLazyFrame:
    """``lf.tamis``: whole-frame tamis operations."""

    def __init__(self, lf: pl.LazyFrame) -> None:
        self._lf = lf

    def exact_dedup(self, column: str = "text", *, normalize: Normalize = "none") -> pl.LazyFrame:
        """See :func:`tamis.polars.exact_dedup`."""
        return exact_dedup(self._lf, column, normalize=normalize)


__all__ = ["TamisExpr", "TamisFrame", "TamisLazyFrame", "exact_dedup"]
