//! KL divergence of a model's next-token distributions from a base file's, with the statistics
//! `llama-perplexity --kl-divergence` reports (same formulas: `kl_divergence` in llama.cpp's
//! `tools/perplexity/perplexity.cpp`), plus the mean entropy of the base distributions.

use super::file::CompressedRow;

/// Running sums over the scored positions.
#[derive(Debug, Clone, Default)]
pub struct KlAccumulator {
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_base: f64,
    sum_nll_base2: f64,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_p_diff: f64,
    sum_p_diff2: f64,
    sum_p_diff4: f64,
    max_p_diff: f32,
    sum_entropy: f64,
    n_same_top: usize,
    count: usize,
    kld_values: Vec<f32>,
}

/// A mean and its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The value.
    pub value: f64,
    /// Its uncertainty (one standard error).
    pub err: f64,
}

/// The final statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct KlSummary {
    /// Positions compared.
    pub count: usize,
    /// PPL of the model under test.
    pub ppl: Estimate,
    /// PPL of the base distributions.
    pub ppl_base: Estimate,
    /// Correlation of the two log-PPLs' per-token terms.
    pub log_ppl_correlation: f64,
    /// `ln(PPL / PPL(base))`.
    pub log_ppl_ratio: Estimate,
    /// `PPL / PPL(base)`.
    pub ppl_ratio: Estimate,
    /// Mean KL divergence (base ‖ model), nats.
    pub kld: Estimate,
    /// Largest, 99th percentile, median and smallest per-position KL divergence.
    pub kld_max: f32,
    /// 99th percentile.
    pub kld_p99: f32,
    /// Median.
    pub kld_median: f32,
    /// Smallest.
    pub kld_min: f32,
    /// Mean of `p(model) - p(base)` of the actual next token.
    pub p_diff_mean: Estimate,
    /// RMS of that difference.
    pub p_diff_rms: Estimate,
    /// Largest |difference|.
    pub p_diff_max: f32,
    /// Fraction of positions where both argmaxes agree ("Same top p").
    pub same_top: Estimate,
    /// Mean entropy of the base distributions, nats (agreement on near-uniform distributions
    /// proves little: report this beside the KL).
    pub base_entropy: f64,
}

fn mean_and_err(sum: f64, sum2: f64, count: usize) -> Estimate {
    if count < 1 {
        return Estimate {
            value: 0.0,
            err: 0.0,
        };
    }
    let n = count as f64;
    let f = sum / n;
    let var = sum2 / n - f * f;
    let err = if var > 0.0 && count > 10 {
        (var / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Estimate { value: f, err }
}

impl KlAccumulator {
    /// Adds one position: the model's `logits`, the base row, the actual next token.
    pub fn add(&mut self, logits: &[f32], base: &CompressedRow, next: usize) {
        let (mut imax, mut max) = (0usize, f32::NEG_INFINITY);
        for (i, &l) in logits.iter().enumerate() {
            if l > max || i == 0 {
                (imax, max) = (i, l);
            }
        }
        let sum_exp: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
        let log_sum_exp = sum_exp.ln() as f32;
        let nll = max + log_sum_exp - logits.get(next).copied().unwrap_or(f32::NEG_INFINITY);
        let nll_base = -base.log_prob(next);
        self.sum_nll += f64::from(nll);
        self.sum_nll2 += f64::from(nll * nll);
        self.sum_nll_base += f64::from(nll_base);
        self.sum_nll_base2 += f64::from(nll_base * nll_base);
        self.sum_nll_nll_base += f64::from(nll * nll_base);

        let log_norm = max + log_sum_exp;
        let (mut kld, mut entropy) = (0.0f64, 0.0f64);
        let (mut imax_base, mut top_base) = (0usize, 0.0f32);
        for (i, &l) in logits.iter().enumerate() {
            let lp_base = base.log_prob(i);
            if i == 0 || lp_base > top_base {
                (imax_base, top_base) = (i, lp_base);
            }
            if lp_base > -16.0 {
                let p_base = lp_base.exp();
                kld += f64::from(p_base * (lp_base - l + log_norm));
                entropy -= f64::from(p_base * lp_base);
            }
        }
        self.sum_kld += kld;
        self.sum_kld2 += kld * kld;
        self.sum_entropy += entropy;
        self.kld_values.push(kld as f32);
        self.count += 1;
        if imax == imax_base {
            self.n_same_top += 1;
        }
        let p_diff = (-nll).exp() - (-nll_base).exp();
        self.sum_p_diff += f64::from(p_diff);
        let p_diff2 = f64::from(p_diff * p_diff);
        self.sum_p_diff2 += p_diff2;
        self.sum_p_diff4 += p_diff2 * p_diff2;
        self.max_p_diff = self.max_p_diff.max(p_diff.abs());
    }

    /// Positions added so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The statistics over every position added (`None` before the first).
    pub fn summary(&self) -> Option<KlSummary> {
        let count = self.count;
        if count == 0 {
            return None;
        }
        let n = count as f64;
        let log_ppl = mean_and_err(self.sum_nll, self.sum_nll2, count);
        let log_ppl_base = mean_and_err(self.sum_nll_base, self.sum_nll_base2, count);
        let cov = if count < 10 {
            0.0
        } else {
            (self.sum_nll_nll_base / n - (self.sum_nll / n) * (self.sum_nll_base / n)) / (n - 1.0)
        };
        let ratio_log = log_ppl.value - log_ppl_base.value;
        let ratio_err = (log_ppl.err.powi(2) + log_ppl_base.err.powi(2) - 2.0 * cov)
            .max(0.0)
            .sqrt();
        let ppl = log_ppl.value.exp();
        let ppl_base = log_ppl_base.value.exp();
        let mut sorted = self.kld_values.clone();
        sorted.sort_by(f32::total_cmp);
        let percentile = |f: f64| {
            let p = f * (sorted.len() - 1) as f64;
            let i = p as usize;
            let frac = (p - i as f64) as f32;
            (1.0 - frac) * sorted[i] + frac * sorted[(i + 1).min(sorted.len() - 1)]
        };
        let p_diff_mse = mean_and_err(self.sum_p_diff2, self.sum_p_diff4, count);
        let rms = p_diff_mse.value.sqrt();
        let top = self.n_same_top as f64 / n;
        Some(KlSummary {
            count,
            ppl: Estimate {
                value: ppl,
                err: ppl * log_ppl.err,
            },
            ppl_base: Estimate {
                value: ppl_base,
                err: ppl_base * log_ppl_base.err,
            },
            log_ppl_correlation: cov / (log_ppl.err * log_ppl_base.err),
            log_ppl_ratio: Estimate {
                value: ratio_log,
                err: ratio_err,
            },
            ppl_ratio: Estimate {
                value: ratio_log.exp(),
                err: ratio_log.exp() * ratio_err,
            },
            kld: mean_and_err(self.sum_kld, self.sum_kld2, count),
            kld_max: percentile(1.0),
            kld_p99: percentile(0.99),
            kld_median: percentile(0.5),
            kld_min: percentile(0.0),
            p_diff_mean: mean_and_err(self.sum_p_diff, self.sum_p_diff2, count),
            p_diff_rms: Estimate {
                value: rms,
                err: if rms > 0.0 {
                    0.5 / rms * p_diff_mse.err
                } else {
                    0.0
                },
            },
            p_diff_max: self.max_p_diff,
            same_top: Estimate {
                value: top,
                err: if count > 1 {
                    (top * (1.0 - top) / (n - 1.0)).sqrt()
                } else {
                    0.0
                },
            },
            base_entropy: self.sum_entropy / n,
        })
    }
}
