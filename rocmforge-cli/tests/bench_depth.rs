//! `rocmforge bench --depth N` (llama-bench's -d): the measured tests run after N tokens
//! are already in the KV cache, and depth + test length must fit the context.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

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

fn bench(depth: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args(["bench", "--model", &model(), "--device", "cpu"])
        .args(["-p", "8", "-n", "3", "-r", "1", "--depth", depth, "--json"])
        .output()
        .unwrap()
}

#[test]
fn depth_is_reported_and_rates_are_positive() {
    let out = bench("40");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["depth"], 40);
    for test in ["pp", "tg"] {
        let mean = v[test]["tokens_per_s_mean"].as_f64().unwrap();
        assert!(mean > 0.0 && mean.is_finite(), "{test}: {v}");
    }
}

#[test]
fn depth_beyond_the_context_is_refused() {
    // SmolLM2-135M's context is 8192.
    let out = bench("8190");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--depth") && err.contains("8192"), "{err}");
}
