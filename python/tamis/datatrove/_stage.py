"""A Python-run refine stage (fastText, ProX models) as a datatrove step: the implementation is
the one ``tamis refine`` runs (:data:`tamis.refine.stages.PYTHON_STAGES`), its decisions are
applied by :func:`tamis.datatrove._base.apply_decisions`; nothing is decided here.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, ClassVar

from tamis.datatrove._base import DecisionStep, texts_of
from tamis.errors import ConfigError
from tamis.refine.stages import PYTHON_STAGES, REGISTRY, Decisions, stage_options

if TYPE_CHECKING:
    from datatrove.data import Document
    from datatrove.pipeline.writers.disk_base import DiskWriter


class StageStep(DecisionStep):
    """The stage type :attr:`kind` of ``tamis refine`` as a datatrove step.

    ``options``: the stage's options dataclass, checked by the core when the step is created;
    ``stage_name``: the stage's name in ``tamis refine`` (names its score field, if any, and
    its default drop reason). The implementation is made in each task, on first use, unless
    :attr:`eager` (cheap ones are made at once, so a missing model file fails here).
    """

    #: The stage type (a key of ``PYTHON_STAGES``).
    kind: ClassVar[str] = ""
    #: Make the implementation when the step is created.
    eager: ClassVar[bool] = False

    def __init__(
        self,
        options: Any,
        *,
        stage_name: str,
        exclusion_writer: DiskWriter | None,
        batch_size: int,
        threads: int = 0,
    ) -> None:
        super().__init__(exclusion_writer, batch_size)
        checked = stage_options(self.kind, dataclasses.asdict(options))
        self.options: dict[str, Any] = {f.name: getattr(checked, f.name) for f in dataclasses.fields(checked)}
        self.stage_name = stage_name
        self.threads = threads
        self.reason = REGISTRY[self.kind]["reasons"][0].replace("{name}", stage_name)
        self._stage: Any = self._make() if self.eager else None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle configuration only: the implementation (models) is made where the step runs."""
        state = self.__dict__.copy()
        state["_stage"] = None
        return state

    def _make(self) -> Any:
        return PYTHON_STAGES[self.kind].make(self.stage_name, self.options, self.threads)

    def stage(self) -> Any:
        """The stage implementation (``decide(ids, texts) -> Decisions``), made on first use."""
        if self._stage is None:
            self._stage = self._make()
        return self._stage

    def decide(self, batch: list[Document]) -> Decisions:
        """The stage's decisions for ``batch``."""
        decisions: Decisions = self.stage().decide([str(doc.id) for doc in batch], texts_of(batch))
        return decisions

    def resolve(self) -> None:
        """Run the stage's resource check (packages, models; resolves ``model = "auto"``)."""
        verdict = PYTHON_STAGES[self.kind].check(self.stage_name, dict(self.options))
        if isinstance(verdict, tuple):
            raise ConfigError(f"{self.kind}: {verdict[1]}")
        if isinstance(verdict, str):
            self.options.update(json.loads(verdict))


__all__ = ["StageStep"]
