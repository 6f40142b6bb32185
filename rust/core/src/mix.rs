//! `tamis mix`: draw documents from several sources to a total token budget in given
//! proportions (e.g. 75% new domain, 25% replay of general data), repeating a small source for
//! up to `max_epochs` epochs, as continual pre-training recipes do (a high-quality subset seen
//! several times; replay against forgetting).
//!
//! Two passes over each source. The first counts each document's tokens with the tokenizer
//! (4 bytes per document are kept, plus 1 per document of a source with a partial epoch, and
//! 16 more while that epoch's order is drawn: the memory that grows with the corpus). Each source's
//! budget is `tokens × weight / Σ weights`; a source gives `⌊budget / its tokens⌋` whole epochs
//! (at most `max_epochs`), then, for the rest, documents in a seeded random order until the
//! rest is reached (the last one may pass it by one document). A source whose `max_epochs`
//! epochs are short of its budget gives them all: the shortfall is in the manifest and said.
//! The second pass writes the chosen documents, byte for byte plus `metadata.source`, reading
//! the sources side by side so that the output interleaves them in proportion (one batch of a
//! source at a time, the source furthest behind its share first); repeated epochs come in file
//! order. Deterministic for any thread count.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::io::{
    expand_inputs, read_batches_with, BatchColumns, BatchData, FieldEdit, FieldValue, InputFile,
    IoOptions, OnError, Output, OutputWriter, ReadItem, RejectsWriter, WriteItem,
};
use crate::options::{check_range, OptionError, Options};
use crate::pipeline::{scan, thread_pool, NoProgress, RunOptions};
use crate::tokenize::{Encoder, TokenizeOptions};
use crate::{Error, Result, Stats};

/// The field each written document's source name goes to.
pub const SOURCE_FIELD: &str = "metadata.source";

/// One source of a mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixSource {
    /// Its name (letters, digits, `_`, `-`, `.`), written to `metadata.source`.
    pub name: String,
    /// Files, directories or globs.
    pub inputs: Vec<String>,
    /// Its share of the budget, relative to the other weights (`0.75` and `0.25`, or `3` and `1`).
    pub weight: f64,
}

impl MixSource {
    /// `NAME=INPUT:WEIGHT` (the command line's form; INPUT may hold `:` itself, the weight is
    /// after the last one; several inputs are separated by commas).
    pub fn parse(spec: &str) -> std::result::Result<Self, OptionError> {
        let bad = |why: &str| {
            OptionError::new(
                "sources",
                format!("{spec:?}: {why} (expected NAME=INPUT:WEIGHT)"),
            )
        };
        let (name, rest) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
        let (inputs, weight) = rest.rsplit_once(':').ok_or_else(|| bad("no ':WEIGHT'"))?;
        let weight: f64 = weight
            .trim()
            .parse()
            .map_err(|_| bad("the weight is not a number"))?;
        Ok(MixSource {
            name: name.trim().to_string(),
            inputs: inputs
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            weight,
        })
    }
}

/// Options of `tamis mix`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MixOptions {
    /// The sources, in order (the order breaks ties when interleaving).
    pub sources: Vec<MixSource>,
    /// The total token budget.
    pub tokens: u64,
    /// The `tokenizer.json` that counts tokens (required): the tokens of a document are its
    /// `encode` ids with the tokenizer's special tokens (as `tamis tokenize` writes them by
    /// default), so budgets are in training tokens.
    pub tokenizer: Option<PathBuf>,
    /// The most times a source is read (4: a high-quality subset seen about four times, as in
    /// "Efficient Continual Pre-training by Mitigating the Stability Gap").
    pub max_epochs: u32,
    /// Seed of the order in which a partial epoch picks documents.
    pub seed: u64,
}

impl Default for MixOptions {
    fn default() -> Self {
        MixOptions {
            sources: Vec::new(),
            tokens: 0,
            tokenizer: None,
            max_epochs: 4,
            seed: 0,
        }
    }
}

/// A budget up to 2^53 tokens: exact in a float (weights are floats), and far past any corpus.
const MAX_TOKENS: u64 = 1 << 53;

