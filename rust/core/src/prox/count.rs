//! Exact token counts and ids, faster than `Tokenizer::encode_fast`.
//!
//! Chunking costs every numbered line `len(tokenizer.encode(line))`. With a Llama-shaped
//! tokenizer (a `▁` normalizer and no pre-tokenizer) a whole line is one BPE "word": the model
//! merges it from single characters, its word cache never hits (every line differs), and an
//! `Encoding` is built only to be measured. [`LineCounter`] gives the same number by running the
//! tokenizer's own normalizer, pre-tokenizer and BPE model on pieces that repeat.
//!
//! Why the count is exact: a BPE merge joins two adjacent symbols into a token of the vocabulary
//! whose text is the two symbols' texts end to end. Between two characters `a` and `b` that are
//! both single-character tokens (so neither is an unknown or a byte-fallback symbol), a symbol
//! can only ever span the boundary if some vocabulary token contains the text `ab`. Where none
//! does, no merge crosses the boundary, the merges on either side never interact, and the token
//! count of the whole is the sum of the counts of the two sides. Each pre-token is cut at every
//! such boundary (for a Llama-shaped vocabulary, before most `▁`), and the pieces' counts are
//! cached per thread.
//!
//! The fast path applies to BPE models without dropout, subword prefix/suffix or
//! `ignore_merges`, with a vocabulary that gives every token its own id, in a tokenizer without
//! truncation or padding. Otherwise, and for any text that contains an added token's content
//! (added tokens are split out before normalization) or on any error, the count is
//! `encode_fast(..).len()` itself.
//!
//! [`LineCounter::encode`] gives the ids the same way (a piece's ids are cached, and the ids of
//! a text are its pieces' ids end to end), with the post-processor's special tokens around
//! them. GPT-2's byte-level pre-tokenizer (its regex, no prefix space, no normalizer) is run by
//! [`gpt2_words`], a hand-written scanner of the same pattern, and each word's ids are cached
//! whole: what the library does with an Oniguruma search and offset tracking per word.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aho_corasick::AhoCorasick;
use rustc_hash::{FxHashMap, FxHashSet};
use tokenizers::models::bpe::BPE;
use tokenizers::{
    Model, ModelWrapper, NormalizedString, Normalizer, NormalizerWrapper, OffsetReferential,
    OffsetType, PostProcessor, PreTokenizedString, PreTokenizer, PreTokenizerWrapper, Tokenizer,
};

use crate::{Error, Result};

/// Cached pieces per thread before the cache is emptied (about 10 MB for word-sized pieces).
const CACHE_CAPACITY: usize = 1 << 17;
/// Pieces longer than this are counted without being cached (they rarely repeat).
const MAX_CACHED_LEN: usize = 64;

/// Counts tokens exactly as `tokenizer.encode_fast(text, add_special_tokens)` would, through a
/// per-thread cache of BPE piece counts when the tokenizer allows it (see the module docs).
/// Build one per tokenizer and share it between threads.
pub struct LineCounter<'a> {
    tok: &'a Tokenizer,
    fast: Option<Arc<Fast>>,
}

/// What the fast path reads, built once per tokenizer (and shared through [`LineCounter::shared`]).
struct Fast {
    /// Which tables a thread's cache of piece counts belongs to.
    id: u64,
    /// Single-character tokens: ASCII in a table, the rest in a set.
    ascii: [bool; 128],
    chars: FxHashSet<char>,
    /// `(a, b)` for every two adjacent characters inside any vocabulary token: ASCII pairs as
    /// bits (row `a`, bit `b`), the others in a set.
    ascii_pairs: [u128; 128],
    pairs: FxHashSet<u64>,
    /// The normalizer as plain string edits, when it is only literal ones (see [`Edit`]).
    edits: Option<Vec<Edit>>,
    /// Every added token's content, raw and normalized; `None` without added tokens.
    added: Option<AhoCorasick>,
    /// Tokens the post-processor adds to a single sequence.
    special: usize,
    /// The ids the post-processor puts before and after a single sequence, when it only wraps
    /// it (templates, BERT/RoBERTa, byte-level); `None`: ids with special tokens are encoded.
    wrap: Option<(Vec<u32>, Vec<u32>)>,
    /// GPT-2's byte-level pre-tokenizer (regex, no prefix space) and no normalizer.
    gpt2: bool,
}

/// A normalizer step whose output text is a plain string function of its input, applied
/// without `NormalizedString`'s alignment tracking (which costs more than the rest of a count:
/// `Replace` runs an Oniguruma search per match). Counts need the text only.
#[derive(Debug, Clone, PartialEq)]
enum Edit {
    /// `Prepend`: the prefix, before non-empty text.
    Prepend(String),
    /// `Replace` with a literal (not regex), non-empty pattern: every non-overlapping
    /// occurrence, leftmost first, as the escaped pattern matches in Oniguruma.
    Replace(String, String),
}

/// `normalizer` as [`Edit`]s, or `None` if any step is another kind.
fn plain_edits(normalizer: Option<&NormalizerWrapper>, out: &mut Vec<Edit>) -> bool {
    match normalizer {
        None => true,
        Some(NormalizerWrapper::Prepend(p)) => {
            out.push(Edit::Prepend(p.prepend.clone()));
            true
        }
        Some(NormalizerWrapper::Replace(r)) => {
            // The pattern is private; its serialized form says whether it is a literal.
            let value = serde_json::to_value(r).unwrap_or_default();
            match value["pattern"]["String"].as_str() {
                Some(pattern) if !pattern.is_empty() => {
                    out.push(Edit::Replace(pattern.to_string(), r.content.clone()));
                    true
                }
                _ => false,
            }
        }
        Some(NormalizerWrapper::Sequence(seq)) => {
            seq.as_ref().iter().all(|n| plain_edits(Some(n), out))
        }
        Some(_) => false,
    }
}

