//! [`GpuModel`]: embedding → blocks → final norm → LM head with the HIP ops.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rocmforge_hip::DeviceBuffer;
use rocmforge_tensor::cpu::{AttentionParams, RopeParams};
use rocmforge_tensor::hip::rope::rope_device_positions;
use rocmforge_tensor::{Backend, DeviceTensor, GgufLoader, LazyTensor, Tensor, Weight, ops};

use super::cache::GpuKvCache;
use super::scratch::Scratch;
use crate::config::ModelConfig;
use crate::error::{ModelError, ModelResult};
use crate::forward::{LogitsFor, rope_params};
use crate::layer_plan::{LayerPlan, QkvPlan};
use crate::plan::ExecutionPlan;

/// A model run on one GPU: weights resident through its [`ExecutionPlan`].
pub struct GpuModel {
    plan: ExecutionPlan,
    backend: Backend,
    rope: RopeParams,
    scratch: Mutex<Option<Scratch>>,
}

impl std::fmt::Debug for GpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuModel")
            .field("backend", &self.backend.name())
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

fn unsupported(what: &str) -> ModelError {
    ModelError::InvalidInput(format!(
        "the GPU forward does not run {what} yet; use the CPU"
    ))
}

/// Checks that the GPU forward can run every block of `plan`.
fn check_supported(plan: &ExecutionPlan) -> ModelResult<()> {
    let c = &plan.config;
    if c.head_dim_v != c.head_dim {
        return Err(unsupported("value heads wider than key heads"));
    }
    for l in &plan.layers {
        match &l.qkv {
            QkvPlan::Fused { .. } => return Err(unsupported("a fused qkv projection")),
            QkvPlan::Separate {
                q_bias,
                k_bias,
                v_bias,
                ..
            } => {
                if q_bias.is_some() || k_bias.is_some() || v_bias.is_some() {
                    return Err(unsupported("q/k/v biases (qwen2)"));
                }
            }
        }
        if l.mlp_gate.is_none() {
            return Err(unsupported("a fused gate/up projection"));
        }
    }
    Ok(())
}

impl GpuModel {
    /// Maps the model at `path`, plans it on GPU `device_index` and uploads every weight.
    pub fn open(path: impl AsRef<Path>, device_index: usize) -> ModelResult<Self> {
        let backend = Backend::hip(device_index)?;
        let device = backend.device().cloned();
        let loader = Arc::new(GgufLoader::open(path, device)?);
        Self::new(ExecutionPlan::new(loader)?, backend)
    }

    /// A model over `plan` (whose loader uploads to `backend`'s device); preloads it all.
    pub fn new(plan: ExecutionPlan, backend: Backend) -> ModelResult<Self> {
        if backend.device().is_none() {
            return Err(ModelError::InvalidInput(
                "GpuModel needs a HIP backend".to_string(),
            ));
        }
        check_supported(&plan)?;
        plan.preload_all()
            .map_err(rocmforge_tensor::TensorError::Hip)?;
        let rope = rope_params(&plan.config);
        Ok(GpuModel {
            plan,
            backend,
            rope,
            scratch: Mutex::new(None),
        })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.plan.config
    }

    /// The execution plan (weights and loader).
    pub fn plan(&self) -> &ExecutionPlan {
        &self.plan
    }

    /// The backend the ops run on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// A fresh device KV cache for `ctx` tokens.
    pub fn new_cache(&self, ctx: usize) -> ModelResult<GpuKvCache> {
        GpuKvCache::new(&self.backend, &self.plan.config, ctx)
    }

    fn w(&self, t: &LazyTensor) -> ModelResult<Arc<DeviceTensor>> {
        self.plan
            .weight(t)
            .map_err(|e| ModelError::Tensor(rocmforge_tensor::TensorError::Hip(e)))
    }

    /// Runs `tokens` at positions `start_pos..` (= `cache.len()`), appends their keys and
    /// values to `cache`, and returns `[n][vocab]` logits for the positions `which` selects.
    pub fn forward(
        &self,
        cache: &mut GpuKvCache,
        tokens: &[u32],
        start_pos: usize,
        which: LogitsFor,
    ) -> ModelResult<Vec<f32>> {
        let n = tokens.len();
        if n == 0 {
            return Err(ModelError::InvalidInput("no tokens to run".to_string()));
        }
        if start_pos != cache.len() {
            return Err(ModelError::InvalidInput(format!(
                "start position {start_pos} but the KV cache holds {} tokens",
                cache.len()
            )));
        }
        cache.check_room(n)?;
        let first_out = match which {
            LogitsFor::Last => n - 1,
            LogitsFor::All => 0,
            LogitsFor::From(i) if i < n => i,
            LogitsFor::From(i) => {
                return Err(ModelError::InvalidInput(format!(
                    "logits asked from batch index {i} of a {n}-token batch"
                )));
            }
        };
        let span = if n == 1 {
            tracing::debug_span!("gpu_decode", tokens = n, pos = start_pos)
        } else {
            tracing::debug_span!("gpu_prefill", tokens = n, pos = start_pos)
        };
        let _entered = span.enter();
        let positions = match self.plan.position_handler() {
            Some(h) => h.position_ids(start_pos, n)?,
            None => (start_pos..start_pos + n)
                .map(|p| u32::try_from(p).unwrap_or(u32::MAX))
                .collect(),
        };

        let mut slot = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|s| s.n != n) {
            *slot = None; // free the old set before allocating the new one
            *slot = Some(Scratch::new(&self.backend, &self.plan.config, n)?);
        }
        let Some(s) = slot.as_mut() else {
            return Err(ModelError::InvalidInput(
                "scratch buffers missing".to_string(),
            ));
        };
        let be = &self.backend;
        let c = &self.plan.config;
        s.positions
            .copy_from_host(&positions)
            .map_err(rocmforge_tensor::TensorError::Hip)?;
        let emb = self
            .plan
            .embedding()
            .map_err(rocmforge_tensor::TensorError::Hip)?;
        ops::embedding(be, &Weight::Hip(&emb), tokens, &mut s.x)?;
        for (il, layer) in self.plan.layers.iter().enumerate() {
            self.attention_block(il, layer, &positions, cache, s)?;
            self.mlp_block(layer, s)?;
        }
        cache.commit(n)?;

