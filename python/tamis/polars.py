"""polars integration: importing this module registers a ``tamis`` namespace.

- ``pl.col("text").tamis.hash(normalize=...)``: elementwise 16-byte XXH3-128 content hash
  (``pl.Binary``), equal for equal normalized texts.
- ``pl.col("text").tamis.is_first(normalize=...)``: ``True`` for the first occurrence of each
  normalized text in frame order (a whole-column operation, never elementwise).
- ``pl.col("text").tamis.token_count(tokenizer)``: elementwise number of tokens (``pl.UInt32``)
  of each text under a tokenizer (a ``tokenizer.json`` path or a ``tokenizers.Tokenizer``),
  counted in parallel in Rust; for corpus statistics such as tokens per character.
- ``df.tamis.exact_dedup("text")`` / ``lf.tamis.exact_dedup("text")`` and
  ``lf.pipe(tamis.polars.exact_dedup, column="text")``: keep one row per group of equal texts
  (the first; ``keep="longest"``, ``"max:score"``, ... as ``tamis dedup exact --keep``, where a
  field is a column of the frame), in order.
- ``pl.col("text").tamis.minhash(num_perm=112)``: elementwise MinHash signature
  (``pl.Array(pl.UInt64, num_perm)``), the same as ``tamis dedup near`` computes.
- ``pl.col("text").tamis.is_near_first(threshold=...)``: ``True`` for the row each near-duplicate
  cluster keeps (a whole-column operation).
- ``df.tamis.near_dedup("text")`` / ``lf.pipe(tamis.polars.near_dedup, column="text",
  threshold=0.8)``: keep one row per near-duplicate cluster (the first, or by ``keep``), in order.

- ``pl.col("text").tamis.prox_execute(pl.col("program"), mode="compat")``: run ProX programs
  (``level="chunk"``, the default, or ``"doc"``); ``""`` means dropped; a null text or program
  gives null. Same results as :func:`tamis.prox.execute_chunk` and ``tamis prox apply``.

- ``df.pipe(tamis.polars.prox_refine, doc_model=DIR, chunk_model=DIR)``: run the ProX refining
  models (``tamis[prox]``) over a small frame: refined ``text``, ``raw_content``, ``doc_program``
  and ``chunk_program`` columns; dropped rows are left out (``keep_dropped=True`` keeps them with
  an empty text).

Columns cross into Rust through the Arrow C stream interface; nothing is converted row by row.
Null texts are not documents: they are always kept.
"""

from __future__ import annotations

from typing import Any, TypeVar

import polars as pl

from tamis import _core
from tamis._options import argument, build, to_json
from tamis.dedup import ExactOptions, NearOptions, keep_field
from tamis.prox import DEFAULT, Acceptance, Level, Mode
from tamis.vocab import _tokenizer_json

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def _exact(options: ExactOptions | None, kwargs: dict[str, Any]) -> str:
    return to_json(build(ExactOptions, options, kwargs))


def _whole_column(
    texts: pl.Expr, options: ExactOptions | NearOptions, values: pl.Expr | str | None, mask: Any
) -> pl.Expr:
    """A keep mask over ``texts`` computed by ``mask(texts, options_json, threads, values)``;
    a ``max:``/``min:`` keep policy reads ``values`` (default: the column its field names)."""
    o = to_json(options)
    field = keep_field(options)
    if field is None:
        return texts.map_batches(
            lambda s: pl.Series(mask(s, o, 0, None)).alias(s.name), return_dtype=pl.Boolean
        )
    v = pl.col(values if values is not None else field) if not isinstance(values, pl.Expr) else values
    return pl.map_batches(
        [texts, v],
        lambda cols: pl.Series(mask(cols[0], o, 0, cols[1])).alias(cols[0].name),
        return_dtype=pl.Boolean,
    )


def _hash_series(s: pl.Series, options: str) -> pl.Series:
    return pl.Series(_core.hash_texts(s, options)).alias(s.name)


