//! Near-duplicate deduplication with MinHash-LSH.
//!
//! 1. **Signatures**: each document is normalized and cut into shingles ([`shingle`]), and its
//!    full-set MinHash signature is reduced to one key per LSH band ([`minhash`]).
//! 2. **Buckets**: documents sharing a band key are candidates; per band, keys are sorted (in
//!    memory, or as spilled sorted runs merged with bounded memory) and grouped ([`cluster`]).
//! 3. **Cluster**: candidates are joined with union-find (optionally only pairs whose exact
//!    shingle-set Jaccard reaches the threshold, `verify`). Each cluster keeps its best document
//!    under the keep policy ([`crate::dedup::Keep`]: the smallest score, then the first in input
//!    order).
//! 4. **Filter**: the inputs are read again and every document that is not its cluster's
//!    representative is removed (or, with `annotate`, every document is kept and tagged with
//!    `minhash_cluster_id` and `minhash_cluster_size`).
//!
//! One process runs all four with [`near_dedup`]; a scheduler runs them as separate tasks
//! sharing a work directory with the functions of [`stages`], whose files are the same sorted,
//! checksummed runs as the single-process spill files ([`spill`]). Results are identical in
//! every mode and for any thread count.

pub mod cluster;
pub mod minhash;
mod options;
pub mod shingle;
pub mod spill;
pub mod stages;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

pub use cluster::{Clusters, UnionFind};
pub use minhash::{
    candidate_probability, optimal_bands_rows, s_curve_table, MinHashParams, MinHasher, Scratch,
    Sketch,
};
pub use options::{NearOptions, MAX_NGRAM, MAX_NUM_PERM};
pub use shingle::{jaccard, shingle_hashes, shingle_set, words, Shingling};

use crate::dedup::Keep;
use crate::io::{expand_inputs, Batch, Doc, FieldEdit, FieldValue, InputFile, IoOptions, Output};
use crate::pipeline::{run_files, scan, Decision, Progress, RunOptions, Stage};
use crate::{Error, RecordError, Result, Stats};

/// Names of the fields `annotate` adds.
pub const CLUSTER_ID_FIELD: &str = "minhash_cluster_id";
/// See [`CLUSTER_ID_FIELD`].
pub const CLUSTER_SIZE_FIELD: &str = "minhash_cluster_size";

/// Bytes of memory per document in the in-memory mode: the band keys, one band's sort buffer,
/// the union-find arrays and flags (verification adds the candidate pairs and shingle sets).
pub fn bytes_per_document(params: &MinHashParams, priority: bool) -> u64 {
    params.bands as u64 * 8 + 16 + 8 + 1 + if priority { 8 } else { 0 }
}

/// Documents buffered between spills under `limit`: half of it for band keys, the rest for the
/// merge buffers and the union-find arrays.
fn spill_budget(params: &MinHashParams, limit: u64) -> usize {
    let per_doc = params.bands as u64 * 8 + 1;
    ((limit / 2) / per_doc).max(256) as usize
}

/// A one-paragraph description of the memory plan, printed before a run starts.
pub fn memory_plan(params: &MinHashParams, config: &NearOptions) -> String {
    let per_doc = bytes_per_document(params, config.keep_policy().is_ok_and(|k| k.scores()));
    let mut s = format!(
        "memory: about {per_doc} bytes per document in memory ({:.1} million documents per GB)",
        1e3 / per_doc as f64
    );
    if let Some(limit) = config.memory_limit {
        let budget = spill_budget(params, limit);
        s.push_str(&format!(
            "; --memory-limit {limit} bytes: band keys spill to disk every {budget} documents, \
             {} bytes of disk per document",
            params.bands * 16 + 32
        ));
    }
    if config.verify {
        s.push_str("; --verify also holds the shingle sets of candidate documents");
    }
    s
}

/// What pass 1 computes per document.
pub(crate) struct Sig {
    pub keys: Option<Vec<u64>>,
    pub priority: f64,
}

