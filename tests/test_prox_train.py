"""ProX refining-model training and evaluation (tamis.prox_train) on CPU: the metrics against an
independent oracle, tokenization against what the refiner sends, and tiny random Llamas taught
on synthetic data (link lists dropped; navigation and cookie-banner lines removed) until they
refine held-out documents as the rules say. Nothing is downloaded."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tamis.prox as prox  # noqa: E402
from tamis import prox_eval as pe  # noqa: E402
from tamis import prox_train as pt  # noqa: E402
from tamis.prox_infer import Generation, Refiner  # noqa: E402

# Two shared cores.
torch.set_num_threads(2)

# --------------------------------------------------------------------------------------------
# Synthetic documents and labels

PROSE = (
    "the a river city garden teacher student history science water light music winter summer "
    "morning evening village market doctor farmer bridge mountain forest ocean library museum "
    "children family friend story lesson paper window kitchen table season festival harvest "
    "walks reads builds carries finds opens closes watches learns paints writes visits grows "
    "quiet bright old young small large warm cold early late green careful gentle famous "
    "near under across through after before during with without"
).split()
SITES = "news shop blog travel sports weather music games deals forum photos video".split()
PAGES = "home index latest top best cheap free new archive page list tags".split()
NAV = [
    "Home | About | Contact | Login",
    "Menu | Products | Services | Support",
    "Home > Blog > Archive",
    "Sign in | Register | Help",
    "Skip to main content",
    "Search this site",
]
BANNER = [
    "We use cookies to improve your experience.",
    "Accept all cookies | Manage settings",
    "By continuing you agree to our cookie policy.",
    "Share on Facebook | Share on Twitter",
    "Copyright 2024. All rights reserved.",
    "Privacy policy | Terms of use",
]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(PROSE) for _ in range(rng.randrange(4, 8))).capitalize() + "."


def link(rng: random.Random) -> str:
    return f"- http://www.{rng.choice(SITES)}.com/{rng.choice(PAGES)}/{rng.choice(PAGES)}"


def page(rng: random.Random) -> tuple[str, list[tuple[int, int]], list[str]]:
    """A prose document with navigation lines at the start, banner lines at the end, or a block
    in the middle (or none): (text, removed line ranges, the prose lines that should remain)."""
    prose = [sentence(rng) for _ in range(rng.randrange(3, 6))]
    kind = rng.random()
    head = tail = mid = 0
    if kind < 0.3:
        head = rng.randrange(1, 4)
    elif kind < 0.55:
        tail = rng.randrange(1, 3)
    elif kind < 0.75:
        head, tail = rng.randrange(1, 3), rng.randrange(1, 3)
    elif kind < 0.9:
        mid = rng.randrange(1, 3)
    lines = [rng.choice(NAV) for _ in range(head)]
    blocks = [(0, head - 1)] if head else []
    if mid:
        cut = rng.randrange(1, len(prose))
        lines += prose[:cut] + [rng.choice(BANNER + NAV) for _ in range(mid)] + prose[cut:]
        blocks.append((head + cut, head + cut + mid - 1))
    else:
        lines += prose
    if tail:
        blocks.append((len(lines), len(lines) + tail - 1))
        lines += [rng.choice(BANNER) for _ in range(tail)]
    return "\n".join(lines), blocks, prose


def link_list(rng: random.Random) -> str:
    lines = [link(rng) for _ in range(rng.randrange(4, 9))]
    if rng.random() < 0.4:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(NAV))
    return "\n".join(lines)


def chunk_program(blocks: list[tuple[int, int]]) -> str:
    if not blocks:
        return "keep_chunk()"
    return "\n".join(f"remove_lines(line_start={a}, line_end={b})" for a, b in blocks)


def build_tokenizer() -> Any:
    """A word-level tokenizer: words (with their leading space) and numbers are single tokens,
    every other character is a token of its own; decoding concatenates. `[007]` costs three
    tokens and `line_start=7` three."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r" ?[A-Za-z_]+| ?\d+|\s|[^\w\s]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    rng = random.Random(12345)
    corpus = [
        prox.LLAMA2.render("[doc]\nx\n[/doc]"),
        "keep_chunk()",
        "keep_doc()",
        "drop_doc()",
        'normalize(source_str="a", target_str="")',
        *(f"[{i:03d}]x\n" + chunk_program([(i, i + 1), (i + 2, i + 3)]) for i in range(64)),
        *(page(rng)[0] for _ in range(300)),
        *(link_list(rng) for _ in range(300)),
        " ".join(PROSE) + " " + " ".join(w.capitalize() for w in PROSE),
    ]
    trainer = trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>", "</s>"], vocab_size=100_000)
    tok.train_from_iterator(corpus, trainer)
    return tok


