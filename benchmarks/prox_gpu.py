"""ProX refining-model throughput: tamis's Refiner (both stages) vs a plain transformers
``generate`` loop, in the same run, on a randomly initialized model of the ProX 0.3B architecture
(LlamaForCausalLM: hidden 1280, intermediate 2048, 24 layers, 16 heads, 1 KV head, vocab 32000,
context 2048) and synthetic documents with a log-normal length distribution.

Random weights never emit EOS, so every sequence runs to its token cap: the caps default to the
lengths real refiners write (``drop_doc()`` is ~5 tokens; chunk programs a few dozen), which the
numbers must be read against. The fast-path agreement reported here is between two decodings of
the same random model, a check of the mechanism, not of the ≥ 99.9% goal (that needs the released
models).

    python benchmarks/prox_gpu.py                 # GPU, full size
    python benchmarks/prox_gpu.py --tiny          # CPU smoke check (tiny model, few documents)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import tempfile
import time
from pathlib import Path

import torch
from tamis import _core
from tamis.prox_infer import Refiner


def build_tokenizer(vocab_size: int) -> str:
    """A Llama-2-shaped vocabulary (<unk> <s> </s>, 256 byte tokens, then ``▁w{i}`` words) with
    a Metaspace pre-tokenizer: each synthetic word is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece in ["[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "[doc]", "[/doc]"]:
        vocab["▁" + piece] = len(vocab)
    i = 0
    while len(vocab) < vocab_size:
        vocab[f"▁w{i}"] = len(vocab)
        i += 1
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    return tok.to_str()


def make_model(path: Path, tiny: bool) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = 2000 if tiny else 32000
    path.mkdir(parents=True, exist_ok=True)
    (path / "tokenizer.json").write_text(build_tokenizer(vocab))
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64 if tiny else 1280,
        intermediate_size=128 if tiny else 2048,
        num_hidden_layers=2 if tiny else 24,
        num_attention_heads=4 if tiny else 16,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path, safe_serialization=True)


def synthetic_docs(n: int, vocab: int, seed: int = 0, median_words: int = 500) -> list[str]:
    """Log-normal lengths (median ``median_words``, sigma 1), lines of ~12 words."""
    rng = random.Random(seed)
    words = vocab - 300
    docs = []
    for _ in range(n):
        n_words = int(min(max(rng.lognormvariate(math.log(median_words), 1.0), 10), 20000))
        lines, left = [], n_words
        while left > 0:
            k = min(left, rng.randrange(3, 22))
            lines.append(" ".join(f"w{rng.randrange(words)}" for _ in range(k)))
            left -= k
        docs.append("\n".join(lines))
    return docs


