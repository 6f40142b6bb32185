"""A second, independent model of ProX compat semantics, in plain Python, for differential tests.

Written from the specification (docs/prox.md, "compat mode"), not from the Rust code: Python's
own ``int()``, ``str.split()``, ``str.replace`` and float division supply the exact behaviours
the reference relies on. Intervals are clipped to the document instead of being expanded into a
set, so huge line numbers stay cheap; the result is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def run_doc(text: str, program: str) -> str:
    """A document program drops when the word "drop" appears anywhere in it."""
    return "" if "drop" in program else text


@dataclass
class _Parsed:
    replacements: list[tuple[str, str]] = field(default_factory=list)
    intervals: list[tuple[int, int]] = field(default_factory=list)
    remove_all: bool = False
    errors: int = 0


def _inside_parens(op: str) -> tuple[str | None, int]:
    """The text between the first "(" and the first ")", and the errors that costs. Without ")",
    Python's ``op[i:-1]`` drops the last character."""
    lpar = op.find("(")
    if lpar == -1:
        return None, 1
    rpar = op.find(")")
    if rpar == -1:
        return op[lpar + 1 : len(op) - 1], 1
    return op[lpar + 1 : rpar], 0


def _second_eq_field(part: str) -> str | None:
    fields = part.split("=")
    return fields[1] if len(fields) >= 2 else None


def _parse(program: str) -> _Parsed:
    out = _Parsed()
    for op in program.strip(" ").split("\n"):
        if op.startswith("remove_lines"):
            if "all=True" in op:
                out.remove_all = True
                continue
            inner, cost = _inside_parens(op)
            out.errors += cost
            if inner is None:
                continue
            parts = inner.split(",")
            raw = [_second_eq_field(p) for p in parts[:2]]
            try:
                if len(raw) < 2 or raw[0] is None or raw[1] is None:
                    raise ValueError("missing")
                out.intervals.append((int(raw[0]), int(raw[1])))
            except ValueError:
                out.errors += 1
        elif op.startswith("normalize"):
            inner, cost = _inside_parens(op)
            out.errors += cost
            if inner is None:
                continue
            parts = inner.split(",")
            if len(parts) > 2:
                continue  # a comma inside a string: silently ignored
            values = [_second_eq_field(p) for p in parts]
            if any(v is None for v in values):
                out.errors += 1
                continue
            strings = [v.strip('"') for v in values if v is not None]
            if len(strings) == 1:
                out.replacements.append((strings[0], ""))
            elif strings[0] not in ("", " "):
                out.replacements.append((strings[0], strings[1]))
    return out


def _merged_errors(intervals: list[tuple[int, int]], n_lines: int) -> int:
    errors = 0
    current: list[int] | None = None
    merged: list[list[int]] = []
    for start, end in sorted(intervals, key=lambda iv: iv[0]):
        if current is not None and start <= current[1] + 1:
            current[1] = max(current[1], end)
        else:
            current = [start, end]
            merged.append(current)
    for start, end in merged:
        if start >= n_lines or end >= n_lines:
            errors += 1
    return errors


def run_chunk_with_errors(
    text: str,
    program: str,
    *,
    min_words: int = 11,
    min_keep_ratio: float = 1 - 0.95,
    min_edit_ratio: float = 0.0,
    max_errors: int = 1,
) -> tuple[str, int]:
    """The result of a chunk program, and the number of errors counted."""
    parsed = _parse(program)
    edited = text
    for source, target in parsed.replacements:
        if source:
            edited = edited.replace(source, target)
    lines = edited.split("\n")
    n = len(lines)
    if parsed.remove_all:
        keep = [False] * n
    else:
        keep = [True] * n
        for start, end in parsed.intervals:
            for i in range(max(start, 0), min(end, n - 1) + 1):
                keep[i] = False
    processed = "\n".join(line for line, k in zip(lines, keep, strict=True) if k)
    errors = parsed.errors + _merged_errors(parsed.intervals, n)
    before, after = len(text.split()), len(processed.split())
    if before == 0:
        return "", errors  # the reference divides by zero here; tamis drops
    ratio = after / before
    ok = errors <= max_errors
    if ratio <= min_keep_ratio and ok:
        return "", errors
    if after < min_words:
        return "", errors
    if ratio >= min_edit_ratio and ok:
        return processed, errors
    return text, errors


def run_chunk(text: str, program: str, **accept: object) -> str:
    """The result of a chunk program (``""`` when dropped)."""
    return run_chunk_with_errors(text, program, **accept)[0]  # type: ignore[arg-type]


def trunc_chunks(lines_costs: list[tuple[str, int]], max_tokens: int) -> list[str]:
    """Greedy packing of numbered lines by token cost (a chunk may reach the budget exactly; a
    line over it stands alone)."""
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for line, cost in lines_costs:
        if used + cost <= max_tokens:
            current.append(line)
            used += cost
            continue
        if current:
            chunks.append("\n".join(current))
        current, used = [line], cost
        if cost > max_tokens:
            chunks.append(line)
            current, used = [], 0
    if current:
        chunks.append("\n".join(current))
    return chunks
