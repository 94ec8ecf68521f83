//! The ops, one signature each: the [`Backend`] picks the body — [`crate::cpu`] on the CPU, a
//! kernel launch from [`crate::hip`] on a GPU. Operands must live where the backend runs
//! (a CPU tensor given to a GPU backend is a [`TensorError::Backend`], never a silent copy).
//!
//! Activations are F32 `[rows][cols]` (innermost last); KV caches F16; weights a [`Weight`].

use rocmforge_gguf::GgmlType;

use crate::backend::Backend;
pub use crate::batch_kv::{attention_batch, kv_append_batch, rope_kv_append_batch};
use crate::cpu::{self, AttentionParams, RopeParams, WeightView};
pub use crate::cpu::{SampleParams, SampleRow};
use crate::error::{TensorError, TensorResult};
pub use crate::fused_ops::{matmul_add, rms_norm_matmul_many, rms_norm_matmul_swiglu};
use crate::hip;
pub use crate::moe_ops::{matmul_id, matmul_id_swiglu, moe_route, moe_weighted_sum};
pub use crate::sample_ops::{Sampled, sample_rows};
use crate::tensor::{Ids, Tensor, Weight};

fn shape_err(op: &'static str, what: String) -> TensorError {
    TensorError::Shape { op, what }
}

pub(crate) fn hip_weight<'a>(
    op: &'static str,
    w: &Weight<'a>,
) -> TensorResult<&'a crate::DeviceTensor> {
    match w {
        Weight::Hip(t) => Ok(t),
        _ => Err(TensorError::Backend {
            op,
            what: "a CPU weight given to the GPU backend".to_string(),
        }),
    }
}

/// Checks that `x` is whole rows of `n` and `out` as long as `x`.
fn check_rows(op: &'static str, x: usize, n: usize, out: usize) -> TensorResult<()> {
    if n == 0 || x % n != 0 || out != x {
        return Err(shape_err(
            op,
            format!("x of {x}, out of {out}, rows of {n}"),
        ));
    }
    Ok(())
}

/// RMS norm of each row of `x` times `weight` (one value per column), into `out`.
pub fn rms_norm(
    be: &Backend,
    x: &Tensor,
    weight: &Weight,
    eps: f32,
    out: &mut Tensor,
) -> TensorResult<()> {
    const OP: &str = "rms_norm";
    match be {
        Backend::Cpu => {
            let w = weight.host_f32(OP)?;
            let xs = x.cpu_f32(OP)?;
            let o = out.cpu_f32_mut(OP)?;
            check_rows(OP, xs.len(), w.len(), o.len())?;
            cpu::rms_norm(xs, &w, eps, o);
            Ok(())
        }
        Backend::Hip(ops) => hip::norm::rms_norm(
            ops,
            x.hip(OP)?,
            hip_weight(OP, weight)?,
            eps,
            out.hip_mut(OP)?,
        ),
    }
}

/// `x += delta`, then the RMS norm of each row of `x` times `weight` into `out` (a block's
/// residual add and the next norm; one launch on a GPU).
pub fn add_rms_norm(
    be: &Backend,
    x: &mut Tensor,
    delta: &Tensor,
    weight: &Weight,
    eps: f32,
    out: &mut Tensor,
) -> TensorResult<()> {
    const OP: &str = "add_rms_norm";
    match be {
        Backend::Cpu => {
            add(be, x, delta)?;
            rms_norm(be, x, weight, eps, out)
        }
        Backend::Hip(ops) => hip::norm::add_rms_norm(
            ops,
            x.hip_mut(OP)?,
            delta.hip(OP)?,
            hip_weight(OP, weight)?,
            eps,
            out.hip_mut(OP)?,
        ),
    }
}

/// Layer norm of each row of `x`, times `weight`, plus `bias` when given, into `out`.
pub fn layer_norm(
    be: &Backend,
    x: &Tensor,
    weight: &Weight,
    bias: Option<&Weight>,
    eps: f32,
    out: &mut Tensor,
) -> TensorResult<()> {
    const OP: &str = "layer_norm";
    match be {
        Backend::Cpu => {
            let w = weight.host_f32(OP)?;
            let b = bias.map(|b| b.host_f32(OP)).transpose()?;
            if b.as_ref().is_some_and(|b| b.len() != w.len()) {
                return Err(shape_err(OP, "bias and weight lengths differ".to_string()));
            }
            let xs = x.cpu_f32(OP)?;
            let o = out.cpu_f32_mut(OP)?;
            check_rows(OP, xs.len(), w.len(), o.len())?;
            cpu::layer_norm(xs, &w, b.as_deref(), eps, o);
            Ok(())
        }
        Backend::Hip(ops) => {
            let b = bias.map(|b| hip_weight(OP, b)).transpose()?;
            let w = hip_weight(OP, weight)?;
            hip::norm::layer_norm(ops, x.hip(OP)?, w, b, eps, out.hip_mut(OP)?)
        }
    }
}

fn same_len(op: &'static str, a: usize, b: usize) -> TensorResult<()> {
    if a == b {
        Ok(())
    } else {
        Err(shape_err(op, format!("lengths {a} and {b} differ")))
    }
}

/// `a += b` element-wise (residual add).
pub fn add(be: &Backend, a: &mut Tensor, b: &Tensor) -> TensorResult<()> {
    const OP: &str = "add";
    match be {
        Backend::Cpu => {
            let (bs, a) = (b.cpu_f32(OP)?, a.cpu_f32_mut(OP)?);
            same_len(OP, a.len(), bs.len())?;
            cpu::add(a, bs);
            Ok(())
        }
        Backend::Hip(ops) => hip::elementwise::add(ops, a.hip_mut(OP)?, b.hip(OP)?),
    }
}