def plain_generate(model, prompts: list[list[int]], max_new: int, batch: int) -> float:
    """The competitor: input-order batches of ``batch`` prompts, left padding, HF generate."""
    dev = next(model.parameters()).device
    t0 = time.perf_counter()
    for k in range(0, len(prompts), batch):
        ps = prompts[k : k + batch]
        w = max(len(p) for p in ps)
        ids = torch.tensor([[0] * (w - len(p)) + p for p in ps], device=dev)
        mask = torch.tensor([[0] * (w - len(p)) + [1] * len(p) for p in ps], device=dev)
        model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False, pad_token_id=0
        )
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def prefill_mfu(model, prompts: list[list[int]], batch_tokens: int, peak_flops: float, params: int) -> float:
    dev = next(model.parameters()).device
    done_tokens, t0 = 0, time.perf_counter()
    with torch.inference_mode():
        k = 0
        while k < len(prompts):
            w = len(prompts[k])
            n = max(1, batch_tokens // w)
            ps = [p[:w] + [0] * (w - len(p[:w])) for p in prompts[k : k + n]]
            model(input_ids=torch.tensor(ps, device=dev), use_cache=False, logits_to_keep=1)
            done_tokens += sum(len(p) for p in prompts[k : k + n])
            k += n
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return 2 * params * done_tokens / (time.perf_counter() - t0) / peak_flops


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="tiny model, few documents, CPU: a smoke check")
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch-tokens", type=int, default=None)
    ap.add_argument("--doc-new-tokens", type=int, default=6)
    ap.add_argument("--chunk-new-tokens", type=int, default=48)
    ap.add_argument("--fast-tokens", type=int, default=2)
    ap.add_argument("--baseline-batch", type=int, default=16)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM: 989)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    n_docs = a.docs or (24 if a.tiny else 4000)
    batch_tokens = a.batch_tokens or (8192 if a.tiny else 262144)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        make_model(path, a.tiny)
        docs = synthetic_docs(n_docs, 2000 if a.tiny else 32000, median_words=60 if a.tiny else 500)
        common = {"device": device, "batch_tokens": batch_tokens, "doc_max_new_tokens": a.doc_new_tokens}
        r = Refiner(path, path, chunk_max_new_tokens=a.chunk_new_tokens, **common)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        r.refine(docs[: min(8, n_docs)])  # warm-up
        r.stats = type(r.stats)({"doc": type(r.stats["doc"])(), "chunk": type(r.stats["doc"])()})
        t0 = time.perf_counter()
        res = r.refine(docs)
        total = time.perf_counter() - t0
        st = r.stats_dict()
        model = r._doc[0].model  # type: ignore[index,union-attr]
        params = sum(p.numel() for p in model.parameters())
        tok = (path / "tokenizer.json").read_text()
        prompts = [list(p[0]) for p in _core.prox_doc_prompts(docs, tok, True, 2000, r.template._args())]

        # Doc stage alone, tamis vs the plain generate loop, same prompts and caps.
        d = Refiner(path, None, stage="doc", **common)
        t1 = time.perf_counter()
        full = d.refine(docs)
        tamis_doc = time.perf_counter() - t1
        base_doc = plain_generate(model, prompts, a.doc_new_tokens, a.baseline_batch)
        fast = Refiner(path, None, stage="doc", doc_fast_tokens=a.fast_tokens, **common)
        t2 = time.perf_counter()
        quick = fast.refine(docs)
        fast_doc = time.perf_counter() - t2
        agree = sum((x == "") == (y == "") for x, y in zip(full.texts, quick.texts, strict=True)) / len(docs)
        peak = a.peak_tflops * 1e12 if device == "cuda" else float("nan")
        mfu = prefill_mfu(model, sorted(prompts, key=len, reverse=True), batch_tokens, peak, params)
        doc_tokens = st["doc"]["tokens_in"]
        gen = st["doc"]["generated_tokens"] + st["chunk"]["generated_tokens"]
        prompt_tokens = st["doc"]["prompt_tokens"] + st["chunk"]["prompt_tokens"]
        out = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": platform.platform(),
            "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__,
            "model": "tiny" if a.tiny else "ProX 0.3B architecture, random init",
            "params": params,
            "docs": n_docs,
            "batch_tokens": batch_tokens,
            "both_stages": {
                "seconds": round(total, 3),
                "docs_per_s": round(n_docs / total, 2),
                "document_tokens_per_s": round(doc_tokens / total, 1),
                "prompt_tokens_per_s": round(prompt_tokens / total, 1),
                "generated_tokens_per_s": round(gen / total, 1),
                "kept": sum(1 for t in res.texts if t),
            },
            "doc_stage_seconds": {
                "tamis": round(tamis_doc, 3),
                "transformers_generate": round(base_doc, 3),
                "tamis_fast_path": round(fast_doc, 3),
            },
            "fast_path_agreement": agree,
            "prefill_mfu": None if math.isnan(mfu) else round(mfu, 4),
            "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if device == "cuda"
            else None,
            "stats": st,
        }
    text = json.dumps(out, indent=2)
    print(text)
    if a.json:
        Path(a.json).write_text(text)


if __name__ == "__main__":
    main()
