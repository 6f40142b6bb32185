"""Persistent indexes (`tamis index`), decontamination (`tamis decontaminate`) and exact dedup
against an index (`dedup exact --against`): planted matches, agreement with one-run dedup,
determinism across threads, segments and surfaces, and damaged or mismatched indexes."""

from __future__ import annotations

import json
import random
import resource
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import tamis
import tamis.polars  # noqa: F401  (registers pl.col(...).tamis)
from conftest import TAMIS

N = 13
# A vocabulary large enough that random text never repeats 13 words of an evaluation item.
# Letters only: near dedup's normalization maps digits to 0.
VOCAB = sorted({"".join(random.Random(k).choices("abcdefghijklmnopqrstuvwxyz", k=7)) for k in range(5000)})
CJK = [chr(0x4E00 + i) for i in range(3000)]


def item_words(rng: random.Random, cjk: bool) -> list[str]:
    if cjk:
        return [rng.choice(CJK) for _ in range(rng.randint(14, 40))]
    return [rng.choice(VOCAB) for _ in range(rng.randint(14, 40))]


def make_evals(rng: random.Random, n: int) -> list[dict[str, Any]]:
    items = []
    for i in range(n):
        cjk = i % 5 == 4
        q = item_words(rng, cjk)
        choices = [" ".join(item_words(rng, False)[:4]) for _ in range(3)]
        join = "" if cjk else " "
        items.append(
            {
                "qid": f"item-{i}",
                "question": join.join(q) + ("？" if cjk else "?"),
                "choices": choices,
                "answer": i % 3,
            }
        )
    return items


def oracle_words(text: str) -> list[str]:
    """The words of the generated texts (ASCII words, punctuation, CJK), written naively:
    lowercase, punctuation removed, split on spaces, every CJK character a word."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    out: list[str] = []
    for tok in text.split():
        word = ""
        for c in tok:
            if 0x4E00 <= ord(c) <= 0x9FFF:
                if word:
                    out.append(word)
                    word = ""
                out.append(c)
            else:
                word += c
        if word:
            out.append(word)
    return out


def item_text(item: dict[str, Any]) -> str:
    """The text indexed with fields question,choices,answer."""
    return "\n".join([item["question"], *item["choices"], str(item["answer"])])


def disguise(rng: random.Random, words: list[str]) -> str:
    """The words as a document might hold them: other case, punctuation, line breaks."""
    out = []
    for w in words:
        if rng.random() < 0.3:
            w = w.upper()
        if rng.random() < 0.2:
            w += rng.choice([",", ".", "!", ";"])
        out.append(w)
    if all(0x4E00 <= ord(w[0]) <= 0x9FFF for w in words):
        return "".join(out)
    return rng.choice([" ", "  ", "\n"]).join(out)


def make_corpus(
    rng: random.Random, evals: list[dict[str, Any]], n: int
) -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    docs, planted = [], {}
    for i in range(n):
        body = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(5, 120)))
        did = f"doc-{i}"
        if i % 4 == 0:
            item = rng.choice(evals)
            words = oracle_words(item_text(item))
            start = rng.randrange(0, len(words) - N + 1)
            piece = disguise(rng, words[start : start + N])
            cut = rng.randint(0, len(body))
            # Whole words around the planted piece.
            left, right = body[:cut].rsplit(" ", 1)[0] if " " in body[:cut] else "", body[cut:]
            right = right.split(" ", 1)[1] if " " in right else ""
            body = f"{left} {piece} {right}"
            planted[did] = {item["qid"]}
        docs.append({"id": did, "text": body, "n": i})
    return docs, planted


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def run(*args: Any, limit: int | None = None) -> subprocess.CompletedProcess[str]:
    def pre() -> None:
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [*TAMIS, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=pre if limit else None,
    )


def ok(*args: Any) -> subprocess.CompletedProcess[str]:
    r = run(*args)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rng = random.Random(7)
    tmp = tmp_path_factory.mktemp("decont")
    evals = make_evals(rng, 300)
    docs, planted = make_corpus(rng, evals, 1600)
    parts = [write_jsonl(tmp / f"eval-{k}.jsonl", evals[k * 30 : (k + 1) * 30]) for k in range(10)]
    train = write_jsonl(tmp / "train.jsonl", docs)
    index = tmp / "evals.idx"
    ok("index", "build", *parts, "-o", index, "--fields", "question,choices,answer", "--id-key", "qid")
    return {
        "tmp": tmp,
        "evals": evals,
        "docs": docs,
        "planted": planted,
        "parts": parts,
        "train": train,
        "index": index,
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_folder(folder: Path) -> list[dict[str, Any]]:
    """The records of a datatrove writer's output folder, file by file in name order."""
    return [row for f in sorted(folder.glob("*.jsonl")) for row in read_jsonl(f)]