/// `y[r] += bias[ids[r]]` over rows of the bias's width `cols`: each row plus the bias row its
/// id picks (llama.cpp's `add_id`: gpt-oss's expert biases, ids from [`moe_route`]), or with
/// `ids` absent plus the one bias row (`[cols]`: a projection's bias). On a GPU the ids are not
/// read back; they must be below the bias's row count (the router's are).
pub fn add_bias(
    be: &Backend,
    y: &mut Tensor,
    bias: &Tensor,
    cols: usize,
    ids: Option<&Ids>,
) -> TensorResult<()> {
    const OP: &str = "add_bias";
    match (be, ids) {
        (Backend::Cpu, None | Some(Ids::Cpu(_))) => {
            let ids = match ids {
                Some(Ids::Cpu(v)) => Some(v.as_slice()),
                _ => None,
            };
            let (b, y) = (bias.cpu_f32(OP)?, y.cpu_f32_mut(OP)?);
            cpu::add_bias(y, b, cols, ids).map_err(|what| shape_err(OP, what))
        }
        (Backend::Hip(ops), None | Some(Ids::Hip(_))) => {
            let ids = match ids {
                Some(Ids::Hip(v)) => Some(v),
                _ => None,
            };
            hip::elementwise::add_bias(ops, y.hip_mut(OP)?, bias.hip(OP)?, cols, ids)
        }
        _ => Err(TensorError::Backend {
            op: OP,
            what: "rows and ids on different backends".to_string(),
        }),
    }
}

/// `a *= b` element-wise.
pub fn mul(be: &Backend, a: &mut Tensor, b: &Tensor) -> TensorResult<()> {
    const OP: &str = "mul";
    match be {
        Backend::Cpu => {
            let (bs, a) = (b.cpu_f32(OP)?, a.cpu_f32_mut(OP)?);
            same_len(OP, a.len(), bs.len())?;
            cpu::mul(a, bs);
            Ok(())
        }
        Backend::Hip(ops) => hip::elementwise::mul(ops, a.hip_mut(OP)?, b.hip(OP)?),
    }
}

/// `a *= s`.
pub fn scale(be: &Backend, a: &mut Tensor, s: f32) -> TensorResult<()> {
    const OP: &str = "scale";
    match be {
        Backend::Cpu => {
            cpu::scale(a.cpu_f32_mut(OP)?, s);
            Ok(())
        }
        Backend::Hip(ops) => hip::elementwise::scale(ops, a.hip_mut(OP)?, s),
    }
}

/// `out = silu(gate) * up` (SwiGLU).
pub fn silu_mul(be: &Backend, gate: &Tensor, up: &Tensor, out: &mut Tensor) -> TensorResult<()> {
    gated(be, Gate::Silu, gate, up, out)
}

/// `out = gelu(gate) * up` (GeGLU, tanh approximation; on the CPU with ggml's CPU rounding of
/// the GELU to f16, see [`cpu::gelu_mul`]).
pub fn gelu_mul(be: &Backend, gate: &Tensor, up: &Tensor, out: &mut Tensor) -> TensorResult<()> {
    gated(be, Gate::Gelu, gate, up, out)
}

/// gpt-oss's clamped SwiGLU: `out = x sigmoid(alpha x) (y + 1)` with `x = min(gate, limit)`,
/// `y = clamp(up, -limit, limit)` (ggml's `swiglu_oai`; gpt-oss uses alpha 1.702, limit 7).
pub fn swiglu_oai(
    be: &Backend,
    gate: &Tensor,
    up: &Tensor,
    out: &mut Tensor,
    alpha: f32,
    limit: f32,
) -> TensorResult<()> {
    gated(be, Gate::SwigluOai { alpha, limit }, gate, up, out)
}

/// The activation of a gated feed-forward.
#[derive(Clone, Copy)]
enum Gate {
    Silu,
    Gelu,
    SwigluOai { alpha: f32, limit: f32 },
}

fn gated(
    be: &Backend,
    act: Gate,
    gate: &Tensor,
    up: &Tensor,
    out: &mut Tensor,
) -> TensorResult<()> {
    let op = match act {
        Gate::Silu => "silu_mul",
        Gate::Gelu => "gelu_mul",
        Gate::SwigluOai { .. } => "swiglu_oai",
    };
    match be {
        Backend::Cpu => {
            let (g, u, o) = (gate.cpu_f32(op)?, up.cpu_f32(op)?, out.cpu_f32_mut(op)?);
            same_len(op, g.len(), u.len())?;
            same_len(op, g.len(), o.len())?;
            match act {
                Gate::Silu => cpu::silu_mul(g, u, o),
                Gate::Gelu => cpu::gelu_mul(g, u, o),
                Gate::SwigluOai { alpha, limit } => cpu::swiglu_oai(g, u, o, alpha, limit),
            }
            Ok(())
        }
        Backend::Hip(ops) => {
            let (g, u, o) = (gate.hip(op)?, up.hip(op)?, out.hip_mut(op)?);
            match act {
                Gate::Silu => hip::elementwise::silu_mul(ops, g, u, o),
                Gate::Gelu => hip::elementwise::gelu_mul(ops, g, u, o),
                Gate::SwigluOai { alpha, limit } => {
                    hip::elementwise::swiglu_oai(ops, g, u, o, alpha, limit)
                }
            }
        }
    }
}

