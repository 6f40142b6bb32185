"""Seed annotation for ProX refining models: a large instruct model behind any OpenAI-compatible
endpoint (vLLM, SGLang, llama.cpp's server, hosted APIs) labels documents, and the labels become
SFT records for :mod:`tamis.prox_train` (ProX paper, appendix A.1; ``docs/prox-train.md``).

- ``doc`` stage: two additive 0-5 prompts per document ("Educational score: N", "Extraction
  Quality Score: N"); the document is kept when edu >= 3, or edu == 2 and format >= 4. The target
  program is ``keep_doc()`` or ``drop_doc()``.
- ``chunk`` stage: one few-shot prompt per noise type and chunk; the programs are parsed with the
  strict parser (never evaluated), merged, and a chunk whose merged program removes more than
  ``max_removal_ratio`` of its words is left out. The target is the merged program.

Each record's ``prompt`` is the refining model's prompt exactly as ``tamis prox prompts`` writes
it: documents are read and chunked in Rust (``_core.ProxPromptItems``); Python only talks HTTP.
Every answer goes to a journal next to the output as it arrives, so a killed run resumes without
asking again; the output is written (atomically, in input order) once every request is answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from tamis import _core
from tamis.errors import TamisError
from tamis.prox import LLAMA2, ChunkOptions, PromptTemplate, explain

Stage = Literal["doc", "chunk"]
#: (id, chunk, chunks, prompt, prompt token ids, truncated, numbered body, text, first line, lines)
Item = tuple[str, int, int, str, list[int], bool, str, str, int, int]

#: Prompt files shipped with tamis; ``prompts_dir`` may override any of them by name.
DOC_PROMPTS = ("doc_edu", "doc_format")
CHUNK_PROMPTS = ("chunk_navigation", "chunk_url", "chunk_footer")
_BUILTIN = Path(__file__).with_name("prox_prompts")

_EDU = re.compile(r"Educational score:\s*\**\s*([0-5])\b", re.IGNORECASE)
_FORMAT = re.compile(r"Extraction Quality Score:\s*\**\s*([0-5])\b", re.IGNORECASE)
_FENCE = re.compile(r"```[a-zA-Z]*\n(.*?)```", re.DOTALL)
_CALL = re.compile(r"^\s*(remove_lines|normalize|keep_chunk|untouch_doc|skip_chunk)\s*\(")
# Characters that the reference (compat) executor cannot carry inside a normalize string.
_UNSAFE = re.compile(r'["\\,=()\n\r]')


class AnnotateError(TamisError):
    """Requests that failed after every retry, or an unusable option or prompt file."""


@dataclass(frozen=True)
class AnnotateOptions:
    """Options of ``tamis prox annotate`` (one dataclass; the CLI maps its flags onto it).

    ``endpoint``: the server's base URL (``http://host:8000/v1``); ``/chat/completions`` is
    appended. ``tokenizer``: the refining model's ``tokenizer.json``, which builds the prompts the
    records hold. Retries: timeouts, connection errors, 408/409/429 and 5xx, with exponential
    backoff (``Retry-After`` honoured) up to ``max_retries`` times; other 4xx answers are
    skipped and counted.
    """

    stage: Stage
    endpoint: str
    model: str
    tokenizer: str
    concurrency: int = 64
    prompts_dir: str | None = None
    language: str | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    timeout: float = 120.0
    max_retries: int = 8
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_rps: float = 0.0
    api_key_env: str = "OPENAI_API_KEY"
    max_doc_chars: int = 20_000
    keep_min_edu: int = 3
    rescue_edu: int = 2
    rescue_min_format: int = 4
    max_removal_ratio: float = 0.5
    doc_max_tokens: int = 2000
    chunk_max_tokens: int = 1500
    template: PromptTemplate = LLAMA2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.stage not in ("doc", "chunk"):
            raise AnnotateError(f"stage must be doc or chunk, got {self.stage!r}")
        if not re.match(r"^https?://", self.endpoint):
            raise AnnotateError(f"endpoint must be an http(s) URL, got {self.endpoint!r}")
        if not self.model:
            raise AnnotateError("model must name the served model")
        checks = [
            ("concurrency", self.concurrency, 1, 4096),
            ("max_tokens", self.max_tokens, 1, 1 << 20),
            ("max_retries", self.max_retries, 0, 100),
            ("max_doc_chars", self.max_doc_chars, 1, 1 << 30),
            ("doc_max_tokens", self.doc_max_tokens, 1, 1 << 24),
            ("chunk_max_tokens", self.chunk_max_tokens, 1, 1 << 24),
        ]
        for name, value, lo, hi in checks:
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise AnnotateError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
        for name, x, lo2, hi2 in [
            ("timeout", self.timeout, 1e-3, 86400.0),
            ("backoff", self.backoff, 0.0, 3600.0),
            ("max_backoff", self.max_backoff, 0.0, 86400.0),
            ("max_rps", self.max_rps, 0.0, 1e9),
            ("temperature", self.temperature, 0.0, 2.0),
            ("max_removal_ratio", self.max_removal_ratio, 0.0, 1.0),
        ]:
            if not isinstance(x, (int, float)) or not lo2 <= x <= hi2:
                raise AnnotateError(f"{name} must be a number in [{lo2}, {hi2}], got {x!r}")
        for name, score in [
            ("keep_min_edu", self.keep_min_edu),
            ("rescue_edu", self.rescue_edu),
            ("rescue_min_format", self.rescue_min_format),
        ]:
            if not isinstance(score, int) or not 0 <= score <= 6:
                raise AnnotateError(f"{name} must be a score in [0, 6], got {score!r}")

    def prompt_options(self) -> str:
        """The core ``PromptOptions`` JSON of the refining model's prompts."""
        chunk = ChunkOptions(max_tokens=self.chunk_max_tokens)
        return json.dumps(
            {
                "stage": self.stage,
                "tokenizer": self.tokenizer,
                "template": json.loads(self.template._args()),
                "doc_max_tokens": self.doc_max_tokens,
                "chunk": json.loads(chunk._args()),
            }
        )


