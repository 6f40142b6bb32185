"""Keep policies (`--keep first|longest|shortest|max:FIELD|min:FIELD`): every surface keeps the
same document of each group of duplicates, the one a naive Python oracle picks."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import tamis
import tamis.polars  # noqa: F401  (registers the namespace)
from conftest import run_ok
from tamis.errors import ConfigError, TamisError

FILES = ["a.jsonl", "b.jsonl", "c.jsonl"]
POLICIES = ["first", "longest", "shortest", "max:q", "min:q"]
WORDS = "sieve corpus token shard hash crab river stone grain flour mill wheel oven bread".split()


def _q(rng: random.Random) -> dict[str, Any]:
    """A `q` field: int, float, null, missing, or one of a few repeated values (for ties)."""
    kind = rng.randrange(6)
    if kind == 0:
        return {}
    if kind == 1:
        return {"q": None}
    if kind == 2:
        return {"q": rng.choice([1, 2, 2.5])}
    return {"q": rng.choice([-3, 0, 4, 7.25, 10, 1e3])}


def _exact_corpus(root: Path) -> list[dict]:
    """Whitespace variants (same text after normalize="whitespace", different lengths)."""
    rng = random.Random(21)
    bases = [" ".join(rng.choices(WORDS, k=rng.randint(2, 6))) for _ in range(25)]
    docs = []
    for f, name in enumerate(FILES):
        recs = []
        for i in range(60):
            text = rng.choice(bases)
            text = rng.choice([text, f" {text}", text.replace(" ", "   "), f"{text}\n\n", "\t" + text])
            recs.append({"id": f"{f}-{i}", "text": text, **_q(rng)})
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in recs))
        docs += recs
    return docs


def _near_corpus(root: Path) -> list[dict]:
    """Near copies: a few words dropped or added, so lengths differ within a cluster."""
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(3000)]
    bases = [rng.choices(vocab, k=rng.randint(60, 120)) for _ in range(30)]
    docs = []
    for f, name in enumerate(FILES):
        recs = []
        for i in range(40):
            words = list(rng.choice(bases))
            for _ in range(rng.randint(0, 2)):
                if rng.random() < 0.5:
                    del words[rng.randrange(len(words))]
                else:
                    words.append(rng.choice(vocab))
            recs.append({"id": f"{f}-{i}", "text": " ".join(words), **_q(rng)})
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in recs))
        docs += recs
    return docs


def _score(doc: dict, policy: str) -> float:
    """The oracle's reading of a policy: smaller wins; missing values never preferred."""
    q = doc.get("q")
    if policy == "first":
        return 0.0
    if policy == "longest":
        return -len(doc["text"])
    if policy == "shortest":
        return len(doc["text"])
    if q is None:
        return float("inf")
    return -q if policy == "max:q" else q


def _oracle(docs: list[dict], group_of: dict[str, Any], policy: str) -> list[str]:
    """Ids kept, in input order: per group the smallest score, ties to the first."""
    best: dict[Any, tuple[float, int]] = {}
    for i, d in enumerate(docs):
        g = group_of[d["id"]]
        s = _score(d, policy)
        if g not in best or s < best[g][0]:
            best[g] = (s, i)
    winners = {i for _, i in best.values()}
    return [d["id"] for i, d in enumerate(docs) if i in winners]


def _ids(path: Path) -> list[str]:
    files = sorted(path.rglob("*.jsonl*")) if path.is_dir() else [path]
    out = []
    for f in files:
        data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        out += [json.loads(line)["id"] for line in data.decode().splitlines() if line]
    return out


def _refine(data: Path, out: Path, stage: dict[str, Any]) -> list[str]:
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in stage.items())
    config = out.with_suffix(".toml")
    config.write_text(f'inputs = ["{data}"]\noutput = "{out}"\n[[stage]]\n{body}')
    run_ok("-q", "refine", config)
    return _ids(out / "data")


