// rf_mmqt.h — batched-decode matrix products on integer tile units: out[t][r] = sum_c W[r][c] *
// x[t][c] for a quantized weight and q8_1 activations (quantize_act.hip), meant for 9..=64
// tokens (the batch of a continuous-batching decode step), where every weight byte should be
// read once.
//
// One block of 128 threads (four groups of 32 threads, 16 weight rows each) computes 64 weight
// rows x NT tokens, NT = 64 or 32 (token tiles of 8 past the last token are skipped; the
// 32-token build holds half the accumulators and activations, so more blocks fit a compute
// unit). Per step of 256 columns (8 q8_1 blocks) the block unpacks its 64 rows to int8 in
// shared memory once (rf_qb records, rf_quant_blocks.h: values plus per-32 or per-16 scale,
// min and offset factors) and stages the tokens' q8_1 blocks beside them with their scales and
// exact integer sums. For each q8_1
// block, each group multiplies its 16 rows by every 8-token tile (rf_mma_i8.h: one int8
// m16n8k32 tensor-core op on NVIDIA sm_80+, or two m16n8k16 for the 16-value scales; dp4a
// elsewhere) and folds the int32 tile into f32 accumulators with the weight and activation
// factors:  acc += d_t * (a0_r * S0 + a1_r * S1) - m0_r * d_t * U0_t - m1_r * d_t * U1_t
//                  + mw_r * s_t,
// the same arithmetic as rf_qb_dot (mmq.hip, mmvq.hip).
//
// Shared rows are 256 + 16 bytes apart, so the 8 rows x 4 words a group reads at once fall in
// 32 different banks.
//
// Split-K: block z of the grid takes q8_1 blocks [z * split_blocks, (z + 1) * split_blocks) of
// the columns (split_blocks a multiple of 8) and writes its sums to out + z * split_stride; with
// more than one split, `out` is a scratch of partial sums that mmqt_reduce_f32 adds up in split
// order (deterministic), so that shapes with few 64-row blocks still fill the GPU.
//
// RF_MMQT_TYPE(name, T) defines, in the including family kernels/mmqt_<type>.hip (one family
// per weight type, so a GPU that compiles PTX at load time compiles only the types a model uses):
// mmqt_<type>[_t32]:      the tile product on tensor cores where the target has them (NVIDIA
//                         sm_80+), else the portable one — the kernels every target launches.
// mmqt_<type>[_t32]_dp4a: always the portable tile product (to test its logic on NVIDIA too).
// Launch: grid (ceil(rows / 64), ceil(n_tokens / NT), splits), 128 threads, no dynamic shared
// memory (NT = 32 for the _t32 builds, else 64). The split sums are added by mmqt_reduce_f32
// (kernels/mmqt.hip).
#pragma once
#include "rf_platform.h"
#include "rf_quant_blocks.h"
#include "rf_mma_i8.h"

#define RF_MMQT_ROWS 64
#define RF_MMQT_THREADS 128
#define RF_MMQT_KBLOCKS 8                               // q8_1 blocks (of 32 values) per step
#define RF_MMQT_STRIDE (32 * RF_MMQT_KBLOCKS + 16)     // bytes between shared rows

// Which float factors a weight type needs, and where they lie.
template <class T>
struct rf_mmqt_layout {
    // Weight factors per (row, block): a0 [a1] [m0] [m1] [mw].
    static constexpr int A1 = 1;
    static constexpr int M0 = T::SCALE16 ? 2 : 1;
    static constexpr int M1 = M0 + 1;
    static constexpr int MW = T::HAS_MIN ? (T::SCALE16 ? M0 + 2 : M0 + 1) : M0;
    static constexpr int NW = MW + (T::HAS_MW ? 1 : 0);
    // Activation factors per (token, block): d [d * U0] [d * U1] [s].
    static constexpr int DU0 = 1, DU1 = 2;
    static constexpr int S = T::HAS_MIN ? (T::SCALE16 ? 3 : 2) : 1;
    static constexpr int NA = S + (T::HAS_MW ? 1 : 0);
};

// Two floats from an 8-byte aligned address.
struct __attribute__((aligned(8))) rf_f2 {
    float x, y;
};
RF_DEVICE rf_f2 rf_ld_f2(const float* p) { return *(const rf_f2*)p; }