def doc_records(tok: Any, n: int, seed: int) -> list[dict]:
    """Doc-stage SFT records as `tamis prox annotate` writes them: link lists -> drop_doc(),
    prose (boilerplate lines and all) -> keep_doc()."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        keep = rng.random() < 0.5
        text = page(rng)[0] if keep else link_list(rng)
        p = prox.doc_prompt(text, tok)
        out.append(
            {
                "id": f"doc-{seed}-{i}",
                "stage": "doc",
                "prompt": p.text,
                "prompt_token_ids": p.ids,
                "truncated": p.truncated,
                "program": "keep_doc()" if keep else "drop_doc()",
                "text": text,
                "language": "en",
            }
        )
    return out


def chunk_records(tok: Any, n: int, seed: int) -> list[dict]:
    """Chunk-stage SFT records: one chunk per (short) document."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text, blocks, _ = page(rng)
        (prompt,) = prox.chunk_prompts(text, tok)
        out.append(
            {
                "id": f"page-{seed}-{i}",
                "stage": "chunk",
                "prompt": prompt,
                "program": chunk_program(blocks),
                "text": text,
                "chunk": 0,
                "chunks": 1,
                "first_line": 0,
                "lines": text.count("\n") + 1,
            }
        )
    return out


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def make_base(path: Path, tok: Any, *, hidden: int = 64, layers: int = 3, seed: int = 0) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    path.mkdir(parents=True)
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("prox_train")
    tok = build_tokenizer()
    return {"root": root, "tok": tok, "base": make_base(root / "base", tok)}


TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def doc_model(world: dict[str, Any]) -> tuple[Path, dict, list[dict]]:
    root, tok = world["root"], world["tok"]
    data = write_jsonl(root / "doc_sft.jsonl", doc_records(tok, 200, seed=1))
    out = root / "doc_model"
    t0 = time.perf_counter()
    rc = pt.cli_train(
        ["--data", str(data), "--base", str(world["base"]), "-o", str(out), "--epochs", "3", "--lr", "3e-3"]
        + ["--batch-tokens", "1024", "--device", "cpu", "--seed", "0", "-q"]
    )
    TIMES["train doc"] = time.perf_counter() - t0
    assert rc == 0
    return out, json.loads((out / "train_log.json").read_text()), doc_records(tok, 100, seed=2)


@pytest.fixture(scope="module")
def chunk_model(world: dict[str, Any]) -> tuple[Path, dict, list[dict]]:
    root, tok = world["root"], world["tok"]
    data = write_jsonl(root / "chunk_sft.jsonl", chunk_records(tok, 2000, seed=3))
    out = root / "chunk_model"
    t0 = time.perf_counter()
    rc = pt.cli_train(
        ["--data", str(data), "--base", str(world["base"]), "-o", str(out), "--epochs", "8", "--lr", "2e-3"]
        + ["--batch-tokens", "1024", "--device", "cpu", "--seed", "0", "--val-fraction", "0.1", "-q"]
    )
    TIMES["train chunk"] = time.perf_counter() - t0
    assert rc == 0
    return out, json.loads((out / "train_log.json").read_text()), chunk_records(tok, 100, seed=4)


# --------------------------------------------------------------------------------------------
# The metrics against an oracle written with plain sets and counts

REMOVE = re.compile(r"remove_lines\(line_start=(\d+), line_end=(\d+)\)")


def oracle_removed(program: str, first: int, n: int) -> set[int]:
    """Lines a (compat-executed) chunk program removes inside [first, first + n): only whole,
    well-formed keyword calls count."""
    out: set[int] = set()
    for line in program.split("\n"):
        m = REMOVE.fullmatch(line)
        if m:
            out |= {i for i in range(int(m[1]), int(m[2]) + 1) if first <= i < first + n}
    return out


def oracle_f1(tp: int, fp: int, fn: int) -> float:
    if tp + fp + fn == 0:
        return 1.0
    if tp == 0:
        return 0.0
    p, r = tp / (tp + fp), tp / (tp + fn)
    return 2 * p * r / (p + r)


