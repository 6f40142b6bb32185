use super::*;
use crate::vocab::TokenizerFile;

/// A SentencePiece-style BPE with byte fallback whose old vocabulary has the three UTF-8 bytes
/// of 龍 (E9 BE 8D); the new one adds 龍 itself.
fn byte_fallback(new: bool) -> TokenizerFile {
    TokenizerFile::from_json(
        if new { "new.json" } else { "old.json" },
        &byte_fallback_json(new),
    )
    .expect("tokenizer")
}

fn byte_fallback_json(new: bool) -> String {
    let extra = if new { r#", "龍": 6"# } else { "" };
    format!(
        r#"{{"version":"1.0","added_tokens":[{{"id":0,"content":"<unk>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}}],
        "normalizer":null,"pre_tokenizer":{{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false}},
        "post_processor":null,"decoder":null,
        "model":{{"type":"BPE","dropout":null,"unk_token":"<unk>","continuing_subword_prefix":null,"end_of_word_suffix":null,
        "fuse_unk":true,"byte_fallback":true,"ignore_merges":false,
        "vocab":{{"<unk>":0,"<0xE9>":1,"<0xBE>":2,"<0x8D>":3,"▁":4,"a":5{extra}}},"merges":[]}}}}"#
    )
}

/// The same on a byte-level BPE: E9 is `é`, BE is `¾`, 8D is `į` in GPT-2's byte alphabet.
fn byte_level(new: bool) -> TokenizerFile {
    let (extra, merges) = if new {
        (r#", "é¾": 4, "é¾į": 5"#, r#"[["é","¾"],["é¾","į"]]"#)
    } else {
        ("", "[]")
    };
    let json = format!(
        r#"{{"version":"1.0","added_tokens":[],"normalizer":null,
        "pre_tokenizer":{{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}},
        "post_processor":null,"decoder":{{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}},
        "model":{{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,
        "fuse_unk":false,"byte_fallback":false,"ignore_merges":false,
        "vocab":{{"é":0,"¾":1,"į":2,"a":3{extra}}},"merges":{merges}}}}}"#
    );
    TokenizerFile::from_json(if new { "new.json" } else { "old.json" }, &json).expect("tokenizer")
}

fn bytes(rows: &[[f32; 4]], dtype: Dtype) -> Vec<u8> {
    rows.iter()
        .flat_map(|r| {
            r.iter().flat_map(move |v| match dtype {
                Dtype::F32 => v.to_le_bytes().to_vec(),
                Dtype::F16 => half::f16::from_f32(*v).to_le_bytes().to_vec(),
                Dtype::BF16 => half::bf16::from_f32(*v).to_le_bytes().to_vec(),
            })
        })
        .collect()
}

