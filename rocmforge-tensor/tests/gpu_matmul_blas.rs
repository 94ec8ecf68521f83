//! The vendor-BLAS prefill path of `hip::matmul` (weights decoded to f16 by
//! `kernels/dequant_f16.hip`, activations rounded to f16, cuBLAS / rocBLAS GEMM with f32
//! accumulation) against the CPU, on odd shapes.
//!
//! GPU suite only (`--features gpu-tests`); custom harness printing the largest relative errors
//! per type, then "N passed, M failed". Without a GPU or without the BLAS library every case
//! fails (it never skips). Relative error = max |gpu - ref| / max |ref|; outputs are poisoned
//! with NaN before each run and NaN never passes. References:
//! - the decoder alone: `dequantize_f16` against `rocmforge_gguf::quants::dequantize` (an
//!   independent CPU decoder), bound 1e-3 (one f16 rounding is at most 2^-11 of a value);
//! - `cpu::matmul`, the oracle (q8 activations on the CPU): bound 1e-2;
//! - the same weights in f64 (CPU-dequantized weights times the f32 activations, summed in
//!   f64): bound 2e-3, which only the two f16 roundings fit — wrong indexing cannot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use half::f16;
use rocmforge_gguf::GgmlType;
use rocmforge_gguf::quants::{dequantize_to_vec, quantize};
use rocmforge_hip::{HipBackend, HipStream};
use rocmforge_tensor::cpu::{WeightView, matmul as cpu_matmul};
use rocmforge_tensor::hip::dequant_f16::{DequantKernels, dequantize_f16};
use rocmforge_tensor::hip::matmul::{MatmulContext, matmul};
use rocmforge_tensor::hip::matmul_blas::{BLAS_MIN_TOKENS, MAX_WEIGHT_SLICE_VALUES};
use rocmforge_tensor::hip::matmul_mmqt::MmqtMode;

const DECODE_BOUND: f64 = 1e-3;
const CPU_BOUND: f64 = 1e-2;
const F64_BOUND: f64 = 2e-3;

const TYPES: [GgmlType; 15] = [
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::Q4_0,
    GgmlType::Q8_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q5_K,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
];

/// xorshift64*, values in [-1, 1).
struct Rng(u64);
impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        v as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * scale).collect()
    }
}

fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    got.iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((f64::from(*g) - w).abs() / scale))
}

fn first_non_finite(got: &[f32], rows: usize) -> Result<(), String> {
    match got.iter().position(|g| !g.is_finite()) {
        Some(i) => Err(format!(
            "output {i} (token {}, row {}) is {}",
            i / rows,
            i % rows,
            got[i]
        )),
        None => Ok(()),
    }
}

struct Gpu {
    backend: Arc<HipBackend>,
    stream: HipStream,
    ctx: MatmulContext,
    kernels: DequantKernels,
}

fn setup() -> Result<Gpu, String> {
    let backend = HipBackend::new(0).map_err(|e| format!("no GPU: {e}"))?;
    let stream = backend.new_stream().map_err(|e| e.to_string())?;
    let mut ctx = MatmulContext::new(&backend).map_err(|e| format!("kernels: {e}"))?;
    // This suite checks the BLAS path, which the batched-decode tile kernels would take from
    // below for up to 64 tokens (those are checked in gpu_matmul).
    ctx.set_mmqt(MmqtMode::Never);
    let lib = ctx
        .blas()
        .map_err(|e| format!("BLAS: {e}"))?
        .library()
        .to_string();
    println!("BLAS library: {lib}");
    let kernels = DequantKernels::new(&backend).map_err(|e| format!("kernels: {e}"))?;
    Ok(Gpu {
        backend,
        stream,
        ctx,
        kernels,
    })
}

fn hip(e: rocmforge_hip::HipError) -> String {
    e.to_string()
}

