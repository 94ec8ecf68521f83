//! The sampling chain on one row of logits: the reference every backend's `sample_rows` follows.
//!
//! Chain: the row's grammar mask (disallowed → -inf), penalties (repeat, presence, frequency
//! over the row's recent tokens) and logit bias → NaN counted as -inf → temperature ≤ 0: argmax (first on ties)
//! → otherwise the filters decide the kept set → a draw over it.
//!
//! The filters (llama.cpp's order: top-k → top-p → min-p) each keep a prefix of the total order
//! "larger value first (`f32::total_cmp`), then lower id":
//! - top-k: the first `top_k` (0 or ≥ vocab: all);
//! - top-p: of the top-k set sorted in that order, the shortest prefix whose softmax mass
//!   (pre-temperature, f64, over the top-k set) reaches `top_p` (at least one);
//! - min-p: values `>= max + ln(min_p)` (f32, as llama.cpp).
//!
//! The kept set is therefore "every element up to a boundary element of the order" intersected
//! with the min-p threshold. The draw walks the kept set in **ascending token id**, weights
//! `exp((v - max) / T)` in f64, and takes the first id whose cumulative weight exceeds
//! `u · sum` — the same distribution as walking a sorted list, without sorting the vocabulary
//! (what a GPU block does for a 152k-token row).

use std::cmp::Ordering;

/// The chain's parameters for one row, in chain order: penalties (`repeat_penalty` divides
/// positive and multiplies negative logits of recent tokens, 1 = off; `presence_penalty` is
/// subtracted once and `frequency_penalty` per occurrence, 0 = off), `top_k` (0 = off), `top_p`
/// (1 = off), `min_p` (relative to the most likely token, 0 = off), `temperature` (<= 0: argmax).
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(missing_docs)]
pub struct SampleParams {
    pub repeat_penalty: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub temperature: f32,
}

impl SampleParams {
    /// Plain argmax: temperature 0, no filter, no penalty.
    pub const GREEDY: SampleParams = SampleParams {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repeat_penalty: 1.0,
        presence_penalty: 0.0,
        frequency_penalty: 0.0,
    };

    /// What is subtracted from the logit of a token seen `count` times (f32, as every backend
    /// computes it: on the host, so that no device fuses the multiply-add).
    pub fn penalty_offset(&self, count: u32) -> f32 {
        count as f32 * self.frequency_penalty + self.presence_penalty
    }

    /// `ln(min_p)` in f32 (what the min-p threshold adds to the maximum); `-inf` when min-p
    /// is off (then every value passes).
    pub fn ln_min_p(&self) -> f32 {
        if self.min_p > 0.0 {
            self.min_p.ln()
        } else {
            f32::NEG_INFINITY
        }
    }
}

/// One row's sampling input besides its logits.
#[derive(Debug, Clone, Copy)]
pub struct SampleRow<'a> {
    pub params: SampleParams,
    /// The row's recent tokens as distinct `(token, count)` pairs (ids past the row are skipped).
    pub penalties: &'a [(u32, u32)],
    /// The grammar's allowed tokens: bit `t % 32` of word `t / 32`; ids past the words are
    /// disallowed. `None`: every token allowed.
    pub allowed: Option<&'a [u32]>,
    /// The request's logit bias as distinct `(token, bias)` pairs (ids past the row are
    /// skipped), added after the penalties: a penalised token gets
    /// `scaled - (penalty_offset - bias)`, any other `x - (-bias)` (= `x + bias` exactly), so
    /// a backend may fold the bias into the penalty offsets (see [`SampleRow::offsets`]).
    pub bias: &'a [(u32, f32)],
    /// A uniform value in `[0, 1)` (the row's seeded draw).
    pub u: f64,
}

impl SampleRow<'_> {
    /// Greedy with nothing to adjust (no penalty, bias or grammar mask): its token is the
    /// row's argmax.
    pub fn is_plain_greedy(&self) -> bool {
        self.params.temperature <= 0.0
            && self.penalties.is_empty()
            && self.bias.is_empty()
            && self.allowed.is_none()
    }

    /// The bias of `token` (0 when it has none).
    pub fn bias_of(&self, token: u32) -> f32 {
        self.bias.iter().find(|b| b.0 == token).map_or(0.0, |b| b.1)
    }

    /// Every token the chain adjusts after the mask, with what is subtracted from it: the
    /// penalised tokens (scaled by the repeat penalty first) with `penalty_offset(count) -
    /// bias`, then the biased tokens without a penalty with `-bias` (f32, computed here for
    /// every backend). The second kind is scaled by nothing, so a backend that scales every
    /// listed token is exact only when the repeat penalty is 1 or that list is empty
    /// ([`SampleRow::scales_bias`]).
    pub fn offsets(&self) -> Vec<(u32, f32)> {
        let p = &self.params;
        let mut out: Vec<(u32, f32)> = self
            .penalties
            .iter()
            .map(|&(t, c)| (t, p.penalty_offset(c) - self.bias_of(t)))
            .collect();
        for &(t, b) in self.bias {
            if !self.penalties.iter().any(|q| q.0 == t) {
                out.push((t, -b));
            }
        }
        out
    }

    /// Whether scaling every token of [`SampleRow::offsets`] by the repeat penalty would
    /// change a biased token that has no penalty (repeat penalty not 1 and such a token).
    pub fn scales_bias(&self) -> bool {
        self.params.repeat_penalty != 1.0
            && self
                .bias
                .iter()
                .any(|b| !self.penalties.iter().any(|q| q.0 == b.0))
    }
}

