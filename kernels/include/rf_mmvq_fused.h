// Decode matrix-vector products, out[t][r] = sum_c W[r][c] * x[t][c] for up to 8 tokens, in ONE
// launch: each block first prepares the f32 activations of the call's tokens in shared memory,
// then walks weight rows in a grid-stride loop (the grid sized to the GPU by the host), so no
// separate quantization or rounding kernel runs before it.
//
// Quantized weights (mmvqs_<type>_n<NT>): the activations become q8_1 blocks with exactly the
// arithmetic of quantize_q8_1_f32 (quantize_act.hip) (mmvqa_<type>_n<NT>: copied from a q8_1
// buffer a producer kernel already wrote), plus the two 16-value integer sums of each block, so the K-quant mins need no extra dot products. One warp works on one weight row at a
// time (or on several short rows at once: `rpw` below), in steps of whole blocks: it copies a step's bytes into its own shared buffer with
// coalesced 16-byte loads (whatever the blocks' alignment; the next step's loads are issued before
// the current step is computed), then each lane unpacks chunks from shared memory with the block
// structs of rf_quant_blocks.h and takes integer dot products with every token.
// Float weights (mmvfs_f16 / mmvfs_bf16): the activations rounded to the weight's precision and
// kept as 16-bit values in shared memory; `tpr` threads per row, 8 weights per 16-byte load.
//
// Launch: 256 threads per block, any grid size; the last argument is `tpr` (threads per row) for
// the float kernels and `rpw` (weight rows per warp step, rf_mmv_rows_per_step) for the others. Dynamic shared memory: n_tokens * chunks * CHUNK_BYTES
// (quantized: rf_act_layout, CHUNK_BYTES = 48, 112 or 208 for 1, 2 or 4 blocks of 32 per chunk)
// or n_tokens * cols * 2 (float).
// `w` must be 16-byte aligned (device allocations are). Kernel suffix _n<NT>: n_tokens <= NT.
#ifndef RF_MMVQ_FUSED_H
#define RF_MMVQ_FUSED_H
// The one-launch decode matvec kernels, instantiated per weight type by kernels/mmvq_fused_<type>.hip
// (one family per type, so a GPU compiling PTX at load time compiles only the types a model uses).
#include "rf_platform.h"
#include "rf_quant_blocks.h"

#define RF_MMV_THREADS 256
#define RF_MMV_WARPS (RF_MMV_THREADS / RF_WARP_SIZE)

struct __attribute__((aligned(8))) rf_u32x2 {
    rf_u32 x, y;
};

RF_DEVICE int rf_round_half_away(float v) {
#if defined(RF_NVCC)
    return (int)roundf(v);
#else
    return (int)__builtin_roundf(v);
#endif
}

// Bit pattern of f rounded to f16 (round to nearest even).
RF_DEVICE rf_u32 rf_f16_bits_of(float f) {
#if defined(RF_NVCC)
    return (rf_u32)__half_as_ushort(__float2half_rn(f));
#else
    return (rf_u32)__builtin_bit_cast(unsigned short, (_Float16)f);
#endif
}

// ---------------------------------------------------------------------------------------------
// q8_1 activations in shared memory, one 48-byte slot per 32-value block: 32 signed bytes, then
// the record {f16 d | f16 s << 16, i16 sum(q[0..16]) | i16 sum(q[16..32]) << 16}, 8 bytes unused.
// The QPC slots of one chunk (a lane's unit of a weight row) are followed by 16 bytes of padding
// when QPC > 1, so that the 16-byte reads of 8 lanes taking consecutive chunks fall in distinct
// banks (chunk strides of 48, 112 and 208 bytes: odd multiples of 16).
template <int QPC>
struct rf_act_layout {
    static constexpr rf_u32 CHUNK_BYTES = QPC * 48 + (QPC > 1 ? 16 : 0);
    static RF_MEMBER rf_u32 slot(rf_u32 ab) { return (ab / QPC) * CHUNK_BYTES + (ab % QPC) * 48; }
};

// An RMS norm the staging applies to the f32 activations first (the one-launch form of
// rms_norm_f32 followed by a matvec): v = (x * s_t) * w[c] with s_t = 1 / sqrt(mean_c(x^2) + eps)
// per token, as rms_norm_f32 computes it (its sum of squares in another order). `w` null: no
// norm. Block 0 also writes the normed rows to `out` ([nt][cols], when not null), so the normed
// activations stay available to later launches.
struct rf_act_norm {
    const float* w;
    float eps;
    float* out;
};

