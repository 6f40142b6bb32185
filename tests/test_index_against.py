"""Line and near-duplicate dedup against persistent indexes (`tamis index build --kind lines|near`,
`tamis dedup lines|near --against`): the new documents (or lines) removed equal those a one-run
dedup of old + new removes, for any thread count, for an index built in one step or by `add`, and
from the CLI, Python and refine; `--annotate` names the indexed records; mismatched indexes are
errors naming the file."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import tamis
from test_index import VOCAB, _records, ok, read_folder, read_jsonl, run, write_jsonl


def words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(n)]


def edit(rng: random.Random, w: list[str], changes: int) -> list[str]:
    w = list(w)
    for _ in range(changes):
        w[rng.randrange(len(w))] = rng.choice(VOCAB)
    return w


@pytest.fixture(scope="module")
def near_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An old corpus and a new one holding edited copies of old documents (some only similar to
    another new copy, which comes first or last), near-duplicates among themselves and fresh
    documents."""
    rng = random.Random(11)
    tmp = tmp_path_factory.mktemp("near")
    old_words = [words(rng, rng.randint(60, 140)) for _ in range(400)]
    old = [{"id": f"old-{i}", "text": " ".join(w)} for i, w in enumerate(old_words)]
    new: list[dict[str, Any]] = []
    source: dict[str, str] = {}
    fresh_pool: list[list[str]] = []
    for i in range(700):
        r = rng.random()
        if r < 0.25:
            j = rng.randrange(len(old_words))
            w = edit(rng, old_words[j], rng.randint(0, 3))
            source[f"new-{i}"] = f"old-{j}"
        elif r < 0.35 and new:
            # A copy of an earlier new document, further edited: chains through it.
            w = edit(rng, new[rng.randrange(len(new))]["text"].split(), rng.randint(1, 6))
        elif r < 0.45 and fresh_pool:
            w = edit(rng, rng.choice(fresh_pool), rng.randint(0, 2))
        else:
            w = words(rng, rng.randint(60, 140))
            fresh_pool.append(w)
        new.append({"id": f"new-{i}", "text": " ".join(w)})
    # A chain in the order the one-run must see through: B (new, first) ~ A (new) ~ O (old).
    o = old_words[7]
    a = edit(rng, o, 2)
    b = a[:40] + words(rng, 6) + a[40:]
    new.insert(0, {"id": "chain-b", "text": " ".join(b)})
    new.append({"id": "chain-a", "text": " ".join(a)})
    old_f = write_jsonl(tmp / "old.jsonl", old)
    new_f = write_jsonl(tmp / "new.jsonl", new)
    index = tmp / "old.near"
    ok("index", "build", old_f, "-o", index, "--kind", "near")
    both = tmp / "both.jsonl"
    ok("dedup", "near", old_f, new_f, "-o", both)
    one_run = "".join(
        line + "\n" for line in both.read_text().splitlines() if not json.loads(line)["id"].startswith("old-")
    )
    return {
        "tmp": tmp,
        "old": old,
        "new": new,
        "old_f": old_f,
        "new_f": new_f,
        "index": index,
        "one_run": one_run,
        "source": source,
    }


def test_near_against_an_index_equals_one_run_over_old_and_new(near_data: dict[str, Any]) -> None:
    d = near_data
    out = d["tmp"] / "against.jsonl"
    stats_f = d["tmp"] / "s.json"
    r = ok("dedup", "near", d["new_f"], "-o", out, "--against", d["index"], "--stats-json", stats_f)
    assert out.read_text() == d["one_run"], r.stderr
    stats = json.loads(stats_f.read_text())
    removed = stats["documents_removed"]
    assert removed["indexed_duplicate"] >= 150 and removed["near_duplicate"] >= 20, removed
    kept = {row["id"] for row in read_jsonl(out)}
    assert "chain-a" not in kept and "chain-b" not in kept
    # Size: 14 band keys per document.
    info = tamis.index.info(d["index"])
    assert info["kind"] == "near" and info["entries"] <= 14 * info["records"]
    assert info["minhash"]["bands"] == 14 and info["minhash"]["seed"] == 1


