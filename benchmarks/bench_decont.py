#!/usr/bin/env python3
"""Decontamination benchmark: `tamis decontaminate` next to datatrove's n-gram decontamination
(`NGramsDecontFilter`), same data, same n, same cores, in one run.

Data:
* the corpus (default ``benchmarks/data/corpus.jsonl``, ``gen_corpus.py --size-gb 1.1``), written
  again as 8 shards with one document in 200 carrying a planted evaluation question
  (``out/decont/corpus/``);
* ``--items`` evaluation items (default 100,000) of 20-60 words cut from English manual pages
  (``/usr/share/man/man*/*.gz``, roff markup stripped: text the corpus was not made from), as
  ``{"id", "question", "choices", "answer"}``.

Contenders, each a subprocess, each writing the kept documents as JSONL:
* ``tamis index build`` (``--fields question,choices,answer``), then ``tamis decontaminate`` with
  ``--threads 1`` and with every core;
* datatrove 0.10: its indexer needs lighteval's task registry, so its index file is written here
  with datatrove's own functions (``simplify_text``, ``ngrams``, its 64-bit hash), then
  ``JsonlReader → NGramsDecontFilter → JsonlWriter`` on a ``LocalPipelineExecutor`` with one task
  per shard and as many workers as cores. Its word tokenizer is a whitespace split (datatrove's
  English default is spaCy, not installed here, and slower): the comparison favours datatrove.

Reported: wall seconds, MB/s (input bytes, 10^6 per MB), MB/s per core, the documents each drops
(every planted one must be among them), and the index's size per entry.

Usage:
    python benchmarks/bench_decont.py [--corpus benchmarks/data/corpus.jsonl] [--record]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out" / "decont"
RESULTS = HERE / "RESULTS.md"
N = 13
SHARDS = 8
PLANT_EVERY = 200


def man_text(limit_bytes: int) -> list[str]:
    """Words of English manual pages, roff requests and escapes removed."""
    words: list[str] = []
    total = 0
    pages = sorted(Path("/usr/share/man").glob("man[1-8]/*.gz"))
    for page in pages:
        try:
            raw = gzip.open(page, "rt", encoding="utf-8", errors="replace").read()
        except (OSError, EOFError):
            continue
        for line in raw.splitlines():
            if line.startswith((".", "'")):
                continue
            line = re.sub(r"\\f[BIRP]|\\\(..|\\[-e&|^]|\\s[-+]?\d", "", line)
            ws = line.split()
            words.extend(ws)
            total += len(line)
        if total > limit_bytes:
            break
    return words


def make_items(n: int, rng: random.Random) -> list[dict]:
    words = man_text(40 << 20)
    if len(words) < 100_000:
        sys.exit("too little manual-page text on this machine for the evaluation items")
    items = []
    for i in range(n):
        k = rng.randint(20, 60)
        s = rng.randrange(0, len(words) - k)
        q = " ".join(words[s : s + k])
        starts = [(s + 97 * j) % (len(words) - 5) for j in range(1, 4)]
        c = [" ".join(words[t : t + 4]) for t in starts]
        items.append({"id": f"eval-{i}", "question": q, "choices": c, "answer": i % 3})
    return items


def write_corpus(corpus: Path, items: list[dict], rng: random.Random) -> tuple[int, int, set[str]]:
    """The corpus as SHARDS files, one document in PLANT_EVERY with a question appended."""
    d = OUT / "corpus"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    files = [open(d / f"part-{k}.jsonl", "w", encoding="utf-8") for k in range(SHARDS)]
    planted: set[str] = set()
    docs = 0
    with corpus.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i % PLANT_EVERY == 7:
                rec = json.loads(line)
                rec["text"] += "\n\n" + rng.choice(items)["question"]
                planted.add(str(rec["id"]))
                line = json.dumps(rec, ensure_ascii=False) + "\n"
            files[i % SHARDS].write(line)
            docs += 1
    for fh in files:
        fh.close()
    size = sum(p.stat().st_size for p in d.iterdir())
    return docs, size, planted


DATATROVE_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig, create_hash_func
    from datatrove.utils.text import ngrams, simplify_text
    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        def word_tokenize(self, text): return text.split()
        def sent_tokenize(self, text): return text.split("\\n")
        def span_tokenize(self, text): raise NotImplementedError

    def main():
        items, data, work = sys.argv[1:4]
        cores, n = int(sys.argv[4]), int(sys.argv[5])
        # sha1 at 64 bits, as bench_near.py runs datatrove (its xxhash path needs the xxhash
        # package, which fails on str with xxhash 3.7).
        cfg = NGramsDecontConfig(n_grams=n, find_query_ngrams=True, find_overlap_ngrams=False,
                                 hash_config=HashConfig(precision=64, hash_fc="sha1"))
        tok = Whitespace()
        if sys.argv[6] == "index":
            # NGramsDecontIndexer.compute_hashes, without lighteval's registry.
            h = create_hash_func(cfg.hash_config)
            hashes = set()
            for line in open(items, encoding="utf-8"):
                r = json.loads(line)
                text = "\\n".join([r["question"], *r["choices"], str(r["answer"])])
                toks = tok.word_tokenize(simplify_text(text, cfg.norm_config))
                hashes.update(h(" ".join(g)) for g in ngrams(toks, n))
            import os
            os.makedirs(f"{work}/index", exist_ok=True)
            array = np.array(sorted(hashes), dtype=cfg.hash_config.np_descr)
            array.tofile(f"{work}/index/evals.index.hashes")
            return
        steps = [JsonlReader(data), NGramsDecontFilter(f"{work}/index", config=cfg, language=tok),
                 JsonlWriter(f"{work}/out", compression=None)]
        LocalPipelineExecutor(steps, tasks=8, workers=cores, logging_dir=f"{work}/logs").run()

    if __name__ == "__main__":
        main()
    """
)


