//! The residual add in the matvec's store (`matmul_add`: `out += x · Wᵀ`) and the RMS norm in
//! its activations (`matmul_normed`, and the norm of `matmul_multi` / `matmul_swiglu`), for
//! every type the decode kernels serve, odd row counts and 1..=8 tokens, through the one-launch
//! kernels and (for `matmul_add`) the two-launch ones. References on the host: the residual
//! plus `cpu::matmul`; the norm in f64 sums (`(x * s) * w`, `s = 1 / sqrt(mean(x²) + eps)`,
//! as `rms_norm_f32`) then `cpu::matmul` of the normed rows. Outputs and the normed rows are
//! poisoned with NaN first; NaN never passes. `matmul_add` must decline 17 tokens and leave the
//! residual untouched.

use rocmforge_gguf::GgmlType;
use rocmforge_gguf::quants::quantize;
use rocmforge_tensor::DeviceTensor;
use rocmforge_tensor::cpu::{WeightView, matmul as cpu_matmul};
use rocmforge_tensor::hip::matmul::{
    NormBuffers, matmul_add, matmul_multi, matmul_normed, matmul_swiglu,
};
use rocmforge_tensor::hip::matvec_fused::FusedMode;

use super::{Gpu, Rng, TYPES, bound, col_choices, rel_err, silu_mul_host};

/// Bound of the normed rows against the host's (the sum of squares in another order).
const NORM_BOUND: f32 = 1e-5;
const EPS: f32 = 1e-6;

fn host_norm(x: &[f32], w: &[f32], n_tokens: usize, cols: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for t in 0..n_tokens {
        let row = &x[t * cols..(t + 1) * cols];
        let sum: f64 = row.iter().map(|&v| f64::from(v * v)).sum();
        let s = 1.0 / ((sum / cols as f64) as f32 + EPS).sqrt();
        out.extend(row.iter().zip(w).map(|(&v, &wv)| (v * s) * wv));
    }
    out
}

fn tokens(rng: &mut Rng, n_tokens: usize, cols: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(n_tokens * cols);
    for t in 0..n_tokens {
        x.extend(rng.vec(cols, 0.25 + t as f32 % 5.0));
    }
    x
}

fn cpu_product(ty: GgmlType, wq: &[u8], rows: usize, cols: usize, x: &[f32], n: usize) -> Vec<f32> {
    let view = WeightView {
        ty,
        data: wq,
        rows,
        cols,
    };
    let mut out = vec![0.0f32; n * rows];
    cpu_matmul(&view, x, n, &mut out).expect("cpu matmul");
    out
}

fn finite(what: &str, v: &[f32]) -> Result<(), String> {
    match v.iter().position(|g| !g.is_finite()) {
        Some(i) => Err(format!("{what}: value {i} is {}", v[i])),
        None => Ok(()),
    }
}

