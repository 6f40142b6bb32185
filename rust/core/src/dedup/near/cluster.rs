//! LSH banding and clustering: per-band groups of documents with equal band keys (from memory or
//! from sorted spill files, merged with bounded memory), then union-find.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::spill::{write_records, Kind, RecordReader};
use crate::{Error, Result};

/// Connected components where each root is its component's best document: the smallest
/// (priority, index), so the representative does not depend on the order of unions.
#[derive(Debug)]
pub struct UnionFind {
    parent: Vec<u32>,
    priority: Option<Vec<f64>>,
}

impl UnionFind {
    /// `n` singletons; `priority[i]` (smaller wins) breaks ties before the index.
    pub fn new(n: u64, priority: Option<Vec<f64>>) -> Result<Self> {
        if n > u64::from(u32::MAX) {
            return Err(Error::Config(format!(
                "{n} documents: one near-dedup run handles at most {} (split the corpus)",
                u32::MAX
            )));
        }
        Ok(UnionFind {
            parent: (0..n as u32).collect(),
            priority,
        })
    }

    fn before(&self, a: u32, b: u32) -> bool {
        match &self.priority {
            Some(p) => match p[a as usize].total_cmp(&p[b as usize]) {
                std::cmp::Ordering::Equal => a < b,
                o => o.is_lt(),
            },
            None => a < b,
        }
    }

    /// The representative of `x`'s component.
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            let gp = self.parent[p as usize];
            self.parent[x as usize] = gp;
            x = gp;
        }
        x
    }

    /// Join the components of `a` and `b`; returns whether they were apart.
    pub fn union(&mut self, a: u32, b: u32) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (root, child) = if self.before(ra, rb) {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.parent[child as usize] = root;
        true
    }

    /// Flatten into per-document representatives and cluster sizes.
    pub fn finish(mut self) -> Clusters {
        let n = self.parent.len();
        for i in 0..n as u32 {
            let r = self.find(i);
            self.parent[i as usize] = r;
        }
        let mut size = vec![0u32; n];
        for &r in &self.parent {
            size[r as usize] += 1;
        }
        Clusters {
            rep: self.parent,
            root_size: size,
            indexed: std::collections::BTreeMap::new(),
        }
    }
}

/// At most this many indexed ids are listed per cluster (`dup_of`): the first in index order.
pub const MAX_DUP_OF: usize = 32;

/// The outcome of clustering: each document's representative (the kept one) and cluster size,
/// and the clusters that duplicate an index (`against`), which keep no document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clusters {
    rep: Vec<u32>,
    root_size: Vec<u32>,
    /// Per representative of a cluster touching an index: the ids of the indexed records its
    /// members matched (index order, at most [`MAX_DUP_OF`]).
    indexed: std::collections::BTreeMap<u32, Vec<String>>,
}

impl Clusters {
    /// Number of documents.
    pub fn len(&self) -> usize {
        self.rep.len()
    }

    /// Whether there are no documents.
    pub fn is_empty(&self) -> bool {
        self.rep.is_empty()
    }

    /// Representative (dense index of the kept document) of document `i`.
    pub fn rep(&self, i: usize) -> u32 {
        self.rep[i]
    }

    /// Size of document `i`'s cluster.
    pub fn size(&self, i: usize) -> u32 {
        self.root_size[self.rep[i] as usize]
    }

    /// Whether document `i` is kept (it represents its cluster, which does not duplicate an
    /// index).
    pub fn keep(&self, i: usize) -> bool {
        self.rep[i] as usize == i && !self.indexed.contains_key(&self.rep[i])
    }

    /// The ids of the indexed records document `i`'s cluster duplicates, if any.
    pub fn indexed(&self, i: usize) -> Option<&[String]> {
        self.indexed.get(&self.rep[i]).map(Vec::as_slice)
    }

    /// Mark the clusters of documents that matched an index: `hits` holds, per such document
    /// (ascending), the `(index, record)` ordinals it matched; `id` names a record.
    pub fn mark_indexed(
        &mut self,
        hits: &[(u32, Vec<(u32, u64)>)],
        id: impl Fn(u32, u64) -> String,
    ) {
        let mut per_root: std::collections::BTreeMap<u32, Vec<(u32, u64)>> = Default::default();
        for (doc, found) in hits {
            if let Some(&root) = self.rep.get(*doc as usize) {
                per_root.entry(root).or_default().extend(found);
            }
        }
        for (root, mut found) in per_root {
            found.sort_unstable();
            found.dedup();
            found.truncate(MAX_DUP_OF);
            let ids = found.into_iter().map(|(i, r)| id(i, r)).collect();
            self.indexed.insert(root, ids);
        }
    }

