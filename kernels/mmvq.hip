// Decode matrix-vector products: out[t][r] = sum_c W[r][c] * x[t][c] for a few tokens.
//
// Quantized weights (mmvq_<type>): activations already quantized to q8_1 (quantize_act.hip);
// each thread unpacks one chunk of a weight row (read once, as wide as its alignment allows)
// and takes integer dot products with up to 8 tokens' activation blocks. Float weights
// (mmvf_<type>): f32 activations rounded to the weight's precision, f32 dot products.
//
// Kernels are instantiated per token count NT in {1, 2, 4, 8} (suffix _n<NT>): the accumulators
// and reductions are sized at compile time; n_tokens <= NT, the extra ones masked.
// Launch: blockDim.x = 256 threads, `tpr` threads per row (a power of two, at most 256), so a
// block covers 256 / tpr rows: grid.x = ceil(rows / (256 / tpr)), grid.y = 1. Threads of one row are consecutive lanes; sums are
// reduced with butterfly shuffles inside a warp (RF_WARP_SIZE lanes) and through shared
// memory across warps when tpr > RF_WARP_SIZE.
#include "rf_platform.h"
#include "rf_quant_blocks.h"
#include "rf_mmvq.h"

// Several tokens and R weight rows per thread (R = 2 or 4): each thread unpacks chunk c of R
// consecutive rows and takes every token's activation block for c once for all R of them, so
// the activations cross the L1 cache R times less often than with one row per thread (at 8
// tokens their reads, 16x the weight bytes per row, bound the one-row kernel). A block covers
// R * (256 / tpr) rows: grid.x = ceil(rows / (R * 256 / tpr)).
template <class T, int NT, int R>
RF_DEVICE void rf_mmvq_rows(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 chunks,
                            const rf_i8* aqs, const float* ads, rf_u32 cols, rf_u32 n_tokens,
                            float* out, rf_u32 tpr, float* red, rf_u32 add) {
    constexpr int QPC = T::QB_PER_CHUNK;
    constexpr int CPB = T::BLOCK_VALUES / (32 * QPC);
    const rf_u32 tid = RF_TID_X;
    const rf_u32 row0 = (RF_BID_X * (RF_MMV_THREADS / tpr) + tid / tpr) * R;
    const rf_u32 lane = tid % tpr;
    const rf_u32 nt = n_tokens < NT ? n_tokens : NT;
    const rf_u32 act_blocks = cols / 32;
    float acc[R * NT];
#pragma unroll
    for (int i = 0; i < R * NT; ++i) acc[i] = 0.0f;
    if (row0 < rows) {
        // Rows past the end re-read the last row; their sums are never stored.
        const rf_u8* wrow[R];
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const rf_u32 rr = row0 + r < rows ? row0 + r : rows - 1;
            wrow[r] = w + (rf_u64)rr * row_bytes;
        }
        for (rf_u32 c = lane; c < chunks; c += tpr) {
            rf_qb qb[R][QPC];
#pragma unroll
            for (int r = 0; r < R; ++r)
                T::unpack(wrow[r] + (rf_u64)(c / CPB) * T::BLOCK_BYTES, (int)(c % CPB), qb[r]);
#pragma unroll
            for (int t = 0; t < NT; ++t) {
                if ((rf_u32)t < nt) {
                    const rf_i8* tq = aqs + (rf_u64)t * cols;
                    const float* td = ads + 2 * (rf_u64)t * act_blocks;
#pragma unroll
                    for (int k = 0; k < QPC; ++k) {
                        rf_q8 a;
                        rf_load_q8(tq, td, (rf_u64)c * QPC + k, a);
#pragma unroll
                        for (int r = 0; r < R; ++r) acc[r * NT + t] += rf_qb_dot<T>(qb[r][k], a);
                    }
                }
            }
        }
    }
    rf_mmv_reduce<R * NT>(acc, tpr, red);
    if (tid % tpr == 0) {
#pragma unroll
        for (int r = 0; r < R; ++r) {
            if (row0 + r < rows) {
#pragma unroll
                for (int t = 0; t < NT; ++t) {
                    if ((rf_u32)t < nt) {
                        float* o = out + (rf_u64)t * rows + row0 + r;
                        *o = add != 0u ? *o + acc[r * NT + t] : acc[r * NT + t];
                    }
                }
            }
        }
    }
}

#define RF_MMVQ_ROWS_KERNEL(name, T, NT, R)                                                       \
    RF_KERNEL(RF_MMV_THREADS)                                                                     \
    void mmvq_##name##_n##NT##_r##R(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 chunks, \
                                    const rf_i8* aqs, const float* ads, rf_u32 cols,              \
                                    rf_u32 n_tokens, float* out, rf_u32 tpr, rf_u32 acc) {        \
        RF_GRID_DEP_BEGIN();                                                                  \
        __shared__ float red[R * NT * (RF_MMV_THREADS / RF_WARP_SIZE)];                           \
        rf_mmvq_rows<T, NT, R>(w, row_bytes, rows, chunks, aqs, ads, cols, n_tokens, out, tpr,   \
                               red, acc);                                                         \
    }

