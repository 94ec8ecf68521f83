//! Float weights (F32, F16, BF16): row conversion and the f32 dot product.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// Dot product with eight f32 accumulator lanes (the shape ggml's SIMD `vec_dot` uses;
/// the compiler turns the lanes into vector registers).
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 8;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; L];
    let mut ca = a.chunks_exact(L);
    let mut cb = b.chunks_exact(L);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..L {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    let s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    s + tail
}

/// Converts a row of little-endian F32 bytes.
pub(crate) fn f32_row(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// Converts a row of little-endian F16 bytes; `halves` is scratch space reused between
/// rows (the slice conversion uses the CPU's f16 instructions where it has them).
pub(crate) fn f16_row(bytes: &[u8], halves: &mut Vec<f16>, out: &mut [f32]) {
    halves.clear();
    halves.extend(
        bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]])),
    );
    let n = halves.len().min(out.len());
    halves[..n].convert_to_f32_slice(&mut out[..n]);
}

/// Converts a row of little-endian BF16 bytes.
pub(crate) fn bf16_row(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
    }
}

/// Rounds activations to f16 and back, as ggml converts them to `vec_dot_type` F16.
pub(crate) fn round_through_f16(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = f16::from_f32(*v).to_f32();
    }
}

/// Rounds activations to bf16 (round to nearest even) and back.
pub(crate) fn round_through_bf16(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = bf16::from_f32(*v).to_f32();
    }
}
