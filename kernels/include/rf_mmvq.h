// Shared device functions of the quantized matrix-vector kernels (mmvq.hip, moe.hip): the
// per-row reduction and the one-row-per-thread matvec over q8_1 activations.
#pragma once
#include "rf_platform.h"
#include "rf_quant_blocks.h"

#define RF_MMV_THREADS 256

// Sums NT partial results per row group over its tpr threads (butterfly shuffles inside a warp,
// shared memory across warps when tpr > RF_WARP_SIZE): the totals end in acc of the group's first
// thread (tid % tpr == 0). red holds NT * (RF_MMV_THREADS / RF_WARP_SIZE) floats.
template <int NT>
RF_DEVICE void rf_mmv_reduce(float* acc, rf_u32 tpr, float* red) {
#pragma unroll
    for (int m = RF_WARP_SIZE / 2; m > 0; m >>= 1) {
        if ((rf_u32)m < tpr) {
#pragma unroll
            for (int t = 0; t < NT; ++t) acc[t] += rf_shfl_xor_f32(acc[t], m);
        }
    }
    const rf_u32 tid = RF_TID_X;
    if (tpr > RF_WARP_SIZE) {
        const rf_u32 warp = tid / RF_WARP_SIZE, n_warps = RF_MMV_THREADS / RF_WARP_SIZE;
        if (tid % RF_WARP_SIZE == 0) {
#pragma unroll
            for (int t = 0; t < NT; ++t) red[t * n_warps + warp] = acc[t];
        }
        rf_sync_block();
        if (tid % tpr == 0) {
            const rf_u32 per_row = tpr / RF_WARP_SIZE;
#pragma unroll
            for (int t = 0; t < NT; ++t) {
                float s = 0.0f;
                for (rf_u32 k = 0; k < per_row; ++k) s += red[t * n_warps + warp + k];
                acc[t] = s;
            }
        }
    }
}

// Sums each row's partial results over its tpr threads and writes them.
// With `add` non-zero the sums are added to out (a residual add; each element has one writer).
template <int NT>
RF_DEVICE void rf_mmv_reduce_store(float* acc, rf_u32 tpr, rf_u32 row, rf_u32 rows, rf_u32 t0,
                                   rf_u32 nt, float* out, float* red, rf_u32 add = 0u) {
    rf_mmv_reduce<NT>(acc, tpr, red);
    const rf_u32 tid = RF_TID_X;
    if (tid % tpr == 0 && row < rows) {
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            if ((rf_u32)t < nt) {
                float* o = out + (rf_u64)(t0 + t) * rows + row;
                *o = add != 0u ? *o + acc[t] : acc[t];
            }
        }
    }
}

// Adds the dot products of one unpacked chunk (index c of its row) with each token's blocks.
template <class T, int NT>
RF_DEVICE void rf_mmvq_acc(const rf_qb* qb, rf_u32 c, const rf_i8* aqs, const float* ads,
                           rf_u32 cols, rf_u32 nt, float* acc) {
    constexpr int QPC = T::QB_PER_CHUNK;
    const rf_u32 act_blocks = cols / 32;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        if ((rf_u32)t < nt) {
            const rf_i8* tq = aqs + (rf_u64)t * cols;
            const float* td = ads + 2 * (rf_u64)t * act_blocks;
#pragma unroll
            for (int k = 0; k < QPC; ++k) {
                rf_q8 a;
                rf_load_q8(tq, td, (rf_u64)c * QPC + k, a);
                acc[t] += rf_qb_dot<T>(qb[k], a);
            }
        }
    }
}

// Adds this thread's share (chunks lane, lane + tpr, ...) of one weight row's dot products with
// each token's activations to acc.
template <class T, int NT>
RF_DEVICE void rf_mmvq_row(const rf_u8* wrow, rf_u32 chunks, const rf_i8* aqs, const float* ads,
                           rf_u32 cols, rf_u32 nt, rf_u32 lane, rf_u32 tpr, float* acc) {
    constexpr int QPC = T::QB_PER_CHUNK;
    constexpr int CPB = T::BLOCK_VALUES / (32 * QPC);
    // UNR chunks per step, all loaded before any is used (loads in flight together).
    constexpr int UNR = 4 / QPC;
    rf_u32 c = lane;
    for (; c + (UNR - 1) * tpr < chunks; c += UNR * tpr) {
        rf_qb qb[UNR][QPC];
#pragma unroll
        for (int u = 0; u < UNR; ++u) {
            const rf_u32 cu = c + u * tpr;
            T::unpack(wrow + (rf_u64)(cu / CPB) * T::BLOCK_BYTES, (int)(cu % CPB), qb[u]);
        }
#pragma unroll
        for (int u = 0; u < UNR; ++u) rf_mmvq_acc<T, NT>(qb[u], c + u * tpr, aqs, ads, cols, nt, acc);
    }
    for (; c < chunks; c += tpr) {
        rf_qb qb[QPC];
        T::unpack(wrow + (rf_u64)(c / CPB) * T::BLOCK_BYTES, (int)(c % CPB), qb);
        rf_mmvq_acc<T, NT>(qb, c, aqs, ads, cols, nt, acc);
    }
}

template <class T, int NT>
RF_DEVICE void rf_mmvq(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 chunks,
                       const rf_i8* aqs, const float* ads, rf_u32 cols, rf_u32 n_tokens,
                       float* out, rf_u32 tpr, float* red, rf_u32 add = 0u) {
    const rf_u32 tid = RF_TID_X;
    const rf_u32 row = RF_BID_X * (RF_MMV_THREADS / tpr) + tid / tpr;
    const rf_u32 lane = tid % tpr;
    const rf_u32 t0 = 0;
    const rf_u32 nt = n_tokens - t0 < NT ? n_tokens - t0 : NT;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
    if (row < rows) {
        rf_mmvq_row<T, NT>(w + (rf_u64)row * row_bytes, chunks, aqs, ads, cols, nt, lane, tpr, acc);
    }
    rf_mmv_reduce_store<NT>(acc, tpr, row, rows, t0, nt, out, red, add);
}
