// Prefill matrix-matrix products: out[t][r] = sum_c W[r][c] * x[t][c] for many tokens.
//
// mmq_<type>: quantized weights against q8_1 activations (quantize_act.hip), in the tiles of
//             rf_mmq_tile.h (64 weight rows x 32 tokens per block of 256 threads).
// mmf_<type>: F32/F16/BF16 weights against f32 activations (rounded to the weight precision),
//             steps of 32 columns staged as f32 in shared memory, the same tile shape.
// Launch: grid (ceil(rows / 64), ceil(n_tokens / 32)), 256 threads.
#include "rf_platform.h"
#include "rf_quant_blocks.h"
#include "rf_mmq_tile.h"

#define RF_MMQ_KERNEL(name, T)                                                                    \
    RF_KERNEL(RF_MMQ_THREADS)                                                                     \
    void mmq_##name(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 cols, const rf_i8* aqs, \
                    const float* ads, rf_u32 n_tokens, float* out) {                              \
        RF_GRID_DEP_BEGIN();                                                                  \
        __shared__ rf_qb sw[RF_MMQ_ROWS][RF_MMQ_KBLOCKS];                                         \
        __shared__ rf_q8 sa[RF_MMQ_TOKENS][RF_MMQ_KBLOCKS];                                       \
        const rf_u32 t0 = RF_BID_Y * RF_MMQ_TOKENS, left = n_tokens - t0;                          \
        const rf_mmq_tokens tk{nullptr, t0, left < RF_MMQ_TOKENS ? left : RF_MMQ_TOKENS, 1};        \
        rf_mmq<T>(w, row_bytes, rows, cols, aqs, ads, RF_BID_X * RF_MMQ_ROWS, tk, out, sw, sa);    \
    }

RF_MMQ_KERNEL(q4_0, rf_q4_0)
RF_MMQ_KERNEL(q4_1, rf_q4_1)
RF_MMQ_KERNEL(q5_0, rf_q5_0)
RF_MMQ_KERNEL(q5_1, rf_q5_1)
RF_MMQ_KERNEL(q8_0, rf_q8_0)
RF_MMQ_KERNEL(iq4_nl, rf_iq4_nl)
RF_MMQ_KERNEL(mxfp4, rf_mxfp4)
RF_MMQ_KERNEL(q2_k, rf_q2_k)
RF_MMQ_KERNEL(q3_k, rf_q3_k)
RF_MMQ_KERNEL(q4_k, rf_q4_k)
RF_MMQ_KERNEL(q5_k, rf_q5_k)
RF_MMQ_KERNEL(q6_k, rf_q6_k)
RF_MMQ_KERNEL(iq4_xs, rf_iq4_xs)

// ---------------------------------------------------------------------------------------------
// Float weights.
#define RF_MMF_K 32

RF_DEVICE float rf_mmf_load(int ty, const rf_u8* row, rf_u32 c) {
    if (ty == 0) return ((const float*)row)[c];
    const rf_u32 bits = rf_ld_u16(row + 2 * (rf_u64)c);
    return ty == 1 ? rf_f16_bits(bits) : __builtin_bit_cast(float, bits << 16);
}
RF_DEVICE float rf_mmf_round(int ty, float x) {
    if (ty == 0) return x;
    return ty == 1 ? rf_half_to_f32(rf_f32_to_half(x)) : rf_bf16_to_f32(rf_f32_to_bf16(x));
}

// ty: 0 = F32, 1 = F16, 2 = BF16 (a compile-time constant in each kernel below).
RF_DEVICE void rf_mmf(int ty, const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 cols,
                      const float* x, rf_u32 n_tokens, float* out,
                      float (*ws)[RF_MMF_K + 1], float (*xs)[RF_MMF_K + 1]) {
    const rf_u32 tid = RF_TID_X;
    const rf_u32 r0 = RF_BID_X * RF_MMQ_ROWS, t0 = RF_BID_Y * RF_MMQ_TOKENS;
    const rf_u32 my_row = tid % 16, my_tok = tid / 16;
    float acc[4][2];
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[i][0] = acc[i][1] = 0.0f;
    for (rf_u32 k0 = 0; k0 < cols; k0 += RF_MMF_K) {
        for (rf_u32 i = tid; i < RF_MMQ_ROWS * RF_MMF_K; i += RF_MMQ_THREADS) {
            const rf_u32 rl = i / RF_MMF_K, c = k0 + i % RF_MMF_K;
            ws[rl][i % RF_MMF_K] =
                (r0 + rl < rows && c < cols) ? rf_mmf_load(ty, w + (rf_u64)(r0 + rl) * row_bytes, c) : 0.0f;
        }
        for (rf_u32 i = tid; i < RF_MMQ_TOKENS * RF_MMF_K; i += RF_MMQ_THREADS) {
            const rf_u32 tl = i / RF_MMF_K, c = k0 + i % RF_MMF_K;
            xs[tl][i % RF_MMF_K] =
                (t0 + tl < n_tokens && c < cols) ? rf_mmf_round(ty, x[(rf_u64)(t0 + tl) * cols + c]) : 0.0f;
        }
        rf_sync_block();
#pragma unroll 8
        for (int k = 0; k < RF_MMF_K; ++k) {
            const float a0 = xs[my_tok][k], a1 = xs[my_tok + 16][k];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const float wv = ws[my_row + 16 * i][k];
                acc[i][0] += wv * a0;
                acc[i][1] += wv * a1;
            }
        }
        rf_sync_block();
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
        const rf_u32 t = t0 + my_tok + 16 * j;
        if (t >= n_tokens) continue;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const rf_u32 r = r0 + my_row + 16 * i;
            if (r < rows) out[(rf_u64)t * rows + r] = acc[i][j];
        }
    }
}

#define RF_MMF_KERNEL(name, TY)                                                                   \
    RF_KERNEL(RF_MMQ_THREADS)                                                                     \
    void mmf_##name(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 cols, const float* x,   \
                    rf_u32 n_tokens, float* out) {                                                \
        RF_GRID_DEP_BEGIN();                                                                  \
        __shared__ float ws[RF_MMQ_ROWS][RF_MMF_K + 1];                                           \
        __shared__ float xs[RF_MMQ_TOKENS][RF_MMF_K + 1];                                         \
        rf_mmf(TY, w, row_bytes, rows, cols, x, n_tokens, out, ws, xs);                           \
    }

RF_MMF_KERNEL(f32, 0)
RF_MMF_KERNEL(f16, 1)
RF_MMF_KERNEL(bf16, 2)
