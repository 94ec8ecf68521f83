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
#define AD_UNROLL 8
#define AD_WEIGHTS 1024  // chunk weights the combine keeps in shared memory

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
            // AD_UNROLL 16-byte loads in flight before their first use.
            const ad_u32x4* k4 = (const ad_u32x4*)krow;
            const rf_u32 n8 = head_dim / 8;
            for (rf_u32 d0 = 0; d0 < n8; d0 += AD_UNROLL) {
                ad_u32x4 w[AD_UNROLL];
#pragma unroll
                for (rf_u32 u = 0; u < AD_UNROLL; ++u) {
                    if (d0 + u < n8) w[u] = k4[d0 + u];
                }
#pragma unroll
                for (rf_u32 u = 0; u < AD_UNROLL; ++u) {
                    if (d0 + u < n8) {
                        const rf_u32 d = 8 * (d0 + u);
                        ad_dot_pair(dot, qs, head_dim, group, d, w[u].x);
                        ad_dot_pair(dot, qs, head_dim, group, d + 2, w[u].y);
                        ad_dot_pair(dot, qs, head_dim, group, d + 4, w[u].z);
                        ad_dot_pair(dot, qs, head_dim, group, d + 6, w[u].w);
                    }
                }
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
    // Keys in groups of AD_UNROLL: the group's V loads are all in flight before the first FMA
    // (the sums still run over j in order).
    for (rf_u32 j0 = 0; j0 < n_keys; j0 += AD_UNROLL) {
        float vd[AD_UNROLL][AD_ACC];
#pragma unroll
        for (rf_u32 u = 0; u < AD_UNROLL; ++u) {
#pragma unroll
            for (rf_u32 a = 0; a < AD_ACC; ++a) {
                const rf_u32 d = t + a * AD_THREADS;
                vd[u][a] = j0 + u < n_keys && d < head_dim
                               ? rf_half_to_f32(vbase[(rf_u64)(j0 + u) * kv_stride + d])
                               : 0.0f;
            }
        }
#pragma unroll
        for (rf_u32 u = 0; u < AD_UNROLL; ++u) {
            if (j0 + u >= n_keys) break;
#pragma unroll
            for (rf_u32 a = 0; a < AD_ACC; ++a) {
#pragma unroll
                for (rf_u32 g = 0; g < AD_MAX_GROUP; ++g) {
                    if (g < group) acc[g][a] += probs[g * AD_CHUNK + j0 + u] * vd[u][a];
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

RF_DEVICE float ad_block_max(float v, float* scratch) {
    const rf_u32 lane = RF_TID_X % RF_WARP_SIZE, warp = RF_TID_X / RF_WARP_SIZE;
    const rf_u32 n_warps = RF_BDIM_X / RF_WARP_SIZE;
    v = rf_warp_max_f32(v);
    rf_sync_block();
    if (lane == 0) scratch[warp] = v;
    rf_sync_block();
    v = lane < n_warps ? scratch[lane] : -__builtin_huge_valf();
    return rf_warp_max_f32(v);
}

// One block per query head: out[h] = sum_c exp(m_c - M) acc_c / sum_c exp(m_c - M) l_c over the
// chunks below len (M the largest m_c). len = 0 writes zeros (no key visible). The weights
// exp(m_c - M) of the first AD_WEIGHTS chunks are computed once, in parallel, into shared memory.
RF_KERNEL(AD_THREADS) void attention_decode_combine_f32(const float* part_acc, const float* part_ml,
                                                        const rf_u32* len_ptr, float* out,
                                                        rf_u32 n_heads, rf_u32 head_dim,
                                                        rf_u32 capacity) {
    __shared__ float wts[AD_WEIGHTS];
    __shared__ float scratch[AD_THREADS / RF_WARP_SIZE];
    const rf_u32 h = RF_BID_X, t = RF_TID_X;
    const rf_u32 len = *len_ptr < capacity ? *len_ptr : capacity;
    const rf_u32 n_used = (len + AD_CHUNK - 1) / AD_CHUNK;
    float m = -__builtin_huge_valf();
    for (rf_u32 c = t; c < n_used; c += AD_THREADS) {
        const float mc = part_ml[2 * ((rf_u64)c * n_heads + h)];
        m = mc > m ? mc : m;
    }
    m = ad_block_max(m, scratch);
    float l = 0.0f;
    for (rf_u32 c = t; c < n_used; c += AD_THREADS) {
        const rf_u64 slot = (rf_u64)c * n_heads + h;
        const float w = rf_expf(part_ml[2 * slot] - m);
        if (c < AD_WEIGHTS) wts[c] = w;
        l += part_ml[2 * slot + 1] * w;
    }
    l = rf_block_sum_f32(l, scratch);  // its barriers also publish wts[]
    const float inv = n_used > 0 ? 1.0f / l : 0.0f;
    for (rf_u32 d = t; d < head_dim; d += AD_THREADS) {
        float sum = 0.0f;
#pragma unroll 4
        for (rf_u32 c = 0; c < n_used; ++c) {
            const rf_u64 slot = (rf_u64)c * n_heads + h;
            const float w = c < AD_WEIGHTS ? wts[c] : rf_expf(part_ml[2 * slot] - m);
            sum += part_acc[slot * head_dim + d] * w;
        }
        out[(rf_u64)h * head_dim + d] = sum * inv;
    }
}
