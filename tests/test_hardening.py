"""Hostile-user findings: compressed data under a plain name, pipes given to two-pass commands,
stats files that cannot be written, and the messages each gets."""

from __future__ import annotations

import gzip
import os
import sys

import pytest
import zstandard
from conftest import jsonl_bytes, run_ok

RECORDS = [{"id": i, "text": t} for i, t in enumerate(["a b c", "a b c", "d e f"])]


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_compressed_file_with_a_plain_name_is_read_by_its_magic_bytes(tmp_path, kind):
    data = jsonl_bytes(RECORDS)
    packed = gzip.compress(data) if kind == "gzip" else zstandard.ZstdCompressor().compress(data)
    src = tmp_path / "looks-plain.jsonl"
    src.write_bytes(packed)
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(data)
    out, want = tmp_path / "out.jsonl", tmp_path / "want.jsonl"
    run_ok("-q", "dedup", "exact", src, "-o", out)
    run_ok("-q", "dedup", "exact", plain, "-o", want)
    assert out.read_bytes() == want.read_bytes() != b""


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs")
@pytest.mark.parametrize(
    "command", [["dedup", "near"], ["dedup", "exact", "--keep", "longest"]], ids=["near", "exact-keep"]
)
def test_two_pass_commands_refuse_a_pipe_by_name(tmp_path, run_tamis, command):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    # Refused before it is opened: opening a pipe nobody writes to would block (the timeout).
    r = run_tamis(*command, fifo, "-o", tmp_path / "out.jsonl", timeout=30)
    assert r.returncode == 1, r.stderr
    assert "pipe.jsonl:" in r.stderr and "not a regular file" in r.stderr and "save it to a file" in r.stderr
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs a directory no one can write")
def test_stats_json_that_cannot_be_created_fails_before_any_work(tmp_path, run_tamis):
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl_bytes(RECORDS))
    out = tmp_path / "out.jsonl"
    # /proc takes no new files, even for root (CI runs as root, so permissions would not do).
    r = run_tamis("dedup", "exact", src, "-o", out, "--stats-json", "/proc/tamis-stats.json")
    assert r.returncode == 1
    assert "/proc/tamis-stats.json: cannot create --stats-json in /proc" in r.stderr
    assert not out.exists()
