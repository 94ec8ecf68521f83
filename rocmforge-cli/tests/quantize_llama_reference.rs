//! `rocmforge quantize` against llama-quantize on the test model: SmolLM2-135M-Instruct, made F32
//! by `rocmforge quantize ... F32`, then quantized to Q4_K_M, Q5_K_M, Q3_K_M, Q6_K, Q8_0 and
//! IQ4_XS. Every tensor's type and bytes must equal those llama.cpp 0.5.0's llama-quantize wrote
//! from the same F32 file (tests/data/llama_quantize_smollm2.json: type and the first 32 hex
//! digits of the SHA-256 of the data, per tensor; made with a CPU build from the
//! llama-cpp-python==0.3.36 source distribution). SmolLM2's 576-wide rows exercise the
//! fallbacks (Q4_K -> Q5_0, Q6_K -> Q8_0, IQ4_XS -> IQ4_NL) and its 30 layers the "more bits"
//! rules for attn_v and ffn_down.
//!
//! The same six mixes with an importance matrix (`--imatrix tests/data/smollm2_imatrix.gguf`,
//! made by llama.cpp's llama-imatrix from the test model and tests/data/imatrix_text.txt: 4
//! chunks of 128 tokens) against llama-quantize given the same file
//! (tests/data/llama_quantize_smollm2_imatrix.json; its `source` says how it was made): this
//! exercises the weighted searches of Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS, IQ4_NL and Q5_0 and the
//! rules an imatrix changes (IQ4_XS keeps ffn_down of the first layers).
//!
//! MXFP4_MOE (gpt-oss's mix: 3-D expert tensors MXFP4, every other weight Q8_0) on the tiny F16
//! gpt-oss that `cargo xtask models` synthesizes (`models/tiny/tiny-gpt-oss-f16.gguf`) against
//! llama-quantize's output from the same file (tests/data/llama_quantize_tiny_gpt_oss.json).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rocmforge_gguf::GgufFile;
use sha2::{Digest, Sha256};

fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn quantize(input: &Path, output: &Path, mix: &str, extra: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args(["quantize", "--quiet"])
        .args(extra)
        .arg(input)
        .arg(output)
        .arg(mix)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "quantize {mix}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Quantizes the test model (through F32) to every mix of `reference` with `extra` options and
/// compares each tensor's type and bytes with the reference's.
fn check_against(reference: &str, n_mixes: usize, tag: &str, extra: &[&str]) {
    let dir = std::env::temp_dir().join(format!("rocmforge-qref-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f32_file = dir.join("smollm2-f32.gguf");
    // The test model is Q4_1: decoding it to F32 needs no --allow-requantize.
    quantize(&model_path(), &f32_file, "F32", &[]);
    check_input_against(&f32_file, &dir, reference, n_mixes, tag, extra);
}

/// Quantizes `input` to every mix of `reference` (in `dir`, removed afterwards) and compares
/// each tensor's type and bytes with the reference's.
fn check_input_against(
    input: &Path,
    dir: &Path,
    reference: &str,
    n_mixes: usize,
    tag: &str,
    extra: &[&str],
) {
    let reference: serde_json::Value = serde_json::from_str(reference).unwrap();
    let mixes = reference["mixes"].as_object().unwrap();
    assert_eq!(mixes.len(), n_mixes);
    let mut report = Vec::new();
    for (mix, tensors) in mixes {
        let out = dir.join(format!("{mix}.gguf"));
        quantize(input, &out, mix, extra);
        let file = GgufFile::open(&out).unwrap();
        let want = tensors.as_object().unwrap();
        assert_eq!(file.tensors().len(), want.len(), "{mix}: tensor count");
        let mut same = 0;
        for info in file.tensors() {
            let w = &want[&info.name];
            let hash = format!("{:x}", Sha256::digest(file.tensor_data(info)));
            let (wt, wh) = (w[0].as_str().unwrap(), w[1].as_str().unwrap());
            if info.ty.name() == wt && hash.starts_with(wh) {
                same += 1;
            } else {
                report.push(format!(
                    "{mix} {}: ours {} {}, llama-quantize {wt} {wh}",
                    info.name,
                    info.ty.name(),
                    &hash[..32]
                ));
            }
        }
        eprintln!(
            "{mix} ({tag}): {same}/{} tensors equal llama-quantize's",
            want.len()
        );
        std::fs::remove_file(&out).unwrap();
    }
    std::fs::remove_dir_all(dir).unwrap();
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn mixes_equal_llama_quantize_tensor_for_tensor() {
    check_against(
        include_str!("data/llama_quantize_smollm2.json"),
        6,
        "plain",
        &[],
    );
}

#[test]
fn mixes_with_an_imatrix_equal_llama_quantize_tensor_for_tensor() {
    let imatrix = data("smollm2_imatrix.gguf");
    check_against(
        include_str!("data/llama_quantize_smollm2_imatrix.json"),
        6,
        "imatrix",
        &["--imatrix", imatrix.to_str().unwrap()],
    );
}

/// Q2_K and Q4_0 with an imatrix (no CI mix reaches them): `--pure Q2_K` gives Q2_K to the
/// 1536-wide ffn_down rows and the Q4_0 fallback to the 576-wide ones.
#[test]
fn pure_q2_k_with_an_imatrix_equals_llama_quantize_tensor_for_tensor() {
    let imatrix = data("smollm2_imatrix.gguf");
    check_against(
        include_str!("data/llama_quantize_smollm2_imatrix_pure_q2_k.json"),
        1,
        "imatrix-pure",
        &["--pure", "--imatrix", imatrix.to_str().unwrap()],
    );
}

/// MXFP4_MOE on the tiny F16 gpt-oss: experts MXFP4; attention matrices, token embedding and
/// output Q8_0; norms, biases, sinks and the router (F32) as they are.
#[test]
fn mxfp4_moe_equals_llama_quantize_tensor_for_tensor() {
    let input =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tiny/tiny-gpt-oss-f16.gguf");
    assert!(
        input.exists(),
        "{} is missing (run `cargo xtask models`, which synthesizes the tiny models)",
        input.display()
    );
    let dir = std::env::temp_dir().join(format!("rocmforge-qref-mxfp4-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    check_input_against(
        &input,
        &dir,
        include_str!("data/llama_quantize_tiny_gpt_oss.json"),
        1,
        "tiny-gpt-oss",
        &[],
    );
}
