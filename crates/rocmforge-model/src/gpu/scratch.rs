//! Activation buffers of one forward call on the device, kept between calls of the same
//! batch size (every decode step reuses one set: no allocation per token).

use rocmforge_gguf::GgmlType;
use rocmforge_hip::DeviceBuffer;
use rocmforge_tensor::{Backend, Tensor, TensorError};

use super::weights::GpuWeights;
use crate::config::ModelConfig;
use crate::error::ModelResult;

/// Device activations for a batch of `n` tokens.
#[derive(Debug)]
pub(crate) struct Scratch {
    pub n: usize,
    /// Position ids of the batch, uploaded once per call and read by every RoPE launch.
    pub positions: DeviceBuffer<u32>,
    pub x: Tensor,
    pub normed: Tensor,
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    pub q_tmp: Tensor,
    pub k_tmp: Tensor,
    pub attn: Tensor,
    pub proj: Tensor,
    pub proj_tmp: Tensor,
    pub gate: Tensor,
    pub up: Tensor,
    pub hidden: Tensor,
    pub logits: Tensor,
    /// Per block, the q/k/v biases repeated over the `n` rows (qwen2); `None` without bias.
    pub bias: Vec<[Option<Tensor>; 3]>,
}

/// `values` repeated `n` times as an `[n][values.len()]` device tensor.
fn replicate(be: &Backend, values: &[f32], n: usize) -> ModelResult<Tensor> {
    let mut rows = Vec::with_capacity(values.len() * n);
    for _ in 0..n {
        rows.extend_from_slice(values);
    }
    Ok(be.from_f32(vec![n, values.len()], &rows)?)
}

impl Scratch {
    /// Bytes of device memory a set for `n` tokens takes (biases aside).
    pub fn bytes(c: &ModelConfig, n: usize) -> usize {
        let per_row = 4 * c.n_embd
            + 2 * c.q_dim()
            + 2 * c.k_dim()
            + c.v_dim()
            + c.n_heads * c.head_dim_v
            + 3 * c.n_ff
            + c.vocab_size;
        n.saturating_mul(per_row).saturating_mul(4)
    }

    pub fn new(be: &Backend, c: &ModelConfig, w: &GpuWeights, n: usize) -> ModelResult<Self> {
        let z = |cols: usize| be.zeros(GgmlType::F32, vec![n, cols]);
        let device = be.device().ok_or(TensorError::NoGpuBackend {
            op: "gpu forward scratch",
        })?;
        Ok(Scratch {
            n,
            positions: device.alloc_zeros::<u32>(n).map_err(TensorError::Hip)?,
            x: z(c.n_embd)?,
            normed: z(c.n_embd)?,
            q: z(c.q_dim())?,
            k: z(c.k_dim())?,
            v: z(c.v_dim())?,
            q_tmp: z(c.q_dim())?,
            k_tmp: z(c.k_dim())?,
            attn: z(c.n_heads * c.head_dim_v)?,
            proj: z(c.n_embd)?,
            proj_tmp: z(c.n_embd)?,
            gate: z(c.n_ff)?,
            up: z(c.n_ff)?,
            hidden: z(c.n_ff)?,
            logits: z(c.vocab_size)?,
            bias: w
                .layers
                .iter()
                .map(|l| {
                    let r = |b: &Option<Vec<f32>>| {
                        b.as_deref().map(|b| replicate(be, b, n)).transpose()
                    };
                    Ok([r(&l.bias[0])?, r(&l.bias[1])?, r(&l.bias[2])?])
                })
                .collect::<ModelResult<Vec<_>>>()?,
        })
    }
}