    /// Documents in clusters that duplicate an index.
    pub fn indexed_documents(&self) -> u64 {
        self.indexed
            .keys()
            .map(|&r| u64::from(self.root_size[r as usize]))
            .sum()
    }

    /// Number of clusters with two documents or more.
    pub fn duplicate_clusters(&self) -> u64 {
        self.root_size.iter().filter(|&&s| s >= 2).count() as u64
    }

    /// Number of documents removed: those that are not their cluster's representative, and
    /// every document of a cluster that duplicates an index.
    pub fn removed(&self) -> u64 {
        (0..self.rep.len()).filter(|&i| !self.keep(i)).count() as u64
    }
}

/// Band keys of documents, kept in memory until a budget is reached, then spilled as sorted runs
/// (one file per band per spill) in `dir`.
#[derive(Debug)]
pub struct BandStore {
    bands: usize,
    /// Per band, the key of each buffered document (`u64::MAX` where a document has none, which
    /// `skip` marks).
    keys: Vec<Vec<u64>>,
    /// Document ids of buffered documents when they are not dense (`first + i`).
    docs: Option<Vec<u64>>,
    skip: Vec<bool>,
    first: u64,
    total: u64,
    budget_docs: Option<usize>,
    dir: Option<PathBuf>,
    prefix: String,
    runs: Vec<Vec<PathBuf>>,
}

impl BandStore {
    /// A store for `bands` keys per document. With `budget_docs`, buffered documents beyond it
    /// are spilled to `dir` under names starting with `prefix`.
    pub fn new(
        bands: usize,
        budget_docs: Option<usize>,
        dir: Option<PathBuf>,
        prefix: &str,
        explicit_ids: bool,
    ) -> Self {
        BandStore {
            bands,
            keys: vec![Vec::new(); bands],
            docs: explicit_ids.then(Vec::new),
            skip: Vec::new(),
            first: 0,
            total: 0,
            budget_docs,
            dir,
            prefix: prefix.to_string(),
            runs: vec![Vec::new(); bands],
        }
    }

    /// Documents pushed so far.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether no document was pushed.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Spill files written so far.
    pub fn runs(&self) -> usize {
        self.runs.iter().map(Vec::len).sum()
    }

    /// Add the next document: its band keys, or `None` when it has no shingle (it then never
    /// joins a cluster). `id` is used only by stores with explicit ids.
    pub fn push(&mut self, id: u64, keys: Option<&[u64]>) -> Result<()> {
        match keys {
            Some(k) => {
                for (band, &key) in self.keys.iter_mut().zip(k) {
                    band.push(key);
                }
            }
            None => {
                for band in &mut self.keys {
                    band.push(u64::MAX);
                }
            }
        }
        self.skip.push(keys.is_none());
        if let Some(d) = &mut self.docs {
            d.push(id);
        }
        self.total += 1;
        if self.budget_docs.is_some_and(|b| self.skip.len() >= b) {
            self.spill()?;
        }
        Ok(())
    }

    fn doc_id(&self, i: usize) -> u64 {
        match &self.docs {
            Some(d) => d[i],
            None => self.first + i as u64,
        }
    }

    fn sorted_band(&self, band: &[u64]) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = band
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.skip[*i])
            .map(|(i, &k)| (k, self.doc_id(i)))
            .collect();
        v.par_sort_unstable();
        v
    }

    /// Write the buffered documents as one sorted run per band.
    pub fn spill(&mut self) -> Result<()> {
        if self.skip.is_empty() {
            return Ok(());
        }
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        for band in 0..self.bands {
            let keys = std::mem::take(&mut self.keys[band]);
            let run = self.sorted_band(&keys);
            drop(keys);
            let path = dir.join(format!("b{band:03}")).join(format!(
                "{}-{:04}.sig",
                self.prefix,
                self.runs[band].len()
            ));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io(parent.display().to_string(), e))?;
            }
            write_records(&path, Kind::Signatures, &run)?;
            self.runs[band].push(path);
        }
        self.first = self.total;
        self.skip.clear();
        if let Some(d) = &mut self.docs {
            d.clear();
        }
        Ok(())
    }

    /// Call `group` with the documents (ascending) of each band key shared by two or more
    /// documents, band by band. Buffered keys of a band are freed once it is done.
    pub fn for_each_group(
        &mut self,
        mut group: impl FnMut(usize, &[u64]) -> Result<()>,
    ) -> Result<()> {
        for band in 0..self.bands {
            let keys = std::mem::take(&mut self.keys[band]);
            let mem = self.sorted_band(&keys);
            drop(keys);
            let files = std::mem::take(&mut self.runs[band]);
            merge_groups(&files, mem, None, |docs| group(band, docs))?;
        }
        Ok(())
    }
}

