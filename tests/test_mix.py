"""``tamis mix``: token budgets in proportion, epochs capped with the shortfall said, records passed
through with ``metadata.source``, deterministic for a seed and any thread count."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import tamis
from conftest import TAMIS

tokenizers = pytest.importorskip("tokenizers")


def _lines() -> list[str]:
    from pydoc_data.topics import topics

    out = [line.strip() for t in topics.values() for line in t.splitlines()]
    return [line for line in out if len(line) >= 30]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """A tokenizer with a BOS template (so special tokens count), a large and a small source."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    d = tmp_path_factory.mktemp("mix")
    lines = _lines()
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=800, special_tokens=["[UNK]", "<s>"]))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.save(str(d / "t.json"))
    big, small = lines[: len(lines) - 300], lines[len(lines) - 300 :]
    (d / "big").mkdir()
    for part in range(2):
        with open(d / "big" / f"part-{part}.jsonl", "w") as f:
            for i, text in enumerate(big[part::2]):
                f.write(json.dumps({"id": f"b{part}-{i}", "text": text, "n": i}) + "\n")
    with open(d / "small.jsonl", "w") as f:
        for text in small:
            f.write(json.dumps({"text": text}) + "\n")  # no ids: generated ones are added
    return {"dir": d, "tok": d / "t.json", "big": d / "big", "small": d / "small.jsonl"}


def _mix(corpus, out: Path, weights=(3, 1), **kw):
    return tamis.mix.mix(
        {"new": (corpus["big"], weights[0]), "replay": (corpus["small"], weights[1])},
        out,
        tokenizer=corpus["tok"],
        **kw,
    )


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_token_counts_are_the_tokenizers(corpus, tmp_path):
    m = _mix(corpus, tmp_path / "o.jsonl", tokens=10_000)
    tok = tokenizers.Tokenizer.from_file(str(corpus["tok"]))
    small = [r["text"] for r in _rows(corpus["small"])]
    want = sum(len(e.ids) for e in tok.encode_batch(small))
    replay = m["sources"][1]
    assert (replay["documents"], replay["tokens"]) == (len(small), want)
    # The BOS template counts: one more token per document than without special tokens.
    assert want == sum(len(e.ids) for e in tok.encode_batch(small, add_special_tokens=False)) + len(small)


