// Mixture of experts: the router's top-k on the device (moe_route_f32), the expert matvec that
// reads only the chosen experts' rows (mmvq_id_<type>), the grouped expert matmul for many
// tokens (moe_group_slots, moe_tile_table, mmq_id_<type>) and the weighted sum of the experts'
// outputs (moe_weighted_sum_f32). The expert ids never leave the device, so a step that uses
// them can be captured in a graph.
#include "rf_platform.h"
#include "rf_quant_blocks.h"
#include "rf_mmvq.h"
#include "rf_mmq_tile.h"

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
    RF_GRID_DEP_BEGIN();
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
    RF_GRID_DEP_BEGIN();
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
        RF_GRID_DEP_BEGIN();                                                                  \
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

// out[s][r] = silu(G[ids[s]][r] . x_t) * (U[ids[s]][r] . x_t), t = s / k: the gate and up expert
// matvecs of a slot and the SwiGLU (silu_mul_f32's formula) in one launch, for gate and up of the
// same type and shape. An id outside 0..n_expert writes NaN to the slot's rows.
// Launch: as mmvq_id_<type>.
#define RF_MMVQ_ID_GLU_KERNEL(name, T)                                                            \
    RF_KERNEL(RF_MMV_THREADS)                                                                     \
    void mmvq_id_glu_##name(const rf_u8* wg, const rf_u8* wu, rf_u64 row_bytes, rf_u32 rows,      \
                            rf_u32 chunks, const rf_i8* aqs, const float* ads, rf_u32 cols,       \
                            const rf_u32* ids, rf_u32 n_expert, rf_u32 k, float* out, rf_u32 tpr, \
                            rf_u32 slot0) {                                                       \
        RF_GRID_DEP_BEGIN();                                                                  \
        __shared__ float red[2 * RF_MMV_THREADS / RF_WARP_SIZE];                                  \
        const rf_u32 slot = slot0 + RF_BID_Y, e = ids[slot], tid = RF_TID_X;                      \
        const rf_u32 row = RF_BID_X * (RF_MMV_THREADS / tpr) + tid / tpr;                         \
        float* o = out + (rf_u64)slot * rows;                                                     \
        if (e >= n_expert) {                                                                      \
            if (tid % tpr == 0 && row < rows) o[row] = __builtin_nanf("");                        \
            return;                                                                               \
        }                                                                                         \
        const rf_u64 xr = slot / k, off = ((rf_u64)e * rows + row) * row_bytes;                   \
        float acc[2] = {0.0f, 0.0f};                                                              \
        if (row < rows) {                                                                         \
            const rf_i8* aq = aqs + xr * cols;                                                    \
            const float* ad = ads + 2 * xr * (cols / 32);                                         \
            rf_mmvq_row<T, 1>(wg + off, chunks, aq, ad, cols, 1, tid % tpr, tpr, &acc[0]);        \
            rf_mmvq_row<T, 1>(wu + off, chunks, aq, ad, cols, 1, tid % tpr, tpr, &acc[1]);        \
        }                                                                                         \
        rf_mmv_reduce<2>(acc, tpr, red);                                                          \
        if (tid % tpr == 0 && row < rows) {                                                       \
            const float g = acc[0];                                                               \
            o[row] = (g / (1.0f + rf_expf(-g))) * acc[1];                                         \
        }                                                                                         \
    }

RF_MMVQ_ID_KERNEL(q4_0, rf_q4_0)
RF_MMVQ_ID_KERNEL(q4_1, rf_q4_1)
RF_MMVQ_ID_KERNEL(q5_0, rf_q5_0)
RF_MMVQ_ID_KERNEL(q5_1, rf_q5_1)
RF_MMVQ_ID_KERNEL(q8_0, rf_q8_0)
RF_MMVQ_ID_KERNEL(iq4_nl, rf_iq4_nl)
RF_MMVQ_ID_KERNEL(mxfp4, rf_mxfp4)
RF_MMVQ_ID_KERNEL(q2_k, rf_q2_k)
RF_MMVQ_ID_KERNEL(q3_k, rf_q3_k)
RF_MMVQ_ID_KERNEL(q4_k, rf_q4_k)
RF_MMVQ_ID_KERNEL(q5_k, rf_q5_k)
RF_MMVQ_ID_KERNEL(q6_k, rf_q6_k)
RF_MMVQ_ID_KERNEL(iq4_xs, rf_iq4_xs)

