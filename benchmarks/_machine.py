"""The machine a benchmark ran on, in one line (for RESULTS.md)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _field(path: str, key: str) -> str | None:
    for line in Path(path).read_text().splitlines():
        if line.startswith(key):
            return line.split(":", 1)[1].strip()
    return None


def machine(cores: int | None = None) -> str:
    """CPU model, usable cores (``cores``, or every logical CPU), RAM, OS and Python."""
    cpu = _field("/proc/cpuinfo", "model name") or "n/a"
    mem_kb = _field("/proc/meminfo", "MemTotal")
    mem = f"{int(mem_kb.split()[0]) / 1024**2:.1f} GiB" if mem_kb else "n/a"
    n = cores if cores is not None else os.cpu_count()
    return f"{cpu}, {n} usable cores, {mem} RAM, {platform.platform()}, Python {platform.python_version()}"
