#!/usr/bin/env python3
"""Tokenization benchmark: ``tamis tokenize`` against the ``tokenizers`` library's ``encode_batch``
and datatrove's ``DocumentTokenizer``, same corpus, same tokenizer, same number of threads.

Contenders, each in its own subprocess under GNU ``time`` (wall, CPU, peak RSS):

* ``tamis``            ``tamis --threads N tokenize PARTS... -o OUT --tokenizer T --format nanotron
                       --no-bos --no-eos`` (the release binary);
* ``encode_batch``     Python reads the JSONL (orjson), ``Tokenizer.encode_batch`` on batches of
                       1,000 documents (``RAYON_NUM_THREADS=N``), ids written to one file (uint16
                       or uint32, as tamis writes them);
* ``datatrove``        ``LocalPipelineExecutor(tasks=8, workers=N)``: ``JsonlReader`` then
                       ``DocumentTokenizer`` (no shuffling, no EOS), one task per input part,
                       N at a time (so its output files are in input order).

The corpus is ``benchmarks/data/corpus.jsonl`` (``gen_corpus.py``, 1.1 GB), split into 8 parts so
that datatrove's tasks (one per file) can use every core. Tokenizers: GPT-2 (``vocab_data``) and a
Llama-2-like SentencePiece-style BPE with byte fallback and 32,000 tokens, trained here on the
first 40 MB of the corpus (``tokenizers`` BpeTrainer, split at ``▁`` as SentencePiece does,
then saved in the shape of Llama-2's ``tokenizer.json``: no pre-tokenizer, ``▁`` normalizer).

Checks: the three write the same token sequence (blake2b of the ids in input order: tamis and
encode_batch in document order; datatrove's files by task, which is input order without
shuffling), and the same number of tokens.

Usage: python benchmarks/bench_tokenize.py [--threads N] [--only gpt2|llama] [--record]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"
OUT = HERE / "out" / "tokenize"
RESULTS = HERE / "RESULTS.md"
PARTS = 8
GNU_TIME = "/usr/bin/time"

sys.path.insert(0, str(HERE))


def split_corpus(corpus: Path) -> list[Path]:
    d = DATA / "tok_parts"
    parts = [d / f"part-{i:02d}.jsonl" for i in range(PARTS)]
    if all(p.exists() for p in parts):
        return parts
    d.mkdir(parents=True, exist_ok=True)
    size = corpus.stat().st_size
    outs = [p.open("wb") for p in parts]
    done = 0
    with corpus.open("rb") as f:
        for line in f:
            outs[min(PARTS - 1, done * PARTS // size)].write(line)
            done += len(line)
    for o in outs:
        o.close()
    return parts


def llama_tokenizer(corpus: Path, path: Path) -> Path:
    """Llama-2's ``tokenizer.json`` shape (``▁`` prepended and spaces replaced by ``▁`` in the
    normalizer, no pre-tokenizer, byte fallback, 32,000 ids, pieces of at most 16 characters),
    trained on the first 40 MB of the corpus. As in SentencePiece, training splits at ``▁`` so
    merges never cross a word start; the file is then used as Llama's is, whole documents as one
    BPE word."""
    if path.exists():
        return path
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    texts = []
    with corpus.open() as f:
        read = 0
        for line in f:
            texts.append(json.loads(line)["text"])
            read += len(line)
            if read > 40_000_000:
                break
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=32_000,
        special_tokens=["<unk>", "<s>", "</s>", *byte_tokens],
        show_progress=False,
        max_token_length=16,
    )
    tok.train_from_iterator(texts, trainer)
    tok.pre_tokenizer = None
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    path.write_text(tok.to_str())
    return path


WORKER_ENCODE = r"""
import json, sys, time
import numpy as np, orjson
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1]); out = open(sys.argv[2], "wb"); parts = sys.argv[3:]
dtype = np.uint16 if tok.get_vocab_size(with_added_tokens=True) <= 65536 else np.uint32
t0 = time.perf_counter(); n = 0; docs = 0
def flush(batch):
    global n, docs
    for e in tok.encode_batch(batch, add_special_tokens=False):
        a = np.asarray(e.ids, dtype=dtype); out.write(a.tobytes()); n += len(a)
    docs += len(batch)
for p in parts:
    batch = []
    with open(p, "rb") as f:
        for line in f:
            batch.append(orjson.loads(line)["text"])
            if len(batch) == 1000:
                flush(batch); batch = []
    if batch:
        flush(batch)
