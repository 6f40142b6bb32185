"""The ``tamis`` console script: the same Rust CLI as ``cargo install --path rust/cli``, plus the
commands that run Python-side models: ``tamis refine`` (the pipeline), ``tamis filter`` (fastText),
``tamis prox refine`` (ProX inference), ``tamis embed eval`` (bits per byte) and ``tamis demo``
(the pipeline on a sample corpus)."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run the command line with ``sys.argv`` and exit with its code."""
    argv = sys.argv[1:]
    if argv[:2] == ["prox", "refine"]:
        # Model inference is Python (torch); everything else is the Rust command line.
        try:
            from tamis.prox_infer import cli_refine
        except ImportError as e:  # pragma: no cover - the module itself needs no extra
            sys.exit(f"tamis prox refine: {e}")
        sys.exit(cli_refine(argv[2:]))
    if argv[:1] == ["refine"]:
        from tamis.pipeline import cli_refine as refine

        sys.exit(refine(argv[1:]))
    if argv[:1] == ["filter"]:
        from tamis.filters import cli_filter

        sys.exit(cli_filter(argv[1:]))
    if argv[:1] == ["demo"] and not {"--dedup-only", "--corpus-only", "-h", "--help"} & set(argv):
        from tamis.demo import cli_demo

        sys.exit(cli_demo(argv[1:]))
    if argv[:2] == ["embed", "eval"]:
        from tamis.embed import cli_eval

        sys.exit(cli_eval(argv[2:]))
    from tamis import _core

    # `tamis demo` reads Python's own documentation as sample text; tell it which Python this is.
    os.environ.setdefault("TAMIS_PYTHON", sys.executable)
    sys.exit(_core.main(["tamis", *argv]))


if __name__ == "__main__":
    main()
