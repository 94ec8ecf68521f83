// Decode attention (one query token per sequence) over an f16 KV cache, split over the key
// sequence ("flash-decoding"), GQA/MQA, for a graph that replays unchanged as the cache grows.
//
// q:   [n_heads][head_dim] f32          k, v: [capacity][n_kv_heads][head_dim] f16 (token-major)
// out: [n_heads][head_dim] f32           *len_ptr: keys visible to the query (read on the device,
//                                        clamped to the capacity)
//
// Pass 1, attention_decode_partial_f16: grid (n_chunks, n_kv_heads), AD_THREADS threads. Block
// (c, g) takes keys c*AD_CHUNK .. min((c+1)*AD_CHUNK, len) of KV head g for every query head of
// its group (K and V are read once for the group), and writes per query head the chunk's score
// maximum m, the sum l of exp(s - m) and the unnormalised sum of exp(s - m) * v. Blocks whose
// chunk starts at or past len return at once, so the grid can be sized for the capacity.
// Pass 2, attention_decode_combine_f32: one block per query head rescales the partials to the
// global maximum and divides by the global sum. As in the CPU op, the query is rounded to f16
// before its dot products with K, and scores are multiplied by `scale`.
#include "rf_platform.h"

#define AD_THREADS 128
#define AD_CHUNK AD_THREADS
#define AD_MAX_GROUP 8
#define AD_MAX_HEAD_DIM 256
#define AD_ACC (AD_MAX_HEAD_DIM / AD_THREADS)

struct __attribute__((aligned(16))) ad_u32x4 {
    rf_u32 x, y, z, w;
};

RF_DEVICE float ad_half_bits(rf_u32 bits) {
#if defined(RF_NVCC)
    return __half2float(__ushort_as_half((unsigned short)bits));
#else
    return (float)__builtin_bit_cast(rf_half, (unsigned short)bits);
#endif
}

// dot[g] += sum over 2 values of the packed f16 pair `w` (elements d, d+1) times q of head g.
RF_DEVICE void ad_dot_pair(float* dot, const float* qs, rf_u32 head_dim, rf_u32 group, rf_u32 d,
                           rf_u32 w) {
    const float k0 = ad_half_bits(w & 0xffffu), k1 = ad_half_bits(w >> 16);
#pragma unroll
    for (rf_u32 g = 0; g < AD_MAX_GROUP; ++g) {
        if (g < group) dot[g] += qs[g * head_dim + d] * k0 + qs[g * head_dim + d + 1] * k1;
    }
}

