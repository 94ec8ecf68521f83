#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn draw(params: SamplingParams, logits: &[f32], n: usize) -> Vec<u32> {
    let mut s = Sampler::new(params).unwrap();
    (0..n).map(|_| s.sample(logits)).collect()
}

#[test]
fn greedy_takes_the_first_maximum() {
    let logits = [0.1, 3.0, -1.0, 3.0];
    assert_eq!(draw(SamplingParams::greedy(), &logits, 3), vec![1, 1, 1]);
}

#[test]
fn same_seed_same_draws_other_seed_differs() {
    let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
    let params = |seed| SamplingParams {
        temperature: 1.5,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed,
        ..SamplingParams::default()
    };
    let a = draw(params(1), &logits, 64);
    assert_eq!(a, draw(params(1), &logits, 64));
    assert_ne!(a, draw(params(2), &logits, 64));
}

#[test]
fn top_k_one_is_greedy() {
    let logits = [0.5, 0.2, 2.0, 1.9];
    let params = SamplingParams {
        top_k: 1,
        seed: 9,
        ..SamplingParams::default()
    };
    assert!(draw(params, &logits, 50).iter().all(|&t| t == 2));
}

#[test]
fn top_k_limits_the_support() {
    let logits = [1.0, 1.0, 1.0, 1.0, 1.0];
    let params = SamplingParams {
        top_k: 2,
        top_p: 1.0,
        min_p: 0.0,
        temperature: 1.0,
        seed: 3,
        ..SamplingParams::default()
    };
    let drawn = draw(params, &logits, 200);
    assert!(drawn.iter().all(|&t| t == 0 || t == 1), "{drawn:?}");
    assert!(drawn.contains(&0) && drawn.contains(&1));
}

#[test]
fn top_p_cuts_the_tail() {
    // probabilities ~ [0.6, 0.3, 0.1]: top_p 0.8 keeps the first two.
    let logits = [0.6f32.ln(), 0.3f32.ln(), 0.1f32.ln()];
    let params = SamplingParams {
        top_k: 0,
        top_p: 0.8,
        min_p: 0.0,
        temperature: 1.0,
        seed: 5,
        ..SamplingParams::default()
    };
    let drawn = draw(params, &logits, 300);
    assert!(!drawn.contains(&2));
    assert!(drawn.contains(&1));
}

#[test]
fn min_p_drops_unlikely_tokens() {
    let logits = [0.5f32.ln(), 0.45f32.ln(), 0.05f32.ln()];
    let params = SamplingParams {
        top_k: 0,
        top_p: 1.0,
        min_p: 0.2,
        temperature: 1.0,
        seed: 11,
        ..SamplingParams::default()
    };
    let drawn = draw(params, &logits, 300);
    assert!(!drawn.contains(&2));
    assert!(drawn.contains(&0) && drawn.contains(&1));
}

#[test]
fn sampled_frequencies_follow_the_distribution() {
    let logits = [0.75f32.ln(), 0.25f32.ln()];
    let params = SamplingParams {
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        temperature: 1.0,
        seed: 123,
        ..SamplingParams::default()
    };
    let drawn = draw(params, &logits, 4000);
    let zeros = drawn.iter().filter(|&&t| t == 0).count() as f64 / 4000.0;
    assert!((zeros - 0.75).abs() < 0.03, "{zeros}");
}

#[test]
fn penalties_push_recent_tokens_down() {
    let logits = [2.0, 1.9, -1.0];
    let mut s = Sampler::new(SamplingParams {
        temperature: 0.0,
        repeat_penalty: 1.5,
        ..SamplingParams::default()
    })
    .unwrap();
    assert_eq!(s.sample(&logits), 0);
    s.accept(0);
    // 2.0 / 1.5 < 1.9
    assert_eq!(s.sample(&logits), 1);

    let mut f = Sampler::new(SamplingParams {
        temperature: 0.0,
        frequency_penalty: 0.2,
        presence_penalty: 0.0,
        ..SamplingParams::default()
    })
    .unwrap();
    f.accept(0);
    // 2.0 - 0.2 = 1.8 < 1.9
    assert_eq!(f.sample(&logits), 1);

    let mut w = Sampler::new(SamplingParams {
        temperature: 0.0,
        repeat_penalty: 1.5,
        penalty_last_n: 1,
        ..SamplingParams::default()
    })
    .unwrap();
    w.accept(0);
    w.accept(2);
    // token 0 fell out of the one-token window
    assert_eq!(w.sample(&logits), 0);
}

