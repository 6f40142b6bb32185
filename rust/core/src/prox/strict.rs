//! Strict mode: a real parser for ProX programs. One call per line, Python-like: keyword or
//! positional arguments, integers, `True`/`False`, single- or double-quoted strings with Python
//! escapes; blank lines, `#` comments (also after a call) and code fences are skipped. Anything
//! else is an error naming the line. Programs are only parsed, never evaluated.

use std::fmt;

use super::exec::{Plan, ProgramError};
use super::pyrt::{is_py_space, PyInt};

/// An argument value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer literal.
    Int(i64),
    /// A string literal, escapes resolved.
    Str(String),
    /// `True` or `False`.
    Bool(bool),
}

/// One argument: `name=value` or a positional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The keyword, for keyword arguments.
    pub name: Option<String>,
    /// The value.
    pub value: Value,
}

/// One call of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Function name.
    pub name: String,
    /// Arguments in order.
    pub args: Vec<Arg>,
    /// 1-based line of the program.
    pub line: usize,
}

/// A line that is not a well-formed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line of the program.
    pub line: usize,
    /// The line.
    pub source: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {:?}", self.line, self.message, self.source)
    }
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_py_space) {
            self.bump();
        }
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> Option<&'a str> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
            _ => return None,
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.bump();
        }
        Some(&self.s[start..self.pos])
    }

    fn hex(&mut self, n: usize) -> Result<char, String> {
        let start = self.pos;
        for _ in 0..n {
            match self.bump() {
                Some(c) if c.is_ascii_hexdigit() => {}
                _ => {
                    return Err(format!(
                        "truncated \\x, \\u or \\U escape (expected {n} hex digits)"
                    ))
                }
            }
        }
        let v = u32::from_str_radix(&self.s[start..self.pos], 16).map_err(|e| e.to_string())?;
        char::from_u32(v).ok_or_else(|| format!("escape \\{v:x} is not a character"))
    }

    fn string(&mut self, quote: char) -> Result<String, String> {
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err("unterminated string".into());
            };
            if c == quote {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.bump() else {
                return Err("unterminated string".into());
            };
            match e {
                '\\' | '\'' | '"' => out.push(e),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                'x' => out.push(self.hex(2)?),
                'u' => out.push(self.hex(4)?),
                'U' => out.push(self.hex(8)?),
                // Python keeps unknown escapes as written.
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.bump();
                self.string(q).map(Value::Str)
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => {
                let start = self.pos;
                self.bump();
                while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '_') {
                    self.bump();
                }
                let lit = &self.s[start..self.pos];
                match PyInt::parse(lit).and_then(|v| v.small()) {
                    Some(v) => i64::try_from(v)
                        .map(Value::Int)
                        .map_err(|_| format!("integer {lit} is too large")),
                    None => Err(format!("{lit:?} is not an integer")),
                }
            }
            _ => match self.ident() {
                Some("True") => Ok(Value::Bool(true)),
                Some("False") => Ok(Value::Bool(false)),
                Some(other) => Err(format!("{other} is not a value (strings must be quoted)")),
                None => Err("expected a value: an integer, a quoted string, True or False".into()),
            },
        }
    }
}