def _datatrove_exact(data: Path, tmp: Path, policy: str) -> list[str]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from tamis.datatrove import ExactDedupFilter, ExactDedupSignature

    sigs, out = tmp / "sigs", tmp / "dt"
    steps = [JsonlReader(str(data)), ExactDedupSignature(str(sigs), normalize="whitespace", keep=policy)]
    LocalPipelineExecutor(steps, tasks=2, workers=1, logging_dir=str(tmp / "l1")).run()
    steps = [JsonlReader(str(data)), ExactDedupFilter(str(sigs)), JsonlWriter(str(out), compression=None)]
    LocalPipelineExecutor(steps, tasks=2, workers=1, logging_dir=str(tmp / "l2")).run()
    return _ids(out)


def _datatrove_near(data: Path, tmp: Path, policy: str) -> list[str]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from tamis.datatrove import NearDedupBuckets, NearDedupCluster, NearDedupFilter, NearDedupSignature

    wd, out = tmp / "dt-wd", tmp / "dt"
    for i, (steps, tasks) in enumerate(
        [
            ([JsonlReader(str(data)), NearDedupSignature(str(wd), keep=policy, threads=1)], 2),
            ([NearDedupBuckets(str(wd))], 3),
            ([NearDedupCluster(str(wd))], 1),
            ([JsonlReader(str(data)), NearDedupFilter(str(wd)), JsonlWriter(str(out), compression=None)], 2),
        ]
    ):
        LocalPipelineExecutor(steps, tasks=tasks, workers=1, logging_dir=str(tmp / f"l{i}")).run()
    return _ids(out)


def _frame(docs: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [d["id"] for d in docs],
            "text": [d["text"] for d in docs],
            "q": pl.Series([d.get("q") for d in docs], dtype=pl.Float64),
        }
    )