def test_every_planted_ngram_is_found_and_every_match_is_real(data: dict[str, Any]) -> None:
    tmp = data["tmp"]
    out, matches = tmp / "clean.jsonl", tmp / "matches.jsonl"
    r = ok(
        "decontaminate",
        data["train"],
        "-o",
        out,
        "--against",
        data["index"],
        "--matches",
        matches,
        "--stats-json",
        tmp / "s.json",
    )
    found: dict[str, set[str]] = {}
    by_id = {d["id"]: d for d in data["docs"]}
    items = {e["qid"]: e for e in data["evals"]}
    for m in read_jsonl(matches):
        found.setdefault(m["id"], set()).add(m["item"])
        doc = by_id[m["id"]]["text"]
        # The span is the document's text, on character boundaries (offsets are UTF-8 bytes).
        raw = doc.encode("utf-8")
        assert raw[m["start"] : m["end"]].decode("utf-8") == m["text"]
        # Read back: the matched words are a run of at least 13 words of the item.
        words, item = oracle_words(m["text"]), oracle_words(item_text(items[m["item"]]))
        assert len(words) >= N
        assert any(
            words[k : k + N] == item[j : j + N]
            for k in range(len(words) - N + 1)
            for j in range(len(item) - N + 1)
        )
    # Recall 1.0, and nothing beyond the planted matches (the vocabulary makes chance ones impossible).
    assert found == data["planted"]
    kept = {d["id"] for d in read_jsonl(out)}
    assert kept == {d["id"] for d in data["docs"]} - set(data["planted"])
    stats = json.loads((tmp / "s.json").read_text())
    assert stats["counters"]["contaminated_documents"] == len(data["planted"])
    assert stats["documents_removed"] == {"contaminated": len(data["planted"])}
    assert "removed 400" in r.stderr


def test_spans_mode_cuts_whole_ngrams_and_keeps_the_rest(data: dict[str, Any]) -> None:
    tmp = data["tmp"]
    out = tmp / "spans.jsonl"
    ok("decontaminate", data["train"], "-o", out, "--against", data["index"], "--mode", "spans")
    rows = {d["id"]: d for d in read_jsonl(out)}
    for d in data["docs"]:
        if d["id"] not in data["planted"]:
            # Untouched records are written back as they were.
            assert rows[d["id"]] == d
            continue
        cut = rows[d["id"]]["text"]
        assert len(cut) < len(d["text"])
        # No indexed n-gram is left, and what is left is the document's own text.
        assert tamis.index.matches(cut, data["index"]) == []
        # One planted piece: the result is the document with one stretch taken out.
        a = next((k for k, (x, y) in enumerate(zip(cut, d["text"], strict=False)) if x != y), len(cut))
        assert d["text"].endswith(cut[a:])


def test_an_index_built_in_steps_gives_the_same_bytes_for_any_thread_count(data: dict[str, Any]) -> None:
    tmp, parts = data["tmp"], data["parts"]
    stepwise = tmp / "steps.idx"
    ok("index", "build", parts[0], "-o", stepwise, "--fields", "question,choices,answer", "--id-key", "qid")
    for p in parts[1:]:
        ok("index", "add", stepwise, p, "--id-key", "qid")
    info = tamis.index.info(stepwise)
    one = tamis.index.info(data["index"])
    # More than 8 segments were merged into one along the way.
    assert info["segments"] < len(parts) and info["records"] == one["records"] == 300
    assert info["entries"] == one["entries"]
    outputs = []
    for index, threads in [(data["index"], 1), (data["index"], 3), (stepwise, 2)]:
        out, matches = tmp / f"o-{threads}.jsonl", tmp / f"m-{threads}.jsonl"
        ok(
            "--threads",
            threads,
            "decontaminate",
            data["train"],
            "-o",
            out,
            "--against",
            index,
            "--matches",
            matches,
        )
        outputs.append(
            (
                out.read_bytes(),
                matches.read_bytes().replace(str(stepwise).encode(), str(data["index"]).encode()),
            )
        )
    assert outputs[0] == outputs[1] == outputs[2]


