"""ProX refining-model inference on CPU with a tiny random Llama and a Llama-2-style tokenizer
built here (nothing downloaded)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from prox_models import make_model_dir  # noqa: E402
from tamis import _core  # noqa: E402
from tamis.prox import Acceptance  # noqa: E402
from tamis.prox_grammar import ProgramAutomaton, Vocabulary  # noqa: E402
from tamis.prox_infer import ProxModelError, Refiner, plan_batches  # noqa: E402

# Two shared cores: torch's thread pool only adds contention for a model this small.
torch.set_num_threads(1)
ACCEPT = Acceptance()._args()  # the reference rule
WORDS = "the quick brown fox jumps over lazy dog water boils at degrees Home About Copyright".split()


def _docs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        "\n".join(
            " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 14)))
            for _ in range(rng.randrange(1, 12))
        )
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("prox_models")
    return make_model_dir(root / "doc", seed=1), make_model_dir(root / "chunk", seed=2)


def refine_records(refiner: Refiner, records: list[dict]) -> list[dict]:
    """What `tamis prox refine` writes, spelled out: refined text, the original in raw_content,
    the programs in metadata; dropped records left out."""
    res = refiner.refine([r["text"] for r in records])
    out = []
    for r, new, dp, cp in zip(records, res.texts, res.doc_programs, res.chunk_programs, strict=True):
        if not new:
            continue
        r = {**r, "text": new, "raw_content": r["text"]}
        r["metadata"] = {**r.get("metadata", {}), "doc_program": dp or "", "chunk_program": cp or ""}
        out.append(r)
    return out


def _refiner(models: tuple[Path, Path], **kw: object) -> Refiner:
    opts: dict = {"device": "cpu", "doc_max_new_tokens": 6, "chunk_max_new_tokens": 24, "batch_tokens": 4096}
    opts.update(kw)
    doc = opts.pop("doc_model", models[0])
    chunk = opts.pop("chunk_model", models[1])
    return Refiner(doc, chunk, **opts)


def test_two_stages_from_python(models):
    long_doc = " ".join(WORDS * 250)  # well over 2000 tokens
    docs = [*_docs(6), "", long_doc]
    r = _refiner(models)
    res = r.refine(docs)
    assert len(res.texts) == len(docs)
    assert res.texts[6] == "" and res.doc_programs[6] == ""  # empty: dropped, never prompted
    st = r.stats_dict()
    assert st["doc"]["documents"] == 8 and st["doc"]["reasons"].get("empty") == 1
    assert st["doc"]["truncated_prompts"] == 1 and st["doc"]["prompts"] == 7
    assert st["doc"]["kept"] + st["doc"]["dropped"] == 8
    assert st["chunk"]["documents"] == st["doc"]["kept"]
    assert st["chunk"]["prompts"] >= st["chunk"]["documents"]
    # Every program is what the executor was given: re-running it in Rust gives the same text.
    for text, out, dp, cp in zip(docs, res.texts, res.doc_programs, res.chunk_programs, strict=True):
        kept = _core.prox_execute_list("doc", [text], [dp], "compat", ACCEPT)[0]
        if cp is None:
            assert out == "" and (not kept or not text)
        else:
            assert out == _core.prox_execute_list("chunk", [kept], [cp], "compat", ACCEPT)[0]
    share = st["chunk"]["token_share_kept"]
    assert share is None or 0.0 <= share <= 1.0


def test_batched_equals_one_by_one(models):
    r = _refiner(models, stage="doc", chunk_model=None, doc_max_new_tokens=12)
    backend, tok = r._doc  # type: ignore[misc]
    prompts = [p[0] for p in _core.prox_doc_prompts(_docs(20, 3), tok, True, 2000, r.template._args())]
    budgets = [12 - (i % 5) for i in range(len(prompts))]  # per-sequence limits differ too
    batched = backend.generate(prompts, budgets)
    one = [backend.generate([p], [b]) for p, b in zip(prompts, budgets, strict=True)]
    assert batched.texts == [g.texts[0] for g in one]
    assert batched.tokens == [g.tokens[0] for g in one]
    assert all(0 < t <= b for t, b in zip(batched.tokens, budgets, strict=True))


def test_plan_batches_respects_the_token_budget():
    lengths = [5, 100, 30, 30, 7, 64, 1]
    batches = plan_batches(lengths, [10] * 7, batch_tokens=150)
    assert sorted(i for b in batches for i in b) == list(range(7))
    for b in batches:
        width = max(lengths[i] for i in b) + 10
        assert len(b) == 1 or len(b) * width <= 150
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)


def test_grammar_admits_only_parseable_programs(models):
    vocab = Vocabulary((models[1] / "tokenizer.json").read_text())
    rng = random.Random(7)
    for _ in range(200):
        lo = rng.randrange(0, 1200)
        hi = lo + rng.randrange(0, 40)
        a = ProgramAutomaton(vocab, lo, hi, eos=2)
        budget = rng.randrange(1, 90)
        pieces = []
        for step in range(budget):
            ids, strings = a.allowed(budget - step)
            cand = ids + (vocab.string_ids if strings else [])
            assert cand
            non_eos = [i for i in cand if i != 2]
            t = rng.choice(non_eos if non_eos and rng.random() < 0.95 else cand)
            a.advance(t)
            if a.done:
                break
            pieces.append(vocab.pieces[t])
        program = "".join(pieces)
        text = "\n".join(f"line {i} " + " ".join(WORDS) for i in range(hi + 1))
        for mode in ("strict", "compat"):
            out = _core.prox_outcomes("chunk", [text], [program], mode, ACCEPT)[0]
            assert out[3] == 0, (mode, program)


def test_constrained_decoding_from_random_weights_always_parses(models):
    docs = _docs(12, 5)
    r = _refiner(models, stage="chunk", doc_model=None, mode="strict", chunk_max_new_tokens=40)
    res = r.refine(docs)
    assert r.stats_dict()["chunk"]["programs_with_errors"] == 0
    programs = [p for p in res.chunk_programs if p is not None]
    assert any(p.strip() for p in programs)
    for text, p in zip(docs, res.chunk_programs, strict=True):
        assert _core.prox_outcomes("chunk", [text], [p], "strict", ACCEPT)[0][3] == 0
        assert _core.prox_outcomes("chunk", [text], [p], "compat", ACCEPT)[0][3] == 0
    # Unconstrained, the same random model writes garbage that strict parsing rejects.
    free = _refiner(
        models, stage="chunk", doc_model=None, mode="strict", constrain=False, chunk_max_new_tokens=40
    )
    free.refine(docs)
    assert free.stats_dict()["chunk"]["programs_with_errors"] > 0


def test_fast_doc_path_with_full_budget_equals_greedy(models):
    docs = _docs(8, 9)
    full = _refiner(models, stage="doc", chunk_model=None, doc_max_new_tokens=5).refine(docs)
    fast = _refiner(models, stage="doc", chunk_model=None, doc_fast_tokens=5).refine(docs)
    short = _refiner(models, stage="doc", chunk_model=None, doc_fast_tokens=1).refine(docs)
    assert fast.doc_programs == full.doc_programs and fast.texts == full.texts
    assert all(
        len(p or "") <= len(f or "") for p, f in zip(short.doc_programs, full.doc_programs, strict=True)
    )


def test_model_errors_are_clear(models, tmp_path, monkeypatch):
    with pytest.raises(ProxModelError, match="no such directory"):
        Refiner(tmp_path / "missing", None, stage="doc")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text("{}")
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"\0")
    with pytest.raises(ProxModelError, match="safetensors"):
        Refiner(tmp_path / "bin", None, stage="doc")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ProxModelError, match="--doc-model DIR"):
        Refiner("gair-prox/web-doc-refining-lm", None, stage="doc")
    with pytest.raises(ValueError, match="needs a chunk model"):
        Refiner(models[0], None, stage="both")


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_cli_python_polars_agree(models, tmp_path):
    pl = pytest.importorskip("polars")
    from tamis.polars import prox_refine

    docs = [*_docs(5, 11), ""]
    records = [{"id": str(i), "text": t, "metadata": {"source": "x"}} for i, t in enumerate(docs)]
    _write_jsonl(tmp_path / "in.jsonl", records)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = ["--doc-model", str(models[0]), "--chunk-model", str(models[1]), "--device", "cpu"]
    args += [
        "--doc-max-new-tokens",
        "6",
        "--chunk-max-new-tokens",
        "24",
        "--stats-json",
        str(tmp_path / "s.json"),
    ]
    cmd = [sys.executable, "-m", "tamis", "prox", "refine", str(tmp_path / "in.jsonl"), "-o"]
    p = subprocess.run([*cmd, str(tmp_path / "out.jsonl"), *args], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    cli = _read_jsonl(tmp_path / "out.jsonl")
    expected = refine_records(_refiner(models), records)
    assert cli == expected
    assert all(r["raw_content"] == docs[int(r["id"])] and r["metadata"]["source"] == "x" for r in cli)
    assert all("doc_program" in r["metadata"] and "chunk_program" in r["metadata"] for r in cli)
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["documents_read"] == 6 and stats["documents_kept"] == len(cli)
    assert stats["counters"]["prox_prompts"] > 0

    df = pl.DataFrame({"id": [r["id"] for r in records], "text": docs})
    out = df.pipe(prox_refine, refiner=_refiner(models))
    assert out["text"].to_list() == [r["text"] for r in expected]
    assert out["chunk_program"].to_list() == [r["metadata"]["chunk_program"] for r in expected]

    bad = subprocess.run(
        [*cmd, str(tmp_path / "o2.jsonl"), "--doc-model", str(tmp_path / "nope"), "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "no such directory" in bad.stderr
    assert not (tmp_path / "o2.jsonl").exists()


def test_datatrove_stages_resume_to_the_same_output(models, tmp_path):
    pytest.importorskip("datatrove")
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from tamis.datatrove import ProxChunkStage, ProxDocStage

    data = tmp_path / "data"
    data.mkdir()
    docs = _docs(8, 13)
    for k in range(2):
        _write_jsonl(
            data / f"part{k}.jsonl", [{"id": f"{k}-{i}", "text": t} for i, t in enumerate(docs[k::2])]
        )
    opts = {"device": "cpu", "batch_tokens": 4096}

    class FailOnce:
        """Fails in task 1 the first time: an interrupted run."""

        name = "fail once"

        def __init__(self, flag: Path) -> None:
            self.flag = flag

        def __call__(self, data, rank: int = 0, world_size: int = 1):
            if rank == 1 and not self.flag.exists():
                self.flag.write_text("x")
                raise RuntimeError("interrupted")
            yield from data

    def pipeline(out: Path, flag: Path | None) -> list:
        steps = [
            JsonlReader(str(data)),
            ProxDocStage(str(models[0]), doc_max_new_tokens=6, **opts),
            ProxChunkStage(str(models[1]), chunk_max_new_tokens=24, **opts),
        ]
        if flag is not None:
            steps.append(FailOnce(flag))
        return [*steps, JsonlWriter(str(out), output_filename="${rank}.jsonl", compression=None)]

    def run(out: Path, logs: Path, flag: Path | None) -> None:
        LocalPipelineExecutor(pipeline(out, flag), tasks=2, workers=1, logging_dir=str(logs)).run()

    run(tmp_path / "clean", tmp_path / "logs_clean", None)
    with pytest.raises(Exception):  # noqa: B017 - the executor reports the failed task
        run(tmp_path / "resumed", tmp_path / "logs_resumed", tmp_path / "flag")
    assert (tmp_path / "resumed" / "00000.jsonl").exists()
    assert not (tmp_path / "resumed" / "00001.jsonl").exists()
    run(tmp_path / "resumed", tmp_path / "logs_resumed", tmp_path / "flag")
    for name in ("00000.jsonl", "00001.jsonl"):
        a = _read_jsonl(tmp_path / "clean" / name)
        b = _read_jsonl(tmp_path / "resumed" / name)
        assert [(r["id"], r["text"], r["metadata"]) for r in a] == [
            (r["id"], r["text"], r["metadata"]) for r in b
        ]
    refined = _read_jsonl(tmp_path / "clean" / "00000.jsonl") + _read_jsonl(
        tmp_path / "clean" / "00001.jsonl"
    )
    expected = _refiner(models).refine(docs)
    assert sorted(r["text"] for r in refined) == sorted(t for t in expected.texts if t)


class _Completions(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["prompt"]
        assert isinstance(prompt, list) and all(isinstance(t, int) for t in prompt)
        assert body["temperature"] == 0.0 and body["max_tokens"] > 0
        text = self.server.answer(prompt)  # type: ignore[attr-defined]
        data = json.dumps(
            {"choices": [{"index": 0, "text": text}], "usage": {"completion_tokens": 3}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_openai_backend_against_a_local_server(models):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(models[0] / "tokenizer.json"))
    server = HTTPServer(("127.0.0.1", 0), _Completions)

    def answer(prompt: list[int]) -> str:
        text = tok.decode(prompt)
        if "[doc]" in text:
            return " remove_lines(line_start=0, line_end=0)"
        return " drop_doc()" if "DROPME" in text else " keep_doc()"

    server.answer = answer  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        r = Refiner(
            models[0], models[1], backend="openai", base_url=f"http://127.0.0.1:{server.server_port}/v1"
        )
        head = "Home About Contact"
        body = "\n".join(" ".join(WORDS) for _ in range(3))
        res = r.refine([f"{head}\n{body}", f"DROPME\n{body}", ""])
    finally:
        server.shutdown()
    assert res.texts == [body, "", ""]
    assert res.doc_programs == ["keep_doc()", "drop_doc()", ""]
    assert res.chunk_programs[0] == "remove_lines(line_start=0, line_end=0)"
    assert r.stats_dict()["doc"]["generated_tokens"] == 6
