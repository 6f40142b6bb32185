"""Hostile-user findings: compressed data under a plain name, pipes given to two-pass commands,
stats files that cannot be written, and the messages each gets."""

from __future__ import annotations

import gzip
import json
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


def test_python_argument_errors_name_the_argument(tmp_path):
    import tamis
    import tamis.dedup as dedup
    import tamis.prox as prox

    with pytest.raises(tamis.ConfigError, match=r"rank -1|rank must be") as e:
        dedup.near_buckets(tmp_path, rank=-1)
    assert "rank" in e.value.fields
    with pytest.raises(tamis.ConfigError, match="rank 3 must be below world_size 2"):
        dedup.near_buckets(tmp_path, rank=3, world_size=2)
    with pytest.raises(tamis.ConfigError, match="world_size must be from 1"):
        dedup.near_buckets(tmp_path, rank=0, world_size=0)
    with pytest.raises(TypeError, match="accept must be a tamis Acceptance, got str"):
        prox.execute_chunk("a b", "keep_chunk()", accept="yes")  # type: ignore[arg-type]
    for bad in (-1, 2**70, 100_000, True):
        with pytest.raises(tamis.ConfigError, match="threads must be an integer from 0 to 1024") as e:
            prox.execute_chunks(["a"], ["keep_chunk()"], threads=bad)
        assert e.value.fields == ["threads"]
    assert prox.execute_chunks(["a"], ["keep_chunk()"], threads=1) == [""]


def test_doc_stage_drops_documents_without_words(tmp_path):
    """Empty and whitespace-only texts alike: the reference's next stage has no words to count."""
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        jsonl_bytes(
            [
                {"id": 1, "text": "", "doc": "keep_doc()"},
                {"id": 2, "text": " \n\t ", "doc": "keep_doc()"},
                {"id": 3, "text": "\u3000", "doc": "keep_doc()"},
                {"id": 4, "text": "some words", "doc": "keep_doc()"},
            ]
        )
    )
    out = tmp_path / "out.jsonl"
    run_ok("-q", "prox", "apply", src, "-o", out, "--stage", "doc", "--doc-program-key", "doc",
           "--stats-json", tmp_path / "s.json")  # fmt: skip
    kept = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert kept == [4]
    assert json.loads((tmp_path / "s.json").read_text())["documents_removed"] == {"no_words": 3}
