//! RoPE (Normal and NeoX, partial rotation, linear scaling, YaRN): GPU against CPU.

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
    for (n_tokens, n_heads, head_dim, n_rot, base, fscale, yarn, max_pos) in cases {
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
                ops::rope(be, &mut t, n_heads, head_dim, &positions, &p)?;
                t.to_f32_vec()
            })?;
            let size = format!(
                "{mode:?} t{n_tokens} h{n_heads} d{head_dim} rot{n_rot}{}",
                if yarn.is_some() { " yarn" } else { "" }
            );
            ctx.check("rope", &size, &c, &g, 1e-5)?;
        }
    }
    Ok(())
}
