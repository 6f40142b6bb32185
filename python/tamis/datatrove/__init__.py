"""tamis as datatrove pipeline steps, computed in Rust (docs/datatrove.md).

- Exact dedup (:mod:`.exact`) and line dedup (:mod:`.lines`) in two steps each: a signature
  step writes one file per task, a filter step loads every task's files and keeps exactly what
  ``tamis dedup exact`` / ``tamis dedup lines`` keep on the same folder, whatever the numbers of
  tasks. The file formats, the global order and the decisions live in tamis-core
  (``rust/core/src/dedup/signatures/``)::

      # 1: hash every document and write one signature file per task
      LocalPipelineExecutor([JsonlReader(DATA), ExactDedupSignature(SIGS)], tasks=N).run()
      # 2: drop every document that is not the first occurrence of its hash in the global order
      LocalPipelineExecutor([JsonlReader(DATA), ExactDedupFilter(SIGS), JsonlWriter(OUT)], tasks=M).run()

- Near dedup (:mod:`.near`): four steps sharing a local work directory, the files of
  ``tamis dedup near signatures|buckets|cluster|filter``.
- Exact-substring dedup (:mod:`.substring`): :class:`SubstringSequence` (any number of tasks)
  writes the texts, :class:`SubstringFind` (one task) builds the suffix arrays and each file's
  spans, :class:`SubstringFilter` (any number of tasks) cuts them, as ``tamis dedup substring``.
- The Python-run stages of ``tamis refine``, with their implementation
  (:mod:`tamis.refine.stages`): :class:`LanguageFilter`, :class:`QualityFilter` (fastText),
  :class:`ProxDocStage`, :class:`ProxChunkStage` (ProX models); :class:`ProxApply` (stored
  ProX programs); and :class:`ProxAnnotate` (SFT data from a large model, ``tamis prox annotate``).
- Decontamination (:mod:`.decont`): :class:`Decontaminate` against read-only n-gram indexes of
  evaluation sets, as ``tamis decontaminate``.
- Tokenization into training shards (:mod:`.tokenize`): :class:`TokenizeShards` writes each
  task's documents as the Megatron, nanotron or numpy files of ``tamis tokenize``, shards named
  ``{rank:05d}_shard_NNNNN`` with a manifest per task.
- A whole ``tamis refine`` configuration as datatrove phases (:mod:`.config`):
  :func:`to_datatrove`, :func:`run_local`, :func:`stage_counts`.

Steps take the options dataclasses of :mod:`tamis.dedup` (``ExactOptions``, ``LinesOptions``,
``NearOptions``, ``SubstringOptions``) or their fields as keywords. "First" is in the order the
command line reads the folder: file paths sorted as Rust sorts paths (component by component,
so ``part/x.jsonl`` comes before ``part.jsonl``), then documents in file order.

The package imports without datatrove; the steps raise ImportError when created if it is
missing.
"""

from tamis.datatrove._base import DecisionStep, apply_decisions, read_signature_header
from tamis.datatrove.config import SOURCE_KEY, DatatrovePhase, run_local, stage_counts, to_datatrove
from tamis.datatrove.decont import Decontaminate
from tamis.datatrove.exact import SIGNATURE_SUFFIX, ExactDedupFilter, ExactDedupSignature
from tamis.datatrove.fasttext import LanguageFilter, QualityFilter
from tamis.datatrove.lines import LINE_SIGNATURE_SUFFIX, LineDedupFilter, LineDedupSignature
from tamis.datatrove.near import NearDedupBuckets, NearDedupCluster, NearDedupFilter, NearDedupSignature
from tamis.datatrove.prox import ProxAnnotate, ProxApply, ProxChunkStage, ProxDocStage
from tamis.datatrove.substring import SubstringFilter, SubstringFind, SubstringSequence
from tamis.datatrove.tokenize import TokenizeShards, task_manifest, task_prefix

__all__ = [
    "LINE_SIGNATURE_SUFFIX",
    "SIGNATURE_SUFFIX",
    "SOURCE_KEY",
    "DatatrovePhase",
    "DecisionStep",
    "Decontaminate",
    "ExactDedupFilter",
    "ExactDedupSignature",
    "LanguageFilter",
    "LineDedupFilter",
    "LineDedupSignature",
    "NearDedupBuckets",
    "NearDedupCluster",
    "NearDedupFilter",
    "NearDedupSignature",
    "SubstringFilter",
    "SubstringFind",
    "SubstringSequence",
    "ProxAnnotate",
    "ProxApply",
    "ProxChunkStage",
    "ProxDocStage",
    "QualityFilter",
    "TokenizeShards",
    "apply_decisions",
    "read_signature_header",
    "run_local",
    "stage_counts",
    "task_manifest",
    "task_prefix",
    "to_datatrove",
]
