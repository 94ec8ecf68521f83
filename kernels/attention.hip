// Causal multi-head attention over an f16 KV cache, GQA/MQA, prefill and decode, any length.
//
// q:   [n_q][n_heads][head_dim] f32          k, v: [n_kv][n_kv_heads][head_dim] f16 (token-major)
// out: [n_q][n_heads][head_dim] f32
// Query i sits at position n_kv - n_q + i and sees keys 0..=that position; with a sliding window
// (window > 0) only the last `window` of them (key k is masked when position - k >= window, as
// llama.cpp's standard SWA). Query head h reads KV head h / (n_heads / n_kv_heads). Like the CPU op, the query is rounded to f16 before the dot
// products with K, and scores are scaled by `scale`.
//
// One block per (head, query): keys are processed in tiles of ATT_THREADS (one key per thread),
// with an online softmax (running maximum m and sum l; earlier partial sums rescaled by
// exp(m_old - m_new)), so there is no limit on the sequence length. Accumulation in f32.
#include "rf_platform.h"

#define ATT_THREADS 128
#define ATT_MAX_HEAD_DIM 512

// Where the keys (or values) of one sequence live. Every attention body reads its K and V rows
// through kv_row(), so one body serves a contiguous cache and a paged one:
// - kv_contig: token-major rows at base + j * stride (stride = n_kv_heads * head_dim values);
// - kv_paged: the paged cache of rocmforge-tensor's KvPool. Token j lives in block
//   blocks[j / RF_KV_BLOCK] (a device address), at row j % RF_KV_BLOCK of the layer's K or V
//   part, which starts `off` bytes into the block (off also carries the KV head's offset).
// RF_KV_BLOCK (tokens per block) is KV_BLOCK_TOKENS in rocmforge-tensor/src/kv_pool.rs; it is a
// multiple of every key tile here (FA_BK, the warp-wide tiles of the split kernel), though each
// key's address is computed on its own, so a tile may straddle blocks.
#define RF_KV_BLOCK 64
struct kv_contig {
    const rf_half* base;
    rf_u64 stride;
};
struct kv_paged {
    const rf_u64* blocks;
    rf_u64 off;
    rf_u64 stride;
};
RF_DEVICE const rf_half* kv_row(const kv_contig& a, rf_u32 j) {
    return a.base + (rf_u64)j * a.stride;
}
RF_DEVICE const rf_half* kv_row(const kv_paged& a, rf_u32 j) {
    return (const rf_half*)(a.blocks[j / RF_KV_BLOCK] + a.off) + (rf_u64)(j % RF_KV_BLOCK) * a.stride;
}
// The same source moved to KV head `kvh` (head_dim values further into each row).
RF_DEVICE kv_contig kv_at_head(kv_contig a, rf_u32 kvh, rf_u32 head_dim) {
    a.base += (rf_u64)kvh * head_dim;
    return a;
}
RF_DEVICE kv_paged kv_at_head(kv_paged a, rf_u32 kvh, rf_u32 head_dim) {
    a.off += (rf_u64)kvh * head_dim * sizeof(rf_half);
    return a;
}
#define ATT_ACC (ATT_MAX_HEAD_DIM / ATT_THREADS)

RF_DEVICE float att_block_max(float v, float* scratch) {
    const rf_u32 lane = RF_TID_X % RF_WARP_SIZE, warp = RF_TID_X / RF_WARP_SIZE;
    const rf_u32 n_warps = RF_BDIM_X / RF_WARP_SIZE;
    v = rf_warp_max_f32(v);
    rf_sync_block();
    if (lane == 0) scratch[warp] = v;
    rf_sync_block();
    v = lane < n_warps ? scratch[lane] : -__builtin_huge_valf();
    return rf_warp_max_f32(v);
}

// The first key a query that sees keys 0..visible attends to (0 without a window).
RF_DEVICE rf_u32 att_first_key(rf_u32 visible, rf_u32 window) {
    return window > 0 && visible > window ? visible - window : 0;
}

// The factor that turns an online softmax's accumulator into the output: 1 / l, or with an
// attention sink (a per-head logit `sink` that joins the maximum and the denominator but has no
// value, gpt-oss) exp(m - M) / (l exp(m - M) + exp(sink - M)) with M = max(m, sink). `m` and
// `sink` are in the units of `exp2` when `log2` (the sink given in natural units is scaled).
RF_DEVICE float att_out_scale(float m, float l, const float* sinks, rf_u32 head, bool log2) {
    if (!sinks) return l > 0.0f ? 1.0f / l : 0.0f;
    const float sk = log2 ? sinks[head] * 1.4426950408889634f : sinks[head];
    const float big = m > sk ? m : sk;
    const float f = m == -__builtin_huge_valf() ? 0.0f : (log2 ? rf_exp2f(m - big) : rf_expf(m - big));
    const float den = l * f + (log2 ? rf_exp2f(sk - big) : rf_expf(sk - big));
    return f / den;
}

