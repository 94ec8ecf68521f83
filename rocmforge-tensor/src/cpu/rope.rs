//! Rotary position embedding (RoPE): adjacent-pair and NeoX layouts, partial rotation,
//! linear frequency scaling and YaRN, computed like ggml's CPU `rope_f32`.

use rayon::prelude::*;

/// Which elements form a rotated pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeMode {
    /// Adjacent pairs `(x[2i], x[2i+1])`: the llama GGUF convention.
    Normal,
    /// Half split `(x[i], x[i + n_rot/2])`: GPT-NeoX, Qwen2 and others.
    Neox,
}

/// YaRN context-extension parameters (ggml's `ext_factor`, `attn_factor`, `beta_fast`,
/// `beta_slow` and `n_ctx_orig`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YarnParams {
    /// Mix between interpolated and extrapolated frequencies (0 disables the ramp).
    pub ext_factor: f32,
    /// Magnitude scale applied to cos and sin.
    pub attn_factor: f32,
    /// Rotations at which the ramp starts (ggml default 32).
    pub beta_fast: f32,
    /// Rotations at which the ramp ends (ggml default 1).
    pub beta_slow: f32,
    /// Context length the model was trained with.
    pub n_ctx_orig: u32,
}

/// RoPE parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeParams {
    /// Rotated dimensions per head (`<= head_dim`); the rest pass through unchanged.
    pub n_rot: usize,
    /// Frequency base (`rope.freq_base`, 10000 by default).
    pub freq_base: f32,
    /// Linear position scale (`1 / rope.scaling.factor`; 1 for none).
    pub freq_scale: f32,
    /// Pair layout.
    pub mode: RopeMode,
    /// YaRN parameters; `None` means no YaRN ramp and an attention factor of 1.
    pub yarn: Option<YarnParams>,
}

/// ggml's `rope_yarn_corr_dim`: the dimension at which `n_rot` full rotations fit the
/// original context.
fn corr_dim(n_dims: usize, n_ctx_orig: u32, rotations: f32, base: f32) -> f32 {
    n_dims as f32 * (n_ctx_orig as f32 / (rotations * 2.0 * std::f32::consts::PI)).ln()
        / (2.0 * base.ln())
}

/// The `[start, end]` correction dimensions of YaRN.
fn corr_dims(n_dims: usize, y: &YarnParams, base: f32) -> [f32; 2] {
    let start = corr_dim(n_dims, y.n_ctx_orig, y.beta_fast, base).floor();
    let end = corr_dim(n_dims, y.n_ctx_orig, y.beta_slow, base).ceil();
    [start.max(0.0), end.min(n_dims as f32 - 1.0)]
}

/// Fills `cache` with `(cos, sin)` for each rotated pair of one position.
fn fill_cache(
    pos: u32,
    p: &RopeParams,
    n_rot: usize,
    freq_factors: Option<&[f32]>,
    cache: &mut [(f32, f32)],
) {
    let theta_scale = p.freq_base.powf(-2.0 / n_rot as f32);
    let (ext_factor, attn_factor, dims) = match &p.yarn {
        Some(y) => (
            y.ext_factor,
            y.attn_factor,
            corr_dims(n_rot, y, p.freq_base),
        ),
        None => (0.0, 1.0, [0.0, 0.0]),
    };
    let mut running = pos as f32;
    for (pair, slot) in cache.iter_mut().enumerate() {
        // Per-pair frequency divisors (Llama 3's `rope_freqs`) divide the angle only.
        let ff = freq_factors
            .and_then(|f| f.get(pair))
            .copied()
            .unwrap_or(1.0);
        let theta_extrap = running / ff;
        let theta_interp = p.freq_scale * theta_extrap;
        let mut theta = theta_interp;
        let mut mscale = attn_factor;
        if ext_factor != 0.0 {
            let y = (pair as f32 - dims[0]) / (dims[1] - dims[0]).max(0.001);
            let ramp = 1.0 - y.clamp(0.0, 1.0);
            let mix = ramp * ext_factor;
            theta = theta_interp * (1.0 - mix) + theta_extrap * mix;
            mscale *= 1.0 + 0.1 * (1.0 / p.freq_scale).ln();
        }
        *slot = (theta.cos() * mscale, theta.sin() * mscale);
        running *= theta_scale;
    }
}

/// Rotates one head in place with the given cache.
fn rotate_head(h: &mut [f32], cache: &[(f32, f32)], mode: RopeMode) {
    let half = cache.len();
    for (i, &(c, s)) in cache.iter().enumerate() {
        let (a, b) = match mode {
            RopeMode::Normal => (2 * i, 2 * i + 1),
            RopeMode::Neox => (i, i + half),
        };
        let (x0, x1) = (h[a], h[b]);
        h[a] = x0 * c - x1 * s;
        h[b] = x0 * s + x1 * c;
    }
}

/// Applies RoPE in place to `x` (`[n_tokens][n_heads][head_dim]`), token `t` at
/// `positions[t]`.
///
/// Like ggml, the angles of one position are built by repeated multiplication
/// (`theta_i = pos * base^(-2i/n_rot)` as `theta_{i+1} = theta_i * base^(-2/n_rot)`), scaled
/// by `freq_scale`, with YaRN's ramp and magnitude scale when given. An `n_rot` larger than
/// `head_dim` is clamped to it (and rounded down to even). Tokens beyond `positions.len()`
/// or the data are left alone.
pub fn rope(
    x: &mut [f32],
    n_tokens: usize,
    n_heads: usize,
    head_dim: usize,
    positions: &[u32],
    p: &RopeParams,
) {
    rope_impl(x, n_tokens, n_heads, head_dim, positions, p, None);
}

/// [`rope`] with per-pair frequency divisors (`theta_i / freq_factors[i]`, ggml's
/// `freq_factors`, the `rope_freqs.weight` tensor of Llama 3 models). Pairs without a
/// factor (the slice is shorter than `n_rot / 2`) use 1.
pub fn rope_with_freq_factors(
    x: &mut [f32],
    n_tokens: usize,
    n_heads: usize,
    head_dim: usize,
    positions: &[u32],
    p: &RopeParams,
    freq_factors: &[f32],
) {
    rope_impl(
        x,
        n_tokens,
        n_heads,
        head_dim,
        positions,
        p,
        Some(freq_factors),
    );
}

fn rope_impl(
    x: &mut [f32],
    n_tokens: usize,
    n_heads: usize,
    head_dim: usize,
    positions: &[u32],
    p: &RopeParams,
    freq_factors: Option<&[f32]>,
) {
    let n_rot = p.n_rot.min(head_dim) & !1;
    let token_len = n_heads * head_dim;
    if n_rot == 0 || token_len == 0 {
        return;
    }
    let one_token = |(tok, &pos): (&mut [f32], &u32)| {
        let mut cache = vec![(0.0f32, 0.0f32); n_rot / 2];
        fill_cache(pos, p, n_rot, freq_factors, &mut cache);
        for h in tok.chunks_exact_mut(head_dim) {
            rotate_head(&mut h[..n_rot], &cache, p.mode);
        }
    };
    let used = (n_tokens * token_len).min(x.len());
    let x = &mut x[..used];
    if n_tokens > 1 {
        x.par_chunks_exact_mut(token_len)
            .zip(positions.par_iter())
            .for_each(one_token);
    } else {
        x.chunks_exact_mut(token_len)
            .zip(positions)
            .for_each(one_token);
    }
}