/// Parse one line that holds a call.
fn parse_call(line: &str, number: usize) -> Result<Call, String> {
    let mut c = Cursor { s: line, pos: 0 };
    let name = c.ident().ok_or("expected a function call")?.to_string();
    c.skip_space();
    if !c.eat('(') {
        return Err(format!("expected '(' after {name}"));
    }
    let mut args: Vec<Arg> = Vec::new();
    loop {
        c.skip_space();
        if c.eat(')') {
            break;
        }
        if c.peek().is_none() {
            return Err("the call is not closed with ')'".into());
        }
        // `name=` makes a keyword argument; anything else is a positional value.
        let save = c.pos;
        let keyword = match c.ident() {
            Some(k) => {
                c.skip_space();
                if c.peek() == Some('=') && !c.s[c.pos..].starts_with("==") {
                    c.bump();
                    c.skip_space();
                    Some(k.to_string())
                } else {
                    c.pos = save;
                    None
                }
            }
            None => None,
        };
        if keyword.is_none() && args.iter().any(|a| a.name.is_some()) {
            return Err("a positional argument follows a keyword argument".into());
        }
        if let Some(k) = &keyword {
            if args.iter().any(|a| a.name.as_deref() == Some(k)) {
                return Err(format!("argument {k} is given twice"));
            }
        }
        let value = c.value()?;
        args.push(Arg {
            name: keyword,
            value,
        });
        c.skip_space();
        if c.eat(',') {
            continue;
        }
        c.skip_space();
        if c.eat(')') {
            break;
        }
        return match c.peek() {
            None => Err("the call is not closed with ')'".into()),
            Some(x) => Err(format!("expected ',' or ')' but found {x:?}")),
        };
    }
    c.skip_space();
    match c.peek() {
        None | Some('#') => Ok(Call {
            name,
            args,
            line: number,
        }),
        Some(_) => Err(format!(
            "unexpected text after the call: {:?}",
            &c.s[c.pos..]
        )),
    }
}

/// Parse a program: its calls, and an error for each line that is not a call, a blank line, a
/// comment or a code fence.
pub fn parse_program(program: &str) -> (Vec<Call>, Vec<ParseError>) {
    let mut calls = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in program.split('\n').enumerate() {
        let line = raw.trim_matches(is_py_space);
        if line.is_empty() || line.starts_with('#') || line.starts_with("```") {
            continue;
        }
        match parse_call(line, i + 1) {
            Ok(c) => calls.push(c),
            Err(message) => errors.push(ParseError {
                line: i + 1,
                source: raw.to_string(),
                message,
            }),
        }
    }
    (calls, errors)
}

/// Bind arguments to parameters: each parameter by one of its names, or by position.
fn bind<'c>(call: &'c Call, params: &[&[&str]]) -> Result<Vec<Option<&'c Value>>, String> {
    let mut out: Vec<Option<&Value>> = vec![None; params.len()];
    for (i, arg) in call.args.iter().enumerate() {
        let slot = match &arg.name {
            None => {
                if i >= params.len() {
                    return Err(format!(
                        "{}() takes at most {} arguments",
                        call.name,
                        params.len()
                    ));
                }
                i
            }
            Some(n) => params
                .iter()
                .position(|names| names.contains(&n.as_str()))
                .ok_or_else(|| format!("{}() has no argument {n}", call.name))?,
        };
        if out[slot].is_some() {
            return Err(format!("argument {} is given twice", params[slot][0]));
        }
        out[slot] = Some(&arg.value);
    }
    Ok(out)
}

const NO_OPS: [&str; 4] = ["keep_chunk", "skip_chunk", "untouch_doc", "keep_doc"];

fn chunk_call(call: &Call, plan: &mut Plan) -> Result<(), String> {
    match call.name.as_str() {
        "remove_lines" => {
            if let [Arg {
                name: Some(n),
                value: Value::Bool(true),
            }] = call.args.as_slice()
            {
                if n == "all" {
                    plan.remove_all = true;
                    return Ok(());
                }
            }
            let args = bind(call, &[&["line_start", "start"], &["line_end", "end"]])?;
            let int = |v: Option<&Value>, what: &str| match v {
                Some(Value::Int(i)) => Ok(*i),
                Some(_) => Err(format!("{what} must be an integer")),
                None => Err(format!("remove_lines() needs {what}")),
            };
            let start = int(args[0], "line_start")?;
            let end = int(args[1], "line_end")?;
            if start < 0 || end < 0 {
                return Err("line numbers cannot be negative".into());
            }
            if start > end {
                return Err(format!("line_start {start} is after line_end {end}"));
            }
            plan.intervals.push((
                PyInt::Small(start.into()),
                PyInt::Small(end.into()),
                call.line,
            ));
            Ok(())
        }
        "normalize" => {
            let args = bind(
                call,
                &[&["source_str", "source"], &["target_str", "target"]],
            )?;
            let string = |v: Option<&Value>, what: &str| match v {
                Some(Value::Str(s)) if s.contains('\n') => Err(format!("{what} cannot span lines")),
                Some(Value::Str(s)) => Ok(s.clone()),
                Some(_) => Err(format!("{what} must be a string")),
                None => Err(format!("normalize() needs {what}")),
            };
            let source = string(args[0], "source_str")?;
            let target = match args[1] {
                None => String::new(),
                v => string(v, "target_str")?,
            };
            if source.is_empty() {
                return Err("source_str is empty".into());
            }
            plan.replacements.push((source, target));
            Ok(())
        }
        "drop_doc" => Err("drop_doc() is a document-level function, not a chunk operation".into()),
        n if NO_OPS.contains(&n) => {
            if call.args.is_empty() {
                Ok(())
            } else {
                Err(format!("{n}() takes no arguments"))
            }
        }
        other => Err(format!("unknown function {other}()")),
    }
}