RF_MMVQ_ID_GLU_KERNEL(q4_0, rf_q4_0)
RF_MMVQ_ID_GLU_KERNEL(q4_1, rf_q4_1)
RF_MMVQ_ID_GLU_KERNEL(q5_0, rf_q5_0)
RF_MMVQ_ID_GLU_KERNEL(q5_1, rf_q5_1)
RF_MMVQ_ID_GLU_KERNEL(q8_0, rf_q8_0)
RF_MMVQ_ID_GLU_KERNEL(iq4_nl, rf_iq4_nl)
RF_MMVQ_ID_GLU_KERNEL(mxfp4, rf_mxfp4)
RF_MMVQ_ID_GLU_KERNEL(q2_k, rf_q2_k)
RF_MMVQ_ID_GLU_KERNEL(q3_k, rf_q3_k)
RF_MMVQ_ID_GLU_KERNEL(q4_k, rf_q4_k)
RF_MMVQ_ID_GLU_KERNEL(q5_k, rf_q5_k)
RF_MMVQ_ID_GLU_KERNEL(q6_k, rf_q6_k)
RF_MMVQ_ID_GLU_KERNEL(iq4_xs, rf_iq4_xs)

// ---------------------------------------------------------------------------------------------
// Grouped expert matmul: the slots (token, choice) grouped by expert, then the tiles of
// rf_mmq_tile.h over each expert's slots, so each chosen expert's rows are read once per 32 of
// its slots instead of once per slot. Groups 0..n_expert-1 are the experts; group n_expert
// collects slots whose id is not an expert (their output rows become NaN, as mmvq_id's).

#define RF_MOE_GROUP_THREADS 256

// Block g writes the slots of group g in slot order to perm[g * n_slots ...] and their count to
// counts[g]. Launch: grid.x = n_expert + 1, block.x = RF_MOE_GROUP_THREADS.
RF_KERNEL(RF_MOE_GROUP_THREADS)
void moe_group_slots(const rf_u32* ids, rf_u32 n_slots, rf_u32 n_expert, rf_u32* counts,
                     rf_u32* perm) {
    RF_GRID_DEP_BEGIN();
    __shared__ rf_u32 scan[RF_MOE_GROUP_THREADS];
    const rf_u32 g = RF_BID_X, tid = RF_TID_X;
    rf_u32* out = perm + (rf_u64)g * n_slots;
    rf_u32 base = 0;
    for (rf_u32 s0 = 0; s0 < n_slots; s0 += RF_MOE_GROUP_THREADS) {
        const rf_u32 s = s0 + tid;
        rf_u32 mine = 0;
        if (s < n_slots) {
            const rf_u32 e = ids[s];
            mine = g < n_expert ? (e == g) : (e >= n_expert);
        }
        scan[tid] = mine;
        rf_sync_block();
        // Inclusive scan of the flags (Hillis-Steele; any warp width).
        for (rf_u32 off = 1; off < RF_MOE_GROUP_THREADS; off <<= 1) {
            const rf_u32 v = tid >= off ? scan[tid - off] : 0;
            rf_sync_block();
            scan[tid] += v;
            rf_sync_block();
        }
        if (mine) out[base + scan[tid] - 1] = s;
        base += scan[RF_MOE_GROUP_THREADS - 1];
        rf_sync_block();
    }
    if (tid == 0) counts[g] = base;
}

// tile_first[g] = the tiles of RF_MMQ_TOKENS slots before group g; tile_first[n_groups] = all.
// Launch: one block of one thread.
RF_KERNEL(1)
void moe_tile_table(const rf_u32* counts, rf_u32 n_groups, rf_u32* tile_first) {
    RF_GRID_DEP_BEGIN();
    rf_u32 t = 0;
    for (rf_u32 g = 0; g < n_groups; ++g) {
        tile_first[g] = t;
        t += (counts[g] + RF_MMQ_TOKENS - 1) / RF_MMQ_TOKENS;
    }
    tile_first[n_groups] = t;
}

