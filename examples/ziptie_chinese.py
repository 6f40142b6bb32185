"""Teach a tiny English LM Traditional Chinese: extend its tokenizer, initialize the new
embedding rows with each method, and compare bits per byte before and after a short continued
training.

1. Trains a byte-level BPE tokenizer (``--vocab-size``) and a small Llama-style model (untied
   embeddings) on English: Python's documentation (``pydoc_data.topics``) and, where installed,
   the Linux man-pages (sections 2, 4, 5, 7 of Debian's ``manpages``); saved with
   ``save_pretrained`` (safetensors).
2. Extends the tokenizer with ``--new-tokens`` Traditional Chinese tokens (``tamis.vocab.extend``,
   continued BPE on Debian's ``manpages-zh`` zh_TW pages; English ids protected).
3. For each method writes a checkpoint with ``tamis.embed.init_checkpoint`` and measures bits per
   byte (``tamis.embed.bits_per_byte``) on held-out Chinese and English pages, then trains each
   one for ``--continue-steps`` steps (same seed, same batches, mostly Chinese) and measures
   again. A reference row continues the original model with the original tokenizer.
   ``--freeze-old-rows``: the continued training of each method updates only the new rows of the
   input embedding and lm_head (``tamis.embed.freeze_old_rows``; the rest of the model trains as
   before); the reference row, which has no new rows, trains as usual.

Held-out text is whole pages (``vocab_data.is_heldout``), never seen by tokenizer or model
training. Results are deterministic for a given ``--threads``. Needs torch, transformers,
tokenizers (``pip install 'tamis[prox,vocab]'``) and ``apt-get install manpages-zh``.

Run: python examples/ziptie_chinese.py [--out DIR] [--steps N] [--continue-steps N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tamis.embed  # noqa: E402
import tamis.vocab  # noqa: E402
import vocab_data  # noqa: E402

EOT = "<|endoftext|>"
# (label, method, output_init) for the extended model.
METHODS: list[tuple[str, str, str]] = [
    ("ziptie, output mean", "ziptie", "mean"),
    ("ziptie, output first", "ziptie", "first"),
    ("ziptie, output tie", "ziptie", "tie"),
    ("mean", "mean", "mean"),
    ("mean-resizing", "mean-resizing", "mean"),
    ("random", "random", "mean"),
]
REFERENCE = "no extension (old tokenizer)"

Pages = dict[str, str]


@dataclass
class Corpus:
    train: list[str]
    heldout: list[str]


def english_pages(max_bytes: int) -> Pages:
    """Python's documentation topics, then Linux man-pages (sections 2, 4, 5, 7; whichever are
    installed) in a hash order that mixes sections, up to about ``max_bytes``."""
    from pydoc_data.topics import topics

    pages: Pages = {f"pydoc:{k}": topics[k] for k in sorted(topics)}
    total = sum(len(t.encode()) for t in pages.values())
    man = [p for s in "2457" for p in (vocab_data.MAN_ROOT / f"man{s}").glob("*.gz")]
    man.sort(key=lambda p: hashlib.blake2b(p.name.encode(), digest_size=8).digest())
    for path in man:
        if total >= max_bytes:
            break
        paras = [p for p in vocab_data.page_paragraphs(path) if len(p) >= 20]
        if sum(len(p) for p in paras) >= 200:  # skip ".so" redirections and stubs
            text = "\n".join(paras)
            pages[path.name.removesuffix(".gz")] = text
            total += len(text.encode())
    return pages


def chinese_pages(max_bytes: int | None = None) -> Pages:
    """Debian's zh_TW manual pages, each distinct paragraph once, grouped by page, in sorted
    order; whole pages up to about ``max_bytes``."""
    pages: dict[str, list[str]] = {}
    total = 0
    for page, para in vocab_data.manpage_paragraphs("zh_TW"):
        if page not in pages:
            if max_bytes is not None and total >= max_bytes:
                break
            pages[page] = []
        pages[page].append(para)
        total += len(para.encode())
    return {page: "\n".join(paras) for page, paras in pages.items()}


def split(pages: Pages, heldout_bytes: int) -> Corpus:
    """Whole pages are held out (``is_heldout``; the last page if no name hashes there); the
    held-out text is capped at about ``heldout_bytes`` (the rest of those pages is unused)."""
    names = sorted(pages)
    held = [n for n in names if vocab_data.is_heldout(n)] or names[-1:]
    heldout: list[str] = []
    used = 0
    for n in held:
        if used >= heldout_bytes:
            break
        heldout.append(pages[n])
        used += len(pages[n].encode())
    return Corpus(train=[pages[n] for n in names if n not in set(held)], heldout=heldout)


def write_jsonl(path: Path, texts: Sequence[str]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    return path


def english_tokenizer(texts: Sequence[str], vocab_size: int, path: Path) -> Path:
    """A GPT-2-style byte-level BPE (every byte is a token, so Chinese text is encodable)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.save(str(path))
    return path