impl Options for MixOptions {
    fn validate(&self) -> std::result::Result<(), OptionError> {
        if self.sources.is_empty() {
            return Err(OptionError::new("sources", "give at least one source"));
        }
        for (i, s) in self.sources.iter().enumerate() {
            let ok = !s.name.is_empty()
                && s.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            if !ok {
                return Err(OptionError::new(
                    "sources",
                    format!(
                        "{:?}: a name must be letters, digits, '_', '-' or '.'",
                        s.name
                    ),
                ));
            }
            if self.sources[..i].iter().any(|o| o.name == s.name) {
                return Err(OptionError::new(
                    "sources",
                    format!("{:?} is given twice", s.name),
                ));
            }
            if s.inputs.is_empty() {
                return Err(OptionError::new(
                    "sources",
                    format!("{:?} has no input", s.name),
                ));
            }
            if !(s.weight.is_finite() && s.weight > 0.0) {
                return Err(OptionError::new(
                    "sources",
                    format!(
                        "{:?}: the weight must be a number > 0, got {}",
                        s.name, s.weight
                    ),
                ));
            }
        }
        check_range("tokens", self.tokens, Some(1), Some(MAX_TOKENS))?;
        check_range("max_epochs", self.max_epochs, Some(1), Some(1000))?;
        if self.tokenizer.is_none() {
            return Err(OptionError::new(
                "tokenizer",
                "is required (it counts the tokens of the budget)",
            ));
        }
        Ok(())
    }
}

/// What was taken from one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    /// Its name.
    pub name: String,
    /// Its inputs as given.
    pub inputs: Vec<String>,
    /// Its weight.
    pub weight: f64,
    /// Documents in the source (one epoch).
    pub documents: u64,
    /// Tokens in the source (one epoch).
    pub tokens: u64,
    /// Tokens asked of it: `tokens × weight / Σ weights`.
    pub budget: u64,
    /// Documents written (every epoch counted).
    pub documents_taken: u64,
    /// Tokens written.
    pub tokens_taken: u64,
    /// Whole epochs written.
    pub full_epochs: u32,
    /// `tokens_taken / tokens`: how many times the source was seen.
    pub epochs: f64,
    /// Its share of the written tokens, and the share asked.
    pub share: f64,
    /// The share its weight asked for.
    pub requested_share: f64,
    /// Tokens of its budget it could not give within `max_epochs` (0 when it had enough).
    pub shortfall: u64,
}

/// What `tamis mix` wrote: per source, and the options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixManifest {
    /// The tamis version.
    pub tamis_version: String,
    /// The options.
    pub options: MixOptions,
    /// The tokenizer file's xxh3-128 (hex), as `tamis tokenize` records it.
    pub tokenizer_hash: String,
    /// The output.
    pub output: String,
    /// Per source.
    pub sources: Vec<SourceReport>,
    /// Documents written.
    pub documents: u64,
    /// Tokens written.
    pub tokens: u64,
    /// Bad records skipped (with `on_error = "skip"`), by reason.
    pub records_skipped: std::collections::BTreeMap<String, u64>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The plan of one source after counting.
struct Plan {
    files: Vec<InputFile>,
    /// Tokens of each valid document, in input order.
    counts: Vec<u32>,
    /// Index of each file's first document in `counts`.
    offsets: Vec<usize>,
    full_epochs: u32,
    /// Documents of the last, partial epoch (empty when there is none).
    partial: Vec<bool>,
    budget: u64,
}

impl Plan {
    fn epochs_to_read(&self) -> u32 {
        self.full_epochs + u32::from(self.partial.iter().any(|&b| b))
    }

    fn taken(&self, epoch: u32, index: usize) -> bool {
        epoch < self.full_epochs || self.partial.get(index).copied().unwrap_or(false)
    }
}