/// Attention temperature (llama 4 / mistral3): each row `r` of `q` (`width` values) times
/// `ln(floor(positions[r] / floor_len) + 1) * scale + 1`.
pub fn attn_temperature(
    be: &Backend,
    q: &mut Tensor,
    positions: &Ids,
    width: usize,
    scale: f32,
    floor_len: u32,
) -> TensorResult<()> {
    const OP: &str = "attn_temperature";
    match (be, positions) {
        (Backend::Cpu, Ids::Cpu(p)) => {
            let q = q.cpu_f32_mut(OP)?;
            if width == 0 || q.len() % width != 0 || p.len() < q.len() / width || floor_len == 0 {
                return Err(shape_err(
                    OP,
                    format!("{} values, rows of {width}, {} positions", q.len(), p.len()),
                ));
            }
            cpu::attn_temperature(q, p, width, scale, floor_len);
            Ok(())
        }
        (Backend::Hip(ops), Ids::Hip(p)) => {
            hip::elementwise::attn_temperature(ops, q.hip_mut(OP)?, p, width, scale, floor_len)
        }
        _ => Err(TensorError::Backend {
            op: OP,
            what: "q and positions on different backends".to_string(),
        }),
    }
}

/// `a = cap * tanh(a / cap)` element-wise (final logit soft-capping).
pub fn softcap(be: &Backend, a: &mut Tensor, cap: f32) -> TensorResult<()> {
    const OP: &str = "softcap";
    match be {
        Backend::Cpu => {
            cpu::softcap(a.cpu_f32_mut(OP)?, cap);
            Ok(())
        }
        Backend::Hip(ops) => hip::elementwise::softcap(ops, a.hip_mut(OP)?, cap),
    }
}

/// GELU (tanh approximation) in place.
pub fn gelu(be: &Backend, x: &mut Tensor) -> TensorResult<()> {
    const OP: &str = "gelu";
    match be {
        Backend::Cpu => {
            cpu::gelu(x.cpu_f32_mut(OP)?);
            Ok(())
        }
        Backend::Hip(ops) => hip::elementwise::gelu(ops, x.hip_mut(OP)?),
    }
}

/// RoPE in place on `x` (`[n_tokens][n_heads][head_dim]`), token `t` at `positions[t]`; with
/// `freq_factors` (F32, one per rotated pair: Phi-3's LongRoPE factors) each pair's angle is
/// divided by its factor.
pub fn rope(
    be: &Backend,
    x: &mut Tensor,
    n_heads: usize,
    head_dim: usize,
    positions: &[u32],
    p: &RopeParams,
    freq_factors: Option<&Tensor>,
) -> TensorResult<()> {
    const OP: &str = "rope";
    let n_tokens = positions.len();
    match be {
        Backend::Cpu => {
            let ff = cpu_freq_factors(OP, freq_factors, p, head_dim)?;
            let xs = x.cpu_f32_mut(OP)?;
            same_len(OP, xs.len(), n_tokens * n_heads * head_dim)?;
            match ff {
                Some(ff) => {
                    cpu::rope_with_freq_factors(xs, n_tokens, n_heads, head_dim, positions, p, ff)
                }
                None => cpu::rope(xs, n_tokens, n_heads, head_dim, positions, p),
            }
            Ok(())
        }
        Backend::Hip(ops) => hip::rope::rope(
            ops,
            x.hip_mut(OP)?,
            n_tokens,
            n_heads,
            head_dim,
            positions,
            p,
            freq_factors.map(|f| f.hip(OP)).transpose()?,
        ),
    }
}

/// The host values of RoPE frequency factors, checked to hold one per rotated pair.
fn cpu_freq_factors<'a>(
    op: &'static str,
    freq_factors: Option<&'a Tensor>,
    p: &RopeParams,
    head_dim: usize,
) -> TensorResult<Option<&'a [f32]>> {
    let Some(f) = freq_factors else {
        return Ok(None);
    };
    let f = f.cpu_f32(op)?;
    let pairs = (p.n_rot.min(head_dim) & !1) / 2;
    if f.len() != pairs {
        return Err(TensorError::Shape {
            op,
            what: format!("{} frequency factors for {pairs} rotated pairs", f.len()),
        });
    }
    Ok(Some(f))
}

/// [`rope`] with the positions already where the backend reads them (one upload per batch,
/// not one per launch); `x` holds `positions.len()` tokens.
pub fn rope_positions(
    be: &Backend,
    x: &mut Tensor,
    n_heads: usize,
    head_dim: usize,
    positions: &Ids,
    p: &RopeParams,
    freq_factors: Option<&Tensor>,
) -> TensorResult<()> {
    const OP: &str = "rope";
    match (be, positions) {
        (Backend::Cpu, Ids::Cpu(pos)) => rope(be, x, n_heads, head_dim, pos, p, freq_factors),
        (Backend::Hip(ops), Ids::Hip(pos)) => hip::rope::rope_device_positions(
            ops,
            x.hip_mut(OP)?,
            pos.len(),
            n_heads,
            head_dim,
            pos,
            p,
            freq_factors.map(|f| f.hip(OP)).transpose()?,
        ),
        _ => Err(TensorError::Backend {
            op: OP,
            what: "positions held by another backend".to_string(),
        }),
    }
}