/// Which slice of the 64-bit key space a task handles: part `index` of `parts`.
#[derive(Debug, Clone, Copy)]
pub struct KeyRange {
    /// This part.
    pub index: u64,
    /// Number of parts.
    pub parts: u64,
}

impl KeyRange {
    fn contains(&self, key: u64) -> bool {
        ((u128::from(key) * u128::from(self.parts)) >> 64) as u64 == self.index
    }
}

enum Source {
    File(Box<RecordReader>),
    Mem(std::vec::IntoIter<(u64, u64)>),
}

impl Source {
    fn next(&mut self, range: Option<KeyRange>) -> Result<Option<(u64, u64)>> {
        loop {
            let r = match self {
                Source::File(f) => f.next_record()?,
                Source::Mem(it) => it.next(),
            };
            match (r, range) {
                (Some((k, _)), Some(range)) if !range.contains(k) => continue,
                _ => return Ok(r),
            }
        }
    }
}

/// K-way merge of sorted runs (files, plus one in memory), calling `group` for each key shared
/// by two or more documents with the documents in ascending order. Every file is read to the end
/// (and so checksum-verified) even when `range` keeps only part of it.
pub fn merge_groups(
    files: &[PathBuf],
    mem: Vec<(u64, u64)>,
    range: Option<KeyRange>,
    mut group: impl FnMut(&[u64]) -> Result<()>,
) -> Result<()> {
    let mut sources: Vec<Source> = Vec::with_capacity(files.len() + 1);
    for f in files {
        sources.push(Source::File(Box::new(RecordReader::open(
            f,
            Kind::Signatures,
        )?)));
    }
    sources.push(Source::Mem(mem.into_iter()));
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (i, s) in sources.iter_mut().enumerate() {
        if let Some(r) = s.next(range)? {
            heap.push(Reverse((r, i)));
        }
    }
    let mut current: Option<u64> = None;
    let mut members: Vec<u64> = Vec::new();
    while let Some(Reverse(((key, doc), i))) = heap.pop() {
        if current != Some(key) {
            if members.len() >= 2 {
                group(&members)?;
            }
            members.clear();
            current = Some(key);
        }
        if members.last() != Some(&doc) {
            members.push(doc);
        }
        if let Some(r) = sources[i].next(range)? {
            heap.push(Reverse((r, i)));
        }
    }
    if members.len() >= 2 {
        group(&members)?;
    }
    // Drain files the range made us stop early on (none: `next` reads to the end), and verify
    // the footers of files that ended exactly at their last record.
    for s in &mut sources {
        while s.next(range)?.is_some() {}
    }
    Ok(())
}

/// Files directly inside `dir` with the given extension, sorted by name.
pub fn list_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir.display().to_string(), e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir.display().to_string(), e))?;
        let p = entry.path();
        if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_find_keeps_the_best_document() {
        let mut uf = UnionFind::new(5, None).unwrap();
        uf.union(3, 4);
        uf.union(4, 1);
        let c = uf.finish();
        assert_eq!(
            (c.rep(3), c.size(3), c.keep(1), c.keep(4)),
            (1, 3, true, false)
        );
        let mut uf = UnionFind::new(5, Some(vec![0.0, 5.0, 0.0, 1.0, 1.0])).unwrap();
        uf.union(1, 3);
        uf.union(4, 1);
        let c = uf.finish();
        // Priority 1.0 beats 5.0; among equal priorities the earlier document wins.
        assert_eq!(c.rep(1), 3);
        assert_eq!((c.removed(), c.duplicate_clusters()), (2, 1));
    }

    #[test]
    fn spilled_and_in_memory_groups_agree() {
        let dir = tempfile::tempdir().unwrap();
        let docs: Vec<[u64; 2]> = (0..100u64).map(|i| [i % 7, i % 13]).collect();
        let collect = |budget: Option<usize>| {
            let mut store = BandStore::new(
                2,
                budget,
                Some(dir.path().join(format!("{budget:?}"))),
                "r",
                false,
            );
            for (i, d) in docs.iter().enumerate() {
                let keys = (i % 10 != 9).then_some(&d[..]);
                store.push(i as u64, keys).unwrap();
            }
            let mut groups = Vec::new();
            store
                .for_each_group(|band, g| {
                    groups.push((band, g.to_vec()));
                    Ok(())
                })
                .unwrap();
            (groups, store.runs())
        };
        let (mem, runs0) = collect(None);
        let (spilled, _) = collect(Some(16));
        assert_eq!(runs0, 0);
        assert_eq!(mem, spilled);
        // Documents without keys never appear.
        assert!(mem.iter().all(|(_, g)| g.iter().all(|d| d % 10 != 9)));
        assert_eq!(mem.iter().filter(|(b, _)| *b == 0).count(), 7);
    }
}
