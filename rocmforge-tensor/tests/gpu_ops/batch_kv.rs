//! A ragged batch's KV append and attention through paged block tables (one launch per layer
//! for every sequence on the GPU) against the CPU running each sequence's row ops: decode rows
//! and prefill chunks mixed, odd head dims, GQA, caches holding earlier tokens, block tables in
//! shuffled (non-contiguous) order, and a block shared by two sequences.

use half::f16;
use rocmforge_tensor::cpu::{RopeMode, RopeParams};
use rocmforge_tensor::{
    BatchKv, HeadShape, KV_BLOCK_TOKENS, KvPool, KvTableBuffers, SeqKv, Tensor, TensorResult, ops,
};

use crate::elementwise::{both, out};
use crate::support::{Ctx, e};

const LAYERS: usize = 2;

/// One sequence: table capacity in tokens, tokens already held (random contents), new tokens.
type Seq = (usize, usize, usize);

/// Each sequence's block table: every block of the pool handed out in the order `data.perm`
/// (shuffled), and, where two sequences both hold a full first block, the later one's first
/// block replaced by the first one's (shared, refcount 2).
fn tables(pool: &mut KvPool, seqs: &[Seq], perm: &[usize]) -> TensorResult<Vec<Vec<u32>>> {
    let counts: Vec<usize> = seqs
        .iter()
        .map(|&(cap, held, new)| cap.max(held + new).div_ceil(KV_BLOCK_TOKENS))
        .collect();
    let total: usize = counts.iter().sum();
    let ids: Vec<u32> = (0..total)
        .map(|_| pool.alloc("test"))
        .collect::<TensorResult<_>>()?;
    let mut shuffled = perm.iter().map(|&i| ids[i]);
    Ok(counts
        .iter()
        .map(|&n| shuffled.by_ref().take(n).collect())
        .collect())
}

