"""Exact and line deduplication over files, checked against brute-force Python oracles."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import polars as pl
import pytest
import tamis
from conftest import (
    assert_stats_invariant,
    dump_record,
    exact_oracle,
    jsonl_bytes,
    lines_oracle,
    make_corpus,
    normalize,
    output_lines,
    read_output_bytes,
    read_records,
    read_stats,
    run_ok,
    write_bytes,
    write_gz_multimember,
    write_jsonl,
    write_parquet,
)

N_DOCS = 600


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A corpus with planted duplicates, split over four files in four formats.

    Returns (input paths in the order to pass them, docs in that order, raw JSONL line per doc id
    or None for docs read from Parquet).
    """
    docs = make_corpus(N_DOCS, seed=2024)
    d = tmp_path_factory.mktemp("corpus")
    parts = [docs[:150], docs[150:300], docs[300:450], docs[450:]]
    raw: dict[str, bytes | None] = {}

    def lines_of(part, seed):
        import random

        rng = random.Random(seed)
        out = []
        for doc in part:
            line = dump_record(doc, rng.randrange(4)).encode()
            raw[doc["id"]] = line
            out.append(line + b"\n")
        return out

    a = d / "a.jsonl"
    a.write_bytes(b"".join(lines_of(parts[0], 1)))
    b_lines = lines_of(parts[1], 2)
    b = write_gz_multimember(d / "b.jsonl.gz", [b"".join(b_lines[:70]), b"".join(b_lines[70:])])
    c = write_bytes(d / "c.jsonl.zst", b"".join(lines_of(parts[2], 3)))
    p = write_parquet(d / "d.parquet", parts[3])
    for doc in parts[3]:
        raw[doc["id"]] = None
    # inputs are given out of alphabetical order: the order given is the input order
    order = [c, a, p, b]
    ordered_docs = parts[2] + parts[0] + parts[3] + parts[1]
    return order, ordered_docs, raw


def check_kept_records(out: Path, expected_docs: list[dict], raw: dict) -> None:
    """Output records equal the expected docs; records read from JSONL are byte-identical."""
    lines = output_lines(out)
    assert len(lines) == len(expected_docs)
    for line, doc in zip(lines, expected_docs, strict=True):
        assert json.loads(line) == doc
        if raw.get(doc["id"]) is not None:
            assert line == raw[doc["id"]]


# ---------------------------------------------------------------------------------------------
# Exact dedup
# ---------------------------------------------------------------------------------------------


def test_oracle_modes_differ(corpus):
    """Sanity: the planted variants make the three normalizations give different results."""
    _, docs, _ = corpus
    kept = [exact_oracle(docs, normalize_mode=m)["documents_kept"] for m in ("none", "whitespace", "simple")]
    assert kept[0] > kept[1] > kept[2]
    assert kept[0] < len(docs)


@pytest.mark.parametrize("mode", ["none", "whitespace", "simple"])
def test_exact_matches_oracle(tmp_path, corpus, mode):
    inputs, docs, raw = corpus
    expected = exact_oracle(docs, normalize_mode=mode)
    out = tmp_path / "out.jsonl"
    stats_path = tmp_path / "s.json"
    run_ok("-q", "dedup", "exact", *inputs, "-o", out, "--normalize", mode, "--stats-json", stats_path)
    got_ids = [r["id"] for r in read_records(out)]
    assert got_ids == expected["kept_ids"]
    check_kept_records(out, expected["kept"], raw)
    s = read_stats(stats_path)
    assert s["command"] == "dedup exact"
    assert s["input_files"] == 4
    assert s["documents_read"] == expected["documents_read"]
    assert s["documents_kept"] == expected["documents_kept"]
    assert s["documents_modified"] == 0
    assert s["documents_removed"] == {"duplicate": expected["duplicates"]}
    assert s["records_skipped"] == {}
    assert s["counters"]["distinct_hashes"] == expected["distinct_hashes"]
    assert s["text_bytes_read"] == expected["text_bytes_read"]
    assert s["text_bytes_kept"] == expected["text_bytes_kept"]
    assert s["bytes_written"] == out.stat().st_size
    assert s["input_bytes"] == sum(Path(p).stat().st_size for p in inputs)
    assert_stats_invariant(s)


