"""ProX executors, prompts and chunking: quirk tables, differential property tests against an
independent pure-Python oracle (tests/prox_oracle.py), tokenizer-based chunking checked against
the Python ``tokenizers`` package, and the polars, datatrove and CLI entry points."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import polars as pl
import prox_oracle as oracle
import pytest
import tamis
import tamis.polars  # noqa: F401  (registers pl.col(...).tamis)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tamis import prox
from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

F = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda"

# ---------------------------------------------------------------------------------------------
# Quirk tables (compat mode), each checked against both the Rust executor and the oracle
# ---------------------------------------------------------------------------------------------

QUIRKS = [
    # (text, program, expected)
    ("Menu\n" + F, "remove_lines(line_start=0, line_end=0)", F),
    ("Menu\n" + F, "remove_lines(0, 0)", "Menu\n" + F),  # positional: one error, nothing removed
    (
        f"see http://a.com/?u=1 now\n{F}",
        'normalize(source_str="http://a.com/?u=1", target_str="")',
        f"see =1 now\n{F}",
    ),
    (
        f"(c) 2023 ACME (cool)\n{F}",
        'normalize(source_str="(c) 2023 ACME", target_str="")',
        f") 2023 ACME ool)\n{F}",
    ),
    (f"Home, About\n{F}", 'normalize(source_str="Home, About", target_str="")', f"Home, About\n{F}"),
    # \r stays in its line (split on \n only), so a source ending in \r matches.
    (f"a\u00a0b\r\n{F}", 'normalize(source_str="b\r", target_str="")', f"a\u00a0\n{F}"),
    (f"Menu\n{F}", "remove_lines(line_start=0, line_end=0)\nremove_lines(start=1, end", f"Menu\n{F}"),
    (f"x\n{F}", "remove_lines(all=True)", ""),
    ("nine words only here in this short little text", "", ""),
    (f"{F}\nx", "  remove_lines(line_start=1, line_end=1)", F),
    (F, "keep_chunk()\n  remove_lines(line_start=0, line_end=0)\n```python", F),
    (f"a\n{F}", "remove_lines(line_start=\u0660, line_end=0_0)", F),
    (f"a\n{F}", "normalize(source_str='a', target_str='b')", f"a\n{F}"),
    (" \u3000\n\t", "", ""),
]


@pytest.mark.parametrize(("text", "program", "expected"), QUIRKS)
def test_compat_quirks(text: str, program: str, expected: str) -> None:
    assert prox.execute_chunk(text, program) == expected
    assert oracle.run_chunk(text, program) == expected


def test_names_are_ignored_only_order_counts() -> None:
    text = f"Menu\n{F}"
    # start=1, end=0: a reversed range removes nothing and is no error.
    assert prox.execute_chunk(text, "remove_lines(line_end=1, line_start=0)") == text
    assert prox.explain(text, "remove_lines(line_end=1, line_start=0)")["errors"] == []


def test_doc_programs() -> None:
    for program, expected in [
        ("drop_doc()", ""),
        ("keep_doc()", "T"),
        ("", "T"),
        ("keep_doc() # don't drop", ""),
    ]:
        assert prox.execute_doc("T", program) == expected
        assert oracle.run_doc("T", program) == expected
    assert prox.execute_doc("T", "keep_doc() # don't drop", mode="strict") == "T"
    assert prox.execute_docs(["a", "b"], ["drop_doc()", "keep_doc()"]) == ["", "b"]


def test_acceptance_thresholds() -> None:
    text = " ".join(["w"] * 209) + "\n" + F
    program = "remove_lines(line_start=0, line_end=0)"
    assert prox.explain(text, program)["reason"] == "too_little_left"  # 11/220 = 0.05 <= 1 - 0.95
    lenient = prox.Acceptance(min_keep_ratio=0.04)
    assert prox.execute_chunk(text, program, accept=lenient) == F
    assert prox.execute_chunk(text, program, accept=prox.Acceptance(min_keep_ratio=0.04, min_words=12)) == ""
    strict_edits = prox.Acceptance(min_keep_ratio=0.0, min_edit_ratio=0.5)
    assert prox.explain(text, program, accept=strict_edits)["reason"] == "below_edit_ratio"
    two_errors = program + "\nremove_lines(x)\nnormalize"
    assert prox.explain("x\n" + F, two_errors)["reason"] == "too_many_errors"
    assert prox.execute_chunk("x\n" + F, two_errors) == "x\n" + F
    assert prox.execute_chunk("x\n" + F, two_errors, accept=prox.Acceptance(max_errors=2)) == F


def test_explain_reports_everything() -> None:
    text = f"Menu\nClick here\n{F}\nfooter"
    program = "\n".join(
        [
            "remove_lines(line_start=0, line_end=1)",
            'normalize(source_str="lambda", target_str="Λ")',
            "remove_lines(line_start=3, line_end=9)",
        ]
    )
    e = prox.explain(text, program)
    assert e["outcome"] == "edited" and e["reason"] == "accepted"
    assert e["removed_lines"] == [(0, 1), (3, 3)]
    assert e["replacements"] == [{"source": "lambda", "target": "Λ", "count": 1}]
    assert [err["line"] for err in e["errors"]] == [None]  # the interval past the end
    assert e["text"] == F.replace("lambda", "Λ")
    assert (e["words_before"], e["words_after"]) == (15, 11)
    s = prox.explain(text, "remove_lines(0, 1)\nfrobnicate()", mode="strict")
    assert [(err["line"], err["source"]) for err in s["errors"]] == [(2, "frobnicate()")]
    assert "unknown function" in s["errors"][0]["message"]


def test_strict_mode() -> None:
    text = f"zero\nsee http://a.com/?u=1, (c) now\n{F}"
    program = (
        "```python\n# strip the URL\n"
        "normalize(source_str=\"http://a.com/?u=1, (c)\", target_str='')  # inline\n```"
    )
    assert prox.execute_chunk(text, program, mode="strict") == f"zero\nsee  now\n{F}"
    assert prox.execute_chunk(text, "remove_lines(0, 1)", mode="strict") == F
    with pytest.raises(tamis.TamisError) as info:
        prox.execute_chunk(text, "", mode="fancy")  # type: ignore[arg-type]
    assert info.value.kind == "config"


# ---------------------------------------------------------------------------------------------
# Differential property tests: Rust (batched) against the oracle
# ---------------------------------------------------------------------------------------------

ATOMS = [
    "a",
    "b",
    "lambda",
    " ",
    "  ",
    "\t",
    "\r",
    "\u00a0",
    "\u3000",
    "\x1c",
    "é",
    "日本",
    "=",
    ",",
    "(",
    ")",
    '"',
    "'",
    "http://x.org/p?q=1&r=2",
    "Click Here",
    "©",
    "drop",
    "0",
    "12",
]
text_st = st.lists(st.lists(st.sampled_from(ATOMS), max_size=12).map("".join), min_size=0, max_size=10).map(
    "\n".join
)

NUMS = [
    "0",
    "1",
    "2",
    "3",
    "7",
    "-1",
    " 2 ",
    "+1",
    "1_0",
    "\u0663",
    "x",
    "",
    "99999999999999999999999999999999999999999999",
    "1.5",
]
NAMES = ["line_start", "line_end", "start", "end", "all", "", "source_str", "target_str"]
STRINGS = [
    '"a"',
    '"lambda"',
    '" "',
    '""',
    "'a'",
    '"Click Here"',
    '"x=1"',
    '"a,b"',
    '"(c)"',
    '"\\n"',
    '"é"',
    "a",
    '"drop"',
]


@st.composite
def op_st(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["remove", "normalize", "noise", "all"]))
    if kind == "remove":
        args = [
            f"{draw(st.sampled_from(NAMES))}={draw(st.sampled_from(NUMS))}"
            if draw(st.booleans())
            else draw(st.sampled_from(NUMS))
            for _ in range(draw(st.integers(0, 3)))
        ]
        call = "remove_lines(" + draw(st.sampled_from([", ", ",", " , "])).join(args) + ")"
    elif kind == "normalize":
        args = [
            draw(st.sampled_from(NAMES))
            + draw(st.sampled_from(["=", " = ", "=="]))
            + draw(st.sampled_from(STRINGS))
            if draw(st.booleans())
            else draw(st.sampled_from(STRINGS))
            for _ in range(draw(st.integers(0, 3)))
        ]
        call = "normalize(" + ", ".join(args) + ")"
    elif kind == "all":
        call = draw(
            st.sampled_from(
                ["remove_lines(all=True)", "remove_lines(all=False)", "remove_lines(line_start=1, all=True)"]
            )
        )
    else:
        call = draw(
            st.sampled_from(
                ["keep_chunk()", "# comment", "```python", "```", "", "untouch_doc()", "drop_doc()"]
            )
        )
    cut = draw(st.integers(0, 3))
    if cut == 0 and len(call) > 1:  # truncated output
        call = call[: draw(st.integers(1, len(call)))]
    prefix = draw(st.sampled_from(["", "", " ", "  ", "\t"]))
    return prefix + call + draw(st.sampled_from(["", "", " ", "\r", " # note"]))


program_st = st.lists(st.lists(op_st(), max_size=5).map("\n".join), min_size=1, max_size=3).map(
    prox.join_programs
)
accept_st = st.builds(
    prox.Acceptance,
    min_words=st.integers(0, 14),
    min_keep_ratio=st.sampled_from([1 - 0.95, 0.0, 0.05, 0.2, 1.0]),
    min_edit_ratio=st.sampled_from([0.0, 0.5, 0.9]),
    max_errors=st.integers(0, 3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(text_st, program_st), min_size=1, max_size=20), accept_st)
def test_compat_matches_oracle(cases: list[tuple[str, str]], accept: prox.Acceptance) -> None:
    texts = [t for t, _ in cases]
    programs = [p for _, p in cases]
    got = prox.execute_chunks(texts, programs, accept=accept)
    kw = dict(
        min_words=accept.min_words,
        min_keep_ratio=accept.min_keep_ratio,
        min_edit_ratio=accept.min_edit_ratio,
        max_errors=accept.max_errors,
    )
    for text, program, out in zip(texts, programs, got, strict=True):
        expected, errors = oracle.run_chunk_with_errors(text, program, **kw)  # type: ignore[arg-type]
        assert out == expected, (text, program)
        assert len(prox.explain(text, program, accept=accept)["errors"]) == errors, (text, program)
    assert prox.execute_docs(texts, programs) == [oracle.run_doc(t, p) for t, p in cases]


SAFE = st.text(alphabet="abcdefgh XYZ.:/-é", min_size=1, max_size=8).filter(lambda s: s.strip(" ") != "")


@st.composite
def wellformed_st(draw: st.DrawFn) -> tuple[str, str]:
    lines = draw(st.lists(st.text(alphabet="abcdefgh XYZ.:/-é", max_size=30), min_size=1, max_size=8))
    n = len(lines)
    ops = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            a = draw(st.integers(0, n - 1))
            b = draw(st.integers(a, n - 1))
            ops.append(f"remove_lines(line_start={a}, line_end={b})")
        else:
            target = draw(st.sampled_from(["", "x", "y z"]))
            ops.append(f'normalize(source_str="{draw(SAFE)}", target_str="{target}")')
    return "\n".join(lines + [F]), "\n".join(ops)


@settings(max_examples=100, deadline=None)
@given(st.lists(wellformed_st(), min_size=1, max_size=10))
def test_strict_agrees_with_compat_on_wellformed_programs(cases: list[tuple[str, str]]) -> None:
    texts = [t for t, _ in cases]
    programs = [p for _, p in cases]
    assert prox.execute_chunks(texts, programs, mode="strict") == prox.execute_chunks(texts, programs)


def test_arrow_and_list_forms_agree() -> None:
    texts = [f"Menu\n{F}", None, "x"]
    programs = ["remove_lines(line_start=0, line_end=0)", "keep_chunk()", None]
    out = prox.execute_chunks(pl.Series(texts), pl.Series(programs))
    assert isinstance(out, pl.Series)
    assert out.to_list() == [F, None, None]
    with pytest.raises(tamis.TamisError):
        prox.execute_chunks(pl.Series(["a"]), pl.Series(["b", "c"]))


def test_arrow_results_span_several_output_chunks_in_order() -> None:
    # More documents than one output block (2048): results come back in input order, nulls in
    # place, kept documents unchanged and edited ones edited, same as the list form and the oracle.
    texts: list[str | None] = []
    programs: list[str | None] = []
    for i in range(5000):
        texts.append(None if i % 997 == 0 else f"Menu {i}\n{F}\nFooter {i}")
        programs.append(
            None
            if i % 1499 == 0
            else ("keep_chunk()" if i % 3 else f"remove_lines(line_start={i % 2 * 2}, line_end=2)")
        )
    out = prox.execute_chunks(pl.Series(texts, dtype=pl.String), pl.Series(programs, dtype=pl.String))
    assert out.len() == 5000
    expected = [
        None if t is None or p is None else oracle.run_chunk(t, p)
        for t, p in zip(texts, programs, strict=True)
    ]
    assert out.to_list() == expected
    pairs = [(t, p) for t, p in zip(texts, programs, strict=True) if t is not None and p is not None]
    listed = prox.execute_chunks([t for t, _ in pairs], [p for _, p in pairs])
    assert listed == [e for e in expected if e is not None]
    assert prox.execute_chunks(pl.Series([], dtype=pl.String), pl.Series([], dtype=pl.String)).len() == 0


# ---------------------------------------------------------------------------------------------
# Prompts and chunking with a tiny tokenizer built here
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tokenizer, Path]:
    """A byte-level BPE with a few merges and a BOS added by the post-processor, like Llama's."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<s>": 0, "</s>": 1}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    merges = [("[", "0"), ("[0", "0"), ("Ġ", "t"), ("Ġt", "h"), ("Ġth", "e")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.add_special_tokens(["<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return tok, path


