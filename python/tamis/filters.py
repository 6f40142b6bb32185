"""fastText document filters: language identification and quality classification, and training a
quality classifier (the DCLM recipe).

Language ID runs in Rust (``tamis._core.LanguageIdentifier``, the ``language`` stage of
``tamis refine``) on tamis' own fastText inference, with fastText's ``lid.176.ftz`` (176
languages, CC BY-SA 3.0) built in: nothing to install or download. Any other fastText model
(``lid.176.bin``, GlotLID) is a local path. The quality filter and training need one fastText
package (``pip install 'tamis[filters]'``, which installs ``fasttext-numpy2-wheel``, the build
datatrove uses; it works with numpy >= 2); DCLM's ``fasttext-oh-eli5`` or any classifier is a
local path.

Prediction is batched: one call into Rust (or fastText's C++) per batch of documents. Newlines
are replaced with spaces first (fastText predicts one line; datatrove does the same).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tamis import _core
from tamis._options import check, default
from tamis.errors import ConfigError, ModelError

LID_MODEL_NAME = "lid.176.ftz"
_MISSING_FASTTEXT = (
    "fastText is not installed: pip install 'tamis[filters]' (the fasttext-numpy2-wheel package; "
    "install exactly one package that provides the `fasttext` module)"
)


#: A filter is misconfigured (missing model file, unknown label, bad parameter).
FilterConfigError = ConfigError


@dataclass(frozen=True)
class LanguageOptions:
    """The ``language`` stage (``tamis_core::refine::LanguageOptions``): keep documents whose
    predicted language is in ``languages`` (all when empty) with a score ``>= min_score``;
    ``model``: a fastText language-ID model file (default: the built-in ``lid.176.ftz``);
    ``if_available``: skip the stage when ``model`` names a file that does not exist."""

    languages: list[str] = default("language", "languages")
    min_score: float = default("language", "min_score")
    model: str | os.PathLike[str] | None = default("language", "model")
    batch_size: int = default("language", "batch_size")
    if_available: bool = default("language", "if_available")


@dataclass(frozen=True)
class QualityOptions:
    """The ``quality`` stage (``tamis_core::refine::QualityOptions``): keep documents whose
    probability of ``keep_label`` under the fastText classifier ``model`` is ``>= threshold``."""

    model: str | os.PathLike[str] | None = default("quality", "model")
    keep_label: str = default("quality", "keep_label")
    threshold: float = default("quality", "threshold")
    batch_size: int = default("quality", "batch_size")


def _fasttext() -> Any:
    try:
        import fasttext
    except ImportError as e:
        raise ImportError(f"{_MISSING_FASTTEXT} ({e})") from e
    # fastText prints a deprecation warning to stderr on every load_model; it is not for users.
    ft = getattr(fasttext, "FastText", None)
    if ft is not None and hasattr(ft, "eprint"):
        ft.eprint = lambda *args, **kwargs: None
    return fasttext


def embedded_lid_model() -> _core.FastText:
    """The built-in ``lid.176.ftz`` (fastText's 176-language identification model), loaded once
    per process."""
    return _core.FastText.embedded()


def _check_model_path(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{what} model {os.fspath(path)!r}: no such file")
    return p


def _one_line(texts: Sequence[str]) -> list[str]:
    return [t.replace("\n", " ").replace("\r", " ") for t in texts]


@dataclass
class FilterStats:
    """Counters of one filter: documents seen and kept, dropped by reason, seconds spent in it."""

    documents: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The counters, with ``docs_per_second``."""
        return {
            "documents": self.documents,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "seconds": round(self.seconds, 3),
            "docs_per_second": round(self.documents / self.seconds, 1) if self.seconds > 0 else None,
        }


class LanguageFilter:
    """Identify each document's language with a fastText model; keep documents in ``languages``
    (all languages when empty) with a top score ``>= min_score``. The ``language`` stage of
    ``tamis refine``, run by the same Rust code.

    ``model``: a fastText language-ID model path; ``None`` is the built-in ``lid.176.ftz``.
    Labels are the model's without ``__label__`` (``en``, or ``eng_Latn`` with GlotLID).
    :meth:`predict` returns (language, score) per text; :meth:`apply` also decides.
    """

    def __init__(self, languages: Iterable[str] = (), **options: Any) -> None:
        """``options``: the other :class:`LanguageOptions` fields (checked by the core). A model
        file that is missing or not a fastText model is a :class:`tamis.ModelError` here."""
        self.options = check("language", LanguageOptions(languages=list(languages), **options))
        model = self.options["model"]
        self.model_path = None if model is None else _check_model_path(model, "language")
        self.batch_size: int = self.options["batch_size"]
        self.stats = FilterStats()
        self._identifier: _core.LanguageIdentifier | None = None
        self.identifier()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_identifier"] = None  # loaded lazily in each process
        return state

    def identifier(self) -> _core.LanguageIdentifier:
        """The loaded stage (its model is read once per process)."""
        if self._identifier is None:
            try:
                self._identifier = _core.LanguageIdentifier(json.dumps(self.options))
            except _core.TamisError as e:  # the options are checked: the model is at fault
                raise ModelError(str(e)) from e
        return self._identifier

    def _decide(self, texts: Sequence[str]) -> list[tuple[str, float, str]]:
        ident = self.identifier()
        out: list[tuple[str, float, str]] = []
        for k in range(0, len(texts), self.batch_size):
            out += ident.decide(list(texts[k : k + self.batch_size]))
        return out

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """The top language and its probability for each text."""
        return [(lang, score) for lang, score, _ in self._decide(texts)]

    def apply(self, texts: Sequence[str]) -> tuple[list[bool], list[tuple[str, float]]]:
        """Keep decisions and predictions; updates :attr:`stats`."""
        t0 = time.perf_counter()
        decided = self._decide(texts)
        keep = [not reason for _, _, reason in decided]
        for _, _, reason in decided:
            if reason:
                self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + 1
        self.stats.documents += len(texts)
        self.stats.kept += sum(keep)
        self.stats.seconds += time.perf_counter() - t0
        return keep, [(lang, score) for lang, score, _ in decided]


class QualityFilter:
    """Score documents with a fastText classifier: the probability of ``keep_label``; keep those
    with a score ``>= threshold``. ``name`` names the score (``<name>_score`` in metadata).

    Works with any fastText classifier, e.g. DCLM's ``fasttext-oh-eli5`` (labels ``hq``/``cc``)
    or one trained with :func:`train`.
    """

    def __init__(self, model: str | os.PathLike[str], *, name: str = "quality", **options: Any) -> None:
        """``options``: the other :class:`QualityOptions` fields (checked by the core)."""
        o = check("quality", QualityOptions(model=model, **options))
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ConfigError(f"name must be letters, digits or _, got {name!r}")
        self.model_path = _check_model_path(o["model"], "quality")
        self.keep_label = str(o["keep_label"]).removeprefix("__label__")
        self.threshold: float = o["threshold"]
        self.name = name
        self.batch_size: int = o["batch_size"]
        self.stats = FilterStats()
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None
        return state

    @property
    def score_key(self) -> str:
        """The metadata field of the score."""
        return f"{self.name}_score"

    def model(self) -> Any:
        """The loaded fastText model; its labels must include ``keep_label``."""
        if self._model is None:
            model = _fasttext().load_model(os.fspath(self.model_path))
            labels = [lab.removeprefix("__label__") for lab in model.get_labels()]
            if self.keep_label not in labels:
                raise ModelError(
                    f"quality model {os.fspath(self.model_path)!r} has no label {self.keep_label!r} "
                    f"(its labels: {', '.join(labels)})"
                )
            self._model = model
        return self._model

    def scores(self, texts: Sequence[str]) -> list[float]:
        """The probability of ``keep_label`` for each text, in batches."""
        model = self.model()
        want = "__label__" + self.keep_label
        out: list[float] = []
        for k in range(0, len(texts), self.batch_size):
            labels, probs = model.predict(_one_line(texts[k : k + self.batch_size]), k=-1, threshold=0.0)
            for ls, ps in zip(labels, probs, strict=True):
                score = 0.0
                for lab, p in zip(ls, ps, strict=True):
                    if lab == want:
                        score = min(1.0, float(p))
                out.append(score)
        return out

    def apply(self, texts: Sequence[str]) -> tuple[list[bool], list[float]]:
        """Keep decisions and scores; updates :attr:`stats`."""
        t0 = time.perf_counter()
        scores = self.scores(texts)
        keep = [s >= self.threshold for s in scores]
        dropped = len(keep) - sum(keep)
        if dropped:
            self.stats.dropped[self.score_key] = self.stats.dropped.get(self.score_key, 0) + dropped
        self.stats.documents += len(texts)
        self.stats.kept += sum(keep)
        self.stats.seconds += time.perf_counter() - t0
        return keep, scores


# --------------------------------------------------------------------------------------------
# Training (DCLM's recipe)

_WS = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _dedup_key(text: str) -> str:
    return text.lower()


def _metrics(gold: list[str], pred: list[str], labels: list[str]) -> dict[str, Any]:
    per: dict[str, Any] = {}
    for lab in labels:
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == lab and p == lab)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if g != lab and p == lab)
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if g == lab and p != lab)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per[lab] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}
    acc = sum(1 for g, p in zip(gold, pred, strict=True) if g == p) / len(gold) if gold else 0.0
    return {"accuracy": round(acc, 4), "labels": per}


