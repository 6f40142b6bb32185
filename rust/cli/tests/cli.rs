//! End-to-end tests of the `tamis` binary in temporary directories.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn tamis(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tamis"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run tamis")
}

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).expect("write");
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn corpus(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        // Every third document repeats an earlier one; lengths vary so batches split unevenly.
        let k = if i % 3 == 2 { i / 2 } else { i };
        s.push_str(&format!(
            "{{\"id\":\"d{i}\",\"text\":\"doc {k} {}\",\"meta\":{{\"n\":{i}}}}}\n",
            "lorem ipsum ".repeat(k % 97)
        ));
    }
    s
}

#[test]
fn exact_dedup_keeps_first_occurrences_and_passes_fields_through() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "a.jsonl", "{\"id\":\"1\",\"text\":\"hello\",\"x\":[1,2.50,{\"y\":null}]}\n\n{\"id\":\"2\",\"text\":\"hello\"}\r\n{\"text\":\"other\"}\n");
    let o = tamis(
        dir.path(),
        &[
            "dedup",
            "exact",
            "a.jsonl",
            "-o",
            "out.jsonl",
            "--stats-json",
            "s.json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("out");
    assert_eq!(
        out,
        "{\"id\":\"1\",\"text\":\"hello\",\"x\":[1,2.50,{\"y\":null}]}\n{\"text\":\"other\",\"id\":\"a.jsonl:4\"}\n"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).expect("stats"))
            .expect("json");
    assert_eq!(stats["documents_read"], 3);
    assert_eq!(stats["documents_kept"], 2);
    assert_eq!(stats["documents_removed"]["duplicate"], 1);
}