/// `out[i] = src[rows[i]]` for rows of `width` values (F32): the rows a step wants logits for,
/// gathered before the final norm and the LM head.
pub fn gather_rows(
    be: &Backend,
    src: &Tensor,
    width: usize,
    rows: &[u32],
    out: &mut Tensor,
) -> TensorResult<()> {
    const OP: &str = "gather_rows";
    let n_src = src.n_elements().checked_div(width).unwrap_or(0);
    if src.shape().last() != Some(&width) || out.n_elements() != rows.len() * width {
        return Err(shape_err(
            OP,
            format!(
                "{} rows of {width} from {:?} into {:?}",
                rows.len(),
                src.shape(),
                out.shape()
            ),
        ));
    }
    if let Some(&bad) = rows.iter().find(|&&r| r as usize >= n_src) {
        return Err(shape_err(OP, format!("row {bad} of {n_src}")));
    }
    match be {
        Backend::Cpu => {
            let s = src.cpu_f32(OP)?;
            let o = out.cpu_f32_mut(OP)?;
            for (dst, &r) in o.chunks_exact_mut(width).zip(rows) {
                let r = r as usize;
                dst.copy_from_slice(&s[r * width..(r + 1) * width]);
            }
            Ok(())
        }
        // The embedding kernel gathers rows of any F32 table.
        Backend::Hip(ops) => hip::embedding::embedding(ops, src.hip(OP)?, rows, out.hip_mut(OP)?),
    }
}

/// Stable softmax of each row of `cols` values, in place (`-inf` = masked).
pub fn softmax_rows(be: &Backend, x: &mut Tensor, cols: usize) -> TensorResult<()> {
    const OP: &str = "softmax";
    match be {
        Backend::Cpu => {
            let xs = x.cpu_f32_mut(OP)?;
            if cols == 0 || xs.len() % cols != 0 {
                return Err(shape_err(
                    OP,
                    format!("{} values in rows of {cols}", xs.len()),
                ));
            }
            xs.chunks_exact_mut(cols).for_each(cpu::softmax);
            Ok(())
        }
        Backend::Hip(ops) => hip::softmax::softmax_rows(ops, x.hip_mut(OP)?, cols),
    }
}

/// `out[t] = table[ids[t]]`, dequantized to f32 (`out`: `[ids.len()][cols]`).
pub fn embedding(be: &Backend, table: &Weight, ids: &[u32], out: &mut Tensor) -> TensorResult<()> {
    const OP: &str = "embedding";
    match (be, table) {
        (Backend::Cpu, Weight::Cpu(view)) => cpu::embedding(view, ids, out.cpu_f32_mut(OP)?),
        (Backend::Cpu, Weight::CpuF32 { data, rows, cols }) => {
            let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let view = WeightView {
                ty: GgmlType::F32,
                data: &bytes,
                rows: *rows,
                cols: *cols,
            };
            cpu::embedding(&view, ids, out.cpu_f32_mut(OP)?)
        }
        (Backend::Hip(ops), w) => {
            hip::embedding::embedding(ops, hip_weight(OP, w)?, ids, out.hip_mut(OP)?)
        }
        (Backend::Cpu, Weight::Hip(_)) => Err(TensorError::Backend {
            op: OP,
            what: "a GPU table given to the CPU backend".to_string(),
        }),
    }
}

/// [`embedding`] with the ids already where the backend reads them (one upload per step, no
/// allocation). On a GPU an id outside the table gives a NaN row (the caller checks the ids on
/// the host first); on the CPU it is an error.
pub fn embedding_ids(
    be: &Backend,
    table: &Weight,
    ids: &Ids,
    out: &mut Tensor,
) -> TensorResult<()> {
    const OP: &str = "embedding";
    match (be, ids) {
        (Backend::Cpu, Ids::Cpu(v)) => embedding(be, table, v, out),
        (Backend::Hip(ops), Ids::Hip(d)) => {
            hip::embedding::embedding_at(ops, hip_weight(OP, table)?, d, d.len(), out.hip_mut(OP)?)
        }
        _ => Err(TensorError::Backend {
            op: OP,
            what: "token ids held by another backend".to_string(),
        }),
    }
}

/// `out = x · Wᵀ`: `x` `[n_tokens][cols]`, `out` `[n_tokens][rows]`, `w` `[rows][cols]` in its
/// GGUF type.
pub fn matmul(
    be: &Backend,
    w: &Weight,
    x: &Tensor,
    n_tokens: usize,
    out: &mut Tensor,
) -> TensorResult<()> {
    const OP: &str = "matmul";
    match (be, w) {
        (Backend::Cpu, Weight::Cpu(view)) => {
            cpu::matmul(view, x.cpu_f32(OP)?, n_tokens, out.cpu_f32_mut(OP)?)
        }
        (Backend::Cpu, Weight::CpuF32 { data, rows, cols }) => {
            let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let view = WeightView {
                ty: GgmlType::F32,
                data: &bytes,
                rows: *rows,
                cols: *cols,
            };
            cpu::matmul(&view, x.cpu_f32(OP)?, n_tokens, out.cpu_f32_mut(OP)?)
        }
        (Backend::Hip(ops), w) => {
            let wt = hip_weight(OP, w)?;
            let wb = wt.bytes_buffer().ok_or_else(|| TensorError::Backend {
                op: OP,
                what: "GPU weights must be uploaded as raw bytes (GgufLoader does)".to_string(),
            })?;
            let xb = x.hip(OP)?.f32_buffer(OP)?;
            let ob = out.hip_mut(OP)?.f32_buffer_mut(OP)?;
            ops.with_matmul(|ctx, stream| {
                hip::matmul::matmul(
                    ctx,
                    wb,
                    wt.dtype(),
                    wt.rows(),
                    wt.cols(),
                    xb,
                    n_tokens,
                    ob,
                    stream,
                )
            })
        }
        (Backend::Cpu, Weight::Hip(_)) => Err(TensorError::Backend {
            op: OP,
            what: "a GPU weight given to the CPU backend".to_string(),
        }),
    }
}

