//! Near-dedup as four stages sharing a work directory, for schedulers (Slurm arrays, datatrove
//! executors, Ray): each stage can run as `world_size` tasks, and re-running a task replaces its
//! files.
//!
//! ```text
//! DIR/manifest/r00000.json        signatures, one per task: parameters and shards (docs, size, mtime)
//! DIR/sig/b000/r00000-0000.sig    signatures: sorted (band key, document) runs, per band
//! DIR/prio/r00000.bin             signatures with a priority field: (document, priority bits)
//! DIR/hits/r00000.bin             signatures with `against`: (document, index << 48 | record)
//! DIR/pairs/w00004-u00000.pairs   buckets: candidate pairs of work unit u of a 4-task run
//! DIR/clusters/s0000000000.bin    cluster: (ordinal, representative << 32 | size) per shard
//! DIR/clusters/s0000000000.dup.json  cluster with `against`: [ordinal, [indexed ids]] per shard
//! DIR/clusters/done.json          cluster: the completion marker, with totals
//! ```
//!
//! A document is `shard << 32 | ordinal`: the index of its input file (from datatrove: an id for
//! its source file, unique across tasks) and its position among the shard's valid documents.
//! Documents are ordered by shard (input files by index, datatrove files by path, as the command
//! line orders them), then ordinal: the first document of a cluster in that order is kept. Signature task `r` of
//! `w` reads the shards `i` with `i % w == r`; so does filter task `r` of `w` (the two world sizes
//! may differ). Buckets task `r` of `w` handles work units `u ≡ r (mod w)`; a unit is a band, or
//! a slice of a band's key space when there are more tasks than bands. All files are checksummed
//! ([`super::spill`]); manifests and markers are written last, so a crashed task leaves no
//! marker and the next stage refuses to start.
//!
//! With `against` (near indexes of an older corpus), each signatures task also looks its
//! documents' band keys up in the indexes (read-only, shared by every task) and writes the hits;
//! the cluster stage marks the clusters holding a hit, which keep no document (`dup_of`: the
//! indexed ids), as `tamis dedup near --against` does in one process.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cluster::{list_files, merge_groups, BandStore, KeyRange, UnionFind};
use super::spill::{corrupt, write_records, Kind, RecordReader};
use super::{
    fingerprints, refuse_stdin, signature_of, ClustersWriter, MinHashParams, MinHasher, NearFilter,
    NearOptions, Shingling, Sketch,
};
use crate::index::Index;
use crate::io::{expand_inputs, InputFile, IoOptions, Output};
use crate::pipeline::{run_files, scan, Progress};
use crate::{Error, Result, Stats};

/// One shard described in a manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardInfo {
    /// Shard index (input file index, or datatrove rank).
    pub index: u32,
    /// File name or `rank-N`.
    pub name: String,
    /// Valid documents.
    pub docs: u64,
    /// File size in bytes when read (0 for datatrove shards).
    pub size: u64,
    /// Modification time in nanoseconds since the epoch when read (0 when unknown).
    pub mtime_ns: u128,
    /// Where the shard sorts in the global document order: path components for datatrove shards
    /// (so that "first" means what it means on the command line); empty for input files, which
    /// sort by index.
    #[serde(default)]
    pub order: Vec<String>,
}

/// Parameters as stored in manifests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ParamsJson {
    num_perm: usize,
    bands: usize,
    rows: usize,
    ngram: usize,
    shingling: String,
    seed: u64,
    /// Absent in manifests written before the option existed (they were all `kperm`).
    #[serde(default = "default_sketch")]
    sketch: String,
}

fn default_sketch() -> String {
    Sketch::Permutations.as_str().into()
}

impl From<&MinHashParams> for ParamsJson {
    fn from(p: &MinHashParams) -> Self {
        ParamsJson {
            num_perm: p.num_perm,
            bands: p.bands,
            rows: p.rows,
            ngram: p.ngram,
            shingling: p.shingling.as_str().into(),
            seed: p.seed,
            sketch: p.sketch.as_str().into(),
        }
    }
}

impl ParamsJson {
    fn params(&self) -> Result<MinHashParams> {
        Ok(MinHashParams {
            num_perm: self.num_perm,
            bands: self.bands,
            rows: self.rows,
            ngram: self.ngram,
            shingling: self.shingling.parse::<Shingling>()?,
            seed: self.seed,
            sketch: self.sketch.parse::<Sketch>()?,
        })
    }
}

/// A near index of `against` as the signatures stage used it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IndexRef {
    /// Its directory, as given.
    pub path: PathBuf,
    /// [`Index::fingerprint`] when the signatures were computed.
    pub fingerprint: String,
}

/// Most indexes `against` one staged run (hits store the index in 16 bits).
pub const MAX_AGAINST: usize = 1 << 16;

/// Most records of an index `against` a staged run (hits store the record in 48 bits).
const MAX_AGAINST_RECORDS: u64 = 1 << 48;

/// What a signatures task writes last.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Manifest {
    format: u32,
    params: ParamsJson,
    /// The keep policy when documents have scores (`longest`, `min:FIELD`, …): one is stored
    /// per document. Manifests before keep policies held a field name here (`min:` it).
    priority: Option<String>,
    rank: usize,
    world_size: usize,
    total_shards: u32,
    shards: Vec<ShardInfo>,
    /// The indexes the band keys were looked up in (`against`). Their hits are held in memory
    /// until the task ends (16 bytes per indexed document matched, at most 32 per document), as
    /// in the one-process run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    against: Vec<IndexRef>,
}

const FORMAT: u32 = 1;

