//! GPU matmul (`rocmforge_tensor::hip::matmul`) against the CPU matmul, for every supported
//! weight type, odd shapes, and token counts on both sides of the matvec/tiled switch.
//!
//! GPU suite only (`--features gpu-tests`, run through `cargo xtask test --gpu`): a custom
//! harness that prints a table of the largest relative error per type, then
//! "N passed, M failed". Without a GPU every case fails (it never skips).
//!
//! Relative error of one case: max |gpu - ref| / max |ref| over the output; outputs are
//! poisoned with NaN before each run and NaN never passes. Two references:
//! - `cpu::matmul` (the oracle). Bound 1e-3 where the GPU and CPU use the same activation
//!   scheme (float weights; the 32-value formats, whose q8_0/q8_1 activations round to the
//!   same integers). For the 256-value formats the CPU quantizes activations to q8_K (one
//!   scale per 256 values) and the GPU to q8_1 (one per 32): two different 8-bit roundings
//!   of the activations, about 0.4% of a value each, so the bound is 2e-2.
//! - For the 256-value formats also the same scheme in f64: weights dequantized, activations
//!   quantized to q8_1 and dequantized on the CPU, products summed in f64
//!   (`cpu::matmul_f32_reference`). Bound 1e-4: this checks the kernels' integer arithmetic
//!   exactly, independent of the activation scheme.
//!
//! `matmul_swiglu` (gate/up pair in one launch, 1..=8 tokens) for every quantized type: against
//! the CPU's two matmuls and silu·mul (2x the matmul bound), and against the GPU's own one-launch
//! matmuls of gate and up with silu·mul on the host (the same kernel arithmetic: bound 1e-5).
//! `matmul_multi` (two or three weights of one input in one launch, as q/k/v; at 17 and 40
//! tokens one quantization and a tile launch per weight) likewise: against the CPU and against
//! `matmul` of each weight (bound 1e-5: short rows go several per warp step only when every
//! weight allows it, so the sums may run in another order than alone).
//!
//! The batched-decode tile kernels (`mmqt`, both builds) at 9..=100 tokens: `gpu_matmul/mmqt.rs`.
//! The residual add in the matvec's store and the RMS norm in its activations
//! (`matmul_add`, `matmul_normed`, and the norm of `matmul_multi` / `matmul_swiglu`):
//! `gpu_matmul/fused_residual.rs`.
//! The shapes above with more than 8 tokens run `matmul`'s default choice (`mmqt` where its
//! table says) and, in the two-launch mode, the older `mmq` kernels.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "gpu_matmul/fused_residual.rs"]
mod fused_residual;
#[path = "gpu_matmul/mmqt.rs"]
mod mmqt;

use std::sync::Arc;

use rocmforge_gguf::GgmlType;
use rocmforge_gguf::quants::quantize;
use rocmforge_hip::{HipBackend, HipStream};
use rocmforge_tensor::cpu::quantize_act::quantize_q8_1;
use rocmforge_tensor::cpu::{WeightView, matmul as cpu_matmul, matmul_f32_reference};
use rocmforge_tensor::hip::matmul::{
    MatmulContext, matmul, matmul_multi, matmul_q8_1, matmul_swiglu,
};
use rocmforge_tensor::hip::matmul_mmqt::{MmqtKernel, MmqtMode};
use rocmforge_tensor::hip::matvec_fused::FusedMode;
use rocmforge_tensor::hip::quantize_act::Q8_1Layout;

/// Small deterministic generator (xorshift64*), seeded per case.
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

const TYPES: [GgmlType; 16] = [
    GgmlType::Q4_1,
    GgmlType::Q8_0,
    GgmlType::F32,
    GgmlType::Q4_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q5_K,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::MXFP4,
];

fn bound(ty: GgmlType) -> f32 {
    if ty.block_size() == 256 { 2e-2 } else { 1e-3 }
}

/// Bound against the same-scheme f64 reference (256-value formats).
const SCHEME_BOUND: f32 = 1e-4;

fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-20);
    got.iter()
        .zip(want)
        .fold(0.0f32, |m, (g, w)| m.max((g - w).abs() / scale))
}

fn col_choices(ty: GgmlType) -> Vec<usize> {
    match ty.block_size() {
        256 => vec![256 * 3, 256 * 8],
        32 => vec![32 * 3, 32 * 24],
        _ => vec![45, 32 * 3, 32 * 24],
    }
}

struct Gpu {
    backend: Arc<HipBackend>,
    stream: HipStream,
    ctx: MatmulContext,
}

fn setup() -> Result<Gpu, String> {
    let backend = HipBackend::new(0).map_err(|e| format!("no GPU: {e}"))?;
    let stream = backend.new_stream().map_err(|e| e.to_string())?;
    let mut ctx = MatmulContext::new(&backend).map_err(|e| format!("kernels: {e}"))?;
    // This suite checks the mmq/mmvq kernels; the vendor-BLAS path has gpu_matmul_blas.
    ctx.set_blas_min_tokens(None);
    Ok(Gpu {
        backend,
        stream,
        ctx,
    })
}

/// Runs one case through every path that serves it; returns the relative errors.
fn run_case(
    gpu: &mut Gpu,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    seed: u64,
) -> Result<(f32, Option<f32>), String> {
    // The one-launch decode kernels (default), the two-launch kernels (for quantized weights
    // and 2..=8 tokens also with 1, 2 and 4 rows per thread forced), and pre-quantized q8_1
    // activations (quantized weights).
    let several = (2..=8).contains(&n_tokens) && ty.is_quantized();
    let modes: Vec<Mode> = [
        Mode::Fused,
        Mode::TwoLaunch,
        Mode::PreQuantized,
        Mode::Rows(1),
        Mode::Rows(2),
        Mode::Rows(4),
    ]
    .into_iter()
    .filter(|m| *m != Mode::PreQuantized || ty.is_quantized())
    .filter(|m| !matches!(m, Mode::Rows(_)) || several)
    .collect();
    let (cpu, scheme, _) = run_modes(gpu, ty, rows, cols, n_tokens, seed, &modes)?;
    Ok((cpu, scheme))
}

/// Worst error vs the CPU, worst vs the same-scheme reference, the outputs of each mode.
type ModeRuns = (f32, Option<f32>, Vec<Vec<f32>>);