@pytest.mark.parametrize("policy", POLICIES)
def test_exact_keep_is_the_same_everywhere(tmp_path: Path, policy: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    docs = _exact_corpus(data)
    expected = _oracle(docs, {d["id"]: " ".join(d["text"].split()) for d in docs}, policy)
    assert len(expected) < len(docs)
    if policy != "first":
        assert expected != _oracle(docs, {d["id"]: " ".join(d["text"].split()) for d in docs}, "first")

    run_ok(
        "-q",
        "dedup",
        "exact",
        data,
        "-o",
        tmp_path / "cli.jsonl",
        "--normalize",
        "whitespace",
        "--keep",
        policy,
    )
    assert _ids(tmp_path / "cli.jsonl") == expected
    tamis.dedup.exact(data, tmp_path / "py.jsonl", normalize="whitespace", keep=policy)
    assert _ids(tmp_path / "py.jsonl") == expected

    frame = _frame(docs)
    mask = tamis.dedup.exact_keep_mask(
        [d["text"] for d in docs], normalize="whitespace", keep=policy, values=[d.get("q") for d in docs]
    )
    assert [d["id"] for d, k in zip(docs, mask, strict=True) if k] == expected
    assert frame.tamis.exact_dedup("text", normalize="whitespace", keep=policy)["id"].to_list() == expected
    assert (
        frame.lazy().tamis.exact_dedup("text", normalize="whitespace", keep=policy).collect()["id"].to_list()
        == expected
    )

    stage = {"type": "dedup_exact", "normalize": "whitespace", "keep": policy}
    assert _refine(data, tmp_path / "refined", stage) == expected
    if policy in ("longest", "max:q"):  # datatrove runs are slow: two policies, both kinds
        pytest.importorskip("datatrove")
        assert sorted(_datatrove_exact(data, tmp_path, policy)) == sorted(expected)


@pytest.fixture(scope="module")
def near_data(tmp_path_factory) -> tuple[Path, list[dict], dict[str, Any]]:
    """The near corpus and its clusters (membership does not depend on the keep policy)."""
    root = tmp_path_factory.mktemp("near-keep")
    data = root / "data"
    data.mkdir()
    docs = _near_corpus(data)
    run_ok("-q", "dedup", "near", data, "-o", root / "ann.jsonl", "--annotate")
    cluster = {
        r["id"]: r["minhash_cluster_id"]
        for r in map(json.loads, (root / "ann.jsonl").read_text().splitlines())
    }
    assert max(sum(1 for c in cluster.values() if c == x) for x in cluster.values()) >= 3
    return data, docs, cluster


@pytest.mark.parametrize("policy", POLICIES)
def test_near_keep_is_the_same_everywhere(tmp_path: Path, near_data, policy: str) -> None:
    data, docs, cluster = near_data
    expected = _oracle(docs, cluster, policy)
    assert len(expected) < len(docs)
    if policy != "first":
        assert expected != _oracle(docs, cluster, "first")

    run_ok("-q", "dedup", "near", data, "-o", tmp_path / "cli.jsonl", "--keep", policy)
    assert _ids(tmp_path / "cli.jsonl") == expected
    tamis.dedup.near(data, tmp_path / "py.jsonl", keep=policy, threads=1)
    assert _ids(tmp_path / "py.jsonl") == expected

    # the scheduler stages, two signature tasks
    wd = tmp_path / "wd"
    for rank in (0, 1):
        run_ok(
            *("-q", "dedup", "near", "signatures", data, "--workdir", wd, "--keep", policy),
            *("--rank", rank, "--world-size", 2),
        )
    run_ok("-q", "dedup", "near", "buckets", "--workdir", wd)
    run_ok("-q", "dedup", "near", "cluster", "--workdir", wd)
    run_ok("-q", "dedup", "near", "filter", data, "--workdir", wd, "-o", tmp_path / "stages.jsonl")
    assert _ids(tmp_path / "stages.jsonl") == expected

    texts = [d["text"] for d in docs]
    values = [d.get("q") for d in docs]
    mask = tamis.dedup.near_keep_mask(texts, keep=policy, values=values)
    assert [d["id"] for d, k in zip(docs, mask, strict=True) if k] == expected
    assert _frame(docs).tamis.near_dedup("text", keep=policy)["id"].to_list() == expected

    assert _refine(data, tmp_path / "refined", {"type": "dedup_near", "keep": policy}) == expected
    if policy in ("shortest", "min:q"):
        pytest.importorskip("datatrove")
        assert sorted(_datatrove_near(data, tmp_path, policy)) == sorted(expected)


def test_priority_is_min_field(tmp_path: Path, near_data, run_tamis) -> None:
    data, docs, cluster = near_data
    run_ok("-q", "dedup", "near", data, "-o", tmp_path / "p.jsonl", "--priority", "q")
    run_ok("-q", "dedup", "near", data, "-o", tmp_path / "k.jsonl", "--keep", "min:q")
    assert (tmp_path / "p.jsonl").read_bytes() == (tmp_path / "k.jsonl").read_bytes()
    assert _ids(tmp_path / "p.jsonl") == _oracle(docs, cluster, "min:q")
    r = run_tamis("dedup", "near", data, "-o", tmp_path / "x.jsonl", "--priority", "q", "--keep", "longest")
    assert r.returncode == 2 and "cannot be used with" in r.stderr
    texts = [d["text"] for d in docs]
    values = [d.get("q") for d in docs]
    assert tamis.dedup.near_keep_mask(texts, priority="q", values=values) == tamis.dedup.near_keep_mask(
        texts, keep="min:q", values=values
    )
    with pytest.raises(ConfigError) as e:
        tamis.dedup.near_keep_mask(texts, priority="q", keep="max:q", values=values)
    assert e.value.fields == ["keep", "priority"]


@pytest.mark.parametrize("policy", ["biggest", "max:", "min"])
def test_bad_policy_is_refused_by_name(tmp_path: Path, run_tamis, policy: str) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    for cmd in ("exact", "near"):
        r = run_tamis("dedup", cmd, tmp_path / "a.jsonl", "-o", tmp_path / "o.jsonl", "--keep", policy)
        assert r.returncode == 2 and "--keep must be first, longest, shortest" in r.stderr, r.stderr
        assert not (tmp_path / "o.jsonl").exists()
    with pytest.raises(ConfigError) as e:
        tamis.dedup.exact_keep_mask(["x"], keep=policy)
    assert e.value.fields == ["keep"] and "keep must be" in str(e.value)
    config = tmp_path / "r.toml"
    config.write_text(f'inputs = ["{tmp_path / "a.jsonl"}"]\noutput = "{tmp_path / "out"}"\n')
    config.write_text(config.read_text() + f'[[stage]]\ntype = "dedup_near"\nkeep = "{policy}"\n')
    r = run_tamis("refine", config)
    assert r.returncode == 2 and "stage 1 (dedup_near): keep must be" in r.stderr, r.stderr


def test_a_field_that_is_not_a_number_is_refused(tmp_path: Path, run_tamis) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "x", "q": 1}\n{"id": "2", "text": "x", "q": "high"}\n')
    for cmd in ("exact", "near"):
        r = run_tamis("dedup", cmd, bad, "-o", tmp_path / "o.jsonl", "--keep", "max:q")
        assert r.returncode == 1, r.stderr
        assert 'bad.jsonl: line 2: keep field "q" is a string, not a number' in r.stderr
        assert not (tmp_path / "o.jsonl").exists()
        # skipping counts it as a rejected record and keeps going
        run_ok(
            *("-q", "dedup", cmd, bad, "-o", tmp_path / "o.jsonl", "--keep", "max:q"),
            *("--on-error", "skip", "--rejects", tmp_path / "rej.jsonl"),
        )
        assert _ids(tmp_path / "o.jsonl") == ["1"]
        assert "high" in (tmp_path / "rej.jsonl").read_text()
        (tmp_path / "o.jsonl").unlink()
    with pytest.raises(TamisError) as e:
        tamis.dedup.exact(bad, tmp_path / "p.jsonl", keep="min:q")
    assert e.value.kind == "keep_field_not_number"
    with pytest.raises(TypeError, match=r"values\[1\] is str"):
        tamis.dedup.exact_keep_mask(["x", "x"], keep="max:q", values=[1, "high"])
    frame = pl.DataFrame({"text": ["x", "x"], "q": ["1", "high"]})
    with pytest.raises(Exception, match="expected a numeric column"):
        frame.tamis.exact_dedup("text", keep="max:q")
    # a policy that reads a field needs its values
    with pytest.raises(TamisError, match='needs the values of field "q"'):
        tamis.dedup.near_keep_mask(["x", "x"], keep="max:q")


