//! The CPU forward pass of every architecture on tiny random F32 models, against a
//! naive f64 implementation written here from the architectures' definitions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue};
use rocmforge_model::Model;
use rocmforge_model::rng::SeededRng;
use rocmforge_model::{LogitsFor, ModelError};

#[derive(Clone, Copy)]
struct Spec {
    arch: &'static str,
    n_layers: usize,
    n_embd: usize,
    n_ff: usize,
    n_heads: usize,
    n_kv: usize,
    head_dim: usize,
    n_rot: usize,
    vocab: usize,
    tied: bool,
    /// Llama 3's `rope_freqs.weight` ([`FREQ_FACTORS`]).
    rope_freqs: bool,
}

const EPS: f32 = 1e-5;
const BASE: f32 = 10_000.0;
/// The `rope_freqs.weight` of the llama spec with factors: one per pair of its 8 rotated
/// dimensions, each different (Llama 3.1's run from 1 to 8).
const FREQ_FACTORS: [f32; 4] = [1.0, 2.5, 4.0, 8.0];

type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn random(rng: &mut SeededRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| ((rng.next_f64() * 2.0 - 1.0) as f32) * scale)
        .collect()
}

fn build(spec: Spec) -> (GgufFile, Tensors) {
    let t = tensors(spec);
    let file = write(spec, &t, None);
    (file, t)
}

/// A `rope_freqs.weight` written as given (dims, type, bytes), to test the checks.
type RawTensor<'a> = (&'a [u64], GgmlType, Vec<u8>);

fn tensors(spec: Spec) -> Tensors {
    let mut rng = SeededRng::new(1234);
    let mut t: Tensors = BTreeMap::new();
    let (e, f, hd) = (spec.n_embd, spec.n_ff, spec.head_dim);
    let (qd, kd) = (spec.n_heads * hd, spec.n_kv * hd);
    let mut add = |t: &mut Tensors, name: String, dims: Vec<usize>, scale: f32, offset: f32| {
        let n = dims.iter().product();
        let v = random(&mut rng, n, scale)
            .iter()
            .map(|x| x + offset)
            .collect();
        t.insert(name, (dims, v));
    };
    add(
        &mut t,
        "token_embd.weight".into(),
        vec![e, spec.vocab],
        1.0,
        0.0,
    );
    add(&mut t, "output_norm.weight".into(), vec![e], 0.2, 1.0);
    if !spec.tied {
        add(
            &mut t,
            "output.weight".into(),
            vec![e, spec.vocab],
            0.5,
            0.0,
        );
    }
    for l in 0..spec.n_layers {
        let n = |s: &str| format!("blk.{l}.{s}");
        add(&mut t, n("attn_norm.weight"), vec![e], 0.2, 1.0);
        add(&mut t, n("ffn_norm.weight"), vec![e], 0.2, 1.0);
        add(&mut t, n("attn_output.weight"), vec![qd, e], 0.4, 0.0);
        add(&mut t, n("ffn_down.weight"), vec![f, e], 0.4, 0.0);
        if spec.arch == "glm4" {
            add(&mut t, n("attn_qkv.weight"), vec![e, qd + 2 * kd], 0.4, 0.0);
            add(&mut t, n("attn_qkv.bias"), vec![qd + 2 * kd], 0.1, 0.0);
            add(&mut t, n("ffn_up.weight"), vec![e, 2 * f], 0.4, 0.0);
            add(&mut t, n("post_attention_norm.weight"), vec![e], 0.2, 1.0);
            add(&mut t, n("post_ffw_norm.weight"), vec![e], 0.2, 1.0);
        } else {
            add(&mut t, n("attn_q.weight"), vec![e, qd], 0.4, 0.0);
            add(&mut t, n("attn_k.weight"), vec![e, kd], 0.4, 0.0);
            add(&mut t, n("attn_v.weight"), vec![e, kd], 0.4, 0.0);
            add(&mut t, n("ffn_gate.weight"), vec![e, f], 0.4, 0.0);
            add(&mut t, n("ffn_up.weight"), vec![e, f], 0.4, 0.0);
        }
        if spec.arch == "qwen2" {
            add(&mut t, n("attn_q.bias"), vec![qd], 0.1, 0.0);
            add(&mut t, n("attn_k.bias"), vec![kd], 0.1, 0.0);
            add(&mut t, n("attn_v.bias"), vec![kd], 0.1, 0.0);
        }
        if spec.arch == "qwen3" {
            add(&mut t, n("attn_q_norm.weight"), vec![hd], 0.2, 1.0);
            add(&mut t, n("attn_k_norm.weight"), vec![hd], 0.2, 1.0);
        }
    }
    if spec.rope_freqs {
        let v = FREQ_FACTORS.to_vec();
        t.insert("rope_freqs.weight".into(), (vec![v.len()], v));
    }
    t
}