fn floats(b: &[u8], dtype: Dtype) -> Vec<f32> {
    match dtype {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

const SP_ROWS: [[f32; 4]; 6] = [
    [0.5, 0.5, 0.5, 0.5],
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 2.0, 0.0, 0.0],
    [0.0, 0.0, 3.0, 0.0],
    [0.0, 0.0, 0.0, 4.0],
    [-1.0, -1.0, -1.0, -1.0],
];

fn run(
    old: &TokenizerFile,
    new: &TokenizerFile,
    rows: &[[f32; 4]],
    out_rows: Option<&[[f32; 4]]>,
    dtype: Dtype,
    cfg: &InitConfig,
) -> (Vec<f32>, Option<Vec<f32>>, usize) {
    let plan = Plan::new(old, new).expect("plan");
    let data = bytes(rows, dtype);
    let out_data = out_rows.map(|r| bytes(r, dtype));
    let m = Matrix::new(&data, dtype, rows.len(), 4).expect("matrix");
    let o = out_data
        .as_deref()
        .map(|d| Matrix::new(d, dtype, rows.len(), 4).expect("matrix"));
    let init = Initializer::new("m", &plan, cfg, m, o).expect("init");
    let n = init.rows_out();
    let a = floats(&init.rows(Which::Input, 0, n), dtype);
    let b = o.map(|_| floats(&init.rows(Which::Output, 0, n), dtype));
    // Old rows are bit-identical.
    assert_eq!(init.rows(Which::Input, 0, rows.len()), data);
    (a, b, n)
}

#[test]
fn ziptie_hand_computed_on_byte_fallback_in_f32_exactly() {
    let (old, new) = (byte_fallback(false), byte_fallback(true));
    let plan = Plan::new(&old, &new).expect("plan");
    assert_eq!(plan.new_tokens.len(), 1);
    assert_eq!(plan.new_tokens[0].token, "龍");
    assert_eq!(plan.new_tokens[0].pieces, vec![1, 2, 3]);
    let cfg = InitConfig {
        pad_to_multiple_of: 8,
        ..InitConfig::default()
    };
    let (a, _, n) = run(&old, &new, &SP_ROWS, None, Dtype::F32, &cfg);
    assert_eq!(n, 8);
    assert_eq!(&a[24..28], &[1.0 / 3.0, 2.0 / 3.0, 1.0, 0.0]);
    // The padding row 7 gets the mean of all old rows.
    let mean: Vec<f32> = (0..4)
        .map(|j| (SP_ROWS.iter().map(|r| f64::from(r[j])).sum::<f64>() / 6.0) as f32)
        .collect();
    for (x, y) in a[28..32].iter().zip(&mean) {
        assert!((x - y).abs() < 1e-6);
    }
}

#[test]
fn ziptie_in_half_precision_within_rounding() {
    let (old, new) = (byte_fallback(false), byte_fallback(true));
    for dtype in [Dtype::F16, Dtype::BF16] {
        let (a, _, _) = run(&old, &new, &SP_ROWS, None, dtype, &InitConfig::default());
        let tol = if dtype == Dtype::F16 { 1e-3 } else { 8e-3 };
        for (x, y) in a[24..28].iter().zip([1.0 / 3.0, 2.0 / 3.0, 1.0, 0.0]) {
            assert!((x - y).abs() <= tol * y.max(1.0), "{dtype:?}: {x} vs {y}");
        }
    }
}

#[test]
fn ziptie_on_byte_level_bpe() {
    let (old, new) = (byte_level(false), byte_level(true));
    let plan = Plan::new(&old, &new).expect("plan");
    let pieces: Vec<(&str, &[u32])> = plan
        .new_tokens
        .iter()
        .map(|t| (t.token.as_str(), &t.pieces[..]))
        .collect();
    assert_eq!(pieces, vec![("é¾", &[0, 1][..]), ("é¾į", &[0, 1, 2][..])]);
    let rows = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 2.0, 0.0, 0.0],
        [0.0, 0.0, 3.0, 0.0],
        [0.0, 0.0, 0.0, 4.0],
    ];
    let (a, _, n) = run(&old, &new, &rows, None, Dtype::F32, &InitConfig::default());
    assert_eq!(n, 64);
    assert_eq!(&a[16..20], &[0.5, 1.0, 0.0, 0.0]);
    assert_eq!(&a[20..24], &[1.0 / 3.0, 2.0 / 3.0, 1.0, 0.0]);
}

#[test]
fn output_init_mean_first_and_tie() {
    let (old, new) = (byte_fallback(false), byte_fallback(true));
    let out: Vec<[f32; 4]> = SP_ROWS.iter().map(|r| r.map(|v| 10.0 * v + 1.0)).collect();
    let cfg = |output_init| InitConfig {
        output_init,
        ..InitConfig::default()
    };
    let (a, b, _) = run(
        &old,
        &new,
        &SP_ROWS,
        Some(&out),
        Dtype::F32,
        &cfg(OutputInit::Mean),
    );
    assert_eq!(
        &b.expect("out")[24..28],
        &[13.0 / 3.0, 23.0 / 3.0, 11.0, 1.0]
    );
    let (_, b, _) = run(
        &old,
        &new,
        &SP_ROWS,
        Some(&out),
        Dtype::F32,
        &cfg(OutputInit::First),
    );
    assert_eq!(&b.expect("out")[24..28], &[11.0, 1.0, 1.0, 1.0]);
    let (_, b, _) = run(
        &old,
        &new,
        &SP_ROWS,
        Some(&out),
        Dtype::F32,
        &cfg(OutputInit::Tie),
    );
    let b = b.expect("out");
    assert_eq!(&b[24..28], &a[24..28]);
    // Old lm_head rows are untouched.
    assert_eq!(&b[..24], &out.concat()[..]);
}