/// A seeded order of `n` documents (by a keyed hash of each index: no permutation state).
fn seeded_order(n: usize, seed: u64, name: &str, epoch: u32) -> Vec<usize> {
    let key = xxhash_rust::xxh3::xxh3_64_with_seed(format!("{name}\0{epoch}").as_bytes(), seed);
    let mut order: Vec<(u64, usize)> = (0..n)
        .map(|i| {
            let h = xxhash_rust::xxh3::xxh3_64_with_seed(&(i as u64).to_le_bytes(), key);
            (h, i)
        })
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, i)| i).collect()
}

/// Choose the documents of the partial epoch: in the seeded order, until `rest` tokens.
fn partial_epoch(counts: &[u32], rest: u64, seed: u64, name: &str, epoch: u32) -> Vec<bool> {
    let mut taken = vec![false; counts.len()];
    if rest == 0 {
        return taken;
    }
    let mut sum = 0u64;
    for i in seeded_order(counts.len(), seed, name, epoch) {
        if sum >= rest {
            break;
        }
        taken[i] = true;
        sum += u64::from(counts[i]);
    }
    taken
}

/// Count the tokens of every document of `files`, as `tamis tokenize` writes them.
fn count_tokens(
    files: &[InputFile],
    run: &RunOptions,
    stats: &mut Stats,
    encoder: &Encoder,
) -> Result<(Vec<u32>, Vec<usize>)> {
    let mut counts = Vec::new();
    let prepare = |_: &crate::io::Batch, doc: &crate::io::Doc<'_>| {
        Ok(encoder
            .encode(doc.text.as_ref())
            .map(|ids| u32::try_from(ids.len()).unwrap_or(u32::MAX))
            .map_err(|e| format!("cannot tokenize document {:?}: {e}", doc.id)))
    };
    let per_file = scan(files, run, stats, &NoProgress, prepare, |s| {
        counts.push(s.value.map_err(Error::Config)?);
        Ok(())
    })?;
    let mut offsets = Vec::with_capacity(per_file.len());
    let mut at = 0usize;
    for n in per_file {
        offsets.push(at);
        at += n as usize;
    }
    Ok((counts, offsets))
}

/// A source being written: its batches come from a reader thread, epoch after epoch; the
/// chosen documents of the current batch wait in `queue`.
struct Cursor {
    rx: crossbeam_channel::Receiver<(u32, ReadItem)>,
    written: u64,
    done: bool,
    batch: Option<crate::io::Batch>,
    /// Chosen documents of `batch` not written yet, with their tokens, in order.
    queue: std::collections::VecDeque<(WriteItem, u64)>,
    /// (epoch, file, valid documents seen in that file so far).
    position: (u32, usize, usize),
}

impl Cursor {
    fn share(&self, budget: u64) -> f64 {
        self.written as f64 / budget.max(1) as f64
    }
}

/// The chosen documents of `batch` (epoch `epoch` of a source), with their tokens; bad records
/// go to the rejects file on the first epoch (the counting pass failed on them, or skipped them).
#[allow(clippy::too_many_arguments)]
fn choose(
    batch: &crate::io::Batch,
    epoch: u32,
    plan: &Plan,
    position: &mut (u32, usize, usize),
    run: &RunOptions,
    pool: &rayon::ThreadPool,
    name: &str,
    rejects: Option<&mut RejectsWriter>,
) -> Result<std::collections::VecDeque<(WriteItem, u64)>> {
    if (position.0, position.1) != (epoch, batch.file_index) {
        *position = (epoch, batch.file_index, 0);
    }
    let cols = BatchColumns::new(batch, &run.extract)?;
    let docs = pool.install(|| crate::io::extract_docs(batch, &cols, &run.extract));
    let mut rejects = rejects;
    let mut queue = std::collections::VecDeque::new();
    for (k, d) in docs.into_iter().enumerate() {
        let doc = match d {
            Ok(doc) => doc,
            Err(error) => {
                if let (0, Some(w)) = (epoch, rejects.as_deref_mut()) {
                    let (raw, location) = match &batch.data {
                        BatchData::Jsonl { buf, lines } => match lines.get(k) {
                            Some(s) => (Some(&buf[s.start..s.end]), batch.location(s.line)),
                            None => (None, batch.location(k as u64)),
                        },
                        BatchData::Arrow { first_row, .. } => {
                            (None, crate::Location::Row(first_row + k as u64))
                        }
                    };
                    w.add(&batch.file.display, location, &error, raw)?;
                }
                continue;
            }
        };
        let index = plan.offsets.get(batch.file_index).copied().unwrap_or(0) + position.2;
        position.2 += 1;
        if !plan.taken(epoch, index) {
            continue;
        }
        let tokens = u64::from(plan.counts.get(index).copied().unwrap_or(0));
        let item = WriteItem {
            index: k,
            new_text: None,
            generated_id: doc.id_generated.then(|| doc.id.to_string()),
            extra: vec![FieldEdit::at_path(
                SOURCE_FIELD,
                FieldValue::Str(name.to_string()),
                false,
            )],
        };
        queue.push_back((item, tokens));
    }
    Ok(queue)
}

