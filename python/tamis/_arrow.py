"""Moving columns into and out of Rust through the Arrow C data interface (PyCapsules).

Anything exposing ``__arrow_c_stream__`` or ``__arrow_c_array__`` (polars Series, pyarrow arrays
and chunked arrays, arro3, nanoarrow) crosses without per-row Python objects. Plain Python lists
are converted through polars when it is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def to_arrow(values: Any) -> Any:
    """Return an object exposing the Arrow PyCapsule interface for ``values``."""
    if hasattr(values, "__arrow_c_stream__") or hasattr(values, "__arrow_c_array__"):
        return values
    if isinstance(values, Sequence) and not isinstance(values, (str, bytes)):
        try:
            import polars as pl
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise TypeError(
                "plain Python sequences need polars (pip install 'tamis[polars]'); "
                "or pass an Arrow array (pyarrow, polars Series)"
            ) from e
        return pl.Series(values=list(values), dtype=pl.String)
    raise TypeError(
        f"expected an Arrow string array, a polars Series or a list of str, got {type(values).__name__}"
    )


def to_arrow_numbers(values: Any) -> Any:
    """Like :func:`to_arrow` for a numeric column (``None``: missing). A value that is not a
    number (a bool, a str) is refused with its index, as the Rust core refuses such a field."""
    if hasattr(values, "__arrow_c_stream__") or hasattr(values, "__arrow_c_array__"):
        return values
    if isinstance(values, Sequence) and not isinstance(values, (str, bytes)):
        items = list(values)
        for i, v in enumerate(items):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise TypeError(f"values[{i}] is {type(v).__name__}, not a number")
        import polars as pl

        return pl.Series(values=[None if v is None else float(v) for v in items], dtype=pl.Float64)
    raise TypeError(
        f"expected a numeric Arrow array, a polars Series or a list of numbers, got {type(values).__name__}"
    )


def like_input(result: Any, original: Any) -> Any:
    """Convert an Arrow result back to the caller's kind of column."""
    module = type(original).__module__.split(".")[0]
    if module == "polars":
        import polars as pl

        return pl.Series(result).alias(getattr(original, "name", ""))
    if module == "pyarrow":
        import pyarrow as pa

        return pa.chunked_array(result)
    import polars as pl

    return pl.Series(result).to_list()
