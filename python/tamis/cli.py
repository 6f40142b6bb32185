"""The ``tamis`` console script: the same Rust CLI as ``cargo install --path rust/cli``."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run the command line with ``sys.argv`` and exit with its code."""
    from tamis import _core

    # `tamis demo` reads Python's own documentation as sample text; tell it which Python this is.
    os.environ.setdefault("TAMIS_PYTHON", sys.executable)
    sys.exit(_core.main(["tamis", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