pub(crate) fn signature_of(
    hasher: &MinHasher,
    keep: &Keep,
    batch: &Batch,
    doc: &Doc<'_>,
) -> std::result::Result<Sig, RecordError> {
    let priority = keep.score(batch, doc)?;
    thread_local! {
        static SCRATCH: std::cell::RefCell<(Scratch, Vec<u64>)> = Default::default();
    }
    let keys = SCRATCH.with(|s| {
        let (scratch, sig) = &mut *s.borrow_mut();
        sig.resize(hasher.params().num_perm, 0);
        hasher.signature(&doc.text, scratch, sig);
        if scratch.shingles.is_empty() {
            return None;
        }
        let mut keys = vec![0u64; hasher.params().bands];
        hasher.band_keys(sig, &mut keys);
        Some(keys)
    });
    Ok(Sig { keys, priority })
}

/// Size and modification time of each input, to detect files that change between passes.
pub fn fingerprints(files: &[InputFile]) -> Vec<(u64, Option<std::time::SystemTime>)> {
    files
        .iter()
        .map(|f| {
            f.path
                .as_ref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or((0, None), |m| (m.len(), m.modified().ok()))
        })
        .collect()
}

/// `--clusters FILE` must not be an input, the output or the rejects file.
pub(crate) fn check_clusters_path(
    clusters: Option<&Path>,
    files: &[InputFile],
    output: &Output,
    opts: &RunOptions,
) -> Result<()> {
    check_side_path(clusters, "clusters file", files, output, opts)
}

/// A side file a command writes (`name`: "clusters file", "spans file") must not be an input,
/// the output or the rejects file.
pub(crate) fn check_side_path(
    side: Option<&Path>,
    name: &str,
    files: &[InputFile],
    output: &Output,
    opts: &RunOptions,
) -> Result<()> {
    let Some(c) = side else {
        return Ok(());
    };
    let c_at = crate::pipeline::resolved(c);
    let clash = |what: &str| {
        Err(Error::Config(format!(
            "{}: the {name} is also the {what}",
            c.display()
        )))
    };
    if files
        .iter()
        .filter_map(|f| f.path.as_deref())
        .any(|p| crate::pipeline::resolved(p) == c_at)
    {
        return clash("input");
    }
    if output.path.as_deref().map(crate::pipeline::resolved) == Some(c_at.clone()) {
        return clash("output");
    }
    if opts.rejects.as_deref().map(crate::pipeline::resolved) == Some(c_at) {
        return clash("rejects file");
    }
    Ok(())
}

fn refuse_stdin(files: &[InputFile]) -> Result<()> {
    crate::io::require_rereadable(files, "dedup near")
}

/// Candidate pairs of a group, for verification: each member with the first one and with the
/// one before it.
fn group_pairs(members: &[u64], pairs: &mut Vec<(u32, u32)>) {
    for (j, &d) in members.iter().enumerate().skip(1) {
        pairs.push((members[0] as u32, d as u32));
        if j > 1 {
            pairs.push((members[j - 1] as u32, d as u32));
        }
    }
}

/// Candidate pairs of a new document and an indexed one (`verify` with `against`): the indexed
/// record `(index, ordinal)` and the document.
type IndexedPair = ((u32, u64), u32);

/// Per document (ascending), the `(index, record)` ordinals of the indexed documents it
/// duplicates.
pub(crate) type IndexedHits = Vec<(u32, Vec<(u32, u64)>)>;

