//! `tamis tokenize`.

use anyhow::Result;
use serde_json::{json, Map, Value};
use tamis_core::io::IoOptions;
use tamis_core::tokenize::{tokenize, TokenizeOptions};

use crate::args::{GlobalArgs, TokenizeArgs};
use crate::opts::{given, options};
use crate::progress::Bar;

/// `--bos`/`--no-bos` as the option's value: true, false, or absent (the tokenizer decides).
fn flag(on: bool, off: bool) -> Option<Value> {
    match (on, off) {
        (true, _) => Some(Value::Bool(true)),
        (_, true) => Some(Value::Bool(false)),
        _ => None,
    }
}

pub fn run(g: &GlobalArgs, a: &TokenizeArgs) -> Result<()> {
    let mut flags = Map::new();
    if let Some(v) = flag(a.bos, a.no_bos) {
        flags.insert("bos".into(), v);
    }
    if let Some(v) = flag(a.eos, a.no_eos) {
        flags.insert("eos".into(), v);
    }
    let o: TokenizeOptions = options(&[given(a), Value::Object(flags)])?;
    let mut io = Map::new();
    io.insert("threads".into(), json!(g.threads));
    if let Some(k) = &a.text_key {
        io.insert("text_key".into(), json!(k));
    }
    if let Some(e) = &a.on_error {
        io.insert("on_error".into(), json!(e));
    }
    if let Some(r) = &a.rejects {
        io.insert("rejects".into(), json!(r));
    }
    let io: IoOptions = options(&[Value::Object(io)])?;
    let bar = Bar::new(g.quiet);
    let m = tokenize(&a.inputs, &a.output, &a.tokenizer, &io, &o, &bar)?;
    bar.finish_and_clear();
    if !g.quiet {
        eprintln!(
            "tokenize: {} documents, {} tokens in {} {} shard(s) ({}) -> {}",
            m.documents,
            m.tokens,
            m.shards.len(),
            m.format,
            m.dtype,
            a.output.join(tamis_core::tokenize::MANIFEST).display()
        );
    }
    Ok(())
}
