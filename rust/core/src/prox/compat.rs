//! The reference executor's reading of programs (ProX `utils/doc_utils.py` and
//! `utils/chunk_utils.py`), reproduced from its behaviour: string and prefix matching on each
//! program line, never a parser. Every quirk is deliberate; see `docs/prox.md`.

use super::exec::{Plan, ProgramError};
use super::pyrt::PyInt;

/// The reference drops a document when its program contains `drop` anywhere.
pub(crate) fn doc_drops(program: &str) -> bool {
    program.contains("drop")
}

/// `op[start:end]` with Python's slice rules, `end == None` standing for `-1` (drop the last
/// character). `start` is a char boundary (just after an ASCII `(`).
fn py_slice(op: &str, start: usize, end: Option<usize>) -> &str {
    let end = match end {
        Some(e) => e,
        None => op.char_indices().next_back().map_or(0, |(i, _)| i),
    };
    if end <= start {
        ""
    } else {
        &op[start..end]
    }
}

/// `s.split("=")[1]`.
fn after_first_eq(s: &str) -> Option<&str> {
    s.split('=').nth(1)
}

pub(crate) fn plan(program: &str) -> Plan {
    let mut plan = Plan::default();
    let program = program.trim_matches(' ');
    for (i, op) in program.split('\n').enumerate() {
        let line = i + 1;
        let is_remove = op.starts_with("remove_lines");
        if !is_remove && !op.starts_with("normalize") {
            continue;
        }
        if is_remove && op.contains("all=True") {
            plan.remove_all = true;
            continue;
        }
        let mut error = |message: &str| {
            plan.errors.push(ProgramError {
                line: Some(line),
                source: op.to_string(),
                message: message.to_string(),
            })
        };
        let Some(open) = op.find('(') else {
            error("no '(' in the call");
            continue;
        };
        let close = op.find(')');
        if close.is_none() {
            error("no ')' in the call (the last character is cut off)");
        }
        let args = py_slice(op, open + 1, close);
        if is_remove {
            let mut params = args.split(',');
            let start = params
                .next()
                .and_then(after_first_eq)
                .and_then(PyInt::parse);
            let end = params
                .next()
                .and_then(after_first_eq)
                .and_then(PyInt::parse);
            match (start, end) {
                (Some(s), Some(e)) => plan.intervals.push((s, e, line)),
                _ => error("the first two arguments are not `name=integer`"),
            }
        } else {
            let params: Vec<&str> = args.split(',').collect();
            let string = |p: &str| after_first_eq(p).map(|s| s.trim_matches('"').to_string());
            match params.as_slice() {
                [source] => match string(source) {
                    Some(s) => plan.replacements.push((s, String::new())),
                    None => error("the argument is not `name=string`"),
                },
                [source, target] => match (string(source), string(target)) {
                    (Some(s), Some(t)) => {
                        if s != " " && !s.is_empty() {
                            plan.replacements.push((s, t));
                        }
                    }
                    _ => error("the arguments are not `name=string`"),
                },
                // A comma inside a string: the reference ignores the call without counting it.
                _ => {}
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::super::{execute_chunk, execute_doc, explain_chunk, Acceptance, Mode, Reason};

    const F: &str = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda";

    fn run(text: &str, program: &str) -> String {
        execute_chunk(text, program, Mode::Compat, &Acceptance::default())
    }

    fn errors(text: &str, program: &str) -> usize {
        explain_chunk(text, program, Mode::Compat, &Acceptance::default())
            .errors
            .len()
    }

    #[test]
    fn line_numbers_past_usize_end_at_the_last_line() {
        let text: String = (0..20).map(|i| format!("line {i}\n")).collect();
        for end in [
            "18446744073709551615",
            "18446744073709551621",
            "1000000000000000000000000000000",
            "340282366920938463463374607431768211457",
        ] {
            let p = format!("remove_lines(line_start=0, line_end={end})");
            assert_eq!(run(&text, &p), "", "{end}");
        }
        let p = "remove_lines(line_start=18446744073709551621, line_end=18446744073709551625)";
        assert_eq!(run(&text, p), text);
    }

    #[test]
    fn normalize_cannot_grow_a_text_without_bound() {
        use super::super::exec::{GROWTH_FACTOR, GROWTH_FLOOR};
        let text = format!("{} {F}", "o".repeat(200_000));
        let program = "normalize(source_str=\"o\", target_str=\"oo\")\n".repeat(20);
        let e = explain_chunk(&text, &program, Mode::Compat, &Acceptance::default());
        let cap = (text.len() * GROWTH_FACTOR).max(GROWTH_FLOOR);
        // Four doublings fit under 16 times the size; the other 16 calls are errors, so the
        // program is discarded by the acceptance rule and the original is kept.
        assert_eq!(e.replacements.iter().filter(|r| r.count > 0).count(), 4);
        assert_eq!(e.errors.len(), 16);
        assert!(
            e.errors[0].message.contains(&format!("cap of {cap}")),
            "{}",
            e.errors[0].message
        );
        assert_eq!(run(&text, &program), text);
        // A small text may grow to the floor, no further.
        let e = explain_chunk(
            "o o",
            &"normalize(source_str=\"o\", target_str=\"oooo\")\n".repeat(12),
            Mode::Compat,
            &Acceptance {
                min_words: 0,
                max_errors: 100,
                ..Acceptance::default()
            },
        );
        assert!(
            e.text.len() <= GROWTH_FLOOR && e.text.len() > GROWTH_FLOOR / 4,
            "{}",
            e.text.len()
        );
    }

    #[test]
    fn doc_programs_drop_on_the_substring() {
        let cases = [
            ("drop_doc()", ""),
            ("keep_doc()", "T"),
            ("", "T"),
            ("keep_doc() # never drop", ""),
            ("  drop_doc()  ", ""),
            ("Drop_doc()", "T"),
            ("dropped", ""),
        ];
        for (program, expected) in cases {
            assert_eq!(
                execute_doc("T", program, Mode::Compat),
                expected,
                "{program:?}"
            );
        }
    }

    /// The table of research/prox.md §6, derived from the reference code.
    #[test]
    fn reference_table() {
        let doc1 = format!(
            "Home | Products | About Us | Contact\nWelcome to our website\n{}\n© 2023 Example Inc. All rights reserved.",
            "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
        );
        let lines: Vec<&str> = doc1.split('\n').collect();
        // 1: removes lines 0 and 3.
        assert_eq!(
            run(
                &doc1,
                "remove_lines(line_start=0, line_end=0)\nremove_lines(line_start=3, line_end=3)"
            ),
            format!("{}\n{}", lines[1], lines[2])
        );
        // 2: positional arguments are an error; one error still accepts the (empty) edit.
        assert_eq!(run(&doc1, "remove_lines(0, 0)"), doc1);
        assert_eq!(errors(&doc1, "remove_lines(0, 0)"), 1);
        // 3: names are ignored: start=3, end=0 is a reversed range.
        assert_eq!(run(&doc1, "remove_lines(line_end=3, line_start=0)"), doc1);
        assert_eq!(errors(&doc1, "remove_lines(line_end=3, line_start=0)"), 0);
        // 4: '=' inside the string truncates it.
        assert_eq!(
            run(
                &format!("see http://a.com/?u=1 now\n{F}"),
                r#"normalize(source_str="http://a.com/?u=1", target_str="")"#
            ),
            format!("see =1 now\n{F}")
        );
        // 5: ')' inside the string truncates the call; one part left.
        assert_eq!(
            run(
                &format!("(c) 2023 ACME (cool)\n{F}"),
                r#"normalize(source_str="(c) 2023 ACME", target_str="")"#
            ),
            format!(") 2023 ACME ool)\n{F}")
        );
        // 6: a comma inside the string: ignored, no error.
        let t6 = format!("Home, About, Contact\n{F}");
        let p6 = r#"normalize(source_str="Home, About, Contact", target_str="")"#;
        assert_eq!(run(&t6, p6), t6);
        assert_eq!(errors(&t6, p6), 0);
        // 7: every occurrence, no whitespace cleanup.
        assert_eq!(
            run(
                &format!("Click Here to read. Click Here again.\n{F}"),
                r#"normalize(source_str="Click Here", target_str="")"#
            ),
            format!(" to read.  again.\n{F}")
        );
        // 8: a truncated trailing call costs two errors and voids the program.
        let t8 = format!("Menu\n{F}");
        let p8 = "remove_lines(line_start=0, line_end=0)\nremove_lines(start=1, end";
        assert_eq!(run(&t8, p8), t8);
        assert_eq!(errors(&t8, p8), 2);
        // 9: an interval past the end: one error, accepted.
        let t9 = "a b c d e f g h i j k\nline two";
        assert_eq!(
            run(t9, "remove_lines(line_start=1, line_end=5)"),
            "a b c d e f g h i j k"
        );
        // 10: two unmerged out-of-range intervals: two errors, original.
        let p10 = "remove_lines(line_start=1, line_end=5)\nremove_lines(line_start=7, line_end=9)";
        assert_eq!(run(t9, p10), t9);
        // 11: merged into one interval: one error, accepted.
        let p11 = "remove_lines(line_start=1, line_end=5)\nremove_lines(line_start=6, line_end=9)";
        assert_eq!(run(t9, p11), "a b c d e f g h i j k");
        assert_eq!(errors(t9, p11), 1);
        // 12: all=True removes everything.
        assert_eq!(run(&doc1, "remove_lines(all=True)"), "");
        // 13: 11 of 220 words left is exactly 0.05 <= 0.050000000000000044: dropped.
        let t13 = format!("{}\n{F}", vec!["w"; 209].join(" "));
        let e13 = explain_chunk(
            &t13,
            "remove_lines(line_start=0, line_end=0)",
            Mode::Compat,
            &Acceptance::default(),
        );
        assert_eq!((e13.text.as_str(), e13.reason), ("", Reason::TooLittleLeft));
        // 14: ten words or fewer are dropped, even with an empty program.
        let e14 = explain_chunk(
            "Short page with only nine words in it, really.",
            "",
            Mode::Compat,
            &Acceptance::default(),
        );
        assert_eq!((e14.text.as_str(), e14.reason), ("", Reason::TooFewWords));
        // 15: indented and unknown lines are ignored; only the first line loses its spaces.
        assert_eq!(
            run(
                F,
                "keep_chunk()\n  remove_lines(line_start=0, line_end=0)\n```python"
            ),
            F
        );
        assert_eq!(
            run(
                &format!("{F}\nx"),
                "  remove_lines(line_start=1, line_end=1)"
            ),
            F
        );
    }

    #[test]
    fn quirks() {
        let t = format!("zero\none\ntwo\n{F}");
        let cases: Vec<(&str, String)> = vec![
            // Only the first `=` segment is read: `line_start=1=2` is 1.
            ("remove_lines(line_start=1=2, line_end=1)", format!("zero\ntwo\n{F}")),
            // int() accepts spaces, signs, underscores and Unicode digits.
            ("remove_lines(line_start= +1 , line_end=\u{662})", format!("zero\n{F}")),
            ("remove_lines(line_start=0_0, line_end=1_)", t.clone()),
            // Negative starts cover line 0 without wrapping around.
            ("remove_lines(line_start=-5, line_end=0)", format!("one\ntwo\n{F}")),
            // Extra arguments are ignored.
            ("remove_lines(line_start=1, line_end=1, reason=menu)", format!("zero\ntwo\n{F}")),
            // No ')' cuts the last character (one error, still accepted).
            ("remove_lines(line_start=1, line_end=2x", format!("zero\n{F}")),
            ("remove_lines(line_start=1, line_end=2)", format!("zero\n{F}")),
            ("remove_lines(line_start=1, line_end=22", format!("zero\n{F}")),
            // A ')' before the '(' leaves no arguments.
            ("remove_lines) (line_start=1, line_end=1)", t.clone()),
            // Single-quoted strings keep their quotes and do not match.
            ("normalize(source_str='zero', target_str='0')", t.clone()),
            // Double quotes are stripped, all of them.
            ("normalize(source_str=\"\"zero\"\", target_str=\"0\")", format!("0\none\ntwo\n{F}")),
            // Spaces around '=' keep the quote: no match.
            ("normalize(source_str = \"zero\", target_str=\"0\")", t.clone()),
            // A one-argument normalize deletes, and " " is not guarded there.
            ("normalize(source_str=\"zero\")", format!("\none\ntwo\n{F}")),
            // Replacement is global and runs before line removal, in program order.
            ("remove_lines(line_start=0, line_end=0)\nnormalize(source_str=\"o\", target_str=\"0\")", format!("0ne\ntw0\n{}", F.replace('o', "0"))),
            ("normalize(source_str=\"one\", target_str=\"two\")\nnormalize(source_str=\"two\", target_str=\"2\")", format!("zero\n2\n2\n{F}")),
            // Two-argument normalize ignores " " and "" sources.
            ("normalize(source_str=\" \", target_str=\"_\")", t.clone()),
            // The recognised prefixes are case-sensitive and must start the line.
            ("Remove_lines(line_start=0, line_end=0)", t.clone()),
            ("# remove_lines(line_start=0, line_end=0)", t.clone()),
            // A prefix match is enough: `remove_lines_x(...)` runs.
            ("remove_linesX(a=0, b=0)", format!("one\ntwo\n{F}")),
            // all=True anywhere on a remove_lines line.
            ("remove_lines(line_start=0, line_end=0) # all=True", String::new()),
            // Text lines split on \n only: \r stays in the line.
            ("normalize(source_str=\"zero\r\", target_str=\"\")", t.clone()),
        ];
        for (program, expected) in cases {
            assert_eq!(run(&t, program), expected, "{program:?}");
        }
        let words = F.replace(' ', "\n");
        let sp = format!("a b\n{words}");
        assert_eq!(
            run(&sp, "normalize(source_str=\" \")"),
            format!("ab\n{words}")
        );
    }

    #[test]
    fn error_counts() {
        let t = format!("zero\n{F}");
        let cases = [
            ("remove_lines", 1),
            ("remove_lines(line_start=0, line_end=0", 2),
            ("remove_lines(line_start=0, line_end=", 2),
            ("remove_lines(0, 0)", 1),
            ("remove_lines(line_start=0)", 1),
            ("normalize", 1),
            ("normalize()", 1),
            ("normalize(source_str=\"x\"", 1),
            ("normalize(\"x\", \"y\")", 1),
            ("normalize(source_str=\"a,b\", target_str=\"\")", 0),
            ("normalize(source_str=\"absent\", target_str=\"\")", 0),
            (
                "remove_lines(line_start=5, line_end=9)\nremove_lines(line_start=7, line_end=7)",
                1,
            ),
            (
                "remove_lines(line_start=5, line_end=6)\nremove_lines(line_start=8, line_end=9)",
                2,
            ),
            // Reversed intervals still take part in the merge and the check.
            ("remove_lines(line_start=9, line_end=3)", 1),
            ("remove_lines(line_start=1, line_end=1)", 0),
            ("remove_lines(line_start=1, line_end=2)", 1),
        ];
        for (program, n) in cases {
            assert_eq!(errors(&t, program), n, "{program:?}");
        }
    }

    #[test]
    fn whitespace_only_text_is_dropped() {
        for t in ["", " ", "\n\n", "\u{a0}\u{3000}"] {
            let e = explain_chunk(t, "", Mode::Compat, &Acceptance::default());
            assert_eq!((e.text.as_str(), e.reason), ("", Reason::NoWords));
        }
    }

    #[test]
    fn huge_integers_merge_as_python_does() {
        let t = format!("zero\n{F}");
        let big = "1".repeat(60);
        // Two far-apart huge intervals stay apart: two errors, original text.
        let p = format!("remove_lines(line_start={big}0, line_end={big}0)\nremove_lines(line_start={big}5, line_end={big}5)");
        assert_eq!(errors(&t, &p), 2);
        // Adjacent ones merge: one error.
        let p = format!("remove_lines(line_start={big}0, line_end={big}0)\nremove_lines(line_start={big}1, line_end={big}1)");
        assert_eq!(errors(&t, &p), 1);
    }
}
