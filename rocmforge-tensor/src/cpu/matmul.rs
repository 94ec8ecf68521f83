//! `out = x · Wᵀ` for a weight in any supported GGUF format: the llama.cpp-style fast path
//! (8-bit activations, integer dot products) and an f32 reference path.

use rayon::prelude::*;
use rocmforge_gguf::GgmlType;

#[cfg(target_arch = "x86_64")]
use super::dot::avx2::{self, KKind, LegacyKind};
#[cfg(target_arch = "x86_64")]
use super::dot::avx512;
use super::dot::{self, Family, KRow, LegacyRow, float};
use super::quantize_act::{quantize_q8_0, quantize_q8_1, quantize_q8_k};
use super::weight::WeightView;
use crate::error::{TensorError, TensorResult};

/// The weight types that 2+ tokens multiply through a panel GEMM on CPUs with AVX2 (the
/// AVX-512 VNNI one where the CPU has it; the 32-element formats with an AVX2 block
/// decoder, the table formats MXFP4 and IQ4_NL included, and the K-quants Q4_K, Q5_K and
/// Q6_K from 4 tokens on).
pub const PANEL_GEMM_TYPES: [GgmlType; 10] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::MXFP4,
    GgmlType::IQ4_NL,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// The fewest tokens the K-quant panel GEMMs take (fewer go to the AVX2 token tiles, with
/// the same bits): building the panels costs about what two tokens do on the tiles, so
/// below this the tiles were as fast or faster (0.5B `ffn_down`, 896 x 4864, one AVX2 core:
/// Q4_K 2 / 3 / 4 / 5 tokens 0.34 / 0.43 / 0.54 / 0.77 ms on the tiles vs 0.35 / 0.39 /
/// 0.43 / 0.51 on the GEMM, Q6_K 0.44 / 0.50 / 0.69 / 1.04 vs 0.51 / 0.54 / 0.61 / 0.70;
/// `examples/bench_cpu_prefill`).
const K_GEMM_MIN_TOKENS: usize = 4;

/// The fewest tokens the AVX2 legacy panel GEMM takes for MXFP4 and IQ4_NL (fewer go to the
/// AVX2 token tiles, with the same bits; the AVX-512 VNNI GEMM takes every batch of 2+): 0.5B
/// `ffn_down`, 896 x 4864, one AVX2 core, tiles / GEMM time at 4 / 6 / 8 / 12 / 16 tokens:
/// MXFP4 0.55 / 0.88 / 0.86 / 1.19 / 0.93 (`examples/bench_cpu_prefill`; the nibble formats
/// measured then, before their eight-row path: Q4_0 0.59 / 0.91 / 1.00 / 1.23 / 1.35, Q4_1
/// 0.56 / 0.90 / 1.09 / 1.18 / 1.33, Q5_0 0.70 / 1.07 / 0.96 / 1.33 / 1.58).
const AVX2_LEGACY_GEMM_MIN_TOKENS: usize = 8;

/// As [`AVX2_LEGACY_GEMM_MIN_TOKENS`] for the nibble formats (Q4_0, Q4_1, Q5_0, Q5_1), whose
/// fewer tokens take the eight-row kernels ([`few_tokens_rows`]) rather than the tiles: on
/// one AVX2 core (EPYC Zen 3), 896 x 4864, rows / GEMM time at 8 / 12 / 16 / 24 / 32 tokens:
/// Q4_0 0.59–0.78 / 0.66–0.70 / 0.77–0.86 / 0.82 / 0.95, Q4_1 0.51–0.53 / 0.66–0.70 /
/// 0.76–0.83 / 1.02 / 0.98, Q5_0 0.61–0.74 / 0.79–0.87 / 0.97–1.03 / 1.02 / 1.15.
const AVX2_NIBBLE_GEMM_MIN_TOKENS: usize = 16;

/// As [`AVX2_LEGACY_GEMM_MIN_TOKENS`] for Q8_0, whose tiles are the cheapest (no unpacking):
/// tiles / GEMM 0.44 / 0.67 / 0.74 / 0.92 / 0.98 at 4 / 6 / 8 / 12 / 16 tokens, 1.09 at 24,
/// 1.22 at 32.
const AVX2_Q8_0_GEMM_MIN_TOKENS: usize = 24;

