"""polars integration: importing this module registers a ``tamis`` namespace.

- ``pl.col("text").tamis.hash(normalize=...)``: elementwise 16-byte XXH3-128 content hash
  (``pl.Binary``), equal for equal normalized texts.
- ``pl.col("text").tamis.is_first(normalize=...)``: ``True`` for the first occurrence of each
  normalized text in frame order (a whole-column operation, never elementwise).
- ``df.tamis.exact_dedup("text")`` / ``lf.tamis.exact_dedup("text")`` and
  ``lf.pipe(tamis.polars.exact_dedup, column="text")``: keep first occurrences, in order.

- ``pl.col("text").tamis.prox_execute(pl.col("program"), mode="compat")``: run ProX programs
  (``level="chunk"``, the default, or ``"doc"``); ``""`` means dropped; a null text or program
  gives null. Same results as :func:`tamis.prox.execute_chunk` and ``tamis prox apply``.

Columns cross into Rust through the Arrow C stream interface; nothing is converted row by row.
Null texts are not documents: they are always kept.
"""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from tamis import _core
from tamis.prox import DEFAULT, Acceptance, Level, Mode
from tamis.text import Normalize

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

    def prox_execute(
        self,
        program: pl.Expr | str,
        mode: Mode = "compat",
        *,
        level: Level = "chunk",
        accept: Acceptance = DEFAULT,
    ) -> pl.Expr:
        """Run the ProX program of each row (a column name or expression) over this text column:
        the edited or original text, ``""`` when dropped, null when text or program is null."""
        program_expr = pl.col(program) if isinstance(program, str) else program
        return pl.map_batches(
            [self._expr, program_expr],
            lambda cols: _prox_series(cols[0], cols[1], level, mode, accept),
            return_dtype=pl.String,
            is_elementwise=True,
        )


def _prox_series(
    texts: pl.Series, programs: pl.Series, level: Level, mode: Mode, accept: Acceptance
) -> pl.Series:
    out = _core.prox_execute_arrow(level, texts, programs, mode, accept._args())
    return pl.Series(out).alias(texts.name)


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