/// The manifest format of signatures looked up in indexes (`against`): a tamis that does not
/// know `against` refuses it rather than keeping the indexed duplicates.
const FORMAT_AGAINST: u32 = 2;

fn rank_check(rank: usize, world_size: usize) -> Result<()> {
    use crate::options::Options;
    Task { rank, world_size }.validate().map_err(Error::Options)
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io(p.display().to_string(), e))
}

fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Config(format!("cannot serialize {}: {e}", path.display())))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path.display().to_string(), e))
}

fn remove_matching(dir: &Path, prefix: &str) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir.display().to_string(), e)),
    };
    for entry in rd.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::io(entry.path().display().to_string(), e))?;
        }
    }
    Ok(())
}

/// Writes the signature files of one signatures task. Used by the CLI stage (shards are input
/// files) and by datatrove (the shard is the task's rank, documents come from Python).
#[derive(Debug)]
pub struct SignatureWriter {
    workdir: PathBuf,
    hasher: MinHasher,
    priority: Option<String>,
    rank: usize,
    world_size: usize,
    total_shards: u32,
    store: BandStore,
    priorities: Vec<(u64, u64)>,
    shards: Vec<ShardInfo>,
    no_shingles: u64,
    /// The indexes of `against`, opened, and as the manifest records them.
    indexes: std::sync::Arc<Vec<Index>>,
    against: Vec<IndexRef>,
    /// (document, index << 48 | record) per indexed document a document shares a band with.
    hits: Vec<(u64, u64)>,
}

impl SignatureWriter {
    /// Start task `rank` of `world_size` over `total_shards` shards; earlier files of this task
    /// are removed. Band keys are spilled every `budget_docs` documents.
    pub fn new(
        workdir: &Path,
        params: MinHashParams,
        priority: Option<String>,
        rank: usize,
        world_size: usize,
        total_shards: u32,
        budget_docs: usize,
    ) -> Result<Self> {
        rank_check(rank, world_size)?;
        let hasher = MinHasher::new(params)?;
        let prefix = format!("r{rank:05}");
        for sub in ["manifest", "sig", "prio", "hits"] {
            mkdir(&workdir.join(sub))?;
        }
        remove_matching(&workdir.join("manifest"), &prefix)?;
        remove_matching(&workdir.join("prio"), &prefix)?;
        remove_matching(&workdir.join("hits"), &prefix)?;
        for band in 0..params.bands {
            remove_matching(&workdir.join("sig").join(format!("b{band:03}")), &prefix)?;
        }
        Ok(SignatureWriter {
            workdir: workdir.to_path_buf(),
            hasher,
            priority,
            rank,
            world_size,
            total_shards,
            store: BandStore::new(
                params.bands,
                Some(budget_docs.max(1)),
                Some(workdir.join("sig")),
                &prefix,
                true,
            ),
            priorities: Vec::new(),
            shards: Vec::new(),
            no_shingles: 0,
            indexes: Default::default(),
            against: Vec::new(),
            hits: Vec::new(),
        })
    }

    /// Look band keys up in the near indexes of `options.against` too (checked against the
    /// parameters); [`SignatureWriter::indexes`] are then the indexes to pass to
    /// [`SignatureWriter::push_indexed`]'s callers.
    pub fn set_against(&mut self, options: &NearOptions) -> Result<()> {
        let indexes = super::open_near_against(options, self.hasher.params())?;
        if indexes.len() > MAX_AGAINST {
            return Err(Error::Config(format!(
                "at most {MAX_AGAINST} indexes against one staged run"
            )));
        }
        for index in &indexes {
            if index.manifest.records >= MAX_AGAINST_RECORDS {
                return Err(Error::Config(format!(
                    "{}: more than 2^48 records, too many for the staged near dedup",
                    index.path.display()
                )));
            }
        }
        // Absolute: the cluster stage may run in another directory.
        self.against = indexes
            .iter()
            .map(|i| {
                Ok(IndexRef {
                    path: std::path::absolute(&i.path)
                        .map_err(|e| Error::io(i.path.display().to_string(), e))?,
                    fingerprint: i.fingerprint(),
                })
            })
            .collect::<Result<_>>()?;
        self.indexes = std::sync::Arc::new(indexes);
        Ok(())
    }

    /// The indexes of `against` (empty without).
    pub fn indexes(&self) -> std::sync::Arc<Vec<Index>> {
        self.indexes.clone()
    }

    /// The `(index, record)` ordinals of the indexed documents that document `ordinal` of
    /// `shard` shares a band key with (`super::indexed_records`), after [`SignatureWriter::push`].
    pub fn push_indexed(&mut self, shard: u32, ordinal: u64, found: &[(u32, u64)]) {
        let doc = (u64::from(shard) << 32) | ordinal;
        self.hits
            .extend(found.iter().map(|&(i, r)| (doc, (u64::from(i) << 48) | r)));
    }

    /// A writer for `options` (its parameters, keep policy, `against` and `memory_limit`, 1 GiB
    /// by default, bounding the band keys buffered before they are written out).
    pub fn for_options(
        workdir: &Path,
        options: &NearOptions,
        task: Task,
        total_shards: u32,
    ) -> Result<Self> {
        let params = options.params()?;
        if options.verify {
            return Err(crate::options::OptionError::new(
                "verify",
                "is a single-process option: the staged near dedup (scheduler, datatrove) does \
                 not verify candidate pairs",
            )
            .into());
        }
        let keep = options.keep_policy()?;
        let budget =
            super::spill_budget(&params, options.memory_limit.unwrap_or(SIGNATURES_MEMORY));
        let mut writer = Self::new(
            workdir,
            params,
            keep.scores().then(|| keep.to_string()),
            task.rank,
            task.world_size,
            total_shards,
            budget,
        )?;
        writer.set_against(options)?;
        Ok(writer)
    }