template <class T, bool MMA, int NT>
RF_DEVICE void rf_mmqt(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 cols,
                       const rf_i8* aqs, const float* ads, rf_u32 n_tokens, float* out,
                       rf_u32 split_blocks, rf_u64 split_stride, rf_i8* sw, rf_i8* sa, float* swf, float* saf) {
    typedef rf_mmqt_layout<T> L;
    constexpr int QPC = T::QB_PER_CHUNK;
    constexpr int CPS = RF_MMQT_KBLOCKS / QPC;  // chunks per step
    constexpr int R = RF_MMQT_ROWS, ST = RF_MMQT_STRIDE;
    const rf_u32 tid = RF_TID_X;
    const rf_u32 r0 = RF_BID_X * R, t0 = RF_BID_Y * NT;
    const rf_u32 act_blocks = cols / 32;
    const rf_u32 chunks = act_blocks / QPC;
    const rf_u32 k_begin = RF_BID_Z * split_blocks;
    const rf_u32 k_end = act_blocks - k_begin < split_blocks ? act_blocks : k_begin + split_blocks;
    out += RF_BID_Z * split_stride;
    const rf_u32 left = n_tokens - t0;
    const rf_u32 tiles = (left < (rf_u32)NT ? left + 7 : (rf_u32)NT) / 8;
    const rf_u32 group = tid / 32, lane = tid % 32;
    const rf_u32 g = lane / 4, q = lane % 4;
    const rf_u32 my_row = group * 16 + g;  // and my_row + 8
    const rf_i8* my_a = sw + group * 16 * ST;

    float acc[NT / 8][4];
#pragma unroll
    for (int j = 0; j < NT / 8; ++j) {
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[j][i] = 0.0f;
    }

    for (rf_u32 kb = k_begin; kb < k_end; kb += RF_MMQT_KBLOCKS) {
        const rf_u32 kblocks = k_end - kb < RF_MMQT_KBLOCKS ? k_end - kb : RF_MMQT_KBLOCKS;
        // Weights: R rows x CPS chunks, unpacked to int8 rows and factor columns.
        for (rf_u32 i = tid; i < (rf_u32)(R * CPS); i += RF_MMQT_THREADS) {
            const rf_u32 rl = i / CPS, ch = i % CPS;
            const rf_u32 c = kb / QPC + ch;
            rf_qb qb[QPC];
            rf_unpack_chunk_or_zero<T>(w, row_bytes, r0 + rl, rows, c, chunks, qb);
#pragma unroll
            for (int k = 0; k < QPC; ++k) {
                const rf_u32 blk = ch * QPC + k;
                rf_u32x4* dst = (rf_u32x4*)(sw + rl * ST + blk * 32);
                dst[0] = rf_u32x4{(rf_u32)qb[k].q[0], (rf_u32)qb[k].q[1], (rf_u32)qb[k].q[2],
                                  (rf_u32)qb[k].q[3]};
                dst[1] = rf_u32x4{(rf_u32)qb[k].q[4], (rf_u32)qb[k].q[5], (rf_u32)qb[k].q[6],
                                  (rf_u32)qb[k].q[7]};
                float* f = swf + blk * L::NW * R + rl;
                f[0] = qb[k].a0;
                if (T::SCALE16) f[L::A1 * R] = qb[k].a1;
                if (T::HAS_MIN) f[L::M0 * R] = qb[k].m0;
                if (T::HAS_MIN && T::SCALE16) f[L::M1 * R] = qb[k].m1;
                if (T::HAS_MW) f[L::MW * R] = qb[k].mw;
            }
        }
        // Activations: the tokens of the used tiles x 8 blocks.
        for (rf_u32 i = tid; i < tiles * 8 * RF_MMQT_KBLOCKS; i += RF_MMQT_THREADS) {
            const rf_u32 tl = i / RF_MMQT_KBLOCKS, b = i % RF_MMQT_KBLOCKS;
            rf_q8 a;
            if (t0 + tl < n_tokens && b < kblocks) {
                rf_load_q8(aqs + (rf_u64)(t0 + tl) * cols,
                           ads + 2 * (rf_u64)(t0 + tl) * act_blocks, kb + b, a);
            } else {
#pragma unroll
                for (int j = 0; j < 8; ++j) a.q[j] = 0;
                a.d = 0.0f;
                a.s = 0.0f;
            }
            rf_u32x4* dst = (rf_u32x4*)(sa + tl * ST + b * 32);
            dst[0] = rf_u32x4{(rf_u32)a.q[0], (rf_u32)a.q[1], (rf_u32)a.q[2], (rf_u32)a.q[3]};
            dst[1] = rf_u32x4{(rf_u32)a.q[4], (rf_u32)a.q[5], (rf_u32)a.q[6], (rf_u32)a.q[7]};
            float* f = saf + b * L::NA * NT + tl;
            f[0] = a.d;
            if (T::HAS_MIN) {
                int u0, u1;
                rf_q8_sums(a, &u0, &u1);
                if (T::SCALE16) {
                    f[L::DU0 * NT] = a.d * (float)u0;
                    f[L::DU1 * NT] = a.d * (float)u1;
                } else {
                    f[L::DU0 * NT] = a.d * (float)(u0 + u1);
                }
            }
            if (T::HAS_MW) f[L::S * NT] = a.s;
        }
        rf_sync_block();
        for (rf_u32 b = 0; b < kblocks; ++b) {
            rf_mma_a fa;
            rf_mma_load_a<MMA>(my_a + b * 32, ST, lane, fa);
            const float* wf = swf + b * L::NW * R + my_row;
            float a0[2], a1[2], m0[2], m1[2], mw[2];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                a0[h] = wf[8 * h];
                a1[h] = T::SCALE16 ? wf[L::A1 * R + 8 * h] : 0.0f;
                m0[h] = T::HAS_MIN ? wf[L::M0 * R + 8 * h] : 0.0f;
                m1[h] = T::HAS_MIN && T::SCALE16 ? wf[L::M1 * R + 8 * h] : 0.0f;
                mw[h] = T::HAS_MW ? wf[L::MW * R + 8 * h] : 0.0f;
            }
            const rf_i8* my_b = sa + b * 32;
            const float* af = saf + b * L::NA * NT;
#pragma unroll
            for (int j = 0; j < NT / 8; ++j) {
                if ((rf_u32)j >= tiles) break;
                int lo[4], hi[4];
                rf_mma_tile<MMA, T::SCALE16>(fa, my_b + 8 * j * ST, ST, lane, lo, hi);
                // The factors of this thread's two tokens (8j + 2q, + 1), one 8-byte load each.
                const rf_u32 tk = 8 * j + 2 * q;
                const rf_f2 d2 = rf_ld_f2(af + tk);
                const rf_f2 du0_2 = T::HAS_MIN ? rf_ld_f2(af + L::DU0 * NT + tk) : rf_f2{0.0f, 0.0f};
                const rf_f2 du1_2 =
                    T::HAS_MIN && T::SCALE16 ? rf_ld_f2(af + L::DU1 * NT + tk) : rf_f2{0.0f, 0.0f};
                const rf_f2 s2 = T::HAS_MW ? rf_ld_f2(af + L::S * NT + tk) : rf_f2{0.0f, 0.0f};
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const float d = e ? d2.y : d2.x;
                    const float du0 = e ? du0_2.y : du0_2.x;
                    const float du1 = e ? du1_2.y : du1_2.x;
                    const float s = e ? s2.y : s2.x;
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const int i = 2 * h + e;
                        // Written as chains of multiply-adds (one rounding each); the int32 tile
                        // sums converted without the slow int-to-float instruction.
                        float v = a0[h] * rf_small_i2f(lo[i]);
                        if (T::SCALE16) v = a1[h] * rf_small_i2f(hi[i]) + v;
                        float r = v * d + acc[j][i];
                        if (T::HAS_MIN) r = r - m0[h] * du0;
                        if (T::HAS_MIN && T::SCALE16) r = r - m1[h] * du1;
                        if (T::HAS_MW) r = mw[h] * s + r;
                        acc[j][i] = r;
                    }
                }
            }
        }
        rf_sync_block();
    }