fn program_error(lines: &[&str], line: usize, message: String) -> ProgramError {
    ProgramError {
        line: Some(line),
        source: lines
            .get(line - 1)
            .map_or_else(String::new, |s| s.to_string()),
        message,
    }
}

pub(crate) fn plan(program: &str) -> Plan {
    let (calls, parse_errors) = parse_program(program);
    let lines: Vec<&str> = program.split('\n').collect();
    let mut plan = Plan::default();
    let mut errors: Vec<ProgramError> = parse_errors
        .into_iter()
        .map(|e| ProgramError {
            line: Some(e.line),
            source: e.source,
            message: e.message,
        })
        .collect();
    for call in &calls {
        if let Err(message) = chunk_call(call, &mut plan) {
            errors.push(program_error(&lines, call.line, message));
        }
    }
    errors.sort_by_key(|e| e.line);
    plan.errors = errors;
    plan.lines = lines.iter().map(|s| s.to_string()).collect();
    plan
}

/// A document program: drop when its first decision is `drop_doc()`; keep otherwise (also when
/// it makes none, as the reference does for an empty output). Other lines are errors.
pub(crate) fn doc_decision(program: &str) -> (bool, Vec<ProgramError>) {
    let (calls, parse_errors) = parse_program(program);
    let lines: Vec<&str> = program.split('\n').collect();
    let mut errors: Vec<ProgramError> = parse_errors
        .into_iter()
        .map(|e| ProgramError {
            line: Some(e.line),
            source: e.source,
            message: e.message,
        })
        .collect();
    let mut decision: Option<bool> = None;
    for call in &calls {
        let drop = match call.name.as_str() {
            "drop_doc" => true,
            "keep_doc" => false,
            "remove_lines" | "normalize" | "keep_chunk" | "skip_chunk" | "untouch_doc" => {
                errors.push(program_error(
                    &lines,
                    call.line,
                    format!(
                        "{}() is a chunk operation, not a document decision",
                        call.name
                    ),
                ));
                continue;
            }
            other => {
                errors.push(program_error(
                    &lines,
                    call.line,
                    format!("unknown function {other}()"),
                ));
                continue;
            }
        };
        if !call.args.is_empty() {
            errors.push(program_error(
                &lines,
                call.line,
                format!("{}() takes no arguments", call.name),
            ));
        }
        match decision {
            None => decision = Some(drop),
            Some(d) if d != drop => errors.push(program_error(
                &lines,
                call.line,
                "contradicts the earlier decision, which stands".into(),
            )),
            Some(_) => {}
        }
    }
    errors.sort_by_key(|e| e.line);
    (decision.unwrap_or(false), errors)
}

#[cfg(test)]
mod tests {
    use super::super::{execute_chunk, execute_doc, explain_chunk, explain_doc, Acceptance, Mode};
    use super::*;

    const F: &str = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda";

    fn strict(text: &str, program: &str) -> String {
        execute_chunk(text, program, Mode::Strict, &Acceptance::default())
    }

