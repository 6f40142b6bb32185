//! `vocab extend`: continued BPE on a `tokenizer.json`, and merging in another tokenizer's
//! merges, with every old id, merge and setting kept.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;
use tokenizers::models::bpe::BPE;
use tokenizers::{Model, ModelWrapper, Tokenizer};

use super::bpe::RankedMerges;
use super::corpus::{count_words, CorpusOptions, CorpusSummary, WordCounts};
use super::file::{MergeFormat, ModelKind, TokenizerFile};
use super::learn::{Learner, ReferenceWords, Refusal};
use super::target::{
    builtin_reference, in_scripts, parse_scripts, script_stats, word_text, Allowed, ScriptStat,
    Target, BUILTIN_REFERENCE,
};
use crate::pipeline::{thread_pool, Progress};
use crate::{Error, Result, TokenizerError};

/// Options of [`extend`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExtendConfig {
    /// Most new tokens to add (characters and merges together); `None` means no limit, which is
    /// allowed only when merging another tokenizer without a corpus.
    pub new_tokens: Option<usize>,
    /// Stop learning when the most frequent pair occurs fewer times than this (default 2: a
    /// pair seen once does not generalize). Characters below it are not added either.
    pub min_frequency: u64,
    /// Byte-fallback models only: characters missing from the vocabulary are added, most
    /// frequent first, while the added and known characters cover less than this share of the
    /// corpus's character occurrences (SentencePiece's `character_coverage`, default 0.9995).
    pub char_coverage: f64,
    /// Report the embedding rows the model needs, rounded up to a multiple of this.
    pub pad_to_multiple_of: Option<u32>,
    /// Old-language text whose ids must not change: merges whose pair meets in its old
    /// segmentation, and characters that occur in it, are not added. Empty: no constraint.
    pub protect: Vec<String>,
    /// Where merges are learned: `Auto` (the new language only) or `All` (every word).
    pub target: Target,
    /// `Auto`: learn only inside words holding these scripts (empty: detect the scripts the
    /// base covers poorly; none found means every word).
    pub scripts: Vec<String>,
    /// `Auto`: base-language text (empty: the built-in English word list).
    pub reference: Vec<String>,
    /// `Auto`: a pair (or, with byte fallback, a character) is learned only where its rate per
    /// word occurrence in the corpus is at least this many times its rate in the reference.
    pub reference_ratio: f64,
    /// How the corpus is read.
    pub corpus: CorpusOptions,
}

impl Default for ExtendConfig {
    fn default() -> Self {
        ExtendConfig {
            new_tokens: None,
            min_frequency: 2,
            char_coverage: 0.9995,
            pad_to_multiple_of: None,
            protect: Vec::new(),
            target: Target::Auto,
            scripts: Vec::new(),
            reference: Vec::new(),
            reference_ratio: DEFAULT_REFERENCE_RATIO,
            corpus: CorpusOptions::default(),
        }
    }
}

/// Default of [`ExtendConfig::reference_ratio`].
pub const DEFAULT_REFERENCE_RATIO: f64 = 50.0;

/// What target selection (`target = auto`) chose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    /// Scripts whose words merges were learned in (empty: every word).
    pub scripts: Vec<String>,
    /// Whether they were given (`scripts`) rather than detected.
    pub scripts_given: bool,
    /// Every script of the corpus: share, base tokens per character, selected or not.
    pub script_stats: Vec<ScriptStat>,
    /// Distinct corpus words merges were learned from, of all distinct words.
    pub words_used: usize,
    /// Word occurrences merges were learned from, of all word occurrences.
    pub occurrences_used: u64,
    /// All word occurrences of the corpus.
    pub occurrences: u64,
    /// The reference: its files, or the built-in list.
    pub reference: String,
    /// Word occurrences of the reference.
    pub reference_occurrences: u64,
    /// The ratio used.
    pub reference_ratio: f64,
    /// Candidate pairs skipped because they are too frequent in the reference.
    pub reference_skipped: u64,
    /// Candidate pairs skipped because their token is outside the target: with scripts, it
    /// holds no character of them (text the base language writes too: ASCII, `’`, `“`);
    /// without, it holds no letter (punctuation, digits, spaces).
    pub outside_skipped: u64,
    /// Characters (byte fallback) not added because they are too frequent in the reference.
    pub characters_skipped: usize,
    /// How the reference's words fare: the share of its word occurrences whose ids are
    /// unchanged, with the most frequent changed words and the merge that changed each.
    pub reference_invariance: WordInvariance,
}