def _reference_chunks(tok: Tokenizer, text: str, max_tokens: int) -> list[str]:
    numbered = [f"[{i:03d}]{line}" for i, line in enumerate(text.split("\n"))]
    return oracle.trunc_chunks([(line, len(tok.encode(line).ids)) for line in numbered], max_tokens)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(alphabet="ab the\u00e9\t\r", max_size=40), min_size=1, max_size=30).map("\n".join),
    st.integers(1, 60),
)
def test_split_chunks_matches_python_tokenizers(text: str, budget: int) -> None:
    tok, path = _TOK
    assert prox.split_chunks(text, path, budget) == _reference_chunks(tok, text, budget)


_TOK: tuple[Tokenizer, Path]


@pytest.fixture(autouse=True, scope="module")
def _share_tokenizer(tokenizer: tuple[Tokenizer, Path]) -> None:
    global _TOK
    _TOK = tokenizer


def test_chunking_rules(tokenizer: tuple[Tokenizer, Path]) -> None:
    tok, path = tokenizer
    lines = [f"line {i} " + "the " * (i % 4) for i in range(1200)]
    text = "\n".join(lines)
    chunks = prox.split_chunks(text, tok, 200)
    assert chunks == _reference_chunks(tok, text, 200)
    assert chunks == prox.split_chunks(text, path, 200)  # a path or a Tokenizer
    assert chunks[0].startswith("[000]line 0")
    assert "\n[999]line 999" in "\n".join(chunks) and "\n[1000]line 1000" in "\n".join(chunks)
    joined = "\n".join(chunks).split("\n")
    assert joined == [f"[{i:03d}]{line}" for i, line in enumerate(lines)]  # global numbering
    # The budget is inclusive and an over-long line stands alone.
    cost = len(tok.encode("[000]abc").ids)
    assert prox.split_chunks("abc\nabc", tok, 2 * cost) == ["[000]abc\n[001]abc"]
    assert prox.split_chunks("abc\nabc", tok, 2 * cost - 1) == ["[000]abc", "[001]abc"]
    long = "x" * 100
    assert prox.split_chunks(f"a\n{long}\nb", tok, 20) == ["[000]a", f"[001]{long}", "[002]b"]
    many = prox.split_chunks_many([text, "", "a"], path, 200)
    assert many == [chunks, ["[000]"], ["[000]a"]]