/// Run `tamis mix` into `output` (JSONL or Parquet, see [`Output`]); `io.rejects` receives the
/// bad records skipped under `on_error = "skip"`. Tokens are counted as `tamis tokenize` writes
/// them with its default options (BOS and EOS included). Returns the manifest (not written
/// anywhere).
pub fn mix(options: &MixOptions, io: &IoOptions, output: &Output) -> Result<MixManifest> {
    mix_counted(options, io, output, &TokenizeOptions::default())
}

/// What [`mix_to_shards`] wrote: the mix's manifest and the shards'.
#[derive(Debug, Clone, Serialize)]
pub struct MixShards {
    /// What was taken from each source.
    pub mix: MixManifest,
    /// The token shards (as `tamis tokenize` writes it).
    pub shards: crate::tokenize::Manifest,
}

/// The hidden file in the output directory that holds the chosen documents while they are
/// tokenized (the same bytes on a re-run, so an interrupted run resumes its shards).
pub const MIXED_FILE: &str = ".tamis-mix.jsonl.zst";

/// Run `tamis mix --format`: the chosen documents go straight into token shards in the
/// directory `outdir` (see [`crate::tokenize`]), counted with `tokenize`'s BOS/EOS policy, with
/// the mix manifest at `outdir/mix.json` and the shards' at `outdir/manifest.json`.
pub fn mix_to_shards(
    options: &MixOptions,
    tokenize: &TokenizeOptions,
    io: &IoOptions,
    outdir: &Path,
) -> Result<MixShards> {
    tokenize.validate()?;
    std::fs::create_dir_all(outdir).map_err(|e| Error::io(outdir.display().to_string(), e))?;
    let mixed = outdir.join(MIXED_FILE);
    let mut manifest = mix_counted(
        options,
        io,
        &Output::parse(&mixed.to_string_lossy())?,
        tokenize,
    )?;
    manifest.output = outdir.display().to_string();
    let tokenizer = options.tokenizer.as_deref().unwrap_or(Path::new(""));
    // The documents were read and checked above: none is bad now.
    let again = IoOptions {
        rejects: None,
        ..io.clone()
    };
    let shards = crate::tokenize::tokenize(
        &[mixed.to_string_lossy().into_owned()],
        outdir,
        tokenizer,
        &again,
        tokenize,
        &NoProgress,
    )?;
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| Error::Config(e.to_string()))? + "\n";
    crate::vocab::write_atomic(&outdir.join("mix.json"), &text)?;
    std::fs::remove_file(&mixed).map_err(|e| Error::io(mixed.display().to_string(), e))?;
    Ok(MixShards {
        mix: manifest,
        shards,
    })
}