    #[test]
    fn parses_python_like_calls() {
        let (calls, errors) = parse_program(
            "```python\n# Analysis: menu\nremove_lines(line_start=0, line_end=5)  # nav\n\
             normalize('it\\'s', target_str=\"\\u00e9\\n\")\nremove_lines(3 , 4,)\nkeep_chunk()\n```",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["remove_lines", "normalize", "remove_lines", "keep_chunk"]
        );
        assert_eq!(calls[0].line, 3);
        assert_eq!(
            calls[1].args,
            vec![
                Arg {
                    name: None,
                    value: Value::Str("it's".into())
                },
                Arg {
                    name: Some("target_str".into()),
                    value: Value::Str("é\n".into())
                },
            ]
        );
        assert_eq!(calls[2].args[1].value, Value::Int(4));
    }

    #[test]
    fn reports_malformed_lines_with_their_line() {
        let cases = [
            ("remove_lines(line_start=0, line_end=", "expected a value"),
            ("remove_lines(line_start=0", "not closed"),
            ("normalize(source_str=\"abc)", "unterminated string"),
            ("normalize(source_str=abc)", "must be quoted"),
            ("remove_lines(line_start=1) extra", "unexpected text"),
            (
                "remove_lines(line_start=1, 2)",
                "positional argument follows",
            ),
            ("remove_lines(start=1, start=2)", "given twice"),
            ("print hello", "expected '('"),
            ("1 + 2", "expected a function call"),
            ("normalize(\"\\x4\")", "hex digits"),
        ];
        for (line, message) in cases {
            let (_, errors) = parse_program(&format!("keep_chunk()\n{line}"));
            assert_eq!(errors.len(), 1, "{line}");
            assert_eq!(errors[0].line, 2, "{line}");
            assert_eq!(errors[0].source, line);
            assert!(
                errors[0].message.contains(message),
                "{line}: {}",
                errors[0].message
            );
        }
    }

    #[test]
    fn executes_with_real_strings() {
        let t = format!("zero\nsee http://a.com/?u=1, (c) now\n{F}");
        // '=', ',' and ')' inside strings are just characters.
        assert_eq!(
            strict(
                &t,
                "normalize(source_str=\"http://a.com/?u=1, (c)\", target_str='')"
            ),
            format!("zero\nsee  now\n{F}")
        );
        // Positional arguments and names in any order.
        assert_eq!(strict(&t, "remove_lines(0, 1)"), F);
        assert_eq!(
            strict(&t, "remove_lines(line_end=1, line_start=1)"),
            format!("zero\n{F}")
        );
        assert_eq!(
            strict(&t, "remove_lines(start=0, end=0)"),
            format!("see http://a.com/?u=1, (c) now\n{F}")
        );
        assert_eq!(strict(&t, "remove_lines(all=True)"), "");
        // Indented calls run; the spaces are not significant.
        assert_eq!(strict(&t, "   remove_lines(0, 1)"), F);
    }

    #[test]
    fn counts_semantic_errors() {
        let t = format!("zero\n{F}");
        let count = |p: &str| {
            explain_chunk(&t, p, Mode::Strict, &Acceptance::default())
                .errors
                .len()
        };
        let cases = [
            ("frobnicate()", 1),
            ("drop_doc()", 1),
            ("keep_chunk(1)", 1),
            ("remove_lines(2, 1)", 1),
            ("remove_lines(-1, 1)", 1),
            ("remove_lines(line_start=0)", 1),
            ("remove_lines(\"0\", 1)", 1),
            ("remove_lines(0, 1, 2)", 1),
            ("remove_lines(first=0, last=1)", 1),
            ("normalize(\"\")", 1),
            ("normalize(\"a\\nb\", \"\")", 1),
            ("normalize(1, 2)", 1),
            ("remove_lines(5, 6)", 1),
            ("remove_lines(1, 6)", 1),
            ("remove_lines(5, 6)\nremove_lines(7, 8)", 2),
            (
                "normalize(\"absent\")\nskip_chunk()\nuntouch_doc()\nkeep_doc()",
                0,
            ),
        ];
        for (p, n) in cases {
            assert_eq!(count(p), n, "{p}");
        }
        // Two errors void the program, as in compat mode; the limit is configurable.
        let p = "remove_lines(0, 0)\nfoo()\nbar()";
        assert_eq!(strict(&t, p), t);
        let lenient = Acceptance {
            max_errors: 2,
            ..Acceptance::default()
        };
        assert_eq!(execute_chunk(&t, p, Mode::Strict, &lenient), F);
    }