def chunks(tokenizer: Path, texts: Sequence[str], seq_len: int) -> Any:
    """The documents encoded, joined with end-of-text, cut into [n, seq_len] training rows."""
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer))
    eot = tok.token_to_id(EOT)
    if eot is None:
        raise ValueError(f"{tokenizer}: no {EOT} token")
    ids: list[int] = []
    for enc in tok.encode_batch(list(texts)):
        ids.extend(enc.ids)
        ids.append(eot)
    n = len(ids) // seq_len
    if n == 0:
        raise ValueError(f"{len(ids)} tokens: not one training row of {seq_len}")
    return torch.tensor(ids[: n * seq_len]).view(n, seq_len)


def batch_order(rows: int, batch: int, steps: int, seed: int) -> Any:
    """[steps, batch] row indices: seeded permutations, one epoch after another."""
    import torch

    g = torch.Generator().manual_seed(seed)
    need = steps * batch
    perms = [torch.randperm(rows, generator=g) for _ in range(math.ceil(need / rows))]
    return torch.cat(perms)[:need].view(steps, batch)


def train(
    model: Any,
    batches: Callable[[int], Any],
    steps: int,
    lr: float,
    max_seconds: float | None = None,
    log: Callable[[str], None] = print,
) -> tuple[int, float]:
    """AdamW, linear warmup (10% of the steps) then cosine decay to lr/10, gradient clip 1.
    Returns (steps done, seconds)."""
    import torch

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, steps // 10)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    start = time.perf_counter()
    done = 0
    for step in range(steps):
        x = batches(step)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        done = step + 1
        elapsed = time.perf_counter() - start
        if step % 50 == 0 or done == steps:
            log(f"  step {done}/{steps}  loss {loss.item():.3f}  {elapsed:.0f} s")
        if max_seconds is not None and elapsed > max_seconds:
            log(f"  stopped by the time limit after {done} steps")
            break
    model.eval()
    return done, time.perf_counter() - start


def embedding_weights(model: Any) -> list[Any]:
    """The input embedding and, if it is another matrix, the lm_head."""
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    return [emb] if out is None or out.weight is emb else [emb, out.weight]


def continued_training(freeze: bool, old_vocab_size: int) -> str:
    if not freeze:
        return "every parameter trains (no --freeze-old-rows)"
    return (
        f"--freeze-old-rows: the input embedding and lm_head rows of the {old_vocab_size} old ids "
        "stay fixed, new rows and the rest of the model train; the reference row trains every parameter"
    )


def bpb(model: Any, tokenizer: Path, corpus: Path, seq_len: int, device: str) -> float:
    r = tamis.embed.bits_per_byte(model, tokenizer, corpus, max_length=seq_len, device=device)
    return r["bits_per_byte"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help="work directory (default: a new temp dir)")
    p.add_argument("--steps", type=int, default=300, help="English pre-training steps")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="also stop pre-training after this long (makes the run depend on speed)")
    p.add_argument("--continue-steps", type=int, default=60, help="continued-training steps per method")
    p.add_argument("--zh-rows", type=int, default=6, help="Chinese rows per continued-training batch")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--vocab-size", type=int, default=4096, help="English tokenizer size")
    p.add_argument("--new-tokens", type=int, default=3072, help="Chinese tokens to add")
    p.add_argument("--hidden", type=int, default=192)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--continue-lr", type=float, default=1e-3)
    p.add_argument("--english-bytes", type=int, default=4_000_000, help="English text to read")
    p.add_argument("--chinese-bytes", type=int, default=None, help="Chinese text to read (default: all)")
    p.add_argument("--heldout-bytes", type=int, default=100_000, help="held-out text per language")
    # One thread: on a shared 2-core machine two threads ran 5x slower (each barrier waits for
    # the thread that lost its core). The results depend on the thread count.
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--methods", nargs="+", default=[m[0] for m in METHODS],
                   choices=[m[0] for m in METHODS], metavar="LABEL")
    p.add_argument(
        "--freeze-old-rows",
        action="store_true",
        help="continued training of each method updates only the new embedding and lm_head "
        "rows (old rows stay bit-identical); the reference row trains as usual",
    )
    return p.parse_args(argv)


