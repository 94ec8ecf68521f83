//! `rocmforge chat` over piped stdin, and `rocmforge bench --json`, with the test model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn model() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models` to fetch the test model",
        path.display()
    );
    path.display().to_string()
}

fn chat(input: &str) -> (String, String, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args([
            "chat",
            "--model",
            &model(),
            "--device",
            "cpu",
            "--temperature",
            "0",
            "--max-tokens",
            "6",
            "--ctx",
            "512",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        out.status.success(),
    )
}

#[test]
fn piped_conversation_answers_each_turn_and_reset_forgets() {
    // The same question after /reset must get the same greedy answer as the first time;
    // asked again without a reset (with history), the prompt differs.
    let (out, err, ok) = chat("What is 2+2?\n/reset\nWhat is 2+2?\n/exit\nnever read\n");
    assert!(ok, "{err}");
    // Each answer is followed by a newline: the output is the same answer twice.
    let bytes = out.as_bytes();
    assert!(!out.trim().is_empty() && bytes.len() % 2 == 0, "{out:?}");
    let (a, b) = bytes.split_at(bytes.len() / 2);
    assert_eq!(a, b, "after /reset the history is gone: {out:?}");
    assert!(a.ends_with(b"\n"));
}

#[test]
fn end_of_input_ends_the_chat_cleanly() {
    let (out, err, ok) = chat("Hello!\n\n");
    assert!(ok, "{err}");
    assert!(!out.trim().is_empty(), "no answer: {err}");
}

#[test]
fn bench_json_reports_rates_and_memory() {
    let out = Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args([
            "bench",
            "--model",
            &model(),
            "--device",
            "cpu",
            "-p",
            "16",
            "-n",
            "4",
            "-r",
            "2",
            "--concurrency",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for test in ["pp", "tg", "batched_tg"] {
        let mean = v[test]["tokens_per_s_mean"].as_f64().unwrap();
        assert!(mean > 0.0 && mean.is_finite(), "{test}: {v}");
        assert_eq!(v[test]["samples"].as_array().unwrap().len(), 2);
    }
    assert!(v["load_s"].as_f64().unwrap() >= 0.0);
    assert!(v["peak_memory_bytes"].as_u64().unwrap() > 1 << 20);
    // The test model ties its output to the token embedding: a decode step reads nearly the
    // whole file (all but the header and metadata).
    let size = v["size_bytes"].as_u64().unwrap() as f64;
    let weights = v["decode_weight_bytes"].as_u64().unwrap() as f64;
    assert!(weights <= size && weights > 0.9 * size, "{v}");
    let tg = v["tg"]["tokens_per_s_mean"].as_f64().unwrap();
    let gbs = v["tg_weight_gb_per_s"].as_f64().unwrap();
    assert!(
        (gbs - weights * tg / 1e9).abs() <= 1e-9 * gbs.max(1.0),
        "{v}"
    );
    assert!(v["host_read_gb_per_s"].as_f64().unwrap() > 0.0, "{v}");
}