enum Normalized {
    Plain(String),
    Tracked(NormalizedString),
}

impl Normalized {
    fn get(&self) -> &str {
        match self {
            Normalized::Plain(s) => s,
            Normalized::Tracked(n) => n.get(),
        }
    }
}

fn apply_edits(edits: &[Edit], text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 16);
    s.push_str(text);
    for edit in edits {
        match edit {
            Edit::Prepend(prefix) => {
                if !s.is_empty() {
                    s.insert_str(0, prefix);
                }
            }
            Edit::Replace(pattern, content) => {
                // A one-character pattern (Llama's " ") searches with memchr, not Two-Way.
                let mut chars = pattern.chars();
                s = match (chars.next(), chars.next()) {
                    (Some(c), None) if s.contains(c) => s.replace(c, content),
                    (Some(_), None) => s,
                    _ if s.contains(pattern.as_str()) => s.replace(pattern.as_str(), content),
                    _ => s,
                };
            }
        }
    }
    s
}

struct Cache {
    owner: u64,
    counts: FxHashMap<Box<str>, u32>,
    ids: FxHashMap<Box<str>, Box<[u32]>>,
}

impl Cache {
    fn for_owner(&mut self, owner: u64) {
        if self.owner != owner {
            self.counts.clear();
            self.ids.clear();
            self.owner = owner;
        }
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache {
        owner: 0,
        counts: FxHashMap::default(),
        ids: FxHashMap::default(),
    });
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Tokenizers most recently counted through [`LineCounter::shared`], each with its tables. An
/// entry holds its tokenizer alive, so a pointer match means the very same tokenizer.
type Shared = Vec<(Arc<Tokenizer>, Option<Arc<Fast>>)>;
const SHARED_SIZE: usize = 4;

fn shared() -> &'static Mutex<Shared> {
    static SHARED: OnceLock<Mutex<Shared>> = OnceLock::new();
    SHARED.get_or_init(|| Mutex::new(Vec::new()))
}

fn pair_key(a: char, b: char) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Config(format!("tokenizer failed: {e}"))
}

impl<'a> LineCounter<'a> {
    /// A counter for `tok`. Building it reads the whole vocabulary once (milliseconds for 32k
    /// tokens), so build one per tokenizer, not per text.
    pub fn new(tok: &'a Tokenizer) -> Self {
        LineCounter {
            tok,
            fast: Fast::new(tok).map(Arc::new),
        }
    }

    /// A counter for a shared tokenizer whose tables are kept for the next call with the same
    /// `Arc` (the four most recent): what the Python bindings use, so that counting one short
    /// document per call does not rebuild them.
    pub fn shared(tok: &'a Arc<Tokenizer>) -> Self {
        {
            // A poisoned lock only means another thread panicked holding it; the list is valid.
            let mut entries = shared().lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = entries.iter().position(|(t, _)| Arc::ptr_eq(t, tok)) {
                let entry = entries.remove(i);
                let fast = entry.1.clone();
                entries.push(entry);
                return LineCounter { tok, fast };
            }
        }
        let counter = LineCounter::new(tok);
        let mut entries = shared().lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(t, _)| !Arc::ptr_eq(t, tok));
        if entries.len() >= SHARED_SIZE {
            entries.remove(0);
        }
        entries.push((tok.clone(), counter.fast.clone()));
        counter
    }

    /// Whether counts go through the cached fast path (otherwise every count is an
    /// `encode_fast`).
    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// The tokenizer counted with.
    pub fn tokenizer(&self) -> &'a Tokenizer {
        self.tok
    }

    /// `tokenizer.encode_fast(text, add_special_tokens).len()`.
    pub fn count(&self, text: &str, add_special_tokens: bool) -> Result<usize> {
        if let Some(fast) = &self.fast {
            if let Some(n) = fast.count(self.tok, text) {
                return Ok(n + if add_special_tokens { fast.special } else { 0 });
            }
        }
        self.encode_count(text, add_special_tokens)
    }

    /// `tokenizer.encode_fast(text, add_special_tokens).get_ids()` into `out` (cleared first).
    pub fn encode(&self, text: &str, add_special_tokens: bool, out: &mut Vec<u32>) -> Result<()> {
        encode_ids(
            self.tok,
            self.fast.as_deref(),
            text,
            add_special_tokens,
            out,
        )
    }

    /// Whether ids go through the cached path (see [`LineCounter::is_fast`]) and, with
    /// `gpt2`, through the GPT-2 scanner.
    pub fn paths(&self) -> (bool, bool) {
        (
            self.fast.is_some(),
            self.fast.as_ref().is_some_and(|f| f.gpt2),
        )
    }

    /// The count from a full `encode_fast` (the fallback, and the reference in tests).
    pub fn encode_count(&self, text: &str, add_special_tokens: bool) -> Result<usize> {
        Ok(self
            .tok
            .encode_fast(text, add_special_tokens)
            .map_err(tok_err)?
            .len())
    }
}

/// A tokenizer that owns its fast-path tables: [`LineCounter::encode`] for a tokenizer held in
/// an `Arc` (`tamis tokenize` encodes with one for the whole run).
#[derive(Clone)]
pub struct IdEncoder {
    tok: Arc<Tokenizer>,
    fast: Option<Arc<Fast>>,
}

impl std::fmt::Debug for IdEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdEncoder")
            .field("fast", &self.fast.is_some())
            .finish()
    }
}

impl IdEncoder {
    /// Build the tables of `tok` (once: milliseconds for a 32k vocabulary).
    pub fn new(tok: Arc<Tokenizer>) -> Self {
        let fast = Fast::new(&tok).map(Arc::new);
        IdEncoder { tok, fast }
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tok
    }

