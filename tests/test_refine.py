"""`tamis refine`: configuration errors, stage-by-stage equivalence, resuming a killed run, the
report, and the demo."""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tamis
from conftest import TAMIS
from tamis import dedup
from tamis.refine import ConfigError, Pipeline, run_stages

pytest.importorskip("fasttext")

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
    "La bibliothèque prête des livres à ses membres pendant trois semaines.",
    "Der Zug zur Küste fährt jede Stunde und braucht etwas mehr als zwei Stunden.",
    "El museo abre a las nueve y ofrece visitas guiadas gratuitas los domingos.",
]
BOILER = "Subscribe to our newsletter for weekly updates"


def _corpus(root: Path, shards: int = 4, per: int = 30, seed: int = 0) -> list[Path]:
    """Shards with exact duplicates (across shards), near duplicates, boilerplate lines and a
    few documents in other languages."""
    rng = random.Random(seed)
    made: list[str] = []
    paths = []
    root.mkdir(parents=True, exist_ok=True)
    n = 0
    for s in range(shards):
        p = root / f"part-{s}.jsonl"
        with open(p, "w", encoding="utf-8") as f:
            for _ in range(per):
                r = rng.random()
                if made and r < 0.15:
                    text = rng.choice(made)  # exact copy
                elif made and r < 0.25:
                    words = rng.choice(made).split(" ")
                    words[rng.randrange(len(words))] = "indeed"  # near copy
                    text = " ".join(words)
                elif r < 0.3:
                    text = rng.choice(OTHER) + f" ({rng.randrange(1000)})"
                else:
                    k = rng.randrange(2, 6)
                    text = "\n".join(rng.sample(EN, k)) + f"\nReference number {rng.randrange(10**6)}."
                    if rng.random() < 0.5:
                        text = f"{text}\n{BOILER}"
                    made.append(text)
                n += 1
                f.write(json.dumps({"id": f"d{n:04d}", "text": text, "url": f"https://x/{n}"}) + "\n")
        paths.append(p)
    return paths


