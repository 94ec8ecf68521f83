//! Element-wise ops: add, bias rows, mul, scale, SwiGLU (plain and gpt-oss's clamped one),
//! GeGLU, GELU and the tanh soft cap.

use half::f16;

/// `a[i] += b[i]` (residual add). Extra elements of the longer slice are left alone.
pub fn add(a: &mut [f32], b: &[f32]) {
    for (x, &y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// `y[r] += bias[ids[r]]` over rows of `cols` values: each row plus the bias row its id picks
/// (llama.cpp's `add_id`, gpt-oss's expert biases), or with `ids` absent plus `bias` itself (one
/// row). Errors (as `Err(what)`): `y` not whole rows, a bias that is not whole rows, too few ids,
/// an id past the bias rows.
pub fn add_bias(
    y: &mut [f32],
    bias: &[f32],
    cols: usize,
    ids: Option<&[u32]>,
) -> Result<(), String> {
    if cols == 0 || y.len() % cols != 0 || bias.len() % cols != 0 || bias.is_empty() {
        return Err(format!(
            "{} values and a bias of {} in rows of {cols}",
            y.len(),
            bias.len()
        ));
    }
    let n_rows = y.len() / cols;
    let n_bias = bias.len() / cols;
    if let Some(ids) = ids {
        if ids.len() < n_rows {
            return Err(format!("{} ids for {n_rows} rows", ids.len()));
        }
        if let Some(&id) = ids[..n_rows].iter().find(|&&id| id as usize >= n_bias) {
            return Err(format!("id {id} of {n_bias} bias rows"));
        }
    } else if n_bias != 1 {
        return Err(format!("{n_bias} bias rows without ids"));
    }
    for (r, row) in y.chunks_exact_mut(cols).enumerate() {
        let b = ids.map_or(0, |ids| ids[r] as usize);
        add(row, &bias[b * cols..(b + 1) * cols]);
    }
    Ok(())
}

/// gpt-oss's clamped SwiGLU as ggml's CPU computes it (`swiglu_oai`): with
/// `x = min(gate, limit)` and `y = clamp(up, -limit, limit)`,
/// `out = x / (1 + exp(-alpha x)) * (y + 1)`.
pub fn swiglu_oai(gate: &[f32], up: &[f32], out: &mut [f32], alpha: f32, limit: f32) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        let x = g.min(limit);
        let y = u.clamp(-limit, limit);
        *o = x / (1.0 + (alpha * -x).exp()) * (y + 1.0);
    }
}

/// `a[i] *= b[i]`. Extra elements of the longer slice are left alone.
pub fn mul(a: &mut [f32], b: &[f32]) {
    for (x, &y) in a.iter_mut().zip(b) {
        *x *= y;
    }
}

/// `a[i] *= s`.
pub fn scale(a: &mut [f32], s: f32) {
    for x in a.iter_mut() {
        *x *= s;
    }
}

/// SiLU as ggml computes it in f32: `x / (1 + exp(-x))`.
#[inline]
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// SwiGLU: `out[i] = silu(gate[i]) * up[i]`.
pub fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = silu(g) * u;
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_COEF_A: f32 = 0.044_715;

fn gelu_f32(t: f32) -> f32 {
    0.5 * t * (1.0 + (SQRT_2_OVER_PI * t * (1.0 + GELU_COEF_A * t * t)).tanh())
}

/// GELU, tanh approximation (ggml's formula, in f32):
/// `0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2)))`.
pub fn gelu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu_f32(*v);
    }
}

/// GeGLU as ggml's CPU backend computes it (`ggml_vec_geglu_f32` with its f16 GELU table):
/// `out[i] = gelu(gate[i]) * up[i]`, where for `-10 < x < 10` the GELU is taken at `x` rounded
/// to f16 and its value rounded to f16; `0` at or below -10 and `x` at or above 10.
pub fn gelu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        let act = if g <= -10.0 {
            0.0
        } else if g >= 10.0 {
            g
        } else {
            let x = f16::from_f32(g).to_f32();
            f16::from_f32(gelu_f32(x)).to_f32()
        };
        *o = act * u;
    }
}

/// Attention temperature as llama.cpp computes it (in f64 on the host): each row `r` of `q`
/// (`width` values) times `ln(floor(positions[r] / floor_len) + 1) * scale + 1`.
pub fn attn_temperature(
    q: &mut [f32],
    positions: &[u32],
    width: usize,
    scale: f32,
    floor_len: u32,
) {
    if width == 0 || floor_len == 0 {
        return;
    }
    for (row, &p) in q.chunks_exact_mut(width).zip(positions) {
        let f = (f64::from(p / floor_len) + 1.0).ln() * f64::from(scale) + 1.0;
        let f = f as f32;
        for x in row.iter_mut() {
            *x *= f;
        }
    }
}

/// Soft-capping: `a[i] = cap * tanh(a[i] / cap)` (ggml's order: scale by `1 / cap`, tanh, scale
/// by `cap`).
pub fn softcap(a: &mut [f32], cap: f32) {
    let inv = 1.0 / cap;
    for x in a.iter_mut() {
        *x = (*x * inv).tanh() * cap;
    }
}
