//! The refine driver: steps over shards, completion markers, resuming, and the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{RefineConfig, StageConfig};
use super::external::{Checked, ExternalStages};
use super::fingerprint::{self, RunRecord};
use super::observe::{Chain, Measured, Observed};
use super::report::build_report;
use super::stages::{Scope, StageOptions};
use super::stats::{Population, StageStats, TokenCounter};
use crate::dedup::near::{check_unchanged, filter_stage, find_clusters, fingerprints};
use crate::dedup::substring::SubstringPlan;
use crate::dedup::{ExactDedup, LineDedup};
use crate::io::{
    expand_inputs, AtomicFile, ExtractOptions, InputFile, OnError, Output, OutputFormat,
};
use crate::options::OptionError;
use crate::pipeline::{resolved, run_to, thread_pool, NoProgress, Progress, RunOptions, Targets};
use crate::{Error, Result, Stats};

/// What a run tells its caller as it goes.
pub trait RefineObserver: Sync {
    /// A line about what is being done.
    fn message(&self, _message: &str) {}
    /// A shard of a shard step is finished (its output and marker are in place).
    fn shard_done(&self) {}
    /// Progress of the current pass over the data.
    fn progress(&self) -> &dyn Progress {
        &NoProgress
    }
}

/// An observer that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;
impl RefineObserver for Quiet {}

/// A step: one global stage, or consecutive shard stages (possibly none: a copy).
#[derive(Debug, Clone)]
struct Step {
    index: usize,
    stages: Vec<StageConfig>,
    global: bool,
}

/// A step with what it reads and writes: one output per input shard; `first` reads the run's
/// inputs (and writes rejects), `last` writes the refined shards.
#[derive(Clone, Copy)]
struct StepIo<'s> {
    step: &'s Step,
    inputs: &'s [InputFile],
    outputs: &'s [PathBuf],
    first: bool,
    last: bool,
}

/// What a step (or one shard of it) measured; also its completion marker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct StepResult {
    pub input: Population,
    pub output: Population,
    pub stages: BTreeMap<String, StageStats>,
    pub skipped: u64,
}

impl StepResult {
    fn from_measured(m: Measured, stages: &[StageConfig], skipped: u64) -> Self {
        StepResult {
            input: m.input,
            output: m.output,
            stages: stages
                .iter()
                .map(|s| s.name.clone())
                .zip(m.stages)
                .collect(),
            skipped,
        }
    }

    fn merge(&mut self, other: &StepResult, examples: usize) {
        self.input.merge(&other.input);
        self.output.merge(&other.output);
        self.skipped += other.skipped;
        for (name, st) in &other.stages {
            self.stages
                .entry(name.clone())
                .or_default()
                .merge(st, examples);
        }
    }
}

fn usage(message: String) -> Error {
    Error::Options(OptionError {
        fields: Vec::new(),
        message,
    })
}

/// A checked refine run, ready to start.
pub struct Refine<'a> {
    config: RefineConfig,
    files: Vec<InputFile>,
    external: &'a mut dyn ExternalStages,
    counter: TokenCounter,
}

impl std::fmt::Debug for Refine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refine")
            .field("config", &self.config)
            .finish()
    }
}

impl<'a> Refine<'a> {
    /// Check everything that can be checked before any work: the external stages (packages,
    /// models; a skippable one that cannot run is skipped with a note), the inputs (present,
    /// not standard input), the output (not inside an input, no input inside it) and the report
    /// tokenizer. Errors are configuration errors ([`Error::Options`]).
    pub fn new(mut config: RefineConfig, external: &'a mut dyn ExternalStages) -> Result<Self> {
        config.check_stages(external)?;
        let files = expand_inputs(&config.inputs).map_err(|e| usage(e.to_string()))?;
        crate::io::require_rereadable(&files, "refine").map_err(|e| usage(e.to_string()))?;
        check_output_place(&config, &files)?;
        let counter = TokenCounter::new(config.report.tokenizer.as_deref())
            .map_err(|e| usage(format!("[report]: {e}")))?;
        Ok(Refine {
            config,
            files,
            external,
            counter,
        })
    }

    /// The checked configuration (with the notes of skipped stages).
    pub fn config(&self) -> &RefineConfig {
        &self.config
    }

    /// The input files, in order.
    pub fn files(&self) -> &[InputFile] {
        &self.files
    }

