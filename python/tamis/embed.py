"""Embedding rows for the new tokens of an extended vocabulary: zip-tie and its baselines.

For a new token ``t``, ``D(t)`` is the list of ids the **old** tokenizer's BPE model gives for
``t``'s vocab string, run on the model directly (no normalizer, pre-tokenizer or post-processor,
so no ``▁`` or BOS is added), unknown ids dropped. Zip-tie sets the new input row to the mean of
the old input rows of ``D(t)`` (summed in float32 in the order of ``D(t)``, stored in the
matrix's dtype); the output row of an untied model is the same mean over lm_head rows
(``output_init="mean"``), the first piece's row (``"first"``) or a copy of the new input row
(``"tie"``). Baselines: ``"mean"`` (mean of all old rows), ``"mean-resizing"`` (transformers'
``mean_resizing`` with a diagonal covariance), ``"random"`` (N(0, 0.02²)). Old rows stay
bit-identical; rows are padded to a multiple of ``pad_to_multiple_of``.

:func:`init_checkpoint` works on a safetensors model directory (the Rust core, streaming, no
torch needed); :func:`init_embeddings` resizes an in-memory ``transformers`` model;
:func:`freeze_old_rows` makes continued training update only the new rows (old rows of the
input embedding and lm_head stay bit-identical, whatever the optimizer);
:func:`bits_per_byte` evaluates a model on held-out text (torch). See docs/embed.md.
"""

from __future__ import annotations

import json
import math
import os
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tamis import _core
from tamis._options import build, default, to_json
from tamis.vocab import PathLike, _tokenizer_json

Method = Literal["ziptie", "mean", "mean-resizing", "random"]
OutputInit = Literal["mean", "first", "tie"]


@dataclass(frozen=True)
class InitOptions:
    """How new rows are made (``tamis_core::embed::InitConfig``): ``method``, ``output_init``
    (untied models' lm_head rows), ``pad_to_multiple_of`` (rows are padded up to a multiple of
    it), ``seed`` (``mean-resizing`` and ``random``), ``rescale_norm`` (scale each new row to
    the median norm of the old rows of its matrix)."""

    method: Method = default("init", "method")
    output_init: OutputInit = default("init", "output_init")
    pad_to_multiple_of: int = default("init", "pad_to_multiple_of")
    seed: int = default("init", "seed")
    rescale_norm: bool = default("init", "rescale_norm")


