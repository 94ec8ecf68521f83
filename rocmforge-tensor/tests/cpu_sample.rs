//! The sampling chain (`cpu::sample_row`, `ops::sample_rows` on the CPU) against a
//! straightforward reference — the whole vocabulary sorted, each filter applied to the sorted
//! list as llama.cpp's samplers do, probabilities from the kept list — on random logits with
//! ties, -inf, NaN, masks, penalties and logit bias; and the draw's distribution by a
//! chi-square test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::Rng;
use rocmforge_tensor::cpu::{SampleParams, SampleRow, sample_row};
use rocmforge_tensor::{Backend, ops};

/// The row after mask, penalties, bias and NaN → -inf, written out plainly.
fn reference_values(logits: &[f32], row: &SampleRow<'_>) -> Vec<f32> {
    let p = &row.params;
    let bias = |t: u32| row.bias.iter().find(|b| b.0 == t).map_or(0.0, |b| b.1);
    let penalised = |t: u32| row.penalties.iter().any(|q| q.0 == t);
    let mut v: Vec<f32> = logits.to_vec();
    for (i, x) in v.iter_mut().enumerate() {
        let allowed = match row.allowed {
            None => true,
            Some(w) => i / 32 < w.len() && (w[i / 32] >> (i % 32)) & 1 == 1,
        };
        if !allowed {
            *x = f32::NEG_INFINITY;
        }
    }
    for &(t, c) in row.penalties {
        if let Some(x) = v.get_mut(t as usize) {
            let s = if *x > 0.0 {
                *x / p.repeat_penalty
            } else {
                *x * p.repeat_penalty
            };
            *x = s - ((c as f32 * p.frequency_penalty + p.presence_penalty) - bias(t));
        }
    }
    for &(t, b) in row.bias {
        match v.get_mut(t as usize) {
            Some(x) if !penalised(t) => *x += b,
            _ => {}
        }
    }
    v.iter()
        .map(|&x| if x.is_nan() { f32::NEG_INFINITY } else { x })
        .collect()
}

/// The kept tokens with their unnormalised weights, by full sort and truncation.
fn reference_kept(v: &[f32], p: &SampleParams) -> Vec<(u32, f64)> {
    let mut sorted: Vec<(u32, f32)> = v.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if p.top_k > 0 {
        sorted.truncate(p.top_k);
    }
    let max = f64::from(sorted[0].1);
    if p.top_p < 1.0 {
        let sum: f64 = sorted.iter().map(|c| (f64::from(c.1) - max).exp()).sum();
        let mut cum = 0.0;
        let mut keep = sorted.len();
        for (i, c) in sorted.iter().enumerate() {
            cum += (f64::from(c.1) - max).exp() / sum;
            if cum >= f64::from(p.top_p) {
                keep = i + 1;
                break;
            }
        }
        sorted.truncate(keep);
    }
    if p.min_p > 0.0 {
        let threshold = sorted[0].1 + p.min_p.ln();
        sorted.retain(|c| c.1 >= threshold);
    }
    let t = f64::from(p.temperature);
    let mut kept: Vec<(u32, f64)> = sorted
        .iter()
        .map(|c| (c.0, ((f64::from(c.1) - max) / t).exp()))
        .collect();
    kept.sort_by_key(|c| c.0);
    kept
}

/// The reference pick: argmax for temperature <= 0 (or no finite maximum), else the first id
/// (ascending) whose cumulative weight exceeds u · sum.
fn reference(logits: &[f32], row: &SampleRow<'_>) -> u32 {
    let v = reference_values(logits, row);
    let mut arg = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[arg] {
            arg = i;
        }
    }
    if row.params.temperature <= 0.0 || !v[arg].is_finite() {
        return arg as u32;
    }
    let kept = reference_kept(&v, &row.params);
    let sum: f64 = kept.iter().map(|c| c.1).sum();
    let mut cum = 0.0;
    let mut last = arg as u32;
    for &(id, w) in &kept {
        if w > 0.0 {
            cum += w;
            last = id;
            if cum > row.u * sum {
                return id;
            }
        }
    }
    last
}

fn random_logits(rng: &mut Rng, n: usize) -> Vec<f32> {
    let scale = [0.5, 3.0, 12.0][(rng.next_u64() % 3) as usize];
    let mut l: Vec<f32> = (0..n).map(|_| rng.range(-scale, scale)).collect();
    if rng.next_u64() & 1 == 0 {
        // Quantised: many ties.
        l.iter_mut().for_each(|x| *x = (*x * 2.0).round() / 2.0);
    }
    for _ in 0..n / 7 {
        let i = (rng.next_u64() % n as u64) as usize;
        l[i] = if rng.next_u64() & 3 == 0 {
            f32::NAN
        } else {
            f32::NEG_INFINITY
        };
    }
    l
}

