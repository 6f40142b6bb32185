"""tamis: a fine sieve for LLM training corpora.

Rust-fast deduplication, refinement, tokenizer vocabulary extension (``tamis.vocab``) and
embedding initialization for new tokens (``tamis.embed``), reachable from Python, polars
(``import tamis.polars``), datatrove (``tamis.datatrove``) and the ``tamis`` command line.
:class:`Pipeline` is the end-to-end job (``tamis refine``). Options are dataclasses mirroring the
Rust core's options types (``tamis.dedup.NearOptions``, …); errors are :class:`TamisError`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are loaded on first use (PEP 562): `import tamis` stays cheap, and the `tamis` console
# script (`tamis.cli`) handles Ctrl-C before the compiled core is even loaded.
_SUBMODULES = {"dedup", "embed", "filters", "index", "mix", "prox", "text", "tokenize", "vocab"}
_NAMES = {
    "RECORD_ERROR_KINDS": "tamis._core",
    "__version__": "tamis._core",
    "IoOptions": "tamis._options",
    "ConfigError": "tamis.errors",
    "ModelError": "tamis.errors",
    "TamisError": "tamis.errors",
    "Pipeline": "tamis.refine",
    "decontaminate": "tamis.index",
}

if TYPE_CHECKING:
    from tamis import dedup, embed, filters, index, mix, prox, text, tokenize, vocab
    from tamis._core import RECORD_ERROR_KINDS, __version__
    from tamis._options import IoOptions
    from tamis.errors import ConfigError, ModelError, TamisError
    from tamis.index import decontaminate
    from tamis.refine import Pipeline


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"tamis.{name}")
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tamis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "RECORD_ERROR_KINDS",
    "ConfigError",
    "IoOptions",
    "ModelError",
    "Pipeline",
    "TamisError",
    "__version__",
    "decontaminate",
    "dedup",
    "embed",
    "filters",
    "index",
    "mix",
    "prox",
    "text",
    "tokenize",
    "vocab",
]
