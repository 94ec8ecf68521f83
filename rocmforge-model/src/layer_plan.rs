//! [`LayerPlan`]: the weights of one transformer block as lazy tensors.
//!
//! Nothing is read or uploaded when a plan is built: each weight is a
//! [`LazyTensor::Unloaded`] taken from the file's tensor index, loaded through the
//! plan's loader on first use (or by `preload_*`).

use std::sync::Arc;

use rocmforge_gguf::GgufFile;
use rocmforge_tensor::LazyTensor;
use rocmforge_tensor::device_tensor::shape_from_gguf_dims;

use crate::config::ModelConfig;
use crate::error::{ModelError, ModelResult};

/// The q/k/v projections of a block: three matrices or one fused `attn_qkv`.
#[derive(Debug, Clone)]
pub enum QkvPlan {
    /// `attn_q`, `attn_k`, `attn_v` with their optional biases.
    Separate {
        /// `attn_q.weight`.
        q: Arc<LazyTensor>,
        /// `attn_k.weight`.
        k: Arc<LazyTensor>,
        /// `attn_v.weight`.
        v: Arc<LazyTensor>,
        /// `attn_q.bias` (qwen2).
        q_bias: Option<Arc<LazyTensor>>,
        /// `attn_k.bias` (qwen2).
        k_bias: Option<Arc<LazyTensor>>,
        /// `attn_v.bias` (qwen2).
        v_bias: Option<Arc<LazyTensor>>,
    },
    /// `attn_qkv.weight` with its optional bias.
    Fused {
        /// The fused projection.
        qkv: Arc<LazyTensor>,
        /// `attn_qkv.bias`.
        bias: Option<Arc<LazyTensor>>,
    },
}

/// Every weight of one transformer block, unloaded until first use.
#[derive(Debug, Clone)]
pub struct LayerPlan {
    /// Index of the block (`blk.<index>.*`).
    pub index: usize,
    /// q/k/v projections.
    pub qkv: QkvPlan,
    /// `attn_output.weight`.
    pub o_proj: Arc<LazyTensor>,
    /// `ffn_gate.weight`; `None` when `mlp_up` holds gate and up fused (GLM-4). In a
    /// mixture-of-experts block `ffn_gate_exps.weight` (3-D, one slab of rows per expert), as
    /// `mlp_up` and `mlp_down` are `ffn_up_exps` and `ffn_down_exps`.
    pub mlp_gate: Option<Arc<LazyTensor>>,
    /// `ffn_up.weight` (`ffn_up_exps.weight` in a MoE block).
    pub mlp_up: Arc<LazyTensor>,
    /// `ffn_down.weight` (`ffn_down_exps.weight` in a MoE block).
    pub mlp_down: Arc<LazyTensor>,
    /// `ffn_gate_inp.weight`: the router of a mixture-of-experts block.
    pub moe_router: Option<Arc<LazyTensor>>,
    /// `attn_norm.weight` (before attention).
    pub norm1: Arc<LazyTensor>,
    /// `ffn_norm.weight` (before the MLP).
    pub norm2: Arc<LazyTensor>,
    /// `attn_q_norm.weight` (qwen3).
    pub q_norm: Option<Arc<LazyTensor>>,
    /// `attn_k_norm.weight` (qwen3).
    pub k_norm: Option<Arc<LazyTensor>>,
    /// `post_attention_norm.weight` (GLM-4).
    pub post_attn_norm: Option<Arc<LazyTensor>>,
    /// `post_ffw_norm.weight` (GLM-4).
    pub post_ffn_norm: Option<Arc<LazyTensor>>,
    /// `attn_output.bias` (gpt-oss).
    pub o_bias: Option<Arc<LazyTensor>>,
    /// `attn_sinks.weight`: one sink logit per query head (gpt-oss).
    pub attn_sinks: Option<Arc<LazyTensor>>,
    /// The router's and the experts' biases (gpt-oss).
    pub moe_bias: Option<MoeBiasPlan>,
}

/// gpt-oss's mixture-of-experts biases.
#[derive(Debug, Clone)]
pub struct MoeBiasPlan {
    /// `ffn_gate_inp.bias` (`[n_expert]`).
    pub router: Arc<LazyTensor>,
    /// `ffn_gate_exps.bias` (`[n_expert][n_ff_exp]`).
    pub gate: Arc<LazyTensor>,
    /// `ffn_up_exps.bias` (`[n_expert][n_ff_exp]`).
    pub up: Arc<LazyTensor>,
    /// `ffn_down_exps.bias` (`[n_expert][n_embd]`).
    pub down: Arc<LazyTensor>,
}

/// An `Unloaded` lazy tensor for `name` from the file's index.
pub(crate) fn unloaded(file: &GgufFile, name: &str) -> ModelResult<Arc<LazyTensor>> {
    let info = file.tensor(name).ok_or_else(|| ModelError::MissingTensor {
        name: name.to_string(),
    })?;
    Ok(Arc::new(LazyTensor::Unloaded {
        name: info.name.clone(),
        offset: info.offset,
        size: info.size,
        shape: shape_from_gguf_dims(&info.dims)?,
        tensor_type: info.ty,
    }))
}

fn optional(file: &GgufFile, name: &str) -> ModelResult<Option<Arc<LazyTensor>>> {
    if file.tensor(name).is_none() {
        return Ok(None);
    }
    unloaded(file, name).map(Some)
}