// Per-token scales s_t of `norm` into sc[0..nt) (shared; all threads take part; block barrier
// at the end). cols is a multiple of 4.
RF_DEVICE void rf_norm_scales(const float* x, rf_u32 cols, rf_u32 nt, const rf_act_norm& norm,
                              float* sc) {
    __shared__ float red[8][RF_MMV_WARPS];
    const rf_u32 tid = RF_TID_X, lane = tid % RF_WARP_SIZE, warp = tid / RF_WARP_SIZE;
    const rf_u32 quads = cols / 4;
    float part[8];
#pragma unroll
    for (int t = 0; t < 8; ++t) {
        part[t] = 0.0f;
        if ((rf_u32)t < nt) {
            const rf_u32x4* xr = (const rf_u32x4*)(x + (rf_u64)t * cols);
            for (rf_u32 q = tid; q < quads; q += RF_MMV_THREADS) {
                const rf_u32x4 r = xr[q];
                const float a = __builtin_bit_cast(float, r.x), b = __builtin_bit_cast(float, r.y);
                const float c = __builtin_bit_cast(float, r.z), d = __builtin_bit_cast(float, r.w);
                part[t] += a * a + b * b + c * c + d * d;
            }
        }
    }
#pragma unroll
    for (int t = 0; t < 8; ++t) {
        if ((rf_u32)t < nt) {
            float v = part[t];
#pragma unroll
            for (int m = RF_WARP_SIZE / 2; m > 0; m >>= 1) v += rf_shfl_xor_f32(v, m);
            if (lane == 0) red[t][warp] = v;
        }
    }
    rf_sync_block();
    if (tid < nt) {
        double sum = 0.0;
        for (rf_u32 k = 0; k < (rf_u32)RF_MMV_WARPS; ++k) sum += (double)red[tid][k];
        const float mean = (float)(sum / (double)cols);
        sc[tid] = 1.0f / rf_sqrtf(mean + norm.eps);
    }
    rf_sync_block();
}

// Fills the slots of nt tokens (token stride `ts` bytes). Eight lanes per 32-value block, four
// values each, four blocks per lane group in flight. Ends with a block barrier.
// Source: f32 activations `x` (quantized here with exactly the arithmetic of quantize_q8_1_f32),
// or, with `aqs` non-null, a q8_1 buffer already written by quantize_q8_1_f32 or a fused
// producer (qs [nt][cols], then (d, s) pairs at `ads`).
template <int QPC>
RF_DEVICE void rf_stage_q8_1(const float* x, const rf_i8* aqs, const float* ads, rf_u32 cols,
                             rf_u32 nt, rf_u32 ts, rf_u8* sa, const rf_act_norm& norm) {
    constexpr rf_u32 GROUPS = RF_MMV_THREADS / 8, UNR = 4;
    const rf_u32 tid = RF_TID_X, l8 = tid & 7u;
    const rf_u32 nblk = cols / 32, total = nt * nblk;
    __shared__ float nsc[8];
    const bool normed = aqs == nullptr && norm.w != nullptr;
    if (normed) rf_norm_scales(x, cols, nt, norm, nsc);
    float* const nout = normed && RF_BID_X == 0 ? norm.out : nullptr;
    const rf_u32 warp_first = (tid / RF_WARP_SIZE) * (RF_WARP_SIZE / 8);
    for (rf_u32 base = 0; base + warp_first < total; base += UNR * GROUPS) {
        rf_u32x4 raw[UNR];
        float dsv[UNR][2];
#pragma unroll
        for (rf_u32 u = 0; u < UNR; ++u) {
            const rf_u32 i = base + u * GROUPS + tid / 8;
            raw[u].x = raw[u].y = raw[u].z = raw[u].w = 0u;
            dsv[u][0] = dsv[u][1] = 0.0f;
            if (i < total) {
                if (aqs != nullptr) {
                    raw[u].x = ((const rf_u32*)aqs)[8 * (rf_u64)i + l8];
                    dsv[u][0] = ads[2 * (rf_u64)i];
                    dsv[u][1] = ads[2 * (rf_u64)i + 1];
                } else {
                    raw[u] = *(const rf_u32x4*)(x + 32 * (rf_u64)i + 4 * l8);
                }
            }
        }
#pragma unroll
        for (rf_u32 u = 0; u < UNR; ++u) {
            const rf_u32 i = base + u * GROUPS + tid / 8;  // block index over [nt][cols / 32]
            rf_u32 word;
            float d, s;
            int quad, other;
            if (aqs != nullptr) {
                word = raw[u].x;
                quad = rf_dp4a((int)word, 0x01010101, 0);
                quad += rf_shfl_xor_i32(quad, 1);
                quad += rf_shfl_xor_i32(quad, 2);
                other = rf_shfl_xor_i32(quad, 4);
                d = dsv[u][0];
                s = dsv[u][1];
            } else {
                float v[4] = {__builtin_bit_cast(float, raw[u].x), __builtin_bit_cast(float, raw[u].y),
                              __builtin_bit_cast(float, raw[u].z), __builtin_bit_cast(float, raw[u].w)};
                if (normed && i < total) {
                    const rf_u32 t = i / nblk, c = 32 * (i - t * nblk) + 4 * l8;
                    const rf_u32x4 wq = *(const rf_u32x4*)(norm.w + c);
                    const float wv[4] = {__builtin_bit_cast(float, wq.x), __builtin_bit_cast(float, wq.y),
                                         __builtin_bit_cast(float, wq.z), __builtin_bit_cast(float, wq.w)};
#pragma unroll
                    for (int k = 0; k < 4; ++k) v[k] = (v[k] * nsc[t]) * wv[k];
                    if (nout != nullptr) {
                        rf_u32x4 o;
                        o.x = __builtin_bit_cast(rf_u32, v[0]);
                        o.y = __builtin_bit_cast(rf_u32, v[1]);
                        o.z = __builtin_bit_cast(rf_u32, v[2]);
                        o.w = __builtin_bit_cast(rf_u32, v[3]);
                        *(rf_u32x4*)(nout + 32 * (rf_u64)i + 4 * l8) = o;
                    }
                }
                float amax = v[0] < 0.0f ? -v[0] : v[0];
#pragma unroll
                for (int k = 1; k < 4; ++k) {
                    const float a = v[k] < 0.0f ? -v[k] : v[k];
                    amax = a > amax ? a : amax;
                }
#pragma unroll
                for (int m = 1; m < 8; m <<= 1) {
                    const float o = rf_shfl_xor_f32(amax, m);
                    amax = o > amax ? o : amax;
                }
                const float dq = amax / 127.0f;
                const float id = dq != 0.0f ? 1.0f / dq : 0.0f;
                int q[4];
#pragma unroll
                for (int k = 0; k < 4; ++k) q[k] = rf_round_half_away(v[k] * id);
                quad = q[0] + q[1] + q[2] + q[3];
                quad += rf_shfl_xor_i32(quad, 1);
                quad += rf_shfl_xor_i32(quad, 2);
                other = rf_shfl_xor_i32(quad, 4);
                word = ((rf_u32)q[0] & 0xffu) | (((rf_u32)q[1] & 0xffu) << 8) |
                       (((rf_u32)q[2] & 0xffu) << 16) | ((rf_u32)q[3] << 24);
                d = dq;
                s = (float)(quad + other) * dq;
            }
            if (i < total) {
                const rf_u32 t = i / nblk, ab = i - t * nblk;
                rf_u8* slot = sa + t * ts + rf_act_layout<QPC>::slot(ab);
                ((rf_u32*)slot)[l8] = word;
                if (l8 == 0) {
                    rf_u32x2 rec;
                    rec.x = rf_f16_bits_of(d) | (rf_f16_bits_of(s) << 16);
                    rec.y = ((rf_u32)quad & 0xffffu) | ((rf_u32)other << 16);
                    *(rf_u32x2*)(slot + 32) = rec;
                }
            }
        }
    }
    rf_sync_block();
}

