//! Continued BPE: learning new merges from the state the old tokenizer leaves a corpus in.
//!
//! Every distinct word is segmented once by the old model; from then on the learner keeps, for
//! each adjacent pair of tokens, its count (weighted by word frequency) and the words it occurs
//! in, plus a max-heap of candidate pairs. Applying a merge touches only the words that hold the
//! pair, so the cost of a merge is the size of those words, not of the corpus. Heap entries are
//! refreshed lazily: a popped entry whose count is stale is pushed back with the current count.
//!
//! A pair is chosen when it has the highest count, ties broken by the two tokens' strings in
//! byte order (then ids), so the result does not depend on hash order or thread count. A pair is
//! skipped when its concatenation is already a token (old or new), when either side is a byte
//! fallback `<0xXX>` or unknown token, or when the new token would be unreachable: encoding its
//! own string with the old merges and the new ones learned so far must end as exactly this pair.
//!
//! Target selection: the learner may also hold reference words (base-language text, weight in
//! `reference` only). Their pairs are counted and merged like the others, so each pair's
//! reference count is exact for the current state; a pair is skipped while its rate per word
//! occurrence in the target is below `ratio` times its rate in the reference.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use tokenizers::models::bpe::BPE;

use super::target::{token_allowed, Allowed};
use tokenizers::Model;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

type Pair = (u32, u32);
type FastMap<K, V> = HashMap<K, V, Xxh3DefaultBuilder>;

#[derive(Default)]
struct PairStat {
    count: i64,
    /// Occurrences in the reference words.
    reference: i64,
    /// Words that held the pair at some point (may hold stale or repeated entries).
    words: Vec<u32>,
}

#[derive(PartialEq, Eq)]
struct Candidate {
    count: i64,
    left: Arc<str>,
    right: Arc<str>,
    pair: Pair,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.count
            .cmp(&other.count)
            .then_with(|| other.left.cmp(&self.left))
            .then_with(|| other.right.cmp(&self.right))
            .then_with(|| other.pair.cmp(&self.pair))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Why a forced merge (from `--merge-from`) was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The merged string is already a token.
    Present,
    /// A part is not a token (its own merge was refused, or it is outside the alphabet).
    MissingPart,
    /// The old merges segment the string so that this pair never meets.
    Unreachable,
    /// A part is a byte-fallback or unknown token, or the merge cannot be written in the file's
    /// legacy merge format.
    Unmergeable,
    /// The pair meets in protected text, whose ids must not change.
    Protected,
}

/// Reference words and how much more frequent than there a pair must be in the target.
pub(crate) struct ReferenceWords {
    /// Segmented words with their counts.
    pub words: Vec<(Vec<u32>, u64)>,
    /// Word occurrences of the whole reference (words left out because no new merge can fire
    /// on them included).
    pub total: u64,
    /// Target rate / reference rate a pair needs.
    pub ratio: f64,
}

/// The learner's state.
pub(crate) struct Learner<'m> {
    model: &'m BPE,
    words: Vec<Vec<u32>>,
    counts: Vec<i64>,
    /// Reference weight of each word (0 for target words).
    reference_counts: Vec<i64>,
    /// Target and reference word occurrences, and the ratio; `None` without a reference.
    reference: Option<(f64, f64, f64)>,
    pairs: FastMap<Pair, PairStat>,
    heap: BinaryHeap<Candidate>,
    strings: Vec<Option<Arc<str>>>,
    vocab: HashMap<String, u32>,
    mergeable: Vec<bool>,
    no_space: bool,
    next_id: u32,
    /// New merges as (left, right, result), in rank order.
    merges: Vec<(u32, u32, u32)>,
    ranks: FastMap<Pair, u32>,
    /// Pairs skipped during learning because their token would be unreachable.
    pub unreachable_skipped: u64,
    /// Pairs skipped during learning because they meet in protected text.
    pub protected_skipped: u64,
    /// Pairs skipped during learning because they are too frequent in the reference.
    pub reference_skipped: u64,
    /// Pairs skipped during learning because their token is outside the target (target
    /// selection's [`Allowed`] rule).
    pub outside_skipped: u64,
    /// Only merges whose token the rule allows.
    allowed: Option<(super::file::ModelKind, Allowed)>,
    protected_pairs: std::collections::HashSet<Pair, Xxh3DefaultBuilder>,
    protected_words: std::collections::HashSet<String, Xxh3DefaultBuilder>,
}