/// Join the verified pairs: those whose exact shingle-set Jaccard is at least `threshold`. The
/// shingle sets come from one more pass over the inputs, for candidate documents only. Pairs
/// with indexed documents (`indexed`) are verified too, their shingles read again from the
/// files the index was built from; returns, per document (ascending), the indexed records it
/// was verified against.
#[allow(clippy::too_many_arguments)]
fn verify_pairs(
    files: &[InputFile],
    opts: &RunOptions,
    params: &MinHashParams,
    threshold: f64,
    mut pairs: Vec<(u32, u32)>,
    (against, mut indexed): (&[crate::index::Index], Vec<IndexedPair>),
    n: u64,
    uf: &mut UnionFind,
    stats: &mut Stats,
    progress: &dyn Progress,
) -> Result<IndexedHits> {
    pairs.par_sort_unstable();
    pairs.dedup();
    indexed.par_sort_unstable_by_key(|&(o, d)| (d, o));
    indexed.dedup();
    let mut involved = vec![false; n as usize];
    for &(a, b) in &pairs {
        involved[a as usize] = true;
        involved[b as usize] = true;
    }
    for &(_, d) in &indexed {
        involved[d as usize] = true;
    }
    let mut sets: std::collections::HashMap<u32, Vec<u64>> = std::collections::HashMap::new();
    let mut index = 0u32;
    let mut scratch_stats = Stats::default();
    // Every document gets an index in input order; only candidates are kept.
    let involved_ref = &involved;
    scan(
        files,
        opts,
        &mut scratch_stats,
        progress,
        |_, doc| Ok(shingle_set(&doc.text, params.shingling, params.ngram)),
        |s| {
            if involved_ref[index as usize] {
                sets.insert(index, s.value);
            }
            index += 1;
            Ok(())
        },
    )?;
    if u64::from(index) != n {
        return Err(Error::Config(
            "the inputs changed while dedup near was reading them".into(),
        ));
    }
    let verdicts: Vec<bool> = pairs
        .par_iter()
        .map(|(a, b)| match (sets.get(a), sets.get(b)) {
            (Some(x), Some(y)) => jaccard(x, y) >= threshold,
            _ => false,
        })
        .collect();
    let mut accepted = 0u64;
    for (&(a, b), ok) in pairs.iter().zip(verdicts) {
        if ok {
            accepted += 1;
            uf.union(a, b);
        }
    }
    stats.set_counter("candidate_pairs_verified", pairs.len() as u64);
    stats.set_counter("candidate_pairs_rejected", pairs.len() as u64 - accepted);
    if against.is_empty() {
        return Ok(Vec::new());
    }
    // The indexed documents' shingles, from their files, index by index.
    let mut old_sets: std::collections::HashMap<(u32, u64), Vec<u64>> = Default::default();
    for (i, index) in against.iter().enumerate() {
        let mut ords: Vec<u64> = indexed
            .iter()
            .filter(|p| p.0 .0 == i as u32)
            .map(|p| p.0 .1)
            .collect();
        ords.sort_unstable();
        ords.dedup();
        index.for_each_source_text(&ords, progress, |o, text| {
            old_sets.insert(
                (i as u32, o),
                shingle_set(text, params.shingling, params.ngram),
            );
            Ok(())
        })?;
    }
    let verdicts: Vec<bool> = indexed
        .par_iter()
        .map(|(o, d)| match (old_sets.get(o), sets.get(d)) {
            (Some(x), Some(y)) => jaccard(x, y) >= threshold,
            _ => false,
        })
        .collect();
    let mut found: IndexedHits = Vec::new();
    let mut accepted = 0u64;
    for (&(o, d), ok) in indexed.iter().zip(verdicts) {
        if !ok {
            continue;
        }
        accepted += 1;
        match found.last_mut() {
            Some((last, hits)) if *last == d => hits.push(o),
            _ => found.push((d, vec![o])),
        }
    }
    stats.set_counter("indexed_pairs_verified", indexed.len() as u64);
    stats.set_counter("indexed_pairs_rejected", indexed.len() as u64 - accepted);
    Ok(found)
}