@pytest.mark.parametrize("mode", ["none", "simple"])
def test_exact_key_url_matches_oracle(tmp_path, corpus, mode):
    inputs, docs, raw = corpus
    expected = exact_oracle(docs, normalize_mode=mode, key="url")
    assert 0 < expected["duplicates"]
    out = tmp_path / "out.jsonl"
    stats_path = tmp_path / "s.json"
    run_ok(
        "-q",
        "dedup",
        "exact",
        *inputs,
        "-o",
        out,
        "--key",
        "url",
        "--normalize",
        mode,
        "--stats-json",
        stats_path,
    )
    assert [r["id"] for r in read_records(out)] == expected["kept_ids"]
    check_kept_records(out, expected["kept"], raw)
    s = read_stats(stats_path)
    assert s["documents_removed"] == {"duplicate": expected["duplicates"]}
    assert s["counters"]["distinct_hashes"] == expected["distinct_hashes"]
    assert_stats_invariant(s)
    # the Python API agrees
    st = tamis.dedup.exact(inputs, tmp_path / "api.jsonl", key="url", normalize=mode)
    assert (tmp_path / "api.jsonl").read_bytes() == out.read_bytes()
    assert st["documents_kept"] == expected["documents_kept"]


# (a, b, equal under none, whitespace, simple)
NORMALIZATION_PAIRS = [
    ("Hello world", "Hello world", True, True, True),
    ("Hello world", "Hello  world", False, True, True),
    ("Hello world", " Hello\tworld\n", False, True, True),
    ("Hello world", "Hello\u00a0world", False, True, True),
    ("Hello world", "Hello\u3000world", False, True, True),
    ("Hello world", "hello world", False, False, True),
    ("Hello world", "Hello, world!", False, False, True),
    ("Hello world", "«Hello» — “world”…", False, False, True),
    ("Hello world", "Hello_world", False, False, False),  # "_" removed: "helloworld"
    ("helloworld", "Hello_world", False, False, True),
    ("Room 101", "room 999", False, False, True),
    ("Room 101", "Room ١٠١", False, False, True),
    ("Room 101", "Room １０１", False, False, True),
    ("Room 101", "Room 10", False, False, False),
    ("café", "cafe\u0301", False, False, True),
    ("ﬁne", "fine", False, False, True),
    ("ＡＢＣ", "abc", False, False, True),
    ("東京、日本。", "東京日本", False, False, True),
    ("ΟΔΟΣ", "οδος", False, False, True),
    ("Straße", "STRASSE", False, False, False),
    ("price $5", "price 5", False, False, False),  # $ is a symbol, not punctuation
    ("a + b", "a b", False, False, False),
    ("", "   ", False, True, True),
    ("x", "x!!!", False, False, True),
]


@pytest.mark.parametrize("mode_index, mode", [(2, "none"), (3, "whitespace"), (4, "simple")])
def test_exact_normalization_pairs(tmp_path, mode_index, mode):
    for pair in NORMALIZATION_PAIRS:
        assert (normalize(pair[0], mode) == normalize(pair[1], mode)) == pair[mode_index], (
            pair
        )  # oracle sanity
    for i, pair in enumerate(NORMALIZATION_PAIRS):
        # one file per pair so pairs never interact
        src = write_jsonl(
            tmp_path / f"p{i:02d}.jsonl", [{"id": f"{i}a", "text": pair[0]}, {"id": f"{i}b", "text": pair[1]}]
        )
        out = tmp_path / f"o{i}.jsonl"
        run_ok("-q", "dedup", "exact", src, "-o", out, "--normalize", mode)
        ids = [r["id"] for r in read_records(out)]
        assert ids == ([f"{i}a"] if pair[mode_index] else [f"{i}a", f"{i}b"]), (mode, pair)


# ---------------------------------------------------------------------------------------------
# Line dedup
# ---------------------------------------------------------------------------------------------

LINE_COMBOS = [
    (1, 0, "none"),
    (2, 0, "none"),
    (1, 20, "none"),
    (1, 0, "whitespace"),
    (2, 12, "whitespace"),
    (1, 0, "simple"),
    (3, 10, "simple"),
]