/// The GGUF file of `spec` with tensors `t` (F32), and `raw_freqs` as `rope_freqs.weight`.
fn write(spec: Spec, t: &Tensors, raw_freqs: Option<RawTensor<'_>>) -> GgufFile {
    let (e, f, hd) = (spec.n_embd, spec.n_ff, spec.head_dim);
    let mut w = GgufWriter::new();
    let a = spec.arch;
    let u = |v: usize| MetadataValue::U32(v as u32);
    w.add_metadata("general.architecture", MetadataValue::String(a.into()));
    w.add_metadata(&format!("{a}.block_count"), u(spec.n_layers));
    w.add_metadata(&format!("{a}.embedding_length"), u(e));
    w.add_metadata(&format!("{a}.feed_forward_length"), u(f));
    w.add_metadata(&format!("{a}.attention.head_count"), u(spec.n_heads));
    w.add_metadata(&format!("{a}.attention.head_count_kv"), u(spec.n_kv));
    w.add_metadata(&format!("{a}.attention.key_length"), u(hd));
    w.add_metadata(&format!("{a}.rope.dimension_count"), u(spec.n_rot));
    w.add_metadata(&format!("{a}.context_length"), u(64));
    w.add_metadata(
        &format!("{a}.attention.layer_norm_rms_epsilon"),
        MetadataValue::F32(EPS),
    );
    for (name, (dims, data)) in t {
        let dims: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.add_tensor(name, &dims, GgmlType::F32, bytes).unwrap();
    }
    if let Some((dims, ty, bytes)) = raw_freqs {
        w.add_tensor("rope_freqs.weight", dims, ty, bytes).unwrap();
    }
    GgufFile::from_bytes("tiny.gguf", w.to_bytes().unwrap()).unwrap()
}

// ---- the naive reference, in f64 ----

fn matvec(t: &Tensors, name: &str, x: &[f64]) -> Vec<f64> {
    let (dims, w) = &t[name];
    let (cols, rows) = (dims[0], dims[1]);
    (0..rows)
        .map(|r| (0..cols).map(|c| f64::from(w[r * cols + c]) * x[c]).sum())
        .collect()
}

fn vector(t: &Tensors, name: &str) -> Vec<f64> {
    t[name].1.iter().map(|&v| f64::from(v)).collect()
}

fn rms_norm(x: &[f64], w: &[f64]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let s = 1.0 / (ms + f64::from(EPS)).sqrt();
    x.iter().zip(w).map(|(v, w)| v * s * w).collect()
}

/// RoPE of one head; `factors`: Llama 3's divisors, `theta_i / factors[i]`.
fn rope(head: &mut [f64], pos: usize, n_rot: usize, neox: bool, factors: Option<&[f64]>) {
    for i in 0..n_rot / 2 {
        let theta = pos as f64 * f64::from(BASE).powf(-2.0 * i as f64 / n_rot as f64)
            / factors.map_or(1.0, |f| f[i]);
        let (a, b) = if neox {
            (i, i + n_rot / 2)
        } else {
            (2 * i, 2 * i + 1)
        };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * theta.cos() - x1 * theta.sin();
        head[b] = x0 * theta.sin() + x1 * theta.cos();
    }
}