#[test]
fn baselines_and_rescaling() {
    let (old, new) = (byte_fallback(false), byte_fallback(true));
    let cfg = |method, seed| InitConfig {
        method,
        seed,
        ..InitConfig::default()
    };
    let mean: Vec<f32> = (0..4)
        .map(|j| (SP_ROWS.iter().map(|r| f64::from(r[j])).sum::<f64>() / 6.0) as f32)
        .collect();
    let (a, _, _) = run(
        &old,
        &new,
        &SP_ROWS,
        None,
        Dtype::F32,
        &cfg(Method::Mean, 0),
    );
    assert_eq!(&a[24..28], &mean[..]);
    let (a, _, _) = run(
        &old,
        &new,
        &SP_ROWS,
        None,
        Dtype::F32,
        &cfg(Method::MeanResizing, 0),
    );
    assert_ne!(&a[24..28], &mean[..], "a sample, not the mean itself");
    for (x, y) in a[24..28].iter().zip(&mean) {
        assert!((x - y).abs() < 1e-3, "{x} vs {y}");
    }
    let (r0, _, _) = run(
        &old,
        &new,
        &SP_ROWS,
        None,
        Dtype::F32,
        &cfg(Method::Random, 0),
    );
    let (r0b, _, _) = run(
        &old,
        &new,
        &SP_ROWS,
        None,
        Dtype::F32,
        &cfg(Method::Random, 0),
    );
    let (r1, _, _) = run(
        &old,
        &new,
        &SP_ROWS,
        None,
        Dtype::F32,
        &cfg(Method::Random, 1),
    );
    assert_eq!(r0, r0b, "seeded");
    assert_ne!(r0[24..28], r1[24..28]);
    assert!(r0[24..28].iter().all(|v| v.abs() < 0.2));
    // The median old norm of SP_ROWS is 2 (norms 1, 1, 2, 2, 3, 4).
    let c = InitConfig {
        rescale_norm: true,
        ..InitConfig::default()
    };
    let (a, _, _) = run(&old, &new, &SP_ROWS, None, Dtype::F32, &c);
    let norm: f32 = a[24..28].iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 2.0).abs() < 1e-6, "{norm}");
}

#[test]
fn random_rows_have_the_stated_spread() {
    let mut rng = init::tests_rng(7);
    let mut v = vec![0f32; 100_000];
    rng.normals(&mut v);
    let mean = v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len() as f64;
    let var = v
        .iter()
        .map(|x| (f64::from(*x) - mean).powi(2))
        .sum::<f64>()
        / v.len() as f64;
    assert!(
        mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
        "{mean} {var}"
    );
}

#[test]
fn refuses_non_extensions_and_small_matrices() {
    let (old, new) = (byte_fallback(false), byte_fallback(true));
    let e = Plan::new(&new, &old).map(|_| ());
    // Dropping an id is not an extension.
    assert_eq!(e.expect_err("dropped id").slug(), "not_an_extension");
    let other = byte_level(true);
    assert_eq!(
        Plan::new(&old, &other).expect_err("changed ids").slug(),
        "not_an_extension"
    );
    let plan = Plan::new(&old, &new).expect("plan");
    let data = bytes(&SP_ROWS[..3], Dtype::F32);
    let m = Matrix::new(&data, Dtype::F32, 3, 4).expect("matrix");
    let e = Initializer::new("m", &plan, &InitConfig::default(), m, None).map(|_| ());
    assert_eq!(e.expect_err("too few").slug(), "too_few_rows");
    assert!(Matrix::new(&data, Dtype::F32, 4, 4).is_err());
}

/// An added token moved to a new id in the file (its vocabulary entry left in place): the
/// tokenizers library would still give it the old id, other loaders the new one; refused.
#[test]
fn refuses_an_old_token_moved_to_a_new_id() {
    let json = byte_fallback_json(false).replace(
        r#"{"id":0,"content":"<unk>""#,
        r#"{"id":6,"content":"<unk>""#,
    );
    let e = TokenizerFile::from_json("moved.json", &json)
        .map(|_| ())
        .expect_err("moved");
    assert_eq!(e.slug(), "invalid_tokenizer");
    let m = e.to_string();
    assert!(
        m.contains("moved.json")
            && m.contains("\"<unk>\" has id 6 in the file, but the tokenizer gives it id 0"),
        "{m}"
    );
}