@pytest.mark.parametrize("max_occ, min_chars, mode", LINE_COMBOS)
def test_lines_match_oracle(tmp_path, corpus, max_occ, min_chars, mode):
    inputs, docs, raw = corpus
    exp = lines_oracle(docs, max_occurrences=max_occ, min_line_chars=min_chars, normalize_mode=mode)
    assert exp["lines_removed"] > 0 and exp["documents_modified"] > 0
    out = tmp_path / "out.jsonl"
    stats_path = tmp_path / "s.json"
    args = ["-q", "dedup", "lines", *inputs, "-o", out, "--normalize", mode, "--stats-json", stats_path]
    if max_occ != 1:
        args += ["--max-occurrences", str(max_occ)]
    if min_chars:
        args += ["--min-line-chars", str(min_chars)]
    run_ok(*args)
    lines = output_lines(out)
    recs = [json.loads(x) for x in lines]
    assert [r["id"] for r in recs] == exp["kept_ids"]
    assert [r["text"] for r in recs] == exp["texts"]
    for line, rec, (doc, text, modified) in zip(lines, recs, exp["out"], strict=True):
        assert rec == {**doc, "text": text}  # other fields unchanged
        if not modified and raw.get(doc["id"]) is not None:
            assert line == raw[doc["id"]]  # a doc with no removals is written back byte for byte
    s = read_stats(stats_path)
    assert s["command"] == "dedup lines"
    assert s["documents_read"] == exp["documents_read"]
    assert s["documents_kept"] == exp["documents_kept"]
    assert s["documents_modified"] == exp["documents_modified"]
    assert s["documents_removed"] == ({"empty_after_line_dedup": exp["dropped"]} if exp["dropped"] else {})
    assert s["counters"]["lines_read"] == exp["lines_read"]
    assert s["counters"]["lines_removed"] == exp["lines_removed"]
    assert s["counters"]["distinct_lines"] == exp["distinct_lines"]
    assert s["text_bytes_read"] == exp["text_bytes_read"]
    assert s["text_bytes_kept"] == exp["text_bytes_kept"]
    assert_stats_invariant(s)


def test_lines_handcrafted(tmp_path):
    docs = [
        {"id": "1", "text": "a\nb\na\n\nc"},  # second "a" in the same doc is removed
        {"id": "2", "text": "b\n  \nd"},  # "b" removed; whitespace-only line kept
        {"id": "3", "text": "a\nc"},  # everything removed -> dropped
        {"id": "4", "text": "\n  "},  # blank but nothing removed -> kept unchanged
        {"id": "5", "text": "a\n\n b"},  # " b" differs from "b" without normalization
        {"id": "6", "text": ""},  # empty, kept
    ]
    src = write_jsonl(tmp_path / "h.jsonl", docs)
    out = tmp_path / "o.jsonl"
    run_ok("-q", "dedup", "lines", src, "-o", out, "--stats-json", tmp_path / "s.json")
    got = [(r["id"], r["text"]) for r in read_records(out)]
    assert got == [("1", "a\nb\n\nc"), ("2", "  \nd"), ("4", "\n  "), ("5", "\n b"), ("6", "")]
    s = read_stats(tmp_path / "s.json")
    assert s["documents_removed"] == {"empty_after_line_dedup": 1}
    assert s["documents_modified"] == 3
    assert s["counters"] == {"lines_read": 16, "lines_removed": 5, "distinct_lines": 5}
    # whitespace normalization: " b" is "b", so doc 5 loses everything and is dropped
    run_ok("-q", "dedup", "lines", src, "-o", out, "--normalize", "whitespace")
    assert [r["id"] for r in read_records(out)] == ["1", "2", "4", "6"]
    # max 2 occurrences: only the third "a" (doc 3) goes
    run_ok("-q", "dedup", "lines", src, "-o", out, "--max-occurrences", "2")
    got = [(r["id"], r["text"]) for r in read_records(out)]
    assert got == [
        ("1", "a\nb\na\n\nc"),
        ("2", "b\n  \nd"),
        ("3", "c"),
        ("4", "\n  "),
        ("5", "\n b"),
        ("6", ""),
    ]


def test_lines_min_line_chars_counts_characters(tmp_path):
    cjk = "首页 | 联系我们 | 关于我们"  # 16 characters, 38 bytes in UTF-8
    assert len(cjk) == 16 and len(cjk.encode()) > 30
    docs = [{"id": str(i), "text": f"{cjk}\nunique line number {i}"} for i in range(3)]
    src = write_jsonl(tmp_path / "c.jsonl", docs)
    out = tmp_path / "o.jsonl"
    run_ok("-q", "dedup", "lines", src, "-o", out, "--min-line-chars", "17")
    assert [r["text"] for r in read_records(out)] == [d["text"] for d in docs]  # too short: kept
    run_ok("-q", "dedup", "lines", src, "-o", out, "--min-line-chars", "16")
    assert [r["text"] for r in read_records(out)] == [docs[0]["text"]] + [
        f"unique line number {i}" for i in (1, 2)
    ]


