"""Hostile files into every reader, under a 4 GiB address-space limit: generated and mutated
JSONL, gzip, zstd, Parquet and text corpora; mutated tokenizer.json files into ``vocab extend``;
mutated safetensors headers, index files and configs into ``embed init``. Whatever the bytes,
tamis ends with 0 (valid input), 1 (a message naming the file) or 2 (a usage error naming the
option): never a panic (101), an abort (134), a kill, a traceback or a half-written output."""

from __future__ import annotations

import gzip
import json
import resource
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
import zstandard
from conftest import TAMIS, run_ok, write_parquet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MEMORY = 4 << 30
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def limited(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TAMIS, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit,
        stdin=subprocess.DEVNULL,
    )


def assert_clean(r: subprocess.CompletedProcess, *, names: str | None = None) -> None:
    assert r.returncode in (0, 1, 2), (r.returncode, r.stderr[-2000:])
    for bad in ("panicked", "Traceback", "memory allocation", "RUST_BACKTRACE"):
        assert bad not in r.stderr, r.stderr[-2000:]
    if r.returncode == 1 and names is not None:
        assert names in r.stderr, r.stderr


# --- Corpora -------------------------------------------------------------------------------------

VALID = b"".join(
    json.dumps({"id": i, "text": t, "n": i * 1.5}).encode() + b"\n"
    for i, t in enumerate(["a b c", "a b c", "d\u00e9 \u9f8d", "x" * 50, ""])
)


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "dup"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "dup":
            data[at:at] = data[at : at + draw(st.integers(1, 40))]
    return bytes(data)


def parquet_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = write_parquet(
            Path(d) / "x.parquet",
            [
                {"id": 1, "text": "a b", "q": 0.5},
                {"id": 2, "text": "a b", "q": None},
                {"id": 3, "text": "c", "q": 2.0},
            ],
        )
        return p.read_bytes()


FORMATS = {
    "jsonl": (lambda: VALID, lambda b: b),
    "jsonl.gz": (lambda: gzip.compress(VALID), lambda b: b),
    "jsonl.zst": (lambda: zstandard.ZstdCompressor().compress(VALID), lambda b: b),
    "parquet": (parquet_bytes, lambda b: b),
}


@pytest.mark.parametrize("ext", list(FORMATS))
@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_mutated_corpora_into_dedup(tmp_path, ext, on_error):
    make, _ = FORMATS[ext]
    base = make()

    @SETTINGS
    @given(data=st.one_of(mutated(base), st.binary(max_size=300)))
    def run(data: bytes) -> None:
        src = tmp_path / f"in.{ext}"
        src.write_bytes(data)
        out = tmp_path / "out.jsonl"
        out.unlink(missing_ok=True)
        extra = ["--on-error", "skip", "--rejects", tmp_path / "rej.jsonl"] if on_error == "skip" else []
        r = limited("dedup", "exact", src, "-o", out, *extra)
        assert_clean(r, names=src.name)
        if r.returncode != 0:
            assert not out.exists()

    run()


def test_mutated_text_corpora_into_vocab(tmp_path):
    pytest.importorskip("tokenizers")
    base = small_tokenizer(tmp_path / "t.json")
    text = "dit is een test van de taal\nnog een regel \u00e9\u00e8\n".encode() * 20

    @SETTINGS
    @given(data=st.one_of(mutated(text), mutated(gzip.compress(text))), gz=st.booleans())
    def run(data: bytes, gz: bool) -> None:
        src = tmp_path / ("c.txt.gz" if gz else "c.txt")
        src.write_bytes(data)
        out = tmp_path / "new.json"
        out.unlink(missing_ok=True)
        r = limited("vocab", "extend", "--tokenizer", base, "--corpus", src, "-o", out, "--new-tokens", 5)
        assert_clean(r, names=src.name)
        if r.returncode != 0:
            assert not out.exists()

    run()


# --- Tokenizers ----------------------------------------------------------------------------------


