// Decode attention (one query token per sequence) over an f16 KV cache, split over the key
// sequence ("flash-decoding"), GQA/MQA, for a graph that replays unchanged as the cache grows.
//
// q:   [n_heads][head_dim] f32          k, v: [capacity][n_kv_heads][head_dim] f16 (token-major)
// out: [n_heads][head_dim] f32           *len_ptr: keys visible to the query (read on the device,
//                                        clamped to the capacity)
//
// Pass 1, attention_decode_partial_f16: grid (n_chunks, n_kv_heads), AD_THREADS threads. Block
// (c, g) takes keys c*AD_CHUNK .. min((c+1)*AD_CHUNK, len) of KV head g; each of its warps takes
// AD_KEYS_PER_WARP consecutive keys of them (a "sub-chunk") for every query head of the group
// (K and V are read once for the group). The lanes split the head dimension (lane l holds
// dimensions l, l + warp size, ...), so every key is one coalesced row read and one warp sum,
// and AD_BATCH keys' K and V rows are in flight at once. A warp keeps an online softmax
// (running maximum m, sum l of exp(s - m), unnormalised sum of exp(s - m) * v) and writes it to
// the sub-chunk's slot. There are no block barriers: warps past len return at once, so the grid
// can be sized for the capacity.
// Pass 2, attention_decode_combine_f32: one block of AD_COMBINE_THREADS per query head rescales
// the sub-chunks' partials to the global maximum (threads split over sub-chunks and dimensions)
// and divides by the global sum. As in the CPU op, the query is rounded to f16 before its dot
// products with K, and scores are multiplied by `scale`.
//
// History (H100, ncu 2025.3, SM clock 1.59 GHz under ncu): the previous version gave each thread one
// key's whole dot product (query from shared memory) and then a V loop over all 128 keys of the
// chunk, and cost about 57 us whatever the depth. This lane-split version measured the same:
// partial 89.7k cycles (56.5 us) at depth 512 and 91.4k (57.5 us) at depth 4096 for the
// Llama-3-8B shape, 255 registers (theoretical occupancy 12.5%), DRAM 1-9%; combine 5-10 us.
// So the fixed cost is not the per-thread serial work: see bench_decode_layer's notes.
#include "rf_platform.h"

#define AD_THREADS 128
#define AD_CHUNK AD_THREADS
#define AD_MAX_GROUP 8
#define AD_MAX_HEAD_DIM 256
#define AD_WARPS (AD_THREADS / RF_WARP_SIZE)
#define AD_KEYS_PER_WARP (AD_CHUNK / AD_WARPS)
#define AD_COMBINE_THREADS 512
#define AD_WEIGHTS 2048  // sub-chunk weights the combine keeps in shared memory