    /// The hasher (for computing band keys outside, in parallel).
    pub fn hasher(&self) -> &MinHasher {
        &self.hasher
    }

    /// Add document `ordinal` of `shard` with its band keys (`None`: no shingle).
    pub fn push(
        &mut self,
        shard: u32,
        ordinal: u64,
        keys: Option<&[u64]>,
        priority: f64,
    ) -> Result<()> {
        if ordinal > u64::from(u32::MAX) {
            return Err(Error::Config(format!(
                "shard {shard} has more than {} documents",
                u32::MAX
            )));
        }
        let doc = (u64::from(shard) << 32) | ordinal;
        if keys.is_none() {
            self.no_shingles += 1;
        }
        if self.priority.is_some() {
            self.priorities.push((doc, priority.to_bits()));
        }
        self.store.push(doc, keys)
    }

    /// Record a finished shard.
    pub fn add_shard(&mut self, shard: ShardInfo) {
        self.shards.push(shard);
    }

    /// Spill what is left and write the manifest (the completion marker).
    pub fn finish(mut self, stats: &mut Stats) -> Result<()> {
        self.store.spill()?;
        if self.priority.is_some() {
            self.priorities.sort_unstable();
            write_records(
                &self
                    .workdir
                    .join("prio")
                    .join(format!("r{:05}.bin", self.rank)),
                Kind::Priorities,
                &self.priorities,
            )?;
        }
        if !self.against.is_empty() {
            self.hits.sort_unstable();
            let docs = self
                .hits
                .iter()
                .map(|h| h.0)
                .collect::<std::collections::BTreeSet<_>>();
            stats.set_counter("documents_matching_index", docs.len() as u64);
            write_records(
                &self
                    .workdir
                    .join("hits")
                    .join(format!("r{:05}.bin", self.rank)),
                Kind::Hits,
                &self.hits,
            )?;
        }
        stats.set_counter("spill_runs", self.store.runs() as u64);
        stats.set_counter("documents_without_shingles", self.no_shingles);
        let manifest = Manifest {
            format: if self.against.is_empty() {
                FORMAT
            } else {
                FORMAT_AGAINST
            },
            params: ParamsJson::from(self.hasher.params()),
            priority: self.priority.clone(),
            rank: self.rank,
            world_size: self.world_size,
            total_shards: self.total_shards,
            shards: self.shards,
            against: self.against,
        };
        write_json_atomic(
            &self
                .workdir
                .join("manifest")
                .join(format!("r{:05}.json", self.rank)),
            &manifest,
        )
    }
}

/// The signatures of one task whose documents come in batches from elsewhere (a datatrove task),
/// source file after source file: each source file is a shard with id `rank << 16 | its number
/// in the task`, ordered among all shards by its path (as the command line orders files).
#[derive(Debug)]
pub struct PathSignatureWriter {
    inner: SignatureWriter,
    keep: crate::dedup::Keep,
    rank: u32,
    files: Vec<(String, u64)>,
    threads: usize,
}

/// Most signature tasks, and source files per task, of a [`PathSignatureWriter`].
pub const MAX_PATH_TASKS: usize = 1 << 16;

impl PathSignatureWriter {
    /// Task `task` writing to `workdir`.
    pub fn new(workdir: &Path, options: &NearOptions, task: Task, threads: usize) -> Result<Self> {
        if task.rank >= MAX_PATH_TASKS {
            return Err(Error::Config(format!(
                "at most {MAX_PATH_TASKS} signature tasks"
            )));
        }
        Ok(PathSignatureWriter {
            inner: SignatureWriter::for_options(workdir, options, task, 0)?,
            keep: options.keep_policy()?,
            rank: task.rank as u32,
            files: Vec::new(),
            threads,
        })
    }

    /// Add the next documents of source file `path` (a file's documents must come together),
    /// with the values of the keep policy's field (`max:FIELD`, `min:FIELD`; `None`: missing).
    pub fn add(
        &mut self,
        path: &str,
        texts: &[Option<&str>],
        values: Option<&[Option<f64>]>,
    ) -> Result<()> {
        let scores = self
            .keep
            .scores_of(texts.iter().map(|t| t.unwrap_or("")), values)?;
        if self.files.last().is_none_or(|(p, _)| p != path) {
            if self.files.iter().any(|(p, _)| p == path) {
                return Err(Error::Config(format!(
                    "documents of {path} are not contiguous"
                )));
            }
            if self.files.len() >= MAX_PATH_TASKS {
                return Err(Error::Config(format!(
                    "at most {MAX_PATH_TASKS} files per task"
                )));
            }
            self.files.push((path.to_string(), 0));
        }
        let shard = (self.rank << 16) | (self.files.len() as u32 - 1);
        let first = self.files.last().map_or(0, |f| f.1);
        let pool = crate::pipeline::thread_pool(self.threads)?;
        let hasher = self.inner.hasher().clone();
        let keys = pool.install(|| super::band_keys_many(&hasher, texts));
        let indexes = self.inner.indexes();
        let found: Vec<Vec<(u32, u64)>> = if indexes.is_empty() {
            Vec::new()
        } else {
            use rayon::prelude::*;
            pool.install(|| {
                keys.par_iter()
                    .map(|k| super::indexed_records(&indexes, k.as_deref()))
                    .collect()
            })
        };
        for (i, (k, score)) in keys.iter().zip(scores).enumerate() {
            let ordinal = first + i as u64;
            self.inner.push(shard, ordinal, k.as_deref(), score)?;
            if let Some(f) = found.get(i) {
                self.inner.push_indexed(shard, ordinal, f);
            }
        }
        if let Some(f) = self.files.last_mut() {
            f.1 += texts.len() as u64;
        }
        Ok(())
    }

