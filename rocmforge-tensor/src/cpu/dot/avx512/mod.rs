//! AVX-512 VNNI kernels (x86-64 only): the quantized prefill as a GEMM over row panels, and
//! Q8_0 decode rows on 256-bit registers (`rows_q8`). (The other formats' decode stays on
//! the AVX2 row kernels: a 512-bit VNNI row kernel, four rows and two blocks per register,
//! measured 25-35% slower per token on this Ice Lake server.)
//!
//! A panel is 16 weight rows decoded once into unsigned bytes and interleaved so that one
//! 512-bit register holds four consecutive values of each of the 16 rows: `vpdpbusd`
//! against four activation bytes broadcast to every lane then adds 4 products into each
//! row's lane, so the integer sums of 16 rows come out side by side, with no horizontal
//! sums and one scale multiply per 16 rows. The panel is built by the task that uses it
//! and multiplied with every token of the matmul (prefill), so each weight block is read
//! and decoded once per matmul.
//!
//! The K-quants (Q4_K, Q5_K, Q6_K) take the AVX2 K-quant GEMM on these CPUs too: its VNNI
//! twin (f488b1e) was removed unrun, as no machine here has AVX-512 (restore it with
//! `git revert` of its removal once a VNNI machine can run the bit-identity tests).
//!
//! The kernels are `#[target_feature]` functions reached only through the functions here,
//! which take a [`Vnni`] token: a value that exists only after [`Vnni::detect`] found
//! AVX-512 F/BW/VL/VNNI and the AVX2 kernels' features on the running CPU.

mod gemm_legacy;
mod rows_q8;

use std::sync::OnceLock;

pub(crate) use super::avx2::LegacyMatrix;
use super::avx2::{Ahead, Avx2, ROWS};
use crate::cpu::quantize_act::Q8Blocks;

/// Proof that the running CPU has AVX-512 F, BW, VL and VNNI besides AVX2, FMA and F16C.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vnni(());

impl Vnni {
    /// The token when the CPU supports the kernels; detected once per process.
    /// `ROCMFORGE_CPU_SCALAR=1` (portable path) and `ROCMFORGE_CPU_NO_AVX512=1` (AVX2 path,
    /// as on CPUs without AVX-512) turn it off.
    pub(crate) fn detect() -> Option<Vnni> {
        static FOUND: OnceLock<bool> = OnceLock::new();
        let found = *FOUND.get_or_init(|| {
            Avx2::detect().is_some()
                && std::env::var_os("ROCMFORGE_CPU_NO_AVX512").is_none_or(|v| v != "1")
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni")
        });
        found.then_some(Vnni(()))
    }
}

/// `out[t][r] = row r · token t` for all `n_tokens` tokens of `act` (Q8_0 or, for the
/// formats with a min, Q8_1 blocks, token after token as `quantize_q8_*` gives them),
/// in parallel over panels of 16 rows. Returns `false` (and writes nothing) when a slice
/// is shorter than the shapes say.
pub(crate) fn legacy_gemm(
    _: Vnni,
    w: &LegacyMatrix,
    act: &Q8Blocks,
    n_tokens: usize,
    out: &mut [f32],
) -> bool {
    gemm_legacy::gemm(w, act, n_tokens, out)
}

/// As [`super::avx2::legacy_rows`] for Q8_0 rows (same bits), with `vpdpbusd` on 256-bit
/// registers.
pub(crate) fn q8_0_rows(
    _: Vnni,
    rows: [&[u8]; ROWS],
    act: &Q8Blocks,
    asum: &[i32],
    next: &[u8],
    out: &mut [f32],
) {
    let ahead = Ahead::new(next, act.d.len());
    // SAFETY: a `Vnni` token exists only when AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C
    // were detected.
    unsafe { rows_q8::rows(rows, act, asum, ahead, out) }
}
