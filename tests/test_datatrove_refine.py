"""tamis.datatrove: line dedup steps equal `tamis dedup lines`; fastText steps and a `tamis refine`
configuration converted to datatrove phases keep what `tamis refine` keeps."""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("datatrove")

from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402
from tamis import dedup  # noqa: E402
from tamis.datatrove import (  # noqa: E402
    LineDedupFilter,
    LineDedupSignature,
    run_local,
    stage_counts,
    to_datatrove,
)
from tamis.dedup import LinesOptions  # noqa: E402
from tamis.refine import ConfigError, Pipeline  # noqa: E402

# Rust's path order differs from a string sort here (part/ before part.jsonl).
FILES = ["a.jsonl", "b/c.jsonl.gz", "part/x.jsonl", "part.jsonl", "z.jsonl.gz"]
EN = [
    "The library keeps a list of books that members may borrow for three weeks at a time.",
    "Rain is expected in the north tomorrow, with clearer skies arriving later in the week.",
    "Our team shipped the new release after fixing the last two bugs reported by users.",
    "She planted tomatoes and beans in the garden behind the old stone house last spring.",
    "The museum opens at nine and offers free guided tours every Sunday afternoon.",
    "Cook the pasta in salted water, then toss it with olive oil, garlic and fresh basil.",
    "Students who finish the exercises early can help their classmates with the hard ones.",
    "The train to the coast leaves every hour and takes a little more than two hours.",
]
OTHER = [
    "La bibliothèque prête des livres à ses membres pendant trois semaines, sans frais.",
    "Der Zug zur Küste fährt jede Stunde und braucht etwas mehr als zwei Stunden.",
    "El museo abre a las nueve y ofrece visitas guiadas gratuitas los domingos por la tarde.",
]
SPAM = "click buy cheap discount offer sale free shipping now deal".split()
BOILER = ["Subscribe to our newsletter for weekly updates", "Share this page", "  Cookie  settings  "]


def _write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(payload) if path.name.endswith(".gz") else payload)


def _corpus(root: Path, per: int = 40, seed: int = 0) -> dict[str, str]:
    """FILES with exact and near duplicates across files, boilerplate and repeated lines (also
    inside one document, with CRLF and odd white space), documents made only of boilerplate and
    documents in other languages; returns id -> text."""
    rng = random.Random(seed)
    made: list[str] = []
    texts: dict[str, str] = {}
    n = 0
    for name in FILES:
        records = []
        for _ in range(per):
            r = rng.random()
            if made and r < 0.12:
                text = rng.choice(made)
            elif made and r < 0.22:
                words = rng.choice(made).split(" ")
                words[rng.randrange(len(words))] = "indeed"
                text = " ".join(words)
            elif r < 0.3:
                text = rng.choice(OTHER) + f" ({rng.randrange(1000)})"
            elif r < 0.36:
                text = "\n".join(rng.sample(BOILER, 2))  # only boilerplate: emptied by line dedup
            elif r < 0.42:
                text = " ".join(rng.choices(SPAM, k=14)) + f". Offer {rng.randrange(10**6)}."
            else:
                lines = rng.sample(EN, rng.randrange(2, 6)) + [f"Reference number {rng.randrange(10**6)}."]
                if rng.random() < 0.5:
                    lines.insert(rng.randrange(len(lines) + 1), rng.choice(BOILER))
                if rng.random() < 0.2:
                    lines.append(lines[0])  # a repeat inside the document
                if rng.random() < 0.1:
                    lines[0] += "\r"
                if rng.random() < 0.1:
                    lines.append("\x1c")  # white space for Python, not for Rust
                if rng.random() < 0.1:
                    lines.insert(1, "")
                text = "\n".join(lines)
                made.append(text)
            n += 1
            texts[f"d{n:04d}"] = text
            records.append({"id": f"d{n:04d}", "text": text, "url": f"https://x/{n}"})
        _write(root / name, records)
    return texts


