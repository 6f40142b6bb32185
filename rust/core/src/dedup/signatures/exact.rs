//! Exact dedup in two stages: [`ExactSignatureWriter`] (stage 1, one task) and
//! [`ExactKeepTable`] (stage 2, every task's files).

use rayon::prelude::*;

use super::format::{
    bad, be_u128, check_task, check_tasks, decide_runs, exact_record, le_u32, le_u64, low,
    parse_exact, recorded, same_len, show_mode, start_file, Arrivals, ExactHeader, Layout,
    EXACT_MAGIC, EXACT_VERSION, HASH,
};
use crate::dedup::{ExactOptions, Keep};
use crate::options::{OptionError, Options};
use crate::pipeline::thread_pool;
use crate::text::{hash_text, Hash128, Normalize};
use crate::{Error, Result};

/// Stage 1 of exact dedup for one task: the hash (and score) of each document, by source file.
#[derive(Debug)]
pub struct ExactSignatureWriter {
    normalize: Normalize,
    keep: Keep,
    threads: usize,
    arrivals: Arrivals,
    counts: Vec<u64>,
    hashes: Vec<Hash128>,
    /// Present once a document came with a score; `+inf` for those that came without.
    scores: Option<Vec<f64>>,
}

impl ExactSignatureWriter {
    /// A writer hashing with `options.normalize` on `threads` threads (0: one per core).
    /// [`ExactOptions::key`] is refused: signature files hash the text.
    pub fn new(options: &ExactOptions, threads: usize) -> Result<Self> {
        options.validate()?;
        if options.key.is_some() {
            return Err(OptionError::new(
                "key",
                "is not supported by the signature files, which hash the text",
            )
            .into());
        }
        if !options.against.is_empty() {
            return Err(OptionError::new(
                "against",
                "is for stage 2 of the two-stage exact dedup (ExactDedupFilter): the \
                 signatures only hash",
            )
            .into());
        }
        Ok(ExactSignatureWriter {
            normalize: options.normalize,
            keep: options.keep.clone(),
            threads,
            arrivals: Arrivals::default(),
            counts: Vec::new(),
            hashes: Vec::new(),
            scores: None,
        })
    }

    /// Add documents: `paths[i]` is the source file of `texts[i]`; the documents of a file
    /// must come together, in file order. Hashing runs in parallel. With a keep policy that
    /// scores documents ([`ExactOptions::keep`]) each gets its score; `values` are its field's
    /// (`max:FIELD`, `min:FIELD`; `None` where missing).
    pub fn add(
        &mut self,
        paths: &[&str],
        texts: &[&str],
        values: Option<&[Option<f64>]>,
    ) -> Result<()> {
        if !self.keep.scores() {
            return self.push(paths, texts, None);
        }
        let scores = self.keep.scores_of(texts.iter().copied(), values)?;
        self.add_scored(paths, texts, &scores)
    }

    /// [`Self::add`] with a score per document (smaller wins a cluster; not NaN).
    pub fn add_scored(&mut self, paths: &[&str], texts: &[&str], scores: &[f64]) -> Result<()> {
        same_len(paths.len(), scores.len(), "scores")?;
        if let Some(i) = scores.iter().position(|s| s.is_nan()) {
            return Err(Error::Config(format!(
                "{}: the score of a document is NaN",
                paths[i]
            )));
        }
        self.push(paths, texts, Some(scores))
    }

    fn push(&mut self, paths: &[&str], texts: &[&str], scores: Option<&[f64]>) -> Result<()> {
        same_len(paths.len(), texts.len(), "texts")?;
        for path in paths {
            let f = self.arrivals.file(path)?;
            if f == self.counts.len() {
                self.counts.push(0);
            }
            self.counts[f] += 1;
        }
        let pool = thread_pool(self.threads)?;
        let normalize = self.normalize;
        let hashes: Vec<Hash128> = pool.install(|| {
            texts
                .par_iter()
                .with_min_len(256)
                .map(|t| hash_text(t, normalize))
                .collect()
        });
        let before = self.hashes.len();
        self.hashes.extend(hashes);
        match (scores, &mut self.scores) {
            (Some(s), Some(all)) => all.extend_from_slice(s),
            (Some(s), None) => {
                let mut all = vec![f64::INFINITY; before];
                all.extend_from_slice(s);
                self.scores = Some(all);
            }
            (None, Some(all)) => all.resize(self.hashes.len(), f64::INFINITY),
            (None, None) => {}
        }
        Ok(())
    }

