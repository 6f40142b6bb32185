"""Shared helpers for the tamis test suite.

* ``run_tamis(*args, input=None, cwd=None)`` runs the ``tamis`` console script of this environment.
* Writers/readers for JSONL (plain, .gz incl. multi-member, .zst) and Parquet (through polars).
* A deterministic corpus generator with planted duplicates and shared boilerplate lines.
* Brute-force Python oracles for exact and line deduplication (the spec, written naively).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
import zstandard

# ---------------------------------------------------------------------------------------------
# Running the CLI
# ---------------------------------------------------------------------------------------------


def tamis_command() -> list[str]:
    """The command line that starts the `tamis` console script of this environment."""
    exe = shutil.which("tamis")
    if exe is None:
        candidate = Path(sys.executable).with_name("tamis")
        if candidate.exists():
            exe = str(candidate)
    if exe is not None:
        return [exe]
    return [sys.executable, "-m", "tamis"]


TAMIS = tamis_command()


def _run(*args: Any, input: str | bytes | None = None, cwd: Any = None, timeout: float = 120):
    """Run tamis; the result has text ``stdout``/``stderr`` and ``stdout_bytes``/``stderr_bytes``."""
    if isinstance(input, str):
        input = input.encode("utf-8")
    proc = subprocess.run(
        [*TAMIS, *(os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args)],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        cwd=cwd,
        timeout=timeout,
    )
    result = subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", errors="replace"),
        proc.stderr.decode("utf-8", errors="replace"),
    )
    result.stdout_bytes = proc.stdout  # type: ignore[attr-defined]
    result.stderr_bytes = proc.stderr  # type: ignore[attr-defined]
    return result


@pytest.fixture
def run_tamis():
    return _run


def load_benchmark(name: str) -> Any:
    """``benchmarks/NAME.py`` as a module (the tests share its real data and judges)."""
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_ok(*args: Any, **kwargs: Any):
    """Run tamis and assert it succeeded."""
    r = _run(*args, **kwargs)
    assert r.returncode == 0, f"tamis {args} failed ({r.returncode}):\n{r.stderr}"
    return r


# ---------------------------------------------------------------------------------------------
# Writing and reading files
# ---------------------------------------------------------------------------------------------


def dump_record(rec: dict, style: int = 0) -> str:
    """Serialize one record in one of several JSON styles (all valid JSON, different bytes)."""
    if style == 0:
        return json.dumps(rec, ensure_ascii=False)
    if style == 1:
        return json.dumps(rec, ensure_ascii=True)
    if style == 2:
        return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
    if style == 3:
        return json.dumps(rec, ensure_ascii=True, separators=(", ", " : "))
    raise ValueError(style)


def jsonl_bytes(records: Iterable[dict], *, styled: bool = False, seed: int = 0) -> bytes:
    """JSONL bytes for records; with ``styled`` each record gets a pseudo-random JSON style."""
    rng = random.Random(seed)
    lines = [dump_record(r, rng.randrange(4) if styled else 0) for r in records]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def compress(data: bytes, path: str | os.PathLike) -> bytes:
    name = os.fspath(path)
    if name.endswith(".gz"):
        return gzip.compress(data, mtime=0)
    if name.endswith(".zst"):
        return zstandard.ZstdCompressor().compress(data)
    return data


def decompress(data: bytes, path: str | os.PathLike) -> bytes:
    name = os.fspath(path)
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write (already serialized JSONL) bytes, compressed according to the file extension."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(compress(data, p))
    return p


def write_jsonl(path: str | os.PathLike, records: Iterable[dict], *, styled: bool = False) -> Path:
    """Write records as JSONL; .gz and .zst extensions are compressed accordingly."""
    return write_bytes(path, jsonl_bytes(records, styled=styled))


def write_gz_multimember(path: str | os.PathLike, chunks: Sequence[bytes]) -> Path:
    """A gzip file made of several concatenated gzip members (like `cat a.gz b.gz`)."""
    p = Path(path)
    p.write_bytes(b"".join(gzip.compress(c, mtime=0) for c in chunks))
    return p


def write_zst_multiframe(path: str | os.PathLike, chunks: Sequence[bytes]) -> Path:
    p = Path(path)
    cctx = zstandard.ZstdCompressor()
    p.write_bytes(b"".join(cctx.compress(c) for c in chunks))
    return p


def write_parquet(path: str | os.PathLike, records: Sequence[dict]) -> Path:
    """Write records to Parquet with polars (large/view string types, as users produce them)."""
    import polars as pl

    p = Path(path)
    pl.DataFrame(list(records)).write_parquet(p)
    return p


def read_output_bytes(path: str | os.PathLike) -> bytes:
    """Decompressed bytes of a JSONL output file."""
    return decompress(Path(path).read_bytes(), path)


def read_records(path: str | os.PathLike) -> list[dict]:
    """Records of an output file (JSONL in any compression, or Parquet read with polars)."""
    name = os.fspath(path)
    if name.endswith(".parquet"):
        import polars as pl

        return pl.read_parquet(name).to_dicts()
    data = read_output_bytes(path)
    return parse_jsonl(data)


def parse_jsonl(data: bytes | str) -> list[dict]:
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return [json.loads(line) for line in data.split("\n") if line.strip()]


def output_lines(path: str | os.PathLike) -> list[bytes]:
    """The raw lines (without the newline) of a JSONL output file; asserts a final newline."""
    data = read_output_bytes(path)
    if not data:
        return []
    assert data.endswith(b"\n"), "JSONL output must end with a newline"
    return data[:-1].split(b"\n")


def read_stats(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def leftovers(directory: str | os.PathLike) -> list[str]:
    """Temporary files tamis may have left behind in a directory."""
    return sorted(n for n in os.listdir(directory) if ".tamis-tmp-" in n)


def assert_stats_invariant(stats: dict) -> None:
    removed = sum(stats["documents_removed"].values())
    skipped = sum(stats["records_skipped"].values())
    assert stats["documents_read"] == stats["documents_kept"] + removed + skipped, stats


# ---------------------------------------------------------------------------------------------
# Normalization and oracles (the spec, written naively in Python)
# ---------------------------------------------------------------------------------------------


class _SimpleTable(dict):
    """str.translate table: decimal digits (Nd) -> "0", punctuation (P*) removed, others kept."""

    def __missing__(self, cp: int) -> str:
        c = chr(cp)
        cat = unicodedata.category(c)
        value = "0" if cat == "Nd" else ("" if cat.startswith("P") else c)
        self[cp] = value
        return value


_SIMPLE_TABLE = _SimpleTable()


def normalize(text: str, mode: str) -> str:
    """The spec's normalizations: none; whitespace (runs of white space -> one space, trimmed);
    simple (NFKC, str.lower(), Nd digits -> "0", P* removed, then whitespace)."""
    if mode == "none":
        return text
    if mode == "simple":
        text = unicodedata.normalize("NFKC", text).lower().translate(_SIMPLE_TABLE)
    elif mode != "whitespace":
        raise ValueError(mode)
    return " ".join(text.split())


def exact_oracle(
    docs: Sequence[dict], *, normalize_mode: str = "none", key: str | None = None, text_key: str = "text"
) -> dict:
    """Ids kept (first occurrence of each normalized key, in order) and the expected statistics."""
    seen: set[str] = set()
    kept: list[dict] = []
    for d in docs:
        value = d[key] if key is not None else d[text_key]
        k = normalize(value, normalize_mode)
        if k in seen:
            continue
        seen.add(k)
        kept.append(d)
    return {
        "kept": kept,
        "kept_ids": [d["id"] for d in kept],
        "documents_read": len(docs),
        "documents_kept": len(kept),
        "duplicates": len(docs) - len(kept),
        "distinct_hashes": len(seen),
        "text_bytes_read": sum(len(d[text_key].encode()) for d in docs),
        "text_bytes_kept": sum(len(d[text_key].encode()) for d in kept),
    }


def lines_oracle(
    docs: Sequence[dict],
    *,
    max_occurrences: int = 1,
    min_line_chars: int = 0,
    normalize_mode: str = "none",
    text_key: str = "text",
) -> dict:
    """CCNet-style line dedup over docs in order; returns output docs (with new text) and counters."""
    counts: dict[str, int] = {}
    out: list[tuple[dict, str, bool]] = []  # (doc, new text, modified)
    dropped = 0
    lines_read = 0
    lines_removed = 0
    for d in docs:
        lines = d[text_key].split("\n")
        lines_read += len(lines)
        kept_lines = []
        removed = 0
        for line in lines:
            n = normalize(line, normalize_mode)
            eligible = n.strip() != "" and (min_line_chars == 0 or len(line) >= min_line_chars)
            if eligible:
                c = counts.get(n, 0) + 1
                counts[n] = c
                if c > max_occurrences:
                    removed += 1
                    continue
            kept_lines.append(line)
        lines_removed += removed
        if removed == 0:
            out.append((d, d[text_key], False))
            continue
        new_text = "\n".join(kept_lines)
        if new_text.strip() == "":
            dropped += 1
            continue
        out.append((d, new_text, True))
    return {
        "out": out,
        "kept_ids": [d["id"] for d, _, _ in out],
        "texts": [t for _, t, _ in out],
        "documents_read": len(docs),
        "documents_kept": len(out),
        "documents_modified": sum(1 for _, _, m in out if m),
        "dropped": dropped,
        "lines_read": lines_read,
        "lines_removed": lines_removed,
        "distinct_lines": len(counts),
        "text_bytes_read": sum(len(d[text_key].encode()) for d in docs),
        "text_bytes_kept": sum(len(t.encode()) for _, t, _ in out),
    }


# ---------------------------------------------------------------------------------------------
# Deterministic corpus with planted duplicates
# ---------------------------------------------------------------------------------------------

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "data",
    "model",
    "river",
    "token",
    "corpus",
    "filter",
    "sieve",
    "grain",
    "stone",
    "light",
    "window",
    "garden",
    "paper",
    "café",
    "naïve",
    "élève",
    "Zürich",
    "straße",
    "garçon",
    "résumé",
    "año",
    "Ångström",
    "façade",
    "東京",
    "数据",
    "清洗",
    "語言",
    "模型",
    "日本語",
    "한국어",
    "Москва",
    "данные",
    "ελληνικά",
    "Θεσσαλονίκη",
    "İstanbul",
    "ﬁnal",
    "Ⅻ",
    "2023",
    "42",
    "3.14",
    "v2",
    "x²",
    "١٢٣",
    "१२",
    "e-mail",
    "don't",
    "$5",
    "<b>",
    "a+b",
    "50%",
    "#tag",
    "@user",
    "C++",
    "~home",
]

PUNCT = [
    ",",
    ".",
    "!",
    "?",
    ";",
    ":",
    "—",
    "-",
    "«",
    "»",
    "“",
    "”",
    "¿",
    "¡",
    "。",
    "、",
    "'",
    '"',
    "(",
    ")",
    "[",
    "]",
    "_",
    "…",
    "·",
    "/",
    "*",
    "&",
]

SPACES = ["  ", "\t", "\u00a0", "\u3000", " \u2003 ", "\u2009", "   "]

BOILERPLATE = [
    "Copyright © 2023 Example Inc. All rights reserved.",
    "Click here to subscribe to our newsletter!",
    "Accueil | Contact | À propos",
    "首页 | 联系我们 | 关于我们",
    "Share this article on Facebook, Twitter and LinkedIn",
    "Cookies help us deliver our services.",
    "Read more »",
    "Posted by admin on 12/03/2021",
    "ホーム | お問い合わせ",
    "Войти | Регистрация",
]

DIGIT_FORMS = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "０１２３４５６７８９", "०१२३४५६७८९", "9876543210"]


def _sentence(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n_words)]
    s = " ".join(words)
    if rng.random() < 0.5:
        s += rng.choice([".", "!", "?", "。", " …"])
    return s[0].upper() + s[1:] if rng.random() < 0.5 else s


def ws_variant(rng: random.Random, text: str, *, allow_newline: bool = True) -> str:
    out = []
    for c in text:
        if c == " " and rng.random() < 0.4:
            out.append(rng.choice(SPACES + (["\n", " \n "] if allow_newline else [])))
        else:
            out.append(c)
    lead = rng.choice(["", " ", "\t", "\u3000"])
    trail = rng.choice(["", " ", "  ", "\u00a0"] + (["\n"] if allow_newline else []))
    return lead + "".join(out) + trail


def case_variant(rng: random.Random, text: str) -> str:
    return rng.choice([str.upper, str.title, str.swapcase, str.lower])(text)


def punct_variant(rng: random.Random, text: str) -> str:
    out = []
    for c in text:
        out.append(c)
        if rng.random() < 0.15:
            out.append(rng.choice(PUNCT))
    return "".join(out) + rng.choice(["", "!!", "...", "?"])


def digit_variant(rng: random.Random, text: str) -> str:
    form = rng.choice(DIGIT_FORMS)
    return "".join(form[rng.randrange(10)] if c.isdigit() else c for c in text)


def nfkc_variant(rng: random.Random, text: str) -> str:
    out = []
    for c in text:
        if "a" <= c <= "z" and rng.random() < 0.3:
            out.append(chr(ord(c) - ord("a") + ord("ａ")))  # fullwidth
        elif c == "é":
            out.append("e\u0301")  # decomposed accent
        else:
            out.append(c)
    return "".join(out).replace("fi", "ﬁ")


def symbol_variant(rng: random.Random, text: str) -> str:
    """Differs from ``text`` even after simple normalization (symbols are not punctuation)."""
    return text + rng.choice([" $", " +", " =", " ~", " §x"])


VARIANTS = {
    "exact": lambda rng, t: t,
    "ws": ws_variant,
    "case": case_variant,
    "punct": punct_variant,
    "digit": digit_variant,
    "nfkc": nfkc_variant,
    "mixed": lambda rng, t: ws_variant(rng, punct_variant(rng, case_variant(rng, digit_variant(rng, t)))),
    "symbol": symbol_variant,
}


def _doc_text(rng: random.Random, boiler: list[str]) -> str:
    lines = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.30:
            line = rng.choice(boiler)
        elif r < 0.38:
            line = rng.choice(["", "   ", "\t"])
        elif r < 0.43:
            line = rng.choice(["ok", "—", "!!!", "1.", "· · ·", "…", "OK", "ok."])
        else:
            line = _sentence(rng, rng.randint(2, 12))
        lines.append(line)
    return "\n".join(lines)


def make_corpus(n_docs: int, seed: int = 0, *, dup_rate: float = 0.35, id_prefix: str = "d") -> list[dict]:
    """Documents with ids, text, url and typed passthrough fields; ~dup_rate are planted variants.

    Texts are multi-line with boilerplate lines (and variants of them) shared across documents,
    blank and short lines, CJK, accents, digits in several scripts and punctuation.
    """
    rng = random.Random(seed)
    boiler = list(BOILERPLATE)
    for b in BOILERPLATE:  # line-level variants of the boilerplate, for normalized line dedup
        boiler.append(case_variant(rng, b))
        boiler.append(punct_variant(rng, b))
        boiler.append(digit_variant(rng, b))
        boiler.append(ws_variant(rng, b, allow_newline=False))
    docs: list[dict] = []
    urls: list[str] = []
    for i in range(n_docs):
        if docs and rng.random() < dup_rate:
            src = rng.choice(docs)
            kind = rng.choice(list(VARIANTS))
            text = VARIANTS[kind](rng, src["text"])
        else:
            text = _doc_text(rng, boiler)
        if urls and rng.random() < 0.2:
            url = rng.choice(urls)
        else:
            url = f"https://example.{rng.choice(['com', 'org', 'jp'])}/{rng.randrange(10**6)}/{i}"
            if rng.random() < 0.1:
                url = url.upper()
            urls.append(url)
        docs.append(
            {
                "id": f"{id_prefix}{i:05d}",
                "text": text,
                "url": url,
                "n": rng.randrange(-(10**12), 10**12),
                "score": round(rng.uniform(-1000, 1000), 6),
                "flag": rng.random() < 0.5,
                "tags": [rng.choice(WORDS) for _ in range(rng.randrange(4))],
                "meta": {
                    "lang": rng.choice(["en", "fr", "ja", "zh", "ru"]),
                    "depth": rng.randrange(10),
                    "source": {"name": rng.choice(["cc", "wiki", "books"]), "ratio": rng.random()},
                },
            }
        )
    return docs


def big_corpus(n_docs: int = 20000, seed: int = 7) -> list[dict]:
    """~600-byte documents (over 8 MB of JSONL for 20k docs) with planted duplicates and boilerplate."""
    rng = random.Random(seed)
    filler = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(400)]
    docs: list[dict] = []
    for i in range(n_docs):
        if docs and rng.random() < 0.25:
            src = docs[rng.randrange(len(docs))]["text"]
            text = rng.choice([src, src.upper(), "  " + src.replace(" ", "  ") + " ", src + "!"])
        else:
            parts = [rng.choice(filler) for _ in range(rng.randint(4, 7))]
            if rng.random() < 0.5:
                parts.insert(rng.randrange(len(parts) + 1), rng.choice(BOILERPLATE))
            parts.append(f"unique {i} {rng.random()}")
            rng.shuffle(parts)
            text = "\n".join(parts)
        docs.append(
            {
                "id": f"b{i:06d}",
                "text": text,
                "url": f"https://ex.com/{rng.randrange(15000)}",
                "n": i,
                "meta": {"k": rng.choice(["a", "b"])},
            }
        )
    return docs


@pytest.fixture(scope="session")
def big_jsonl(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A > 8 MB JSONL corpus (several batches) and its records."""
    docs = big_corpus()
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    data = jsonl_bytes(docs)
    assert len(data) > 8 * 1024 * 1024
    path.write_bytes(data)
    return path, docs


__all__ = [
    "TAMIS",
    "assert_stats_invariant",
    "big_corpus",
    "compress",
    "decompress",
    "dump_record",
    "exact_oracle",
    "jsonl_bytes",
    "leftovers",
    "lines_oracle",
    "make_corpus",
    "normalize",
    "output_lines",
    "parse_jsonl",
    "read_output_bytes",
    "read_records",
    "read_stats",
    "run_ok",
    "write_bytes",
    "write_gz_multimember",
    "write_jsonl",
    "write_parquet",
    "write_zst_multiframe",
]