def _read_records(where: Path) -> list[dict]:
    out = []
    for p in [where] if where.is_file() else sorted(where.rglob("*.jsonl*")):
        raw = p.read_bytes()
        if p.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        elif p.name.endswith(".zst"):
            import zstandard

            raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
        out += [json.loads(line) for line in raw.decode().splitlines() if line]
    return out


def _kept(records: list[dict]) -> Counter:
    return Counter((str(r["id"]), r["text"]) for r in records)


# ---------------------------------------------------------------------------------------------
# Line dedup: two datatrove steps keep exactly the lines `tamis dedup lines` keeps


@pytest.mark.parametrize(
    ("normalize", "min_line_chars", "max_occurrences", "sig_tasks", "filter_tasks"),
    [("none", 0, 1, 3, 3), ("whitespace", 10, 1, 3, 2), ("simple", 0, 2, 7, 3)],
)
def test_line_dedup_steps_equal_the_cli(
    tmp_path, normalize, min_line_chars, max_occurrences, sig_tasks, filter_tasks
):
    data = tmp_path / "data"
    _corpus(data)
    opts = {"normalize": normalize, "min_line_chars": min_line_chars, "max_occurrences": max_occurrences}
    cli = dedup.lines([str(data)], str(tmp_path / "cli.jsonl"), **opts)
    expected = _read_records(tmp_path / "cli.jsonl")
    assert (
        cli["counters"]["lines_removed"] > 50
        and cli["documents_removed"].get("empty_after_line_dedup", 0) > 3
    )

    sigs = tmp_path / "sigs"
    LocalPipelineExecutor(
        [
            JsonlReader(str(data)),
            LineDedupSignature(str(sigs), normalize=normalize, min_line_chars=min_line_chars, batch_size=17),
        ],
        tasks=sig_tasks,
        workers=1,
        logging_dir=str(tmp_path / "logs1"),
    ).run()
    assert sorted(p.name for p in sigs.iterdir()) == [f"{r:05d}.lsig" for r in range(sig_tasks)]
    stats = LocalPipelineExecutor(
        [
            JsonlReader(str(data)),
            LineDedupFilter(
                str(sigs),
                max_occurrences=max_occurrences,
                batch_size=13,
                exclusion_writer=JsonlWriter(str(tmp_path / "dropped"), compression=None),
            ),
            JsonlWriter(str(tmp_path / "out"), compression=None),
        ],
        tasks=filter_tasks,
        workers=1,
        logging_dir=str(tmp_path / "logs2"),
    ).run()
    kept = _read_records(tmp_path / "out")
    assert _kept(kept) == _kept(expected)
    (st,) = [s for s in stats.stats if "tamis line dedup: filter" in s.name]
    assert st["forwarded"].total == cli["documents_kept"]
    assert st["dropped_empty_after_line_dedup"].total == cli["documents_removed"]["empty_after_line_dedup"]
    assert st["modified"].total > 0
    for counter in ("lines_read", "lines_removed", "distinct_lines"):
        assert st[counter].total == cli["counters"][counter], counter
    dropped = _read_records(tmp_path / "dropped")
    assert {r["metadata"]["filter_reason"] for r in dropped} == {"empty_after_line_dedup"}
    assert len(dropped) == cli["documents_removed"]["empty_after_line_dedup"]