def test_near_against_is_the_same_for_threads_steps_and_surfaces(near_data: dict[str, Any]) -> None:
    d = near_data
    tmp = d["tmp"]
    # The index built by adding ten parts (more than 8 segments: merged once).
    parts = [write_jsonl(tmp / f"part{i}.jsonl", d["old"][i * 40 : (i + 1) * 40]) for i in range(10)]
    stepped = tmp / "stepped.near"
    ok("index", "build", parts[0], "-o", stepped, "--kind", "near")
    for p in parts[1:]:
        tamis.index.add(stepped, p, memory_limit="64M")
    info = tamis.index.info(stepped)
    assert info["records"] == 400 and info["segments"] < 10
    for threads, index in [("1", d["index"]), ("2", d["index"]), ("2", stepped)]:
        out = tmp / f"t{threads}-{index.name}.jsonl"
        ok("--threads", threads, "dedup", "near", d["new_f"], "-o", out, "--against", index)
        assert out.read_text() == d["one_run"], (threads, index)
    py = tmp / "py.jsonl"
    tamis.dedup.near(d["new_f"], py, against=[str(stepped)])
    assert py.read_text() == d["one_run"]
    cfg = tmp / "refine.toml"
    cfg.write_text(
        f"inputs = [{json.dumps(str(d['new_f']))}]\noutput = {json.dumps(str(tmp / 'refined'))}\n\n"
        f'[[stage]]\ntype = "dedup_near"\nagainst = [{json.dumps(str(d["index"]))}]\n'
    )
    r = run("refine", cfg, "-q")
    assert r.returncode == 0, r.stderr
    expected = {row["id"]: row["text"] for row in read_jsonl(py)}
    assert _records(tmp / "refined" / "data") == expected


def test_near_against_in_memory_and_polars_keep_the_same_rows(near_data: dict[str, Any]) -> None:
    import polars as pl
    import tamis.polars  # noqa: F401  (registers pl.col(...).tamis)

    d = near_data
    kept = [json.loads(line)["id"] for line in d["one_run"].splitlines()]
    texts = [n["text"] for n in d["new"]]
    mask = tamis.dedup.near_keep_mask(texts, against=[str(d["index"])])
    assert [n["id"] for n, m in zip(d["new"], mask, strict=True) if m] == kept
    df = pl.DataFrame({"id": [n["id"] for n in d["new"]], "text": texts})
    got = df.filter(pl.col("text").tamis.is_near_first(against=[str(d["index"])]))["id"].to_list()
    assert got == kept


def test_near_annotate_names_the_indexed_documents(near_data: dict[str, Any]) -> None:
    d = near_data
    out = d["tmp"] / "ann.jsonl"
    ok("dedup", "near", d["new_f"], "-o", out, "--against", d["index"], "--annotate")
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [n["id"] for n in d["new"]]
    removed = d["tmp"] / "plain.jsonl"
    ok(
        "dedup",
        "near",
        d["new_f"],
        "-o",
        removed,
        "--against",
        d["index"],
        "--clusters",
        d["tmp"] / "c.jsonl",
    )
    kept = {r["id"] for r in read_jsonl(removed)}
    with_dup = {r["id"] for r in rows if "dup_of" in r}
    # Every annotated document is one --against removes, for the index's sake.
    assert with_dup and not with_dup & kept
    old_ids = {o["id"] for o in d["old"]}
    found_source = 0
    for r in rows:
        if "dup_of" in r:
            assert r["dup_of"] and set(r["dup_of"]) <= old_ids and len(r["dup_of"]) <= 32
            found_source += d["source"].get(r["id"]) in r["dup_of"]
    # Copies of an old document with at most 3 of 60+ words changed name it.
    assert found_source >= 0.9 * len(d["source"]), (found_source, len(d["source"]))


def test_near_indexes_built_otherwise_are_refused(near_data: dict[str, Any]) -> None:
    d = near_data
    tmp = d["tmp"]
    other = tmp / "seed2.near"
    ok("index", "build", d["old_f"], "-o", other, "--kind", "near", "--seed", "2")
    out = tmp / "x.jsonl"
    r = run("dedup", "near", d["new_f"], "-o", out, "--against", other)
    assert r.returncode != 0 and str(other) in r.stderr and "seed 2" in r.stderr, r.stderr
    r = run("dedup", "near", d["new_f"], "-o", out, "--against", d["index"], "--num-perm", "128")
    assert r.returncode != 0 and "num_perm 112" in r.stderr, r.stderr
    lines_idx = tmp / "l.idx"
    ok("index", "build", d["old_f"], "-o", lines_idx, "--kind", "lines")
    r = run("dedup", "near", d["new_f"], "-o", out, "--against", lines_idx)
    assert r.returncode != 0 and "kind lines" in r.stderr, r.stderr
    assert not out.exists()
    r = run("index", "build", d["old_f"], "-o", tmp / "bad", "--kind", "exact", "--num-perm", "64")
    assert r.returncode != 0 and "--num-perm is only used with --kind near" in r.stderr, r.stderr
    with pytest.raises(tamis.ConfigError, match="verify with against"):
        tamis.dedup.near_keep_mask(["a b c d e f"], against=[str(d["index"])], verify=True)


