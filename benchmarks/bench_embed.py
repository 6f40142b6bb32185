"""``tamis embed init`` on a Llama-2-7B-shaped checkpoint vs ``cp`` of the same files.

The benchmark writes a model directory with Llama-2-7B's embedding and lm_head
(32000 × 4096, bfloat16, untied) and a few 4096 × 11008 MLP matrices (random values) in two
safetensors shards with an index, an old byte-fallback tokenizer with 32,000 ids and a new one
that adds 27,241 CJK tokens (Bailong's count). It then times, each in its own process, with its
peak RSS:

- ``cp -r`` of the model directory (the floor: the same bytes read and written);
- ``tamis embed init`` (zip-tie, untied: both matrices resized to 59,264 rows).

Goals (issue 5): time ≤ 2× ``cp``, peak RSS ≤ 2× the size of the two embedding matrices.
Everything generated is deleted at the end.

    cargo build --release -p tamis-cli
    python benchmarks/bench_embed.py [--layers 4] [--work DIR] [--tamis target/release/tamis]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VOCAB, HIDDEN, FFN, NEW = 32000, 4096, 11008, 27241


def bf16(rows: int, cols: int, rng: np.random.Generator) -> bytes:
    """Random N(0, 0.02²) values as bfloat16 bytes (the top half of float32)."""
    x = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).view(np.uint32)
    return (x >> 16).astype("<u2").tobytes()


def write_shard(path: Path, tensors: list[tuple[str, tuple[int, int], bytes]]) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    at = 0
    for name, shape, data in tensors:
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [at, at + len(data)]}
        at += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, _, data in tensors:
            f.write(data)


def tokenizer(n_words: int, extra: list[str]) -> str:
    specials = ["<unk>", "<s>", "</s>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for i in range(n_words - len(vocab)):
        vocab[f"▁w{i}"] = len(vocab)
    for s in extra:
        vocab[s] = len(vocab)
    added = [
        {
            "id": i,
            "content": s,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, s in enumerate(specials)
    ]
    return json.dumps(
        {
            "version": "1.0",
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {
                "type": "Metaspace",
                "replacement": "▁",
                "prepend_scheme": "first",
                "split": False,
            },
            "post_processor": None,
            "decoder": None,
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": "<unk>",
                "continuing_subword_prefix": None,
                "end_of_word_suffix": None,
                "fuse_unk": True,
                "byte_fallback": True,
                "ignore_merges": False,
                "vocab": vocab,
                "merges": [],
            },
        },
        ensure_ascii=False,
    )


def build(d: Path, layers: int) -> int:
    rng = np.random.default_rng(0)
    model = d / "model"
    model.mkdir()
    mlp = [(f"model.layers.{i}.mlp.up_proj.weight", (FFN, HIDDEN)) for i in range(layers)]
    half = layers // 2
    s1 = [("model.embed_tokens.weight", (VOCAB, HIDDEN)), *mlp[:half]]
    s2 = [*mlp[half:], ("lm_head.weight", (VOCAB, HIDDEN))]
    weight_map = {}
    for i, names in enumerate([s1, s2], 1):
        f = f"model-{i:05d}-of-00002.safetensors"
        write_shard(model / f, [(n, s, bf16(*s, rng)) for n, s in names])
        weight_map.update({n: f for n, _ in names})
    total = sum((model / f).stat().st_size for f in set(weight_map.values()))
    (model / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    (model / "config.json").write_text(json.dumps(config))
    old = tokenizer(VOCAB, [])
    (model / "tokenizer.json").write_text(old, encoding="utf-8")
    (d / "old.json").write_text(old, encoding="utf-8")
    # 20,902 single CJK characters, then two-character words: byte-fallback pieces (3 or 6).
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 20902)]
    words = [chars[i] + chars[i + 1] for i in range(NEW - len(chars))]
    (d / "new.json").write_text(tokenizer(VOCAB, chars + words), encoding="utf-8")
    return total


def timed(cmd: list[str]) -> dict[str, float]:
    """Run ``cmd`` in a child; its wall time and peak RSS (through a fresh Python wrapper so
    that ru_maxrss is the command's own)."""
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:]); w = time.perf_counter() - t; "
        "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True)
    wall, rss = out.stdout.split()
    return {"seconds": float(wall), "peak_rss_mb": int(rss) / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=4, help="4096 × 11008 matrices besides the embeddings")
    p.add_argument("--work", default=None, help="scratch directory (default: a temporary one)")
    p.add_argument("--tamis", default=str(ROOT / "target" / "release" / "tamis"))
    p.add_argument("--repeat", type=int, default=2, help="runs of each (the best is reported)")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-embed-", dir=a.work))
    try:
        total = build(work, a.layers)
        two = 2 * VOCAB * HIDDEN * 2
        rows = ((VOCAB + NEW + 63) // 64) * 64
        print(
            f"checkpoint: {total / 1e6:.0f} MB, embeddings {two / 1e6:.0f} MB before, "
            f"{2 * rows * HIDDEN * 2 / 1e6:.0f} MB after ({rows} rows)"
        )
        results: dict[str, list[dict[str, float]]] = {"cp": [], "tamis": []}
        for _ in range(a.repeat):
            for what in results:
                out = work / f"out-{what}"
                shutil.rmtree(out, ignore_errors=True)
                if what == "cp":
                    cmd = ["cp", "-r", str(work / "model"), str(out)]
                else:
                    cmd = [
                        a.tamis,
                        "-q",
                        "embed",
                        "init",
                        "--model",
                        str(work / "model"),
                        "--old-tokenizer",
                        str(work / "old.json"),
                        "--new-tokenizer",
                        str(work / "new.json"),
                        "-o",
                        str(out),
                    ]
                subprocess.run(["sync"], check=True)
                results[what].append(timed(cmd))
                shutil.rmtree(out)
        load = os.getloadavg()[0]
        best = {k: min(v, key=lambda r: r["seconds"]) for k, v in results.items()}
        print("| | wall s | peak RSS MB |\n|---|---|---|")
        for k, r in best.items():
            print(f"| {k} | {r['seconds']:.2f} | {r['peak_rss_mb']:.0f} |")
        print(f"time ratio tamis/cp: {best['tamis']['seconds'] / best['cp']['seconds']:.2f} (goal ≤ 2)")
        print(
            f"peak RSS / two old embeddings: {best['tamis']['peak_rss_mb'] * 2**20 / two:.2f} (goal ≤ 2)"
        )
        print(f"load average (1 min) at the end: {load:.2f}; all runs: {json.dumps(results)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
