//! MXFP4 (OCP microscaling FP4, gpt-oss's expert weights): 17 bytes per 32 values,
//! `e: u8, qs: [u8; 16]`. `e` is an E8M0 scale (a power of two, `2^(e - 127)`); each 4-bit
//! code is an FP4 E2M1 value, stored doubled as the integers of [`MXFP4_VALUES`], so a value is
//! `VALUES[q] * 2^(e - 128)` ([`e8m0_half`]). Codes are ordered as in Q4_0: the low nibbles of
//! `qs` hold values 0..16, the high nibbles 16..32.
//!
//! The quantizer is ggml's `quantize_row_mxfp4_ref`: `e = floor(log2(amax)) - 2 + 127` and each
//! value's nearest table entry (first on ties).

/// The 16 values an FP4 E2M1 code stands for, doubled (ggml's `kvalues_mxfp4`).
pub const MXFP4_VALUES: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// Bytes of one MXFP4 block.
const BLOCK_BYTES: usize = 17;

/// `2^(e - 128)`: half the E8M0 scale `e` (ggml's `ggml_e8m0_to_fp32_half`; `e` < 2 gives the
/// subnormals `2^-129`, `2^-128`).
pub fn e8m0_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        u32::from(e - 1) << 23
    };
    f32::from_bits(bits)
}

pub(super) fn dequant_mxfp4(data: &[u8], out: &mut [f32]) {
    for (b, y) in data.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(32)) {
        let d = e8m0_half(b[0]);
        for j in 0..16 {
            y[j] = f32::from(MXFP4_VALUES[usize::from(b[1 + j] & 0x0f)]) * d;
            y[j + 16] = f32::from(MXFP4_VALUES[usize::from(b[1 + j] >> 4)]) * d;
        }
    }
}

/// Index of the table value nearest to `x` at scale `d` (the first on ties).
fn best_index(x: f32, d: f32) -> u8 {
    let mut best = 0u8;
    let mut best_err = (f32::from(MXFP4_VALUES[0]) * d - x).abs();
    for (i, &v) in MXFP4_VALUES.iter().enumerate().skip(1) {
        let err = (f32::from(v) * d - x).abs();
        if err < best_err {
            best = i as u8;
            best_err = err;
        }
    }
    best
}

pub(super) fn quant_mxfp4(src: &[f32], out: &mut [u8]) {
    for (x, b) in src.chunks_exact(32).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let amax = x
            .iter()
            .fold(0.0f32, |m, v| if m < v.abs() { v.abs() } else { m });
        let e = if amax > 0.0 {
            (amax.log2().floor() - 2.0 + 127.0).clamp(0.0, 255.0) as u8
        } else {
            0
        };
        let d = e8m0_half(e);
        b[0] = e;
        for j in 0..16 {
            b[1 + j] = best_index(x[j], d) | (best_index(x[j + 16], d) << 4);
        }
    }
}
