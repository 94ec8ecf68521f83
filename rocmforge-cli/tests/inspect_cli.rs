//! `rocmforge inspect` run as a process: reports, JSON, dequantization and error lines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn rocmforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args(args)
        .output()
        .unwrap()
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn vocab(name: &str) -> String {
    repo_root()
        .join("../shared/testdata/vocab")
        .join(name)
        .display()
        .to_string()
}

fn model() -> String {
    let path = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models` to fetch the test model",
        path.display()
    );
    path.display().to_string()
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rocmforge-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn text_report_of_a_vocab_file() {
    let out = rocmforge(&["inspect", &vocab("ggml-vocab-llama-spm.gguf")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("architecture:  llama"), "{text}");
    assert!(text.contains("tokenizer.ggml.model"), "{text}");
    assert!(text.contains("array[string; 32000]"), "{text}");
    assert!(text.contains("\"<unk>\", \"<s>\", \"</s>\""), "{text}");
    assert!(text.contains("tensors (0):"), "{text}");
    assert!(text.contains("parameters:    0"), "{text}");
}

#[test]
fn json_report_of_a_vocab_file() {
    let out = rocmforge(&["inspect", "--json", &vocab("ggml-vocab-gpt-2.gguf")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["metadata"]["tokenizer.ggml.model"], "gpt2");
    let tokens = &doc["metadata"]["tokenizer.ggml.tokens"];
    assert_eq!(tokens["type"], "string");
    assert_eq!(tokens["len"], 50257);
    assert_eq!(tokens["head"].as_array().unwrap().len(), 8);
    assert_eq!(doc["tensors"].as_array().unwrap().len(), 0);
    assert_eq!(doc["parameter_count"], 0);
    assert_eq!(doc["alignment"], 32);
    let size = std::fs::metadata(vocab("ggml-vocab-gpt-2.gguf"))
        .unwrap()
        .len();
    assert_eq!(doc["file_size"], size);
}

#[test]
fn json_report_of_the_test_model() {
    let out = rocmforge(&["inspect", &model(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["architecture"], "llama");
    assert_eq!(doc["metadata"]["llama.block_count"], 30);
    assert_eq!(
        doc["metadata"]["llama.attention.layer_norm_rms_epsilon"],
        0.00001
    );
    let tensors = doc["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 272);
    let emb = tensors
        .iter()
        .find(|t| t["name"] == "token_embd.weight")
        .unwrap();
    assert_eq!(emb["type"], "Q8_0");
    assert_eq!(emb["shape"], serde_json::json!([576, 49152]));
    assert_eq!(emb["bytes"], 576 * 49152 / 32 * 34);
    let totals = doc["totals_per_type"].as_object().unwrap();
    let mut types: Vec<&str> = totals.keys().map(String::as_str).collect();
    types.sort_unstable();
    assert_eq!(types, ["F32", "Q4_1", "Q8_0"]);
    let tensor_sum: u64 = totals
        .values()
        .map(|t| t["tensors"].as_u64().unwrap())
        .sum();
    assert_eq!(tensor_sum, 272);
    let params: u64 = totals.values().map(|t| t["params"].as_u64().unwrap()).sum();
    assert_eq!(doc["parameter_count"], params);
}

#[test]
fn dequantized_tensor_is_raw_little_endian_f32() {
    let dir = scratch_dir("dequant");
    let out_path = dir.join("norm.f32");
    let out = rocmforge(&[
        "inspect",
        &model(),
        "--tensor",
        "output_norm.weight",
        "--dequant",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read(&out_path).unwrap();
    let file = rocmforge_gguf::GgufFile::open(model()).unwrap();
    // An F32 tensor dequantizes to its own bytes.
    assert_eq!(written, file.tensor_bytes("output_norm.weight").unwrap());

    let q_path = dir.join("q.f32");
    let out = rocmforge(&[
        "inspect",
        &model(),
        "--tensor",
        "blk.0.attn_q.weight",
        "--dequant",
        q_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let q = std::fs::read(&q_path).unwrap();
    assert_eq!(q.len(), 576 * 576 * 4);
    let info = file.tensor("blk.0.attn_q.weight").unwrap();
    let expected =
        rocmforge_gguf::quants::dequantize_to_vec(info.ty, file.tensor_data(info)).unwrap();
    let first = f32::from_le_bytes(q[..4].try_into().unwrap());
    assert_eq!(first, expected[0]);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn assert_one_error_line(out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "'{needle}' not in: {err}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn broken_file_is_one_error_line_and_exit_code_1() {
    let dir = scratch_dir("broken");
    let path = dir.join("broken.gguf");
    let mut bytes = std::fs::read(vocab("ggml-vocab-llama-spm.gguf")).unwrap();
    bytes.truncate(5000);
    std::fs::write(&path, &bytes).unwrap();
    let p = path.to_str().unwrap();
    assert_one_error_line(
        &rocmforge(&["inspect", p]),
        &[p, "at byte", "left in the file"],
    );
    std::fs::write(&path, b"not a gguf file at all").unwrap();
    assert_one_error_line(&rocmforge(&["inspect", "--json", p]), &[p, "bad magic"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_file_and_missing_tensor_are_errors() {
    assert_one_error_line(
        &rocmforge(&["inspect", "/nonexistent/model.gguf"]),
        &["/nonexistent/model.gguf", "No such file"],
    );
    let m = vocab("ggml-vocab-phi-3.gguf");
    assert_one_error_line(
        &rocmforge(&[
            "inspect",
            &m,
            "--tensor",
            "nope",
            "--dequant",
            "/tmp/unused.f32",
        ]),
        &[&m, "no tensor named 'nope'"],
    );
}