/// Several weights multiplied with the same activations: `jobs[i].1 = x · jobs[i].0ᵀ` (the q, k
/// and v projections). On the GPU, consecutive weights of the same quantized type and columns
/// share one launch for decode-sized batches (`hip::matmul::matmul_multi`); on the CPU all the
/// weights' rows run in one parallel loop ([`cpu::matmul_many`], [`matmul`]'s bits); everything
/// else runs [`matmul`] per weight (the same values up to float summation order).
pub fn matmul_many(
    be: &Backend,
    x: &Tensor,
    n_tokens: usize,
    jobs: &mut [(&Weight, &mut Tensor)],
) -> TensorResult<()> {
    if cpu_many(be, x, n_tokens, jobs)? {
        return Ok(());
    }
    let mut i = 0;
    while i < jobs.len() {
        let j = group_end(be, jobs, i);
        if !(j - i >= 2 && hip_group(be, x, None, n_tokens, &mut jobs[i..j])?) {
            for (w, out) in jobs[i..j].iter_mut() {
                matmul(be, w, x, n_tokens, out)?;
            }
        }
        i = j;
    }
    Ok(())
}

/// [`cpu::matmul_many`] (one parallel loop for a token's products with all the weights) where
/// the backend is the CPU and every weight a host view; `false` (nothing done) otherwise.
fn cpu_many(
    be: &Backend,
    x: &Tensor,
    n_tokens: usize,
    jobs: &mut [(&Weight, &mut Tensor)],
) -> TensorResult<bool> {
    const OP: &str = "matmul_many";
    if !matches!(be, Backend::Cpu) {
        return Ok(false);
    }
    let mut views = Vec::with_capacity(jobs.len());
    for (w, out) in jobs.iter_mut() {
        let Weight::Cpu(view) = *w else {
            return Ok(false);
        };
        views.push((view, out.cpu_f32_mut(OP)?));
    }
    cpu::matmul_many(&mut views, x.cpu_f32(OP)?, n_tokens)?;
    Ok(true)
}

/// The end of the group of [`matmul_many`]'s jobs that starts at `i`: up to three consecutive GPU
/// weights of the same type and columns (one job elsewhere).
pub(crate) fn group_end(be: &Backend, jobs: &[(&Weight, &mut Tensor)], i: usize) -> usize {
    let mut j = i + 1;
    if let (Backend::Hip(_), Some((Weight::Hip(first), _))) = (be, jobs.get(i)) {
        let same = |w: &Weight| match w {
            Weight::Hip(t) => t.dtype() == first.dtype() && t.cols() == first.cols(),
            _ => false,
        };
        while j < jobs.len() && j - i < 3 && same(jobs[j].0) {
            j += 1;
        }
    }
    j
}

/// One launch for a group of GPU weights of the same type and columns with the same
/// activations (`hip::matmul::matmul_multi` for two or three, the one-launch matvec for one),
/// the activations normed first where `norm` is given; `false` (nothing done) where those
/// kernels do not serve the shapes or the backend is the CPU.
pub(crate) fn hip_group(
    be: &Backend,
    x: &Tensor,
    norm: Option<(&Weight, f32, &mut Tensor)>,
    n_tokens: usize,
    group: &mut [(&Weight, &mut Tensor)],
) -> TensorResult<bool> {
    const OP: &str = "matmul_many";
    let (Backend::Hip(ops), Some((Weight::Hip(first), _))) = (be, group.first()) else {
        return Ok(false);
    };
    let mut ws = Vec::with_capacity(group.len());
    let mut rows = Vec::with_capacity(group.len());
    for (w, _) in group.iter() {
        let t = hip_weight(OP, w)?;
        ws.push(t.bytes_buffer().ok_or_else(|| TensorError::Backend {
            op: OP,
            what: "GPU weights must be uploaded as raw bytes (GgufLoader does)".to_string(),
        })?);
        rows.push(t.rows());
    }
    let xb = x.hip(OP)?.f32_buffer(OP)?;
    let mut outs = Vec::with_capacity(group.len());
    for (_, out) in group.iter_mut() {
        outs.push(out.hip_mut(OP)?.f32_buffer_mut(OP)?);
    }
    let mut norm = match norm {
        Some((w, eps, normed)) => Some(hip::matmul::NormBuffers {
            weight: hip_weight(OP, w)?,
            eps,
            out: normed.hip_mut(OP)?.f32_buffer_mut(OP)?,
        }),
        None => None,
    };
    let (ty, cols) = (first.dtype(), first.cols());
    ops.with_matmul(|ctx, stream| match (outs.as_mut_slice(), norm.as_mut()) {
        ([out], Some(n)) => {
            hip::matmul::matmul_normed(ctx, ws[0], ty, rows[0], cols, xb, n, n_tokens, out, stream)
        }
        ([_], None) => Ok(false),
        (outs, n) => hip::matmul::matmul_multi(
            ctx,
            &ws,
            &rows,
            ty,
            cols,
            xb,
            n_tokens,
            outs,
            stream,
            n.map(|n| &*n),
        ),
    })
}