/// Find the clusters of `files` in one process: pass 1 (signatures) and clustering, plus the
/// verification pass with [`NearOptions::verify`]. Returns the clusters, the valid documents per
/// file, and the file fingerprints taken before reading.
#[allow(clippy::type_complexity)]
pub fn find_clusters(
    files: &[InputFile],
    opts: &RunOptions,
    config: &NearOptions,
    stats: &mut Stats,
    progress: &dyn Progress,
) -> Result<(Clusters, Vec<u64>)> {
    let params = config.params()?;
    let verify = config.verify_threshold();
    let hasher = MinHasher::new(params)?;
    let spill_dir = match config.memory_limit {
        Some(_) => {
            let base = config.spill_dir.clone().unwrap_or_else(std::env::temp_dir);
            Some(
                tempfile::Builder::new()
                    .prefix("tamis-near-")
                    .tempdir_in(&base)
                    .map_err(|e| Error::io(base.display().to_string(), e))?,
            )
        }
        None => None,
    };
    let mut store = cluster::BandStore::new(
        params.bands,
        config.memory_limit.map(|l| spill_budget(&params, l)),
        spill_dir.as_ref().map(|d| d.path().to_path_buf()),
        "run",
        false,
    );
    let mut priorities: Vec<f64> = Vec::new();
    let keep = config.keep_policy()?;
    let want_priority = keep.scores();
    let mut no_shingles = 0u64;
    let against = open_near_against(config, &params)?;
    // Per document with a band key in an index: (document, band, indexed records).
    let mut band_hits: Vec<(u32, u32, Vec<(u32, u64)>)> = Vec::new();
    let counts = scan(
        files,
        opts,
        stats,
        progress,
        |batch, doc| {
            let sig = signature_of(&hasher, &keep, batch, doc)?;
            let found = indexed_hits(&against, sig.keys.as_deref());
            Ok((sig, found))
        },
        |s| {
            let (sig, found) = s.value;
            if sig.keys.is_none() {
                no_shingles += 1;
            }
            if want_priority {
                priorities.push(sig.priority);
            }
            let doc = store.len() as u32;
            band_hits.extend(found.into_iter().map(|(b, h)| (doc, b, h)));
            store.push(0, sig.keys.as_deref())
        },
    )?;
    let n = store.len();
    let mut uf = UnionFind::new(n, want_priority.then_some(priorities))?;
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    let mut grouped = 0u64;
    // With `verify` and `against`, a group whose key is indexed is, in a run over the indexed
    // corpora then the input, the indexed documents followed by these: each is a candidate
    // with the group's first (indexed) document and with the one before it, so the first
    // of these with the last indexed one, the others with the previous one of these.
    let hits_of = |doc: u32, band: u32| {
        band_hits
            .binary_search_by_key(&(doc, band), |h| (h.0, h.1))
            .ok()
    };
    let mut not_first: std::collections::HashSet<(u32, u32)> = Default::default();
    stats.set_counter("spill_runs", store.runs() as u64);
    store.for_each_group(|band, members| {
        grouped += members.len() as u64;
        if verify.is_some() {
            if hits_of(members[0] as u32, band as u32).is_some() {
                for w in members.windows(2) {
                    pairs.push((w[0] as u32, w[1] as u32));
                    not_first.insert((w[1] as u32, band as u32));
                }
            } else {
                group_pairs(members, &mut pairs);
            }
        } else {
            for &d in &members[1..] {
                uf.union(members[0] as u32, d as u32);
            }
        }
        Ok(())
    })?;
    drop(store);
    drop(spill_dir);
    let hits: IndexedHits = if let Some(t) = verify {
        let mut indexed: Vec<IndexedPair> = Vec::new();
        for (doc, band, old) in &band_hits {
            if let (Some(&first), Some(&last)) = (old.first(), old.last()) {
                indexed.push((first, *doc));
                if !not_first.contains(&(*doc, *band)) {
                    indexed.push((last, *doc));
                }
            }
        }
        verify_pairs(
            files,
            opts,
            &params,
            t,
            pairs,
            (&against, indexed),
            n,
            &mut uf,
            stats,
            progress,
        )?
    } else {
        let mut hits: IndexedHits = Vec::new();
        for (doc, _, old) in band_hits {
            match hits.last_mut() {
                Some((d, h)) if *d == doc => h.extend(old),
                _ => hits.push((doc, old)),
            }
        }
        hits
    };
    let mut clusters = uf.finish();
    if !against.is_empty() {
        clusters.mark_indexed(&hits, |i, r| against[i as usize].record_id(r));
        stats.set_counter("documents_matching_index", hits.len() as u64);
        stats.set_counter("indexed_duplicates", clusters.indexed_documents());
    }
    stats.set_counter("documents_without_shingles", no_shingles);
    stats.set_counter("band_memberships_in_groups", grouped);
    stats.set_counter("duplicate_clusters", clusters.duplicate_clusters());
    Ok((clusters, counts))
}