def small_tokenizer(path: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=280, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|end|>"]
    )
    t.train_from_iterator(["the cat sat on the mat with a hat"] * 20, trainer)
    path.write_text(t.to_str())
    return path


HOSTILE_VALUES = [None, -1, 2**31, 2**32 + 7, 4_000_000_000, 1e308, "x", [], {}, True, "a b c", ["a"], [1, 2]]


@st.composite
def mutated_tokenizer(draw: st.DrawFn, doc: dict) -> str:
    d = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["vocab", "merges", "model", "added", "top", "text"]))
        if (
            where == "vocab"
            and isinstance(d.get("model"), dict)
            and isinstance(d["model"].get("vocab"), dict)
        ):
            v = d["model"]["vocab"]
            key = draw(st.sampled_from(sorted(v) or ["a"]))
            v[key if draw(st.booleans()) else key + "\u0000"] = draw(st.sampled_from(HOSTILE_VALUES))
        elif where == "merges" and isinstance(d.get("model"), dict):
            m = d["model"].get("merges")
            if isinstance(m, list) and m:
                i = draw(st.integers(0, len(m) - 1))
                m[i] = draw(st.sampled_from(HOSTILE_VALUES + ["ab", "a b c d", "\u00c4 \u00c4"]))
        elif where == "model":
            key = draw(st.sampled_from(["type", "vocab", "merges", "byte_fallback", "unk_token", "dropout"]))
            if isinstance(d.get("model"), dict):
                d["model"][key] = draw(st.sampled_from(HOSTILE_VALUES + ["BPE", "WordPiece", 0.5]))
        elif where == "added":
            d["added_tokens"] = [
                {"id": draw(st.sampled_from(HOSTILE_VALUES + [0, 5, 279])), "content": "<x>", "special": True}
            ]
        elif where == "top":
            d[draw(st.sampled_from(["model", "pre_tokenizer", "normalizer", "decoder"]))] = draw(
                st.sampled_from(HOSTILE_VALUES)
            )
        else:
            text = json.dumps(d)
            at = draw(st.integers(0, len(text)))
            return text[:at]
    return json.dumps(d)


def test_mutated_tokenizers_into_vocab_extend(tmp_path):
    pytest.importorskip("tokenizers")
    base = json.loads(small_tokenizer(tmp_path / "base.json").read_text())
    corpus = tmp_path / "c.txt"
    corpus.write_text("dit is een test van de taal\n" * 40)

    @SETTINGS
    @given(text=mutated_tokenizer(base))
    def run(text: str) -> None:
        tok = tmp_path / "bad.json"
        tok.write_text(text)
        out = tmp_path / "new.json"
        out.unlink(missing_ok=True)
        r = limited("vocab", "extend", "--tokenizer", tok, "--corpus", corpus, "-o", out, "--new-tokens", 8)
        assert_clean(r, names="bad.json")
        if r.returncode != 0:
            assert not out.exists()

    run()


# --- Checkpoints ---------------------------------------------------------------------------------