impl LayerPlan {
    /// The plan of block `index` of the model in `file`.
    pub fn from_file(file: &GgufFile, config: &ModelConfig, index: usize) -> ModelResult<Self> {
        let n = |s: &str| format!("blk.{index}.{s}");
        if config.arch == crate::arch::Architecture::Mistral3 {
            // What llama.cpp's mistral3 also takes and this forward does not: refused by name.
            for t in [
                "attn_output.bias",
                "ffn_gate.bias",
                "ffn_up.bias",
                "ffn_down.bias",
                "ffn_gate_inp.weight",
            ] {
                if file.tensor(&n(t)).is_some() {
                    return Err(ModelError::InvalidConfig {
                        key: n(t),
                        reason: "mistral3 with this tensor (output/MLP biases or experts) is not \
                                 supported yet"
                            .to_string(),
                    });
                }
            }
        }
        let qkv = if file.tensor(&n("attn_qkv.weight")).is_some() {
            QkvPlan::Fused {
                qkv: unloaded(file, &n("attn_qkv.weight"))?,
                bias: optional(file, &n("attn_qkv.bias"))?,
            }
        } else {
            QkvPlan::Separate {
                q: unloaded(file, &n("attn_q.weight"))?,
                k: unloaded(file, &n("attn_k.weight"))?,
                v: unloaded(file, &n("attn_v.weight"))?,
                q_bias: optional(file, &n("attn_q.bias"))?,
                k_bias: optional(file, &n("attn_k.bias"))?,
                v_bias: optional(file, &n("attn_v.bias"))?,
            }
        };
        let (q_norm, k_norm) = if config.arch.has_qk_norm() {
            (
                Some(unloaded(file, &n("attn_q_norm.weight"))?),
                Some(unloaded(file, &n("attn_k_norm.weight"))?),
            )
        } else {
            (None, None)
        };
        let (post_attn_norm, post_ffn_norm) = if config.arch.has_post_norms() {
            (
                Some(unloaded(file, &n("post_attention_norm.weight"))?),
                Some(unloaded(file, &n("post_ffw_norm.weight"))?),
            )
        } else {
            (None, None)
        };
        let (mlp_gate, mlp_up, mlp_down, moe_router) = if config.arch.is_moe() {
            (
                Some(unloaded(file, &n("ffn_gate_exps.weight"))?),
                unloaded(file, &n("ffn_up_exps.weight"))?,
                unloaded(file, &n("ffn_down_exps.weight"))?,
                Some(unloaded(file, &n("ffn_gate_inp.weight"))?),
            )
        } else {
            (
                optional(file, &n("ffn_gate.weight"))?,
                unloaded(file, &n("ffn_up.weight"))?,
                unloaded(file, &n("ffn_down.weight"))?,
                None,
            )
        };
        let gpt_oss = config.arch.is_gpt_oss();
        let moe_bias = if gpt_oss {
            Some(MoeBiasPlan {
                router: unloaded(file, &n("ffn_gate_inp.bias"))?,
                gate: unloaded(file, &n("ffn_gate_exps.bias"))?,
                up: unloaded(file, &n("ffn_up_exps.bias"))?,
                down: unloaded(file, &n("ffn_down_exps.bias"))?,
            })
        } else {
            None
        };
        // gpt-oss names the norm before its experts `post_attention_norm` (it is not applied to
        // the attention's output).
        let norm2 = if gpt_oss {
            "post_attention_norm.weight"
        } else {
            "ffn_norm.weight"
        };
        Ok(LayerPlan {
            index,
            qkv,
            o_proj: unloaded(file, &n("attn_output.weight"))?,
            mlp_gate,
            mlp_up,
            mlp_down,
            moe_router,
            norm1: unloaded(file, &n("attn_norm.weight"))?,
            norm2: unloaded(file, &n(norm2))?,
            q_norm,
            k_norm,
            post_attn_norm,
            post_ffn_norm,
            o_bias: if gpt_oss {
                Some(unloaded(file, &n("attn_output.bias"))?)
            } else {
                None
            },
            attn_sinks: if gpt_oss {
                Some(unloaded(file, &n("attn_sinks.weight"))?)
            } else {
                None
            },
            moe_bias,
        })
    }

    /// Every weight of the block (the optional ones where present), in a fixed order.
    pub fn tensors(&self) -> Vec<&Arc<LazyTensor>> {
        let mut out = Vec::with_capacity(16);
        match &self.qkv {
            QkvPlan::Separate {
                q,
                k,
                v,
                q_bias,
                k_bias,
                v_bias,
            } => {
                out.extend([q, k, v]);
                out.extend([q_bias, k_bias, v_bias].into_iter().flatten());
            }
            QkvPlan::Fused { qkv, bias } => {
                out.push(qkv);
                out.extend(bias);
            }
        }
        out.push(&self.o_proj);
        out.extend(&self.mlp_gate);
        out.extend([&self.mlp_up, &self.mlp_down, &self.norm1, &self.norm2]);
        out.extend(&self.moe_router);
        out.extend(
            [
                &self.q_norm,
                &self.k_norm,
                &self.post_attn_norm,
                &self.post_ffn_norm,
            ]
            .into_iter()
            .flatten(),
        );
        out.extend([&self.o_bias, &self.attn_sinks].into_iter().flatten());
        if let Some(b) = &self.moe_bias {
            out.extend([&b.router, &b.gate, &b.up, &b.down]);
        }
        out
    }
}