// Keys [k0, k0 + n_keys) of KV head kvh for query heads h0 .. h0 + group; DPL dimensions per
// lane (DPL * RF_WARP_SIZE >= head_dim), BATCH keys loaded before their first use.
template <int DPL, int BATCH, int GROUP>
RF_DEVICE void ad_warp_partial(const float* q, const rf_half* k, const rf_half* v, float* part_acc,
                               float* part_ml, rf_u32 n_heads, rf_u32 n_kv_heads, rf_u32 head_dim,
                               float scale, rf_u32 kvh, rf_u32 k0, rf_u32 n_keys, rf_u32 sub) {
    const rf_u32 lane = RF_TID_X % RF_WARP_SIZE;
    const rf_u32 h0 = kvh * GROUP;
    const rf_u64 kv_stride = (rf_u64)n_kv_heads * head_dim;

    float qr[GROUP][DPL];
#pragma unroll
    for (rf_u32 g = 0; g < GROUP; ++g) {
#pragma unroll
        for (rf_u32 i = 0; i < DPL; ++i) {
            const rf_u32 d = lane + i * RF_WARP_SIZE;
            qr[g][i] = d < head_dim
                           ? rf_half_to_f32(rf_f32_to_half(q[(rf_u64)(h0 + g) * head_dim + d]))
                           : 0.0f;
        }
    }
    float m[GROUP], l[GROUP], acc[GROUP][DPL];
#pragma unroll
    for (rf_u32 g = 0; g < GROUP; ++g) {
        m[g] = -__builtin_huge_valf();
        l[g] = 0.0f;
#pragma unroll
        for (rf_u32 i = 0; i < DPL; ++i) acc[g][i] = 0.0f;
    }

    const rf_half* kb = k + (rf_u64)k0 * kv_stride + (rf_u64)kvh * head_dim;
    const rf_half* vb = v + (rf_u64)k0 * kv_stride + (rf_u64)kvh * head_dim;
    for (rf_u32 j0 = 0; j0 < n_keys; j0 += BATCH) {  // the same for the whole warp
        float kf[BATCH][DPL], vf[BATCH][DPL];
#pragma unroll
        for (rf_u32 u = 0; u < BATCH; ++u) {
#pragma unroll
            for (rf_u32 i = 0; i < DPL; ++i) {
                const rf_u32 d = lane + i * RF_WARP_SIZE;
                const bool ok = j0 + u < n_keys && d < head_dim;
                const rf_u64 at = (rf_u64)(j0 + u) * kv_stride + d;
                kf[u][i] = ok ? rf_half_to_f32(kb[at]) : 0.0f;
                vf[u][i] = ok ? rf_half_to_f32(vb[at]) : 0.0f;
            }
        }
#pragma unroll
        for (rf_u32 g = 0; g < GROUP; ++g) {
            float s[BATCH];
            float mx = m[g];
#pragma unroll
            for (rf_u32 u = 0; u < BATCH; ++u) {
                float part = 0.0f;
#pragma unroll
                for (rf_u32 i = 0; i < DPL; ++i) part += qr[g][i] * kf[u][i];
                s[u] = rf_warp_sum_f32(part) * scale;
                if (j0 + u < n_keys) mx = s[u] > mx ? s[u] : mx;
            }
            // mx is finite (key j0 is valid); m[g] is -inf only before the first batch.
            const float corr = j0 == 0 ? 0.0f : rf_expf(m[g] - mx);
            l[g] *= corr;
#pragma unroll
            for (rf_u32 i = 0; i < DPL; ++i) acc[g][i] *= corr;
#pragma unroll
            for (rf_u32 u = 0; u < BATCH; ++u) {
                if (j0 + u >= n_keys) break;
                const float p = rf_expf(s[u] - mx);
                l[g] += p;
#pragma unroll
                for (rf_u32 i = 0; i < DPL; ++i) acc[g][i] += p * vf[u][i];
            }
            m[g] = mx;
        }
    }
#pragma unroll
    for (rf_u32 g = 0; g < GROUP; ++g) {
        const rf_u64 slot = (rf_u64)sub * n_heads + h0 + g;
#pragma unroll
        for (rf_u32 i = 0; i < DPL; ++i) {
            const rf_u32 d = lane + i * RF_WARP_SIZE;
            if (d < head_dim) part_acc[slot * head_dim + d] = acc[g][i];
        }
        if (lane == 0) {
            part_ml[2 * slot] = m[g];
            part_ml[2 * slot + 1] = l[g];
        }
    }
}

// Picks the lane width (dimensions per lane) for a group of GROUP query heads.
template <int GROUP>
RF_DEVICE void ad_partial_dpl(const float* q, const rf_half* k, const rf_half* v, float* part_acc,
                              float* part_ml, rf_u32 n_heads, rf_u32 n_kv_heads, rf_u32 head_dim,
                              float scale, rf_u32 kvh, rf_u32 k0, rf_u32 n_keys, rf_u32 sub,
                              rf_u32 dpl) {
    if (dpl <= 1) {
        ad_warp_partial<1, 8, GROUP>(q, k, v, part_acc, part_ml, n_heads, n_kv_heads, head_dim,
                                     scale, kvh, k0, n_keys, sub);
    } else if (dpl <= 2) {
        ad_warp_partial<2, 8, GROUP>(q, k, v, part_acc, part_ml, n_heads, n_kv_heads, head_dim,
                                     scale, kvh, k0, n_keys, sub);
    } else if (dpl <= 4) {
        ad_warp_partial<4, 8, GROUP>(q, k, v, part_acc, part_ml, n_heads, n_kv_heads, head_dim,
                                     scale, kvh, k0, n_keys, sub);
    } else {
        ad_warp_partial<8, 4, GROUP>(q, k, v, part_acc, part_ml, n_heads, n_kv_heads, head_dim,
                                     scale, kvh, k0, n_keys, sub);
    }
}

#define AD_PARTIAL_ARGS \
    q, k, v, part_acc, part_ml, n_heads, n_kv_heads, head_dim, scale, kvh, k0, n_keys, sub