def oracle(records: list[dict], preds: list[str], malformed: list[bool]) -> dict:
    words = lambda t: len(t.split())  # noqa: E731
    tp = fp = fn = tn = 0
    ltp = lfp = lfn = 0
    total = kept = 0
    doc_n = chunk_n = 0
    for r, p in zip(records, preds, strict=True):
        total += words(r["text"])
        if r["stage"] == "doc":
            doc_n += 1
            pk, gk = "drop" not in p, "drop" not in r["program"]
            tp += pk and gk
            fp += pk and not gk
            fn += gk and not pk
            tn += not pk and not gk
            kept += words(r["text"]) if pk else 0
        else:
            chunk_n += 1
            first, n = r["first_line"], r["lines"]
            P, G = oracle_removed(p, first, n), oracle_removed(r["program"], first, n)
            ltp += len(P & G)
            lfp += len(P - G)
            lfn += len(G - P)
            lines = r["text"].split("\n")
            kept += sum(words(x) for k, x in enumerate(lines) if first + k not in P)
    return {
        "doc_records": doc_n,
        "chunk_records": chunk_n,
        "doc_f1": oracle_f1(tp, fp, fn) if doc_n else None,
        "doc_drop_f1": oracle_f1(tn, fn, fp) if doc_n else None,
        "doc_accuracy": (tp + tn) / doc_n if doc_n else None,
        "chunk_line_f1": oracle_f1(ltp, lfp, lfn) if chunk_n else None,
        "chunk_line_precision": (ltp / (ltp + lfp) if ltp + lfp else float(lfn == 0)) if chunk_n else None,
        "chunk_line_recall": (ltp / (ltp + lfn) if ltp + lfn else float(lfp == 0)) if chunk_n else None,
        "malformed_rate": sum(malformed) / len(records),
        "kept_token_ratio": kept / total,
    }


# (program, malformed for the strict parser)
DOC_PREDICTIONS = [
    ("keep_doc()", False),
    ("drop_doc()", False),
    ("", False),  # no decision: kept
    ("keep_doc()  # we might drop it later", False),  # compat: "drop" anywhere drops
    ("drop_doc", True),
    ("maybe", True),
    ("keep_doc()\ndrop_doc()", True),  # a contradicting second decision
]


def chunk_prediction(rng: random.Random, first: int, n: int) -> tuple[str, bool]:
    """A random chunk program made of well-formed and broken lines, and whether the strict
    parser reports an error for it."""
    last = first + n - 1
    lines, bad = [], False
    for _ in range(rng.randrange(0, 4)):
        k = rng.randrange(9)
        a = rng.randrange(first, last + 1)
        if k <= 2:
            b = rng.randrange(a, last + 1)
            lines.append(f"remove_lines(line_start={a}, line_end={b})")
        elif k == 3:  # past the chunk's last line
            lines.append(f"remove_lines(line_start={a}, line_end={last + rng.randrange(1, 5)})")
            bad = True
        elif k == 4:  # reversed
            lines.append(f"remove_lines(line_start={a + 2}, line_end={a})")
            bad = True
        elif k == 5:
            lines.append(
                rng.choice(['normalize(source_str="cookies", target_str="")', "keep_chunk()", "# ok"])
            )
        elif k == 6:
            lines.append(f"remove_lines(line_start={a}, line_end={a}")  # unclosed
            bad = True
        elif k == 7:
            lines.append(rng.choice(["delete_lines(1, 2)", "drop_doc()"]))
            bad = True
        elif first > 0:  # lines of an earlier chunk: nothing in range, not an error
            lines.append(f"remove_lines(line_start={rng.randrange(first)}, line_end={first - 1})")
    return "\n".join(lines), bad