fn mix_counted(
    options: &MixOptions,
    io: &IoOptions,
    output: &Output,
    counting: &TokenizeOptions,
) -> Result<MixManifest> {
    options.validate()?;
    let started = Instant::now();
    let run = io.run_options(None)?;
    let run = RunOptions {
        rows_as_json: true,
        ..run
    };
    let tokenizer_path = options.tokenizer.as_deref().unwrap_or(Path::new(""));
    let encoder = Encoder::open(tokenizer_path, counting)?;
    let tokenizer_hash = encoder.xxh3.clone();
    let total_weight: f64 = options.sources.iter().map(|s| s.weight).sum();
    let mut stats = Stats::default();
    let mut plans = Vec::with_capacity(options.sources.len());
    let pool = thread_pool(run.threads)?;
    for s in &options.sources {
        let files = expand_inputs(&s.inputs)?;
        crate::io::require_rereadable(&files, "mix")?;
        let (counts, offsets) = count_tokens(&files, &run, &mut stats, &encoder)?;
        let tokens: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        let budget = (options.tokens as f64 * s.weight / total_weight).round() as u64;
        let max = u64::from(options.max_epochs);
        // An empty source gives nothing (its whole budget is a shortfall).
        let (full_epochs, rest) = match budget.checked_div(tokens) {
            None => (0, 0),
            Some(whole) if whole >= max => (max, 0),
            Some(whole) => (whole, budget - whole * tokens),
        };
        let full_epochs = u32::try_from(full_epochs).unwrap_or(options.max_epochs);
        let partial = partial_epoch(&counts, rest, options.seed, &s.name, full_epochs);
        plans.push(Plan {
            files,
            counts,
            offsets,
            full_epochs,
            partial,
            budget,
        });
    }
    let mut rejects_writer = match (io.on_error, &io.rejects) {
        (OnError::Skip, Some(p)) => Some(RejectsWriter::create(p)?),
        _ => None,
    };
    let mut writer = OutputWriter::create(output, &run.extract)?;
    let mut taken = vec![(0u64, 0u64); plans.len()];
    std::thread::scope(|scope| -> Result<()> {
        let mut cursors: Vec<Cursor> = Vec::with_capacity(plans.len());
        let mut readers = Vec::with_capacity(plans.len());
        for plan in &plans {
            let (tx, rx) = crossbeam_channel::bounded(2);
            let epochs = plan.epochs_to_read();
            let files = &plan.files;
            let batch_bytes = run.batch_bytes;
            readers.push(scope.spawn(move || -> Result<()> {
                for epoch in 0..epochs {
                    let send = |item| tx.send((epoch, item)).is_ok();
                    read_batches_with(files, batch_bytes, true, Arc::new(AtomicU64::new(0)), send)?;
                }
                Ok(())
            }));
            cursors.push(Cursor {
                rx,
                written: 0,
                done: epochs == 0,
                batch: None,
                queue: Default::default(),
                position: (0, usize::MAX, 0),
            });
        }
        loop {
            crate::interrupt::check()?;
            // The source furthest behind its share (ties: the first given) writes next.
            let next = (0..plans.len())
                .filter(|&i| !cursors[i].done)
                .min_by(|&a, &b| {
                    let fa = cursors[a].share(plans[a].budget);
                    let fb = cursors[b].share(plans[b].budget);
                    fa.total_cmp(&fb)
                });
            let Some(si) = next else { break };
            if cursors[si].queue.is_empty() {
                let (epoch, item) = match cursors[si].rx.recv() {
                    Ok(x) => x,
                    Err(_) => {
                        cursors[si].done = true;
                        continue;
                    }
                };
                let ReadItem::Batch(batch) = item else {
                    continue; // a corrupt file: the counting pass failed or counted it
                };
                let queue = choose(
                    &batch,
                    epoch,
                    &plans[si],
                    &mut cursors[si].position,
                    &run,
                    &pool,
                    &options.sources[si].name,
                    rejects_writer.as_mut(),
                )?;
                cursors[si].queue = queue;
                cursors[si].batch = Some(batch);
                continue;
            }
            // Write this source's documents until another source is further behind.
            let others = (0..plans.len())
                .filter(|&i| i != si && !cursors[i].done)
                .map(|i| cursors[i].share(plans[i].budget))
                .fold(f64::INFINITY, f64::min);
            let c = &mut cursors[si];
            let mut items = Vec::new();
            while let Some((item, tokens)) = c.queue.pop_front() {
                c.written += tokens;
                taken[si].0 += 1;
                taken[si].1 += tokens;
                items.push(item);
                if c.share(plans[si].budget) > others {
                    break;
                }
            }
            if let Some(batch) = &c.batch {
                writer.write(batch, &items)?;
            }
        }
        // A file that changed or vanished since the counting pass fails the run.
        for r in readers {
            r.join()
                .map_err(|_| Error::Config("a reader thread panicked".into()))??;
        }
        Ok(())
    })?;
    let (_, atomic) = writer.close()?;
    if let Some(w) = rejects_writer {
        w.finish()?;
    }
    if let Some(a) = atomic {
        a.commit()?;
    }
    let written: u64 = taken.iter().map(|t| t.1).sum();
    let sources = options
        .sources
        .iter()
        .zip(&plans)
        .zip(&taken)
        .map(|((s, p), &(docs, tokens))| {
            let available: u64 = p.counts.iter().map(|&c| u64::from(c)).sum();
            SourceReport {
                name: s.name.clone(),
                inputs: s.inputs.clone(),
                weight: s.weight,
                documents: p.counts.len() as u64,
                tokens: available,
                budget: p.budget,
                documents_taken: docs,
                tokens_taken: tokens,
                full_epochs: p.full_epochs,
                epochs: if available == 0 {
                    0.0
                } else {
                    tokens as f64 / available as f64
                },
                share: if written == 0 {
                    0.0
                } else {
                    tokens as f64 / written as f64
                },
                requested_share: s.weight / total_weight,
                shortfall: p.budget.saturating_sub(tokens),
            }
        })
        .collect();
    Ok(MixManifest {
        tamis_version: env!("CARGO_PKG_VERSION").to_string(),
        options: options.clone(),
        tokenizer_hash,
        output: output.display(),
        sources,
        documents: taken.iter().map(|t| t.0).sum(),
        tokens: written,
        records_skipped: stats.records_skipped,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources_from_the_command_line() {
        let s = MixSource::parse("zh=data/zh:0.75").unwrap();
        assert_eq!(
            (s.name.as_str(), s.inputs, s.weight),
            ("zh", vec!["data/zh".to_string()], 0.75)
        );
        let s = MixSource::parse("en=a.jsonl,s3:b.jsonl:1").unwrap();
        assert_eq!(s.inputs, ["a.jsonl", "s3:b.jsonl"]);
        for bad in ["zh", "zh=data", "zh=data:x"] {
            assert!(MixSource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_are_checked() {
        let ok = MixOptions {
            sources: vec![MixSource::parse("a=x:1").unwrap()],
            tokens: 10,
            tokenizer: Some("t.json".into()),
            ..MixOptions::default()
        };
        assert!(ok.validate().is_ok());
        let mut o = ok.clone();
        o.sources.push(MixSource::parse("a=y:1").unwrap());
        assert!(o.validate().unwrap_err().to_string().contains("twice"));
        let mut o = ok.clone();
        o.sources[0].weight = f64::NAN;
        assert!(o.validate().is_err());
        let mut o = ok.clone();
        o.tokens = 0;
        assert!(o.validate().is_err());
        let mut o = ok.clone();
        o.max_epochs = 0;
        assert!(o.validate().is_err());
        let mut o = ok;
        o.tokenizer = None;
        assert!(o.validate().is_err());
    }

    #[test]
    fn a_partial_epoch_reaches_its_rest_and_depends_on_the_seed() {
        let counts: Vec<u32> = (0..1000).map(|i| 10 + (i % 7)).collect();
        let a = partial_epoch(&counts, 5000, 1, "x", 0);
        let sum: u64 = a
            .iter()
            .zip(&counts)
            .filter(|(t, _)| **t)
            .map(|(_, &c)| u64::from(c))
            .sum();
        assert!((5000..5000 + 16).contains(&sum), "{sum}");
        assert_eq!(a, partial_epoch(&counts, 5000, 1, "x", 0));
        assert_ne!(a, partial_epoch(&counts, 5000, 2, "x", 0));
        assert!(partial_epoch(&counts, 0, 1, "x", 0).iter().all(|t| !t));
    }
}