def test_python_polars_and_cli_agree(data: dict[str, Any]) -> None:
    tmp = data["tmp"]
    cli_out, py_out = tmp / "cli.jsonl", tmp / "py.jsonl"
    ok("decontaminate", data["train"], "-o", cli_out, "--against", data["index"])
    stats = tamis.decontaminate(data["train"], py_out, against=[data["index"]], threads=2)
    assert py_out.read_bytes() == cli_out.read_bytes()
    assert stats["counters"]["contaminated_documents"] == len(data["planted"])
    df = pl.read_ndjson(data["train"])
    mask = df.select(pl.col("text").tamis.contaminated(data["index"])).to_series()
    assert set(df.filter(mask)["id"]) == set(data["planted"])
    assert tamis.index.contaminated(list(df["text"][:8]), data["index"]) == [
        d in data["planted"] for d in df["id"][:8]
    ]


def test_exact_against_an_index_equals_one_run_over_old_and_new(tmp_path: Path) -> None:
    rng = random.Random(3)
    texts = [" ".join(rng.choice(VOCAB) for _ in range(rng.randint(1, 30))) for _ in range(400)]
    old = [{"id": f"old-{i}", "text": rng.choice(texts)} for i in range(300)]
    new = []
    for i in range(500):
        t = rng.choice(texts)
        if rng.random() < 0.3:
            t = "  " + t.replace(" ", "\n ") + " "  # the same under whitespace normalization
        new.append({"id": f"new-{i}", "text": t})
    old_f, new_f = write_jsonl(tmp_path / "old.jsonl", old), write_jsonl(tmp_path / "new.jsonl", new)
    both = tmp_path / "both.jsonl"
    ok("dedup", "exact", old_f, new_f, "-o", both, "--normalize", "whitespace")
    one_run = [r for r in read_jsonl(both) if r["id"].startswith("new-")]
    index = tmp_path / "old.idx"
    ok("index", "build", old_f, "-o", index, "--kind", "exact", "--normalize", "whitespace")
    against = tmp_path / "against.jsonl"
    r = ok(
        "dedup",
        "exact",
        new_f,
        "-o",
        against,
        "--normalize",
        "whitespace",
        "--against",
        index,
        "--stats-json",
        tmp_path / "s.json",
    )
    assert read_jsonl(against) == one_run, r.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["documents_removed"]["indexed_duplicate"] > 50
    # --annotate keeps them, naming the indexed records (all of them) they duplicate.
    ann = tmp_path / "ann.jsonl"
    ok("dedup", "exact", new_f, "-o", ann, "--normalize", "whitespace", "--against", index, "--annotate")
    old_ids: dict[str, list[str]] = {}
    for o in old:
        old_ids.setdefault(" ".join(o["text"].split()), []).append(o["id"])
    annotated = read_jsonl(ann)
    assert len(annotated) == len(one_run) + stats["documents_removed"]["indexed_duplicate"]
    for row in annotated:
        assert row.get("dup_of") == old_ids.get(" ".join(row["text"].split()))
    # Python and the in-memory mask say the same.
    py = tmp_path / "py.jsonl"
    tamis.dedup.exact(new_f, py, normalize="whitespace", against=[index])
    assert py.read_bytes() == against.read_bytes()
    mask = tamis.dedup.exact_keep_mask([n["text"] for n in new], normalize="whitespace", against=[index])
    assert [n["id"] for n, m in zip(new, mask, strict=True) if m] == [r["id"] for r in one_run]
    # The two-stage datatrove steps, with 2 tasks: the same kept documents, the same dup_of.
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from tamis.datatrove import ExactDedupFilter, ExactDedupSignature

    data = tmp_path / "dt-in"
    data.mkdir()
    write_jsonl(data / "a.jsonl", new[:250])
    write_jsonl(data / "b.jsonl", new[250:])
    sigs = tmp_path / "sigs"
    LocalPipelineExecutor(
        [JsonlReader(str(data)), ExactDedupSignature(str(sigs), normalize="whitespace")],
        tasks=2,
        logging_dir=str(tmp_path / "logs1"),
    ).run()
    for annotate in (False, True):
        out = tmp_path / f"dt-{annotate}"
        LocalPipelineExecutor(
            [
                JsonlReader(str(data)),
                ExactDedupFilter(str(sigs), against=[str(index)], annotate=annotate),
                JsonlWriter(str(out), compression=None),
            ],
            tasks=2,
            logging_dir=str(tmp_path / f"logs-{annotate}"),
        ).run()
        rows = read_folder(out)
        if annotate:
            assert {r["id"]: r["metadata"].get("dup_of") for r in rows} == {
                r["id"]: r.get("dup_of") for r in annotated
            }
        else:
            assert [r["id"] for r in rows] == [r["id"] for r in one_run]