/// For the next document of pass 2: its representative, cluster size, whether it is kept and
/// the ids of the indexed records its cluster duplicates; `None` when there are more documents
/// than in pass 1.
pub(crate) type Lookup<'a> =
    Box<dyn FnMut() -> Option<(u64, u32, bool, Option<&'a [String]>)> + Send + 'a>;

/// Open the near indexes of `config.against`, checking that they were built with `params`.
pub fn open_near_against(
    config: &NearOptions,
    params: &MinHashParams,
) -> Result<Vec<crate::index::Index>> {
    config
        .against
        .iter()
        .map(|p| {
            let index = crate::index::Index::open_for(p, crate::index::IndexKind::Near, None)?;
            index.require_minhash(params)?;
            Ok(index)
        })
        .collect()
}

/// The `(index, record)` ordinals of the indexed documents sharing a band key with `keys`, in
/// index order, at most [`cluster::MAX_DUP_OF`] (all a cluster's `dup_of` can name).
pub(crate) fn indexed_records(
    against: &[crate::index::Index],
    keys: Option<&[u64]>,
) -> Vec<(u32, u64)> {
    let mut found: Vec<(u32, u64)> = indexed_hits(against, keys)
        .into_iter()
        .flat_map(|(_, h)| h)
        .collect();
    found.sort_unstable();
    found.dedup();
    found.truncate(cluster::MAX_DUP_OF);
    found
}

/// Per band of `keys` whose key is in an index: the band and the `(index, record)` ordinals of
/// the indexed documents with that key, in index order (the order of a run over the indexed
/// corpora, then the input).
fn indexed_hits(
    against: &[crate::index::Index],
    keys: Option<&[u64]>,
) -> Vec<(u32, Vec<(u32, u64)>)> {
    let mut hits = Vec::new();
    let Some(keys) = keys else {
        return hits;
    };
    let mut out = Vec::new();
    for (b, &k) in keys.iter().enumerate() {
        let mut band = Vec::new();
        for (i, index) in against.iter().enumerate() {
            out.clear();
            index.find_band(b, k, &mut out);
            band.extend(out.iter().map(|&r| (i as u32, r)));
        }
        if !band.is_empty() {
            hits.push((b as u32, band));
        }
    }
    hits
}

/// The filter stage of pass 2: documents arrive in the same order as in pass 1. Call
/// [`NearFilter::close`] after the run.
pub struct NearFilter<'a> {
    // Only `decide` (one thread, `&mut self`) calls it; the mutex makes the stage `Sync`.
    lookup: std::sync::Mutex<Lookup<'a>>,
    annotate: bool,
    clusters_out: Option<ClustersWriter>,
    error: Option<Error>,
    id_field: Arc<str>,
    size_field: Arc<str>,
    dup_of: Arc<str>,
    /// The keep policy, when it reads a field: documents pass 1 refused for it (a field that is
    /// not a number) are refused again, so that both passes count the same documents.
    scored: Option<Keep>,
}

impl<'a> NearFilter<'a> {
    pub(crate) fn new(
        lookup: Lookup<'a>,
        annotate: bool,
        clusters_out: Option<ClustersWriter>,
        keep: &Keep,
    ) -> Self {
        NearFilter {
            lookup: std::sync::Mutex::new(lookup),
            annotate,
            clusters_out,
            error: None,
            id_field: Arc::from(CLUSTER_ID_FIELD),
            size_field: Arc::from(CLUSTER_SIZE_FIELD),
            dup_of: Arc::from(crate::dedup::DUP_OF_FIELD),
            scored: keep.field().is_some().then(|| keep.clone()),
        }
    }
}

impl NearFilter<'_> {
    /// Report a mismatch between the passes, and write the clusters file.
    pub fn close(mut self) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if let Some(w) = self.clusters_out.take() {
            w.finish()?;
        }
        Ok(())
    }
}

/// The filter stage over documents clustered by [`find_clusters`], read again in the same order.
pub fn filter_stage<'a>(clusters: &'a Clusters, options: &NearOptions) -> Result<NearFilter<'a>> {
    let mut next = 0usize;
    let lookup = Box::new(move || {
        let i = next;
        next += 1;
        (i < clusters.len()).then(|| {
            (
                u64::from(clusters.rep(i)),
                clusters.size(i),
                clusters.keep(i),
                clusters.indexed(i),
            )
        })
    });
    let clusters_out = match &options.clusters {
        Some(p) => Some(ClustersWriter::create(p)?),
        None => None,
    };
    let keep = options.keep_policy()?;
    Ok(NearFilter::new(
        lookup,
        options.annotate,
        clusters_out,
        &keep,
    ))
}