/// Base-language invariance per word occurrence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordInvariance {
    /// Word occurrences.
    pub occurrences: u64,
    /// Occurrences whose ids are unchanged.
    pub unchanged: u64,
    /// `unchanged / occurrences`.
    pub rate: f64,
    /// The most frequent changed words.
    pub examples: Vec<WordChange>,
}

/// One changed base-language word.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordChange {
    /// The word as text.
    pub word: String,
    /// Its occurrences.
    pub occurrences: u64,
    /// The new merge that changed it (`None`: a new character token).
    pub merge: Option<[String; 2]>,
    /// Its tokens before and after.
    pub before: Vec<String>,
    /// Its tokens after.
    pub after: Vec<String>,
}

/// What `--merge-from` did with the other tokenizer's merges.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MergeFromSummary {
    /// The other tokenizer.
    pub file: String,
    /// Its merges.
    pub merges: usize,
    /// Characters of its vocabulary added first (byte-fallback models).
    pub characters_added: usize,
    /// Merges appended.
    pub added: usize,
    /// Merges whose token the base already has.
    pub already_present: usize,
    /// Merges with a part that is not a token of the result (its own merge was not added).
    pub missing_part: usize,
    /// Merges whose token the old merges would never produce from its own string (the old
    /// segmentation never puts these two parts side by side); not added.
    pub unreachable: usize,
    /// Merges with a byte-fallback or unknown part, or a part the file format cannot hold.
    pub unmergeable: usize,
    /// Merges whose pair meets in the protected text.
    pub protected: usize,
    /// The first unreachable tokens, for inspection.
    pub unreachable_examples: Vec<String>,
    /// Merges not looked at because `new_tokens` was reached.
    pub not_considered: usize,
}

/// What [`extend`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtendSummary {
    /// The base tokenizer.
    pub base: String,
    /// Its kind.
    pub kind: ModelKind,
    /// Its merge serialization, kept in the result.
    pub merge_format: MergeFormat,
    /// Whether the base falls back to bytes for unknown characters.
    pub byte_fallback: bool,
    /// First new id: `1 +` the largest id of the base, added tokens included.
    pub first_new_id: u32,
    /// `1 +` the largest id of the result: the embedding rows the model needs at least.
    pub next_id: u32,
    /// `next_id` rounded up to `pad_to_multiple_of`.
    pub embedding_rows: u32,
    /// The multiple used for `embedding_rows`.
    pub pad_to_multiple_of: Option<u32>,
    /// New tokens (characters and merges).
    pub new_tokens: usize,
    /// New single characters (no merge needed: byte-fallback models look characters up).
    pub characters_added: usize,
    /// New merges.
    pub merges_added: usize,
    /// Merges in the base.
    pub base_merges: usize,
    /// Why learning stopped: `new_tokens`, `min_frequency` or `no_candidates`.
    pub stopped_by: String,
    /// Candidate pairs skipped because their token would be unreachable.
    pub unreachable_skipped: u64,
    /// Candidate pairs skipped because they meet in the protected text.
    pub protected_skipped: u64,
    /// Where merges were learned (`auto` or `all`).
    pub target: Target,
    /// What target selection chose (`target = auto` with a corpus).
    pub selection: Option<Selection>,
    /// The protected text read, when one was given.
    pub protected: Option<CorpusSummary>,
    /// Distinct words of the corpus.
    pub distinct_words: usize,
    /// The corpus read, when one was given.
    pub corpus: Option<CorpusSummary>,
    /// What `--merge-from` did.
    pub merge_from: Option<MergeFromSummary>,
    /// The first new tokens, in id order (as vocab strings).
    pub first_tokens: Vec<String>,
}

/// The extended tokenizer.
#[derive(Debug, Clone)]
pub struct Extension {
    /// The new `tokenizer.json` text: the base file with vocab entries and merges appended.
    pub json: String,
    /// The new tokens as (vocab string, id), in id order.
    pub tokens: Vec<(String, u32)>,
    /// What was done.
    pub summary: ExtendSummary,
}

impl Extension {
    /// Write the tokenizer atomically: the file appears complete or not at all.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.json)
    }
}

/// Write `text` to `path` atomically.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let (guard, mut file) = crate::io::AtomicFile::create(path)?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::Io {
            path: path.display().to_string(),
            cause: e,
        })?;
    drop(file);
    guard.commit()
}