    /// `tokenizer.encode_fast(text, add_special_tokens).get_ids()` into `out` (cleared first).
    pub fn encode(&self, text: &str, add_special_tokens: bool, out: &mut Vec<u32>) -> Result<()> {
        encode_ids(
            &self.tok,
            self.fast.as_deref(),
            text,
            add_special_tokens,
            out,
        )
    }
}

fn encode_ids(
    tok: &Tokenizer,
    fast: Option<&Fast>,
    text: &str,
    add_special_tokens: bool,
    out: &mut Vec<u32>,
) -> Result<()> {
    out.clear();
    if let Some(fast) = fast {
        let wrap = if add_special_tokens {
            fast.wrap.as_ref()
        } else {
            Some(&(Vec::new(), Vec::new()))
        };
        if let Some((before, after)) = wrap {
            out.extend_from_slice(before);
            if fast.ids(tok, text, out).is_some() {
                out.extend_from_slice(after);
                return Ok(());
            }
            out.clear();
        }
    }
    let e = tok.encode_fast(text, add_special_tokens).map_err(tok_err)?;
    out.extend_from_slice(e.get_ids());
    Ok(())
}

impl Fast {
    fn new(tok: &Tokenizer) -> Option<Self> {
        let ModelWrapper::BPE(bpe) = tok.get_model() else {
            return None;
        };
        if bpe.dropout.is_some()
            || bpe.continuing_subword_prefix.is_some()
            || bpe.end_of_word_suffix.is_some()
            || bpe.ignore_merges
            || tok.get_truncation().is_some()
            || tok.get_padding().is_some()
        {
            return None;
        }
        let vocab = bpe.get_vocab();
        // The merge argument reads a symbol's text from its id: ids must not be shared.
        let ids: FxHashSet<u32> = vocab.values().copied().collect();
        if ids.len() != vocab.len() {
            return None;
        }
        let mut ascii = [false; 128];
        let mut chars = FxHashSet::default();
        let mut ascii_pairs = [0u128; 128];
        let mut pairs = FxHashSet::default();
        for token in vocab.keys() {
            let mut it = token.chars();
            let Some(mut prev) = it.next() else { continue };
            let mut single = true;
            for c in it {
                single = false;
                if prev.is_ascii() && c.is_ascii() {
                    ascii_pairs[prev as usize] |= 1u128 << (c as u32);
                } else {
                    pairs.insert(pair_key(prev, c));
                }
                prev = c;
            }
            if single {
                if prev.is_ascii() {
                    ascii[prev as usize] = true;
                } else {
                    chars.insert(prev);
                }
            }
        }
        let mut patterns: Vec<String> = Vec::new();
        for added in tok.get_added_tokens_decoder().values() {
            if added.content.is_empty() {
                return None;
            }
            if added.normalized {
                if let Some(n) = tok.get_normalizer() {
                    let mut s = NormalizedString::from(added.content.as_str());
                    n.normalize(&mut s).ok()?;
                    if !s.get().is_empty() {
                        patterns.push(s.get().to_string());
                    }
                }
            }
            patterns.push(added.content.clone());
        }
        let added = if patterns.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(&patterns).ok()?)
        };
        let special = tok
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        let mut edits = Vec::new();
        let edits = plain_edits(tok.get_normalizer(), &mut edits).then_some(edits);
        let gpt2 = tok.get_normalizer().is_none()
            && matches!(
                tok.get_pre_tokenizer(),
                Some(PreTokenizerWrapper::ByteLevel(b)) if b.use_regex && !b.add_prefix_space
            );
        Some(Fast {
            wrap: wrap_of(tok),
            gpt2,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            ascii,
            chars,
            ascii_pairs,
            pairs,
            edits,
            added,
            special,
        })
    }

    fn known(&self, c: char) -> bool {
        if c.is_ascii() {
            self.ascii[c as usize]
        } else {
            self.chars.contains(&c)
        }
    }

    /// Whether some vocabulary token contains `a` followed by `b`.
    fn in_token(&self, a: char, b: char) -> bool {
        if a.is_ascii() && b.is_ascii() {
            self.ascii_pairs[a as usize] >> (b as u32) & 1 == 1
        } else {
            self.pairs.contains(&pair_key(a, b))
        }
    }

    fn has_added(&self, s: &str) -> bool {
        self.added.as_ref().is_some_and(|ac| ac.is_match(s))
    }

    /// Tokens of `text` without special tokens, or `None` where `encode_fast` must decide.
    fn count(&self, tok: &Tokenizer, text: &str) -> Option<usize> {
        let ModelWrapper::BPE(bpe) = tok.get_model() else {
            return None;
        };
        // An empty input is never normalized by `encode`; an added token is split out first.
        if text.is_empty() || self.has_added(text) {
            return None;
        }
        let normalized = match &self.edits {
            Some(edits) => Normalized::Plain(apply_edits(edits, text)),
            None => {
                let mut n = NormalizedString::from(text);
                if let Some(normalizer) = tok.get_normalizer() {
                    normalizer.normalize(&mut n).ok()?;
                }
                Normalized::Tracked(n)
            }
        };
        if self.has_added(normalized.get()) {
            return None;
        }
        CACHE.with(|cell| {
            let mut cache = cell.borrow_mut();
            cache.for_owner(self.id);
            let counts = &mut cache.counts;
            let Some(pre) = tok.get_pre_tokenizer() else {
                return self.count_word(bpe, normalized.get(), counts);
            };
            // Pre-tokenizers split on the text alone: a fresh `NormalizedString` of the
            // plainly edited text splits the same.
            let mut pretok = PreTokenizedString::from(match normalized {
                Normalized::Plain(s) => NormalizedString::from(s),
                Normalized::Tracked(n) => n,
            });
            pre.pre_tokenize(&mut pretok).ok()?;
            let mut total = 0;
            for (word, _, tokens) in
                pretok.get_splits(OffsetReferential::Original, OffsetType::None)
            {
                if tokens.is_some() {
                    return None;
                }
                total += self.count_word(bpe, word, counts)?;
            }
            Some(total)
        })
    }

    /// The ids of `text` without special tokens appended to `out`, or `None` where
    /// `encode_fast` must decide.
    fn ids(&self, tok: &Tokenizer, text: &str, out: &mut Vec<u32>) -> Option<()> {
        let ModelWrapper::BPE(bpe) = tok.get_model() else {
            return None;
        };
        if text.is_empty() || self.has_added(text) {
            return None;
        }
        if self.gpt2 {
            return CACHE.with(|cell| {
                let mut cache = cell.borrow_mut();
                cache.for_owner(self.id);
                let ids = &mut cache.ids;
                let mut ok = true;
                let mut mapped = String::new();
                gpt2_words(text, |word| {
                    if !ok {
                        return;
                    }
                    if let Some(cached) = ids.get(word) {
                        out.extend_from_slice(cached);
                        return;
                    }
                    mapped.clear();
                    mapped.extend(word.bytes().map(byte_char));
                    match bpe.tokenize(&mapped) {
                        Ok(tokens) => {
                            let start = out.len();
                            out.extend(tokens.iter().map(|t| t.id));
                            if word.len() <= MAX_CACHED_LEN {
                                if ids.len() >= CACHE_CAPACITY {
                                    ids.clear();
                                }
                                ids.insert(word.into(), out[start..].into());
                            }
                        }
                        Err(_) => ok = false,
                    }
                });
                ok.then_some(())
            });
        }
        let normalized = match &self.edits {
            Some(edits) => Normalized::Plain(apply_edits(edits, text)),
            None => {
                let mut n = NormalizedString::from(text);
                if let Some(normalizer) = tok.get_normalizer() {
                    normalizer.normalize(&mut n).ok()?;
                }
                Normalized::Tracked(n)
            }
        };
        if self.has_added(normalized.get()) {
            return None;
        }
        CACHE.with(|cell| {
            let mut cache = cell.borrow_mut();
            cache.for_owner(self.id);
            let ids = &mut cache.ids;
            let Some(pre) = tok.get_pre_tokenizer() else {
                return self.word_ids(bpe, normalized.get(), ids, out);
            };
            let mut pretok = PreTokenizedString::from(match normalized {
                Normalized::Plain(s) => NormalizedString::from(s),
                Normalized::Tracked(n) => n,
            });
            pre.pre_tokenize(&mut pretok).ok()?;
            for (word, _, tokens) in
                pretok.get_splits(OffsetReferential::Original, OffsetType::None)
            {
                if tokens.is_some() {
                    return None;
                }
                self.word_ids(bpe, word, ids, out)?;
            }
            Some(())
        })
    }

    /// The ids of one pre-token: its pieces' ids between safe boundaries, end to end.
    fn word_ids(
        &self,
        bpe: &BPE,
        word: &str,
        ids: &mut FxHashMap<Box<str>, Box<[u32]>>,
        out: &mut Vec<u32>,
    ) -> Option<()> {
        let mut start = 0;
        let mut prev: Option<(char, bool)> = None;
        for (i, c) in word.char_indices() {
            let known = self.known(c);
            if let Some((p, p_known)) = prev {
                if p_known && known && !self.in_token(p, c) {
                    piece_ids(bpe, &word[start..i], ids, out)?;
                    start = i;
                }
            }
            prev = Some((c, known));
        }
        if start < word.len() {
            piece_ids(bpe, &word[start..], ids, out)?;
        }
        Some(())
    }

    /// Tokens of one pre-token: the sum over its pieces between safe boundaries.
    fn count_word(
        &self,
        bpe: &BPE,
        word: &str,
        counts: &mut FxHashMap<Box<str>, u32>,
    ) -> Option<usize> {
        let mut total = 0;
        let mut start = 0;
        let mut prev: Option<(char, bool)> = None;
        for (i, c) in word.char_indices() {
            let known = self.known(c);
            if let Some((p, p_known)) = prev {
                if p_known && known && !self.in_token(p, c) {
                    total += self.count_piece(bpe, &word[start..i], counts)?;
                    start = i;
                }
            }
            prev = Some((c, known));
        }
        if start < word.len() {
            total += self.count_piece(bpe, &word[start..], counts)?;
        }
        Some(total)
    }

    fn count_piece(
        &self,
        bpe: &BPE,
        piece: &str,
        counts: &mut FxHashMap<Box<str>, u32>,
    ) -> Option<usize> {
        if let Some(&n) = counts.get(piece) {
            return Some(n as usize);
        }
        let n = bpe.tokenize(piece).ok()?.len();
        if piece.len() <= MAX_CACHED_LEN {
            if counts.len() >= CACHE_CAPACITY {
                counts.clear();
            }
            counts.insert(piece.into(), u32::try_from(n).ok()?);
        }
        Some(n)
    }
}