_LLAMA_WORDS = (
    "the of data model training corpus page naïve café Zürich 東京 über 1984 3.14 Home About".split()
)


@pytest.fixture(scope="module")
def llama_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tokenizer, Path]:
    """Llama-2's shape, trained here: ``▁`` normalizer, no pre-tokenizer (a whole line is one BPE
    word), byte fallback for some bytes, fused unknowns, ``<s>`` added by the post-processor. tamis
    counts these lines on its cached fast path (docs/prox.md), which must agree with ``encode``."""
    rng = random.Random(3)
    lines = [" ".join(rng.choice(_LLAMA_WORDS) for _ in range(rng.randint(3, 20))) for _ in range(800)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    special = [AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")]
    bytes_ = [f"<0x{b:02X}>" for b in (*range(0x41, 0x4A), *range(0x80, 0xC0), *range(0xE0, 0xF5))]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special + bytes_, show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    tok.pre_tokenizer = None
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    path = tmp_path_factory.mktemp("llama") / "tokenizer.json"
    tok.save(str(path))
    return tok, path


_LLAMA_PIECES = [
    *_LLAMA_WORDS,
    " ",
    "  ",
    "▁",
    ".",
    "日本語",
    "😀",
    "Ω",
    "e\u0301",
    "<s>",
    "</s>",
    "<0x41>",
    "\t",
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.lists(st.sampled_from(_LLAMA_PIECES), max_size=25).map("".join), min_size=1, max_size=40).map(
        "\n".join
    ),
    st.integers(1, 120),
)
def test_split_chunks_matches_python_tokenizers_llama_like(
    llama_like: tuple[Tokenizer, Path], text: str, budget: int
) -> None:
    tok, path = llama_like
    assert prox.split_chunks(text, path, budget) == _reference_chunks(tok, text, budget)
    # Whole texts too (the refiner's token statistics), without special tokens.
    texts = [text, *text.split("\n")]
    counts = tamis._core.prox_token_counts(texts, str(path), False)
    assert counts == [len(tok.encode(t, add_special_tokens=False).ids) for t in texts]
    assert (
        prox.split_chunks_many([text, text], path, budget, threads=2)
        == [_reference_chunks(tok, text, budget)] * 2
    )


def test_prompts(tokenizer: tuple[Tokenizer, Path]) -> None:
    tok, path = tokenizer
    prompts = prox.chunk_prompts("Menu\nBody", path)
    assert prompts == [
        "<s>[INST] <<SYS>>\nYou are a helpful, respectful and honest assistant.\n<</SYS>>\n\n"
        "[doc]\n[000]Menu\n[001]Body\n[/doc] [/INST]"
    ]
    assert prox.chunk_prompts("", path) == []
    assert prox.chunk_prompts("a", path, template=prox.PLAIN) == ["[doc]\n[000]a\n[/doc]"]
    short = prox.doc_prompt("the doc", path)
    rendered = prox.LLAMA2.render("the doc")
    assert short.text == rendered and not short.truncated
    assert short.ids == tok.encode(rendered, add_special_tokens=False).ids
    assert short.ids[0] == 0  # the template's <s> is the BOS special token
    long_doc = "the " * 3000
    p = prox.doc_prompt(long_doc, path, 2000)
    full = tok.encode(prox.LLAMA2.render(long_doc), add_special_tokens=False).ids
    assert p.truncated and p.ids == full[:2000] and len(p.ids) == 2000
    assert not p.text.endswith("[/INST]") and prox.LLAMA2.render(long_doc).startswith(p.text)
    assert prox.join_programs(["  keep_chunk() ", "remove_lines(line_start=0, line_end=1)\n "]) == (
        "keep_chunk()\nremove_lines(line_start=0, line_end=1)\n"
    )
    with pytest.raises(tamis.TamisError):
        prox.split_chunks("x", path.with_name("missing.json"))


# ---------------------------------------------------------------------------------------------
# polars, datatrove, CLI
# ---------------------------------------------------------------------------------------------


def _records() -> list[dict[str, object]]:
    return [
        {
            "id": "a",
            "text": f"Home | About\n{F}\nfooter",
            "doc_program": "keep_doc()",
            "chunk_program": "remove_lines(line_start=0, line_end=0)\nremove_lines(line_start=2, line_end=2)",
        },
        {"id": "b", "text": f"spam {F}", "doc_program": "drop_doc()", "chunk_program": ""},
        {
            "id": "c",
            "text": f"x\n{F}",
            "doc_program": "keep_doc()",
            "chunk_program": "remove_lines(line_start=0, line_end=0)\nremove_lines(x)\nnormalize",
        },
        {"id": "d", "text": "too short", "doc_program": "keep_doc()", "chunk_program": ""},
    ]


def _expected() -> list[str | None]:
    out: list[str | None] = []
    for r in _records():
        text, doc, chunk = str(r["text"]), str(r["doc_program"]), str(r["chunk_program"])
        kept = oracle.run_doc(text, doc)
        result = oracle.run_chunk(kept, chunk) if kept else ""
        out.append(result or None)
    return out


def test_polars_expression() -> None:
    df = pl.DataFrame(_records())
    out = df.with_columns(
        pl.col("text").tamis.prox_execute(pl.col("doc_program"), level="doc").alias("after_doc")  # type: ignore[attr-defined]
    ).with_columns(pl.col("after_doc").tamis.prox_execute("chunk_program").alias("final"))  # type: ignore[attr-defined]
    assert [t or None for t in out["final"].to_list()] == _expected()


def test_datatrove_step() -> None:
    from datatrove.data import Document
    from tamis.datatrove import ProxApply

    docs = [
        Document(
            text=str(r["text"]),
            id=str(r["id"]),
            metadata={"doc_program": r["doc_program"], "chunk_program": r["chunk_program"]},
        )
        for r in _records()
    ]
    step = ProxApply()
    out = list(step.run(iter(docs)))
    assert [d.text for d in out] == [t for t in _expected() if t is not None]
    assert out[0].metadata["raw_content"] == _records()[0]["text"]
    stats = step.stats.to_dict()["stats"]
    assert stats["dropped_drop_doc"] == 1 and stats["dropped_chunk_program"] == 1
    with pytest.raises(ValueError, match="chunk_program"):
        list(ProxApply().run(iter([Document(text="t", id="z", metadata={"doc_program": "keep_doc()"})])))


def _write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_cli_apply(tmp_path: Path, run_tamis: Any) -> None:
    src = _write_jsonl(tmp_path / "in.jsonl", _records())
    out = tmp_path / "out.jsonl"
    r = run_tamis("prox", "apply", src, "-o", out, "--stats-json", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["text"] for row in rows] == [t for t in _expected() if t is not None]
    assert rows[0]["raw_content"] == _records()[0]["text"] and rows[0]["doc_program"] == "keep_doc()"
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["documents_removed"] == {"drop_doc": 1, "too_few_words": 1}
    assert stats["counters"]["programs_discarded"] == 1 and stats["counters"]["lines_removed"] == 2
    # Parquet output, nested program fields, and the same texts as polars.
    nested = [
        {
            "text": r["text"],
            "metadata": {"doc_program": r["doc_program"], "chunk_program": r["chunk_program"]},
        }
        for r in _records()
    ]
    src2 = _write_jsonl(tmp_path / "nested.jsonl", nested)
    r = run_tamis(
        "prox",
        "apply",
        src2,
        "-o",
        tmp_path / "o.parquet",
        "--doc-program-key",
        "metadata.doc_program",
        "--chunk-program-key",
        "metadata.chunk_program",
    )
    assert r.returncode == 0, r.stderr
    df = pl.read_parquet(tmp_path / "o.parquet")
    assert df["text"].to_list() == [t for t in _expected() if t is not None]
    assert df["raw_content"].to_list()[0] == _records()[0]["text"]
    # Parquet input with struct columns.
    pl.DataFrame(nested).write_parquet(tmp_path / "n.parquet")
    r = run_tamis(
        "prox",
        "apply",
        tmp_path / "n.parquet",
        "-o",
        tmp_path / "o2.jsonl",
        "--doc-program-key",
        "metadata.doc_program",
        "--chunk-program-key",
        "metadata.chunk_program",
        "--raw-key",
        "",
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (tmp_path / "o2.jsonl").read_text().splitlines()]
    assert [row["text"] for row in rows] == [t for t in _expected() if t is not None]
    assert "raw_content" not in rows[0]


def test_cli_apply_errors_and_options(tmp_path: Path, run_tamis: Any) -> None:
    records = _records() + [{"id": "e", "text": F}]
    src = _write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    r = run_tamis("prox", "apply", src, "-o", out)
    assert r.returncode == 1 and 'in.jsonl: line 5: missing field "doc_program"' in r.stderr
    assert not out.exists()
    r = run_tamis("prox", "apply", src, "-o", out, "--on-error", "skip", "--rejects", tmp_path / "rej.jsonl")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "rej.jsonl").read_text())["reason"] == "missing_field"
    r = run_tamis("prox", "apply", src, "-o", out, "--stage", "doc", "--on-error", "skip")
    assert r.returncode == 0
    # Only the document programs run: b is dropped, e (no program) skipped, texts unchanged.
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(row["id"], row["text"]) for row in rows] == [
        (r["id"], r["text"]) for r in records if r["id"] in "acd"
    ]
    r = run_tamis(
        "prox",
        "apply",
        src,
        "-o",
        out,
        "--stage",
        "chunk",
        "--mode",
        "strict",
        "--min-words",
        "2",
        "--on-error",
        "skip",
        "--stats-json",
        tmp_path / "s.json",
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # b's program is empty (no edit), c's has two errors in strict mode too, d now has enough words.
    assert [row["id"] for row in rows] == ["a", "b", "c", "d"]
    assert json.loads((tmp_path / "s.json").read_text())["counters"]["program_errors"] == 2
    r = run_tamis("prox", "apply", src, "-o", out, "--mode", "lenient")
    assert r.returncode == 2


def test_cli_prompts(tmp_path: Path, tokenizer: tuple[Tokenizer, Path], run_tamis: Any) -> None:
    tok, path = tokenizer
    src = _write_jsonl(
        tmp_path / "in.jsonl", [{"id": "a", "text": "Menu\nBody"}, {"id": "b", "text": "the " * 900}]
    )
    r = run_tamis(
        "prox",
        "prompts",
        src,
        "-o",
        tmp_path / "c.jsonl",
        "--tokenizer",
        path,
        "--stage",
        "chunk",
        "--max-tokens",
        "400",
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert rows[0] == {"id": "a", "chunk": 0, "chunks": 1, "prompt": prox.chunk_prompts("Menu\nBody", tok)[0]}
    assert [row["prompt"] for row in rows[1:]] == prox.chunk_prompts("the " * 900, tok, 400)
    r = run_tamis(
        "prox",
        "prompts",
        src,
        "-o",
        tmp_path / "d.jsonl.gz",
        "--tokenizer",
        path,
        "--stage",
        "doc",
        "--doc-max-tokens",
        "100",
    )
    assert r.returncode == 0, r.stderr
    import gzip

    rows = [
        json.loads(line)
        for line in gzip.decompress((tmp_path / "d.jsonl.gz").read_bytes()).decode().splitlines()
    ]
    p = prox.doc_prompt("the " * 900, tok, 100)
    assert rows[1] == {"id": "b", "prompt": p.text, "prompt_token_ids": p.ids, "truncated": True}
    assert rows[0]["truncated"] is False
    r = run_tamis("prox", "prompts", src, "-o", tmp_path / "x.parquet", "--tokenizer", path, "--stage", "doc")
    assert r.returncode == 1 and "JSONL" in r.stderr