def _read_texts(paths: Sequence[str | os.PathLike[str]], text_key: str) -> list[str]:
    """Texts of JSONL/Parquet records (``text_key``) and ``.txt`` files (one document per line),
    read in Rust."""
    from tamis import _core

    texts: list[str] = []
    for batch in _core.TextBatches([os.fspath(p) for p in paths], text_key):
        texts += batch
    return texts


# glibc's mallopt parameter: allocated bytes are set to the complement of its low byte.
_M_PERTURB = -6


@contextlib.contextmanager
def _zeroed_allocations() -> Iterator[bool]:
    """Make ``malloc`` hand out zeroed memory while fastText trains; yields whether it could.

    fastText since its 2024 "predict faster" change (what fasttext-numpy2-wheel 0.9.2 builds)
    allocates the input matrix (words + hash buckets) without initializing it, and
    ``DenseMatrix::uniform`` fills only ``thread/10`` of it with random values: the rest is what
    the heap held. In a fresh process that is zeros (new pages), but after earlier allocations
    it is stale data, so training with ``thread=1`` and a fixed seed gave a different model on
    every call in the same process and, when the stale bytes were huge or NaN, failed with
    "Encountered NaN". glibc's ``M_PERTURB`` set to 0xFF zero-fills every allocation (fresh
    ``mmap`` pages are zero already), which restores the fresh-process state: the same model
    every time. It is restored on exit. Elsewhere (not glibc) this yields ``False``.
    """
    libc = None
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            libc = None
    if libc is None or libc.mallopt(_M_PERTURB, 0xFF) != 1:
        yield False
        return
    try:
        yield True
    finally:
        libc.mallopt(_M_PERTURB, 0)