def test_near_verify_against_reads_the_indexed_documents_again(
    near_data: dict[str, Any], tmp_path: Path
) -> None:
    d = near_data
    both = tmp_path / "both.jsonl"
    ok("dedup", "near", d["old_f"], d["new_f"], "-o", both, "--verify")
    one_run = "".join(
        line + "\n" for line in both.read_text().splitlines() if not json.loads(line)["id"].startswith("old-")
    )
    out = tmp_path / "against.jsonl"
    stats_f = tmp_path / "s.json"
    r = ok(
        "dedup", "near", d["new_f"], "-o", out, "--against", d["index"], "--verify", "--stats-json", stats_f
    )
    assert out.read_text() == one_run, r.stderr
    counters = json.loads(stats_f.read_text())["counters"]
    assert counters["indexed_pairs_verified"] > 100, counters
    # Verification changes the outcome here (pairs below the threshold are not joined).
    assert one_run != d["one_run"]
    py = tmp_path / "py.jsonl"
    tamis.dedup.near(d["new_f"], py, against=[str(d["index"])], verify=True, threads=1)
    assert py.read_text() == one_run
    # The indexed documents are read from the files the index was built from: a changed file
    # is an error naming it, and nothing is written.
    import shutil

    src = tmp_path / "src.jsonl"
    shutil.copy(d["old_f"], src)
    idx = tmp_path / "copy.near"
    ok("index", "build", src, "-o", idx, "--kind", "near")
    import os

    before = src.stat()
    rows = read_jsonl(src)
    rows[0], rows[1] = rows[1], rows[0]
    write_jsonl(src, rows)
    out2 = tmp_path / "changed.jsonl"
    r = run("dedup", "near", d["new_f"], "-o", out2, "--against", idx, "--verify")
    assert r.returncode != 0 and str(src.resolve()) in r.stderr and "changed" in r.stderr, r.stderr
    assert not out2.exists()
    # Same size and time, other records: the ids read back tell.
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    r = run("dedup", "near", d["new_f"], "-o", out2, "--against", idx, "--verify")
    assert r.returncode != 0 and str(src.resolve()) in r.stderr and "where the index has" in r.stderr, (
        r.stderr
    )
    assert not out2.exists()
    # Without --verify the index alone answers.
    ok("dedup", "near", d["new_f"], "-o", out2, "--against", idx)
    assert out2.read_text() == d["one_run"]