    fn steps(&self) -> Vec<Step> {
        let mut steps: Vec<Step> = Vec::new();
        let mut run: Vec<StageConfig> = Vec::new();
        // `tokenize` runs after the steps, on the refined shards ([`Refine::tokenize`]).
        let stages = self
            .config
            .stages
            .iter()
            .filter(|s| s.skipped.is_none() && !matches!(s.options, StageOptions::Tokenize(_)));
        for s in stages {
            if s.options.kind().scope == Scope::Global {
                if !run.is_empty() {
                    steps.push(Step {
                        index: steps.len(),
                        stages: std::mem::take(&mut run),
                        global: false,
                    });
                }
                steps.push(Step {
                    index: steps.len(),
                    stages: vec![s.clone()],
                    global: true,
                });
            } else {
                run.push(s.clone());
            }
        }
        if !run.is_empty() || steps.is_empty() {
            steps.push(Step {
                index: steps.len(),
                stages: run,
                global: false,
            });
        }
        steps
    }

    fn state(&self) -> PathBuf {
        self.config.output.join(".tamis")
    }

    fn shard_name(&self, i: usize, last: bool) -> String {
        let ext = if last {
            self.config.compression.extension()
        } else {
            ".jsonl"
        };
        format!("{i:05}{ext}")
    }

    fn output_of(&self, path: PathBuf, last: bool) -> Output {
        let c = if last {
            self.config.compression.compression()
        } else {
            crate::io::Compression::None
        };
        Output {
            path: Some(path),
            format: OutputFormat::Jsonl(c),
        }
    }

    fn run_options(&self, key: Option<String>) -> RunOptions {
        RunOptions {
            extract: ExtractOptions {
                text_key: self.config.text_key.clone(),
                id_key: self.config.id_key.clone(),
                key,
            },
            on_error: self.config.on_error,
            rejects: None,
            threads: self.config.threads,
            rows_as_json: true,
            ..RunOptions::default()
        }
    }

    fn rejects_path(&self, shard: usize) -> PathBuf {
        self.config
            .output
            .join("rejects")
            .join(format!("{shard:05}.jsonl"))
    }