def _minhash_series(s: pl.Series, options: str) -> pl.Series:
    m = _core.minhash(s, options)
    out = pl.Series(s.name, m.to_arrow())
    # A null text has no signature: keep it null rather than all-max.
    return (
        out
        if s.null_count() == 0
        else pl.select(pl.when(s.is_null()).then(None).otherwise(out).alias(s.name)).to_series()
    )


@pl.api.register_expr_namespace("tamis")
class TamisExpr:
    """``pl.col(...).tamis``: tamis operations on string expressions. Options are the
    dataclasses of :mod:`tamis.dedup` (or their fields as keywords), as everywhere in tamis."""

    def __init__(self, expr: pl.Expr) -> None:
        self._expr = expr

    def hash(self, options: ExactOptions | None = None, **kwargs: Any) -> pl.Expr:
        """16-byte content hash of each (normalized) text; nulls stay null (keywords:
        ``normalize``)."""
        o = _exact(options, kwargs)
        return self._expr.map_batches(
            lambda s: _hash_series(s, o), return_dtype=pl.Binary, is_elementwise=True
        )

    def is_first(
        self, options: ExactOptions | None = None, *, values: pl.Expr | str | None = None, **kwargs: Any
    ) -> pl.Expr:
        """``True`` for the row each group of equal normalized texts keeps: the first in frame
        order, or by ``keep`` (``"longest"``, ``"max:score"``, ...; a ``max:``/``min:`` field is
        read from ``values``, by default the column of that name)."""
        o = build(ExactOptions, options, kwargs)
        return _whole_column(self._expr, o, values, _core.exact_keep_mask_arrow)

    def contaminated(self, against: Any, *, threads: int = 0) -> pl.Expr:
        """``True`` for each text holding a word n-gram of the ``against`` n-gram indexes (a path
        or a list of paths: :func:`tamis.index.build`); nulls are ``False``. The indexes are
        opened and checked once, when the expression is built."""
        from tamis.index import _paths, open_indexes

        indexes = open_indexes(against=_paths(against))

        def mask(s: pl.Series) -> pl.Series:
            return pl.Series(indexes.contaminated(s, threads=threads)).alias(s.name)

        return self._expr.map_batches(mask, return_dtype=pl.Boolean, is_elementwise=True)

    def token_count(self, tokenizer: Any, *, threads: int = 0) -> pl.Expr:
        """Number of tokens of each text (no special tokens added); nulls stay null.

        ``tokenizer`` is a path to a ``tokenizer.json`` or a ``tokenizers.Tokenizer``; it is read
        once, when the expression is built.
        """
        tok, _ = _tokenizer_json(tokenizer, "tokenizer")

        def count(s: pl.Series) -> pl.Series:
            return pl.Series(_core.token_counts_arrow(s, tok, threads=threads)).alias(s.name)

        return self._expr.map_batches(count, return_dtype=pl.UInt32, is_elementwise=True)

    def minhash(
        self, num_perm: int | None = None, options: NearOptions | None = None, **kwargs: Any
    ) -> pl.Expr:
        """MinHash signature of each text (``pl.Array(pl.UInt64, num_perm)``); nulls stay null
        (keywords: ``ngram``, ``shingle``, ``seed``, ``sketch``)."""
        if num_perm is not None:
            kwargs["num_perm"] = num_perm
        o = build(NearOptions, options, kwargs)
        j = to_json(o)
        return self._expr.map_batches(
            lambda s: _minhash_series(s, j), return_dtype=pl.Array(pl.UInt64, o.num_perm), is_elementwise=True
        )

    def is_near_first(
        self, options: NearOptions | None = None, *, values: pl.Expr | str | None = None, **kwargs: Any
    ) -> pl.Expr:
        """``True`` for the row each near-duplicate cluster keeps (its first, or by ``keep`` as
        :meth:`is_first`), in frame order."""
        o = build(NearOptions, options, kwargs)
        return _whole_column(self._expr, o, values, _core.near_keep_mask_arrow)

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
    out = _core.prox_execute_arrow(level, texts, programs, mode, argument("accept", accept, Acceptance))
    return pl.Series(out).alias(texts.name)