// Dot product of one unpacked 32-value weight piece with a staged q8_1 block: the same
// arithmetic, in the same order, as rf_qb_dot (the block sums replace its dp4a sums).
template <class T>
RF_DEVICE float rf_qb_dot_staged(const rf_qb& w, const rf_u8* aq) {
    const rf_u32x4 a = ((const rf_u32x4*)aq)[0], b = ((const rf_u32x4*)aq)[1];
    const rf_u32x2 rec = *(const rf_u32x2*)(aq + 32);
    const int av[8] = {(int)a.x, (int)a.y, (int)a.z, (int)a.w, (int)b.x, (int)b.y, (int)b.z, (int)b.w};
    int s0 = 0, s1 = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) s0 = rf_dp4a(w.q[i], av[i], s0);
#pragma unroll
    for (int i = 4; i < 8; ++i) s1 = rf_dp4a(w.q[i], av[i], s1);
    float r;
    if (T::SCALE16) {
        r = w.a0 * (float)s0 + w.a1 * (float)s1;
    } else {
        r = w.a0 * (float)(s0 + s1);
    }
    if (T::HAS_MIN) {
        const int u0 = (int)(short)(rec.y & 0xffffu), u1 = (int)rec.y >> 16;
        if (T::SCALE16) {
            r -= w.m0 * (float)u0 + w.m1 * (float)u1;
        } else {
            r -= w.m0 * (float)(u0 + u1);
        }
    }
    r *= rf_f16_bits(rec.x & 0xffffu);
    if (T::HAS_MW) r += w.mw * rf_f16_bits(rec.x >> 16);
    return r;
}

// Step geometry of type T: a step is U runs of RF_WARP_SIZE chunks (whole blocks), about 3 KB.
template <class T>
struct rf_step {
    static constexpr int QPC = T::QB_PER_CHUNK;
    static constexpr int CPB = T::BLOCK_VALUES / (32 * QPC);  // chunks per block
    static constexpr int RUN_BYTES = RF_WARP_SIZE / CPB * T::BLOCK_BYTES;
    static constexpr int BUDGET = 3000 * (RF_WARP_SIZE / 32);
    static constexpr int U = BUDGET / (RUN_BYTES + 32) > 0 ? BUDGET / (RUN_BYTES + 32) : 1;
    static constexpr int CHUNKS = U * RF_WARP_SIZE;
    static constexpr int BYTES = U * RUN_BYTES;
    static constexpr int PIECES = BYTES / 16 + 2;  // 16-byte pieces covering any start offset
    static constexpr int PPL = (PIECES + RF_WARP_SIZE - 1) / RF_WARP_SIZE;  // pieces per lane
};

