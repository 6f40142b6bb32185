#!/usr/bin/env python3
"""Exact-deduplication benchmark: tamis (CLI and Python API) against plain Python and polars.

All implementations run on the same JSONL file in the same invocation, each in its own
subprocess, each writing its JSONL output to ``benchmarks/out/``:

* ``tamis-cli-t1``     the release CLI with ``--threads 1``
* ``tamis-cli-tN``     the release CLI with ``--threads N`` (N = all cores by default)
* ``tamis-python``     ``tamis.dedup.exact(...)`` with ``threads=0`` (all cores)
* ``python-baseline``  ``json.loads`` per line + ``hashlib.blake2b`` of the text + a set
* ``polars``           ``pl.scan_ndjson(...).unique(subset="text", keep="first",
                       maintain_order=True).sink_ndjson(...)`` (falls back to
                       ``collect().write_ndjson`` if the sink fails, and says so)

For each run: wall seconds of the whole subprocess (interpreter start-up and imports included),
the time measured inside the process around the work itself, docs/s, MB/s (input file bytes, 10^6
per MB, per wall second), CPU use ((user+sys)/wall), docs and MB per CPU-second (user+sys: the
"per core" rate), the CPU that other processes used meanwhile
("other load", in cores, from /proc/stat), and the peak RSS of that child (GNU ``/usr/bin/time``;
without it, ``os.wait4``, which cannot report less than this script's own peak RSS). The page
cache is warmed by reading the input once before the first run, and ``sync`` runs between runs so
no run pays for an earlier run's dirty pages.

Checks, reported loudly (exit status 1) when they fail: every implementation keeps the same number
of documents, equal to the generator's count of unique texts when ``<input>.meta.json`` exists;
every output holds the same sequence of ids; the outputs of the tamis CLI (both thread counts) and
the Python API are byte-identical. Outputs are left in ``--out-dir`` (``--clean`` deletes them).

Usage:
    python benchmarks/bench_exact.py benchmarks/data/corpus.jsonl
    python benchmarks/bench_exact.py benchmarks/data/corpus.jsonl --repeat 3 --record
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT_DIR = HERE / "out"
RESULTS = HERE / "RESULTS.md"
IMPLEMENTATIONS = ["tamis-cli-t1", "tamis-cli-tN", "tamis-python", "python-baseline", "polars"]
BASELINE = "python-baseline"
IO_FLOOR = "io-floor"
GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
TAMIS_BYTE_IDENTICAL = ["tamis-cli-t1", "tamis-cli-tN", "tamis-python"]
CHUNK = 16 << 20
ID_RE = re.compile(rb'"id"\s*:\s*"((?:[^"\\]|\\.)*)"')


# --------------------------------------------------------------------------------------------
# Workers: each runs in a fresh interpreter and prints one JSON object on its last stdout line.
# --------------------------------------------------------------------------------------------


def worker_tamis_python(inp: str, out: str, threads: int) -> dict[str, Any]:
    import tamis

    t0 = time.perf_counter()
    stats = tamis.dedup.exact([inp], out, threads=threads)
    return {
        "seconds": time.perf_counter() - t0,
        "kept": stats["documents_kept"],
        "note": f"threads={threads}",
    }


def worker_python_baseline(inp: str, out: str, threads: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    seen: set[bytes] = set()
    kept = 0
    loads, blake2b = json.loads, hashlib.blake2b
    with open(inp, "rb") as f, open(out, "wb", buffering=1 << 20) as g:
        for line in f:
            if not line.strip():
                continue
            digest = blake2b(loads(line)["text"].encode("utf-8"), digest_size=16).digest()
            if digest not in seen:
                seen.add(digest)
                g.write(line)
                kept += 1
    return {"seconds": time.perf_counter() - t0, "kept": kept, "note": "json.loads + blake2b-128 + set"}


def worker_polars(inp: str, out: str, threads: int) -> dict[str, Any]:
    import polars as pl

    t0 = time.perf_counter()
    query = pl.scan_ndjson(inp).unique(subset="text", keep="first", maintain_order=True)
    try:
        query.sink_ndjson(out)
        note = "scan_ndjson + unique + sink_ndjson"
    except Exception as exc:  # noqa: BLE001 - any failure of the streaming sink
        query.collect().write_ndjson(out)
        note = f"sink_ndjson failed ({type(exc).__name__}); collect + write_ndjson"
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "kept": None,
        "note": f"{note}; polars {pl.__version__}, {pl.thread_pool_size()} threads",
    }


WORKERS = {
    "tamis-python": worker_tamis_python,
    "python-baseline": worker_python_baseline,
    "polars": worker_polars,
}


# --------------------------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    wall: float
    inner: float | None
    user: float
    sys: float
    other: float  # CPU seconds that other processes used on this machine during the run
    maxrss_kib: int
    returncode: int
    note: str = ""

    @property
    def cpu(self) -> float:
        return self.user + self.sys


@dataclass
class Result:
    name: str
    runs: list[Run] = field(default_factory=list)
    kept: int | None = None
    output_bytes: int = 0
    ids_digest: str = ""
    file_digest: str = ""
    note: str = ""

    def median(self, attr: str) -> float:
        return float(statistics.median(float(getattr(r, attr)) for r in self.runs))

    @property
    def wall(self) -> float:
        return self.median("wall")

    @property
    def inner(self) -> float | None:
        inner = [r.inner for r in self.runs if r.inner is not None]
        return statistics.median(inner) if inner else None

    @property
    def cpu_share(self) -> float:
        return statistics.median(r.cpu / r.wall for r in self.runs)

    @property
    def other_load(self) -> float:
        return statistics.median(r.other / r.wall for r in self.runs)

    @property
    def maxrss_mib(self) -> float:
        return max(r.maxrss_kib for r in self.runs) / 1024


def busy_seconds() -> float:
    """CPU seconds spent not idle, over all cores, since boot (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return float(user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_idle(limit: float, threshold: float = 0.10) -> tuple[float, float]:
    """Wait (up to limit seconds) for a 1-second window in which the machine uses under
    threshold cores. Return (seconds waited, load of the last window in cores)."""
    t0 = time.perf_counter()
    load = 0.0
    while True:
        b0 = busy_seconds()
        time.sleep(1.0)
        load = busy_seconds() - b0
        if load < threshold or time.perf_counter() - t0 >= limit:
            return time.perf_counter() - t0, load


def warm_cache(path: Path) -> tuple[int, int]:
    """Read the file once (page cache) and count its non-empty lines."""
    lines = blank = 0
    last = b"\n"
    with path.open("rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            lines += chunk.count(b"\n")
            blank += chunk.count(b"\n\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1
    return path.stat().st_size, lines - blank


def run_timed(cmd: list[str], stdout: Path, stderr: Path) -> tuple[float, float, float, float, int, int]:
    """Run cmd; return wall seconds, user and sys CPU seconds of the child, CPU seconds used by
    everything else on the machine meanwhile, the child's peak RSS (KiB) and its exit status.

    The child runs under GNU time when there is one: on Linux a child's ru_maxrss starts from its
    parent's peak RSS (it is carried over fork and exec), so os.wait4 on a child of this Python
    process would never report less than this process's own peak.
    """
    usage_file = stderr.with_suffix(".rusage")
    if GNU_TIME:
        cmd = [GNU_TIME, "-f", "%U %S %M", "-o", str(usage_file), *cmd]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        b0 = busy_seconds()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        busy = busy_seconds() - b0
    rc = os.waitstatus_to_exitcode(status)
    user, sys_, rss = usage.ru_utime, usage.ru_stime, usage.ru_maxrss
    if GNU_TIME:
        u, s_, m = usage_file.read_text().strip().splitlines()[-1].split()
        user, sys_, rss = float(u), float(s_), int(m)
        usage_file.unlink()
    other = max(0.0, busy - usage.ru_utime - usage.ru_stime)
    return wall, user, sys_, other, rss, rc


def command_for(name: str, tamis: str, inp: Path, out: Path, stats: Path, threads_all: int) -> list[str]:
    if name == IO_FLOOR:
        return ["cat", str(inp)]
    if name.startswith("tamis-cli"):
        threads = 1 if name == "tamis-cli-t1" else threads_all
        return [
            tamis,
            "--threads",
            str(threads),
            "dedup",
            "exact",
            str(inp),
            "-o",
            str(out),
            "--stats-json",
            str(stats),
            "-q",
        ]
    threads = 0 if name == "tamis-python" else threads_all
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        str(inp),
        str(out),
        "--threads",
        str(threads),
    ]


def run_one(name: str, tamis: str, inp: Path, out_dir: Path, threads_all: int) -> Run:
    out = out_dir / f"{name}.jsonl"
    stats = out_dir / f"{name}.stats.json"
    for p in (out, stats):
        p.unlink(missing_ok=True)
    os.sync()
    cmd = command_for(name, tamis, inp, out, stats, threads_all)
    stdout = out if name == IO_FLOOR else out_dir / f"{name}.stdout"
    wall, user, sys_, other, rss, rc = run_timed(cmd, stdout, out_dir / f"{name}.stderr")
    inner: float | None = None
    note = ""
    if rc != 0:
        err = (out_dir / f"{name}.stderr").read_text(errors="replace").strip().splitlines()
        note = f"FAILED (exit {rc}): {err[-1] if err else ''}"
    elif name == IO_FLOOR:
        note = "reference, not a deduplicator: `cat input > output` (reads and writes every input byte)"
    elif name.startswith("tamis-cli"):
        info = json.loads(stats.read_text())
        inner, note = info["seconds"], f"threads={info['threads']}"
    else:
        lines = (out_dir / f"{name}.stdout").read_text().strip().splitlines()
        info = json.loads(lines[-1])
        inner, note = info["seconds"], info["note"]
    return Run(name, wall, inner, user, sys_, other, rss, rc, note)


def digest_output(path: Path) -> tuple[int, int, str, str]:
    """Lines, bytes, digest of the id sequence, digest of the bytes."""
    ids = hashlib.blake2b(digest_size=16)
    whole = hashlib.blake2b(digest_size=16)
    lines = 0
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            whole.update(line)
            m = ID_RE.search(line)
            ids.update((m.group(1) if m else b"<no id>") + b"\n")
            lines += 1
    return lines, path.stat().st_size, ids.hexdigest(), whole.hexdigest()


def fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def table(results: list[Result], docs: int, size: int, repeat: int) -> str:
    base = next((r for r in results if r.name == BASELINE and r.runs and r.runs[0].returncode == 0), None)
    head = [
        "implementation",
        "wall s" + (f" (median of {repeat})" if repeat > 1 else ""),
        "in-process s",
        "docs/s",
        "MB/s",
        "× baseline",
        "CPU",
        "docs/CPU-s",
        "MB/CPU-s",
        "user s",
        "sys s",
        "other load",
        "peak RSS MiB",
        "kept",
        "output bytes",
    ]
    rows = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for r in results:
        if not r.runs or any(run.returncode != 0 for run in r.runs):
            rows.append(f"| {r.name} | failed" + " |" * (len(head) - 1))
            continue
        floor = r.name == IO_FLOOR
        cells = [
            f"{r.name} (reference)" if floor else r.name,
            f"{r.wall:.2f}",
            f"{r.inner:.2f}" if r.inner is not None else "",
            "" if floor else fmt_int(docs / r.wall),
            f"{size / 1e6 / r.wall:.0f}",
            f"{base.wall / r.wall:.1f}×" if base and not floor else "",
            f"{100 * r.cpu_share:.0f}%",
            "" if floor else fmt_int(docs / r.median("cpu")),
            f"{size / 1e6 / r.median('cpu'):.0f}",
            f"{r.median('user'):.2f}",
            f"{r.median('sys'):.2f}",
            f"{r.other_load:.2f}",
            f"{r.maxrss_mib:,.0f}",
            "" if floor else (fmt_int(r.kept) if r.kept is not None else "?"),
            fmt_int(r.output_bytes),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def fingerprint(path: Path) -> str:
    """Path, short SHA-256 and modification time of a built artifact."""
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    built = dt.datetime.fromtimestamp(path.stat().st_mtime).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{path} (sha256 {sha}…, built {built})"


def extension_module() -> Path | None:
    """The compiled tamis extension the workers will import (found without importing it)."""
    spec = importlib.util.find_spec("tamis")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("_core*.so")) + sorted(Path(location).glob("_core*.pyd"))
        if found:
            return found[0]
    return None


def machine() -> list[str]:
    def cmd_out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "n/a"

    cpu = "n/a"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "n/a"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    os_name = platform.platform()
    try:
        os_name = platform.freedesktop_os_release()["PRETTY_NAME"] + f", Linux {platform.release()}"
    except OSError:
        pass
    try:
        polars_version = importlib.metadata.version("polars")
    except importlib.metadata.PackageNotFoundError:
        polars_version = "not installed"
    return [
        f"CPU: {cpu}, {os.cpu_count()} logical cores ({len(os.sched_getaffinity(0))} usable)",
        f"RAM: {mem}",
        f"OS: {os_name}",
        f"rustc: {cmd_out(['rustc', '-V'])}",
        f"Python: {platform.python_version()} ({sys.executable})",
        f"polars: {polars_version}",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="JSONL corpus (e.g. benchmarks/data/corpus.jsonl)")
    p.add_argument(
        "--out-dir", type=Path, default=DEFAULT_OUT_DIR, help=f"where outputs go (default {DEFAULT_OUT_DIR})"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="thread count for tamis-cli-tN (default: all cores)",
    )
    p.add_argument(
        "--tamis", default=None, help="tamis binary (default: target/release/tamis, else tamis on PATH)"
    )
    p.add_argument("--only", nargs="+", choices=IMPLEMENTATIONS, help="run only these implementations")
    p.add_argument(
        "--repeat", type=int, default=1, help="runs per implementation, interleaved; the median is reported"
    )
    p.add_argument(
        "--io-floor",
        action="store_true",
        help="also time `cat input > output`, a reference for the cost of reading and writing the bytes",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="S",
        help="before each run, wait up to S seconds for the machine to be idle (others under 0.1 core)",
    )
    p.add_argument(
        "--clean",
        action="store_true",
        help="delete each output once it has been checked (default: keep them)",
    )
    p.add_argument("--record", action="store_true", help=f"append the results to {RESULTS}")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("worker_output", nargs="?", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        info = WORKERS[args.worker](str(args.input), args.worker_output, args.threads)
        print(json.dumps(info))
        return 0

    tamis = args.tamis or (
        str(REPO / "target/release/tamis")
        if (REPO / "target/release/tamis").exists()
        else shutil.which("tamis")
    )
    names = list(args.only or IMPLEMENTATIONS) + ([IO_FLOOR] if args.io_floor else [])
    if any(n.startswith("tamis-cli") for n in names) and not tamis:
        p.error("no tamis binary: build it (cargo build --release) or pass --tamis")
    inp = args.input.resolve()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = inp.with_name(inp.name + ".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None

    t0 = time.perf_counter()
    size, docs = warm_cache(inp)
    print(
        f"input: {inp} ({size:,} bytes, {docs:,} documents; "
        f"page cache warmed in {time.perf_counter() - t0:.1f} s)"
    )
    if meta:
        print(
            f"generator says: {meta['documents']:,} documents, {meta['duplicates']:,} duplicates, "
            f"{meta['unique']:,} unique"
        )
    tamis_version = "n/a"
    if tamis:
        version = subprocess.run([tamis, "--version"], capture_output=True, text=True).stdout.strip()
        tamis_version = f"{version}, binary {fingerprint(Path(tamis))}"
    extension = extension_module()
    builds_before = {p: fingerprint(p) for p in (Path(tamis) if tamis else None, extension) if p}
    print(f"tamis: {tamis_version}")
    print(f"tamis Python extension: {builds_before[extension] if extension else 'not found'}")

    results = {n: Result(n) for n in names}
    for i in range(args.repeat):
        for name in names:
            waited = ""
            if args.wait_idle > 0:
                secs, load = wait_idle(args.wait_idle)
                still = f"; still busy: {load:.2f} cores" if load >= 0.1 else ""
                waited = f" (waited {secs:.0f} s for idle{still})"
            run = run_one(name, tamis or "", inp, args.out_dir, args.threads)
            results[name].runs.append(run)
            status = "ok" if run.returncode == 0 else run.note
            inner = f", in-process {run.inner:.2f} s" if run.inner is not None else ""
            print(
                f"[{i + 1}/{args.repeat}] {name:16s} {run.wall:8.2f} s wall{inner}, "
                f"user {run.user:.2f} s, sys {run.sys:.2f} s, "
                f"CPU {100 * run.cpu / run.wall:.0f}%, other load {run.other / run.wall:.2f} cores, "
                f"peak RSS {run.maxrss_kib / 1024:,.0f} MiB: {status}{waited}",
                flush=True,
            )
            if run.returncode != 0:
                continue
            if i == args.repeat - 1:  # check the last run's output, then free the disk
                out = args.out_dir / f"{name}.jsonl"
                r = results[name]
                r.kept, r.output_bytes, r.ids_digest, r.file_digest = digest_output(out)
                r.note = run.note
                if args.clean:
                    out.unlink()

    # ---- checks
    problems: list[str] = []
    for path, before in builds_before.items():
        if fingerprint(path) != before:
            problems.append(f"{path} changed during the run (was {before}, now {fingerprint(path)})")
    ok = [
        r
        for r in results.values()
        if r.runs and all(run.returncode == 0 for run in r.runs) and r.name != IO_FLOOR
    ]
    for r in results.values():
        if r not in ok and r.name != IO_FLOOR:
            problems.append(f"{r.name} failed: {r.runs[-1].note if r.runs else 'not run'}")
    kept = {r.name: r.kept for r in ok}
    if len(set(kept.values())) > 1:
        problems.append(f"kept counts differ: {kept}")
    if meta and ok and any(k != meta["unique"] for k in kept.values()):
        problems.append(f"kept counts {kept} differ from the generator's {meta['unique']:,} unique documents")
    ids = {r.name: r.ids_digest for r in ok}
    if len(set(ids.values())) > 1:
        problems.append(f"kept id sequences differ: {ids}")
    tamis_digests = {r.name: r.file_digest for r in ok if r.name in TAMIS_BYTE_IDENTICAL}
    if len(set(tamis_digests.values())) > 1:
        problems.append(f"tamis outputs are not byte-identical: {tamis_digests}")
    checks = []
    if len(tamis_digests) > 1 and len(set(tamis_digests.values())) == 1:
        checks.append(f"tamis outputs byte-identical ({', '.join(tamis_digests)})")
    if BASELINE in ids and tamis_digests:
        same = results[BASELINE].file_digest == next(iter(tamis_digests.values()))
        checks.append(
            f"plain-Python output {'byte-identical to' if same else 'differs in bytes from'} tamis output"
        )
    if len(ids) > 1 and len(set(ids.values())) == 1:
        checks.append(
            f"same kept count ({next(iter(kept.values())):,}) and same id sequence in all {len(ids)} outputs"
        )
    if meta and ok and all(k == meta["unique"] for k in kept.values()):
        checks.append(f"kept count equals the generator's unique count ({meta['unique']:,})")

    # ---- report
    tbl = table(list(results.values()), docs, size, args.repeat)
    notes = [f"- {r.name}: {r.note}" for r in results.values() if r.note]
    print()
    print(tbl)
    print()
    print("\n".join(notes))
    for c in checks:
        print(f"check ok: {c}")
    busy = [f"{r.name} ({r.other_load:.2f})" for r in results.values() if r.runs and r.other_load > 0.15]
    if busy:
        problems_soft = (
            f"other processes used CPU during: {', '.join(busy)} cores on average; numbers are noisy"
        )
        print(f"\nWARNING: {problems_soft}", file=sys.stderr)
    for prob in problems:
        print(f"\n!!!!!! MISMATCH / FAILURE: {prob} !!!!!!", file=sys.stderr)

    if args.record:
        now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        cmdline = " ".join(
            shlex.quote(a)
            for a in [
                Path(sys.executable).name,
                os.path.relpath(__file__),
                *(argv if argv is not None else sys.argv[1:]),
            ]
        )
        section = [
            f"\n## Run of {now}\n",
            *[f"- {m}" for m in machine()],
            f"- tamis: {tamis_version}",
            f"- tamis Python extension: {builds_before[extension] if extension else 'not found'}",
            f"- input: `{os.path.relpath(inp)}`, {size:,} bytes, {docs:,} documents"
            + (f" ({meta['duplicates']:,} exact duplicates, {meta['unique']:,} unique)" if meta else ""),
            f"- command: `{cmdline}`",
            "",
            tbl,
            "",
            *notes,
            *[f"- check ok: {c}" for c in checks],
            *([f"- **warning: {problems_soft}**"] if busy else []),
            *[f"- **MISMATCH / FAILURE: {prob}**" for prob in problems],
            "",
        ]
        with RESULTS.open("a") as f:
            f.write("\n".join(section))
        print(f"\nappended to {RESULTS}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