#[test]
fn sample_row_matches_the_sorted_reference() {
    let mut rng = Rng::new(7);
    let mut checked = 0;
    for &n in &[1usize, 2, 37, 1000, 5003] {
        for case in 0..60 {
            let logits = random_logits(&mut rng, n);
            let top_k = [0, 1, 40, 1000, n][case % 5];
            let top_p = [1.0, 0.9, 0.5, 0.05][(case / 5) % 4];
            let min_p = [0.0, 0.05, 0.3][case % 3];
            let temperature = [0.7, 1.5, 1e-3, 0.0, -1.0][(case / 3) % 5];
            let penalties: Vec<(u32, u32)> = (0..(case % 4) * 3)
                .map(|j| ((j as u64 * 7919 % n as u64) as u32, 1 + j as u32 % 3))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect();
            let mask: Vec<u32> = (0..n.div_ceil(32))
                .map(|_| rng.next_u64() as u32 | rng.next_u64() as u32)
                .collect();
            // Bias on some penalised and some other tokens (and one past the row).
            let bias: Vec<(u32, f32)> = (0..(case % 5) * 2)
                .map(|j| {
                    let t = if j % 2 == 0 {
                        (j as u64 * 7919 % n as u64) as u32
                    } else {
                        (rng.next_u64() % (n as u64 + 2)) as u32
                    };
                    (t, rng.range(-100.0, 100.0))
                })
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect();
            let params = SampleParams {
                temperature,
                top_k,
                top_p,
                min_p,
                repeat_penalty: [1.0, 1.3][case % 2],
                presence_penalty: [0.0, 0.5][(case / 2) % 2],
                frequency_penalty: [0.0, 0.25][(case / 4) % 2],
            };
            for k in 0..8 {
                let row = SampleRow {
                    params,
                    penalties: &penalties,
                    allowed: (case % 3 == 1).then_some(&mask[..]),
                    bias: &bias,
                    u: (k as f64 + f64::from(rng.unit())) / 8.0,
                };
                let (got, want) = (sample_row(&logits, &row), reference(&logits, &row));
                assert_eq!(got, want, "n={n} case={case} {params:?} u={}", row.u);
                assert!((got as usize) < n);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 5 * 60 * 8);
}

#[test]
fn the_draw_follows_the_kept_distribution() {
    // A 10-token vocabulary; for each filter setting, 200,000 uniforms: the counts must fit
    // the probabilities computed from the definition (chi-square, p = 0.001).
    let logits = [1.0f32, 2.5, -0.5, 2.5, 0.0, 3.0, -2.0, 1.5, 0.7, 2.9];
    let settings = [
        (0, 1.0, 0.0),
        (5, 1.0, 0.0),
        (0, 0.8, 0.0),
        (0, 1.0, 0.2),
        (4, 0.7, 0.1),
    ];
    let mut rng = Rng::new(11);
    for (top_k, top_p, min_p) in settings {
        let params = SampleParams {
            temperature: 0.8,
            top_k,
            top_p,
            min_p,
            ..SampleParams::GREEDY
        };
        let kept = reference_kept(&logits, &params);
        let sum: f64 = kept.iter().map(|c| c.1).sum();
        let draws = 200_000;
        let mut counts = [0u32; 10];
        for _ in 0..draws {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let row = SampleRow {
                params,
                penalties: &[],
                allowed: None,
                bias: &[],
                u,
            };
            counts[sample_row(&logits, &row) as usize] += 1;
        }
        let mut chi2 = 0.0;
        for (id, count) in counts.iter().enumerate() {
            match kept.iter().find(|c| c.0 as usize == id) {
                Some(&(_, w)) => {
                    let expected = draws as f64 * w / sum;
                    chi2 += (f64::from(*count) - expected).powi(2) / expected;
                }
                None => assert_eq!(*count, 0, "token {id} is filtered out"),
            }
        }
        // Critical values at p = 0.001 for df = kept - 1 (1..=9).
        let critical = [
            10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88,
        ];
        let df = kept.len() - 1;
        assert!(
            df >= 1,
            "setting ({top_k}, {top_p}, {min_p}) keeps one token"
        );
        assert!(
            chi2 < critical[df - 1],
            "({top_k}, {top_p}, {min_p}): chi2 {chi2:.2} over df {df}: {counts:?}"
        );
    }
}

#[test]
fn sample_rows_on_the_cpu_backend_is_the_row_chain() {
    let be = Backend::Cpu;
    let mut rng = Rng::new(3);
    let (n, rows) = (101, 5);
    let logits: Vec<f32> = (0..n * rows).map(|_| rng.range(-4.0, 4.0)).collect();
    let t = be.from_f32(vec![rows, n], &logits).unwrap();
    let params = SampleParams {
        temperature: 0.9,
        top_k: 20,
        top_p: 0.9,
        min_p: 0.02,
        ..SampleParams::GREEDY
    };
    let spec: Vec<SampleRow<'_>> = (0..rows)
        .map(|r| SampleRow {
            params,
            penalties: &[],
            allowed: None,
            bias: &[],
            u: r as f64 / rows as f64,
        })
        .collect();
    let mut out = be.ids(&vec![u32::MAX; rows]).unwrap();
    let got = ops::sample_rows(&be, &t, n, &spec, &mut out).unwrap();
    let want: Vec<u32> = spec
        .iter()
        .enumerate()
        .map(|(r, row)| reference(&logits[r * n..(r + 1) * n], row))
        .collect();
    assert_eq!(got.ids, want);
    assert_eq!(got.host_rows(), 0);
    // Repeated penalty or bias tokens, a non-finite bias and a uniform outside [0, 1) are
    // errors, not panics.
    let dup = [(3u32, 1u32), (3, 2)];
    let dup_bias = [(3u32, 1.0f32), (3, 2.0)];
    let inf_bias = [(3u32, f32::INFINITY)];
    let bad = [
        SampleRow {
            penalties: &dup,
            ..spec[0]
        },
        SampleRow {
            bias: &dup_bias,
            ..spec[0]
        },
        SampleRow {
            bias: &inf_bias,
            ..spec[0]
        },
        SampleRow { u: 1.0, ..spec[0] },
    ];
    for b in bad {
        assert!(ops::sample_rows(&be, &t, n, &[b], &mut out).is_err());
    }
}
