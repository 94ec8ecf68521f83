//! Q8_K (292 bytes per 256 values): `d: f32, qs: [i8; 256], bsums: [i16; 16]`.
//!
//! The activation format of the K-quant dot products; `bsums[g]` is the sum of the codes of
//! values 16·g..16·g + 16. Value = d·q.

use super::QK_K;
use crate::quants::scalar::nearest_int;

const BLOCK_BYTES: usize = 292;

pub(crate) fn dequant(data: &[u8], out: &mut [f32]) {
    for (b, y) in data
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK_K))
    {
        let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        for (yi, &q) in y.iter_mut().zip(&b[4..260]) {
            *yi = d * f32::from(q as i8);
        }
    }
}

pub(crate) fn quant(src: &[f32], out: &mut [u8]) {
    for (x, b) in src
        .chunks_exact(QK_K)
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        let (mut max, mut amax) = (0.0f32, 0.0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        let mut sums = [0i32; 16];
        for (e, (&v, q)) in x.iter().zip(&mut b[4..260]).enumerate() {
            let qi = nearest_int(iscale * v).min(127) as i8;
            sums[e / 16] += i32::from(qi);
            *q = qi as u8;
        }
        b[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
        for (g, s) in sums.iter().enumerate() {
            b[260 + 2 * g..262 + 2 * g].copy_from_slice(&(*s as i16).to_le_bytes());
        }
    }
}
