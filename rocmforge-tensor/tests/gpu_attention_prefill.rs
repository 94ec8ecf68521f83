//! The tiled prefill attention kernel (`attention_prefill_f16_hd<D>`, taken by `ops::attention`
//! from `PREFILL_MIN_QUERIES` queries on for head_dim 64/96/128) against `cpu::attention`.
//!
//! GPU suite only (`--features gpu-tests`), custom harness, last line "N passed, M failed";
//! without a GPU every case fails. Relative error = max |gpu - cpu| / max |cpu| over the
//! output, bound 2e-3 (both sides accumulate in f32 from the same f16-rounded Q; the CPU rounds
//! the probabilities to f16 before the product with V, the GPU keeps them in f32). Outputs are
//! poisoned with NaN first; NaN never passes. KV caches hold junk rows past n_kv that must not
//! be read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use half::f16;
use rocmforge_tensor::cpu::AttentionParams;
use rocmforge_tensor::hip::attention::PREFILL_MIN_QUERIES;
use rocmforge_tensor::{Backend, ops};

const BOUND: f64 = 2e-3;

struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32) * 2.0
            - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }
}

fn run(
    backend: &Backend,
    q: &[f32],
    k: &[f16],
    v: &[f16],
    p: &AttentionParams,
    capacity: usize,
    poison: bool,
) -> Result<Vec<f32>, String> {
    let e = |e: rocmforge_tensor::TensorError| e.to_string();
    let row = p.n_heads * p.head_dim;
    let kv_row = p.n_kv_heads * p.head_dim;
    let tq = backend.from_f32(vec![p.n_q_tokens, row], q).map_err(e)?;
    let tk = backend.from_f16(vec![capacity, kv_row], k).map_err(e)?;
    let tv = backend.from_f16(vec![capacity, kv_row], v).map_err(e)?;
    let mut o = backend
        .from_f32(vec![p.n_q_tokens, row], &vec![0.0; p.n_q_tokens * row])
        .map_err(e)?;
    if poison {
        o.hip_mut("poison")
            .map_err(e)?
            .fill_bytes(0xFF)
            .map_err(e)?;
    }
    ops::attention(backend, &tq, &tk, &tv, p, &mut o).map_err(e)?;
    o.to_f32_vec().map_err(e)
}

fn case(
    gpu: &Backend,
    shape: (usize, usize, usize, usize, usize),
    seed: u64,
) -> Result<f64, String> {
    let (n_q, n_kv, n_heads, n_kv_heads, head_dim) = shape;
    let mut rng = Rng(seed | 1);
    let capacity = n_kv + 5;
    let q = rng.vec(n_q * n_heads * head_dim, 2.0);
    let mut k: Vec<f16> = rng
        .vec(capacity * n_kv_heads * head_dim, 1.0)
        .iter()
        .map(|&x| f16::from_f32(x))
        .collect();
    let mut v: Vec<f16> = rng
        .vec(capacity * n_kv_heads * head_dim, 1.0)
        .iter()
        .map(|&x| f16::from_f32(x))
        .collect();
    // Junk past n_kv: huge keys and NaN values would show if read.
    for x in &mut k[n_kv * n_kv_heads * head_dim..] {
        *x = f16::from_f32(60000.0);
    }
    for x in &mut v[n_kv * n_kv_heads * head_dim..] {
        *x = f16::NAN;
    }
    let p = AttentionParams {
        n_q_tokens: n_q,
        n_kv_tokens: n_kv,
        n_heads,
        n_kv_heads,
        head_dim,
        scale: 1.0 / (head_dim as f32).sqrt(),
        window: None,
    };
    let want = run(&Backend::Cpu, &q, &k, &v, &p, capacity, false)?;
    let got = run(gpu, &q, &k, &v, &p, capacity, true)?;
    if let Some(i) = got.iter().position(|x| !x.is_finite()) {
        return Err(format!("output {i} is {}", got[i]));
    }
    let scale = want
        .iter()
        .fold(0.0f64, |m, x| m.max(f64::from(x.abs())))
        .max(1e-30);
    Ok(got
        .iter()
        .zip(&want)
        .fold(0.0f64, |m, (g, w)| m.max(f64::from((g - w).abs()) / scale)))
}

fn main() {
    let gpu = match Backend::hip(0) {
        Ok(b) => b,
        Err(e) => {
            println!("FAIL setup: no GPU: {e}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    // (n_q, n_kv, n_heads, n_kv_heads, head_dim)
    let cases = [
        (PREFILL_MIN_QUERIES, PREFILL_MIN_QUERIES, 4, 2, 64),
        (100, 100, 6, 2, 128),
        (45, 300, 4, 1, 96),
        (77, 77, 14, 2, 64),
        (33, 1000, 8, 8, 128),
        (512, 512, 32, 8, 128),
        (200, 1500, 4, 4, 64),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (i, shape) in cases.into_iter().enumerate() {
        let name = format!(
            "attention prefill q{} kv{} h{}/{} d{}",
            shape.0, shape.1, shape.2, shape.3, shape.4
        );
        match case(&gpu, shape, 100 + i as u64) {
            Ok(err) if err < BOUND => {
                passed += 1;
                println!("ok   {name}: max rel err {err:.2e}");
            }
            Ok(err) => {
                failed += 1;
                println!("FAIL {name}: max rel err {err:.2e} (bound {BOUND:.0e})");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