def test_damaged_or_mismatched_indexes_are_errors_naming_the_file(
    data: dict[str, Any], tmp_path: Path
) -> None:
    import shutil

    def copy() -> Path:
        d = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(data["index"], d)
        return d

    out = tmp_path / "out.jsonl"

    def fails(index: Path, message: str, *extra: Any) -> None:
        r = run("decontaminate", data["train"], "-o", out, "--against", index, *extra)
        assert r.returncode != 0 and message in r.stderr, r.stderr
        assert not out.exists()

    d = copy()
    keys = d / "seg-000000.keys"
    keys.write_bytes(keys.read_bytes()[:-5])
    fails(d, f"{keys}: ")
    fails(d, "truncated")
    d = copy()
    bucket_dir = d / "seg-000000.dir"
    raw = bytearray(bucket_dir.read_bytes())
    raw[10] ^= 1
    bucket_dir.write_bytes(bytes(raw))
    fails(d, f"{bucket_dir}: checksum")
    d = copy()
    (d / "seg-000000.names").unlink()
    fails(d, "seg-000000.names: missing")
    d = copy()
    m = json.loads((d / "index.json").read_text())
    m["segments"][0]["name"] = "../../outside"
    (d / "index.json").write_text(json.dumps(m))
    fails(d, "is not one tamis writes")
    d = copy()
    (d / "index.json").write_text("{")
    fails(d, "index.json: not a valid index manifest")
    fails(tmp_path / "nowhere", "no such index")
    exact = tmp_path / "exact.idx"
    ok("index", "build", data["train"], "-o", exact, "--kind", "exact")
    fails(exact, "an index of kind exact, but this needs kind ngram")
    r = run("dedup", "exact", data["train"], "-o", out, "--against", data["index"])
    assert r.returncode != 0 and "an index of kind ngram, but this needs kind exact" in r.stderr
    r = run("dedup", "exact", data["train"], "-o", out, "--against", exact, "--normalize", "simple")
    assert r.returncode != 0 and "built with normalize none, but this run uses simple" in r.stderr
    assert not out.exists()
    # A build into an existing index is refused and leaves it alone.
    before = sorted(p.name for p in data["index"].iterdir())
    r = run("index", "build", data["train"], "-o", data["index"])
    assert r.returncode != 0 and "already exists" in r.stderr
    assert sorted(p.name for p in data["index"].iterdir()) == before


