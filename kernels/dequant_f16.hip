// Weights and activations to f16, the input format of the vendor BLAS GEMM (prefill path of
// hip::matmul, see rocmforge-tensor/src/hip/matmul_blas.rs).
//
// dequant_f16_<type>(const u8* w, u64 row_bytes, u32 rows, u32 cols, rf_half* out)
//   w: `rows` rows of GGUF blocks, `row_bytes` apart; out: [rows][cols] f16, row-major.
//   One thread per chunk (QB_PER_CHUNK × 32 values of one row, the unit rf_quant_blocks.h's
//   unpackers decode); launched with DQ_STAGE_VALUES / chunk threads per block, grid-stride
//   over rounds of one chunk per thread. Each 32-value piece the unpacker returns holds signed
//   8-bit values q and factors with value = a * q - m + mw (a0/m0 for values 0..15, a1/m1 for
//   16..31): the same numbers the integer-dot kernels multiply. The f16 values are staged in
//   shared memory and the block's consecutive chunks written out as one coalesced run (one
//   thread writing its own 64-256 contiguous bytes ran at ~600 GB/s on an H100).
// to_f16_f32(const float* x, rf_half* out, u64 n)    f32 -> f16, saturating at ±65504 (NaN stays NaN)
// to_f16_bf16(const u16* x, rf_half* out, u64 n)     bf16 -> f16, saturating likewise
#include "rf_quant_blocks.h"

#define DQ_THREADS 256
// Values staged per block: the block size is DQ_STAGE_VALUES / chunk values (256, 128 or 64
// threads), 16 KiB of f16 plus padding.
#define DQ_STAGE_VALUES 8192
#define RF_F16_MAX 65504.0f

struct __attribute__((aligned(16))) rf_half8 {
    rf_half h[8];
};

RF_DEVICE float rf_saturate_f16(float v) {
    // Comparisons are false for NaN, which passes through unchanged.
    if (v > RF_F16_MAX) return RF_F16_MAX;
    if (v < -RF_F16_MAX) return -RF_F16_MAX;
    return v;
}

template <class T>
RF_DEVICE void dequant_f16(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 cols, rf_half* out) {
    constexpr int CHUNK = T::QB_PER_CHUNK * 32;        // values one thread decodes
    constexpr int TPB = DQ_STAGE_VALUES / CHUNK;       // threads per block (the launch's size)
    constexpr int SLOT = (CHUNK + 8) / 8;              // 16-byte vectors per thread slot (+1 pad)
    __shared__ rf_half8 stage[TPB * SLOT];
    const rf_u64 chunks_per_row = cols / CHUNK;
    const rf_u64 total = chunks_per_row * rows;
    const rf_u32 t = RF_TID_X;
    rf_u32x4* dst = (rf_u32x4*)out;
    for (rf_u64 base = (rf_u64)RF_BID_X * TPB; base < total; base += (rf_u64)RF_GDIM_X * TPB) {
        const rf_u64 g = base + t;
        if (g < total) {
            const rf_u64 r = g / chunks_per_row, c = g % chunks_per_row;
            const rf_u64 block = c / (T::BLOCK_VALUES / CHUNK);
            const int sub = (int)(c % (T::BLOCK_VALUES / CHUNK));
            rf_qb pieces[T::QB_PER_CHUNK];
            T::unpack(w + r * row_bytes + block * T::BLOCK_BYTES, sub, pieces);
#pragma unroll
            for (int p = 0; p < T::QB_PER_CHUNK; ++p) {
                const rf_qb& qb = pieces[p];
#pragma unroll
                for (int o = 0; o < 4; ++o) {  // 4 vectors of 8 values
                    const float a = o < 2 ? qb.a0 : qb.a1;
                    const float m = (o < 2 ? qb.m0 : qb.m1) - qb.mw;
                    rf_half8 v;
#pragma unroll
                    for (int k = 0; k < 8; ++k) {
                        const int i = 8 * o + k;
                        const int q = (int)(signed char)(qb.q[i / 4] >> (8 * (i % 4)));
                        v.h[k] = rf_f32_to_half(a * (float)q - m);
                    }
                    stage[t * SLOT + p * 4 + o] = v;
                }
            }
        }
        rf_sync_block();
        // Chunks base.. are consecutive in the output ([rows][cols] row-major): the block writes
        // them out as one contiguous, coalesced run of 16-byte vectors.
        const rf_u64 left = total - base;
        const rf_u32 n_vec = (rf_u32)(left < (rf_u64)TPB ? left : (rf_u64)TPB) * (CHUNK / 8);
        for (rf_u32 i = t; i < n_vec; i += TPB) {
            const rf_u32x4 v = ((const rf_u32x4*)stage)[(i / (CHUNK / 8)) * SLOT + i % (CHUNK / 8)];
            rf_u32x4* d = dst + base * (CHUNK / 8) + i;
            d->x = v.x;  // field by field: one 16-byte store (a struct copy became two 8-byte ones)
            d->y = v.y;
            d->z = v.z;
            d->w = v.w;
        }
        rf_sync_block();  // the stage is rewritten by the next round
    }
}

#define RF_DEQUANT_F16(name, T)                                                                 \
    RF_KERNEL(DQ_THREADS) void dequant_f16_##name(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, \
                                                  rf_u32 cols, rf_half* out) {                  \
        RF_GRID_DEP_BEGIN();                                                                  \
        dequant_f16<T>(w, row_bytes, rows, cols, out);                                          \
    }

RF_DEQUANT_F16(q4_0, rf_q4_0)
RF_DEQUANT_F16(q4_1, rf_q4_1)
RF_DEQUANT_F16(q5_0, rf_q5_0)
RF_DEQUANT_F16(q5_1, rf_q5_1)
RF_DEQUANT_F16(q8_0, rf_q8_0)
RF_DEQUANT_F16(iq4_nl, rf_iq4_nl)
RF_DEQUANT_F16(mxfp4, rf_mxfp4)
RF_DEQUANT_F16(iq4_xs, rf_iq4_xs)
RF_DEQUANT_F16(q2_k, rf_q2_k)
RF_DEQUANT_F16(q3_k, rf_q3_k)
RF_DEQUANT_F16(q4_k, rf_q4_k)
RF_DEQUANT_F16(q5_k, rf_q5_k)
RF_DEQUANT_F16(q6_k, rf_q6_k)

RF_KERNEL(DQ_THREADS) void to_f16_f32(const float* x, rf_half* out, rf_u64 n) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) {
        out[i] = rf_f32_to_half(rf_saturate_f16(x[i]));
    }
}

RF_KERNEL(DQ_THREADS) void to_f16_bf16(const unsigned short* x, rf_half* out, rf_u64 n) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) {
        out[i] = rf_f32_to_half(rf_saturate_f16(rf_bf16_to_f32(x[i])));
    }
}

RF_KERNEL(DQ_THREADS) void copy_f16(const rf_half* x, rf_half* out, rf_u64 n) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) out[i] = x[i];
}