def test_staged_near_against_equals_the_one_run(near_data: dict[str, Any], tmp_path: Path) -> None:
    """`dedup near signatures --against` (two tasks), buckets, cluster, filter: the same output as
    `dedup near --against`, with `--annotate` too; so do the datatrove steps."""
    d = near_data
    data = tmp_path / "data"
    data.mkdir()
    new = d["new"]
    third = len(new) // 3
    for i in range(3):
        write_jsonl(data / f"p{i}.jsonl", new[i * third : (i + 1) * third if i < 2 else len(new)])
    wd = tmp_path / "wd"
    for rank in (0, 1):
        ok("dedup", "near", "signatures", data, "--workdir", wd, "--rank", rank, "--world-size", 2,
           "--against", d["index"])  # fmt: skip
    assert len(list((wd / "hits").glob("*.bin"))) == 2
    ok("dedup", "near", "buckets", "--workdir", wd, "--world-size", 1)
    stats_f = tmp_path / "cluster.json"
    ok("dedup", "near", "cluster", "--workdir", wd, "--stats-json", stats_f)
    removed = json.loads(stats_f.read_text())["documents_removed"]
    assert removed["indexed_duplicate"] >= 150, removed
    out = tmp_path / "staged.jsonl"
    ok("dedup", "near", "filter", data, "--workdir", wd, "-o", out)
    assert out.read_text() == d["one_run"]
    ann = tmp_path / "staged-ann.jsonl"
    ok("dedup", "near", "filter", data, "--workdir", wd, "-o", ann, "--annotate")
    one_ann = tmp_path / "one-ann.jsonl"
    ok("dedup", "near", d["new_f"], "-o", one_ann, "--against", d["index"], "--annotate")
    assert ann.read_text() == one_ann.read_text()
    dup_of = {r["id"]: r["dup_of"] for r in read_jsonl(one_ann) if "dup_of" in r}
    assert len(dup_of) >= 150
    # An index changed after the signatures: the cluster stage refuses to use them.
    import shutil

    moved = tmp_path / "idx"
    shutil.copytree(d["index"], moved)
    wd2 = tmp_path / "wd2"
    ok("dedup", "near", "signatures", data, "--workdir", wd2, "--against", moved)
    ok("dedup", "near", "buckets", "--workdir", wd2)
    tamis.index.add(moved, d["new_f"])
    r = run("dedup", "near", "cluster", "--workdir", wd2)
    assert r.returncode != 0 and str(moved) in r.stderr and "changed" in r.stderr, r.stderr
    # Two indexes (the old corpus in two parts, in order): the same result, from Python; a
    # relative index path is stored absolute (the cluster stage runs elsewhere).
    half = tmp_path / "half"
    half.mkdir()
    idx_a, idx_b = half / "a.near", half / "b.near"
    ok("index", "build", write_jsonl(half / "a.jsonl", d["old"][:200]), "-o", idx_a, "--kind", "near")
    ok("index", "build", write_jsonl(half / "b.jsonl", d["old"][200:]), "-o", idx_b, "--kind", "near")
    wd3 = tmp_path / "wd3"
    import os

    cwd = os.getcwd()
    os.chdir(half)
    try:
        tamis.dedup.near_signatures([data], wd3, against=["a.near", "b.near"])
    finally:
        os.chdir(cwd)
    tamis.dedup.near_buckets(wd3)
    tamis.dedup.near_cluster(wd3)
    out3 = tmp_path / "two.jsonl"
    tamis.dedup.near_filter([data], wd3, str(out3))
    assert out3.read_text() == d["one_run"]
    with pytest.raises(tamis.ConfigError, match="verify is a single-process option"):
        tamis.dedup.near_signatures([data], tmp_path / "wd4", against=[str(idx_a)], verify=True)
    # A truncated hits file (a killed task, a full disk) is an error naming it.
    hits = wd / "hits" / "r00001.bin"
    hits.write_bytes(hits.read_bytes()[:-5])
    r = run("dedup", "near", "cluster", "--workdir", wd)
    assert r.returncode != 0 and str(hits) in r.stderr and "truncated" in r.stderr, r.stderr

    pytest.importorskip("datatrove")
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from tamis.datatrove import NearDedupBuckets, NearDedupCluster, NearDedupFilter, NearDedupSignature

    def pipeline(steps: list, tasks: int, name: str) -> None:
        LocalPipelineExecutor(steps, tasks=tasks, workers=1, logging_dir=str(tmp_path / "logs" / name)).run()

    dwd = tmp_path / "dwd"
    sig = NearDedupSignature(str(dwd), batch_size=64, threads=1, against=[str(d["index"])])
    pipeline([JsonlReader(str(data)), sig], 2, "sig")
    pipeline([NearDedupBuckets(str(dwd))], 3, "buckets")
    pipeline([NearDedupCluster(str(dwd))], 1, "cluster")
    kept_ids = [json.loads(line)["id"] for line in d["one_run"].splitlines()]
    for annotate in (False, True):
        dout = tmp_path / f"dout-{annotate}"
        pipeline(
            [
                JsonlReader(str(data)),
                NearDedupFilter(str(dwd), annotate=annotate),
                JsonlWriter(str(dout), compression=None),
            ],
            2,
            f"filter-{annotate}",
        )
        rows = read_folder(dout)
        if annotate:
            got = {r["id"]: r["metadata"]["dup_of"] for r in rows if "dup_of" in r["metadata"]}
            assert got == dup_of
        else:
            assert sorted(r["id"] for r in rows) == sorted(kept_ids)


def lines_corpus(tmp: Path) -> tuple[Path, Path, list[dict[str, Any]]]:
    rng = random.Random(5)
    pool = [" ".join(words(rng, rng.randint(1, 9))) for _ in range(300)]

    def doc() -> str:
        lines = [rng.choice(pool) for _ in range(rng.randint(1, 12))]
        # White-space variants, blank and short lines.
        lines = [("  " + x.replace(" ", "  ") if rng.random() < 0.2 else x) for x in lines]
        if rng.random() < 0.3:
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(["", "}", "  "]))
        return "\n".join(lines)

    old = [{"id": f"old-{i}", "text": doc()} for i in range(150)]
    new = [{"id": f"new-{i}", "text": doc()} for i in range(300)]
    return write_jsonl(tmp / "old.jsonl", old), write_jsonl(tmp / "new.jsonl", new), old


