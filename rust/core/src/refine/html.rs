//! The HTML report of `tamis refine`: one self-contained file (inline CSS and SVG, no script, no
//! external asset) that opens offline, made from `report.json`.
//!
//! A port of `python/tamis/report.py`: for the same report JSON it writes the same document. Keys
//! that are missing or of the wrong type count as empty (or zero); no input makes it panic.

use serde_json::{Map, Value};

const CSS: &str = "
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
";

/// `html.escape(s, quote=True)`.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

/// Python's `repr` of a float (without its exponent form, which counts never need).
fn py_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// Python's `str()` of a JSON value (`""` where it is missing).
fn s(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::Null) => "None".into(),
        Some(Value::Bool(b)) => (if *b { "True" } else { "False" }).into(),
        Some(Value::String(t)) => t.clone(),
        Some(Value::Number(n)) if n.is_f64() => py_float(n.as_f64().unwrap_or(0.0)),
        Some(v) => v.to_string(),
    }
}

/// `_e(x)`: escaped `str(x)`.
fn e(v: Option<&Value>) -> String {
    esc(&s(v))
}

/// `str()` of a count, `"0"` where it is not a number.
fn cnt(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(_)) => s(v),
        _ => "0".into(),
    }
}

/// The value as a float (0 where it is not a number).
fn f(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(v) => v.as_f64().unwrap_or(0.0),
        None => 0.0,
    }
}

/// Python's truthiness of a JSON value.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(_)) => f(v) != 0.0,
        Some(Value::String(t)) => !t.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// The array under `key` (empty where there is none).
fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `f"{x:.{prec}f}"`.
fn fixed(x: f64, prec: usize) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        (if x > 0.0 { "inf" } else { "-inf" }).into()
    } else {
        format!("{x:.prec$}")
    }
}

/// Thousands separators in the integer part of a formatted number.
fn group(t: &str) -> String {
    let (sign, rest) = t.strip_prefix('-').map_or(("", t), |r| ("-", r));
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (int, frac) = rest.split_at(end);
    let mut out = String::from(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out + frac
}

/// `_num`: integral numbers as `1,234`, others as `1,234.50`.
fn num(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) if !n.is_f64() => group(&n.to_string()),
        Some(Value::Number(_)) | Some(Value::Bool(_)) => {
            let x = f(v);
            group(&fixed(x, if x.fract() == 0.0 { 0 } else { 2 }))
        }
        _ => "0".into(),
    }
}

/// `max(xs, default=0) or 1`.
fn top(xs: impl Iterator<Item = f64>) -> f64 {
    let m = xs.fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || m == 0.0 {
        1.0
    } else {
        m
    }
}

fn funnel_svg(funnel: &[Value], unit: &str) -> String {
    let (width, row, label_w) = (900, 34, 170);
    let bar_w = width - label_w - 260;
    let top_d = top(funnel.iter().map(|x| f(x.get("documents"))));
    let top_t = top(funnel.iter().map(|x| f(x.get("tokens"))));
    let h = row * funnel.len() + 24;
    let unit = esc(unit);
    let mut p = format!(
        "<svg id=\"funnel\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{h}\" \
         role=\"img\" aria-label=\"documents and {unit} kept per stage\">\
         <text x=\"{label_w}\" y=\"12\" class=\"muted\">documents (dark) and {unit} (light) kept</text>"
    );
    for (i, x) in funnel.iter().enumerate() {
        let y = 20 + i * row;
        let docs = f(x.get("documents"));
        let wd = bar_w as f64 * docs / top_d;
        let wt = bar_w as f64 * f(x.get("tokens")) / top_t;
        let share = 100.0 * docs / top_d;
        p.push_str(&format!(
            "<text x=\"0\" y=\"{}\">{}</text>\
             <rect class=\"bar-tokens\" x=\"{label_w}\" y=\"{}\" width=\"{}\" height=\"26\" fill=\"#b8d4f0\"/>\
             <rect class=\"bar-docs\" x=\"{label_w}\" y=\"{}\" width=\"{}\" height=\"14\" fill=\"#2f6db5\"/>\
             <text x=\"{}\" y=\"{}\">{} docs ({}%), {} {unit}</text>",
            y + 17,
            e(x.get("stage")),
            y + 2,
            fixed(wt, 1),
            y + 8,
            fixed(wd, 1),
            label_w + bar_w + 8,
            y + 17,
            num(x.get("documents")),
            fixed(share, 1),
            num(x.get("tokens")),
        ));
    }
    p + "</svg>"
}