// One query head's attention over keys first..visible of k/v: the body of attention_f16 and
// attention_rows_f16 (one block of ATT_THREADS threads).
template <typename KV>
RF_DEVICE void att_one_query(const float* qrow, KV k, KV v, float* orow,
                             rf_u32 first, rf_u32 visible, rf_u32 head, rf_u32 n_heads,
                             rf_u32 n_kv_heads, rf_u32 head_dim, float scale,
                             const float* sinks) {
    __shared__ float q16[ATT_MAX_HEAD_DIM];
    __shared__ float probs[ATT_THREADS];
    __shared__ float max_scratch[ATT_THREADS / RF_WARP_SIZE];
    __shared__ float sum_scratch[ATT_THREADS / RF_WARP_SIZE];
    const rf_u32 t = RF_TID_X;
    const rf_u32 kv_head = head / (n_heads / n_kv_heads);
    k = kv_at_head(k, kv_head, head_dim);
    v = kv_at_head(v, kv_head, head_dim);
    for (rf_u32 d = t; d < head_dim; d += ATT_THREADS) q16[d] = rf_half_to_f32(rf_f32_to_half(qrow[d]));
    rf_sync_block();

    float acc[ATT_ACC];
#pragma unroll
    for (int a = 0; a < ATT_ACC; ++a) acc[a] = 0.0f;
    float m = -__builtin_huge_valf(), l = 0.0f;

    for (rf_u32 j0 = first; j0 < visible; j0 += ATT_THREADS) {
        const rf_u32 j = j0 + t;
        float s = -__builtin_huge_valf();
        if (j < visible) {
            const rf_half* krow = kv_row(k, j);
            float dot = 0.0f;
            for (rf_u32 d = 0; d < head_dim; ++d) dot += q16[d] * rf_half_to_f32(krow[d]);
            s = dot * scale;
        }
        const float tile_max = att_block_max(s, max_scratch);
        const float m_new = m > tile_max ? m : tile_max;
        const float corr = rf_expf(m - m_new);
        const float p = j < visible ? rf_expf(s - m_new) : 0.0f;
        probs[t] = p;
        l = l * corr + rf_block_sum_f32(p, sum_scratch);  // its barriers publish probs[]
#pragma unroll
        for (int a = 0; a < ATT_ACC; ++a) acc[a] *= corr;
        const rf_u32 n_tile = visible - j0 < ATT_THREADS ? visible - j0 : ATT_THREADS;
        for (rf_u32 jj = 0; jj < n_tile; ++jj) {
            const float w = probs[jj];
            const rf_half* vrow = kv_row(v, j0 + jj);
#pragma unroll
            for (int a = 0; a < ATT_ACC; ++a) {
                const rf_u32 d = t + (rf_u32)a * ATT_THREADS;
                if (d < head_dim) acc[a] += w * rf_half_to_f32(vrow[d]);
            }
        }
        m = m_new;
        rf_sync_block();  // probs[] is rewritten by the next tile
    }

    const float inv = visible > 0 ? att_out_scale(m, l, sinks, head, false) : 0.0f;
#pragma unroll
    for (int a = 0; a < ATT_ACC; ++a) {
        const rf_u32 d = t + (rf_u32)a * ATT_THREADS;
        if (d < head_dim) orow[d] = acc[a] * inv;
    }
}

RF_KERNEL(ATT_THREADS) void attention_f16(const float* q, const rf_half* k, const rf_half* v,
                                          float* out, rf_u32 n_q, rf_u32 n_kv, rf_u32 n_heads,
                                          rf_u32 n_kv_heads, rf_u32 head_dim, float scale,
                                          rf_u32 window, const float* sinks) {
    RF_GRID_DEP_BEGIN();
    const rf_u32 head = RF_BID_X, qi = RF_BID_Y;
    const rf_u64 at = ((rf_u64)qi * n_heads + head) * head_dim;
    const rf_u32 visible = n_kv + qi + 1 > n_q ? n_kv + qi + 1 - n_q : 0;
    const rf_u64 stride = (rf_u64)n_kv_heads * head_dim;
    att_one_query(q + at, kv_contig{k, stride}, kv_contig{v, stride}, out + at,
                  att_first_key(visible, window), visible, head, n_heads, n_kv_heads, head_dim,
                  scale, sinks);
}

// attention_f16 over a paged cache (one sequence): its block table `blocks`, the layer's K and
// V parts at k_off / v_off bytes into each block.
RF_KERNEL(ATT_THREADS) void attention_paged_f16(const float* q, const rf_u64* blocks, rf_u64 k_off,
                                                rf_u64 v_off, float* out, rf_u32 n_q, rf_u32 n_kv,
                                                rf_u32 n_heads, rf_u32 n_kv_heads,
                                                rf_u32 head_dim, float scale, rf_u32 window,
                                                const float* sinks) {
    RF_GRID_DEP_BEGIN();
    const rf_u32 head = RF_BID_X, qi = RF_BID_Y;
    const rf_u64 at = ((rf_u64)qi * n_heads + head) * head_dim;
    const rf_u32 visible = n_kv + qi + 1 > n_q ? n_kv + qi + 1 - n_q : 0;
    const rf_u64 stride = (rf_u64)n_kv_heads * head_dim;
    att_one_query(q + at, kv_paged{blocks, k_off, stride}, kv_paged{blocks, v_off, stride},
                  out + at, att_first_key(visible, window), visible, head, n_heads, n_kv_heads,
                  head_dim, scale, sinks);
}