/// Runs one case through each of `modes`, outputs poisoned with NaN first; returns the worst
/// relative error against the CPU and (256-value formats) the same-scheme reference, and the
/// outputs in the order of `modes`.
fn run_modes(
    gpu: &mut Gpu,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    seed: u64,
    modes: &[Mode],
) -> Result<ModeRuns, String> {
    let mut rng = Rng(seed | 1);
    let wf = rng.vec(rows * cols, 1.0);
    let wq = quantize(ty, &wf).map_err(|e| e.to_string())?;
    // Tokens of different magnitudes.
    let mut x = Vec::with_capacity(n_tokens * cols);
    for t in 0..n_tokens {
        x.extend(rng.vec(cols, 0.25 + t as f32 % 5.0));
    }
    let view = WeightView {
        ty,
        data: &wq,
        rows,
        cols,
    };
    let mut want = vec![0.0f32; n_tokens * rows];
    cpu_matmul(&view, &x, n_tokens, &mut want).map_err(|e| e.to_string())?;

    let e = |e: rocmforge_hip::HipError| e.to_string();
    let w_dev = gpu.backend.htod(&wq).map_err(e)?;
    let x_dev = gpu.backend.htod(&x).map_err(e)?;
    let mut runs = Vec::new();
    for &mode in modes {
        let mut out = gpu.backend.alloc::<f32>(n_tokens * rows).map_err(e)?;
        out.memset_bytes(0xff).map_err(e)?; // NaN everywhere: unwritten outputs show
        gpu.ctx
            .set_fused_matvec(if matches!(mode, Mode::TwoLaunch | Mode::Rows(_)) {
                FusedMode::Never
            } else {
                FusedMode::Always
            });
        if let Mode::Rows(r) = mode {
            gpu.ctx.set_matvec_rows_per_thread(Some(r));
        }
        gpu.ctx.set_mmqt(match mode {
            Mode::TwoLaunch => MmqtMode::Never, // the mmq kernels from 9 tokens
            Mode::Mmqt(k, _, _) => MmqtMode::Always(k),
            Mode::MmqtQ8_1 => MmqtMode::Always(MmqtKernel::TensorCore),
            _ => MmqtMode::Table,
        });
        gpu.ctx
            .set_mmqt_blocks_per_cu(matches!(mode, Mode::Mmqt(_, false, _)).then_some(0));
        if let Mode::Mmqt(_, _, tile) = mode {
            gpu.ctx.set_mmqt_token_tile(tile);
        }
        let r = if matches!(mode, Mode::PreQuantized | Mode::MmqtQ8_1) {
            let act = gpu
                .backend
                .htod(&q8_1_bytes(&x, n_tokens, cols))
                .map_err(e)?;
            matmul_q8_1(
                &mut gpu.ctx,
                &w_dev,
                ty,
                rows,
                cols,
                &act,
                n_tokens,
                &mut out,
                &gpu.stream,
            )
        } else {
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
        };
        gpu.ctx.set_fused_matvec(FusedMode::Auto);
        gpu.ctx.set_matvec_rows_per_thread(None);
        gpu.ctx.set_mmqt(MmqtMode::Table);
        gpu.ctx.set_mmqt_blocks_per_cu(None);
        gpu.ctx.set_mmqt_token_tile(None);
        r.map_err(|e| format!("{mode:?}: {e}"))?;
        gpu.stream.synchronize().map_err(e)?;
        let got = out.to_vec().map_err(e)?;
        if let Some(i) = got.iter().position(|g| !g.is_finite()) {
            return Err(format!(
                "{mode:?}: output {i} (token {}, row {}) is {}",
                i / rows,
                i % rows,
                got[i]
            ));
        }
        runs.push(got);
    }
    let mut err_cpu = 0.0f32;
    let mut err_scheme = None::<f32>;
    for got in &runs {
        let (c, sch) = errors(&view, &x, n_tokens, rows, got, &want)?;
        err_cpu = err_cpu.max(c);
        if let Some(v) = sch {
            err_scheme = Some(err_scheme.unwrap_or(0.0).max(v));
        }
    }
    Ok((err_cpu, err_scheme, runs))
}

fn silu_mul_host(g: &[f32], u: &[f32]) -> Vec<f32> {
    g.iter()
        .zip(u)
        .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
        .collect()
}