impl<'m> Learner<'m> {
    /// `model` is the segmentation model (old merges, plus any added characters); `vocab` its
    /// vocabulary; `words` the segmented words with their counts.
    pub fn new(
        model: &'m BPE,
        vocab: HashMap<String, u32>,
        next_id: u32,
        no_space: bool,
        words: Vec<(Vec<u32>, u64)>,
        reference: Option<ReferenceWords>,
    ) -> Self {
        let size = next_id as usize;
        let mut strings: Vec<Option<Arc<str>>> = vec![None; size];
        let mut mergeable = vec![false; size];
        let unk = model.get_unk_token().clone();
        for (s, &id) in &vocab {
            let i = id as usize;
            if i < size {
                strings[i] = Some(Arc::from(s.as_str()));
                let byte_token =
                    model.byte_fallback && s.len() == 6 && s.starts_with("<0x") && s.ends_with('>');
                mergeable[i] = !byte_token && unk.as_deref() != Some(s.as_str());
            }
        }
        let mut learner = Learner {
            model,
            words: Vec::with_capacity(words.len()),
            counts: Vec::with_capacity(words.len()),
            reference_counts: Vec::with_capacity(words.len()),
            reference: None,
            pairs: FastMap::default(),
            heap: BinaryHeap::new(),
            strings,
            vocab,
            mergeable,
            no_space,
            next_id,
            merges: Vec::new(),
            ranks: FastMap::default(),
            unreachable_skipped: 0,
            protected_skipped: 0,
            reference_skipped: 0,
            outside_skipped: 0,
            allowed: None,
            protected_pairs: Default::default(),
            protected_words: Default::default(),
        };
        let target_total: u64 = words.iter().map(|(_, c)| c).sum();
        let (reference_words, ratio, reference_total) = match reference {
            Some(r) => (r.words, Some(r.ratio), r.total),
            None => (Vec::new(), None, 0),
        };
        if let Some(ratio) = ratio.filter(|_| reference_total > 0) {
            learner.reference = Some((target_total as f64, reference_total as f64, ratio));
        }
        let all = words
            .into_iter()
            .map(|(ids, c)| (ids, c, 0))
            .chain(reference_words.into_iter().map(|(ids, c)| (ids, 0, c)));
        for (w, (ids, count, reference)) in all.enumerate() {
            for p in ids.windows(2) {
                let stat = learner.pairs.entry((p[0], p[1])).or_default();
                stat.count += count as i64;
                stat.reference += reference as i64;
                if stat.words.last() != Some(&(w as u32)) {
                    stat.words.push(w as u32);
                }
            }
            learner.words.push(ids);
            learner.counts.push(count as i64);
            learner.reference_counts.push(reference as i64);
        }
        let pairs: Vec<(Pair, i64)> = learner.pairs.iter().map(|(p, s)| (*p, s.count)).collect();
        for (p, count) in pairs {
            learner.push(p, count);
        }
        learner
    }