def scripted(seed: int) -> tuple[list[dict], list[str], list[bool]]:
    rng = random.Random(seed)
    records, preds, bad = [], [], []
    for d in range(12):
        text = "\n".join(sentence(rng) for _ in range(rng.randrange(1, 5)))
        records.append(
            {
                "id": f"d{d}",
                "stage": "doc",
                "prompt": "p",
                "program": rng.choice(["keep_doc()", "drop_doc()"]),
                "text": text,
            }
        )
        p, b = rng.choice(DOC_PREDICTIONS)
        preds.append(p)
        bad.append(b)
    for d in range(10):
        lines = [sentence(rng) for _ in range(rng.randrange(1, 30))]
        first = 0
        while first < len(lines):
            n = rng.randrange(1, 9)
            chunk = lines[first : first + n]
            n = len(chunk)
            blocks, i = [], first
            while i < first + n:
                if rng.random() < 0.3:
                    j = rng.randrange(i, first + n)
                    blocks.append((i, j))
                    i = j + 2
                else:
                    i += 1
            records.append(
                {
                    "id": f"c{d}",
                    "stage": "chunk",
                    "prompt": "p",
                    "program": chunk_program(blocks),
                    "text": "\n".join(chunk),
                    "first_line": first,
                    "lines": n,
                }
            )
            p, b = chunk_prediction(rng, first, n)
            preds.append(p)
            bad.append(b)
            first += n
    return records, preds, bad


