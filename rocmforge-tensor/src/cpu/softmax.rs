//! Softmax and the logits helpers argmax and top-k.

use std::cmp::Ordering;

/// Numerically stable softmax in place, as ggml computes it: subtract the maximum, `exp`
/// in f32, sum in f64, multiply by the f32 reciprocal of the sum.
///
/// `-inf` entries (masked) come out as exactly 0. A row that is entirely `-inf` (or empty)
/// comes out as all zeros rather than NaN.
pub fn softmax(x: &mut [f32]) {
    softmax_with_sink(x, None);
}

/// [`softmax`] with an attention sink: a logit `sink` that joins the maximum and the
/// denominator but has no output of its own (gpt-oss; ggml's `soft_max` with sinks), so the
/// entries sum to less than one.
pub fn softmax_with_sink(x: &mut [f32], sink: Option<f32>) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let max = match sink {
        Some(s) => max.max(s),
        None => max,
    };
    if max == f32::NEG_INFINITY {
        x.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        let e = (*v - max).exp();
        *v = e;
        sum += f64::from(e);
    }
    if let Some(s) = sink {
        sum += f64::from((s - max).exp());
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Index of the largest value; the first one on ties. NaN entries are never chosen unless
/// every entry is NaN; an empty slice gives 0.
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    let mut found = false;
    for (i, &v) in x.iter().enumerate() {
        if !v.is_nan() && (!found || v > best_v) {
            best = i;
            best_v = v;
            found = true;
        }
    }
    best
}

/// Orders by value, largest first, NaN last; equal values by smaller index first.
fn by_value_desc(a: &(usize, f32), b: &(usize, f32)) -> Ordering {
    let va = if a.1.is_nan() { f32::NEG_INFINITY } else { a.1 };
    let vb = if b.1.is_nan() { f32::NEG_INFINITY } else { b.1 };
    vb.partial_cmp(&va)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.1.is_nan().cmp(&b.1.is_nan()))
        .then(a.0.cmp(&b.0))
}

/// The `k` largest entries as `(index, value)`, largest first; ties keep the smaller index
/// first. `k` larger than `x.len()` returns every entry.
pub fn top_k(x: &[f32], k: usize) -> Vec<(usize, f32)> {
    let k = k.min(x.len());
    if k == 0 {
        return Vec::new();
    }
    let mut all: Vec<(usize, f32)> = x.iter().copied().enumerate().collect();
    if k < all.len() {
        all.select_nth_unstable_by(k - 1, by_value_desc);
        all.truncate(k);
    }
    all.sort_by(by_value_desc);
    all
}
