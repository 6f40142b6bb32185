"""Near-duplicate dedup (MinHash-LSH): accuracy on planted near-duplicates of known Jaccard
(English and Chinese), identical results across modes, tasks, threads and interfaces, bad input."""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tamis.dedup
import tamis.polars
from conftest import run_ok

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 9)))


def _cjk(rng: random.Random) -> str:
    return chr(rng.randint(0x4E00, 0x9FA5))


def _mutate(tokens: list[str], rate: float, rng: random.Random, new) -> list[str]:
    out = list(tokens)
    for i in range(len(out)):
        if rng.random() < rate:
            out[i] = new(rng)
    return out


def shingle_set(text: str) -> set[int]:
    return set(tamis.dedup.shingle_hashes(text))


def jaccard(a: str, b: str) -> float:
    x, y = shingle_set(a), shingle_set(b)
    return len(x & y) / len(x | y) if x or y else 1.0


RATES = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2)


def planted_corpus(
    n_bases: int, seed: int, chinese: bool = False, rates: tuple[float, ...] = RATES
) -> list[dict]:
    """Unique documents plus near-copies edited at ``rates`` (by default spanning Jaccard 0.2..1)."""
    rng = random.Random(seed)
    new = _cjk if chinese else _word
    sep = "" if chinese else " "
    docs: list[dict] = []
    for b in range(n_bases):
        tokens = [new(rng) for _ in range(rng.randint(150, 300))]
        docs.append({"id": f"b{b}", "text": sep.join(tokens), "base": b})
        if b % 2 == 0:
            rate = rng.choice(rates)
            docs.append({"id": f"b{b}-copy", "text": sep.join(_mutate(tokens, rate, rng, new)), "base": b})
    rng.shuffle(docs)
    return docs


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def read_ids(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line)["id"] for line in f if line.strip()]


