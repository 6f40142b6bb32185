"""Ctrl-C, SIGTERM and SIGHUP: the work stops within about a second, the previous output stays
as it was, no temporary file is left, and the exit is 128 + the signal with one line and no
traceback, from the console script and from Python calls (KeyboardInterrupt)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TAMIS

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

OLD = b"the previous output\n"
RECORD = b'{"id": 1, "text": "a b c"}\n'


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if "tamis" in p.name and p.name.startswith("."))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_stops_the_command_line_cleanly(tmp_path, sig):
    out = tmp_path / "out.jsonl"
    out.write_bytes(OLD)
    # Standard input that stays open: the run waits for more records until the signal.
    p = subprocess.Popen(
        [*TAMIS, "dedup", "exact", "-", "-o", out], stdin=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert p.stdin is not None and p.stderr is not None
    p.stdin.write(RECORD)
    p.stdin.flush()
    time.sleep(1.5)  # well into the run (the console script starts Python first)
    assert p.poll() is None
    sent = time.monotonic()
    p.send_signal(sig)
    rc = p.wait(timeout=30)
    elapsed = time.monotonic() - sent
    err = p.stderr.read().decode()
    p.stdin.close()
    assert rc == 128 + sig, err
    assert elapsed < 3, elapsed
    assert err.splitlines() == [
        f"tamis: interrupted by {sig.name}: stopped; nothing was written and the previous output is untouched"
    ]
    assert out.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_a_python_call_raises_keyboard_interrupt_promptly(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(OLD)
    code = f"""
import time, tamis.dedup as d
try:
    d.exact("-", {str(out)!r})
    print("finished")
except KeyboardInterrupt:
    print("KeyboardInterrupt")
"""
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(RECORD)
    p.stdin.flush()
    time.sleep(1.5)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=30)
    elapsed = time.monotonic() - sent
    p.stdin.close()
    assert rc == 0 and p.stdout.read().decode().split() == ["KeyboardInterrupt"], rc
    assert elapsed < 3, elapsed
    assert out.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_signals_at_random_moments_leave_old_or_complete_output(tmp_path):
    """Near dedup with --verify over a few MB, stopped at random moments: the output is either
    the old one or exactly what an uninterrupted run writes; never partial, never temp files."""
    rng = random.Random(7)
    words = [f"w{i}" for i in range(300)]
    src = tmp_path / "in.jsonl"
    with src.open("w") as f:
        for i in range(60_000):
            f.write(json.dumps({"id": i, "text": " ".join(rng.choice(words) for _ in range(40))}) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    reference = tmp_path / "reference.jsonl"
    subprocess.run([*TAMIS, "-q", "dedup", "near", src, "-o", reference, "--verify"], check=True)
    full = reference.read_bytes()
    outcomes = set()
    for delay in [0.0, 0.2, 0.5, 0.8, 1.2, 2.0, *(rng.uniform(0, 3) for _ in range(4))]:
        out = work / "out.jsonl"
        out.write_bytes(OLD)
        p = subprocess.Popen(
            [*TAMIS, "-q", "dedup", "near", src, "-o", out, "--verify"], stderr=subprocess.PIPE
        )
        time.sleep(delay)
        sig = rng.choice([signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
        p.send_signal(sig)
        rc = p.wait(timeout=60)
        assert p.stderr is not None
        err = p.stderr.read().decode()
        assert "Traceback" not in err and "panicked" not in err, err
        if rc == 0:
            assert out.read_bytes() == full
            outcomes.add("finished")
        else:
            # Before the handlers are in place the default action applies (-sig); after, 128+sig.
            assert rc in (128 + sig, -sig), (rc, err)
            assert out.read_bytes() == OLD
            outcomes.add("stopped")
        assert leftovers(work) == [], delay
    assert "stopped" in outcomes