    /// Documents added.
    pub fn documents(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// Source files met.
    pub fn files(&self) -> usize {
        self.counts.len()
    }

    /// The signature file of task `rank` of `world_size` (also when it had no documents).
    pub fn to_bytes(&self, rank: usize, world_size: usize) -> Result<Vec<u8>> {
        check_task(rank, world_size)?;
        let header = ExactHeader {
            rank,
            world_size,
            normalize: self.normalize,
            hash: HASH.into(),
            files: self.arrivals.names.clone(),
            counts: self.counts.clone(),
            records: self.documents(),
            score: self.scores.is_some(),
        };
        let mut out = start_file(EXACT_MAGIC, EXACT_VERSION, &header)?;
        out.reserve(self.hashes.len() * exact_record(header.score));
        let mut k = 0;
        for (f, &count) in self.counts.iter().enumerate() {
            for i in 0..count {
                out.extend_from_slice(&self.hashes[k].to_be_bytes());
                out.extend_from_slice(&(f as u32).to_le_bytes());
                out.extend_from_slice(&i.to_le_bytes());
                if let Some(s) = &self.scores {
                    out.extend_from_slice(&s[k].to_le_bytes());
                }
                k += 1;
            }
        }
        Ok(out)
    }
}
/// Stage 2 of exact dedup: which documents of the whole corpus to keep, from the signature
/// files of every task of stage 1; [`Self::keep`] answers for documents as stage 2 meets them.
#[derive(Debug)]
pub struct ExactKeepTable {
    normalize: Normalize,
    threads: usize,
    layout: Layout,
    keep: Vec<bool>,
    check: Vec<u64>,
    duplicates: u64,
    /// Per file: documents met so far by this task.
    seen: Vec<usize>,
    /// Exact indexes of what was already seen ([`ExactKeepTable::against`]).
    against: Vec<crate::index::Index>,
    annotate: bool,
    /// For each document of the last [`ExactKeepTable::keep`] call, the ids of the indexed
    /// records it duplicates (documents kept within the corpus only).
    dup_of: Vec<Option<Vec<String>>>,
}

impl ExactKeepTable {
    /// Load the signature files `(name, contents)` of every task of one stage-1 run.
    /// `normalize`: the mode stage 2 expects (`None`: the one recorded). Errors: a damaged
    /// file ([`Error::Intermediate`]), files of different runs, a missing task, or another
    /// normalization ([`Error::Config`]).
    pub fn load<B: AsRef<[u8]>>(
        files: &[(String, B)],
        normalize: Option<Normalize>,
        threads: usize,
    ) -> Result<Self> {
        let parsed = files
            .iter()
            .map(|(name, data)| Ok((name.as_str(), parse_exact(name, data.as_ref())?)))
            .collect::<Result<Vec<_>>>()?;
        let tasks: Vec<_> = parsed
            .iter()
            .map(|(n, (h, _))| (*n, h.rank, h.world_size))
            .collect();
        check_tasks(&tasks, "signature")?;
        let modes: Vec<_> = parsed.iter().map(|(n, (h, _))| (*n, h.normalize)).collect();
        let mode = recorded(&modes, "normalize", normalize, show_mode)?;
        let per_task: Vec<_> = parsed
            .iter()
            .map(|(n, (h, _))| (*n, h.files.as_slice(), h.counts.as_slice()))
            .collect();
        let layout = Layout::new(&per_task)?;

        let total = layout.total;
        let mut check = vec![0u64; total];
        let mut sorted: Vec<(u64, u64, usize)> = Vec::with_capacity(total);
        let scored = parsed.iter().any(|(_, (h, _))| h.score);
        let mut scores = scored.then(|| vec![f64::INFINITY; total]);
        for (name, (h, body)) in &parsed {
            let mut records = body.chunks_exact(exact_record(h.score));
            let mut k = 0usize;
            for (f, path) in h.files.iter().enumerate() {
                let g = layout.id(path)?;
                let start = layout.starts[g];
                for i in 0..layout.records[g] {
                    let Some(r) = records.next() else {
                        return Err(bad(name, "truncated"));
                    };
                    let (file, index) = (le_u32(&r[16..]), le_u64(&r[20..]));
                    if file as usize != f || index != i as u64 {
                        return Err(bad(
                            name,
                            format!(
                                "record {k} is document {index} of file {file}, expected \
                                 document {i} of file {f}: not written by tamis?"
                            ),
                        ));
                    }
                    let hash = be_u128(r);
                    let pos = start + i;
                    check[pos] = low(hash);
                    sorted.push(((hash >> 64) as u64, low(hash), pos));
                    if let (true, Some(s)) = (h.score, scores.as_mut()) {
                        let score = f64::from_bits(le_u64(&r[28..]));
                        if score.is_nan() {
                            return Err(bad(name, format!("record {k} has a NaN score")));
                        }
                        s[pos] = score;
                    }
                    k += 1;
                }
            }
        }
        let pool = thread_pool(threads)?;
        pool.install(|| sorted.par_sort_unstable());
        // Within a run positions ascend: the first is the first occurrence in the global order,
        // and a strictly smaller score is needed to beat an earlier document.
        let (keep, distinct) = decide_runs(&sorted, total, |run, keep| {
            let mut best = run[0].2;
            if let Some(s) = &scores {
                for &(_, _, pos) in &run[1..] {
                    if s[pos] < s[best] {
                        best = pos;
                    }
                }
            }
            keep[best] = true;
        });
        drop(sorted);
        Ok(ExactKeepTable {
            normalize: mode,
            threads,
            seen: vec![0; layout.paths.len()],
            layout,
            keep,
            check,
            duplicates: (total - distinct) as u64,
            against: Vec::new(),
            annotate: false,
            dup_of: Vec::new(),
        })
    }

