"""The HTML report of ``tamis refine``: one self-contained file (inline CSS and SVG, no script, no
external asset) that opens offline, made from ``report.json``."""

from __future__ import annotations

import html
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;
color:#1d2330;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #dde;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;margin:.6em 0}
th,td{border-bottom:1px solid #e4e6ee;padding:.3em .5em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f4f8}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.4em .8em;margin:.4em 0}
.muted{color:#667}
pre{white-space:pre-wrap;background:#f6f7fa;padding:.5em;margin:.3em 0;font-size:12px;max-height:14em;
overflow:auto}
details{margin:.3em 0}summary{cursor:pointer;font-weight:600}
.removed{color:#a40000}.after{color:#006b2e}svg text{font:11px system-ui,sans-serif;fill:#1d2330}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(n: float) -> str:
    return f"{n:,.0f}" if isinstance(n, int) or float(n).is_integer() else f"{n:,.2f}"


def _funnel_svg(funnel: list[dict[str, Any]], unit: str) -> str:
    width, row, label_w = 900, 34, 170
    bar_w = width - label_w - 260
    top = max((f["documents"] for f in funnel), default=0) or 1
    top_t = max((f["tokens"] for f in funnel), default=0) or 1
    h = row * len(funnel) + 24
    parts = [
        f'<svg id="funnel" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" '
        f'aria-label="documents and {unit} kept per stage">'
    ]
    parts.append(
        f'<text x="{label_w}" y="12" class="muted">documents (dark) and {_e(unit)} (light) kept</text>'
    )
    for i, f in enumerate(funnel):
        y = 20 + i * row
        wd = bar_w * f["documents"] / top
        wt = bar_w * f["tokens"] / top_t
        parts.append(f'<text x="0" y="{y + 17}">{_e(f["stage"])}</text>')
        parts.append(
            f'<rect class="bar-tokens" x="{label_w}" y="{y + 2}" width="{wt:.1f}" height="26" '
            'fill="#b8d4f0"/>'
        )
        parts.append(
            f'<rect class="bar-docs" x="{label_w}" y="{y + 8}" width="{wd:.1f}" height="14" fill="#2f6db5"/>'
        )
        share = 100 * f["documents"] / top
        parts.append(
            f'<text x="{label_w + bar_w + 8}" y="{y + 17}">{_num(f["documents"])} docs ({share:.1f}%), '
            f"{_num(f['tokens'])} {_e(unit)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _edge_label(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"≥{lo}"
    return str(lo) if hi - lo == 1 else f"{lo}–{hi - 1}"


def _histogram_svg(hist: dict[str, Any]) -> str:
    edges, before, after = hist["edges"], hist["before"], hist["after"]
    used = [i for i in range(len(edges)) if before[i] or after[i]]
    lo, hi = (min(used), max(used)) if used else (0, 0)
    idx = list(range(lo, hi + 1))
    width, height, pad = 900, 240, 40
    slot = (width - pad) / max(1, len(idx))
    top = max([before[i] for i in idx] + [after[i] for i in idx] + [1])
    parts = [
        f'<svg id="histogram" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 50}" '
        f'role="img" aria-label="document length histogram before and after">'
    ]
    parts.append(f'<line x1="{pad}" y1="{height}" x2="{width}" y2="{height}" stroke="#99a"/>')
    for k, i in enumerate(idx):
        x = pad + k * slot
        for j, (series, color, cls) in enumerate(
            ((before, "#c9ccd6", "before"), (after, "#2f6db5", "after"))
        ):
            hgt = (height - 20) * series[i] / top
            parts.append(
                f'<rect class="hist-{cls}" x="{x + 2 + j * slot * 0.42:.1f}" y="{height - hgt:.1f}" '
                f'width="{slot * 0.42:.1f}" height="{hgt:.1f}" fill="{color}"><title>{_e(cls)}: '
                f"{series[i]} documents</title></rect>"
            )
        nxt = edges[i + 1] if i + 1 < len(edges) else None
        parts.append(
            f'<text x="{x + slot / 2:.1f}" y="{height + 14}" text-anchor="middle">'
            f"{_e(_edge_label(edges[i], nxt))}</text>"
        )
    parts.append(
        f'<text x="{pad}" y="{height + 36}">{_e(hist["unit"])} per document; grey: before, blue: after '
        f"(max {top} documents)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _languages_svg(langs: dict[str, dict[str, int]]) -> str:
    items = list(langs.items())[:20]
    width, row, label_w = 900, 20, 80
    top = max((v["documents"] for _, v in items), default=1) or 1
    parts = [
        f'<svg id="languages-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{row * len(items) + 10}" role="img" aria-label="language distribution">'
    ]
    for i, (lang, v) in enumerate(items):
        y = i * row
        w_all = (width - label_w - 220) * v["documents"] / top
        w_kept = (width - label_w - 220) * v["kept"] / top
        parts.append(f'<text x="0" y="{y + 14}">{_e(lang or "(none)")}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w_all:.1f}" height="14" fill="#c9ccd6"/>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w_kept:.1f}" height="14" fill="#2f6db5"/>')
        parts.append(f'<text x="{width - 210}" y="{y + 14}">{v["documents"]} seen, {v["kept"]} kept</text>')
    parts.append("</svg>")
    return "".join(parts)


def _examples(stage: dict[str, Any]) -> str:
    ex = stage.get("examples") or {}
    out = []
    for d in ex.get("dropped", []):
        detail = f" — {_e(d['detail'])}" if d.get("detail") else ""
        out.append(
            f'<details class="example dropped"><summary>dropped {_e(d["id"])}: '
            f"{_e(d['reason'])}{detail}</summary>"
            f"<pre>{_e(d['text'])}</pre></details>"
        )
    for m in ex.get("modified", []):
        body = "".join(f'<div class="removed">− {_e(x)}</div>' for x in m.get("removed_lines", []))
        body += "".join(
            f'<div class="removed">− {_e(c["before"])}</div><div class="after">+ {_e(c["after"])}</div>'
            for c in m.get("rewritten", [])
        )
        out.append(
            f'<details class="example modified"><summary>modified {_e(m["id"])}: '
            f"{len(m.get('removed_lines', []))} lines removed, {len(m.get('rewritten', []))} rewritten"
            f"</summary><pre>{body}</pre></details>"
        )
    if not out:
        return '<p class="muted">nothing removed or changed</p>'
    return "".join(out)


def render_html(report: dict[str, Any]) -> str:
    """The report as one HTML document."""
    unit = report["token_unit"]
    rows = []
    for s in report["stages"]:
        if s["status"] == "skipped":
            rows.append(
                f'<tr class="skipped"><td>{_e(s["name"])}</td><td colspan="7" class="muted">'
                f"{_e(s['note'])}</td></tr>"
            )
            continue
        dropped = ", ".join(f"{_e(k)} {v}" for k, v in s["dropped"].items()) or "—"
        rate = _num(s["docs_per_second"]) if s["docs_per_second"] else "—"
        rows.append(
            f'<tr><td>{_e(s["name"])} <span class="muted">({_e(s["scope"])})</span></td>'
            f"<td>{_num(s['documents_in'])}</td><td>{_num(s['documents_out'])}</td>"
            f"<td>{_num(s['tokens_in'])}</td><td>{_num(s['tokens_out'])}</td><td>{_num(s['modified'])}</td>"
            f"<td>{dropped}</td><td>{s['seconds']:.2f} s, {rate} docs/s</td></tr>"
        )
    notes = "".join(f'<div class="note">{_e(n)}</div>' for n in report["notes"])
    if report.get("records_skipped"):
        notes += (
            f'<div class="note">{report["records_skipped"]} bad input records skipped (see rejects/)</div>'
        )
    if report["languages"]:
        langs = _languages_svg(report["languages"])
    else:
        langs = '<p class="muted">no language stage ran</p>'
    examples = "".join(
        f'<section class="stage-examples"><h3>{_e(s["name"])}</h3>{_examples(s)}</section>'
        for s in report["stages"]
        if s["status"] == "ran"
    )
    out = report["output"]
    first = report["funnel"][0]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tamis refine report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>tamis refine report</h1>
<p class="muted">tamis {_e(report["tamis_version"])} · {report["shards"]} input shards ·
{report["seconds"]:.1f} s</p>
<p id="summary">{_num(first["documents"])} documents ({_num(first["tokens"])} {_e(unit)}) in,
{_num(out["documents"])} documents ({_num(out["tokens"])} {_e(unit)}) out, in {_e(out["dir"])}.</p>
{notes}
<h2>Funnel</h2>
{_funnel_svg(report["funnel"], unit)}
<h2>Stages</h2>
<table id="stages"><thead><tr><th>stage</th><th>docs in</th><th>docs out</th><th>{_e(unit)} in</th>
<th>{_e(unit)} out</th><th>modified</th><th>dropped</th><th>throughput</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<h2>Document lengths</h2>
{_histogram_svg(report["histograms"])}
<h2>Languages</h2>
<section id="languages">{langs}</section>
<h2>What each stage removed</h2>
<section id="examples">{examples}</section>
</body></html>
"""


__all__ = ["render_html"]
