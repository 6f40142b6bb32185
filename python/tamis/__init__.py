"""tamis: a fine sieve for LLM training corpora.

Rust-fast deduplication, refinement, tokenizer vocabulary extension (``tamis.vocab``) and
embedding initialization for new tokens (``tamis.embed``),
reachable from Python, polars (``import tamis.polars``),
datatrove (``tamis.datatrove``) and the ``tamis`` command line.
"""

from tamis import dedup, embed, prox, text, vocab
from tamis._core import RECORD_ERROR_KINDS, TamisError, __version__

__all__ = ["RECORD_ERROR_KINDS", "TamisError", "__version__", "dedup", "embed", "prox", "text", "vocab"]
