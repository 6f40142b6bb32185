"""Exact then line dedup over a small JSONL corpus, from Python.

Run: python examples/dedup_files.py [WORKDIR]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import tamis


def main(workdir: Path) -> None:
    corpus = workdir / "corpus.jsonl"
    docs = [
        {"id": "a", "text": "Home | About\nTamis sifts corpora.\nCopyright Example"},
        {"id": "b", "text": "Home | About\nA second page.\nCopyright Example"},
        {"id": "c", "text": "Home | About\nTamis  sifts corpora.\nCopyright Example"},  # spacing variant of a
        {"id": "d", "text": "Home | About\nA second page.\nCopyright Example"},  # exact copy of b
    ]
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))

    exact = tamis.dedup.exact(corpus, workdir / "exact.jsonl", normalize="whitespace")
    print("exact:", exact["documents_kept"], "kept,", exact["documents_removed"])

    lines = tamis.dedup.lines(workdir / "exact.jsonl", workdir / "clean.jsonl", max_occurrences=1)
    print("lines:", lines["counters"]["lines_removed"], "lines removed")
    for line in (workdir / "clean.jsonl").read_text().splitlines():
        print("  ", json.loads(line))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
