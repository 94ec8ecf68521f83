//! The non-linear 4-bit formats IQ4_NL and IQ4_XS: each 4-bit code indexes [`IQ4_NL_VALUES`].
//!
//! - IQ4_NL (18 bytes per 32 values): `d: f16, qs: [u8; 16]`, nibbles ordered as in Q4_0;
//!   value = d·VALUES[q].
//! - IQ4_XS (136 bytes per 256 values): `d: f16, scales_h: u16, scales_l: [u8; 4],
//!   qs: [u8; 128]`. Sub-block s (32 values) has the 6-bit scale `ls` made of nibble s % 2 of
//!   `scales_l[s / 2]` and bits 2s..2s+2 of `scales_h`; value = d·(ls − 32)·VALUES[q], with the
//!   codes of sub-block s in `qs[16·s..][..16]` ordered as in Q4_0.
//!
//! The quantizers follow what `llama-quantize` runs for these types: a search over 15 trial
//! scales per 32 values, weighted by x², or with an importance matrix by `qw·√(σ² + x²)`.

use super::scalar::{f16_at, nearest_int, put_f16};

/// The 16 values a 4-bit IQ4 code stands for (ggml's `kvalues_iq4nl`).
pub const IQ4_NL_VALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Trial scales on each side of the first guess (ggml's `ntry`).
const NTRY: i32 = 7;

fn unpack_32(d: f32, qs: &[u8], y: &mut [f32]) {
    for j in 0..16 {
        y[j] = d * f32::from(IQ4_NL_VALUES[usize::from(qs[j] & 0x0f)]);
        y[j + 16] = d * f32::from(IQ4_NL_VALUES[usize::from(qs[j] >> 4)]);
    }
}

pub(super) fn dequant_iq4_nl(data: &[u8], out: &mut [f32]) {
    for (b, y) in data.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
        unpack_32(f16_at(b, 0), &b[2..18], y);
    }
}

pub(super) fn dequant_iq4_xs(data: &[u8], out: &mut [f32]) {
    for (b, y) in data.chunks_exact(136).zip(out.chunks_exact_mut(256)) {
        let d = f16_at(b, 0);
        let scales_h = u16::from_le_bytes([b[2], b[3]]);
        for (s, ys) in y.chunks_exact_mut(32).enumerate() {
            let low = (b[4 + s / 2] >> (4 * (s % 2))) & 0x0f;
            let high = ((scales_h >> (2 * s)) & 3) as u8;
            let dl = d * f32::from((low | (high << 4)) as i8 - 32);
            unpack_32(dl, &b[8 + 16 * s..][..16], ys);
        }
    }
}

/// Index of the table value nearest to `x` (ggml's `best_index_int8`; ties go up).
fn best_index(x: f32) -> u8 {
    let v = &IQ4_NL_VALUES;
    if x <= f32::from(v[0]) {
        return 0;
    }
    if x >= f32::from(v[15]) {
        return 15;
    }
    let (mut lo, mut hi) = (0usize, 15usize);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if x < f32::from(v[mid]) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    if x - f32::from(v[hi - 1]) < f32::from(v[hi]) - x {
        (hi - 1) as u8
    } else {
        hi as u8
    }
}