/// Weight rows per rayon task.
pub(super) const ROWS_PER_TASK: usize = 32;
/// Tokens whose activations are kept hot while a row is unpacked once for all of them.
const TOKENS_PER_GROUP: usize = 16;
// The SIMD kernels cut each group into tiles that line up with their activation layout.
#[cfg(target_arch = "x86_64")]
const _: () = assert!(TOKENS_PER_GROUP % avx2::TILE == 0);

impl CpuKernels {
    /// The best level the running CPU has (after `ROCMFORGE_CPU_SCALAR=1` /
    /// `ROCMFORGE_CPU_NO_AVX512=1`, which turn levels off).
    pub fn detected() -> CpuKernels {
        #[cfg(target_arch = "x86_64")]
        {
            if avx512::Vnni::detect().is_some() {
                return CpuKernels::Avx512Vnni;
            }
            if avx2::Avx2::detect().is_some() {
                return CpuKernels::Avx2Gemm;
            }
        }
        CpuKernels::Portable
    }
}

/// The most a matmul may use of the CPU's SIMD kernels; it uses the best the running CPU
/// has up to that level ([`matmul_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CpuKernels {
    /// The portable scalar path (every row unpacked to 16-bit integers).
    Portable,
    /// AVX2 + FMA + F16C row kernels, prefill on token tiles (x86-64).
    Avx2,
    /// Besides the AVX2 rows, the AVX2 panel GEMM for prefill (x86-64).
    Avx2Gemm,
    /// Besides AVX2, the AVX-512 VNNI panel GEMM for prefill (x86-64).
    Avx512Vnni,
}

/// Checks the operand sizes; returns the weight's bytes per row.
fn check(
    op: &'static str,
    w: &WeightView,
    x: &[f32],
    n_tokens: usize,
    out: &[f32],
) -> TensorResult<usize> {
    let row_bytes = w.checked_row_bytes(op)?;
    if Some(x.len()) != n_tokens.checked_mul(w.cols) {
        return Err(TensorError::Shape {
            op,
            what: format!(
                "activations hold {} values, expected {n_tokens} tokens x {} columns",
                x.len(),
                w.cols
            ),
        });
    }
    if Some(out.len()) != n_tokens.checked_mul(w.rows) {
        return Err(TensorError::Shape {
            op,
            what: format!(
                "output holds {} values, expected {n_tokens} tokens x {} rows",
                out.len(),
                w.rows
            ),
        });
    }
    Ok(row_bytes)
}

/// Runs `body(scratch, row, first_token, results)` for every weight row and every group of
/// tokens, in parallel over rows, and stores `results[j]` (token `first_token + j`) into
/// `out[token][row]`.
fn drive<S, I, B>(rows: usize, n_tokens: usize, out: &mut [f32], init: I, body: B)
where
    I: Fn() -> S + Sync + Send,
    B: Fn(&mut S, usize, usize, &mut [f32]) + Sync + Send,
{
    if n_tokens == 1 {
        out.par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each_init(&init, |s, (c, chunk)| {
                for (j, o) in chunk.iter_mut().enumerate() {
                    body(s, c * ROWS_PER_TASK + j, 0, std::slice::from_mut(o));
                }
            });
        return;
    }
    // Row-major results [rows][n_tokens], transposed into `out` at the end.
    let mut by_row = vec![0.0f32; rows * n_tokens];
    by_row
        .par_chunks_mut(ROWS_PER_TASK * n_tokens)
        .enumerate()
        .for_each_init(&init, |s, (c, chunk)| {
            for t0 in (0..n_tokens).step_by(TOKENS_PER_GROUP) {
                let t1 = (t0 + TOKENS_PER_GROUP).min(n_tokens);
                for (j, row_res) in chunk.chunks_exact_mut(n_tokens).enumerate() {
                    body(s, c * ROWS_PER_TASK + j, t0, &mut row_res[t0..t1]);
                }
            }
        });
    store_by_row(&by_row, n_tokens, out);
}

/// Row-major results `[rows][n_tokens]` into `out[token][row]`.
fn store_by_row(by_row: &[f32], n_tokens: usize, out: &mut [f32]) {
    let rows = by_row.len() / n_tokens;
    for (r, row_res) in by_row.chunks_exact(n_tokens).enumerate() {
        for (t, &v) in row_res.iter().enumerate() {
            out[t * rows + r] = v;
        }
    }
}