#[test]
fn invalid_parameters_are_rejected_by_name() {
    let err = Sampler::new(SamplingParams {
        top_p: 0.0,
        ..SamplingParams::default()
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("top-p"), "{err}");
    let err = Sampler::new(SamplingParams {
        temperature: f32::NAN,
        ..SamplingParams::default()
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("temperature"), "{err}");
}

/// Softmax of candidate logits (sorted descending), in f64.
fn softmax_of(cand: &[(u32, f32)]) -> Vec<f64> {
    let max = cand.first().map_or(0.0, |c| f64::from(c.1));
    let exps: Vec<f64> = cand.iter().map(|c| (f64::from(c.1) - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The chain with a full sort of every candidate, each filter truncating the sorted list (how
/// `sample` worked before it selected the top-k first): the kept set the op's selection must
/// reproduce, drawn from with the canonical draw (kept tokens in ascending id, weights
/// `exp((l - max) / T)` in f64, the first whose cumulative weight exceeds `u · sum`).
fn full_sort_draws(params: &SamplingParams, logits: &[f32], n: usize) -> Vec<u32> {
    let mut rng = SeededRng::new(params.seed);
    (0..n)
        .map(|_| {
            let mut cand: Vec<(u32, f32)> = logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u32, l))
                .collect();
            cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            if params.top_k > 0 {
                cand.truncate(params.top_k);
            }
            if params.top_p < 1.0 {
                let probs = softmax_of(&cand);
                let mut cum = 0.0f64;
                let mut keep = cand.len();
                for (i, &p) in probs.iter().enumerate() {
                    cum += p;
                    if cum >= f64::from(params.top_p) {
                        keep = i + 1;
                        break;
                    }
                }
                cand.truncate(keep.max(1));
            }
            if params.min_p > 0.0 {
                let threshold = cand[0].1 + params.min_p.ln();
                let keep = cand.iter().take_while(|c| c.1 >= threshold).count();
                cand.truncate(keep.max(1));
            }
            let max = f64::from(cand[0].1);
            let t = f64::from(params.temperature);
            cand.sort_by_key(|c| c.0);
            let w: Vec<f64> = cand
                .iter()
                .map(|c| ((f64::from(c.1) - max) / t).exp())
                .collect();
            let target = rng.next_f64() * w.iter().sum::<f64>();
            let mut cum = 0.0f64;
            for (c, w) in cand.iter().zip(&w) {
                cum += w;
                if cum > target {
                    return c.0;
                }
            }
            cand.last().map_or(0, |c| c.0)
        })
        .collect()
}

#[test]
fn top_k_selection_draws_as_a_full_sort() {
    // A vocabulary-sized row with many ties (values on a coarse grid), every top-k regime.
    let vocab = 5_003usize;
    let mut rng = SeededRng::new(77);
    let logits: Vec<f32> = (0..vocab)
        .map(|_| ((rng.next_f64() * 40.0).round() / 4.0 - 5.0) as f32)
        .collect();
    for top_k in [1usize, 2, 40, 333, vocab - 1, vocab, vocab + 3] {
        for (top_p, min_p) in [(1.0, 0.0), (0.9, 0.05), (0.5, 0.0)] {
            let params = SamplingParams {
                temperature: 0.9,
                top_k,
                top_p,
                min_p,
                seed: 1234 + top_k as u64,
                ..SamplingParams::default()
            };
            assert_eq!(
                draw(params.clone(), &logits, 40),
                full_sort_draws(&params, &logits, 40),
                "top_k {top_k}, top_p {top_p}, min_p {min_p}"
            );
        }
    }
}

#[test]
fn token_logprobs_are_the_log_softmax() {
    let logits = [1.0f32, 3.0, 3.0, -2.0, 0.5];
    let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
    let (lp, top) = token_logprobs(&logits, 4, 3);
    assert!((f64::from(lp) - (0.5f64.exp() / z).ln()).abs() < 1e-6);
    // Most likely first, ties by lower id.
    let ids: Vec<u32> = top.iter().map(|t| t.0).collect();
    assert_eq!(ids, vec![1, 2, 0]);
    assert!((f64::from(top[0].1) - (3.0f64.exp() / z).ln()).abs() < 1e-6);
    let total: f64 = logits
        .iter()
        .enumerate()
        .map(|(i, _)| f64::from(token_logprobs(&logits, i as u32, 0).0).exp())
        .sum();
    assert!((total - 1.0).abs() < 1e-6);
    assert_eq!(token_logprobs(&logits, 0, 99).1.len(), 5);
}

#[test]
fn a_grammar_mask_limits_the_draw_and_greedy_after_it() {
    // Tokens 1 and 3 allowed (bits 1 and 3): the most likely token 2 never comes.
    let logits = [0.0f32, 1.0, 5.0, 0.5];
    let allowed = [0b1010u32];
    let mut s = Sampler::new(SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed: 4,
        ..SamplingParams::default()
    })
    .unwrap();
    let drawn: Vec<u32> = (0..200)
        .map(|_| s.sample_allowed(&logits, Some(&allowed)))
        .collect();
    assert!(drawn.iter().all(|&t| t == 1 || t == 3), "{drawn:?}");
    assert!(drawn.contains(&1) && drawn.contains(&3));
    let mut g = Sampler::new(SamplingParams::greedy()).unwrap();
    assert_eq!(g.sample_allowed(&logits, Some(&allowed)), 1);
}

#[test]
fn logit_bias_forces_bans_and_is_checked() {
    let logits = [1.0f32, 3.0, 2.0, 0.5];
    let with = |bias: &[(u32, f32)], temperature| SamplingParams {
        temperature,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        logit_bias: std::sync::Arc::from(bias),
        ..SamplingParams::default()
    };
    // Greedy: -100 on the argmax gives the runner-up; +100 forces a token, sampled too.
    assert_eq!(
        Sampler::new(with(&[(1, -100.0)], 0.0))
            .unwrap()
            .sample(&logits),
        2
    );
    let mut s = Sampler::new(with(&[(3, 100.0)], 1.0)).unwrap();
    assert!((0..50).all(|_| s.sample(&logits) == 3));
    assert!(!Sampler::new(with(&[(3, 1.0)], 0.0)).unwrap().is_greedy());
    for bad in [&[(3u32, f32::NAN)][..], &[(3, 1.0), (3, 2.0)][..]] {
        let err = Sampler::new(with(bad, 0.0)).err().unwrap();
        assert!(err.to_string().contains("logit-bias"), "{err}");
    }
}