/// SwiGLU feed-forward input: `out = silu(x · gateᵀ) * (x · upᵀ)` (`[n_tokens][rows]`) for
/// gate and up weights of the same shape. On the GPU, a gate/up pair of the same quantized type
/// takes one launch for decode-sized batches (`hip::matmul::matmul_swiglu`); every other case
/// runs the two matmuls into `gate_out` / `up_out` (on the CPU in one parallel loop,
/// [`cpu::matmul_many`]) and [`silu_mul`] (the same values up to float
/// summation order).
#[allow(clippy::too_many_arguments)]
pub fn matmul_swiglu(
    be: &Backend,
    gate: &Weight,
    up: &Weight,
    x: &Tensor,
    n_tokens: usize,
    gate_out: &mut Tensor,
    up_out: &mut Tensor,
    out: &mut Tensor,
) -> TensorResult<()> {
    if swiglu_one_launch(be, gate, up, x, None, n_tokens, out)? {
        return Ok(());
    }
    if !cpu_many(
        be,
        x,
        n_tokens,
        &mut [(gate, &mut *gate_out), (up, &mut *up_out)],
    )? {
        matmul(be, gate, x, n_tokens, gate_out)?;
        matmul(be, up, x, n_tokens, up_out)?;
    }
    silu_mul(be, gate_out, up_out, out)
}

/// [`matmul_swiglu`] in one launch on a GPU (`hip::matmul::matmul_swiglu`), the activations
/// normed first where `norm` (weight, eps, normed rows out) is given; `false` (nothing done)
/// where that kernel does not serve the pair or the backend is the CPU.
pub(crate) fn swiglu_one_launch(
    be: &Backend,
    gate: &Weight,
    up: &Weight,
    x: &Tensor,
    norm: Option<(&Weight, f32, &mut Tensor)>,
    n_tokens: usize,
    out: &mut Tensor,
) -> TensorResult<bool> {
    const OP: &str = "matmul_swiglu";
    let (Backend::Hip(ops), Weight::Hip(g), Weight::Hip(u)) = (be, gate, up) else {
        return Ok(false);
    };
    let same = g.dtype() == u.dtype() && g.rows() == u.rows() && g.cols() == u.cols();
    let (true, Some(gb), Some(ub)) = (same, g.bytes_buffer(), u.bytes_buffer()) else {
        return Ok(false);
    };
    let xb = x.hip(OP)?.f32_buffer(OP)?;
    let ob = out.hip_mut(OP)?.f32_buffer_mut(OP)?;
    let norm = match norm {
        Some((w, eps, normed)) => Some(hip::matmul::NormBuffers {
            weight: hip_weight(OP, w)?,
            eps,
            out: normed.hip_mut(OP)?.f32_buffer_mut(OP)?,
        }),
        None => None,
    };
    ops.with_matmul(|ctx, stream| {
        hip::matmul::matmul_swiglu(
            ctx,
            gb,
            ub,
            g.dtype(),
            g.rows(),
            g.cols(),
            xb,
            n_tokens,
            ob,
            stream,
            norm.as_ref(),
        )
    })
}

/// Writes the rows of `src` (F32 `[n][row_len]`) into `cache` (F16 `[capacity][row_len]`) at
/// rows `start_row..start_row + n`, rounded to f16.
pub fn kv_append(
    be: &Backend,
    src: &Tensor,
    cache: &mut Tensor,
    start_row: usize,
) -> TensorResult<()> {
    let row_len = cache.shape().last().copied().unwrap_or(0);
    let n = src.n_elements();
    if row_len == 0 || n % row_len != 0 {
        return Err(shape_err(
            "kv_append",
            format!("src {:?} is not whole rows of {row_len}", src.shape()),
        ));
    }
    kv_append_rows(be, src, 0, n / row_len, cache, start_row)
}

/// Checks that rows `row..row + n` of `width` values lie inside `len` values; their range.
fn row_range(
    op: &'static str,
    len: usize,
    width: usize,
    row: usize,
    n: usize,
) -> TensorResult<std::ops::Range<usize>> {
    let end = row.checked_add(n).and_then(|e| e.checked_mul(width));
    match end {
        Some(end) if end <= len && width > 0 => Ok(row * width..end),
        _ => Err(shape_err(
            op,
            format!("rows {row}..+{n} of width {width} outside a tensor of {len} values"),
        )),
    }
}

/// Writes rows `row..row + n_rows` of `src` (F32, rows of the cache's width) into `cache` (F16
/// `[capacity][row_len]`) at rows `start_row..start_row + n_rows`: one sequence's keys or values
/// out of a batch's rows, without a copy.
pub fn kv_append_rows(
    be: &Backend,
    src: &Tensor,
    row: usize,
    n_rows: usize,
    cache: &mut Tensor,
    start_row: usize,
) -> TensorResult<()> {
    const OP: &str = "kv_append_rows";
    match be {
        Backend::Cpu => {
            let row_len = cache.shape().last().copied().unwrap_or(0);
            let s = src.cpu_f32(OP)?;
            let from = row_range(OP, s.len(), row_len, row, n_rows)?;
            let c = cache.cpu_f16_mut(OP)?;
            let to = row_range(OP, c.len(), row_len, start_row, n_rows).map_err(|_| {
                shape_err(
                    OP,
                    format!(
                        "rows {start_row}..+{n_rows} exceed the cache's {} rows",
                        c.len() / row_len.max(1)
                    ),
                )
            })?;
            for (d, &v) in c[to].iter_mut().zip(&s[from]) {
                *d = half::f16::from_f32(v);
            }
            Ok(())
        }
        Backend::Hip(ops) => hip::kv::kv_append_rows(
            ops,
            src.hip(OP)?,
            row,
            n_rows,
            cache.hip_mut(OP)?,
            start_row,
        ),
    }
}

