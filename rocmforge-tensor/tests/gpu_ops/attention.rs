//! KV append (f32 → f16 cache) and causal GQA attention, decode and prefill, long contexts,
//! with and without a sliding window.

use half::f16;
use rocmforge_gguf::GgmlType;
use rocmforge_tensor::cpu::AttentionParams;
use rocmforge_tensor::ops;

use crate::elementwise::{both, out};
use crate::support::{Ctx, e};

pub fn kv_append(ctx: &Ctx) -> Result<(), String> {
    for (capacity, row_len, start, n) in [(17, 3 * 40, 4, 5), (1, 7, 0, 1), (300, 2 * 64, 257, 43)]
    {
        let src = ctx.randn(n * row_len, 30.0);
        let (c, g) = both(ctx, |be| {
            let s = be.from_f32(vec![n, row_len], &src)?;
            let mut cache = be.zeros(GgmlType::F16, vec![capacity, row_len])?;
            ops::kv_append(be, &s, &mut cache, start)?;
            cache.to_f32_vec()
        })?;
        ctx.check(
            "kv_append f32->f16",
            &format!("{n} rows at {start} of {capacity}x{row_len}"),
            &c,
            &g,
            0.0,
        )?;
    }
    let s = ctx.gpu.from_f32(vec![2, 8], &[0.0; 16]).map_err(e)?;
    let mut cache = ctx.gpu.zeros(GgmlType::F16, vec![4, 8]).map_err(e)?;
    if ops::kv_append(&ctx.gpu, &s, &mut cache, 3).is_ok() {
        return Err("kv_append past the cache's end must be an error".to_string());
    }
    Ok(())
}

pub fn attention(ctx: &Ctx) -> Result<(), String> {
    // (n_q, n_kv, n_heads, n_kv_heads, head_dim)
    let cases = [
        (1, 1, 4, 4, 64),
        (1, 37, 9, 3, 64),
        (1, 1000, 8, 2, 128),
        (1, 4097, 4, 1, 64),
        (7, 7, 6, 2, 80),
        (33, 40, 4, 4, 64),
        (130, 130, 2, 1, 96),
        (3, 300, 2, 2, 256),
        (5, 5, 3, 1, 5),
    ];
    // Each case without a window and with sliding windows shorter than its keys (a window of
    // one key, of 17, of 45: within a prefill tile of 32 keys and across tiles).
    let windowed = cases
        .iter()
        .flat_map(|&c| [None, Some(1), Some(17), Some(45)].map(|w| (c, w)))
        .filter(|&((_, n_kv, ..), w)| w.is_none_or(|w| w < n_kv));
    for ((n_q, n_kv, n_heads, n_kv_heads, head_dim), window) in windowed {
        let capacity = n_kv + 3; // rows past n_kv hold junk that must not be read
        let q = ctx.randn(n_q * n_heads * head_dim, 1.0);
        let k: Vec<f16> = ctx
            .randn(capacity * n_kv_heads * head_dim, 1.0)
            .iter()
            .map(|&v| f16::from_f32(v))
            .collect();
        let v: Vec<f16> = ctx
            .randn(capacity * n_kv_heads * head_dim, 1.0)
            .iter()
            .map(|&v| f16::from_f32(v))
            .collect();
        let p = AttentionParams {
            n_q_tokens: n_q,
            n_kv_tokens: n_kv,
            n_heads,
            n_kv_heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            window,
        };
        // Without and with attention sinks (gpt-oss: a per-head logit in each denominator).
        let sinks = ctx.randn(n_heads, 3.0);
        for with_sinks in [false, true] {
            let (c, g) = both(ctx, |be| {
                let tq = be.from_f32(vec![n_q, n_heads * head_dim], &q)?;
                let tk = be.from_f16(vec![capacity, n_kv_heads * head_dim], &k)?;
                let tv = be.from_f16(vec![capacity, n_kv_heads * head_dim], &v)?;
                let ts = be.from_f32(vec![n_heads], &sinks)?;
                let mut o = out(ctx, be, vec![n_q, n_heads * head_dim])?;
                let s = with_sinks.then_some(&ts);
                ops::attention_rows(be, &tq, 0, &tk, &tv, &p, s, &mut o)?;
                o.to_f32_vec()
            })?;
            let kind = if n_q == 1 { "decode" } else { "prefill" };
            ctx.check(
                &format!("attention {kind}"),
                &format!(
                    "q{n_q} kv{n_kv} h{n_heads}/{n_kv_heads} d{head_dim} window {window:?} \
                     sinks {with_sinks}"
                ),
                &c,
                &g,
                1e-2,
            )?;
        }
    }
    Ok(())
}
