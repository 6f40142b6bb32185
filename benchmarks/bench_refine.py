"""`tamis refine` with the three dedup stages against the same three commands run one by one.

    python benchmarks/bench_refine.py benchmarks/data/corpus.jsonl [--tamis CMD] [--repeat 3]

For each repeat, in alternating order:

- ``refine``: ``tamis refine IN -o OUT --stages dedup_exact,dedup_lines,dedup_near
  --compression C`` (a fresh output directory each time: nothing is resumed);
- ``cli``: ``tamis dedup exact IN -o a.jsonl --normalize whitespace``, then ``tamis dedup lines
  a.jsonl -o b.jsonl --min-line-chars 10``, then ``tamis dedup near b.jsonl -o OUT`` (the
  stages' parameters in ``refine``; ``OUT`` compressed as C), timed together.

Both use every core. It checks that the refined documents are the command line's, byte for
byte, and prints wall seconds (whole processes), the ratio refine / cli, and peak RSS.
``--tamis`` gives the command that starts tamis (default: this environment's ``tamis``);
``--cli`` the one that runs the dedup commands (default: the same).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a command, through GNU time."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed: {shlex.join(cmd)}\n{p.stderr}")
    return wall, int(p.stderr.strip().splitlines()[-1])


def read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("--tamis", default="tamis")
    p.add_argument("--cli", default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--compression", default="none", choices=["none", "gzip"])
    p.add_argument("--out", default="benchmarks/out/refine")
    p.add_argument(
        "--no-check",
        action="store_true",
        help="do not compare the outputs (an old refine that re-serializes records)",
    )
    a = p.parse_args()
    tamis = shlex.split(a.tamis)
    cli = shlex.split(a.cli) if a.cli else tamis
    out = Path(a.out)
    ext = ".jsonl.gz" if a.compression == "gzip" else ".jsonl"
    rows: dict[str, list[tuple[float, int]]] = {"refine": [], "cli": []}
    subprocess.run(["cat", a.corpus], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    for k in range(a.repeat):
        for name in ("refine", "cli") if k % 2 == 0 else ("cli", "refine"):
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            if name == "refine":
                cmd = [*tamis, "refine", a.corpus, "-o", str(out / "R"), "-q"]
                cmd += ["--stages", "dedup_exact,dedup_lines,dedup_near", "--compression", a.compression]
                rows[name].append(run(cmd))
                refined = b"".join(read(f) for f in sorted((out / "R" / "data").iterdir()))
            else:
                t = 0.0
                rss = 0
                for cmd in (
                    [
                        *cli,
                        "-q",
                        "dedup",
                        "exact",
                        a.corpus,
                        "-o",
                        str(out / "a.jsonl"),
                        "--normalize",
                        "whitespace",
                    ],
                    [
                        *cli,
                        "-q",
                        "dedup",
                        "lines",
                        str(out / "a.jsonl"),
                        "-o",
                        str(out / "b.jsonl"),
                        "--min-line-chars",
                        "10",
                    ],
                    [*cli, "-q", "dedup", "near", str(out / "b.jsonl"), "-o", str(out / f"c{ext}")],
                ):
                    w, r = run(cmd)
                    t += w
                    rss = max(rss, r)
                rows[name].append((t, rss))
                commands = read(out / f"c{ext}")
            print(f"{name}: {rows[name][-1][0]:.2f} s", file=sys.stderr)
        if k == 0 and not a.no_check:
            # The same documents, byte for byte: refine shards are the command line's output.
            same = refined == commands
            print(f"outputs identical: {same} ({len(commands)} bytes)", file=sys.stderr)
            if not same:
                sys.exit("refine and the commands disagree")
    best = {n: min(w for w, _ in v) for n, v in rows.items()}
    result = {
        "corpus": a.corpus,
        "corpus_bytes": os.path.getsize(a.corpus),
        "compression": a.compression,
        "cores": os.cpu_count(),
        "refine_seconds": [round(w, 2) for w, _ in rows["refine"]],
        "cli_seconds": [round(w, 2) for w, _ in rows["cli"]],
        "best_ratio": round(best["refine"] / best["cli"], 3),
        "median_ratio": round(
            sorted(w for w, _ in rows["refine"])[len(rows["refine"]) // 2]
            / sorted(w for w, _ in rows["cli"])[len(rows["cli"]) // 2],
            3,
        ),
        "refine_peak_rss_mib": round(max(r for _, r in rows["refine"]) / 1024),
        "cli_peak_rss_mib": round(max(r for _, r in rows["cli"]) / 1024),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
