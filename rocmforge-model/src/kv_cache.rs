//! [`KvCache`]: the keys and values of one sequence, f16, token-major `[pos][kv_head][head_dim]`
//! per layer, on the model's backend (host memory on the CPU, device memory on a GPU).

use rocmforge_gguf::GgmlType;
use rocmforge_tensor::{Backend, Tensor};

use crate::config::ModelConfig;
use crate::error::{ModelError, ModelResult};

/// Keys and values of every layer for the tokens seen so far by one sequence.
///
/// The capacity (`ctx`) is fixed at creation; appending beyond it is a
/// [`ModelError::ContextFull`], never an overwrite of older positions.
#[derive(Debug)]
pub struct KvCache {
    ctx: usize,
    len: usize,
    pub(crate) k: Vec<Tensor>,
    pub(crate) v: Vec<Tensor>,
}

impl KvCache {
    /// A zeroed cache for `ctx` tokens of a model with `config`, on `backend`.
    pub fn new(backend: &Backend, config: &ModelConfig, ctx: usize) -> ModelResult<Self> {
        if ctx == 0 {
            return Err(ModelError::InvalidConfig {
                key: "ctx".to_string(),
                reason: "the context must hold at least one token".to_string(),
            });
        }
        let total = ctx
            .checked_mul(config.k_dim() + config.v_dim())
            .and_then(|n| n.checked_mul(config.n_layers))
            .and_then(|n| n.checked_mul(2))
            .filter(|&b| isize::try_from(b).is_ok());
        if total.is_none() {
            return Err(ModelError::InvalidConfig {
                key: "ctx".to_string(),
                reason: format!("a KV cache of {ctx} tokens overflows the address space"),
            });
        }
        let mut k = Vec::with_capacity(config.n_layers);
        let mut v = Vec::with_capacity(config.n_layers);
        for _ in 0..config.n_layers {
            k.push(backend.zeros(GgmlType::F16, vec![ctx, config.k_dim()])?);
            v.push(backend.zeros(GgmlType::F16, vec![ctx, config.v_dim()])?);
        }
        Ok(KvCache { ctx, len: 0, k, v })
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

    /// Tokens that still fit.
    pub fn remaining(&self) -> usize {
        self.ctx - self.len
    }

    /// Bytes of memory the keys and values take.
    pub fn size_bytes(&self) -> usize {
        self.k
            .iter()
            .chain(&self.v)
            .map(|t| t.n_elements() * 2)
            .sum()
    }

    /// Forgets every token (the memory is kept and overwritten by later appends).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Forgets the tokens at positions `len..`.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Makes this cache hold the first `n` tokens of `src` (same model), copying their keys and
    /// values on `backend` (queued on a GPU, in order with the forward that follows).
    pub fn copy_prefix_from(
        &mut self,
        backend: &Backend,
        src: &KvCache,
        n: usize,
    ) -> ModelResult<()> {
        if n > src.len || n > self.ctx || src.k.len() != self.k.len() {
            return Err(ModelError::InvalidInput(format!(
                "copying {n} tokens of a {}-layer cache holding {} into a {}-layer cache of {}",
                src.k.len(),
                src.len,
                self.k.len(),
                self.ctx
            )));
        }
        for (s, d) in src
            .k
            .iter()
            .zip(&mut self.k)
            .chain(src.v.iter().zip(&mut self.v))
        {
            rocmforge_tensor::ops::copy_rows(backend, s, d, n)?;
        }
        self.len = n;
        Ok(())
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

    /// Marks `n` appended tokens as held (after every layer has written them).
    pub(crate) fn commit(&mut self, n: usize) -> ModelResult<()> {
        self.check_room(n)?;
        self.len += n;
        Ok(())
    }

    /// The keys and values of `layer`, as f32 (a copy; for tests and inspection).
    pub fn layer_to_f32(&self, layer: usize) -> ModelResult<(Vec<f32>, Vec<f32>)> {
        match (self.k.get(layer), self.v.get(layer)) {
            (Some(k), Some(v)) => Ok((k.to_f32_vec()?, v.to_f32_vec()?)),
            _ => Err(ModelError::InvalidInput(format!(
                "KV cache has no layer {layer}"
            ))),
        }
    }
}

impl crate::generate::SequenceCache for KvCache {
    fn len(&self) -> usize {
        KvCache::len(self)
    }
    fn remaining(&self) -> usize {
        KvCache::remaining(self)
    }
    fn size_bytes(&self) -> usize {
        KvCache::size_bytes(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::arch::Architecture;
    use crate::config::RopeScaling;
    use rocmforge_tensor::ops;

    fn tiny() -> ModelConfig {
        ModelConfig {
            arch: Architecture::Llama,
            n_layers: 2,
            n_embd: 8,
            n_ff: 16,
            n_heads: 2,
            n_kv_heads: 1,
            head_dim: 4,
            head_dim_v: 4,
            n_rot: 4,
            rope_freq_base: 10_000.0,
            rope_scaling: RopeScaling::None,
            rms_eps: 1e-5,
            context_length: 16,
            vocab_size: 10,
            moe: None,
            swa: None,
            attn_scale: 0.5,
            embd_scale: None,
            final_logit_softcap: None,
            attn_temperature: None,
            long_rope: None,
            rope_attn_factor: 1.0,
        }
    }

    #[test]
    fn append_commit_read_back_in_f16() {
        let be = Backend::Cpu;
        let mut c = KvCache::new(&be, &tiny(), 3).unwrap();
        let k = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let src = be.from_f32(vec![2, 4], &k).unwrap();
        for layer in 0..2 {
            let at = c.len();
            ops::kv_append(&be, &src, &mut c.k[layer], at).unwrap();
        }
        c.commit(2).unwrap();
        assert_eq!(c.len(), 2);
        let (ks, vs) = c.layer_to_f32(1).unwrap();
        assert_eq!(&ks[..8], k);
        assert_eq!(&ks[8..], [0.0; 4]);
        assert!(vs.iter().all(|&x| x == 0.0));
        assert_eq!(c.size_bytes(), 2 * 2 * 3 * 4 * 2);
    }

    #[test]
    fn full_cache_is_an_error_not_an_overwrite() {
        let mut c = KvCache::new(&Backend::Cpu, &tiny(), 3).unwrap();
        c.commit(2).unwrap();
        let err = c.check_room(2).unwrap_err();
        assert!(
            matches!(err, ModelError::ContextFull { ctx: 3, needed: 4 }),
            "{err}"
        );
        assert!(err.to_string().contains("context full"));
        assert!(c.commit(2).is_err());
        assert_eq!(c.len(), 2);
        c.truncate(1);
        assert_eq!(c.len(), 1);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.remaining(), 3);
    }

    #[test]
    fn zero_context_and_bad_layer_are_errors() {
        assert!(KvCache::new(&Backend::Cpu, &tiny(), 0).is_err());
        assert!(KvCache::new(&Backend::Cpu, &tiny(), usize::MAX / 4).is_err());
        let c = KvCache::new(&Backend::Cpu, &tiny(), 2).unwrap();
        assert!(c.layer_to_f32(5).is_err());
    }
}