    /// Run (or resume) the refinement; returns the report (also written to `report.json` and
    /// `report.html` in the output directory).
    pub fn run(&mut self, restart: bool, observer: &dyn RefineObserver) -> Result<Value> {
        let started = std::time::Instant::now();
        let out = self.config.output.clone();
        let state = self.state();
        let pool = thread_pool(self.config.threads)?;
        if restart {
            for d in [state.clone(), out.join("data"), out.join("rejects")] {
                if d.exists() {
                    std::fs::remove_dir_all(&d)
                        .map_err(|e| Error::io(d.display().to_string(), e))?;
                }
            }
        }
        mkdir(&out)?;
        let mut recorded = self.config.to_value();
        if let Value::Object(m) = &mut recorded {
            for k in ["output", "threads", "inputs"] {
                m.remove(k);
            }
            // An index rebuilt in place changes the output: record what each one holds (its
            // manifest lists every file's checksum).
            let indexes: Vec<Value> = self
                .config
                .stages
                .iter()
                .flat_map(|s| match &s.options {
                    StageOptions::DedupExact(o) => o.against.clone(),
                    StageOptions::DedupLines(o) => o.against.clone(),
                    StageOptions::DedupNear(o) => o.against.clone(),
                    StageOptions::Decontaminate(o) => o.against.clone(),
                    _ => Vec::new(),
                })
                .map(|p| {
                    let manifest =
                        std::fs::read(p.join(crate::index::MANIFEST)).unwrap_or_default();
                    serde_json::json!({
                        "path": p.display().to_string(),
                        "manifest_xxh3": format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&manifest)),
                    })
                })
                .collect();
            if !indexes.is_empty() {
                m.insert("indexes".into(), Value::Array(indexes));
            }
        }
        let run_file = state.join("run.json");
        if run_file.exists() {
            let old: RunRecord = read_json(&run_file)?;
            if let Some(why) = fingerprint::compare(&old, &recorded, &self.files, &pool)? {
                return Err(usage(format!(
                    "{} holds a run of {why}; use another output directory, or restart it (--restart)",
                    out.display()
                )));
            }
        } else {
            let data = out.join("data");
            if data.is_dir()
                && std::fs::read_dir(&data)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(false)
            {
                return Err(usage(format!(
                    "{} already holds files not written by this run",
                    data.display()
                )));
            }
            mkdir(&state)?;
            observer.message("fingerprinting the inputs");
            let record = fingerprint::record(recorded, &self.files, &pool)?;
            write_json(&run_file, &record)?;
        }
        let steps = self.steps();
        let n_steps = steps.len();
        let mut inputs = self.files.clone();
        let mut results: Vec<StepResult> = Vec::new();
        for step in &steps {
            let last = step.index + 1 == n_steps;
            let dir = if last {
                out.join("data")
            } else {
                state.join(format!("step-{:02}", step.index)).join("data")
            };
            mkdir(&dir)?;
            let outputs: Vec<PathBuf> = (0..inputs.len())
                .map(|i| dir.join(self.shard_name(i, last)))
                .collect();
            let first = step.index == 0;
            let io = StepIo {
                step,
                inputs: &inputs,
                outputs: &outputs,
                first,
                last,
            };
            let res = if step.global {
                self.run_global(io, observer)?
            } else {
                self.run_shards(io, observer)?
            };
            results.push(res);
            if step.index > 0 {
                let prev = state
                    .join(format!("step-{:02}", step.index - 1))
                    .join("data");
                if prev.exists() {
                    std::fs::remove_dir_all(&prev)
                        .map_err(|e| Error::io(prev.display().to_string(), e))?;
                }
            }
            inputs = outputs.iter().map(|p| InputFile::from_path(p)).collect();
        }
        let files: Vec<PathBuf> = (0..self.files.len())
            .map(|i| out.join("data").join(self.shard_name(i, true)))
            .collect();
        let tokens = self.tokenize(&files, observer)?;
        let mut report = build_report(
            &self.config,
            &self.files,
            &results,
            self.counter.unit(),
            &files,
            started.elapsed().as_secs_f64(),
        );
        if let (Some(t), Value::Object(m)) = (tokens, &mut report) {
            m.insert("tokens".into(), t);
        }
        write_json(&out.join("report.json"), &report)?;
        write_text(&out.join("report.html"), &super::html::render_html(&report))?;
        Ok(report)
    }

    /// The `tokenize` stage, if there is one: the refined shards into training shards in
    /// `OUTPUT/tokens/` (resumable by itself, as `tamis tokenize` is); returns the report's
    /// `tokens` section.
    fn tokenize(&self, files: &[PathBuf], observer: &dyn RefineObserver) -> Result<Option<Value>> {
        let Some(StageOptions::Tokenize(o)) = self
            .config
            .stages
            .iter()
            .map(|s| &s.options)
            .find(|o| matches!(o, StageOptions::Tokenize(_)))
        else {
            return Ok(None);
        };
        observer.message("tokenizing the refined shards");
        let io = crate::io::IoOptions {
            text_key: self.config.text_key.clone(),
            id_key: self.config.id_key.clone(),
            threads: self.config.threads,
            ..Default::default()
        };
        let inputs: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        let dir = self.config.output.join("tokens");
        let manifest = crate::tokenize::tokenize(
            &inputs,
            &dir,
            &o.tokenizer,
            &io,
            &o.shards,
            observer.progress(),
        )?;
        Ok(Some(super::tokens::section(&manifest, &dir)?))
    }

    fn run_shards(&mut self, io: StepIo<'_>, observer: &dyn RefineObserver) -> Result<StepResult> {
        let StepIo {
            step,
            inputs,
            outputs,
            first,
            last,
        } = io;
        let done = self
            .state()
            .join(format!("step-{:02}", step.index))
            .join("done");
        mkdir(&done)?;
        let pool = thread_pool(self.config.threads)?;
        let mut total = StepResult::default();
        let examples = self.config.report.examples;
        for (i, (input, output)) in inputs.iter().zip(outputs).enumerate() {
            let marker = done.join(format!("{i:05}.json"));
            if marker.exists() {
                let r: StepResult = read_json(&marker)?;
                total.merge(&r, examples);
                continue;
            }
            observer.message(&format!(
                "step {} shard {}/{}",
                step.index,
                i + 1,
                inputs.len()
            ));
            let mut opts = self.run_options(None);
            if first {
                let rejects = self.rejects_path(i);
                remove_file(&rejects)?;
                if self.config.on_error == OnError::Skip {
                    mkdir(rejects.parent().unwrap_or(Path::new(".")))?;
                    opts.rejects = Some(rejects);
                }
            }
            let target = Targets::One(self.output_of(output.clone(), last));
            let mut chain = Chain::new(
                step.stages.clone(),
                &mut *self.external,
                &self.counter,
                pool.clone(),
                examples,
            )?;
            let stats = run_to(
                "refine",
                std::slice::from_ref(input),
                target,
                &opts,
                &mut chain,
                observer.progress(),
            )?;
            let result = StepResult::from_measured(chain.measured, &step.stages, stats.skipped());
            write_json(&marker, &result)?;
            total.merge(&result, examples);
            observer.shard_done();
        }
        Ok(total)
    }

    fn run_global(&mut self, io: StepIo<'_>, observer: &dyn RefineObserver) -> Result<StepResult> {
        let StepIo {
            step,
            inputs,
            outputs,
            first,
            last,
        } = io;
        let stage = &step.stages[0];
        let step_dir = self.state().join(format!("step-{:02}", step.index));
        let marker = step_dir.join("done.json");
        if marker.exists() {
            return read_json(&marker);
        }
        mkdir(&step_dir)?;
        observer.message(&format!(
            "step {}: {} over {} shards",
            step.index,
            stage.name,
            inputs.len()
        ));
        let key = match &stage.options {
            StageOptions::DedupExact(o) => o.key.clone(),
            _ => None,
        };
        let opts = self.run_options(key);
        let rejects: Vec<Option<PathBuf>> = (0..inputs.len())
            .map(|i| (first && self.config.on_error == OnError::Skip).then(|| self.rejects_path(i)))
            .collect();
        if first {
            for i in 0..inputs.len() {
                remove_file(&self.rejects_path(i))?;
            }
            if self.config.on_error == OnError::Skip {
                mkdir(&self.config.output.join("rejects"))?;
            }
        }
        let targets = Targets::PerFile {
            outputs: outputs
                .iter()
                .map(|p| self.output_of(p.clone(), last))
                .collect(),
            rejects,
        };
        let pool = thread_pool(self.config.threads)?;
        let examples = self.config.report.examples;
        let counter = &self.counter;
        let progress = observer.progress();
        let observed = |stats: Stats, measured: Measured| -> StepResult {
            let mut r = StepResult::from_measured(measured, &step.stages, stats.skipped());
            if let Some(st) = r.stages.get_mut(&stage.name) {
                st.counters = stats.counters.clone();
                st.seconds = stats.seconds;
            }
            r
        };
        let result = match &stage.options {
            StageOptions::DedupExact(o) => {
                let mut dedup = ExactDedup::new(o)?;
                if o.keep.scores() {
                    dedup.plan(inputs, &opts, progress)?;
                }
                let mut s = Observed::new(dedup, counter, pool, examples);
                let stats = run_to("refine", inputs, targets, &opts, &mut s, progress)?;
                observed(stats, s.measured)
            }
            StageOptions::DedupLines(o) => {
                let mut s = Observed::new(LineDedup::new(o)?, counter, pool, examples);
                let stats = run_to("refine", inputs, targets, &opts, &mut s, progress)?;
                observed(stats, s.measured)
            }
            StageOptions::DedupNear(o) => {
                let started = std::time::Instant::now();
                let before = fingerprints(inputs);
                let mut pass1 = Stats::default();
                let (clusters, _) = find_clusters(inputs, &opts, o, &mut pass1, progress)?;
                check_unchanged(inputs, &before)?;
                let filter = filter_stage(&clusters, o)?;
                let mut s = Observed::new(filter, counter, pool, examples);
                let mut stats = run_to("refine", inputs, targets, &opts, &mut s, progress)?;
                let Observed {
                    inner, measured, ..
                } = s;
                inner.close()?;
                for (k, v) in pass1.counters {
                    stats.counters.insert(k, v);
                }
                stats.set_counter(
                    "near_duplicates",
                    clusters.removed() - crate::dedup::near::clusters_indexed_removed(&clusters),
                );
                stats.seconds = started.elapsed().as_secs_f64();
                observed(stats, measured)
            }
            StageOptions::DedupSubstring(o) => {
                let started = std::time::Instant::now();
                let plan = SubstringPlan::build(inputs, &opts, o, progress)?;
                let mut s = Observed::new(plan.stage()?, counter, pool, examples);
                let mut stats = run_to("refine", inputs, targets, &opts, &mut s, progress)?;
                s.inner.close()?;
                stats.set_counter("substring_parts", plan.parts as u64);
                stats.seconds = started.elapsed().as_secs_f64();
                observed(stats, s.measured)
            }
            other => {
                return Err(Error::Config(format!(
                    "{} is not a global stage",
                    other.kind().name
                )))
            }
        };
        write_json(&marker, &result)?;
        Ok(result)
    }
}

