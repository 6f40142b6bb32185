#!/usr/bin/env python3
"""Generate a synthetic, realistic-looking JSONL corpus for the deduplication benchmarks.

Every line is ``{"id": ..., "text": ..., "url": ..., "meta": {...}}``. Text lengths follow a
log-normal distribution (median ~1.5 KB, long tail capped at 100 KB). A configurable share of
the lines (default 20%) are exact duplicates: they repeat, byte for byte, the ``text`` of an
earlier document (picked uniformly among the earlier originals), under a new id, url and meta.
Every original document carries a unique number in its title line, so two originals never have
the same text: the true number of duplicates is known exactly and is printed, and written next
to the corpus as ``<output>.meta.json``.

The words come from real English text found on the machine: Python's ``pydoc_data.topics``
(always there) and the license texts in ``/usr/share/common-licenses`` (Debian/Ubuntu), plus
any ``--extra-text`` files. Real paragraphs and paragraphs recombined from real sentences are
shuffled into a pool of a few MB; each document is a random span of that pool. The output is
deterministic for a given seed, size and set of source texts.

Usage:
    python benchmarks/gen_corpus.py --size-gb 1.1
    python benchmarks/gen_corpus.py --size-gb 0.05 -o benchmarks/data/small.jsonl
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import pydoc_data.topics
import random
import re
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "data" / "corpus.jsonl"
LICENSE_DIR = Path("/usr/share/common-licenses")

MEDIAN_TEXT_BYTES = 1500
SIGMA = 1.1
MIN_TEXT_CHARS = 60
MAX_TEXT_CHARS = 100_000
POOL_CHARS = 16_000_000

# A little non-ASCII, as in any real web corpus (JSON is written as UTF-8, not \u escapes).
NON_ASCII_WORDS = [
    "naïve",
    "café",
    "Zürich",
    "résumé",
    "façade",
    "coöperate",
    "São Paulo",
    "Kraków",
    "東京",
    "数据",
    "Привет",
    "Ελλάδα",
    "für",
    "señor",
    "déjà vu",
    "½",
    "→",
    "€12",
    "“quoted”",
    "it’s",
    "— ",
    "🙂",
]
DOMAINS = [
    "docs.example.org",
    "blog.example.com",
    "forum.example.net",
    "wiki.example.org",
    "news.example.com",
    "mirror.example.net",
    "lists.example.org",
    "notes.example.io",
]
CRAWLS = ["CC-MAIN-2023-40", "CC-MAIN-2023-50", "CC-MAIN-2024-10", "CC-MAIN-2024-18"]

SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")


def source_texts(extra: Iterable[Path]) -> list[str]:
    """Real text available on this machine, in a fixed order."""
    texts = [pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics)]
    seen: set[Path] = set()
    paths = sorted(LICENSE_DIR.iterdir()) if LICENSE_DIR.is_dir() else []
    for path in [*paths, *extra]:
        real = path.resolve()
        if real in seen or not real.is_file():
            continue
        seen.add(real)
        texts.append(real.read_text(encoding="utf-8", errors="replace"))
    return texts


def split_paragraphs(texts: list[str]) -> list[str]:
    paragraphs = []
    for text in texts:
        for para in re.split(r"\n\s*\n", text):
            para = para.strip("\n")
            if len(para.strip()) >= 40:
                paragraphs.append(para)
    return paragraphs


def build_pool(paragraphs: list[str], rng: random.Random, pool_chars: int) -> str:
    """Shuffle real paragraphs and paragraphs recombined from real sentences into one string."""
    prose = [" ".join(p.split()) for p in paragraphs if not p.startswith(" ")]
    sentences = [s for p in prose for s in SENTENCE_SPLIT.split(p) if len(s) >= 20]
    vocab = sorted({w.lower() for s in sentences for w in WORD.findall(s)})
    out: list[str] = []
    total = 0
    while total < pool_chars:
        r = rng.random()
        if r < 0.35:
            para = rng.choice(paragraphs)  # a real paragraph, code blocks included
        else:
            picked = [rng.choice(sentences) for _ in range(rng.randint(2, 8))]
            if r < 0.45:  # sprinkle a few random words (typos, names, non-ASCII)
                i = rng.randrange(len(picked))
                extra = rng.choice(NON_ASCII_WORDS) if rng.random() < 0.3 else rng.choice(vocab)
                words = picked[i].split(" ")
                words.insert(rng.randrange(len(words) + 1), extra)
                picked[i] = " ".join(words)
            para = " ".join(picked)
        out.append(para)
        total += len(para) + 2
    return "\n\n".join(out)


@dataclass(frozen=True)
class Original:
    """Enough to rebuild an original document's text exactly (for its later duplicates)."""

    number: int
    title_seed: int
    start: int
    end: int