def test_bad_records_and_hostile_options_under_a_memory_limit(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id":"a","question":"x y z","choices":["a"]}\n{"id":"b","choices":["q"]}\n')
    idx = tmp_path / "i.idx"
    r = run("index", "build", src, "-o", idx, "--fields", "question,choices", limit=1 << 30)
    assert r.returncode != 0 and f"{src}: line 2" in r.stderr, r.stderr
    assert not idx.exists()
    r = run(
        "index", "build", src, "-o", idx, "--fields", "question,choices", "--on-error", "skip", limit=1 << 30
    )
    assert r.returncode == 0, r.stderr
    assert tamis.index.info(idx)["records"] == 1
    for flags, message in [
        (["--ngram", "0"], "--ngram must be"),
        (["--ngram", "99999999999"], "--ngram must be"),
        (["--memory-limit", "1"], "--memory-limit must be"),
        (["--kind", "ngram", "--normalize", "simple"], "--normalize is only used with --kind exact"),
        (["--key", "url"], "--key is only used with --kind exact"),
    ]:
        r = run("index", "build", src, "-o", tmp_path / "x.idx", *flags, limit=1 << 30)
        assert r.returncode != 0 and message in r.stderr, (flags, r.stderr)
        assert not (tmp_path / "x.idx").exists()
    # A manifest that claims absurd sizes is refused before anything is allocated for it.
    m = json.loads((idx / "index.json").read_text())
    m["segments"][0]["entries"] = 1 << 60
    m["entries"] = 1 << 60
    (idx / "index.json").write_text(json.dumps(m))
    out = tmp_path / "o.jsonl"
    r = run("decontaminate", src, "-o", out, "--against", idx, limit=1 << 30)
    assert r.returncode != 0 and "do not agree" in r.stderr, r.stderr
    assert not out.exists()


def test_python_options_mirror_the_core(tmp_path: Path) -> None:
    from tamis.index import DecontOptions, IndexOptions

    # ngram: 13 words for an n-gram index, 5 (near dedup's shingles) for a near one.
    assert IndexOptions().ngram is None and IndexOptions().kind == "ngram"
    assert DecontOptions().mode == "drop"
    with pytest.raises(tamis.ConfigError, match="against must name at least one"):
        tamis.decontaminate(tmp_path / "x.jsonl", tmp_path / "o.jsonl")
    with pytest.raises(tamis.ConfigError, match="ngram must be"):
        tamis.index.build(tmp_path / "x.jsonl", tmp_path / "i", ngram=0)
    with pytest.raises(tamis.ConfigError, match="annotate needs against"):
        tamis.dedup.exact(tmp_path / "x.jsonl", tmp_path / "o.jsonl", annotate=True)


def _records(folder: Path) -> dict[str, str]:
    """id -> text of every JSONL record under ``folder`` (plain, .gz or .zst)."""
    import gzip

    import zstandard

    out: dict[str, str] = {}
    for p in sorted(folder.rglob("*.jsonl*")):
        raw = p.read_bytes()
        if p.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        elif p.name.endswith(".zst"):
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
        for line in raw.decode("utf-8").splitlines():
            r = json.loads(line)
            out[str(r["id"])] = r["text"]
    return out


def test_refine_stage_and_datatrove_step_do_what_the_command_does(
    data: dict[str, Any], tmp_path: Path
) -> None:
    cli = tmp_path / "cli.jsonl"
    ok("decontaminate", data["train"], "-o", cli, "--against", data["index"], "--mode", "spans")
    expected = {r["id"]: r["text"] for r in read_jsonl(cli)}
    cfg = tmp_path / "refine.toml"
    cfg.write_text(
        f"inputs = [{json.dumps(str(data['train']))}]\noutput = {json.dumps(str(tmp_path / 'refined'))}\n\n"
        f'[[stage]]\ntype = "decontaminate"\nagainst = [{json.dumps(str(data["index"]))}]\nmode = "spans"\n'
    )
    r = run("refine", cfg, "-q")
    assert r.returncode == 0, r.stderr
    assert _records(tmp_path / "refined" / "data") == expected
    report = json.loads((tmp_path / "refined" / "report.json").read_text())
    assert "contaminated" in json.dumps(report)

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from tamis.datatrove import Decontaminate

    LocalPipelineExecutor(
        [
            JsonlReader(str(data["train"].parent), glob_pattern="train.jsonl"),
            Decontaminate(against=[str(data["index"])], mode="spans"),
            JsonlWriter(str(tmp_path / "dt"), compression=None),
        ],
        tasks=1,
        logging_dir=str(tmp_path / "logs"),
    ).run()
    assert _records(tmp_path / "dt") == expected