fn run(
    ctx: &Ctx,
    be: &rocmforge_tensor::Backend,
    seqs: &[Seq],
    shape: &HeadShape,
    data: &Data,
) -> TensorResult<Vec<f32>> {
    let kv_dim = shape.n_kv_heads * shape.head_dim;
    let n_rows: usize = seqs.iter().map(|s| s.2).sum();
    let mut pool = KvPool::new(be, LAYERS, kv_dim, 1 << 20)?;
    let mut tabs = tables(&mut pool, seqs, &data.perm)?;
    // The tokens already held, written through the tables (the CPU and GPU appends are
    // compared by the pool contents returned below).
    let mut row = 0;
    let old: Vec<SeqKv<'_>> = seqs
        .iter()
        .zip(&tabs)
        .filter(|(s, _)| s.1 > 0)
        .map(|(&(_, held, _), blocks)| {
            row += held;
            SeqKv {
                blocks,
                row: row - held,
                n: held,
                start: 0,
            }
        })
        .collect();
    if row > 0 {
        let mut tables = KvTableBuffers::default();
        let mut kv = BatchKv::new(be, &mut pool, old, &mut tables)?;
        for layer in 0..LAYERS {
            let k = be.from_f32(vec![row, kv_dim], &data.k_old[layer][..row * kv_dim])?;
            let v = be.from_f32(vec![row, kv_dim], &data.v_old[layer][..row * kv_dim])?;
            ops::kv_append_batch(be, layer, &k, &v, &mut kv)?;
        }
    }
    // Share the first full block of the first sequence holding one with every later one.
    let full: Vec<usize> = (0..seqs.len())
        .filter(|&i| seqs[i].1 >= KV_BLOCK_TOKENS)
        .collect();
    if let Some((&first, rest)) = full.split_first() {
        let shared = tabs[first][0];
        for &j in rest {
            pool.retain(shared)?;
            pool.release(tabs[j][0])?;
            tabs[j][0] = shared;
        }
    }
    let k = be.from_f32(vec![n_rows, kv_dim], &data.k)?;
    let v = be.from_f32(vec![n_rows, kv_dim], &data.v)?;
    let q = be.from_f32(vec![n_rows, shape.n_heads * shape.head_dim], &data.q)?;
    let mut o = out(ctx, be, vec![n_rows, shape.n_heads * shape.head_dim])?;
    let mut row = 0;
    let kv_seqs = tabs
        .iter()
        .zip(seqs)
        .map(|(blocks, &(_, start, n))| {
            row += n;
            SeqKv {
                blocks,
                row: row - n,
                n,
                start,
            }
        })
        .collect();
    let mut tables = KvTableBuffers::default();
    let mut kv = BatchKv::new(be, &mut pool, kv_seqs, &mut tables)?;
    // Layer 0: the plain append; layer 1: biases + RoPE (NeoX, a partial rotation when the
    // head has room) + append in one call, at each row's own position.
    ops::kv_append_batch(be, 0, &k, &v, &mut kv)?;
    let positions: Vec<u32> = seqs
        .iter()
        .flat_map(|&(_, start, n)| (start..start + n).map(|p| p as u32))
        .collect();
    let pos = be.ids(&positions)?;
    let rope = RopeParams {
        n_rot: if shape.head_dim >= 16 {
            shape.head_dim - 8
        } else {
            shape.head_dim & !1
        },
        freq_base: 10000.0,
        freq_scale: 1.0,
        mode: RopeMode::Neox,
        yarn: None,
    };
    let b: Vec<Tensor> = [&data.bq, &data.bk, &data.bv]
        .iter()
        .map(|d| be.from_f32(vec![d.len()], d))
        .collect::<TensorResult<_>>()?;
    let ff = data
        .freq_factors
        .as_ref()
        .map(|f| be.from_f32(vec![rope.n_rot / 2], &f[..rope.n_rot / 2]))
        .transpose()?;
    let (mut q, mut k, mut v) = (q, k, v);
    ops::rope_kv_append_batch(
        be,
        1,
        &mut q,
        &mut k,
        &mut v,
        [Some(&b[0]), Some(&b[1]), Some(&b[2])],
        shape,
        &pos,
        &rope,
        ff.as_ref(),
        &mut kv,
    )?;
    let sinks = data
        .sinks
        .as_ref()
        .map(|s| be.from_f32(vec![s.len()], s))
        .transpose()?;
    ops::attention_batch(be, 1, &q, &kv, shape, sinks.as_ref(), &mut o)?;
    drop(kv);
    let mut all = o.to_f32_vec()?;
    all.extend(q.to_f32_vec()?);
    for (blocks, &(_, held, new)) in tabs.iter().zip(seqs) {
        for layer in 0..LAYERS {
            for value in [false, true] {
                all.extend(pool.to_f32(blocks, layer, value, held + new)?);
            }
        }
    }
    Ok(all)
}

struct Data {
    /// Per layer: the held tokens' keys and values, every sequence's in turn.
    k_old: Vec<Vec<f32>>,
    v_old: Vec<Vec<f32>>,
    /// The order the pool's blocks are handed to the tables.
    perm: Vec<usize>,
    k: Vec<f32>,
    v: Vec<f32>,
    q: Vec<f32>,
    bq: Vec<f32>,
    bk: Vec<f32>,
    bv: Vec<f32>,
    /// Per-head attention sinks (gpt-oss), when the case has them.
    sinks: Option<Vec<f32>>,
    /// RoPE frequency divisors (Phi-3's LongRoPE), at least one per rotated pair, when the case
    /// has them.
    freq_factors: Option<Vec<f32>>,
}