def test_line_dedup_mismatches_fail_loudly(tmp_path):
    data, sigs = tmp_path / "data", tmp_path / "sigs"
    _corpus(data, per=10)
    LocalPipelineExecutor(
        [
            JsonlReader(str(data)),
            LineDedupSignature(str(sigs), LinesOptions(normalize="whitespace", min_line_chars=5)),
        ],
        tasks=2,
        workers=1,
        logging_dir=str(tmp_path / "logs"),
    ).run()

    def filter_all(**kw) -> None:
        for rank in range(2):
            list(LineDedupFilter(str(sigs), **kw)(JsonlReader(str(data))(rank=rank, world_size=2), rank, 2))

    filter_all()
    with pytest.raises(ValueError, match="min_line_chars=5"):
        filter_all(min_line_chars=0)
    with pytest.raises(ValueError, match="normalize"):
        filter_all(normalize="none")
    with pytest.raises(ValueError, match="max_occurrences"):
        LineDedupFilter(str(sigs), max_occurrences=0)

    path = data / "a.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[0]["text"] = records[0]["text"].replace("e", "é", 1) + "\nA new line"
    _write(path, records)
    with pytest.raises(ValueError, match="stage 1"):
        filter_all()
    (sigs / "00001.lsig").unlink()
    with pytest.raises(ValueError, match=r"missing \[1\]"):
        filter_all()


# ---------------------------------------------------------------------------------------------
# A tamis refine configuration as datatrove phases

DEDUP_STAGES = [
    {"type": "dedup_exact", "normalize": "whitespace"},
    {"type": "dedup_lines", "max_occurrences": 1, "min_line_chars": 10},
    {"type": "dedup_near", "ngram": 3},
]


def _refine(data: Path, out: Path, stages: list[dict]) -> tuple[list[dict], dict]:
    report = Pipeline.from_config({"inputs": [str(data)], "output": str(out), "stage": stages}).run()
    return _read_records(out / "data"), {s["name"]: s for s in report["stages"]}


def _check_equal(phases, logs: Path, out: Path, refined: list[dict], report: dict) -> None:
    kept = _read_records(out)
    assert _kept(kept) == _kept(refined)
    counts = stage_counts(phases, str(logs))
    assert set(counts) == set(report)
    for name, entry in report.items():
        for key in ("documents_in", "documents_out", "dropped", "modified"):
            assert counts[name][key] == entry[key], (name, key)
        for key, value in entry["counters"].items():
            if key in counts[name]["counters"]:
                assert counts[name]["counters"][key] == value, (name, key)


def test_dedup_config_equals_refine(tmp_path):
    data = tmp_path / "data"
    _corpus(data)
    refined, report = _refine(data, tmp_path / "refine", DEDUP_STAGES)
    assert all(report[s]["dropped"] for s in ("dedup_exact", "dedup_lines", "dedup_near"))

    cfg = {"inputs": [str(data)], "output": str(tmp_path / "out"), "stage": DEDUP_STAGES}
    phases = to_datatrove(cfg, str(tmp_path / "work"))
    assert [p.name for p in phases] == [
        "01-dedup_exact-signatures",
        "02-dedup_exact-filter",
        "03-dedup_lines-signatures",
        "04-dedup_lines-filter",
        "05-dedup_near-signatures",
        "06-dedup_near-buckets",
        "07-dedup_near-cluster",
        "08-dedup_near-filter",
    ]
    assert [p.tasks for p in phases].count(1) == 1 and phases[6].tasks == 1
    assert phases[-1].output_folder == str(tmp_path / "out")
    run_local(cfg, str(tmp_path / "work"), tasks=3, workers=2)
    _check_equal(phases, tmp_path / "work" / "logs", tmp_path / "out", refined, report)
    # the output carries datatrove's layout; the bookkeeping field is gone
    sample = _read_records(tmp_path / "out")[0]
    assert "tamis_source" not in sample["metadata"] and sample["metadata"]["url"].startswith("https://x/")