/// The output directory must not be an input directory or inside one (the run would read its
/// own output), and no input may lie inside it.
fn check_output_place(config: &RefineConfig, files: &[InputFile]) -> Result<()> {
    let out = resolved(&config.output);
    for spec in &config.inputs {
        let p = Path::new(spec);
        if p.is_dir() {
            let dir = resolved(p);
            if out.starts_with(&dir) {
                return Err(usage(format!(
                    "the output directory {} is inside the input directory {}: the run would read \
                     its own output; choose an output directory outside the inputs",
                    config.output.display(),
                    p.display()
                )));
            }
        }
    }
    for f in files {
        if let Some(p) = &f.path {
            if resolved(p).starts_with(&out) {
                return Err(usage(format!(
                    "the input {} is inside the output directory {}; choose another output directory",
                    p.display(),
                    config.output.display()
                )));
            }
        }
    }
    Ok(())
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io(p.display().to_string(), e))
}

fn remove_file(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p.display().to_string(), e)),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let text = std::fs::read_to_string(p).map_err(|e| Error::io(p.display().to_string(), e))?;
    serde_json::from_str(&text).map_err(|e| Error::Intermediate {
        path: p.display().to_string(),
        message: format!("unreadable state file ({e}); rerun with --restart"),
    })
}

fn write_text(p: &Path, text: &str) -> Result<()> {
    let (guard, mut f) = AtomicFile::create(p)?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(p.display().to_string(), e))?;
    drop(f);
    guard.commit()
}