fn edge_label(lo: i64, hi: Option<i64>) -> String {
    match hi {
        None => format!("≥{lo}"),
        Some(hi) if hi.wrapping_sub(lo) == 1 => lo.to_string(),
        Some(hi) => format!("{lo}–{}", hi.wrapping_sub(1)),
    }
}

fn histogram_svg(hist: &Value) -> String {
    let (edges, before, after) = (arr(hist, "edges"), arr(hist, "before"), arr(hist, "after"));
    let used: Vec<usize> = (0..edges.len())
        .filter(|&i| truthy(before.get(i)) || truthy(after.get(i)))
        .collect();
    let (lo, hi) = match (used.first(), used.last()) {
        (Some(&lo), Some(&hi)) => (lo, hi),
        _ => (0, 0),
    };
    let (width, height, pad) = (900.0, 240, 40.0);
    let slot = (width - pad) / (hi - lo + 1) as f64;
    // `max([before...] + [after...] + [1])`: counts are integers, printed without a fraction.
    let counts = (lo..=hi).flat_map(|i| [f(before.get(i)), f(after.get(i))]);
    let top = counts.fold(1.0, f64::max);
    let mut p = format!(
        "<svg id=\"histogram\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" \
         role=\"img\" aria-label=\"document length histogram before and after\">\
         <line x1=\"{pad}\" y1=\"{height}\" x2=\"{width}\" y2=\"{height}\" stroke=\"#99a\"/>",
        height + 50
    );
    let edge = |i: usize| edges.get(i).map(|v| v.as_i64().unwrap_or(0));
    for (k, i) in (lo..=hi).enumerate() {
        let x = pad + k as f64 * slot;
        for (j, (series, color, cls)) in
            [(before, "#c9ccd6", "before"), (after, "#2f6db5", "after")]
                .into_iter()
                .enumerate()
        {
            let hgt = (height - 20) as f64 * f(series.get(i)) / top;
            p.push_str(&format!(
                "<rect class=\"hist-{cls}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{color}\">\
                 <title>{cls}: {} documents</title></rect>",
                fixed(x + 2.0 + j as f64 * slot * 0.42, 1),
                fixed(height as f64 - hgt, 1),
                fixed(slot * 0.42, 1),
                fixed(hgt, 1),
                cnt(series.get(i)),
            ));
        }
        p.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            fixed(x + slot / 2.0, 1),
            height + 14,
            esc(&edge_label(edge(i).unwrap_or(0), edge(i + 1))),
        ));
    }
    p.push_str(&format!(
        "<text x=\"{pad}\" y=\"{}\">{} per document; grey: before, blue: after (max {top} documents)\
         </text></svg>",
        height + 36,
        e(hist.get("unit")),
    ));
    p
}

fn languages_svg(langs: &Map<String, Value>) -> String {
    let mut items: Vec<(&String, &Value)> = langs.iter().collect();
    let docs = |v: &Value| f(v.get("documents"));
    items.sort_by(|a, b| docs(b.1).total_cmp(&docs(a.1)).then_with(|| a.0.cmp(b.0)));
    items.truncate(20);
    let (width, row, label_w) = (900, 20, 80);
    let top = top(items.iter().map(|(_, v)| docs(v)));
    let span = (width - label_w - 220) as f64;
    let mut p = format!(
        "<svg id=\"languages-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{}\" role=\"img\" aria-label=\"language distribution\">",
        row * items.len() + 10
    );
    for (i, (lang, v)) in items.iter().enumerate() {
        let y = i * row;
        let name = if lang.is_empty() {
            "(none)"
        } else {
            lang.as_str()
        };
        p.push_str(&format!(
            "<text x=\"0\" y=\"{}\">{}</text>\
             <rect x=\"{label_w}\" y=\"{}\" width=\"{}\" height=\"14\" fill=\"#c9ccd6\"/>\
             <rect x=\"{label_w}\" y=\"{}\" width=\"{}\" height=\"14\" fill=\"#2f6db5\"/>\
             <text x=\"{}\" y=\"{}\">{} seen, {} kept</text>",
            y + 14,
            esc(name),
            y + 3,
            fixed(span * docs(v) / top, 1),
            y + 3,
            fixed(span * f(v.get("kept")) / top, 1),
            width - 210,
            y + 14,
            cnt(v.get("documents")),
            cnt(v.get("kept")),
        ));
    }
    p + "</svg>"
}