        let norm = self.w(&self.plan.output_norm)?;
        ops::rms_norm(be, &s.x, &Weight::Hip(&norm), c.rms_eps, &mut s.normed)?;
        let head = self
            .plan
            .lm_head()
            .map_err(rocmforge_tensor::TensorError::Hip)?;
        ops::matmul(be, &Weight::Hip(&head), &s.normed, n, &mut s.logits)?;
        self.backend.synchronize()?;
        let all = s.logits.to_f32_vec()?;
        Ok(all[first_out * c.vocab_size..].to_vec())
    }

    /// `t = rms_norm(t) * w` in place, through `tmp` (rows of `w`'s length).
    fn norm_in_place(&self, t: &mut Tensor, tmp: &mut Tensor, w: &LazyTensor) -> ModelResult<()> {
        let w = self.w(w)?;
        ops::rms_norm(
            &self.backend,
            t,
            &Weight::Hip(&w),
            self.plan.config.rms_eps,
            tmp,
        )?;
        std::mem::swap(t, tmp);
        Ok(())
    }

    /// RoPE on `x` with the batch's positions already on the device (no host copy per launch).
    fn rope_in_place(
        &self,
        x: &mut Tensor,
        n_heads: usize,
        positions: &DeviceBuffer<u32>,
        n: usize,
    ) -> ModelResult<()> {
        let Backend::Hip(hip_ops) = &self.backend else {
            return Err(ModelError::InvalidInput(
                "GpuModel needs a HIP backend".to_string(),
            ));
        };
        let c = &self.plan.config;
        rope_device_positions(
            hip_ops,
            x.hip_mut("rope")?,
            n,
            n_heads,
            c.head_dim,
            positions,
            &self.rope,
        )?;
        Ok(())
    }

    fn attention_block(
        &self,
        il: usize,
        l: &LayerPlan,
        positions: &[u32],
        cache: &mut GpuKvCache,
        s: &mut Scratch,
    ) -> ModelResult<()> {
        let (be, c, n) = (&self.backend, &self.plan.config, positions.len());
        let norm1 = self.w(&l.norm1)?;
        ops::rms_norm(be, &s.x, &Weight::Hip(&norm1), c.rms_eps, &mut s.normed)?;
        let QkvPlan::Separate { q, k, v, .. } = &l.qkv else {
            return Err(unsupported("a fused qkv projection"));
        };
        for (w, out) in [(q, &mut s.q), (k, &mut s.k), (v, &mut s.v)] {
            let w = self.w(w)?;
            ops::matmul(be, &Weight::Hip(&w), &s.normed, n, out)?;
        }
        if let (Some(qn), Some(kn)) = (&l.q_norm, &l.k_norm) {
            self.norm_in_place(&mut s.q, &mut s.q_tmp, qn)?;
            self.norm_in_place(&mut s.k, &mut s.k_tmp, kn)?;
        }
        self.rope_in_place(&mut s.q, c.n_heads, &s.positions, n)?;
        self.rope_in_place(&mut s.k, c.n_kv_heads, &s.positions, n)?;
        let start = cache.len();
        ops::kv_append(be, &s.k, &mut cache.k[il], start)?;
        ops::kv_append(be, &s.v, &mut cache.v[il], start)?;
        let params = AttentionParams {
            n_q_tokens: n,
            n_kv_tokens: start + n,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
        };
        ops::attention(be, &s.q, &cache.k[il], &cache.v[il], &params, &mut s.attn)?;
        let o = self.w(&l.o_proj)?;
        ops::matmul(be, &Weight::Hip(&o), &s.attn, n, &mut s.proj)?;
        if let Some(post) = &l.post_attn_norm {
            self.norm_in_place(&mut s.proj, &mut s.proj_tmp, post)?;
        }
        ops::add(be, &mut s.x, &s.proj)?;
        Ok(())
    }

    fn mlp_block(&self, l: &LayerPlan, s: &mut Scratch) -> ModelResult<()> {
        let (be, c, n) = (&self.backend, &self.plan.config, s.n);
        let norm2 = self.w(&l.norm2)?;
        ops::rms_norm(be, &s.x, &Weight::Hip(&norm2), c.rms_eps, &mut s.normed)?;
        let Some(gate) = &l.mlp_gate else {
            return Err(unsupported("a fused gate/up projection"));
        };
        let (gate, up) = (self.w(gate)?, self.w(&l.mlp_up)?);
        ops::matmul(be, &Weight::Hip(&gate), &s.normed, n, &mut s.gate)?;
        ops::matmul(be, &Weight::Hip(&up), &s.normed, n, &mut s.up)?;
        ops::silu_mul(be, &s.gate, &s.up, &mut s.hidden)?;
        let down = self.w(&l.mlp_down)?;
        ops::matmul(be, &Weight::Hip(&down), &s.hidden, n, &mut s.proj)?;
        if let Some(post) = &l.post_ffn_norm {
            self.norm_in_place(&mut s.proj, &mut s.proj_tmp, post)?;
        }
        ops::add(be, &mut s.x, &s.proj)?;
        Ok(())
    }
}