/// The row after mask, penalties, bias and NaN → -inf: what the filters and the draw look at.
pub fn prepared_logits(logits: &[f32], row: &SampleRow<'_>) -> Vec<f32> {
    let mut v = logits.to_vec();
    if let Some(words) = row.allowed {
        for (i, x) in v.iter_mut().enumerate() {
            let word = words.get(i / 32).copied().unwrap_or(0);
            if word & (1 << (i % 32)) == 0 {
                *x = f32::NEG_INFINITY;
            }
        }
    }
    let p = &row.params;
    for &(token, count) in row.penalties {
        let Some(x) = v.get_mut(token as usize) else {
            continue;
        };
        let scaled = if *x > 0.0 {
            *x / p.repeat_penalty
        } else {
            *x * p.repeat_penalty
        };
        *x = scaled - (p.penalty_offset(count) - row.bias_of(token));
    }
    for &(token, bias) in row.bias {
        if row.penalties.iter().any(|q| q.0 == token) {
            continue;
        }
        if let Some(x) = v.get_mut(token as usize) {
            *x -= -bias;
        }
    }
    for x in &mut v {
        if x.is_nan() {
            *x = f32::NEG_INFINITY;
        }
    }
    v
}

/// Index and value of the largest entry (first on ties; entries are never NaN here).
fn argmax_of(v: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &x) in v.iter().enumerate() {
        if x > best.1 || i == 0 {
            best = (i, x);
        }
    }
    best
}

/// The chain's total order: larger value first, then lower id.
fn order(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The last element `(id, value)` of the kept prefix after top-k and top-p (`None`: all kept).
fn boundary(v: &[f32], p: &SampleParams) -> Option<(u32, f32)> {
    let n = v.len();
    let k = if p.top_k == 0 || p.top_k >= n {
        n
    } else {
        p.top_k
    };
    if p.top_p >= 1.0 {
        if k == n {
            return None;
        }
        let mut cand: Vec<(u32, f32)> = v.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect();
        let (_, kth, _) = cand.select_nth_unstable_by(k - 1, order);
        return Some(*kth);
    }
    let mut cand: Vec<(u32, f32)> = v.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect();
    if k < n {
        cand.select_nth_unstable_by(k - 1, order);
        cand.truncate(k);
    }
    cand.sort_by(order);
    let max = cand.first().map_or(0.0, |c| f64::from(c.1));
    let exps: Vec<f64> = cand.iter().map(|c| (f64::from(c.1) - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    let mut cum = 0.0f64;
    let mut keep = cand.len();
    for (i, e) in exps.iter().enumerate() {
        cum += e / sum;
        if cum >= f64::from(p.top_p) {
            keep = i + 1;
            break;
        }
    }
    cand.get(keep.max(1) - 1).copied()
}

/// Whether `(id, x)` comes no later than `bound` in the chain's order.
fn within(id: u32, x: f32, bound: Option<(u32, f32)>) -> bool {
    match bound {
        None => true,
        Some(b) => order(&(id, x), &b) != Ordering::Greater,
    }
}

/// The token the chain picks for one row of `logits` (one value per vocabulary entry).
pub fn sample_row(logits: &[f32], row: &SampleRow<'_>) -> u32 {
    if logits.is_empty() {
        return 0;
    }
    let v = prepared_logits(logits, row);
    let (arg, max) = argmax_of(&v);
    let p = &row.params;
    if p.temperature <= 0.0 || !max.is_finite() {
        return arg as u32;
    }
    let bound = boundary(&v, p);
    let threshold = max + p.ln_min_p();
    let (max64, t64) = (f64::from(max), f64::from(p.temperature));
    let weight = |i: usize, x: f32| {
        if x >= threshold && within(i as u32, x, bound) {
            ((f64::from(x) - max64) / t64).exp()
        } else {
            0.0
        }
    };
    let weights: Vec<f64> = v.iter().enumerate().map(|(i, &x)| weight(i, x)).collect();
    let sum: f64 = weights.iter().sum();
    let target = row.u * sum;
    let mut cum = 0.0f64;
    let mut last = arg;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            cum += w;
            last = i;
            if cum > target {
                return i as u32;
            }
        }
    }
    last as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(params: SampleParams, u: f64) -> SampleRow<'static> {
        SampleRow {
            params,
            penalties: &[],
            allowed: None,
            bias: &[],
            u,
        }
    }

    #[test]
    fn top_k_one_and_zero_temperature_are_the_argmax() {
        let l = [0.5, 2.0, 2.0, -1.0];
        let one = SampleParams {
            temperature: 1.0,
            top_k: 1,
            ..SampleParams::GREEDY
        };
        for u in [0.0, 0.5, 0.999] {
            assert_eq!(sample_row(&l, &row(one, u)), 1);
            assert_eq!(sample_row(&l, &row(SampleParams::GREEDY, u)), 1);
        }
    }

    #[test]
    fn the_draw_walks_ids_in_ascending_order() {
        // Equal weights over 4 ids: u in [j/4, (j+1)/4) picks id j.
        let l = [1.0f32; 4];
        let p = SampleParams {
            temperature: 1.0,
            ..SampleParams::GREEDY
        };
        for (u, want) in [(0.0, 0), (0.26, 1), (0.51, 2), (0.99, 3)] {
            assert_eq!(sample_row(&l, &row(p, u)), want, "u = {u}");
        }
    }
}