    /// Also remove (or with `annotate`, keep and name in [`ExactKeepTable::dup_of`]) the
    /// documents whose hash is in an exact index of `against`, as `tamis dedup exact --against`
    /// does. The indexes must hash the text under the signatures' normalization.
    pub fn against(&mut self, against: &[std::path::PathBuf], annotate: bool) -> Result<()> {
        let options = ExactOptions {
            normalize: self.normalize,
            against: against.to_vec(),
            annotate,
            ..ExactOptions::default()
        };
        options.validate()?;
        self.against = crate::dedup::open_against(&options)?;
        self.annotate = annotate;
        Ok(())
    }

    /// For each document of the last [`ExactKeepTable::keep`] call: the ids of the indexed
    /// records it duplicates, when it is kept within the corpus and found in an index.
    pub fn dup_of(&self) -> &[Option<Vec<String>>] {
        &self.dup_of
    }

    /// Whether to keep each document: `paths[i]` is the source file of `texts[i]`. Documents
    /// are counted per file as they come, so a task must hand over every document it reads, in
    /// order. Each text is hashed again (in parallel) and checked against its stage-1 record.
    pub fn keep(&mut self, paths: &[&str], texts: &[&str]) -> Result<Vec<bool>> {
        same_len(paths.len(), texts.len(), "texts")?;
        let ids = self.layout.ids_of(paths)?;
        let mut positions = Vec::with_capacity(ids.len());
        for &f in &ids {
            let index = self.seen[f];
            if index >= self.layout.records[f] {
                return Err(Error::Config(format!(
                    "{}: document {index} (counted from 0) seen in stage 2 but stage 1 hashed only \
                     {} from this file: both stages must read the same data with the same reader \
                     and upstream steps",
                    self.layout.paths[f], self.layout.records[f]
                )));
            }
            self.seen[f] += 1;
            positions.push((f, index));
        }
        let pool = thread_pool(self.threads)?;
        let normalize = self.normalize;
        let hashes: Vec<u128> = pool.install(|| {
            texts
                .par_iter()
                .with_min_len(256)
                .map(|t| hash_text(t, normalize))
                .collect()
        });
        let mut out = Vec::with_capacity(positions.len());
        self.dup_of.clear();
        let mut found = Vec::new();
        for (&(f, index), hash) in positions.iter().zip(hashes) {
            let pos = self.layout.starts[f] + index;
            let mut ids = None;
            if self.keep[pos] && !self.against.is_empty() {
                let mut names = Vec::new();
                for idx in &self.against {
                    found.clear();
                    idx.find_exact(hash, &mut found);
                    names.extend(found.iter().map(|&r| idx.record_id(r)));
                }
                ids = (!names.is_empty()).then_some(names);
            }
            let indexed = ids.is_some();
            self.dup_of.push(ids);
            if self.check[pos] != low(hash) {
                return Err(Error::Config(format!(
                    "{}: document {index} (counted from 0) is not the one stage 1 hashed there: \
                     both stages must read the same data with the same reader and upstream steps",
                    self.layout.paths[f]
                )));
            }
            out.push(self.keep[pos] && (self.annotate || !indexed));
        }
        Ok(out)
    }