    /// Write what is left and the manifest; returns the task's statistics.
    pub fn finish(mut self) -> Result<Stats> {
        let mut docs = 0;
        for (i, (path, n)) in self.files.iter().enumerate() {
            docs += n;
            self.inner.add_shard(ShardInfo {
                index: (self.rank << 16) | i as u32,
                name: path.clone(),
                docs: *n,
                size: 0,
                mtime_ns: 0,
                // Rust orders paths component by component; so does this key.
                order: path
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .map(String::from)
                    .collect(),
            });
        }
        let mut stats = Stats {
            command: "dedup near signatures".into(),
            documents_read: docs,
            documents_kept: docs,
            ..Default::default()
        };
        self.inner.finish(&mut stats)?;
        Ok(stats)
    }
}

fn mtime_ns(t: Option<std::time::SystemTime>) -> u128 {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

fn my_files(files: &[InputFile], rank: usize, world_size: usize) -> Vec<usize> {
    (0..files.len())
        .filter(|i| i % world_size == rank)
        .collect()
}

/// One task of a stage: task `rank` of `world_size` (`--rank`, `--world-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Task {
    /// This task's index, 0-based.
    pub rank: usize,
    /// Number of tasks of the stage.
    pub world_size: usize,
}

/// Most tasks a stage may be split into (one shard file per task and band group).
pub const MAX_WORLD_SIZE: usize = 1 << 20;

impl crate::options::Options for Task {
    fn validate(&self) -> std::result::Result<(), crate::options::OptionError> {
        crate::options::check_range("world_size", self.world_size, Some(1), Some(MAX_WORLD_SIZE))?;
        if self.rank >= self.world_size {
            return Err(crate::options::OptionError::with_fields(
                &["rank", "world_size"],
                format!(
                    "{{0}} {} must be below {{1}} {}",
                    self.rank, self.world_size
                ),
            ));
        }
        Ok(())
    }
}

impl Default for Task {
    fn default() -> Self {
        Task {
            rank: 0,
            world_size: 1,
        }
    }
}

/// Band keys buffered by a signatures task before they are written out, without a
/// `memory_limit`.
const SIGNATURES_MEMORY: u64 = 1 << 30;

