//! [`KvCache`]: the keys and values of one sequence, paged: a block table into the model's
//! [`KvPool`] (f16 blocks of [`KV_BLOCK_TOKENS`] tokens holding every layer's keys and values,
//! on the model's backend). Blocks are taken as tokens arrive, so memory grows with the tokens
//! held; sequences that share a prompt prefix share its blocks (reference-counted), and a shared
//! block is copied only when a holder writes into it (copy-on-write of a partly filled block).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rocmforge_tensor::{KV_BLOCK_TOKENS, KvPool};

use crate::error::{ModelError, ModelResult};

/// The model's pool of KV blocks, shared by its caches.
pub(crate) type SharedPool = Arc<Mutex<KvPool>>;

/// Locks the pool (a panic elsewhere while it was held leaves counts that are still valid).
pub(crate) fn lock(pool: &SharedPool) -> MutexGuard<'_, KvPool> {
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keys and values of every layer for the tokens seen so far by one sequence.
///
/// The capacity (`ctx`) is a limit, not an allocation; appending beyond it is a
/// [`ModelError::ContextFull`], never an overwrite of older positions. Dropping the cache gives
/// its blocks back to the pool (those other caches share stay theirs).
#[derive(Debug)]
pub struct KvCache {
    pool: SharedPool,
    ctx: usize,
    len: usize,
    pub(crate) blocks: Vec<u32>,
    block_bytes: usize,
}

impl KvCache {
    /// An empty cache for at most `ctx` tokens whose blocks come from `pool`.
    pub(crate) fn new(pool: &SharedPool, ctx: usize) -> ModelResult<Self> {
        if ctx == 0 {
            return Err(ModelError::InvalidConfig {
                key: "ctx".to_string(),
                reason: "the context must hold at least one token".to_string(),
            });
        }
        let block_bytes = lock(pool).block_bytes();
        if ctx
            .div_ceil(KV_BLOCK_TOKENS)
            .checked_mul(block_bytes)
            .is_none_or(|b| isize::try_from(b).is_err())
        {
            return Err(ModelError::InvalidConfig {
                key: "ctx".to_string(),
                reason: format!("a KV cache of {ctx} tokens overflows the address space"),
            });
        }
        Ok(KvCache {
            pool: Arc::clone(pool),
            ctx,
            len: 0,
            blocks: Vec::new(),
            block_bytes,
        })
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

    /// Bytes of the blocks this cache holds (blocks it shares with other caches included).
    pub fn size_bytes(&self) -> usize {
        self.blocks.len() * self.block_bytes
    }

    /// The block table (pool block ids in position order).
    pub fn blocks(&self) -> &[u32] {
        &self.blocks
    }

    /// Forgets every token and gives the blocks back to the pool.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Forgets the tokens at positions `len..` (blocks no longer needed go back to the pool).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        let keep = self.len.div_ceil(KV_BLOCK_TOKENS);
        if self.blocks.len() > keep {
            let mut pool = lock(&self.pool);
            for id in self.blocks.drain(keep..) {
                // An id this cache holds is in use: release cannot fail.
                let _ = pool.release(id);
            }
        }
    }

