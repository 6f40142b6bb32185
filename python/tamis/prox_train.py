"""Train ProX refining models: full-parameter supervised fine-tuning (SFT) of a causal LM on
the JSONL written by ``tamis prox annotate``, as the paper does it (full parameters, AdamW, cosine
learning rate ``lr -> min_lr``, a few epochs, the epoch with the best validation F1 kept), on
prompts tokenized exactly as :class:`tamis.prox.Refiner` tokenizes them at inference. Validation
and ``tamis prox eval`` live in :mod:`tamis.prox_eval` (see ``docs/prox-train.md``).

torch and transformers are imported only when a model is trained (``pip install 'tamis[prox]'``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tamis.prox_eval import (
    CHUNK_MAX_NEW_TOKENS,
    DOC_MAX_NEW_TOKENS,
    MAX_MODEL_LEN,
    TOKENIZER_FILES,
    PathLike,
    ProxDataError,
    Records,
    Stage,
    _no_progress_bars,
    _Parser,
    _run,
    _special_id,
    check_prompt_ids,
    encode_plain,
    evaluate,
    prompt_ids,
    read_records,
    split_records,
    stage_of,
)

# --------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainOptions:
    """Options of :func:`train` (``tamis prox train``). Defaults follow the paper's recipe
    (ProX A.2: full-parameter SFT, 3-5 epochs, cosine learning rate 1e-5 -> 1e-6, checkpoint
    chosen by validation F1); batches are token budgets instead of 64 sequences.

    - ``data``: SFT JSONL; ``val``: validation JSONL, or else ``val_fraction`` of the documents
      of ``data`` (by a hash of the id; 0 for none: the last epoch is kept);
    - ``base``: a local model directory (``config.json``, ``*.safetensors``, ``tokenizer.json``);
      ``output``: the directory written (atomically) with the kept weights, tokenizer files and
      ``train_log.json``;
    - ``stage``: ``doc`` or ``chunk`` (default: the data's; mixed data is refused);
    - ``batch_tokens``: padded tokens per optimizer step (sequences sorted by length into
      buckets, shuffled with ``seed``); ``micro_batch_tokens``: padded tokens per forward pass
      (gradient accumulation; default: ``batch_tokens``);
    - ``min_lr``: the end of the cosine (default ``lr / 10``); ``warmup_ratio``: linear warmup
      over that share of the steps; ``max_length``: longer examples are left out (counted);
    - ``val_max_new_tokens``: the generation budget for validation (default: the longest
      validation target + 16 tokens, at most the refiner's budget for the stage);
    - ``device``: ``cuda``, ``cuda:N`` or ``cpu`` (default: cuda when available); bf16 autocast
      on CUDA, fp32 on CPU; weights are kept and saved in fp32.
    """

    data: PathLike
    base: PathLike
    output: PathLike
    val: PathLike | None = None
    val_fraction: float = 0.1
    stage: Stage | None = None
    epochs: int = 3
    lr: float = 1e-5
    min_lr: float | None = None
    batch_tokens: int = 65536
    micro_batch_tokens: int | None = None
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    device: str | None = None
    max_length: int = MAX_MODEL_LEN
    chunk_extra_bos: bool = True
    val_max_new_tokens: int | None = None
    eval_batch_tokens: int = 65536
    overwrite: bool = False
    verbose: bool = False


def _check_options(o: TrainOptions) -> None:
    def bad(msg: str) -> None:
        raise ProxDataError(msg)

    if o.epochs < 1:
        bad("epochs must be >= 1")
    if not o.lr > 0:
        bad("lr must be > 0")
    if o.min_lr is not None and not 0 <= o.min_lr <= o.lr:
        bad("min_lr must be between 0 and lr")
    if o.batch_tokens < 1 or (o.micro_batch_tokens is not None and o.micro_batch_tokens < 1):
        bad("batch_tokens and micro_batch_tokens must be >= 1")
    if not 0 <= o.warmup_ratio < 1:
        bad("warmup_ratio must be in [0, 1)")
    if not 0 <= o.val_fraction < 1:
        bad("val_fraction must be in [0, 1)")
    if o.weight_decay < 0 or o.max_grad_norm < 0:
        bad("weight_decay and max_grad_norm must be >= 0")
    if o.max_length < 2:
        bad("max_length must be >= 2")
    if o.stage is not None and o.stage not in ("doc", "chunk"):
        bad(f"stage must be doc or chunk, got {o.stage!r}")


def check_base(base: PathLike) -> Path:
    """A base model directory usable for training: ``config.json``, ``*.safetensors`` weights
    and ``tokenizer.json``."""
    from tamis.errors import ProxModelError

    p = Path(base)
    if not p.is_dir():
        raise ProxModelError(f"base model {os.fspath(p)!r}: no such directory")
    if not (p / "config.json").is_file():
        raise ProxModelError(f"base model {os.fspath(p)!r}: no config.json")
    if not any(p.glob("*.safetensors")):
        raise ProxModelError(
            f"base model {os.fspath(p)!r}: no *.safetensors weights (only safetensors are loaded)"
        )
    if not (p / "tokenizer.json").is_file():
        raise ProxModelError(f"base model {os.fspath(p)!r}: no tokenizer.json")
    return p


def plan_train_batches(
    lengths: Sequence[int], batch_tokens: int, seed: int, epoch: int, bucket: int = 16
) -> list[list[int]]:
    """One epoch's batches: examples sorted by length bucket (``length // bucket``; a seeded
    random order inside a bucket), cut so that ``rows * longest <= batch_tokens`` (at least one
    row), then the batches shuffled. Deterministic for ``(seed, epoch)``."""
    rng = random.Random(f"tamis-prox-train:{seed}:{epoch}")
    keys = [(n // bucket, rng.random(), i) for i, n in enumerate(lengths)]
    batches: list[list[int]] = []
    cur: list[int] = []
    width = 0
    for _, _, i in sorted(keys):
        w = max(width, lengths[i])
        if cur and (len(cur) + 1) * w > batch_tokens:
            batches.append(cur)
            cur, w = [], lengths[i]
        cur.append(i)
        width = w
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def _micro(rows: list[int], lengths: Sequence[int], budget: int) -> list[list[int]]:
    out: list[list[int]] = []
    cur: list[int] = []
    width = 0
    for i in sorted(rows, key=lambda i: -lengths[i]):
        w = max(width, lengths[i])
        if cur and (len(cur) + 1) * w > budget:
            out.append(cur)
            cur, w = [], lengths[i]
        cur.append(i)
        width = w
    if cur:
        out.append(cur)
    return out


def lr_at(step: int, total: int, lr: float, min_lr: float, warmup: int) -> float:
    """Linear warmup over ``warmup`` steps, then cosine from ``lr`` to ``min_lr`` at the last step."""
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, total - warmup - 1)
    progress = min(1.0, (step - warmup) / span)
    return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def _log(o: TrainOptions, msg: str) -> None:
    if o.verbose:
        print(f"tamis prox train: {msg}", file=sys.stderr, flush=True)


def _save(model: Any, path: Path, base: Path) -> None:
    import inspect

    kw: dict[str, Any] = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kw["safe_serialization"] = True
    model.save_pretrained(path, **kw)
    for name in TOKENIZER_FILES:
        if (base / name).is_file():
            shutil.copyfile(base / name, path / name)


def _warn_round_trip(records: Records, target_ids: Sequence[Sequence[int]], tokenizer_text: str) -> None:
    """Warn when target programs do not come back unchanged from the tokenizer (encode, then
    decode as inference does): the model cannot learn to write those exactly."""
    from tokenizers import Tokenizer

    tk = Tokenizer.from_str(tokenizer_text)
    decoded = tk.decode_batch([list(x) for x in target_ids], skip_special_tokens=True)
    bad = [
        (w, r["program"], d)
        for r, w, d in zip(records.records, records.where, decoded, strict=True)
        if d.strip(" ") != r["program"].strip(" ")
    ]
    if bad:
        w, prog, d = bad[0]
        print(
            f"tamis prox train: warning: {len(bad)} of {len(records)} target programs change when "
            f"encoded and decoded with the base tokenizer (first at {w}: {prog[:80]!r} -> {d[:80]!r}); "
            "the model cannot learn to write them exactly",
            file=sys.stderr,
        )




def train(options: TrainOptions) -> dict[str, Any]:
    """Fine-tune ``options.base`` on ``options.data`` and write the epoch with the best
    validation F1 (doc: ``doc_f1``; chunk: ``chunk_line_f1``) to ``options.output``; returns the
    training log (also written to ``OUTPUT/train_log.json``)."""
    with _no_progress_bars():
        return _train(options)


def _train(options: TrainOptions) -> dict[str, Any]:
    o = options
    _check_options(o)
    base = check_base(o.base)
    out = Path(o.output)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())) and not o.overwrite:
        raise ProxDataError(f"{out}: exists and is not empty (pass --overwrite to replace it)")
    data = read_records(o.data, o.stage)
    if o.val is not None:
        val = read_records(o.val, o.stage)
        # Mixed stages are refused across both files unless --stage picks one.
        stage, _ = stage_of(Records(data.records + val.records, data.where + val.where), o.stage)
        _, data = stage_of(data, stage)
        try:
            _, val = stage_of(val, stage)
        except ProxDataError:
            raise ProxDataError(f"{o.val}: no {stage}-stage records") from None
    else:
        stage, data = stage_of(data, o.stage)
        data, val = split_records(data, o.val_fraction) if o.val_fraction > 0 else (data, Records([], []))
    if not data.records:
        raise ProxDataError("no training records left after the validation split")
    if o.val_fraction > 0 and o.val is None and not val.records:
        print(
            f"tamis prox train: warning: --val-fraction {o.val_fraction} put no document into "
            "validation; the last epoch is kept",
            file=sys.stderr,
        )

    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import AutoModelForCausalLM

    tok = (base / "tokenizer.json").read_text(encoding="utf-8")
    torch.manual_seed(o.seed)
    device = torch.device(o.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    from tamis.errors import ProxModelError

    try:
        model: Any = AutoModelForCausalLM.from_pretrained(
            base,
            **{dtype_kw: torch.float32},
            use_safetensors=True,
            trust_remote_code=False,
            local_files_only=True,
        )
    except Exception as e:
        raise ProxModelError(
            f"base model {os.fspath(base)!r} cannot be loaded: {type(e).__name__}: {e}"
        ) from e
    model.to(device)
    vocab_size = int(model.get_input_embeddings().weight.shape[0])
    eos = model.config.eos_token_id
    if isinstance(eos, list):
        eos = eos[0]
    if eos is None:
        eos = _special_id(tok, "</s>")
    if eos is None:
        raise ProxModelError(f"base model {os.fspath(base)!r}: no eos_token_id in config.json")
    pad = model.config.pad_token_id if isinstance(model.config.pad_token_id, int) else int(eos)
    check_prompt_ids(data, tok, vocab_size)
    check_prompt_ids(val, tok, vocab_size)

    # Examples: prompt ids as at inference; target = program + EOS; loss on the target only.
    p_ids = prompt_ids(data, tok, chunk_extra_bos=o.chunk_extra_bos)
    t_ids = encode_plain([r["program"] for r in data.records], tok)
    _warn_round_trip(data, t_ids, tok)
    examples: list[tuple[list[int], int]] = []
    too_long = 0
    for p, t in zip(p_ids, t_ids, strict=True):
        seq = p + t + [int(eos)]
        if len(seq) > o.max_length:
            too_long += 1
            continue
        examples.append((seq, len(p)))
    if too_long:
        print(
            f"tamis prox train: warning: {too_long} of {len(p_ids)} training examples are longer "
            f"than --max-length {o.max_length} tokens and are left out",
            file=sys.stderr,
        )
    if not examples:
        raise ProxDataError(f"every training example is longer than max_length ({o.max_length})")
    lengths = [len(s) for s, _ in examples]
    plans = [plan_train_batches(lengths, o.batch_tokens, o.seed, e) for e in range(o.epochs)]
    total_steps = sum(len(p) for p in plans)
    warmup = math.ceil(o.warmup_ratio * total_steps)
    min_lr = o.lr / 10 if o.min_lr is None else o.min_lr
    micro_budget = o.micro_batch_tokens or o.batch_tokens

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    opt_kw: dict[str, Any] = {"betas": (0.9, 0.999), "eps": 1e-8}
    if device.type == "cuda":
        opt_kw["fused"] = True
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": o.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=o.lr,
        **opt_kw,
    )
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    head = model.get_output_embeddings()
    fast = (
        decoder is not None
        and head is not None
        and not getattr(model.config, "final_logit_softcapping", None)
        and model.config.model_type
        in ("llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "olmo", "olmo2")
    )
    autocast = device.type == "cuda"

    def batch_tensors(rows: list[int]) -> tuple[Any, Any, Any]:
        width = max(lengths[i] for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for j, i in enumerate(rows):
            seq, n_prompt = examples[i]
            ids[j, : len(seq)] = torch.tensor(seq)
            mask[j, : len(seq)] = 1
            # Position t predicts token t + 1: label the positions before each target token.
            labels[j, n_prompt - 1 : len(seq) - 1] = torch.tensor(seq[n_prompt:])
        return ids.to(device), mask.to(device), labels.to(device)

    def loss_sum(ids: Any, mask: Any, labels: Any) -> Any:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            if fast:
                assert decoder is not None and head is not None
                h = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
                sel = labels != -100
                logits = head(h[sel])
                return F.cross_entropy(logits.float(), labels[sel], reduction="sum")
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            return F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum"
            )

    val_targets = encode_plain([r["program"] for r in val.records], tok) if val.records else []
    metric = "doc_f1" if stage == "doc" else "chunk_line_f1"
    stage_cap = DOC_MAX_NEW_TOKENS if stage == "doc" else CHUNK_MAX_NEW_TOKENS
    val_budget = o.val_max_new_tokens or min(stage_cap, max((len(t) for t in val_targets), default=0) + 17)

    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    log: dict[str, Any] = {
        "stage": stage,
        "base": os.fspath(base),
        "data": os.fspath(o.data),
        "val": os.fspath(o.val) if o.val is not None else None,
        "options": {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in asdict(o).items()},
        "min_lr": min_lr,
        "device": str(device),
        "train_records": len(data),
        "train_examples": len(examples),
        "skipped_too_long": too_long,
        "val_records": len(val),
        "val_max_new_tokens": val_budget if val.records else None,
        "steps": total_steps,
        "warmup_steps": warmup,
        "metric": metric,
        "epochs": [],
    }
    _log(
        o,
        f"{stage} stage: {len(examples)} training examples, {len(val)} validation records, "
        f"{total_steps} steps on {device}",
    )
    t_start = time.perf_counter()
    best: tuple[float, int] | None = None
    kept: Path | None = None
    step = 0
    try:
        for epoch in range(o.epochs):
            model.train()
            t0 = time.perf_counter()
            loss_total = 0.0
            target_total = 0
            token_total = 0
            for rows in plans[epoch]:
                n_target = sum(lengths[i] - examples[i][1] for i in rows)
                cur_lr = lr_at(step, total_steps, o.lr, min_lr, warmup)
                for g in optimizer.param_groups:
                    g["lr"] = cur_lr
                optimizer.zero_grad(set_to_none=True)
                batch_loss = 0.0
                for part in _micro(rows, lengths, micro_budget):
                    ids, mask, labels = batch_tensors(part)
                    loss = loss_sum(ids, mask, labels)
                    (loss / n_target).backward()
                    batch_loss += float(loss.detach())
                if o.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), o.max_grad_norm)
                optimizer.step()
                step += 1
                loss_total += batch_loss
                target_total += n_target
                token_total += sum(lengths[i] for i in rows)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - t0
            entry: dict[str, Any] = {
                "epoch": epoch + 1,
                "loss": loss_total / target_total,
                "steps": len(plans[epoch]),
                "tokens": token_total,
                "target_tokens": target_total,
                "seconds": round(seconds, 3),
                "tokens_per_s": round(token_total / seconds, 1) if seconds > 0 else None,
                "lr_end": lr_at(step - 1, total_steps, o.lr, min_lr, warmup),
            }
            ckpt = tmp / f"epoch-{epoch + 1}"
            model.eval()
            _save(model, ckpt, base)
            score: float | None = None
            if val.records:
                t1 = time.perf_counter()
                m = evaluate(
                    ckpt,
                    val,
                    device=str(device),
                    max_new_tokens=val_budget,
                    batch_tokens=o.eval_batch_tokens,
                    chunk_extra_bos=o.chunk_extra_bos,
                )
                m.pop("model", None)
                entry["val"] = m
                entry["val_seconds"] = round(time.perf_counter() - t1, 3)
                score = m[metric]
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            log["epochs"].append(entry)
            val_msg = f", val {metric} {score:.4f}" if score is not None else ""
            _log(
                o,
                f"epoch {epoch + 1}/{o.epochs}: loss {entry['loss']:.4f}, "
                f"{entry['tokens_per_s']} tokens/s{val_msg}",
            )
            # The best validation score wins (the earlier epoch on a tie); without validation,
            # the last epoch.
            s = score if score is not None else float(epoch)
            if best is None or s > best[0]:
                if kept is not None:
                    shutil.rmtree(kept)
                best, kept = (s, epoch + 1), ckpt
            else:
                shutil.rmtree(ckpt)
        assert best is not None and kept is not None
        log["kept_epoch"] = best[1]
        log["best"] = log["epochs"][best[1] - 1].get("val", {}).get(metric)
        log["seconds"] = round(time.perf_counter() - t_start, 3)
        (kept / "train_log.json").write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            old = tmp / "old"
            os.replace(out, old)
        os.replace(kept, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _log(o, f"kept epoch {log['kept_epoch']} -> {out}")
    return log



def cli_train(argv: Sequence[str]) -> int:
    """``tamis prox train``; returns the exit code."""
    d = TrainOptions(data="", base="", output="")
    p = _Parser(
        prog="tamis prox train",
        description="Fine-tune a ProX refining model (full-parameter SFT) on annotated JSONL.",
    )
    p.add_argument("--data", required=True, help="SFT JSONL (tamis prox annotate)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--val", default=None, help="validation JSONL")
    g.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help=f"share of documents held out for validation, by id hash (default {d.val_fraction}; 0: none)",
    )
    p.add_argument("--base", required=True, help="base model directory (safetensors + tokenizer.json)")
    p.add_argument("-o", "--output", required=True, help="directory to write the kept checkpoint to")
    p.add_argument("--stage", choices=["doc", "chunk"], default=None, help="default: the data's")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--min-lr", type=float, default=None, help="end of the cosine (default: lr/10)")
    p.add_argument("--batch-tokens", type=int, default=d.batch_tokens, help="padded tokens per step")
    p.add_argument("--micro-batch-tokens", type=int, default=None, help="padded tokens per forward pass")
    p.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--max-grad-norm", type=float, default=d.max_grad_norm)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when available)")
    p.add_argument("--max-length", type=int, default=d.max_length, help="longer examples are left out")
    p.add_argument("--val-max-new-tokens", type=int, default=None)
    p.add_argument("--eval-batch-tokens", type=int, default=d.eval_batch_tokens)
    p.add_argument("--no-chunk-extra-bos", action="store_true", help="no extra BOS before chunk prompts")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")

    def body(a: argparse.Namespace) -> int:
        log = train(
            TrainOptions(
                data=a.data,
                base=a.base,
                output=a.output,
                val=a.val,
                val_fraction=0.0 if a.val else a.val_fraction,
                stage=a.stage,
                epochs=a.epochs,
                lr=a.lr,
                min_lr=a.min_lr,
                batch_tokens=a.batch_tokens,
                micro_batch_tokens=a.micro_batch_tokens,
                warmup_ratio=a.warmup_ratio,
                weight_decay=a.weight_decay,
                max_grad_norm=a.max_grad_norm,
                seed=a.seed,
                device=a.device,
                max_length=a.max_length,
                chunk_extra_bos=not a.no_chunk_extra_bos,
                val_max_new_tokens=a.val_max_new_tokens,
                eval_batch_tokens=a.eval_batch_tokens,
                overwrite=a.overwrite,
                verbose=not a.quiet,
            )
        )
        best = log.get("best")
        score = f" ({log['metric']} {best:.4f})" if isinstance(best, float) else ""
        print(f"kept epoch {log['kept_epoch']}{score}: {a.output}")
        return 0

    return _run("tamis prox train", p, argv, body)





__all__ = [
    "TrainOptions",
    "check_base",
    "cli_train",
    "lr_at",
    "plan_train_batches",
    "train",
]
