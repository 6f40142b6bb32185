"""`tamis refine` on the Rust data path: records pass through byte for byte, bad input gets the
command line's errors and skips, resuming sees content changes, the output cannot be inside an
input, and configuration errors come before any work in the configuration's words.

Hostile inputs run the CLI under a memory limit (RLIMIT_AS)."""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
from pathlib import Path

import pytest
from conftest import TAMIS, write_jsonl, write_parquet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tamis.refine import ConfigError, Pipeline

DEDUP = "dedup_exact,dedup_lines,dedup_near"
MEMORY = 4 << 30


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def refine(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TAMIS, "refine", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit,
        env=env,
    )


def out_lines(out: Path) -> list[bytes]:
    data = b"".join(gzip.decompress(p.read_bytes()) for p in sorted((out / "data").glob("*.jsonl.gz")))
    return data.splitlines()


# ---------------------------------------------------------------------------------------------
# Passthrough


def test_numbers_escapes_and_duplicate_keys_pass_through_byte_for_byte(tmp_path):
    lines = [
        b'{"id":1,"text":"a","f":1e400,"g":1.50}',
        b'{"id":2,"text":"b b","h":1E+2,"z":-0.0,"n":123456789012345678901}',
        b'{"text":"c\\u00e9\\ud83d\\ude00","k":1,"k":2,"t":"\\/x"}',
        b'{ "id" : "4" , "text" : "d  d" , "u" : "\xc3\xa9" }',
    ]
    p = tmp_path / "p.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    r = refine(p, "-o", tmp_path / "R", "--stages", DEDUP)
    assert r.returncode == 0, r.stderr
    got = out_lines(tmp_path / "R")
    # The third record had no id: only the generated id is added, everything else as read.
    assert got[0] == lines[0] and got[1] == lines[1] and got[3] == lines[3]
    assert got[2] == lines[2][:-1] + b',"id":"p.jsonl:3"}'
    # The command line keeps the same bytes.
    cli = subprocess.run(
        [*TAMIS, "-q", "dedup", "exact", str(p), "-o", str(tmp_path / "c.jsonl")], capture_output=True
    )
    assert cli.returncode == 0
    assert (tmp_path / "c.jsonl").read_bytes().splitlines() == got


def test_non_json_numbers_are_refused_with_file_and_line(tmp_path):
    for token in ("NaN", "-Infinity", "Infinity"):
        p = tmp_path / "n.jsonl"
        p.write_text(f'{{"text":"a"}}\n{{"text":"b","x":{token}}}\n', encoding="utf-8")
        r = refine(p, "-o", tmp_path / f"R{token}", "--stages", "dedup_exact")
        assert r.returncode == 1 and f"{p}: line 2: malformed JSON" in r.stderr, r.stderr
        assert not list((tmp_path / f"R{token}").glob("data/*"))


_numbers = st.sampled_from(
    ["1e400", "-0.0", "1.50", "1E+2", "12345678901234567890", "-98765432109876543210", "0", "3.0e-7"]
)
_strings = st.text(alphabet=st.characters(blacklist_categories=("Cs",), min_codepoint=1), max_size=12).map(
    lambda s: json.dumps(s, ensure_ascii=False)
)
_escaped = st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=True))
_values = st.one_of(
    _numbers, _strings, _escaped, st.sampled_from(["true", "null", "[1, 2.50]", '{"a": 1E3}'])
)


@st.composite
def _record(draw: st.DrawFn) -> bytes:
    text = draw(st.sampled_from(["same text", "other words here", "x"]) | _escaped.map(json.loads))
    keys = draw(st.lists(st.sampled_from(["f", "g", "f", "meta", "é"]), max_size=5))
    parts = [f'"text": {json.dumps(text, ensure_ascii=draw(st.booleans()))}']
    parts += [f'"{k}": {draw(_values)}' for k in keys]
    if draw(st.booleans()):
        parts.insert(0, f'"id": {draw(_numbers | _strings)}')
    order = draw(st.permutations(parts))
    sep = draw(st.sampled_from([",", ", ", " , "]))
    return ("{" + sep.join(order) + "}").encode("utf-8")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(_record(), min_size=1, max_size=12))