    /// Makes this cache hold the first `n` tokens of `src` (same pool) by sharing its blocks:
    /// no key or value is copied (a block `src` has only partly filled is copied later, by the
    /// first of the two that writes into it).
    pub fn share_prefix_from(&mut self, src: &KvCache, n: usize) -> ModelResult<()> {
        if n > src.len || n > self.ctx || !Arc::ptr_eq(&self.pool, &src.pool) {
            return Err(ModelError::InvalidInput(format!(
                "sharing {n} tokens of a cache holding {} with a cache of {} (or of another \
                 model's pool)",
                src.len, self.ctx
            )));
        }
        self.clear();
        let shared = &src.blocks[..n.div_ceil(KV_BLOCK_TOKENS)];
        let mut pool = lock(&self.pool);
        for &id in shared {
            pool.retain(id)?;
        }
        self.blocks = shared.to_vec();
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

    /// Makes the blocks for positions `len..len + n_new` ready to be written: new blocks from
    /// `pool` where the table ends, and a private copy of a block the new tokens land in that
    /// other caches share. Out of blocks is [`rocmforge_tensor::TensorError::KvBlocksExhausted`]
    /// (what was taken stays, for a retry).
    pub(crate) fn reserve(&mut self, pool: &mut KvPool, n_new: usize) -> ModelResult<()> {
        self.check_room(n_new)?;
        if n_new == 0 {
            return Ok(());
        }
        let end = self.len + n_new;
        let first = self.len / KV_BLOCK_TOKENS;
        let what = format!("a sequence growing to {end} tokens");
        for b in first..self.blocks.len().min(end.div_ceil(KV_BLOCK_TOKENS)) {
            let id = self.blocks[b];
            if pool.refcount(id) > 1 {
                let copy = pool.alloc(&what)?;
                pool.copy_block(id, copy)?;
                pool.release(id)?;
                self.blocks[b] = copy;
            }
        }
        while self.blocks.len() * KV_BLOCK_TOKENS < end {
            self.blocks.push(pool.alloc(&what)?);
        }
        Ok(())
    }

    /// Marks `n` appended tokens as held (after every layer has written them).
    pub(crate) fn commit(&mut self, n: usize) -> ModelResult<()> {
        self.check_room(n)?;
        if (self.len + n).div_ceil(KV_BLOCK_TOKENS) > self.blocks.len() {
            return Err(ModelError::InvalidInput(format!(
                "committing {n} tokens past the {} blocks of a cache",
                self.blocks.len()
            )));
        }
        self.len += n;
        Ok(())
    }

    /// The keys and values of `layer` for the tokens held, as f32 (a copy; for tests and
    /// inspection).
    pub fn layer_to_f32(&self, layer: usize) -> ModelResult<(Vec<f32>, Vec<f32>)> {
        let pool = lock(&self.pool);
        if layer >= pool.n_layers() {
            return Err(ModelError::InvalidInput(format!(
                "KV cache has no layer {layer}"
            )));
        }
        Ok((
            pool.to_f32(&self.blocks, layer, false, self.len)?,
            pool.to_f32(&self.blocks, layer, true, self.len)?,
        ))
    }
}

impl Drop for KvCache {
    fn drop(&mut self) {
        self.clear();
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
    use rocmforge_tensor::{Backend, BatchKv, KvTableBuffers, SeqKv, ops};

    fn pool(max_blocks: usize) -> SharedPool {
        Arc::new(Mutex::new(
            KvPool::new(&Backend::Cpu, 2, 4, max_blocks).unwrap(),
        ))
    }

    /// Appends `n` tokens of value `x` (keys) and `-x` (values) to every layer.
    fn append(c: &mut KvCache, n: usize, x: f32) {
        let be = Backend::Cpu;
        let shared = Arc::clone(&c.pool);
        let mut p = lock(&shared);
        c.reserve(&mut p, n).unwrap();
        let seq = SeqKv {
            blocks: &c.blocks,
            row: 0,
            n,
            start: c.len,
        };
        let mut t = KvTableBuffers::default();
        let mut kv = BatchKv::new(&be, &mut p, vec![seq], &mut t).unwrap();
        let k = be.from_f32(vec![n, 4], &vec![x; n * 4]).unwrap();
        let v = be.from_f32(vec![n, 4], &vec![-x; n * 4]).unwrap();
        for layer in 0..2 {
            ops::kv_append_batch(&be, layer, &k, &v, &mut kv).unwrap();
        }
        drop(kv);
        drop(p);
        c.commit(n).unwrap();
    }

    #[test]
    fn memory_grows_with_the_tokens_held_and_returns_on_drop() {
        let p = pool(100);
        let mut c = KvCache::new(&p, 1000).unwrap();
        assert_eq!(c.size_bytes(), 0, "nothing taken up front");
        append(&mut c, 3, 1.0);
        assert_eq!(c.blocks().len(), 1);
        append(&mut c, KV_BLOCK_TOKENS, 2.0);
        assert_eq!(c.blocks().len(), 2);
        assert_eq!(c.size_bytes(), 2 * lock(&p).block_bytes());
        let (k, v) = c.layer_to_f32(1).unwrap();
        assert_eq!(k.len(), (3 + KV_BLOCK_TOKENS) * 4);
        assert_eq!(&k[..12], &[1.0; 12]);
        assert_eq!(&v[12..16], &[-2.0; 4]);
        assert!(c.layer_to_f32(5).is_err());
        c.truncate(3);
        assert_eq!(lock(&p).stats().used, 1);
        drop(c);
        assert_eq!(lock(&p).stats().used, 0);
    }

    #[test]
    fn shared_prefixes_share_blocks_and_copy_only_the_partial_one_on_write() {
        let p = pool(100);
        let mut a = KvCache::new(&p, 1000).unwrap();
        append(&mut a, KV_BLOCK_TOKENS * 2 + 5, 1.0);
        assert_eq!(lock(&p).stats().used, 3);
        let mut b = KvCache::new(&p, 1000).unwrap();
        b.share_prefix_from(&a, KV_BLOCK_TOKENS * 2 + 3).unwrap();
        assert_eq!(lock(&p).stats().used, 3, "sharing copies nothing");
        assert_eq!(b.blocks(), a.blocks());
        // b writes into the third block (shared, partly its): b gets a private copy of it.
        append(&mut b, 1, 7.0);
        assert_eq!(lock(&p).stats().used, 4);
        assert_eq!(&b.blocks()[..2], &a.blocks()[..2]);
        assert_ne!(b.blocks()[2], a.blocks()[2]);
        let (ka, _) = a.layer_to_f32(0).unwrap();
        let (kb, _) = b.layer_to_f32(0).unwrap();
        let at = (KV_BLOCK_TOKENS * 2 + 3) * 4;
        assert_eq!(&ka[..at], &kb[..at]);
        assert_eq!(&kb[at..], &[7.0; 4], "b's own token");
        assert_eq!(&ka[at..at + 4], &[1.0; 4], "a's token is untouched");
        // a writes on: its third block is its own again (b let go of it): no copy.
        append(&mut a, 1, 3.0);
        assert_eq!(lock(&p).stats().used, 4);
        drop(a);
        assert_eq!(lock(&p).stats().used, 3, "b keeps the shared blocks");
    }

    #[test]
    fn full_cache_and_no_block_are_errors_not_overwrites() {
        let p = pool(1);
        let mut c = KvCache::new(&p, 3).unwrap();
        append(&mut c, 2, 1.0);
        let err = c.check_room(2).unwrap_err();
        assert!(
            matches!(err, ModelError::ContextFull { ctx: 3, needed: 4 }),
            "{err}"
        );
        assert!(err.to_string().contains("context full"));
        assert!(c.commit(2).is_err());
        assert_eq!(c.len(), 2);
        // A second sequence finds no block: a clear error.
        let mut d = KvCache::new(&p, 100).unwrap();
        let err = d.reserve(&mut lock(&p), 1).unwrap_err();
        assert!(err.to_string().contains("KV cache full"), "{err}");
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.remaining(), 3);
        d.reserve(&mut lock(&p), 1).unwrap();
    }

    #[test]
    fn zero_or_huge_context_is_an_error() {
        let p = pool(1);
        assert!(KvCache::new(&p, 0).is_err());
        assert!(KvCache::new(&p, usize::MAX / 4).is_err());
    }
}