    #[test]
    fn document_decisions() {
        let cases = [
            ("drop_doc()", "", 0),
            ("keep_doc()", "T", 0),
            ("", "T", 0),
            ("keep_doc() # never drop", "T", 0),
            ("```python\ndrop_doc()\n```", "", 0),
            ("keep_doc()\ndrop_doc()", "T", 1),
            ("I think we should drop it", "T", 1),
            ("remove_lines(0, 1)", "T", 1),
            ("drop_doc(now=True)", "", 1),
        ];
        for (p, out, errors) in cases {
            assert_eq!(execute_doc("T", p, Mode::Strict), out, "{p}");
            assert_eq!(
                explain_doc("T", p, Mode::Strict).errors.len(),
                errors,
                "{p}"
            );
        }
    }

    /// Renders calls back to source, for the round-trip property.
    fn render(call: &Call) -> String {
        let args: Vec<String> = call
            .args
            .iter()
            .map(|a| {
                let v = match &a.value {
                    Value::Int(i) => i.to_string(),
                    Value::Bool(b) => {
                        if *b {
                            "True".into()
                        } else {
                            "False".into()
                        }
                    }
                    Value::Str(s) => {
                        let mut out = String::from("\"");
                        for c in s.chars() {
                            match c {
                                '"' => out.push_str("\\\""),
                                '\\' => out.push_str("\\\\"),
                                '\n' => out.push_str("\\n"),
                                c if (c as u32) < 0x20 => {
                                    out.push_str(&format!("\\x{:02x}", c as u32))
                                }
                                c => out.push(c),
                            }
                        }
                        out.push('"');
                        out
                    }
                };
                match &a.name {
                    Some(n) => format!("{n}={v}"),
                    None => v,
                }
            })
            .collect();
        format!("{}({})", call.name, args.join(", "))
    }

    /// xorshift64*: a small deterministic generator, so the fuzz run is reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const PIECES: [&str; 24] = [
        "remove_lines",
        "normalize",
        "(",
        ")",
        ",",
        "=",
        "\"",
        "'",
        "\\",
        "line_start",
        "1",
        "-2",
        "all=True",
        " ",
        "\n",
        "#",
        "```",
        "é",
        "\u{a0}",
        "\r",
        "\\u00",
        "True",
        "_",
        "keep_chunk()",
    ];

    /// Fuzz target for the strict parser: random programs built from grammar fragments and
    /// random characters never panic, every error names a real line, and a text run through any
    /// program in either mode is dropped, original, or made only of its own lines.
    #[test]
    fn fuzz_parser_and_executor() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let text = format!("zero (a=1, b)\none \"two\"\n{F}\n{F}");
        for _ in 0..20_000 {
            let mut program = String::new();
            for _ in 0..rng.below(24) {
                if rng.below(5) == 0 {
                    program.push(char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'));
                } else {
                    program.push_str(PIECES[rng.below(PIECES.len())]);
                }
            }
            let n_lines = program.split('\n').count();
            let (calls, errors) = parse_program(&program);
            for e in &errors {
                assert!(e.line >= 1 && e.line <= n_lines, "{program:?}");
                assert_eq!(program.split('\n').nth(e.line - 1), Some(e.source.as_str()));
            }
            for c in &calls {
                let (again, errs) = parse_program(&render(c));
                assert!(errs.is_empty(), "{program:?} -> {}", render(c));
                assert_eq!(again[0].args, c.args, "{program:?}");
            }
            for mode in [Mode::Compat, Mode::Strict] {
                let e = explain_chunk(&text, &program, mode, &Acceptance::default());
                assert!(
                    e.text.is_empty()
                        || e.text == text
                        || e.outcome == super::super::Outcome::Edited
                );
                if e.replacements.iter().all(|r| r.count == 0) && !e.text.is_empty() {
                    let lines: Vec<&str> = text.split('\n').collect();
                    assert!(
                        e.text.split('\n').all(|l| lines.contains(&l)),
                        "{program:?}"
                    );
                }
            }
        }
    }
}
