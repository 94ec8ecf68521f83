//! `rocmforge quantize` on a small synthetic GGUF: types chosen per tensor, metadata kept,
//! values close to the originals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue, quants};

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rocmforge-quantize-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// name, dims, source type, values
fn tensors() -> Vec<(&'static str, Vec<u64>, GgmlType, Vec<f32>)> {
    vec![
        (
            "token_embd.weight",
            vec![256, 8],
            GgmlType::F32,
            values(2048, 1),
        ),
        (
            "blk.0.attn_norm.weight",
            vec![256],
            GgmlType::F32,
            values(256, 2),
        ),
        (
            "blk.0.attn_q.weight",
            vec![256, 4],
            GgmlType::F16,
            values(1024, 3),
        ),
        ("blk.0.attn_q.bias", vec![4], GgmlType::F16, values(4, 4)),
        (
            "blk.0.odd.weight",
            vec![48, 3],
            GgmlType::F32,
            values(144, 5),
        ),
    ]
}

fn write_input(path: &Path) {
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetadataValue::String("llama".into()),
    );
    w.add_metadata("general.file_type", MetadataValue::U32(0));
    w.add_metadata("test.kept", MetadataValue::I32(-7));
    for (name, dims, ty, vals) in tensors() {
        let data = match ty {
            GgmlType::F32 => f32_bytes(&vals),
            _ => quants::quantize(ty, &vals).unwrap(),
        };
        w.add_tensor(name, &dims, ty, data).unwrap();
    }
    w.write_to(path).unwrap();
}

fn quantize(input: &Path, output: &Path, ty: &str) -> std::process::Output {
    quantize_with(input, output, ty, &[])
}