/// The best scale for 32 values (`weights`-weighted least squares over 2·NTRY + 1 trial
/// scales), or 0 for an all-zero group.
fn best_scale(x: &[f32], weights: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < 1e-15 {
        return 0.0;
    }
    let fit = |id: f32| {
        let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
        for (&v, &w) in x.iter().zip(weights) {
            let q = f32::from(IQ4_NL_VALUES[usize::from(best_index(id * v))]);
            sumqx += w * q * v;
            sumq2 += w * q * q;
        }
        (sumqx, sumq2)
    };
    let d0 = -max / f32::from(IQ4_NL_VALUES[0]);
    let (sumqx, sumq2) = fit(1.0 / d0);
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -NTRY..=NTRY {
        let id = (itry as f32 + f32::from(IQ4_NL_VALUES[0])) / max;
        let (sumqx, sumq2) = fit(id);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Packs 32 codes as Q4_0 orders them.
fn pack_32(l: &[u8; 32], qs: &mut [u8]) {
    for j in 0..16 {
        qs[j] = l[j] | (l[j + 16] << 4);
    }
}

fn codes_32(x: &[f32], id: f32) -> [u8; 32] {
    let mut l = [0u8; 32];
    for (li, &v) in l.iter_mut().zip(x) {
        *li = best_index(id * v);
    }
    l
}

/// The weights of the values `x` of one block: `qw·√(σ² + x²)` with σ² = 2·mean(x²) over
/// `x` when importance weights `qw` are given, else x² (ggml's `quantize_row_iq4_nl_impl`).
fn block_weights(x: &[f32], qw: Option<&[f32]>, out: &mut [f32]) {
    match qw {
        Some(qw) => {
            let sigma2 = x.iter().fold(0.0f32, |a, v| a + v * v) * (2.0 / x.len() as f32);
            for ((o, &w), &v) in out.iter_mut().zip(qw).zip(x) {
                *o = w * (sigma2 + v * v).sqrt();
            }
        }
        None => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = v * v;
            }
        }
    }
}

fn nl_block(x: &[f32], qw: Option<&[f32]>, b: &mut [u8]) {
    let mut weights = [0.0f32; 32];
    block_weights(x, qw, &mut weights);
    let d = best_scale(x, &weights);
    put_f16(b, 0, d);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    pack_32(&codes_32(x, id), &mut b[2..18]);
}

fn xs_block(x: &[f32], qw: Option<&[f32]>, b: &mut [u8]) {
    let mut weights = [0.0f32; 256];
    block_weights(x, qw, &mut weights);
    let mut scales = [0.0f32; 8];
    let (mut max_scale, mut amax_scale) = (0.0f32, 0.0f32);
    for ((s, xs), ws) in scales
        .iter_mut()
        .zip(x.chunks_exact(32))
        .zip(weights.chunks_exact(32))
    {
        *s = best_scale(xs, ws);
        if s.abs() > amax_scale {
            amax_scale = s.abs();
            max_scale = *s;
        }
    }
    let d = -max_scale / 32.0;
    put_f16(b, 0, d);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut scales_h = 0u16;
    let mut scales_l = [0u8; 4];
    for (s, xs) in x.chunks_exact(32).enumerate() {
        let l = nearest_int(id * scales[s]).clamp(-32, 31);
        let dl = d * l as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        pack_32(&codes_32(xs, idl), &mut b[8 + 16 * s..][..16]);
        let l = (l + 32) as u8;
        scales_l[s / 2] |= (l & 0x0f) << (4 * (s % 2));
        scales_h |= u16::from(l >> 4) << (2 * s);
    }
    b[2..4].copy_from_slice(&scales_h.to_le_bytes());
    b[4..8].copy_from_slice(&scales_l);
}

pub(super) fn quant_iq4_nl(src: &[f32], out: &mut [u8]) {
    for (x, b) in src.chunks_exact(32).zip(out.chunks_exact_mut(18)) {
        nl_block(x, None, b);
    }
}

/// IQ4_NL with importance weights: `qw` holds one weight per value of `src`.
pub(super) fn quant_iq4_nl_weighted(src: &[f32], qw: &[f32], out: &mut [u8]) {
    for ((x, w), b) in src
        .chunks_exact(32)
        .zip(qw.chunks_exact(32))
        .zip(out.chunks_exact_mut(18))
    {
        nl_block(x, Some(w), b);
    }
}

pub(super) fn quant_iq4_xs(src: &[f32], out: &mut [u8]) {
    for (x, b) in src.chunks_exact(256).zip(out.chunks_exact_mut(136)) {
        xs_block(x, None, b);
    }
}

/// IQ4_XS with importance weights: `qw` holds one weight per value of `src`.
pub(super) fn quant_iq4_xs_weighted(src: &[f32], qw: &[f32], out: &mut [u8]) {
    for ((x, w), b) in src
        .chunks_exact(256)
        .zip(qw.chunks_exact(256))
        .zip(out.chunks_exact_mut(136))
    {
        xs_block(x, Some(w), b);
    }
}
