"""Language ID speed: tamis' own fastText inference (Rust, ``tamis._core.FastText``) against the
fastText Python package (``fasttext-numpy2-wheel``), same model (the embedded ``lid.176.ftz``),
same sentences, one core each, interleaved runs. Also checks that both give the same labels.

    python benchmarks/bench_fasttext.py [--sentences 200000] [--repeat 5]

Sentences: lines of Debian's translated manual pages in 24 languages and Python's documentation
(scripts/test.sh installs the pages), cycled to ``--sentences``. Newlines are not in them, as
both libraries predict one line.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tamis import _core  # noqa: E402
from test_fasttext_rust import LANGUAGES, _sentences  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sentences", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()

    import fasttext

    base: list[str] = []
    for lang in LANGUAGES:
        base += _sentences(lang)
    from pydoc_data.topics import topics

    english = [line.strip() for t in topics.values() for line in t.splitlines()]
    base += [line for line in english if len(line) >= 40][:400]
    lines = [base[i % len(base)] for i in range(a.sentences)]
    mb = sum(len(s.encode()) for s in lines) / 1e6
    path = Path(__file__).resolve().parents[1] / "rust" / "core" / "assets" / "lid.176.ftz"
    ours = _core.FastText(path)
    theirs = fasttext.load_model(str(path))
    os.environ["OMP_NUM_THREADS"] = "1"

    got = ours.predict(lines[: len(base)], k=1, threads=1)
    want, _ = theirs.predict(lines[: len(base)], k=1)
    same = sum(g[0][0] == w[0] for g, w in zip(got, want, strict=True))
    times: dict[str, list[float]] = {"tamis (Rust, 1 thread)": [], "fasttext (C++ via Python, 1 thread)": []}
    for _ in range(a.repeat):
        t = time.perf_counter()
        ours.predict(lines, k=1, threads=1)
        times["tamis (Rust, 1 thread)"].append(time.perf_counter() - t)
        t = time.perf_counter()
        theirs.predict(lines, k=1)
        times["fasttext (C++ via Python, 1 thread)"].append(time.perf_counter() - t)

    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), "n/a")
    print(f"machine: {cpu}, {os.cpu_count()} logical CPUs, {platform.platform()}")
    print(f"model: {path.name}; {len(lines)} sentences, {mb:.1f} MB")
    print(f"same top label on {same} of {len(base)} distinct sentences")
    print("| implementation | best s | median s | sentences/s (best) |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {min(ts):.3f} | {statistics.median(ts):.3f} | {len(lines) / min(ts):,.0f} |")
    r = min(times["fasttext (C++ via Python, 1 thread)"]) / min(times["tamis (Rust, 1 thread)"])
    print(f"tamis / fasttext speed: {r:.2f}x (best of {a.repeat})")


if __name__ == "__main__":
    main()