// Ragged batch: query i (block y = i) is row rows[i] of q and out, and attends over the first
// lens[i] keys of its own sequence's paged cache (block table at blocks + i * table_stride; the
// layer's K and V parts at k_off / v_off bytes into each block), the last `window` of them with
// a window. One launch serves every decoding sequence of a batch, each with its own cache and
// length.
RF_KERNEL(ATT_THREADS) void attention_rows_f16(const float* q, const rf_u64* blocks,
                                               rf_u32 table_stride, rf_u64 k_off, rf_u64 v_off,
                                               const rf_u32* rows, const rf_u32* lens, float* out,
                                               rf_u32 n_heads, rf_u32 n_kv_heads, rf_u32 head_dim,
                                               float scale, rf_u32 window, const float* sinks) {
    RF_GRID_DEP_BEGIN();
    const rf_u32 head = RF_BID_X, i = RF_BID_Y;
    const rf_u64 at = ((rf_u64)rows[i] * n_heads + head) * head_dim;
    const rf_u64 stride = (rf_u64)n_kv_heads * head_dim;
    const rf_u64* table = blocks + (rf_u64)i * table_stride;
    att_one_query(q + at, kv_paged{table, k_off, stride}, kv_paged{table, v_off, stride},
                  out + at, att_first_key(lens[i], window), lens[i], head, n_heads, n_kv_heads,
                  head_dim, scale, sinks);
}

// ---------------------------------------------------------------------------------------------
// Decode rows of a ragged batch, split over the keys ("flash-decoding"), in one launch:
// attention_rows_split_f16 takes attention_rows_f16's arguments and gives its result for head
// dimensions that are even and at most AS_MAX_HD (plus a partials scratch and a zeroed counter
// per (sequence, head chunk)).
//
// Pass 1: grid (n_split, n_kv_heads * ceil(group / AS_GC), n_dec), blocks of AS_GC warps (the
// host launches min(group, AS_GC)). Sequence i of length len attends to keys first..len (first =
// len - window with a sliding window, else 0): it uses the first as_splits(len - first) =
// min(n_split, ceil((len - first) / RF_WARP_SIZE)) splits (at least one warp-wide tile of keys
// each), of cs = ceil((len - first) / splits) keys; the other blocks return at once. The grid
// depends only on the batch and the model, never on the lengths, so a captured step replays as
// the caches grow. Block (x, y, i) takes the query heads of one KV head (at most AS_GC of its
// group) over keys first + x*cs .. min(first + (x+1)*cs, len), warp w query head h0 + w (the
// block's warps read the same K and V rows: the first to ask brings them into the caches for the
// others, and each warp's chain of dependent loads and reductions serves one head, not AS_GC).
// Lanes take one key each for the scores (the query in the warp's shared memory, K rows read as
// 16-byte vectors when head_dim % 8 == 0), an online softmax over tiles of RF_WARP_SIZE keys,
// then lanes split the head dimension (two values each) for the weighted sum of V. The warp
// writes its unnormalised sum, its maximum m and its sum l of exp(s - m) to
// part[(i * n_heads + h) * n_split + x] (head_dim + 2 floats).
// Pass 2: the block that finishes a (sequence, head chunk) last (a device-wide counter, reset by
// that block) combines its heads' partials: one warp per head (as_combine). HD > 0 instantiates
// a fixed head dimension (loops fully unrolled); HD = 0 takes head_dim at run time.
#define AS_GC 8
#define AS_MAX_HD 256
#define AS_MAX_SPLIT 64

struct __attribute__((aligned(16))) as_h8 {
    rf_half h[8];
};
struct __attribute__((aligned(4))) as_h2 {
    rf_half a, b;
};

RF_DEVICE rf_u32 as_splits(rf_u32 len, rf_u32 n_split) {
    const rf_u32 tiles = (len + RF_WARP_SIZE - 1) / RF_WARP_SIZE;
    const rf_u32 s = tiles < n_split ? tiles : n_split;
    return s > 0 ? s : 1;
}

