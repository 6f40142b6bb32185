"""Exact dedup of a polars DataFrame and LazyFrame with the tamis namespace.

Run: python examples/polars_dedup.py
"""

from __future__ import annotations

import polars as pl
import tamis.polars

df = pl.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "text": ["Hello, World!", "hello world", "Something else", "Hello, World!"],
    }
)

print(df.with_columns(hash=pl.col("text").tamis.hash(normalize="simple")))
print(df.tamis.exact_dedup("text"))  # drops id 4
print(df.lazy().pipe(tamis.polars.exact_dedup, column="text", normalize="simple").collect())  # keeps 1 and 3
