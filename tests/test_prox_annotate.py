"""`tamis prox annotate`: SFT records from a large model behind an OpenAI-compatible endpoint,
against a scripted server on loopback (tests/openai_stub.py). Checks the records against what
the markers in the documents and the paper's rules say, the prompts against `tamis prox
prompts`, retries, skips, rate limits, resume after a kill, and the datatrove step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("tokenizers")

from openai_stub import StubServer  # noqa: E402
from prox_models import build_tokenizer  # noqa: E402
from tamis import _core  # noqa: E402
from tamis.prox_annotate import (  # noqa: E402
    AnnotateError,
    AnnotateOptions,
    annotate,
    cli_annotate,
    extract_program,
    journal_path,
    load_prompts,
)

MARK = {"NAV": 0, "URL": 1, "FOOT": 2}


def _doc(i: int, extra: str = "") -> dict[str, Any]:
    lines = [
        f"Home NAV menu {i}",
        f"The river {i} rose two metres overnight after heavy rain in the hills nearby.",
        "Residents near the bridge were asked to move their cars before the evening.",
        f"https://example.org/flood/{i} URL",
        f"Copyright FOOT {i}",
        f"EDU={i % 6} FMT={(i * 7) % 6}{extra}",
    ]
    return {"id": f"doc-{i}", "text": "\n".join(lines)}


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    build_tokenizer().save(str(p))  # type: ignore[attr-defined]
    return p


def _write(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return path


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _prompts(inp: Path, tok: Path, stage: str, tmp: Path) -> list[dict[str, Any]]:
    out = tmp / f"prompts_{stage}.jsonl"
    rc = _core.main(
        [
            "tamis",
            "-q",
            "prox",
            "prompts",
            str(inp),
            "-o",
            str(out),
            "--tokenizer",
            str(tok),
            "--stage",
            stage,
        ]
    )
    assert rc == 0
    return _read(out)


def _opts(url: str, tok: Path, stage: str, **kw: Any) -> AnnotateOptions:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 3.0)
    return AnnotateOptions(stage=stage, endpoint=url, model="judge", tokenizer=str(tok), **kw)  # type: ignore[arg-type]


def _keep(edu: int, fmt: int) -> bool:
    return edu >= 3 or (edu == 2 and fmt >= 4)


def test_doc_stage_records_equal_the_rule_and_prompts(tmp_path: Path, tok: Path) -> None:
    docs = [_doc(i) for i in range(24)]
    inp = _write(tmp_path / "in.jsonl", docs)
    with StubServer() as s:
        r = annotate([inp], tmp_path / "sft.jsonl", _opts(s.url, tok, "doc"))
    got = _read(tmp_path / "sft.jsonl")
    prompts = _prompts(inp, tok, "doc", tmp_path)
    expected = []
    for d, p in zip(docs, prompts, strict=True):
        i = int(d["id"].split("-")[1])
        edu, fmt = i % 6, (i * 7) % 6
        expected.append(
            {
                "id": d["id"],
                "stage": "doc",
                "prompt": p["prompt"],
                "prompt_token_ids": p["prompt_token_ids"],
                "truncated": p["truncated"],
                "program": "keep_doc()" if _keep(edu, fmt) else "drop_doc()",
                "text": d["text"],
                "scores": {"edu": edu, "format": fmt},
                "language": None,
                "model": "judge",
            }
        )
    assert got == expected
    assert r["records"] == 24 and r["requests"] == 48 and r["retries"] == 0
    assert r["kept"] == sum(e["program"] == "keep_doc()" for e in expected)
    assert r["prompt_tokens"] > 0 and r["completion_tokens"] > 0
    assert not journal_path(tmp_path / "sft.jsonl").exists()


def test_chunk_stage_merges_the_noise_types(tmp_path: Path, tok: Path) -> None:
    docs = [_doc(i) for i in range(6)]
    # A long document cut into several chunks: line numbers are document-global.
    long_lines = []
    for j in range(200):
        long_lines.append(
            f"Line {j} NAV" if j % 9 == 0 else f"Prose line {j} about the harvest and the weather."
        )
    docs.append({"id": "long", "text": "\n".join(long_lines)})
    inp = _write(tmp_path / "in.jsonl", docs)
    with StubServer() as s:
        r = annotate([inp], tmp_path / "sft.jsonl", _opts(s.url, tok, "chunk"))
    got = _read(tmp_path / "sft.jsonl")
    ref = _prompts(inp, tok, "chunk", tmp_path)
    assert r["left_out"] == {}
    assert [(g["id"], g["chunk"], g["prompt"]) for g in got] == [
        (p["id"], p["chunk"], p["prompt"]) for p in ref
    ]
    assert sum(1 for g in got if g["id"] == "long") > 1
    by_doc: dict[str, list[str]] = {}
    for g in got:
        lines = g["text"].split("\n")
        assert g["lines"] == len(lines)
        removed = set()
        for ln in g["program"].split("\n"):
            if ln.startswith("remove_lines"):
                a, b = (int(x.split("=")[1]) for x in ln[len("remove_lines(") : -1].split(", "))
                removed.update(range(a, b + 1))
        want = {g["first_line"] + k for k, t in enumerate(lines) if any(m in t for m in MARK)}
        assert removed == want, g
        if not want:
            assert g["program"] == "keep_chunk()"
        by_doc.setdefault(g["id"], []).extend(lines)
    # The chunks of a document cover its lines in order.
    for d in docs:
        assert "\n".join(by_doc[d["id"]]) == d["text"]
    assert r["requests"] == 3 * len(got)


def test_retries_skips_and_accounting(tmp_path: Path, tok: Path) -> None:
    docs = [_doc(0, " FAIL500"), _doc(1, " RATE429"), _doc(2, " SLOW"), _doc(3, " BAD400"), _doc(4)]
    inp = _write(tmp_path / "in.jsonl", docs)
    with StubServer(slow=2.0) as s:
        r = annotate([inp], tmp_path / "sft.jsonl", _opts(s.url, tok, "doc", timeout=0.5))
        calls = sorted(s.calls.values())
    got = _read(tmp_path / "sft.jsonl")
    assert [g["id"] for g in got] == ["doc-0", "doc-1", "doc-2", "doc-4"]
    # 500 twice then 200 (x2 prompts), 429 once (x2), a timeout once (x2), 400 for good (x2, asked once).
    assert r["retries"] == 4 + 2 + 2
    assert r["skipped_requests"] == 2 and r["skipped_status"] == {"400": 2}
    assert r["left_out"] == {"request_skipped": 1}
    assert r["failed_requests"] == 0
    assert calls.count(3) == 2 and calls.count(2) == 4


def test_failed_requests_keep_the_journal_and_write_nothing(tmp_path: Path, tok: Path) -> None:
    inp = _write(tmp_path / "in.jsonl", [_doc(i) for i in range(3)])
    with StubServer() as s:
        dead = s.url
    # The server is gone: every attempt fails with a connection error.
    with pytest.raises(AnnotateError, match="failed after 2 retries.*run the same command again"):
        annotate([inp], tmp_path / "sft.jsonl", _opts(dead, tok, "doc", max_retries=2))
    assert not (tmp_path / "sft.jsonl").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".sft")] == []
    rc = cli_annotate([str(inp), "-o", str(tmp_path / "sft.jsonl"), "--stage", "doc", "--endpoint", dead,
                       "--model", "m", "--tokenizer", str(tok), "--max-retries", "0"])  # fmt: skip
    assert rc == 1 and not (tmp_path / "sft.jsonl").exists()


def test_killed_and_resumed_gives_the_same_file(tmp_path: Path, tok: Path) -> None:
    docs = [_doc(i) for i in range(120)]
    inp = _write(tmp_path / "in.jsonl", docs)
    with StubServer(delay=0.02) as s:
        annotate([inp], tmp_path / "ref.jsonl", _opts(s.url, tok, "doc", concurrency=4))
        s.calls.clear()
        out = tmp_path / "sft.jsonl"
        args = [sys.executable, "-m", "tamis", "prox", "annotate", str(inp), "-o", str(out)]
        args += ["--stage", "doc", "--endpoint", s.url, "--model", "judge", "--tokenizer", str(tok)]
        args += ["--concurrency", "4"]
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, start_new_session=True)
        journal = journal_path(out)
        deadline = time.time() + 60
        while time.time() < deadline:
            if journal.exists() and journal.read_bytes().count(b"\n") >= 40:
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not out.exists()
        first = sum(s.calls.values())
        assert 40 <= first < 240
        s.calls.clear()
        stats = tmp_path / "stats.json"
        done = subprocess.run(
            [*args, "--stats-json", str(stats)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        resumed = sum(s.calls.values())
    assert out.read_bytes() == (tmp_path / "ref.jsonl").read_bytes()
    st = json.loads(stats.read_text())
    assert st["from_journal"] >= 40 and resumed == 240 - st["from_journal"]
    assert not journal.exists()


def test_language_note_and_record(tmp_path: Path, tok: Path) -> None:
    prompts = load_prompts("doc")
    assert "{language_note}" in prompts["doc_edu"]
    inp = _write(tmp_path / "in.jsonl", [_doc(3)])
    with StubServer() as s:
        annotate([inp], tmp_path / "sft.jsonl", _opts(s.url, tok, "doc", language="Dutch"))
        annotate([inp], tmp_path / "en.jsonl", _opts(s.url, tok, "doc"))
        # The note changes the requests (new keys), so both runs asked the server.
        assert len(s.calls) == 4
    (g,) = _read(tmp_path / "sft.jsonl")
    assert g["language"] == "Dutch"
    # The refining model's prompt does not depend on the annotator's language note.
    assert g["prompt"] == _read(tmp_path / "en.jsonl")[0]["prompt"]


def test_custom_prompts_and_bad_prompt_files(tmp_path: Path, tok: Path) -> None:
    d = tmp_path / "prompts"
    d.mkdir()
    (d / "doc_edu.txt").write_text("Rate: {document}\nEducational score: {language_note}", encoding="utf-8")
    assert load_prompts("doc", d)["doc_edu"].startswith("Rate:")
    (d / "doc_format.txt").write_text("no placeholders", encoding="utf-8")
    with pytest.raises(
        AnnotateError, match=r"doc_format.txt: the prompt needs the placeholders \{document\}"
    ):
        load_prompts("doc", d)


def test_malformed_and_aggressive_chunk_programs_are_left_out(tmp_path: Path, tok: Path) -> None:
    docs = [
        {"id": "garbled", "text": "A good line of prose about rivers.\nGARBLE here too"},
        {"id": "all-nav", "text": "NAV one two three\nNAV four five six\nshort"},
        {"id": "fine", "text": "A good line of prose about rivers.\nNAV menu"},
    ]
    inp = _write(tmp_path / "in.jsonl", docs)
    with StubServer() as s:
        r = annotate([inp], tmp_path / "sft.jsonl", _opts(s.url, tok, "chunk"))
    assert [g["id"] for g in _read(tmp_path / "sft.jsonl")] == ["fine"]
    assert r["left_out"] == {"malformed": 1, "too_aggressive": 1}


def test_extract_program() -> None:
    assert extract_program("text\n```python\nremove_lines(line_start=1, line_end=2)\n```\n") == (
        "remove_lines(line_start=1, line_end=2)"
    )
    assert extract_program("Sure.\nremove_lines(line_start=1, line_end=2)\nDone.") == (
        "remove_lines(line_start=1, line_end=2)"
    )


def test_bad_input_and_options(tmp_path: Path, tok: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "ok"}\n{"id": 2, "text": \n', encoding="utf-8")
    with StubServer() as s:
        with pytest.raises(_core.TamisError, match=r"bad.jsonl.*line 2"):
            annotate([bad], tmp_path / "sft.jsonl", _opts(s.url, tok, "doc"))
        assert not (tmp_path / "sft.jsonl").exists()
        # Skipped when asked, with a rejects file.
        r = annotate([bad], tmp_path / "sft.jsonl", _opts(s.url, tok, "doc"), on_error="skip",
                     rejects=str(tmp_path / "rej.jsonl"))  # fmt: skip
        assert r["records"] == 1 and r["read"]["records_skipped"]
        assert (tmp_path / "rej.jsonl").exists()
    for kw, msg in [
        ({"concurrency": 0}, "concurrency"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_removal_ratio": 1.5}, "max_removal_ratio"),
        ({"endpoint": "localhost:8000"}, "endpoint"),
    ]:
        with pytest.raises(AnnotateError, match=msg):
            AnnotateOptions(
                **{"stage": "doc", "endpoint": "http://x/v1", "model": "m", "tokenizer": str(tok), **kw}
            )
    with pytest.raises(_core.TamisError, match="tokenizer"):
        annotate(
            [bad], tmp_path / "x.jsonl", _opts("http://127.0.0.1:9/v1", tmp_path / "missing.json", "doc")
        )


def test_datatrove_step_equals_the_command(tmp_path: Path, tok: Path) -> None:
    pytest.importorskip("datatrove")
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from tamis.datatrove import ProxAnnotate

    docs = [_doc(i) for i in range(10)]
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "a.jsonl", docs)
    with StubServer() as s:
        o = _opts(s.url, tok, "chunk")
        annotate([data / "a.jsonl"], tmp_path / "cli.jsonl", o)
        LocalPipelineExecutor(
            [JsonlReader(str(data)), ProxAnnotate(str(tmp_path / "dt"), o)],
            tasks=1,
            logging_dir=str(tmp_path / "logs"),
        ).run()
    assert (tmp_path / "dt" / "00000.jsonl").read_bytes() == (tmp_path / "cli.jsonl").read_bytes()


def test_new_language_example_runs_the_whole_loop(tmp_path: Path) -> None:
    """examples/prox_new_language.py: annotate (scripted server), train both models from a tiny
    base for one epoch, evaluate base and trained, refine other documents."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from prox_models import make_model_dir

    root = Path(__file__).resolve().parents[1]
    base = make_model_dir(tmp_path / "base")
    seed = _write(tmp_path / "seed.jsonl", [_doc(i) for i in range(16)])
    rest = _write(tmp_path / "rest.jsonl", [_doc(i) for i in range(100, 104)])
    with StubServer() as s:
        args = [sys.executable, str(root / "examples" / "prox_new_language.py"), "--seed", str(seed)]
        args += ["--refine", str(rest), "--language", "Dutch", "--endpoint", s.url, "--annotator", "judge"]
        args += ["--base", str(base), "--workdir", str(tmp_path / "work"), "--epochs", "1", "--lr", "1e-3"]
        args += ["--batch-tokens", "4096", "--val-fraction", "0.25", "--device", "cpu"]
        env = {**os.environ, "PYTHONPATH": str(root / "tests")}
        done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "annotate doc: 16 records" in out and "annotate chunk: 16 records" in out
    assert "train doc: kept epoch 1" in out and "train chunk: kept epoch 1" in out
    assert "eval doc trained: doc_f1" in out and "eval chunk base: chunk_line_f1" in out
    assert "refine: 4 documents" in out
    for name in ("doc-model", "chunk-model"):
        assert (tmp_path / "work" / name / "model.safetensors").exists()
    assert (tmp_path / "work" / "refined.jsonl").exists()


def test_max_rps_spaces_the_requests(tmp_path: Path, tok: Path) -> None:
    inp = _write(tmp_path / "in.jsonl", [_doc(i) for i in range(10)])
    with StubServer() as s:
        t = time.monotonic()
        r = annotate([inp], tmp_path / "sft.jsonl", _opts(s.url, tok, "doc", max_rps=40.0))
        took = time.monotonic() - t
    # 20 requests at most 40 per second: the last one cannot start before 19/40 s.
    assert r["requests"] == 20 and took >= 19 / 40