fn quantize_with(input: &Path, output: &Path, ty: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args(["quantize", "--quiet"])
        .args(extra)
        .arg(input)
        .arg(output)
        .arg(ty)
        .output()
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check_target(ty_name: &str, target: GgmlType, tolerance: f32) {
    let dir = scratch_dir(ty_name);
    let input = dir.join("in.gguf");
    let output = dir.join("out.gguf");
    write_input(&input);
    let out = quantize_with(&input, &output, ty_name, &["--pure"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let src = GgufFile::open(&input).unwrap();
    let q = GgufFile::open(&output).unwrap();
    assert_eq!(q.metadata().get_i32("test.kept").unwrap(), -7);
    assert_eq!(q.architecture().unwrap(), "llama");
    assert_eq!(q.tensors().len(), src.tensors().len());
    for (name, dims, _, _) in tensors() {
        let t = q.tensor(name).unwrap();
        assert_eq!(t.dims, dims, "{name}");
        let expected_ty = match name {
            "blk.0.attn_norm.weight" | "blk.0.attn_q.bias" => GgmlType::F32,
            // 48-value rows: no K-quant or 32-value fallback fits, so F16 (as llama-quantize).
            "blk.0.odd.weight" if dims[0] % target.block_size() as u64 != 0 => GgmlType::F16,
            _ => target,
        };
        assert_eq!(t.ty, expected_ty, "{name} quantized to {ty_name}");
        let before = quants::dequantize_to_vec(
            src.tensor(name).unwrap().ty,
            src.tensor_bytes(name).unwrap(),
        )
        .unwrap();
        let after = quants::dequantize_to_vec(t.ty, q.tensor_data(t)).unwrap();
        let err = max_abs_diff(&before, &after);
        assert!(
            err <= tolerance,
            "{name} as {}: max error {err} > {tolerance}",
            t.ty
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn q8_0_keeps_norms_f32_and_values_close() {
    check_target("Q8_0", GgmlType::Q8_0, 0.01);
}

#[test]
fn q4_k_pure_falls_back_for_rows_that_are_not_whole_blocks() {
    check_target("q4_k", GgmlType::Q4_K, 0.15);
}

#[test]
fn q4_k_m_rules_and_requantize_guard() {
    let dir = scratch_dir("mix");
    let (input, output) = (dir.join("in.gguf"), dir.join("out.gguf"));
    write_input(&input);
    let out = quantize(&input, &output, "Q4_K_M");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let q = GgufFile::open(&output).unwrap();
    assert_eq!(q.metadata().get_u32("general.file_type").unwrap(), 15);
    // No output.weight: the token embedding is the output, Q6_K as llama-quantize gives it.
    assert_eq!(q.tensor("token_embd.weight").unwrap().ty, GgmlType::Q6_K);
    assert_eq!(q.tensor("blk.0.attn_q.weight").unwrap().ty, GgmlType::Q4_K);
    let out = quantize_with(
        &input,
        &output,
        "Q4_K_M",
        &["--token-embedding-type", "q8_0"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let q = GgufFile::open(&output).unwrap();
    assert_eq!(q.tensor("token_embd.weight").unwrap().ty, GgmlType::Q8_0);
    // A quantized input is refused without --allow-requantize, accepted with it.
    let requant = dir.join("re.gguf");
    let out = quantize(&output, &requant, "Q4_0");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already quantized") && err.contains("--allow-requantize"),
        "{err}"
    );
    let out = quantize_with(&output, &requant, "Q4_0", &["--allow-requantize"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_type_is_updated() {
    let dir = scratch_dir("ftype");
    let (input, output) = (dir.join("in.gguf"), dir.join("out.gguf"));
    write_input(&input);
    let out = quantize(&input, &output, "Q4_1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let q = GgufFile::open(&output).unwrap();
    assert_eq!(q.metadata().get_u32("general.file_type").unwrap(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_mix_type_writes_a_parsable_file() {
    let dir = scratch_dir("all");
    let input = dir.join("in.gguf");
    write_input(&input);
    // Every mix's default type (the K-quant names stand for their _M mixes).
    for ty in [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
    ] {
        let output = dir.join(format!("out-{}.gguf", ty.name()));
        let out = quantize_with(&input, &output, ty.name(), &["--pure"]);
        assert!(
            out.status.success(),
            "{ty}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let q = GgufFile::open(&output).unwrap();
        let t = q.tensor("token_embd.weight").unwrap();
        assert_eq!(t.ty, ty);
        let back = quants::dequantize_to_vec(t.ty, q.tensor_data(t)).unwrap();
        assert_eq!(back.len(), 2048);
        assert!(back.iter().all(|v| v.is_finite()), "{ty}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_type_and_missing_input_are_one_line_errors() {
    let dir = scratch_dir("bad");
    let input = dir.join("in.gguf");
    write_input(&input);
    let out = quantize(&input, &dir.join("o.gguf"), "Q9_9");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown mix 'Q9_9'"), "{err}");
    let out = quantize(&dir.join("missing.gguf"), &dir.join("o.gguf"), "Q8_0");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn imatrix_rules_are_llama_quantizes() {
    use rocmforge_gguf::imatrix::{Imatrix, ImatrixEntry};
    let dir = scratch_dir("imatrix");
    let input = dir.join("in.gguf");
    write_input(&input);
    // Q2_K in a Q2_K_S file needs an importance matrix.
    let out = quantize(&input, &dir.join("o.gguf"), "Q2_K_S");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("requires an importance matrix") && err.contains("blk.0.attn_q.weight"),
        "{err}"
    );
    // An entry whose size is not the tensor's columns is an error naming both.
    let mut m = Imatrix {
        datasets: vec!["t.txt".into()],
        chunk_count: 1,
        chunk_size: 16,
        ..Imatrix::default()
    };
    m.entries.insert(
        "blk.0.attn_q.weight".into(),
        ImatrixEntry {
            sums: vec![1.0; 128],
            counts: vec![16.0],
        },
    );
    let bad = dir.join("bad.imatrix.gguf");
    m.to_writer().unwrap().write_to(&bad).unwrap();
    let out = quantize_with(
        &input,
        &dir.join("o.gguf"),
        "Q4_K_M",
        &["--imatrix", bad.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("imatrix size 128 is different from tensor size 256"),
        "{err}"
    );
    // A right-sized one is used and recorded; a model file is not an imatrix.
    m.entries.get_mut("blk.0.attn_q.weight").unwrap().sums =
        values(256, 9).iter().map(|v| v * v).collect();
    let good = dir.join("good.imatrix.gguf");
    m.to_writer().unwrap().write_to(&good).unwrap();
    let (plain, weighted) = (dir.join("plain.gguf"), dir.join("weighted.gguf"));
    assert!(quantize(&input, &plain, "Q4_K_M").status.success());
    let out = quantize_with(
        &input,
        &weighted,
        "Q4_K_M",
        &["--imatrix", good.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (p, w) = (
        GgufFile::open(&plain).unwrap(),
        GgufFile::open(&weighted).unwrap(),
    );
    assert_eq!(
        w.metadata()
            .get_u32("quantize.imatrix.entries_count")
            .unwrap(),
        1
    );
    assert_eq!(
        w.metadata().get_str("quantize.imatrix.dataset").unwrap(),
        "t.txt"
    );
    let q = |f: &GgufFile| f.tensor_bytes("blk.0.attn_q.weight").unwrap().to_vec();
    assert_ne!(q(&p), q(&w), "the importance changed no code");
    let out = quantize_with(
        &input,
        &weighted,
        "Q4_K_M",
        &["--imatrix", input.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("imatrix.datasets"));
    std::fs::remove_dir_all(&dir).unwrap();
}