/// One `matmul_swiglu` case; returns (rel err vs the CPU, rel err vs the GPU's separate matmuls).
fn run_swiglu_case(
    gpu: &mut Gpu,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    seed: u64,
) -> Result<(f32, f32), String> {
    let mut rng = Rng(seed | 1);
    let gq = quantize(ty, &rng.vec(rows * cols, 1.0)).map_err(|e| e.to_string())?;
    let uq = quantize(ty, &rng.vec(rows * cols, 1.0)).map_err(|e| e.to_string())?;
    let mut x = Vec::with_capacity(n_tokens * cols);
    for t in 0..n_tokens {
        x.extend(rng.vec(cols, 0.25 + t as f32 % 5.0));
    }
    let view = |data| WeightView {
        ty,
        data,
        rows,
        cols,
    };
    let (mut g, mut u) = (vec![0.0f32; n_tokens * rows], vec![0.0f32; n_tokens * rows]);
    cpu_matmul(&view(&gq), &x, n_tokens, &mut g).map_err(|e| e.to_string())?;
    cpu_matmul(&view(&uq), &x, n_tokens, &mut u).map_err(|e| e.to_string())?;
    let want_cpu = silu_mul_host(&g, &u);

    let e = |e: rocmforge_hip::HipError| e.to_string();
    let (g_dev, u_dev, x_dev) = (
        gpu.backend.htod(&gq).map_err(e)?,
        gpu.backend.htod(&uq).map_err(e)?,
        gpu.backend.htod(&x).map_err(e)?,
    );
    gpu.ctx.set_fused_matvec(FusedMode::Always);
    let mut sep = Vec::new();
    for w in [&g_dev, &u_dev] {
        let mut out = gpu.backend.alloc::<f32>(n_tokens * rows).map_err(e)?;
        out.memset_bytes(0xff).map_err(e)?;
        matmul(
            &mut gpu.ctx,
            w,
            ty,
            rows,
            cols,
            &x_dev,
            n_tokens,
            &mut out,
            &gpu.stream,
        )
        .map_err(|e| e.to_string())?;
        gpu.stream.synchronize().map_err(e)?;
        sep.push(out.to_vec().map_err(e)?);
    }
    let want_gpu = silu_mul_host(&sep[0], &sep[1]);
    let mut out = gpu.backend.alloc::<f32>(n_tokens * rows).map_err(e)?;
    out.memset_bytes(0xff).map_err(e)?;
    let done = matmul_swiglu(
        &mut gpu.ctx,
        &g_dev,
        &u_dev,
        ty,
        rows,
        cols,
        &x_dev,
        n_tokens,
        &mut out,
        &gpu.stream,
        None,
    );
    gpu.ctx.set_fused_matvec(FusedMode::Auto);
    if !done.map_err(|e| e.to_string())? {
        return Err("matmul_swiglu declined a shape its shared memory holds".to_string());
    }
    gpu.stream.synchronize().map_err(e)?;
    let got = out.to_vec().map_err(e)?;
    if let Some(i) = got.iter().position(|g| !g.is_finite()) {
        return Err(format!("output {i} is {}", got[i]));
    }
    Ok((rel_err(&got, &want_cpu), rel_err(&got, &want_gpu)))
}

/// One `matmul_multi` case over weights of `rows` rows each; returns (rel err vs the CPU, rel
/// err vs the GPU's separate one-launch matmuls), the worst over the weights.
fn run_multi_case(
    gpu: &mut Gpu,
    ty: GgmlType,
    rows: &[usize],
    cols: usize,
    n_tokens: usize,
    seed: u64,
) -> Result<(f32, f32), String> {
    let mut rng = Rng(seed | 1);
    let mut x = Vec::with_capacity(n_tokens * cols);
    for t in 0..n_tokens {
        x.extend(rng.vec(cols, 0.25 + t as f32 % 5.0));
    }
    let e = |e: rocmforge_hip::HipError| e.to_string();
    let x_dev = gpu.backend.htod(&x).map_err(e)?;
    let mut wq = Vec::new();
    let mut want_cpu = Vec::new();
    for &r in rows {
        let q = quantize(ty, &rng.vec(r * cols, 1.0)).map_err(|e| e.to_string())?;
        let mut want = vec![0.0f32; n_tokens * r];
        let view = WeightView {
            ty,
            data: &q,
            rows: r,
            cols,
        };
        cpu_matmul(&view, &x, n_tokens, &mut want).map_err(|e| e.to_string())?;
        want_cpu.push(want);
        wq.push(q);
    }
    let mut w_dev = Vec::new();
    for q in &wq {
        w_dev.push(gpu.backend.htod(q).map_err(e)?);
    }
    gpu.ctx.set_fused_matvec(FusedMode::Always);
    let mut want_gpu = Vec::new();
    for (w, &r) in w_dev.iter().zip(rows) {
        let mut out = gpu.backend.alloc::<f32>(n_tokens * r).map_err(e)?;
        out.memset_bytes(0xff).map_err(e)?;
        matmul(
            &mut gpu.ctx,
            w,
            ty,
            r,
            cols,
            &x_dev,
            n_tokens,
            &mut out,
            &gpu.stream,
        )
        .map_err(|e| e.to_string())?;
        gpu.stream.synchronize().map_err(e)?;
        want_gpu.push(out.to_vec().map_err(e)?);
    }
    let mut outs = Vec::new();
    for &r in rows {
        let mut out = gpu.backend.alloc::<f32>(n_tokens * r).map_err(e)?;
        out.memset_bytes(0xff).map_err(e)?;
        outs.push(out);
    }
    let ws: Vec<_> = w_dev.iter().collect();
    let mut out_refs: Vec<_> = outs.iter_mut().collect();
    let done = matmul_multi(
        &mut gpu.ctx,
        &ws,
        rows,
        ty,
        cols,
        &x_dev,
        n_tokens,
        &mut out_refs,
        &gpu.stream,
        None,
    );
    gpu.ctx.set_fused_matvec(FusedMode::Auto);
    if !done.map_err(|e| e.to_string())? {
        return Err("matmul_multi declined a shape its shared memory holds".to_string());
    }
    gpu.stream.synchronize().map_err(e)?;
    let (mut err_cpu, mut err_gpu) = (0.0f32, 0.0f32);
    for (i, out) in outs.iter().enumerate() {
        let got = out.to_vec().map_err(e)?;
        if let Some(k) = got.iter().position(|g| !g.is_finite()) {
            return Err(format!("weight {i}: output {k} is {}", got[k]));
        }
        err_cpu = err_cpu.max(rel_err(&got, &want_cpu[i]));
        err_gpu = err_gpu.max(rel_err(&got, &want_gpu[i]));
    }
    Ok((err_cpu, err_gpu))
}

