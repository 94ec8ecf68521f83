//! RoPE (Normal and NeoX, partial rotation, linear scaling, YaRN, frequency factors): GPU
//! against CPU.

use rocmforge_tensor::cpu::{RopeMode, RopeParams, YarnParams};
use rocmforge_tensor::ops;

use crate::elementwise::both;
use crate::support::Ctx;

pub fn rope(ctx: &Ctx) -> Result<(), String> {
    let yarn = YarnParams {
        ext_factor: 1.0,
        attn_factor: 1.0,
        beta_fast: 32.0,
        beta_slow: 1.0,
        n_ctx_orig: 4096,
    };
    // (n_tokens, n_heads, head_dim, n_rot, freq_base, freq_scale, yarn, max position)
    let cases = [
        (1, 9, 64, 64, 10_000.0, 1.0, None, 8),
        (5, 3, 64, 64, 10_000.0, 1.0, None, 4_000),
        (7, 5, 80, 32, 1_000_000.0, 1.0, None, 30_000),
        (3, 2, 128, 128, 500_000.0, 0.25, None, 16_000),
        (4, 3, 96, 64, 10_000.0, 0.25, Some(yarn), 15_000),
        (33, 1, 6, 6, 10_000.0, 1.0, None, 100),
    ];
    // Phi-3's LongRoPE: per-pair divisors (1 to ~40, as its long factors) and an attention
    // factor through YaRN's magnitude without its ramp.
    let longrope = YarnParams {
        ext_factor: 0.0,
        attn_factor: 1.19,
        ..yarn
    };
    for (i, (n_tokens, n_heads, head_dim, n_rot, base, fscale, yarn, max_pos)) in cases
        .into_iter()
        .chain([(6, 4, 96, 96, 10_000.0, 1.0, Some(longrope), 30_000)])
        .enumerate()
    {
        let factors: Option<Vec<f32>> = (i % 2 == 1 || yarn == Some(longrope)).then(|| {
            (0..n_rot / 2)
                .map(|j| 1.0 + 40.0 * (j as f32 / (n_rot / 2) as f32).powi(3))
                .collect()
        });
        for mode in [RopeMode::Normal, RopeMode::Neox] {
            let p = RopeParams {
                n_rot,
                freq_base: base,
                freq_scale: fscale,
                mode,
                yarn,
            };
            let x = ctx.randn(n_tokens * n_heads * head_dim, 2.0);
            let positions: Vec<u32> = (0..n_tokens).map(|_| ctx.below(max_pos) as u32).collect();
            let (c, g) = both(ctx, |be| {
                let mut t = be.from_f32(vec![n_tokens, n_heads, head_dim], &x)?;
                let ff = factors
                    .as_ref()
                    .map(|f| be.from_f32(vec![f.len()], f))
                    .transpose()?;
                ops::rope(be, &mut t, n_heads, head_dim, &positions, &p, ff.as_ref())?;
                t.to_f32_vec()
            })?;
            let size = format!(
                "{mode:?} t{n_tokens} h{n_heads} d{head_dim} rot{n_rot}{}{}",
                if yarn.is_some() { " yarn" } else { "" },
                if factors.is_some() {
                    " freq-factors"
                } else {
                    ""
                }
            );
            ctx.check("rope", &size, &c, &g, 1e-5)?;
        }
    }
    Ok(())
}