def load_prompts(stage: Stage, prompts_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The annotation prompt templates of ``stage`` (``{document}`` or ``{chunk}``, and
    ``{language_note}``), plus ``language``; a file of the same name in ``prompts_dir`` replaces
    the shipped one."""
    names = (DOC_PROMPTS if stage == "doc" else CHUNK_PROMPTS) + ("language",)
    out = {}
    for name in names:
        path = _BUILTIN / f"{name}.txt"
        if prompts_dir is not None and (Path(prompts_dir) / f"{name}.txt").exists():
            path = Path(prompts_dir) / f"{name}.txt"
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise AnnotateError(f"{path}: cannot read the prompt: {e}") from e
        slot = "{document}" if stage == "doc" else "{chunk}"
        if name != "language" and (slot not in text or "{language_note}" not in text):
            raise AnnotateError(f"{path}: the prompt needs the placeholders {slot} and {{language_note}}")
        out[name] = text
    return out


def doc_label(edu: int, fmt: int, o: AnnotateOptions) -> str:
    """The paper's keep rule: keep when edu >= 3, or edu == 2 and format >= 4."""
    keep = edu >= o.keep_min_edu or (edu == o.rescue_edu and fmt >= o.rescue_min_format)
    return "keep_doc()" if keep else "drop_doc()"


def parse_score(pattern: re.Pattern[str], answer: str) -> int | None:
    """The last score the answer states, or None."""
    found = pattern.findall(answer)
    return int(found[-1]) if found else None


def extract_program(answer: str) -> str:
    """The program of an answer: its last fenced code block, or else its lines that start with a
    program call."""
    blocks = _FENCE.findall(answer)
    if blocks:
        return str(blocks[-1]).strip("\n")
    return "\n".join(line.strip() for line in answer.split("\n") if _CALL.match(line))


@dataclass
class ChunkProgram:
    """A chunk's merged program, or why there is none."""

    program: str | None
    removed_ratio: float = 0.0
    problem: str | None = None


def merge_chunk_programs(answers: Sequence[str], item: Item, o: AnnotateOptions) -> ChunkProgram:
    """Parse each noise type's program strictly over the chunk's lines, check that every removal
    lies inside the chunk and every replacement finds its source, merge them (union of removed
    lines, replacements in prompt order) and apply the removal-ratio threshold."""
    first, n_lines, text = item[8], item[9], item[7]
    # The chunk's lines at their document-global numbers, so that the programs' numbers apply.
    padded = "\n" * first + text
    removed: set[int] = set()
    replacements: list[tuple[str, str]] = []
    for answer in answers:
        program = extract_program(answer)
        # The synonyms of keep_chunk() in the paper's prompts and project page.
        program = "\n".join(
            "keep_chunk()" if re.match(r"^(untouch_doc|skip_chunk)\(\)$", ln.strip()) else ln
            for ln in program.split("\n")
        )
        e = explain(padded, program, level="chunk", mode="strict")
        if e["errors"]:
            return ChunkProgram(None, problem="malformed")
        for a, b in e["removed_lines"]:
            if a < first or b >= first + n_lines:
                return ChunkProgram(None, problem="outside_chunk")
            removed.update(range(a, b + 1))
        for r in e["replacements"]:
            if r["count"] == 0:
                return ChunkProgram(None, problem="missing_source")
            if _UNSAFE.search(r["source"]) or _UNSAFE.search(r["target"]):
                return ChunkProgram(None, problem="unsafe_string")
            if (r["source"], r["target"]) not in replacements:
                replacements.append((r["source"], r["target"]))
    lines = text.split("\n")
    words = sum(len(ln.split()) for ln in lines)
    gone = sum(len(lines[i - first].split()) for i in removed)
    ratio = gone / words if words else 0.0
    if ratio > o.max_removal_ratio:
        return ChunkProgram(None, ratio, "too_aggressive")
    ops = [f'normalize(source_str="{s}", target_str="{t}")' for s, t in replacements]
    for a, b in _intervals(sorted(removed)):
        ops.append(f"remove_lines(line_start={a}, line_end={b})")
    return ChunkProgram("\n".join(ops) if ops else "keep_chunk()", ratio)


def _intervals(xs: list[int]) -> Iterator[tuple[int, int]]:
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        yield xs[i], xs[j]
        i = j + 1


@dataclass
class Counters:
    """What a run did: requests, answers, tokens, and why items were left out."""

    documents: int = 0
    items: int = 0
    records: int = 0
    requests: int = 0
    retries: int = 0
    answered: int = 0
    from_journal: int = 0
    skipped_requests: int = 0
    failed_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    kept: int = 0
    dropped: int = 0
    left_out: dict[str, int] = field(default_factory=dict)
    skipped_status: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def leave_out(self, why: str) -> None:
        self.left_out[why] = self.left_out.get(why, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["requests_per_second"] = self.requests / self.seconds if self.seconds > 0 else None
        return d


class Journal:
    """Answers by request key, appended as they arrive; a torn last line (killed run) is
    ignored when read back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.answers: dict[str, dict[str, Any]] = {}
        if path.exists():
            with open(path, "rb") as f:
                for raw in f:
                    if not raw.endswith(b"\n"):
                        break
                    try:
                        entry = json.loads(raw)
                        self.answers[entry["key"]] = entry
                    except (ValueError, KeyError, TypeError):
                        break
            # Drop a torn tail so that new entries start on a line of their own.
            self._rewrite()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def _rewrite(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for e in self.answers.values():
                f.write(json.dumps(e, ensure_ascii=False) + "\n")
        os.replace(tmp, self.path)

    def add(self, entry: dict[str, Any]) -> None:
        self.answers[entry["key"]] = entry
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class _RateLimiter:
    def __init__(self, rps: float) -> None:
        self.interval = 1.0 / rps if rps > 0 else 0.0
        self.next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        at = max(self.next, now)
        self.next = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


_RETRY_STATUS = {408, 409, 429}


class Client:
    """Chat completions against one endpoint: retries with backoff, rate limit, accounting."""

    def __init__(self, o: AnnotateOptions, counters: Counters, journal: Journal) -> None:
        self.o, self.c, self.journal = o, counters, journal
        self.url = o.endpoint.rstrip("/") + "/chat/completions"
        self.limiter = _RateLimiter(o.max_rps)
        self.rng = random.Random(o.seed)
        key = os.environ.get(o.api_key_env) if o.api_key_env else None
        self.headers = {"Content-Type": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.last_error = ""

    def payload(self, content: str) -> bytes:
        return json.dumps(
            {
                "model": self.o.model,
                "messages": [{"role": "user", "content": content}],
                "temperature": self.o.temperature,
                "max_tokens": self.o.max_tokens,
            },
            ensure_ascii=False,
            sort_keys=True,
        ).encode()

    async def ask(self, session: Any, body: bytes, key: str) -> dict[str, Any] | None:
        """The journal entry of one request (answered or skipped), or None when it failed."""
        import aiohttp

        cached = self.journal.answers.get(key)
        if cached is not None:
            self.c.from_journal += 1
            return cached
        timeout = aiohttp.ClientTimeout(total=self.o.timeout)
        for attempt in range(self.o.max_retries + 1):
            if attempt:
                self.c.retries += 1
            await self.limiter.wait()
            self.c.requests += 1
            wait: float | None = None
            try:
                async with session.post(self.url, data=body, headers=self.headers, timeout=timeout) as r:
                    raw = await r.read()
                    if r.status == 200:
                        entry = self._answer(key, raw)
                        if entry is not None:
                            self.journal.add(entry)
                            return entry
                        self.last_error = "an answer without choices[0].message.content"
                    elif r.status in _RETRY_STATUS or r.status >= 500:
                        self.last_error = f"HTTP {r.status}"
                        wait = _retry_after(r.headers.get("Retry-After"))
                    else:
                        entry = {
                            "key": key,
                            "status": r.status,
                            "error": raw[:500].decode("utf-8", "replace"),
                        }
                        self.c.skipped_requests += 1
                        k = str(r.status)
                        self.c.skipped_status[k] = self.c.skipped_status.get(k, 0) + 1
                        self.journal.add(entry)
                        return entry
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                self.last_error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if attempt < self.o.max_retries:
                delay = min(self.o.max_backoff, self.o.backoff * 2**attempt) * (0.5 + self.rng.random() / 2)
                await asyncio.sleep(max(delay, wait or 0.0))
        self.c.failed_requests += 1
        return None

    def _answer(self, key: str, raw: bytes) -> dict[str, Any] | None:
        try:
            data = json.loads(raw)
            content = data["choices"][0]["message"]["content"]
            if not isinstance(content, str):
                return None
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        usage = data.get("usage") if isinstance(data, dict) else None
        pt = ct = 0
        if isinstance(usage, dict):
            pt = usage.get("prompt_tokens") or 0
            ct = usage.get("completion_tokens") or 0
        self.c.answered += 1
        self.c.prompt_tokens += int(pt) if isinstance(pt, int) else 0
        self.c.completion_tokens += int(ct) if isinstance(ct, int) else 0
        return {"key": key, "status": 200, "content": content, "prompt_tokens": pt, "completion_tokens": ct}


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), 600.0) if value is not None else None
    except ValueError:
        return None


class Annotator:
    """Turns prompt items into SFT records, asking the endpoint for what the journal lacks."""

    def __init__(self, o: AnnotateOptions, journal: Journal, counters: Counters | None = None) -> None:
        self.o = o
        self.c = counters or Counters()
        self.prompts = load_prompts(o.stage, o.prompts_dir)
        note = ""
        if o.language:
            note = self.prompts["language"].replace("{language}", o.language)
        self.note = note
        self.client = Client(o, self.c, journal)

    def _requests(self, item: Item) -> list[tuple[bytes, str]]:
        names = DOC_PROMPTS if self.o.stage == "doc" else CHUNK_PROMPTS
        out = []
        for name in names:
            t = self.prompts[name].replace("{language_note}", self.note)
            if self.o.stage == "doc":
                content = t.replace("{document}", item[7][: self.o.max_doc_chars])
            else:
                content = t.replace("{chunk}", f"[doc]\n{item[6]}\n[/doc]")
            body = self.client.payload(content)
            out.append((body, hashlib.sha256(body).hexdigest()))
        return out

    async def run(self, items: Sequence[Item]) -> list[dict[str, Any] | None]:
        """One SFT record (or None when left out) per item, in order. Raises AnnotateError when
        requests failed after every retry (their answers are not journaled; a rerun asks again)."""
        import aiohttp

        reqs = [self._requests(it) for it in items]
        flat = [r for rs in reqs for r in rs]
        answers: list[dict[str, Any] | None] = [None] * len(flat)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(flat)):
            queue.put_nowait(i)
        connector = aiohttp.TCPConnector(limit=self.o.concurrency, ttl_dns_cache=300)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                while True:
                    try:
                        i = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    body, key = flat[i]
                    answers[i] = await self.client.ask(session, body, key)

            n = min(self.o.concurrency, max(len(flat), 1))
            await asyncio.gather(*(worker() for _ in range(n)))
        if any(a is None for a in answers):
            failed = sum(a is None for a in answers)
            raise AnnotateError(
                f"{failed} request(s) to {self.client.url} failed after {self.o.max_retries} retries "
                f"(last: {self.client.last_error}); the answers so far are in the journal: run the "
                "same command again to resume"
            )
        out: list[dict[str, Any] | None] = []
        k = 0
        for it, rs in zip(items, reqs, strict=True):
            group = answers[k : k + len(rs)]
            k += len(rs)
            out.append(self._record(it, [a for a in group if a is not None]))
        return out

    def _record(self, item: Item, answers: list[dict[str, Any]]) -> dict[str, Any] | None:
        self.c.items += 1
        if any(a.get("status") != 200 for a in answers):
            self.c.leave_out("request_skipped")
            return None
        contents = [str(a["content"]) for a in answers]
        rec: dict[str, Any] = {"id": item[0], "stage": self.o.stage, "prompt": item[3]}
        if self.o.stage == "doc":
            edu, fmt = parse_score(_EDU, contents[0]), parse_score(_FORMAT, contents[1])
            if edu is None or fmt is None:
                self.c.leave_out("no_score")
                return None
            program = doc_label(edu, fmt, self.o)
            if program == "keep_doc()":
                self.c.kept += 1
            else:
                self.c.dropped += 1
            rec.update(prompt_token_ids=item[4], truncated=item[5], program=program, text=item[7])
            rec["scores"] = {"edu": edu, "format": fmt}
        else:
            merged = merge_chunk_programs(contents, item, self.o)
            if merged.program is None:
                self.c.leave_out(merged.problem or "malformed")
                return None
            rec.update(
                chunk=item[1],
                chunks=item[2],
                first_line=item[8],
                lines=item[9],
                program=merged.program,
                text=item[7],
                removed_ratio=round(merged.removed_ratio, 6),
            )
        rec["language"] = self.o.language
        rec["model"] = self.o.model
        self.c.records += 1
        return rec


def _batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for it in items:
        batch.append(it)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def journal_path(output: str | os.PathLike[str]) -> Path:
    """Where a run's answers are kept until its output is written."""
    p = Path(output)
    return p.with_name(p.name + ".journal")


def annotate_items(
    items: Iterable[Item], output: str | os.PathLike[str], options: AnnotateOptions, *, window: int = 8192
) -> dict[str, Any]:
    """Annotate prompt items (from ``_core.ProxPromptItems`` or ``_core.prox_prompt_items``) into
    the SFT file ``output``; returns the counters. The journal is removed once the output is
    complete."""
    out = Path(output)
    if out.parent and not out.parent.exists():
        raise AnnotateError(f"{out.parent}: the output's directory does not exist")
    jpath = journal_path(out)
    journal = Journal(jpath)
    c = Counters()
    ann = Annotator(options, journal, c)
    started = time.monotonic()
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            docs: set[str] = set()
            for batch in _batches(items, window):
                for it in batch:
                    if it[1] == 0:
                        docs.add(it[0])
                records = asyncio.run(ann.run(batch))
                for r in records:
                    if r is not None:
                        f.write(json.dumps(r, ensure_ascii=False) + "\n")
                c.documents = len(docs)
        c.seconds = time.monotonic() - started
        os.replace(tmp, out)
    except BaseException:
        journal.close()
        if tmp.exists():
            tmp.unlink()
        raise
    journal.close()
    jpath.unlink()
    return c.as_dict()


def annotate(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    options: AnnotateOptions,
    *,
    text_key: str = "text",
    id_key: str = "id",
    on_error: str = "fail",
    rejects: str | None = None,
) -> dict[str, Any]:
    """Annotate the documents of ``inputs`` (any format the CLI reads; read in Rust) into the SFT
    file ``output``; returns the counters plus the reading statistics under ``"read"``."""
    io = {"text_key": text_key, "id_key": id_key, "on_error": on_error, "rejects": rejects}
    source = _core.ProxPromptItems([os.fspath(p) for p in inputs], options.prompt_options(), json.dumps(io))

    def items() -> Iterator[Item]:
        for batch in source:
            yield from batch

    result = annotate_items(items(), output, options)
    stats = source.stats()
    result["read"] = json.loads(stats) if stats else None
    return result


def cli_annotate(argv: Sequence[str]) -> int:
    """``tamis prox annotate INPUT... -o SFT.jsonl --stage doc|chunk --endpoint URL --model NAME
    --tokenizer T.json``; returns the exit code."""
    import argparse

    d = {f.name: f.default for f in fields(AnnotateOptions)}
    p = argparse.ArgumentParser(
        prog="tamis prox annotate",
        description="Label documents with a large model behind an OpenAI-compatible endpoint: "
        "SFT records for ProX refining models (docs/prox-train.md).",
    )
    p.add_argument("inputs", nargs="+", help="JSONL (.gz/.zst), Parquet or .txt files or directories")
    p.add_argument("-o", "--output", required=True, help="the SFT file (JSONL)")
    p.add_argument("--stage", required=True, choices=["doc", "chunk"])
    p.add_argument("--endpoint", required=True, help="base URL, e.g. http://localhost:8000/v1")
    p.add_argument("--model", required=True, help="the served model's name")
    p.add_argument("--tokenizer", required=True, help="the refining model's tokenizer.json")
    p.add_argument("--concurrency", type=int, default=d["concurrency"])
    p.add_argument("--prompts", default=None, metavar="DIR", help="prompt files replacing the shipped ones")
    p.add_argument("--language", default=None, help="the documents' language, e.g. Dutch")
    p.add_argument("--max-tokens", type=int, default=d["max_tokens"], help="tokens per answer")
    p.add_argument("--timeout", type=float, default=d["timeout"], help="seconds per request")
    p.add_argument("--max-retries", type=int, default=d["max_retries"])
    p.add_argument("--max-rps", type=float, default=d["max_rps"], help="requests per second (0: no limit)")
    p.add_argument("--api-key-env", default=d["api_key_env"], help="environment variable holding the key")
    p.add_argument("--max-doc-chars", type=int, default=d["max_doc_chars"])
    p.add_argument("--max-removal-ratio", type=float, default=d["max_removal_ratio"])
    p.add_argument("--text-key", default="text")
    p.add_argument("--id-key", default="id")
    p.add_argument("--on-error", choices=["fail", "skip"], default="fail")
    p.add_argument("--rejects", default=None)
    p.add_argument("--stats-json", default=None, metavar="FILE", help="write the counters as JSON")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(list(argv))
    try:
        o = AnnotateOptions(
            stage=a.stage,
            endpoint=a.endpoint,
            model=a.model,
            tokenizer=a.tokenizer,
            concurrency=a.concurrency,
            prompts_dir=a.prompts,
            language=a.language,
            max_tokens=a.max_tokens,
            timeout=a.timeout,
            max_retries=a.max_retries,
            max_rps=a.max_rps,
            api_key_env=a.api_key_env,
            max_doc_chars=a.max_doc_chars,
            max_removal_ratio=a.max_removal_ratio,
        )
        import aiohttp  # noqa: F401
    except ImportError:
        print("tamis prox annotate: needs aiohttp (install 'tamis[annotate]')", file=sys.stderr)
        return 1
    except TamisError as e:
        print(f"tamis prox annotate: {e}", file=sys.stderr)
        return 1
    try:
        r = annotate(
            a.inputs,
            a.output,
            o,
            text_key=a.text_key,
            id_key=a.id_key,
            on_error=a.on_error,
            rejects=a.rejects,
        )
    except (TamisError, OSError) as e:
        print(f"tamis prox annotate: {e}", file=sys.stderr)
        return 1
    if a.stats_json:
        Path(a.stats_json).write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
    if not a.quiet:
        left = ", ".join(f"{k} {v}" for k, v in sorted(r["left_out"].items())) or "none"
        print(
            f"tamis prox annotate: {r['records']} records from {r['documents']} documents "
            f"({r['items']} prompts; left out: {left}); {r['requests']} requests "
            f"({r['retries']} retries, {r['skipped_requests']} skipped, {r['from_journal']} from the "
            f"journal), {r['prompt_tokens']} + {r['completion_tokens']} tokens, {r['seconds']:.1f} s",
            file=sys.stderr,
        )
    return 0


__all__ = [
    "AnnotateError",
    "AnnotateOptions",
    "Annotator",
    "annotate",
    "annotate_items",
    "cli_annotate",
    "doc_label",
    "extract_program",
    "journal_path",
    "load_prompts",
    "merge_chunk_programs",
]