@pytest.fixture(scope="module")
def english(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("near-en")
    docs = planted_corpus(600, seed=3)
    write_jsonl(root / "a.jsonl", docs[: len(docs) // 2])
    write_jsonl(root / "b.jsonl", docs[len(docs) // 2 :])
    return root, docs


def _pairs(docs: list[dict]) -> list[tuple[dict, dict, float]]:
    by_base: dict[int, list[dict]] = {}
    for d in docs:
        by_base.setdefault(d["base"], []).append(d)
    return [(g[0], g[1], jaccard(g[0]["text"], g[1]["text"])) for g in by_base.values() if len(g) == 2]


@pytest.mark.parametrize("chinese", [False, True])
def test_recall_of_planted_near_duplicates(tmp_path: Path, chinese: bool) -> None:
    threshold = 0.7
    docs = planted_corpus(500, seed=11 if chinese else 5, chinese=chinese)
    write_jsonl(tmp_path / "in.jsonl", docs)
    stats = tamis.dedup.near(
        tmp_path / "in.jsonl",
        tmp_path / "out.jsonl",
        threshold=threshold,
        recall_weight=0.9,
        clusters=tmp_path / "c.jsonl",
    )
    cluster_of = {
        json.loads(line)["id"]: json.loads(line)["cluster_id"] for line in open(tmp_path / "c.jsonl")
    }
    high = [(a, b) for a, b, j in _pairs(docs) if j >= threshold + 0.05]
    assert len(high) > 50
    found = sum(
        1 for a, b in high if a["id"] in cluster_of and cluster_of.get(a["id"]) == cluster_of.get(b["id"])
    )
    assert found / len(high) >= 0.95, (found, len(high))
    # Unrelated documents (random texts) never meet.
    low = [(a, b) for a, b, j in _pairs(docs) if j < 0.3]
    assert all(
        cluster_of.get(a["id"]) is None or cluster_of.get(a["id"]) != cluster_of.get(b["id"]) for a, b in low
    )
    kept = set(read_ids(tmp_path / "out.jsonl"))
    assert stats["documents_kept"] == len(kept) == len(docs) - stats["documents_removed"]["near_duplicate"]


def test_verify_removes_only_true_near_duplicates(tmp_path: Path) -> None:
    threshold = 0.8
    docs = planted_corpus(500, seed=21)
    write_jsonl(tmp_path / "in.jsonl", docs)
    # A loose banding (many false candidates) that verification must clean up.
    stats = tamis.dedup.near(
        tmp_path / "in.jsonl",
        tmp_path / "out.jsonl",
        bands=20,
        rows=3,
        num_perm=60,
        verify=True,
        threshold=None,
        clusters=tmp_path / "c.jsonl",
    )
    by_id = {d["id"]: d for d in docs}
    members: dict[int, list[str]] = {}
    for line in open(tmp_path / "c.jsonl"):
        r = json.loads(line)
        members.setdefault(r["cluster_id"], []).append(r["id"])
    kept = set(read_ids(tmp_path / "out.jsonl"))
    removed = [i for i in by_id if i not in kept]
    assert removed, "expected some near-duplicates"
    ok = 0
    for i in removed:
        cluster = next(m for m in members.values() if i in m)
        best = max(jaccard(by_id[i]["text"], by_id[j]["text"]) for j in cluster if j != i)
        ok += best >= threshold - 0.05
    assert ok / len(removed) >= 0.98
    assert stats["counters"]["candidate_pairs_rejected"] > 0


def test_s_curve_follows_theory() -> None:
    """P(candidate) for pairs of similarity s is 1-(1-s^r)^b: checked per similarity band."""
    rng = random.Random(1)
    bands, rows = 8, 4
    texts: list[str] = []
    sims: list[float] = []
    for _ in range(1200):
        tokens = [_word(rng) for _ in range(200)]
        other = _mutate(tokens, rng.uniform(0.0, 0.12), rng, _word)
        texts += [" ".join(tokens), " ".join(other)]
        sims.append(jaccard(texts[-2], texts[-1]))
    reps, _ = tamis.dedup.near_clusters(texts, bands=bands, rows=rows, num_perm=32)
    found = [reps[2 * i] == reps[2 * i + 1] for i in range(len(sims))]
    for lo in np.arange(0.3, 0.95, 0.1):
        idx = [i for i, s in enumerate(sims) if lo <= s < lo + 0.1]
        if len(idx) < 60:
            continue
        emp = sum(found[i] for i in idx) / len(idx)
        theory = sum(1 - (1 - sims[i] ** rows) ** bands for i in idx) / len(idx)
        # Binomial noise of the bin plus a margin.
        tol = 3 * math.sqrt(theory * (1 - theory) / len(idx)) + 0.03
        assert abs(emp - theory) <= tol, (lo, emp, theory, len(idx))


def test_modes_threads_and_interfaces_agree(english, tmp_path: Path) -> None:
    root, docs = english
    runs = {
        "t1": ["--threads", "1"],
        "t2": ["--threads", "2"],
        "spill": ["--memory-limit", "16K", "--threads", "2"],
    }
    outputs = {}
    for name, extra in runs.items():
        out = tmp_path / f"{name}.jsonl"
        run_ok("-q", "dedup", "near", root, "-o", out, "--stats-json", tmp_path / f"{name}.json", *extra)
        outputs[name] = out.read_bytes()
    assert outputs["t1"] == outputs["t2"] == outputs["spill"]
    assert json.loads((tmp_path / "spill.json").read_text())["counters"]["spill_runs"] > 0
    kept = read_ids(tmp_path / "t1.jsonl")
    assert 0 < len(docs) - len(kept) < len(docs)
    # Python over files, in-memory column, polars.
    tamis.dedup.near(root, tmp_path / "py.jsonl")
    assert (tmp_path / "py.jsonl").read_bytes() == outputs["t1"]
    ordered = [json.loads(line) for f in ("a.jsonl", "b.jsonl") for line in open(root / f)]
    texts = [r["text"] for r in ordered]
    mask = tamis.dedup.near_keep_mask(texts)
    assert [r["id"] for r, m in zip(ordered, mask, strict=True) if m] == kept
    lf = pl.LazyFrame(ordered)
    assert lf.pipe(tamis.polars.near_dedup, column="text").collect()["id"].to_list() == kept
    # Stages with several tasks, different world sizes per stage.
    wd = tmp_path / "wd"
    for r in range(3):
        run_ok("-q", "dedup", "near", "signatures", root, "--workdir", wd, "--rank", r, "--world-size", 3)
    for r in range(20):  # more tasks than bands: bands are split by key range
        run_ok("-q", "dedup", "near", "buckets", "--workdir", wd, "--rank", r, "--world-size", 20)
    run_ok("-q", "dedup", "near", "cluster", "--workdir", wd)
    parts = []
    for r in range(2):
        run_ok(
            "-q",
            "dedup",
            "near",
            "filter",
            root,
            "--workdir",
            wd,
            "--rank",
            r,
            "--world-size",
            2,
            "-o",
            tmp_path / "part-{rank}.jsonl",
        )
        parts += read_ids(tmp_path / f"part-{r:05d}.jsonl")
    assert sorted(parts) == sorted(kept)


def test_one_permutation_sketch_finds_pairs_and_agrees_everywhere(tmp_path: Path) -> None:
    docs = planted_corpus(400, seed=21)
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "a.jsonl", docs[: len(docs) // 2])
    write_jsonl(data / "b.jsonl", docs[len(docs) // 2 :])
    ordered = docs[: len(docs) // 2] + docs[len(docs) // 2 :]
    # Recall and no false meetings, as with k permutations.
    tamis.dedup.near(
        data,
        tmp_path / "r.jsonl",
        threshold=0.7,
        recall_weight=0.9,
        sketch="oph",
        clusters=tmp_path / "c.jsonl",
    )
    cluster_of = {r["id"]: r["cluster_id"] for r in map(json.loads, open(tmp_path / "c.jsonl"))}
    high = [(a, b) for a, b, j in _pairs(docs) if j >= 0.75]
    assert len(high) > 40
    found = sum(
        1 for a, b in high if a["id"] in cluster_of and cluster_of[a["id"]] == cluster_of.get(b["id"])
    )
    assert found / len(high) >= 0.95, (found, len(high))
    low = [(a, b) for a, b, j in _pairs(docs) if j < 0.3]
    assert all(
        cluster_of.get(a["id"]) is None or cluster_of[a["id"]] != cluster_of.get(b["id"]) for a, b in low
    )
    # The same kept set from the CLI (one process and stages), Python, polars and datatrove.
    run_ok("-q", "dedup", "near", data, "-o", tmp_path / "cli.jsonl", "--sketch", "oph")
    kept = read_ids(tmp_path / "cli.jsonl")
    assert 0 < len(docs) - len(kept) < len(docs)
    tamis.dedup.near(data, tmp_path / "py.jsonl", sketch="oph")
    assert (tmp_path / "py.jsonl").read_bytes() == (tmp_path / "cli.jsonl").read_bytes()
    texts = [d["text"] for d in ordered]
    mask = tamis.dedup.near_keep_mask(texts, sketch="oph")
    assert [d["id"] for d, m in zip(ordered, mask, strict=True) if m] == kept
    lf = pl.LazyFrame(ordered)
    assert lf.pipe(tamis.polars.near_dedup, column="text", sketch="oph").collect()["id"].to_list() == kept
    wd = tmp_path / "wd"
    for r in range(2):
        run_ok(
            "-q",
            "dedup",
            "near",
            "signatures",
            data,
            "--workdir",
            wd,
            "--rank",
            r,
            "--world-size",
            2,
            "--sketch",
            "oph",
        )
    run_ok("-q", "dedup", "near", "buckets", "--workdir", wd)
    run_ok("-q", "dedup", "near", "cluster", "--workdir", wd)
    run_ok("-q", "dedup", "near", "filter", data, "--workdir", wd, "-o", tmp_path / "st.jsonl")
    assert read_ids(tmp_path / "st.jsonl") == kept
    if importlib.util.find_spec("datatrove") is not None:
        got = _datatrove_near(data, tmp_path / "dwd", tmp_path / "dout", tmp_path / "logs", sketch="oph")
        assert sorted(r["id"] for r in got) == sorted(kept)
    # Signatures: from text, from pre-shingled hashes and through polars, all equal; and not the
    # k-permutation ones.
    sig = tamis.dedup.minhash(texts[:20], sketch="oph")
    hashes = [tamis.dedup.shingle_hashes(t) for t in texts[:20]]
    offsets = np.cumsum([0] + [len(h) for h in hashes]).astype(np.uint64)
    values = np.array([x for h in hashes for x in h], dtype=np.uint64)
    assert (tamis.dedup.minhash_hashes(values, offsets, sketch="oph") == sig).all()
    col = pl.DataFrame({"t": texts[:20]}).select(pl.col("t").tamis.minhash(sketch="oph"))["t"]
    assert (col.to_numpy() == sig).all()
    assert not (tamis.dedup.minhash(texts[:20]) == sig).all()


def test_annotate_clusters_and_priority(tmp_path: Path) -> None:
    base = " ".join(f"word{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}" for i in range(300))
    records = [
        {"id": "x1", "text": base, "score": 5},
        {"id": "u", "text": "completely different text " * 20, "score": 1},
        {"id": "x2", "text": base + " extra", "score": 1},
        {"id": "x3", "text": base + " more", "score": None},
    ]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    tamis.dedup.near(src, tmp_path / "first.jsonl")
    assert read_ids(tmp_path / "first.jsonl") == ["x1", "u"]
    tamis.dedup.near(src, tmp_path / "prio.jsonl", priority="score", clusters=tmp_path / "c.jsonl")
    assert read_ids(tmp_path / "prio.jsonl") == ["u", "x2"]
    clusters = [json.loads(line) for line in open(tmp_path / "c.jsonl")]
    assert {c["id"]: (c["cluster_size"], c["kept"]) for c in clusters} == {
        "x1": (3, False),
        "x2": (3, True),
        "x3": (3, False),
    }
    tamis.dedup.near(src, tmp_path / "ann.parquet", annotate=True)
    df = pl.read_parquet(tmp_path / "ann.parquet")
    assert df["id"].to_list() == ["x1", "u", "x2", "x3"]
    assert df["minhash_cluster_id"].to_list() == [0, 1, 0, 0]
    assert df["minhash_cluster_size"].to_list() == [3, 1, 3, 3]
    # JSONL annotations keep every other field's value and append the two fields.
    tamis.dedup.near(src, tmp_path / "ann.jsonl", annotate=True)
    lines = (tmp_path / "ann.jsonl").read_text().splitlines()
    assert lines[0].endswith(',"score":5,"minhash_cluster_id":0,"minhash_cluster_size":3}')
    assert [json.loads(line) for line in lines] == [
        {**r, "minhash_cluster_id": c, "minhash_cluster_size": n}
        for r, c, n in zip(records, [0, 1, 0, 0], [3, 1, 3, 3], strict=True)
    ]
    # A non-numeric priority is a record error naming the line.
    src2 = write_jsonl(tmp_path / "bad.jsonl", [*records, {"id": "z", "text": "t", "score": "high"}])
    with pytest.raises(tamis.TamisError) as e:
        tamis.dedup.near(src2, tmp_path / "x.jsonl", priority="score")
    assert e.value.kind == "keep_field_not_number" and e.value.location == "line 5"
    assert not (tmp_path / "x.jsonl").exists()


def test_minhash_matrix_is_a_view_and_matches_polars() -> None:
    texts = ["the cat sat on the mat and looked around " * 3, "another text entirely, unlike it " * 3, None]
    m = tamis.dedup.minhash(texts, num_perm=64)
    assert m.shape == (3, 64) and m.dtype == np.uint64 and not m.flags["OWNDATA"]
    assert (m[2] == np.iinfo(np.uint64).max).all()
    s = pl.DataFrame({"t": texts}).select(pl.col("t").tamis.minhash(64))["t"]
    assert s.dtype == pl.Array(pl.UInt64, 64)
    assert np.array_equal(s[0].to_numpy(), m[0]) and s[2] is None
    arrow = tamis.dedup.minhash(texts, num_perm=64, output="arrow")
    assert pl.Series(arrow).to_list()[1] == m[1].tolist()
    # Same text, same signature; equal slots estimate Jaccard.
    near = tamis.dedup.minhash([texts[0], texts[0] + " plus"], num_perm=256)
    assert (near[0] == near[1]).mean() > 0.7


def test_chinese_and_char_shingles() -> None:
    assert tamis.dedup.shingle_words("我爱北京。Hello, World 42") == [
        "我",
        "爱",
        "北",
        "京",
        "hello",
        "world",
        "00",
    ]
    zh = "今天天气很好我们一起去公园散步然后吃饭" * 5
    reps, _ = tamis.dedup.near_clusters([zh, zh + "了", "完全不同的文本内容在这里" * 8], threshold=0.8)
    assert reps == [0, 0, 2]
    reps, _ = tamis.dedup.near_clusters(
        ["abcdefghij" * 20, "abcdefghij" * 20 + "k"], shingle="chars", ngram=5
    )
    assert reps == [0, 0]


def test_threshold_picks_datasketch_parameters() -> None:
    assert tamis.dedup.bands_rows(threshold=0.8, num_perm=128) == (9, 13)
    assert tamis.dedup.bands_rows() == (14, 8)
    with pytest.raises(tamis.TamisError):
        tamis.dedup.bands_rows(threshold=0.8, bands=4)


def test_bad_input_and_damaged_work_directory(tmp_path: Path, run_tamis) -> None:
    good = {"id": "a", "text": "some words here for a document"}
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(good) + "\n{not json\n" + json.dumps({"id": "b", "text": 3}) + "\n")
    r = run_tamis("dedup", "near", src, "-o", tmp_path / "out.jsonl")
    assert r.returncode == 1 and "in.jsonl: line 2: malformed JSON" in r.stderr
    assert not (tmp_path / "out.jsonl").exists()
    r = run_tamis(
        "-q",
        "dedup",
        "near",
        src,
        "-o",
        tmp_path / "out.jsonl",
        "--on-error",
        "skip",
        "--rejects",
        tmp_path / "rej.jsonl",
        "--stats-json",
        tmp_path / "s.json",
    )
    assert r.returncode == 0, r.stderr
    assert read_ids(tmp_path / "out.jsonl") == ["a"]
    rejects = [json.loads(line)["reason"] for line in open(tmp_path / "rej.jsonl")]
    assert rejects == ["invalid_json", "text_not_string"]  # written once, not once per pass
    # The clusters file may not overwrite the output: refused before anything is written.
    r = run_tamis("dedup", "near", src, "-o", tmp_path / "same.jsonl", "--clusters", tmp_path / "same.jsonl")
    assert r.returncode == 1 and "the clusters file is also the output" in r.stderr
    assert not (tmp_path / "same.jsonl").exists()
    r = run_tamis("dedup", "near", "-", "-o", tmp_path / "o2.jsonl", input=json.dumps(good) + "\n")
    assert r.returncode == 1 and "standard input" in r.stderr
    # Stages: a missing task, then a truncated intermediate file, fail loudly.
    ok = write_jsonl(tmp_path / "ok.jsonl", [good, {"id": "c", "text": "other words in a second doc"}])
    wd = tmp_path / "wd"
    run_ok("-q", "dedup", "near", "signatures", ok, "--workdir", wd, "--rank", 0, "--world-size", 2)
    r = run_tamis("dedup", "near", "buckets", "--workdir", wd)
    assert r.returncode == 1 and "tasks 1 of 2 have not finished" in r.stderr
    run_ok("-q", "dedup", "near", "signatures", ok, "--workdir", wd, "--rank", 1, "--world-size", 2)
    sig = next(wd.glob("sig/b000/*.sig"))
    sig.write_bytes(sig.read_bytes()[:-3])
    r = run_tamis("dedup", "near", "buckets", "--workdir", wd)
    assert r.returncode == 1 and "truncated" in r.stderr
    r = run_tamis("dedup", "near", "filter", ok, "--workdir", wd, "-o", tmp_path / "f.jsonl")
    assert r.returncode == 1 and "clustering has not finished" in r.stderr


def _datatrove_near(
    data: Path, wd: Path, out: Path, logs: Path, annotate: bool = False, sketch: str = "kperm"
) -> list[dict]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from tamis.datatrove import NearDedupBuckets, NearDedupCluster, NearDedupFilter, NearDedupSignature

    def run(steps: list, tasks: int, name: str) -> None:
        LocalPipelineExecutor(steps, tasks=tasks, workers=2, logging_dir=str(logs / name)).run()

    run(
        [JsonlReader(str(data)), NearDedupSignature(str(wd), batch_size=50, threads=1, sketch=sketch)],
        3,
        "sig",
    )
    run([NearDedupBuckets(str(wd))], 5, "buckets")
    run([NearDedupCluster(str(wd))], 1, "cluster")
    run(
        [
            JsonlReader(str(data)),
            NearDedupFilter(str(wd), annotate=annotate),
            JsonlWriter(str(out), compression=None),
        ],
        2,
        "filter",
    )
    return [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]


def test_datatrove_steps_keep_what_the_cli_keeps(tmp_path: Path) -> None:
    pytest.importorskip("datatrove")
    docs = planted_corpus(300, seed=9)
    data = tmp_path / "data"
    names = ["b/x.jsonl", "a.jsonl", "b.jsonl", "c/d/e.jsonl", "b/y.jsonl"]
    for i, name in enumerate(names):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(data / name, docs[i::5])
    run_ok("-q", "dedup", "near", data, "-o", tmp_path / "cli.jsonl")
    cli = read_ids(tmp_path / "cli.jsonl")
    kept = _datatrove_near(data, tmp_path / "wd", tmp_path / "out", tmp_path / "logs")
    assert sorted(r["id"] for r in kept) == sorted(cli)
    assert len(cli) < len(docs)
    annotated = _datatrove_near(data, tmp_path / "wd2", tmp_path / "out2", tmp_path / "logs2", annotate=True)
    run_ok("-q", "dedup", "near", data, "-o", tmp_path / "ann.jsonl", "--annotate")
    expected = {
        r["id"]: (r["minhash_cluster_id"], r["minhash_cluster_size"])
        for r in map(json.loads, open(tmp_path / "ann.jsonl"))
    }
    got = {
        r["id"]: (r["metadata"]["minhash_cluster_id"], r["metadata"]["minhash_cluster_size"])
        for r in annotated
    }
    assert got == expected


def test_agrees_with_datasketch(tmp_path: Path) -> None:
    """Same shingles and parameters: the kept sets of tamis and datasketch's MinHashLSH agree.

    Near-copies are clearly above or below the S-curve here: around it both tools flip coins
    (independent permutations), so their agreement there is measured in benchmarks/, not here.
    """
    datasketch = pytest.importorskip("datasketch")
    docs = planted_corpus(400, seed=17, rates=(0.0, 0.003, 0.006, 0.3, 0.5))
    texts = [d["text"] for d in docs]
    bands, rows = 14, 8
    keep = tamis.dedup.near_keep_mask(texts, bands=bands, rows=rows, num_perm=112)
    tamis_kept = {d["id"] for d, k in zip(docs, keep, strict=True) if k}
    lsh = datasketch.MinHashLSH(num_perm=112, params=(bands, rows))
    parent = list(range(len(docs)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, text in enumerate(texts):
        m = datasketch.MinHash(num_perm=112, seed=1)
        m.update_batch([h.to_bytes(8, "little") for h in tamis.dedup.shingle_hashes(text)])
        for j in lsh.query(m):
            a, b = find(i), find(j)
            parent[max(a, b)] = min(a, b)
        lsh.insert(i, m)
    ds_kept = {d["id"] for i, d in enumerate(docs) if find(i) == i}
    agreement = len(tamis_kept & ds_kept) / len(tamis_kept | ds_kept)
    assert agreement >= 0.995, agreement


def test_ray_executor_keeps_what_the_cli_keeps(tmp_path: Path) -> None:
    """The datatrove steps under RayPipelineExecutor, on a local Ray instance bound to loopback."""
    pytest.importorskip("datatrove")
    ray = pytest.importorskip("ray")
    from datatrove.executor.ray import RayPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from tamis.datatrove import NearDedupBuckets, NearDedupCluster, NearDedupFilter, NearDedupSignature

    docs = planted_corpus(150, seed=13)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        write_jsonl(data / f"part{i}.jsonl", docs[i::3])
    run_ok("-q", "dedup", "near", data, "-o", tmp_path / "cli.jsonl")
    wd, out = tmp_path / "wd", tmp_path / "out"
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        stages = [
            ([JsonlReader(str(data)), NearDedupSignature(str(wd), threads=1)], 2),
            ([NearDedupBuckets(str(wd))], 3),
            ([NearDedupCluster(str(wd))], 1),
            ([JsonlReader(str(data)), NearDedupFilter(str(wd)), JsonlWriter(str(out), compression=None)], 2),
        ]
        for i, (steps, tasks) in enumerate(stages):
            RayPipelineExecutor(
                steps, tasks=tasks, logging_dir=str(tmp_path / f"logs{i}"), mem_per_cpu_gb=0.25
            ).run()
    finally:
        ray.shutdown()
    kept = [
        json.loads(line)["id"] for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()
    ]
    assert sorted(kept) == sorted(read_ids(tmp_path / "cli.jsonl"))
