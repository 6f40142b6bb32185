"""The ``tamis`` console script: the same Rust command line as ``cargo install --path rust/cli``,
with the stages that run in Python (fastText, torch) available to ``tamis refine``,
``tamis filter language|quality`` and ``tamis prox refine``; plus the commands that are Python
throughout: ``tamis filter train`` (fastText training), ``tamis embed eval`` (bits per byte),
``tamis prox annotate`` (the HTTP client) and ``tamis prox train|eval`` (torch)."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run the command line with ``sys.argv`` and exit with its code."""
    try:
        _main(sys.argv[1:])
    except KeyboardInterrupt:
        # Ctrl-C outside the Rust work (while Python starts, or in a Python-only command): one
        # line and 130, as the Rust command line does, never a traceback.
        sys.stderr.write("tamis: interrupted by SIGINT: stopped\n")
        sys.exit(130)


def _main(argv: list[str]) -> None:
    if argv[:2] == ["filter", "train"]:
        from tamis.filters import cli_train

        sys.exit(cli_train(argv[2:]))
    if argv[:2] == ["prox", "annotate"]:
        from tamis.prox_annotate import cli_annotate

        sys.exit(cli_annotate(argv[2:]))
    if argv[:2] == ["prox", "train"]:
        from tamis.prox_train import cli_train

        sys.exit(cli_train(argv[2:]))
    if argv[:2] == ["prox", "eval"]:
        from tamis.prox_eval import cli_eval

        sys.exit(cli_eval(argv[2:]))
    if argv[:2] == ["embed", "eval"]:
        from tamis.embed import cli_eval

        sys.exit(cli_eval(argv[2:]))
    from tamis import _core
    from tamis.refine.stages import PythonStages

    # `tamis demo` reads Python's own documentation as sample text; tell it which Python this is.
    os.environ.setdefault("TAMIS_PYTHON", sys.executable)
    sys.exit(_core.main(["tamis", *argv], PythonStages()))


if __name__ == "__main__":
    main()