#pragma unroll
    for (int j = 0; j < NT / 8; ++j) {
        if ((rf_u32)j >= tiles) break;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const rf_u32 r = r0 + my_row + 8 * (i >> 1);
            const rf_u32 t = t0 + 8 * j + 2 * q + (i & 1);
            if (r < rows && t < n_tokens) out[(rf_u64)t * rows + r] = acc[j][i];
        }
    }
}

#define RF_MMQT_KERNEL(name, T, MMA, NT)                                                       \
    RF_KERNEL(RF_MMQT_THREADS)                                                                 \
    void name(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 cols, const rf_i8* aqs,    \
              const float* ads, rf_u32 n_tokens, float* out, rf_u32 split_blocks,              \
              rf_u64 split_stride) {                                                           \
        RF_GRID_DEP_BEGIN();                                                                  \
        __shared__ __attribute__((aligned(16))) rf_i8 sw[RF_MMQT_ROWS * RF_MMQT_STRIDE];       \
        __shared__ __attribute__((aligned(16))) rf_i8 sa[NT * RF_MMQT_STRIDE];                 \
        __shared__ float swf[RF_MMQT_KBLOCKS * rf_mmqt_layout<T>::NW * RF_MMQT_ROWS];          \
        __shared__ __attribute__((aligned(16))) float saf[RF_MMQT_KBLOCKS *                    \
                                                          rf_mmqt_layout<T>::NA * NT];         \
        rf_mmqt<T, MMA, NT>(w, row_bytes, rows, cols, aqs, ads, n_tokens, out, split_blocks,   \
                            split_stride, sw, sa, swf, saf);                                   \
    }

#define RF_MMQT_TYPE(name, T)                           \
    RF_MMQT_KERNEL(mmqt_##name, T, true, 64)            \
    RF_MMQT_KERNEL(mmqt_##name##_dp4a, T, false, 64)    \
    RF_MMQT_KERNEL(mmqt_##name##_t32, T, true, 32)      \
    RF_MMQT_KERNEL(mmqt_##name##_t32_dp4a, T, false, 32)
