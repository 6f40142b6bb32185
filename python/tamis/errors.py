"""Every exception tamis raises, under :class:`TamisError` (a ``ValueError``).

- :class:`TamisError`: ``.kind`` is a stable snake_case slug (``invalid_json``, ``io``, …); errors
  about a record also have ``.path`` and ``.location`` (``line 3``, ``row 7``).
- :class:`ConfigError`: an invalid option or configuration, found before any work (the command
  line exits with 2); ``.fields`` names the options concerned.
- :class:`ModelError`: a model or tokenizer that cannot be used (a missing or unreadable
  fastText model, a refining model directory without safetensors weights).
"""

from __future__ import annotations

from tamis._core import ConfigError, TamisError


class ModelError(ConfigError):
    """A model or tokenizer that cannot be used; found before any work."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.kind = "model"
        self.fields: list[str] = []


class ProxModelError(ModelError):
    """A ProX refining model cannot be found or loaded."""


__all__ = ["ConfigError", "ModelError", "ProxModelError", "TamisError"]