def words_counter(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_oracle(seed):
    records, preds, bad = scripted(seed)
    m = pe.metrics(records, preds, words_counter)
    want = oracle(records, preds, bad)
    for k, v in want.items():
        assert m[k] == pytest.approx(v), k
    assert m["malformed"] == sum(bad)
    # The targets scored against themselves.
    m = pe.metrics(records, [r["program"] for r in records], words_counter)
    assert m["doc_f1"] == m["doc_drop_f1"] == m["chunk_line_f1"] == m["doc_accuracy"] == 1.0
    assert m["malformed_rate"] == 0.0 and m["kept_token_ratio"] == m["target_kept_token_ratio"]


def test_metrics_edge_cases():
    chunk = {"id": "a", "stage": "chunk", "prompt": "p", "text": "x y\nz", "first_line": 5, "lines": 2}
    # Nothing removed by either side: 1.0; a stage without records: nulls.
    m = pe.metrics([{**chunk, "program": "keep_chunk()"}], ["keep_chunk()"], words_counter)
    assert m["chunk_line_f1"] == 1.0 and m["doc_f1"] is None and m["doc_records"] == 0
    assert m["kept_token_ratio"] == 1.0
    # Line numbers are document-global: line 5 is this chunk's first line.
    m = pe.metrics(
        [{**chunk, "program": "remove_lines(line_start=5, line_end=5)"}],
        ["remove_lines(line_start=0, line_end=4)"],
        words_counter,
    )
    assert (
        m["chunk_line_f1"] == 0.0 and m["kept_token_ratio"] == 1.0 and m["target_kept_token_ratio"] == 1 / 3
    )
    assert m["malformed_rate"] == 0.0
    # A mismatch in length is an error.
    with pytest.raises(ValueError, match="2 predicted programs for 1 records"):
        pe.metrics([{**chunk, "program": ""}], ["", ""], words_counter)
    # Nothing at all: everything null.
    m = pe.metrics([], [], words_counter)
    assert m["malformed_rate"] is None and m["kept_token_ratio"] is None and m["chunk_line_f1"] is None


# --------------------------------------------------------------------------------------------
# Tokenization: what the refiner sends


class Capture:
    """A backend that records the prompts it gets and writes nothing (documents kept)."""

    def __init__(self) -> None:
        self.prompts: list[list[int]] = []

    def generate(self, prompts, max_new_tokens, constraints=None):
        self.prompts += [list(p) for p in prompts]
        return Generation([""] * len(prompts), [0] * len(prompts))


def test_prompt_ids_are_what_the_refiner_sends(world):
    tok, base = world["tok"], world["base"]
    docs = doc_records(tok, 6, seed=50)
    # One long document: several chunks, later ones starting past line 0.
    rng = random.Random(51)
    long_text = "\n".join(sentence(rng) for _ in range(400))
    texts = [r["text"] for r in docs] + [long_text]
    chunks = []
    for t in texts:
        prompts = prox.chunk_prompts(t, tok)
        chunks += [
            {"id": "x", "stage": "chunk", "prompt": p, "program": "", "text": "", "first_line": 0}
            for p in prompts
        ]
    assert len(prox.chunk_prompts(long_text, tok)) > 1
    r = Refiner(base, base, stage="both", device="cpu")
    doc_cap, chunk_cap = Capture(), Capture()
    r._doc = (doc_cap, r._doc[1])
    r._chunk = (chunk_cap, r._chunk[1])
    r.refine(texts)
    tj = (base / "tokenizer.json").read_text()
    docs_with_long = docs + [
        {**docs[0], "text": long_text, "prompt_token_ids": prox.doc_prompt(long_text, tok).ids}
    ]
    assert pe.prompt_ids(pe._as_records(docs_with_long), tj) == doc_cap.prompts
    assert pe.prompt_ids(pe._as_records(chunks), tj) == chunk_cap.prompts
    assert chunk_cap.prompts[0][:2] == [1, 1]  # the reference's double BOS
    assert pe.prompt_ids(pe._as_records(chunks), tj, chunk_extra_bos=False)[0][:2] != [1, 1]
    # Doc records without prompt_token_ids: the prompt encoded, as the refiner would.
    bare = [{k: v for k, v in d.items() if k != "prompt_token_ids"} for d in docs]
    assert pe.prompt_ids(pe._as_records(bare), tj) == doc_cap.prompts[: len(docs)]


def test_split_and_batches_are_deterministic():
    recs = pe.Records(
        [{"id": f"d{i // 3}", "stage": "chunk"} for i in range(300)], [f"line {i}" for i in range(300)]
    )
    tr, va = pe.split_records(recs, 0.2)
    tr2, va2 = pe.split_records(recs, 0.2)
    assert tr.where == tr2.where and va.where == va2.where
    assert 20 < len(va) < 100 and len(tr) + len(va) == 300
    # Every chunk of a document lands on the same side.
    assert not {r["id"] for r in tr.records} & {r["id"] for r in va.records}
    rng = random.Random(0)
    lengths = [rng.randrange(10, 300) for _ in range(500)]
    a = pt.plan_train_batches(lengths, 2048, seed=1, epoch=0)
    assert a == pt.plan_train_batches(lengths, 2048, seed=1, epoch=0)
    assert a != pt.plan_train_batches(lengths, 2048, seed=1, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(500))
    assert all(len(b) * max(lengths[i] for i in b) <= 2048 for b in a)
    assert pt.plan_train_batches([5000, 10], 2048, 0, 0) in ([[0], [1]], [[1], [0]])  # too long: alone
    # Warmup, then cosine from lr to min_lr at the last step.
    sched = [pt.lr_at(s, 100, 1e-3, 1e-4, 10) for s in range(100)]
    assert sched[0] == pytest.approx(1e-4) and sched[9] == pytest.approx(1e-3)
    assert sched[-1] == pytest.approx(1e-4) and all(
        x >= y for x, y in zip(sched[9:], sched[10:], strict=False)
    )


# --------------------------------------------------------------------------------------------
# Training and evaluation end to end


def test_doc_model_learns_to_drop_link_lists(world, doc_model):
    out, log, held_out = doc_model
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert (out / "tokenizer_config.json").is_file() and (out / "config.json").is_file()
    assert log["stage"] == "doc" and len(log["epochs"]) == 3 and log["metric"] == "doc_f1"
    for e in log["epochs"]:
        assert e["loss"] > 0 and e["tokens_per_s"] > 0 and "doc_f1" in e["val"]
    kept = log["epochs"][log["kept_epoch"] - 1]
    assert kept["val"]["doc_f1"] == max(e["val"]["doc_f1"] for e in log["epochs"]) == log["best"]
    assert log["epochs"][0]["loss"] > log["epochs"][-1]["loss"]
    # No temporary directories left next to the output.
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".doc_model")]
    m = pe.evaluate(out, held_out, device="cpu")
    print("held-out doc:", {k: m[k] for k in ("doc_f1", "doc_drop_f1", "malformed_rate")})
    assert m["doc_records"] == 100 and m["chunk_records"] == 0 and m["chunk_line_f1"] is None
    assert m["doc_f1"] >= 0.9 and m["doc_drop_f1"] >= 0.9 and m["malformed_rate"] <= 0.1
    # evaluate == metrics of the generated programs == the oracle on them.
    programs, _ = pe.generate_programs(out, held_out, device="cpu")
    bad = [bool(prox.explain("x", p, level="doc", mode="strict")["errors"]) for p in programs]
    want = oracle(held_out, programs, bad)
    tj = (out / "tokenizer.json").read_text()
    from tamis import _core

    want["kept_token_ratio"] = sum(
        _core.prox_token_counts(
            [r["text"] for r, p in zip(held_out, programs, strict=True) if "drop" not in p], tj, True
        )
    ) / sum(_core.prox_token_counts([r["text"] for r in held_out], tj, True))
    for k, v in want.items():
        assert m[k] == pytest.approx(v), k