// part_acc: [n_subs][n_heads][head_dim]; part_ml: [n_subs][n_heads][2] = (m, l), sub-chunk s
// holding keys s*AD_KEYS_PER_WARP .. (s+1)*AD_KEYS_PER_WARP.
RF_KERNEL(AD_THREADS) void attention_decode_partial_f16(
    const float* q, const rf_half* k, const rf_half* v, const rf_u32* len_ptr, float* part_acc,
    float* part_ml, rf_u32 n_heads, rf_u32 n_kv_heads, rf_u32 head_dim, float scale,
    rf_u32 capacity) {
    const rf_u32 warp = RF_TID_X / RF_WARP_SIZE, kvh = RF_BID_Y;
    const rf_u32 len = *len_ptr < capacity ? *len_ptr : capacity;
    const rf_u32 k0 = RF_BID_X * AD_CHUNK + warp * AD_KEYS_PER_WARP;
    if (k0 >= len) return;  // the same for the whole warp; no block barrier follows
    const rf_u32 n_keys = len - k0 < AD_KEYS_PER_WARP ? len - k0 : AD_KEYS_PER_WARP;
    const rf_u32 sub = k0 / AD_KEYS_PER_WARP;
    const rf_u32 dpl = (head_dim + RF_WARP_SIZE - 1) / RF_WARP_SIZE;
    // One instantiation per exact group size: the unrolled loops hold only the group's heads.
    // (Hypothesis under test: the group-8 unroll made the loop body ~30 KB of code, and
    // fetching it may be the fixed ~90k cycles per block ncu showed whatever the work.)
    switch (n_heads / n_kv_heads) {
        case 1: ad_partial_dpl<1>(AD_PARTIAL_ARGS, dpl); break;
        case 2: ad_partial_dpl<2>(AD_PARTIAL_ARGS, dpl); break;
        case 3: ad_partial_dpl<3>(AD_PARTIAL_ARGS, dpl); break;
        case 4: ad_partial_dpl<4>(AD_PARTIAL_ARGS, dpl); break;
        case 5: ad_partial_dpl<5>(AD_PARTIAL_ARGS, dpl); break;
        case 6: ad_partial_dpl<6>(AD_PARTIAL_ARGS, dpl); break;
        case 7: ad_partial_dpl<7>(AD_PARTIAL_ARGS, dpl); break;
        default: ad_partial_dpl<8>(AD_PARTIAL_ARGS, dpl); break;
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

// One block per query head: out[h] = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s over the
// sub-chunks below len (M the largest m_s). len = 0 writes zeros (no key visible). The weights
// exp(m_s - M) of the first AD_WEIGHTS sub-chunks are computed once, in parallel, into shared
// memory; the weighted sum is split over AD_COMBINE_THREADS / head_dim slices of sub-chunks.
RF_KERNEL(AD_COMBINE_THREADS) void attention_decode_combine_f32(const float* part_acc,
                                                                const float* part_ml,
                                                                const rf_u32* len_ptr, float* out,
                                                                rf_u32 n_heads, rf_u32 head_dim,
                                                                rf_u32 capacity) {
    __shared__ float wts[AD_WEIGHTS];
    __shared__ float red[AD_COMBINE_THREADS];
    __shared__ float scratch[1024 / RF_WARP_SIZE];
    const rf_u32 h = RF_BID_X, t = RF_TID_X;
    const rf_u32 len = *len_ptr < capacity ? *len_ptr : capacity;
    const rf_u32 n_used = (len + AD_KEYS_PER_WARP - 1) / AD_KEYS_PER_WARP;
    float m = -__builtin_huge_valf();
    for (rf_u32 c = t; c < n_used; c += AD_COMBINE_THREADS) {
        const float mc = part_ml[2 * ((rf_u64)c * n_heads + h)];
        m = mc > m ? mc : m;
    }
    m = ad_block_max(m, scratch);
    float l = 0.0f;
    for (rf_u32 c = t; c < n_used; c += AD_COMBINE_THREADS) {
        const rf_u64 slot = (rf_u64)c * n_heads + h;
        const float w = rf_expf(part_ml[2 * slot] - m);
        if (c < AD_WEIGHTS) wts[c] = w;
        l += part_ml[2 * slot + 1] * w;
    }
    l = rf_block_sum_f32(l, scratch);  // its barriers also publish wts[]
    const float inv = n_used > 0 ? 1.0f / l : 0.0f;
    const rf_u32 slices = AD_COMBINE_THREADS / head_dim;  // >= 2: head_dim <= 256
    const rf_u32 s = t / head_dim, d = t % head_dim;
    float sum = 0.0f;
    if (s < slices) {
#pragma unroll 4
        for (rf_u32 c = s; c < n_used; c += slices) {
            const rf_u64 slot = (rf_u64)c * n_heads + h;
            const float w = c < AD_WEIGHTS ? wts[c] : rf_expf(part_ml[2 * slot] - m);
            sum += part_acc[slot * head_dim + d] * w;
        }
    }
    red[t] = sum;
    rf_sync_block();
    if (t < head_dim) {
        float total = 0.0f;
        for (rf_u32 j = 0; j < slices; ++j) total += red[j * head_dim + t];
        out[(rf_u64)h * head_dim + t] = total * inv;
    }
}
