// Causal multi-head attention over an f16 KV cache, GQA/MQA, prefill and decode, any length.
//
// q:   [n_q][n_heads][head_dim] f32          k, v: [n_kv][n_kv_heads][head_dim] f16 (token-major)
// out: [n_q][n_heads][head_dim] f32
// Query i sits at position n_kv - n_q + i and sees keys 0..=that position. Query head h reads KV
// head h / (n_heads / n_kv_heads). Like the CPU op, the query is rounded to f16 before the dot
// products with K, and scores are scaled by `scale`.
//
// One block per (head, query): keys are processed in tiles of ATT_THREADS (one key per thread),
// with an online softmax (running maximum m and sum l; earlier partial sums rescaled by
// exp(m_old - m_new)), so there is no limit on the sequence length. Accumulation in f32.
#include "rf_platform.h"

#define ATT_THREADS 128
#define ATT_MAX_HEAD_DIM 512
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

// One query head's attention over the first `visible` keys of k/v: the body of attention_f16
// and attention_rows_f16 (one block of ATT_THREADS threads).
RF_DEVICE void att_one_query(const float* qrow, const rf_half* k, const rf_half* v, float* orow,
                             rf_u32 visible, rf_u32 head, rf_u32 n_heads, rf_u32 n_kv_heads,
                             rf_u32 head_dim, float scale) {
    __shared__ float q16[ATT_MAX_HEAD_DIM];
    __shared__ float probs[ATT_THREADS];
    __shared__ float max_scratch[ATT_THREADS / RF_WARP_SIZE];
    __shared__ float sum_scratch[ATT_THREADS / RF_WARP_SIZE];
    const rf_u32 t = RF_TID_X;
    const rf_u32 kv_head = head / (n_heads / n_kv_heads);
    const rf_u64 kv_stride = (rf_u64)n_kv_heads * head_dim;
    for (rf_u32 d = t; d < head_dim; d += ATT_THREADS) q16[d] = rf_half_to_f32(rf_f32_to_half(qrow[d]));
    rf_sync_block();

    float acc[ATT_ACC];
#pragma unroll
    for (int a = 0; a < ATT_ACC; ++a) acc[a] = 0.0f;
    float m = -__builtin_huge_valf(), l = 0.0f;

    for (rf_u32 j0 = 0; j0 < visible; j0 += ATT_THREADS) {
        const rf_u32 j = j0 + t;
        float s = -__builtin_huge_valf();
        if (j < visible) {
            const rf_half* krow = k + (rf_u64)j * kv_stride + (rf_u64)kv_head * head_dim;
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
            const rf_half* vrow = v + (rf_u64)(j0 + jj) * kv_stride + (rf_u64)kv_head * head_dim;
#pragma unroll
            for (int a = 0; a < ATT_ACC; ++a) {
                const rf_u32 d = t + (rf_u32)a * ATT_THREADS;
                if (d < head_dim) acc[a] += w * rf_half_to_f32(vrow[d]);
            }
        }
        m = m_new;
        rf_sync_block();  // probs[] is rewritten by the next tile
    }

    const float inv = visible > 0 ? 1.0f / l : 0.0f;
#pragma unroll
    for (int a = 0; a < ATT_ACC; ++a) {
        const rf_u32 d = t + (rf_u32)a * ATT_THREADS;
        if (d < head_dim) orow[d] = acc[a] * inv;
    }
}

RF_KERNEL(ATT_THREADS) void attention_f16(const float* q, const rf_half* k, const rf_half* v,
                                          float* out, rf_u32 n_q, rf_u32 n_kv, rf_u32 n_heads,
                                          rf_u32 n_kv_heads, rf_u32 head_dim, float scale) {
    const rf_u32 head = RF_BID_X, qi = RF_BID_Y;
    const rf_u64 at = ((rf_u64)qi * n_heads + head) * head_dim;
    const rf_u32 visible = n_kv + qi + 1 > n_q ? n_kv + qi + 1 - n_q : 0;
    att_one_query(q + at, k, v, out + at, visible, head, n_heads, n_kv_heads, head_dim, scale);
}