/// The paths of `hip::matmul` a case runs through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Fused,
    TwoLaunch,
    PreQuantized,
    /// The two-launch kernels with this many weight rows per thread.
    Rows(usize),
    /// `matmul` through this build of the batched-decode tile kernels, with the column split
    /// (true) or without, with this many tokens per block (`None`: `matmul`'s choice).
    Mmqt(MmqtKernel, bool, Option<usize>),
    /// `matmul_q8_1` through the tensor-core tile kernels.
    MmqtQ8_1,
}

/// `x` quantized to q8_1 on the CPU, laid out as `Q8_1Layout` (values, then (d, s) pairs).
fn q8_1_bytes(x: &[f32], n_tokens: usize, cols: usize) -> Vec<u8> {
    let q = quantize_q8_1(x);
    let layout = Q8_1Layout::new("test", n_tokens, cols).unwrap();
    let mut bytes = vec![0u8; layout.total_bytes];
    for (b, v) in bytes.iter_mut().zip(&q.qs) {
        *b = *v as u8;
    }
    for (i, (d, s)) in q.d.iter().zip(&q.s).enumerate() {
        let at = layout.ds_offset + 8 * i;
        bytes[at..at + 4].copy_from_slice(&d.to_le_bytes());
        bytes[at + 4..at + 8].copy_from_slice(&s.to_le_bytes());
    }
    bytes
}

/// Relative errors of one GPU output against `cpu::matmul` and (256-value formats) the
/// same-scheme f64 reference.
fn errors(
    view: &WeightView,
    x: &[f32],
    n_tokens: usize,
    rows: usize,
    got: &[f32],
    want: &[f32],
) -> Result<(f32, Option<f32>), String> {
    let err_cpu = rel_err(got, want);
    let err_scheme = if view.ty.block_size() == 256 {
        let xd = quantize_q8_1(x).dequantize();
        let mut exact = vec![0.0f32; n_tokens * rows];
        matmul_f32_reference(view, &xd, n_tokens, &mut exact).map_err(|e| e.to_string())?;
        Some(rel_err(got, &exact))
    } else {
        None
    };
    Ok((err_cpu, err_scheme))
}

