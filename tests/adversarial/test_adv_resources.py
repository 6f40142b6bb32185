"""Numbers an attacker controls must never size an allocation, a thread count or a loop: each case
runs tamis under a 4 GiB address-space limit (RLIMIT_AS), so an unbounded allocation fails the
test (an abort, exit 134) instead of exhausting the machine. Each must end with a clear message
naming the option or the file, exit 1 or 2, and nothing written."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TAMIS, jsonl_bytes

MEMORY = 4 << 30


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def limited(*args: object, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TAMIS, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit,
        stdin=subprocess.DEVNULL,
    )


def python_limited(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, preexec_fn=_limit
    )


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    p = tmp_path / "in.jsonl"
    p.write_bytes(jsonl_bytes([{"id": i, "text": t} for i, t in enumerate(["a b c", "a b c", "d e"])]))
    return p


def byte_level_tokenizer(path: Path, extra_vocab: dict[str, int] | None = None) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["the cat sat on the mat"] * 20, trainer)
    data = json.loads(tok.to_str())
    data["model"]["vocab"].update(extra_vocab or {})
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["--threads", "100000", "dedup", "exact"], "--threads must be at most 1024"),
        (["dedup", "near", "--num-perm", "100000000"], "--num-perm must be from 1 to"),
        (["dedup", "near", "--bands", "4000000000", "--rows", "1"], "--bands"),
        (["dedup", "near", "--ngram", "4000000000"], "--ngram"),
        (["dedup", "near", "--memory-limit", "99999999999999999999"], "--memory-limit"),
        (["dedup", "lines", "--max-occurrences", "99999999999999999999"], "--max-occurrences"),
    ],
)
def test_absurd_numbers_are_refused_by_name(tmp_path, corpus, args, message):
    out = tmp_path / "out.jsonl"
    r = limited(*args, corpus, "-o", out)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "panicked" not in r.stderr
    assert not out.exists()


def test_refine_config_threads_is_bounded(tmp_path, corpus):
    cfg = tmp_path / "r.toml"
    cfg.write_text(f'inputs = ["{corpus}"]\noutput = "{tmp_path / "out"}"\nthreads = 99999999999999999\n')
    r = limited("refine", cfg)
    assert r.returncode == 2, r.stderr
    assert "threads must be at most 1024" in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_vocabulary_id_of_four_billion_is_refused_before_any_table(tmp_path):
    pytest.importorskip("tokenizers")
    tok = byte_level_tokenizer(tmp_path / "t.json", {"zzq": 4_000_000_000})
    text = tmp_path / "nl.txt"
    text.write_text("dit is een test van de taal\n" * 50)
    out = tmp_path / "new.json"
    r = limited("vocab", "extend", "--tokenizer", tok, "--corpus", text, "-o", out, "--new-tokens", 10)
    assert r.returncode == 1, r.stderr
    assert 't.json' in r.stderr and '"zzq" has id 4000000000' in r.stderr
    assert not out.exists()


def test_embed_padding_is_bounded(tmp_path):
    r = limited(
        "embed", "init", "--model", tmp_path, "--old-tokenizer", tmp_path / "a.json",
        "--new-tokenizer", tmp_path / "b.json", "-o", tmp_path / "out", "--pad-to-multiple-of", 4294967295,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "--pad-to-multiple-of must be from 1 to 65536" in r.stderr
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".tamis-embed-*"))


def test_a_program_cannot_grow_a_document_without_bound():
    """Model output is untrusted: twenty doublings of a 166 KB text would need 170 GB."""
    code = """
import tamis.prox as p
text = "foo bar " * 20_000 + "hello world"
program = 'normalize(source_str="o", target_str="oo")\\n' * 20
e = p.explain(text, program, accept=p.Acceptance(max_errors=100, min_words=0))
cap = max(16 * len(text), 1 << 20)            # 16x the size (at least 1 MiB), no more
size, os_, applied = len(text), text.count("o"), 0
while size + os_ <= cap:
    size, os_, applied = size + os_, 2 * os_, applied + 1
grown = [r for r in e["replacements"] if r["count"]]
assert len(grown) == applied and 0 < applied < 20, (len(grown), applied)
assert len(e["errors"]) == 20 - applied and "not applied" in e["errors"][0]["message"]
assert len(e["text"]) == size <= cap
assert p.execute_chunk(text, program) == text  # the default rule then keeps the original
print("ok")
"""
    r = python_limited(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_line_numbers_of_any_size_compare_exactly():
    import tamis.prox as p

    text = "\n".join(f"line {i} of the text" for i in range(20))
    for end in (2**64 - 1, 2**64 + 5, 10**30, 2**128 + 1):
        assert p.execute_chunk(text, f"remove_lines(line_start=0, line_end={end})") == "", end
    # Starting past the end removes nothing, however large.
    kept = p.execute_chunk(text, f"remove_lines(line_start={2**64 + 5}, line_end={2**64 + 9})")
    assert kept == text
