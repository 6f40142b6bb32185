"""Requests per second of `tamis prox annotate` against a local OpenAI-compatible server (the
scripted stub of the tests, in a process of its own): the client must never be the bottleneck
(goal: >= 1,000 requests/s on the project machine). Prints one JSON line per run.

    python benchmarks/bench_annotate.py [--docs 20000] [--stage doc] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def _wait(url: str) -> None:
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=0.2)
        except urllib.error.HTTPError:
            return  # the server answers (405 to GET)
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the stub server did not start")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--docs", type=int, default=20000)
    p.add_argument("--stage", choices=["doc", "chunk"], default="doc")
    p.add_argument("--concurrency", type=int, default=64)
    a = p.parse_args()
    from prox_models import build_tokenizer
    from tamis.prox_annotate import AnnotateOptions, annotate

    work = Path(tempfile.mkdtemp(prefix="bench_annotate_"))
    tok = build_tokenizer()
    tok.save(str(work / "tok.json"))  # type: ignore[attr-defined]
    with open(work / "in.jsonl", "w") as f:
        for i in range(a.docs):
            lines = [
                f"Home | News | NAV {i}",
                f"Paragraph {i}: the committee met on Tuesday and agreed on the budget for next year.",
                "Members asked for a second reading before the vote, which was granted.",
                f"https://example.org/minutes/{i} URL",
                f"Copyright {i % 50 + 1970} FOOT",
            ]
            f.write(json.dumps({"id": i, "text": "\n".join(lines) + f"\nEDU={i % 6} FMT={i % 5}"}) + "\n")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(HERE.parent / "tests" / "openai_stub.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/v1/chat/completions")
        o = AnnotateOptions(
            stage=a.stage,
            endpoint=f"http://127.0.0.1:{port}/v1",
            model="stub",
            tokenizer=str(work / "tok.json"),
            concurrency=a.concurrency,
        )
        t = time.perf_counter()
        r = annotate([str(work / "in.jsonl")], str(work / "sft.jsonl"), o)
        wall = time.perf_counter() - t
    finally:
        server.terminate()
        server.wait()
    print(
        json.dumps(
            {
                "stage": a.stage,
                "documents": a.docs,
                "requests": r["requests"],
                "records": r["records"],
                "concurrency": a.concurrency,
                "seconds": round(wall, 2),
                "requests_per_second": round(r["requests"] / wall, 1),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
