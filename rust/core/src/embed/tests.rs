use super::*;
use crate::vocab::TokenizerFile;

/// A SentencePiece-style BPE with byte fallback whose old vocabulary has the three UTF-8 bytes
/// of 龍 (E9 BE 8D); the new one adds 龍 itself.
fn byte_fallback(new: bool) -> TokenizerFile {
    let extra = if new { r#", "龍": 6"# } else { "" };
    let json = format!(
        r#"{{"version":"1.0","added_tokens":[{{"id":0,"content":"<unk>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}}],
        "normalizer":null,"pre_tokenizer":{{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false}},
        "post_processor":null,"decoder":null,
        "model":{{"type":"BPE","dropout":null,"unk_token":"<unk>","continuing_subword_prefix":null,"end_of_word_suffix":null,
        "fuse_unk":true,"byte_fallback":true,"ignore_merges":false,
        "vocab":{{"<unk>":0,"<0xE9>":1,"<0xBE>":2,"<0x8D>":3,"▁":4,"a":5{extra}}},"merges":[]}}}}"#
    );
    TokenizerFile::from_json(if new { "new.json" } else { "old.json" }, &json).expect("tokenizer")
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

/// A checkpoint on disk whose matrices have padding rows (Qwen-style, 8 rows for 6 ids) that the
/// new token lands on, with another tensor between them: the written file equals the rows
/// computed in memory, so runs of old rows copied file to file line up with computed ones.
#[test]
fn checkpoint_rows_copied_from_the_file_equal_rows_computed_in_memory() {
    use safetensors::tensor::{Dtype as StDtype, TensorView};
    let dir = tempfile::tempdir().expect("dir");
    let model = dir.path().join("model");
    std::fs::create_dir(&model).expect("mkdir");
    let mut rows: Vec<[f32; 4]> = SP_ROWS.to_vec();
    rows.push([9.0, 9.0, 9.0, 9.0]); // padding row 6: the new id lands here
    rows.push([7.0, 7.0, 7.0, 7.0]); // padding row 7: stays
    let out_rows: Vec<[f32; 4]> = rows.iter().map(|r| r.map(|v| -2.0 * v + 0.25)).collect();
    let (embed, head) = (bytes(&rows, Dtype::BF16), bytes(&out_rows, Dtype::BF16));
    let other: Vec<u8> = (0..24u8).collect();
    let tensors = [
        (
            "model.embed_tokens.weight",
            TensorView::new(StDtype::BF16, vec![8, 4], &embed).expect("view"),
        ),
        (
            "model.layers.0.other",
            TensorView::new(StDtype::U8, vec![24], &other).expect("view"),
        ),
        (
            "lm_head.weight",
            TensorView::new(StDtype::BF16, vec![8, 4], &head).expect("view"),
        ),
    ];
    safetensors::serialize_to_file(tensors, None, &model.join("model.safetensors")).expect("write");
    std::fs::write(
        model.join("config.json"),
        r#"{"model_type": "llama", "vocab_size": 8, "tie_word_embeddings": false}"#,
    )
    .expect("config");
    let (old, new) = (byte_fallback(false), byte_fallback(true));
    let cfg = CheckpointConfig {
        init: InitConfig {
            pad_to_multiple_of: 8,
            ..InitConfig::default()
        },
        ..CheckpointConfig::default()
    };
    let out = dir.path().join("out");
    init_checkpoint(&model, &old, &new, &out, &cfg).expect("init");

    let plan = Plan::new(&old, &new).expect("plan");
    let m = Matrix::new(&embed, Dtype::BF16, 8, 4).expect("m");
    let o = Matrix::new(&head, Dtype::BF16, 8, 4).expect("o");
    let init = Initializer::new("m", &plan, &cfg.init, m, Some(o)).expect("init");
    let written = std::fs::read(out.join("model.safetensors")).expect("read");
    let st = safetensors::SafeTensors::deserialize(&written).expect("safetensors");
    let e = st.tensor("model.embed_tokens.weight").expect("embed");
    assert_eq!(e.shape(), [8, 4]);
    assert_eq!(e.data(), init.rows(Which::Input, 0, 8).as_slice());
    assert_eq!(
        st.tensor("lm_head.weight").expect("head").data(),
        init.rows(Which::Output, 0, 8).as_slice()
    );
    assert_eq!(
        st.tensor("model.layers.0.other").expect("other").data(),
        &other[..]
    );
    // Row 6 was overwritten with 龍's row, row 7 kept bit for bit.
    let e = floats(e.data(), Dtype::BF16);
    assert_eq!(
        &e[24..28],
        &[1.0 / 3.0, 2.0 / 3.0, 1.0, 0.0].map(|v| half::bf16::from_f32(v).to_f32())
    );
    assert_eq!(&e[28..32], &[7.0; 4]);
}

/// The branch-free bf16 cast equals `half`'s on special values and on a spread of bit patterns.
#[test]
fn bf16_cast_matches_half() {
    let mut specials = vec![
        0u32,
        0x8000_0000,
        0x7F80_0000,
        0xFF80_0000,
        0x7FC0_0000,
        0x7F80_0001,
        0xFFFF_FFFF,
        0x7F7F_FFFF,
        0x3F80_8000,
        0x3F81_8000,
        0x3F80_8001,
        0x3F80_7FFF,
        0x0000_8000,
        0x0001_8000,
    ];
    specials.extend((0..=u32::MAX).step_by(65_521));
    for x in specials {
        let v = f32::from_bits(x);
        let mut ours = [0u8; 2];
        Dtype::BF16.write(&[v], &mut ours);
        assert_eq!(
            u16::from_le_bytes(ours),
            half::bf16::from_f32(v).to_bits(),
            "{x:#010x}"
        );
    }
}

/// Writing block after block (the next block computed while one is written) gives the rows
/// computed in one piece, across several blocks and a short last one.
#[test]
fn blockwise_writing_equals_rows() {
    let (old, new) = (byte_fallback(false), byte_fallback(true));
    let plan = Plan::new(&old, &new).expect("plan");
    let rows: Vec<[f32; 4]> = (0..2500).map(|i| [i as f32, 0.5, -1.0, 2.0]).collect();
    let data = bytes(&rows, Dtype::BF16);
    let m = Matrix::new(&data, Dtype::BF16, rows.len(), 4).expect("matrix");
    let cfg = InitConfig {
        pad_to_multiple_of: 64,
        ..InitConfig::default()
    };
    let init = Initializer::new("m", &plan, &cfg, m, None).expect("init");
    let mut out: Vec<u8> = Vec::new();
    init.write_matrix(Which::Input, &mut out).expect("write");
    assert_eq!(init.rows_out(), 2500); // three blocks, the last one short
    assert_eq!(out, init.rows(Which::Input, 0, init.rows_out()));
}