fn piece_ids(
    bpe: &BPE,
    piece: &str,
    ids: &mut FxHashMap<Box<str>, Box<[u32]>>,
    out: &mut Vec<u32>,
) -> Option<()> {
    if let Some(cached) = ids.get(piece) {
        out.extend_from_slice(cached);
        return Some(());
    }
    let start = out.len();
    out.extend(bpe.tokenize(piece).ok()?.iter().map(|t| t.id));
    if piece.len() <= MAX_CACHED_LEN {
        if ids.len() >= CACHE_CAPACITY {
            ids.clear();
        }
        ids.insert(piece.into(), out[start..].into());
    }
    Some(())
}

/// The ids a post-processor puts around a single sequence, found by post-processing one
/// marker id: `None` unless the marker comes back once, unchanged, between them.
fn wrap_of(tok: &Tokenizer) -> Option<(Vec<u32>, Vec<u32>)> {
    const MARK: u32 = u32::MAX - 7;
    let enc = tokenizers::Encoding::from_tokens(
        vec![tokenizers::Token::new(MARK, String::new(), (0, 0))],
        0,
    );
    let ids = tok.post_process(enc, None, true).ok()?.get_ids().to_vec();
    let at = ids.iter().position(|&i| i == MARK)?;
    if ids.iter().filter(|&&i| i == MARK).count() != 1 {
        return None;
    }
    Some((ids[..at].to_vec(), ids[at + 1..].to_vec()))
}