def init_checkpoint(
    model: PathLike,
    old_tokenizer: Any,
    new_tokenizer: Any,
    output: PathLike,
    options: InitOptions | None = None,
    *,
    embed_name: str | None = None,
    lm_head_name: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Write a copy of the model directory ``model`` (``config.json`` and safetensors weights)
    to ``output`` with embeddings resized for ``new_tokenizer``, an extension of
    ``old_tokenizer`` (paths to ``tokenizer.json`` or ``tokenizers.Tokenizer`` objects), which
    is written as its ``tokenizer.json``. ``output`` must not exist (or be empty); it appears
    complete or not at all. Returns the summary. Raises :class:`tamis.TamisError` (``.kind``:
    ``not_an_extension``, ``too_few_rows``, ``unknown_tensor``, ``wrong_tensor``, ``missing_file``,
    ``pickle_checkpoint``, ``invalid_checkpoint``, ...). Keywords: :class:`InitOptions` fields.
    """
    old, old_name = _tokenizer_json(old_tokenizer, "old_tokenizer")
    new, new_name = _tokenizer_json(new_tokenizer, "new_tokenizer")
    summary = _core.embed_init_checkpoint(
        os.fspath(model),
        (old_name, old),
        (new_name, new),
        os.fspath(output),
        to_json(build(InitOptions, options, kwargs)),
        (embed_name, lm_head_name),
    )
    result: dict[str, Any] = json.loads(summary)
    return result


def _raw(weight: Any) -> tuple[bytes, str]:
    """Little-endian bytes of a 2-D floating tensor (bfloat16 has no numpy type: view as int16)."""
    import torch

    t = weight.detach().to("cpu").contiguous()
    names = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
    if t.dtype not in names:
        raise TypeError(f"embedding dtype {t.dtype}: only float32, float16 and bfloat16 are supported")
    as_int = t.view(torch.int32 if t.dtype == torch.float32 else torch.int16)
    return as_int.numpy().tobytes(), names[t.dtype]


def _tensor(data: bytes, like: Any, rows: int) -> Any:
    import torch

    w = like.weight if hasattr(like, "weight") else like
    t = torch.frombuffer(bytearray(data), dtype=w.dtype).view(rows, w.shape[1])
    return t.to(w.device)


def init_embeddings(
    model: Any,
    old_tokenizer: Any,
    new_tokenizer: Any,
    method: Method | None = None,
    *,
    options: InitOptions | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Resize a ``transformers`` model's embeddings in place for ``new_tokenizer`` (an extension
    of ``old_tokenizer``) and fill the new rows as :func:`init_checkpoint` does: the same rows,
    bit for bit. Tied models keep one matrix. Returns the summary."""
    import torch

    old, old_name = _tokenizer_json(old_tokenizer, "old_tokenizer")
    new, new_name = _tokenizer_json(new_tokenizer, "new_tokenizer")
    emb = model.get_input_embeddings()
    out = model.get_output_embeddings()
    tied = out is None or out.weight.data_ptr() == emb.weight.data_ptr()
    rows, cols = emb.weight.shape
    data, dtype = _raw(emb.weight)
    out_data = None if tied else _raw(out.weight)[0]
    if method is not None:
        kwargs["method"] = method
    n, a, b, summary = _core.embed_rows(
        (old_name, old),
        (new_name, new),
        (data, out_data),
        (dtype, rows, cols),
        to_json(build(InitOptions, options, kwargs)),
    )
    if n != rows:
        # No init of its own: every row is overwritten below.
        model.resize_token_embeddings(n, mean_resizing=False)
    with torch.no_grad():
        emb = model.get_input_embeddings()
        emb.weight.copy_(_tensor(a, emb, n))
        if b is not None:
            out = model.get_output_embeddings()
            out.weight.copy_(_tensor(b, out, n))
        elif out is not None and tied:
            model.tie_weights()
    model.config.vocab_size = n
    result: dict[str, Any] = json.loads(summary)
    result["tied"] = tied
    return result


class FrozenRows:
    """Handle returned by :func:`freeze_old_rows`: ``old_vocab_size``, ``tied`` (input embedding
    and lm_head are one Parameter, frozen once), ``nbytes`` (memory of the kept copies).
    :meth:`remove` ends the freeze (also on leaving a ``with`` block); :meth:`restore` writes
    the old rows back, for an optimizer that is not a ``torch.optim.Optimizer``."""

    def __init__(self, old_vocab_size: int, weights: Sequence[Any], tied: bool) -> None:
        import torch
        from torch.optim.optimizer import register_optimizer_step_post_hook

        n = old_vocab_size
        self.old_vocab_size = n
        self.tied = tied
        # (weak reference to the weight, exact copy of its old rows): the global step hook must
        # not keep a dropped model alive; it removes itself once every weight is gone.
        self._kept: list[tuple[weakref.ref[Any], Any]] = []
        self._handles: list[Any] = []

        def zero_old_rows(grad: Any) -> Any:
            if grad.layout == torch.sparse_coo:  # nn.Embedding(sparse=True)
                g = grad.coalesce()
                keep = g.indices()[0] >= n
                return torch.sparse_coo_tensor(
                    g.indices()[:, keep], g.values()[keep], g.shape, is_coalesced=True, check_invariants=False
                )
            grad = grad.clone()
            grad[:n] = 0
            return grad

        for w in weights:
            self._kept.append((weakref.ref(w), w.detach()[:n].clone()))
            if w.requires_grad:
                self._handles.append(w.register_hook(zero_old_rows))
        self.nbytes = sum(c.numel() * c.element_size() for _, c in self._kept)
        self._handles.append(register_optimizer_step_post_hook(self._after_step))

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.restore()

    def restore(self) -> None:
        """Copy the kept old rows back into each frozen weight (under ``torch.no_grad()``)."""
        import torch

        alive = False
        with torch.no_grad():
            for i, (ref, kept) in enumerate(self._kept):
                w = ref()
                if w is None:
                    continue
                alive = True
                if kept.device != w.device or kept.dtype != w.dtype:  # the model was moved or cast
                    kept = kept.to(device=w.device, dtype=w.dtype)
                    self._kept[i] = (ref, kept)
                w[: self.old_vocab_size].copy_(kept)
        if not alive:
            self.remove()

    def remove(self) -> None:
        """Remove the gradient and optimizer hooks and drop the copies (idempotent)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._kept = []

    def __enter__(self) -> FrozenRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def freeze_old_rows(model: Any, old_vocab_size: int) -> FrozenRows:
    """Make continued training of a ``transformers`` model update only the new rows (ids ``>=
    old_vocab_size``) of its input embedding and output head (lm_head; tied or untied, or none),
    with any ``torch.optim`` optimizer. Call it after resizing and before training.

    A gradient hook zeroes the old rows' gradients, so they count as constants for gradient
    clipping and the optimizer's moments stay zero for them. That alone is not enough: weight
    decay (decoupled as in AdamW, or added to the gradient inside SGD or Adam) and momentum from
    earlier steps still move a row whose gradient is zero, so a global optimizer post-step hook
    (``torch.optim.optimizer.register_optimizer_step_post_hook``) also copies the old rows back,
    bit for bit, after every step of any optimizer.

    Memory: one copy of the old rows per distinct matrix (``old_vocab_size × hidden``, its dtype
    and device; tied weights are one matrix), and a gradient-sized buffer during backward.
    Returns a :class:`FrozenRows`; call ``.remove()`` to train the old rows again.
    Raises ``ValueError`` if ``old_vocab_size`` is not an int in ``1..rows`` of each matrix, or
    the model has no input embeddings."""
    import torch

    if isinstance(old_vocab_size, bool) or not isinstance(old_vocab_size, int):
        raise ValueError(f"old_vocab_size must be an int, not {type(old_vocab_size).__name__}")
    try:
        emb = model.get_input_embeddings()
    except (AttributeError, NotImplementedError) as e:
        raise ValueError(f"the model has no input embeddings ({e})") from e
    if emb is None:
        raise ValueError("the model has no input embeddings (get_input_embeddings() returned None)")
    get_out = getattr(model, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    weights = [("input embedding", getattr(emb, "weight", None))]
    if out is not None and getattr(out, "weight", None) is not weights[0][1]:
        weights.append(("output embedding (lm_head)", getattr(out, "weight", None)))
    for name, w in weights:
        if not isinstance(w, torch.Tensor) or w.dim() != 2:
            raise ValueError(f"the {name} has no 2-D weight")
        if not 1 <= old_vocab_size <= w.shape[0]:
            raise ValueError(
                f"old_vocab_size={old_vocab_size} is not in 1..{w.shape[0]} (the rows of the {name})"
            )
    return FrozenRows(old_vocab_size, [w for _, w in weights], tied=out is not None and len(weights) == 1)


def _read_texts(paths: Sequence[PathLike], text_key: str) -> Iterator[str]:
    """Documents of JSONL/Parquet records (``text_key``) and ``.txt`` files (one per line), read
    and parsed in Rust."""
    for batch in _core.TextBatches([os.fspath(p) for p in paths], text_key):
        yield from batch


def bits_per_byte(
    model: Any,
    tokenizer: Any,
    corpus: PathLike | Sequence[PathLike],
    *,
    text_key: str = "text",
    max_length: int = 1024,
    max_documents: int | None = None,
    device: str | None = None,
) -> dict[str, float]:
    """Bits per UTF-8 byte of ``model`` (a ``transformers`` causal LM or a model directory) on
    held-out ``corpus``: ``Σ NLL / (ln 2 · bytes)``, comparable across vocabularies.

    Each document is encoded with ``tokenizer`` (special tokens as its post-processor adds them)
    and cut into windows of ``max_length`` tokens; every token after the first of a window is
    scored. The bytes counted are those of the scored tokens (from the tokenizer's offsets), so a
    first token that is not special neither adds loss nor bytes."""
    import torch
    from tokenizers import Tokenizer

    if isinstance(model, (str, os.PathLike)):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(os.fspath(model), trust_remote_code=False)
    text, _ = _tokenizer_json(tokenizer, "tokenizer")
    tok = Tokenizer.from_str(text)
    tok.no_truncation()
    tok.no_padding()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(dev).eval()
    paths = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
    nll, nbytes, ntokens, docs = 0.0, 0, 0, 0
    for doc in _read_texts(paths, text_key):
        if max_documents is not None and docs >= max_documents:
            break
        docs += 1
        enc = tok.encode(doc)
        ids, offsets = enc.ids, enc.offsets
        for start in range(0, len(ids), max_length):
            window = ids[start : start + max_length]
            if len(window) < 2:
                continue
            with torch.no_grad():
                logits = model(torch.tensor([window], device=dev)).logits[0, :-1].float()
            target = torch.tensor(window[1:], device=dev)
            nll += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
            ntokens += len(window) - 1
            # Bytes of the scored tokens: text from the second token's start to the window's end.
            first = start + 1
            end = max(o[1] for o in offsets[start : start + len(window)])
            begin = offsets[first][0]
            nbytes += len(doc[begin:end].encode("utf-8"))
    if nbytes == 0:
        raise ValueError("the corpus has no text to score")
    return {
        "bits_per_byte": nll / (math.log(2) * nbytes),
        "nll_per_token": nll / max(ntokens, 1),
        "tokens": float(ntokens),
        "bytes": float(nbytes),
        "documents": float(docs),
    }


def cli_eval(argv: Sequence[str]) -> int:
    """``tamis embed eval --model DIR --tokenizer T.json --corpus FILES``; returns the exit code."""
    import argparse
    import sys

    p = argparse.ArgumentParser(
        prog="tamis embed eval",
        description="Bits per byte of a causal LM on held-out text (compare embedding inits).",
    )
    p.add_argument("--model", required=True, help="model directory (safetensors)")
    p.add_argument("--tokenizer", default=None, help="tokenizer.json (default: the model's)")
    p.add_argument("--corpus", required=True, nargs="+", help=".txt, .jsonl[.gz] or .parquet files")
    p.add_argument("--text-key", default="text")
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--max-documents", type=int, default=None)
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    a = p.parse_args(list(argv))
    tokenizer = a.tokenizer or os.path.join(a.model, "tokenizer.json")
    try:
        r = bits_per_byte(
            a.model,
            tokenizer,
            a.corpus,
            text_key=a.text_key,
            max_length=a.max_length,
            max_documents=a.max_documents,
            device=a.device,
        )
    except ImportError as e:
        print(f"tamis embed eval: {e} (install 'tamis[prox]')", file=sys.stderr)
        return 1
    except (OSError, ValueError, _core.TamisError) as e:
        print(f"tamis embed eval: {e}", file=sys.stderr)
        return 1
    if a.json:
        print(json.dumps(r))
    else:
        print(
            f"bits per byte {r['bits_per_byte']:.4f}  (nll/token {r['nll_per_token']:.4f}, "
            f"{int(r['tokens'])} tokens, {int(r['bytes'])} bytes, {int(r['documents'])} documents)"
        )
    return 0


__all__ = [
    "FrozenRows",
    "InitOptions",
    "bits_per_byte",
    "freeze_old_rows",
    "init_checkpoint",
    "init_embeddings",
]
