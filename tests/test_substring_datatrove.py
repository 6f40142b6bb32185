"""tamis.datatrove's substring steps cut what `tamis dedup substring` cuts over the same folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("datatrove")

from conftest import run_ok  # noqa: E402
from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402
from tamis.datatrove import SubstringFilter, SubstringFind, SubstringSequence  # noqa: E402
from tamis.errors import ConfigError, TamisError  # noqa: E402
from test_substring import substring_corpus  # noqa: E402

# Rust sorts paths component by component: part/ before part.jsonl, a-b/ before a.jsonl.
FILES = ["a-b/c.jsonl", "a.jsonl", "b/d.jsonl", "part/x.jsonl", "part.jsonl", "z.jsonl"]


def _corpus(root: Path) -> None:
    docs = substring_corpus(21, 180)
    for i, name in enumerate(FILES):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        part = docs[i * 30 : (i + 1) * 30]
        path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in part), encoding="utf-8")


def _read(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_bytes().splitlines()]


def _datatrove(data: Path, tmp: Path, tasks: int, **options: Any) -> tuple[dict, dict]:
    work = tmp / f"work{tasks}"
    LocalPipelineExecutor(
        [JsonlReader(str(data)), SubstringSequence(str(work), batch_size=7)],
        tasks=tasks,
        logging_dir=str(tmp / f"logs-seq{tasks}"),
    ).run()
    find = {k: v for k, v in options.items() if k in ("min_length", "keep")}
    SubstringFind(str(work), **find).run(None, 0, 1)
    cut = {k: v for k, v in options.items() if k in ("annotate", "min_doc_chars")}
    out = tmp / f"out{tasks}"
    LocalPipelineExecutor(
        [
            JsonlReader(str(data)),
            SubstringFilter(
                str(work), exclusion_writer=JsonlWriter(str(out / "dropped"), compression=None), **cut
            ),
            JsonlWriter(str(out / "kept"), compression=None),
        ],
        tasks=tasks,
        logging_dir=str(tmp / f"logs-cut{tasks}"),
    ).run()
    kept = {r["id"]: r for r in _read(out / "kept")}
    dropped = {r["id"]: r["metadata"]["filter_reason"] for r in _read(out / "dropped")}
    return kept, dropped


@pytest.mark.parametrize("keep", ["first", "none"])
@pytest.mark.parametrize("tasks", [1, 3])
def test_steps_cut_what_the_command_line_cuts(tmp_path: Path, keep: str, tasks: int) -> None:
    data = tmp_path / "data"
    _corpus(data)
    cli_out, cli_stats = tmp_path / "cli.jsonl", tmp_path / "cli.json"
    flags = ["--min-length", 30, "--keep", keep, "--min-doc-chars", 20, "--stats-json", cli_stats]
    run_ok("dedup", "substring", data, "-o", cli_out, *flags)
    cli = {r["id"]: r for r in map(json.loads, cli_out.read_bytes().splitlines())}
    stats = json.loads(cli_stats.read_text())
    assert stats["counters"]["documents_changed"] > 20  # repeats across files were cut
    kept, dropped = _datatrove(data, tmp_path, tasks, min_length=30, keep=keep, min_doc_chars=20)
    assert {i: r["text"] for i, r in kept.items()} == {i: r["text"] for i, r in cli.items()}
    expected_drops: dict[str, str] = {}
    for reason, n in stats["documents_removed"].items():
        expected_drops.update({i: reason for i in list(dropped) if dropped[i] == reason})
        assert sum(1 for r in dropped.values() if r == reason) == n
    assert dropped == expected_drops
    assert set(kept) | set(dropped) == {d["id"] for d in substring_corpus(21, 180)}


def test_annotate_gives_the_command_lines_spans(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _corpus(data)
    cli_out = tmp_path / "cli.jsonl"
    run_ok("dedup", "substring", data, "-o", cli_out, "--min-length", 30, "--annotate")
    cli = {r["id"]: r.get("substring_spans") for r in map(json.loads, cli_out.read_bytes().splitlines())}
    kept, dropped = _datatrove(data, tmp_path, 2, min_length=30, annotate=True)
    assert not dropped
    assert {i: r["metadata"].get("substring_spans") for i, r in kept.items()} == cli
    assert any(cli.values())


def test_stages_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="spans is a single-process option"):
        SubstringFind(str(tmp_path), spans=str(tmp_path / "s.jsonl"))
    with pytest.raises(ConfigError, match="min_length must be from 1"):
        SubstringFind(str(tmp_path), min_length=0)
    with pytest.raises(ValueError, match="single task"):
        SubstringFind(str(tmp_path)).run(None, 1, 2)
    with pytest.raises(TamisError, match="no texts found"):
        SubstringFind(str(tmp_path)).run(None, 0, 1)
    with pytest.raises(TamisError, match="run the find stage first"):
        list(SubstringFilter(str(tmp_path)).run(iter(()), 0, 1))


def test_refine_config_as_datatrove_phases_equals_refine(tmp_path: Path) -> None:
    from tamis.datatrove import run_local, to_datatrove
    from test_datatrove_refine import _check_equal, _refine

    data = tmp_path / "data"
    _corpus(data)
    stages = [{"type": "dedup_substring", "min_length": 30, "min_doc_chars": 20}]
    refined, report = _refine(data, tmp_path / "refine", stages)
    assert report["dedup_substring"]["dropped"] and report["dedup_substring"]["modified"]
    cfg = {"inputs": [str(data)], "output": str(tmp_path / "out"), "stage": stages}
    phases = to_datatrove(cfg, str(tmp_path / "work"))
    assert [p.name for p in phases] == [
        "01-dedup_substring-sequence",
        "02-dedup_substring-find",
        "03-dedup_substring-filter",
    ]
    assert phases[1].tasks == 1
    run_local(cfg, str(tmp_path / "work"), tasks=3, workers=2)
    _check_equal(phases, tmp_path / "work" / "logs", tmp_path / "out", refined, report)


def test_filter_refuses_a_text_the_sequence_stage_did_not_see(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _corpus(data)
    work = tmp_path / "work"
    SubstringSequence(str(work))(JsonlReader(str(data))(), 0, 1)  # type: ignore[arg-type]
    SubstringFind(str(work), min_length=30).run(None, 0, 1)
    path = data / "a.jsonl"
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    records[3]["text"] += " changed"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    with pytest.raises(TamisError, match=r"a\.jsonl: document 4 is not the text the sequence stage saw"):
        list(SubstringFilter(str(work))(JsonlReader(str(data))(), 0, 1))