/// `matmul_add` in `mode`: rel err of (out - residual) against the CPU product.
fn run_add_case(
    gpu: &mut Gpu,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    seed: u64,
    mode: FusedMode,
) -> Result<f32, String> {
    let mut rng = Rng(seed | 1);
    let wq = quantize(ty, &rng.vec(rows * cols, 1.0)).map_err(|e| e.to_string())?;
    let x = tokens(&mut rng, n_tokens, cols);
    let residual = rng.vec(n_tokens * rows, 3.0);
    let want = cpu_product(ty, &wq, rows, cols, &x, n_tokens);
    let e = |e: rocmforge_hip::HipError| e.to_string();
    let (w_dev, x_dev) = (
        gpu.backend.htod(&wq).map_err(e)?,
        gpu.backend.htod(&x).map_err(e)?,
    );
    let mut out = gpu.backend.htod(&residual).map_err(e)?;
    gpu.ctx.set_fused_matvec(mode);
    let done = matmul_add(
        &mut gpu.ctx,
        &w_dev,
        ty,
        rows,
        cols,
        &x_dev,
        n_tokens,
        &mut out,
        &gpu.stream,
    );
    gpu.ctx.set_fused_matvec(FusedMode::Auto);
    let done = done.map_err(|e| e.to_string())?;
    gpu.stream.synchronize().map_err(e)?;
    let got = out.to_vec().map_err(e)?;
    if n_tokens > 8 {
        if done {
            return Err("matmul_add took a batch of more than 8 tokens".to_string());
        }
        if got
            .iter()
            .zip(&residual)
            .any(|(a, b)| a.to_bits() != b.to_bits())
        {
            return Err("matmul_add declined but changed the residual".to_string());
        }
        return Ok(0.0);
    }
    if !done {
        return Err("matmul_add declined a decode-sized batch".to_string());
    }
    finite("output", &got)?;
    let product: Vec<f32> = got.iter().zip(&residual).map(|(g, r)| g - r).collect();
    Ok(rel_err(&product, &want))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NormKind {
    /// `matmul_normed`: one weight.
    Single,
    /// `matmul_multi` with the norm: the weights of `rows`.
    Multi,
    /// `matmul_swiglu` with the norm: a gate/up pair.
    Glu,
}

/// One normed case: (rel err of the outputs vs the CPU, rel err of the normed rows).
fn run_norm_case(
    gpu: &mut Gpu,
    ty: GgmlType,
    kind: NormKind,
    rows: &[usize],
    cols: usize,
    n_tokens: usize,
    seed: u64,
) -> Result<(f32, f32), String> {
    let mut rng = Rng(seed | 1);
    let x = tokens(&mut rng, n_tokens, cols);
    let nw: Vec<f32> = rng.vec(cols, 0.5).iter().map(|v| 1.0 + v).collect();
    let normed_host = host_norm(&x, &nw, n_tokens, cols);
    let n_weights = if kind == NormKind::Glu { 2 } else { rows.len() };
    let mut wq = Vec::new();
    for i in 0..n_weights {
        let r = rows[i.min(rows.len() - 1)];
        wq.push(quantize(ty, &rng.vec(r * cols, 1.0)).map_err(|e| e.to_string())?);
    }
    let r0 = rows[0];
    let want: Vec<Vec<f32>> = match kind {
        NormKind::Glu => {
            let g = cpu_product(ty, &wq[0], r0, cols, &normed_host, n_tokens);
            let u = cpu_product(ty, &wq[1], r0, cols, &normed_host, n_tokens);
            vec![silu_mul_host(&g, &u)]
        }
        _ => wq
            .iter()
            .zip(rows)
            .map(|(q, &r)| cpu_product(ty, q, r, cols, &normed_host, n_tokens))
            .collect(),
    };
    let e = |e: rocmforge_hip::HipError| e.to_string();
    let x_dev = gpu.backend.htod(&x).map_err(e)?;
    // The norm weight as `GgufLoader` uploads it: the file's raw bytes, dtype F32.
    let nw_bytes: Vec<u8> = nw.iter().flat_map(|v| v.to_le_bytes()).collect();
    let nw_dev = DeviceTensor::from_raw_bytes(&gpu.backend, GgmlType::F32, vec![cols], &nw_bytes)
        .map_err(|e| e.to_string())?;
    let mut normed_dev = gpu.backend.alloc::<f32>(n_tokens * cols).map_err(e)?;
    normed_dev.memset_bytes(0xff).map_err(e)?;
    let mut w_dev = Vec::new();
    for q in &wq {
        w_dev.push(gpu.backend.htod(q).map_err(e)?);
    }
    let mut outs = Vec::new();
    for r in want.iter().map(|w| w.len()) {
        let mut o = gpu.backend.alloc::<f32>(r).map_err(e)?;
        o.memset_bytes(0xff).map_err(e)?;
        outs.push(o);
    }
    let norm = NormBuffers {
        weight: &nw_dev,
        eps: EPS,
        out: &mut normed_dev,
    };
    gpu.ctx.set_fused_matvec(FusedMode::Always);
    let done = match kind {
        NormKind::Single => matmul_normed(
            &mut gpu.ctx,
            &w_dev[0],
            ty,
            r0,
            cols,
            &x_dev,
            &norm,
            n_tokens,
            &mut outs[0],
            &gpu.stream,
        ),
        NormKind::Glu => matmul_swiglu(
            &mut gpu.ctx,
            &w_dev[0],
            &w_dev[1],
            ty,
            r0,
            cols,
            &x_dev,
            n_tokens,
            &mut outs[0],
            &gpu.stream,
            Some(&norm),
        ),
        NormKind::Multi => {
            let ws: Vec<_> = w_dev.iter().collect();
            let mut refs: Vec<_> = outs.iter_mut().collect();
            matmul_multi(
                &mut gpu.ctx,
                &ws,
                rows,
                ty,
                cols,
                &x_dev,
                n_tokens,
                &mut refs,
                &gpu.stream,
                Some(&norm),
            )
        }
    };
    gpu.ctx.set_fused_matvec(FusedMode::Auto);
    if !done.map_err(|e| e.to_string())? {
        return Err("declined a shape the one-launch kernels hold".to_string());
    }
    gpu.stream.synchronize().map_err(e)?;
    let normed = normed_dev.to_vec().map_err(e)?;
    finite("normed rows", &normed)?;
    let mut err = 0.0f32;
    for (i, (o, w)) in outs.iter().zip(&want).enumerate() {
        let got = o.to_vec().map_err(e)?;
        finite(&format!("output {i}"), &got)?;
        err = err.max(rel_err(&got, w));
    }
    Ok((err, rel_err(&normed, &normed_host)))
}

/// Every case; returns (passed, failed).
pub fn run_all(gpu: &mut Gpu, seed: &mut u64) -> (usize, usize) {
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut next = || {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed
    };
    let mut tally = |case: String, r: Result<bool, String>| match r {
        Ok(true) => passed += 1,
        Ok(false) => failed += 1,
        Err(e) => {
            failed += 1;
            println!("FAIL {case}: {e}");
        }
    };
    for ty in TYPES.into_iter().filter(|t| *t != GgmlType::F32) {
        let cols = col_choices(ty)[0];
        for (rows, n_tokens, mode) in [
            (33usize, 1usize, FusedMode::Always),
            (1000, 3, FusedMode::Always),
            (45, 8, FusedMode::Always),
            (33, 1, FusedMode::Never),
            (1000, 8, FusedMode::Never),
            (45, 17, FusedMode::Always),
        ] {
            let case = format!("matmul_add {ty} {rows}x{cols} n_tokens={n_tokens} {mode:?}");
            let r = run_add_case(gpu, ty, rows, cols, n_tokens, next(), mode).map(|err| {
                let ok = err < bound(ty);
                if !ok {
                    println!("FAIL {case}: rel err {err:.3e} (bound {:.0e})", bound(ty));
                }
                ok
            });
            tally(case, r);
        }
        let kinds: &[NormKind] = if ty.is_quantized() {
            &[NormKind::Single, NormKind::Multi, NormKind::Glu]
        } else {
            &[NormKind::Single]
        };
        // The float kernels stage 8 values per load: 96 columns.
        let cols = if ty.is_quantized() { cols } else { 96 };
        for &kind in kinds {
            for (rows, n_tokens) in [
                (&[33usize, 7, 7][..], 1usize),
                (&[1000, 16][..], 3),
                (&[45, 20, 20][..], 8),
            ] {
                let rows = if kind == NormKind::Multi {
                    rows
                } else {
                    &rows[..1]
                };
                let case = format!("{kind:?} norm {ty} {rows:?}x{cols} n_tokens={n_tokens}");
                let b = if kind == NormKind::Glu {
                    2.0 * bound(ty)
                } else {
                    bound(ty)
                };
                let r = run_norm_case(gpu, ty, kind, rows, cols, n_tokens, next()).map(|(err, nerr)| {
                    let ok = err < b && nerr < NORM_BOUND;
                    if !ok {
                        println!(
                            "FAIL {case}: rel err {err:.3e} (bound {b:.0e}), normed rows {nerr:.3e} (bound {NORM_BOUND:.0e})"
                        );
                    }
                    ok
                });
                tally(case, r);
            }
        }
    }
    (passed, failed)
}
