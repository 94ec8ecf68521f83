//! The paged KV cache on the CPU: the pool's block accounting, and attention read through
//! shuffled block tables (one block shared by two sequences) against the contiguous attention
//! op over the same keys and values.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use half::f16;
use rocmforge_tensor::cpu::{AttentionParams, attention_with_sinks};
use rocmforge_tensor::{
    Backend, BatchKv, HeadShape, KV_BLOCK_TOKENS, KvPool, KvTableBuffers, SeqKv, TensorError, ops,
};

/// xorshift: deterministic test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform()).collect()
    }
}

#[test]
fn blocks_are_counted_shared_reused_and_exhaustion_is_an_error() {
    let mut pool = KvPool::new(&Backend::Cpu, 2, 8, 3)
        .unwrap()
        .with_chunk_blocks(2);
    assert_eq!(pool.stats().allocated, 0, "nothing allocated up front");
    let a = pool.alloc("seq a").unwrap();
    let b = pool.alloc("seq a").unwrap();
    assert_eq!(pool.stats().allocated, 2);
    pool.retain(a).unwrap();
    assert_eq!(pool.refcount(a), 2);
    let c = pool.alloc("seq b").unwrap();
    assert_eq!(
        pool.stats().allocated,
        3,
        "a second chunk, capped by the budget"
    );
    let s = pool.stats();
    assert_eq!((s.used, s.free, s.max_blocks), (3, 0, 3));
    assert_eq!(s.block_bytes, 2 * 2 * KV_BLOCK_TOKENS * 8 * 2);
    let err = pool.alloc("request 7").unwrap_err();
    assert!(
        matches!(err, TensorError::KvBlocksExhausted { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("request 7") && msg.contains("3 blocks"),
        "{msg}"
    );
    // A shared block stays until its last holder lets go.
    pool.release(a).unwrap();
    assert!(pool.alloc("x").is_err());
    pool.release(a).unwrap();
    assert_eq!(pool.refcount(a), 0);
    assert_eq!(pool.alloc("y").unwrap(), a, "the freed block is reused");
    assert!(pool.release(99).is_err() && pool.retain(99).is_err());
    pool.release(b).unwrap();
    pool.release(c).unwrap();
    assert!(pool.retain(b).is_err(), "a free block cannot be retained");
}

/// One case: heads, KV heads, head dim, held tokens per sequence, new tokens per sequence.
fn paged_matches_contiguous(
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    seqs: &[(usize, usize)],
    window: Option<usize>,
    sinks: bool,
    rng: &mut Rng,
) {
    let be = Backend::Cpu;
    let width = n_kv_heads * head_dim;
    let layers = 2;
    let mut pool = KvPool::new(&be, layers, width, 1 << 16)
        .unwrap()
        .with_chunk_blocks(3);
    // Tables from a shuffled run of blocks.
    let counts: Vec<usize> = seqs
        .iter()
        .map(|&(h, n)| (h + n).div_ceil(KV_BLOCK_TOKENS))
        .collect();
    let mut ids: Vec<u32> = (0..counts.iter().sum::<usize>())
        .map(|_| pool.alloc("t").unwrap())
        .collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let mut it = ids.into_iter();
    let mut tabs: Vec<Vec<u32>> = counts
        .iter()
        .map(|&n| it.by_ref().take(n).collect())
        .collect();
    // Every token's keys and values, contiguous per sequence and layer: [seq][layer] rows.
    let total: Vec<usize> = seqs.iter().map(|&(h, n)| h + n).collect();
    let mut kc: Vec<Vec<Vec<f32>>> = total
        .iter()
        .map(|&t| (0..layers).map(|_| rng.vec(t * width)).collect())
        .collect();
    let mut vc: Vec<Vec<Vec<f32>>> = total
        .iter()
        .map(|&t| (0..layers).map(|_| rng.vec(t * width)).collect())
        .collect();
    // Sequences 0 and 1 share their first block when both hold a full one: the second's
    // first block's keys and values are then the first's.
    let share = seqs.len() > 1 && seqs[0].0 >= KV_BLOCK_TOKENS && seqs[1].0 >= KV_BLOCK_TOKENS;
    let mut tables = KvTableBuffers::default();
    for held in [true, false] {
        let mut row = 0;
        let mut k_rows = vec![Vec::new(); layers];
        let mut v_rows = vec![Vec::new(); layers];
        let mut parts = Vec::new();
        for (i, &(h, n)) in seqs.iter().enumerate() {
            let (from, count) = if held { (0, h) } else { (h, n) };
            if count == 0 {
                continue;
            }
            for l in 0..layers {
                k_rows[l].extend_from_slice(&kc[i][l][from * width..(from + count) * width]);
                v_rows[l].extend_from_slice(&vc[i][l][from * width..(from + count) * width]);
            }
            parts.push((i, row, count, from));
            row += count;
        }
        if !held && share {
            let shared = tabs[0][0];
            pool.retain(shared).unwrap();
            pool.release(tabs[1][0]).unwrap();
            tabs[1][0] = shared;
            for l in 0..layers {
                for c in [&mut kc, &mut vc] {
                    let first = c[0][l][..KV_BLOCK_TOKENS * width].to_vec();
                    c[1][l][..KV_BLOCK_TOKENS * width].copy_from_slice(&first);
                }
            }
        }
        if row == 0 {
            continue;
        }
        let kv_seqs = parts
            .iter()
            .map(|&(i, row, n, start)| SeqKv {
                blocks: &tabs[i],
                row,
                n,
                start,
            })
            .collect();
        let mut kv = BatchKv::new(&be, &mut pool, kv_seqs, &mut tables).unwrap();
        if held {
            for l in 0..layers {
                let k = be.from_f32(vec![row, width], &k_rows[l]).unwrap();
                let v = be.from_f32(vec![row, width], &v_rows[l]).unwrap();
                ops::kv_append_batch(&be, l, &k, &v, &mut kv).unwrap();
            }
            continue;
        }
        // The new tokens: appended, then attended over (layer 1), against the contiguous op.
        let l = 1;
        let k = be.from_f32(vec![row, width], &k_rows[l]).unwrap();
        let v = be.from_f32(vec![row, width], &v_rows[l]).unwrap();
        ops::kv_append_batch(&be, l, &k, &v, &mut kv).unwrap();
        let qw = n_heads * head_dim;
        let q_all = rng.vec(row * qw);
        let sink_vals = sinks.then(|| rng.vec(n_heads));
        let q = be.from_f32(vec![row, qw], &q_all).unwrap();
        let mut out = be
            .from_f32(vec![row, qw], &vec![f32::NAN; row * qw])
            .unwrap();
        let shape = HeadShape {
            n_heads,
            n_kv_heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            window,
        };
        let sink_t = sink_vals
            .as_ref()
            .map(|s| be.from_f32(vec![n_heads], s).unwrap());
        ops::attention_batch(&be, l, &q, &kv, &shape, sink_t.as_ref(), &mut out).unwrap();
        let got = out.to_f32_vec().unwrap();
        for &(i, r, n, _) in &parts {
            let t = total[i];
            let to16 = |x: &[f32]| x.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>();
            let (k16, v16) = (to16(&kc[i][l]), to16(&vc[i][l]));
            let p = AttentionParams {
                n_q_tokens: n,
                n_kv_tokens: t,
                n_heads,
                n_kv_heads,
                head_dim,
                scale: shape.scale,
                window,
            };
            let mut want = vec![f32::NAN; n * qw];
            attention_with_sinks(
                &q_all[r * qw..(r + n) * qw],
                &k16,
                &v16,
                &p,
                sink_vals.as_deref(),
                &mut want,
            );
            assert_eq!(
                &got[r * qw..(r + n) * qw],
                &want[..],
                "sequence {i} of {seqs:?}, {n_heads}/{n_kv_heads}x{head_dim}, window {window:?}"
            );
        }
        // The pool holds what was appended (f16-rounded), shared block included.
        for (i, tab) in tabs.iter().enumerate() {
            let got = pool.to_f32(tab, l, true, total[i]).unwrap();
            let want: Vec<f32> = vc[i][l]
                .iter()
                .map(|&x| f16::from_f32(x).to_f32())
                .collect();
            assert_eq!(got, want, "values of sequence {i}");
        }
    }
}

#[test]
fn attention_through_shuffled_block_tables_equals_the_contiguous_op() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // (heads, KV heads, head dim, (held, new) per sequence)
    type Case = (usize, usize, usize, &'static [(usize, usize)]);
    let cases: &[Case] = &[
        (4, 2, 64, &[(70, 1), (130, 1), (0, 17), (5, 1)]),
        (9, 3, 5, &[(64, 1), (64, 3), (1, 1)]),
        (8, 1, 128, &[(200, 40), (127, 1)]),
        (6, 6, 16, &[(0, 1), (63, 2), (65, 64)]),
    ];
    for &(h, kvh, hd, seqs) in cases {
        for window in [None, Some(33)] {
            for sinks in [false, true] {
                paged_matches_contiguous(h, kvh, hd, seqs, window, sinks, &mut rng);
            }
        }
    }
}

#[test]
fn copy_block_copies_every_row_across_and_within_chunks() {
    let be = Backend::Cpu;
    let mut rng = Rng(7);
    for chunk_blocks in [1usize, 4] {
        let mut pool = KvPool::new(&be, 3, 5, 8)
            .unwrap()
            .with_chunk_blocks(chunk_blocks);
        let a = [pool.alloc("a").unwrap()];
        let b = [pool.alloc("b").unwrap()];
        let mut t = KvTableBuffers::default();
        let seqs = vec![
            SeqKv {
                blocks: &a,
                row: 0,
                n: KV_BLOCK_TOKENS,
                start: 0,
            },
            SeqKv {
                blocks: &b,
                row: KV_BLOCK_TOKENS,
                n: 7,
                start: 0,
            },
        ];
        let mut kv = BatchKv::new(&be, &mut pool, seqs, &mut t).unwrap();
        let rows = KV_BLOCK_TOKENS + 7;
        for l in 0..3 {
            let k = be.from_f32(vec![rows, 5], &rng.vec(rows * 5)).unwrap();
            let v = be.from_f32(vec![rows, 5], &rng.vec(rows * 5)).unwrap();
            ops::kv_append_batch(&be, l, &k, &v, &mut kv).unwrap();
        }
        drop(kv);
        pool.copy_block(a[0], b[0]).unwrap();
        for l in 0..3 {
            for value in [false, true] {
                assert_eq!(
                    pool.to_f32(&a, l, value, KV_BLOCK_TOKENS).unwrap(),
                    pool.to_f32(&b, l, value, KV_BLOCK_TOKENS).unwrap()
                );
            }
        }
    }
}

#[test]
fn trim_returns_idle_chunks_and_they_come_back_with_their_ids() {
    let be = Backend::Cpu;
    let mut rng = Rng(11);
    let mut pool = KvPool::new(&be, 2, 4, 6).unwrap().with_chunk_blocks(2);
    let bytes = pool.block_bytes();
    let a = pool.alloc("a").unwrap();
    let b = pool.alloc("b").unwrap();
    let c = pool.alloc("c").unwrap();
    assert_eq!(pool.stats().allocated, 4, "two chunks of two blocks");
    assert_eq!(pool.trim(), 0, "every chunk holds a block in use");
    pool.release(c).unwrap();
    assert_eq!(pool.trim(), 2 * bytes, "the second chunk is idle");
    assert_eq!(pool.stats().allocated, 2);
    assert_eq!((pool.stats().used, pool.stats().free), (2, 4));
    // The first chunk's blocks still hold their rows.
    let table = [a];
    let mut t = KvTableBuffers::default();
    let seqs = vec![SeqKv {
        blocks: &table,
        row: 0,
        n: 5,
        start: 0,
    }];
    let mut kv = BatchKv::new(&be, &mut pool, seqs, &mut t).unwrap();
    let k = rng.vec(5 * 4);
    let v = rng.vec(5 * 4);
    let (kt, vt) = (
        be.from_f32(vec![5, 4], &k).unwrap(),
        be.from_f32(vec![5, 4], &v).unwrap(),
    );
    ops::kv_append_batch(&be, 1, &kt, &vt, &mut kv).unwrap();
    drop(kv);
    let round = |x: &[f32]| -> Vec<f32> { x.iter().map(|&x| f16::from_f32(x).to_f32()).collect() };
    assert_eq!(pool.to_f32(&table, 1, false, 5).unwrap(), round(&k));
    assert_eq!(pool.trim(), 0);
    assert_eq!(pool.to_f32(&table, 1, true, 5).unwrap(), round(&v));
    // The next two blocks come from the returned chunk, allocated again.
    let d = pool.alloc("d").unwrap();
    let e = pool.alloc("e").unwrap();
    let mut ids = [d, e];
    ids.sort_unstable();
    let mut second = [c, c ^ 1];
    second.sort_unstable();
    assert_eq!(ids, second, "the returned chunk's ids");
    assert_eq!(pool.stats().allocated, 4);
    pool.copy_block(a, d).unwrap();
    assert_eq!(pool.to_f32(&[d], 1, false, 5).unwrap(), round(&k));
    // A third chunk only after those.
    let f = pool.alloc("f").unwrap();
    assert!(f >= 4);
    for id in [a, b, d, e, f] {
        pool.release(id).unwrap();
    }
    assert_eq!(pool.trim(), 6 * bytes);
    assert_eq!(pool.stats().allocated, 0);
    assert_eq!(pool.stats().used, 0);
    // And it works after everything went back.
    let g = pool.alloc("g").unwrap();
    assert_eq!(pool.stats().allocated, 2);
    pool.release(g).unwrap();
}