def test_lines_against_an_index_equals_one_run_over_old_and_new(tmp_path: Path) -> None:
    old_f, new_f, old = lines_corpus(tmp_path)
    opts = ["--normalize", "whitespace", "--min-line-chars", "4"]
    both = tmp_path / "both.jsonl"
    ok("dedup", "lines", old_f, new_f, "-o", both, *opts)
    one_run = [
        line for line in both.read_text().splitlines(True) if not json.loads(line)["id"].startswith("old-")
    ]
    index = tmp_path / "old.lines"
    ok("index", "build", old_f, "-o", index, "--kind", "lines", *opts)
    out = tmp_path / "against.jsonl"
    stats_f = tmp_path / "s.json"
    ok(
        "--threads",
        "2",
        "dedup",
        "lines",
        new_f,
        "-o",
        out,
        "--against",
        index,
        *opts,
        "--stats-json",
        stats_f,
    )
    assert out.read_text().splitlines(True) == one_run
    assert json.loads(stats_f.read_text())["counters"]["indexed_lines_removed"] > 100
    py = tmp_path / "py.jsonl"
    tamis.dedup.lines(new_f, py, against=[index], normalize="whitespace", min_line_chars=4)
    assert py.read_bytes() == out.read_bytes()
    # --annotate: indexed lines stay; dup_of names every old record holding one of them.
    ann = tmp_path / "ann.jsonl"
    ok("dedup", "lines", new_f, "-o", ann, "--against", index, "--annotate", *opts)
    holders: dict[str, set[str]] = {}
    for o in old:
        for line in o["text"].split("\n"):
            if len(line) >= 4 and line.strip():
                holders.setdefault(" ".join(line.split()), set()).add(o["id"])
    for row in read_jsonl(ann):
        expected: set[str] = set()
        for line in row["text"].split("\n"):
            if len(line) >= 4:
                expected |= holders.get(" ".join(line.split()), set())
        assert set(row.get("dup_of", [])) == expected, row["id"]
    # An index of other lines is refused, naming it.
    r = run(
        "dedup", "lines", new_f, "-o", tmp_path / "x.jsonl", "--against", index, "--normalize", "whitespace"
    )
    assert r.returncode != 0 and str(index) in r.stderr and "min_line_chars 4" in r.stderr, r.stderr
    r = run("dedup", "lines", new_f, "-o", tmp_path / "x.jsonl", "--annotate")
    assert r.returncode != 0 and "--annotate needs --against" in r.stderr, r.stderr
    # The two-stage datatrove steps, 2 tasks: the same texts, the same dup_of.
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from tamis.datatrove import LineDedupFilter, LineDedupSignature

    data = tmp_path / "dt-in"
    data.mkdir()
    news = read_jsonl(new_f)
    write_jsonl(data / "a.jsonl", news[:120])
    write_jsonl(data / "b.jsonl", news[120:])
    sigs = tmp_path / "sigs"
    LocalPipelineExecutor(
        [JsonlReader(str(data)), LineDedupSignature(str(sigs), normalize="whitespace", min_line_chars=4)],
        tasks=2,
        logging_dir=str(tmp_path / "logs1"),
    ).run()
    for annotate, expected_f in ((False, out), (True, ann)):
        dt = tmp_path / f"dt-{annotate}"
        LocalPipelineExecutor(
            [
                JsonlReader(str(data)),
                LineDedupFilter(str(sigs), against=[str(index)], annotate=annotate),
                JsonlWriter(str(dt), compression=None),
            ],
            tasks=2,
            logging_dir=str(tmp_path / f"logs-{annotate}"),
        ).run()
        rows = read_folder(dt)
        expected = read_jsonl(expected_f)
        assert [(r["id"], r["text"]) for r in rows] == [(r["id"], r["text"]) for r in expected]
        if annotate:
            assert [r["metadata"].get("dup_of") for r in rows] == [r.get("dup_of") for r in expected]
    # refine: dedup_lines with against (refine's default min_line_chars is 10: set it).
    cfg = tmp_path / "refine.toml"
    cfg.write_text(
        f"inputs = [{json.dumps(str(new_f))}]\noutput = {json.dumps(str(tmp_path / 'refined'))}\n\n"
        f'[[stage]]\ntype = "dedup_lines"\nagainst = [{json.dumps(str(index))}]\n'
        'normalize = "whitespace"\nmin_line_chars = 4\n'
    )
    r = run("refine", cfg, "-q")
    assert r.returncode == 0, r.stderr
    assert _records(tmp_path / "refined" / "data") == {r["id"]: r["text"] for r in read_jsonl(out)}