/// Shape errors must be reported, not launched.
fn error_cases(gpu: &mut Gpu) -> Vec<(String, Result<(), String>)> {
    let mut res = Vec::new();
    let w = gpu.backend.alloc::<u8>(18 * 4).unwrap();
    let x = gpu.backend.alloc::<f32>(256).unwrap();
    let mut out = gpu.backend.alloc::<f32>(4).unwrap();
    let r = matmul(
        &mut gpu.ctx,
        &w,
        GgmlType::Q4_0,
        4,
        48,
        &x,
        1,
        &mut out,
        &gpu.stream,
    );
    res.push((
        "cols not a block multiple".to_string(),
        match r {
            Err(e) if e.to_string().contains("48") => Ok(()),
            other => Err(format!("expected a shape error naming 48, got {other:?}")),
        },
    ));
    let r = matmul(
        &mut gpu.ctx,
        &w,
        GgmlType::Q4_0,
        8,
        32,
        &x,
        1,
        &mut out,
        &gpu.stream,
    );
    res.push((
        "weight buffer too small".to_string(),
        match r {
            Err(e) if e.to_string().contains("weight bytes") => Ok(()),
            other => Err(format!("expected a weight size error, got {other:?}")),
        },
    ));
    let r = matmul(
        &mut gpu.ctx,
        &w,
        GgmlType::Q4_0,
        4,
        32,
        &x,
        3,
        &mut out,
        &gpu.stream,
    );
    res.push((
        "output buffer too small".to_string(),
        match r {
            Err(e) if e.to_string().contains("output values") => Ok(()),
            other => Err(format!("expected an output size error, got {other:?}")),
        },
    ));
    res
}

