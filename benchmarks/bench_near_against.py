#!/usr/bin/env python3
"""Near dedup against an index: `tamis dedup near NEW --against OLD.near` next to `tamis dedup
near NEW` alone, same data, same cores, in one run (goal: at most 1.2x the time alone), and the
size of the near index per document (goal: at most 128 bytes with 14 bands x 8 rows).

Data: the old corpus (default ``benchmarks/data/corpus.jsonl``, ``gen_corpus.py --size-gb 1.1``)
and a new one made the same way with another seed (``benchmarks/data/corpus2.jsonl``, made here
when missing). Both draw their documents from the same pool of real text, so the new corpus
holds near-duplicates of the old one.

Steps, each a subprocess of the release binary on every core:
* ``tamis index build OLD -o old.near --kind near`` (timed, and its size per document);
* ``dedup near NEW`` alone and ``dedup near NEW --against old.near``, alternated, ``--repeat``
  times each (the best of each is compared); with ``--verify`` both again with ``--verify``;
* the check: ``dedup near OLD NEW`` in one run keeps exactly the new documents ``--against``
  keeps (byte for byte).

Usage:
    python benchmarks/bench_near_against.py [--repeat 2] [--verify] [--record]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _machine import machine  # the scripts run from this folder

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out" / "near_against"
RESULTS = HERE / "RESULTS.md"


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, default=HERE / "data" / "corpus.jsonl")
    ap.add_argument("--new", type=Path, default=HERE / "data" / "corpus2.jsonl")
    ap.add_argument("--tamis", default=str(REPO / "target" / "release" / "tamis"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--verify", action="store_true", help="also time --verify alone and against")
    ap.add_argument("--record", action="store_true", help="append the results to RESULTS.md")
    args = ap.parse_args()
    for corpus, seed in [(args.old, 1), (args.new, 2)]:
        if not corpus.exists():
            subprocess.run(
                [
                    sys.executable,
                    str(HERE / "gen_corpus.py"),
                    "--size-gb",
                    "1.1",
                    "--seed",
                    str(seed),
                    "-o",
                    str(corpus),
                ],
                check=True,
            )
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    t = [args.tamis, "-q"]
    index = OUT / "old.near"
    build_s = timed([*t, "index", "build", str(args.old), "-o", str(index), "--kind", "near"])
    info = json.loads(
        subprocess.run(
            [args.tamis, "index", "info", str(index)], capture_output=True, text=True, check=True
        ).stdout
    )
    files = {p.suffix: p.stat().st_size for p in index.iterdir()}
    records = info["records"]
    bands = (files[".keys"] + files[".dir"]) / records
    ids = (files[".ids"] + files[".names"]) / records
    modes = [("", [])] + ([("verify", ["--verify"])] if args.verify else [])
    rows = []
    for name, extra in modes:
        alone, against = [], []
        for _ in range(args.repeat):
            alone.append(timed([*t, "dedup", "near", str(args.new), "-o", str(OUT / "alone.jsonl"), *extra]))
            against.append(
                timed(
                    [
                        *t,
                        "dedup",
                        "near",
                        str(args.new),
                        "-o",
                        str(OUT / f"against{name}.jsonl"),
                        "--against",
                        str(index),
                        *extra,
                    ]
                )
            )
        rows.append((name or "plain", min(alone), min(against)))
    # The check: one run over old + new keeps the same new documents.
    both = OUT / "both.jsonl"
    timed([*t, "dedup", "near", str(args.old), str(args.new), "-o", str(both)])
    # Ids repeat across the two generated corpora: the new documents are told by their lines.
    import hashlib

    def digest(line: str) -> bytes:
        return hashlib.blake2b(line.encode("utf-8"), digest_size=16).digest()

    with open(args.new, encoding="utf-8") as f:
        new_lines = {digest(line) for line in f}
    with open(both, encoding="utf-8") as f:
        one_run = [line for line in f if digest(line) in new_lines]
    with open(OUT / "against.jsonl", encoding="utf-8") as f:
        same = f.readlines() == one_run
    gb = args.new.stat().st_size / 1e9
    lines = [
        f"Old corpus {args.old.name} ({args.old.stat().st_size / 1e9:.2f} GB, {records:,} documents), "
        f"new corpus {args.new.name} ({gb:.2f} GB); {os.cpu_count()} threads; best of {args.repeat}.",
        "",
        f"Index build: {build_s:.1f} s; {info['bytes']:,} bytes = "
        f"{info['bytes_per_record']:.1f} bytes per document "
        f"({bands:.1f} for the band entries and bucket directory, {ids:.1f} for the ids); "
        f"{info['entries']:,} entries ({info['bytes_per_entry']:.2f} bytes per entry).",
        "",
        "| run | alone (s) | --against (s) | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    for name, a, b in rows:
        goal = "≤ 1.2×: " + ("met" if b <= 1.2 * a else "missed") if name == "plain" else "-"
        lines.append(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f}× | {goal} |")
    lines += ["", f"`--against` keeps exactly the new documents a one-run dedup of old + new keeps: {same}."]
    text = "\n".join(lines)
    print(text)
    if args.record:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        RESULTS.write_text(
            RESULTS.read_text()
            + f"\n## Near dedup against an index (`bench_near_against.py`), {stamp}\n\n"
            + f"Machine: {machine()}.\n\n{text}\n"
        )
    if not same:
        sys.exit("--against differs from the one-run dedup")


if __name__ == "__main__":
    main()