def test_a_band_key_shared_by_many_indexed_documents(tmp_path: Path) -> None:
    """100 indexed copies of one text: `dup_of` names the first 32, and `--verify` still pairs
    the new copy with the first and last indexed ones, as a one-run `--verify` does."""
    rng = random.Random(2)
    text = " ".join(words(rng, 80))
    old = [{"id": f"old-{i}", "text": text} for i in range(100)]
    new = [{"id": "new-0", "text": text}, {"id": "new-1", "text": " ".join(words(rng, 80))}]
    old_f, new_f = write_jsonl(tmp_path / "old.jsonl", old), write_jsonl(tmp_path / "new.jsonl", new)
    index = tmp_path / "old.near"
    ok("index", "build", old_f, "-o", index, "--kind", "near")
    ann = tmp_path / "ann.jsonl"
    ok("dedup", "near", new_f, "-o", ann, "--against", index, "--annotate")
    rows = read_jsonl(ann)
    assert rows[0]["dup_of"] == [f"old-{i}" for i in range(32)] and "dup_of" not in rows[1]
    for extra in ([], ["--verify"]):
        out, both = tmp_path / "out.jsonl", tmp_path / "both.jsonl"
        ok("dedup", "near", new_f, "-o", out, "--against", index, *extra)
        ok("dedup", "near", old_f, new_f, "-o", both, *extra)
        assert [r["id"] for r in read_jsonl(out)] == ["new-1"]
        assert [r["id"] for r in read_jsonl(both) if r["id"].startswith("new-")] == ["new-1"]


def test_hostile_options_and_manifests_under_a_memory_limit(tmp_path: Path) -> None:
    limit = 1 << 30
    src = write_jsonl(
        tmp_path / "in.jsonl", [{"id": f"d{i}", "text": f"alpha beta gamma delta {i}"} for i in range(5)]
    )
    for flags, message in [
        (["--kind", "near", "--num-perm", "100000000"], "--num-perm must be from 1 to 8192"),
        (["--kind", "near", "--bands", "1000000"], "--bands must be from 1 to 112"),
        (["--kind", "near", "--bands", "20"], "--bands × --rows = 20 × 8 needs 160 permutations"),
        (["--kind", "near", "--ngram", "99999999999"], "--ngram must be"),
        (["--kind", "near", "--normalize", "simple"], "--normalize is only used with --kind exact or lines"),
        (["--kind", "lines", "--seed", "3"], "--seed is only used with --kind near"),
        (["--kind", "exact", "--min-line-chars", "4"], "--min-line-chars is only used with --kind lines"),
    ]:
        r = run("index", "build", src, "-o", tmp_path / "x.idx", *flags, limit=limit)
        assert r.returncode != 0 and message in r.stderr, (flags, r.stderr)
        assert not (tmp_path / "x.idx").exists()
    index = tmp_path / "n.near"
    ok("index", "build", src, "-o", index, "--kind", "near")
    good = (index / "index.json").read_text()
    out = tmp_path / "o.jsonl"
    # Absurd MinHash parameters or source counts in the manifest are refused before any
    # signature or filter is sized from them.
    for edit, message in [
        (lambda m: m["minhash"].update(num_perm=1 << 40), "inconsistent"),
        (lambda m: m["minhash"].update(bands=1 << 40, rows=1 << 40), "inconsistent"),
        (lambda m: m["segments"][0]["sources"][0].update(records=1 << 50), "lists sources of"),
    ]:
        m = json.loads(good)
        edit(m)
        (index / "index.json").write_text(json.dumps(m))
        for extra in ([], ["--verify"]):
            r = run("dedup", "near", src, "-o", out, "--against", index, *extra, limit=limit)
            assert r.returncode != 0 and message in r.stderr and str(index) in r.stderr, r.stderr
            assert not out.exists()
        r = run("index", "add", index, src, limit=limit)
        assert r.returncode != 0 and message in r.stderr, r.stderr
    # An index of the format before packed keys is named and refused.
    m = json.loads(good)
    m["version"] = 1
    (index / "index.json").write_text(json.dumps(m))
    r = run("dedup", "near", src, "-o", out, "--against", index, limit=limit)
    assert r.returncode != 0 and "version 1" in r.stderr and "build the index again" in r.stderr, r.stderr
