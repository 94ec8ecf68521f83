//! The unpacked form of the 256-element super-block formats (K-quants and IQ4_XS) and
//! their integer dot product against Q8_K activations.

use super::int_dot;

/// Elements per super-block.
pub(crate) const QK_K: usize = 256;

/// One weight row unpacked to one signed 8-bit value (held in i16) per element, an integer scale (and
/// for Q2_K/Q4_K/Q5_K an integer min) per sub-block of `sub_len` elements, and per
/// super-block float factors: element `i` of sub-block `s` in super-block `b` stands for
/// `(d[b] * scales[s]) * q[i] - dmin[b] * mins[s]`.
#[derive(Debug, Default)]
pub(crate) struct KRow {
    pub q: Vec<i16>,
    pub sub_len: usize,
    pub scales: Vec<i32>,
    /// Empty for the formats without mins (Q3_K, Q6_K, IQ4_XS).
    pub mins: Vec<i32>,
    pub d: Vec<f32>,
    pub dmin: Vec<f32>,
}

impl KRow {
    pub fn prepare(&mut self, cols: usize) {
        self.q.resize(cols, 0);
        self.scales.clear();
        self.mins.clear();
        self.d.clear();
        self.dmin.clear();
    }
}

/// Dot product of an unpacked row with one token's Q8_K blocks, as ggml's
/// `vec_dot_*_q8_K`: per super-block the integer sums `isum = sum_s scale_s * sum(q_w * q_a)`
/// and `msum = sum_s min_s * bsum_s`, then `(d_w * d_a) * isum - (dmin_w * d_a) * msum`.
pub(crate) fn dot_k(w: &KRow, a_qs: &[i16], a_d: &[f32], a_bsums: &[i32]) -> f32 {
    let sub = w.sub_len.max(1);
    let subs_per_block = QK_K / sub;
    let per16 = sub / 16;
    let mut sum = 0.0f32;
    let blocks = w.q.chunks_exact(QK_K).zip(a_qs.chunks_exact(QK_K));
    for (b, (wq, aq)) in blocks.enumerate() {
        let scales = &w.scales[b * subs_per_block..(b + 1) * subs_per_block];
        let mut isum = 0i32;
        for ((ws, as_), &sc) in wq.chunks_exact(sub).zip(aq.chunks_exact(sub)).zip(scales) {
            isum += sc * int_dot(ws, as_);
        }
        let ad = a_d[b];
        sum += (w.d[b] * ad) * isum as f32;
        if !w.mins.is_empty() {
            let mins = &w.mins[b * subs_per_block..(b + 1) * subs_per_block];
            let bsums = &a_bsums[b * 16..(b + 1) * 16];
            let msum: i32 = mins
                .iter()
                .zip(bsums.chunks_exact(per16))
                .map(|(&m, bs)| m * bs.iter().sum::<i32>())
                .sum();
            sum -= (w.dmin[b] * ad) * msum as f32;
        }
    }
    sum
}

/// Dequantizes an unpacked row: `(d * scale) * q - dmin * min`, ggml's order.
pub(crate) fn dequantize_k(w: &KRow, out: &mut [f32]) {
    let sub = w.sub_len.max(1);
    let subs_per_block = QK_K / sub;
    for (s, (ob, qb)) in out
        .chunks_exact_mut(sub)
        .zip(w.q.chunks_exact(sub))
        .enumerate()
    {
        let b = s / subs_per_block;
        let d = w.d.get(b).copied().unwrap_or(0.0);
        let dl = d * w.scales.get(s).copied().unwrap_or(0) as f32;
        let ml = match w.mins.get(s) {
            Some(&m) => w.dmin.get(b).copied().unwrap_or(0.0) * m as f32,
            None => 0.0,
        };
        for (o, &q) in ob.iter_mut().zip(qb) {
            *o = dl * f32::from(q) - ml;
        }
    }
}
