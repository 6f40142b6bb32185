"""``tamis.embed.freeze_old_rows``: continued training of tiny randomly initialized Llama-style
models (64 ids, extended to 80) must leave every old row of the input embedding and lm_head
bit-identical, whatever the optimizer, and move the new rows."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from tamis.embed import freeze_old_rows  # noqa: E402

OLD, NEW, HIDDEN = 64, 80, 16


def config(tied: bool):
    return transformers.LlamaConfig(
        vocab_size=OLD,
        hidden_size=HIDDEN,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
        tie_word_embeddings=tied,
    )


def tiny(tied: bool = False, base: bool = False):
    """A random model with OLD ids, resized to NEW (new rows drawn at random)."""
    torch.manual_seed(0)
    cls = transformers.LlamaModel if base else transformers.LlamaForCausalLM
    model = cls(config(tied))
    model.resize_token_embeddings(NEW, mean_resizing=False)
    return model


def matrices(model) -> dict:
    """The input embedding and lm_head (absent or tied: only "in"), cloned."""
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    m = {"in": emb.detach().clone()}
    if out is not None and out.weight is not emb:
        m["out"] = out.weight.detach().clone()
    return m


def batch(g):
    x = torch.randint(0, NEW, (4, 12), generator=g)
    x[:, 0], x[:, 1] = 3, OLD + 5  # both old and new ids in every row
    return x


def loss_of(model, x):
    if isinstance(model, transformers.LlamaForCausalLM):
        return model(input_ids=x, labels=x).loss
    return model(input_ids=x).last_hidden_state.pow(2).mean()


def train(model, opt, steps: int = 5, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        loss = loss_of(model, batch(g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()


def adamw(model):
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)


def assert_old_kept_new_moved(before: dict, after: dict, every_row: bool = True) -> None:
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(after[name][:OLD], before[name][:OLD]), name
        moved = (after[name][OLD:] != before[name][OLD:]).any(dim=1)
        assert moved.all() if every_row else moved.any(), (name, moved)


def assert_old_moved(before: dict, after: dict) -> None:
    for name in before:
        assert not torch.equal(after[name][:OLD], before[name][:OLD]), name


@pytest.mark.parametrize("tied", [False, True])
def test_adamw_with_weight_decay_keeps_old_rows(tied):
    model = tiny(tied)
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == tied
    before = matrices(model)
    layer = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    opt = adamw(model)
    with freeze_old_rows(model, OLD) as frozen:
        assert frozen.tied == tied and frozen.old_vocab_size == OLD
        assert frozen.nbytes == (1 if tied else 2) * OLD * HIDDEN * 4  # one copy per distinct matrix
        train(model, opt)
        after = matrices(model)
        assert_old_kept_new_moved(before, after)
        assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, layer)  # it did train
        # The gradient hook: old rows get zero gradients, so Adam's moments stay zero there.
        for w in {id(p): p for p in (model.get_input_embeddings().weight, model.lm_head.weight)}.values():
            state = opt.state[w]
            assert not state["exp_avg"][:OLD].any() and not state["exp_avg_sq"][:OLD].any()
            assert state["exp_avg"][OLD:].any()
        loss_of(model, batch(torch.Generator().manual_seed(9))).backward()
        for name, w in (("in", model.get_input_embeddings().weight), ("out", model.lm_head.weight)):
            assert not w.grad[:OLD].any(), name
            assert w.grad[OLD:].any(), name


def test_zeroed_gradients_alone_are_not_enough():
    """Why the restore is needed: AdamW's decoupled weight decay moves rows with zero gradients.
    (So ``test_adamw_with_weight_decay_keeps_old_rows`` fails for a version without it.)"""
    model = tiny()
    before = matrices(model)
    for w in (model.get_input_embeddings().weight, model.lm_head.weight):
        w.register_hook(lambda g: torch.cat([torch.zeros_like(g[:OLD]), g[OLD:]]))
    train(model, adamw(model))
    assert_old_moved(before, matrices(model))


@pytest.mark.parametrize("tied", [False, True])
def test_sgd_with_momentum_from_earlier_steps(tied):
    """Momentum built up on the old rows before the freeze, and SGD's weight decay, would move
    them; they must stay as they were when frozen."""
    model = tiny(tied)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    train(model, opt, steps=2, seed=3)  # unfrozen: momentum buffers on every row
    before = matrices(model)
    with freeze_old_rows(model, OLD):
        train(model, opt, steps=4)
        assert_old_kept_new_moved(before, matrices(model))


def test_remove_trains_old_rows_again():
    model = tiny()
    opt = adamw(model)
    frozen = freeze_old_rows(model, OLD)
    train(model, opt, steps=3)
    kept = matrices(model)
    frozen.remove()
    frozen.remove()  # idempotent
    train(model, opt, steps=3, seed=2)
    assert_old_moved(kept, matrices(model))
    loss_of(model, batch(torch.Generator().manual_seed(9))).backward()
    assert model.get_input_embeddings().weight.grad[:OLD].any()
    assert model.lm_head.weight.grad[:OLD].any()


def test_base_model_without_lm_head():
    model = tiny(base=True)
    assert model.get_output_embeddings() is None
    before = matrices(model)
    with freeze_old_rows(model, OLD) as frozen:
        assert not frozen.tied and frozen.nbytes == OLD * HIDDEN * 4
        train(model, adamw(model), steps=3)
        assert_old_kept_new_moved(before, matrices(model))


def test_bfloat16_and_a_cast_after_freezing():
    """The copy follows the weight's dtype: f32 rows kept, the model cast to bf16, trained."""
    model = tiny()
    before = {k: v.to(torch.bfloat16) for k, v in matrices(model).items()}
    with freeze_old_rows(model, OLD):
        model.to(torch.bfloat16)
        train(model, adamw(model), steps=3)
        after = matrices(model)
    assert after["in"].dtype == torch.bfloat16
    # Weight decay alone (lr 1e-2 x 0.1) is below bf16's resolution: unseen new rows may stay.
    assert_old_kept_new_moved(before, after, every_row=False)


