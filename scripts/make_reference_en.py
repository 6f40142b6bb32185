#!/usr/bin/env python3
"""Build ``rust/core/assets/reference-en.tsv.zst``: the built-in English reference of
``tamis vocab extend`` (word frequencies of the base language, used to keep new merges away
from English).

Source: wordfreq 3.1.1 (Robyn Speer; code Apache-2.0, data CC BY-SA 4.0), English "large"
list, every word with a frequency of at least 1e-7 (Zipf >= 2): about 96,000 lower-cased
words. Each line is ``word<TAB>count`` with count = round(frequency * 1e9), most frequent
first; the file is zstd-compressed (level 19).

Usage: pip install wordfreq==3.1.1 zstandard && python scripts/make_reference_en.py
"""

from __future__ import annotations

from pathlib import Path

import wordfreq
import zstandard

OUT = Path(__file__).resolve().parent.parent / "rust" / "core" / "assets" / "reference-en.tsv.zst"
MIN_FREQUENCY = 1e-7


def main() -> None:
    freqs = wordfreq.get_frequency_dict("en", wordlist="large")
    rows = sorted(((w, f) for w, f in freqs.items() if f >= MIN_FREQUENCY), key=lambda x: (-x[1], x[0]))
    text = "".join(f"{w}\t{round(f * 1e9)}\n" for w, f in rows if "\t" not in w and "\n" not in w)
    OUT.write_bytes(zstandard.ZstdCompressor(level=19).compress(text.encode()))
    print(f"{len(rows)} words, {len(text)} bytes -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