def _read(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _outputs(out: Path) -> list[dict]:
    return [r for p in sorted((out / "data").iterdir()) for r in _read(p)]


STAGES = [
    {"type": "dedup_exact", "normalize": "whitespace"},
    {"type": "language", "languages": ["en"], "min_score": 0.5},
    {"type": "dedup_lines", "max_occurrences": 1, "min_line_chars": 10},
    {"type": "dedup_near", "ngram": 3},
]


def _config(inputs: list[Path], out: Path, stages: list[dict] | None = None, **top) -> dict:
    return {"inputs": [str(p) for p in inputs], "output": str(out), "stage": stages or STAGES, **top}


def _write_toml(path: Path, cfg: dict) -> Path:
    def val(v: object) -> str:
        return json.dumps(v)  # JSON scalars and string lists are valid TOML values

    lines = [f"{k} = {val(v)}" for k, v in cfg.items() if k != "stage"]
    for s in cfg["stage"]:
        lines.append("\n[[stage]]")
        lines += [f"{k} = {val(v)}" for k, v in s.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Configuration errors: clear, and caught before any work


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({"type": "dedup_fuzzy"}, "unknown stage type 'dedup_fuzzy'"),
        ({"type": "language", "min_scor": 0.5}, "unknown parameter 'min_scor'"),
        (
            {"type": "language", "min_score": 1.5},
            ("stage 1 (language): min_score must be from 0 to 1, got 1.5"),
        ),
        ({"type": "dedup_exact", "normalize": "nfc"}, "normalize must be one of none, whitespace, simple"),
        ({"type": "dedup_near", "ngram": "five"}, 'ngram must be an integer >= 0, got "five"'),
        ({"type": "dedup_near", "threshold": 0}, "threshold must be greater than 0 and less than 1, got 0"),
        ({"type": "dedup_near", "threshold": 1.0}, "threshold must be greater than 0 and less than 1"),
        ({"type": "dedup_near", "rows": 200}, "rows must be from 1 to 112, got 200"),
        ({"type": "dedup_near", "bands": 20, "rows": 8}, "bands × rows = 20 × 8 needs 160 permutations"),
        ({"type": "dedup_exact", "key": ""}, "key must name a field"),
        ({"type": "quality", "model": "missing.bin"}, "missing.bin': no such file"),
        ({"type": "quality"}, "model is required"),
        ({"type": "prox_doc", "model": "no/such/dir"}, "no such directory"),
    ],
)
def test_config_errors_are_clear_and_nothing_runs(tmp_path, stage, message):
    inputs = _corpus(tmp_path / "in", shards=1, per=3)
    cfg = _write_toml(tmp_path / "refine.toml", _config(inputs, tmp_path / "out", [stage]))
    r = subprocess.run([*TAMIS, "refine", str(cfg)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_bad_toml_and_missing_inputs(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("inputs = [\n", encoding="utf-8")
    r = subprocess.run([*TAMIS, "refine", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "invalid TOML" in r.stderr
    r = subprocess.run(
        [*TAMIS, "refine", str(tmp_path / "nothing.jsonl"), "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "no such file or directory" in r.stderr
    with pytest.raises(ConfigError, match="stage 2: name 'x' is used twice"):
        Pipeline.from_config(
            _config(
                [tmp_path],
                tmp_path / "o",
                [{"type": "dedup_exact", "name": "x"}, {"type": "dedup_near", "name": "x"}],
            )
        )


# ---------------------------------------------------------------------------------------------
# End to end


def test_stage_counts_equal_running_the_stages_one_by_one(tmp_path):
    inputs = _corpus(tmp_path / "in")
    report = Pipeline.from_config(_config(inputs, tmp_path / "out")).run()
    stages = {s["name"]: s for s in report["stages"]}

    # The same stages, one command at a time.
    s1 = dedup.exact([str(p) for p in inputs], tmp_path / "1.jsonl", normalize="whitespace")
    s2 = run_stages(
        [{"type": "language", "languages": ["en"], "min_score": 0.5}],
        tmp_path / "1.jsonl",
        tmp_path / "2.jsonl",
    )["stats"]
    s3 = dedup.lines(tmp_path / "2.jsonl", tmp_path / "3.jsonl", min_line_chars=10)
    s4 = dedup.near(tmp_path / "3.jsonl", tmp_path / "4.jsonl", ngram=3)

    assert stages["dedup_exact"]["documents_in"] == s1["documents_read"]
    assert stages["dedup_exact"]["documents_out"] == s1["documents_kept"]
    assert stages["dedup_exact"]["dropped"] == {"duplicate": s1["documents_removed"]["duplicate"]}
    assert stages["language"]["documents_out"] == s2["documents_kept"] > 0
    assert stages["language"]["dropped"] == s2["documents_removed"] and s2["documents_removed"]
    assert stages["dedup_lines"]["documents_out"] == s3["documents_kept"]
    assert stages["dedup_lines"]["modified"] == s3["documents_modified"] > 0
    assert stages["dedup_lines"]["counters"]["lines_removed"] == s3["counters"]["lines_removed"]
    assert stages["dedup_near"]["documents_out"] == s4["documents_kept"]
    assert s4["documents_removed"].get("near_duplicate", 0) > 0

    # Same documents, same order, same text; metadata written by the language stage.
    got = _outputs(tmp_path / "out")
    want = _read(tmp_path / "4.jsonl")
    assert [(r["id"], r["text"]) for r in got] == [(r["id"], r["text"]) for r in want]
    assert all(r["metadata"]["language"] == "en" and r["metadata"]["language_score"] >= 0.5 for r in got)
    assert report["output"]["documents"] == len(got)
    # The funnel is monotone and ends at the output.
    docs = [f["documents"] for f in report["funnel"]]
    assert docs == sorted(docs, reverse=True) and docs[-1] == len(got)
    assert sum(report["histograms"]["before"]) == docs[0]
    assert sum(report["histograms"]["after"]) == len(got)
    assert report["languages"]["en"]["kept"] == stages["language"]["documents_out"]
    assert {"fr", "de", "es"} <= set(report["languages"])


def _strip_times(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    report.pop("seconds")
    for s in report["stages"]:
        s.pop("seconds", None)
        s.pop("docs_per_second", None)
    return report


@pytest.mark.parametrize("kill_after", [1, 3, 6])
def test_killed_run_resumes_to_identical_output(tmp_path, kill_after):
    inputs = _corpus(tmp_path / "in", shards=4, per=20)
    stages = [
        {"type": "language", "languages": ["en"], "min_score": 0.5},  # per-shard step 0
        {"type": "dedup_exact"},  # global step 1
        {"type": "language", "name": "language_again", "min_score": 0.0},  # per-shard step 2
        {"type": "dedup_near", "ngram": 3},  # global, last
    ]
    ref = tmp_path / "ref"
    Pipeline.from_config(_config(inputs, ref, stages)).run()

    out = tmp_path / "out"
    cfg = _write_toml(tmp_path / "refine.toml", _config(inputs, out, stages))
    env = dict(os.environ, TAMIS_REFINE_KILL_AFTER_SHARDS=str(kill_after))
    r = subprocess.run(
        [*TAMIS, "refine", str(cfg), "-q"], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == -9, r.stderr  # SIGKILL: no cleanup ran
    assert not (out / "report.json").exists()
    done = list((out / ".tamis").glob("step-*/done/*.json"))
    assert len(done) == kill_after

    r = subprocess.run([*TAMIS, "refine", str(cfg), "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (ref / "data").iterdir())
    assert (
        names == sorted(p.name for p in (out / "data").iterdir()) == [f"{i:05d}.jsonl.gz" for i in range(4)]
    )
    for n in names:
        assert (ref / "data" / n).read_bytes() == (out / "data" / n).read_bytes()
    a = _strip_times(json.loads((ref / "report.json").read_text()))
    b = _strip_times(json.loads((out / "report.json").read_text()))
    for rep in (a, b):
        rep["config"].pop("output")
        rep["output"].pop("dir")
        rep["output"].pop("files")
    assert a == b
    # Intermediate step outputs are gone once used.
    assert not list((out / ".tamis").glob("step-*/data"))

    # A finished run re-run is a no-op with the same result; another config is refused.
    before = {n: (out / "data" / n).stat().st_mtime_ns for n in names}
    Pipeline.from_config(cfg).run()
    assert {n: (out / "data" / n).stat().st_mtime_ns for n in names} == before
    other = _write_toml(tmp_path / "other.toml", _config(inputs, out, stages[:1]))
    r = subprocess.run([*TAMIS, "refine", str(other)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "another configuration" in r.stderr


def test_bad_records_fail_or_are_skipped_and_counted(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text(
        '{"id": "a", "text": "Hello there, this is fine."}\n{"id": "b"}\nnot json\n', encoding="utf-8"
    )
    r = subprocess.run(
        [*TAMIS, "refine", str(p), "-o", str(tmp_path / "o1"), "--stages", "dedup_exact"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and f'{p}: line 2: missing text field "text"' in r.stderr
    assert not (tmp_path / "o1" / "data").exists() or not any((tmp_path / "o1" / "data").iterdir())
    rep = Pipeline.from_config(
        _config([p], tmp_path / "o2", [{"type": "dedup_exact"}], on_error="skip")
    ).run()
    assert rep["records_skipped"] == 2 and rep["output"]["documents"] == 1
    rejects = _read(tmp_path / "o2" / "rejects" / "00000.jsonl")
    assert [x["line"] for x in rejects] == [2, 3]
    assert [x["reason"] for x in rejects] == ["missing_text", "invalid_json"]


def test_cli_defaults_and_summary(tmp_path):
    inputs = _corpus(tmp_path / "in", shards=2, per=10)
    r = subprocess.run(
        [*TAMIS, "refine", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--languages", "en"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "prox_doc       skipped: no doc refining model" in r.stdout
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["type"] for s in rep["stages"]] == [
        "dedup_exact",
        "language",
        "dedup_lines",
        "dedup_near",
        "prox_doc",
        "prox_chunk",
    ]
    assert rep["inputs"] == [str(p) for p in inputs]
    assert any("prox_doc: skipped" in n for n in rep["notes"])


# ---------------------------------------------------------------------------------------------
# The report


def test_report_is_self_contained_and_renders_in_chromium(tmp_path):
    inputs = _corpus(tmp_path / "in", shards=2, per=25)
    Pipeline.from_config(_config(inputs, tmp_path / "out")).run()
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    # Nothing fetched: no scripts, no external sources or stylesheets.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "@import" not in html
    assert BOILER in html  # a removed line is shown among the examples

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip(
            "headless Chromium is not installed (scripts/test.sh installs Debian's `chromium` with apt)"
        )
    r = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            (tmp_path / "out" / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    assert '<svg id="funnel"' in dom and dom.count('class="bar-docs"') == 5  # input + 4 stages
    assert '<svg id="histogram"' in dom and 'class="hist-after"' in dom
    assert '<table id="stages">' in dom and dom.count("<tr>") >= 5
    assert 'id="languages-chart"' in dom
    assert dom.count('class="example dropped"') >= 4


# ---------------------------------------------------------------------------------------------
# fastText


def test_language_id_with_the_embedded_model():
    from tamis.filters import LanguageFilter, embedded_lid_model

    assert len(embedded_lid_model().labels) == 176  # built in: nothing to install
    f = LanguageFilter(["en", "fr"], min_score=0.5)
    sentences = {
        "en": "The weather is lovely today, let us go for a walk.",
        "fr": "Il fait très beau aujourd'hui, allons nous promener.",
        "de": "Das Wetter ist heute herrlich, lass uns spazieren gehen.",
        "es": "Hoy hace un tiempo estupendo, vamos a dar un paseo.",
        "it": "Oggi il tempo è bellissimo, andiamo a fare una passeggiata.",
        "ja": "今日はとても良い天気なので散歩に行きましょう。",
        "ru": "Сегодня прекрасная погода, пойдём погуляем.",
    }
    keep, preds = f.apply(list(sentences.values()))
    assert [lang for lang, _ in preds] == list(sentences)
    assert keep == [True, True, False, False, False, False, False]
    assert f.stats.dropped == {"language": 5} and f.stats.documents == 7
    # Newlines are not a problem (fastText predicts one line).
    assert f.predict(["Bonjour,\ncomment allez-vous ?\nTrès bien."])[0][0] == "fr"


def _labelled(tmp_path: Path) -> tuple[Path, Path]:
    rng = random.Random(3)
    good = "theorem proof lemma equation derivative integral matrix vector algebra".split()
    bad = "click buy cheap discount offer sale free shipping now deal".split()
    (tmp_path / "pos.jsonl").write_text(
        "".join(json.dumps({"text": " ".join(rng.choices(good, k=12))}) + "\n" for _ in range(200))
    )
    negatives = [" ".join(rng.choices(bad, k=12)) for _ in range(300)]
    (tmp_path / "neg.txt").write_text("".join(t + "\n" for t in negatives))
    (tmp_path / "neg.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in negatives))
    return tmp_path / "pos.jsonl", tmp_path / "neg.txt"


def test_train_a_quality_classifier_and_filter_with_it(tmp_path):
    from tamis.filters import QualityFilter, train

    pos, neg = _labelled(tmp_path)
    kw = {"bucket": 5000, "dim": 16, "epoch": 10, "threads": 1, "seed": 7}
    rep = train([pos], [neg], tmp_path / "q.bin", **kw)
    assert rep["per_class"] == 200  # balanced: the negatives were sampled down
    assert rep["train_documents"] + rep["test_documents"] + rep["test_removed_as_duplicates_of_train"] == 400
    assert rep["held_out"]["labels"]["hq"]["precision"] >= 0.95
    assert rep["held_out"]["labels"]["hq"]["recall"] >= 0.95
    # Training again gives the same model: fastText's uninitialized input rows are zeroed while
    # it trains (tamis.filters._zeroed_allocations), so thread=1 and a seed are reproducible.
    rep2 = train([pos], [neg], tmp_path / "q2.bin", **kw)
    assert rep2["attempts"] == rep["attempts"] == 1
    assert rep2["held_out"] == rep["held_out"]
    assert (tmp_path / "q2.bin").read_bytes() == (tmp_path / "q.bin").read_bytes()

    q = QualityFilter(tmp_path / "q.bin", keep_label="hq", threshold=0.5)
    keep, scores = q.apply(["lemma proof of the integral theorem", "cheap discount offer, buy now"])
    assert keep == [True, False] and scores[0] > 0.5 > scores[1]

    # In a pipeline: the score lands in metadata.<name>_score.
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        json.dumps({"id": "g", "text": "matrix algebra and vector proof"})
        + "\n"
        + json.dumps({"id": "b", "text": "free shipping deal now"})
        + "\n"
    )
    stage = {"type": "quality", "name": "edu", "model": str(tmp_path / "q.bin"), "threshold": 0.5}
    report = Pipeline.from_config(_config([docs], tmp_path / "out", [stage])).run()
    out = _outputs(tmp_path / "out")
    assert [r["id"] for r in out] == ["g"] and out[0]["metadata"]["edu_score"] > 0.5
    assert report["stages"][0]["dropped"] == {"edu_score": 1}
    assert report["stages"][0]["examples"]["dropped"][0]["id"] == "b"

    # An unknown label is a configuration error.
    with pytest.raises(ConfigError, match="has no label 'hq2'"):
        Pipeline.from_config(_config([docs], tmp_path / "o2", [{**stage, "keep_label": "hq2"}]))


def test_filter_train_cli(tmp_path):
    pos, neg = _labelled(tmp_path)
    r = subprocess.run(
        [
            *TAMIS,
            "filter",
            "train",
            "--positive",
            str(pos),
            "--negative",
            str(neg),
            "-o",
            str(tmp_path / "m.bin"),
            "--bucket",
            "5000",
            "--dim",
            "16",
            "--epoch",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["held_out"]["accuracy"] >= 0.95 and (tmp_path / "m.bin").is_file()
    r = subprocess.run(
        [
            *TAMIS,
            "filter",
            "quality",
            str(pos),
            str(tmp_path / "neg.jsonl"),
            "-o",
            str(tmp_path / "kept.jsonl"),
            "--model",
            str(tmp_path / "m.bin"),
            "--stats-json",
            str(tmp_path / "s.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["documents_read"] == 500 and 190 <= stats["documents_kept"] <= 210
    assert stats["documents_removed"] == {"quality_score": 500 - stats["documents_kept"]}
    kept = [json.loads(line) for line in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert len(kept) == stats["documents_kept"] and all(r["metadata"]["quality_score"] >= 0.5 for r in kept)


# ---------------------------------------------------------------------------------------------
# The demo and the Python API


def test_demo_runs_the_pipeline(tmp_path):
    r = subprocess.run(
        [*TAMIS, "demo", "--out-dir", str(tmp_path / "demo")], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert "documents in other languages" in r.stdout
    rep = json.loads((tmp_path / "demo" / "refined" / "report.json").read_text())
    stages = {s["name"]: s for s in rep["stages"]}
    assert stages["dedup_exact"]["dropped"]["duplicate"] > 0
    assert stages["language"]["dropped"]["language"] >= 4
    # The report's language distribution: English kept, the planted languages dropped.
    langs = rep["languages"]
    assert langs["en"]["kept"] > 100 and all(langs[x]["kept"] == 0 for x in ("fr", "de", "es"))
    assert stages["dedup_lines"]["modified"] > 0
    assert stages["prox_doc"]["status"] == "skipped" and "refining model" in stages["prox_doc"]["note"]
    assert (tmp_path / "demo" / "refined" / "report.html").is_file()


def test_pipeline_is_exported():
    assert tamis.Pipeline is Pipeline