def test_shares_within_one_percent_and_records_passed_through(corpus, tmp_path):
    out = tmp_path / "o.jsonl"
    m = _mix(corpus, out, tokens=40_000, seed=3)
    by = {s["name"]: s for s in m["sources"]}
    for s in by.values():
        assert abs(s["share"] - s["requested_share"]) < 0.01, s
        assert abs(s["tokens_taken"] - s["budget"]) / s["budget"] < 0.01, s
        assert s["shortfall"] == 0
    # The replay source (about 6k tokens) is repeated: whole epochs then a partial one.
    assert by["replay"]["full_epochs"] >= 1 and by["replay"]["epochs"] > 1
    rows = _rows(out)
    assert len(rows) == m["documents"] and sum(s["documents_taken"] for s in by.values()) == len(rows)
    originals = {
        r["id"]: r for r in _rows(corpus["big"] / "part-0.jsonl") + _rows(corpus["big"] / "part-1.jsonl")
    }
    for r in rows:
        source = r["metadata"].pop("source")
        assert r.pop("metadata") == {}
        if source == "new":
            assert r == originals[r["id"]]
        else:
            assert r["id"].startswith("small.jsonl:") and set(r) == {"id", "text"}
    # Interleaved, not one source after the other.
    first = [r["id"].startswith("small") for r in rows[: len(rows) // 4]]
    assert any(first) and not all(first)


def test_epochs_are_capped_and_the_shortfall_said(corpus, tmp_path):
    out = tmp_path / "o.jsonl"
    r = subprocess.run(
        [
            *TAMIS, "mix", "--source", f"new={corpus['big']}:1", "--source", f"replay={corpus['small']}:1",
            "--tokens", "60000", "--tokenizer", str(corpus["tok"]), "--max-epochs", "2", "-o", str(out),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "o.jsonl.manifest.json").read_text())
    replay = m["sources"][1]
    assert replay["full_epochs"] == 2 and replay["epochs"] == 2.0
    assert (
        replay["tokens_taken"] == 2 * replay["tokens"]
        and replay["documents_taken"] == 2 * replay["documents"]
    )
    assert replay["shortfall"] == replay["budget"] - replay["tokens_taken"] > 0
    assert "replay" in r.stderr and "ran out after 2 epochs" in r.stderr
    assert m["sources"][0]["shortfall"] == 0


def test_deterministic_for_a_seed_and_any_thread_count(corpus, tmp_path):
    outs = []
    for i, (seed, threads) in enumerate([(1, 1), (1, 2), (2, 2)]):
        out = tmp_path / f"o{i}.jsonl.gz"
        _mix(corpus, out, tokens=30_000, seed=seed, threads=threads)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]  # another seed, another partial epoch


def test_bad_options_and_files_write_nothing(corpus, tmp_path):
    out = tmp_path / "o.jsonl"
    with pytest.raises(tamis.ConfigError, match="weight"):
        _mix(corpus, out, weights=(1, 0), tokens=100)
    with pytest.raises(tamis.ConfigError, match="tokens"):
        _mix(corpus, out, tokens=0)
    with pytest.raises(tamis.ConfigError, match="max_epochs"):
        _mix(corpus, out, tokens=10, max_epochs=0)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(tamis.TamisError, match="bad.json"):
        tamis.mix.mix({"a": (corpus["small"], 1)}, out, tokens=10, tokenizer=bad)
    assert not out.exists()
    r = subprocess.run(
        [*TAMIS, "mix", "--source", "a=x.jsonl", "--tokens", "5", "--tokenizer", str(corpus["tok"]),
         "-o", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "NAME=INPUT:WEIGHT" in r.stderr
    assert not out.exists()


def test_bad_records_fail_or_are_skipped_with_rejects(corpus, tmp_path):
    src = tmp_path / "src.jsonl"
    good = [json.dumps({"id": str(i), "text": t}) for i, t in enumerate(_lines()[:50])]
    src.write_text("\n".join([*good[:10], "{broken", *good[10:]]) + "\n")
    out = tmp_path / "o.jsonl"
    with pytest.raises(tamis.TamisError, match=r"src.jsonl.*line 11"):
        tamis.mix.mix({"a": (src, 1)}, out, tokens=100, tokenizer=corpus["tok"])
    assert not out.exists()
    rejects = tmp_path / "rejects.jsonl"
    m = tamis.mix.mix(
        {"a": (src, 1)},
        out,
        tokens=10**6,
        max_epochs=2,
        tokenizer=corpus["tok"],
        on_error="skip",
        rejects=rejects,
    )
    assert m["records_skipped"] == {"invalid_json": 1}
    assert [json.loads(x)["line"] for x in rejects.read_text().splitlines()] == [11]  # once, not per epoch
    assert m["sources"][0]["documents_taken"] == 100


def test_mix_straight_into_megatron_shards(corpus, tmp_path):
    from tamis.tokenize import TokenizeOptions

    out = tmp_path / "shards"
    r = tamis.mix.mix_to_shards(
        {"new": (corpus["big"], 3), "replay": (corpus["small"], 1)},
        out,
        tokens=20_000,
        tokenizer=corpus["tok"],
        tokenize=TokenizeOptions(format="megatron", max_shard_tokens=8_000),
    )
    mix, shards = r["mix"], r["shards"]
    # The shards hold exactly the documents and tokens the mix took, in several shards.
    assert (shards["documents"], shards["tokens"]) == (mix["documents"], mix["tokens"])
    assert len(shards["shards"]) >= 2
    sizes = sum((out / f"{s['name']}.bin").stat().st_size for s in shards["shards"])
    assert sizes == 2 * shards["tokens"]  # uint16 ids for an 800-token vocabulary
    assert json.loads((out / "mix.json").read_text()) == mix
    assert not (out / ".tamis-mix.jsonl.zst").exists()
    # The same as mixing to JSONL, then tokenizing.
    jsonl = tmp_path / "m.jsonl"
    _mix(corpus, jsonl, tokens=20_000)
    again = tamis.tokenize.tokenize(
        [jsonl], tmp_path / "t", tokenizer=corpus["tok"], format="megatron", max_shard_tokens=8_000
    )
    for a, b in zip(shards["shards"], again["shards"], strict=True):
        assert (out / f"{a['name']}.bin").read_bytes() == (tmp_path / "t" / f"{b['name']}.bin").read_bytes()