fn examples(stage: &Value) -> String {
    let ex = stage.get("examples").unwrap_or(&Value::Null);
    let mut out = String::new();
    for d in arr(ex, "dropped") {
        let detail = if truthy(d.get("detail")) {
            format!(" — {}", e(d.get("detail")))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "<details class=\"example dropped\"><summary>dropped {}: {}{detail}</summary>\
             <pre>{}</pre></details>",
            e(d.get("id")),
            e(d.get("reason")),
            e(d.get("text")),
        ));
    }
    for m in arr(ex, "modified") {
        let (removed, rewritten) = (arr(m, "removed_lines"), arr(m, "rewritten"));
        let mut body: String = removed
            .iter()
            .map(|x| format!("<div class=\"removed\">− {}</div>", e(Some(x))))
            .collect();
        for c in rewritten {
            body.push_str(&format!(
                "<div class=\"removed\">− {}</div><div class=\"after\">+ {}</div>",
                e(c.get("before")),
                e(c.get("after")),
            ));
        }
        out.push_str(&format!(
            "<details class=\"example modified\"><summary>modified {}: {} lines removed, {} rewritten\
             </summary><pre>{body}</pre></details>",
            e(m.get("id")),
            removed.len(),
            rewritten.len(),
        ));
    }
    if out.is_empty() {
        return "<p class=\"muted\">nothing removed or changed</p>".into();
    }
    out
}

/// The `tokens` section: the training shards of a run ending with `tokenize`.
fn tokens_html(t: &Value) -> String {
    let rows: String = arr(t, "shards")
        .iter()
        .map(|s| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(s.get("name")),
                num(s.get("documents")),
                num(s.get("tokens"))
            )
        })
        .collect();
    let inputs: String = arr(t, "inputs")
        .iter()
        .map(|s| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(s.get("path")),
                num(s.get("documents")),
                num(s.get("tokens"))
            )
        })
        .collect();
    let lengths = t.get("lengths").cloned().unwrap_or(Value::Null);
    let hist = serde_json::json!({
        "edges": lengths.get("edges"),
        "before": [],
        "after": lengths.get("documents"),
        "unit": "tokens",
    });
    let chart = histogram_svg(&hist)
        .replacen("id=\"histogram\"", "id=\"token-lengths\"", 1)
        .replace(
            "grey: before, blue: after",
            "documents by length as written",
        );
    format!(
        "<section id=\"tokens\"><p>{} documents, {} tokens in {} {} shards ({}) in {}.</p>\
         <table id=\"token-shards\"><thead><tr><th>shard</th><th>documents</th><th>tokens</th>\
         </tr></thead><tbody>{rows}</tbody></table>\
         <table id=\"token-inputs\"><thead><tr><th>refined shard</th><th>documents</th>\
         <th>tokens</th></tr></thead><tbody>{inputs}</tbody></table>{chart}</section>",
        num(t.get("documents")),
        num(t.get("tokens")),
        arr(t, "shards").len(),
        e(t.get("format")),
        e(t.get("dtype")),
        e(t.get("dir")),
    )
}