def test_kept_records_are_their_input_lines(tmp_path_factory, records):
    root = tmp_path_factory.mktemp("prop")
    lines = [r if b'"id"' in r else r[:-1] + b', "id": "keep"}' for r in records]
    (root / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    r = refine(root / "in.jsonl", "-o", root / "R", "--stages", DEDUP)
    assert r.returncode == 0, r.stderr
    got = out_lines(root / "R")
    assert set(got) <= set(lines)
    # In input order, a subsequence.
    it = iter(lines)
    assert all(any(g == x for x in it) for g in got)


# ---------------------------------------------------------------------------------------------
# Bad input: the command line's errors, or counted skips with rejects


def _bad_inputs(root: Path) -> dict[str, tuple[Path, str]]:
    root.mkdir(parents=True, exist_ok=True)
    full = gzip.compress(b"".join(b'{"text":"doc %d"}\n' % i for i in range(2000)), mtime=0)
    trunc = root / "trunc.jsonl.gz"
    trunc.write_bytes(full[: len(full) // 2])
    utf8 = root / "utf8.jsonl"
    utf8.write_bytes(b'{"text":"ok"}\n{"text":"bad \xff byte"}\n')
    lone = root / "lone.jsonl"
    lone.write_bytes(b'{"text":"ok"}\n{"text":"lone \\ud800 surrogate"}\n')
    empty_gz = root / "empty.jsonl.gz"
    empty_gz.write_bytes(b"")
    return {
        "truncated gzip": (trunc, "truncated or corrupt gzip stream"),
        "invalid UTF-8": (utf8, "line 2: invalid UTF-8"),
        "lone surrogate": (lone, "line 2: malformed JSON"),
        "empty gzip": (empty_gz, "empty file is not a valid compressed stream"),
    }


@pytest.mark.parametrize("case", ["truncated gzip", "invalid UTF-8", "lone surrogate", "empty gzip"])
def test_bad_input_fails_naming_the_file_or_is_skipped(tmp_path, case):
    path, message = _bad_inputs(tmp_path / "in")[case]
    r = refine(path, "-o", tmp_path / "R", "--stages", "dedup_exact")
    assert r.returncode == 1, r.stderr
    assert str(path) in r.stderr and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not list((tmp_path / "R").glob("data/*"))
    r = refine(path, "-o", tmp_path / "S", "--stages", "dedup_exact,language", "--on-error", "skip")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "S" / "report.json").read_text())
    assert rep["records_skipped"] >= 1
    rejects = [json.loads(x) for x in (tmp_path / "S" / "rejects" / "00000.jsonl").read_text().splitlines()]
    assert len(rejects) == rep["records_skipped"] and all(x["file"] == str(path) for x in rejects)


def test_bom_zst_parquet_and_non_data_files(tmp_path):
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "a.jsonl").write_bytes(b'\xef\xbb\xbf{"id":"a","text":"first doc here"}\n')
    write_jsonl(data / "b.jsonl.zst", [{"id": "b", "text": "second doc here"}])
    write_parquet(data / "c.parquet", [{"id": "c", "text": "third doc here", "n": 7}])
    (data / "README.md").write_text("# not data\n", encoding="utf-8")
    r = refine(data, "-o", tmp_path / "R", "--stages", DEDUP)
    assert r.returncode == 0, r.stderr
    got = [json.loads(x) for x in out_lines(tmp_path / "R")]
    assert [x["id"] for x in got] == ["a", "b", "c"]
    assert got[2] == {"id": "c", "text": "third doc here", "n": 7}


# ---------------------------------------------------------------------------------------------
# Resuming sees content, not sizes


def test_a_changed_input_is_never_resumed_stale(tmp_path):
    p = tmp_path / "in.jsonl"
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    write_jsonl(
        p,
        [
            {"id": str(i), "text": f"document {w} and {v} words"}
            for i, (w, v) in enumerate((w, v) for w in words for v in words)
        ],
    )
    r = refine(p, "-o", tmp_path / "R", "--stages", DEDUP)
    assert r.returncode == 0, r.stderr
    before = p.stat()
    data = p.read_bytes().replace(b"golf and echo", b"GOLF and echo")
    assert len(data) == before.st_size
    p.write_bytes(data)
    os.utime(p, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size, same mtime
    r = refine(p, "-o", tmp_path / "R", "--stages", DEDUP)
    assert r.returncode == 2, r.stderr
    assert "changed since the run started" in r.stderr and "--restart" in r.stderr
    r = refine(p, "-o", tmp_path / "R", "--stages", DEDUP, "--restart")
    assert r.returncode == 0, r.stderr
    assert any(b"GOLF and echo" in x for x in out_lines(tmp_path / "R"))


def test_a_copied_corpus_with_new_times_still_resumes(tmp_path):
    p = tmp_path / "in.jsonl"
    write_jsonl(p, [{"id": str(i), "text": f"text {i}"} for i in range(20)])
    assert refine(p, "-o", tmp_path / "R", "--stages", "dedup_exact").returncode == 0
    data = p.read_bytes()
    p.unlink()
    p.write_bytes(data)  # same content, new inode and times
    r = refine(p, "-o", tmp_path / "R", "--stages", "dedup_exact")
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------------------------------
# The output directory


def test_output_inside_an_input_is_refused(tmp_path):
    corpus = tmp_path / "corpus"
    write_jsonl(corpus / "a.jsonl", [{"text": "x"}])
    for out in (corpus, corpus / "refined"):
        r = refine(corpus, "-o", out, "--stages", "dedup_exact")
        assert r.returncode == 2 and "inside the input directory" in r.stderr, r.stderr
    assert sorted(p.name for p in corpus.iterdir()) == ["a.jsonl"]
    r = refine(tmp_path / "R" / "x.jsonl", "-o", tmp_path / "R", "--stages", "dedup_exact")
    assert r.returncode == 2


# ---------------------------------------------------------------------------------------------
# Configuration errors: before any work, in the configuration's words


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({"type": "dedup_near", "threshold": float("nan")}, "threshold must be a number"),
        ({"type": "dedup_near", "seed": 2**64}, "stage 1 (dedup_near): seed must be an integer >= 0"),
        ({"type": "dedup_near", "num_perm": 100_000_000}, "num_perm must be from 1 to 8192"),
        (
            {"type": "dedup_lines", "max_occurrences": 0},
            "stage 1 (dedup_lines): max_occurrences must be at least 1",
        ),
        ({"type": "language", "languages": "en"}, "languages must be a list"),
    ],
)
def test_config_errors_name_the_key(tmp_path, stage, message):
    cfg = {"inputs": [str(tmp_path)], "output": str(tmp_path / "out"), "stage": [stage]}
    with pytest.raises(ConfigError) as ei:
        Pipeline.from_config(cfg)
    assert message in str(ei.value)
    assert not (tmp_path / "out").exists()


