//! [`GpuKvCache`]: keys and values of one sequence in device memory, f16, token-major
//! `[pos][kv_head][head_dim]` per layer (the layout of the CPU [`crate::KvCache`]).

use rocmforge_gguf::GgmlType;
use rocmforge_tensor::{Backend, Tensor};

use crate::config::ModelConfig;
use crate::error::{ModelError, ModelResult};

/// A fixed-capacity f16 KV cache on the device; appending past it is
/// [`ModelError::ContextFull`], never an overwrite.
#[derive(Debug)]
pub struct GpuKvCache {
    ctx: usize,
    len: usize,
    pub(crate) k: Vec<Tensor>,
    pub(crate) v: Vec<Tensor>,
}

impl GpuKvCache {
    /// A zeroed cache for `ctx` tokens of a model with `config`, on `backend`.
    pub fn new(backend: &Backend, config: &ModelConfig, ctx: usize) -> ModelResult<Self> {
        if ctx == 0 {
            return Err(ModelError::InvalidConfig {
                key: "ctx".to_string(),
                reason: "the context must hold at least one token".to_string(),
            });
        }
        let mut k = Vec::with_capacity(config.n_layers);
        let mut v = Vec::with_capacity(config.n_layers);
        for _ in 0..config.n_layers {
            k.push(backend.zeros(GgmlType::F16, vec![ctx, config.k_dim()])?);
            v.push(backend.zeros(GgmlType::F16, vec![ctx, config.v_dim()])?);
        }
        Ok(GpuKvCache { ctx, len: 0, k, v })
    }

    /// Capacity in tokens.
    pub fn capacity(&self) -> usize {
        self.ctx
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every token (the memory is kept and overwritten by later appends).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Tokens that still fit.
    pub fn remaining(&self) -> usize {
        self.ctx - self.len
    }

    /// Bytes of device memory held.
    pub fn size_bytes(&self) -> usize {
        self.k
            .iter()
            .chain(&self.v)
            .map(|t| t.n_elements() * 2)
            .sum()
    }

    /// Fails with [`ModelError::ContextFull`] unless `n_new` more tokens fit.
    pub fn check_room(&self, n_new: usize) -> ModelResult<()> {
        match self.len.checked_add(n_new) {
            Some(end) if end <= self.ctx => Ok(()),
            _ => Err(ModelError::ContextFull {
                ctx: self.ctx,
                needed: self.len.saturating_add(n_new),
            }),
        }
    }

    /// Marks `n` appended tokens as held.
    pub(crate) fn commit(&mut self, n: usize) -> ModelResult<()> {
        self.check_room(n)?;
        self.len += n;
        Ok(())
    }
}

impl crate::generate::SequenceCache for GpuKvCache {
    fn len(&self) -> usize {
        GpuKvCache::len(self)
    }
    fn remaining(&self) -> usize {
        GpuKvCache::remaining(self)
    }
    fn size_bytes(&self) -> usize {
        GpuKvCache::size_bytes(self)
    }
}
