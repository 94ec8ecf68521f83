//! `rocmforge tokenize` run as a process: one JSON array on stdout, BOS per the model, flags.
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

/// Runs the command, checks it succeeded with exactly one stdout line, returns the parsed ids.
fn ids(args: &[&str]) -> Vec<u32> {
    let out = rocmforge(args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "one line expected, got {stdout:?}"
    );
    serde_json::from_str(stdout.trim_end()).unwrap()
}

#[test]
fn smollm2_matches_the_reference_ids_and_adds_no_bos() {
    let m = model();
    // SmolLM2 sets tokenizer.ggml.add_bos_token = false.
    assert_eq!(
        ids(&["tokenize", "--model", &m, "Hello world"]),
        [19556, 905]
    );
    assert_eq!(
        ids(&["tokenize", "--model", &m, "--", "<|im_start|>assistant\n"]),
        [1, 520, 9531, 198]
    );
}

#[test]
fn no_parse_special_keeps_special_text_as_text() {
    let m = model();
    let plain = ids(&[
        "tokenize",
        "--model",
        &m,
        "--no-parse-special",
        "<|im_start|>user",
    ]);
    assert!(!plain.contains(&1), "{plain:?}");
    assert!(plain.len() > 2, "{plain:?}");
}

#[test]
fn vocab_only_spm_file_gets_bos_unless_no_bos() {
    let v = vocab("ggml-vocab-llama-spm.gguf");
    assert_eq!(
        ids(&["tokenize", "--model", &v, "Hello world"]),
        [1, 15043, 3186]
    );
    assert_eq!(
        ids(&["tokenize", "--model", &v, "--no-bos", "Hello world"]),
        [15043, 3186]
    );
}

#[test]
fn text_starting_with_a_dash_after_double_dash() {
    let v = vocab("ggml-vocab-gpt-2.gguf");
    let got = ids(&["tokenize", "--model", &v, "--", "-x"]);
    assert!(!got.is_empty());
}

#[test]
fn missing_model_is_one_error_line_and_exit_code_1() {
    let out = rocmforge(&["tokenize", "--model", "/nonexistent/model.gguf", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("/nonexistent/model.gguf"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// A reader that closes the pipe early (`rocmforge tokenize … | head -c 10`) is not an error: exit
/// 0 and no panic message (the print used to panic on the broken pipe).
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    // ~20k tokens: about 120 KB of JSON, more than a pipe holds (one argument stays under 128 KiB).
    let text = "hello ".repeat(20_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args(["tokenize", "--model", &model(), &text])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is dropped here: the rest of the write hits a closed pipe.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(&first[..1], b"[");
}