/// Causal GQA attention of `q` over the first `p.n_kv_tokens` rows of the f16 caches.
pub fn attention(
    be: &Backend,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    p: &AttentionParams,
    out: &mut Tensor,
) -> TensorResult<()> {
    let q_len = p.n_q_tokens * p.n_heads * p.head_dim;
    if q.n_elements() != q_len || out.n_elements() != q_len {
        return Err(shape_err(
            "attention",
            format!("{p:?} with q {:?}, out {:?}", q.shape(), out.shape()),
        ));
    }
    attention_rows(be, q, 0, k_cache, v_cache, p, None, out)
}

/// [`attention`] of the `p.n_q_tokens` query rows from row `row` of `q` (rows of `n_heads *
/// head_dim`), written to the same rows of `out`: one sequence of a batch, without a copy.
/// `sinks` (F32 `[n_heads]`, gpt-oss) adds each head's sink logit to its softmax denominators
/// ([`cpu::attention_with_sinks`]).
#[allow(clippy::too_many_arguments)]
pub fn attention_rows(
    be: &Backend,
    q: &Tensor,
    row: usize,
    k_cache: &Tensor,
    v_cache: &Tensor,
    p: &AttentionParams,
    sinks: Option<&Tensor>,
    out: &mut Tensor,
) -> TensorResult<()> {
    const OP: &str = "attention";
    if let Some(s) = sinks
        && s.n_elements() != p.n_heads
    {
        return Err(shape_err(
            OP,
            format!("sinks {:?} for {} heads", s.shape(), p.n_heads),
        ));
    }
    match be {
        Backend::Cpu => {
            let (qs, k, v) = (q.cpu_f32(OP)?, k_cache.cpu_f16(OP)?, v_cache.cpu_f16(OP)?);
            let o = out.cpu_f32_mut(OP)?;
            let width = p.n_heads * p.head_dim;
            let kv_len = p.n_kv_tokens * p.n_kv_heads * p.head_dim;
            let heads_ok = p.n_kv_heads > 0 && p.head_dim > 0 && p.n_heads % p.n_kv_heads == 0;
            if !heads_ok || p.n_q_tokens > p.n_kv_tokens || k.len() < kv_len || v.len() < kv_len {
                return Err(shape_err(
                    OP,
                    format!("{p:?} with k {}, v {}", k.len(), v.len()),
                ));
            }
            let qr = row_range(OP, qs.len(), width, row, p.n_q_tokens)?;
            let or = row_range(OP, o.len(), width, row, p.n_q_tokens)?;
            let sinks = sinks.map(|s| s.cpu_f32(OP)).transpose()?;
            cpu::attention_with_sinks(&qs[qr], &k[..kv_len], &v[..kv_len], p, sinks, &mut o[or]);
            Ok(())
        }
        Backend::Hip(ops) => hip::attention::attention_rows(
            ops,
            q.hip(OP)?,
            row,
            k_cache.hip(OP)?,
            v_cache.hip(OP)?,
            p,
            sinks.map(|s| s.hip(OP)).transpose()?,
            out.hip_mut(OP)?,
        ),
    }
}

/// Copies the first `n_rows` rows of `src` over those of `dst` (F16 tensors with rows of the
/// same width, e.g. one layer of two KV caches). Queued on a GPU, in order with the ops.
pub fn copy_rows(be: &Backend, src: &Tensor, dst: &mut Tensor, n_rows: usize) -> TensorResult<()> {
    const OP: &str = "copy_rows";
    let width = src.shape().last().copied().unwrap_or(0);
    let n = n_rows.checked_mul(width);
    let fits = dst.shape().last() == Some(&width)
        && n.is_some_and(|n| n <= src.n_elements() && n <= dst.n_elements());
    let n = match n {
        Some(n) if fits => n,
        _ => {
            return Err(TensorError::Shape {
                op: OP,
                what: format!(
                    "{n_rows} rows from {:?} into {:?}",
                    src.shape(),
                    dst.shape()
                ),
            });
        }
    };
    match be {
        Backend::Cpu => {
            let from = src.cpu_f16(OP)?;
            dst.cpu_f16_mut(OP)?[..n].copy_from_slice(&from[..n]);
            Ok(())
        }
        Backend::Hip(ops) => {
            let from = src.hip(OP)?;
            hip::check_device(OP, ops, from)?;
            let to = dst.hip_mut(OP)?;
            hip::check_device(OP, ops, to)?;
            let from = from.f16_buffer(OP)?;
            Ok(ops
                .stream()
                .memcpy_dtod_prefix(from, to.f16_buffer_mut(OP)?, n)?)
        }
    }
}

/// Index of the largest value of `x` (all its elements).
pub fn argmax(be: &Backend, x: &Tensor) -> TensorResult<usize> {
    const OP: &str = "argmax";
    match be {
        Backend::Cpu => Ok(cpu::argmax(x.cpu_f32(OP)?)),
        Backend::Hip(ops) => hip::argmax::argmax(ops, x.hip(OP)?),
    }
}

