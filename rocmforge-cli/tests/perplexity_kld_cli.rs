//! `rocmforge perplexity --kl-divergence-base` on llama.cpp's reference for the tiny llama model
//! (`rocmforge-model/tests/data/kld/`), and `--save-logits` writing a file of llama.cpp's layout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rocmforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args(args)
        .output()
        .unwrap()
}

fn model() -> String {
    let path = root().join("models/tiny/tiny-llama.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models`",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// The value after `label` on the stdout line that starts with it.
fn value(stdout: &str, label: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no '{label}' line in:\n{stdout}"));
    let rest = line.split_once(':').unwrap().1;
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn kl_divergence_base_from_llama_cpp_is_reported_as_llama_cpp_does() {
    let base = root().join("rocmforge-model/tests/data/kld/tiny-llama.kld");
    let out = rocmforge(&[
        "perplexity",
        "--model",
        &model(),
        "--kl-divergence-base",
        base.to_str().unwrap(),
        "--kl-divergence",
        "--device",
        "cpu",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(value(&stdout, "Mean    KLD") <= 0.005, "{stdout}");
    assert!(value(&stdout, "Same top p") >= 99.0, "{stdout}");
    assert!(value(&stdout, "Mean PPL(Q)/PPL(base)") > 0.0, "{stdout}");
    assert!(
        stdout.contains("Mean entropy of the base distributions"),
        "{stdout}"
    );
}

#[test]
fn save_logits_writes_llama_cpps_layout_and_a_bad_file_is_refused() {
    let dir = std::env::temp_dir().join(format!("rocmforge-kld-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_file = dir.join("ours.kld");
    let text = root().join("../shared/testdata/gpl-3.txt");
    let out = rocmforge(&[
        "perplexity",
        "--model",
        &model(),
        "--file",
        text.to_str().unwrap(),
        "--ctx",
        "128",
        "--chunks",
        "5",
        "--save-logits",
        out_file.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = std::fs::read(&out_file).unwrap();
    let reference =
        std::fs::read(root().join("rocmforge-model/tests/data/kld/tiny-llama.kld")).unwrap();
    assert_eq!(ours.len(), reference.len());
    assert_eq!(ours[..20 + 5 * 128 * 4], reference[..20 + 5 * 128 * 4]);
    // A truncated file is refused with an error naming it, never a panic.
    let bad = dir.join("bad.kld");
    std::fs::write(&bad, &ours[..ours.len() - 7]).unwrap();
    let out = rocmforge(&[
        "perplexity",
        "--model",
        &model(),
        "--kl-divergence-base",
        bad.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.kld") && stderr.contains("bytes"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
