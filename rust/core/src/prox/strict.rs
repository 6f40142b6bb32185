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
                _ => return Err(format!("truncated \\x, \\u or \\U escape (expected {n} hex digits)")),
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
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || c == '_')
                {
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
fn bind<'c>(
    call: &'c Call,
    params: &[&[&str]],
) -> Result<Vec<Option<&'c Value>>, String> {
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
            let args = bind(call, &[&["source_str", "source"], &["target_str", "target"]])?;
            let string = |v: Option<&Value>, what: &str| match v {
                Some(Value::Str(s)) if s.contains('\n') => {
                    Err(format!("{what} cannot span lines"))
                }
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
        source: lines.get(line - 1).map_or_else(String::new, |s| s.to_string()),
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
                    format!("{}() is a chunk operation, not a document decision", call.name),
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