// part_acc: [n_chunks][n_heads][head_dim]; part_ml: [n_chunks][n_heads][2] = (m, l).
// vec: 1 when head_dim % 8 == 0 (rows 16-byte aligned: K read with 16-byte loads).
RF_KERNEL(AD_THREADS) void attention_decode_partial_f16(
    const float* q, const rf_half* k, const rf_half* v, const rf_u32* len_ptr, float* part_acc,
    float* part_ml, rf_u32 n_heads, rf_u32 n_kv_heads, rf_u32 head_dim, float scale, rf_u32 vec,
    rf_u32 capacity) {
    __shared__ float qs[AD_MAX_GROUP * AD_MAX_HEAD_DIM];
    __shared__ float probs[AD_MAX_GROUP * AD_CHUNK];
    __shared__ float stats[AD_MAX_GROUP * 2];
    const rf_u32 t = RF_TID_X, chunk = RF_BID_X, kvh = RF_BID_Y;
    const rf_u32 len = *len_ptr < capacity ? *len_ptr : capacity;
    const rf_u32 start = chunk * AD_CHUNK;
    if (start >= len) return;  // the same for the whole block
    const rf_u32 n_keys = len - start < AD_CHUNK ? len - start : AD_CHUNK;
    const rf_u32 group = n_heads / n_kv_heads;
    const rf_u32 h0 = kvh * group;  // first query head of this KV head
    const rf_u64 kv_stride = (rf_u64)n_kv_heads * head_dim;

    for (rf_u32 i = t; i < group * head_dim; i += AD_THREADS)
        qs[i] = rf_half_to_f32(rf_f32_to_half(q[(rf_u64)h0 * head_dim + i]));
    rf_sync_block();

    // Scores: thread t takes key start + t.
    if (t < n_keys) {
        float dot[AD_MAX_GROUP];
#pragma unroll
        for (rf_u32 g = 0; g < AD_MAX_GROUP; ++g) dot[g] = 0.0f;
        const rf_half* krow = k + (rf_u64)(start + t) * kv_stride + (rf_u64)kvh * head_dim;
        if (vec) {
            const ad_u32x4* k4 = (const ad_u32x4*)krow;
            for (rf_u32 d8 = 0; d8 < head_dim / 8; ++d8) {
                const ad_u32x4 w = k4[d8];
                ad_dot_pair(dot, qs, head_dim, group, 8 * d8, w.x);
                ad_dot_pair(dot, qs, head_dim, group, 8 * d8 + 2, w.y);
                ad_dot_pair(dot, qs, head_dim, group, 8 * d8 + 4, w.z);
                ad_dot_pair(dot, qs, head_dim, group, 8 * d8 + 6, w.w);
            }
        } else {
            for (rf_u32 d = 0; d < head_dim; ++d) {
                const float kd = rf_half_to_f32(krow[d]);
#pragma unroll
                for (rf_u32 g = 0; g < AD_MAX_GROUP; ++g) {
                    if (g < group) dot[g] += qs[g * head_dim + d] * kd;
                }
            }
        }
#pragma unroll
        for (rf_u32 g = 0; g < AD_MAX_GROUP; ++g) {
            if (g < group) probs[g * AD_CHUNK + t] = dot[g] * scale;
        }
    }
    rf_sync_block();

    // Softmax statistics of the chunk: warp w takes query heads w, w + n_warps, ...
    const rf_u32 lane = t % RF_WARP_SIZE, warp = t / RF_WARP_SIZE;
    const rf_u32 n_warps = AD_THREADS / RF_WARP_SIZE;
    for (rf_u32 g = warp; g < group; g += n_warps) {
        float* p = probs + g * AD_CHUNK;
        float m = -__builtin_huge_valf();
        for (rf_u32 j = lane; j < n_keys; j += RF_WARP_SIZE) m = p[j] > m ? p[j] : m;
        m = rf_warp_max_f32(m);
        float l = 0.0f;
        for (rf_u32 j = lane; j < n_keys; j += RF_WARP_SIZE) {
            const float e = rf_expf(p[j] - m);
            p[j] = e;
            l += e;
        }
        l = rf_warp_sum_f32(l);
        if (lane == 0) {
            stats[2 * g] = m;
            stats[2 * g + 1] = l;
        }
    }
    rf_sync_block();

    // Weighted sum of V: thread t takes dimensions t, t + AD_THREADS, ... for every head.
    float acc[AD_MAX_GROUP][AD_ACC];
#pragma unroll
    for (rf_u32 g = 0; g < AD_MAX_GROUP; ++g) {
#pragma unroll
        for (rf_u32 a = 0; a < AD_ACC; ++a) acc[g][a] = 0.0f;
    }
    const rf_half* vbase = v + (rf_u64)start * kv_stride + (rf_u64)kvh * head_dim;
    for (rf_u32 j = 0; j < n_keys; ++j) {
        const rf_half* vrow = vbase + (rf_u64)j * kv_stride;
#pragma unroll
        for (rf_u32 a = 0; a < AD_ACC; ++a) {
            const rf_u32 d = t + a * AD_THREADS;
            if (d < head_dim) {
                const float vd = rf_half_to_f32(vrow[d]);
#pragma unroll
                for (rf_u32 g = 0; g < AD_MAX_GROUP; ++g) {
                    if (g < group) acc[g][a] += probs[g * AD_CHUNK + j] * vd;
                }
            }
        }
    }
#pragma unroll
    for (rf_u32 g = 0; g < AD_MAX_GROUP; ++g) {
        if (g >= group) continue;
        const rf_u64 slot = (rf_u64)chunk * n_heads + h0 + g;
#pragma unroll
        for (rf_u32 a = 0; a < AD_ACC; ++a) {
            const rf_u32 d = t + a * AD_THREADS;
            if (d < head_dim) part_acc[slot * head_dim + d] = acc[g][a];
        }
        if (t == 0) {
            part_ml[2 * slot] = stats[2 * g];
            part_ml[2 * slot + 1] = stats[2 * g + 1];
        }
    }
}

// One block per query head: out[h] = sum_c exp(m_c - M) acc_c / sum_c exp(m_c - M) l_c over the
// chunks below len (M the largest m_c). len = 0 writes zeros (no key visible).
RF_KERNEL(AD_THREADS) void attention_decode_combine_f32(const float* part_acc, const float* part_ml,
                                                        const rf_u32* len_ptr, float* out,
                                                        rf_u32 n_heads, rf_u32 head_dim,
                                                        rf_u32 capacity) {
    const rf_u32 h = RF_BID_X, t = RF_TID_X;
    const rf_u32 len = *len_ptr < capacity ? *len_ptr : capacity;
    const rf_u32 n_used = (len + AD_CHUNK - 1) / AD_CHUNK;
    float m = -__builtin_huge_valf();
    for (rf_u32 c = 0; c < n_used; ++c) {
        const float mc = part_ml[2 * ((rf_u64)c * n_heads + h)];
        m = mc > m ? mc : m;
    }
    float l = 0.0f;
    for (rf_u32 c = 0; c < n_used; ++c) {
        const rf_u64 slot = (rf_u64)c * n_heads + h;
        l += part_ml[2 * slot + 1] * rf_expf(part_ml[2 * slot] - m);
    }
    const float inv = n_used > 0 ? 1.0f / l : 0.0f;
    for (rf_u32 d = t; d < head_dim; d += AD_THREADS) {
        float sum = 0.0f;
        for (rf_u32 c = 0; c < n_used; ++c) {
            const rf_u64 slot = (rf_u64)c * n_heads + h;
            sum += part_acc[slot * head_dim + d] * rf_expf(part_ml[2 * slot] - m);
        }
        out[(rf_u64)h * head_dim + d] = sum * inv;
    }
}