/// [`drive`] for kernels that need no scratch: `body(row bytes, first_token, results)`.
#[cfg(target_arch = "x86_64")]
fn drive_rows<B>(w: &WeightView, row_bytes: usize, n_tokens: usize, out: &mut [f32], body: B)
where
    B: Fn(&[u8], usize, &mut [f32]) + Sync + Send,
{
    drive(
        w.rows,
        n_tokens,
        out,
        || (),
        |_, r, t0, res| {
            body(&w.data[r * row_bytes..(r + 1) * row_bytes], t0, res);
        },
    );
}

/// The 8-bit activations held in i16, the width the dot products multiply in.
fn widen(qs: &[i8]) -> Vec<i16> {
    qs.iter().map(|&q| i16::from(q)).collect()
}

/// A few tokens (those below the AVX2 GEMM's floor) of the nibble formats through the
/// eight-row decode kernels, up to four tokens per pass: each block of eight rows is decoded
/// once for all of them, where the token tiles decode it per row and share little between
/// the tokens (one AVX2 core, 896 x 4864 Q4_0 at 4 tokens: tiles 0.72 ms, one token 0.20).
/// The same bits (every kernel sums in the portable path's order). Returns `false`, with
/// nothing written, for the other kinds.
#[cfg(target_arch = "x86_64")]
fn few_tokens_rows(
    isa: avx2::Avx2,
    kind: LegacyKind,
    w: &WeightView,
    row_bytes: usize,
    act: &super::quantize_act::Q8Blocks,
    n_tokens: usize,
    out: &mut [f32],
) -> bool {
    const GROUP: usize = 4;
    if !matches!(
        kind,
        LegacyKind::Q4_0 | LegacyKind::Q4_1 | LegacyKind::Q5_0 | LegacyKind::Q5_1
    ) {
        return false;
    }
    let nb = w.cols / dot::QK;
    let asum = avx2::block_sums(act);
    let row = |r: usize| &w.data[r * row_bytes..(r + 1) * row_bytes];
    // Row-major results [rows][n_tokens], transposed into `out` at the end.
    let mut by_row = vec![0.0f32; w.rows * n_tokens];
    by_row
        .par_chunks_mut(ROWS_PER_TASK * n_tokens)
        .enumerate()
        .for_each(|(c, chunk)| {
            for (i, group) in chunk.chunks_mut(avx2::ROWS * n_tokens).enumerate() {
                let r0 = c * ROWS_PER_TASK + i * avx2::ROWS;
                let n_rows = group.len() / n_tokens;
                // A short last batch repeats its first row in the missing places.
                let rows = std::array::from_fn(|j| row(if j < n_rows { r0 + j } else { r0 }));
                // The next batch's rows, asked for during the first pass over these.
                let next = (r0 + avx2::ROWS) * row_bytes;
                let next = w
                    .data
                    .get(next..(next + avx2::ROWS * row_bytes).min(w.data.len()))
                    .unwrap_or(&[]);
                for t0 in (0..n_tokens).step_by(GROUP) {
                    let n = GROUP.min(n_tokens - t0);
                    let mut res = [[0.0f32; avx2::ROWS]; GROUP];
                    let next = if t0 == 0 { next } else { &[] };
                    avx2::legacy_rows_tokens(
                        isa,
                        kind,
                        rows,
                        act,
                        &asum,
                        nb,
                        t0,
                        next,
                        &mut res[..n],
                    );
                    for (j, rj) in res[..n].iter().enumerate() {
                        for (r, &v) in rj[..n_rows].iter().enumerate() {
                            group[r * n_tokens + t0 + j] = v;
                        }
                    }
                }
            }
        });
    store_by_row(&by_row, n_tokens, out);
    true
}