def test_chunk_model_learns_to_remove_boilerplate_lines(doc_model, chunk_model):
    out, log, held_out = chunk_model
    assert log["stage"] == "chunk" and log["metric"] == "chunk_line_f1" and log["val_records"] > 50
    m = pe.evaluate(out, held_out, device="cpu")
    print("held-out chunk:", {k: m[k] for k in ("chunk_line_f1", "malformed_rate", "kept_token_ratio")})
    print("log:", [(e["epoch"], round(e["loss"], 4), e["val"]["chunk_line_f1"]) for e in log["epochs"]])
    print("times:", {k: round(v, 1) for k, v in TIMES.items()})
    assert m["chunk_line_f1"] >= 0.9 and m["malformed_rate"] <= 0.1
    assert m["kept_token_ratio"] == pytest.approx(m["target_kept_token_ratio"], abs=0.05)


def test_refiner_runs_the_trained_models(world, doc_model, chunk_model):
    """New documents through both trained models with the refiner: every link list dropped,
    every page kept, and (nearly) every page cleaned exactly: navigation and banner lines gone,
    the prose untouched."""
    rng = random.Random(99)
    texts, want = [], []
    for i in range(21):
        if i % 3 == 0:
            texts.append(link_list(rng))
            want.append("")
        else:
            text, _, prose = page(rng)
            texts.append(text)
            want.append("\n".join(prose))
    r = Refiner(
        doc_model[0],
        chunk_model[0],
        stage="both",
        device="cpu",
        doc_max_new_tokens=8,
        chunk_max_new_tokens=48,
    )
    res = r.refine(texts)
    assert [p.strip() for p in res.doc_programs] == ["drop_doc()" if not w else "keep_doc()" for w in want]
    assert [bool(t) for t in res.texts] == [bool(w) for w in want]
    pages = [(t, got, w) for t, got, w in zip(texts, res.texts, want, strict=True) if w]
    wrong = [p for p in pages if p[1] != p[2]]
    print(f"refined exactly as the rules say: {len(pages) - len(wrong)} of {len(pages)} pages")
    # A model trained for a minute on CPU: at most one page may be off (by a line).
    assert len(wrong) <= 1, wrong
    for _, got, w in wrong:
        assert len(set(got.split("\n")) ^ set(w.split("\n"))) <= 2
    # `tamis prox refine` with the same models and budgets writes the same texts.
    tmp = doc_model[0].parent
    inp, outp = tmp / "refine_in.jsonl", tmp / "refine_out.jsonl"
    inp.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    cmd = [sys.executable, "-m", "tamis", "-q", "prox", "refine", str(inp), "-o", str(outp)]
    cmd += ["--doc-model", str(doc_model[0]), "--chunk-model", str(chunk_model[0]), "--device", "cpu"]
    cmd += ["--doc-max-new-tokens", "8", "--chunk-max-new-tokens", "48"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(x) for x in outp.read_text().splitlines()]
    assert {r["id"]: r["text"] for r in rows} == {i: t for i, t in enumerate(res.texts) if t}