/// The byte a character of GPT-2's byte-level alphabet stands for (`None` outside it).
pub(crate) fn char_byte(c: char) -> Option<u8> {
    static TABLE: OnceLock<FxHashMap<char, u8>> = OnceLock::new();
    TABLE
        .get_or_init(|| (0..=255u8).map(|b| (byte_char(b), b)).collect())
        .get(&c)
        .copied()
}

/// GPT-2's byte-to-character map: printable Latin-1 bytes stand for themselves, the others for
/// U+0100 onwards, in byte order.
pub(crate) fn byte_char(b: u8) -> char {
    static TABLE: OnceLock<[char; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = ['\0'; 256];
        let mut next = 256u32;
        for (i, slot) in t.iter_mut().enumerate() {
            let b = i as u8;
            let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
            let code = if printable {
                u32::from(b)
            } else {
                next += 1;
                next - 1
            };
            *slot = char::from_u32(code).unwrap_or('\u{FFFD}');
        }
        t
    });
    table[b as usize]
}

/// What GPT-2's pattern sees in a character.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn class(c: char) -> Class {
    use unicode_general_category::{get_general_category, GeneralCategory as G};
    if c.is_ascii() {
        return match c {
            'a'..='z' | 'A'..='Z' => Class::Letter,
            '0'..='9' => Class::Number,
            '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' => Class::Space,
            _ => Class::Other,
        };
    }
    if c.is_whitespace() {
        return Class::Space;
    }
    match get_general_category(c) {
        G::UppercaseLetter
        | G::LowercaseLetter
        | G::TitlecaseLetter
        | G::ModifierLetter
        | G::OtherLetter => Class::Letter,
        G::DecimalNumber | G::LetterNumber | G::OtherNumber => Class::Number,
        _ => Class::Other,
    }
}