// Ragged batch: query i (block y = i) is row rows[i] of q and out, and attends over the first
// lens[i] keys of its own sequence's caches at k_base[i] / v_base[i] (device addresses). One
// launch serves every decoding sequence of a batch, each with its own cache and length.
RF_KERNEL(ATT_THREADS) void attention_rows_f16(const float* q, const rf_u64* k_base,
                                               const rf_u64* v_base, const rf_u32* rows,
                                               const rf_u32* lens, float* out, rf_u32 n_heads,
                                               rf_u32 n_kv_heads, rf_u32 head_dim, float scale) {
    const rf_u32 head = RF_BID_X, i = RF_BID_Y;
    const rf_u64 at = ((rf_u64)rows[i] * n_heads + head) * head_dim;
    att_one_query(q + at, (const rf_half*)k_base[i], (const rf_half*)v_base[i], out + at, lens[i],
                  head, n_heads, n_kv_heads, head_dim, scale);
}

// ---------------------------------------------------------------------------------------------
// Prefill: attention_prefill_f16_hd<HD>, same arguments and semantics as attention_f16, for
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

template <int HD>
RF_DEVICE void attention_prefill(const float* q, const rf_half* k, const rf_half* v, float* out,
                                 rf_u32 n_q, rf_u32 n_kv, rf_u32 n_heads, rf_u32 n_kv_heads,
                                 float scale) {
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
    const rf_u64 kv_stride = (rf_u64)n_kv_heads * HD;
    const rf_u32 q_end = q0 + FA_BQ < n_q ? q0 + FA_BQ : n_q;
    // Query i sees keys 0 .. n_kv - n_q + i (inclusive): the first `visible(i)` keys; keys
    // 0..kv_end are visible to some query of the tile.
    const rf_u32 kv_end = n_kv + q_end > n_q ? n_kv + q_end - n_q : 0;
    const rf_u32 my_q = q0 + qi;
    const bool row_valid = my_q < n_q;
    const rf_u32 my_visible = row_valid && n_kv + my_q + 1 > n_q ? n_kv + my_q + 1 - n_q : 0;
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

    for (rf_u32 j0 = 0; j0 < kv_end; j0 += FA_BK) {
        rf_sync_block();  // previous tile's ks/vs/ps fully read (and qs written, first time)
        for (rf_u32 i = t; i < FA_BK * HD; i += FA_THREADS) {
            const rf_u32 r = i / HD, d = i % HD;
            const rf_u32 j = j0 + r;
            ks[r * QK_STRIDE + d] =
                j < n_kv ? rf_half_to_f32(k[(rf_u64)j * kv_stride + (rf_u64)kv_head * HD + d]) : 0.0f;
        }
        for (rf_u32 i = t; i < FA_BK * HD / 8; i += FA_THREADS) {
            const rf_u32 r = i / (HD / 8), c8 = i % (HD / 8);
            const rf_u32 j = j0 + r;
            const rf_u32 jc = j < n_kv ? j : n_kv - 1;  // n_kv >= 1 here (kv_end > 0)
            fa_u32x4 w = *(const fa_u32x4*)(v + (rf_u64)jc * kv_stride + (rf_u64)kv_head * HD + 8 * c8);
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
            s[mm] = j < my_visible ? s[mm] * s_scale : -__builtin_huge_valf();
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
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
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
        rf_u32 n_heads, rf_u32 n_kv_heads, rf_u32 head_dim, float scale) {                       \
        (void)head_dim;                                                                           \
        attention_prefill<HD>(q, k, v, out, n_q, n_kv, n_heads, n_kv_heads, scale);               \
    }

RF_ATTENTION_PREFILL(64)
RF_ATTENTION_PREFILL(96)
RF_ATTENTION_PREFILL(128)