def test_cli_eval_json_and_table(world, doc_model, chunk_model, capsys):
    root = world["root"]
    mixed = write_jsonl(root / "mixed_eval.jsonl", doc_model[2][:10] + chunk_model[2][:10])
    rc = pe.cli_eval(["--model", str(doc_model[0]), "--data", str(mixed), "--json", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0
    one = json.loads(out)
    assert one["model"] == str(doc_model[0]) and one["doc_records"] == 10 and one["chunk_records"] == 10
    rc = pe.cli_eval(
        ["--model", str(doc_model[0]), "--model", str(chunk_model[0]), "--data", str(mixed), "--json"]
        + ["--device", "cpu", "--max-new-tokens", "48"]
    )
    both = json.loads(capsys.readouterr().out)
    assert rc == 0 and [x["model"] for x in both] == [str(doc_model[0]), str(chunk_model[0])]
    rc = pe.cli_eval(["--model", str(doc_model[0]), "--model", str(chunk_model[0]), "--data", str(mixed)])
    table = capsys.readouterr().out
    assert rc == 0 and "chunk_line_f1" in table and "doc_model" in table and "chunk_model" in table


# --------------------------------------------------------------------------------------------
# Errors: one line on stderr, exit code 1, no traceback


def _fails(capsys, argv: list[str], cli=pt.cli_train) -> str:
    rc = cli(argv)
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "Traceback" not in err
    return err


def test_train_errors(world, tmp_path, capsys):
    tok, base = world["tok"], str(world["base"])
    good = doc_records(tok, 3, seed=7)
    args = ["--base", base, "-o", str(tmp_path / "out"), "--device", "cpu"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(good[0]) + "\n" + '{"id": "x", "stage": \n')
    assert f"{bad}: line 2: not valid JSON" in _fails(capsys, ["--data", str(bad), *args])

    mixed = write_jsonl(tmp_path / "mixed.jsonl", good + chunk_records(tok, 2, seed=8))
    err = _fails(capsys, ["--data", str(mixed), *args])
    assert "mixed stages" in err and f"{mixed}: line 4" in err

    missing = tmp_path / "missing.jsonl"
    assert f"{missing}: no such file" in _fails(capsys, ["--data", str(missing), *args])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert "no records" in _fails(capsys, ["--data", str(empty), *args])

    noprog = write_jsonl(
        tmp_path / "noprog.jsonl", [good[0], {k: v for k, v in good[1].items() if k != "program"}]
    )
    assert f"{noprog}: line 2: the record has no 'program'" in _fails(capsys, ["--data", str(noprog), *args])
    noprompt = write_jsonl(tmp_path / "noprompt.jsonl", [{k: v for k, v in good[0].items() if k != "prompt"}])
    assert "line 1: the record has no 'prompt'" in _fails(capsys, ["--data", str(noprompt), *args])

    data = str(write_jsonl(tmp_path / "good.jsonl", good))
    for name, msg in (("model.safetensors", "no *.safetensors"), ("tokenizer.json", "no tokenizer.json")):
        broken = tmp_path / f"base-no-{name}"
        shutil.copytree(base, broken)
        (broken / name).unlink()
        err = _fails(capsys, ["--data", data, "--base", str(broken), "-o", str(tmp_path / "o")])
        assert msg in err and str(broken) in err
    assert "no such directory" in _fails(
        capsys, ["--data", data, "--base", str(tmp_path / "nope"), "-o", "x"]
    )

    # A validation file of the other stage; annotated with another tokenizer; bad options.
    chunks = str(write_jsonl(tmp_path / "chunks.jsonl", chunk_records(tok, 2, seed=9)))
    assert "mixed stages" in _fails(capsys, ["--data", data, "--val", chunks, *args])
    assert "no chunk-stage records" in _fails(
        capsys, ["--data", data, "--val", data, "--stage", "chunk", *args]
    )
    other = write_jsonl(tmp_path / "other.jsonl", [{**good[0], "prompt_token_ids": [1, 5, 9]}])
    assert "not this model's tokenization" in _fails(
        capsys, ["--data", str(other), "--val-fraction", "0", *args]
    )
    assert "--epochs" in _fails(capsys, ["--data", data, *args, "--epochs", "x"])
    assert "epochs must be >= 1" in _fails(capsys, ["--data", data, *args, "--epochs", "0"])
    assert "required" in _fails(capsys, ["--data", data])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    err = _fails(capsys, ["--data", data, "--base", base, "-o", str(tmp_path / "full")])
    assert "not empty" in err and "--overwrite" in err


def test_eval_errors(world, doc_model, tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", doc_model[2][:2])
    assert "no such directory" in _fails(
        capsys, ["--model", str(tmp_path / "nope"), "--data", str(data)], pe.cli_eval
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text("[1, 2]\n")
    err = _fails(capsys, ["--model", str(doc_model[0]), "--data", str(bad)], pe.cli_eval)
    assert f"{bad}: line 1: expected a JSON object" in err


def test_without_torch(world, tmp_path, capsys, monkeypatch):
    data = write_jsonl(tmp_path / "d.jsonl", doc_records(world["tok"], 2, seed=11))
    monkeypatch.setitem(sys.modules, "torch", None)
    err = _fails(capsys, ["--data", str(data), "--base", str(world["base"]), "-o", str(tmp_path / "o")])
    assert "install 'tamis[prox]'" in err