def test_sparse_embedding_gradients():
    class Sparse(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(NEW, HIDDEN, sparse=True)

        def get_input_embeddings(self):
            return self.embed

    torch.manual_seed(0)
    model = Sparse()
    before = model.embed.weight.detach().clone()
    opt = torch.optim.SparseAdam(model.parameters(), lr=1e-2)
    x = torch.arange(NEW)
    with freeze_old_rows(model, OLD):
        for _ in range(3):
            opt.zero_grad()
            model.embed(x).pow(2).sum().backward()
            assert model.embed.weight.grad.is_sparse
            opt.step()
        after = model.embed.weight.detach()
        assert torch.equal(after[:OLD], before[:OLD])
        assert (after[OLD:] != before[OLD:]).any(dim=1).all()
        assert not opt.state[model.embed.weight]["exp_avg"][:OLD].any()


def test_a_dropped_model_ends_the_freeze():
    model = tiny()
    frozen = freeze_old_rows(model, OLD)
    del model
    gc.collect()
    other = torch.nn.Parameter(torch.ones(3))
    other.grad = torch.ones(3)
    torch.optim.SGD([other], lr=0.5).step()  # any step: the hook finds no weight and removes itself
    assert frozen._kept == [] and frozen._handles == []
    assert torch.equal(other.detach(), torch.full((3,), 0.5))


@pytest.mark.parametrize("bad", [0, -1, NEW + 1, 1.5, True, "64", None])
def test_old_vocab_size_is_checked(bad):
    model = tiny()
    with pytest.raises(ValueError, match="old_vocab_size"):
        freeze_old_rows(model, bad)


@pytest.mark.parametrize("edge", [1, NEW])
def test_old_vocab_size_bounds_are_accepted(edge):
    freeze_old_rows(tiny(), edge).remove()


def test_model_without_input_embeddings():
    class NoEmbeddings(torch.nn.Module):
        def get_input_embeddings(self):
            return None

    with pytest.raises(ValueError, match="input embeddings"):
        freeze_old_rows(NoEmbeddings(), OLD)
    with pytest.raises(ValueError, match="input embeddings"):
        freeze_old_rows(torch.nn.Linear(2, 2), OLD)


def test_embed_imports_without_torch():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None
        import tamis.embed
        assert callable(tamis.embed.freeze_old_rows)
        try:
            tamis.embed.freeze_old_rows(object(), 1)
        except ImportError:
            print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