/// Stage 1, task `rank` of `world_size`: signatures of the input files `i % world_size == rank`.
/// Uses the shingling, signature, banding, `keep`, `against` and `memory_limit` options.
pub fn signatures(
    inputs: &[String],
    workdir: &Path,
    task: Task,
    io: &IoOptions,
    options: &NearOptions,
    progress: &dyn Progress,
) -> Result<Stats> {
    let started = std::time::Instant::now();
    let Task { rank, world_size } = task;
    rank_check(rank, world_size)?;
    let opts = io.run_options(None)?;
    let files = expand_inputs(inputs)?;
    refuse_stdin(&files)?;
    let total =
        u32::try_from(files.len()).map_err(|_| Error::Config("too many input files".into()))?;
    let mine = my_files(&files, rank, world_size);
    let my: Vec<InputFile> = mine.iter().map(|&i| files[i].clone()).collect();
    let prints = fingerprints(&my);
    let keep = options.keep_policy()?;
    let mut writer = SignatureWriter::for_options(workdir, options, task, total)?;
    let hasher = writer.hasher().clone();
    let indexes = writer.indexes();
    let mut stats = Stats {
        command: "dedup near signatures".into(),
        input_files: my.len(),
        ..Stats::default()
    };
    let opts = crate::pipeline::RunOptions {
        rejects: None,
        ..opts
    };
    let counts = scan(
        &my,
        &opts,
        &mut stats,
        progress,
        |batch, doc| {
            let sig = signature_of(&hasher, &keep, batch, doc)?;
            let found = super::indexed_records(&indexes, sig.keys.as_deref());
            Ok((sig, found))
        },
        |s| {
            let (sig, found) = s.value;
            let shard = mine[s.file] as u32;
            writer.push(shard, s.ordinal, sig.keys.as_deref(), sig.priority)?;
            writer.push_indexed(shard, s.ordinal, &found);
            Ok(())
        },
    )?;
    for (k, &i) in mine.iter().enumerate() {
        writer.add_shard(ShardInfo {
            index: i as u32,
            name: files[i].name.clone(),
            docs: counts[k],
            size: prints[k].0,
            mtime_ns: mtime_ns(prints[k].1),
            order: Vec::new(),
        });
    }
    stats.documents_kept = counts.iter().sum();
    writer.finish(&mut stats)?;
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// All manifests of a work directory, checked for completeness and agreement.
#[derive(Debug)]
pub struct Manifests {
    /// Parameters of the signatures.
    pub params: MinHashParams,
    /// The keep policy of the signatures when documents have scores.
    pub priority: Option<String>,
    /// Every shard, in the global document order.
    pub shards: Vec<ShardInfo>,
    /// World size of the signatures stage.
    pub world_size: usize,
    /// The indexes the signatures were looked up in.
    pub against: Vec<IndexRef>,
    by_id: std::collections::HashMap<u32, usize>,
}

impl Manifests {
    /// Read and check `DIR/manifest/*.json`.
    pub fn load(workdir: &Path) -> Result<Self> {
        let dir = workdir.join("manifest");
        let files = list_files(&dir, "json")?;
        if files.is_empty() {
            return Err(Error::Config(format!(
                "{}: no signatures found: run `tamis dedup near signatures` first",
                dir.display()
            )));
        }
        let mut manifests = Vec::new();
        for f in &files {
            let bytes = std::fs::read(f).map_err(|e| Error::io(f.display().to_string(), e))?;
            let m: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| corrupt(f, format!("not a signatures manifest: {e}")))?;
            let expected = if m.against.is_empty() {
                FORMAT
            } else {
                FORMAT_AGAINST
            };
            if m.format != expected {
                return Err(corrupt(
                    f,
                    format!("format {} (expected {expected})", m.format),
                ));
            }
            manifests.push((f.clone(), m));
        }
        let (first_path, first) = &manifests[0];
        let world = first.world_size;
        for (p, m) in &manifests {
            if m.params != first.params
                || m.priority != first.priority
                || m.world_size != world
                || m.total_shards != first.total_shards
                || m.against != first.against
            {
                return Err(corrupt(
                    p,
                    format!(
                        "written with other parameters, indexes or world size than {} (delete \
                         the work directory and run the signatures again)",
                        first_path.display()
                    ),
                ));
            }
        }
        let mut ranks: Vec<usize> = manifests.iter().map(|(_, m)| m.rank).collect();
        ranks.sort_unstable();
        ranks.dedup();
        if ranks.len() != world {
            let missing: Vec<String> = (0..world)
                .filter(|r| !ranks.contains(r))
                .map(|r| r.to_string())
                .collect();
            return Err(Error::Config(format!(
                "{}: signatures incomplete: tasks {} of {world} have not finished",
                dir.display(),
                missing.join(", ")
            )));
        }
        let mut shards: Vec<ShardInfo> = manifests
            .iter()
            .flat_map(|(_, m)| m.shards.iter().cloned())
            .collect();
        shards.sort_by(|a, b| (&a.order, a.index).cmp(&(&b.order, b.index)));
        let mut by_id = std::collections::HashMap::with_capacity(shards.len());
        for (pos, s) in shards.iter().enumerate() {
            if by_id.insert(s.index, pos).is_some() {
                return Err(corrupt(&dir, format!("shard {} appears twice", s.index)));
            }
        }
        // Input files are numbered 0..n; datatrove shards (total 0) are complete when every task
        // has finished, checked above.
        let complete = first.total_shards == 0
            || (shards.len() == first.total_shards as usize
                && shards
                    .iter()
                    .enumerate()
                    .all(|(i, s)| s.index as usize == i));
        if !complete {
            return Err(corrupt(
                &dir,
                format!(
                    "the manifests do not cover shards 0..{} exactly once",
                    first.total_shards
                ),
            ));
        }
        Ok(Manifests {
            params: first.params.params()?,
            priority: first.priority.clone(),
            shards,
            world_size: world,
            against: first.against.clone(),
            by_id,
        })
    }

    /// Position of shard `id` in [`Manifests::shards`].
    pub fn position(&self, id: u32) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// Dense index of each shard's first document (in [`Manifests::shards`] order).
    fn offsets(&self) -> Vec<u64> {
        let mut acc = 0;
        self.shards
            .iter()
            .map(|s| {
                let o = acc;
                acc += s.docs;
                o
            })
            .collect()
    }

    fn total(&self) -> u64 {
        self.shards.iter().map(|s| s.docs).sum()
    }
}

fn parts_for(bands: usize, world_size: usize) -> usize {
    world_size.div_ceil(bands).max(1)
}

