"""The fastText stages of ``tamis refine`` as datatrove steps: :class:`LanguageFilter`
(``language``) and :class:`QualityFilter` (``quality``). The same implementation as ``tamis
refine`` (:mod:`tamis.refine.stages`), so the same metadata and decisions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tamis._options import build
from tamis.datatrove._stage import StageStep
from tamis.filters import LanguageOptions, QualityOptions

if TYPE_CHECKING:
    from datatrove.pipeline.writers.disk_base import DiskWriter


class LanguageFilter(StageStep):
    """fastText language identification, the ``language`` stage of ``tamis refine``: writes
    ``metadata["language"]`` and ``metadata["language_score"]`` (rounded to 4 digits) and keeps
    documents whose language is in ``languages`` (any when empty) with a score ``>= min_score``.
    Drop reasons (stats ``dropped_<reason>``, ``filter_reason``): ``language``,
    ``language_score``.

    ``model``: a fastText language-ID model path; ``None``: the built-in ``lid.176.ftz``. Runs
    the Rust code of ``tamis refine``; the model is checked when the step is created and
    loaded once per task; prediction is batched (``batch_size``).
    """

    type = "🔻 - FILTER"
    name = "🦀 tamis fastText language"
    kind = "language"
    eager = True

    def __init__(
        self,
        options: LanguageOptions | None = None,
        *,
        exclusion_writer: DiskWriter | None = None,
        **kwargs: Any,
    ) -> None:
        """``options`` / keywords: :class:`tamis.filters.LanguageOptions` (``languages``,
        ``min_score``, ``model``, ``batch_size``). Raises :class:`tamis.ConfigError` for a bad
        option, :class:`tamis.ModelError` for a missing model file."""
        o = build(LanguageOptions, options, kwargs)
        super().__init__(o, stage_name="language", exclusion_writer=exclusion_writer, batch_size=o.batch_size)


class QualityFilter(StageStep):
    """A fastText quality classifier, the ``quality`` stage of ``tamis refine``: writes
    ``metadata["<name>_score"]`` (the probability of ``keep_label``, rounded to 6 digits) and
    keeps documents scoring ``>= threshold``. Drop reason: ``<name>_score``. The model (any
    fastText classifier, e.g. one trained with ``tamis filter train``) is checked when the step
    is created; its labels when first loaded.
    """

    type = "🔻 - FILTER"
    name = "🦀 tamis fastText quality"
    kind = "quality"
    eager = True

    def __init__(
        self,
        options: QualityOptions | None = None,
        *,
        name: str = "quality",
        exclusion_writer: DiskWriter | None = None,
        **kwargs: Any,
    ) -> None:
        """``options`` / keywords: :class:`tamis.filters.QualityOptions` (``model``,
        ``keep_label``, ``threshold``, ``batch_size``); ``name``: the stage's name (the score
        goes to ``metadata["<name>_score"]``)."""
        o = build(QualityOptions, options, kwargs)
        super().__init__(o, stage_name=name, exclusion_writer=exclusion_writer, batch_size=o.batch_size)


__all__ = ["LanguageFilter", "QualityFilter"]
