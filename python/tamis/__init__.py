"""tamis: a fine sieve for LLM training corpora.

Rust-fast deduplication, refinement and tokenizer vocabulary extension (``tamis.vocab``),
reachable from Python, polars (``import tamis.polars``),
datatrove (``tamis.datatrove``) and the ``tamis`` command line.
"""

from tamis import dedup, prox, text, vocab
from tamis._core import RECORD_ERROR_KINDS, TamisError, __version__

__all__ = ["RECORD_ERROR_KINDS", "TamisError", "__version__", "dedup", "prox", "text", "vocab"]