def test_key_and_priority_errors_name_the_input(tmp_path):
    p = tmp_path / "in.jsonl"
    write_jsonl(p, [{"text": "a", "url": "u1", "q": 1}, {"text": "b", "q": "high"}])
    for stage, message in (
        ('{"type": "dedup_exact", "key": "url"}', 'line 2: missing key field "url"'),
        ('{"type": "dedup_near", "priority": "q"}', 'line 2: keep field "q" is a string, not a number'),
    ):
        cfg = tmp_path / "c.toml"
        body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in json.loads(stage).items())
        cfg.write_text(
            f'inputs = ["{p}"]\noutput = "{tmp_path / "o"}"\n[[stage]]\n{body}\n', encoding="utf-8"
        )
        r = subprocess.run(
            [*TAMIS, "refine", str(cfg), "--restart"], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 1 and f"{p}: {message}" in r.stderr, r.stderr
        assert not list(tmp_path.glob("o/.tamis/step-*/tmp"))


# ---------------------------------------------------------------------------------------------
# Python stages get batches (ids, texts, the fields they ask for) and return decisions


class _UrlStage:
    """A stage of our own for the `quality` slot: drops documents whose url ends in `.spam`,
    scores the others by text length, and reads a field the previous stage set."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def check(self, stage_json: str) -> None:
        return None

    def fields(self, stage_json: str) -> list[str]:
        return ["url", "metadata.src", "metadata.first"]

    def process(self, stage_json: str, batch):
        from tamis.refine import Decisions

        name = json.loads(stage_json)["name"]
        fields = {f: batch.field(f) for f in self.fields(stage_json)}
        self.seen.append({"name": name, "ids": list(batch.ids), **fields})
        assert len(batch) == len(batch.texts)
        arrow = batch.arrow()
        assert arrow.num_rows == len(batch)
        urls = fields["url"]
        keep = [not (u or "").endswith(".spam") for u in urls]
        return Decisions(
            keep=keep,
            reasons=["" if k else "spam" for k in keep],
            texts=[t.upper() if name == "second" else None for t in batch.texts],
            fields={"metadata.first": [name] * len(batch)} if name == "first" else {},
            details=[f"url {u}" for u in urls],
            counters={"looked_at": len(batch)},
        )


def test_python_stages_get_batches_and_their_fields(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_bytes(
        b'{"id":"a","text":"one","url":"x.org","metadata":{"src":"web","n":1.50}}\n'
        b'{"id":"b","text":"two","url":"y.spam"}\n'
        b'{"id":"c","text":"three","metadata":null}\n'
    )
    stages = _UrlStage()
    cfg = {
        "inputs": [str(p)],
        "output": str(tmp_path / "R"),
        "stage": [
            {"type": "quality", "name": "first", "model": "m"},
            {"type": "quality", "name": "second", "model": "m"},
        ],
    }
    report = Pipeline(cfg, tmp_path, stages=stages).run()
    first, second = stages.seen
    assert first["ids"] == ["a", "b", "c"] and first["url"] == ["x.org", "y.spam", None]
    assert first["metadata.src"] == ["web", None, None] and first["metadata.first"] == [None, None, None]
    # The second stage sees the first one's survivors and the field it set.
    assert second["ids"] == ["a", "c"] and second["metadata.first"] == ["first", "first"]
    got = out_lines(tmp_path / "R")
    assert got == [
        b'{"id":"a","text":"ONE","url":"x.org","metadata":{"src":"web","n":1.50,"first":"first"}}',
        b'{"id":"c","text":"THREE","metadata":{"first":"first"}}',
    ]
    st = {s["name"]: s for s in report["stages"]}
    assert st["first"]["dropped"] == {"spam": 1} and st["first"]["counters"] == {"looked_at": 3}
    assert st["second"]["modified"] == 2 and st["first"]["examples"]["dropped"][0]["detail"] == "url y.spam"