def exact_dedup(
    frame: Frame, column: str = "text", options: ExactOptions | None = None, **kwargs: Any
) -> Frame:
    """Keep one row per group of equal normalized ``column`` values (the first, or by ``keep``:
    ``"longest"``, ``"shortest"``, ``"max:COL"``, ``"min:COL"`` reading another column),
    preserving row order.

    Works on a DataFrame or a LazyFrame (for ``lf.pipe(tamis.polars.exact_dedup, column=...)``);
    the result is the same kind of frame. Same kept rows as ``tamis dedup exact`` over the rows in
    the same order. Keywords: :class:`tamis.dedup.ExactOptions` fields.
    """
    return frame.filter(TamisExpr(pl.col(column)).is_first(options, **kwargs))


def near_dedup(
    frame: Frame, column: str = "text", options: NearOptions | None = None, **kwargs: Any
) -> Frame:
    """Keep one row per near-duplicate cluster of ``column`` (the first, or by ``keep`` as
    :func:`exact_dedup`), preserving row order.

    For ``lf.pipe(tamis.polars.near_dedup, column="text", threshold=0.8)``; same kept rows as
    ``tamis dedup near`` over the rows in the same order (see :func:`tamis.dedup.near`).
    Keywords: :class:`tamis.dedup.NearOptions` fields.
    """
    return frame.filter(TamisExpr(pl.col(column)).is_near_first(options, **kwargs))


@pl.api.register_dataframe_namespace("tamis")
class TamisFrame:
    """``df.tamis``: whole-frame tamis operations."""

    def __init__(self, df: pl.DataFrame) -> None:
        self._df = df

    def exact_dedup(self, column: str = "text", **options: Any) -> pl.DataFrame:
        """See :func:`tamis.polars.exact_dedup`."""
        return exact_dedup(self._df, column, **options)

    def near_dedup(self, column: str = "text", **options: Any) -> pl.DataFrame:
        """See :func:`tamis.polars.near_dedup`."""
        return near_dedup(self._df, column, **options)


@pl.api.register_lazyframe_namespace("tamis")
class TamisLazyFrame:
    """``lf.tamis``: whole-frame tamis operations."""

    def __init__(self, lf: pl.LazyFrame) -> None:
        self._lf = lf

    def exact_dedup(self, column: str = "text", **options: Any) -> pl.LazyFrame:
        """See :func:`tamis.polars.exact_dedup`."""
        return exact_dedup(self._lf, column, **options)

    def near_dedup(self, column: str = "text", **options: Any) -> pl.LazyFrame:
        """See :func:`tamis.polars.near_dedup`."""
        return near_dedup(self._lf, column, **options)


__all__ = ["TamisExpr", "TamisFrame", "TamisLazyFrame", "exact_dedup", "near_dedup", "prox_refine"]


def prox_refine(
    df: pl.DataFrame,
    column: str = "text",
    *,
    refiner: Any = None,
    raw_column: str = "raw_content",
    keep_dropped: bool = False,
    **options: Any,
) -> pl.DataFrame:
    """Run the ProX refining models (a :class:`tamis.prox_infer.Refiner`, or one built from
    ``options``) over ``df[column]``. For small data: the whole column goes through one call."""
    from tamis.prox_infer import Refiner

    r = refiner if refiner is not None else Refiner(**options)
    texts = df[column].fill_null("").to_list()
    res = r.refine(texts)
    out = df.with_columns(
        pl.Series(column, res.texts, dtype=pl.String),
        pl.Series(raw_column, texts, dtype=pl.String),
        pl.Series("doc_program", res.doc_programs, dtype=pl.String),
        pl.Series("chunk_program", res.chunk_programs, dtype=pl.String),
    )
    return out if keep_dropped else out.filter(pl.col(column) != "")
