"""Evaluate ProX refining models, and read the SFT data they are trained on (see
``docs/prox-train.md``).

- :func:`evaluate` / ``tamis prox eval``: greedy generation with the inference backend of
  :mod:`tamis.prox_infer`, then :func:`metrics`: document keep/drop F1, chunk line F1 over the
  removed lines, the share of malformed programs (Rust strict parser) and the share of tokens kept.
- :func:`read_records`, :func:`split_records`, :func:`prompt_ids`: the SFT records of ``tamis
  prox annotate`` and their prompts tokenized exactly as :class:`tamis.prox.Refiner` tokenizes
  them at inference (used by :mod:`tamis.prox_train` too).

Programs are parsed by the Rust executor, never evaluated. torch and transformers are imported
only when a model is run (``pip install 'tamis[prox]'``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from tamis import _core
from tamis.errors import TamisError
from tamis.prox import DEFAULT, DOC_MAX_TOKENS, PLAIN, Mode

Stage = Literal["doc", "chunk"]
PathLike = str | os.PathLike[str]
TokenCounter = Callable[[list[str]], Sequence[int]]

#: Inference budgets of :class:`tamis.prox.Refiner` (the reference's): new tokens per stage and
#: the context length.
DOC_MAX_NEW_TOKENS = 2000
CHUNK_MAX_NEW_TOKENS = 256
MAX_MODEL_LEN = 2048

#: Tokenizer files copied from the base directory next to the trained weights.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
)


class ProxDataError(TamisError):
    """SFT or evaluation data that cannot be used (a missing file, a bad line, a record without
    a needed field, mixed stages); the message names the file and line where there is one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.kind = "prox_data"


# --------------------------------------------------------------------------------------------
# Records


@dataclass
class Records:
    """SFT records (parsed JSON objects) and where each came from (``file: line N``)."""

    records: list[dict[str, Any]]
    where: list[str]

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, keep: Iterable[int]) -> Records:
        idx = list(keep)
        return Records([self.records[i] for i in idx], [self.where[i] for i in idx])


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    if path.name.endswith(".zst"):
        try:
            import zstandard
        except ImportError as e:
            raise ProxDataError(f"{path}: reading .zst needs the zstandard package") from e
        return io.TextIOWrapper(
            zstandard.ZstdDecompressor().stream_reader(open(path, "rb")), encoding="utf-8"
        )
    return open(path, encoding="utf-8")


def read_records(path: PathLike, stage: Stage | None = None) -> Records:
    """Read and check an SFT JSONL file (``.jsonl``, ``.jsonl.gz`` or ``.jsonl.zst``). Raises
    :class:`ProxDataError` naming the file and line for anything malformed, and for an empty file."""
    p = Path(path)
    if not p.exists():
        raise ProxDataError(f"{p}: no such file")
    if not p.is_file():
        raise ProxDataError(f"{p}: not a file")
    records: list[dict[str, Any]] = []
    where: list[str] = []
    try:
        with _open_text(p) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ProxDataError(
                        f"{p}: line {n}: not valid JSON ({e.msg}, column {e.colno})"
                    ) from None
                if not isinstance(r, dict):
                    raise ProxDataError(f"{p}: line {n}: expected a JSON object, got {type(r).__name__}")
                records.append(r)
                where.append(f"{p}: line {n}")
    except ProxDataError:
        raise
    except UnicodeDecodeError as e:
        raise ProxDataError(f"{p}: not UTF-8 text ({e.reason})") from None
    except Exception as e:  # I/O and decompression errors (gzip, zstd)
        raise ProxDataError(f"{p}: cannot be read ({type(e).__name__}: {e})") from None
    if not records:
        raise ProxDataError(f"{p}: no records (the file is empty)")
    out = Records(records, where)
    check_records(out, stage)
    return out