def main(
    argv: Sequence[str] | None = None,
    *,
    zh_pages: Pages | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the experiment; returns the settings, sizes and one row per initialization.
    ``zh_pages`` replaces the manpages-zh text (for tests on machines without it)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    out = a.out or Path(tempfile.mkdtemp(prefix="ziptie-"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        log(f"[{time.perf_counter() - t0:4.0f} s] {msg}")


    en = split(english_pages(a.english_bytes), a.heldout_bytes)
    zh_source = zh_pages if zh_pages is not None else chinese_pages(a.chinese_bytes)
    if not zh_source:
        raise SystemExit("no zh_TW manual pages: apt-get install manpages-zh")
    zh = split(zh_source, a.heldout_bytes)
    en_train = write_jsonl(out / "en.train.jsonl", en.train)
    en_held = write_jsonl(out / "en.heldout.jsonl", en.heldout)
    zh_train = write_jsonl(out / "zh.train.jsonl", zh.train)
    zh_held = write_jsonl(out / "zh.heldout.jsonl", zh.heldout)
    nbytes = {p.name: p.stat().st_size for p in (en_train, en_held, zh_train, zh_held)}
    say(f"text (JSONL bytes): {nbytes}")

    # 1. English tokenizer and model.
    old_tok = english_tokenizer(en.train, a.vocab_size, out / "en-tokenizer.json")
    en_rows = chunks(old_tok, en.train, a.seq_len)
    torch.manual_seed(a.seed)
    config = LlamaConfig(
        vocab_size=a.vocab_size,
        hidden_size=a.hidden,
        intermediate_size=(a.hidden * 8 // 3 + 31) // 32 * 32,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        num_key_value_heads=a.heads,
        max_position_embeddings=a.seq_len,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=0,
        pad_token_id=None,
    )
    model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    say(f"English: {len(en_rows)} rows of {a.seq_len} tokens; model {params / 1e6:.2f} M parameters")
    order = batch_order(len(en_rows), a.batch, a.steps, a.seed)
    max_s = a.max_minutes * 60 if a.max_minutes is not None else None
    steps, seconds = train(model, lambda s: en_rows[order[s]], a.steps, a.lr, max_s, say)
    base = out / "base"
    model.save_pretrained(base)
    (base / "tokenizer.json").write_bytes(old_tok.read_bytes())
    say(f"pre-trained {steps} steps in {seconds:.0f} s")

    # 2. Tokenizer extension.
    new_tok = out / "zh-tokenizer.json"
    ext = tamis.vocab.extend(old_tok, zh_train, new_tok, new_tokens=a.new_tokens, protect=en_train)
    s = ext.summary
    say(f"extended: +{s['new_tokens']} tokens ({s['merges_added']} merges), "
        f"{s['protected_skipped']} merges refused to protect English")

    old_t, new_t = Tokenizer.from_file(str(old_tok)), Tokenizer.from_file(str(new_tok))
    unchanged = sum(old_t.encode(t).ids == new_t.encode(t).ids for t in en.heldout)
    zh_bytes = sum(len(t.encode()) for t in zh.heldout)
    zh_bpt = {
        "old": zh_bytes / sum(len(e.ids) for e in old_t.encode_batch(zh.heldout)),
        "new": zh_bytes / sum(len(e.ids) for e in new_t.encode_batch(zh.heldout)),
    }
    say(f"held-out Chinese bytes per token {zh_bpt['old']:.2f} -> {zh_bpt['new']:.2f}; "
        f"held-out English pages with unchanged ids: {unchanged}/{len(en.heldout)}")

    # Continued-training data: identical batches for every extended model.
    zh_rows_new, en_rows_new = chunks(new_tok, zh.train, a.seq_len), chunks(new_tok, en.train, a.seq_len)
    en_per = a.batch - a.zh_rows
    zh_order = batch_order(len(zh_rows_new), a.zh_rows, a.continue_steps, a.seed + 1)
    en_order = batch_order(len(en_rows_new), en_per, a.continue_steps, a.seed + 2)

    def mixed(zh_rows: Any, en_rows: Any) -> Callable[[int], Any]:
        return lambda step: torch.cat([zh_rows[zh_order[step]], en_rows[en_order[step]]])

    rows: list[dict[str, Any]] = []

    # The ids below the first new one are the old tokenizer's (rows the extension kept in place).
    old_vocab_size: int = s["first_new_id"]

    def evaluate_and_continue(
        label: str, model_dir: Path, tok: Path, batches: Callable[[int], Any], freeze: bool = False
    ) -> None:
        m = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=False)
        row: dict[str, Any] = {"init": label}
        row["zh_before"] = bpb(m, tok, zh_held, a.seq_len, a.device)
        row["en_before"] = bpb(m, tok, en_held, a.seq_len, a.device)
        torch.manual_seed(a.seed)
        m.to(a.device)
        n = old_vocab_size if freeze else 0
        kept = [w.detach()[:n].clone() for w in embedding_weights(m)]
        frozen = tamis.embed.freeze_old_rows(m, n) if freeze else None
        _, secs = train(m, batches, a.continue_steps, a.continue_lr, log=lambda _: None)
        if frozen is not None:
            frozen.remove()
            pairs = zip(embedding_weights(m), kept, strict=True)
            row["old_rows_unchanged"] = all(torch.equal(w.detach()[:n], k) for w, k in pairs)
        row["frozen_old_rows"] = n
        row["zh_after"] = bpb(m, tok, zh_held, a.seq_len, a.device)
        row["en_after"] = bpb(m, tok, en_held, a.seq_len, a.device)
        row["seconds"] = secs
        say(f"{label}: zh {row['zh_before']:.3f} -> {row['zh_after']:.3f}, "
            f"en {row['en_before']:.3f} -> {row['en_after']:.3f} ({secs:.0f} s training"
            f"{f', {n} old rows frozen' if n else ''})")
        rows.append(row)

    # Reference: the original model and tokenizer, continued on the same pages.
    zh_rows_old = chunks(old_tok, zh.train, a.seq_len)
    zh_order_old = batch_order(len(zh_rows_old), a.zh_rows, a.continue_steps, a.seed + 1)
    en_order_old = batch_order(len(en_rows), en_per, a.continue_steps, a.seed + 2)
    evaluate_and_continue(
        REFERENCE, base, old_tok,
        lambda step: torch.cat([zh_rows_old[zh_order_old[step]], en_rows[en_order_old[step]]]),
    )
    # 3. Each initialization of the extended model.
    for label, method, output_init in METHODS:
        if label not in a.methods:
            continue
        model_dir = out / ("init-" + label.replace(", ", "-").replace(" ", "-"))
        if model_dir.exists():
            shutil.rmtree(model_dir)
        tamis.embed.init_checkpoint(
            base, old_tok, new_tok, model_dir, method=method, output_init=output_init, seed=a.seed  # type: ignore[arg-type]
        )
        evaluate_and_continue(
            label, model_dir, new_tok, mixed(zh_rows_new, en_rows_new), freeze=a.freeze_old_rows
        )

    result = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
        "parameters": params,
        "pretrain_steps": steps,
        "pretrain_seconds": seconds,
        "pretrain_rows": len(en_rows),
        "extension": {k: s[k] for k in ("new_tokens", "merges_added", "embedding_rows", "protected_skipped")},
        "bytes": nbytes,
        "zh_heldout_bytes_per_token": zh_bpt,
        "en_heldout_pages": len(en.heldout),
        "en_heldout_pages_unchanged": unchanged,
        "old_vocab_size": old_vocab_size,
        "continued_training": continued_training(a.freeze_old_rows, old_vocab_size),
        "rows": rows,
        "total_seconds": time.perf_counter() - t0,
    }
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    log(f"continued training: {result['continued_training']}")
    log(table(result))
    return result


def table(result: dict[str, Any]) -> str:
    steps = result["settings"]["continue_steps"]
    lines = [
        f"| initialization | zh bpb before | en bpb before | zh bpb after {steps} steps | "
        f"en bpb after {steps} steps |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['init']} | {r['zh_before']:.3f} | {r['en_before']:.3f} | "
                     f"{r['zh_after']:.3f} | {r['en_after']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