def test_config_errors_are_raised_before_any_work(tmp_path):
    data = tmp_path / "data"
    _corpus(data, per=3)
    work = tmp_path / "work"

    def convert(stages: list[dict], **kw) -> None:
        to_datatrove({"inputs": [str(data)], "output": str(tmp_path / "o"), "stage": stages}, str(work), **kw)

    with pytest.raises(ConfigError, match="unknown stage type 'dedup_fuzzy'"):
        convert([{"type": "dedup_fuzzy"}])
    with pytest.raises(ConfigError, match="unknown parameter 'max_occurence'"):
        convert([{"type": "dedup_lines", "max_occurence": 2}])
    with pytest.raises(ConfigError, match="max_occurrences must be at least 1, got 0"):
        convert([{"type": "dedup_lines", "max_occurrences": 0}])
    # Without fastText installed the stage is refused for that reason first.
    missing = "no such file" if importlib.util.find_spec("fasttext") else "fastText is not installed"
    with pytest.raises(ConfigError, match=missing):
        convert([{"type": "dedup_exact"}, {"type": "quality", "model": str(tmp_path / "missing.bin")}])
    with pytest.raises(ConfigError, match="verify is a single-process option"):
        convert([{"type": "dedup_near", "verify": True}])
    with pytest.raises(ConfigError, match="key is not supported"):
        convert([{"type": "dedup_exact", "key": "url"}])
    with pytest.raises(ConfigError, match="give data_folder= or reader="):
        to_datatrove({"inputs": [str(data / "a.jsonl")], "output": "o", "stage": []}, str(work))
    assert not work.exists() and not (tmp_path / "o").exists()
    # data_folder and output_folder may stand in for inputs and output
    phases = to_datatrove(
        {"stage": [{"type": "dedup_lines"}]}, str(work), data_folder=str(data), output_folder="o"
    )
    assert [p.name for p in phases] == ["01-dedup_lines-signatures", "02-dedup_lines-filter"]
    assert not work.exists()


def test_no_stage_copies(tmp_path):
    data = tmp_path / "data"
    texts = _corpus(data, per=5)
    cfg = {"inputs": [str(data)], "output": str(tmp_path / "out"), "stage": [], "compression": "zstd"}
    phases = to_datatrove(cfg, str(tmp_path / "work"))
    assert [p.name for p in phases] == ["01-copy"]
    # a checked Pipeline converts the same way
    assert [p.name for p in to_datatrove(Pipeline.from_config(cfg), str(tmp_path / "work"))] == ["01-copy"]
    run_local(cfg, str(tmp_path / "work"), tasks=2)
    out = _read_records(tmp_path / "out")
    assert all(p.name.endswith(".jsonl.zst") for p in (tmp_path / "out").iterdir())
    assert _kept(out) == Counter(texts.items())
    # a reader of the user's choice, without inputs in the configuration
    cfg = {"output": str(tmp_path / "out2"), "stage": [{"type": "dedup_exact"}]}
    run_local(cfg, str(tmp_path / "work2"), tasks=2, reader=JsonlReader(str(data), glob_pattern="a.jsonl"))
    assert {r["id"] for r in _read_records(tmp_path / "out2")} == set(list(texts)[:5])


# ---------------------------------------------------------------------------------------------
# fastText stages (need fastText and the embedded language-ID model)


def _labelled(tmp_path: Path) -> tuple[Path, Path]:
    rng = random.Random(3)
    good = "library museum garden students train pasta release weather books".split()
    bad = SPAM
    (tmp_path / "pos.jsonl").write_text(
        "".join(json.dumps({"text": " ".join(rng.choices(good, k=12))}) + "\n" for _ in range(200))
    )
    (tmp_path / "neg.txt").write_text("".join(" ".join(rng.choices(bad, k=12)) + "\n" for _ in range(200)))
    return tmp_path / "pos.jsonl", tmp_path / "neg.txt"


