"""Input/output behaviour of `tamis dedup`: formats, ids, passthrough, order, bad input, errors."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import subprocess
import time
import zlib
from pathlib import Path

import polars as pl
import pytest
import tamis
import zstandard
from conftest import (
    TAMIS,
    _run,
    assert_stats_invariant,
    jsonl_bytes,
    leftovers,
    make_corpus,
    output_lines,
    parse_jsonl,
    read_output_bytes,
    read_records,
    read_stats,
    run_ok,
    write_bytes,
    write_gz_multimember,
    write_jsonl,
    write_parquet,
    write_zst_multiframe,
)

STATS_KEYS = {
    "command",
    "input_files",
    "documents_read",
    "documents_kept",
    "documents_modified",
    "documents_removed",
    "records_skipped",
    "counters",
    "text_bytes_read",
    "text_bytes_kept",
    "bytes_written",
    "input_bytes",
    "seconds",
    "threads",
}


def unique_docs(n: int = 60, seed: int = 3) -> list[dict]:
    """Documents with distinct texts (nothing is removed by exact dedup with normalize none)."""
    docs = make_corpus(n, seed, dup_rate=0.0)
    seen = set()
    out = []
    for d in docs:
        if d["text"] not in seen:
            seen.add(d["text"])
            out.append(d)
    return out


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------

INPUT_FORMATS = [
    "jsonl",
    "ndjson",
    "json",
    "jsonl.gz",
    "multi.jsonl.gz",
    "jsonl.zst",
    "multi.jsonl.zst",
    "ndjson.gz",
    "parquet",
]
OUTPUT_FORMATS = ["jsonl", "jsonl.gz", "jsonl.zst", "parquet", "-"]


def write_input(tmp_path: Path, fmt: str, docs: list[dict], styled: bool = True) -> tuple[Path, bytes]:
    """Write docs in the given input format; returns the path and the plain JSONL bytes."""
    data = jsonl_bytes(docs, styled=styled)
    path = tmp_path / f"in.{fmt}"
    if fmt == "parquet":
        write_parquet(path, docs)
        data = jsonl_bytes(docs, styled=False)
    elif fmt.startswith("multi.") and fmt.endswith(".gz"):
        lines = data.splitlines(keepends=True)
        k = len(lines) // 3
        write_gz_multimember(
            path, [b"".join(lines[:k]), b"".join(lines[k : 2 * k]), b"", b"".join(lines[2 * k :])]
        )
    elif fmt.startswith("multi.") and fmt.endswith(".zst"):
        lines = data.splitlines(keepends=True)
        k = len(lines) // 2
        write_zst_multiframe(path, [b"".join(lines[:k]), b"".join(lines[k:])])
    else:
        write_bytes(path, data)
    return path, data


@pytest.mark.parametrize("out_fmt", OUTPUT_FORMATS)
@pytest.mark.parametrize("in_fmt", INPUT_FORMATS)
def test_round_trip_every_format(tmp_path, in_fmt, out_fmt):
    docs = unique_docs(40)
    src, plain = write_input(tmp_path, in_fmt, docs)
    out = tmp_path / f"out.{out_fmt}" if out_fmt != "-" else "-"
    r = run_ok("-q", "dedup", "exact", src, "-o", out, "--stats-json", tmp_path / "s.json")
    stats = read_stats(tmp_path / "s.json")
    assert stats["documents_read"] == len(docs)
    assert stats["documents_kept"] == len(docs)
    assert_stats_invariant(stats)

    if out_fmt == "-":
        got_bytes = r.stdout_bytes
        got = parse_jsonl(got_bytes)
    else:
        raw = Path(out).read_bytes()
        magic = {"jsonl.gz": b"\x1f\x8b", "jsonl.zst": b"\x28\xb5\x2f\xfd", "parquet": b"PAR1"}.get(out_fmt)
        if magic:
            assert raw.startswith(magic), f"{out_fmt} output is not in that format"
        if out_fmt == "jsonl":
            assert raw[:1] == b"{"
        assert stats["bytes_written"] == len(raw)
        got = read_records(out)
        got_bytes = read_output_bytes(out) if out_fmt != "parquet" else None
    assert got == docs  # values, including nested and typed passthrough fields
    if got_bytes is not None and in_fmt != "parquet":
        # JSONL -> JSONL: unchanged records are written back byte for byte
        assert got_bytes == plain
    assert leftovers(tmp_path) == []


def test_jsonl_passthrough_is_byte_for_byte(tmp_path):
    """Odd but valid JSON (escapes, spacing, key order, big numbers, exotic values) is kept verbatim."""
    lines = [
        '{"id":"a","text":"caf\\u00e9 \\/ slash","x":1.0e3,"big":123456789012345678901234567890}',
        '{ "text" : "naïve 東京" , "id" : "b" , "nested" : { "z" : [ 1 , 2 , { } ] } , "n" : null }',
        '{"z_first":true,"text":"tab\\tand\\nnewline","id":"c","f":-0.0,"e":1E-7}',
        '{"id":"d","text":"emoji \\ud83d\\ude00 and 😀","dup":"same","arr":[]}',
        '{"id":"e","text":"","s":"\\"quoted\\""}',
    ]
    src = tmp_path / "p.jsonl"
    src.write_bytes(("\n".join(lines) + "\n").encode())
    out = tmp_path / "o.jsonl"
    run_ok("-q", "dedup", "exact", src, "-o", out)
    assert out.read_bytes() == src.read_bytes()


def test_crlf_blank_lines_and_missing_final_newline(tmp_path):
    src = tmp_path / "crlf.jsonl"
    src.write_bytes(b'{"id":"1","text":"a"}\r\n\r\n   \t\n{"id":"2","text":"b"}\r\n\n{"id":"3","text":"c"}')
    out = tmp_path / "o.jsonl"
    r = run_ok("-q", "dedup", "exact", src, "-o", out, "--stats-json", tmp_path / "s.json")
    assert out.read_bytes() == b'{"id":"1","text":"a"}\n{"id":"2","text":"b"}\n{"id":"3","text":"c"}\n'
    stats = read_stats(tmp_path / "s.json")
    assert stats["documents_read"] == 3  # blank lines are not records
    assert stats["records_skipped"] == {}
    assert r.stdout == ""


def test_stdin_plain_gzip_zstd_and_stdout(tmp_path, run_tamis):
    docs = unique_docs(30)
    plain = jsonl_bytes(docs, styled=True)
    for data in (
        plain,
        gzip.compress(plain),
        zstandard.ZstdCompressor().compress(plain),
        gzip.compress(plain[:100]) + gzip.compress(plain[100:]),
    ):
        r = run_tamis("-q", "dedup", "exact", "-", "-o", "-", input=data)
        assert r.returncode == 0, r.stderr
        assert r.stdout_bytes == plain
        # quiet mode: nothing but the data on stdout, nothing on stderr
        assert r.stderr == ""


def test_stdin_to_file_and_generated_ids(tmp_path, run_tamis):
    data = b'{"text":"one"}\n\n{"text":"two","id":null}\n'
    out = tmp_path / "o.jsonl"
    r = run_tamis("-q", "dedup", "exact", "-", "-o", out, input=data)
    assert r.returncode == 0, r.stderr
    recs = read_records(out)
    assert [x["text"] for x in recs] == ["one", "two"]
    assert recs[0]["id"].endswith(":1")
    assert recs[1]["id"].endswith(":3")
    assert recs[0]["id"] != recs[1]["id"]


def test_ids_generated_for_missing_or_null_jsonl(tmp_path):
    lines = [
        b'{"id":"given","text":"a"}',
        b'{"text":"b","meta":{"k":[1,2]}}',
        b"",
        b'{"id":null,"text":"c","v":1.5}',
        b'{"text":"d"}',
    ]
    src = tmp_path / "gen.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "o.jsonl"
    run_ok("-q", "dedup", "exact", src, "-o", out)
    got = output_lines(out)
    assert got[0] == lines[0]  # unchanged record: byte for byte
    recs = [json.loads(x) for x in got]
    assert [r["id"] for r in recs] == ["given", "gen.jsonl:2", "gen.jsonl:4", "gen.jsonl:5"]
    # the id is ADDED; every other field is passed through unchanged
    assert recs[1] == {"text": "b", "meta": {"k": [1, 2]}, "id": "gen.jsonl:2"}
    assert recs[2] == {"text": "c", "v": 1.5, "id": "gen.jsonl:4"}
    assert recs[3] == {"text": "d", "id": "gen.jsonl:5"}


def test_modified_records_keep_exact_values(tmp_path):
    """Adding an id (or changing the text) must not round values through floats or re-escape strings."""
    line = (
        '{"text":"shared\\nmine","big":123456789012345678901234567890,"f":1.0,"e":1e5,'
        '"u":18446744073709551615,"i":-9223372036854775808,"fl":0.1,"s":"\\ud83d\\ude00 \\u00e9"}'
    )
    src = tmp_path / "v.jsonl"
    src.write_text(line + "\n" + line.replace("mine", "yours") + "\n", encoding="utf-8")
    out = tmp_path / "o.jsonl"
    for cmd in ("exact", "lines"):
        run_ok("-q", "dedup", cmd, src, "-o", out)
        recs = read_records(out)
        assert recs[0] == {**json.loads(line), "id": "v.jsonl:1"}
        expected_text = "shared\nyours" if cmd == "exact" else "yours"
        assert recs[1] == {**json.loads(line), "text": expected_text, "id": "v.jsonl:2"}
        assert recs[1]["big"] == 123456789012345678901234567890


def test_ids_generated_with_custom_keys(tmp_path):
    src = tmp_path / "k.jsonl"
    src.write_bytes(b'{"body":"x","doc_id":"A"}\n{"body":"y"}\n{"body":"x","doc_id":"C"}\n')
    out = tmp_path / "o.jsonl"
    run_ok("-q", "dedup", "exact", src, "-o", out, "--text-key", "body", "--id-key", "doc_id")
    assert read_records(out) == [{"body": "x", "doc_id": "A"}, {"body": "y", "doc_id": "k.jsonl:2"}]


def test_ids_and_line_numbers_in_compressed_multi_member_input(tmp_path):
    m1 = b"".join(b'{"text":"a%d"}\n' % i for i in range(5))
    m2 = b'{"text":"b","id":null}\n\n{bad\n{"text":"c"}\n'
    src = write_gz_multimember(tmp_path / "mm.jsonl.gz", [m1, m2])
    out = tmp_path / "o.jsonl"
    r = _run("dedup", "exact", src, "-o", out)
    assert r.returncode == 1 and "mm.jsonl.gz" in r.stderr and re.search(r"\bline 8\b", r.stderr), r.stderr
    run_ok("-q", "dedup", "exact", src, "-o", out, "--on-error", "skip")
    assert [x["id"] for x in read_records(out)] == [f"mm.jsonl.gz:{i}" for i in (1, 2, 3, 4, 5, 6, 9)]
    zsrc = write_zst_multiframe(tmp_path / "mm.jsonl.zst", [m1, m2])
    run_ok("-q", "dedup", "lines", zsrc, "-o", out, "--on-error", "skip")
    assert [x["id"] for x in read_records(out)] == [f"mm.jsonl.zst:{i}" for i in (1, 2, 3, 4, 5, 6, 9)]


def test_parquet_row_numbers_across_row_groups(tmp_path):
    n = 1000
    df = pl.DataFrame(
        {
            "text": [None if i == 749 else f"t{i}" for i in range(n)],
            "id": [None if i % 100 == 5 else f"i{i}" for i in range(n)],
        }
    )
    src = tmp_path / "rg.parquet"
    df.write_parquet(src, row_group_size=100)
    out = tmp_path / "o.jsonl"
    with pytest.raises(tamis.TamisError) as ei:
        tamis.dedup.exact(src, out, threads=2)
    assert (ei.value.kind, ei.value.location) == ("text_not_string", "row 750")
    tamis.dedup.exact(src, out, on_error="skip", rejects=tmp_path / "r.jsonl", threads=2)
    rej = parse_jsonl((tmp_path / "r.jsonl").read_bytes())
    assert [(x["row"], x["reason"]) for x in rej] == [(750, "text_not_string")]
    recs = read_records(out)
    assert len(recs) == n - 1
    assert [r["text"] for r in recs] == [f"t{i}" for i in range(n) if i != 749]
    assert all(isinstance(r["id"], str) for r in recs), "null ids must be replaced by generated ones"
    # ids present are kept; null ids are generated as FILE:ROW (1-based)
    assert [r["id"] for r in recs if not r["id"].startswith("rg.parquet:")] == [
        f"i{i}" for i in range(n) if i % 100 != 5 and i != 749
    ]
    assert [r["id"] for r in recs if r["id"].startswith("rg.parquet:")] == [
        f"rg.parquet:{i + 1}" for i in range(n) if i % 100 == 5
    ]


def test_parquet_ids_generated_across_row_groups(tmp_path):
    n = 1000
    src = tmp_path / "rg2.parquet"
    pl.DataFrame({"text": [f"t{i}" for i in range(n)]}).write_parquet(src, row_group_size=64)
    out = tmp_path / "o.jsonl"
    run_ok("-q", "--threads", "2", "dedup", "exact", src, "-o", out)
    assert [r["id"] for r in read_records(out)] == [f"rg2.parquet:{i + 1}" for i in range(n)]


def test_same_input_twice_keeps_one_copy(tmp_path):
    docs = unique_docs(30)
    src = write_jsonl(tmp_path / "a.jsonl", docs, styled=True)
    out = tmp_path / "o.jsonl"
    run_ok("-q", "dedup", "exact", src, src, "-o", out)
    assert out.read_bytes() == src.read_bytes()


def test_stdout_output_has_only_records_without_quiet(tmp_path, run_tamis):
    docs = unique_docs(20)
    src = write_jsonl(tmp_path / "a.jsonl", docs, styled=True)
    r = run_tamis("dedup", "exact", src, "-o", "-")
    assert r.returncode == 0, r.stderr
    assert r.stdout_bytes == src.read_bytes()  # the summary, if any, goes to stderr
    quiet = run_tamis("-q", "dedup", "lines", src, "-o", "-")
    loud = run_tamis("-v", "dedup", "lines", src, "-o", "-")
    assert quiet.returncode == loud.returncode == 0
    assert loud.stdout_bytes == quiet.stdout_bytes
    assert quiet.stderr == ""
    assert len(parse_jsonl(quiet.stdout_bytes)) > 0


def test_ids_generated_for_parquet_without_id_column(tmp_path):
    src = write_parquet(tmp_path / "noid.parquet", [{"text": "x", "n": 1}, {"text": "y", "n": 2}])
    out = tmp_path / "o.jsonl"
    run_ok("-q", "dedup", "exact", src, "-o", out)
    assert read_records(out) == [
        {"text": "x", "n": 1, "id": "noid.parquet:1"},
        {"text": "y", "n": 2, "id": "noid.parquet:2"},
    ]


@pytest.mark.parametrize("out_name", ["o.jsonl", "o.parquet"])
def test_ids_generated_for_parquet_null_ids(tmp_path, out_name):
    src = write_parquet(
        tmp_path / "nullid.parquet",
        [{"id": "a", "text": "x"}, {"id": None, "text": "y"}, {"id": "c", "text": "z"}],
    )
    out = tmp_path / out_name
    run_ok("-q", "dedup", "exact", src, "-o", out)
    assert [r["id"] for r in read_records(out)] == ["a", "nullid.parquet:2", "c"]


def test_jsonl_parquet_jsonl_preserves_values(tmp_path):
    docs = make_corpus(80, 11, dup_rate=0.0)
    # distinct texts so nothing is removed
    docs = list({d["text"]: d for d in docs}.values())
    src = write_jsonl(tmp_path / "a.jsonl", docs, styled=True)
    pq = tmp_path / "mid.parquet"
    run_ok("-q", "dedup", "exact", src, "-o", pq)
    df = pl.read_parquet(pq)
    assert set(df.columns) == set(docs[0].keys())
    assert df.schema["id"] == pl.String and df.schema["text"] == pl.String
    assert df.schema["n"].is_integer() and df.schema["score"].is_float()
    assert df.schema["flag"] == pl.Boolean
    assert isinstance(df.schema["tags"], pl.List)
    assert isinstance(df.schema["meta"], pl.Struct)
    assert df.to_dicts() == docs
    back = tmp_path / "back.jsonl"
    run_ok("-q", "dedup", "exact", pq, "-o", back)
    assert read_records(back) == docs


def test_jsonl_and_parquet_inputs_with_same_columns_to_parquet(tmp_path):
    """JSONL records and a Parquet file with the same fields (same order, same types) make one Parquet."""
    recs = [{"id": "1", "text": "a", "n": 1, "tags": ["x"]}, {"id": "2", "text": "b", "n": 2, "tags": []}]
    src_jsonl = write_jsonl(tmp_path / "a.jsonl", recs)
    src_pq = write_parquet(tmp_path / "b.parquet", [{"id": "3", "text": "c", "n": 3, "tags": ["y", "z"]}])
    out = tmp_path / "o.parquet"
    run_ok("-q", "dedup", "exact", src_jsonl, src_pq, "-o", out)
    df = pl.read_parquet(out)
    assert df.to_dicts() == [*recs, {"id": "3", "text": "c", "n": 3, "tags": ["y", "z"]}]
    assert df.columns == ["id", "text", "n", "tags"]  # the records' field order


def test_parquet_to_parquet_keeps_schema_polars_input(tmp_path):
    df = pl.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "text": ["x", "y", "x", "東京 café"],
            "i32": pl.Series([1, 2, 3, 4], dtype=pl.Int32),
            "u8": pl.Series([1, 2, 3, 4], dtype=pl.UInt8),
            "f32": pl.Series([1.5, 2.5, 3.5, None], dtype=pl.Float32),
            "b": [True, False, None, True],
            "l": [["a"], [], None, ["b", "c"]],
            "s": [{"p": 1, "q": "z"}, {"p": 2, "q": None}, None, {"p": 4, "q": "w"}],
            "d": pl.Series(["2024-01-01", "2024-02-29", "1999-12-31", "2000-01-01"]).str.to_date(),
        }
    )
    src = tmp_path / "polars.parquet"
    df.write_parquet(src)  # polars writes view/large string types
    out = tmp_path / "o.parquet"
    run_ok("-q", "dedup", "exact", src, "-o", out)
    got = pl.read_parquet(out)
    assert got.schema == df.schema
    assert got.to_dicts() == df.filter(pl.col("id") != "c").to_dicts()
    # and to JSONL
    out2 = tmp_path / "o.jsonl"
    run_ok("-q", "dedup", "exact", src, "-o", out2)
    recs = read_records(out2)
    assert [r["id"] for r in recs] == ["a", "b", "d"]
    assert recs[0]["s"] == {"p": 1, "q": "z"} and recs[0]["l"] == ["a"] and recs[0]["i32"] == 1
    assert recs[3 - 1]["text"] == "東京 café"


def test_empty_plain_jsonl_is_ok(tmp_path):
    src = tmp_path / "empty.jsonl"
    src.write_bytes(b"")
    for out_name in ("o.jsonl", "o.jsonl.gz", "o.parquet"):
        out = tmp_path / out_name
        run_ok("-q", "dedup", "exact", src, "-o", out, "--stats-json", tmp_path / "s.json")
        stats = read_stats(tmp_path / "s.json")
        assert stats["documents_read"] == 0 and stats["documents_kept"] == 0
        assert out.exists()
        assert read_records(out) == []
    # blank-only file: no records either
    src2 = tmp_path / "blank.jsonl"
    src2.write_bytes(b"\n\n  \n")
    run_ok("-q", "dedup", "lines", src2, "-o", tmp_path / "b.jsonl")
    assert (tmp_path / "b.jsonl").read_bytes() == b""


# ---------------------------------------------------------------------------------------------
# Input discovery and order
# ---------------------------------------------------------------------------------------------


def one(path: Path, text: str, **extra) -> Path:
    return write_jsonl(path, [{"text": text, **extra}])


def test_input_order_files_dirs_globs(tmp_path, run_tamis):
    d = tmp_path / "data"
    one(d / "b" / "x.jsonl", "1")
    one(d / "a" / "z.jsonl", "2")
    one(d / "a" / "y.ndjson", "3")
    one(d / "a" / "c.json.gz", "4")
    one(d / "w.jsonl.zst", "5")
    write_parquet(d / "v.parquet", [{"text": "6"}])
    one(d / ".hidden.jsonl", "HIDDEN")
    one(d / "notes.txt", "NOT JSONL")
    one(d / "table.csv", "NOT JSONL")
    one(d / "readme.md", "NOT JSONL")

    def texts(*inputs):
        r = run_tamis("-q", "dedup", "exact", *inputs, "-o", "-")
        assert r.returncode == 0, r.stderr
        return [x["text"] for x in parse_jsonl(r.stdout_bytes)]

    # a directory: recursive, lexicographic, only known extensions, hidden files skipped
    assert texts(d) == ["4", "3", "2", "1", "6", "5"]
    # explicit files: the order given
    assert texts(d / "b" / "x.jsonl", d / "a" / "z.jsonl", d / "w.jsonl.zst") == ["1", "2", "5"]
    assert texts(d / "w.jsonl.zst", d / "b" / "x.jsonl") == ["5", "1"]
    # globs expanded by tamis (sorted), mixed with files, in the order given
    assert texts(str(d / "a" / "*.json*"), d / "b" / "x.jsonl") == ["4", "2", "1"]
    assert texts(str(d / "a" / "*"), d / "b" / "x.jsonl") == ["4", "3", "2", "1"]
    assert texts(d / "v.parquet", str(d / "*" / "*.jsonl")) == ["6", "2", "1"]


def test_hidden_directories_are_skipped(tmp_path, run_tamis):
    d = tmp_path / "data"
    one(d / "a.jsonl", "visible")
    one(d / ".cache" / "b.jsonl", "in hidden dir")
    r = run_tamis("-q", "dedup", "exact", d, "-o", "-")
    assert r.returncode == 0, r.stderr
    assert [x["text"] for x in parse_jsonl(r.stdout_bytes)] == ["visible"]


def test_first_occurrence_follows_input_order(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": "a1", "text": "same"}, {"id": "a2", "text": "only a"}])
    b = write_jsonl(tmp_path / "b.jsonl.gz", [{"id": "b1", "text": "same"}, {"id": "b2", "text": "only a"}])
    out = tmp_path / "o.jsonl"
    run_ok("-q", "dedup", "exact", b, a, "-o", out)
    assert [r["id"] for r in read_records(out)] == ["b1", "b2"]
    run_ok("-q", "dedup", "exact", a, b, "-o", out)
    assert [r["id"] for r in read_records(out)] == ["a1", "a2"]


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

# (name, bytes, slug, 1-based line of the bad record, extra args)
JSONL_BAD = [
    ("invalid_json_brace", b"{bad\n", "invalid_json", []),
    ("invalid_json_truncated", b'{"id":"x","text":"abc"\n', "invalid_json", []),
    ("invalid_json_trailing", b'{"id":"x","text":"abc"} junk\n', "invalid_json", []),
    ("invalid_json_unterminated", b'{"id":"x","text":"abc\n', "invalid_json", []),
    ("not_an_object_array", b"[1,2]\n", "not_an_object", []),
    ("not_an_object_string", b'"just a string"\n', "not_an_object", []),
    ("not_an_object_number", b"42\n", "not_an_object", []),
    ("not_an_object_null", b"null\n", "not_an_object", []),
    ("missing_text", b'{"id":"x","body":"abc"}\n', "missing_text", []),
    ("text_null", b'{"id":"x","text":null}\n', "text_not_string", []),
    ("text_number", b'{"id":"x","text":5}\n', "text_not_string", []),
    ("text_list", b'{"id":"x","text":["a"]}\n', "text_not_string", []),
    ("text_object", b'{"id":"x","text":{"a":1}}\n', "text_not_string", []),
    ("text_bool", b'{"id":"x","text":true}\n', "text_not_string", []),
    ("invalid_utf8", b'{"id":"x","text":"caf\xe9"}\n', "invalid_utf8", []),
    ("invalid_utf8_outside_text", b'{"id":"x\xff","text":"ok"}\n', "invalid_utf8", []),
    ("missing_key", b'{"id":"x","text":"abc"}\n', "missing_key", ["--key", "url"]),
    ("key_null", b'{"id":"x","text":"abc","url":null}\n', "key_not_string", ["--key", "url"]),
    ("key_number", b'{"id":"x","text":"abc","url":7}\n', "key_not_string", ["--key", "url"]),
]

GOOD_1 = b'{"id":"g1","text":"good one","url":"u1"}\n'
GOOD_2 = b'{"id":"g2","text":"good two","url":"u2"}\n'


# --key is an exact-dedup option: the key cases run with `exact` only
BAD_RUNS = [(case, cmd) for case in JSONL_BAD for cmd in ("exact", "lines") if cmd == "exact" or not case[3]]


@pytest.mark.parametrize("case, command", BAD_RUNS, ids=[f"{c[0]}-{cmd}" for c, cmd in BAD_RUNS])
def test_bad_jsonl_record_fails(tmp_path, run_tamis, case, command):
    name, bad, slug, extra = case
    src = tmp_path / f"{name}.jsonl"
    src.write_bytes(GOOD_1 + b"\n" + bad + GOOD_2)  # bad record on line 3
    out = tmp_path / "out.jsonl"
    r = run_tamis("dedup", command, src, "-o", out, *extra)
    assert r.returncode == 1, r.stderr
    assert src.name in r.stderr
    assert re.search(r"\bline 3\b", r.stderr), r.stderr
    assert not out.exists()
    assert leftovers(tmp_path) == []
    # Python API: TamisError(ValueError) with the slug, path and location
    fn = tamis.dedup.exact if command == "exact" else tamis.dedup.lines
    kwargs = {"key": "url"} if extra else {}
    with pytest.raises(tamis.TamisError) as ei:
        fn([src], out, **kwargs)
    assert isinstance(ei.value, ValueError)
    assert ei.value.kind == slug
    assert slug in tamis.RECORD_ERROR_KINDS
    assert os.path.basename(ei.value.path) == src.name
    assert ei.value.location == "line 3"
    assert not out.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("case", JSONL_BAD, ids=[c[0] for c in JSONL_BAD])
def test_bad_jsonl_record_skipped(tmp_path, run_tamis, case):
    name, bad, slug, extra = case
    src = tmp_path / f"{name}.jsonl"
    src.write_bytes(GOOD_1 + b"\n" + bad + GOOD_2)
    out = tmp_path / "out.jsonl"
    rejects = tmp_path / "rejects.jsonl"
    r = run_tamis(
        "-q",
        "dedup",
        "exact",
        src,
        "-o",
        out,
        *extra,
        "--on-error",
        "skip",
        "--rejects",
        rejects,
        "--stats-json",
        tmp_path / "s.json",
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == GOOD_1 + GOOD_2
    stats = read_stats(tmp_path / "s.json")
    assert stats["records_skipped"] == {slug: 1}
    assert stats["documents_read"] == 3 and stats["documents_kept"] == 2
    assert_stats_invariant(stats)
    rej = parse_jsonl(rejects.read_bytes())
    assert len(rej) == 1
    assert os.path.basename(rej[0]["file"]) == src.name
    assert rej[0]["line"] == 3
    assert rej[0]["reason"] == slug
    assert isinstance(rej[0]["error"], str) and rej[0]["error"]
    if slug != "invalid_utf8":
        assert rej[0]["record"] == bad.rstrip(b"\n").decode()
    else:
        # Not UTF-8: the exact bytes, base64-encoded, never a lossy copy.
        assert "record" not in rej[0]
        assert base64.b64decode(rej[0]["record_base64"]) == bad.rstrip(b"\n")


def test_skip_mode_many_bad_records_and_files(tmp_path, run_tamis):
    a = tmp_path / "a.jsonl"
    a.write_bytes(
        b'{"id":"1","text":"keep"}\n'
        b"{nope\n"
        b"[]\n"
        b'{"id":"4"}\n'
        b'{"id":"5","text":null}\n'
        b'{"id":"6","text":"\xff"}\n'
        b'{"id":"7","text":"keep"}\n'  # duplicate of 1
        b'{"id":"8","text":5}\n'
    )
    b = tmp_path / "b.jsonl.gz"
    write_bytes(b, b'{"id":"9","text":"other"}\n{"id":"10","text":true}\n')
    out = tmp_path / "out.jsonl.zst"
    rejects = tmp_path / "r.jsonl"
    stats_path = tmp_path / "s.json"
    r = run_tamis(
        "-q",
        "dedup",
        "exact",
        a,
        b,
        "-o",
        out,
        "--on-error",
        "skip",
        "--rejects",
        rejects,
        "--stats-json",
        stats_path,
    )
    assert r.returncode == 0, r.stderr
    assert [x["id"] for x in read_records(out)] == ["1", "9"]
    stats = read_stats(stats_path)
    assert stats["records_skipped"] == {
        "invalid_json": 1,
        "not_an_object": 1,
        "missing_text": 1,
        "text_not_string": 3,
        "invalid_utf8": 1,
    }
    assert stats["documents_removed"] == {"duplicate": 1}
    assert stats["documents_read"] == 10
    assert_stats_invariant(stats)
    rej = parse_jsonl(rejects.read_bytes())
    assert [(os.path.basename(x["file"]), x["line"], x["reason"]) for x in rej] == [
        ("a.jsonl", 2, "invalid_json"),
        ("a.jsonl", 3, "not_an_object"),
        ("a.jsonl", 4, "missing_text"),
        ("a.jsonl", 5, "text_not_string"),
        ("a.jsonl", 6, "invalid_utf8"),
        ("a.jsonl", 8, "text_not_string"),
        ("b.jsonl.gz", 2, "text_not_string"),
    ]
    assert rej[0]["record"] == "{nope"
    assert rej[2]["record"] == '{"id":"4"}'
    # Python API: same output and rejects
    out2 = tmp_path / "out2.jsonl.zst"
    rejects2 = tmp_path / "r2.jsonl"
    st = tamis.dedup.exact([a, b], out2, on_error="skip", rejects=rejects2)
    assert read_output_bytes(out2) == read_output_bytes(out)
    assert rejects2.read_bytes() == rejects.read_bytes()
    assert st["records_skipped"] == stats["records_skipped"]


def test_skip_without_rejects_file(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_bytes(b'{"text":"a"}\nxx\n{"text":"b"}\n')
    out = tmp_path / "o.jsonl"
    run_ok("-q", "dedup", "lines", src, "-o", out, "--on-error", "skip", "--stats-json", tmp_path / "s.json")
    assert [r["text"] for r in read_records(out)] == ["a", "b"]
    assert read_stats(tmp_path / "s.json")["records_skipped"] == {"invalid_json": 1}


def test_rejects_requires_skip(tmp_path, run_tamis):
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": "a"}])
    out = tmp_path / "o.jsonl"
    r = run_tamis("dedup", "exact", src, "-o", out, "--rejects", tmp_path / "r.jsonl")
    assert r.returncode == 2  # a usage error, named with the flags
    assert "--rejects needs --on-error skip" in r.stderr
    assert not out.exists()
    with pytest.raises(tamis.ConfigError) as ei:
        tamis.dedup.exact(src, out, rejects=tmp_path / "r.jsonl")
    assert ei.value.kind == "invalid_option" and ei.value.fields == ["rejects", "on_error"]
    assert str(ei.value) == "rejects needs on_error skip"
    assert not out.exists()


def truncated(data: bytes, fmt: str) -> bytes:
    full = gzip.compress(data, mtime=0) if fmt == "gz" else zstandard.ZstdCompressor().compress(data)
    return full[: len(full) // 2]


def complete_lines_available(trunc: bytes, fmt: str) -> int:
    """How many complete lines Python can decode from a truncated stream."""
    if fmt == "gz":
        d = zlib.decompressobj(wbits=31)
        got = d.decompress(trunc)
    else:
        got = zstandard.ZstdDecompressor().decompressobj().decompress(trunc)
    return got.count(b"\n")


@pytest.mark.parametrize("fmt", ["gz", "zst"])
def test_truncated_archive(tmp_path, run_tamis, fmt):
    docs = [{"id": f"t{i}", "text": f"document {i} " * 20} for i in range(3000)]
    data = jsonl_bytes(docs)
    src = tmp_path / f"trunc.jsonl.{fmt}"
    src.write_bytes(truncated(data, fmt))
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": "g", "text": "after"}])
    out = tmp_path / "o.jsonl"
    # fail: error naming the file and a line, no output
    r = run_tamis("dedup", "exact", src, good, "-o", out)
    assert r.returncode == 1
    assert src.name in r.stderr and re.search(r"line \d+", r.stderr), r.stderr
    assert not out.exists() and leftovers(tmp_path) == []
    with pytest.raises(tamis.TamisError) as ei:
        tamis.dedup.exact([src, good], out)
    assert ei.value.kind == "corrupt_file"
    assert not out.exists()
    # skip: records before the truncation point are kept, one corrupt_file reject, next file read
    rejects = tmp_path / "r.jsonl"
    r = run_tamis(
        "-q",
        "dedup",
        "exact",
        src,
        good,
        "-o",
        out,
        "--on-error",
        "skip",
        "--rejects",
        rejects,
        "--stats-json",
        tmp_path / "s.json",
    )
    assert r.returncode == 0, r.stderr
    ids = [x["id"] for x in read_records(out)]
    assert ids[-1] == "g"
    kept = ids[:-1]
    assert kept == [d["id"] for d in docs[: len(kept)]]
    # every complete record before the truncation point (as far as the stream can be decoded)
    assert len(kept) == complete_lines_available(src.read_bytes(), fmt) > 0
    stats = read_stats(tmp_path / "s.json")
    assert stats["records_skipped"] == {"corrupt_file": 1}
    assert_stats_invariant(stats)
    rej = parse_jsonl(rejects.read_bytes())
    assert len(rej) == 1 and rej[0]["reason"] == "corrupt_file"
    assert os.path.basename(rej[0]["file"]) == src.name


@pytest.mark.parametrize(
    "name, content",
    [
        ("zero.jsonl.gz", b""),
        ("zero.jsonl.zst", b""),
        ("garbage.jsonl.gz", b"\x1f\x8b this is not gzip at all"),
        ("garbage.parquet", b"this is not a parquet file" * 10),
        ("zero.parquet", b""),
        ("cut.parquet", None),
    ],
)
def test_corrupt_files(tmp_path, run_tamis, name, content):
    src = tmp_path / name
    if content is None:  # a real Parquet file cut short
        pl.DataFrame({"text": [f"t{i}" for i in range(1000)]}).write_parquet(src)
        raw = src.read_bytes()
        src.write_bytes(raw[: len(raw) - 20])
    else:
        src.write_bytes(content)
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": "g", "text": "fine"}])
    out = tmp_path / "o.jsonl"
    r = run_tamis("dedup", "exact", good, src, "-o", out)
    assert r.returncode == 1
    assert name in r.stderr
    assert not out.exists() and leftovers(tmp_path) == []
    with pytest.raises(tamis.TamisError) as ei:
        tamis.dedup.lines([good, src], out)
    assert ei.value.kind == "corrupt_file"
    assert os.path.basename(ei.value.path) == name
    r = run_tamis(
        "-q",
        "dedup",
        "exact",
        good,
        src,
        "-o",
        out,
        "--on-error",
        "skip",
        "--rejects",
        tmp_path / "r.jsonl",
        "--stats-json",
        tmp_path / "s.json",
    )
    assert r.returncode == 0, r.stderr
    assert [x["id"] for x in read_records(out)] == ["g"]
    stats = read_stats(tmp_path / "s.json")
    assert stats["records_skipped"] == {"corrupt_file": 1}
    assert_stats_invariant(stats)
    rej = parse_jsonl((tmp_path / "r.jsonl").read_bytes())
    assert [(os.path.basename(x["file"]), x["reason"]) for x in rej] == [(name, "corrupt_file")]


def test_parquet_bad_rows(tmp_path, run_tamis):
    src = write_parquet(
        tmp_path / "rows.parquet",
        [
            {"id": "a", "text": "x", "url": "u1"},
            {"id": "b", "text": None, "url": "u2"},
            {"id": "c", "text": "z", "url": None},
            {"id": "d", "text": "w", "url": "u4"},
        ],
    )
    out = tmp_path / "o.jsonl"
    r = run_tamis("dedup", "exact", src, "-o", out)
    assert r.returncode == 1
    assert "rows.parquet" in r.stderr and re.search(r"\brow 2\b", r.stderr), r.stderr
    assert not out.exists()
    with pytest.raises(tamis.TamisError) as ei:
        tamis.dedup.exact(src, out)
    assert (ei.value.kind, ei.value.location) == ("text_not_string", "row 2")
    # null key on row 3 (after skipping row 2)
    r = run_tamis(
        "-q",
        "dedup",
        "exact",
        src,
        "-o",
        out,
        "--key",
        "url",
        "--on-error",
        "skip",
        "--rejects",
        tmp_path / "r.jsonl",
        "--stats-json",
        tmp_path / "s.json",
    )
    assert r.returncode == 0, r.stderr
    assert [x["id"] for x in read_records(out)] == ["a", "d"]
    rej = parse_jsonl((tmp_path / "r.jsonl").read_bytes())
    assert [(x["row"], x["reason"]) for x in rej] == [(2, "text_not_string"), (3, "key_not_string")]
    assert all("line" not in x for x in rej)
    stats = read_stats(tmp_path / "s.json")
    assert stats["records_skipped"] == {"text_not_string": 1, "key_not_string": 1}
    assert_stats_invariant(stats)
    st = tamis.dedup.exact(src, out, key="url", on_error="skip")
    assert st["records_skipped"] == {"text_not_string": 1, "key_not_string": 1}


def test_parquet_text_column_problems_fail(tmp_path, run_tamis):
    notext = write_parquet(tmp_path / "notext.parquet", [{"id": "a", "body": "x"}])
    inttext = write_parquet(tmp_path / "inttext.parquet", [{"id": "a", "text": 1}])
    for src in (notext, inttext):
        out = tmp_path / "o.jsonl"
        r = run_tamis("dedup", "exact", src, "-o", out)
        assert r.returncode == 1
        assert src.name in r.stderr
        assert not out.exists() and leftovers(tmp_path) == []


def test_parquet_text_column_problems_skipped(tmp_path, run_tamis):
    """Under --on-error skip a Parquet file without (string) text is bad input, not a fatal error."""
    notext = write_parquet(tmp_path / "notext.parquet", [{"id": "a", "body": "x"}, {"id": "b", "body": "y"}])
    inttext = write_parquet(tmp_path / "inttext.parquet", [{"id": "c", "text": 1}])
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": "g", "text": "fine"}])
    out = tmp_path / "o.jsonl"
    r = run_tamis(
        "-q",
        "dedup",
        "exact",
        notext,
        inttext,
        good,
        "-o",
        out,
        "--on-error",
        "skip",
        "--stats-json",
        tmp_path / "s.json",
    )
    assert r.returncode == 0, r.stderr
    assert [x["id"] for x in read_records(out)] == ["g"]
    stats = read_stats(tmp_path / "s.json")
    assert set(stats["records_skipped"]) == {"missing_text", "text_not_string"}
    assert_stats_invariant(stats)


# ---------------------------------------------------------------------------------------------
# Usage and runtime errors, atomic output, broken pipe
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["dedup", "exact", "{src}", "-o", "{out}", "--no-such-flag"],
        ["dedup", "exact", "{src}"],
        ["dedup", "lines", "{src}"],
        ["dedup", "lines", "{src}", "-o", "{out}", "--max-occurrences", "0"],
        ["dedup", "lines", "{src}", "-o", "{out}", "--max-occurrences", "-1"],
        ["dedup", "lines", "{src}", "-o", "{out}", "--min-line-chars", "x"],
        ["dedup", "exact", "{src}", "-o", "{out}", "--normalize", "fancy"],
        ["dedup", "exact", "{src}", "-o", "{out}", "--on-error", "ignore"],
        ["--threads", "many", "dedup", "exact", "{src}", "-o", "{out}"],
        ["dedup", "exact", "-o", "{out}"],
        ["dedup", "nearest", "{src}", "-o", "{out}"],
    ],
)
def test_usage_errors_exit_2(tmp_path, run_tamis, args):
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": "a"}])
    out = tmp_path / "o.jsonl"
    r = run_tamis(*[a.format(src=src, out=out) for a in args])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.strip()
    assert not out.exists()


def test_missing_input_file_exits_1(tmp_path, run_tamis):
    good = write_jsonl(tmp_path / "a.jsonl", [{"text": "a"}])
    missing = tmp_path / "does_not_exist.jsonl"
    out = tmp_path / "o.jsonl"
    r = run_tamis("dedup", "exact", good, missing, "-o", out)
    assert r.returncode == 1
    assert "does_not_exist.jsonl" in r.stderr
    assert not out.exists() and leftovers(tmp_path) == []
    with pytest.raises(tamis.TamisError) as ei:
        tamis.dedup.exact([good, missing], out)
    assert ei.value.kind == "io"


def test_no_inputs_found(tmp_path, run_tamis):
    (tmp_path / "empty_dir").mkdir()
    out = tmp_path / "o.jsonl"
    for pattern in (tmp_path / "empty_dir", str(tmp_path / "nomatch*.jsonl")):
        r = run_tamis("dedup", "exact", pattern, "-o", out)
        assert r.returncode == 1
        assert not out.exists()
        with pytest.raises(tamis.TamisError) as ei:
            tamis.dedup.exact(pattern, out)
        assert ei.value.kind == "no_inputs"


def test_output_directory_missing(tmp_path, run_tamis):
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": "a"}])
    out = tmp_path / "missing_dir" / "o.jsonl"
    r = run_tamis("dedup", "exact", src, "-o", out)
    assert r.returncode == 1
    assert not out.exists()
    with pytest.raises(tamis.TamisError):
        tamis.dedup.exact(src, out)


def test_parquet_output_error_leaves_nothing(tmp_path, run_tamis):
    """Records that do not fit the inferred Parquet schema: an output error, and no file left."""
    recs = [{"id": str(i), "text": f"t{i}", "v": "s"} for i in range(3000)] + [
        {"id": "x", "text": "x", "v": 5}
    ]
    src = write_jsonl(tmp_path / "incons.jsonl", recs)
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "o.parquet"
    r = run_tamis("dedup", "exact", src, "-o", out)
    assert r.returncode == 1
    assert "incons.jsonl" in r.stderr
    assert os.listdir(outdir) == []
    with pytest.raises(tamis.TamisError) as ei:
        tamis.dedup.exact(src, out)
    assert ei.value.kind == "output"
    assert os.listdir(outdir) == []
    # the same records are fine as JSONL
    run_ok("-q", "dedup", "exact", src, "-o", outdir / "o.jsonl")
    assert read_records(outdir / "o.jsonl") == recs


def test_error_keeps_existing_output_untouched(tmp_path, run_tamis):
    src = tmp_path / "bad.jsonl"
    src.write_bytes(b'{"text":"a"}\n{oops\n')
    out = tmp_path / "o.jsonl"
    out.write_bytes(b"previous run\n")
    r = run_tamis("dedup", "exact", src, "-o", out)
    assert r.returncode == 1
    assert out.read_bytes() == b"previous run\n"
    assert leftovers(tmp_path) == []


def test_output_written_through_temp_file_then_renamed(tmp_path):
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    out = outdir / "o.jsonl"
    proc = subprocess.Popen(
        [*TAMIS, "-q", "dedup", "exact", "-", "-o", str(out)], stdin=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        proc.stdin.write(b'{"text":"a"}\n' * 100)
        proc.stdin.flush()
        expected_tmp = f".o.jsonl.tamis-tmp-{proc.pid}"
        deadline = time.monotonic() + 10
        names: list[str] = []
        while time.monotonic() < deadline:
            names = os.listdir(outdir)
            if names:
                break
            time.sleep(0.02)
        assert names == [expected_tmp]  # no final file yet, only the temp file
    finally:
        proc.stdin.close()
        rc = proc.wait(timeout=60)
    assert rc == 0, proc.stderr.read()
    assert os.listdir(outdir) == ["o.jsonl"]
    assert [r["text"] for r in read_records(out)] == ["a"]


def test_broken_pipe_is_quiet(tmp_path):
    src = write_jsonl(
        tmp_path / "big.jsonl", ({"id": str(i), "text": f"line {i} " * 10} for i in range(100000))
    )
    for cmd in ("exact", "lines"):
        proc = subprocess.Popen(
            [*TAMIS, "dedup", cmd, str(src), "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        first = proc.stdout.readline()
        proc.stdout.close()
        rc = proc.wait(timeout=60)
        err = proc.stderr.read().decode()
        assert json.loads(first)["id"] == "0"
        assert rc == 0, err
        assert "error" not in err.lower()
        assert "panic" not in err.lower()
    # and through a shell pipeline, as users type it
    if len(TAMIS) == 1 and shutil.which("bash") and shutil.which("head"):
        script = (
            f"'{TAMIS[0]}' dedup exact '{src}' -o - 2>'{tmp_path}/err' | head -1; echo rc=${{PIPESTATUS[0]}}"
        )
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        out_lines = r.stdout.strip().split("\n")
        assert json.loads(out_lines[0])["id"] == "0"
        assert out_lines[-1] == "rc=0", r.stdout
        assert "error" not in (tmp_path / "err").read_text().lower()


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["exact", "lines"])
def test_stats_fields_and_invariant(tmp_path, command):
    docs = make_corpus(150, 5)
    a = write_jsonl(tmp_path / "a.jsonl", docs[:70])
    b = write_jsonl(tmp_path / "b.jsonl.gz", docs[70:])
    bad = tmp_path / "c.jsonl"
    bad.write_bytes(b'{"text":1}\nnope\n{"id":"zz","text":"fresh text"}\n')
    out = tmp_path / "o.jsonl.zst"
    stats_path = tmp_path / "s.json"
    run_ok(
        "-q",
        "--threads",
        "3",
        "dedup",
        command,
        a,
        b,
        bad,
        "-o",
        out,
        "--on-error",
        "skip",
        "--stats-json",
        stats_path,
    )
    s = read_stats(stats_path)
    assert STATS_KEYS <= set(s)
    assert s["command"] == f"dedup {command}"
    assert s["input_files"] == 3
    assert s["documents_read"] == 153
    assert s["records_skipped"] == {"text_not_string": 1, "invalid_json": 1}
    assert s["documents_kept"] == len(read_records(out))
    assert s["bytes_written"] == out.stat().st_size
    assert s["input_bytes"] == sum(p.stat().st_size for p in (a, b, bad))
    assert s["threads"] == 3
    assert isinstance(s["seconds"], (int, float)) and s["seconds"] >= 0
    assert s["text_bytes_read"] == sum(len(d["text"].encode()) for d in docs) + len(b"fresh text")
    kept_text = sum(len(r["text"].encode()) for r in read_records(out))
    assert s["text_bytes_kept"] == kept_text
    assert all(v > 0 for v in s["documents_removed"].values())
    assert_stats_invariant(s)
    if command == "exact":
        assert set(s["documents_removed"]) == {"duplicate"}
        assert s["documents_modified"] == 0
        assert s["counters"]["distinct_hashes"] == s["documents_kept"]
    else:
        assert set(s["documents_removed"]) <= {"empty_after_line_dedup"}
        assert {"lines_read", "lines_removed", "distinct_lines"} <= set(s["counters"])
        assert s["documents_modified"] > 0
    # the same stats come back from the Python API
    fn = tamis.dedup.exact if command == "exact" else tamis.dedup.lines
    api = fn([a, b, bad], tmp_path / "o2.jsonl.zst", on_error="skip", threads=3)
    for k in STATS_KEYS - {"seconds"}:
        assert api[k] == s[k], k


def test_stats_to_stdout_output_counts_bytes(tmp_path, run_tamis):
    src = write_jsonl(tmp_path / "a.jsonl", [{"id": "1", "text": "a"}, {"id": "2", "text": "a"}])
    r = run_tamis("-q", "dedup", "exact", src, "-o", "-", "--stats-json", tmp_path / "s.json")
    assert r.returncode == 0
    s = read_stats(tmp_path / "s.json")
    assert s["bytes_written"] == len(r.stdout_bytes)
    assert s["documents_removed"] == {"duplicate": 1}


def test_stats_counters_present_when_zero(tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": "a"}, {"text": "b"}])
    empty = tmp_path / "e.jsonl"
    empty.write_bytes(b"")
    st = tamis.dedup.lines(src, tmp_path / "o.jsonl")
    assert st["counters"] == {"lines_read": 2, "lines_removed": 0, "distinct_lines": 2}
    assert st["documents_removed"] == {} and st["records_skipped"] == {}
    st = tamis.dedup.lines(empty, tmp_path / "o.jsonl")
    assert st["counters"] == {"lines_read": 0, "lines_removed": 0, "distinct_lines": 0}
    st = tamis.dedup.exact(empty, tmp_path / "o.jsonl")
    assert st["counters"] == {"distinct_hashes": 0}


def test_record_error_kinds():
    assert set(tamis.RECORD_ERROR_KINDS) == {
        "invalid_json",
        "not_an_object",
        "missing_text",
        "text_not_string",
        "invalid_utf8",
        "missing_key",
        "key_not_string",
        "missing_field",
        "field_not_string",
        "field_not_object",
        "corrupt_file",
        "keep_field_not_number",
    }
    assert issubclass(tamis.TamisError, ValueError)


def test_python_api_rejects_bad_arguments(tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": "a"}])
    out = tmp_path / "o.jsonl"
    for call in (
        lambda: tamis.dedup.lines(src, out, max_occurrences=0),
        lambda: tamis.dedup.exact(src, out, normalize="fancy"),
        lambda: tamis.dedup.exact(src, out, on_error="ignore"),
        lambda: tamis.dedup.exact([], out),
    ):
        with pytest.raises(ValueError):
            call()
        assert not out.exists()