#define RF_MMVQ_KERNEL_NT(name, T, NT)                                                            \
    RF_KERNEL(RF_MMV_THREADS)                                                                     \
    void mmvq_##name##_n##NT(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 chunks,        \
                             const rf_i8* aqs, const float* ads, rf_u32 cols, rf_u32 n_tokens,    \
                             float* out, rf_u32 tpr, rf_u32 acc) {                                \
        RF_GRID_DEP_BEGIN();                                                                  \
        __shared__ float red[NT * (RF_MMV_THREADS / RF_WARP_SIZE)];                               \
        rf_mmvq<T, NT>(w, row_bytes, rows, chunks, aqs, ads, cols, n_tokens, out, tpr, red, acc); \
    }
#define RF_MMVQ_KERNEL(name, T)   \
    RF_MMVQ_KERNEL_NT(name, T, 1) \
    RF_MMVQ_KERNEL_NT(name, T, 2) \
    RF_MMVQ_KERNEL_NT(name, T, 4) \
    RF_MMVQ_KERNEL_NT(name, T, 8)

// Multi-row variants: two rows per thread for every type, four where a chunk is at most two q8
// blocks (the unpacked weights of 4 x 4 blocks would not fit the registers). Q6_K takes 64-value
// chunks here (rf_q6_k64), so four rows too; Q2_K and Q3_K stay at 128 values and two rows.
#define RF_MMVQ_ROWS2(name, T)             \
    RF_MMVQ_ROWS_KERNEL(name, T, 2, 2)     \
    RF_MMVQ_ROWS_KERNEL(name, T, 4, 2)     \
    RF_MMVQ_ROWS_KERNEL(name, T, 8, 2)

#define RF_MMVQ_ROWS4(name, T)             \
    RF_MMVQ_ROWS_KERNEL(name, T, 2, 4)     \
    RF_MMVQ_ROWS_KERNEL(name, T, 4, 4)     \
    RF_MMVQ_ROWS_KERNEL(name, T, 8, 4)

RF_MMVQ_KERNEL(q4_0, rf_q4_0)
RF_MMVQ_KERNEL(q4_1, rf_q4_1)
RF_MMVQ_KERNEL(q5_0, rf_q5_0)
RF_MMVQ_KERNEL(q5_1, rf_q5_1)
RF_MMVQ_KERNEL(q8_0, rf_q8_0)
RF_MMVQ_KERNEL(iq4_nl, rf_iq4_nl)
RF_MMVQ_KERNEL(mxfp4, rf_mxfp4)
RF_MMVQ_KERNEL(q2_k, rf_q2_k)
RF_MMVQ_KERNEL(q3_k, rf_q3_k)
RF_MMVQ_KERNEL(q4_k, rf_q4_k)
RF_MMVQ_KERNEL(q5_k, rf_q5_k)
RF_MMVQ_KERNEL(q6_k, rf_q6_k)
RF_MMVQ_KERNEL(iq4_xs, rf_iq4_xs)
RF_MMVQ_ROWS2(q4_0, rf_q4_0)
RF_MMVQ_ROWS2(q4_1, rf_q4_1)
RF_MMVQ_ROWS2(q5_0, rf_q5_0)
RF_MMVQ_ROWS2(q5_1, rf_q5_1)
RF_MMVQ_ROWS2(q8_0, rf_q8_0)
RF_MMVQ_ROWS2(iq4_nl, rf_iq4_nl)
RF_MMVQ_ROWS2(mxfp4, rf_mxfp4)
RF_MMVQ_ROWS2(q2_k, rf_q2_k)
RF_MMVQ_ROWS2(q3_k, rf_q3_k)
RF_MMVQ_ROWS2(q4_k, rf_q4_k)
RF_MMVQ_ROWS2(q5_k, rf_q5_k)
RF_MMVQ_ROWS2(q6_k, rf_q6_k64)
RF_MMVQ_ROWS2(iq4_xs, rf_iq4_xs)
RF_MMVQ_ROWS4(q6_k, rf_q6_k64)
RF_MMVQ_ROWS4(q4_0, rf_q4_0)
RF_MMVQ_ROWS4(q4_1, rf_q4_1)
RF_MMVQ_ROWS4(q5_0, rf_q5_0)
RF_MMVQ_ROWS4(q5_1, rf_q5_1)
RF_MMVQ_ROWS4(q8_0, rf_q8_0)
RF_MMVQ_ROWS4(iq4_nl, rf_iq4_nl)
RF_MMVQ_ROWS4(mxfp4, rf_mxfp4)
RF_MMVQ_ROWS4(q4_k, rf_q4_k)
RF_MMVQ_ROWS4(q5_k, rf_q5_k)
RF_MMVQ_ROWS4(iq4_xs, rf_iq4_xs)