pub fn ragged_batch(ctx: &Ctx) -> Result<(), String> {
    // (n_heads, n_kv_heads, head_dim), sequences (capacity, held, new)
    // Decode rows take the split kernel for even head dims up to 256 (groups over 8 heads in
    // two blocks, lengths from 1 to thousands), the one-block kernel otherwise (5).
    let cases: [((usize, usize, usize), Vec<Seq>); 8] = [
        (
            (4, 2, 64),
            vec![(9, 3, 1), (40, 0, 17), (5, 4, 1), (70, 33, 1)],
        ),
        ((9, 3, 80), vec![(3, 0, 1), (3, 2, 1)]),
        ((8, 1, 128), vec![(300, 7, 40), (1030, 1000, 1), (20, 1, 5)]),
        ((6, 6, 5), vec![(4, 1, 3), (8, 6, 1), (2, 0, 2)]),
        (
            (12, 1, 64),
            vec![(3000, 2500, 1), (64, 0, 1), (130, 128, 2)],
        ),
        (
            (14, 2, 64),
            (0..8).map(|i| (700, 90 * i + 3, 1)).collect::<Vec<_>>(),
        ),
        ((16, 8, 256), vec![(50, 49, 1), (600, 17, 1)]),
        ((4, 2, 6), vec![(100, 70, 1), (9, 0, 4)]),
    ];
    // Every case without a window and with one of 33 keys (shorter than most caches: decode rows
    // take the split kernel's windowed key range, prefill chunks the tiled kernel's), each with
    // and without attention sinks (the split kernel's combine, the one-block and tiled kernels).
    let windowed = cases.into_iter().flat_map(|c| {
        [
            (None, false),
            (Some(33), false),
            (None, true),
            (Some(33), true),
        ]
        .map(|(w, s)| (c.clone(), w, s))
    });
    for (((n_heads, n_kv_heads, head_dim), seqs), window, with_sinks) in windowed {
        let kv_dim = n_kv_heads * head_dim;
        let n_rows: usize = seqs.iter().map(|s| s.2).sum();
        let held: usize = seqs.iter().map(|s| s.1).sum();
        let old =
            || -> Vec<Vec<f32>> { (0..LAYERS).map(|_| ctx.randn(held * kv_dim, 1.0)).collect() };
        let n_blocks: usize = seqs
            .iter()
            .map(|&(cap, held, new)| cap.max(held + new).div_ceil(KV_BLOCK_TOKENS))
            .sum();
        let mut perm: Vec<usize> = (0..n_blocks).collect();
        for i in (1..n_blocks).rev() {
            perm.swap(i, ctx.below(i as u64 + 1) as usize);
        }
        let data = Data {
            k_old: old(),
            v_old: old(),
            perm,
            k: ctx.randn(n_rows * kv_dim, 1.0),
            v: ctx.randn(n_rows * kv_dim, 1.0),
            q: ctx.randn(n_rows * n_heads * head_dim, 1.0),
            bq: ctx.randn(n_heads * head_dim, 0.5),
            bk: ctx.randn(kv_dim, 0.5),
            bv: ctx.randn(kv_dim, 0.5),
            sinks: with_sinks.then(|| ctx.randn(n_heads, 3.0)),
            // (The cases with sinks also take frequency factors, from 1 to 41.)
            freq_factors: with_sinks.then(|| {
                (0..head_dim / 2)
                    .map(|j| 1.0 + 40.0 * (j as f32 / (head_dim / 2) as f32).powi(3))
                    .collect()
            }),
        };
        let shape = HeadShape {
            n_heads,
            n_kv_heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            window,
        };
        let (c, g) = both(ctx, |be| run(ctx, be, &seqs, &shape, &data))?;
        ctx.check(
            "attention_batch + kv_append_batch + rope_kv_append_batch",
            &format!(
                "{n_heads}/{n_kv_heads}x{head_dim}, seqs {seqs:?}, window {window:?}, sinks \
                 and freq factors {with_sinks}"
            ),
            &c,
            &g,
            2e-3,
        )?;
    }
    // A sequence whose new rows do not fit its table, or that would write into a block
    // another sequence shares, is an error, not a write past its end or into the other's keys.
    let be = &ctx.gpu;
    let mut pool = KvPool::new(be, 1, 8, 4).map_err(e)?;
    let blocks = [pool.alloc("a").map_err(e)?];
    let past_end = SeqKv {
        blocks: &blocks,
        row: 0,
        n: 2,
        start: KV_BLOCK_TOKENS - 1,
    };
    let mut t = KvTableBuffers::default();
    if BatchKv::new(be, &mut pool, vec![past_end], &mut t).is_ok() {
        return Err("a batch past a table's end must be an error".to_string());
    }
    pool.retain(blocks[0]).map_err(e)?;
    let shared = SeqKv {
        blocks: &blocks,
        row: 0,
        n: 1,
        start: 3,
    };
    if BatchKv::new(be, &mut pool, vec![shared], &mut t).is_ok() {
        return Err("a write into a shared block must be an error".to_string());
    }
    Ok(())
}