/// The argmax of each of the first `n_rows` rows of `x` (F32 `[..][row_len]`) into
/// `out[..n_rows]`, with [`argmax`]'s order (first on ties, NaN never chosen). On a GPU it is
/// queued, not waited for: read `out` after [`Backend::synchronize`].
pub fn argmax_rows(
    be: &Backend,
    x: &Tensor,
    row_len: usize,
    n_rows: usize,
    out: &mut Ids,
) -> TensorResult<()> {
    const OP: &str = "argmax_rows";
    match (be, out) {
        (Backend::Cpu, Ids::Cpu(out)) => {
            let x = x.cpu_f32(OP)?;
            let need = row_len
                .checked_mul(n_rows)
                .filter(|&n| n <= x.len() && row_len > 0);
            if need.is_none() || out.len() < n_rows {
                return Err(TensorError::Shape {
                    op: OP,
                    what: format!(
                        "{n_rows} rows of {row_len} in {} values into {} indices",
                        x.len(),
                        out.len()
                    ),
                });
            }
            for (o, row) in out.iter_mut().zip(x.chunks_exact(row_len).take(n_rows)) {
                *o = cpu::argmax(row) as u32;
            }
            Ok(())
        }
        (Backend::Hip(ops), Ids::Hip(out)) => {
            hip::argmax::argmax_rows(ops, x.hip(OP)?, row_len, n_rows, out)
        }
        _ => Err(TensorError::Backend {
            op: OP,
            what: "ids on another backend".to_string(),
        }),
    }
}

/// The `k` largest values of `x` as `(index, value)`, largest first.
pub fn top_k(be: &Backend, x: &Tensor, k: usize) -> TensorResult<Vec<(usize, f32)>> {
    const OP: &str = "top_k";
    match be {
        Backend::Cpu => Ok(cpu::top_k(x.cpu_f32(OP)?, k)),
        Backend::Hip(ops) => hip::argmax::top_k(ops, x.hip(OP)?, k),
    }
}

/// Queues a real device fault on `be` (the `fault-injection` feature, for tests of an engine's
/// fault handling): an out-of-bounds store, so the next synchronisation fails as after a kernel
/// bug and the device context refuses further work. The CPU has no device to fault: an error.
#[cfg(feature = "fault-injection")]
pub fn inject_device_fault(be: &Backend) -> TensorResult<()> {
    match be {
        Backend::Cpu => Err(TensorError::Backend {
            op: "inject_device_fault",
            what: "the CPU backend has no device to fault".to_string(),
        }),
        Backend::Hip(ops) => hip::fault::inject_device_fault(ops),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cpu_dispatch_matches_the_cpu_ops() {
        let be = Backend::Cpu;
        let x: Vec<f32> = (0..12).map(|i| i as f32 * 0.3 - 1.0).collect();
        let w = [0.5f32, 1.0, 1.5, 2.0];
        let tx = be.from_f32(vec![3, 4], &x).unwrap();
        let mut out = be.zeros(GgmlType::F32, vec![3, 4]).unwrap();
        let weight = Weight::CpuF32 {
            data: &w,
            rows: 1,
            cols: 4,
        };
        rms_norm(&be, &tx, &weight, 1e-6, &mut out).unwrap();
        let mut want = vec![0.0; 12];
        cpu::rms_norm(&x, &w, 1e-6, &mut want);
        assert_eq!(out.to_f32_vec().unwrap(), want);
    }

    #[test]
    fn cpu_kv_append_rounds_to_f16_at_the_row() {
        let be = Backend::Cpu;
        let src = be.from_f32(vec![1, 3], &[1.0, 0.1, -2.5]).unwrap();
        let mut cache = be.zeros(GgmlType::F16, vec![4, 3]).unwrap();
        kv_append(&be, &src, &mut cache, 2).unwrap();
        let got = cache.to_f32_vec().unwrap();
        assert_eq!(&got[..6], &[0.0; 6]);
        assert_eq!(got[6..9], [1.0, half::f16::from_f32(0.1).to_f32(), -2.5]);
        assert!(kv_append(&be, &src, &mut cache, 4).is_err(), "past the end");
    }

    #[test]
    fn shape_mismatches_are_errors_not_panics() {
        let be = Backend::Cpu;
        let mut a = be.from_f32(vec![3], &[1.0; 3]).unwrap();
        let b = be.from_f32(vec![4], &[1.0; 4]).unwrap();
        assert!(add(&be, &mut a, &b).is_err());
        let mut o = be.zeros(GgmlType::F32, vec![4]).unwrap();
        let w = Weight::CpuF32 {
            data: &[1.0; 3],
            rows: 1,
            cols: 3,
        };
        assert!(rms_norm(&be, &b, &w, 1e-5, &mut o).is_err());
        let p = AttentionParams {
            n_q_tokens: 1,
            n_kv_tokens: 2,
            n_heads: 3,
            n_kv_heads: 2,
            head_dim: 1,
            scale: 1.0,
            window: None,
        };
        let k = be.zeros(GgmlType::F16, vec![2, 2]).unwrap();
        let q = be.zeros(GgmlType::F32, vec![3]).unwrap();
        let mut out = be.zeros(GgmlType::F32, vec![3]).unwrap();
        assert!(
            attention(&be, &q, &k, &k, &p, &mut out).is_err(),
            "3 heads over 2"
        );
        assert!(softmax_rows(&be, &mut out, 2).is_err());
    }
}
