//! Per-layer views of the weights, read in place from the GGUF memory map.
//!
//! Matrices stay in their file format (quantized blocks included) and are borrowed
//! from the map; only the small vectors (norm weights, biases) are copied to f32.

use rocmforge_gguf::{GgufFile, TensorInfo, quants};
use rocmforge_tensor::cpu::WeightView;

use crate::arch::Architecture;
use crate::config::ModelConfig;
use crate::error::{ModelError, ModelResult};

/// The q/k/v projections of a layer: three matrices or one fused `attn_qkv`.
#[derive(Debug)]
pub enum QkvWeights<'a> {
    /// `attn_q`, `attn_k`, `attn_v` with their optional biases.
    Separate {
        /// `[n_embd] -> [q_dim]`.
        q: WeightView<'a>,
        /// `[n_embd] -> [k_dim]`.
        k: WeightView<'a>,
        /// `[n_embd] -> [v_dim]`.
        v: WeightView<'a>,
        /// Optional `attn_q.bias`.
        q_bias: Option<Vec<f32>>,
        /// Optional `attn_k.bias`.
        k_bias: Option<Vec<f32>>,
        /// Optional `attn_v.bias`.
        v_bias: Option<Vec<f32>>,
    },
    /// `attn_qkv`: `[n_embd] -> [q_dim + k_dim + v_dim]`, with an optional bias.
    Fused {
        /// The fused matrix.
        qkv: WeightView<'a>,
        /// Optional `attn_qkv.bias`.
        bias: Option<Vec<f32>>,
    },
}

/// The gate and up projections of the MLP: two matrices, or one fused `ffn_up`
/// whose first half of output rows is the gate.
#[derive(Debug)]
pub enum GateUpWeights<'a> {
    /// `ffn_gate` and `ffn_up`, each `[n_embd] -> [n_ff]`.
    Separate {
        /// `ffn_gate`.
        gate: WeightView<'a>,
        /// `ffn_up`.
        up: WeightView<'a>,
    },
    /// `ffn_up`: `[n_embd] -> [2 * n_ff]`, gate rows first.
    Fused(WeightView<'a>),
}

/// Every weight of one transformer block.
#[derive(Debug)]
pub struct LayerWeights<'a> {
    /// `attn_norm`: RMS norm before attention.
    pub attn_norm: Vec<f32>,
    /// q/k/v projections.
    pub qkv: QkvWeights<'a>,
    /// `attn_q_norm`: per-head RMS norm on q (Qwen3).
    pub q_norm: Option<Vec<f32>>,
    /// `attn_k_norm`: per-head RMS norm on k (Qwen3).
    pub k_norm: Option<Vec<f32>>,
    /// `attn_output`: `[q_dim] -> [n_embd]`.
    pub attn_output: WeightView<'a>,
    /// `post_attention_norm`: RMS norm of the attention output (GLM-4).
    pub post_attn_norm: Option<Vec<f32>>,
    /// `ffn_norm`: RMS norm before the MLP.
    pub ffn_norm: Vec<f32>,
    /// Gate and up projections.
    pub gate_up: GateUpWeights<'a>,
    /// `ffn_down`: `[n_ff] -> [n_embd]`.
    pub ffn_down: WeightView<'a>,
    /// `post_ffw_norm`: RMS norm of the MLP output (GLM-4).
    pub post_ffn_norm: Option<Vec<f32>>,
}

/// Every weight of the model.
#[derive(Debug)]
pub struct ModelWeights<'a> {
    /// `token_embd`: `[vocab][n_embd]`.
    pub token_embd: WeightView<'a>,
    /// One entry per block.
    pub layers: Vec<LayerWeights<'a>>,
    /// `output_norm`: final RMS norm.
    pub output_norm: Vec<f32>,
    /// `output` (or `token_embd` when the file has none): `[n_embd] -> [vocab]`.
    pub output: WeightView<'a>,
}

struct Reader<'a> {
    file: &'a GgufFile,
}

fn to_usize(name: &str, v: u64) -> ModelResult<usize> {
    usize::try_from(v).map_err(|_| ModelError::InvalidConfig {
        key: name.to_string(),
        reason: format!("dimension {v} does not fit in usize"),
    })
}