// Issues the 16-byte loads of one step: bytes [g, g + len) of the weight, from the aligned
// piece holding g. Pieces reaching past `w_end` are read byte by byte.
template <int PPL>
RF_DEVICE void rf_prefetch(const rf_u8* g, rf_u32 len, const rf_u8* w_end, rf_u32 lane,
                           rf_u32x4* pf, rf_u32* off, rf_u32* npieces) {
    const rf_u64 ga = (rf_u64)g & ~(rf_u64)15;
    *off = (rf_u32)((rf_u64)g - ga);
    *npieces = (*off + len + 15) / 16;
#pragma unroll
    for (int j = 0; j < PPL; ++j) {
        const rf_u32 p = lane + j * RF_WARP_SIZE;
        const rf_u8* src = (const rf_u8*)(ga + 16 * (rf_u64)p);
        if (p < *npieces) {
            if (src + 16 <= w_end) {
                pf[j] = *(const rf_u32x4*)src;
            } else {
                rf_u32 wd[4] = {0u, 0u, 0u, 0u};
                for (int k = 0; k < 16; ++k) {
                    if (src + k < w_end) wd[k / 4] |= (rf_u32)src[k] << (8 * (k % 4));
                }
                pf[j].x = wd[0]; pf[j].y = wd[1]; pf[j].z = wd[2]; pf[j].w = wd[3];
            }
        }
    }
}

// The weights one launch multiplies with the same activations: up to three of the same type
// and columns (q, k and v; or one), row after row, each written to its own output
// (out_i[t][row]); or, with GLU, a gate/up pair of the same shape (w0 = gate, w1 = up): each warp
// takes row r of both, one after the other, and stores silu(w0·x) * (w1·x) (the formula of
// silu_mul_f32) to out0, so the gate/up/silu_mul triple is one launch.
struct rf_mv_set {
    const rf_u8 *w0, *w1, *w2;
    float *out0, *out1, *out2;
    rf_u32 rows0, rows1, rows2;
    // Non-zero: out_i[t][row] += the product (a residual add; each element has one writer).
    rf_u32 acc;
    // Segment of job row r (0, 1 or 2) and the row within it.
    RF_MEMBER int seg(rf_u32 r, rf_u32* lr) const {
        if (r < rows0) { *lr = r; return 0; }
        if (r - rows0 < rows1) { *lr = r - rows0; return 1; }
        *lr = r - rows0 - rows1;
        return 2;
    }
    RF_MEMBER const rf_u8* w(int s) const { return s == 0 ? w0 : (s == 1 ? w1 : w2); }
    RF_MEMBER float* out(int s) const { return s == 0 ? out0 : (s == 1 ? out1 : out2); }
    RF_MEMBER rf_u32 rows(int s) const { return s == 0 ? rows0 : (s == 1 ? rows1 : rows2); }
};

// Rows per warp step (`rpw`, from the host): a row that fits a step whole leaves most lanes idle
// and one short load in flight per warp, so with rpw = R > 1 a step carries R consecutive rows
// (R * row_bytes contiguous bytes) and each group of RF_WARP_SIZE / R lanes takes one of them.
// The kernel takes R = 1 whenever R is not a power of two up to RF_MMV_MAX_RPW, the R rows do
// not fit one step, or a weight's rows are not a multiple of R (a group never straddles two
// weights), so a host's choice can cost speed, never correctness.
#define RF_MMV_MAX_RPW 4

template <class T>
RF_DEVICE rf_u32 rf_mmv_rows_per_step(rf_u32 rpw, rf_u64 row_bytes, rf_u32 chunks, const rf_mv_set& m) {
    using S = rf_step<T>;
    const bool ok = rpw > 1 && rpw <= RF_MMV_MAX_RPW && (rpw & (rpw - 1)) == 0 &&
                    chunks <= (rf_u32)S::CHUNKS && (rf_u64)rpw * row_bytes <= (rf_u64)S::BYTES &&
                    m.rows0 % rpw == 0 && m.rows1 % rpw == 0 && m.rows2 % rpw == 0;
    return ok ? rpw : 1u;
}

