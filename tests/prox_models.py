"""Tiny ProX-style refining models for tests: a randomly initialized LlamaForCausalLM and a
Llama-2-style tokenizer (Metaspace pre-tokenizer, byte-fallback BPE, <unk>/<s>/</s>), trained on
the spot with the `tokenizers` trainer. Nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = [
    "remove_lines(line_start=0, line_end=3)",
    'normalize(source_str="Click here", target_str="")',
    "keep_chunk()",
    "drop_doc()",
    "keep_doc()",
    "[INST] <<SYS>> You are a helpful, respectful and honest assistant. <</SYS>> [/INST]",
    "[doc] [000]Home | About | Contact [001]The quick brown fox jumps over the lazy dog. [/doc]",
    "Copyright 2024. All rights reserved. Privacy policy. Terms of use. Share on Twitter.",
    "Water boils at 100 degrees Celsius at sea level; salt raises the boiling point slightly.",
    "The mitochondria is the powerhouse of the cell. Photosynthesis happens in chloroplasts.",
]


def build_tokenizer(vocab_size: int = 600) -> object:
    """A Llama-2-like `tokenizers.Tokenizer`: byte-fallback BPE over Metaspace pieces."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>", *byte_tokens],
        initial_alphabet=list(
            '▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_()=",.[]|/<>:;'
        ),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    # The trainer can only put the byte tokens into the vocabulary as special tokens; in Llama-2's
    # tokenizer they are ordinary pieces (decoded, never skipped).
    data = json.loads(tok.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if not t["content"].startswith("<0x")]
    return Tokenizer.from_str(json.dumps(data))


def make_model_dir(
    path: Path,
    *,
    seed: int = 0,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 1,
    vocab_size: int = 600,
) -> Path:
    """Write config.json, model.safetensors, tokenizer.json and tokenizer_config.json to `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(vocab_size)
    tok.save(str(path / "tokenizer.json"))  # type: ignore[attr-defined]
    (path / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 2048})
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),  # type: ignore[attr-defined]
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(path, safe_serialization=True)
    return path