impl<'a> Reader<'a> {
    fn info(&self, name: &str) -> ModelResult<&'a TensorInfo> {
        self.file
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
            })
    }

    fn check_dims(info: &TensorInfo, expected: &[usize]) -> ModelResult<()> {
        let expected: Vec<u64> = expected.iter().map(|&d| d as u64).collect();
        // Trailing 1-dims are equivalent to absent ones.
        let mut found = info.dims.clone();
        while found.len() > expected.len() && found.last() == Some(&1) {
            found.pop();
        }
        if found != expected {
            return Err(ModelError::TensorShape {
                name: info.name.clone(),
                found: info.dims.clone(),
                expected,
            });
        }
        Ok(())
    }

    /// A matrix mapping `cols` inputs to `rows` outputs (GGUF dims `[cols, rows]`).
    fn matrix(&self, name: &str, cols: usize, rows: usize) -> ModelResult<WeightView<'a>> {
        let info = self.info(name)?;
        Self::check_dims(info, &[cols, rows])?;
        Ok(WeightView {
            ty: info.ty,
            data: self.file.tensor_data(info),
            rows: to_usize(name, info.dims[1])?,
            cols: to_usize(name, info.dims[0])?,
        })
    }

    /// A vector of `len` values, converted to f32.
    fn vector(&self, name: &str, len: usize) -> ModelResult<Vec<f32>> {
        let info = self.info(name)?;
        Self::check_dims(info, &[len])?;
        Ok(quants::dequantize_to_vec(
            info.ty,
            self.file.tensor_data(info),
        )?)
    }

    fn opt_vector(&self, name: &str, len: usize) -> ModelResult<Option<Vec<f32>>> {
        if self.file.tensor(name).is_none() {
            return Ok(None);
        }
        self.vector(name, len).map(Some)
    }

    fn has(&self, name: &str) -> bool {
        self.file.tensor(name).is_some()
    }
}

fn layer<'a>(r: &Reader<'a>, c: &ModelConfig, i: usize) -> ModelResult<LayerWeights<'a>> {
    let n = |s: &str| format!("blk.{i}.{s}");
    let (q_dim, k_dim, v_dim) = (c.q_dim(), c.k_dim(), c.v_dim());
    let qkv = if r.has(&n("attn_qkv.weight")) {
        let total = q_dim + k_dim + v_dim;
        QkvWeights::Fused {
            qkv: r.matrix(&n("attn_qkv.weight"), c.n_embd, total)?,
            bias: r.opt_vector(&n("attn_qkv.bias"), total)?,
        }
    } else {
        QkvWeights::Separate {
            q: r.matrix(&n("attn_q.weight"), c.n_embd, q_dim)?,
            k: r.matrix(&n("attn_k.weight"), c.n_embd, k_dim)?,
            v: r.matrix(&n("attn_v.weight"), c.n_embd, v_dim)?,
            q_bias: r.opt_vector(&n("attn_q.bias"), q_dim)?,
            k_bias: r.opt_vector(&n("attn_k.bias"), k_dim)?,
            v_bias: r.opt_vector(&n("attn_v.bias"), v_dim)?,
        }
    };
    let (q_norm, k_norm) = if c.arch.has_qk_norm() {
        (
            Some(r.vector(&n("attn_q_norm.weight"), c.head_dim)?),
            Some(r.vector(&n("attn_k_norm.weight"), c.head_dim)?),
        )
    } else {
        (None, None)
    };
    let (post_attn_norm, post_ffn_norm) = if c.arch.has_post_norms() {
        (
            Some(r.vector(&n("post_attention_norm.weight"), c.n_embd)?),
            Some(r.vector(&n("post_ffw_norm.weight"), c.n_embd)?),
        )
    } else {
        (None, None)
    };
    let gate_up = if c.arch == Architecture::Glm4 && !r.has(&n("ffn_gate.weight")) {
        GateUpWeights::Fused(r.matrix(&n("ffn_up.weight"), c.n_embd, 2 * c.n_ff)?)
    } else {
        GateUpWeights::Separate {
            gate: r.matrix(&n("ffn_gate.weight"), c.n_embd, c.n_ff)?,
            up: r.matrix(&n("ffn_up.weight"), c.n_embd, c.n_ff)?,
        }
    };
    Ok(LayerWeights {
        attn_norm: r.vector(&n("attn_norm.weight"), c.n_embd)?,
        qkv,
        q_norm,
        k_norm,
        attn_output: r.matrix(&n("attn_output.weight"), c.n_heads * c.head_dim_v, c.n_embd)?,
        post_attn_norm,
        ffn_norm: r.vector(&n("ffn_norm.weight"), c.n_embd)?,
        gate_up,
        ffn_down: r.matrix(&n("ffn_down.weight"), c.n_ff, c.n_embd)?,
        post_ffn_norm,
    })
}

impl<'a> ModelWeights<'a> {
    /// Finds and shape-checks every tensor `config` needs in `file`.
    pub fn from_gguf(file: &'a GgufFile, config: &ModelConfig) -> ModelResult<Self> {
        let r = Reader { file };
        let token_embd = r.matrix("token_embd.weight", config.n_embd, config.vocab_size)?;
        let output = if r.has("output.weight") {
            r.matrix("output.weight", config.n_embd, config.vocab_size)?
        } else {
            r.matrix("token_embd.weight", config.n_embd, config.vocab_size)?
        };
        let layers = (0..config.n_layers)
            .map(|i| layer(&r, config, i))
            .collect::<ModelResult<Vec<_>>>()?;
        Ok(Self {
            token_embd,
            layers,
            output_norm: r.vector("output_norm.weight", config.n_embd)?,
            output,
        })
    }
}
