"""The README's in-memory examples on a base install (``pip install .``: no polars, no pyarrow, no
numpy), each run in a fresh interpreter where importing those packages fails.

Plain lists cross into Rust through ``tamis._arrow.ListArray`` there; the results must be the
ones the README documents, and the same as through polars where polars is installed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import tamis

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

# The extras a base install lacks; `import polars` etc. raise ImportError in the subprocess.
BLOCKED = ("polars", "pyarrow", "numpy")

A = "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun."
A_VARIANT = "the quick brown fox jumps over the lazy dog then naps in the warm afternoon sun"
B = "Completely different words make up this second document about sieves and flour."
TEXTS = [A, A_VARIANT, B, A]
SCORES = [0.2, 0.5, 0.1, 0.7]
SETUP = f"texts = {TEXTS!r}\nscores = {SCORES!r}\n"


def run_base(code: str, blocked: tuple[str, ...] = BLOCKED) -> Any:
    """Run ``code`` (which sets ``result``) with ``blocked`` unimportable; return ``result``."""
    prelude = textwrap.dedent(
        f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None  # import raises ImportError, as where it is not installed
        import tamis
        """
    )
    check = textwrap.dedent(
        f"""
        leaked = [n for n in {blocked!r} if sys.modules.get(n) is not None]
        assert not leaked, leaked
        print(repr(result))
        """
    )
    program = prelude + SETUP + textwrap.dedent(code) + check
    proc = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def in_readme(line: str) -> None:
    assert line in README, f"README no longer shows: {line}"


def test_exact_keep_mask_on_a_list() -> None:
    line = 'mask = tamis.dedup.exact_keep_mask(["a", "b", "a"])          # [True, True, False]'
    in_readme(line)
    assert run_base(line + "\nresult = mask") == [True, True, False]


def test_text_hash_on_a_list() -> None:
    line = 'hashes = tamis.text.hash(["a", "b"], normalize="simple")      # 16-byte XXH3-128 digests'
    in_readme(line)
    hashes = run_base(line + "\nresult = hashes")
    assert [type(h) for h in hashes] == [bytes, bytes]
    assert [len(h) for h in hashes] == [16, 16] and hashes[0] != hashes[1]
    # "simple" lowercases and drops punctuation: "A!" is "a"; nulls stay null.
    assert run_base('result = tamis.text.hash(["A!", None], normalize="simple")') == [hashes[0], None]
    assert hashes == tamis.text.hash(["a", "b"], normalize="simple")  # this environment's path


def test_minhash_on_a_list() -> None:
    in_readme("sig = tamis.dedup.minhash(texts)")
    # Without numpy the default numpy output says what it needs; output="arrow" needs nothing.
    message = run_base(
        "try:\n    tamis.dedup.minhash(texts)\nexcept ImportError as e:\n    result = str(e)\n"
    )
    assert "needs numpy" in message and "output='arrow'" in message
    line = 'sig = tamis.dedup.minhash(texts, output="arrow")'
    in_readme(line)
    rows = run_base(line + "\nresult = sig.to_pylist()")
    assert len(rows) == 4 and all(len(r) == 112 for r in rows)
    assert rows[0] == rows[3] and rows[0] != rows[2]
    pytest.importorskip("numpy")
    # With numpy (and still no polars or pyarrow): the documented (n, 112) uint64 array.
    shape = run_base(
        "sig = tamis.dedup.minhash(texts)\nresult = (sig.shape, str(sig.dtype), sig.tolist())",
        blocked=("polars", "pyarrow"),
    )
    assert shape == ((4, 112), "uint64", rows)
    assert tamis.dedup.minhash(TEXTS).tolist() == rows  # this environment's path


def test_near_keep_mask_on_a_list() -> None:
    line = "keep = tamis.dedup.near_keep_mask(texts)"
    in_readme(line)
    # The variant differs only in case and punctuation: the same words, one cluster with A.
    assert run_base(line + "\nresult = keep") == [True, False, True, False]


def test_exact_keep_mask_best_scored_on_lists() -> None:
    line = 'mask = tamis.dedup.exact_keep_mask(texts, keep="max:q", values=scores)'
    in_readme(line)
    # texts[0] and texts[3] are equal; texts[3] has the higher score.
    assert run_base(line + "\nresult = mask") == [False, True, True, True]
    # A missing value is never preferred; a value that is not a number is refused with its index.
    assert run_base('result = tamis.dedup.exact_keep_mask(["x", "x"], keep="max:q", values=[None, 1])') == [
        False,
        True,
    ]
    err = run_base(
        'try:\n    tamis.dedup.exact_keep_mask(["x"], keep="max:q", values=["1"])\n'
        "except TypeError as e:\n    result = str(e)\n"
    )
    assert err == "values[0] is str, not a number"


def test_lists_with_nulls_unicode_and_no_rows() -> None:
    texts = ["é 龍 \U0001f600", None, "", "é 龍 \U0001f600", None]
    mask = run_base(f"result = tamis.dedup.exact_keep_mask({texts!r})")
    assert mask == [True, True, True, False, True]  # nulls are not documents: always kept
    assert run_base("result = tamis.dedup.exact_keep_mask([])") == []
    assert run_base("result = tamis.text.hash(())") == []
    err = run_base("try:\n    tamis.text.hash(['a', 3])\nexcept TypeError as e:\n    result = str(e)\n")
    assert err == "texts[1] is int, not str"
    assert tamis.dedup.exact_keep_mask(texts) == mask


def test_list_array_matches_polars() -> None:
    pl = pytest.importorskip("polars")
    from tamis._arrow import ListArray

    texts = ["a", None, "龍" * 1000, "", "b\x00c"]
    assert pl.Series(ListArray(texts, "utf8")).to_list() == texts
    numbers = [1, None, 2.5, -3]
    assert pl.Series(ListArray(numbers, "float64")).to_list() == [1.0, None, 2.5, -3.0]
    assert pl.Series(ListArray([], "float64")).to_list() == []
    # The buffers live until the importer releases them, and not after.
    import tamis._arrow as arrow

    before = set(arrow._owned), set(arrow._structs)
    assert tamis.dedup.exact_keep_mask(ListArray(texts, "utf8")) == [True, True, True, True, True]
    assert (set(arrow._owned), set(arrow._structs)) == before


def test_exported_buffers_are_freed() -> None:
    # Released by Rust after use, or by the capsule's destructor when never imported; also where
    # another package (dill does) changed the shared ctypes.pythonapi.PyCapsule_* prototypes.
    code = """
    import ctypes
    ctypes.pythonapi.PyCapsule_GetPointer.argtypes = (ctypes.py_object, ctypes.c_char_p)
    import tamis._arrow as arrow
    mask = tamis.dedup.exact_keep_mask(["a", None, "a"], keep="max:q", values=[1, 2, 3])
    capsules = arrow.ListArray(["unused"], "utf8").__arrow_c_array__()
    held = len(arrow._owned), len(arrow._structs)
    del capsules
    result = (mask, held, len(arrow._owned), len(arrow._structs))
    """
    assert run_base(code) == ([False, True, True], (2, 2), 0, 0)