/// Float weights: activations rounded to the weight's type (ggml converts them to F16 /
/// BF16), each weight row converted to f32 once per token group, f32 dot products.
fn matmul_float(
    w: &WeightView,
    row_bytes: usize,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
    kernels: CpuKernels,
) {
    let mut act = x.to_vec();
    match w.ty {
        GgmlType::F16 => float::round_through_f16(&mut act),
        GgmlType::BF16 => float::round_through_bf16(&mut act),
        _ => {}
    }
    let cols = w.cols;
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(isa), GgmlType::F16) =
        (kernels >= CpuKernels::Avx2, avx2::Avx2::detect(), w.ty)
    {
        drive_rows(w, row_bytes, n_tokens, out, |row, t0, res| {
            avx2::f16_row(isa, row, &act, cols, t0, res)
        });
        return;
    }
    let init = || (vec![0.0f32; cols], Vec::new());
    drive(
        w.rows,
        n_tokens,
        out,
        init,
        |(row_f32, halves), r, t0, res| {
            let bytes = &w.data[r * row_bytes..(r + 1) * row_bytes];
            match w.ty {
                GgmlType::F16 => float::f16_row(bytes, halves, row_f32),
                GgmlType::BF16 => float::bf16_row(bytes, row_f32),
                _ => float::f32_row(bytes, row_f32),
            }
            for (j, o) in res.iter_mut().enumerate() {
                let t = t0 + j;
                *o = float::dot_f32(row_f32, &act[t * cols..(t + 1) * cols]);
            }
        },
    );
}

/// 32-element formats against Q8_0 / Q8_1 activations.
fn matmul_legacy(
    w: &WeightView,
    row_bytes: usize,
    q8_1: bool,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
    kernels: CpuKernels,
) {
    let act = if q8_1 {
        quantize_q8_1(x)
    } else {
        quantize_q8_0(x)
    };
    // Two tokens or more: a panel GEMM (AVX-512 VNNI where the CPU has it, else AVX2 from
    // `AVX2_NIBBLE_GEMM_MIN_TOKENS` / `AVX2_LEGACY_GEMM_MIN_TOKENS` /
    // `AVX2_Q8_0_GEMM_MIN_TOKENS`), which gives the portable
    // path's results bit for bit, as the eight-row kernels and AVX2 tiles below do. (One token,
    // decode, took the 8-row kernels of `decode.rs` before.)
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(isa), Some(kind)) = (
        n_tokens > 1 && kernels >= CpuKernels::Avx2Gemm,
        avx2::Avx2::detect(),
        LegacyKind::of(w.ty),
    ) {
        let m = avx2::LegacyMatrix {
            kind,
            data: w.data,
            row_bytes,
            rows: w.rows,
            cols: w.cols,
        };
        let avx2_from = match kind {
            LegacyKind::Q8_0 => AVX2_Q8_0_GEMM_MIN_TOKENS,
            LegacyKind::Q4_0 | LegacyKind::Q4_1 | LegacyKind::Q5_0 | LegacyKind::Q5_1 => {
                AVX2_NIBBLE_GEMM_MIN_TOKENS
            }
            LegacyKind::Mxfp4 | LegacyKind::Iq4Nl => AVX2_LEGACY_GEMM_MIN_TOKENS,
        };
        let done = match avx512::Vnni::detect() {
            Some(vnni) if kernels >= CpuKernels::Avx512Vnni => {
                avx512::legacy_gemm(vnni, &m, &act, n_tokens, out)
            }
            _ if n_tokens >= avx2_from => avx2::legacy_gemm(isa, &m, &act, n_tokens, out),
            _ => false,
        };
        if done {
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(isa), Some(kind)) = (
        kernels >= CpuKernels::Avx2,
        avx2::Avx2::detect(),
        LegacyKind::of(w.ty),
    ) {
        if n_tokens > 1 && few_tokens_rows(isa, kind, w, row_bytes, &act, n_tokens, out) {
            return;
        }
        let tiled = avx2::tile_q8(&act, n_tokens, w.cols);
        drive_rows(w, row_bytes, n_tokens, out, |row, t0, res| {
            avx2::legacy_row(isa, kind, row, &tiled, w.cols, t0, res)
        });
        return;
    }
    let act_qs = widen(&act.qs);
    let (cols, nb) = (w.cols, w.cols / dot::QK);
    let init = || {
        let mut u = LegacyRow::default();
        u.prepare(cols);
        u
    };
    drive(w.rows, n_tokens, out, init, |u, r, t0, res| {
        u.prepare(cols);
        dot::unpack_legacy(w.ty, &w.data[r * row_bytes..(r + 1) * row_bytes], u);
        for (j, o) in res.iter_mut().enumerate() {
            let t = t0 + j;
            let s = if q8_1 {
                &act.s[t * nb..(t + 1) * nb]
            } else {
                &[][..]
            };
            let qs = &act_qs[t * cols..(t + 1) * cols];
            *o = dot::legacy::dot_legacy(u, qs, &act.d[t * nb..(t + 1) * nb], s);
        }
    });
}

