"""ProX refinement at scale with datatrove: one task per GPU, as ProX ran it.

Stage 1 (doc model) and stage 2 (chunk model) run in one pipeline here; each task reads its share
of the input files, and a rerun skips finished tasks (datatrove's completion markers), so an
interrupted job resumes where it stopped. Needs `pip install 'tamis[prox,datatrove]'` and the two
refining models in local directories.

    python examples/prox_datatrove.py INPUT_DIR OUTPUT_DIR DOC_MODEL CHUNK_MODEL [--slurm --tasks 64]
"""

import argparse

from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from tamis.datatrove import ProxChunkStage, ProxDocStage

ap = argparse.ArgumentParser()
ap.add_argument("input")
ap.add_argument("output")
ap.add_argument("doc_model")
ap.add_argument("chunk_model")
ap.add_argument("--tasks", type=int, default=1)
ap.add_argument("--slurm", action="store_true", help="one Slurm task per GPU")
ap.add_argument("--batch-tokens", type=int, default=262144)
ap.add_argument("--mode", default="compat", choices=["compat", "strict"])
a = ap.parse_args()

options = {"batch_tokens": a.batch_tokens}
pipeline = [
    JsonlReader(a.input),
    ProxDocStage(a.doc_model, mode=a.mode, **options),
    ProxChunkStage(a.chunk_model, mode=a.mode, **options),
    JsonlWriter(a.output),
]
if a.slurm:
    SlurmPipelineExecutor(
        pipeline,
        tasks=a.tasks,
        time="24:00:00",
        partition="gpu",
        job_name="prox",
        logging_dir=f"{a.output}/logs",
        sbatch_args={"gres": "gpu:1"},
        cpus_per_task=8,
    ).run()
else:
    LocalPipelineExecutor(pipeline, tasks=a.tasks, workers=1, logging_dir=f"{a.output}/logs").run()