// One warp's share of pass 1: query head `qrow` over keys c0..c1 (q_sh: head_dim floats and
// p_sh: RF_WARP_SIZE floats of this warp's own shared memory; only warp barriers).
template <int HD, int PAIRS>
RF_DEVICE void as_partial(const float* qrow, kv_paged kb, kv_paged vb, float* part,
                          rf_u32 head_dim_rt, float scale, rf_u32 c0, rf_u32 c1, float* q_sh,
                          float* p_sh) {
    const rf_u32 head_dim = HD > 0 ? (rf_u32)HD : head_dim_rt;
    const rf_u32 lane = RF_TID_X % RF_WARP_SIZE;
    for (rf_u32 x = lane; x < head_dim; x += RF_WARP_SIZE)
        q_sh[x] = rf_half_to_f32(rf_f32_to_half(qrow[x]));
    rf_sync_warp();

    float m = -__builtin_huge_valf(), l = 0.0f, acc[2 * PAIRS];
#pragma unroll
    for (int a = 0; a < 2 * PAIRS; ++a) acc[a] = 0.0f;
    const bool vec8 = (head_dim % 8u) == 0;
    for (rf_u32 j0 = c0; j0 < c1; j0 += RF_WARP_SIZE) {  // uniform over the warp
        const rf_u32 j = j0 + lane;
        float s = 0.0f;
        if (j < c1) {
            const rf_half* kr = kv_row(kb, j);
            if (vec8) {
#pragma unroll 4
                for (rf_u32 d = 0; d < head_dim; d += 8) {
                    const as_h8 raw = *(const as_h8*)(kr + d);
#pragma unroll
                    for (int e = 0; e < 8; ++e) s += q_sh[d + e] * rf_half_to_f32(raw.h[e]);
                }
            } else {
#pragma unroll 4
                for (rf_u32 d = 0; d < head_dim; d += 2) {
                    const as_h2 raw = *(const as_h2*)(kr + d);
                    s += q_sh[d] * rf_half_to_f32(raw.a) + q_sh[d + 1] * rf_half_to_f32(raw.b);
                }
            }
        }
        const float sc = j < c1 ? s * scale : -__builtin_huge_valf();
        const float mx = rf_warp_max_f32(sc);  // finite: key j0 < c1 is in the tile
        const float m_new = m > mx ? m : mx;
        const float corr = rf_expf(m - m_new);  // 0 while m is -inf
        const float p = j < c1 ? rf_expf(sc - m_new) : 0.0f;
        l = l * corr + rf_warp_sum_f32(p);
#pragma unroll
        for (int a = 0; a < 2 * PAIRS; ++a) acc[a] *= corr;
        p_sh[lane] = p;
        m = m_new;
        rf_sync_warp();  // p_sh[] written by every lane
        const rf_u32 n_tile = c1 - j0 < RF_WARP_SIZE ? c1 - j0 : RF_WARP_SIZE;
#pragma unroll 8
        for (rf_u32 jj = 0; jj < n_tile; ++jj) {
            const rf_half* vr = kv_row(vb, j0 + jj);
            const float w = p_sh[jj];
#pragma unroll
            for (int pr = 0; pr < PAIRS; ++pr) {
                const rf_u32 d = 2u * (lane + (rf_u32)pr * RF_WARP_SIZE);
                if (d < head_dim) {
                    const as_h2 raw = *(const as_h2*)(vr + d);
                    acc[2 * pr] += w * rf_half_to_f32(raw.a);
                    acc[2 * pr + 1] += w * rf_half_to_f32(raw.b);
                }
            }
        }
        rf_sync_warp();  // p_sh[] is rewritten by the next tile
    }
#pragma unroll
    for (int pr = 0; pr < PAIRS; ++pr) {
        const rf_u32 d = 2u * (lane + (rf_u32)pr * RF_WARP_SIZE);
        if (d < head_dim) {
            part[d] = acc[2 * pr];
            part[d + 1] = acc[2 * pr + 1];
        }
    }
    if (lane == 0) {
        part[head_dim] = m;
        part[head_dim + 1] = l;
    }
}