#[test]
fn output_is_identical_for_any_thread_count() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "c.jsonl", &corpus(30_000));
    for (threads, out) in [("1", "t1.jsonl.gz"), ("4", "t4.jsonl.gz")] {
        let o = tamis(
            dir.path(),
            &["--threads", threads, "dedup", "exact", "c.jsonl", "-o", out],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    for (threads, out) in [("1", "l1.jsonl"), ("3", "l3.jsonl")] {
        let o = tamis(
            dir.path(),
            &["--threads", threads, "dedup", "lines", "c.jsonl", "-o", out],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let read = |n: &str| std::fs::read(dir.path().join(n)).expect("read");
    assert_eq!(read("t1.jsonl.gz"), read("t4.jsonl.gz"));
    assert_eq!(read("l1.jsonl"), read("l3.jsonl"));
    // Each document is one line, so line dedup keeps exactly the distinct documents.
    let distinct: std::collections::HashSet<usize> = (0..30_000)
        .map(|i| if i % 3 == 2 { i / 2 } else { i })
        .collect();
    assert_eq!(
        String::from_utf8(read("l1.jsonl"))
            .expect("utf8")
            .lines()
            .count(),
        distinct.len()
    );
}

#[test]
fn bad_record_fails_with_file_and_line_and_leaves_no_output() {
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "bad.jsonl",
        "{\"text\":\"ok\"}\n{\"text\": 5}\n",
    );
    let o = tamis(
        dir.path(),
        &["dedup", "exact", "bad.jsonl", "-o", "out.jsonl"],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("bad.jsonl: line 2:") && err.contains("not a string"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["bad.jsonl"]);
}

#[test]
fn skip_mode_counts_and_writes_rejects() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut bytes =
        b"{\"text\":\"ok\"}\nnot json\n{\"text\":\"\xff\"}\n{\"body\":\"x\"}\n".to_vec();
    bytes.extend_from_slice(b"{\"text\":\"ok\"}\n");
    std::fs::write(dir.path().join("bad.jsonl"), bytes).expect("write");
    let args = [
        "dedup",
        "exact",
        "bad.jsonl",
        "-o",
        "out.jsonl",
        "--on-error",
        "skip",
        "--rejects",
        "rej.jsonl",
        "--stats-json",
        "s.json",
    ];
    let o = tamis(dir.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let rejects = std::fs::read_to_string(dir.path().join("rej.jsonl")).expect("rejects");
    let reasons: Vec<String> = rejects
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["reason"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(reasons, ["invalid_json", "invalid_utf8", "missing_text"]);
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).expect("stats"))
            .expect("json");
    assert_eq!(stats["documents_read"], 5);
    assert_eq!(stats["documents_kept"], 1);
    assert_eq!(stats["documents_removed"]["duplicate"], 1);
    assert_eq!(stats["records_skipped"]["invalid_json"], 1);
}

#[test]
fn multi_member_gzip_is_read_whole_and_truncation_is_an_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut all = Vec::new();
    for part in ["{\"text\":\"a\"}\n", "{\"text\":\"b\"}\n{\"text\":\"a\"}\n"] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(part.as_bytes()).expect("gz");
        all.extend(gz.finish().expect("gz"));
    }
    std::fs::write(dir.path().join("m.jsonl.gz"), &all).expect("write");
    let o = tamis(dir.path(), &["dedup", "exact", "m.jsonl.gz", "-o", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "{\"text\":\"a\",\"id\":\"m.jsonl.gz:1\"}\n{\"text\":\"b\",\"id\":\"m.jsonl.gz:2\"}\n"
    );
    std::fs::write(dir.path().join("t.jsonl.gz"), &all[..all.len() - 12]).expect("write");
    let o = tamis(
        dir.path(),
        &["dedup", "exact", "t.jsonl.gz", "-o", "t.out.jsonl"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("t.jsonl.gz: line"), "{}", stderr(&o));
    assert!(!dir.path().join("t.out.jsonl").exists());
}

#[test]
fn usage_errors_exit_2_and_broken_pipe_exits_quietly() {
    let dir = tempfile::tempdir().expect("tmp");
    assert_eq!(
        tamis(dir.path(), &["dedup", "exact", "x.jsonl"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(tamis(dir.path(), &["dedup", "nope"]).status.code(), Some(2));
    write(dir.path(), "c.jsonl", &corpus(50_000));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tamis"))
        .current_dir(dir.path())
        .args(["dedup", "exact", "c.jsonl", "-o", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read one line, then hang up.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("read");
    drop(stdout);
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("error"), "{}", stderr(&o));
}

#[test]
fn parquet_round_trip_keeps_fields() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "a.jsonl", "{\"id\":\"1\",\"text\":\"x\",\"n\":3,\"tags\":[\"a\"]}\n{\"id\":\"2\",\"text\":\"y\",\"n\":4,\"tags\":[]}\n");
    let o = tamis(
        dir.path(),
        &["dedup", "exact", "a.jsonl", "-o", "a.parquet"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tamis(dir.path(), &["dedup", "exact", "a.parquet", "-o", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "{\"id\":\"1\",\"text\":\"x\",\"n\":3,\"tags\":[\"a\"]}\n{\"id\":\"2\",\"text\":\"y\",\"n\":4,\"tags\":[]}\n"
    );
}

#[test]
fn demo_runs_on_the_built_in_text() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = Command::new(env!("CARGO_BIN_EXE_tamis"))
        .args(["demo", "--out-dir"])
        .arg(dir.path())
        .env("TAMIS_PYTHON", "/nonexistent/python")
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    // The main job, with the Python stages skipped and said so.
    assert!(
        text.contains("built-in sample text") && text.contains("dedup_near"),
        "{text}"
    );
    assert!(dir.path().join("refined").join("report.html").is_file());
    let report =
        std::fs::read_to_string(dir.path().join("refined").join("report.json")).expect("report");
    let report: serde_json::Value = serde_json::from_str(&report).expect("json");
    assert_eq!(report["shards"], 4);
    // Language ID runs in the binary (lid.176.ftz built in): the planted documents in other
    // languages are identified and dropped, and the report has the distribution.
    let language = report["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|s| s["name"] == "language")
        .expect("language stage");
    assert_eq!(language["status"], "ran", "{language}");
    assert!(language["dropped"]["language"].as_u64().unwrap_or(0) >= 3);
    let langs = report["languages"].as_object().expect("languages");
    assert!(langs["en"]["kept"].as_u64().unwrap_or(0) > 30, "{langs:?}");
    for other in ["fr", "de", "es"] {
        assert_eq!(langs[other]["kept"], 0, "{langs:?}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_tamis"))
        .args(["demo", "--dedup-only", "--out-dir"])
        .arg(dir.path().join("d"))
        .env("TAMIS_PYTHON", "/nonexistent/python")
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("removed"));
    for f in ["exact.jsonl.gz", "clean.jsonl.gz"] {
        assert!(dir.path().join("d").join(f).exists(), "{f}");
    }
}

/// Writing to a named pipe (or /dev/null) must write in place, never rename a file over it.
#[cfg(unix)]
#[test]
fn output_to_a_named_pipe_writes_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "a.jsonl",
        "{\"id\":\"1\",\"text\":\"a\"}\n{\"id\":\"2\",\"text\":\"a\"}\n",
    );
    let fifo = dir.path().join("out.jsonl");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let reader_path = fifo.clone();
    let reader =
        std::thread::spawn(move || std::fs::read_to_string(reader_path).expect("read fifo"));
    let o = tamis(
        dir.path(),
        &["dedup", "exact", "a.jsonl", "-o", "out.jsonl"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        reader.join().expect("reader"),
        "{\"id\":\"1\",\"text\":\"a\"}\n"
    );
    let meta = std::fs::metadata(&fifo).expect("stat");
    assert!(
        meta.file_type().is_fifo(),
        "the pipe was replaced by a file"
    );
}

/// Review findings: a field in several roles, a byte order mark, symlink loops, clobbering inputs.
#[test]
fn key_equal_to_id_keeps_ids_and_bom_and_symlink_loops_are_handled() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "k.jsonl", "\u{feff}{\"id\":\"A\",\"text\":\"x\"}\n{\"id\":\"B\",\"text\":\"y\"}\n{\"id\":\"A\",\"text\":\"z\"}\n");
    let o = tamis(
        dir.path(),
        &["dedup", "exact", "k.jsonl", "-o", "-", "--key", "id"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "{\"id\":\"A\",\"text\":\"x\"}\n{\"id\":\"B\",\"text\":\"y\"}\n"
    );
    let o = tamis(
        dir.path(),
        &[
            "dedup", "exact", "k.jsonl", "-o", "o.jsonl", "--id-key", "text",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--id-key and --text-key must name different fields"),
        "{}",
        stderr(&o)
    );
    let o = tamis(
        dir.path(),
        &[
            "dedup",
            "exact",
            "k.jsonl",
            "-o",
            "o.jsonl",
            "--on-error",
            "skip",
            "--rejects",
            "k.jsonl",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("also an input"), "{}", stderr(&o));
    assert!(std::fs::read_to_string(dir.path().join("k.jsonl"))
        .expect("input")
        .contains("\"z\""));

    #[cfg(unix)]
    {
        std::fs::create_dir_all(dir.path().join("tree/sub")).expect("mkdir");
        std::fs::copy(dir.path().join("k.jsonl"), dir.path().join("tree/a.jsonl")).expect("copy");
        std::os::unix::fs::symlink("..", dir.path().join("tree/sub/up")).expect("symlink");
        let o = tamis(
            dir.path(),
            &[
                "dedup",
                "exact",
                "tree",
                "-o",
                "t.jsonl",
                "--stats-json",
                "s.json",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let stats: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("s.json")).expect("stats"),
        )
        .expect("json");
        assert_eq!(stats["input_files"], 1);
        assert_eq!(stats["documents_read"], 3);
    }
}

/// JSONL to Parquet must not truncate a later fractional value into an integer column.
#[test]
fn parquet_output_refuses_to_truncate_numbers() {
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "p1.jsonl",
        "{\"id\":\"a\",\"text\":\"t1\",\"x\":1}\n",
    );
    write(
        dir.path(),
        "p2.jsonl",
        "{\"id\":\"b\",\"text\":\"t2\",\"x\":1.5}\n",
    );
    let o = tamis(
        dir.path(),
        &["dedup", "exact", "p1.jsonl", "p2.jsonl", "-o", "p.parquet"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("p2.jsonl") && stderr(&o).contains("1.5"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("p.parquet").exists());
}

/// A float column would round integers past 2^53: refuse rather than change them.
#[test]
fn parquet_output_refuses_to_round_long_integers() {
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "big.jsonl",
        "{\"id\":\"a\",\"text\":\"x\",\"n\":12345678901234567891}\n",
    );
    let o = tamis(
        dir.path(),
        &["dedup", "exact", "big.jsonl", "-o", "big.parquet"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("12345678901234567891"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn prox_apply_runs_programs_and_keeps_the_original_text() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda";
    write(
        dir.path(),
        "in.jsonl",
        &format!(
            "{{\"id\":\"a\",\"text\":\"Menu\\n{f}\",\"doc_program\":\"keep_doc()\",\"chunk_program\":\"remove_lines(line_start=0, line_end=0)\"}}\n\
             {{\"id\":\"b\",\"text\":\"{f}\",\"doc_program\":\"drop_doc()\",\"chunk_program\":\"\"}}\n\
             {{\"id\":\"c\",\"text\":\"{f}\",\"doc_program\":\"keep_doc()\"}}\n"
        ),
    );
    let o = tamis(
        dir.path(),
        &["prox", "apply", "in.jsonl", "-o", "out.jsonl"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("in.jsonl: line 3: missing field \"chunk_program\""),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("out.jsonl").exists());
    let o = tamis(
        dir.path(),
        &[
            "prox",
            "apply",
            "in.jsonl",
            "-o",
            "out.jsonl",
            "--on-error",
            "skip",
            "--threads",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("out");
    assert_eq!(
        out,
        format!("{{\"id\":\"a\",\"text\":\"{f}\",\"doc_program\":\"keep_doc()\",\"chunk_program\":\"remove_lines(line_start=0, line_end=0)\",\"raw_content\":\"Menu\\n{f}\"}}\n")
    );
    let o = tamis(
        dir.path(),
        &[
            "prox", "apply", "in.jsonl", "-o", "x.jsonl", "--mode", "loose",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn prox_refine_points_to_the_python_package() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = tamis(
        dir.path(),
        &[
            "prox",
            "refine",
            "in.jsonl",
            "-o",
            "out.jsonl",
            "--device",
            "cpu",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("pip install 'tamis[prox]'"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("out.jsonl").exists());
}

const TINY_BPE: &str = r#"{"version":"1.0","added_tokens":[],"normalizer":null,
"pre_tokenizer":{"type":"WhitespaceSplit"},"post_processor":null,"decoder":null,
"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,
"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,
"vocab":{"a":0,"b":1,"c":2,"ab":3},"merges":[["a","b"]]}}"#;

#[test]
fn vocab_extend_and_stats() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "base.json", TINY_BPE);
    write(dir.path(), "c.txt", "abc abc abc ca\nabc ca ca\n");
    write(dir.path(), "old.txt", "ab ab c\n");
    let o = tamis(
        dir.path(),
        &[
            "vocab",
            "extend",
            "--tokenizer",
            "base.json",
            "--corpus",
            "c.txt",
            "--new-tokens",
            "5",
            "-o",
            "new.json",
            "--protect",
            "old.txt",
            "--report",
            "r.json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let new = std::fs::read_to_string(dir.path().join("new.json")).expect("out");
    // abc (4) and ca (3) are learned; nothing else occurs twice.
    assert!(new.contains(r#""ab":3,"abc":4,"ca":5}"#), "{new}");
    assert!(new.contains(r#"[["a","b"],["ab","c"],["c","a"]]"#), "{new}");
    assert!(stderr(&o).contains("2 new tokens"), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).expect("r"))
            .expect("json");
    assert_eq!(r["invariance"]["rate"], 1.0);
    assert_eq!(r["extension"]["stopped_by"], "min_frequency");

    let o = tamis(
        dir.path(),
        &[
            "vocab",
            "stats",
            "--tokenizer",
            "new.json",
            "--baseline",
            "base.json",
            "--corpus",
            "c.txt",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(r["target"]["baseline"]["tokens"], 14);
    assert_eq!(r["target"]["tokenizer"]["tokens"], 7);
    assert_eq!(r["new_tokens"]["used"], 2);

    // Models other than BPE: exit 1, a message naming the file, nothing written.
    write(
        dir.path(),
        "wp.json",
        &TINY_BPE.replace(r#""type":"BPE""#, r#""type":"WordPiece""#),
    );
    let o = tamis(
        dir.path(),
        &[
            "vocab",
            "extend",
            "--tokenizer",
            "wp.json",
            "--corpus",
            "c.txt",
            "--new-tokens",
            "5",
            "-o",
            "wp-new.json",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("wp.json: the model is WordPiece, not BPE"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("wp-new.json").exists());
    // Usage errors exit 2.
    let o = tamis(dir.path(), &["vocab", "extend", "--tokenizer", "base.json"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn language_id_runs_in_the_binary() {
    let dir = tempfile::tempdir().expect("tmp");
    let docs = [
        (
            "a",
            "The weather is lovely today, so we are going for a long walk by the river.",
        ),
        (
            "b",
            "Il fait très beau aujourd'hui, nous allons faire une longue promenade.",
        ),
        (
            "c",
            "Het weer is vandaag prachtig, dus we gaan een lange wandeling maken.",
        ),
    ];
    let body: String = docs
        .iter()
        .map(|(id, t)| serde_json::json!({"id": id, "text": t}).to_string() + "\n")
        .collect();
    write(dir.path(), "in.jsonl", &body);
    let o = tamis(
        dir.path(),
        &[
            "filter",
            "language",
            "in.jsonl",
            "-o",
            "out.jsonl",
            "--languages",
            "en,nl",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("out");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id"),
                r["metadata"]["language"].as_str().expect("language"),
            )
        })
        .collect();
    assert_eq!(got, [("a", "en"), ("c", "nl")]);
    assert!(
        rows[0]["metadata"]["language_score"]
            .as_f64()
            .expect("score")
            > 0.65
    );
    // refine with a language list runs the stage too.
    let o = tamis(
        dir.path(),
        &["refine", "in.jsonl", "-o", "out", "--languages", "fr"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The quality stage needs the fastText package: the binary says where it runs.
    let o = tamis(
        dir.path(),
        &[
            "filter", "quality", "in.jsonl", "-o", "q.jsonl", "--model", "q.bin",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("pip install 'tamis[filters]'"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("python -m tamis"), "{}", stderr(&o));
    assert!(!dir.path().join("q.jsonl").exists());
}

#[test]
fn demo_corpus_only_writes_the_sample_corpus() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("demo");
    let o = tamis(
        dir.path(),
        &[
            "demo",
            "--corpus-only",
            "--out-dir",
            out.to_str().expect("utf-8"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("demo --corpus-only prints JSON");
    assert!(info["documents"].as_u64().expect("documents") > 30);
    assert!(out.join("corpus").join("part-0000.jsonl.gz").is_file());
    assert!(!out.join("refined").exists());
}

#[test]
fn prox_annotate_train_eval_point_to_python() {
    let dir = tempfile::tempdir().expect("tmp");
    for (cmd, extra) in [
        ("annotate", "tamis[annotate]"),
        ("train", "tamis[prox]"),
        ("eval", "tamis[prox]"),
    ] {
        let o = tamis(dir.path(), &["prox", cmd, "--data", "x.jsonl"]);
        assert_eq!(o.status.code(), Some(1), "{cmd}");
        let err = stderr(&o);
        assert!(
            err.contains(&format!("python -m tamis prox {cmd}")),
            "{err}"
        );
        assert!(err.contains(extra), "{err}");
    }
}

#[test]
fn embed_eval_points_to_python_and_init_reports_missing_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = tamis(
        dir.path(),
        &["embed", "eval", "--model", "m", "--corpus", "x"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("python -m tamis embed eval"),
        "{}",
        stderr(&o)
    );
    let tok = r#"{"version":"1.0","added_tokens":[],"normalizer":null,"pre_tokenizer":null,
        "post_processor":null,"decoder":null,"model":{"type":"BPE","dropout":null,"unk_token":null,
        "continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,
        "byte_fallback":false,"ignore_merges":false,"vocab":{"a":0,"b":1},"merges":[]}}"#;
    write(dir.path(), "t.json", tok);
    std::fs::create_dir(dir.path().join("model")).expect("mkdir");
    let args = [
        "embed",
        "init",
        "--model",
        "model",
        "--old-tokenizer",
        "t.json",
        "--new-tokenizer",
        "t.json",
        "-o",
        "out",
    ];
    let o = tamis(dir.path(), &args);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing config.json"), "{}", stderr(&o));
    write(&dir.path().join("model"), "config.json", "{}");
    write(&dir.path().join("model"), "pytorch_model.bin", "not read");
    let o = tamis(dir.path(), &args);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("pickle checkpoint"), "{}", stderr(&o));
    assert!(!dir.path().join("out").exists());
}

#[test]
fn tokenize_writes_megatron_shards_and_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "tok.json", TINY_BPE);
    write(
        dir.path(),
        "c.jsonl",
        "{\"text\":\"ab c\"}\n{\"text\":\"c c ab\"}\n{\"text\":\"a\"}\n",
    );
    let args = [
        "tokenize",
        "c.jsonl",
        "-o",
        "out",
        "--tokenizer",
        "tok.json",
        "--max-shard-tokens",
        "3",
    ];
    let o = tamis(dir.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("out");
    // No EOS in this vocabulary: [3, 2] | [2, 2, 3] | [0].
    let bins: Vec<Vec<u8>> = (0..3)
        .map(|i| std::fs::read(out.join(format!("shard_0000{i}.bin"))).expect("bin"))
        .collect();
    assert_eq!(bins, [vec![3, 0, 2, 0], vec![2, 0, 2, 0, 3, 0], vec![0, 0]]);
    let idx = std::fs::read(out.join("shard_00001.idx")).expect("idx");
    assert_eq!(&idx[..9], b"MMIDIDX\x00\x00");
    let manifest = std::fs::read(out.join("manifest.json")).expect("manifest");
    std::fs::remove_file(out.join(".tamis-tokenize/shard_00002.json")).expect("rm");
    let o = tamis(dir.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(out.join("manifest.json")).expect("m"),
        manifest
    );
    let mut other = args.to_vec();
    other[7] = "4";
    let o = tamis(dir.path(), &other);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("max_shard_tokens (3 before, 4 now)"),
        "{}",
        stderr(&o)
    );
    let o = tamis(
        dir.path(),
        &["tokenize", "c.jsonl", "-o", "x", "--tokenizer", "nope.json"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nope.json"), "{}", stderr(&o));
    assert!(!dir.path().join("x").exists());
}