/// 256-element formats against Q8_K activations.
fn matmul_k(
    w: &WeightView,
    row_bytes: usize,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
    kernels: CpuKernels,
) {
    let act = quantize_q8_k(x);
    // From `K_GEMM_MIN_TOKENS` tokens on: the AVX2 K-quant panel GEMM (on AVX-512 CPUs too),
    // the portable path's bits as the tiles below.
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(isa), Some(kind)) = (
        n_tokens >= K_GEMM_MIN_TOKENS && kernels >= CpuKernels::Avx2Gemm,
        avx2::Avx2::detect(),
        KKind::of(w.ty),
    ) {
        let m = avx2::KMatrix {
            kind,
            data: w.data,
            row_bytes,
            rows: w.rows,
            cols: w.cols,
        };
        if avx2::k_gemm(isa, &m, &act, n_tokens, out) {
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(isa), Some(kind)) = (
        kernels >= CpuKernels::Avx2,
        avx2::Avx2::detect(),
        KKind::of(w.ty),
    ) {
        let tiled = avx2::tile_q8k(&act, n_tokens, w.cols);
        let act = &tiled;
        drive_rows(w, row_bytes, n_tokens, out, |row, t0, res| {
            avx2::k_row(isa, kind, row, act, w.cols, t0, res)
        });
        return;
    }
    let act_qs = widen(&act.qs);
    let (cols, nb) = (w.cols, w.cols / dot::kquant::QK_K);
    let init = || {
        let mut u = KRow::default();
        u.prepare(cols);
        u
    };
    drive(w.rows, n_tokens, out, init, |u, r, t0, res| {
        u.prepare(cols);
        dot::unpack_k(w.ty, &w.data[r * row_bytes..(r + 1) * row_bytes], u);
        for (j, o) in res.iter_mut().enumerate() {
            let t = t0 + j;
            let qs = &act_qs[t * cols..(t + 1) * cols];
            let bsums = &act.bsums[t * nb * 16..(t + 1) * nb * 16];
            *o = dot::kquant::dot_k(u, qs, &act.d[t * nb..(t + 1) * nb], bsums);
        }
    });
}

/// `out[t][r] = sum_c W[r][c] * x[t][c]` for `x: [n_tokens][cols]`, `out: [n_tokens][rows]`.
///
/// Quantized weights follow llama.cpp's CPU scheme: each token's activations are quantized
/// to the weight type's `vec_dot_type` (Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for Q4_1/Q5_1,
/// Q8_K for the K-quants and IQ4_XS), then integer dot products per block are scaled and
/// accumulated in f32. F16/BF16 weights take activations rounded to f16/bf16; F32 a plain
/// f32 dot. Rows run in parallel; on CPUs with AVX2 the common formats are multiplied
/// straight from their packed blocks, a tile of tokens per decoded block (`dot::avx2`; 2+
/// tokens of the [`PANEL_GEMM_TYPES`] as a GEMM over panels of 16 decoded rows, with
/// AVX-512 VNNI where the CPU has it), elsewhere each row is unpacked once per group of
/// tokens ([`matmul_portable`]).
///
/// Errors: a weight type without a matmul, `cols` not a whole number of blocks, or slices
/// whose lengths do not match the shapes.
pub fn matmul(w: &WeightView, x: &[f32], n_tokens: usize, out: &mut [f32]) -> TensorResult<()> {
    matmul_path("matmul", w, x, n_tokens, out, default_kernels())
}

/// The level [`matmul`] uses: everything the CPU has, unless `ROCMFORGE_CPU_GEMM=0` turns
/// the panel GEMMs (AVX-512 VNNI and AVX2) off (prefill on the AVX2 token tiles). Either way a token
/// gets the same bits whether it is multiplied alone or among others (every kernel sums in
/// the portable path's order), so a prompt run in pieces (prefix reuse, chunked prefill)
/// gives the greedy text it gives in one piece.
fn default_kernels() -> CpuKernels {
    static GEMM: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let on = *GEMM.get_or_init(|| std::env::var_os("ROCMFORGE_CPU_GEMM").is_none_or(|v| v != "0"));
    if on {
        CpuKernels::Avx512Vnni
    } else {
        CpuKernels::Avx2
    }
}