fn write_json<T: Serialize>(p: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Config(format!("{}: {e}", p.display())))?;
    write_text(p, &text)
}

/// Run shard stages (external ones: fastText, ProX models) over `inputs` into one output, as
/// `tamis filter language|quality` and `tamis prox refine` do. Every stage must be able to run
/// (a stage its check would skip is an error naming why). Returns the run's statistics (stage
/// counters and, for language identification, `language_<code>` documents seen) and each
/// stage's counts.
pub fn run_stages(
    command: &str,
    inputs: &[String],
    output: &Output,
    io: &crate::io::IoOptions,
    mut stages: Vec<StageConfig>,
    external: &mut dyn ExternalStages,
    progress: &dyn Progress,
) -> Result<(Stats, BTreeMap<String, StageStats>)> {
    for stage in &mut stages {
        match super::external::check_stage(stage, external) {
            Ok(Checked::Run(None)) => {}
            Ok(Checked::Run(Some(Value::Object(m)))) => {
                stage.options = stage
                    .options
                    .kind()
                    .parse(&m)
                    .map_err(|e| usage(format!("{}: {e}", stage.name)))?;
            }
            Ok(Checked::Run(Some(_))) => {
                return Err(usage(format!("{}: bad options from its check", stage.name)))
            }
            Ok(Checked::Skip(note)) => {
                return Err(usage(format!("{}: cannot run ({note})", stage.name)))
            }
            Err(message) => return Err(usage(format!("{}: {message}", stage.name))),
        }
    }
    let mut opts = io.run_options(None)?;
    opts.rows_as_json = true;
    let files = expand_inputs(inputs)?;
    let pool = thread_pool(opts.threads)?;
    let counter = TokenCounter::Words;
    let names: Vec<StageConfig> = stages.clone();
    let mut chain = Chain::new(stages, external, &counter, pool, 0)?;
    let mut stats =
        crate::pipeline::run_files(command, files, output, &opts, &mut chain, progress)?;
    let result = StepResult::from_measured(chain.measured, &names, 0);
    for st in result.stages.values() {
        for (k, v) in &st.counters {
            *stats.counters.entry(k.clone()).or_insert(0) += v;
        }
        for (lang, (seen, _)) in &st.languages {
            stats.set_counter(&format!("language_{lang}"), *seen);
        }
    }
    Ok((stats, result.stages))
}