template <class T, int NT, bool GLU>
RF_DEVICE void rf_mmvq_staged(const rf_mv_set& m, rf_u64 row_bytes, rf_u32 chunks, const float* x,
                              const rf_i8* aqs, const float* ads, rf_u32 cols, rf_u32 n_tokens,
                              rf_u32 rpw, rf_u8* smem,
                              rf_u32x4 (*wbuf)[rf_step<T>::PPL * RF_WARP_SIZE],
                              const rf_act_norm& norm) {
    using S = rf_step<T>;
    const rf_u32 tid = RF_TID_X, lane = tid % RF_WARP_SIZE, warp = tid / RF_WARP_SIZE;
    const rf_u32 nt = n_tokens < (rf_u32)NT ? n_tokens : (rf_u32)NT;
    using L = rf_act_layout<S::QPC>;
    const rf_u32 ts = chunks * L::CHUNK_BYTES;  // bytes of one token's activations
    const rf_u32 steps = (chunks + S::CHUNKS - 1) / S::CHUNKS;
    // Rows per step R (1 unless whole rows fit a step several times), lanes per row, this
    // lane's row of the step and its lane within that row's group.
    const rf_u32 R = rf_mmv_rows_per_step<T>(rpw, row_bytes, chunks, m);
    const rf_u32 lpr = RF_WARP_SIZE / R, grp = lane / lpr, gl = lane % lpr;
    const rf_u64 group_bytes = (rf_u64)R * row_bytes;
    // Steps per row group: GLU groups are `steps` of w0, then `steps` of w1.
    const rf_u32 row_steps = GLU ? 2 * steps : steps;
    const rf_u32 rows = GLU ? m.rows0 : m.rows0 + m.rows1 + m.rows2;  // job rows
    const rf_u32 groups = rows / R;
    const rf_u32 gw = RF_BID_X * RF_MMV_WARPS + warp, n_gw = RF_GDIM_X * RF_MMV_WARPS;
    rf_u32x4* buf = wbuf[warp];

    // The first step's loads go out before the activations are quantized.
    rf_u32x4 pf[S::PPL];
    rf_u32 nx_off = 0, nx_np = 0;
    rf_u32 r = gw, s = 0;  // r: row group (rows r * R .. r * R + R - 1)
    auto prefetch = [&](rf_u32 group, rf_u32 step) {
        rf_u32 lr = group * R;
        const int sg = GLU ? (step >= steps ? 1 : 0) : m.seg(group * R, &lr);
        const rf_u8* wm = m.w(sg);
        const rf_u32 ms = (GLU && step >= steps) ? step - steps : step;
        const rf_u64 start = (rf_u64)ms * S::BYTES;
        const rf_u64 left = group_bytes - start;
        const rf_u32 len = left < (rf_u64)S::BYTES ? (rf_u32)left : (rf_u32)S::BYTES;
        const rf_u32 seg_rows = GLU ? m.rows0 : m.rows(sg);
        rf_prefetch<S::PPL>(wm + (rf_u64)lr * row_bytes + start, len,
                            wm + (rf_u64)seg_rows * row_bytes, lane, pf, &nx_off, &nx_np);
    };
    if (r < groups) prefetch(r, 0);
    // Weights only so far: a dependent launch waits here for the kernel before it (rf_platform.h).
    RF_GRID_DEP_WAIT();
    RF_GRID_DEP_LAUNCH();
    rf_stage_q8_1<S::QPC>(x, aqs, ads, cols, nt, ts, smem, norm);

    float acc[NT], gate[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = gate[t] = 0.0f;
    while (r < groups) {
        rf_sync_warp();  // the previous step is done reading the buffer
#pragma unroll
        for (int j = 0; j < S::PPL; ++j) {
            const rf_u32 p = lane + j * RF_WARP_SIZE;
            if (p < nx_np) buf[p] = pf[j];
        }
        rf_sync_warp();
        const rf_u32 cr = r, coff = nx_off;
        const bool second = GLU && s >= steps;  // this step reads w2
        const rf_u32 cs = second ? s - steps : s;
        if (++s == row_steps) {
            s = 0;
            r += n_gw;
        }
        if (r < groups) prefetch(r, s);  // in flight while this step is computed
        // This lane's row of the step (R > 1: the step holds R whole rows, steps == 1).
        const rf_u8* sb = (const rf_u8*)buf + coff + (rf_u64)grp * row_bytes;
        for (rf_u32 u0 = 0; u0 < (rf_u32)S::U * R; u0 += S::U) {
#pragma unroll
            for (int u = 0; u < S::U; ++u) {
                const rf_u32 cl = gl + (u0 + u) * lpr;  // chunk within the row's part of the step
                const rf_u32 c = cs * S::CHUNKS + cl;   // chunk within the row
                if (c < chunks) {
                    rf_qb qb[S::QPC];
                    T::unpack(sb + (cl / S::CPB) * T::BLOCK_BYTES, (int)(cl % S::CPB), qb);
#pragma unroll
                    for (int t = 0; t < NT; ++t) {
                        if ((rf_u32)t < nt) {
                            const rf_u8* ac = smem + t * ts + c * L::CHUNK_BYTES;
#pragma unroll
                            for (int k = 0; k < S::QPC; ++k) acc[t] += rf_qb_dot_staged<T>(qb[k], ac + 48 * k);
                        }
                    }
                }
            }
        }
        if (cs + 1 == steps) {
#pragma unroll
            for (int t = 0; t < NT; ++t) {
                // Sum over the row's lanes (the whole warp when R = 1, as rf_warp_sum_f32).
                float v = acc[t];
#pragma unroll
                for (int mk = RF_WARP_SIZE / 2; mk > 0; mk >>= 1) {
                    if ((rf_u32)mk < lpr) v += rf_shfl_xor_f32(v, mk);
                }
                acc[t] = 0.0f;
                if (GLU && !second) {
                    gate[t] = v;
                } else if (gl == 0 && (rf_u32)t < nt) {
                    const float g = gate[t];
                    rf_u32 lr = cr * R;
                    const int sg = GLU ? 0 : m.seg(cr * R, &lr);
                    const rf_u32 seg_rows = GLU ? m.rows0 : m.rows(sg);
                    float* o = m.out(sg) + (rf_u64)t * seg_rows + lr + grp;
                    *o = GLU ? (g / (1.0f + rf_expf(-g))) * v : (m.acc != 0u ? *o + v : v);
                }
            }
        }
    }
}

// mmvqs_*: from f32 activations; mmvqm_*: the same for up to three weights (q, k, v) in one
// launch; mmvqg_*: the same for a gate/up pair, writing silu(gate) * up (rf_mv_set above);
// mmvqa_*: from a q8_1 activation buffer (aqs, ads). After `rpw`: the norm of the f32
// activations (nw null: none; rf_act_norm: weight, eps, normed rows out) where the kernel
// stages f32 activations, and `acc` (non-zero: out += the product) where one weight is written.
#define RF_MMVQS_KERNEL_NT(name, T, NT)                                                           \
    RF_KERNEL(RF_MMV_THREADS)                                                                     \
    void mmvqs_##name##_n##NT(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 chunks,       \
                              const float* x, rf_u32 cols, rf_u32 n_tokens, float* out,           \
                              rf_u32 rpw, const float* nw, float eps, float* normed, rf_u32 acc) { \
        RF_DYNAMIC_SHARED(rf_u32x4, rf_smem);                                                     \
        __shared__ rf_u32x4 wbuf[RF_MMV_WARPS][rf_step<T>::PPL * RF_WARP_SIZE];                   \
        const rf_mv_set m = {w, nullptr, nullptr, out, nullptr, nullptr, rows, 0u, 0u, acc};      \
        const rf_act_norm nm = {nw, eps, normed};                                                 \
        rf_mmvq_staged<T, NT, false>(m, row_bytes, chunks, x, nullptr, nullptr, cols, n_tokens,   \
                                     rpw, (rf_u8*)rf_smem, wbuf, nm);                             \
    }                                                                                             \
    RF_KERNEL(RF_MMV_THREADS)                                                                     \
    void mmvqm_##name##_n##NT(const rf_u8* w0, const rf_u8* w1, const rf_u8* w2,                  \
                              rf_u64 row_bytes, rf_u32 rows0, rf_u32 rows1, rf_u32 rows2,         \
                              rf_u32 chunks, const float* x, rf_u32 cols, rf_u32 n_tokens,        \
                              float* out0, float* out1, float* out2, rf_u32 rpw, const float* nw, \
                              float eps, float* normed) {                                         \
        RF_DYNAMIC_SHARED(rf_u32x4, rf_smem);                                                     \
        __shared__ rf_u32x4 wbuf[RF_MMV_WARPS][rf_step<T>::PPL * RF_WARP_SIZE];                   \
        const rf_mv_set m = {w0, w1, w2, out0, out1, out2, rows0, rows1, rows2, 0u};              \
        const rf_act_norm nm = {nw, eps, normed};                                                 \
        rf_mmvq_staged<T, NT, false>(m, row_bytes, chunks, x, nullptr, nullptr, cols, n_tokens,   \
                                     rpw, (rf_u8*)rf_smem, wbuf, nm);                             \
    }                                                                                             \
    RF_KERNEL(RF_MMV_THREADS)                                                                     \
    void mmvqg_##name##_n##NT(const rf_u8* w, const rf_u8* w2, rf_u64 row_bytes, rf_u32 rows,     \
                              rf_u32 chunks, const float* x, rf_u32 cols, rf_u32 n_tokens,        \
                              float* out, rf_u32 rpw, const float* nw, float eps, float* normed) { \
        RF_DYNAMIC_SHARED(rf_u32x4, rf_smem);                                                     \
        __shared__ rf_u32x4 wbuf[RF_MMV_WARPS][rf_step<T>::PPL * RF_WARP_SIZE];                   \
        const rf_mv_set m = {w, w2, nullptr, out, nullptr, nullptr, rows, 0u, 0u, 0u};           \
        const rf_act_norm nm = {nw, eps, normed};                                                 \
        rf_mmvq_staged<T, NT, true>(m, row_bytes, chunks, x, nullptr, nullptr, cols, n_tokens,    \
                                    rpw, (rf_u8*)rf_smem, wbuf, nm);                              \
    }                                                                                             \
    RF_KERNEL(RF_MMV_THREADS)                                                                     \
    void mmvqa_##name##_n##NT(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 chunks,       \
                              const rf_i8* aqs, const float* ads, rf_u32 cols, rf_u32 n_tokens,   \
                              float* out, rf_u32 rpw, rf_u32 acc) {                               \
        RF_DYNAMIC_SHARED(rf_u32x4, rf_smem);                                                     \
        __shared__ rf_u32x4 wbuf[RF_MMV_WARPS][rf_step<T>::PPL * RF_WARP_SIZE];                   \
        const rf_mv_set m = {w, nullptr, nullptr, out, nullptr, nullptr, rows, 0u, 0u, acc};      \
        const rf_act_norm nm = {nullptr, 0.0f, nullptr};                                          \
        rf_mmvq_staged<T, NT, false>(m, row_bytes, chunks, nullptr, aqs, ads, cols, n_tokens,     \
                                     rpw, (rf_u8*)rf_smem, wbuf, nm);                             \
    }
