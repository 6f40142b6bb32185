"""Constrained decoding for ProX chunk programs: a prefix automaton over the program lines

    remove_lines(line_start=N, line_end=M)      lo <= N <= M <= hi (the chunk's line numbers)
    normalize(source_str="S", target_str="T")   S non-empty; S, T without " \\ = , ) or newlines
    keep_chunk()

separated by ``\\n`` and ended by EOS (an empty program is allowed). Strings exclude the characters
that the reference executor treats specially, so every program the automaton admits parses, and
means the same, in both ``compat`` and ``strict`` mode. The remaining token budget is part of the
state: when it runs short the automaton only allows the shortest way to finish the current line,
so even a model with random weights writes programs that parse.

Pure Python and torch-free: it works on token *pieces* (the text each vocabulary entry stands
for), built once per tokenizer by :class:`Vocabulary`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

FORBIDDEN_IN_STRINGS = set('"\\=,)\n\r')

REMOVE = "remove_lines(line_start="
NORMALIZE = 'normalize(source_str="'
KEEP = "keep_chunk()"
LINE_STARTS = (REMOVE, NORMALIZE, KEEP)


class Vocabulary:
    """The text of each token of a ``tokenizer.json`` (Metaspace ``▁`` as a space, ASCII byte
    tokens ``<0xNN>`` as their character; special and non-ASCII byte tokens stand for nothing)."""

    def __init__(self, tokenizer_json: str) -> None:
        data = json.loads(tokenizer_json)
        vocab: dict[str, int] = data["model"]["vocab"]
        size = max(vocab.values()) + 1
        specials = {t["id"] for t in data.get("added_tokens", []) if t.get("special")}
        for t in data.get("added_tokens", []):
            size = max(size, t["id"] + 1)
        pieces: list[str | None] = [None] * size
        for piece, i in vocab.items():
            if i in specials:
                continue
            if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                b = int(piece[3:5], 16)
                pieces[i] = chr(b) if b < 0x80 else None
            else:
                pieces[i] = piece.replace("▁", " ")
        self.pieces = pieces
        self.by_text: dict[str, list[int]] = {}
        for i, p in enumerate(pieces):
            if p:
                self.by_text.setdefault(p, []).append(i)
        self.string_ids = [
            i for i, p in enumerate(pieces) if p and p.isprintable() and not (set(p) & FORBIDDEN_IN_STRINGS)
        ]
        self.digit_ids = [(i, p) for i, p in enumerate(pieces) if p and p.isascii() and p.isdigit()]
        singles = [p for p in ("x", "a", "_", "0") if p in self.by_text]
        self.filler = singles[0] if singles else next(pieces[i] or "" for i in self.string_ids)

    def prefix_ids(self, text: str) -> list[tuple[int, int]]:
        """``(token, length)`` for every token whose piece is a non-empty prefix of ``text``."""
        out = []
        for k in range(1, len(text) + 1):
            for i in self.by_text.get(text[:k], ()):
                out.append((i, k))
        return out


def _int_prefix_ok(p: str, lo: int, hi: int) -> bool:
    """Whether some integer in [lo, hi], written in decimal, starts with ``p``."""
    if not p or (len(p) > 1 and p[0] == "0"):
        return False
    if p == "0":
        return lo <= 0
    v = int(p)
    for extra in range(len(str(hi)) - len(p) + 1):
        a, b = v * 10**extra, (v + 1) * 10**extra - 1
        if a <= hi and b >= lo:
            return True
    return False


def _smallest_with_prefix(p: str, lo: int, hi: int) -> int:
    """The smallest integer in [lo, hi] starting with ``p`` (``p`` is a valid prefix)."""
    if not p:
        return lo
    if p == "0":
        return 0
    v = int(p)
    for extra in range(len(str(hi)) - len(p) + 1):
        a, b = v * 10**extra, (v + 1) * 10**extra - 1
        if a <= hi and b >= lo:
            return max(a, lo)
    raise ValueError(p)


@dataclass
class State:
    """Where a program is: ``kind`` is ``lit`` (inside literal alternatives; ``eos_ok`` between
    lines), ``int_start``/``int_end`` (digits so far; ``start`` is the line_start read),
    ``source``/``target`` (``chars`` of the string so far)."""

    kind: str
    alts: list[tuple[str, str]] = field(default_factory=list)  # (remaining literal, next kind)
    digits: str = ""
    start: int = 0
    chars: int = 0
    eos_ok: bool = False


def _line_alts(first: bool) -> list[tuple[str, str]]:
    # A leading space is allowed only before the first line: only that one is stripped.
    lead = ("", " ") if first else ("\n",)
    kinds = ("int_start", "source", "end")
    return [(s + line, nxt) for s in lead for line, nxt in zip(LINE_STARTS, kinds, strict=True)]


class ProgramAutomaton:
    """The grammar state of one chunk program whose chunk covers lines ``lo..hi``."""

    def __init__(self, vocab: Vocabulary, lo: int, hi: int, eos: int) -> None:
        self.vocab, self.lo, self.hi, self.eos = vocab, lo, max(hi, lo), eos
        self.state = State("lit", alts=_line_alts(first=True), eos_ok=True)
        self.done = False

    def _enter(self, kind: str, start: int) -> State:
        if kind == "end":
            return State("lit", alts=_line_alts(first=False), eos_ok=True)
        return State(kind, start=start)

    def _finish_chars(self, st: State) -> int:
        """Characters of the shortest way to end the current line. Each ASCII character has a
        token of its own in a byte-fallback vocabulary, so this bounds the tokens needed."""
        if st.kind == "lit":
            if st.eos_ok:
                return 0
            return min(len(lit) + self._finish_chars(State(nxt, start=st.start)) for lit, nxt in st.alts)
        if st.kind == "end":
            return 0
        if st.kind == "int_start":
            n = _smallest_with_prefix(st.digits, self.lo, self.hi)
            return len(str(n)) - len(st.digits) + len(", line_end=") + len(str(n)) + 1
        if st.kind == "int_end":
            n = _smallest_with_prefix(st.digits, st.start, self.hi)
            return len(str(n)) - len(st.digits) + 1
        if st.kind == "source":
            return (0 if st.chars else 1) + len('", target_str="")')
        return len('")')  # target

    def _after_lit(self, st: State, lit: str, k: int, nxt: str) -> State:
        if k < len(lit):
            return State("lit", alts=[(lit[k:], nxt)], start=st.start)
        return self._enter(nxt, st.start)

    def _lit_ids(self, st: State, alts: list[tuple[str, str]], room: int) -> list[int]:
        ids = set()
        for lit, nxt in alts:
            for i, k in self.vocab.prefix_ids(lit):
                if self._finish_chars(self._after_lit(st, lit, k, nxt)) <= room:
                    ids.add(i)
        return sorted(ids)

    def allowed(self, budget: int) -> tuple[list[int], bool]:
        """Tokens allowed now with ``budget`` tokens left (this one included), and whether every
        ordinary string token is allowed as well (the list then holds only the others)."""
        st = self.state
        room = budget - 1
        if st.kind == "lit":
            ids = self._lit_ids(st, st.alts, room)
            return ([self.eos, *ids] if st.eos_ok else ids), False
        if st.kind in ("int_start", "int_end"):
            lo = self.lo if st.kind == "int_start" else st.start
            ids = []
            for i, p in self.vocab.digit_ids:
                d = st.digits + p
                if _int_prefix_ok(d, lo, self.hi) and (
                    self._finish_chars(State(st.kind, digits=d, start=st.start)) <= room
                ):
                    ids.append(i)
            if st.digits and lo <= int(st.digits) <= self.hi:
                nxt_st = State(st.kind, start=int(st.digits) if st.kind == "int_start" else st.start)
                lit, nxt = (", line_end=", "int_end") if st.kind == "int_start" else (")", "end")
                ids += self._lit_ids(nxt_st, [(lit, nxt)], room)
            return ids, False
        close, nxt = ('", target_str="', "target") if st.kind == "source" else ('")', "end")
        ids = self._lit_ids(st, [(close, nxt)], room) if (st.chars or st.kind == "target") else []
        grown = State(st.kind, chars=st.chars + 1)
        return ids, self._finish_chars(grown) <= room

    def advance(self, token: int) -> None:
        """Consume the token the model chose (one of :meth:`allowed`)."""
        if token == self.eos:
            self.done = True
            return
        piece = self.vocab.pieces[token] or ""
        st = self.state
        if st.kind == "lit":
            alts = [(lit[len(piece) :], nxt) for lit, nxt in st.alts if lit.startswith(piece)]
            finished = [nxt for lit, nxt in alts if not lit]
            self.state = (
                self._enter(finished[0], st.start) if finished else State("lit", alts=alts, start=st.start)
            )
            return
        if st.kind in ("int_start", "int_end"):
            if piece.isdigit():
                self.state = State(st.kind, digits=st.digits + piece, start=st.start)
                return
            if st.kind == "int_start":
                base = State("int_start", start=int(st.digits))
                self.state = self._after_lit(base, ", line_end=", len(piece), "int_end")
            else:
                self.state = self._after_lit(st, ")", len(piece), "end")
            return
        close, nxt = ('", target_str="', "target") if st.kind == "source" else ('")', "end")
        if close.startswith(piece) and (st.chars or st.kind == "target"):
            self.state = self._after_lit(st, close, len(piece), nxt)
        else:
            self.state = State(st.kind, chars=st.chars + len(piece))
