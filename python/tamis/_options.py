"""Options: each capability's options are one dataclass here, mirroring one serde type of the Rust
core (``tamis-core``), which holds the defaults and every check. A dataclass's defaults are read
from the core when tamis is imported; calls send the dataclass to Rust as JSON, where it is
checked, and errors name the option as Python spells it (:class:`tamis.ConfigError`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, TypeVar

from tamis import _core

#: The core's defaults of every options type, by capability.
DEFAULTS: dict[str, dict[str, Any]] = json.loads(_core.option_defaults())

T = TypeVar("T")


def default(capability: str, name: str) -> Any:
    """The core's default of option ``name`` of ``capability`` (a dataclass field default)."""
    value = DEFAULTS[capability][name]
    if isinstance(value, (list, dict)):
        return dataclasses.field(default_factory=lambda: json.loads(json.dumps(value)))
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN or infinity: sent as text, the core names the option it cannot read.
        return repr(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def dumps(value: Any) -> str:
    """JSON text of plain data for the core (paths as text, non-finite numbers as text)."""
    return json.dumps(_plain(value))


def to_json(options: Any) -> str:
    """A dataclass of options as the JSON its core type reads."""
    return dumps({f.name: getattr(options, f.name) for f in dataclasses.fields(options)})


def argument(name: str, value: Any, cls: type) -> str:
    """The JSON of ``value``, an options dataclass given as argument ``name``; anything else is a
    ``TypeError`` naming the argument and the class it takes."""
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a tamis {cls.__name__}, got {type(value).__name__}: {value!r}")
    return to_json(value)


def check(capability: str, options: Any) -> dict[str, Any]:
    """Check a dataclass of options with its core type (``ConfigError`` naming the option when
    a value is wrong); returns the options with every default, as a dict."""
    checked: dict[str, Any] = json.loads(_core.check_options(capability, to_json(options)))
    return checked


def build(cls: type[T], options: T | None, overrides: dict[str, Any]) -> T:
    """``options`` (default: ``cls()``) with the keyword ``overrides`` set; an unknown keyword is a
    ``TypeError`` naming it."""
    base = options if options is not None else cls()
    if not isinstance(base, cls):
        raise TypeError(f"options must be a {cls.__name__}, got {type(base).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(
            f"unknown option {unknown[0]!r} for {cls.__name__} (options: {', '.join(sorted(names))})"
        )
    return dataclasses.replace(base, **overrides)  # type: ignore[type-var]


def split(kwargs: dict[str, Any], *classes: type) -> list[dict[str, Any]]:
    """Keyword arguments shared out to the dataclasses that have them, in order; one no class
    has is a ``TypeError``."""
    parts: list[dict[str, Any]] = [{} for _ in classes]
    for k, v in kwargs.items():
        for part, cls in zip(parts, classes, strict=True):
            if k in {f.name for f in dataclasses.fields(cls)}:
                part[k] = v
                break
        else:
            known = sorted({f.name for cls in classes for f in dataclasses.fields(cls)})
            raise TypeError(f"unknown option {k!r} (options: {', '.join(known)})")
    return parts


@dataclasses.dataclass(frozen=True)
class IoOptions:
    """How records are read and bad ones handled (``tamis_core::io::IoOptions``): the text and
    id fields, ``on_error`` (``"fail"`` or ``"skip"``), the ``rejects`` file for skipped
    records, and Rust ``threads`` (0: one per core; output is identical for every value)."""

    text_key: str = default("io", "text_key")
    id_key: str = default("io", "id_key")
    on_error: str = default("io", "on_error")
    rejects: str | os.PathLike[str] | None = default("io", "rejects")
    threads: int = default("io", "threads")


__all__ = ["DEFAULTS", "IoOptions", "argument", "build", "check", "default", "dumps", "split", "to_json"]