def _as_records(data: Records | PathLike | Sequence[dict[str, Any]]) -> Records:
    if isinstance(data, Records):
        return data
    if isinstance(data, (str, os.PathLike)):
        return read_records(data)
    recs = list(data)
    out = Records(recs, [f"record {i}" for i in range(len(recs))])
    check_records(out)
    return out


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_records(records: Records, stage: Stage | None = None) -> None:
    """Check the fields each record needs: ``prompt``, ``program`` and ``text`` (strings),
    ``stage`` (``doc`` or ``chunk``; records without one get ``stage`` where it is given);
    ``prompt_token_ids`` (optional) a list of non-negative integers; chunk records an integer
    ``first_line``."""
    for r, w in zip(records.records, records.where, strict=True):
        if not isinstance(r, dict):
            raise ProxDataError(f"{w}: expected a JSON object")
        s = r.get("stage", stage)
        if "stage" not in r and s is not None:
            r["stage"] = s
        if s not in ("doc", "chunk"):
            what = "no" if "stage" not in r else f"the stage {r['stage']!r}, not"
            raise ProxDataError(f'{w}: {what} "stage": "doc" or "chunk"')
        for k in ("prompt", "program", "text"):
            if k not in r:
                raise ProxDataError(f"{w}: the record has no {k!r}")
            if not isinstance(r[k], str):
                raise ProxDataError(f"{w}: {k!r} is not a string")
        if not r["prompt"]:
            raise ProxDataError(f"{w}: 'prompt' is empty")
        ids = r.get("prompt_token_ids")
        if ids is not None and not (
            isinstance(ids, list) and ids and all(_is_int(x) and x >= 0 for x in ids)
        ):
            raise ProxDataError(f"{w}: 'prompt_token_ids' is not a non-empty list of token ids")
        if s == "chunk":
            fl = r.get("first_line")
            if not isinstance(fl, int) or isinstance(fl, bool) or fl < 0:
                raise ProxDataError(f"{w}: a chunk record needs 'first_line' (a non-negative integer)")


def stage_of(records: Records, stage: Stage | None = None) -> tuple[Stage, Records]:
    """The stage of ``records``: the one they all have (mixed stages are refused), or ``stage``
    (records of the other stage are left out; none left is an error)."""
    if stage is not None:
        if stage not in ("doc", "chunk"):
            raise ProxDataError(f"the stage must be doc or chunk, got {stage!r}")
        keep = [i for i, r in enumerate(records.records) if r.get("stage", stage) == stage]
        if not keep:
            raise ProxDataError(f"no {stage}-stage records")
        return stage, records.subset(keep)
    seen: dict[str, str] = {}
    for r, w in zip(records.records, records.where, strict=True):
        seen.setdefault(r["stage"], w)
    if len(seen) > 1:
        raise ProxDataError(
            "mixed stages: doc records (first at "
            f"{seen['doc']}) and chunk records (first at {seen['chunk']}); train one model per stage "
            "(split the file, or pass --stage)"
        )
    s = next(iter(seen))
    return ("doc" if s == "doc" else "chunk"), records


