"""tamis: a fine sieve for LLM training corpora.

Rust-fast deduplication, refinement, tokenizer vocabulary extension (``tamis.vocab``) and
embedding initialization for new tokens (``tamis.embed``), reachable from Python, polars
(``import tamis.polars``), datatrove (``tamis.datatrove``) and the ``tamis`` command line.
:class:`Pipeline` is the end-to-end job (``tamis refine``). Options are dataclasses mirroring the
Rust core's options types (``tamis.dedup.NearOptions``, …); errors are :class:`TamisError`.
"""

from tamis import dedup, embed, filters, prox, text, vocab
from tamis._core import RECORD_ERROR_KINDS, __version__
from tamis._options import IoOptions
from tamis.errors import ConfigError, ModelError, TamisError
from tamis.refine import Pipeline

__all__ = [
    "RECORD_ERROR_KINDS",
    "ConfigError",
    "IoOptions",
    "ModelError",
    "Pipeline",
    "TamisError",
    "__version__",
    "dedup",
    "embed",
    "filters",
    "prox",
    "text",
    "vocab",
]