fn main() {
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut gpu = match setup() {
        Ok(g) => g,
        Err(e) => {
            println!("FAIL setup: {e}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    println!(
        "device: {} ({})",
        gpu.backend.info().name,
        gpu.backend.arch()
    );
    let mut table = Vec::new();
    let mut seed = 0x5eed_u64;
    for ty in TYPES {
        let (mut worst, mut worst_scheme) = (0.0f32, None::<f32>);
        let mut n_cases = 0;
        let mut errored = false;
        let mut shapes = Vec::new();
        for rows in [7usize, 33, 1000] {
            for &cols in &col_choices(ty) {
                for n_tokens in [1usize, 3, 8, 17, 64] {
                    shapes.push((rows, cols, n_tokens));
                }
            }
        }
        // Short rows taken 4 (4400 rows) or 2 (2202) at a time by the one-launch kernels: enough
        // groups of rows to fill a GPU of up to 132 compute units at that rate (a smaller
        // matrix takes one row per warp step).
        for &cols in &col_choices(ty) {
            for n_tokens in [1usize, 8] {
                shapes.push((4400, cols, n_tokens));
                shapes.push((2202, cols, n_tokens));
            }
        }
        // Rows of several steps of the one-launch kernels, an odd number of blocks (rows not
        // 16-byte aligned), and 8 tokens of them: too large for its shared memory, so the
        // two-launch fallback.
        let big = if ty.block_size() == 256 {
            256 * 17
        } else {
            32 * 201
        };
        for n_tokens in [1usize, 2, 8] {
            shapes.push((45, big, n_tokens));
        }
        {
            for &(rows, cols, n_tokens) in &shapes {
                {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    n_cases += 1;
                    let case = format!("{ty} {rows}x{cols} n_tokens={n_tokens}");
                    match run_case(&mut gpu, ty, rows, cols, n_tokens, seed) {
                        Ok((err, scheme)) => {
                            worst = worst.max(err);
                            if let Some(e) = scheme {
                                worst_scheme = Some(worst_scheme.unwrap_or(0.0).max(e));
                            }
                            let scheme_ok = scheme.is_none_or(|e| e < SCHEME_BOUND);
                            if err < bound(ty) && scheme_ok {
                                passed += 1;
                            } else {
                                failed += 1;
                                println!(
                                    "FAIL {case}: rel err {err:.3e} (bound {:.0e}), same-scheme {scheme:?} (bound {SCHEME_BOUND:.0e})",
                                    bound(ty)
                                );
                            }
                        }
                        Err(e) => {
                            failed += 1;
                            errored = true;
                            println!("FAIL {case}: {e}");
                        }
                    }
                }
            }
        }
        table.push((
            ty,
            n_cases,
            if errored { f32::NAN } else { worst },
            worst_scheme,
        ));
    }
    // SwiGLU pairs: every quantized type, odd row counts, 1..=8 tokens.
    for ty in TYPES.into_iter().filter(|t| t.is_quantized()) {
        for (rows, n_tokens) in [(7usize, 1usize), (33, 2), (1000, 3), (45, 8)] {
            let cols = col_choices(ty)[0];
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let case = format!("swiglu {ty} {rows}x{cols} n_tokens={n_tokens}");
            match run_swiglu_case(&mut gpu, ty, rows, cols, n_tokens, seed) {
                Ok((cpu, same)) if cpu < 2.0 * bound(ty) && same < 1e-5 => passed += 1,
                Ok((cpu, same)) => {
                    failed += 1;
                    println!(
                        "FAIL {case}: rel err {cpu:.3e} vs cpu (bound {:.0e}), {same:.3e} vs the separate GPU matmuls (bound 1e-5)",
                        2.0 * bound(ty)
                    );
                }
                Err(e) => {
                    failed += 1;
                    println!("FAIL {case}: {e}");
                }
            }
        }
    }
    // Two or three weights of one input (q/k/v): every quantized type, odd row counts.
    for ty in TYPES.into_iter().filter(|t| t.is_quantized()) {
        for (rows, n_tokens) in [
            (&[33usize, 7, 7][..], 1usize),
            (&[45, 16][..], 3),
            (&[100, 20, 20][..], 8),
            (&[45, 16][..], 17),
            (&[100, 20, 20][..], 40),
        ] {
            if n_tokens > 8 && !rocmforge_tensor::hip::matmul_mmqt::supports(ty) {
                continue; // more tokens: one matmul per weight (the caller's fallback)
            }
            let cols = col_choices(ty)[0];
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let case = format!("multi {ty} {rows:?}x{cols} n_tokens={n_tokens}");
            match run_multi_case(&mut gpu, ty, rows, cols, n_tokens, seed) {
                // Not bit-identical: the one launch takes short rows several at a time only when
                // every weight's rows allow it (`rpw`), so its sums may run in another order.
                Ok((cpu, same)) if cpu < bound(ty) && same < 1e-5 => passed += 1,
                Ok((cpu, same)) => {
                    failed += 1;
                    println!(
                        "FAIL {case}: rel err {cpu:.3e} vs cpu (bound {:.0e}), {same:.3e} vs the separate GPU matmuls (bound 1e-5)",
                        bound(ty)
                    );
                }
                Err(e) => {
                    failed += 1;
                    println!("FAIL {case}: {e}");
                }
            }
        }
    }
    let (p, f) = mmqt::run_all(&mut gpu, &mut seed);
    passed += p;
    failed += f;
    let (p, f) = fused_residual::run_all(&mut gpu, &mut seed);
    passed += p;
    failed += f;
    for (name, r) in error_cases(&mut gpu) {
        match r {
            Ok(()) => passed += 1,
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
    println!(
        "\n| type | cases | max rel err vs cpu::matmul | bound | vs same-scheme f64 ref | bound |\n|---|---|---|---|---|---|"
    );
    for (ty, n, worst, scheme) in table {
        let scheme = scheme.map_or("-".to_string(), |e| format!("{e:.3e}"));
        let sb = if ty.block_size() == 256 {
            format!("{SCHEME_BOUND:.0e}")
        } else {
            "-".to_string()
        };
        println!(
            "| {ty} | {n} | {worst:.3e} | {:.0e} | {scheme} | {sb} |",
            bound(ty)
        );
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