// ---------------------------------------------------------------------------------------------
// Float weights against f32 activations (for F16 / BF16 already rounded to the weight's
// precision by round_act_f32). With `vec` set (cols a multiple of 8) a chunk is 8 values read
// with 16-byte loads; otherwise a chunk is one value.
struct rf_wf32 {
    static RF_MEMBER void load8(const rf_u8* row, rf_u64 c, float* v) {
        rf_u32 w[8];
        rf_ld_8w_a16(row + 32 * c, w);
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = __builtin_bit_cast(float, w[i]);
    }
    static RF_MEMBER float load1(const rf_u8* row, rf_u64 i) { return ((const float*)row)[i]; }
};

struct rf_wf16 {
    static RF_MEMBER void load8(const rf_u8* row, rf_u64 c, float* v) {
        rf_u32 w[4];
        rf_ld_4w_a16(row + 16 * c, w);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            v[2 * i] = rf_f16_bits(w[i] & 0xffffu);
            v[2 * i + 1] = rf_f16_bits(w[i] >> 16);
        }
    }
    static RF_MEMBER float load1(const rf_u8* row, rf_u64 i) { return rf_f16_bits(rf_ld_u16(row + 2 * i)); }
};

struct rf_wbf16 {
    static RF_MEMBER void load8(const rf_u8* row, rf_u64 c, float* v) {
        rf_u32 w[4];
        rf_ld_4w_a16(row + 16 * c, w);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            v[2 * i] = __builtin_bit_cast(float, w[i] << 16);
            v[2 * i + 1] = __builtin_bit_cast(float, w[i] & 0xffff0000u);
        }
    }
    static RF_MEMBER float load1(const rf_u8* row, rf_u64 i) { return rf_bf16_to_f32((rf_bf16)rf_ld_u16(row + 2 * i)); }
};

template <class W, int NT>
RF_DEVICE void rf_mmvf(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 chunks, rf_u32 vec,
                       const float* x, rf_u32 cols, rf_u32 n_tokens, float* out, rf_u32 tpr,
                       float* red, rf_u32 add) {
    const rf_u32 tid = RF_TID_X;
    const rf_u32 row = RF_BID_X * (RF_MMV_THREADS / tpr) + tid / tpr;
    const rf_u32 lane = tid % tpr;
    const rf_u32 t0 = 0;
    const rf_u32 nt = n_tokens - t0 < NT ? n_tokens - t0 : NT;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
    if (row < rows) {
        const rf_u8* wrow = w + (rf_u64)row * row_bytes;
        if (vec) {
            for (rf_u32 c = lane; c < chunks; c += tpr) {
                float v[8];
                W::load8(wrow, c, v);
#pragma unroll
                for (int t = 0; t < NT; ++t) {
                    if ((rf_u32)t < nt) {
                        const float* xt = x + (rf_u64)(t0 + t) * cols + 8 * (rf_u64)c;
                        const rf_u32x4 xa = ((const rf_u32x4*)xt)[0], xb = ((const rf_u32x4*)xt)[1];
                        const rf_u32 xs[8] = {xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w};
                        float s = 0.0f;
#pragma unroll
                        for (int i = 0; i < 8; ++i) s += v[i] * __builtin_bit_cast(float, xs[i]);
                        acc[t] += s;
                    }
                }
            }
        } else {
            for (rf_u32 c = lane; c < chunks; c += tpr) {
                const float v = W::load1(wrow, c);
#pragma unroll
                for (int t = 0; t < NT; ++t) {
                    if ((rf_u32)t < nt) acc[t] += v * x[(rf_u64)(t0 + t) * cols + c];
                }
            }
        }
    }
    rf_mmv_reduce_store<NT>(acc, tpr, row, rows, t0, nt, out, red, add);
}

#define RF_MMVF_KERNEL_NT(name, W, NT)                                                            \
    RF_KERNEL(RF_MMV_THREADS)                                                                     \
    void mmvf_##name##_n##NT(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 chunks,        \
                             rf_u32 vec, const float* x, rf_u32 cols, rf_u32 n_tokens, float* out, \
                             rf_u32 tpr, rf_u32 acc) {                                            \
        RF_GRID_DEP_BEGIN();                                                                  \
        __shared__ float red[NT * (RF_MMV_THREADS / RF_WARP_SIZE)];                               \
        rf_mmvf<W, NT>(w, row_bytes, rows, chunks, vec, x, cols, n_tokens, out, tpr, red, acc);   \
    }
#define RF_MMVF_KERNEL(name, W)        \
    RF_MMVF_KERNEL_NT(name, W, 1)      \
    RF_MMVF_KERNEL_NT(name, W, 2)      \
    RF_MMVF_KERNEL_NT(name, W, 4)      \
    RF_MMVF_KERNEL_NT(name, W, 8)

RF_MMVF_KERNEL(f32, rf_wf32)
RF_MMVF_KERNEL(f16, rf_wf16)
RF_MMVF_KERNEL(bf16, rf_wbf16)