// as_partial for a fixed head dimension HD, a multiple of 8 with HD / 8 <= RF_WARP_SIZE: the
// same scores and online softmax, with every K row read by its lane in 16-byte pieces (up to
// eight in flight) and the weighted sum of V taken with 16-byte loads: L = HD / 8 lanes
// cover one V row, so a warp step takes KP = RF_WARP_SIZE / L keys of the tile (lane group
// lane / L), every step of the tile issued at once; the KP groups' sums are added at the end
// (butterfly over the lane groups). Fewer, wider, independent loads than as_partial's two
// values per lane and key, which leaves the V pass one chain of dependent loads per 8 keys.
template <int HD>
RF_DEVICE void as_partial_v8(const float* qrow, kv_paged kb, kv_paged vb, float* part,
                             float scale, rf_u32 c0, rf_u32 c1, float* q_sh, float* p_sh) {
    constexpr rf_u32 L = HD / 8;
    constexpr rf_u32 KP = RF_WARP_SIZE / L;
    constexpr rf_u32 KCH = L < 8 ? L : 8;  // K pieces loaded together
    static_assert(HD % 8 == 0 && L <= RF_WARP_SIZE && RF_WARP_SIZE % L == 0, "as_partial_v8 shape");
    const rf_u32 lane = RF_TID_X % RF_WARP_SIZE, sub = lane % L, kq = lane / L;
    for (rf_u32 x = lane; x < (rf_u32)HD; x += RF_WARP_SIZE)
        q_sh[x] = rf_half_to_f32(rf_f32_to_half(qrow[x]));
    rf_sync_warp();

    float m = -__builtin_huge_valf(), l = 0.0f, acc[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[e] = 0.0f;
    for (rf_u32 j0 = c0; j0 < c1; j0 += RF_WARP_SIZE) {  // uniform over the warp
        const rf_u32 j = j0 + lane;
        float s = 0.0f;
        if (j < c1) {
            const rf_half* kr = kv_row(kb, j);
            // At most KCH pieces (4 registers each) in flight: a 256-value head on wave64 would
            // otherwise spill.
#pragma unroll 1
            for (rf_u32 d0 = 0; d0 < L; d0 += KCH) {
                as_h8 raw[KCH];
#pragma unroll
                for (rf_u32 d = 0; d < KCH; ++d) raw[d] = *(const as_h8*)(kr + 8 * (d0 + d));
#pragma unroll
                for (rf_u32 d = 0; d < KCH; ++d) {
#pragma unroll
                    for (int e = 0; e < 8; ++e)
                        s += q_sh[8 * (d0 + d) + e] * rf_half_to_f32(raw[d].h[e]);
                }
            }
        }
        const float sc = j < c1 ? s * scale : -__builtin_huge_valf();
        const float mx = rf_warp_max_f32(sc);  // finite: key j0 < c1 is in the tile
        const float m_new = m > mx ? m : mx;
        const float corr = rf_expf(m - m_new);  // 0 while m is -inf
        const float p = j < c1 ? rf_expf(sc - m_new) : 0.0f;
        l = l * corr + rf_warp_sum_f32(p);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[e] *= corr;
        p_sh[lane] = p;
        m = m_new;
        rf_sync_warp();  // p_sh[] written by every lane
        const rf_u32 n_tile = c1 - j0 < RF_WARP_SIZE ? c1 - j0 : RF_WARP_SIZE;
        // L steps of KP keys; at most 16 V loads of a lane in flight (8 on wave64, where the
        // 256-value heads would otherwise cost a wave of occupancy).
#if RF_WARP_SIZE == 64
#pragma unroll 8
#else
#pragma unroll 16
#endif
        for (rf_u32 jj = 0; jj < (rf_u32)RF_WARP_SIZE; jj += KP) {
            const rf_u32 key = jj + kq;
            if (key < n_tile) {
                const as_h8 raw = *(const as_h8*)(kv_row(vb, j0 + key) + 8 * sub);
                const float w = p_sh[key];
#pragma unroll
                for (int e = 0; e < 8; ++e) acc[e] += w * rf_half_to_f32(raw.h[e]);
            }
        }
        rf_sync_warp();  // p_sh[] is rewritten by the next tile
    }
#pragma unroll
    for (rf_u32 o = L; o < (rf_u32)RF_WARP_SIZE; o <<= 1) {
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[e] += rf_shfl_xor_f32(acc[e], (int)o);
    }
    if (kq == 0) {
#pragma unroll
        for (int e = 0; e < 8; ++e) part[8 * sub + e] = acc[e];
    }
    if (lane == 0) {
        part[HD] = m;
        part[HD + 1] = l;
    }
}

// Dimension pairs per lane for a head of HD values.
#define AS_PAIRS(hd) (((hd) + 2 * RF_WARP_SIZE - 1) / (2 * RF_WARP_SIZE))

// Pass 2 for query head h of sequence i by one warp: rescales the used splits to the largest m
// (an attention sink joins the maximum and the denominator, with no value of its own) and
// divides by the total l (no visible key: zeros, as attention_rows_f16). The partials were
// written by other blocks: read through volatile loads (no stale cache line).
RF_DEVICE void as_combine(const float* part, rf_u32 i, rf_u32 h, rf_u32 row, float* out,
                          rf_u32 n_heads, rf_u32 head_dim, rf_u32 n_split, rf_u32 splits,
                          const float* sinks, float* w_sh) {
    const rf_u32 lane = RF_TID_X % RF_WARP_SIZE;
    const rf_u64 stride = (rf_u64)head_dim + 2;
    const volatile float* p = part + ((rf_u64)i * n_heads + h) * n_split * stride;
    float* o = out + ((rf_u64)row * n_heads + h) * head_dim;
    float big = -__builtin_huge_valf();
    for (rf_u32 s = lane; s < splits; s += RF_WARP_SIZE) {
        const float ms = p[s * stride + head_dim];
        big = ms > big ? ms : big;
    }
    big = rf_warp_max_f32(big);
    if (sinks) big = sinks[h] > big ? sinks[h] : big;
    float den = 0.0f;
    for (rf_u32 s = lane; s < splits; s += RF_WARP_SIZE) {
        const float ms = p[s * stride + head_dim];
        // A split without keys (m = -inf) weighs 0; so does every split when none has keys.
        const float w = ms == -__builtin_huge_valf() ? 0.0f : rf_expf(ms - big);
        w_sh[s] = w;
        den += w * p[s * stride + head_dim + 1];
    }
    den = rf_warp_sum_f32(den);
    if (sinks) den += rf_expf(sinks[h] - big);
    rf_sync_warp();  // w_sh[] written by every lane
    const float inv = den > 0.0f ? 1.0f / den : 0.0f;
    for (rf_u32 d = lane; d < head_dim; d += RF_WARP_SIZE) {
        float num = 0.0f;
#pragma unroll 4
        for (rf_u32 s = 0; s < splits; ++s) num += w_sh[s] * p[s * stride + d];
        o[d] = num * inv;
    }
}

RF_KERNEL(RF_WARP_SIZE * AS_GC) void attention_rows_split_f16(const float* q, const rf_u64* blocks,
                                                              rf_u32 table_stride, rf_u64 k_off,
                                                              rf_u64 v_off, const rf_u32* rows,
                                                              const rf_u32* lens, float* part,
                                                              rf_u32 n_heads, rf_u32 n_kv_heads,
                                                              rf_u32 head_dim, float scale,
                                                              rf_u32 n_split, rf_u32 window,
                                                              float* out, const float* sinks,
                                                              rf_u32* counters) {
    RF_GRID_DEP_BEGIN();
    __shared__ float q_sh[AS_GC * AS_MAX_HD];
    __shared__ float p_sh[AS_GC * RF_WARP_SIZE];
    __shared__ float w_sh[AS_GC * AS_MAX_SPLIT];
    __shared__ rf_u32 last_sh;
    const rf_u32 x = RF_BID_X, i = RF_BID_Z, warp = RF_TID_X / RF_WARP_SIZE;
    const rf_u32 len = lens[i];
    const rf_u32 first = att_first_key(len, window);
    const rf_u32 splits = as_splits(len - first, n_split);
    const rf_u32 group = n_heads / n_kv_heads;
    const rf_u32 n_gc = (group + AS_GC - 1) / AS_GC;
    const rf_u32 kvh = RF_BID_Y / n_gc, gchunk = RF_BID_Y % n_gc;
    const rf_u32 h0 = kvh * group + gchunk * AS_GC;
    const rf_u32 gc = group - gchunk * AS_GC < AS_GC ? group - gchunk * AS_GC : AS_GC;
    if (x >= splits) return;  // the whole block, before any barrier
    const rf_u32 h = h0 + (warp < gc ? warp : 0);  // warps past gc only join the barriers
    const rf_u32 cs = (len - first + splits - 1) / splits;
    const rf_u32 c0 = first + x * cs < len ? first + x * cs : len;
    const rf_u32 c1 = c0 + cs < len ? c0 + cs : len;
    const rf_u64 kv_stride = (rf_u64)n_kv_heads * head_dim;
    const float* qrow = q + ((rf_u64)rows[i] * n_heads + h) * head_dim;
    const rf_u64* table = blocks + (rf_u64)i * table_stride;
    const kv_paged kb = kv_at_head(kv_paged{table, k_off, kv_stride}, kvh, head_dim);
    const kv_paged vb = kv_at_head(kv_paged{table, v_off, kv_stride}, kvh, head_dim);
    float* slot = part + (((rf_u64)i * n_heads + h) * n_split + x) * ((rf_u64)head_dim + 2);
    float* qs = q_sh + warp * AS_MAX_HD;
    float* ps = p_sh + warp * RF_WARP_SIZE;
#define AS_CALL(HD, PAIRS) as_partial<HD, PAIRS>(qrow, kb, vb, slot, head_dim, scale, c0, c1, qs, ps)
    if (warp >= gc) {
        // no head of its own
    } else if (head_dim == 64) {
        as_partial_v8<64>(qrow, kb, vb, slot, scale, c0, c1, qs, ps);
    } else if (head_dim == 128) {
        as_partial_v8<128>(qrow, kb, vb, slot, scale, c0, c1, qs, ps);
    } else if (head_dim == 256) {
        as_partial_v8<256>(qrow, kb, vb, slot, scale, c0, c1, qs, ps);
    } else {
        const rf_u32 pairs = AS_PAIRS(head_dim);
        if (pairs <= 1) {
            AS_CALL(0, 1);
        } else if (pairs <= 2) {
            AS_CALL(0, 2);
        } else {
            AS_CALL(0, AS_PAIRS(AS_MAX_HD));
        }
    }
#undef AS_CALL
    // Pass 2 in the block that finishes last for (sequence i, this head chunk): the counter of
    // the chunk counts finished blocks (reset by the last one, so every launch, replays
    // included, starts from 0).
    rf_fence_device();  // this thread's partials before the count
    rf_sync_block();
    if (RF_TID_X == 0) {
        rf_u32* c = counters + (rf_u64)i * RF_GDIM_Y + RF_BID_Y;
        const rf_u32 done = rf_atomic_add_u32(c, 1u) + 1u;
        last_sh = done == splits ? 1u : 0u;
        if (done == splits) *c = 0u;
    }
    rf_sync_block();
    if (last_sh == 0u || warp >= gc) return;
    rf_fence_device();  // the other blocks' partials after their counts
    as_combine(part, i, h, rows[i], out, n_heads, head_dim, n_split, splits, sinks,
               w_sh + warp * AS_MAX_SPLIT);
}

// ---------------------------------------------------------------------------------------------
// Prefill: attention_prefill_f16_hd<HD> (same arguments and semantics as attention_f16, the
// sliding window included) and attention_prefill_paged_f16_hd<HD> (attention_paged_f16's), for
// head_dim = HD (64, 96 or 128) and many queries. Flash-attention tiling: one block of
// FA_THREADS threads per (head, tile of FA_BQ queries); the block walks the visible keys in
// tiles of FA_BK, staging the tile's K (as f32) and V (f16) in shared memory once for all its
// queries, with the online softmax of attention_f16 per query row.
//
// Thread t serves query row qi = t / 4 of the tile; its lane4 = t % 4 picks keys
// lane4 + 4m (m < FA_BK / 4) for the scores and output dimensions 32c + 8 lane4 + e (c < HD / 32,
// e < 8) for the accumulator. The 4 threads of a row are adjacent lanes of one warp (4 divides
// every warp size), so row maxima and sums are two butterfly shuffles. Padded K/Q rows keep the
// 16-byte shared loads free of bank conflicts. Scores are kept in log2 units (scaled by
// scale * log2(e)) so the exponentials are exp2. Tiles run heaviest first (later query tiles
// see more keys).
#define FA_THREADS 128
#define FA_BQ 32
#define FA_BK 32
#define FA_LOG2E 1.4426950408889634f

struct __attribute__((aligned(16))) fa_f32x4 {
    float x, y, z, w;
};
struct __attribute__((aligned(16))) fa_u32x4 {
    rf_u32 x, y, z, w;
};

RF_DEVICE float fa_h(rf_u32 bits16) {
    return rf_half_to_f32(__builtin_bit_cast(rf_half, (unsigned short)bits16));
}

// acc[0..2] += p * (the two f16 values packed in w).
RF_DEVICE void fa_axpy2(float* acc, float p, rf_u32 w) {
    acc[0] += p * fa_h(w & 0xffffu);
    acc[1] += p * fa_h(w >> 16);
}

template <int HD, typename KV>
RF_DEVICE void attention_prefill(const float* q, KV k, KV v, float* out,
                                 rf_u32 n_q, rf_u32 n_kv, rf_u32 n_heads, rf_u32 n_kv_heads,
                                 float scale, rf_u32 window, const float* sinks) {
    constexpr int QK_STRIDE = HD + 4;  // floats per staged Q / K row
    constexpr int NC = HD / 32;        // 8-value output chunks per thread
    constexpr int NK = FA_BK / 4;      // keys per thread per tile
    __shared__ __attribute__((aligned(16))) float qs[FA_BQ * QK_STRIDE];
    __shared__ __attribute__((aligned(16))) float ks[FA_BK * QK_STRIDE];
    __shared__ __attribute__((aligned(16))) rf_half vs[FA_BK * HD];
    __shared__ float ps[FA_BQ * (FA_BK + 1)];

    const rf_u32 t = RF_TID_X, qi = t / 4, lane4 = t % 4;
    const rf_u32 head = RF_BID_X;
    const rf_u32 q0 = (RF_GDIM_Y - 1 - RF_BID_Y) * FA_BQ;  // heaviest tiles first
    const rf_u32 kv_head = head / (n_heads / n_kv_heads);
    k = kv_at_head(k, kv_head, HD);
    v = kv_at_head(v, kv_head, HD);
    const rf_u32 q_end = q0 + FA_BQ < n_q ? q0 + FA_BQ : n_q;
    // Query i sees keys 0 .. n_kv - n_q + i (inclusive): the first `visible(i)` keys; keys
    // 0..kv_end are visible to some query of the tile.
    const rf_u32 kv_end = n_kv + q_end > n_q ? n_kv + q_end - n_q : 0;
    const rf_u32 my_q = q0 + qi;
    const bool row_valid = my_q < n_q;
    const rf_u32 my_visible = row_valid && n_kv + my_q + 1 > n_q ? n_kv + my_q + 1 - n_q : 0;
    const rf_u32 my_first = att_first_key(my_visible, window);
    // Keys before the window of the tile's first query are visible to none of its queries.
    const rf_u32 q0_visible = n_kv + q0 + 1 > n_q ? n_kv + q0 + 1 - n_q : 0;
    const rf_u32 kv_begin = (att_first_key(q0_visible, window) / FA_BK) * FA_BK;
    const float s_scale = scale * FA_LOG2E;

    for (rf_u32 i = t; i < FA_BQ * HD; i += FA_THREADS) {
        const rf_u32 r = i / HD, d = i % HD;
        float x = 0.0f;
        if (q0 + r < n_q) x = q[((rf_u64)(q0 + r) * n_heads + head) * HD + d];
        qs[r * QK_STRIDE + d] = rf_half_to_f32(rf_f32_to_half(x));
    }

    float acc[NC * 8];
#pragma unroll
    for (int a = 0; a < NC * 8; ++a) acc[a] = 0.0f;
    float m = -__builtin_huge_valf(), l = 0.0f;

    for (rf_u32 j0 = kv_begin; j0 < kv_end; j0 += FA_BK) {
        rf_sync_block();  // previous tile's ks/vs/ps fully read (and qs written, first time)
        for (rf_u32 i = t; i < FA_BK * HD; i += FA_THREADS) {
            const rf_u32 r = i / HD, d = i % HD;
            const rf_u32 j = j0 + r;
            ks[r * QK_STRIDE + d] =
                j < n_kv ? rf_half_to_f32(kv_row(k, j)[d]) : 0.0f;
        }
        for (rf_u32 i = t; i < FA_BK * HD / 8; i += FA_THREADS) {
            const rf_u32 r = i / (HD / 8), c8 = i % (HD / 8);
            const rf_u32 j = j0 + r;
            const rf_u32 jc = j < n_kv ? j : n_kv - 1;  // n_kv >= 1 here (kv_end > 0)
            fa_u32x4 w = *(const fa_u32x4*)(kv_row(v, jc) + 8 * c8);
            if (j >= n_kv) {  // rows past the cache's end are zero, never junk
                w.x = 0u;
                w.y = 0u;
                w.z = 0u;
                w.w = 0u;
            }
            *(fa_u32x4*)(vs + r * HD + 8 * c8) = w;
        }
        rf_sync_block();

        float s[NK];
#pragma unroll
        for (int mm = 0; mm < NK; ++mm) s[mm] = 0.0f;
        const float* qrow = qs + qi * QK_STRIDE;
#pragma unroll 4
        for (int d = 0; d < HD; d += 4) {
            const fa_f32x4 qv = *(const fa_f32x4*)(qrow + d);
#pragma unroll
            for (int mm = 0; mm < NK; ++mm) {
                const fa_f32x4 kv = *(const fa_f32x4*)(ks + (lane4 + 4 * mm) * QK_STRIDE + d);
                s[mm] += qv.x * kv.x;
                s[mm] += qv.y * kv.y;
                s[mm] += qv.z * kv.z;
                s[mm] += qv.w * kv.w;
            }
        }
        float tile_max = -__builtin_huge_valf();
#pragma unroll
        for (int mm = 0; mm < NK; ++mm) {
            const rf_u32 j = j0 + lane4 + 4 * mm;
            s[mm] = j >= my_first && j < my_visible ? s[mm] * s_scale : -__builtin_huge_valf();
            tile_max = s[mm] > tile_max ? s[mm] : tile_max;
        }
        float o = rf_shfl_xor_f32(tile_max, 1);
        tile_max = o > tile_max ? o : tile_max;
        o = rf_shfl_xor_f32(tile_max, 2);
        tile_max = o > tile_max ? o : tile_max;
        const float m_new = m > tile_max ? m : tile_max;
        const bool none = m_new == -__builtin_huge_valf();  // nothing visible yet
        const float corr = none ? 1.0f : rf_exp2f(m - m_new);
        float psum = 0.0f;
#pragma unroll
        for (int mm = 0; mm < NK; ++mm) {
            const float p = none ? 0.0f : rf_exp2f(s[mm] - m_new);
            psum += p;
            ps[qi * (FA_BK + 1) + lane4 + 4 * mm] = p;
        }
        psum += rf_shfl_xor_f32(psum, 1);
        psum += rf_shfl_xor_f32(psum, 2);
        l = l * corr + psum;
        m = m_new;
#pragma unroll
        for (int a = 0; a < NC * 8; ++a) acc[a] *= corr;
        rf_sync_block();  // ps of this row written by its 4 threads

        const float* prow = ps + qi * (FA_BK + 1);
        const rf_u32 n_tile = kv_end - j0 < FA_BK ? kv_end - j0 : FA_BK;
        for (rf_u32 jj = 0; jj < n_tile; ++jj) {
            const float p = prow[jj];
#pragma unroll
            for (int c = 0; c < NC; ++c) {
                const fa_u32x4 w = *(const fa_u32x4*)(vs + jj * HD + 32 * c + 8 * lane4);
                fa_axpy2(acc + c * 8 + 0, p, w.x);
                fa_axpy2(acc + c * 8 + 2, p, w.y);
                fa_axpy2(acc + c * 8 + 4, p, w.z);
                fa_axpy2(acc + c * 8 + 6, p, w.w);
            }
        }
    }

    if (!row_valid) return;
    const float inv = att_out_scale(m, l, sinks, head, true);
    float* orow = out + ((rf_u64)my_q * n_heads + head) * HD;
#pragma unroll
    for (int c = 0; c < NC; ++c) {
        fa_f32x4 a = {acc[c * 8] * inv, acc[c * 8 + 1] * inv, acc[c * 8 + 2] * inv, acc[c * 8 + 3] * inv};
        fa_f32x4 b = {acc[c * 8 + 4] * inv, acc[c * 8 + 5] * inv, acc[c * 8 + 6] * inv, acc[c * 8 + 7] * inv};
        *(fa_f32x4*)(orow + 32 * c + 8 * lane4) = a;
        *(fa_f32x4*)(orow + 32 * c + 8 * lane4 + 4) = b;
    }
}

#define RF_ATTENTION_PREFILL(HD)                                                                  \
    RF_KERNEL(FA_THREADS) void attention_prefill_f16_hd##HD(                                      \
        const float* q, const rf_half* k, const rf_half* v, float* out, rf_u32 n_q, rf_u32 n_kv,  \
        rf_u32 n_heads, rf_u32 n_kv_heads, rf_u32 head_dim, float scale, rf_u32 window,          \
        const float* sinks) {                                                                     \
        RF_GRID_DEP_BEGIN();                                                                  \
        (void)head_dim;                                                                           \
        const rf_u64 stride = (rf_u64)n_kv_heads * HD;                                            \
        attention_prefill<HD>(q, kv_contig{k, stride}, kv_contig{v, stride}, out, n_q, n_kv,       \
                              n_heads, n_kv_heads, scale, window, sinks);                         \
    }                                                                                             \
    RF_KERNEL(FA_THREADS) void attention_prefill_paged_f16_hd##HD(                                \
        const float* q, const rf_u64* blocks, rf_u64 k_off, rf_u64 v_off, float* out, rf_u32 n_q, \
        rf_u32 n_kv, rf_u32 n_heads, rf_u32 n_kv_heads, rf_u32 head_dim, float scale,             \
        rf_u32 window, const float* sinks) {                                                      \
        RF_GRID_DEP_BEGIN();                                                                  \
        (void)head_dim;                                                                           \
        const rf_u64 stride = (rf_u64)n_kv_heads * HD;                                            \
        attention_prefill<HD>(q, kv_paged{blocks, k_off, stride}, kv_paged{blocks, v_off, stride}, \
                              out, n_q, n_kv, n_heads, n_kv_heads, scale, window, sinks);         \
    }

RF_ATTENTION_PREFILL(64)
RF_ATTENTION_PREFILL(96)
RF_ATTENTION_PREFILL(128)