def split_fraction(doc_id: str) -> float:
    """A number in ``[0, 1)`` fixed by the document id (SHA-256), for deterministic splits;
    every chunk of a document lands on the same side."""
    h = hashlib.sha256(doc_id.encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def split_records(records: Records, fraction: float) -> tuple[Records, Records]:
    """(train, validation): a record goes to validation when ``split_fraction(id) < fraction``."""
    val = [i for i, r in enumerate(records.records) if split_fraction(str(r.get("id", ""))) < fraction]
    vs = set(val)
    return records.subset(i for i in range(len(records)) if i not in vs), records.subset(val)


# --------------------------------------------------------------------------------------------
# Tokenization (mirrors tamis.prox_infer.Refiner)


def _special_id(tokenizer_text: str, content: str) -> int | None:
    for t in json.loads(tokenizer_text).get("added_tokens", []):
        if t["content"] == content:
            return int(t["id"])
    return None


def encode_plain(texts: Sequence[str], tokenizer_text: str, max_tokens: int = 1 << 62) -> list[list[int]]:
    """Token ids of each text without special tokens added (the Rust encoder the refiner uses)."""
    if not texts:
        return []
    enc = _core.prox_doc_prompts(list(texts), tokenizer_text, True, max_tokens, PLAIN._args(), 0)
    return [list(e[0]) for e in enc]


def prompt_ids(records: Records, tokenizer_text: str, *, chunk_extra_bos: bool = True) -> list[list[int]]:
    """What the refining model receives for each record at inference: doc records their
    ``prompt_token_ids`` (or, without them, the prompt encoded and right-truncated at 2000
    tokens); chunk records the prompt string encoded without special tokens, after one more BOS
    (``chunk_extra_bos``; the reference's vLLM added it)."""
    out: list[list[int]] = [[] for _ in records.records]
    need_doc = [
        i for i, r in enumerate(records.records) if r["stage"] == "doc" and not r.get("prompt_token_ids")
    ]
    chunk = [i for i, r in enumerate(records.records) if r["stage"] == "chunk"]
    for i, ids in zip(
        need_doc,
        encode_plain([records.records[i]["prompt"] for i in need_doc], tokenizer_text, DOC_MAX_TOKENS),
        strict=True,
    ):
        out[i] = ids
    bos = _special_id(tokenizer_text, "<s>")
    extra = [bos] if chunk_extra_bos and bos is not None else []
    for i, ids in zip(
        chunk, encode_plain([records.records[i]["prompt"] for i in chunk], tokenizer_text), strict=True
    ):
        out[i] = extra + ids
    for i, r in enumerate(records.records):
        if r["stage"] == "doc" and r.get("prompt_token_ids"):
            out[i] = list(r["prompt_token_ids"])
    return out


def check_prompt_ids(records: Records, tokenizer_text: str, vocab_size: int | None = None) -> None:
    """Refuse doc records whose ``prompt_token_ids`` are not what this tokenizer makes of their
    ``prompt`` (checked on prompts that were not truncated), or hold ids past the vocabulary:
    they were annotated with another tokenizer."""
    idx = [
        i
        for i, r in enumerate(records.records)
        if r["stage"] == "doc" and r.get("prompt_token_ids") and not r.get("truncated", False)
    ]
    for i, enc in zip(
        idx, encode_plain([records.records[i]["prompt"] for i in idx], tokenizer_text), strict=True
    ):
        if enc != records.records[i]["prompt_token_ids"]:
            raise ProxDataError(
                f"{records.where[i]}: 'prompt_token_ids' are not this model's tokenization of "
                "'prompt' (annotated with another tokenizer? annotate with the base model's)"
            )
    if vocab_size is not None:
        for r, w in zip(records.records, records.where, strict=True):
            ids = r.get("prompt_token_ids")
            if ids and max(ids) >= vocab_size:
                raise ProxDataError(
                    f"{w}: 'prompt_token_ids' hold id {max(ids)}, past the model's vocabulary "
                    f"({vocab_size}); annotated with another tokenizer?"
                )


# --------------------------------------------------------------------------------------------
# Metrics


def _f1(tp: int, fp: int, fn: int) -> float:
    d = 2 * tp + fp + fn
    return 1.0 if d == 0 else 2 * tp / d


def _chunk_view(r: dict[str, Any]) -> tuple[str, int, int]:
    """(text padded with empty lines so that its line numbers are document-global, first line,
    number of lines)."""
    text = r["text"]
    first = int(r["first_line"])
    n = int(r["lines"]) if _is_int(r.get("lines")) else text.count("\n") + 1
    return "\n" * first + text, first, n


def removed_lines(r: dict[str, Any], program: str, mode: Mode = "compat") -> set[int]:
    """The document-global line indices inside chunk record ``r``'s range that ``program``
    removes (the executor's parse in ``mode``; ``normalize`` calls are not counted)."""
    padded, first, n = _chunk_view(r)
    res = json.loads(_core.prox_explain("chunk", padded, program, mode, DEFAULT._args()))
    out: set[int] = set()
    for a, b in res["removed_lines"]:
        out.update(range(max(a, first), min(b, first + n - 1) + 1))
    return out


def metrics(
    records: Records | Sequence[dict[str, Any]],
    predicted_programs: Sequence[str],
    token_counter: TokenCounter,
    *,
    mode: Mode = "compat",
) -> dict[str, Any]:
    """Scores of predicted programs against the records' target ``program``:

    - ``doc_f1`` (F1 of the keep class), ``doc_drop_f1``, ``doc_accuracy`` over doc records,
      keep/drop decided as the executor in ``mode`` decides (compat: ``drop`` anywhere drops);
    - ``chunk_line_f1`` (with ``chunk_line_precision``, ``chunk_line_recall``): micro F1 over
      chunk records of the sets of removed document-global lines inside each chunk's range;
      ``normalize`` is not scored; 1.0 when neither side removes any line (precision: 1.0
      without predicted lines only when no line should go; recall likewise);
    - ``malformed_rate``: the share of predicted programs the strict parser reports errors for
      (chunk programs read with document-global line numbers, so a line past the chunk's last
      line is an error);
    - ``kept_token_ratio``: tokens of what the predictions keep (doc: the whole text or nothing;
      chunk: the kept lines joined with ``\\n``) over tokens of all record texts, counted by
      ``token_counter`` (a list of texts -> a list of counts); ``target_kept_token_ratio`` the
      same for the target programs;
    - ``doc_records``, ``chunk_records``, ``malformed``. A stage without records gives nulls.
    """
    recs = _as_records(records)
    preds = list(predicted_programs)
    if len(preds) != len(recs):
        raise ValueError(f"{len(preds)} predicted programs for {len(recs)} records")
    rs = recs.records
    doc = [i for i, r in enumerate(rs) if r["stage"] == "doc"]
    chunk = [i for i, r in enumerate(rs) if r["stage"] == "chunk"]
    accept = DEFAULT._args()
    kept_pred = [""] * len(rs)
    kept_gold = [""] * len(rs)
    malformed = 0
    m: dict[str, Any] = {"doc_records": len(doc), "chunk_records": len(chunk)}
    if doc:
        texts = [rs[i]["text"] for i in doc]
        # The decision alone: a placeholder text, so that an empty text still gets one.
        probe = ["x"] * len(doc)
        pred = _core.prox_outcomes("doc", probe, [preds[i] for i in doc], mode, accept, 0)
        gold = _core.prox_outcomes("doc", probe, [rs[i]["program"] for i in doc], mode, accept, 0)
        strict = _core.prox_outcomes("doc", probe, [preds[i] for i in doc], "strict", accept, 0)
        malformed += sum(1 for s in strict if s[3] > 0)
        tp = fp = fn = tn = 0
        for i, t, p, g in zip(doc, texts, pred, gold, strict=True):
            pk, gk = p[1] != "dropped", g[1] != "dropped"
            tp += pk and gk
            fp += pk and not gk
            fn += gk and not pk
            tn += not pk and not gk
            kept_pred[i] = t if pk else ""
            kept_gold[i] = t if gk else ""
        m.update(
            doc_f1=_f1(tp, fp, fn),
            doc_drop_f1=_f1(tn, fn, fp),
            doc_accuracy=(tp + tn) / len(doc),
        )
    else:
        m.update(doc_f1=None, doc_drop_f1=None, doc_accuracy=None)
    if chunk:
        tp = fp = fn = 0
        padded = []
        for i in chunk:
            r = rs[i]
            pset = removed_lines(r, preds[i], mode)
            gset = removed_lines(r, r["program"], mode)
            tp += len(pset & gset)
            fp += len(pset - gset)
            fn += len(gset - pset)
            _, first, _ = _chunk_view(r)
            lines = r["text"].split("\n")
            kept_pred[i] = "\n".join(x for k, x in enumerate(lines) if first + k not in pset)
            kept_gold[i] = "\n".join(x for k, x in enumerate(lines) if first + k not in gset)
            padded.append(_chunk_view(r)[0])
        strict = _core.prox_outcomes("chunk", padded, [preds[i] for i in chunk], "strict", accept, 0)
        malformed += sum(1 for s in strict if s[3] > 0)
        m.update(
            chunk_line_f1=_f1(tp, fp, fn),
            chunk_line_precision=tp / (tp + fp) if tp + fp else float(fn == 0),
            chunk_line_recall=tp / (tp + fn) if tp + fn else float(fp == 0),
        )
    else:
        m.update(chunk_line_f1=None, chunk_line_precision=None, chunk_line_recall=None)
    m["malformed"] = malformed
    m["malformed_rate"] = malformed / len(rs) if rs else None
    if rs:
        total = sum(token_counter([r["text"] for r in rs]))
        kp = sum(token_counter(kept_pred))
        kg = sum(token_counter(kept_gold))
        m["kept_token_ratio"] = kp / total if total else None
        m["target_kept_token_ratio"] = kg / total if total else None
    else:
        m["kept_token_ratio"] = m["target_kept_token_ratio"] = None
    return m


# --------------------------------------------------------------------------------------------
# Evaluation


def generate_programs(
    model: PathLike,
    records: Records | PathLike | Sequence[dict[str, Any]],
    *,
    device: str | None = None,
    dtype: str | None = None,
    max_new_tokens: int | None = None,
    batch_tokens: int = 65536,
    chunk_extra_bos: bool = True,
    max_model_len: int = MAX_MODEL_LEN,
) -> tuple[list[str], dict[str, Any]]:
    """Greedy programs of ``model`` for each record (prompts as the refiner builds them, outputs
    stripped of spaces), and generation stats (``seconds``, ``generated_tokens``,
    ``skipped_prompts``: prompts that leave no room under ``max_model_len``, given no program).
    New tokens: ``max_new_tokens``, or the refiner's defaults (doc 2000, chunk 256)."""
    from tamis.prox_infer import TransformersBackend, resolve_model, tokenizer_json

    recs = _as_records(records)
    t0 = time.perf_counter()
    path = resolve_model(model)
    tok = tokenizer_json(path)
    with _no_progress_bars():
        backend = TransformersBackend(path, tok, device=device, dtype=dtype, batch_tokens=batch_tokens)
    ids = prompt_ids(recs, tok, chunk_extra_bos=chunk_extra_bos)
    budgets = []
    for r, x in zip(recs.records, ids, strict=True):
        cap = max_new_tokens or (DOC_MAX_NEW_TOKENS if r["stage"] == "doc" else CHUNK_MAX_NEW_TOKENS)
        budgets.append(min(cap, max_model_len - len(x)))
    gen = backend.generate(ids, budgets)
    programs = [t.strip(" ") for t in gen.texts]
    stats = {
        "seconds": round(time.perf_counter() - t0, 3),
        "generated_tokens": sum(gen.tokens),
        "skipped_prompts": sum(1 for b in budgets if b <= 0),
    }
    del backend
    return programs, stats


def token_counter(model: PathLike) -> TokenCounter:
    """A token counter with ``model``'s tokenizer (no special tokens; Rust, in parallel)."""
    from tamis.prox_infer import resolve_model, tokenizer_json

    tok = tokenizer_json(resolve_model(model))
    return lambda texts: _core.prox_token_counts(list(texts), tok, True, 0)


def evaluate(
    model: PathLike,
    records: Records | PathLike | Sequence[dict[str, Any]],
    *,
    device: str | None = None,
    dtype: str | None = None,
    max_new_tokens: int | None = None,
    batch_tokens: int = 65536,
    mode: Mode = "compat",
    chunk_extra_bos: bool = True,
    max_model_len: int = MAX_MODEL_LEN,
) -> dict[str, Any]:
    """Generate with ``model`` (a local directory) on ``records`` (a JSONL path, or record
    dicts) and score the programs with :func:`metrics`; adds ``model``, ``seconds``,
    ``generated_tokens`` and ``skipped_prompts``."""
    recs = _as_records(records)
    programs, stats = generate_programs(
        model,
        recs,
        device=device,
        dtype=dtype,
        max_new_tokens=max_new_tokens,
        batch_tokens=batch_tokens,
        chunk_extra_bos=chunk_extra_bos,
        max_model_len=max_model_len,
    )
    m = metrics(recs, programs, token_counter(model), mode=mode)
    return {"model": os.fspath(model), **m, **stats}



@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers' loading/saving progress bars off (restored afterwards)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


_TABLE_ROWS = (
    "doc_records",
    "chunk_records",
    "doc_f1",
    "doc_drop_f1",
    "doc_accuracy",
    "chunk_line_f1",
    "chunk_line_precision",
    "chunk_line_recall",
    "malformed_rate",
    "kept_token_ratio",
    "target_kept_token_ratio",
    "generated_tokens",
    "seconds",
)


# --------------------------------------------------------------------------------------------
# Command line


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit code 1, not argparse's 2
        raise _UsageError(message)


def _run(prog: str, parser: _Parser, argv: Sequence[str], body: Callable[[argparse.Namespace], int]) -> int:
    from tamis.errors import TamisError

    try:
        args = parser.parse_args(list(argv))
    except _UsageError as e:
        parser.print_usage(sys.stderr)
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except SystemExit as e:  # --help
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    try:
        return body(args)
    except ImportError as e:
        print(f"{prog}: {e}; install 'tamis[prox]'", file=sys.stderr)
        return 1
    except (ProxDataError, TamisError, OSError, ValueError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1



def format_table(results: Sequence[dict[str, Any]]) -> str:
    """Metrics of several models side by side (one column per model, headed by the model
    directory's name, or its path where names repeat)."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4f}"
        return str(v)

    names = [str(r.get("model", "")) for r in results]
    short = [Path(n).name or n for n in names]
    header = ["metric", *(short if len(set(short)) == len(short) else names)]
    rows = [header] + [[k, *(cell(r.get(k)) for r in results)] for k in _TABLE_ROWS]
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(x.ljust(widths[c]) if c == 0 else x.rjust(widths[c]) for c, x in enumerate(row))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cli_eval(argv: Sequence[str]) -> int:
    """``tamis prox eval``; returns the exit code."""
    p = _Parser(
        prog="tamis prox eval",
        description="Score ProX refining models on annotated JSONL (greedy generation).",
    )
    p.add_argument("--model", action="append", required=True, help="model directory (repeatable)")
    p.add_argument("--data", required=True, help="JSONL in the SFT format (tamis prox annotate)")
    p.add_argument("--json", action="store_true", help="print JSON (an object, or a list for several models)")
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when available)")
    p.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"])
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: doc 2000, chunk 256")
    p.add_argument("--batch-tokens", type=int, default=65536)
    p.add_argument("--mode", choices=["compat", "strict"], default="compat", help="executor parse")
    p.add_argument("--no-chunk-extra-bos", action="store_true", help="no extra BOS before chunk prompts")

    def body(a: argparse.Namespace) -> int:
        if a.max_new_tokens is not None and a.max_new_tokens < 1:
            raise ProxDataError("--max-new-tokens must be >= 1")
        records = read_records(a.data)
        with _no_progress_bars():
            results = [
                evaluate(
                    m,
                    records,
                    device=a.device,
                    dtype=a.dtype,
                    max_new_tokens=a.max_new_tokens,
                    batch_tokens=a.batch_tokens,
                    mode=a.mode,
                    chunk_extra_bos=not a.no_chunk_extra_bos,
                )
                for m in a.model
            ]
        if a.json:
            print(json.dumps(results[0] if len(results) == 1 else results))
        else:
            print(format_table(results))
        return 0

    return _run("tamis prox eval", p, argv, body)


__all__ = [
    "ProxDataError",
    "Records",
    "check_records",
    "cli_eval",
    "encode_plain",
    "evaluate",
    "format_table",
    "generate_programs",
    "metrics",
    "prompt_ids",
    "read_records",
    "removed_lines",
    "split_fraction",
    "split_records",
    "stage_of",
    "token_counter",
]