/// Stage 2, task `rank` of `world_size`: candidate pairs of its work units.
pub fn buckets(workdir: &Path, rank: usize, world_size: usize) -> Result<Stats> {
    let started = std::time::Instant::now();
    rank_check(rank, world_size)?;
    let m = Manifests::load(workdir)?;
    let bands = m.params.bands;
    let parts = parts_for(bands, world_size);
    let units = bands * parts;
    let pairs_dir = workdir.join("pairs");
    mkdir(&pairs_dir)?;
    let mut stats = Stats {
        command: "dedup near buckets".into(),
        ..Stats::default()
    };
    let mut total_pairs = 0u64;
    for u in (rank..units).step_by(world_size) {
        let band = u / parts;
        let part = u % parts;
        let files = list_files(&workdir.join("sig").join(format!("b{band:03}")), "sig")?;
        let range = (parts > 1).then_some(KeyRange {
            index: part as u64,
            parts: parts as u64,
        });
        let mut pairs = Vec::new();
        merge_groups(&files, Vec::new(), range, |members| {
            for &d in &members[1..] {
                pairs.push((members[0], d));
            }
            Ok(())
        })?;
        total_pairs += pairs.len() as u64;
        write_records(
            &pairs_dir.join(format!("w{world_size:05}-u{u:05}.pairs")),
            Kind::Pairs,
            &pairs,
        )?;
    }
    stats.set_counter("candidate_pairs", total_pairs);
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// The completion marker of the cluster stage.
#[derive(Debug, Serialize, Deserialize)]
struct ClusterDone {
    format: u32,
    documents: u64,
    duplicate_clusters: u64,
    removed: u64,
    shards: u32,
}

/// Stage 3 (a single task): union-find over all candidate pairs, then per-shard decisions.
pub fn cluster(workdir: &Path) -> Result<Stats> {
    let started = std::time::Instant::now();
    let m = Manifests::load(workdir)?;
    let offsets = m.offsets();
    let n = m.total();
    let dense = |doc: u64| -> Result<u32> {
        let shard = (doc >> 32) as u32;
        let ordinal = doc & 0xFFFF_FFFF;
        let pos = m.position(shard);
        match pos.map(|p| (p, &m.shards[p])) {
            Some((p, s)) if ordinal < s.docs => Ok((offsets[p] + ordinal) as u32),
            _ => Err(Error::Intermediate {
                path: workdir.display().to_string(),
                message: format!("document {shard}:{ordinal} is not in the manifests"),
            }),
        }
    };
    let priorities = match &m.priority {
        Some(_) => {
            let mut p = vec![f64::INFINITY; n as usize];
            for f in list_files(&workdir.join("prio"), "bin")? {
                let mut r = RecordReader::open(&f, Kind::Priorities)?;
                while let Some((doc, bits)) = r.next_record()? {
                    p[dense(doc)? as usize] = f64::from_bits(bits);
                }
            }
            Some(p)
        }
        None => None,
    };
    let mut uf = UnionFind::new(n, priorities)?;
    // Pairs of exactly one buckets run, complete.
    let files = list_files(&workdir.join("pairs"), "pairs")?;
    let mut by_world: std::collections::BTreeMap<usize, Vec<(usize, PathBuf)>> = Default::default();
    for f in files {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let parsed = name
            .strip_prefix('w')
            .and_then(|s| s.strip_suffix(".pairs"))
            .and_then(|s| s.split_once("-u"))
            .and_then(|(w, u)| Some((w.parse::<usize>().ok()?, u.parse::<usize>().ok()?)));
        let Some((w, u)) = parsed else {
            return Err(corrupt(&f, "unexpected file in the pairs directory"));
        };
        by_world.entry(w).or_default().push((u, f));
    }
    if by_world.len() != 1 {
        return Err(Error::Config(format!(
            "{}: expected the pairs of one `buckets` run, found {} (delete the pairs directory and run buckets again)",
            workdir.join("pairs").display(),
            by_world.len()
        )));
    }
    let (world, units) = by_world.into_iter().next().unwrap_or_default();
    let expected = m.params.bands * parts_for(m.params.bands, world);
    let mut have: Vec<usize> = units.iter().map(|(u, _)| *u).collect();
    have.sort_unstable();
    if have != (0..expected).collect::<Vec<_>>() {
        return Err(Error::Config(format!(
            "{}: buckets incomplete: {} of {expected} work units present",
            workdir.join("pairs").display(),
            have.len()
        )));
    }
    let mut pairs_read = 0u64;
    for (_, f) in &units {
        let mut r = RecordReader::open(f, Kind::Pairs)?;
        while let Some((a, b)) = r.next_record()? {
            uf.union(dense(a)?, dense(b)?);
            pairs_read += 1;
        }
    }
    let mut clusters = uf.finish();
    let mut stats = Stats {
        command: "dedup near cluster".into(),
        documents_read: n,
        ..Stats::default()
    };
    if !m.against.is_empty() {
        let (indexes, hits) = load_hits(workdir, &m, &dense)?;
        clusters.mark_indexed(&hits, |i, r| indexes[i as usize].record_id(r));
        stats.set_counter("documents_matching_index", hits.len() as u64);
        stats.set_counter("indexed_duplicates", clusters.indexed_documents());
    }
    let out = workdir.join("clusters");
    mkdir(&out)?;
    let _ = std::fs::remove_file(out.join("done.json"));
    // Decisions of an earlier run (`.dup.json` are not rewritten without `against`).
    remove_matching(&out, "s")?;
    for (s, shard) in m.shards.iter().enumerate() {
        let members = || {
            (0..shard.docs).filter_map(|o| {
                let i = (offsets[s] + o) as usize;
                let size = clusters.size(i);
                let indexed = clusters.indexed(i);
                (size >= 2 || indexed.is_some()).then_some((o, i, size, indexed))
            })
        };
        let recs: Vec<(u64, u64)> = members()
            .map(|(o, i, size, _)| (o, (u64::from(clusters.rep(i)) << 32) | u64::from(size)))
            .collect();
        write_records(&out.join(shard_file(shard.index)), Kind::Clusters, &recs)?;
        if !m.against.is_empty() {
            let dup: Vec<(u64, &[String])> = members()
                .filter_map(|(o, _, _, ids)| Some((o, ids?)))
                .collect();
            write_json_atomic(&out.join(dup_file(shard.index)), &dup)?;
        }
    }
    let removed = clusters.removed();
    let indexed_removed = super::clusters_indexed_removed(&clusters);
    write_json_atomic(
        &out.join("done.json"),
        &ClusterDone {
            format: FORMAT,
            documents: n,
            duplicate_clusters: clusters.duplicate_clusters(),
            removed,
            shards: m.shards.len() as u32,
        },
    )?;
    stats.documents_kept = n - removed;
    Stats::bump(
        &mut stats.documents_removed,
        "near_duplicate",
        removed - indexed_removed,
    );
    if indexed_removed > 0 {
        Stats::bump(
            &mut stats.documents_removed,
            "indexed_duplicate",
            indexed_removed,
        );
    }
    stats.set_counter("candidate_pairs", pairs_read);
    stats.set_counter("duplicate_clusters", clusters.duplicate_clusters());
    stats.set_counter("near_duplicates", removed);
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

fn shard_file(id: u32) -> String {
    format!("s{id:010}.bin")
}

fn dup_file(id: u32) -> String {
    format!("s{id:010}.dup.json")
}

/// The indexes of the signatures' `against`, opened and checked unchanged, and the hits of every
/// signatures task: per document (dense, ascending), the `(index, record)` ordinals it matched.
fn load_hits(
    workdir: &Path,
    m: &Manifests,
    dense: &dyn Fn(u64) -> Result<u32>,
) -> Result<(Vec<Index>, super::IndexedHits)> {
    let mut indexes = Vec::with_capacity(m.against.len());
    for r in &m.against {
        let index = Index::open(&r.path)?;
        if index.fingerprint() != r.fingerprint {
            return Err(Error::Config(format!(
                "{}: the index changed since the signatures were computed (run the signatures \
                 again)",
                r.path.display()
            )));
        }
        indexes.push(index);
    }
    let dir = workdir.join("hits");
    let files = list_files(&dir, "bin")?;
    let expected: Vec<PathBuf> = (0..m.world_size)
        .map(|r| dir.join(format!("r{r:05}.bin")))
        .collect();
    if files != expected {
        return Err(corrupt(
            &dir,
            format!(
                "expected the hits of {} signatures tasks, found {} files (run the signatures \
                 again)",
                m.world_size,
                files.len()
            ),
        ));
    }
    let mut flat: Vec<(u32, u32, u64)> = Vec::new();
    for f in &files {
        let mut reader = RecordReader::open(f, Kind::Hits)?;
        while let Some((doc, v)) = reader.next_record()? {
            let (i, r) = ((v >> 48) as usize, v & (MAX_AGAINST_RECORDS - 1));
            match indexes.get(i) {
                Some(index) if r < index.manifest.records => {}
                _ => return Err(corrupt(f, format!("hit {i}:{r} is not in the indexes"))),
            }
            flat.push((dense(doc)?, i as u32, r));
        }
    }
    flat.sort_unstable();
    let mut hits: super::IndexedHits = Vec::new();
    for (doc, i, r) in flat {
        match hits.last_mut() {
            Some((d, h)) if *d == doc => h.push((i, r)),
            _ => hits.push((doc, vec![(i, r)])),
        }
    }
    Ok((indexes, hits))
}

/// The decisions of one shard: `(ordinal, representative, cluster size)` of its documents in
/// clusters of two or more, by ordinal. A document is kept when it is its own representative.
pub fn shard_decisions(workdir: &Path, shard: u32) -> Result<Vec<(u64, u32, u32)>> {
    let dir = workdir.join("clusters");
    if !dir.join("done.json").is_file() {
        return Err(Error::Config(format!(
            "{}: clustering has not finished: run `tamis dedup near cluster` first",
            dir.display()
        )));
    }
    let recs = RecordReader::open(&dir.join(shard_file(shard)), Kind::Clusters)?.read_all()?;
    Ok(recs
        .into_iter()
        .map(|(o, v)| (o, (v >> 32) as u32, (v & 0xFFFF_FFFF) as u32))
        .collect())
}

/// The ids of the indexed records (`dup_of`) of a shard's documents in clusters that duplicate
/// an index, by ordinal; `expected`: whether the signatures used indexes (the file must exist).
pub fn shard_dup_of(
    workdir: &Path,
    shard: u32,
    expected: bool,
) -> Result<std::collections::HashMap<u64, Vec<String>>> {
    if !expected {
        return Ok(Default::default());
    }
    let path = workdir.join("clusters").join(dup_file(shard));
    let bytes = std::fs::read(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let dup: Vec<(u64, Vec<String>)> = serde_json::from_slice(&bytes)
        .map_err(|e| corrupt(&path, format!("not a cluster decisions file: {e}")))?;
    Ok(dup.into_iter().collect())
}

/// Dense index of a shard's first document (to tell representatives apart from the shard's own
/// documents), from the manifests.
pub fn shard_offset(workdir: &Path, shard: u32) -> Result<u64> {
    let m = Manifests::load(workdir)?;
    m.position(shard)
        .map(|p| m.offsets()[p])
        .ok_or_else(|| Error::Config(format!("shard {shard} is not in the manifests")))
}

/// A shard's path, its decisions (ordinal → representative, size), its dense offset and its
/// documents' `dup_of` (ordinal → ids).
type CurrentShard = (
    String,
    std::collections::HashMap<u64, (u32, u32)>,
    u64,
    std::collections::HashMap<u64, Vec<String>>,
);

/// The staged filter's decision for one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDecision {
    /// Its cluster's representative (a 0-based position in the global order).
    pub rep: u64,
    /// Its cluster's size.
    pub size: u32,
    /// Whether it is kept.
    pub kept: bool,
    /// The ids of the indexed records its cluster duplicates (`against`), if any.
    pub dup_of: Option<Vec<String>>,
}

/// Stage 4 for documents that come from elsewhere (a datatrove task), identified by their
/// source path and their order in it: per document, its cluster's representative (a 0-based
/// position in the global order), the cluster's size, and whether it is kept.
#[derive(Debug)]
pub struct PathFilter {
    workdir: PathBuf,
    /// By path: shard id and documents in the signatures.
    shards: std::collections::HashMap<String, (u32, u64)>,
    /// Documents met so far, per path.
    seen: std::collections::HashMap<String, u64>,
    /// The current shard.
    current: Option<CurrentShard>,
    offsets: std::collections::HashMap<u32, u64>,
    against: bool,
}

impl PathFilter {
    /// The decisions in `workdir` (after the cluster stage).
    pub fn new(workdir: &Path) -> Result<Self> {
        let m = Manifests::load(workdir)?;
        let offsets = m.offsets();
        let mut shards = std::collections::HashMap::new();
        let mut by_shard = std::collections::HashMap::new();
        for (i, s) in m.shards.iter().enumerate() {
            shards.insert(s.name.clone(), (s.index, s.docs));
            by_shard.insert(s.index, offsets[i]);
        }
        Ok(PathFilter {
            workdir: workdir.to_path_buf(),
            shards,
            seen: std::collections::HashMap::new(),
            current: None,
            offsets: by_shard,
            against: !m.against.is_empty(),
        })
    }

    /// The decision for the next document of source file `path`. More documents than the
    /// signatures saw is an error.
    pub fn next(&mut self, path: &str) -> Result<PathDecision> {
        let Some(&(shard, docs)) = self.shards.get(path) else {
            return Err(Error::Config(format!(
                "{path}: not among the files whose signatures were computed"
            )));
        };
        if self.current.as_ref().map(|c| c.0.as_str()) != Some(path) {
            let decisions = shard_decisions(&self.workdir, shard)?
                .into_iter()
                .map(|(o, rep, size)| (o, (rep, size)))
                .collect();
            let offset = self.offsets.get(&shard).copied().unwrap_or(0);
            let dup = shard_dup_of(&self.workdir, shard, self.against)?;
            self.current = Some((path.to_string(), decisions, offset, dup));
        }
        let ordinal = self.seen.entry(path.to_string()).or_insert(0);
        if *ordinal >= docs {
            return Err(Error::Config(format!(
                "{path}: more documents than the signatures stage saw ({docs}): both stages must \
                 read the same data with the same reader and upstream steps"
            )));
        }
        let o = *ordinal;
        *ordinal += 1;
        let Some((_, decisions, offset, dup)) = &self.current else {
            return Err(Error::Config("no current shard".into()));
        };
        let me = offset + o;
        let (rep, size) = match decisions.get(&o) {
            Some(&(rep, size)) => (u64::from(rep), size),
            None => (me, 1),
        };
        let dup_of = dup.get(&o).cloned();
        Ok(PathDecision {
            rep,
            size,
            kept: rep == me && dup_of.is_none(),
            dup_of,
        })
    }
}

/// Stage 4, task `rank` of `world_size`: write the kept documents of the input files
/// `i % world_size == rank` to `output` (whose `{rank}` is replaced by the 5-digit rank). Uses
/// the `annotate` and `clusters` options.
pub fn filter(
    inputs: &[String],
    workdir: &Path,
    task: Task,
    output: &str,
    io: &IoOptions,
    options: &NearOptions,
    progress: &dyn Progress,
) -> Result<Stats> {
    let Task { rank, world_size } = task;
    rank_check(rank, world_size)?;
    let opts = &io.run_options(None)?;
    if world_size > 1 && !output.contains("{rank}") {
        return Err(Error::Config(format!(
            "{output}: with several filter tasks the output name needs a {{rank}} placeholder"
        )));
    }
    let output = Output::parse(&output.replace("{rank}", &format!("{rank:05}")))?;
    let files = expand_inputs(inputs)?;
    refuse_stdin(&files)?;
    let m = Manifests::load(workdir)?;
    if m.shards.len() != files.len() {
        return Err(Error::Config(format!(
            "the signatures were computed over {} input files, these inputs are {}",
            m.shards.len(),
            files.len()
        )));
    }
    let mine = my_files(&files, rank, world_size);
    let my: Vec<InputFile> = mine.iter().map(|&i| files[i].clone()).collect();
    let prints = fingerprints(&my);
    let offsets = m.offsets();
    // Per file: dense offset, documents, decisions still to meet.
    type Plan = (u64, u64, std::collections::VecDeque<(u64, u32, u32)>);
    let mut plan: Vec<Plan> = Vec::new();
    let mut dups: Vec<std::collections::HashMap<u64, Vec<String>>> = Vec::new();
    for (k, &i) in mine.iter().enumerate() {
        let pos = m
            .position(i as u32)
            .ok_or_else(|| Error::Config(format!("input file {i} is not in the manifests")))?;
        let s = &m.shards[pos];
        if s.name != files[i].name || s.size != prints[k].0 || s.mtime_ns != mtime_ns(prints[k].1) {
            return Err(Error::Config(format!(
                "{}: changed since its signatures were computed (or the inputs are listed differently)",
                files[i].display
            )));
        }
        plan.push((
            offsets[i],
            s.docs,
            shard_decisions(workdir, i as u32)?.into(),
        ));
        dups.push(shard_dup_of(workdir, i as u32, !m.against.is_empty())?);
    }
    let dups = &dups;
    let mut shard = 0usize;
    let mut ordinal = 0u64;
    let lookup = Box::new(move || loop {
        let (offset, docs, decisions) = plan.get_mut(shard)?;
        if ordinal >= *docs {
            shard += 1;
            ordinal = 0;
            continue;
        }
        let o = ordinal;
        ordinal += 1;
        let me = *offset + o;
        let dup_of = dups.get(shard).and_then(|d| d.get(&o)).map(Vec::as_slice);
        let (rep, size) = match decisions.front() {
            Some(&(d, rep, size)) if d == o => {
                decisions.pop_front();
                (u64::from(rep), size)
            }
            _ => (me, 1),
        };
        return Some((rep, size, rep == me && dup_of.is_none(), dup_of));
    });
    super::check_clusters_path(options.clusters.as_deref(), &my, &output, opts)?;
    let clusters_out = match &options.clusters {
        Some(p) => Some(ClustersWriter::create(p)?),
        None => None,
    };
    // The policy the signatures were made with: documents they refused are refused again.
    let keep = match &m.priority {
        None => crate::dedup::Keep::First,
        Some(p) => p
            .parse()
            .unwrap_or_else(|_| crate::dedup::Keep::Min(p.clone())),
    };
    let mut stage = NearFilter::new(lookup, options.annotate, clusters_out, &keep);
    let mut stats = run_files("dedup near filter", my, &output, opts, &mut stage, progress)?;
    stage.close()?;
    stats.input_files = mine.len();
    Ok(stats)
}
