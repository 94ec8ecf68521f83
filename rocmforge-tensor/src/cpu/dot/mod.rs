//! Per-weight-type row decoding and dot products.
//!
//! The portable path: every quantized format is first *unpacked* row by row into one small
//! signed integer per element plus integer/float scales ([`LegacyRow`] for the 32-element
//! formats, [`KRow`] for the 256-element ones). The matmul driver unpacks a row once per
//! group of tokens and takes integer dot products of the unpacked row with each token's
//! 8-bit activations; the same unpacked row dequantized gives the f32 reference path.
//! On x86-64 with AVX2 the common formats skip the unpacking: `avx2` multiplies the packed
//! blocks directly, with the same integer sums.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
pub(crate) mod float;
mod iq4;
pub(crate) mod kquant;
pub(crate) mod kquant_high;
mod kquant_low;
pub(crate) mod legacy;
mod mxfp4;

use half::f16;
use rocmforge_gguf::GgmlType;

use crate::error::{TensorError, TensorResult};
pub(crate) use kquant::KRow;
pub(crate) use legacy::LegacyRow;

/// Elements per block of the 32-element formats.
pub(crate) const QK: usize = 32;

/// The little-endian f16 at byte `at` of `b`, widened to f32.
#[inline(always)]
pub(crate) fn half_le(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Integer dot product of two equally long runs of 8-bit values held in i16 (so the
/// compiler emits 16-bit multiply-adds without sign-extending bytes in the inner loop);
/// the length is a multiple of 16 (every block and sub-block length here).
#[inline(always)]
pub(crate) fn int_dot(a: &[i16], b: &[i16]) -> i32 {
    let mut acc = [0i32; 16];
    for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
        if let (Ok(x), Ok(y)) = (<&[i16; 16]>::try_from(x), <&[i16; 16]>::try_from(y)) {
            for l in 0..16 {
                acc[l] += i32::from(x[l]) * i32::from(y[l]);
            }
        }
    }
    acc.iter().sum()
}

/// How a weight type is multiplied with activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// F32 / F16 / BF16: float dot with activations rounded to the weight's type.
    Float,
    /// 32-element blocks against Q8_0 (`q8_1 == false`) or Q8_1 activations.
    Legacy { q8_1: bool },
    /// 256-element super-blocks against Q8_K activations.
    K,
}

/// The family of `ty`, or `None` for a type without a matmul.
pub(crate) fn family(ty: GgmlType) -> Option<Family> {
    use GgmlType::*;
    match ty {
        F32 | F16 | BF16 => Some(Family::Float),
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL | MXFP4 => Some(Family::Legacy { q8_1: false }),
        Q4_1 | Q5_1 => Some(Family::Legacy { q8_1: true }),
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | IQ4_XS => Some(Family::K),
        _ => None,
    }
}

/// Unpacks one row of a 32-element format (`out.prepare(cols)` first).
pub(crate) fn unpack_legacy(ty: GgmlType, row: &[u8], out: &mut LegacyRow) {
    match ty {
        GgmlType::Q4_0 => legacy::unpack_q4_0(row, out),
        GgmlType::Q4_1 => legacy::unpack_q4_1(row, out),
        GgmlType::Q5_0 => legacy::unpack_q5_0(row, out),
        GgmlType::Q5_1 => legacy::unpack_q5_1(row, out),
        GgmlType::Q8_0 => legacy::unpack_q8_0(row, out),
        GgmlType::IQ4_NL => iq4::unpack_iq4_nl(row, out),
        GgmlType::MXFP4 => mxfp4::unpack_mxfp4(row, out),
        _ => {}
    }
}

/// Unpacks one row of a 256-element format (`out.prepare(cols)` first).
pub(crate) fn unpack_k(ty: GgmlType, row: &[u8], out: &mut KRow) {
    match ty {
        GgmlType::Q2_K => kquant_low::unpack_q2_k(row, out),
        GgmlType::Q3_K => kquant_low::unpack_q3_k(row, out),
        GgmlType::Q4_K => kquant_high::unpack_q4_k(row, out),
        GgmlType::Q5_K => kquant_high::unpack_q5_k(row, out),
        GgmlType::Q6_K => kquant_high::unpack_q6_k(row, out),
        GgmlType::IQ4_XS => iq4::unpack_iq4_xs(row, out),
        _ => {}
    }
}

/// Dequantizes one row (`row` holds exactly `out.len()` elements of `ty`) to f32.
///
/// Works for every type [`matmul`](super::matmul) accepts; the values are computed in
/// ggml's order (`d * q + m`, `(d * scale) * q - dmin * min`).
pub fn dequantize_row(ty: GgmlType, row: &[u8], out: &mut [f32]) -> TensorResult<()> {
    const OP: &str = "dequantize_row";
    let fam = family(ty).ok_or(TensorError::UnsupportedType { op: OP, ty })?;
    let cols = out.len();
    let bs = ty.block_size();
    if cols % bs != 0 || row.len() != cols / bs * ty.type_size() {
        return Err(TensorError::Shape {
            op: OP,
            what: format!("{} bytes of {ty} cannot hold {cols} elements", row.len()),
        });
    }
    match fam {
        Family::Float => match ty {
            GgmlType::F32 => float::f32_row(row, out),
            GgmlType::F16 => float::f16_row(row, &mut Vec::new(), out),
            _ => float::bf16_row(row, out),
        },
        Family::Legacy { .. } => {
            let mut u = LegacyRow::default();
            u.prepare(cols);
            unpack_legacy(ty, row, &mut u);
            legacy::dequantize_legacy(&u, out);
        }
        Family::K => {
            let mut u = KRow::default();
            u.prepare(cols);
            unpack_k(ty, row, &mut u);
            kquant::dequantize_k(&u, out);
        }
    }
    Ok(())
}