// out[s][r] = W[ids[s]][r] . x_s for the slots of tile RF_BID_Y (of its group, found in
// tile_first), rows RF_BID_X * 64 ...; x_s is q8_1 row s / act_div (1: a row per slot, k: a row
// per token). Tiles past the last write nothing; the non-expert group writes NaN.
// Launch: grid (ceil(rows / 64), ceil(n_slots / 32) + n_expert + 1), RF_MMQ_THREADS threads.
template <class T>
RF_DEVICE void rf_mmq_id(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 cols,
                         const rf_i8* aqs, const float* ads, const rf_u32* counts,
                         const rf_u32* perm, const rf_u32* tile_first, rf_u32 n_expert,
                         rf_u32 n_slots, rf_u32 act_div, float* out,
                         rf_qb (*sw)[RF_MMQ_KBLOCKS], rf_q8 (*sa)[RF_MMQ_KBLOCKS]) {
    const rf_u32 tile = RF_BID_Y, n_groups = n_expert + 1;
    if (tile >= tile_first[n_groups]) return;
    // The last group whose first tile is at or before this one (a non-empty group).
    rf_u32 lo = 0, hi = n_groups;
    while (hi - lo > 1) {
        const rf_u32 mid = (lo + hi) / 2;
        if (tile_first[mid] <= tile) lo = mid; else hi = mid;
    }
    const rf_u32 j = (tile - tile_first[lo]) * RF_MMQ_TOKENS, left = counts[lo] - j;
    const rf_mmq_tokens tk{perm + (rf_u64)lo * n_slots + j, 0,
                           left < RF_MMQ_TOKENS ? left : RF_MMQ_TOKENS, act_div};
    const rf_u32 r0 = RF_BID_X * RF_MMQ_ROWS;
    if (lo == n_expert) {
        for (rf_u32 i = RF_TID_X; i < tk.n * RF_MMQ_ROWS; i += RF_MMQ_THREADS) {
            const rf_u32 r = r0 + i % RF_MMQ_ROWS;
            if (r < rows) out[(rf_u64)rf_mmq_out_row(tk, i / RF_MMQ_ROWS) * rows + r] = __builtin_nanf("");
        }
        return;
    }
    rf_mmq<T>(w + (rf_u64)lo * rows * row_bytes, row_bytes, rows, cols, aqs, ads, r0, tk, out, sw,
              sa);
}

#define RF_MMQ_ID_KERNEL(name, T)                                                                 \
    RF_KERNEL(RF_MMQ_THREADS)                                                                     \
    void mmq_id_##name(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 cols,                \
                       const rf_i8* aqs, const float* ads, const rf_u32* counts,                  \
                       const rf_u32* perm, const rf_u32* tile_first, rf_u32 n_expert,             \
                       rf_u32 n_slots, rf_u32 act_div, float* out) {                              \
        RF_GRID_DEP_BEGIN();                                                                  \
        __shared__ rf_qb sw[RF_MMQ_ROWS][RF_MMQ_KBLOCKS];                                         \
        __shared__ rf_q8 sa[RF_MMQ_TOKENS][RF_MMQ_KBLOCKS];                                       \
        rf_mmq_id<T>(w, row_bytes, rows, cols, aqs, ads, counts, perm, tile_first, n_expert,      \
                     n_slots, act_div, out, sw, sa);                                              \
    }

RF_MMQ_ID_KERNEL(q4_0, rf_q4_0)
RF_MMQ_ID_KERNEL(q4_1, rf_q4_1)
RF_MMQ_ID_KERNEL(q5_0, rf_q5_0)
RF_MMQ_ID_KERNEL(q5_1, rf_q5_1)
RF_MMQ_ID_KERNEL(q8_0, rf_q8_0)
RF_MMQ_ID_KERNEL(iq4_nl, rf_iq4_nl)
RF_MMQ_ID_KERNEL(mxfp4, rf_mxfp4)
RF_MMQ_ID_KERNEL(q2_k, rf_q2_k)
RF_MMQ_ID_KERNEL(q3_k, rf_q3_k)
RF_MMQ_ID_KERNEL(q4_k, rf_q4_k)
RF_MMQ_ID_KERNEL(q5_k, rf_q5_k)
RF_MMQ_ID_KERNEL(q6_k, rf_q6_k)
RF_MMQ_ID_KERNEL(iq4_xs, rf_iq4_xs)