def test_fasttext_config_equals_refine(tmp_path):
    pytest.importorskip("fasttext")
    from tamis.filters import train

    pos, neg = _labelled(tmp_path)
    train([pos], [neg], tmp_path / "q.bin", bucket=5000, dim=16, epoch=10, threads=1, seed=7)
    data = tmp_path / "data"
    _corpus(data)
    stages = [
        {"type": "dedup_exact"},
        {"type": "language", "languages": ["en"], "min_score": 0.5},
        {"type": "quality", "name": "edu", "model": str(tmp_path / "q.bin"), "threshold": 0.3},
        {"type": "dedup_lines"},
        {"type": "language", "name": "lang2", "languages": [], "min_score": 0.99},
    ]
    refined, report = _refine(data, tmp_path / "refine", stages)
    assert report["language"]["dropped"]["language"] > 5
    assert report["edu"]["documents_in"] > report["edu"]["documents_out"] > 0
    assert report["lang2"]["dropped"].get("language_score", 0) > 0

    cfg = {"inputs": [str(data)], "output": str(tmp_path / "out"), "stage": stages}
    phases = to_datatrove(cfg, str(tmp_path / "work"), exclusion_folder=str(tmp_path / "excluded"))
    assert [(p.name, p.stages) for p in phases] == [
        ("01-dedup_exact-signatures", ["dedup_exact"]),
        ("02-dedup_exact-filter", ["dedup_exact", "language", "edu"]),
        ("03-dedup_lines-signatures", ["dedup_lines"]),
        ("04-dedup_lines-filter", ["dedup_lines", "lang2"]),
    ]
    run_local(cfg, str(tmp_path / "work"), tasks=3, exclusion_folder=str(tmp_path / "excluded"))
    _check_equal(phases, tmp_path / "work" / "logs", tmp_path / "out", refined, report)
    by_id = {r["id"]: r for r in refined}
    for r in _read_records(tmp_path / "out"):
        ref = by_id[r["id"]]["metadata"]
        assert (r["metadata"]["language"], r["metadata"]["language_score"]) == (
            ref["language"],
            ref["language_score"],
        )
        assert r["metadata"]["edu_score"] == ref["edu_score"]
    excluded = _read_records(tmp_path / "excluded" / "language")
    assert {r["metadata"]["filter_reason"] for r in excluded} == {"language"}
    assert len(excluded) == report["language"]["dropped"]["language"]


def test_skipped_prox_stages_are_left_out(tmp_path, monkeypatch):
    monkeypatch.delenv("TAMIS_PROX_DOC_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: no refining model found
    data = tmp_path / "data"
    _corpus(data, per=3)
    cfg = {"inputs": [str(data)], "output": str(tmp_path / "o"), "stage": [{"type": "prox_doc"}]}
    assert Pipeline.from_config(cfg).config["stages"][0]["skipped"].startswith("skipped")
    assert [p.name for p in to_datatrove(cfg, str(tmp_path / "work"))] == ["01-copy"]


def test_prox_stages_map_to_prox_steps(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from prox_models import make_model_dir
    from tamis.datatrove import ProxChunkStage, ProxDocStage

    doc, chunk = make_model_dir(tmp_path / "doc", seed=1), make_model_dir(tmp_path / "chunk", seed=2)
    data = tmp_path / "data"
    _corpus(data, per=3)
    stages = [
        {"type": "prox_doc", "model": str(doc), "device": "cpu", "window": 64},
        {"type": "dedup_exact"},
        {"type": "prox_chunk", "model": str(chunk), "device": "cpu", "constrain": False},
    ]
    cfg = {"inputs": [str(data)], "output": str(tmp_path / "o"), "stage": stages}
    phases = to_datatrove(cfg, str(tmp_path / "work"))
    assert [(p.name, p.stages) for p in phases] == [
        ("01-prox_doc", ["prox_doc"]),
        ("02-dedup_exact-signatures", ["dedup_exact"]),
        ("03-dedup_exact-filter", ["dedup_exact", "prox_chunk"]),
    ]
    step = phases[0].pipeline[2]
    assert isinstance(step, ProxDocStage) and step.model == str(doc) and step.batch_size == 64
    assert step.options["device"] == "cpu" and step.options["window"] == 64
    step = phases[2].pipeline[3]
    assert isinstance(step, ProxChunkStage) and step.options["constrain"] is False
    assert phases[0].output_folder == str(tmp_path / "work" / "01-prox_doc")