def safetensors_bytes(header: dict, data: bytes, header_len: int | None = None) -> bytes:
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h) if header_len is None else header_len) + h + data


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> dict:
    """A tiny tied model and a real extension of its tokenizer, and a valid run as the baseline."""
    pytest.importorskip("tokenizers")
    d = tmp_path_factory.mktemp("embed")
    old = small_tokenizer(d / "old.json")
    corpus = d / "zh.txt"
    corpus.write_text("\u9f8d\u99ac\u7cbe\u795e \u6e2c\u8a66\u6587\u672c\n" * 40)
    new = d / "new.json"
    run_ok("-q", "vocab", "extend", "--tokenizer", old, "--corpus", corpus, "-o", new,
           "--new-tokens", 6, "--min-frequency", 1)  # fmt: skip
    rows = json.loads(old.read_text())["model"]["vocab"].__len__() + 1
    n = rows * 4 * 4
    header = {
        "__metadata__": {"format": "pt"},
        "model.embed_tokens.weight": {"dtype": "F32", "shape": [rows, 4], "data_offsets": [0, n]},
        "model.norm.weight": {"dtype": "F32", "shape": [4], "data_offsets": [n, n + 16]},
    }
    data = struct.pack(f"<{rows * 4 + 4}f", *[(i % 7) / 7 for i in range(rows * 4 + 4)])
    config = {"vocab_size": rows, "tie_word_embeddings": True, "hidden_size": 4}
    m = d / "model"
    m.mkdir()
    (m / "config.json").write_text(json.dumps(config))
    (m / "model.safetensors").write_bytes(safetensors_bytes(header, data))
    run_ok("-q", "embed", "init", "--model", m, "--old-tokenizer", old, "--new-tokenizer", new,
           "-o", d / "ok")  # fmt: skip
    return {"old": old, "new": new, "header": header, "data": data, "config": config}


@st.composite
def mutated_checkpoint(draw: st.DrawFn, header: dict, data: bytes, config: dict):
    h = json.loads(json.dumps(header))
    cfg = dict(config)
    body, header_len, index = data, None, None
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["shape", "dtype", "offsets", "header_len", "body", "config", "index"]))
        name = draw(st.sampled_from(["model.embed_tokens.weight", "model.norm.weight"]))
        if what == "shape":
            h[name]["shape"] = draw(
                st.sampled_from([[], [0, 4], [2**40, 4], [4, 2**40], [-1, 4], [3], [1, 2, 3], "x"])
            )
        elif what == "dtype":
            h[name]["dtype"] = draw(st.sampled_from(["I64", "F64", "BF16", "U8", "XX", 3]))
        elif what == "offsets":
            h[name]["data_offsets"] = draw(
                st.sampled_from(
                    [[0, 2**62], [10, 5], [-8, 8], [0, len(data) + 4], [0], "0", [2**64, 2**64 + 8]]
                )
            )
        elif what == "header_len":
            header_len = draw(st.sampled_from([0, 7, 2**40, 2**63, 2**64 - 1]))
        elif what == "body":
            body = body[: draw(st.integers(0, len(body)))]
        elif what == "config":
            cfg[draw(st.sampled_from(["tie_word_embeddings", "vocab_size"]))] = draw(
                st.sampled_from(HOSTILE_VALUES)
            )
        else:
            index = draw(
                st.sampled_from(
                    [
                        {"weight_map": {"model.embed_tokens.weight": "missing.safetensors"}},
                        {"weight_map": {"model.embed_tokens.weight": "../../etc/passwd"}},
                        {"weight_map": []},
                        {"weight_map": {"model.embed_tokens.weight": "model.safetensors", "x": 5}},
                        "not an index",
                    ]
                )
            )
    return h, body, header_len, cfg, index


def test_mutated_checkpoints_into_embed_init(tmp_path, model):
    @SETTINGS
    @given(case=mutated_checkpoint(model["header"], model["data"], model["config"]))
    def run(case) -> None:
        h, body, header_len, cfg, index = case
        m = tmp_path / "m"
        if m.exists():
            for f in m.iterdir():
                f.unlink()
        else:
            m.mkdir()
        (m / "config.json").write_text(json.dumps(cfg))
        (m / "model.safetensors").write_bytes(safetensors_bytes(h, body, header_len))
        if index is not None:
            (m / "model.safetensors.index.json").write_text(json.dumps(index))
        out = tmp_path / "out"
        r = limited(
            "embed",
            "init",
            "--model",
            m,
            "--old-tokenizer",
            model["old"],
            "--new-tokenizer",
            model["new"],
            "-o",
            out,
        )
        assert_clean(r)
        if r.returncode != 0:
            assert not out.exists()
        else:
            import shutil

            shutil.rmtree(out)
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tamis-embed-")]

    run()
