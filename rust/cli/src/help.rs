//! The command line with each option's default in its help, taken from the core options types
//! (the flags themselves have no clap defaults, so that the defaults live in one place).

use clap::{Command, CommandFactory};
use serde_json::Value;
use tamis_core::dedup::near::NearOptions;
use tamis_core::dedup::{ExactOptions, LinesOptions};
use tamis_core::embed::InitConfig;
use tamis_core::io::IoOptions;
use tamis_core::options::Options;
use tamis_core::refine::stage_type;
use tamis_core::vocab::{ExtendOptions, StatsOptions};

use crate::args::Cli;

/// Defaults of the options behind the subcommand at `path`.
fn defaults(path: &[String]) -> Vec<Value> {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let stage = |name: &str| stage_type(name).map_or(Value::Null, |t| t.defaults());
    let mut out = vec![IoOptions::defaults()];
    out.push(match p.as_slice() {
        ["dedup", "exact"] => ExactOptions::defaults(),
        ["dedup", "lines"] => LinesOptions::defaults(),
        ["dedup", "near", ..] => NearOptions::defaults(),
        ["filter", "language"] => stage("language"),
        ["filter", "quality"] => stage("quality"),
        ["prox", "refine"] => stage("prox_doc"),
        ["vocab", "extend"] => ExtendOptions::defaults(),
        ["vocab", "stats"] => StatsOptions::defaults(),
        ["embed", "init"] => InitConfig::defaults(),
        ["tokenize"] => tamis_core::tokenize::TokenizeOptions::defaults(),
        _ => Value::Null,
    });
    out
}

fn shown(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn annotate(mut cmd: Command, path: &mut Vec<String>) -> Command {
    let values = defaults(path);
    let ids: Vec<String> = cmd
        .get_arguments()
        .filter(|a| a.get_long().is_some() && a.get_default_values().is_empty())
        .map(|a| a.get_id().to_string())
        .collect();
    for id in ids {
        let Some(d) = values.iter().find_map(|v| v.get(&id).and_then(shown)) else {
            continue;
        };
        cmd = cmd.mut_arg(&id, |a| {
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            a.help(format!("{help} [default: {d}]"))
        });
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        path.push(name.clone());
        let p = path.clone();
        cmd = cmd.mut_subcommand(&name, |s| annotate(s, &mut p.clone()));
        path.pop();
    }
    cmd
}

/// The `tamis` command, defaults shown.
pub fn command() -> Command {
    annotate(Cli::command(), &mut Vec::new())
}
