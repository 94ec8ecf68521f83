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

RF_KERNEL(ATT_THREADS) void attention_f16(const float* q, const rf_half* k, const rf_half* v,
                                          float* out, rf_u32 n_q, rf_u32 n_kv, rf_u32 n_heads,
                                          rf_u32 n_kv_heads, rf_u32 head_dim, float scale) {
    __shared__ float q16[ATT_MAX_HEAD_DIM];
    __shared__ float probs[ATT_THREADS];
    __shared__ float max_scratch[ATT_THREADS / RF_WARP_SIZE];
    __shared__ float sum_scratch[ATT_THREADS / RF_WARP_SIZE];
    const rf_u32 t = RF_TID_X, head = RF_BID_X, qi = RF_BID_Y;
    const rf_u32 kv_head = head / (n_heads / n_kv_heads);
    const rf_u64 kv_stride = (rf_u64)n_kv_heads * head_dim;
    const float* qrow = q + ((rf_u64)qi * n_heads + head) * head_dim;
    for (rf_u32 d = t; d < head_dim; d += ATT_THREADS) q16[d] = rf_half_to_f32(rf_f32_to_half(qrow[d]));
    rf_sync_block();

    const rf_u32 visible = n_kv + qi + 1 > n_q ? n_kv + qi + 1 - n_q : 0;
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

    float* orow = out + ((rf_u64)qi * n_heads + head) * head_dim;
    const float inv = visible > 0 ? 1.0f / l : 0.0f;
#pragma unroll
    for (int a = 0; a < ATT_ACC; ++a) {
        const rf_u32 d = t + (rf_u32)a * ATT_THREADS;
        if (d < head_dim) orow[d] = acc[a] * inv;
    }
}
