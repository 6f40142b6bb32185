"""``tamis refine``: raw corpus in, refined corpus and a report out, resumably.

The Rust core reads, refines and writes every record, plans the shards, resumes, and writes the
report; the stages that need Python (fastText, torch) get batches of texts from it and return
:class:`Decisions` (:mod:`tamis.refine.stages`). See docs/refine.md.

Use it as ``tamis refine CONFIG.toml`` or ``tamis refine INPUT... -o OUTDIR``, or from Python:
``tamis.Pipeline.from_config("refine.toml").run()``.
"""

from tamis.errors import ConfigError
from tamis.refine.pipeline import Pipeline, run_stages, summary
from tamis.refine.stages import REGISTRY, Decisions, PythonStages

__all__ = ["REGISTRY", "ConfigError", "Decisions", "Pipeline", "PythonStages", "run_stages", "summary"]