/// The refine report (`report.json` as a JSON value) as one self-contained HTML document: inline
/// CSS and SVG charts (funnel, length histogram, languages), the stages table and the examples
/// of what each stage removed or changed. Missing keys count as empty or zero.
pub fn render_html(report: &Value) -> String {
    let unit = e(report.get("token_unit"));
    let stages = arr(report, "stages");
    let is = |st: &Value, status: &str| st.get("status").and_then(Value::as_str) == Some(status);
    let mut rows = String::new();
    for st in stages {
        if is(st, "skipped") {
            rows.push_str(&format!(
                "<tr class=\"skipped\"><td>{}</td><td colspan=\"7\" class=\"muted\">{}</td></tr>",
                e(st.get("name")),
                e(st.get("note")),
            ));
            continue;
        }
        let dropped = st.get("dropped").and_then(Value::as_object);
        let dropped: Vec<String> = dropped
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{} {}", esc(k), s(Some(v))))
            .collect();
        let dropped = if dropped.is_empty() {
            "—".into()
        } else {
            dropped.join(", ")
        };
        let dps = st.get("docs_per_second");
        let rate = if truthy(dps) { num(dps) } else { "—".into() };
        rows.push_str(&format!(
            "<tr><td>{} <span class=\"muted\">({})</span></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{dropped}</td><td>{} s, {rate} docs/s</td></tr>",
            e(st.get("name")),
            e(st.get("scope")),
            num(st.get("documents_in")),
            num(st.get("documents_out")),
            num(st.get("tokens_in")),
            num(st.get("tokens_out")),
            num(st.get("modified")),
            fixed(f(st.get("seconds")), 2),
        ));
    }
    let mut notes: String = arr(report, "notes")
        .iter()
        .map(|n| format!("<div class=\"note\">{}</div>", e(Some(n))))
        .collect();
    if truthy(report.get("records_skipped")) {
        notes.push_str(&format!(
            "<div class=\"note\">{} bad input records skipped (see rejects/)</div>",
            s(report.get("records_skipped"))
        ));
    }
    let langs = match report.get("languages").and_then(Value::as_object) {
        Some(l) if !l.is_empty() => languages_svg(l),
        _ => "<p class=\"muted\">no language stage ran</p>".into(),
    };
    let examples: String = stages
        .iter()
        .filter(|st| is(st, "ran"))
        .map(|st| {
            let (name, ex) = (e(st.get("name")), examples(st));
            format!("<section class=\"stage-examples\"><h3>{name}</h3>{ex}</section>")
        })
        .collect();
    let out = report.get("output").unwrap_or(&Value::Null);
    let funnel = arr(report, "funnel");
    let first = funnel.first().unwrap_or(&Value::Null);
    let null = Value::Null;
    format!(
        "<!DOCTYPE html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tamis refine report</title>
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{CSS}</style></head>
<body>
<h1>tamis refine report</h1>
<p class=\"muted\">tamis {version} · {shards} input shards ·
{seconds} s</p>
<p id=\"summary\">{in_docs} documents ({in_tokens} {unit}) in,
{out_docs} documents ({out_tokens} {unit}) out, in {dir}.</p>
{notes}
<h2>Funnel</h2>
{funnel}
<h2>Stages</h2>
<table id=\"stages\"><thead><tr><th>stage</th><th>docs in</th><th>docs out</th><th>{unit} in</th>
<th>{unit} out</th><th>modified</th><th>dropped</th><th>throughput</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Document lengths</h2>
{hist}
<h2>Languages</h2>
<section id=\"languages\">{langs}</section>
{tokens}<h2>What each stage removed</h2>
<section id=\"examples\">{examples}</section>
</body></html>
",
        version = e(report.get("tamis_version")),
        shards = s(report.get("shards")),
        seconds = fixed(f(report.get("seconds")), 1),
        in_docs = num(first.get("documents")),
        in_tokens = num(first.get("tokens")),
        out_docs = num(out.get("documents")),
        out_tokens = num(out.get("tokens")),
        dir = e(out.get("dir")),
        funnel = funnel_svg(funnel, &s(report.get("token_unit"))),
        hist = histogram_svg(report.get("histograms").unwrap_or(&null)),
        tokens = match report.get("tokens") {
            Some(t) if t.is_object() => format!("<h2>Training shards</h2>\n{}\n", tokens_html(t)),
            _ => String::new(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        json!({
            "tamis_version": "0.1.0", "shards": 2, "seconds": 12.345, "token_unit": "words",
            "records_skipped": 3, "notes": ["lang: fastText <missing>"],
            "stages": [
                {"name": "lang", "type": "language", "scope": "shard", "status": "skipped",
                 "note": "fastText is not installed"},
                {"name": "clean", "type": "c", "scope": "shard", "status": "ran",
                 "documents_in": 1234567, "documents_out": 50, "tokens_in": 1000, "tokens_out": 250,
                 "modified": 1, "dropped": {"short": 7}, "seconds": 0.125, "docs_per_second": 2.5,
                 "examples": {
                     "dropped": [{"id": "<script>x</script>", "reason": "short", "detail": "",
                                  "text": "a & 'b'"}],
                     "modified": [{"id": "m1", "removed_lines": ["gone"],
                                   "rewritten": [{"before": "old", "after": "new"}]}]}}],
            "funnel": [{"stage": "input", "documents": 100, "tokens": 1000},
                       {"stage": "clean", "documents": 50, "tokens": 250}],
            "histograms": {"unit": "words", "edges": [0, 1, 2, 4], "before": [0, 3, 1, 0],
                           "after": [0, 2, 0, 0]},
            "languages": {"": {"documents": 1, "kept": 0}, "de": {"documents": 5, "kept": 1},
                          "en": {"documents": 10, "kept": 9}, "fr": {"documents": 5, "kept": 5}},
            "output": {"dir": "out/data", "files": [], "documents": 50, "tokens": 250},
        })
    }

    #[test]
    fn numbers_like_python() {
        assert_eq!(num(Some(&json!(1234567))), "1,234,567");
        assert_eq!(num(Some(&json!(2.5))), "2.50");
        assert_eq!(num(Some(&json!(1234.5))), "1,234.50");
        assert_eq!(num(Some(&json!(3.0))), "3");
        assert_eq!(num(Some(&json!(-1234))), "-1,234");
        assert_eq!(num(Some(&json!(999))), "999");
        assert_eq!(fixed(0.125, 2), "0.12");
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }

    #[test]
    fn renders_the_report() {
        let h = render_html(&report());
        assert!(h.starts_with("<!DOCTYPE html>") && h.ends_with("</body></html>\n"));
        // funnel bars are proportional to the counts (470 px for the largest)
        assert!(h.contains(r#"<rect class="bar-docs" x="170" y="28" width="470.0""#));
        assert!(h.contains(r#"<rect class="bar-docs" x="170" y="62" width="235.0""#));
        assert!(h.contains(r#"<rect class="bar-tokens" x="170" y="56" width="117.5""#));
        assert!(h.contains("50 docs (50.0%), 250 words"));
        // escaping: no script survives
        assert!(!h.contains("<script"));
        assert!(h.contains("dropped &lt;script&gt;x&lt;/script&gt;: short</summary><pre>a &amp; &#x27;b&#x27;</pre>"));
        assert!(h.contains("<div class=\"note\">lang: fastText &lt;missing&gt;</div>"));
        assert!(h.contains("<div class=\"note\">3 bad input records skipped (see rejects/)</div>"));
        // the skipped stage with its note, the ran stage with its counts
        assert!(h.contains(r#"<tr class="skipped"><td>lang</td><td colspan="7" class="muted">fastText is not installed</td></tr>"#));
        assert!(h.contains("<td>1,234,567</td><td>50</td>"));
        assert!(h.contains("<td>short 7</td><td>0.12 s, 2.50 docs/s</td>"));
        assert!(h.contains("tamis 0.1.0 · 2 input shards ·\n12.3 s</p>"));
        // examples: only stages that ran
        assert!(h.contains("modified m1: 1 lines removed, 1 rewritten"));
        assert!(h.contains("<div class=\"removed\">− old</div><div class=\"after\">+ new</div>"));
        assert!(!h.contains("<h3>lang</h3>"));
        // histogram: only the used bins, labelled by their edges
        assert!(h.contains(">1</text>") && h.contains(">2–3</text>") && !h.contains("≥4"));
        assert!(h.contains("(max 3 documents)"));
        // languages by documents descending, then name
        let at = |s: &str| h.find(s).unwrap_or(usize::MAX);
        let order = [">en</text>", ">de</text>", ">fr</text>", ">(none)</text>"].map(at);
        assert!(
            order.windows(2).all(|w| w[0] < w[1] && w[1] != usize::MAX),
            "{order:?}"
        );
        assert!(h.contains(">10 seen, 9 kept</text>"));
        for id in [
            "funnel",
            "histogram",
            "languages-chart",
            "stages",
            "summary",
            "languages",
            "examples",
        ] {
            assert!(h.contains(&format!("id=\"{id}\"")), "{id}");
        }
    }

    #[test]
    fn at_most_twenty_languages() {
        let langs: Map<String, Value> = (0..30)
            .map(|i| (format!("l{i:02}"), json!({"documents": i, "kept": 0})))
            .collect();
        let h = render_html(&json!({ "languages": langs }));
        assert_eq!(h.matches(" seen, ").count(), 20);
        assert!(h.contains(">l29</text>") && !h.contains(">l09</text>"));
    }

    #[test]
    fn odd_input_does_not_panic() {
        let h = render_html(&json!({}));
        assert!(h.contains("no language stage ran") && h.contains("id=\"summary\""));
        for v in [
            json!(null),
            json!([1, 2]),
            json!({"stages": 5, "funnel": [1], "languages": {"x": 3}, "output": "o"}),
            json!({"histograms": {"edges": [0, 1], "before": ["a"], "after": null}}),
            json!({"stages": [{"status": "ran", "examples": {"dropped": [1], "modified": [{}]}}]}),
        ] {
            assert!(render_html(&v).contains("</html>"));
        }
    }
}