#define RF_MMVQS_KERNEL(name, T)   \
    RF_MMVQS_KERNEL_NT(name, T, 1) \
    RF_MMVQS_KERNEL_NT(name, T, 2) \
    RF_MMVQS_KERNEL_NT(name, T, 4) \
    RF_MMVQS_KERNEL_NT(name, T, 8)


// ---------------------------------------------------------------------------------------------
// F16 / BF16 weights. Activations rounded (mode 1: f16, mode 2: bf16, as round_act_f32) into sx
// [nt][cols] 16-bit values; cols a multiple of 8. Ends with a block barrier.
template <int MODE>
RF_DEVICE void rf_stage_round16(const float* x, rf_u32 cols, rf_u32 nt, rf_u32* sx,
                                const rf_act_norm& norm) {
    constexpr rf_u32 UNR = 4;
    const rf_u32 quads = nt * cols / 4;
    __shared__ float nsc[8];
    const bool normed = norm.w != nullptr;
    if (normed) rf_norm_scales(x, cols, nt, norm, nsc);
    float* const nout = normed && RF_BID_X == 0 ? norm.out : nullptr;
    for (rf_u32 base = RF_TID_X; base < quads; base += UNR * RF_MMV_THREADS) {
        rf_u32x4 raw[UNR];
#pragma unroll
        for (rf_u32 u = 0; u < UNR; ++u) {
            const rf_u32 i = base + u * RF_MMV_THREADS;
            if (i < quads) raw[u] = ((const rf_u32x4*)x)[i];
        }
#pragma unroll
        for (rf_u32 u = 0; u < UNR; ++u) {
            const rf_u32 i = base + u * RF_MMV_THREADS;
            if (i < quads) {
                rf_u32 v[4] = {raw[u].x, raw[u].y, raw[u].z, raw[u].w};
                if (normed) {
                    const rf_u32 t = i / (cols / 4), c = 4 * (i - t * (cols / 4));
                    const rf_u32x4 wq = *(const rf_u32x4*)(norm.w + c);
                    const rf_u32 wv[4] = {wq.x, wq.y, wq.z, wq.w};
#pragma unroll
                    for (int k = 0; k < 4; ++k) {
                        const float f = (__builtin_bit_cast(float, v[k]) * nsc[t]) * __builtin_bit_cast(float, wv[k]);
                        v[k] = __builtin_bit_cast(rf_u32, f);
                    }
                    if (nout != nullptr) {
                        rf_u32x4 o;
                        o.x = v[0]; o.y = v[1]; o.z = v[2]; o.w = v[3];
                        ((rf_u32x4*)nout)[i] = o;
                    }
                }
                rf_u32 h[4];
#pragma unroll
                for (int k = 0; k < 4; ++k) {
                    const float f = __builtin_bit_cast(float, v[k]);
                    h[k] = MODE == 1 ? rf_f16_bits_of(f) : (rf_u32)rf_f32_to_bf16(f);
                }
                sx[2 * i] = h[0] | (h[1] << 16);
                sx[2 * i + 1] = h[2] | (h[3] << 16);
            }
        }
    }
    rf_sync_block();
}

