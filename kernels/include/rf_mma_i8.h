// rf_mma_i8.h — the int8 tile product of the tensor-core quantized matmul (mmqt.hip): a 16 x 8
// int32 tile C = A · Bᵀ over 32 (or twice 16) int8 values of K, for one group of 32 threads.
//
// A is 16 rows of int8 in shared memory (row r at a + r * a_stride bytes), B 8 rows (one per
// token, at b + n * b_stride); both hold the 32 K values of one q8_1 block contiguously, 4-byte
// aligned. Every thread of the group holds the same four results, in the layout of PTX's
// mma.m16n8k32 accumulator: with g = lane / 4 and q = lane % 4,
//     c[0] = C[g][2q], c[1] = C[g][2q + 1], c[2] = C[g + 8][2q], c[3] = C[g + 8][2q + 1].
// `lo` / `hi` hold the sums over K values 0..16 and 16..32 separately (the 16-value scales of
// Q6_K / Q2_K / Q3_K), or `lo` the whole sum and `hi` zero when SPLIT is false.
//
// Two implementations with the same results:
// - rf_mma_tile<..., true>: NVIDIA sm_80+ integer tensor cores (mma.sync m16n8k32, or two
//   m16n8k16 when SPLIT). Elsewhere (AMD, older NVIDIA) it falls back to the portable one.
// - rf_mma_tile<..., false>: dp4a / sdot4 on each thread's own four results (any target, any
//   wave size: only `lane` in 0..32 is used, no cross-lane operation).
#pragma once
#include "rf_platform.h"
#include "rf_quant_blocks.h"

#if (defined(RF_NVCC) || defined(RF_CLANG_NVPTX)) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define RF_HAVE_MMA_I8 1
#endif

// The A operand of one group for one K block, loaded once and used for every token tile.
struct rf_mma_a {
#if defined(RF_HAVE_MMA_I8)
    int r[4];  // the mma fragment
#endif
    int w[2][8];  // rows g and g + 8, 32 values each (portable path)
};

template <bool MMA>
RF_DEVICE void rf_mma_load_a(const rf_i8* a, int a_stride, rf_u32 lane, rf_mma_a& f) {
    const rf_u32 g = lane / 4;
#if defined(RF_HAVE_MMA_I8)
    if (MMA) {
        const rf_u32 q = lane % 4;
        const rf_i8* r0 = a + g * a_stride + 4 * q;
        const rf_i8* r8 = r0 + 8 * a_stride;
        f.r[0] = *(const int*)r0;
        f.r[1] = *(const int*)r8;
        f.r[2] = *(const int*)(r0 + 16);
        f.r[3] = *(const int*)(r8 + 16);
        return;
    }
#endif
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const rf_u32x4* p = (const rf_u32x4*)(a + (g + 8 * h) * a_stride);
        const rf_u32x4 x = p[0], y = p[1];
        f.w[h][0] = (int)x.x; f.w[h][1] = (int)x.y; f.w[h][2] = (int)x.z; f.w[h][3] = (int)x.w;
        f.w[h][4] = (int)y.x; f.w[h][5] = (int)y.y; f.w[h][6] = (int)y.z; f.w[h][7] = (int)y.w;
    }
}

#if defined(RF_HAVE_MMA_I8)
RF_DEVICE void rf_mma_k32(const int* a, int b0, int b1, int* c) {
    asm(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};"
        : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0), "r"(0), "r"(0),
          "r"(0));
}
RF_DEVICE void rf_mma_k16(int a0, int a1, int b, int* c) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
        "{%7,%8,%9,%10};"
        : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
        : "r"(a0), "r"(a1), "r"(b), "r"(0), "r"(0), "r"(0), "r"(0));
}
#endif

// A tile sum as float, exactly: |x| < 2^22 (a 32-value int8 dot product is at most 32 * 128 *
// 128 = 2^19), so x + 1.5 * 2^23 is a float whose mantissa holds x. An integer add and a float
// subtract, both full rate, where the int-to-float instruction runs at 1/8 of the FMA rate on
// NVIDIA (16 per SM and clock).
RF_DEVICE float rf_small_i2f(int x) {
    return __builtin_bit_cast(float, x + 0x4B400000) - 12582912.0f;
}

// The tile of the 16 rows of `f` against the 8 token rows at `b` (see the top of the file).
template <bool MMA, bool SPLIT>
RF_DEVICE void rf_mma_tile(const rf_mma_a& f, const rf_i8* b, int b_stride, rf_u32 lane, int* lo,
                           int* hi) {
    const rf_u32 q = lane % 4;
#if defined(RF_HAVE_MMA_I8)
    if (MMA) {
        const rf_u32 g = lane / 4;
        const rf_i8* bp = b + g * b_stride + 4 * q;
        const int b0 = *(const int*)bp, b1 = *(const int*)(bp + 16);
        if (SPLIT) {
            rf_mma_k16(f.r[0], f.r[1], b0, lo);
            rf_mma_k16(f.r[2], f.r[3], b1, hi);
        } else {
            rf_mma_k32(f.r, b0, b1, lo);
#pragma unroll
            for (int i = 0; i < 4; ++i) hi[i] = 0;
        }
        return;
    }
#endif
#pragma unroll
    for (int j = 0; j < 2; ++j) {
        const rf_u32x4* p = (const rf_u32x4*)(b + (2 * q + j) * b_stride);
        const rf_u32x4 x = p[0], y = p[1];
        const int t[8] = {(int)x.x, (int)x.y, (int)x.z, (int)x.w,
                          (int)y.x, (int)y.y, (int)y.z, (int)y.w};
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            int s0 = 0, s1 = 0;
#pragma unroll
            for (int k = 0; k < 4; ++k) s0 = rf_dp4a(f.w[h][k], t[k], s0);
#pragma unroll
            for (int k = 4; k < 8; ++k) s1 = rf_dp4a(f.w[h][k], t[k], s1);
            if (SPLIT) {
                lo[2 * h + j] = s0;
                hi[2 * h + j] = s1;
            } else {
                lo[2 * h + j] = s0 + s1;
                hi[2 * h + j] = 0;
            }
        }
    }
}
