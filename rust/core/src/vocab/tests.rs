//! Tests of `vocab` on tokenizers trained here with the `tokenizers` trainer, over the texts in
//! tests/data/vocab (written for these tests).

use std::path::Path;

use serde_json::{json, Value};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::Tokenizer;

use super::*;
use crate::Error;

/// [`super::extend`] without progress reporting.
fn extend(
    base: &TokenizerFile,
    corpus: &[String],
    merge_from: Option<&TokenizerFile>,
    cfg: &ExtendConfig,
) -> crate::Result<Extension> {
    super::extend(base, corpus, merge_from, cfg, &crate::pipeline::NoProgress)
}

/// [`super::extension_report`] without progress reporting.
fn extension_report(
    base: &TokenizerFile,
    ext: &Extension,
    corpus: &[String],
    protect: &[String],
    cfg: &StatsConfig,
) -> crate::Result<Report> {
    super::extension_report(
        base,
        ext,
        corpus,
        protect,
        &[],
        cfg,
        &crate::pipeline::NoProgress,
    )
}

const EN: &str = include_str!("../../../../tests/data/vocab/en.txt");
const ZH: &str = include_str!("../../../../tests/data/vocab/zh_tw.txt");

fn train(pre: tokenizers::PreTokenizerWrapper, text: &str, vocab_size: usize) -> Tokenizer {
    let mut tok = Tokenizer::new(BPE::default());
    let alphabet = match &pre {
        tokenizers::PreTokenizerWrapper::ByteLevel(_) => {
            ByteLevel::alphabet().into_iter().collect()
        }
        _ => std::collections::HashSet::new(),
    };
    tok.with_pre_tokenizer(Some(pre));
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(1)
        .initial_alphabet(alphabet)
        .show_progress(false)
        .build()
        .into();
    tok.train(&mut trainer, text.lines()).expect("train");
    tok
}

/// A byte-level BPE (GPT-2 style, with `<|endoftext|>` as an added token).
fn byte_level(text: &str, vocab_size: usize) -> String {
    // GPT-2 adds no prefix space, so that decoding gives the text back exactly.
    let pre = ByteLevel::default().add_prefix_space(false);
    let mut tok = train(pre.into(), text, vocab_size);
    tok.with_decoder(Some(pre));
    tok.add_special_tokens([tokenizers::AddedToken::from("<|endoftext|>", true)])
        .expect("add");
    tok.to_string(true).expect("json")
}