def test_parquet_columns_are_read_as_numbers(tmp_path: Path) -> None:
    rows = [("a", 3, 0.5), ("a", 9, float("nan")), ("b", None, 2.0), ("a", 9, 1.0), ("b", 1, None)]
    frame = pl.DataFrame(
        {
            "id": [str(i) for i in range(len(rows))],
            "text": [r[0] for r in rows],
            "n": pl.Series([r[1] for r in rows], dtype=pl.Int32),
            "f": pl.Series([r[2] for r in rows], dtype=pl.Float64),
            "flag": [True, False, True, False, True],
        }
    )
    frame.write_parquet(tmp_path / "in.parquet")
    for keep, kept in [
        ("max:n", ["1", "4"]),
        ("min:n", ["0", "4"]),
        ("max:f", ["2", "3"]),
        ("min:f", ["0", "2"]),
    ]:
        tamis.dedup.exact(tmp_path / "in.parquet", tmp_path / "o.jsonl", keep=keep)
        assert sorted(_ids(tmp_path / "o.jsonl")) == kept, keep
        assert sorted(frame.tamis.exact_dedup("text", keep=keep)["id"].to_list()) == kept, keep
    with pytest.raises(TamisError) as e:
        tamis.dedup.exact(tmp_path / "in.parquet", tmp_path / "o.jsonl", keep="max:flag")
    assert e.value.kind == "keep_field_not_number" and "in.parquet" in str(e.value)
