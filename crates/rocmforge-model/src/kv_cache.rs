//! The key/value cache of one sequence: f16, token-major `[pos][kv_head][head_dim]` per layer.

use half::f16;

use crate::config::ModelConfig;
use crate::error::{ModelError, ModelResult};

/// Keys and values of every layer for the tokens seen so far by one sequence.
///
/// The capacity (`ctx`) is fixed at creation; appending beyond it is a
/// [`ModelError::ContextFull`], never an overwrite of older positions.
#[derive(Debug, Clone)]
pub struct KvCache {
    ctx: usize,
    len: usize,
    k_dim: usize,
    v_dim: usize,
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
}

fn checked_len(ctx: usize, dim: usize) -> ModelResult<usize> {
    ctx.checked_mul(dim)
        .ok_or_else(|| ModelError::InvalidConfig {
            key: "ctx".to_string(),
            reason: format!("a KV cache of {ctx} tokens x {dim} values overflows"),
        })
}

impl KvCache {
    /// A cache for `ctx` tokens of a model with `config`.
    pub fn new(config: &ModelConfig, ctx: usize) -> ModelResult<Self> {
        if ctx == 0 {
            return Err(ModelError::InvalidConfig {
                key: "ctx".to_string(),
                reason: "the context must hold at least one token".to_string(),
            });
        }
        let k_len = checked_len(ctx, config.k_dim())?;
        let v_len = checked_len(ctx, config.v_dim())?;
        let per_layer = k_len
            .checked_add(v_len)
            .and_then(|n| n.checked_mul(config.n_layers))
            .and_then(|n| n.checked_mul(2));
        if per_layer.is_none() {
            return Err(ModelError::InvalidConfig {
                key: "ctx".to_string(),
                reason: format!("a KV cache of {ctx} tokens overflows the address space"),
            });
        }
        Ok(Self {
            ctx,
            len: 0,
            k_dim: config.k_dim(),
            v_dim: config.v_dim(),
            k: (0..config.n_layers)
                .map(|_| vec![f16::ZERO; k_len])
                .collect(),
            v: (0..config.n_layers)
                .map(|_| vec![f16::ZERO; v_len])
                .collect(),
        })
    }

    /// Capacity in tokens.
    pub fn capacity(&self) -> usize {
        self.ctx
    }

    /// Tokens stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tokens that still fit.
    pub fn remaining(&self) -> usize {
        self.ctx - self.len
    }

    /// Bytes held by the keys and values.
    pub fn size_bytes(&self) -> usize {
        (self.k.len() * self.ctx * (self.k_dim + self.v_dim)) * std::mem::size_of::<f16>()
    }

    /// Forgets every stored token (the memory is kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Forgets the tokens at positions `len..`.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Errors unless `n_new` more tokens fit.
    pub fn check_room(&self, n_new: usize) -> ModelResult<()> {
        match self.len.checked_add(n_new) {
            Some(needed) if needed <= self.ctx => Ok(()),
            needed => Err(ModelError::ContextFull {
                ctx: self.ctx,
                needed: needed.unwrap_or(usize::MAX),
            }),
        }
    }

    /// Stores the keys `k: [n][k_dim]` and values `v: [n][v_dim]` of the `n` tokens
    /// following the stored ones in `layer`. The new tokens count as stored once
    /// [`commit`](Self::commit) is called (after every layer has written them).
    pub fn write(&mut self, layer: usize, k: &[f32], v: &[f32]) -> ModelResult<()> {
        let n = k.len() / self.k_dim.max(1);
        if k.len() != n * self.k_dim || v.len() != n * self.v_dim {
            return Err(ModelError::InvalidInput(format!(
                "KV write of {} keys / {} values is not {n} tokens of {} / {}",
                k.len(),
                v.len(),
                self.k_dim,
                self.v_dim
            )));
        }
        self.check_room(n)?;
        let (Some(kl), Some(vl)) = (self.k.get_mut(layer), self.v.get_mut(layer)) else {
            return Err(ModelError::InvalidInput(format!(
                "KV cache has no layer {layer}"
            )));
        };
        let ks = self.len * self.k_dim;
        for (dst, &src) in kl[ks..ks + k.len()].iter_mut().zip(k) {
            *dst = f16::from_f32(src);
        }
        let vs = self.len * self.v_dim;
        for (dst, &src) in vl[vs..vs + v.len()].iter_mut().zip(v) {
            *dst = f16::from_f32(src);
        }
        Ok(())
    }

    /// Marks `n` written tokens as stored.
    pub fn commit(&mut self, n: usize) -> ModelResult<()> {
        self.check_room(n)?;
        self.len += n;
        Ok(())
    }

    /// Keys and values of `layer` for the first `n_tokens` positions.
    pub fn layer(&self, layer: usize, n_tokens: usize) -> Option<(&[f16], &[f16])> {
        if n_tokens > self.ctx {
            return None;
        }
        let k = self.k.get(layer)?.get(..n_tokens * self.k_dim)?;
        let v = self.v.get(layer)?.get(..n_tokens * self.v_dim)?;
        Some((k, v))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::arch::Architecture;
    use crate::config::RopeScaling;

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
        }
    }

    #[test]
    fn write_commit_read_back_in_f16() {
        let mut c = KvCache::new(&tiny(), 3).unwrap();
        let k = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let v = [0.5; 8];
        for layer in 0..2 {
            c.write(layer, &k, &v).unwrap();
        }
        c.commit(2).unwrap();
        assert_eq!(c.len(), 2);
        let (ks, vs) = c.layer(1, 2).unwrap();
        let back: Vec<f32> = ks.iter().map(|x| x.to_f32()).collect();
        assert_eq!(back, k);
        assert!(vs.iter().all(|x| x.to_f32() == 0.5));
    }

    #[test]
    fn full_cache_is_an_error_not_an_overwrite() {
        let mut c = KvCache::new(&tiny(), 3).unwrap();
        c.write(0, &[0.0; 8], &[0.0; 8]).unwrap();
        c.commit(2).unwrap();
        let err = c.write(0, &[1.0; 8], &[1.0; 8]).unwrap_err();
        assert!(
            matches!(err, ModelError::ContextFull { ctx: 3, needed: 4 }),
            "{err}"
        );
        assert!(err.to_string().contains("context full"));
        let (ks, _) = c.layer(0, 2).unwrap();
        assert!(ks.iter().all(|x| x.to_f32() == 0.0));
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.remaining(), 3);
    }

    #[test]
    fn zero_context_and_bad_layer_are_errors() {
        assert!(KvCache::new(&tiny(), 0).is_err());
        let mut c = KvCache::new(&tiny(), 2).unwrap();
        assert!(c.write(5, &[0.0; 4], &[0.0; 4]).is_err());
        assert!(c.write(0, &[0.0; 3], &[0.0; 4]).is_err());
    }
}