template <int MODE>
RF_DEVICE float rf_w16_to_f32(rf_u32 bits) {
    return MODE == 1 ? rf_f16_bits(bits) : __builtin_bit_cast(float, bits << 16);
}

// Sums each row's partial results over its tpr threads (shuffles, then shared memory across
// warps when tpr > RF_WARP_SIZE) and writes them.
template <int NT>
RF_DEVICE void rf_mmvs_reduce_store(float* acc, rf_u32 tpr, rf_u32 row, rf_u32 rows, rf_u32 nt,
                                    float* out, float* red, rf_u32 add) {
#pragma unroll
    for (int m = RF_WARP_SIZE / 2; m > 0; m >>= 1) {
        if ((rf_u32)m < tpr) {
#pragma unroll
            for (int t = 0; t < NT; ++t) acc[t] += rf_shfl_xor_f32(acc[t], m);
        }
    }
    const rf_u32 tid = RF_TID_X;
    if (tpr > RF_WARP_SIZE) {
        const rf_u32 warp = tid / RF_WARP_SIZE;
        if (tid % RF_WARP_SIZE == 0) {
#pragma unroll
            for (int t = 0; t < NT; ++t) red[t * RF_MMV_WARPS + warp] = acc[t];
        }
        rf_sync_block();
        if (tid % tpr == 0) {
            const rf_u32 per_row = tpr / RF_WARP_SIZE;
#pragma unroll
            for (int t = 0; t < NT; ++t) {
                float s = 0.0f;
                for (rf_u32 k = 0; k < per_row; ++k) s += red[t * RF_MMV_WARPS + warp + k];
                acc[t] = s;
            }
        }
        rf_sync_block();  // red is reused by the next row
    }
    if (tid % tpr == 0 && row < rows) {
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            if ((rf_u32)t < nt) {
                float* o = out + (rf_u64)t * rows + row;
                *o = add != 0u ? *o + acc[t] : acc[t];
            }
        }
    }
}