/// A SentencePiece-style BPE: Metaspace, `<unk>`, byte fallback and a Llama-like decoder; with
/// `legacy`, the old Llama-2 layout (Prepend + Replace normalizer, no pre-tokenizer).
fn sentencepiece(text: &str, vocab_size: usize, legacy: bool) -> String {
    let tok = train(
        Metaspace::new('▁', PrependScheme::Always, true).into(),
        text,
        vocab_size,
    );
    let mut v: Value = serde_json::from_str(&tok.to_string(false).expect("json")).expect("parse");
    let model = &mut v["model"];
    let vocab = model["vocab"].as_object_mut().expect("vocab");
    let first = vocab.values().filter_map(Value::as_u64).max().expect("ids") + 1;
    let names =
        std::iter::once("<unk>".to_string()).chain((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    for (id, name) in (first..).zip(names) {
        vocab.insert(name, json!(id));
    }
    model["unk_token"] = json!("<unk>");
    model["byte_fallback"] = json!(true);
    model["fuse_unk"] = json!(true);
    v["decoder"] = json!({"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]});
    if legacy {
        v["normalizer"] = json!({"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]});
        v["pre_tokenizer"] = Value::Null;
    }
    serde_json::to_string_pretty(&v).expect("json")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

fn cfg(n: usize) -> ExtendConfig {
    ExtendConfig {
        new_tokens: Some(n),
        ..ExtendConfig::default()
    }
}

/// The conformance checks of the research notes (§6) on an extension of `base`.
fn assert_conformant(base: &TokenizerFile, ext: &Extension) -> TokenizerFile {
    let new = TokenizerFile::from_json("new", &ext.json).expect("reload");
    for (s, id) in base.vocab() {
        assert_eq!(new.vocab().get(s), Some(id), "old token {s:?}");
    }
    assert_eq!(
        new.tokenizer().get_added_tokens_decoder(),
        base.tokenizer().get_added_tokens_decoder()
    );
    let n = base.merges().len();
    assert_eq!(&new.merges()[..n], base.merges(), "old merges are a prefix");
    for (a, b) in &new.merges()[n..] {
        assert!(new.vocab().contains_key(a) && new.vocab().contains_key(b));
        assert!(!base.vocab().contains_key(&format!("{a}{b}")));
    }
    for (i, (s, id)) in ext.tokens.iter().enumerate() {
        assert_eq!(
            *id,
            base.next_id() + i as u32,
            "ids follow the largest old id"
        );
        let t = tokenizers::Model::tokenize(new.bpe(), s).expect("tokenize");
        assert_eq!(t.len(), 1, "{s:?} is reachable");
        assert_eq!(t[0].id, *id);
    }
    assert_eq!(new.merge_format(), base.merge_format());
    new
}

#[test]
fn byte_level_extension_keeps_old_text_and_compresses_new_text() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = TokenizerFile::from_json("base", &byte_level(EN, 400)).expect("base");
    assert_eq!(base.kind(), ModelKind::ByteLevel);
    let zh = write(dir.path(), "zh.txt", ZH);
    let en = write(dir.path(), "en.txt", EN);
    let ext = extend(&base, std::slice::from_ref(&zh), None, &cfg(150)).expect("extend");
    assert_eq!(ext.summary.new_tokens, 150);
    assert_eq!(
        ext.summary.characters_added, 0,
        "byte-level models need no characters"
    );
    assert_eq!(ext.summary.first_new_id, base.next_id());
    assert_conformant(&base, &ext);

    let report = extension_report(
        &base,
        &ext,
        std::slice::from_ref(&zh),
        &[en],
        &StatsConfig::default(),
    )
    .expect("report");
    let (t, b) = (
        &report.target.tokenizer,
        report.target.baseline.as_ref().expect("b"),
    );
    assert!(
        t.tokens_per_char < b.tokens_per_char * 0.7,
        "{t:?} vs {b:?}"
    );
    assert_eq!(t.round_trip_rate, 1.0, "byte-level round trip is exact");
    let inv = report.invariance.as_ref().expect("invariance");
    assert!(inv.rate >= 0.99, "{inv:?}");
    assert!(
        !inv.causes.contains_key("other"),
        "every change is explained"
    );
    let nt = report.new_tokens.as_ref().expect("new tokens");
    assert_eq!((nt.count, nt.unreachable), (150, 0));
    assert!(nt.used > 100);
    assert!(report.summary().contains("tokens per character"));

    // Protecting Chinese text that the corpus shares: every merge that would fire on it is
    // refused, so its ids stay.
    let first_lines: Vec<&str> = ZH.lines().take(3).collect();
    let mixed = write(dir.path(), "mixed.txt", &first_lines.join("\n"));
    let mut c = cfg(150);
    c.min_frequency = 1;
    c.protect = vec![mixed.clone()];
    let kept = extend(&base, std::slice::from_ref(&zh), None, &c).expect("protected");
    assert!(kept.summary.protected_skipped > 0, "{:?}", kept.summary);
    assert_conformant(&base, &kept);
    let report =
        extension_report(&base, &kept, &[zh], &[mixed], &StatsConfig::default()).expect("report");
    assert_eq!(report.invariance.expect("invariance").rate, 1.0);
}

#[test]
fn result_does_not_depend_on_threads() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = TokenizerFile::from_json("base", &byte_level(EN, 400)).expect("base");
    let zh = write(dir.path(), "zh.txt", &format!("{ZH}{EN}"));
    let mut c1 = cfg(120);
    c1.corpus.threads = 1;
    c1.corpus.batch_bytes = 256;
    let mut c2 = cfg(120);
    c2.corpus.threads = 2;
    let a = extend(&base, std::slice::from_ref(&zh), None, &c1).expect("1 thread");
    let b = extend(&base, &[zh], None, &c2).expect("2 threads");
    assert_eq!(a.json, b.json);
}

#[test]
fn sentencepiece_byte_fallback_adds_characters_first() {
    for legacy in [false, true] {
        let dir = tempfile::tempdir().expect("tmp");
        let base = TokenizerFile::from_json("base", &sentencepiece(EN, 300, legacy)).expect("base");
        assert_eq!(base.kind(), ModelKind::SentencePiece);
        assert!(base.byte_fallback());
        let zh = write(
            dir.path(),
            "zh.jsonl",
            &ZH.lines()
                .map(|l| json!({"text": l}).to_string() + "\n")
                .collect::<String>(),
        );
        let en = write(dir.path(), "en.txt", EN);
        let ext = extend(&base, std::slice::from_ref(&zh), None, &cfg(400)).expect("extend");
        let s = &ext.summary;
        assert!(s.characters_added > 100, "{s:?}");
        assert!(s.merges_added > 0, "{s:?}");
        assert!(ext.tokens[..s.characters_added]
            .iter()
            .all(|(t, _)| t.chars().count() == 1));
        assert!(ext.tokens.iter().any(|(t, _)| t == "臺"));
        assert_conformant(&base, &ext);
        let report = extension_report(
            &base,
            &ext,
            std::slice::from_ref(&zh),
            std::slice::from_ref(&en),
            &StatsConfig::default(),
        )
        .expect("report");
        let (t, b) = (
            &report.target.tokenizer,
            report.target.baseline.as_ref().expect("b"),
        );
        assert!(
            t.tokens_per_char < b.tokens_per_char / 2.0,
            "legacy={legacy}: {t:?} vs {b:?}"
        );
        assert_eq!(t.round_trip_rate, b.round_trip_rate);
        let inv = report.invariance.expect("invariance");
        assert!(inv.rate >= 0.99, "legacy={legacy}: {inv:?}");

        // Protecting text that shares characters and pairs with the corpus: the characters it
        // uses are not added, the merges that would fire on it are refused, its ids stay.
        let first_lines: Vec<&str> = ZH.lines().take(3).collect();
        let mixed = write(dir.path(), "mixed.txt", &first_lines.join("\n"));
        let mut c = cfg(400);
        c.protect = vec![mixed.clone(), en.clone()];
        let kept = extend(&base, std::slice::from_ref(&zh), None, &c).expect("protected");
        assert!(kept.summary.characters_added < s.characters_added);
        assert_conformant(&base, &kept);
        let report = extension_report(&base, &kept, &[zh], &[mixed, en], &StatsConfig::default())
            .expect("report");
        assert_eq!(report.invariance.expect("invariance").rate, 1.0);
    }
}

#[test]
fn merge_from_keeps_old_priority_and_reports_unreachable() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = TokenizerFile::from_json("base", &byte_level(EN, 400)).expect("base");
    let other =
        TokenizerFile::from_json("zh", &byte_level(&format!("{ZH}{EN}"), 900)).expect("other");
    let ext = extend(&base, &[], Some(&other), &ExtendConfig::default()).expect("merge");
    let m = ext.summary.merge_from.as_ref().expect("summary");
    assert_eq!(m.merges, other.merges().len());
    assert_eq!(
        m.added + m.already_present + m.missing_part + m.unreachable + m.unmergeable,
        m.merges
    );
    assert!(m.added > 100 && m.already_present > 0, "{m:?}");
    assert_eq!(m.unreachable_examples.len(), m.unreachable.min(50));
    assert_conformant(&base, &ext);
    // With a corpus too, learning continues after the merged tokens, up to the budget.
    let zh = write(dir.path(), "zh.txt", ZH);
    let mut c = cfg(m.added + 20);
    c.min_frequency = 1;
    let both = extend(&base, &[zh], Some(&other), &c).expect("both");
    assert_eq!(both.summary.new_tokens, m.added + 20);
    assert_eq!(
        both.tokens[..m.added],
        ext.tokens[..],
        "merged tokens come first"
    );
    assert_conformant(&base, &both);
    let sp = TokenizerFile::from_json("sp", &sentencepiece(ZH, 300, false)).expect("sp");
    let err = extend(&base, &[], Some(&sp), &ExtendConfig::default()).expect_err("kinds differ");
    assert_eq!(err.slug(), "incompatible_tokenizers");
}

/// A hand-made tokenizer: characters a–e, one merge, whitespace words.
fn tiny(merges: &str) -> TokenizerFile {
    tiny_with(r#""a":0,"b":1,"c":2,"d":3,"e":4,"de":5"#, merges)
}

fn tiny_with(vocab: &str, merges: &str) -> TokenizerFile {
    let json = format!(
        r#"{{"version":"1.0","added_tokens":[{{"id":6,"content":"<s>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}}],
        "normalizer":null,"pre_tokenizer":{{"type":"WhitespaceSplit"}},"post_processor":null,"decoder":null,
        "model":{{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,
        "fuse_unk":false,"byte_fallback":false,"ignore_merges":false,
        "vocab":{{{vocab}}},"merges":{merges}}}}}"#
    );
    TokenizerFile::from_json("tiny", &json).expect("tiny")
}

#[test]
fn learning_counts_pairs_and_breaks_ties_in_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = tiny(r#"[["d","e"]]"#);
    assert_eq!(base.next_id(), 7, "added tokens count for the next id");
    assert_eq!(base.added_outside_vocab(), [("<s>".to_string(), 6)]);
    // Old state: ab×3 [a b], abc [a b c], ca×2 [c a], cde×3 [c de], bc×2 [b c]. "ab" (4) goes
    // first, then "cde" (3); "bc" and "ca" then tie at 2 and "b" < "c" decides.
    let corpus = write(
        dir.path(),
        "c.txt",
        "ab ab ab <s> abc\nca ca cde cde cde\nbc bc\n",
    );
    let ext = extend(&base, std::slice::from_ref(&corpus), None, &cfg(3)).expect("extend");
    let new: Vec<(&str, u32)> = ext.tokens.iter().map(|(s, i)| (s.as_str(), *i)).collect();
    assert_eq!(new, [("ab", 7), ("cde", 8), ("bc", 9)]);
    let new_file = TokenizerFile::from_json("n", &ext.json).expect("reload");
    assert_eq!(
        &new_file.merges()[1..],
        [
            ("a".to_string(), "b".to_string()),
            ("c".to_string(), "de".to_string()),
            ("b".to_string(), "c".to_string())
        ]
    );
    // min_frequency stops learning: only "ab" (4) and "cde" (3) occur 3 times or more.
    let mut c = cfg(10);
    c.min_frequency = 3;
    let ext = extend(&base, &[corpus], None, &c).expect("extend");
    assert_eq!(ext.summary.new_tokens, 2);
    assert_eq!(ext.summary.stopped_by, "min_frequency");
}

#[test]
fn merge_from_skips_tokens_the_old_merges_never_form() {
    let base = tiny(r#"[["d","e"]]"#);
    let other = tiny_with(
        r#""c":0,"d":1,"e":2,"cd":3,"cde":4,"de":5"#,
        r#"[["c","d"],["cd","e"],["d","e"]]"#,
    );
    let ext = extend(&base, &[], Some(&other), &ExtendConfig::default()).expect("merge");
    let m = ext.summary.merge_from.as_ref().expect("summary");
    // "cd" is new and reachable; the base cuts "cde" as [c, de] (its old merge d+e wins), so
    // (cd, e) never meets; "de" is already there.
    assert_eq!((m.added, m.unreachable, m.already_present), (1, 1, 1));
    assert_eq!(m.unreachable_examples, ["cde"]);
    assert_eq!(ext.tokens, [("cd".to_string(), 7)]);
}

#[test]
fn legacy_merge_strings_and_padding() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = tiny(r#"["d e"]"#);
    assert_eq!(base.merge_format(), MergeFormat::Strings);
    let corpus = write(dir.path(), "c.txt", "ab ab ab\n");
    let mut c = cfg(1);
    c.pad_to_multiple_of = Some(64);
    let ext = extend(&base, &[corpus], None, &c).expect("extend");
    assert!(
        ext.json.contains(r#""merges":["d e","a b"]"#),
        "{}",
        ext.json
    );
    // The special token joins the model vocabulary with its id, so that it keeps it on reload.
    assert!(
        ext.json.contains(r#""de":5,"<s>":6,"ab":7}"#),
        "{}",
        ext.json
    );
    assert_eq!((ext.summary.next_id, ext.summary.embedding_rows), (8, 64));
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = tiny(r#"[["d","e"]]"#);
    let empty = write(dir.path(), "empty.txt", "\n  \n");
    let err = extend(&base, &[empty], None, &cfg(5)).expect_err("empty");
    assert!(matches!(err, Error::EmptyCorpus(_)), "{err}");
    let bad = write(dir.path(), "bad.jsonl", "{\"text\": \"ab\"}\n{oops\n");
    let err = extend(&base, std::slice::from_ref(&bad), None, &cfg(5)).expect_err("bad record");
    assert!(err.to_string().contains("bad.jsonl: line 2"), "{err}");
    let mut skip = cfg(5);
    skip.corpus.on_error = crate::io::OnError::Skip;
    skip.min_frequency = 1;
    let ext = extend(&base, &[bad], None, &skip).expect("skip");
    assert_eq!(
        ext.summary.corpus.as_ref().expect("c").skipped["invalid_json"],
        1
    );
    let err = extend(&base, &[], None, &cfg(5)).expect_err("no corpus");
    assert_eq!(err.slug(), "config");
}

#[test]
fn reference_words_no_merge_can_reach_leave_the_result_unchanged() {
    // Same-script target selection: half of the English text is the reference, the other half
    // the corpus. The learner skips reference words that share no pair with the corpus unless
    // merges are forced from another tokenizer; forcing the base's own merges (all present)
    // forces nothing, so both runs must learn the same merges and report the same invariance.
    let dir = tempfile::tempdir().expect("tmp");
    // Large enough that English is not a poorly covered script.
    let base = TokenizerFile::from_json("base", &byte_level(EN, 450)).expect("base");
    let lines: Vec<&str> = EN.lines().collect();
    let (a, b) = lines.split_at(lines.len() / 2);
    // A few corpus lines in the reference too: merges learned from them change its words.
    let shared = format!("{}\n{}", a.join("\n"), b[..3].join("\n"));
    let reference = write(dir.path(), "ref.txt", &shared);
    let corpus = write(dir.path(), "corpus.txt", &b.join("\n"));
    let mut c = cfg(80);
    c.min_frequency = 1;
    c.reference_ratio = 1.5;
    // The built-in reference too: its words without a corpus pair are left out before they
    // are segmented.
    let builtin = extend(&base, std::slice::from_ref(&corpus), None, &c).expect("builtin");
    let builtin_all = extend(&base, std::slice::from_ref(&corpus), Some(&base), &c).expect("all");
    assert!(builtin.summary.new_tokens > 20, "{:?}", builtin.summary);
    assert_eq!(builtin.json, builtin_all.json);
    assert_eq!(
        serde_json::to_value(&builtin.summary.selection).expect("json"),
        serde_json::to_value(&builtin_all.summary.selection).expect("json")
    );
    c.reference = vec![reference];
    let skipping = extend(&base, std::slice::from_ref(&corpus), None, &c).expect("auto");
    let all_words = extend(&base, &[corpus], Some(&base), &c).expect("auto, merge from");
    assert!(skipping.summary.new_tokens > 20, "{:?}", skipping.summary);
    assert_eq!(skipping.tokens, all_words.tokens);
    assert_eq!(skipping.json, all_words.json);
    let (s, w) = (
        skipping.summary.selection.as_ref().expect("selection"),
        all_words.summary.selection.as_ref().expect("selection"),
    );
    assert!(s.scripts.is_empty(), "same script: {:?}", s.scripts);
    assert!(s.reference_skipped > 0, "the reference decided something");
    assert_eq!(s.reference_skipped, w.reference_skipped);
    assert_eq!(
        serde_json::to_value(&s.reference_invariance).expect("json"),
        serde_json::to_value(&w.reference_invariance).expect("json")
    );
    assert!(
        s.reference_invariance.rate < 1.0,
        "some reference words changed"
    );
}

#[test]
fn merge_rank_segmentation_equals_the_model_on_both_kinds() {
    // tamis segments words by merge rank itself where the model allows it; the ids must be the
    // model's own, with byte fallback (characters outside the vocabulary) and without.
    let text = format!("{ZH}{EN}");
    for (name, json) in [
        ("byte-level", byte_level(&text, 500)),
        ("sentencepiece", sentencepiece(EN, 300, false)),
    ] {
        let file = TokenizerFile::from_json(name, &json).expect("load");
        let ranked = super::bpe::RankedMerges::new(file.bpe(), file.merges()).expect("plain BPE");
        let mut checked = 0;
        for w in text.split_whitespace() {
            let word = match file.kind() {
                ModelKind::ByteLevel => format!(" {w}")
                    .bytes()
                    .map(crate::prox::count::byte_char)
                    .collect(),
                _ => format!("▁{w}"),
            };
            let expected: Vec<u32> = tokenizers::Model::tokenize(file.bpe(), &word)
                .expect("tokenize")
                .into_iter()
                .map(|t| t.id)
                .collect();
            assert_eq!(ranked.segment(&word), expected, "{name} {word:?}");
            checked += 1;
        }
        assert!(checked > 200, "{name}: {checked} words");
    }
}