fn reference(spec: Spec, t: &Tensors, tokens: &[u32]) -> Vec<Vec<f64>> {
    let (e, hd, f) = (spec.n_embd, spec.head_dim, spec.n_ff);
    let (qd, kd) = (spec.n_heads * hd, spec.n_kv * hd);
    let neox = matches!(spec.arch, "qwen2" | "qwen3");
    let factors = spec.rope_freqs.then(|| vector(t, "rope_freqs.weight"));
    let factors = factors.as_deref();
    let emb = vector(t, "token_embd.weight");
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&id| emb[id as usize * e..(id as usize + 1) * e].to_vec())
        .collect();
    for l in 0..spec.n_layers {
        let n = |s: &str| format!("blk.{l}.{s}");
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        let mut qs = Vec::new();
        for (pos, x) in xs.iter().enumerate() {
            let h = rms_norm(x, &vector(t, &n("attn_norm.weight")));
            let (mut q, mut k, mut v) = if spec.arch == "glm4" {
                let mut all = matvec(t, &n("attn_qkv.weight"), &h);
                for (a, b) in all.iter_mut().zip(vector(t, &n("attn_qkv.bias"))) {
                    *a += b;
                }
                (
                    all[..qd].to_vec(),
                    all[qd..qd + kd].to_vec(),
                    all[qd + kd..].to_vec(),
                )
            } else {
                let mut q = matvec(t, &n("attn_q.weight"), &h);
                let mut k = matvec(t, &n("attn_k.weight"), &h);
                let mut v = matvec(t, &n("attn_v.weight"), &h);
                if spec.arch == "qwen2" {
                    for (m, b) in [
                        (&mut q, "attn_q.bias"),
                        (&mut k, "attn_k.bias"),
                        (&mut v, "attn_v.bias"),
                    ] {
                        for (a, b) in m.iter_mut().zip(vector(t, &n(b))) {
                            *a += b;
                        }
                    }
                }
                (q, k, v)
            };
            if spec.arch == "qwen3" {
                for head in q.chunks_mut(hd) {
                    let normed = rms_norm(head, &vector(t, &n("attn_q_norm.weight")));
                    head.copy_from_slice(&normed);
                }
                for head in k.chunks_mut(hd) {
                    let normed = rms_norm(head, &vector(t, &n("attn_k_norm.weight")));
                    head.copy_from_slice(&normed);
                }
            }
            for head in q.chunks_mut(hd) {
                rope(head, pos, spec.n_rot, neox, factors);
            }
            for head in k.chunks_mut(hd) {
                rope(head, pos, spec.n_rot, neox, factors);
            }
            v.truncate(kd);
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        for (pos, x) in xs.iter_mut().enumerate() {
            let mut attn = vec![0.0; qd];
            for h in 0..spec.n_heads {
                let kvh = h / (spec.n_heads / spec.n_kv);
                let q = &qs[pos][h * hd..(h + 1) * hd];
                let scores: Vec<f64> = (0..=pos)
                    .map(|j| {
                        let k = &ks[j][kvh * hd..(kvh + 1) * hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                for (j, p) in exps.iter().enumerate() {
                    for d in 0..hd {
                        attn[h * hd + d] += p / sum * vs[j][kvh * hd + d];
                    }
                }
            }
            let mut o = matvec(t, &n("attn_output.weight"), &attn);
            if spec.arch == "glm4" {
                o = rms_norm(&o, &vector(t, &n("post_attention_norm.weight")));
            }
            for (a, b) in x.iter_mut().zip(&o) {
                *a += b;
            }
            let h = rms_norm(x, &vector(t, &n("ffn_norm.weight")));
            let (g, u) = if spec.arch == "glm4" {
                let gu = matvec(t, &n("ffn_up.weight"), &h);
                (gu[..f].to_vec(), gu[f..].to_vec())
            } else {
                (
                    matvec(t, &n("ffn_gate.weight"), &h),
                    matvec(t, &n("ffn_up.weight"), &h),
                )
            };
            let act: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let mut d = matvec(t, &n("ffn_down.weight"), &act);
            if spec.arch == "glm4" {
                d = rms_norm(&d, &vector(t, &n("post_ffw_norm.weight")));
            }
            for (a, b) in x.iter_mut().zip(&d) {
                *a += b;
            }
        }
    }
    let out_name = if spec.tied {
        "token_embd.weight"
    } else {
        "output.weight"
    };
    xs.iter()
        .map(|x| matvec(t, out_name, &rms_norm(x, &vector(t, "output_norm.weight"))))
        .collect()
}

fn spec(arch: &'static str) -> Spec {
    Spec {
        arch,
        n_layers: 2,
        n_embd: 32,
        n_ff: 64,
        n_heads: 4,
        n_kv: 2,
        head_dim: 8,
        n_rot: if arch == "glm4" { 4 } else { 8 },
        vocab: 40,
        tied: arch == "llama",
        rope_freqs: false,
    }
}

fn check_arch(arch: &'static str) {
    check_spec(spec(arch));
}

/// The largest difference between two sets of logits.
fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
}

fn check_spec(s: Spec) {
    let arch = s.arch;
    let (file, tensors) = build(s);
    let model = Model::from_file(
        std::sync::Arc::new(file.clone()),
        rocmforge_tensor::Backend::Cpu,
    )
    .unwrap();
    let tokens = [3u32, 17, 0, 39, 8, 8, 21];
    let want = reference(s, &tensors, &tokens);

    let mut cache = model.new_cache(tokens.len()).unwrap();
    let got = model
        .forward(&mut cache, &tokens, 0, LogitsFor::All)
        .unwrap();
    let scale = want.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut max_err = 0.0f64;
    for (p, row) in want.iter().enumerate() {
        for (i, &w) in row.iter().enumerate() {
            max_err = max_err.max((f64::from(got[p * s.vocab + i]) - w).abs());
        }
    }
    // f16 KV cache and f16-rounded queries: errors of order 1e-3 relative.
    assert!(
        max_err <= 1e-2 * scale,
        "{arch}: max error {max_err} (scale {scale})"
    );

    // Decoding one token at a time gives the same logits as the batched prefill.
    let mut cache = model.new_cache(tokens.len()).unwrap();
    for (p, &tok) in tokens.iter().enumerate() {
        let row = model
            .forward(&mut cache, &[tok], p, LogitsFor::Last)
            .unwrap();
        for (i, &w) in want[p].iter().enumerate() {
            assert!(
                (f64::from(row[i]) - w).abs() <= 1e-2 * scale,
                "{arch} decode pos {p}"
            );
        }
    }
    // The cache is full now: one more token is an error, not an overwrite.
    let err = model
        .forward(&mut cache, &[1], tokens.len(), LogitsFor::Last)
        .unwrap_err();
    assert!(
        matches!(err, ModelError::ContextFull { ctx: 7, needed: 8 }),
        "{err}"
    );
}

#[test]
fn llama_tied_output_matches_reference() {
    check_arch("llama");
}

#[test]
fn qwen2_biases_and_neox_match_reference() {
    check_arch("qwen2");
}

#[test]
fn qwen3_qk_norms_match_reference() {
    check_arch("qwen3");
}

#[test]
fn glm4_fused_partial_rotary_post_norms_match_reference() {
    check_arch("glm4");
}

/// Llama 3's `rope_freqs.weight`: every layer's RoPE angle of pair `i` is `theta_i / f[i]`, for
/// queries and keys, in prefill and decode (against the f64 reference that divides so).
#[test]
fn llama3_rope_freqs_divide_every_layers_angles() {
    let s = Spec {
        rope_freqs: true,
        ..spec("llama")
    };
    // The factors matter here: the reference without them is several times check_spec's
    // tolerance (1e-2 of the scale) away from the one with them (measured: 7 %).
    let t = tensors(s);
    let tokens = [3u32, 17, 0, 39, 8, 8, 21];
    let with = reference(s, &t, &tokens);
    let without = reference(
        Spec {
            rope_freqs: false,
            ..s
        },
        &t,
        &tokens,
    );
    let scale = with.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    let gap = max_diff(&with, &without);
    assert!(
        gap > 5e-2 * scale,
        "the factors move the logits by only {gap} (scale {scale})"
    );
    check_spec(s);
}

/// `rope_freqs.weight` of the wrong size or type, or with a factor that cannot divide an angle,
/// is refused by name; a file of an architecture that does not use it is refused too.
#[test]
fn bad_rope_freqs_are_refused_by_name() {
    let s = spec("llama");
    let t = tensors(s);
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let cases: Vec<(RawTensor<'_>, &str)> = vec![
        ((&[5], GgmlType::F32, f32_bytes(&[1.0; 5])), "dims [5]"),
        (
            (&[4, 2], GgmlType::F32, f32_bytes(&[1.0; 8])),
            "dims [4, 2]",
        ),
        ((&[4], GgmlType::F16, [0x00, 0x3c].repeat(4)), "F32"),
        (
            (&[4], GgmlType::F32, f32_bytes(&[1.0, 0.0, 2.0, 3.0])),
            "factor 1 is 0",
        ),
        (
            (&[4], GgmlType::F32, f32_bytes(&[1.0, 2.0, f32::NAN, 3.0])),
            "factor 2 is NaN",
        ),
    ];
    for (raw, want) in cases {
        let file = write(s, &t, Some(raw));
        let err = Model::from_file(std::sync::Arc::new(file), rocmforge_tensor::Backend::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rope_freqs.weight") && err.contains(want),
            "expected '{want}': {err}"
        );
    }
    // qwen3 (llama.cpp loads no rope_freqs for it): refused, not silently ignored.
    let q = spec("qwen3");
    let file = write(
        q,
        &tensors(q),
        Some((&[4], GgmlType::F32, f32_bytes(&[1.0; 4]))),
    );
    let err = Model::from_file(std::sync::Arc::new(file), rocmforge_tensor::Backend::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rope_freqs.weight") && err.contains("qwen3"),
        "{err}"
    );
}

#[test]
fn bad_calls_are_errors() {
    let (file, _) = build(spec("llama"));
    let model = Model::from_file(
        std::sync::Arc::new(file.clone()),
        rocmforge_tensor::Backend::Cpu,
    )
    .unwrap();
    let mut cache = model.new_cache(4).unwrap();
    assert!(model.forward(&mut cache, &[], 0, LogitsFor::Last).is_err());
    assert!(model.forward(&mut cache, &[1], 2, LogitsFor::Last).is_err());
    assert!(
        model
            .forward(&mut cache, &[1, 2], 0, LogitsFor::From(2))
            .is_err()
    );
    let err = model
        .forward(&mut cache, &[99], 0, LogitsFor::Last)
        .unwrap_err();
    assert!(err.to_string().contains("99"), "{err}");
    assert!(cache.is_empty(), "a failed call stores nothing");
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let s = spec("qwen3");
    let (file, mut tensors) = build(s);
    drop(file);
    tensors.remove("blk.1.attn_k_norm.weight");
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetadataValue::String("qwen3".into()),
    );
    for (k, v) in [
        ("block_count", 2),
        ("embedding_length", 32),
        ("feed_forward_length", 64),
        ("attention.head_count", 4),
        ("attention.head_count_kv", 2),
    ] {
        w.add_metadata(&format!("qwen3.{k}"), MetadataValue::U32(v));
    }
    for (name, (dims, data)) in &tensors {
        let dims: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.add_tensor(name, &dims, GgmlType::F32, bytes).unwrap();
    }
    let file = GgufFile::from_bytes("broken.gguf", w.to_bytes().unwrap()).unwrap();
    let err = Model::from_file(
        std::sync::Arc::new(file.clone()),
        rocmforge_tensor::Backend::Cpu,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("blk.1.attn_k_norm.weight"),
        "{err}"
    );
}
