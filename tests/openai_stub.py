"""A scripted OpenAI-compatible chat-completions server on loopback, for the annotation tests and
benchmark. Answers follow markers in the prompt:

- document prompts: ``EDU=n`` / ``FMT=m`` in the document give the scores;
- chunk prompts (navigation, URL, footer): lines holding ``NAV`` / ``URL`` / ``FOOT`` are removed
  by the matching prompt's program; ``GARBLE`` gives a malformed program;
- failures, per request: ``FAIL500`` answers 500 to the first two attempts, ``RATE429`` answers
  429 (``Retry-After: 0``) to the first, ``SLOW`` sleeps past the client's timeout on the first,
  ``BAD400`` answers 400 every time.

``calls`` counts the attempts per request body; ``delay`` slows every answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import threading
from typing import Any

from aiohttp import web

_LINE = re.compile(r"^\[(\d+)\](.*)$")


def _answer(content: str) -> str:
    if "Educational score" in content or "Extraction Quality Score" in content:
        doc = content.split("<<<", 1)[-1]
        if "Educational score" in content:
            m = re.search(r"EDU=(\d)", doc)
            return f"The extract is fine.\nEducational score: {m.group(1) if m else 0}"
        m = re.search(r"FMT=(\d)", doc)
        return f"Clean enough.\nExtraction Quality Score: {m.group(1) if m else 0}"
    chunk = content.rsplit("Now the document:", 1)[-1]
    if "GARBLE" in chunk:
        return "```python\nremove_lines(line_start=oops\n```"
    marker = "NAV" if "navigation or menu" in content else "URL" if "URLs, link lists" in content else "FOOT"
    hits = []
    for line in chunk.split("\n"):
        m = _LINE.match(line)
        if m and marker in m.group(2):
            hits.append(int(m.group(1)))
    if not hits:
        return "Nothing to remove.\n```python\nkeep_chunk()\n```"
    ops = "\n".join(f"remove_lines(line_start={i}, line_end={i})" for i in hits)
    return f"```python\n{ops}\n```"


class StubServer:
    """Run with ``with StubServer() as s: s.url``; serves on a thread of its own."""

    def __init__(self, delay: float = 0.0, slow: float = 5.0) -> None:
        self.delay, self.slow = delay, slow
        self.calls: dict[str, int] = {}
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = hashlib.sha256(body).hexdigest()
        with self._lock:
            n = self.calls.get(key, 0)
            self.calls[key] = n + 1
        data = json.loads(body)
        content = data["messages"][-1]["content"]
        if self.delay:
            await asyncio.sleep(self.delay)
        status, headers = 200, {}
        if "BAD400" in content:
            status = 400
        elif "FAIL500" in content and n < 2:
            status = 500
        elif "RATE429" in content and n < 1:
            status, headers = 429, {"Retry-After": "0"}
        elif "SLOW" in content and n < 1:
            await asyncio.sleep(self.slow)
        with self._lock:
            self.statuses.append(status)
        if status != 200:
            return web.Response(status=status, text='{"error": "scripted"}', headers=headers)
        answer = _answer(content)
        out = {
            "id": "cmpl-stub",
            "object": "chat.completion",
            "model": data.get("model"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": len(content) // 4, "completion_tokens": len(answer) // 4},
        }
        return web.json_response(out)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/chat/completions", self.handle)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.port, backlog=4096)
        loop.run_until_complete(site.start())
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def __enter__(self) -> StubServer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


def serve_forever(port: int, delay: float = 0.0) -> None:
    """Serve in this process until killed (the benchmark runs the server in a process of its own)."""
    s = StubServer(delay=delay)
    s.port, s.url = port, f"http://127.0.0.1:{port}/v1"
    s._run()


if __name__ == "__main__":
    import sys

    serve_forever(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