/// Characters to add to a byte-fallback model: ranked by frequency (then code point), the
/// smallest set of most frequent characters covering `coverage` of all character occurrences;
/// those of them missing from the vocabulary and seen at least `min_frequency` times.
fn select_chars(
    counts: &WordCounts,
    vocab: &HashMap<String, u32>,
    coverage: f64,
    min_frequency: u64,
) -> Vec<String> {
    let mut freq: HashMap<char, u64> = HashMap::new();
    for (w, c) in counts {
        for ch in w.chars() {
            *freq.entry(ch).or_default() += c;
        }
    }
    let total: u64 = freq.values().sum();
    let mut ranked: Vec<(char, u64)> = freq.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut covered = 0u64;
    let mut out = Vec::new();
    let mut buf = [0u8; 4];
    for (ch, c) in ranked {
        if covered as f64 >= coverage * total as f64 || c < min_frequency {
            break;
        }
        covered += c;
        let s = ch.encode_utf8(&mut buf);
        if !vocab.contains_key(&*s) {
            out.push(s.to_string());
        }
    }
    out
}

/// Extend `base` with new tokens learned from `corpus` (continued BPE) and/or taken from
/// `merge_from`, appended after every existing id and merge. The result is reloaded with
/// `tokenizers` and checked (old ids, merge prefix, new merges, reachability) before it is
/// returned; nothing is written here. `progress` hears about each corpus read.
pub fn extend(
    base: &TokenizerFile,
    corpus: &[String],
    merge_from: Option<&TokenizerFile>,
    cfg: &ExtendConfig,
    progress: &dyn Progress,
) -> Result<Extension> {
    if corpus.is_empty() && merge_from.is_none() {
        return Err(Error::Config(
            "nothing to learn from: give a corpus, a tokenizer to merge from, or both".into(),
        ));
    }
    if !corpus.is_empty() && cfg.new_tokens.is_none() {
        return Err(Error::Config(
            "--new-tokens is required when learning from a corpus".into(),
        ));
    }
    if !(0.0..=1.0).contains(&cfg.char_coverage) {
        return Err(Error::Config(format!(
            "--char-coverage must be between 0 and 1, not {}",
            cfg.char_coverage
        )));
    }
    if cfg.pad_to_multiple_of == Some(0) {
        return Err(Error::Config(
            "--pad-to-multiple-of must be at least 1".into(),
        ));
    }
    if let Some(other) = merge_from {
        if other.kind() != base.kind() {
            return Err(Error::Tokenizer {
                path: other.name().to_string(),
                error: TokenizerError::Incompatible(format!(
                    "its vocabulary is {:?} but {} is {:?}: tokens of one alphabet cannot be merged into the other",
                    other.kind(),
                    base.name(),
                    base.kind()
                )),
            });
        }
    }
    let budget = cfg.new_tokens.unwrap_or(usize::MAX);
    let pool = thread_pool(cfg.corpus.threads)?;

    let (counts, corpus_summary) = if corpus.is_empty() {
        (WordCounts::default(), None)
    } else {
        let (counts, summary) = count_words(
            base.tokenizer(),
            base.kind(),
            corpus,
            &cfg.corpus,
            &pool,
            progress,
        )?;
        if counts.is_empty() {
            return Err(Error::EmptyCorpus(corpus.join(" ")));
        }
        (counts, Some(summary))
    };

    let (protected_counts, protected_summary) = if cfg.protect.is_empty() {
        (WordCounts::default(), None)
    } else {
        let (counts, summary) = count_words(
            base.tokenizer(),
            base.kind(),
            &cfg.protect,
            &cfg.corpus,
            &pool,
            progress,
        )?;
        (counts, Some(summary))
    };
    let protected_chars: HashSet<char> = protected_counts.keys().flat_map(|w| w.chars()).collect();

    // Target selection: the words merges are learned from, and the reference.
    let distinct_words = counts.len();
    let occurrences: u64 = counts.values().sum();
    let auto = cfg.target == Target::Auto && corpus_summary.is_some();
    // Words are segmented by merge rank (`bpe.rs`): the base's (built here for script
    // detection, or later), or with new characters (byte fallback) the spliced model's.
    let base_ranked = (auto || !base.byte_fallback())
        .then(|| RankedMerges::new(base.bpe(), base.merges()))
        .flatten();
    let (counts, mut reference_list, mut selection) = if auto {
        select(
            base,
            base_ranked.as_ref(),
            counts,
            occurrences,
            cfg,
            &pool,
            progress,
        )?
    } else {
        (counts, Some(Vec::new()), None)
    };

    // Byte-fallback models first get the characters they lack: merges can only join tokens,
    // and `<0xXX>` pieces never merge.
    let mut chars: Vec<String> = Vec::new();
    let mut from_other_chars = 0;
    if base.byte_fallback() {
        let mut seen: HashSet<String> = HashSet::new();
        if let Some(other) = merge_from {
            let mut theirs: Vec<(&String, &u32)> = other
                .vocab()
                .iter()
                .filter(|(s, _)| s.chars().count() == 1 && !base.vocab().contains_key(*s))
                .collect();
            theirs.sort_by_key(|(_, id)| **id);
            for (s, _) in theirs {
                if seen.insert(s.clone()) {
                    chars.push(s.clone());
                }
            }
            from_other_chars = chars.len();
        }
        let mut candidates =
            select_chars(&counts, base.vocab(), cfg.char_coverage, cfg.min_frequency);
        if let Some(sel) = selection.as_mut() {
            // Characters are chosen against the whole reference.
            let list = match reference_list.take() {
                Some(list) => list,
                None => read_builtin(base, &pool, sel, |_| true)?,
            };
            let (target, target_total) = char_counts(counts.iter());
            let (reference, reference_total) = char_counts(list.iter().map(|(w, c)| (w, c)));
            reference_list = Some(list);
            let before = candidates.len();
            candidates.retain(|c| {
                let ch = c.chars().next().unwrap_or(' ');
                let t = target.get(&ch).copied().unwrap_or(0) as f64;
                let r = reference.get(&ch).copied().unwrap_or(0) as f64;
                t * reference_total >= cfg.reference_ratio * r * target_total
            });
            sel.characters_skipped = before - candidates.len();
        }
        for c in candidates {
            if seen.insert(c.clone()) {
                chars.push(c);
            }
        }
        let keep = |c: &String| !c.chars().any(|ch| protected_chars.contains(&ch));
        from_other_chars = chars[..from_other_chars].iter().filter(|c| keep(c)).count();
        chars.retain(keep);
        chars.truncate(budget);
        from_other_chars = from_other_chars.min(chars.len());
    }
    let first_new_id = base.next_id();
    let char_entries: Vec<(String, u32)> = chars
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), first_new_id + i as u32))
        .collect();
    let spliced: Option<Tokenizer> = if char_entries.is_empty() {
        None
    } else {
        let json = base.splice(&char_entries, &[])?;
        Some(
            Tokenizer::from_bytes(json.as_bytes()).map_err(|e| Error::Tokenizer {
                path: base.name().to_string(),
                error: TokenizerError::Invalid(e.to_string()),
            })?,
        )
    };
    let seg_model: &BPE = match spliced.as_ref().map(|t| t.get_model()) {
        None => base.bpe(),
        Some(ModelWrapper::BPE(m)) => m,
        Some(_) => {
            return Err(Error::Tokenizer {
                path: base.name().to_string(),
                error: TokenizerError::Invalid("the model is no longer BPE".into()),
            })
        }
    };

    // Segment every distinct word once with the old merges (sorted, so ids do not depend on
    // hash order).
    let ranked = match &spliced {
        None => base_ranked.or_else(|| RankedMerges::new(seg_model, base.merges())),
        Some(_) => RankedMerges::new(seg_model, base.merges()),
    };
    let segment = |mut words: Vec<(String, u64)>| -> Vec<(String, Vec<u32>, u64)> {
        pool.install(|| {
            words.par_sort_unstable();
            words
                .into_par_iter()
                .with_min_len(256)
                .map(|(w, c)| {
                    let ids = match &ranked {
                        Some(r) => r.segment(&w),
                        None => seg_model
                            .tokenize(&w)
                            .map(|t| t.into_iter().map(|t| t.id).collect())
                            .unwrap_or_default(),
                    };
                    (w, ids, c)
                })
                .collect()
        })
    };
    let segmented: Vec<(Vec<u32>, u64)> = segment(counts.into_iter().collect())
        .into_iter()
        .map(|(_, ids, c)| (ids, c))
        .collect();
    let target_words = segmented.len();
    let protected_words = segment(protected_counts.into_iter().collect());
    // A reference word none of whose pairs occurs in the target never changes: learned merges
    // join pairs of the target (a pair of two old tokens is in the target from the start), so
    // none can fire on it, and it adds only to pairs never learned. Most of the built-in
    // reference is such words; they are left out (same merges, less work). Merges forced from
    // another tokenizer need not be target pairs: then every word stays.
    let leave_out = selection.is_some() && merge_from.is_none();
    let target_pairs: HashSet<(u32, u32)> = if leave_out {
        segmented
            .iter()
            .flat_map(|(ids, _)| ids.windows(2).map(|p| (p[0], p[1])))
            .collect()
    } else {
        HashSet::new()
    };
    // Where a word is the concatenation of its tokens' strings (byte-level models, no new
    // characters, a word of byte characters only), a word holding a target pair holds the
    // pair's text: the words without any are left out before they are segmented. With scripts
    // selected the reference is its few non-ASCII words: nothing to gain.
    let texts = leave_out
        && selection.as_ref().is_some_and(|s| s.scripts.is_empty())
        && base.kind() == ModelKind::ByteLevel
        && !base.byte_fallback()
        && char_entries.is_empty()
        && (0..=255u8).all(|b| {
            base.vocab()
                .contains_key(crate::prox::count::byte_char(b).encode_utf8(&mut [0; 4]))
        });
    // The automaton grows with the corpus's distinct pairs; past this many, segmenting every
    // reference word (a few hundred thousand) is the cheaper way, and its memory is bounded.
    const MAX_FILTER_PAIRS: usize = 500_000;
    let matcher = if texts && target_pairs.len() <= MAX_FILTER_PAIRS {
        let patterns: HashSet<String> = target_pairs
            .iter()
            .filter_map(|&(a, b)| Some(seg_model.id_to_token(a)? + &seg_model.id_to_token(b)?))
            .collect();
        Some(
            aho_corasick::AhoCorasick::new(patterns)
                .map_err(|e| Error::Config(format!("reference filter: {e}")))?,
        )
    } else {
        None
    };
    let byte_chars: HashSet<char> = (0..=255u8).map(crate::prox::count::byte_char).collect();
    let wanted = |w: &str| {
        matcher.as_ref().is_none_or(|m| {
            m.is_match(w)
                || !w
                    .chars()
                    .all(|c| c.is_ascii_graphic() || byte_chars.contains(&c))
        })
    };
    let reference_list = match (reference_list, selection.as_mut()) {
        (Some(mut list), _) => {
            if matcher.is_some() {
                list.retain(|(w, _)| wanted(w));
            }
            list
        }
        (None, Some(sel)) => read_builtin(base, &pool, sel, wanted)?,
        (None, None) => Vec::new(),
    };
    let reference_words = segment(reference_list);
    let in_learner: Vec<bool> = if leave_out {
        reference_words
            .iter()
            .map(|(_, ids, _)| ids.windows(2).any(|p| target_pairs.contains(&(p[0], p[1]))))
            .collect()
    } else {
        vec![true; reference_words.len()]
    };
    let reference = selection.as_ref().map(|sel| ReferenceWords {
        words: reference_words
            .iter()
            .zip(&in_learner)
            .filter(|(_, &kept)| kept)
            .map(|((_, ids, c), _)| (ids.clone(), *c))
            .collect(),
        total: sel.reference_occurrences,
        ratio: cfg.reference_ratio,
    });
    let mut vocab = base.vocab().clone();
    vocab.extend(char_entries.iter().cloned());
    let mut learner = Learner::new(
        seg_model,
        vocab,
        first_new_id + char_entries.len() as u32,
        base.merge_format() == MergeFormat::Strings,
        segmented,
        reference,
    );
    if let Some(sel) = &selection {
        let rule = if sel.scripts.is_empty() {
            Allowed::Letters
        } else {
            Allowed::Scripts(parse_scripts(&sel.scripts)?)
        };
        learner.allow_only(base.kind(), rule);
    }
    learner.protect(
        protected_words
            .iter()
            .map(|(w, ids, _)| (w.as_str(), ids.as_slice())),
    );

    let mut added = char_entries.len();
    let merge_from_summary = merge_from.map(|other| {
        let mut s = MergeFromSummary {
            file: other.name().to_string(),
            merges: other.merges().len(),
            characters_added: from_other_chars,
            ..MergeFromSummary::default()
        };
        for (i, (a, b)) in other.merges().iter().enumerate() {
            if added >= budget {
                s.not_considered = other.merges().len() - i;
                break;
            }
            match learner.force(a, b) {
                Ok(_) => {
                    s.added += 1;
                    added += 1;
                }
                Err(Refusal::Present) => s.already_present += 1,
                Err(Refusal::MissingPart) => s.missing_part += 1,
                Err(Refusal::Unmergeable) => s.unmergeable += 1,
                Err(Refusal::Protected) => s.protected += 1,
                Err(Refusal::Unreachable) => {
                    s.unreachable += 1;
                    if s.unreachable_examples.len() < 50 {
                        s.unreachable_examples.push(format!("{a}{b}"));
                    }
                }
            }
        }
        s
    });
    let mut stopped_by = if added >= budget {
        "new_tokens"
    } else {
        "no_candidates"
    };
    if corpus_summary.is_some() && added < budget {
        added += learner.learn(budget - added, cfg.min_frequency);
        crate::interrupt::check()?;
        stopped_by = if added >= budget {
            "new_tokens"
        } else {
            "min_frequency"
        };
    }

    if let Some(sel) = selection.as_mut() {
        sel.reference_skipped = learner.reference_skipped;
        sel.outside_skipped = learner.outside_skipped;
        let mut learned = learner.words_from(target_words).iter();
        let finals: Vec<&[u32]> = reference_words
            .iter()
            .zip(&in_learner)
            .map(|((_, start, _), &kept)| match kept {
                true => learned.next().map_or(start.as_slice(), |w| w.as_slice()),
                false => start.as_slice(),
            })
            .collect();
        sel.reference_invariance = reference_invariance(
            base,
            &learner,
            &reference_words,
            &finals,
            sel.reference_occurrences,
            !char_entries.is_empty(),
            &pool,
        );
    }

    let merges: Vec<(String, String)> = learner
        .merges()
        .iter()
        .map(|&(l, r, _)| (learner.token(l), learner.token(r)))
        .collect();
    let mut tokens = char_entries.clone();
    tokens.extend(
        learner
            .merges()
            .iter()
            .map(|&(_, _, id)| (learner.token(id), id)),
    );
    let json = base.splice(&tokens, &merges)?;
    validate(base, &json, &tokens, &merges, &pool)?;

    let next_id = first_new_id + tokens.len() as u32;
    let embedding_rows = match cfg.pad_to_multiple_of {
        Some(m) => next_id.div_ceil(m) * m,
        None => next_id,
    };
    let summary = ExtendSummary {
        base: base.name().to_string(),
        kind: base.kind(),
        merge_format: base.merge_format(),
        byte_fallback: base.byte_fallback(),
        first_new_id,
        next_id,
        embedding_rows,
        pad_to_multiple_of: cfg.pad_to_multiple_of,
        new_tokens: tokens.len(),
        characters_added: char_entries.len(),
        merges_added: merges.len(),
        base_merges: base.merges().len(),
        stopped_by: stopped_by.to_string(),
        unreachable_skipped: learner.unreachable_skipped,
        protected_skipped: learner.protected_skipped,
        target: cfg.target,
        selection,
        protected: protected_summary,
        distinct_words,
        corpus: corpus_summary,
        merge_from: merge_from_summary,
        first_tokens: tokens.iter().take(50).map(|(s, _)| s.clone()).collect(),
    };
    Ok(Extension {
        json,
        tokens,
        summary,
    })
}