def test_lines_simple_normalization_variants(tmp_path):
    docs = [
        {"id": "1", "text": "Copyright 2023 Example Inc.\nbody one"},
        {"id": "2", "text": "COPYRIGHT ２０２４ EXAMPLE INC!!\nbody two"},
        {"id": "3", "text": "copyright\u00a01999  example, inc\nbody three"},
        {"id": "4", "text": "Copyright 2023 Example Inc. $\nbody four"},
        {"id": "5", "text": "!!!\n..."},  # punctuation-only lines are blank after simple: never removed
        {"id": "6", "text": "!!!\n..."},
    ]
    src = write_jsonl(tmp_path / "s.jsonl", docs)
    out = tmp_path / "o.jsonl"
    run_ok("-q", "dedup", "lines", src, "-o", out, "--normalize", "simple")
    got = [(r["id"], r["text"]) for r in read_records(out)]
    assert got == [
        ("1", docs[0]["text"]),
        ("2", "body two"),
        ("3", "body three"),
        ("4", docs[3]["text"]),
        ("5", "!!!\n..."),
        ("6", "!!!\n..."),
    ]
    # without normalization the punctuation lines are ordinary lines
    run_ok("-q", "dedup", "lines", src, "-o", out)
    assert [r["id"] for r in read_records(out)] == ["1", "2", "3", "4", "5"]


def test_lines_modified_record_keeps_other_fields(tmp_path):
    src = tmp_path / "m.jsonl"
    src.write_bytes(
        '{"id":"1","text":"shared\\nmine","meta":{"a":[1,2.5,null]}}\n'
        '{"meta":{"b":"é"},"text":"shared\\nyours","n":-3,"id":"2"}\n'
        '{"text":"shared\\ntheirs"}\n'.encode()
    )
    out = tmp_path / "o.jsonl"
    run_ok("-q", "dedup", "lines", src, "-o", out)
    lines = output_lines(out)
    assert lines[0] == b'{"id":"1","text":"shared\\nmine","meta":{"a":[1,2.5,null]}}'
    assert json.loads(lines[1]) == {"meta": {"b": "é"}, "text": "yours", "n": -3, "id": "2"}
    assert json.loads(lines[2]) == {"text": "theirs", "id": "m.jsonl:3"}


# ---------------------------------------------------------------------------------------------
# Determinism across thread counts (> 8 MB input spans several batches)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_inputs(big_jsonl, tmp_path_factory):
    path, docs = big_jsonl
    d = tmp_path_factory.mktemp("bigsplit")
    tail = write_bytes(d / "tail.jsonl.gz", jsonl_bytes(docs[-3000:]))
    return [path, tail], docs + docs[-3000:]


@pytest.mark.parametrize(
    "command, extra",
    [
        ("exact", ["--normalize", "simple"]),
        ("lines", ["--normalize", "whitespace", "--max-occurrences", "2", "--min-line-chars", "5"]),
    ],
)
def test_threads_byte_identical(tmp_path, big_inputs, command, extra):
    inputs, docs = big_inputs
    outputs = {}
    for threads in (1, 4):
        for ext in ("jsonl", "jsonl.gz", "parquet"):
            out = tmp_path / f"t{threads}.{ext}"
            run_ok(
                "-q",
                "--threads",
                str(threads),
                "dedup",
                command,
                *inputs,
                "-o",
                out,
                "--stats-json",
                tmp_path / f"s{threads}{ext}.json",
                *extra,
            )
            outputs[threads, ext] = out
    assert outputs[1, "jsonl"].read_bytes() == outputs[4, "jsonl"].read_bytes()
    assert outputs[1, "jsonl.gz"].read_bytes() == outputs[4, "jsonl.gz"].read_bytes()
    assert read_output_bytes(outputs[1, "jsonl.gz"]) == outputs[1, "jsonl"].read_bytes()
    p1 = pl.read_parquet(outputs[1, "parquet"])
    p4 = pl.read_parquet(outputs[4, "parquet"])
    assert p1.schema == p4.schema
    assert p1.to_dicts() == p4.to_dicts()
    assert p1["id"].to_list() == [r["id"] for r in read_records(outputs[1, "jsonl"])]
    s1 = read_stats(tmp_path / "s1jsonl.json")
    s4 = read_stats(tmp_path / "s4jsonl.json")
    assert s1["threads"] == 1 and s4["threads"] == 4
    for k in s1:
        if k not in ("seconds", "threads"):
            assert s1[k] == s4[k], k
    # and the result is the correct one
    if command == "exact":
        exp = exact_oracle(docs, normalize_mode="simple")
        assert p1["id"].to_list() == exp["kept_ids"]
    else:
        exp = lines_oracle(docs, max_occurrences=2, min_line_chars=5, normalize_mode="whitespace")
        assert p1["id"].to_list() == exp["kept_ids"]
        assert p1["text"].to_list() == exp["texts"]
    assert s1["documents_kept"] == exp["documents_kept"]