out.close()
print(json.dumps({"seconds": time.perf_counter() - t0, "tokens": n, "documents": docs}))
"""

WORKER_DATATROVE = r"""
import json, sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.tokens import DocumentTokenizer
tokenizer, data, out, logs = sys.argv[1:5]
n, tasks = int(sys.argv[5]), int(sys.argv[6])
t0 = time.perf_counter()
LocalPipelineExecutor(
    pipeline=[
        JsonlReader(data, glob_pattern="*.jsonl", compression=None),
        DocumentTokenizer(out, tokenizer_name_or_path=tokenizer, eos_token=None,
                          shuffle_documents=False, batch_size=1000),
    ],
    tasks=tasks, workers=n, logging_dir=logs,
).run()
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    usage = OUT / "rusage.txt"
    t0 = time.perf_counter()
    p = subprocess.run(
        [GNU_TIME, "-f", "%U %S %M", "-o", str(usage), *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{p.stderr[-3000:]}")
    u, s, m = usage.read_text().split()[-3:]
    return {"wall": wall, "cpu": float(u) + float(s), "rss_mib": int(m) / 1024, "stdout": p.stdout}


def digest_ids(files: list[Path], dtype: str) -> tuple[int, str]:
    import hashlib

    import numpy as np

    h = hashlib.blake2b(digest_size=8)
    n = 0
    for f in files:
        a = np.fromfile(f, dtype=np.dtype(dtype).newbyteorder("<"))
        h.update(a.astype(np.uint32).tobytes())
        n += len(a)
    return n, h.hexdigest()


def bench(name: str, tokenizer: Path, parts: list[Path], threads: int, skip: set[str]) -> list[dict]:
    tamis = REPO / "target" / "release" / "tamis"
    mb = sum(p.stat().st_size for p in parts) / 1e6
    rows = []
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    # tamis
    r = timed([str(tamis), "-q", "--threads", str(threads), "tokenize", *map(str, parts),
               "-o", str(out / "tamis"), "--tokenizer", str(tokenizer), "--format", "nanotron",
               "--no-bos", "--no-eos"])  # fmt: skip
    manifest = json.loads((out / "tamis" / "manifest.json").read_text())
    dtype = "uint16" if manifest["dtype"] == "uint16" else "uint32"
    files = [
        out / "tamis" / f["name"] for s in manifest["shards"] for f in s["files"] if f["name"].endswith(".ds")
    ]
    r.update(name="tamis tokenize", check=digest_ids(files, dtype))
    rows.append(r)
    print(f"{name} tamis: {r['wall']:.1f} s, {r['rss_mib']:.0f} MiB, {r['check']}", flush=True)
    if "encode_batch" in skip:
        return _done(rows, mb, name)
    # tokenizers encode_batch
    ids = out / "encode_batch.bin"
    r = timed([sys.executable, "-c", WORKER_ENCODE, str(tokenizer), str(ids), *map(str, parts)],
              env={"RAYON_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "true"})  # fmt: skip
    r.update(name="tokenizers encode_batch", check=digest_ids([ids], dtype))
    rows.append(r)
    print(f"{name} encode_batch: {r['wall']:.1f} s, {r['rss_mib']:.0f} MiB, {r['check']}", flush=True)
    if "datatrove" in skip:
        return _done(rows, mb, name)
    # datatrove
    r = timed([sys.executable, "-c", WORKER_DATATROVE, str(tokenizer), str(parts[0].parent), str(out / "dt"),
               str(out / "dt-logs"), str(threads), str(len(parts))],
              env={"RAYON_NUM_THREADS": "1"})  # fmt: skip
    dt_files = sorted((out / "dt").glob("*.ds"))
    r.update(name="datatrove DocumentTokenizer", check=digest_ids(dt_files, dtype))
    rows.append(r)
    print(f"{name} datatrove: {r['wall']:.1f} s, {r['rss_mib']:.0f} MiB, {r['check']}", flush=True)
    return _done(rows, mb, name)


def _done(rows: list[dict], mb: float, name: str) -> list[dict]:
    for row in rows:
        row["mb_s"] = mb / row["wall"]
        row["tokenizer"] = name
        row.pop("stdout", None)
    return rows


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a.add_argument("--only", choices=["gpt2", "llama"])
    a.add_argument("--record", action="store_true")
    a.add_argument("--skip", default="", help="contenders to leave out: encode_batch,datatrove")
    args = a.parse_args()
    corpus = DATA / "corpus.jsonl"
    if not corpus.exists():
        raise SystemExit("generate the corpus first: python benchmarks/gen_corpus.py --size-gb 1.1")
    OUT.mkdir(parents=True, exist_ok=True)
    parts = split_corpus(corpus)
    import vocab_data

    toks = {
        "gpt2": vocab_data.gpt2_tokenizer(OUT / "gpt2.json"),
        "llama": llama_tokenizer(corpus, OUT / "llama32k.json"),
    }
    rows = []
    for name, tok in toks.items():
        if args.only and name != args.only:
            continue
        rows += bench(name, tok, parts, args.threads, set(args.skip.split(",")) - {""})
    mb = sum(p.stat().st_size for p in parts) / 1e6
    lines = [
        f"{mb:,.0f} MB of JSONL in {PARTS} files, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}, "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        "| tokenizer | contender | wall s | MB/s | CPU s | peak RSS MiB | tokens | ids blake2b |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tokenizer']} | {r['name']} | {r['wall']:.1f} | {r['mb_s']:.1f} | {r['cpu']:.1f} | "
            f"{r['rss_mib']:.0f} | {r['check'][0]:,} | {r['check'][1]} |"
        )
    by = {(r["tokenizer"], r["name"]): r for r in rows}
    for name in toks:
        t = by.get((name, "tamis tokenize"))
        if t is None:
            continue
        others = [
            r
            for r in (
                by.get((name, "tokenizers encode_batch")),
                by.get((name, "datatrove DocumentTokenizer")),
            )
            if r
        ]
        same = all(r["check"] == t["check"] for r in others)
        ratios = ", ".join(f"{r['wall'] / t['wall']:.2f}× {r['name']}" for r in others)
        lines.append("")
        lines.append(f"{name}: tamis {ratios}; same ids: {same}")
    text = "\n".join(lines)
    print(text)
    if args.record:
        with RESULTS.open("a") as f:
            day = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
            f.write(f"\n## Tokenization into shards (`bench_tokenize.py`), {day}\n\n")
            f.write(text + "\n")


if __name__ == "__main__":
    main()