/// The target's words, the reference's words (`None`: the built-in one, read later) and the
/// selection.
type Selected = (WordCounts, Option<Vec<(String, u64)>>, Option<Selection>);

/// Script detection looks at this many of the corpus's most frequent words.
const DETECT_WORDS: usize = 20_000;

/// Target selection: keep the corpus words of the selected scripts (given, or detected as
/// poorly covered by the base), and read the reference files (the built-in reference is read
/// once the target is segmented).
fn select(
    base: &TokenizerFile,
    ranked: Option<&RankedMerges<'_>>,
    counts: WordCounts,
    occurrences: u64,
    cfg: &ExtendConfig,
    pool: &rayon::ThreadPool,
    progress: &dyn Progress,
) -> Result<Selected> {
    let kind = base.kind();
    let given = parse_scripts(&cfg.scripts)?;
    let model = base.bpe();
    let measured: Vec<(String, usize, u64)> = pool.install(|| {
        // The most frequent words tell how well the base covers each script.
        let mut words: Vec<(&String, &u64)> = counts.iter().collect();
        words.sort_unstable_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        words.truncate(DETECT_WORDS);
        words
            .par_iter()
            .with_min_len(256)
            .map(|(w, &c)| {
                let tokens = match ranked {
                    Some(r) => r.segment(w).len(),
                    None => model.tokenize(w).map(|t| t.len()).unwrap_or(0),
                };
                (word_text(kind, w), tokens, c)
            })
            .collect()
    });
    let mut stats = script_stats(&measured);
    let scripts = if given.is_empty() {
        let names: Vec<String> = stats
            .iter()
            .filter(|s| s.selected)
            .map(|s| s.script.clone())
            .collect();
        parse_scripts(&names)?
    } else {
        for s in &mut stats {
            s.selected = given.iter().any(|g| g.full_name() == s.script);
        }
        given.clone()
    };
    let counts: WordCounts = if scripts.is_empty() {
        counts
    } else {
        counts
            .into_iter()
            .filter(|(w, _)| in_scripts(&word_text(kind, w), &scripts))
            .collect()
    };
    if counts.is_empty() {
        return Err(Error::Config(format!(
            "no word of the corpus is written in {}: give other --scripts, or --target all",
            scripts
                .iter()
                .map(|s| s.full_name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let (reference, reference_occurrences, name) = if cfg.reference.is_empty() {
        // Read once the target is segmented, to leave out what cannot change.
        (None, 0, BUILTIN_REFERENCE.to_string())
    } else {
        let (c, _) = count_words(
            base.tokenizer(),
            kind,
            &cfg.reference,
            &cfg.corpus,
            pool,
            progress,
        )?;
        let total: u64 = c.values().sum();
        // An empty reference would silently turn the reference test off.
        if total == 0 {
            return Err(Error::EmptyCorpus(cfg.reference.join(" ")));
        }
        let relevant = |w: &str| scripts.is_empty() || !w.is_ascii();
        let list = c
            .into_iter()
            .filter(|(w, _)| relevant(&word_text(kind, w)))
            .collect();
        (Some(list), total, cfg.reference.join(" "))
    };
    let selection = Selection {
        scripts: scripts.iter().map(|s| s.full_name().to_string()).collect(),
        scripts_given: !given.is_empty(),
        script_stats: stats,
        words_used: counts.len(),
        occurrences_used: counts.values().sum(),
        occurrences,
        reference: name,
        reference_occurrences,
        reference_ratio: cfg.reference_ratio,
        reference_skipped: 0,
        outside_skipped: 0,
        characters_skipped: 0,
        reference_invariance: WordInvariance {
            occurrences: 0,
            unchanged: 0,
            rate: 1.0,
            examples: Vec::new(),
        },
    };
    Ok((counts, reference, Some(selection)))
}

/// The built-in reference's words that `wanted` accepts; sets the selection's reference
/// occurrences. With scripts, new tokens hold their characters (or bytes), which ASCII words
/// never do: those reference words cannot change and are only counted.
fn read_builtin(
    base: &TokenizerFile,
    pool: &rayon::ThreadPool,
    sel: &mut Selection,
    wanted: impl Fn(&str) -> bool + Sync,
) -> Result<Vec<(String, u64)>> {
    let scripted = !sel.scripts.is_empty();
    let (words, total) = builtin_reference(
        base.tokenizer(),
        base.kind(),
        pool,
        |w| !scripted || !w.is_ascii(),
        wanted,
    )?;
    sel.reference_occurrences = total;
    Ok(words)
}

/// Character occurrences of the words, and their total.
fn char_counts<'w>(
    words: impl Iterator<Item = (&'w String, &'w u64)>,
) -> (HashMap<char, u64>, f64) {
    let mut out: HashMap<char, u64> = HashMap::new();
    let mut total = 0u64;
    for (w, &c) in words {
        for ch in w.chars() {
            *out.entry(ch).or_default() += c;
            total += c;
        }
    }
    (out, total as f64)
}

/// Examples of changed reference words kept in the summary.
const WORD_EXAMPLES: usize = 20;

/// The reference's word occurrences whose ids changed: base segmentation against the final
/// one, with the first new merge that fired on each changed word.
fn reference_invariance(
    base: &TokenizerFile,
    learner: &Learner<'_>,
    words: &[(String, Vec<u32>, u64)],
    finals: &[&[u32]],
    occurrences: u64,
    chars_added: bool,
    pool: &rayon::ThreadPool,
) -> WordInvariance {
    let ranks: HashMap<(u32, u32), usize> = learner
        .merges()
        .iter()
        .enumerate()
        .map(|(r, &(a, b, _))| ((a, b), r))
        .collect();
    let model = base.bpe();
    let kind = base.kind();
    let mut changed: Vec<WordChange> = pool.install(|| {
        words
            .par_iter()
            .zip(finals)
            .filter_map(|((w, start, c), end)| {
                // New characters change the segmentation before any merge: compare with the
                // base model's then.
                let before: Vec<u32> = if chars_added {
                    model
                        .tokenize(w)
                        .map(|t| t.into_iter().map(|t| t.id).collect())
                        .unwrap_or_default()
                } else {
                    start.clone()
                };
                if before == **end {
                    return None;
                }
                let merge = start
                    .windows(2)
                    .filter_map(|p| ranks.get(&(p[0], p[1])))
                    .min()
                    .map(|&r| {
                        let (a, b, _) = learner.merges()[r];
                        [learner.token(a), learner.token(b)]
                    });
                Some(WordChange {
                    word: word_text(kind, w),
                    occurrences: *c,
                    merge,
                    before: before.iter().map(|&i| learner.token(i)).collect(),
                    after: end.iter().map(|&i| learner.token(i)).collect(),
                })
            })
            .collect()
    });
    let changed_occurrences: u64 = changed.iter().map(|c| c.occurrences).sum();
    changed.sort_by(|a, b| b.occurrences.cmp(&a.occurrences).then(a.word.cmp(&b.word)));
    changed.truncate(WORD_EXAMPLES);
    WordInvariance {
        occurrences,
        unchanged: occurrences - changed_occurrences,
        rate: if occurrences == 0 {
            1.0
        } else {
            (occurrences - changed_occurrences) as f64 / occurrences as f64
        },
        examples: changed,
    }
}

/// Reload the result with `tokenizers` and check the invariants users rely on.
fn validate(
    base: &TokenizerFile,
    json: &str,
    tokens: &[(String, u32)],
    merges: &[(String, String)],
    pool: &rayon::ThreadPool,
) -> Result<()> {
    let invalid = |m: String| Error::Tokenizer {
        path: base.name().to_string(),
        error: TokenizerError::Invalid(m),
    };
    let new = TokenizerFile::from_json(base.name(), json).map_err(|e| invalid(e.to_string()))?;
    for (s, id) in base.vocab() {
        if new.vocab().get(s) != Some(id) {
            return Err(invalid(format!("old token {s:?} lost id {id}")));
        }
    }
    if new.vocab().len() != base.vocab().len() + base.added_outside_vocab().len() + tokens.len() {
        return Err(invalid(
            "the vocabulary did not grow by the new tokens".into(),
        ));
    }
    let old_added: BTreeMap<u32, String> = base
        .tokenizer()
        .get_added_tokens_decoder()
        .into_iter()
        .map(|(id, t)| (id, t.content))
        .collect();
    let new_added: BTreeMap<u32, String> = new
        .tokenizer()
        .get_added_tokens_decoder()
        .into_iter()
        .map(|(id, t)| (id, t.content))
        .collect();
    if old_added != new_added {
        return Err(invalid("added tokens changed".into()));
    }
    let n = base.merges().len();
    if new.merges().len() != n + merges.len() || new.merges()[..n] != *base.merges() {
        return Err(invalid("the old merges are not an exact prefix".into()));
    }
    let mut pairs = HashSet::new();
    for (a, b) in new.merges() {
        if !pairs.insert((a, b)) {
            return Err(invalid(format!("duplicate merge ({a:?}, {b:?})")));
        }
    }
    for (a, b) in merges {
        let joined = format!("{a}{b}");
        if base.vocab().contains_key(&joined) {
            return Err(invalid(format!(
                "new merge result {joined:?} was already a token"
            )));
        }
        if !new.vocab().contains_key(a) || !new.vocab().contains_key(b) {
            return Err(invalid(format!(
                "new merge ({a:?}, {b:?}) has a part outside the vocabulary"
            )));
        }
    }
    let model = new.bpe();
    let unreachable: Vec<&String> = pool.install(|| {
        tokens
            .par_iter()
            .filter(|(s, id)| {
                model
                    .tokenize(s)
                    .map(|t| t.len() != 1 || t[0].id != *id)
                    .unwrap_or(true)
            })
            .map(|(s, _)| s)
            .collect()
    });
    if let Some(s) = unreachable.first() {
        return Err(invalid(format!(
            "{} new tokens are unreachable, e.g. {s:?}",
            unreachable.len()
        )));
    }
    Ok(())
}