# ---------------------------------------------------------------------------------------------
# CLI and Python API agree byte for byte
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["jsonl", "jsonl.gz", "jsonl.zst", "parquet"])
@pytest.mark.parametrize("command", ["exact", "lines"])
def test_cli_and_python_api_identical(tmp_path, corpus, command, ext):
    inputs, _, _ = corpus
    if ext == "parquet":
        # one Parquet output holds one schema: keep to the JSONL inputs (mixed inputs: see test_io)
        inputs = [p for p in inputs if not p.name.endswith(".parquet")]
    cli_out = tmp_path / f"cli.{ext}"
    api_out = tmp_path / f"api.{ext}"
    if command == "exact":
        run_ok(
            "-q",
            "--threads",
            "2",
            "dedup",
            "exact",
            *inputs,
            "-o",
            cli_out,
            "--normalize",
            "whitespace",
            "--stats-json",
            tmp_path / "s.json",
        )
        stats = tamis.dedup.exact(inputs, api_out, normalize="whitespace", threads=2)
    else:
        run_ok(
            "-q",
            "--threads",
            "2",
            "dedup",
            "lines",
            *inputs,
            "-o",
            cli_out,
            "--normalize",
            "simple",
            "--max-occurrences",
            "2",
            "--min-line-chars",
            "8",
            "--stats-json",
            tmp_path / "s.json",
        )
        stats = tamis.dedup.lines(
            inputs, api_out, normalize="simple", max_occurrences=2, min_line_chars=8, threads=2
        )
    assert api_out.read_bytes() == cli_out.read_bytes()
    cli_stats = read_stats(tmp_path / "s.json")
    assert set(stats) == set(cli_stats)
    for k in cli_stats:
        if k != "seconds":
            assert stats[k] == cli_stats[k], k


def test_python_api_accepts_single_path_and_pathlike(tmp_path):
    docs = [{"id": "1", "text": "x"}, {"id": "2", "text": "x"}]
    src = write_jsonl(tmp_path / "a.jsonl", docs)
    st = tamis.dedup.exact(src, tmp_path / "o1.jsonl")
    st2 = tamis.dedup.exact([str(src)], str(tmp_path / "o2.jsonl"))
    assert st["documents_kept"] == st2["documents_kept"] == 1
    assert (
        (tmp_path / "o1.jsonl").read_bytes()
        == (tmp_path / "o2.jsonl").read_bytes()
        == (b'{"id": "1", "text": "x"}\n')
    )
    st3 = tamis.dedup.lines(src, tmp_path / "o3.jsonl")
    assert st3["documents_removed"] == {"empty_after_line_dedup": 1}


def test_python_api_releases_the_gil(tmp_path, big_jsonl):
    """While a dedup runs in a thread, other Python threads keep running."""
    path, _ = big_jsonl
    done = {}

    def work():
        t0 = time.perf_counter()
        done["stats"] = tamis.dedup.lines([path, path], tmp_path / "o.jsonl", normalize="simple", threads=1)
        done["seconds"] = time.perf_counter() - t0

    t = threading.Thread(target=work)
    max_gap = 0.0
    last = time.perf_counter()
    t.start()
    while t.is_alive():
        now = time.perf_counter()
        max_gap = max(max_gap, now - last)
        last = now
        time.sleep(0.001)
    t.join()
    assert done["stats"]["documents_read"] > 0
    assert done["seconds"] > 0.2, "the run is too short to tell"
    assert max_gap < done["seconds"] / 2, (max_gap, done["seconds"])
