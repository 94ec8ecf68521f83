// The tile of the quantized matrix-matrix kernels (mmq.hip, and the grouped expert matmul of
// moe.hip): one block of 256 threads computes 64 weight rows x up to 32 tokens. Per step along the
// columns it unpacks 64 rows x 256 values of the weight into shared memory once (as rf_qb records,
// rf_quant_blocks.h) and the tokens' q8_1 activation blocks beside them; each thread then takes
// the dot products of 4 rows x 2 tokens from shared memory. Each weight byte is read from device
// memory once per tile of tokens.
//
// The tile's tokens are either dense (map == nullptr: token i of the tile is row t0 + i of the
// activations and of the output) or gathered (token i is slot map[i]: its activation row is
// map[i] / act_div, its output row map[i]) — the expert matmul's tokens grouped by expert.
#ifndef RF_MMQ_TILE_H
#define RF_MMQ_TILE_H
#include "rf_platform.h"
#include "rf_quant_blocks.h"

#define RF_MMQ_ROWS 64
#define RF_MMQ_TOKENS 32
#define RF_MMQ_THREADS 256
#define RF_MMQ_KBLOCKS 8  // q8_1 blocks (of 32 values) per step

// The tokens of one tile (at most RF_MMQ_TOKENS).
struct rf_mmq_tokens {
    const rf_u32* map;  // nullptr: dense rows t0, t0 + 1, ...
    rf_u32 t0;
    rf_u32 n;
    rf_u32 act_div;
};
RF_DEVICE rf_u32 rf_mmq_act_row(const rf_mmq_tokens& tk, rf_u32 i) {
    return tk.map ? tk.map[i] / tk.act_div : tk.t0 + i;
}
RF_DEVICE rf_u32 rf_mmq_out_row(const rf_mmq_tokens& tk, rf_u32 i) {
    return tk.map ? tk.map[i] : tk.t0 + i;
}

template <class T>
RF_DEVICE void rf_mmq(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 cols,
                      const rf_i8* aqs, const float* ads, rf_u32 r0, const rf_mmq_tokens& tk,
                      float* out, rf_qb (*sw)[RF_MMQ_KBLOCKS], rf_q8 (*sa)[RF_MMQ_KBLOCKS]) {
    constexpr int QPC = T::QB_PER_CHUNK;
    constexpr int CHUNKS_PER_STEP = RF_MMQ_KBLOCKS / QPC;
    const rf_u32 tid = RF_TID_X;
    const rf_u32 act_blocks = cols / 32;
    const rf_u32 chunks = act_blocks / QPC;
    float acc[4][2];
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[i][0] = acc[i][1] = 0.0f;
    const rf_u32 my_row = tid % 16, my_tok = tid / 16;

    for (rf_u32 kb = 0; kb < act_blocks; kb += RF_MMQ_KBLOCKS) {
        const rf_u32 kblocks = act_blocks - kb < RF_MMQ_KBLOCKS ? act_blocks - kb : RF_MMQ_KBLOCKS;
        // Weights: 64 rows x CHUNKS_PER_STEP chunks.
        for (rf_u32 i = tid; i < RF_MMQ_ROWS * CHUNKS_PER_STEP; i += RF_MMQ_THREADS) {
            const rf_u32 rl = i / CHUNKS_PER_STEP, ch = i % CHUNKS_PER_STEP;
            const rf_u32 c = kb / QPC + ch;
            rf_qb qb[QPC];
            rf_unpack_chunk_or_zero<T>(w, row_bytes, r0 + rl, rows, c, chunks, qb);
#pragma unroll
            for (int k = 0; k < QPC; ++k) sw[rl][ch * QPC + k] = qb[k];
        }
        // Activations: 32 tokens x 8 blocks, one per thread.
        {
            const rf_u32 tl = tid / RF_MMQ_KBLOCKS, b = tid % RF_MMQ_KBLOCKS;
            rf_q8 a;
            if (tl < tk.n && b < kblocks) {
                const rf_u64 ar = rf_mmq_act_row(tk, tl);
                rf_load_q8(aqs + ar * cols, ads + 2 * ar * act_blocks, kb + b, a);
            } else {
#pragma unroll
                for (int j = 0; j < 8; ++j) a.q[j] = 0;
                a.d = 0.0f;
                a.s = 0.0f;
            }
            sa[tl][b] = a;
        }
        rf_sync_block();
        for (rf_u32 b = 0; b < kblocks; ++b) {
            const rf_q8 a0 = sa[my_tok][b], a1 = sa[my_tok + 16][b];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const rf_qb qb = sw[my_row + 16 * i][b];
                acc[i][0] += rf_qb_dot<T>(qb, a0);
                acc[i][1] += rf_qb_dot<T>(qb, a1);
            }
        }
        rf_sync_block();
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
        const rf_u32 tl = my_tok + 16 * j;
        if (tl >= tk.n) continue;
        const rf_u64 t = rf_mmq_out_row(tk, tl);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const rf_u32 r = r0 + my_row + 16 * i;
            if (r < rows) out[t * rows + r] = acc[i][j];
        }
    }
}

#endif  // RF_MMQ_TILE_H