class TextMaker:
    def __init__(self, pool: str, vocab: list[str]) -> None:
        self.pool = pool
        self.vocab = vocab
        # Documents start at a paragraph start and end at a word boundary.
        self.starts = [0] + [m.end() for m in re.finditer(r"\n\n", pool)]

    def span(self, rng: random.Random, length: int) -> tuple[int, int]:
        limit = bisect.bisect_left(self.starts, len(self.pool) - length - 1000)
        start = self.starts[rng.randrange(max(1, limit))]
        end = self.pool.find(" ", start + length)
        return start, (end if end != -1 else len(self.pool))

    def text(self, doc: Original) -> str:
        trng = random.Random(doc.title_seed)
        title = " ".join(trng.choice(self.vocab) for _ in range(trng.randint(2, 7)))
        return f"{title.capitalize()} (no. {doc.number})\n\n{self.pool[doc.start : doc.end]}"


def text_length(rng: random.Random) -> int:
    n = int(rng.lognormvariate(math.log(MEDIAN_TEXT_BYTES), SIGMA))
    return min(max(n, MIN_TEXT_CHARS), MAX_TEXT_CHARS)


def record(i: int, text: str, rng: random.Random, vocab: list[str]) -> bytes:
    slug = "-".join(rng.choice(vocab) for _ in range(rng.randint(1, 4)))
    obj = {
        "id": f"doc-{i:09d}",
        "text": text,
        "url": f"https://{rng.choice(DOMAINS)}/{slug}/{i}",
        "meta": {
            "crawl": rng.choice(CRAWLS),
            "fetched": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
            "lang": "en",
            "quality": round(rng.random(), 4),
            "words": text.count(" ") + 1,
        },
    }
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def generate(output: Path, size_bytes: int, dup_frac: float, seed: int, extra: list[Path]) -> dict[str, Any]:
    rng = random.Random(seed)
    paragraphs = split_paragraphs(source_texts(extra))
    pool = build_pool(paragraphs, rng, POOL_CHARS)
    vocab = sorted({w.lower() for w in WORD.findall(pool)})
    maker = TextMaker(pool, vocab)

    originals: list[Original] = []
    docs = duplicates = written = 0
    text_lengths: list[int] = []
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    batch: list[bytes] = []
    with tmp.open("wb") as f:
        while written < size_bytes:
            if originals and rng.random() < dup_frac:
                text = maker.text(rng.choice(originals))
                duplicates += 1
            else:
                start, end = maker.span(rng, text_length(rng))
                doc = Original(len(originals), rng.getrandbits(64), start, end)
                originals.append(doc)
                text = maker.text(doc)
            line = record(docs, text, rng, vocab)
            text_lengths.append(len(text.encode("utf-8")))
            docs += 1
            written += len(line)
            batch.append(line)
            if len(batch) >= 2048:
                f.write(b"".join(batch))
                batch.clear()
        f.write(b"".join(batch))
    os.replace(tmp, output)

    text_lengths.sort()
    stats = {
        "path": str(output),
        "seed": seed,
        "dup_frac_target": dup_frac,
        "documents": docs,
        "duplicates": duplicates,
        "unique": docs - duplicates,
        "duplicate_share": duplicates / docs,
        "bytes": output.stat().st_size,
        "text_bytes": sum(text_lengths),
        "text_bytes_median": int(statistics.median(text_lengths)),
        "text_bytes_mean": int(statistics.fmean(text_lengths)),
        "text_bytes_p99": text_lengths[int(0.99 * (len(text_lengths) - 1))],
        "text_bytes_max": text_lengths[-1],
        "pool_chars": len(pool),
        "vocabulary": len(vocab),
    }
    output.with_name(output.name + ".meta.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--size-gb", type=float, default=1.1, help="target file size in GB (10^9 bytes; default 1.1)"
    )
    p.add_argument(
        "--dup-frac", type=float, default=0.20, help="share of lines that are exact duplicates (default 0.20)"
    )
    p.add_argument("--seed", type=int, default=1234, help="random seed (default 1234)")
    p.add_argument(
        "-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"output JSONL (default {DEFAULT_OUTPUT})"
    )
    p.add_argument(
        "--extra-text",
        type=Path,
        action="append",
        default=[],
        help="more plain-text files to draw words from",
    )
    args = p.parse_args(argv)
    if not 0.0 <= args.dup_frac < 1.0:
        p.error("--dup-frac must be in [0, 1)")

    t0 = time.perf_counter()
    s = generate(args.output, int(args.size_gb * 1e9), args.dup_frac, args.seed, args.extra_text)
    dt = time.perf_counter() - t0
    print(f"wrote {s['path']} in {dt:.1f} s")
    print(f"  documents:  {s['documents']:,}")
    print(f"  duplicates: {s['duplicates']:,} ({100 * s['duplicate_share']:.2f}%), unique: {s['unique']:,}")
    print(f"  size:       {s['bytes']:,} bytes ({s['bytes'] / 1e9:.3f} GB), text {s['text_bytes']:,} bytes")
    print(
        f"  text bytes: median {s['text_bytes_median']:,}, mean {s['text_bytes_mean']:,}, "
        f"p99 {s['text_bytes_p99']:,}, max {s['text_bytes_max']:,}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