/// Refuse a change of the inputs between two passes over them.
pub fn check_unchanged(
    files: &[InputFile],
    before: &[(u64, Option<std::time::SystemTime>)],
) -> Result<()> {
    if fingerprints(files) != before {
        return Err(Error::Config(
            "the inputs changed while dedup near was reading them".into(),
        ));
    }
    Ok(())
}

impl Stage for NearFilter<'_> {
    type Prepared = Option<RecordError>;
    fn prepare(&self, _doc: &Doc<'_>) -> Option<RecordError> {
        None
    }

    fn prepare_in(&self, batch: &Batch, doc: &Doc<'_>) -> Option<RecordError> {
        self.scored.as_ref()?.score(batch, doc).err()
    }

    fn decide(&mut self, doc: &Doc<'_>, refused: Option<RecordError>) -> Decision {
        if let Some(e) = refused {
            return Decision::Reject(e);
        }
        let lookup = self
            .lookup
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some((rep, size, keep, indexed)) = lookup() else {
            if self.error.is_none() {
                self.error = Some(Error::Config(
                    "the inputs changed between passes: more documents than before".into(),
                ));
            }
            return Decision::Keep;
        };
        if size >= 2 {
            if let Some(w) = &mut self.clusters_out {
                if let Err(e) = w.add(&doc.id, rep, size, keep) {
                    self.error.get_or_insert(e);
                }
            }
        }
        if self.annotate {
            let mut fields = vec![
                FieldEdit::set(self.id_field.clone(), FieldValue::Int(rep as i64)),
                FieldEdit::set(self.size_field.clone(), FieldValue::Int(i64::from(size))),
            ];
            if let Some(ids) = indexed {
                fields.push(FieldEdit::set(
                    self.dup_of.clone(),
                    FieldValue::Strs(ids.to_vec()),
                ));
            }
            Decision::Edit { text: None, fields }
        } else if keep {
            Decision::Keep
        } else if indexed.is_some() {
            Decision::Remove("indexed_duplicate".into())
        } else {
            Decision::Remove("near_duplicate".into())
        }
    }
}

/// `--clusters FILE`: one JSON line per member of a cluster of two or more, written atomically.
pub(crate) struct ClustersWriter {
    file: std::io::BufWriter<std::fs::File>,
    atomic: crate::io::AtomicFile,
    path: String,
}

impl ClustersWriter {
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let (atomic, file) = crate::io::AtomicFile::create(path)?;
        Ok(ClustersWriter {
            file: std::io::BufWriter::new(file),
            atomic,
            path: path.display().to_string(),
        })
    }

    fn add(&mut self, id: &str, rep: u64, size: u32, kept: bool) -> Result<()> {
        let line =
            serde_json::json!({"id": id, "cluster_id": rep, "cluster_size": size, "kept": kept});
        writeln!(self.file, "{line}").map_err(|e| Error::io(self.path.clone(), e))
    }

    pub(crate) fn finish(self) -> Result<()> {
        let path = self.path;
        let file = self
            .file
            .into_inner()
            .map_err(|e| Error::io(path.clone(), e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(path.clone(), e))?;
        self.atomic.commit()
    }
}

