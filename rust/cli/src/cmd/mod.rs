//! Subcommand implementations: resolve arguments into core configs, run, report.

mod dedup;
mod demo;
mod embed;
mod index;
mod mix;
mod near;
mod prox;
mod refine;
mod tokenize;
mod vocab;

use anyhow::Result;
use tamis_core::refine::ExternalStages;

use crate::args::{
    Cli, Command, DedupCommand, EmbedCommand, FilterCommand, IndexCommand, ProxCommand,
    VocabCommand,
};

/// A command implemented in the Python package: point there.
fn python_only(command: &str, extra: &str, why: &str, doc: &str) -> Result<()> {
    anyhow::bail!(
        "`tamis {command}` lives in the Python package ({why}): install it with \
         `pip install 'tamis{extra}'` and run the `tamis` script it installs (or \
         `python -m tamis {command} ...`); see {doc}"
    )
}

/// Run the parsed command line; `external` runs the stages that live outside Rust.
pub fn dispatch(cli: &Cli, external: &mut dyn ExternalStages) -> Result<()> {
    match &cli.command {
        Command::Dedup(DedupCommand::Exact(a)) => dedup::exact(&cli.global, a),
        Command::Dedup(DedupCommand::Lines(a)) => dedup::lines(&cli.global, a),
        Command::Dedup(DedupCommand::Substring(a)) => dedup::substring(&cli.global, a),
        Command::Dedup(DedupCommand::Near(a)) => near::run(&cli.global, a),
        Command::Prox(ProxCommand::Apply(a)) => prox::apply(&cli.global, a),
        Command::Prox(ProxCommand::Prompts(a)) => prox::prompts(&cli.global, a),
        Command::Prox(ProxCommand::Refine(a)) => prox::refine(&cli.global, a, external),
        Command::Prox(ProxCommand::Annotate(_)) => python_only(
            "prox annotate",
            "[annotate]",
            "its HTTP client is Python's aiohttp",
            "docs/prox.md",
        ),
        Command::Prox(ProxCommand::Train(_)) => python_only(
            "prox train",
            "[prox]",
            "training runs with torch",
            "docs/prox-train.md",
        ),
        Command::Prox(ProxCommand::Eval(_)) => python_only(
            "prox eval",
            "[prox]",
            "the models run with torch",
            "docs/prox-train.md",
        ),
        Command::Vocab(VocabCommand::Extend(a)) => vocab::extend(&cli.global, a),
        Command::Vocab(VocabCommand::Stats(a)) => vocab::stats(&cli.global, a),
        Command::Embed(EmbedCommand::Init(a)) => embed::init(&cli.global, a),
        Command::Embed(EmbedCommand::Eval(_)) => embed::eval(),
        Command::Demo(a) => demo::run(&cli.global, a, external),
        Command::Refine(a) => refine::refine(&cli.global, a, external),
        Command::Filter(FilterCommand::Language(a)) => refine::language(&cli.global, a, external),
        Command::Filter(FilterCommand::Quality(a)) => refine::quality(&cli.global, a, external),
        Command::Mix(a) => mix::run(&cli.global, a),
        Command::Index(IndexCommand::Build(a)) => index::build(&cli.global, a),
        Command::Index(IndexCommand::Add(a)) => index::add(&cli.global, a),
        Command::Index(IndexCommand::Info(a)) => index::info(a),
        Command::Decontaminate(a) => index::decontaminate(&cli.global, a),
        Command::Tokenize(a) => tokenize::run(&cli.global, a),
        Command::Filter(FilterCommand::Train(_)) => python_only(
            "filter train",
            "[filters]",
            "fastText trains in Python",
            "docs/refine.md",
        ),
    }
}
