//! A ragged batch's KV append and attention (one launch per layer for every sequence on the GPU)
//! against the CPU running each sequence's row ops: decode rows and prefill chunks mixed, odd
//! head dims, GQA, caches holding earlier tokens.

use half::f16;
use rocmforge_gguf::GgmlType;
use rocmforge_tensor::cpu::{RopeMode, RopeParams};
use rocmforge_tensor::{BatchKv, HeadShape, KvTableBuffers, SeqKv, Tensor, TensorResult, ops};

use crate::elementwise::{both, out};
use crate::support::{Ctx, e};

const LAYERS: usize = 2;

/// One sequence: cache capacity, tokens already held (random contents), new tokens.
type Seq = (usize, usize, usize);

fn run(
    ctx: &Ctx,
    be: &rocmforge_tensor::Backend,
    seqs: &[Seq],
    shape: &HeadShape,
    data: &Data,
) -> TensorResult<Vec<f32>> {
    let kv_dim = shape.n_kv_heads * shape.head_dim;
    let n_rows: usize = seqs.iter().map(|s| s.2).sum();
    let mut caches: Vec<(Vec<Tensor>, Vec<Tensor>)> = Vec::new();
    for (i, &(cap, _, _)) in seqs.iter().enumerate() {
        let mk = |d: &[Vec<f16>]| -> TensorResult<Vec<Tensor>> {
            (0..LAYERS)
                .map(|l| be.from_f16(vec![cap, kv_dim], &d[l]))
                .collect()
        };
        caches.push((mk(&data.k_old[i])?, mk(&data.v_old[i])?));
    }
    let k = be.from_f32(vec![n_rows, kv_dim], &data.k)?;
    let v = be.from_f32(vec![n_rows, kv_dim], &data.v)?;
    let q = be.from_f32(vec![n_rows, shape.n_heads * shape.head_dim], &data.q)?;
    let mut o = out(ctx, be, vec![n_rows, shape.n_heads * shape.head_dim])?;
    let mut row = 0;
    let kv_seqs = caches
        .iter_mut()
        .zip(seqs)
        .map(|((kc, vc), &(_, start, n))| {
            row += n;
            SeqKv {
                k: kc,
                v: vc,
                row: row - n,
                n,
                start,
            }
        })
        .collect();
    let mut tables = KvTableBuffers::default();
    let mut kv = BatchKv::new(be, kv_seqs, LAYERS, &mut tables)?;
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
    for (kc, vc) in &caches {
        for t in kc.iter().chain(vc) {
            all.extend(t.to_f32_vec()?);
        }
    }
    Ok(all)
}

struct Data {
    k_old: Vec<Vec<Vec<f16>>>,
    v_old: Vec<Vec<Vec<f16>>>,
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
        let old = |cap: usize| -> Vec<Vec<f16>> {
            (0..LAYERS)
                .map(|_| {
                    ctx.randn(cap * kv_dim, 1.0)
                        .iter()
                        .map(|&x| f16::from_f32(x))
                        .collect()
                })
                .collect()
        };
        let data = Data {
            k_old: seqs.iter().map(|s| old(s.0)).collect(),
            v_old: seqs.iter().map(|s| old(s.0)).collect(),
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
    // A sequence whose new rows do not fit its cache is an error, not a write past its end.
    let be = &ctx.gpu;
    let mut k = vec![be.zeros(GgmlType::F16, vec![4, 8]).map_err(e)?];
    let mut v = vec![be.zeros(GgmlType::F16, vec![4, 8]).map_err(e)?];
    let seq = SeqKv {
        k: &mut k,
        v: &mut v,
        row: 0,
        n: 2,
        start: 3,
    };
    if BatchKv::new(be, vec![seq], 1, &mut KvTableBuffers::default()).is_ok() {
        return Err("a batch past a cache's end must be an error".to_string());
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