/// Near-duplicate dedup of `inputs` into `output`, in one process.
pub fn near_dedup(
    inputs: &[String],
    output: &Output,
    io: &IoOptions,
    config: &NearOptions,
    progress: &dyn Progress,
) -> Result<Stats> {
    let started = std::time::Instant::now();
    config.params()?;
    let opts = &io.run_options(None)?;
    let files = expand_inputs(inputs)?;
    refuse_stdin(&files)?;
    crate::pipeline::check_paths(&files, output, opts)?;
    check_clusters_path(config.clusters.as_deref(), &files, output, opts)?;
    let before = fingerprints(&files);
    let mut pass1 = Stats::default();
    // Pass 1 does not write rejects: pass 2 meets the same bad records and reports them.
    let scan_opts = RunOptions {
        rejects: None,
        ..opts.clone()
    };
    let (clusters, _counts) = find_clusters(&files, &scan_opts, config, &mut pass1, progress)?;
    check_unchanged(&files, &before)?;
    let mut stage = filter_stage(&clusters, config)?;
    let mut stats = run_files("dedup near", files, output, opts, &mut stage, progress)?;
    stage.close()?;
    for (k, v) in pass1.counters {
        stats.counters.insert(k, v);
    }
    stats.set_counter(
        "near_duplicates",
        clusters.removed() - clusters_indexed_removed(&clusters),
    );
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Documents removed for duplicating an index (every document of a cluster that does).
pub fn clusters_indexed_removed(clusters: &Clusters) -> u64 {
    (0..clusters.len())
        .filter(|&i| clusters.indexed(i).is_some())
        .count() as u64
}

/// In-memory near-dedup of a column: per text, its cluster representative (index of the kept
/// text) and cluster size. `None` texts are not documents: they are their own singletons.
pub fn near_clusters(texts: &[Option<&str>], config: &NearOptions) -> Result<(Vec<u32>, Vec<u32>)> {
    near_clusters_with(texts, config, None)
}

/// [`near_clusters`] with the values of the keep policy's field per row (`max:`/`min:`).
pub fn near_clusters_with(
    texts: &[Option<&str>],
    config: &NearOptions,
    values: Option<&[Option<f64>]>,
) -> Result<(Vec<u32>, Vec<u32>)> {
    if !config.against.is_empty() {
        return Err(crate::options::OptionError::new(
            "against",
            "gives no clusters of its own: use a keep mask (near_keep_mask, polars \
             is_near_first) or tamis.dedup.near",
        )
        .into());
    }
    let (reps, sizes, _) = cluster_column(texts, config, values, &[])?;
    Ok((reps, sizes))
}

/// Representatives and cluster sizes of a column clustered within itself, and per text whether
/// one of its band keys is in an index of `against` (all `false` without indexes): the band
/// keys are computed once for both.
fn cluster_column(
    texts: &[Option<&str>],
    config: &NearOptions,
    values: Option<&[Option<f64>]>,
    against: &[crate::index::Index],
) -> Result<(Vec<u32>, Vec<u32>, Vec<bool>)> {
    let params = config.params()?;
    let keep = config.keep_policy()?;
    let priorities = if keep.scores() {
        Some(keep.scores_of(texts.iter().map(|t| t.unwrap_or("")), values)?)
    } else {
        None
    };
    let verify = config.verify_threshold();
    let hasher = MinHasher::new(params)?;
    if texts.len() as u64 > u64::from(u32::MAX) {
        return Err(Error::Config("too many texts for one call".into()));
    }
    let keys = band_keys_many(&hasher, texts);
    let touched: Vec<bool> = if against.is_empty() {
        vec![false; texts.len()]
    } else {
        keys.par_iter()
            .map(|k| !indexed_hits(against, k.as_deref()).is_empty())
            .collect()
    };
    let mut store = cluster::BandStore::new(params.bands, None, None, "mem", false);
    for k in &keys {
        store.push(0, k.as_deref())?;
    }
    drop(keys);
    let mut uf = UnionFind::new(texts.len() as u64, priorities)?;
    let mut pairs = Vec::new();
    store.for_each_group(|_, members| {
        if verify.is_some() {
            group_pairs(members, &mut pairs);
        } else {
            for &d in &members[1..] {
                uf.union(members[0] as u32, d as u32);
            }
        }
        Ok(())
    })?;
    if let Some(t) = verify {
        pairs.par_sort_unstable();
        pairs.dedup();
        let verdicts: Vec<bool> = pairs
            .par_iter()
            .map(|&(a, b)| {
                let set = |i: u32| {
                    texts[i as usize]
                        .map_or_else(Vec::new, |s| shingle_set(s, params.shingling, params.ngram))
                };
                jaccard(&set(a), &set(b)) >= t
            })
            .collect();
        for (&(a, b), ok) in pairs.iter().zip(verdicts) {
            if ok {
                uf.union(a, b);
            }
        }
    }
    let c = uf.finish();
    let reps = (0..c.len()).map(|i| c.rep(i)).collect();
    let sizes = (0..c.len()).map(|i| c.size(i)).collect();
    Ok((reps, sizes, touched))
}

/// For in-memory columns: `true` for the text each near-duplicate cluster keeps under
/// `config` (`values`: the keep policy's field per row), `false` for the others; `None` texts
/// are kept. With [`NearOptions::against`], a cluster with a text sharing a band key with an
/// indexed document keeps none of its texts, as `tamis dedup near --against` does.
pub fn near_keep_mask(
    texts: &[Option<&str>],
    config: &NearOptions,
    values: Option<&[Option<f64>]>,
) -> Result<Vec<bool>> {
    if !config.against.is_empty() && config.verify {
        return Err(crate::options::OptionError::with_fields(
            &["verify", "against"],
            "{0} with {1} reads the indexed documents again: it is for files \
             (tamis.dedup.near, `tamis dedup near`), not in-memory columns",
        )
        .into());
    }
    let against = open_near_against(config, &config.params()?)?;
    let (reps, _, touched) = cluster_column(texts, config, values, &against)?;
    let mut keep: Vec<bool> = reps
        .iter()
        .enumerate()
        .map(|(i, &r)| r as usize == i)
        .collect();
    // A cluster with a text found in an index keeps none of its texts.
    let mut root_touched = vec![false; texts.len()];
    for (i, &t) in touched.iter().enumerate() {
        if t {
            root_touched[reps[i] as usize] = true;
        }
    }
    for (i, k) in keep.iter_mut().enumerate() {
        if root_touched[reps[i] as usize] {
            *k = false;
        }
    }
    Ok(keep)
}

/// Band keys of many texts, in parallel on the current rayon pool (`None`: a null text or one
/// without shingles).
pub fn band_keys_many(hasher: &MinHasher, texts: &[Option<&str>]) -> Vec<Option<Vec<u64>>> {
    let params = *hasher.params();
    texts
        .par_iter()
        .with_min_len(16)
        .map_init(
            || (Scratch::default(), vec![0u64; params.num_perm]),
            |(scratch, sig), t| {
                let t = (*t)?;
                hasher.signature(t, scratch, sig);
                if scratch.shingles.is_empty() {
                    return None;
                }
                let mut k = vec![0u64; params.bands];
                hasher.band_keys(sig, &mut k);
                Some(k)
            },
        )
        .collect()
}

/// MinHash signatures of pre-shingled documents: document `i` is the shingle hashes
/// `values[offsets[i]..offsets[i + 1]]`. Row-major `(offsets.len() - 1) × num_perm`.
pub fn minhash_matrix_from_hashes(
    values: &[u64],
    offsets: &[u64],
    params: &MinHashParams,
) -> Result<Vec<u64>> {
    let hasher = MinHasher::new(*params)?;
    let k = params.num_perm;
    let rows = offsets.len().saturating_sub(1);
    for w in offsets.windows(2) {
        if w[0] > w[1] || w[1] > values.len() as u64 {
            return Err(Error::Config(
                "offsets must be non-decreasing and within the values".into(),
            ));
        }
    }
    // Zeroed pages come from the system lazily; every row is written in full below.
    let mut out = vec![0u64; rows * k];
    out.par_chunks_mut(k)
        .enumerate()
        .with_min_len(16)
        .for_each(|(i, row)| {
            let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
            hasher.signature_of_hashes(&values[a..b], row);
        });
    Ok(out)
}

/// MinHash signatures of many texts as one row-major `texts.len() × num_perm` matrix (a `None`
/// text, like a text without shingles, gets all `u64::MAX`).
pub fn minhash_matrix(texts: &[Option<&str>], params: &MinHashParams) -> Result<Vec<u64>> {
    let hasher = MinHasher::new(*params)?;
    let k = params.num_perm;
    let mut out = vec![u64::MAX; texts.len() * k];
    out.par_chunks_mut(k)
        .zip(texts.par_iter())
        .with_min_len(16)
        .for_each_init(Scratch::default, |scratch, (row, t)| {
            if let Some(t) = t {
                hasher.signature(t, scratch, row);
            }
        });
    Ok(out)
}
