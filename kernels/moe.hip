// Mixture of experts: the router's top-k on the device (moe_route_f32), the expert matvec that
// reads only the chosen experts' rows (mmvq_id_<type>) and the weighted sum of their outputs
// (moe_weighted_sum_f32). The expert ids never leave the device, so a decode step that uses
// them can be captured in a graph.
#include "rf_platform.h"
#include "rf_quant_blocks.h"
#include "rf_mmvq.h"

// Largest expert count moe_route_f32 takes (checked by the launcher).
#define RF_MOE_MAX_EXPERTS 1024

// One warp (RF_WARP_SIZE lanes) per token: softmax of the token's n_expert logits, then k rounds
// of a warp argmax (largest value, smallest index on ties), each chosen expert masked out. The
// chosen ids go to ids[t * k + j], their probabilities to weights[t * k + j], divided by their
// sum (clamped to the smallest normal f16) when normalize is set.
// Launch: grid.x = n_tokens, block.x = RF_WARP_SIZE.
RF_KERNEL(RF_WARP_SIZE)
void moe_route_f32(const float* logits, rf_u32 n_expert, rf_u32 k, rf_u32 normalize, rf_u32* ids,
                   float* weights) {
    __shared__ float vals[RF_MOE_MAX_EXPERTS];
    const rf_u32 t = RF_BID_X, lane = RF_TID_X;
    const float* row = logits + (rf_u64)t * n_expert;
    float mx = -__builtin_huge_valf();
    for (rf_u32 i = lane; i < n_expert; i += RF_WARP_SIZE) {
        vals[i] = row[i];
        mx = row[i] > mx ? row[i] : mx;
    }
    mx = rf_warp_max_f32(mx);
    float sum = 0.0f;
    for (rf_u32 i = lane; i < n_expert; i += RF_WARP_SIZE) sum += rf_expf(vals[i] - mx);
    sum = rf_warp_sum_f32(sum);
    rf_sync_block();
    float chosen_sum = 0.0f;
    for (rf_u32 j = 0; j < k; ++j) {
        float best = -__builtin_huge_valf();
        int best_i = -1;
        for (rf_u32 i = lane; i < n_expert; i += RF_WARP_SIZE) {
            if (vals[i] > best || best_i < 0) {
                best = vals[i];
                best_i = (int)i;
            }
        }
#pragma unroll
        for (int m = RF_WARP_SIZE / 2; m > 0; m >>= 1) {
            const float ob = rf_shfl_xor_f32(best, m);
            const int oi = rf_shfl_xor_i32(best_i, m);
            const bool take = oi >= 0 && (best_i < 0 || ob > best || (ob == best && oi < best_i));
            if (take) {
                best = ob;
                best_i = oi;
            }
        }
        const float p = rf_expf(best - mx) / sum;
        chosen_sum += p;
        if (lane == 0) {
            ids[(rf_u64)t * k + j] = (rf_u32)best_i;
            weights[(rf_u64)t * k + j] = p;
            vals[best_i] = -__builtin_huge_valf();
        }
        rf_sync_block();
    }
    if (normalize) {
        const float div = chosen_sum > 6.103515625e-5f ? chosen_sum : 6.103515625e-5f;
        for (rf_u32 j = lane; j < k; j += RF_WARP_SIZE) weights[(rf_u64)t * k + j] /= div;
    }
}

// out[t][c] = sum_j w[t * k + j] * y[(t * k + j) * width + c], slots added in order.
RF_KERNEL(256)
void moe_weighted_sum_f32(const float* y, const float* w, rf_u32 k, rf_u32 width, rf_u32 n_tokens,
                          float* out) {
    const rf_u64 n = (rf_u64)n_tokens * width;
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) {
        const rf_u64 t = i / width, c = i % width;
        float s = 0.0f;
        for (rf_u32 j = 0; j < k; ++j) s += w[t * k + j] * y[(t * k + j) * width + c];
        out[i] = s;
    }
}

// out[s][r] = W[ids[s]][r] . x_s for every slot s = t * k + j: the matvec of mmvq.hip (one token)
// over the rows of the slot's expert only. x_s is the q8_1 row of the slot (x_per_slot) or of its
// token (s / k). An id outside 0..n_expert writes NaN to the slot's rows.
// Launch: block.x = 256, tpr threads per row; grid.x = ceil(rows / (256 / tpr)), grid.y = slots
// from slot0 (at most 65535 per launch: the launcher splits larger batches).
#define RF_MMVQ_ID_KERNEL(name, T)                                                                \
    RF_KERNEL(RF_MMV_THREADS)                                                                     \
    void mmvq_id_##name(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 chunks,             \
                        const rf_i8* aqs, const float* ads, rf_u32 cols, const rf_u32* ids,       \
                        rf_u32 n_expert, rf_u32 k, rf_u32 x_per_slot, float* out, rf_u32 tpr,     \
                        rf_u32 slot0) {                                                           \
        __shared__ float red[RF_MMV_THREADS / RF_WARP_SIZE];                                      \
        const rf_u32 slot = slot0 + RF_BID_Y, e = ids[slot];                                      \
        float* o = out + (rf_u64)slot * rows;                                                     \
        if (e >= n_expert) {                                                                      \
            const rf_u32 row = RF_BID_X * (RF_MMV_THREADS / tpr) + RF_TID_X / tpr;                \
            if (RF_TID_X % tpr == 0 && row < rows) o[row] = __builtin_nanf("");                   \
            return;                                                                               \
        }                                                                                         \
        const rf_u64 xr = x_per_slot ? slot : slot / k;                                           \
        rf_mmvq<T, 1>(w + (rf_u64)e * rows * row_bytes, row_bytes, rows, chunks, aqs + xr * cols, \
                      ads + 2 * xr * (cols / 32), cols, 1, o, tpr, red);                          \
    }

RF_MMVQ_ID_KERNEL(q4_0, rf_q4_0)
RF_MMVQ_ID_KERNEL(q4_1, rf_q4_1)
RF_MMVQ_ID_KERNEL(q5_0, rf_q5_0)
RF_MMVQ_ID_KERNEL(q5_1, rf_q5_1)
RF_MMVQ_ID_KERNEL(q8_0, rf_q8_0)
RF_MMVQ_ID_KERNEL(iq4_nl, rf_iq4_nl)
RF_MMVQ_ID_KERNEL(q2_k, rf_q2_k)
RF_MMVQ_ID_KERNEL(q3_k, rf_q3_k)
RF_MMVQ_ID_KERNEL(q4_k, rf_q4_k)
RF_MMVQ_ID_KERNEL(q5_k, rf_q5_k)
RF_MMVQ_ID_KERNEL(q6_k, rf_q6_k)
RF_MMVQ_ID_KERNEL(iq4_xs, rf_iq4_xs)
