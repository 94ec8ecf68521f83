//! Process tests of `rocmforge generate`, `predict` and `perplexity` on the real SmolLM2 file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn model_path() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        panic!(
            "{} is missing: run `cargo xtask models` to fetch the test models",
            path.display()
        );
    }
    path
}

fn rocmforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn generate_greedy_prints_only_the_continuation() {
    let model = model_path();
    let out = rocmforge(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "3",
        "--temperature",
        "0",
        "--device",
        "cpu",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stderr: {stderr}");
    // llama.cpp's greedy continuation starts " Paris.\n"
    assert_eq!(stdout, " Paris.\n\n", "stdout: {stdout:?}");
    assert!(stderr.contains("device: cpu"), "stderr: {stderr}");
    assert!(stderr.contains("tokens/s"), "stderr: {stderr}");
}

#[test]
fn generate_same_seed_same_text() {
    let model = model_path();
    let run = |seed: &str| {
        let out = rocmforge(&[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "Once upon a time",
            "--max-tokens",
            "12",
            "--temperature",
            "1.0",
            "--seed",
            seed,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let a = run("7");
    assert_eq!(a, run("7"));
    assert!(a.ends_with('\n'));
}

#[test]
fn generate_chat_stops_at_end_of_generation() {
    let model = model_path();
    let out = rocmforge(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "Name three primary colors.",
        "--chat",
        "--max-tokens",
        "40",
        "--temperature",
        "0",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(!stdout.contains("<|im_end|>"), "stdout: {stdout:?}");
    assert!(!stdout.trim().is_empty());
}

#[test]
fn gpu_device_is_a_clear_error() {
    let model = model_path();
    let out = rocmforge(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "x",
        "--device",
        "gpu",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("GPU backend is not available"), "{stderr}");
    assert!(out.stdout.is_empty());
    let out = rocmforge(&["predict", "--model", "m", "--ids", "[1]", "--device", "tpu"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown device 'tpu'"));
}

#[test]
fn predict_prints_one_argmax_per_position() {
    let model = model_path();
    // "The capital of France is" → llama.cpp continues with " Paris" (7042)
    let out = rocmforge(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        "[504, 3575, 282, 4649, 314]",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ids: Vec<u32> = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[4], 7042);
    let bad = rocmforge(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        "[1, x]",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("--ids"));
    let oob = rocmforge(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        "[99999999]",
    ]);
    assert_eq!(oob.status.code(), Some(1));
    assert!(
        text(&oob.stderr).contains("99999999"),
        "{}",
        text(&oob.stderr)
    );
}

#[test]
fn perplexity_last_line_is_ppl() {
    let model = model_path();
    let dir = std::env::temp_dir().join(format!("rocmforge-ppl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("text.txt");
    let sentence = "The quick brown fox jumps over the lazy dog. ";
    std::fs::write(&file, sentence.repeat(20)).unwrap();
    let out = rocmforge(&[
        "perplexity",
        "--model",
        model.to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
        "--ctx",
        "32",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let last = stdout.lines().last().unwrap();
    let value: f64 = last.strip_prefix("PPL = ").unwrap().parse().unwrap();
    // a repeated sentence is easy to predict
    assert!(value > 1.0 && value < 10.0, "{last}");
    std::fs::remove_dir_all(&dir).unwrap();
}