def timed(cmd: list[str], **kw) -> float:
    return timed_cpu(cmd, **kw)[0]


def timed_cpu(cmd: list[str], **kw) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, every thread and child) of `cmd`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def kept_ids(paths: list[Path]) -> set[str]:
    ids: set[str] = set()
    for p in paths:
        with p.open(encoding="utf-8") as f:
            for line in f:
                ids.add(str(json.loads(line)["id"]))
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=HERE / "data" / "corpus.jsonl")
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--tamis", default=str(REPO / "target" / "release" / "tamis"))
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-datatrove", action="store_true")
    ap.add_argument("--record", action="store_true", help="append the results to RESULTS.md")
    a = ap.parse_args()
    if not a.corpus.exists():
        sys.exit(f"{a.corpus}: missing; run benchmarks/gen_corpus.py --size-gb 1.1")
    rng = random.Random(1)
    OUT.mkdir(parents=True, exist_ok=True)
    items = make_items(a.items, rng)
    items_path = OUT / "evals.jsonl"
    items_path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    docs, size, planted = write_corpus(a.corpus, items, rng)
    data = OUT / "corpus"
    mb = size / 1e6
    lines = [
        f"corpus: {docs:,} documents, {mb:,.0f} MB in {SHARDS} files; {len(planted):,} planted; "
        f"{a.items:,} evaluation items ({items_path.stat().st_size / 1e6:.1f} MB); n = {N}; {a.cores} cores"
    ]

    idx = OUT / "evals.idx"
    shutil.rmtree(idx, ignore_errors=True)
    t_index = timed(
        [
            a.tamis,
            "-q",
            "index",
            "build",
            str(items_path),
            "-o",
            str(idx),
            "--ngram",
            str(N),
            "--fields",
            "question,choices,answer",
        ]
    )
    info = json.loads(
        subprocess.run(
            [a.tamis, "index", "info", str(idx)], capture_output=True, text=True, check=True
        ).stdout
    )
    entry_bytes = sum(
        f["bytes"]
        for s in json.load(open(idx / "index.json"))["segments"]
        for f in s["files"]
        if f["name"].endswith((".keys", ".refs", ".dir"))
    )
    lines.append(
        f"tamis index build: {t_index:.1f} s; {info['entries']:,} entries, {info['bytes'] / 1e6:.1f} MB: "
        f"{entry_bytes / info['entries']:.2f} bytes per entry (hash + item), "
        f"{info['bytes_per_entry']:.2f} with the item ids"
    )
    rows = []
    results = {}
    for threads in [1, a.cores]:
        out = OUT / f"tamis-t{threads}.jsonl"
        # Each run writes a new file, as datatrove's does (replacing the last run's output made
        # the kernel free its pages during the run: up to 3 s of system time).
        out.unlink(missing_ok=True)
        os.sync()
        wall, cpu = timed_cpu(
            [
                a.tamis,
                "-q",
                "--threads",
                str(threads),
                "decontaminate",
                str(data),
                "-o",
                str(out),
                "--against",
                str(idx),
            ]
        )
        kept = kept_ids([out])
        results[f"tamis-t{threads}"] = (wall, threads, kept, cpu)
    if not a.skip_datatrove:
        work = OUT / "datatrove"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        script = work / "child.py"
        script.write_text(DATATROVE_CHILD)
        py = sys.executable
        t_dt_index = timed(
            [py, str(script), str(items_path), str(data), str(work), str(a.cores), str(N), "index"]
        )
        lines.append(f"datatrove index (its hash functions, written here): {t_dt_index:.1f} s")
        os.sync()
        wall, cpu = timed_cpu(
            [py, str(script), str(items_path), str(data), str(work), str(a.cores), str(N), "filter"]
        )
        kept = kept_ids(sorted((work / "out").glob("*.jsonl")))
        results["datatrove"] = (wall, a.cores, kept, cpu)
    all_ids = None
    for name, (wall, threads, kept, cpu) in results.items():
        dropped = docs - len(kept)
        missing = len(planted & kept)
        # datatrove's pool workers are not waited for as children of the measured process:
        # their CPU time is not seen.
        cpu_cells = "– | –" if name == "datatrove" else f"{cpu:.1f} | {mb / cpu:,.1f}"
        rows.append(
            f"| {name} | {threads} | {wall:.1f} | {mb / wall:,.1f} | {mb / wall / threads:,.1f} | "
            f"{cpu_cells} | {dropped:,} | {missing} |"
        )
        if missing:
            print(f"FAIL: {name} kept {missing} planted documents", file=sys.stderr)
        if name.startswith("tamis"):
            all_ids = kept if all_ids is None else all_ids
            if kept != all_ids:
                print("FAIL: tamis kept different documents with another thread count", file=sys.stderr)
    t1, cpu1 = results["tamis-t1"][0], results["tamis-t1"][3]
    tn = results[f"tamis-t{a.cores}"][0]
    ratio = ""
    if "datatrove" in results:
        speedup = results["datatrove"][0] / tn
        ratio = f"; tamis ({a.cores} threads) / datatrove ({a.cores} workers): {speedup:.1f}× faster"
    table = [
        "| run | cores | wall s | MB/s | MB/s per core | CPU s | MB per CPU-second | documents dropped "
        "| planted kept |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    summary = (
        f"tamis per core: {mb / t1:,.1f} MB/s (1 thread), {mb / cpu1:,.1f} MB per CPU-second (user + "
        f"system of every thread: reader, worker, writer){ratio}"
    )
    text = "\n".join([*lines, "", *table, "", summary])
    print(text)
    if a.record:
        cpu = next(
            (x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name")),
            platform.processor(),
        )
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        RESULTS.write_text(
            RESULTS.read_text() + f"\n## Decontamination (`bench_decont.py`), {stamp}\n\n"
            f"Machine: {cpu}, {os.cpu_count()} cores, {ram:.0f} GiB; "
            f"Python {platform.python_version()}.\n\n{text}\n"
        )


if __name__ == "__main__":
    main()
