//! Segmenting words with a BPE model's merges, as `tokenizers` does, for the hundreds of
//! thousands of short distinct words `extend` segments (the built-in reference alone: about
//! 270,000). `tokenizers` builds a heap per word and goes through its cache's lock; a scan of
//! the adjacent pairs for the lowest rank does the same merges in a fraction of the time on
//! words of a few symbols.

use rustc_hash::FxHashMap;
use tokenizers::models::bpe::BPE;
use tokenizers::Model;

/// Longer words go to `tokenizers`: each merge here scans all the pairs.
const MAX_SYMBOLS: usize = 48;

/// A BPE model's merges by pair, for models that `tokenizers` segments by merge rank alone.
pub(crate) struct RankedMerges<'m> {
    model: &'m BPE,
    /// Single-character tokens.
    chars: FxHashMap<char, u32>,
    /// (left, right) → (rank, merged id).
    merges: FxHashMap<(u32, u32), (u32, u32)>,
}

impl<'m> RankedMerges<'m> {
    /// `merges`: the model's merges as strings, in rank order. `None` for the models that
    /// `tokenizers` segments otherwise (dropout, whole-word lookup, subword prefix or suffix).
    pub(crate) fn new(model: &'m BPE, merges: &[(String, String)]) -> Option<Self> {
        if model.dropout.is_some_and(|d| d > 0.0)
            || model.ignore_merges
            || model.continuing_subword_prefix.is_some()
            || model.end_of_word_suffix.is_some()
        {
            return None;
        }
        let mut chars = FxHashMap::default();
        for (s, id) in model.get_vocab() {
            let mut it = s.chars();
            if let (Some(c), None) = (it.next(), it.next()) {
                chars.insert(c, id);
            }
        }
        let mut by_pair = FxHashMap::default();
        by_pair.reserve(merges.len());
        for (rank, (a, b)) in merges.iter().enumerate() {
            let a_id = model.token_to_id(a)?;
            let b_id = model.token_to_id(b)?;
            let new_id = model.token_to_id(&format!("{a}{b}"))?;
            // As `tokenizers` builds its map: a repeated pair keeps its last rank.
            by_pair.insert((a_id, b_id), (rank as u32, new_id));
        }
        Some(RankedMerges {
            model,
            chars,
            merges: by_pair,
        })
    }

    /// The ids of `word` under the merges, as the model's own `tokenize` gives them.
    pub(crate) fn segment(&self, word: &str) -> Vec<u32> {
        self.quick(word).unwrap_or_else(|| {
            self.model
                .tokenize(word)
                .map(|t| t.into_iter().map(|t| t.id).collect())
                .unwrap_or_default()
        })
    }

    /// Lowest rank first, leftmost first among equal ranks (the order of `tokenizers`' heap);
    /// `None` for a character outside the vocabulary (unknown or byte-fallback handling) or a
    /// long word.
    fn quick(&self, word: &str) -> Option<Vec<u32>> {
        let mut ids: Vec<u32> = Vec::with_capacity(word.len());
        for c in word.chars() {
            ids.push(*self.chars.get(&c)?);
            if ids.len() > MAX_SYMBOLS {
                return None;
            }
        }
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for (i, p) in ids.windows(2).enumerate() {
                if let Some(&(rank, new_id)) = self.merges.get(&(p[0], p[1])) {
                    if best.is_none_or(|(r, _, _)| rank < r) {
                        best = Some((rank, i, new_id));
                    }
                }
            }
            let Some((_, i, new_id)) = best else {
                return Some(ids);
            };
            ids[i] = new_id;
            ids.remove(i + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::models::bpe::BpeTrainerBuilder;
    use tokenizers::models::TrainerWrapper;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::Tokenizer;

    const EN: &str = include_str!("../../../../tests/data/vocab/en.txt");
    const ZH: &str = include_str!("../../../../tests/data/vocab/zh_tw.txt");

    #[test]
    fn same_ids_as_tokenizers_on_every_word() {
        let mut tok = Tokenizer::new(BPE::default());
        let pre = ByteLevel::default().add_prefix_space(false);
        tok.with_pre_tokenizer(Some(pre));
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(600)
            .min_frequency(1)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .show_progress(false)
            .build()
            .into();
        tok.train(&mut trainer, EN.lines()).expect("train");
        let file =
            super::super::TokenizerFile::from_json("t", &tok.to_string(false).expect("json"))
                .expect("load");
        let quick = RankedMerges::new(file.bpe(), file.merges()).expect("plain BPE");
        let text = format!("{EN}{ZH} aaaaaaa abababab {}", "x".repeat(200));
        let mut words = 0;
        for line in text.lines() {
            let enc = file.tokenizer().encode(line, false).expect("encode");
            let pre = enc.get_tokens();
            // The pre-tokenized words, each segmented on its own by both.
            let mut pieces: Vec<String> = Vec::new();
            let normalized = tokenizers::PreTokenizedString::from(line);
            let mut normalized = normalized;
            tokenizers::PreTokenizer::pre_tokenize(
                file.tokenizer().get_pre_tokenizer().expect("pre"),
                &mut normalized,
            )
            .expect("pre-tokenize");
            for (s, _, _) in normalized.get_splits(
                tokenizers::OffsetReferential::Original,
                tokenizers::OffsetType::Byte,
            ) {
                pieces.push(s.to_string());
            }
            assert!(!pre.is_empty() || line.is_empty());
            for w in pieces {
                let expected: Vec<u32> = file
                    .bpe()
                    .tokenize(&w)
                    .expect("tokenize")
                    .into_iter()
                    .map(|t| t.id)
                    .collect();
                assert_eq!(quick.segment(&w), expected, "{w:?}");
                words += 1;
            }
        }
        assert!(words > 300, "{words} words");
    }
}