fn weight(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> (Vec<u8>, Vec<f32>) {
    let wf = rng.vec(rows * cols, 1.0);
    let wq = quantize(ty, &wf).unwrap();
    let deq = dequantize_to_vec(ty, &wq).unwrap();
    (wq, deq)
}

/// The decoder alone against the CPU decoder.
fn decode_case(
    gpu: &mut Gpu,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    seed: u64,
) -> Result<f64, String> {
    let mut rng = Rng(seed | 1);
    let (wq, deq) = weight(ty, rows, cols, &mut rng);
    let w_dev = gpu.backend.htod(&wq).map_err(hip)?;
    let mut out = gpu.backend.alloc::<f16>(rows * cols).map_err(hip)?;
    out.memset_bytes(0xff).map_err(hip)?;
    dequantize_f16(
        &mut gpu.kernels,
        &w_dev,
        ty,
        rows,
        cols,
        &mut out,
        &gpu.stream,
    )
    .map_err(|e| e.to_string())?;
    gpu.stream.synchronize().map_err(hip)?;
    let got: Vec<f32> = out
        .to_vec()
        .map_err(hip)?
        .iter()
        .map(|h| h.to_f32())
        .collect();
    first_non_finite(&got, cols)?;
    let want: Vec<f64> = deq.iter().map(|v| f64::from(*v)).collect();
    Ok(rel_err(&got, &want))
}

/// f64 product of the CPU-dequantized weight with the activations, for the listed tokens.
fn f64_reference(deq: &[f32], x: &[f32], rows: usize, cols: usize, tokens: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(tokens.len() * rows);
    for &t in tokens {
        let xt = &x[t * cols..(t + 1) * cols];
        for r in 0..rows {
            let wr = &deq[r * cols..(r + 1) * cols];
            out.push(
                wr.iter()
                    .zip(xt)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum(),
            );
        }
    }
    out
}

struct MatmulErrors {
    cpu: Option<f64>,
    f64_ref: f64,
}

/// One product through `hip::matmul` (which must take the BLAS path); `with_cpu`: also against
/// `cpu::matmul` (skipped only for the large slicing case, where the f64 check covers it).
fn matmul_case(
    gpu: &mut Gpu,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    seed: u64,
    with_cpu: bool,
) -> Result<MatmulErrors, String> {
    let mut rng = Rng(seed | 1);
    let (wq, deq) = weight(ty, rows, cols, &mut rng);
    let mut x = Vec::with_capacity(n_tokens * cols);
    for t in 0..n_tokens {
        x.extend(rng.vec(cols, 0.25 + t as f32 % 5.0));
    }
    let w_dev = gpu.backend.htod(&wq).map_err(hip)?;
    let x_dev = gpu.backend.htod(&x).map_err(hip)?;
    let mut out = gpu.backend.alloc::<f32>(n_tokens * rows).map_err(hip)?;
    out.memset_bytes(0xff).map_err(hip)?;
    matmul(
        &mut gpu.ctx,
        &w_dev,
        ty,
        rows,
        cols,
        &x_dev,
        n_tokens,
        &mut out,
        &gpu.stream,
    )
    .map_err(|e| e.to_string())?;
    gpu.stream.synchronize().map_err(hip)?;
    let got = out.to_vec().map_err(hip)?;
    first_non_finite(&got, rows)?;

    let cpu = if with_cpu {
        let view = WeightView {
            ty,
            data: &wq,
            rows,
            cols,
        };
        let mut want = vec![0.0f32; n_tokens * rows];
        cpu_matmul(&view, &x, n_tokens, &mut want).map_err(|e| e.to_string())?;
        let want: Vec<f64> = want.iter().map(|v| f64::from(*v)).collect();
        Some(rel_err(&got, &want))
    } else {
        None
    };
    // Every token when small, else first, middle and last.
    let tokens: Vec<usize> = if n_tokens * rows * cols <= 64 << 20 {
        (0..n_tokens).collect()
    } else {
        vec![0, n_tokens / 2, n_tokens - 1]
    };
    let exact = f64_reference(&deq, &x, rows, cols, &tokens);
    let picked: Vec<f32> = tokens
        .iter()
        .flat_map(|&t| got[t * rows..(t + 1) * rows].iter().copied())
        .collect();
    Ok(MatmulErrors {
        cpu,
        f64_ref: rel_err(&picked, &exact),
    })
}

/// The BLAS path captured into a graph and replayed must give what the direct call gave.
fn graph_case(gpu: &mut Gpu) -> Result<(), String> {
    let (ty, rows, cols, n) = (GgmlType::Q4_K, 333, 512, 48);
    let mut rng = Rng(99);
    let (wq, _) = weight(ty, rows, cols, &mut rng);
    let x = rng.vec(n * cols, 1.0);
    let w_dev = gpu.backend.htod(&wq).map_err(hip)?;
    let x_dev = gpu.backend.htod(&x).map_err(hip)?;
    let mut direct = gpu.backend.alloc::<f32>(n * rows).map_err(hip)?;
    matmul(
        &mut gpu.ctx,
        &w_dev,
        ty,
        rows,
        cols,
        &x_dev,
        n,
        &mut direct,
        &gpu.stream,
    )
    .map_err(|e| e.to_string())?;
    gpu.stream.synchronize().map_err(hip)?;
    let want = direct.to_vec().map_err(hip)?;
    let mut out = gpu.backend.alloc::<f32>(n * rows).map_err(hip)?;
    out.memset_bytes(0xff).map_err(hip)?;
    gpu.stream.begin_capture().map_err(hip)?;
    let queued = matmul(
        &mut gpu.ctx,
        &w_dev,
        ty,
        rows,
        cols,
        &x_dev,
        n,
        &mut out,
        &gpu.stream,
    );
    let graph = gpu.stream.end_capture().map_err(hip)?;
    queued.map_err(|e| e.to_string())?;
    let exec = graph.instantiate().map_err(hip)?;
    for _ in 0..3 {
        exec.launch(&gpu.stream).map_err(hip)?;
    }
    gpu.stream.synchronize().map_err(hip)?;
    let got = out.to_vec().map_err(hip)?;
    first_non_finite(&got, rows)?;
    if got != want {
        return Err("graph replay differs from the direct call".to_string());
    }
    Ok(())
}

fn main() {
    let mut passed = 0usize;
    let mut failed = 0usize;
    let mut gpu = match setup() {
        Ok(g) => g,
        Err(e) => {
            println!("FAIL setup: {e}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    let mut check = |name: String, r: Result<(), String>| match r {
        Ok(()) => passed += 1,
        Err(e) => {
            failed += 1;
            println!("FAIL {name}: {e}");
        }
    };
    println!(
        "{:<8} {:>12} {:>12} {:>12}",
        "type", "decode", "vs cpu", "vs f64"
    );
    let mut seed = 1u64;
    for ty in TYPES {
        let bs = ty.block_size();
        let cols_list = if bs == 256 {
            [256 * 3, 256 * 5]
        } else {
            [32 * 7, 32 * 40]
        };
        let (mut worst_dec, mut worst_cpu, mut worst_f64) = (0.0f64, 0.0f64, 0.0f64);
        for &cols in &cols_list {
            seed += 1;
            let r = decode_case(&mut gpu, ty, 37, cols, seed);
            let name = format!("decode {ty} 37x{cols}");
            check(
                name,
                r.and_then(|e| {
                    worst_dec = worst_dec.max(e);
                    if e < DECODE_BOUND {
                        Ok(())
                    } else {
                        Err(format!("relative error {e:.2e}"))
                    }
                }),
            );
            for rows in [7usize, 333] {
                for n_tokens in [BLAS_MIN_TOKENS, 77] {
                    seed += 1;
                    let r = matmul_case(&mut gpu, ty, rows, cols, n_tokens, seed, true);
                    let name = format!("matmul {ty} {rows}x{cols} n_tokens={n_tokens}");
                    check(
                        name,
                        r.and_then(|e| {
                            let c = e.cpu.unwrap_or(0.0);
                            worst_cpu = worst_cpu.max(c);
                            worst_f64 = worst_f64.max(e.f64_ref);
                            if c < CPU_BOUND && e.f64_ref < F64_BOUND {
                                Ok(())
                            } else {
                                Err(format!(
                                    "relative error vs cpu {c:.2e}, vs f64 {:.2e}",
                                    e.f64_ref
                                ))
                            }
                        }),
                    );
                }
            }
        }
        println!(
            "{:<8} {worst_dec:>12.2e} {worst_cpu:>12.2e} {worst_f64:>12.2e}",
            ty.name()
        );
    }
    // A weight larger than one decode slice (the LM-head case): two slices, odd row count.
    let rows = MAX_WEIGHT_SLICE_VALUES / 4096 + 27;
    let r = matmul_case(&mut gpu, GgmlType::Q8_0, rows, 4096, 40, 7, false);
    check(
        format!("matmul Q8_0 {rows}x4096 n_tokens=40 (2 slices)"),
        r.and_then(|e| {
            println!("sliced Q8_0 {rows}x4096: vs f64 {:.2e}", e.f64_ref);
            if e.f64_ref < F64_BOUND {
                Ok(())
            } else {
                Err(format!("relative error {:.2e}", e.f64_ref))
            }
        }),
    );
    check("graph capture + replay".to_string(), graph_case(&mut gpu));
    // Below the threshold the BLAS is not used: the mmq result must differ in the last bits
    // from the BLAS one (q8_1 activations vs f16), and both stay close to the CPU.
    let r = (|| {
        let mut g = setup()?;
        g.ctx.set_blas_min_tokens(None);
        let off = matmul_case(&mut g, GgmlType::Q4_0, 333, 32 * 7, 40, 5, true)?;
        let on = matmul_case(&mut gpu, GgmlType::Q4_0, 333, 32 * 7, 40, 5, true)?;
        println!(
            "Q4_0 n=40: mmq vs f64 {:.2e}, BLAS vs f64 {:.2e}",
            off.f64_ref, on.f64_ref
        );
        if off.f64_ref == on.f64_ref {
            return Err("set_blas_min_tokens(None) did not change the path".to_string());
        }
        Ok(())
    })();
    check("threshold switch".to_string(), r);
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