/// `KvPool::copy_block` (copy-on-write of a shared block): a block's every row copied over
/// another's, within one chunk and across chunks, exactly; the other blocks untouched.
pub fn copy_block(ctx: &Ctx) -> Result<(), String> {
    // Chunks of 2 blocks: block 2 is copied over block 0 across chunks; of 4: within one.
    let (layers, width) = (2usize, 3 * 64 + 8);
    for chunk_blocks in [2usize, 4] {
        let n_blocks = 3;
        let per_block = layers * 2 * KV_BLOCK_TOKENS * width;
        let rows: Vec<f32> = ctx.randn(n_blocks * per_block, 1.0);
        let (c, g) = both(ctx, |be| {
            let mut pool =
                KvPool::new(be, layers, width, n_blocks)?.with_chunk_blocks(chunk_blocks);
            let ids: Vec<u32> = (0..n_blocks)
                .map(|_| pool.alloc("test"))
                .collect::<TensorResult<_>>()?;
            // Fill every block through the append path (f16-rounded).
            let mut t = KvTableBuffers::default();
            let seqs = ids
                .iter()
                .enumerate()
                .map(|(i, b)| SeqKv {
                    blocks: std::slice::from_ref(b),
                    row: i * KV_BLOCK_TOKENS,
                    n: KV_BLOCK_TOKENS,
                    start: 0,
                })
                .collect();
            let mut kv = BatchKv::new(be, &mut pool, seqs, &mut t)?;
            let n = n_blocks * KV_BLOCK_TOKENS;
            for layer in 0..layers {
                let at = |value: usize| (2 * layer + value) * n * width;
                let k = be.from_f32(vec![n, width], &rows[at(0)..at(0) + n * width])?;
                let v = be.from_f32(vec![n, width], &rows[at(1)..at(1) + n * width])?;
                ops::kv_append_batch(be, layer, &k, &v, &mut kv)?;
            }
            drop(kv);
            pool.copy_block(ids[2], ids[0])?;
            let mut all = Vec::new();
            for id in &ids {
                for layer in 0..layers {
                    for value in [false, true] {
                        all.extend(pool.to_f32(&[*id], layer, value, KV_BLOCK_TOKENS)?);
                    }
                }
            }
            Ok(all)
        })?;
        let third = c.len() / 3;
        if c[..third] != c[2 * third..] || c[third..2 * third] == c[..third] {
            return Err("CPU copy_block: block 0 must equal block 2, block 1 stay".to_string());
        }
        ctx.check(
            "KvPool::copy_block (exact)",
            &format!("{layers} layers x {width}, chunks of {chunk_blocks} blocks"),
            &c,
            &g,
            0.0,
        )?;
    }
    Ok(())
}

/// `copy_rows` (a cached prompt prefix copied into a new sequence's cache): the first rows of
/// one F16 cache over another's, the rest untouched; more rows than either holds is an error.
pub fn copy_rows(ctx: &Ctx) -> Result<(), String> {
    let (rows, width) = (37usize, 3 * 64);
    let to_f16 = |v: Vec<f32>| v.into_iter().map(f16::from_f32).collect::<Vec<_>>();
    let src = to_f16(ctx.randn(rows * width, 1.0));
    let dst = to_f16(ctx.randn((rows + 5) * width, 1.0));
    for n in [0usize, 1, 19, rows] {
        let (c, g) = both(ctx, |be| {
            let s = be.from_f16(vec![rows, width], &src)?;
            let mut d = be.from_f16(vec![rows + 5, width], &dst)?;
            ops::copy_rows(be, &s, &mut d, n)?;
            d.to_f32_vec()
        })?;
        let want: Vec<f32> = src[..n * width]
            .iter()
            .chain(&dst[n * width..])
            .map(|h| h.to_f32())
            .collect();
        if c != want || g != want {
            return Err(format!(
                "copy_rows of {n} rows: CPU or GPU differs from the expected rows"
            ));
        }
        ctx.check(
            "copy_rows (exact)",
            &format!("{n} of {rows}x{width}"),
            &c,
            &g,
            0.0,
        )?;
    }
    let be = &ctx.gpu;
    let s = be.from_f16(vec![rows, width], &src).map_err(e)?;
    let mut d = be.from_f16(vec![rows + 5, width], &dst).map_err(e)?;
    if ops::copy_rows(be, &s, &mut d, rows + 1).is_ok() {
        return Err("copying more rows than the source holds must be an error".to_string());
    }
    Ok(())
}