def train(
    positive: Sequence[str | os.PathLike[str]],
    negative: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    positive_label: str = "hq",
    negative_label: str = "cc",
    text_key: str = "text",
    test_fraction: float = 0.1,
    max_per_class: int | None = None,
    epoch: int = 5,
    lr: float = 0.1,
    word_ngrams: int = 2,
    dim: int = 100,
    min_count: int = 1,
    bucket: int = 2_000_000,
    seed: int = 0,
    threads: int = 1,
    quantize: bool = False,
) -> dict[str, Any]:
    """Train a fastText quality classifier from positive and negative documents (JSONL/Parquet
    files with ``text_key``, or ``.txt`` files with one document per line) and save it to
    ``output`` atomically.

    The DCLM recipe: whitespace collapsed; exact duplicates removed (and texts found in both
    classes dropped from both); classes balanced by sampling the larger one down (``seed``);
    a held-out ``test_fraction`` split, deduplicated against the training split; a bigram
    softmax classifier (``lr=0.1, epoch=5, wordNgrams=2, dim=100, minCount=1``). Returns counts
    and held-out precision/recall/F1 per label. With ``threads=1`` and a fixed ``seed`` the model
    is the same on every run (on Linux with glibc: see :func:`_zeroed_allocations`).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if positive_label == negative_label:
        raise ValueError("positive_label and negative_label must differ")
    t0 = time.perf_counter()
    rng = random.Random(seed)

    def unique(texts: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for t in texts:
            c = _clean(t)
            if c:
                out.setdefault(_dedup_key(c), c)
        return out

    pos_raw, neg_raw = _read_texts(positive, text_key), _read_texts(negative, text_key)
    pos, neg = unique(pos_raw), unique(neg_raw)
    both = pos.keys() & neg.keys()
    for k in both:
        del pos[k], neg[k]
    n = min(len(pos), len(neg))
    if max_per_class is not None:
        n = min(n, max_per_class)
    if n < 2:
        raise ValueError(
            f"too few distinct documents to train on: {len(pos)} positive and {len(neg)} negative "
            "after deduplication (need at least 2 of each)"
        )
    pos_items = rng.sample(sorted(pos.items()), n)
    neg_items = rng.sample(sorted(neg.items()), n)
    data = [(k, t, positive_label) for k, t in pos_items] + [(k, t, negative_label) for k, t in neg_items]
    rng.shuffle(data)
    n_test = max(1, round(len(data) * test_fraction))
    test, train_items = data[:n_test], data[n_test:]
    train_keys = {k for k, _, _ in train_items}
    held_out = [(k, t, lab) for k, t, lab in test if k not in train_keys]

    fasttext = _fasttext()
    out_path = Path(output)
    with tempfile.TemporaryDirectory(prefix="tamis-ft-") as tmp:
        train_file = os.path.join(tmp, "train.txt")
        with open(train_file, "w", encoding="utf-8") as f:
            for _, t, lab in train_items:
                f.write(f"__label__{lab} {t}\n")
        with _zeroed_allocations() as zeroed:
            attempts = 0
            while True:
                attempts += 1
                try:
                    model = fasttext.train_supervised(
                        input=train_file,
                        lr=lr,
                        epoch=epoch,
                        wordNgrams=word_ngrams,
                        dim=dim,
                        minCount=min_count,
                        bucket=bucket,
                        loss="softmax",
                        thread=threads,
                        seed=seed,
                        verbose=0,
                    )
                    break
                except RuntimeError as e:
                    # Only where memory could not be zeroed (see _zeroed_allocations).
                    if zeroed or "NaN" not in str(e) or attempts >= 10:
                        raise
            if attempts > 1:
                print(f"fastText training: retried after NaN ({attempts} attempts)", file=sys.stderr)
            if quantize:
                model.quantize(input=train_file, retrain=True, thread=threads, verbose=0)
        tmp_model = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
        try:
            model.save_model(os.fspath(tmp_model))
            os.replace(tmp_model, out_path)
        finally:
            if tmp_model.exists():
                tmp_model.unlink()
    gold = [lab for _, _, lab in held_out]
    labels, _ = model.predict([t for _, t, _ in held_out], k=1) if held_out else ([], [])
    pred = [ls[0].removeprefix("__label__") if len(ls) else "" for ls in labels]
    return {
        "model": os.fspath(out_path),
        "positive_documents": len(pos_raw),
        "negative_documents": len(neg_raw),
        "positive_unique": len(pos) + len(both),
        "negative_unique": len(neg) + len(both),
        "in_both_classes": len(both),
        "per_class": n,
        "train_documents": len(train_items),
        "test_documents": len(held_out),
        "test_removed_as_duplicates_of_train": len(test) - len(held_out),
        "held_out": _metrics(gold, pred, [positive_label, negative_label]),
        "attempts": attempts,
        "seconds": round(time.perf_counter() - t0, 3),
    }


# --------------------------------------------------------------------------------------------
# The `tamis filter` command


def cli_train(argv: Sequence[str]) -> int:
    """``tamis filter train ...``; returns the exit code. (``tamis filter language|quality`` are
    the Rust command line's, with the stages of :mod:`tamis.refine.stages`.)"""
    import argparse

    p = argparse.ArgumentParser(
        prog="tamis filter train", description="Train a fastText quality classifier (DCLM recipe)."
    )
    p.add_argument("--positive", nargs="+", required=True, metavar="FILE")
    p.add_argument("--negative", nargs="+", required=True, metavar="FILE")
    p.add_argument("-o", "--output", required=True, help="model file to write (.bin)")
    p.add_argument("--positive-label", default="hq")
    p.add_argument("--negative-label", default="cc")
    p.add_argument("--text-key", default="text")
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument("--max-per-class", type=int, default=None)
    p.add_argument("--epoch", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--word-ngrams", type=int, default=2)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--min-count", type=int, default=1)
    p.add_argument("--bucket", type=int, default=2_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quantize", action="store_true", help="write a smaller quantized model")
    a = p.parse_args(list(argv))
    try:
        report = train(
            a.positive,
            a.negative,
            a.output,
            positive_label=a.positive_label,
            negative_label=a.negative_label,
            text_key=a.text_key,
            test_fraction=a.test_fraction,
            max_per_class=a.max_per_class,
            epoch=a.epoch,
            lr=a.lr,
            word_ngrams=a.word_ngrams,
            dim=a.dim,
            min_count=a.min_count,
            bucket=a.bucket,
            seed=a.seed,
            threads=a.threads,
            quantize=a.quantize,
        )
    except ConfigError as e:
        print(f"tamis: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError, ImportError) as e:
        print(f"tamis: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


__all__ = [
    "LID_MODEL_NAME",
    "FilterConfigError",
    "FilterStats",
    "LanguageFilter",
    "LanguageOptions",
    "QualityFilter",
    "QualityOptions",
    "cli_train",
    "embedded_lid_model",
    "train",
]