    /// Never merge a pair that meets in these old segmentations of protected words, so that
    /// protected text keeps its ids: a new merge can only fire where its pair meets, and while
    /// none fires the protected words stay in their old state. With `ignore_merges`, a new
    /// token equal to a whole protected word would also change it, so those are refused too.
    pub fn protect<'w>(&mut self, words: impl IntoIterator<Item = (&'w str, &'w [u32])>) {
        for (w, ids) in words {
            for p in ids.windows(2) {
                self.protected_pairs.insert((p[0], p[1]));
            }
            if self.model.ignore_merges {
                self.protected_words.insert(w.to_string());
            }
        }
    }

    /// Learn only merges whose token `rule` allows.
    pub fn allow_only(&mut self, kind: super::file::ModelKind, rule: Allowed) {
        self.allowed = Some((kind, rule));
    }

    fn string(&self, id: u32) -> Arc<str> {
        self.strings
            .get(id as usize)
            .and_then(|s| s.clone())
            .unwrap_or_else(|| Arc::from(""))
    }

    fn is_mergeable(&self, id: u32) -> bool {
        self.mergeable.get(id as usize).copied().unwrap_or(false)
            && !(self.no_space && self.string(id).contains(' '))
    }

    fn push(&mut self, pair: Pair, count: i64) {
        if count > 0 && self.is_mergeable(pair.0) && self.is_mergeable(pair.1) {
            self.heap.push(Candidate {
                count,
                left: self.string(pair.0),
                right: self.string(pair.1),
                pair,
            });
        }
    }

    /// The id of a token string, old or new.
    pub fn id_of(&self, s: &str) -> Option<u32> {
        self.vocab.get(s).copied()
    }

    /// The current segmentation of every word from index `start` on (reference words follow
    /// the target words).
    pub fn words_from(&self, start: usize) -> &[Vec<u32>] {
        self.words.get(start..).unwrap_or(&[])
    }

    /// New merges as (left, right, result) ids, in rank order.
    pub fn merges(&self) -> &[(u32, u32, u32)] {
        &self.merges
    }

    /// The string of a token id.
    pub fn token(&self, id: u32) -> String {
        self.string(id).to_string()
    }

    /// Ids of `s` under the old merges followed by the new ones learned so far (lowest rank
    /// first, leftmost first, as `tokenizers` applies merges).
    pub fn segment(&self, s: &str) -> Vec<u32> {
        let mut ids: Vec<u32> = match self.model.tokenize(s) {
            Ok(tokens) => tokens.into_iter().map(|t| t.id).collect(),
            Err(_) => return Vec::new(),
        };
        loop {
            let best = ids
                .windows(2)
                .enumerate()
                .filter_map(|(i, p)| self.ranks.get(&(p[0], p[1])).map(|&r| (r, i)))
                .min();
            let Some((rank, i)) = best else { break };
            ids[i] = self.merges[rank as usize].2;
            ids.remove(i + 1);
        }
        ids
    }

    /// Whether merging `pair` makes a token whose own string encodes to it.
    fn reachable(&self, pair: Pair) -> bool {
        if self.model.ignore_merges {
            // A pre-token equal to a vocab string is looked up whole.
            return true;
        }
        let s = format!("{}{}", self.string(pair.0), self.string(pair.1));
        self.segment(&s) == [pair.0, pair.1]
    }

    /// Check whether `pair` may be added as a merge, and why not.
    pub fn check(&self, pair: Pair) -> Result<(), Refusal> {
        if !self.is_mergeable(pair.0) || !self.is_mergeable(pair.1) {
            return Err(Refusal::Unmergeable);
        }
        let s = format!("{}{}", self.string(pair.0), self.string(pair.1));
        if self.vocab.contains_key(&s) {
            return Err(Refusal::Present);
        }
        if self.protected_pairs.contains(&pair) || self.protected_words.contains(&s) {
            return Err(Refusal::Protected);
        }
        if !self.reachable(pair) {
            return Err(Refusal::Unreachable);
        }
        Ok(())
    }

    /// Add the merge `(left, right)` by strings (for `--merge-from`).
    pub fn force(&mut self, left: &str, right: &str) -> Result<u32, Refusal> {
        if self.vocab.contains_key(&format!("{left}{right}")) {
            return Err(Refusal::Present);
        }
        let (Some(a), Some(b)) = (self.id_of(left), self.id_of(right)) else {
            return Err(Refusal::MissingPart);
        };
        self.check((a, b))?;
        Ok(self.apply((a, b)))
    }

    /// Learn up to `budget` merges with a count of at least `min_frequency`; returns how many.
    pub fn learn(&mut self, budget: usize, min_frequency: u64) -> usize {
        let mut added = 0;
        while added < budget {
            // An interrupt stops learning; the caller turns it into an error.
            if added % 64 == 0 && crate::interrupt::received().is_some() {
                break;
            }
            let Some(top) = self.heap.pop() else { break };
            let current = self.pairs.get(&top.pair).map_or(0, |s| s.count);
            if current != top.count {
                self.push(top.pair, current);
                continue;
            }
            if (current as u64) < min_frequency.max(1) {
                break;
            }
            if let Some((target_total, reference_total, ratio)) = self.reference {
                let reference = self.pairs.get(&top.pair).map_or(0, |s| s.reference);
                // target rate < ratio × reference rate, without dividing.
                if (current as f64) * reference_total < ratio * (reference as f64) * target_total {
                    self.reference_skipped += 1;
                    continue;
                }
            }
            if let Some((kind, rule)) = &self.allowed {
                let s = format!("{}{}", self.string(top.pair.0), self.string(top.pair.1));
                if !token_allowed(*kind, &s, rule) {
                    self.outside_skipped += 1;
                    continue;
                }
            }
            match self.check(top.pair) {
                Ok(()) => {
                    self.apply(top.pair);
                    added += 1;
                }
                Err(Refusal::Unreachable) => self.unreachable_skipped += 1,
                Err(Refusal::Protected) => self.protected_skipped += 1,
                Err(_) => {}
            }
        }
        added
    }

    /// Append the merge `pair` with the next id and update the words that hold it.
    fn apply(&mut self, pair: Pair) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let s: Arc<str> = Arc::from(format!("{}{}", self.string(pair.0), self.string(pair.1)));
        self.vocab.insert(s.to_string(), id);
        self.strings.resize(self.next_id as usize, None);
        self.mergeable.resize(self.next_id as usize, false);
        self.strings[id as usize] = Some(s);
        self.mergeable[id as usize] = true;
        self.ranks.insert(pair, self.merges.len() as u32);
        self.merges.push((pair.0, pair.1, id));

        let mut words = self
            .pairs
            .get_mut(&pair)
            .map(|s| std::mem::take(&mut s.words))
            .unwrap_or_default();
        words.sort_unstable();
        words.dedup();
        let mut delta: FastMap<Pair, (i64, i64)> = FastMap::default();
        let mut grown: Vec<(Pair, i64)> = Vec::new();
        for w in words {
            let word = &self.words[w as usize];
            if !word.windows(2).any(|p| (p[0], p[1]) == pair) {
                continue;
            }
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && (word[i], word[i + 1]) == pair {
                    merged.push(id);
                    i += 2;
                } else {
                    merged.push(word[i]);
                    i += 1;
                }
            }
            delta.clear();
            for p in word.windows(2) {
                delta.entry((p[0], p[1])).or_default().0 += 1;
            }
            for p in merged.windows(2) {
                delta.entry((p[0], p[1])).or_default().1 += 1;
            }
            let count = self.counts[w as usize];
            let reference = self.reference_counts[w as usize];
            for (&p, &(before, after)) in &delta {
                if before == after {
                    continue;
                }
                let stat = self.pairs.entry(p).or_default();
                stat.count += (after - before) * count;
                stat.reference += (after - before) * reference;
                if before == 0 {
                    stat.words.push(w);
                }
                if after > before {
                    grown.push((p, 0));
                }
            }
            self.words[w as usize] = merged;
        }
        grown.sort_unstable();
        grown.dedup();
        for (p, _) in grown {
            let count = self.pairs.get(&p).map_or(0, |s| s.count);
            self.push(p, count);
        }
        self.pairs.remove(&pair);
        id
    }
}