/// The words of GPT-2's pre-tokenizer, in order: the matches of
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, tried in
/// that order at each position (every character matches one alternative).
pub(crate) fn gpt2_words(text: &str, mut word: impl FnMut(&str)) {
    let mut chars: Vec<(usize, Class)> = Vec::with_capacity(text.len());
    chars.extend(text.char_indices().map(|(i, c)| (i, class(c))));
    let n = chars.len();
    let at = |k: usize| if k < n { chars[k].0 } else { text.len() };
    // The end of the run of `class` starting at character `k`.
    let run = |mut k: usize, c: Class| {
        while k < n && chars[k].1 == c {
            k += 1;
        }
        k
    };
    let mut k = 0;
    while k < n {
        let rest = &text[chars[k].0..];
        if rest.starts_with('\'') {
            let contraction = ["s", "t", "re", "ve", "m", "ll", "d"]
                .iter()
                .find(|s| rest[1..].starts_with(**s));
            if let Some(s) = contraction {
                let end = k + 1 + s.len();
                word(&text[at(k)..at(end)]);
                k = end;
                continue;
            }
        }
        let space = rest.starts_with(' ');
        let (first, next) = if space && k + 1 < n {
            (chars[k + 1].1, k + 1)
        } else {
            (chars[k].1, k)
        };
        let end = match first {
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: the optional space, then a run.
            Class::Letter | Class::Number | Class::Other
                if next > k || chars[k].1 != Class::Space =>
            {
                run(next, first)
            }
            _ => {
                // White space: `\s+(?!\S)` leaves the last one to the word that follows;
                // `\s+` takes a single one before a non-space.
                let end = run(k, Class::Space);
                if end < n && end - k >= 2 {
                    end - 1
                } else {
                    end
                }
            }
        };
        word(&text[at(k)..at(end)]);
        k = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prox::chunk::tests::word_tokenizer;
    use tokenizers::models::bpe::BpeTrainer;
    use tokenizers::models::TrainerWrapper;
    use tokenizers::normalizers::{Lowercase, Prepend, Replace, Sequence, NFC};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::processors::bert::BertProcessing;
    use tokenizers::processors::template::TemplateProcessing;
    use tokenizers::{AddedToken, NormalizerWrapper, PreTokenizerWrapper, TruncationParams};

    /// xorshift64*: deterministic test data without a dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        }
    }

    const WORDS: &[&str] = &[
        "the",
        "of",
        "and",
        "to",
        "in",
        "data",
        "model",
        "training",
        "corpus",
        "page",
        "figure",
        "result",
        "naïve",
        "café",
        "Zürich",
        "東京",
        "données",
        "über",
        "1984",
        "3.14",
        "Home",
        "Products",
        "About",
        "http://example.org/item?id=7&ref=nav",
        "©",
        "Inc.",
        "日本",
    ];
    /// Pieces that stress the edges: runs of spaces, `▁` typed by the user, characters the
    /// vocabularies lack (emoji, rare scripts, a combining accent), added tokens' contents.
    const ODD: &[&str] = &[
        " ",
        "  ",
        "   ",
        "\t",
        "\n",
        "\n\n",
        "\r\n",
        " \n ",
        "'s",
        "'ll",
        "'T",
        "'re",
        "\u{a0}",
        "\u{2003}",
        "\u{85}",
        "\u{1c}",
        "\u{3000}",
        "²",
        "Ⅻ",
        "٣",
        "▁",
        "▁▁",
        ".",
        ",",
        "!",
        "?",
        "(",
        ")",
        "[",
        "]",
        "|",
        "-",
        "—",
        "\"",
        "'",
        "0",
        "42",
        "007",
        "日本語",
        "中文",
        "😀",
        "🦀🦀",
        "é",
        "ß",
        "e\u{0301}",
        "Ω",
        "ǅ",
        "\r",
        "x",
        "[003]",
        "hello",
        "Hello",
        "HELLO",
        "  the",
        "the  ",
        "ünïcödé",
    ];
    /// Added tokens' contents (and near misses): split out by `encode`, so a fallback.
    const ADDED: &[&str] = &[
        "<s>",
        "</s>",
        "<unk>",
        "<0x41>",
        "<0x",
        "<|endoftext|>",
        "[SEP]",
        "[CLS]",
        "[UNK]",
    ];
    const SYLLABLES: &[&str] = &[
        "ka", "to", "ri", "en", "an", "th", "er", "qu", "ing", "ed", "s", "ü", "é", "日", "本",
        "pro", "con", "tion", "al", "x", "7",
    ];

    fn word(rng: &mut Rng) -> String {
        if rng.below(2) == 0 {
            return WORDS[rng.below(WORDS.len())].to_string();
        }
        (0..1 + rng.below(4))
            .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
            .collect()
    }

    fn corpus() -> Vec<String> {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        (0..1500)
            .map(|_| {
                let n = 3 + rng.below(20);
                let words: Vec<String> = (0..n).map(|_| word(&mut rng)).collect();
                words.join(" ")
            })
            .collect()
    }

    fn random_line(rng: &mut Rng) -> String {
        let mut line = String::new();
        if rng.below(2) == 0 {
            line.push_str(&format!("[{:03}]", rng.below(1200)));
        }
        for _ in 0..rng.below(25) {
            match rng.below(100) {
                0..=49 => line.push_str(&word(rng)),
                50..=74 => line.push(' '),
                75..=97 => line.push_str(ODD[rng.below(ODD.len())]),
                _ => line.push_str(ADDED[rng.below(ADDED.len())]),
            }
        }
        line
    }

    fn train(tok: &mut Tokenizer, trainer: BpeTrainer) {
        let mut trainer = TrainerWrapper::from(trainer);
        tok.train(&mut trainer, corpus().into_iter())
            .expect("train");
    }

    fn specials(names: &[&str]) -> Vec<AddedToken> {
        names.iter().map(|n| AddedToken::from(*n, true)).collect()
    }

    fn llama_normalizer() -> NormalizerWrapper {
        Sequence::new(vec![
            Prepend::new("▁".into()).into(),
            Replace::new(" ", "▁").expect("replace").into(),
        ])
        .into()
    }

    fn bos() -> TemplateProcessing {
        TemplateProcessing::builder()
            .try_single("<s> $A")
            .expect("template")
            .special_tokens(vec![("<s>", 1)])
            .build()
            .expect("post")
    }

    /// Llama-2's shape: trained on `▁`-split words, used with a `▁` normalizer, no
    /// pre-tokenizer, byte fallback, fused unknowns, `<s>` BOS.
    fn llama_like(split_in_training: bool) -> Tokenizer {
        let model = BPE::builder()
            .unk_token("<unk>".into())
            .byte_fallback(true)
            .fuse_unk(true)
            .build()
            .expect("bpe");
        let mut tok = Tokenizer::new(model);
        if split_in_training {
            tok.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::First, true)));
        } else {
            // Merges may then cross `▁`: few safe boundaries.
            tok.with_normalizer(Some(llama_normalizer()))
                .expect("normalizer");
        }
        let mut added = specials(&["<unk>", "<s>", "</s>"]);
        // Only some bytes: the others' characters stay unknown (`<unk>`, fused).
        added.extend((0x41..0x4a).map(|b| AddedToken::from(format!("<0x{b:02X}>"), true)));
        added.extend((0xe0..0xf5).map(|b| AddedToken::from(format!("<0x{b:02X}>"), true)));
        added.extend((0x80..0xc0).map(|b| AddedToken::from(format!("<0x{b:02X}>"), true)));
        let trainer = BpeTrainer::builder()
            .vocab_size(500)
            .special_tokens(added)
            .max_token_length(Some(16))
            .show_progress(false)
            .build();
        train(&mut tok, trainer);
        tok.with_pre_tokenizer(None::<PreTokenizerWrapper>);
        tok.with_normalizer(Some(llama_normalizer()))
            .expect("normalizer");
        tok.with_post_processor(Some(bos()));
        tok
    }

    /// GPT-2's shape: byte-level pre-tokenizer and alphabet, byte-level post-processor.
    fn gpt2_like() -> Tokenizer {
        let mut tok = Tokenizer::new(BPE::default());
        tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        let trainer = BpeTrainer::builder()
            .vocab_size(600)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .special_tokens(specials(&["<|endoftext|>"]))
            .show_progress(false)
            .build();
        train(&mut tok, trainer);
        tok.with_post_processor(Some(ByteLevel::new(false, true, true)));
        tok
    }

    /// BERT-like: lowercasing normalizer, whitespace pre-tokenizer, `[UNK]` without fusing,
    /// `[CLS]`/`[SEP]` added, and a normalized added token that only matches after lowercasing.
    fn trained_words() -> Tokenizer {
        let model = BPE::builder()
            .unk_token("[UNK]".into())
            .build()
            .expect("bpe");
        let mut tok = Tokenizer::new(model);
        tok.with_normalizer(Some(Sequence::new(vec![NFC.into(), Lowercase.into()])))
            .expect("normalizer");
        tok.with_pre_tokenizer(Some(Whitespace));
        let trainer = BpeTrainer::builder()
            .vocab_size(300)
            .special_tokens(specials(&["[UNK]", "[CLS]", "[SEP]"]))
            .show_progress(false)
            .build();
        train(&mut tok, trainer);
        let id = |t: &str| tok.token_to_id(t).expect("special");
        let post =
            BertProcessing::new(("[SEP]".into(), id("[SEP]")), ("[CLS]".into(), id("[CLS]")));
        tok.with_post_processor(Some(post));
        tok.add_tokens([AddedToken::from("Hello", false)])
            .expect("added");
        tok
    }

    fn assert_exact(name: &str, tok: &Tokenizer, expect_fast: bool) {
        let counter = LineCounter::new(tok);
        assert_eq!(counter.is_fast(), expect_fast, "{name}");
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let mut fast_lines = 0;
        let mut ids = Vec::new();
        for i in 0..2500 {
            let line = random_line(&mut rng);
            if let Some(fast) = &counter.fast {
                fast_lines += usize::from(fast.count(tok, &line).is_some());
            }
            for special in [true, false] {
                let want = tok
                    .encode_fast(line.as_str(), special)
                    .expect("encode")
                    .len();
                let got = counter.count(&line, special).expect("count");
                assert_eq!(got, want, "{name}: line {i} {line:?} special={special}");
                let want = tok.encode_fast(line.as_str(), special).expect("encode");
                counter.encode(&line, special, &mut ids).expect("ids");
                assert_eq!(
                    ids,
                    want.get_ids(),
                    "{name}: ids of line {i} {line:?} special={special}"
                );
            }
        }
        // Most lines must take the fast path, or this test would prove nothing about it.
        if expect_fast {
            assert!(
                fast_lines > 1500,
                "{name}: {fast_lines} of 2500 lines on the fast path"
            );
        }
    }

    #[test]
    fn counts_equal_encode_for_llama_like_bpe() {
        let tok = llama_like(true);
        assert!(tok.get_model().get_vocab_size() >= 450);
        assert_exact("llama-like", &tok, true);
    }

    #[test]
    fn counts_equal_encode_when_merges_cross_spaces() {
        assert_exact(
            "llama-like, trained on whole lines",
            &llama_like(false),
            true,
        );
    }

    #[test]
    fn counts_equal_encode_for_gpt2_like_bpe() {
        let tok = gpt2_like();
        assert_eq!(LineCounter::new(&tok).paths(), (true, true));
        assert_exact("gpt2-like", &tok, true);
    }

    #[test]
    fn gpt2_words_are_the_byte_level_pre_tokenizers() {
        let pre = ByteLevel::new(false, true, true);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let extra = [
            "don't",
            "I'LL",
            " 's",
            "''",
            "a  b",
            "a\n\n b",
            "\t\t",
            "x \u{a0}y",
            "1,000.5",
            "٣٤",
            "Ⅻ²",
            "  ",
            "\u{2003}\u{2003}z",
            "é",
            "e\u{301}",
            "🙂🙂",
            "a\u{1c}b",
            "\u{85}\u{85}",
        ];
        for i in 0..4000 {
            let line = if i < extra.len() {
                extra[i].to_string()
            } else {
                random_line(&mut rng)
            };
            let mut pretok = PreTokenizedString::from(line.as_str());
            pre.pre_tokenize(&mut pretok).expect("pre-tokenize");
            let want: Vec<String> = pretok
                .get_splits(OffsetReferential::Original, OffsetType::None)
                .into_iter()
                .map(|(w, _, _)| w.to_string())
                .collect();
            let mut got = Vec::new();
            gpt2_words(&line, |w| {
                got.push(w.bytes().map(byte_char).collect::<String>())
            });
            assert_eq!(got, want, "line {i} {line:?}");
        }
    }

    #[test]
    fn counts_equal_encode_for_normalized_added_tokens() {
        let tok = trained_words();
        assert_exact("trained words", &tok, true);
        // "Hello" is found in the lowercased text only: the count must still be encode's.
        let counter = LineCounter::new(&tok);
        let line = "say HELLO twice hello";
        let want = tok.encode_fast(line, true).expect("encode").len();
        assert_eq!(counter.count(line, true).expect("count"), want);
    }

    #[test]
    fn llama_lines_are_cut_into_words() {
        // The segmentation the speed depends on: every `▁word` is its own piece.
        let tok = llama_like(true);
        let counter = LineCounter::new(&tok);
        let fast = counter.fast.as_ref().expect("fast");
        let ModelWrapper::BPE(bpe) = tok.get_model() else {
            panic!("not BPE")
        };
        let mut counts = FxHashMap::default();
        let n = fast
            .count_word(bpe, "▁[000]the▁data▁model▁of▁the▁corpus", &mut counts)
            .expect("count");
        let want = tok
            .encode_fast("[000]the data model of the corpus", false)
            .expect("encode")
            .len();
        assert_eq!(n, want);
        for word in ["▁data", "▁model", "▁of", "▁corpus"] {
            assert!(counts.contains_key(word), "{word} not a piece: {counts:?}");
        }
        assert!(!counts.contains_key("▁of▁the"));
    }

    #[test]
    fn literal_normalizers_are_applied_as_plain_edits() {
        use tokenizers::normalizers::replace::ReplacePattern;
        let replace =
            |p: &str, c: &str| -> NormalizerWrapper { Replace::new(p, c).expect("replace").into() };
        let normalizers: Vec<NormalizerWrapper> = vec![
            llama_normalizer(),
            Prepend::new("▁".into()).into(),
            replace("aa", "a"),
            replace(".", ""),
            replace("▁", "  "),
            replace("\\d", "#"),
            Sequence::new(vec![
                Sequence::new(vec![replace("a", "bb"), Prepend::new("[x]".into()).into()]).into(),
                replace("b", "▁b"),
                replace(" ", ""),
            ])
            .into(),
        ];
        let mut rng = Rng(11);
        let mut lines: Vec<String> = (0..500).map(|_| random_line(&mut rng)).collect();
        lines.extend(["", "aaa", "aaaaa", "...", "\\d\\d"].map(String::from));
        for normalizer in &normalizers {
            let mut edits = Vec::new();
            assert!(plain_edits(Some(normalizer), &mut edits), "{normalizer:?}");
            for line in &lines {
                let mut n = NormalizedString::from(line.as_str());
                normalizer.normalize(&mut n).expect("normalize");
                assert_eq!(
                    apply_edits(&edits, line),
                    n.get(),
                    "{normalizer:?} {line:?}"
                );
            }
        }
        // Regex patterns and other normalizers go through `NormalizedString`.
        let regex: NormalizerWrapper = Replace::new(ReplacePattern::Regex(" ".into()), "▁")
            .expect("regex")
            .into();
        for other in [regex, Lowercase.into(), NFC.into()] {
            let seq: NormalizerWrapper =
                Sequence::new(vec![Prepend::new("▁".into()).into(), other]).into();
            assert!(!plain_edits(Some(&seq), &mut Vec::new()), "{seq:?}");
        }
        // The Llama shape through the tracked path: same counts.
        let mut tok = llama_like(true);
        tok.with_normalizer(Some(Sequence::new(vec![
            Prepend::new("▁".into()).into(),
            Replace::new(ReplacePattern::Regex(" ".into()), "▁")
                .expect("regex")
                .into(),
        ])))
        .expect("normalizer");
        assert!(LineCounter::new(&tok).fast.expect("fast").edits.is_none());
        assert_exact("llama-like, regex normalizer", &tok, true);
    }

    #[test]
    fn merges_of_fallback_symbols_are_not_cut() {
        // A vocabulary that merges a byte-fallback token, and the unknown token, with the next
        // character: no token contains "éb" or "☃b", yet the symbols for é and ☃ merge with b.
        let vocab = ["b", "<unk>", "<0xC3>", "<0xA9>", "<0xA9>b", "<unk>b"]
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect::<tokenizers::models::bpe::Vocab>();
        let merges = vec![
            ("<0xA9>".to_string(), "b".to_string()),
            ("<unk>".to_string(), "b".to_string()),
        ];
        let model = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .unk_token("<unk>".into())
            .byte_fallback(true)
            .build()
            .expect("bpe");
        let tok = Tokenizer::new(model);
        let counter = LineCounter::new(&tok);
        assert!(counter.is_fast());
        for line in ["éb", "bébb", "☃b", "b☃☃bé"] {
            let want = tok.encode_fast(line, false).expect("encode").len();
            assert_eq!(counter.count(line, false).expect("count"), want, "{line:?}");
        }
        assert_eq!(counter.count("éb", false).expect("count"), 2);
    }

    #[test]
    fn other_tokenizers_fall_back_to_encode() {
        // Dropout 1.0 skips every merge (deterministic), and is not the fast path.
        let vocab = [("a", 0), ("b", 1), ("ab", 2), ("<unk>", 3)]
            .into_iter()
            .map(|(t, i)| (t.to_string(), i))
            .collect::<tokenizers::models::bpe::Vocab>();
        let merges = vec![("a".to_string(), "b".to_string())];
        let model = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .unk_token("<unk>".into())
            .dropout(1.0)
            .build()
            .expect("bpe");
        let tok = Tokenizer::new(model);
        let counter = LineCounter::new(&tok);
        assert!(!counter.is_fast());
        assert_eq!(counter.count("abab", false).expect("count"), 4);
        assert_exact("word level", &word_tokenizer(), false);
        let mut truncated = llama_like(true);
        truncated
            .with_truncation(Some(TruncationParams {
                max_length: 5,
                ..TruncationParams::default()
            }))
            .expect("truncation");
        assert_exact("truncated", &truncated, false);
    }

    #[test]
    fn shared_counters_reuse_their_tables() {
        let tok = Arc::new(llama_like(true));
        let a = LineCounter::shared(&tok);
        let b = LineCounter::shared(&tok);
        let (fa, fb) = (a.fast.as_ref().expect("a"), b.fast.as_ref().expect("b"));
        assert!(Arc::ptr_eq(fa, fb));
        // Another tokenizer, even an equal one, gets its own tables.
        let other = Arc::new(llama_like(true));
        let c = LineCounter::shared(&other);
        assert!(!Arc::ptr_eq(fa, c.fast.as_ref().expect("c")));
        let line = "[001]the data model of the corpus";
        let want = tok.encode_fast(line, true).expect("encode").len();
        for counter in [&a, &b, &c] {
            assert_eq!(counter.count(line, true).expect("count"), want);
        }
    }

    #[test]
    fn caches_of_two_counters_do_not_mix() {
        // One thread alternating between two tokenizers: each count is its own tokenizer's.
        let (a, b) = (llama_like(true), gpt2_like());
        let (ca, cb) = (LineCounter::new(&a), LineCounter::new(&b));
        let mut rng = Rng(7);
        for _ in 0..300 {
            let line = random_line(&mut rng);
            for (tok, counter) in [(&a, &ca), (&b, &cb)] {
                let want = tok.encode_fast(line.as_str(), true).expect("encode").len();
                assert_eq!(counter.count(&line, true).expect("count"), want, "{line:?}");
            }
        }
    }
}
