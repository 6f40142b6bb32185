"""`tamis refine` ending with the `tokenize` stage: training shards of the refined corpus in
OUTPUT/tokens/, the same as `tamis tokenize` on the refined shards, and the report's section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tamis

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Path:
    from pydoc_data.topics import topics

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    t = Tokenizer(models.BPE(unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.train_from_iterator(
        list(topics.values()), trainers.BpeTrainer(vocab_size=600, special_tokens=["[UNK]", "</s>"])
    )
    path = tmp_path_factory.mktemp("tok") / "t.json"
    t.save(str(path))
    return path


def _corpus(d: Path) -> Path:
    from pydoc_data.topics import topics

    d.mkdir()
    texts = list(topics.values())
    for part in range(2):
        with open(d / f"p{part}.jsonl", "w") as f:
            for i, t in enumerate(texts[part::2]):
                f.write(json.dumps({"id": f"{part}-{i}", "text": t}) + "\n")
                if i % 5 == 0:
                    f.write(json.dumps({"id": f"{part}-{i}-copy", "text": t}) + "\n")
    return d


def test_refine_writes_the_shards_tokenize_would(tmp_path, tok):
    data = _corpus(tmp_path / "data")
    config = {
        "inputs": [str(data)],
        "output": str(tmp_path / "out"),
        "stage": [
            {"type": "dedup_exact"},
            {"type": "tokenize", "tokenizer": str(tok), "format": "megatron", "max_shard_tokens": 20000},
        ],
    }
    report = tamis.Pipeline.from_config(config).run()
    out = tmp_path / "out"
    t = report["tokens"]
    assert t["format"] == "megatron" and t["documents"] == report["output"]["documents"]
    assert sum(t["lengths"]["documents"]) == t["documents"] and len(t["shards"]) >= 2
    assert [s["name"] for s in report["stages"]] == ["dedup_exact"]  # tokenize is not a filter
    # The same shards as `tamis tokenize` over the refined data.
    again = tamis.tokenize.tokenize(
        sorted(str(p) for p in (out / "data").iterdir()),
        tmp_path / "t",
        tok,
        format="megatron",
        max_shard_tokens=20000,
    )
    assert again["tokens"] == t["tokens"]
    for s in again["shards"]:
        for ext in (".bin", ".idx"):
            assert (out / "tokens" / f"{s['name']}{ext}").read_bytes() == (
                tmp_path / "t" / f"{s['name']}{ext}"
            ).read_bytes()
    html = (out / "report.html").read_text()
    assert 'id="token-shards"' in html and 'id="token-lengths"' in html
    # Run again: everything is done, the same report section comes back.
    assert tamis.Pipeline.from_config(config).run()["tokens"]["shards"] == t["shards"]


def test_tokenize_must_be_last_and_have_a_tokenizer(tmp_path, tok):
    data = _corpus(tmp_path / "data")
    base = {"inputs": [str(data)], "output": str(tmp_path / "out")}
    with pytest.raises(tamis.ConfigError, match="tokenize must be the last stage"):
        tamis.Pipeline.from_config(
            {**base, "stage": [{"type": "tokenize", "tokenizer": str(tok)}, {"type": "dedup_exact"}]}
        )
    with pytest.raises(tamis.ConfigError, match="tokenizer"):
        tamis.Pipeline.from_config({**base, "stage": [{"type": "tokenize"}]})
    with pytest.raises(tamis.ConfigError, match="no such file"):
        tamis.Pipeline.from_config(
            {**base, "stage": [{"type": "tokenize", "tokenizer": str(tmp_path / "nope.json")}]}
        )
    with pytest.raises(tamis.ConfigError, match="dtype"):
        tamis.Pipeline.from_config(
            {**base, "stage": [{"type": "tokenize", "tokenizer": str(tok), "dtype": "int8"}]}
        )
    assert not (tmp_path / "out").exists()


def test_the_datatrove_conversion_writes_the_same_shards(tmp_path, tok):
    pytest.importorskip("datatrove")
    from tamis.datatrove import run_local

    data = _corpus(tmp_path / "data")
    stages = [{"type": "dedup_exact"}, {"type": "tokenize", "tokenizer": str(tok), "format": "nanotron"}]
    config = {"inputs": [str(data)], "output": str(tmp_path / "out"), "stage": stages}
    tamis.Pipeline.from_config(config).run()
    dt_config = {**config, "output": str(tmp_path / "dt")}
    run_local(dt_config, str(tmp_path / "work"), tasks=1)
    ours = (tmp_path / "out" / "tokens" / "shard_00000.ds").read_bytes()
    theirs = (tmp_path / "dt" / "tokens" / "00000_shard_00000.ds").read_bytes()
    assert ours == theirs and len(ours) > 1000