template <int MODE, int NT>
RF_DEVICE void rf_mmvf_staged(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 chunks,
                              const float* x, rf_u32 cols, rf_u32 n_tokens, float* out,
                              rf_u32 tpr, rf_u32* sx, float* red, const rf_act_norm& norm,
                              rf_u32 add) {
    const rf_u32 tid = RF_TID_X, lane = tid % tpr;
    const rf_u32 nt = n_tokens < (rf_u32)NT ? n_tokens : (rf_u32)NT;
    RF_GRID_DEP_BEGIN();
    rf_stage_round16<MODE>(x, cols, nt, sx, norm);
    const rf_u32 rpb = RF_MMV_THREADS / tpr;
    constexpr int UNR = 4;
    for (rf_u32 base = RF_BID_X * rpb; base < rows; base += RF_GDIM_X * rpb) {
        const rf_u32 row = base + tid / tpr;
        float acc[NT];
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
        if (row < rows) {
            const rf_u8* wrow = w + (rf_u64)row * row_bytes;
            rf_u32 c = lane;
            for (; c < chunks; c += UNR * tpr) {
                rf_u32x4 wv[UNR];
#pragma unroll
                for (int u = 0; u < UNR; ++u) {
                    if (c + u * tpr < chunks) wv[u] = ((const rf_u32x4*)wrow)[c + u * tpr];
                }
#pragma unroll
                for (int u = 0; u < UNR; ++u) {
                    const rf_u32 cu = c + u * tpr;
                    if (cu < chunks) {
                        const rf_u32 ww[4] = {wv[u].x, wv[u].y, wv[u].z, wv[u].w};
                        float v[8];
#pragma unroll
                        for (int i = 0; i < 4; ++i) {
                            v[2 * i] = rf_w16_to_f32<MODE>(ww[i] & 0xffffu);
                            v[2 * i + 1] = rf_w16_to_f32<MODE>(ww[i] >> 16);
                        }
#pragma unroll
                        for (int t = 0; t < NT; ++t) {
                            if ((rf_u32)t < nt) {
                                const rf_u32x4 xa = ((const rf_u32x4*)(sx + (rf_u64)t * cols / 2))[cu];
                                const rf_u32 xs[4] = {xa.x, xa.y, xa.z, xa.w};
                                float sum = 0.0f;
#pragma unroll
                                for (int i = 0; i < 4; ++i) {
                                    sum += v[2 * i] * rf_w16_to_f32<MODE>(xs[i] & 0xffffu);
                                    sum += v[2 * i + 1] * rf_w16_to_f32<MODE>(xs[i] >> 16);
                                }
                                acc[t] += sum;
                            }
                        }
                    }
                }
            }
        }
        rf_mmvs_reduce_store<NT>(acc, tpr, row, rows, nt, out, red, add);
    }
}

#define RF_MMVFS_KERNEL_NT(name, MODE, NT)                                                        \
    RF_KERNEL(RF_MMV_THREADS)                                                                     \
    void mmvfs_##name##_n##NT(const rf_u8* w, rf_u64 row_bytes, rf_u32 rows, rf_u32 chunks,       \
                              const float* x, rf_u32 cols, rf_u32 n_tokens, float* out,           \
                              rf_u32 tpr, const float* nw, float eps, float* normed, rf_u32 acc) { \
        RF_DYNAMIC_SHARED(rf_u32x4, rf_smem);                                                     \
        __shared__ float red[NT * RF_MMV_WARPS];                                                  \
        const rf_act_norm nm = {nw, eps, normed};                                                 \
        rf_mmvf_staged<MODE, NT>(w, row_bytes, rows, chunks, x, cols, n_tokens, out, tpr,         \
                                 (rf_u32*)rf_smem, red, nm, acc);                                 \
    }
#define RF_MMVFS_KERNEL(name, MODE)   \
    RF_MMVFS_KERNEL_NT(name, MODE, 1) \
    RF_MMVFS_KERNEL_NT(name, MODE, 2) \
    RF_MMVFS_KERNEL_NT(name, MODE, 4) \
    RF_MMVFS_KERNEL_NT(name, MODE, 8)

#endif  // RF_MMVQ_FUSED_H