    /// Forget the documents met so far (a new task, or the same task again).
    pub fn reset(&mut self) {
        self.seen.iter_mut().for_each(|s| *s = 0);
    }

    /// The normalization of the signatures.
    pub fn normalize(&self) -> Normalize {
        self.normalize
    }

    /// Documents in the signatures.
    pub fn documents(&self) -> u64 {
        self.layout.total as u64
    }

    /// Documents that are not kept.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The source files, in the global order.
    pub fn files(&self) -> &[String] {
        &self.layout.paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::signatures::{
        file_name, read_exact_header, LineSignatureWriter, EXACT_SUFFIX,
    };
    use crate::dedup::{exact_keep_mask, LinesOptions};
    use std::collections::HashMap;

    fn exact(normalize: Normalize) -> ExactOptions {
        ExactOptions {
            normalize,
            ..Default::default()
        }
    }

    /// A small corpus: (path, texts), in the command line's order of the paths.
    fn corpus() -> Vec<(&'static str, Vec<&'static str>)> {
        vec![
            ("d/a-b/c.jsonl", vec!["x", "y", " x"]),
            ("d/a.jsonl", vec!["y", "z"]),
            ("d/part/x.jsonl", vec!["z", "w", "x "]),
            ("d/part.jsonl", vec!["w", "v", "v"]),
        ]
    }

    /// Stage 1 over `tasks` tasks, files dealt round-robin in string order (as datatrove).
    fn exact_files(normalize: Normalize, tasks: usize) -> Vec<(String, Vec<u8>)> {
        let mut by_string = corpus();
        by_string.sort_by_key(|(p, _)| *p);
        (0..tasks)
            .map(|rank| {
                let mut w = ExactSignatureWriter::new(&exact(normalize), 2).unwrap();
                for (path, texts) in by_string.iter().skip(rank).step_by(tasks) {
                    w.add(&vec![*path; texts.len()], texts, None).unwrap();
                }
                (
                    file_name(rank, EXACT_SUFFIX),
                    w.to_bytes(rank, tasks).unwrap(),
                )
            })
            .collect()
    }

    fn reference_exact(normalize: Normalize) -> Vec<bool> {
        let texts: Vec<Option<&str>> = corpus()
            .into_iter()
            .flat_map(|(_, t)| t)
            .map(Some)
            .collect();
        exact_keep_mask(&texts, normalize)
    }

    fn keep_all(table: &mut ExactKeepTable) -> Vec<bool> {
        // Stage 2 reads the files in another order, in batches that cut across files.
        let mut out = HashMap::new();
        for (path, texts) in corpus().into_iter().rev() {
            out.insert(path, table.keep(&vec![path; texts.len()], &texts).unwrap());
        }
        corpus().iter().flat_map(|(p, _)| out[p].clone()).collect()
    }

    #[test]
    fn path_order_is_component_by_component() {
        let files = exact_files(Normalize::None, 3);
        let table = ExactKeepTable::load(&files, None, 1).unwrap();
        let expected: Vec<&str> = corpus().iter().map(|(p, _)| *p).collect();
        assert_eq!(table.files(), expected);
        let mut strings = expected.clone();
        strings.sort_unstable();
        assert_ne!(strings, expected); // a string sort would differ
    }

    #[test]
    fn exact_keeps_what_one_process_keeps_for_any_number_of_tasks() {
        for normalize in [Normalize::None, Normalize::Whitespace] {
            let expected = reference_exact(normalize);
            for tasks in [1, 2, 3, 7] {
                let mut table =
                    ExactKeepTable::load(&exact_files(normalize, tasks), None, 2).unwrap();
                assert_eq!(keep_all(&mut table), expected, "{normalize:?} {tasks}");
                assert_eq!(table.documents(), 11);
                let dups = expected.iter().filter(|k| !**k).count() as u64;
                assert_eq!(table.duplicates(), dups);
                // a second pass without reset counts on: documents beyond stage 1's
                let e = table.keep(&["d/a.jsonl"], &["q"]).unwrap_err().to_string();
                assert!(e.contains("stage 1 hashed only 2"), "{e}");
                table.reset();
                assert_eq!(keep_all(&mut table), expected);
            }
        }
    }

    #[test]
    fn scores_pick_the_smallest_then_the_first() {
        let mut w = ExactSignatureWriter::new(&exact(Normalize::None), 1).unwrap();
        w.add(&["a/1"], &["x"], None).unwrap();
        w.add_scored(&["a/1", "a/1", "a/1"], &["x", "x", "y"], &[2.0, 1.0, 5.0])
            .unwrap();
        w.add(&["a/1", "a/1"], &["y", "x"], None).unwrap();
        let bytes = w.to_bytes(0, 2).unwrap();
        let header = read_exact_header("s", &bytes).unwrap();
        assert!(header.score && header.records == 6);
        // Another task, without scores (all +inf), whose file comes first in the order.
        let mut other = ExactSignatureWriter::new(&exact(Normalize::None), 1).unwrap();
        other.add(&["a/0", "a/0"], &["x", "z"], None).unwrap();
        let files = [
            ("00000.sig".to_string(), bytes),
            ("00001.sig".to_string(), other.to_bytes(1, 2).unwrap()),
        ];
        let mut t = ExactKeepTable::load(&files, None, 1).unwrap();
        let keep = t
            .keep(&["a/1"; 6], &["x", "x", "x", "y", "y", "x"])
            .unwrap();
        // x: a/0's +inf, then +inf, 2, 1, +inf → a/1's third; y: 5, +inf → the first of them
        assert_eq!(keep, [false, false, true, true, false, false]);
        assert_eq!(t.keep(&["a/0", "a/0"], &["x", "z"]).unwrap(), [false, true]);
        let e = w.add_scored(&["a/1"], &["x"], &[f64::NAN]).unwrap_err();
        assert!(e.to_string().contains("NaN"));
    }

    #[test]
    fn version_1_files_are_read() {
        // A file as tamis' Python steps wrote it: format 1, no score field.
        let h = |t: &str| hash_text(t, Normalize::None);
        let header = r#"{"rank": 0, "world_size": 1, "normalize": "none", "hash": "xxh3-128", "files": ["p/a"], "counts": [3], "records": 3}"#;
        let mut data = b"TAMISSIG".to_vec();
        data.extend(1u32.to_le_bytes());
        data.extend((header.len() as u32).to_le_bytes());
        data.extend(header.as_bytes());
        for (i, t) in ["x", "y", "x"].iter().enumerate() {
            data.extend(h(t).to_be_bytes());
            data.extend(0u32.to_le_bytes());
            data.extend((i as u64).to_le_bytes());
        }
        let files = [("00000.sig".to_string(), data.clone())];
        let mut t = ExactKeepTable::load(&files, Some(Normalize::None), 1).unwrap();
        assert_eq!(
            t.keep(&["p/a"; 3], &["x", "y", "x"]).unwrap(),
            [true, true, false]
        );
        // the writer's bytes are the same layout, with version 2 and a score flag
        let mut w = ExactSignatureWriter::new(&exact(Normalize::None), 1).unwrap();
        w.add(&["p/a"; 3], &["x", "y", "x"], None).unwrap();
        let new = w.to_bytes(0, 1).unwrap();
        let v2 = read_exact_header("n", &new).unwrap();
        assert!(!v2.score);
        assert_eq!(new[8..12], 2u32.to_le_bytes());
        assert_eq!(new[new.len() - 84..], data[data.len() - 84..]);
        // a record out of place is refused
        let last = data.len() - 8;
        data[last] = 7;
        let e = ExactKeepTable::load(&[("00000.sig".to_string(), data)], None, 1).unwrap_err();
        assert!(matches!(e, Error::Intermediate { .. }), "{e}");
    }

    #[test]
    fn bad_sets_of_files_are_refused() {
        let four = exact_files(Normalize::None, 4);
        let mut three = exact_files(Normalize::None, 3);
        three.push(four[3].clone());
        let e = ExactKeepTable::load(&three, None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("different numbers of tasks [3, 4]"), "{e}");
        let e = ExactKeepTable::load(&four[..3], None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing [3]"), "{e}");
        let e = ExactKeepTable::load(&[four[0].clone(), four[0].clone()], None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("both task 0"), "{e}");
        let e = ExactKeepTable::load::<Vec<u8>>(&[], None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("run stage 1 first"), "{e}");
        let ws = exact_files(Normalize::Whitespace, 2);
        let e = ExactKeepTable::load(&ws, Some(Normalize::None), 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("normalize=whitespace, not normalize=none"),
            "{e}"
        );
        let mixed = [exact_files(Normalize::None, 2)[0].clone(), ws[1].clone()];
        let e = ExactKeepTable::load(&mixed, None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mix normalize"), "{e}");
        // damaged files name the file
        let mut cut = four.clone();
        let n = cut[1].1.len();
        cut[1].1.truncate(n - 3);
        let e = ExactKeepTable::load(&cut, None, 1).unwrap_err();
        assert!(
            matches!(&e, Error::Intermediate { path, .. } if path == "00001.sig"),
            "{e}"
        );
        let mut magic = four.clone();
        magic[2].1[0] = b'X';
        let e = ExactKeepTable::load(&magic, None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("00002.sig: not a tamis signature file"), "{e}");
        let lines = LineSignatureWriter::new(&LinesOptions::default(), 1).unwrap();
        let lines = [("00000.lsig".to_string(), lines.to_bytes(0, 1).unwrap())];
        let e = ExactKeepTable::load(&lines, None, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a tamis signature file"), "{e}");
    }

    #[test]
    fn stage_2_mismatches_fail() {
        let mut t = ExactKeepTable::load(&exact_files(Normalize::None, 2), None, 1).unwrap();
        let e = t
            .keep(&["d/a.jsonl"], &["changed"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("d/a.jsonl: document 0 (counted from 0) is not the one stage 1 hashed"));
        let e = t.keep(&["d/new.jsonl"], &["x"]).unwrap_err().to_string();
        assert!(e.contains("not in the signatures"), "{e}");
        let e = t.keep(&["d/a.jsonl"], &["x", "y"]).unwrap_err().to_string();
        assert!(e.contains("1 paths but 2 texts"), "{e}");
        let mut w = ExactSignatureWriter::new(&exact(Normalize::None), 1).unwrap();
        w.add(&["a", "b"], &["x", "y"], None).unwrap();
        let e = w.add(&["a"], &["z"], None).unwrap_err().to_string();
        assert!(e.contains("documents of a are not contiguous"), "{e}");
        let key = ExactOptions {
            normalize: Normalize::None,
            key: Some("url".into()),
            ..Default::default()
        };
        let e = ExactSignatureWriter::new(&key, 1).unwrap_err().to_string();
        assert!(e.contains("key is not supported"), "{e}");
        assert!(w.to_bytes(2, 2).is_err());
    }
}