/// [`matmul`] using at most the `kernels` level of SIMD kernels (lower levels where the
/// running CPU lacks them): for tests and comparisons of the paths on one machine.
pub fn matmul_with(
    kernels: CpuKernels,
    w: &WeightView,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
) -> TensorResult<()> {
    matmul_path("matmul", w, x, n_tokens, out, kernels)
}

/// [`matmul`] through the portable scalar path whatever the CPU (every row unpacked to
/// 16-bit integers), the path of CPUs without the SIMD kernels: for tests and comparisons.
/// The integer sums are the same; only the order of the f32 additions may differ.
pub fn matmul_portable(
    w: &WeightView,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
) -> TensorResult<()> {
    matmul_path("matmul_portable", w, x, n_tokens, out, CpuKernels::Portable)
}

fn matmul_path(
    op: &'static str,
    w: &WeightView,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
    kernels: CpuKernels,
) -> TensorResult<()> {
    let fam = dot::family(w.ty).ok_or(TensorError::UnsupportedType { op, ty: w.ty })?;
    let row_bytes = check(op, w, x, n_tokens, out)?;
    if n_tokens == 0 || w.rows == 0 {
        return Ok(());
    }
    // One token: the decode rows (eight rows at a time, the tiles' bits).
    #[cfg(target_arch = "x86_64")]
    if n_tokens == 1 && super::decode::decode_many(kernels, x, &mut [(w, row_bytes, &mut *out)]) {
        return Ok(());
    }
    match fam {
        Family::Float => matmul_float(w, row_bytes, x, n_tokens, out, kernels),
        Family::Legacy { q8_1 } => matmul_legacy(w, row_bytes, q8_1, x, n_tokens, out, kernels),
        Family::K => matmul_k(w, row_bytes, x, n_tokens, out, kernels),
    }
    Ok(())
}

/// Several weights with the same activations: `jobs[i].1 = x · jobs[i].0ᵀ` (a block's q, k and
/// v projections, or its gate and up), each as [`matmul`] gives it (the same bits). One token
/// runs every row of every weight in one parallel loop, its activations quantized once per
/// scheme; more tokens, and weights without decode rows, run [`matmul`] per weight.
///
/// Errors: as [`matmul`], for any of the weights (nothing is written then).
pub fn matmul_many(
    jobs: &mut [(&WeightView, &mut [f32])],
    x: &[f32],
    n_tokens: usize,
) -> TensorResult<()> {
    const OP: &str = "matmul_many";
    let kernels = default_kernels();
    let mut checked = Vec::with_capacity(jobs.len());
    for (w, out) in jobs.iter_mut() {
        dot::family(w.ty).ok_or(TensorError::UnsupportedType { op: OP, ty: w.ty })?;
        let row_bytes = check(OP, w, x, n_tokens, out)?;
        checked.push((&**w, row_bytes, &mut **out));
    }
    #[cfg(target_arch = "x86_64")]
    if n_tokens == 1 && super::decode::decode_many(kernels, x, &mut checked) {
        return Ok(());
    }
    for (w, _, out) in checked {
        matmul_path(OP, w, x, n_tokens, out, kernels)?;
    }
    Ok(())
}

/// Reference matmul: each weight row dequantized to f32, dot products with the f32
/// activations accumulated in f64. Slow; for tests and debugging.
pub fn matmul_f32_reference(
    w: &WeightView,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
) -> TensorResult<()> {
    const OP: &str = "matmul_f32_reference";
    dot::family(w.ty).ok_or(TensorError::UnsupportedType { op: OP, ty: w.ty })?;
    let row_bytes = check(OP, w, x, n_tokens, out)?;
    let cols = w.cols;
    let mut row = vec![0.0f32; cols];
    for r in 0..w.rows {
        dot::dequantize_row(w.ty, &w.data[r * row_bytes..(r + 1) * row_bytes], &mut row)?;
        for t in 0..n_tokens {
            let xs = &x[t * cols..(t + 1) * cols];
            let s: f64 = row
                .iter()
                .zip(xs)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            out[t * w.rows + r] = s as f32;
        }
    }
    Ok(())
}
