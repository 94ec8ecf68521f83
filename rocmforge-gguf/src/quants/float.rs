//! F32, F16 and BF16: one element per "block".

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::scalar::bf16_bits_from_f32;

pub(super) fn dequant_f32(data: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(data.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

pub(super) fn dequant_f16(data: &[u8], out: &mut [f32]) {
    // Through an aligned buffer so that half's slice conversion can use F16C where present.
    let mut buf = [f16::ZERO; 256];
    for (o, d) in out.chunks_mut(256).zip(data.chunks(512)) {
        let halves = &mut buf[..o.len()];
        for (h, b) in halves.iter_mut().zip(d.chunks_exact(2)) {
            *h = f16::from_bits(u16::from_le_bytes([b[0], b[1]]));
        }
        halves.convert_to_f32_slice(o);
    }
}

pub(super) fn dequant_bf16(data: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
        *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
    }
}

pub(super) fn quant_f32(src: &[f32], out: &mut [u8]) {
    for (x, b) in src.iter().zip(out.chunks_exact_mut(4)) {
        b.copy_from_slice(&x.to_le_bytes());
    }
}

pub(super) fn quant_f16(src: &[f32], out: &mut [u8]) {
    for (x, b) in src.iter().zip(out.chunks_exact_mut(2)) {
        b.copy_from_slice(&f16::from_f32(*x).to_le_bytes());
    }
}

pub(super) fn quant_bf16(src: &[f32], out: &mut [u8]) {
    for (x, b) in src.iter().zip(out.chunks_exact_mut(2)) {
        b.copy_from_slice(&bf16_bits_from_f32(*x).to_le_bytes());
    }
}
