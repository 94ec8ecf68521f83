// rf_quant_blocks.h — GGUF weight blocks as seen by the matmul kernels (mmvq.hip, mmq.hip).
//
// Every quantized weight type is multiplied with activations quantized to q8_1 blocks
// (quantize_act.hip): per 32 activations, 32 signed bytes `qs` and two floats `d` (scale) and
// `s = d * sum(qs)`, both rounded through f16 (the CPU backend's convention; ggml-cuda stores
// the sum of the unquantized values instead). The activation buffer is split: all `qs` first
// (one byte per value, [token][cols]), then the (d, s) pairs ([token][cols / 32]).
//
// A weight row is cut into *chunks* of QB_PER_CHUNK × 32 values (the unit one thread unpacks
// from one aligned run of bytes). `unpack(block, sub, qb)` turns chunk `sub` of a block into
// QB_PER_CHUNK rf_qb records: 32 signed 8-bit values plus float factors, such that the dot
// product with one q8_1 block (aq, ad, as) is
//     ad * (a0 * dot(q[0..16], aq[0..16]) + a1 * dot(q[16..32], aq[16..32])
//           - m0 * sum(aq[0..16]) - m1 * sum(aq[16..32])) + mw * as
// (a0 == a1 and m0 == m1 unless SCALE16; m* only when HAS_MIN; mw only when HAS_MW).
#pragma once
#include "rf_platform.h"

// Member functions of the block structs (RF_DEVICE carries `static`, invalid there).
#define RF_MEMBER __device__ inline __attribute__((always_inline))

typedef unsigned char rf_u8;
typedef signed char rf_i8;

// ---------------------------------------------------------------------------------------------
// Four-way signed byte dot product with accumulate: c + sum_k a.byte[k] * b.byte[k].
RF_DEVICE int rf_dp4a(int a, int b, int c) {
#if defined(RF_AMD) && (defined(__gfx90a__) || defined(__gfx940__) || defined(__gfx941__) || \
                        defined(__gfx942__) || defined(__gfx906__) || defined(__gfx908__))
    return __builtin_amdgcn_sdot4(a, b, c, false);
#elif defined(RF_AMD) && (defined(__GFX11__) || defined(__GFX12__))
    return __builtin_amdgcn_sudot4(true, a, true, b, c, false);
#elif defined(RF_NVCC) || defined(RF_CLANG_NVPTX)
    int r;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
#else
    // Portable fallback.
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        c += (int)(signed char)(a >> (8 * k)) * (int)(signed char)(b >> (8 * k));
    }
    return c;
#endif
}

// ---------------------------------------------------------------------------------------------
// Loads. `_a2` reads a 4-byte word from a 2-byte aligned address.
struct __attribute__((aligned(16))) rf_u32x4 {
    rf_u32 x, y, z, w;
};

RF_DEVICE rf_u32 rf_ld_u16(const rf_u8* p) { return *(const unsigned short*)p; }
RF_DEVICE rf_u32 rf_ld_u32_a2(const rf_u8* p) {
    const unsigned short* h = (const unsigned short*)p;
    return (rf_u32)h[0] | ((rf_u32)h[1] << 16);
}
RF_DEVICE rf_u32 rf_ld_u32(const rf_u8* p) { return *(const rf_u32*)p; }
// 8 words from a 16-byte aligned address (two 16-byte loads).
RF_DEVICE void rf_ld_8w_a16(const rf_u8* p, rf_u32* w) {
    rf_u32x4 a = ((const rf_u32x4*)p)[0], b = ((const rf_u32x4*)p)[1];
    w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;
    w[4] = b.x; w[5] = b.y; w[6] = b.z; w[7] = b.w;
}
RF_DEVICE void rf_ld_4w_a16(const rf_u8* p, rf_u32* w) {
    rf_u32x4 a = *(const rf_u32x4*)p;
    w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;
}

// N words from a 2-byte aligned address without reading outside [p, p + 4N): N aligned word
// loads plus one 16-bit load, shifted into place (no branch, so lanes whose blocks differ in
// alignment stay converged).
template <int N>
RF_DEVICE void rf_ld_words_a2(const rf_u8* p, rf_u32* w) {
    const rf_u32* base = (const rf_u32*)((rf_u64)p & ~(rf_u64)3);
    const rf_u32 sh = ((rf_u32)(rf_u64)p & 2u) * 8u;  // 0 or 16
    rf_u32 cur = base[0];
#pragma unroll
    for (int i = 0; i < N - 1; ++i) {
        const rf_u32 next = base[i + 1];
        w[i] = (rf_u32)((((rf_u64)next << 32) | cur) >> sh);
        cur = next;
    }
    const rf_u32 top = rf_ld_u16(p + 4 * N - 2);
    w[N - 1] = (sh ? (cur >> 16) : (cur & 0xffffu)) | (top << 16);
}

// IEEE f16 bit pattern to f32.
RF_DEVICE float rf_f16_bits(rf_u32 bits) {
#if defined(RF_NVCC)
    return __half2float(__ushort_as_half((unsigned short)bits));
#else
    return (float)__builtin_bit_cast(_Float16, (unsigned short)bits);
#endif
}

// Subtracts `k` from each byte (each byte + 0x80 - k must stay below 0x100): signed result.
RF_DEVICE int rf_sub_bytes(rf_u32 v, rf_u32 k) {
    return (int)((v + (0x80u - k) * 0x01010101u) ^ 0x80808080u);
}

// Bits 0..3 of `h` moved to bit `shift` of bytes 0..3.
RF_DEVICE rf_u32 rf_spread4(rf_u32 h, int shift) {
    return (((h & 1u)) | ((h & 2u) << 7) | ((h & 4u) << 14) | ((h & 8u) << 21)) << shift;
}

// ---------------------------------------------------------------------------------------------
// One unpacked 32-value piece of a weight row.
struct rf_qb {
    int q[8];
    float a0, a1, m0, m1, mw;
};

// The q8_1 activation block: 8 words of signed bytes, scale and d*sum.
struct rf_q8 {
    int q[8];
    float d, s;
};

// Sums of the quantized values of an activation block: values 0..16 into u0, 16..32 into u1.
RF_DEVICE void rf_q8_sums(const rf_q8& a, int* u0, int* u1) {
    int s0 = 0, s1 = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) s0 = rf_dp4a(0x01010101, a.q[i], s0);
#pragma unroll
    for (int i = 4; i < 8; ++i) s1 = rf_dp4a(0x01010101, a.q[i], s1);
    *u0 = s0;
    *u1 = s1;
}

// Dot product of one unpacked weight piece with one activation block.
template <class T>
RF_DEVICE float rf_qb_dot(const rf_qb& w, const rf_q8& a) {
    int s0 = 0, s1 = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) s0 = rf_dp4a(w.q[i], a.q[i], s0);
#pragma unroll
    for (int i = 4; i < 8; ++i) s1 = rf_dp4a(w.q[i], a.q[i], s1);
    float r;
    if (T::SCALE16) {
        r = w.a0 * (float)s0 + w.a1 * (float)s1;
    } else {
        r = w.a0 * (float)(s0 + s1);
    }
    if (T::HAS_MIN) {
        int u0, u1;
        rf_q8_sums(a, &u0, &u1);
        if (T::SCALE16) {
            r -= w.m0 * (float)u0 + w.m1 * (float)u1;
        } else {
            r -= w.m0 * (float)(u0 + u1);
        }
    }
    r *= a.d;
    if (T::HAS_MW) r += w.mw * a.s;
    return r;
}

// Fills the factors of a piece whose 32 values share one scale.
RF_DEVICE void rf_qb_scale(rf_qb& o, float a, float m, float mw) {
    o.a0 = a; o.a1 = a; o.m0 = m; o.m1 = m; o.mw = mw;
}

// Chunk `c` (of QB_PER_CHUNK x 32 values) of weight row `row` unpacked into qb[0..QB_PER_CHUNK),
// or all zeros (values and factors) where the row or the chunk lies past the matrix: the padding
// of the tile kernels (rf_mmq_tile.h, rf_mmqt.h).
template <class T>
RF_DEVICE void rf_unpack_chunk_or_zero(const rf_u8* w, rf_u64 row_bytes, rf_u32 row, rf_u32 rows,
                                       rf_u32 c, rf_u32 chunks, rf_qb* qb) {
    constexpr int CPB = T::BLOCK_VALUES / (32 * T::QB_PER_CHUNK);  // chunks per block
    if (row < rows && c < chunks) {
        const rf_u8* wrow = w + (rf_u64)row * row_bytes;
        T::unpack(wrow + (rf_u64)(c / CPB) * T::BLOCK_BYTES, (int)(c % CPB), qb);
    } else {
#pragma unroll
        for (int k = 0; k < T::QB_PER_CHUNK; ++k) {
#pragma unroll
            for (int j = 0; j < 8; ++j) qb[k].q[j] = 0;
            rf_qb_scale(qb[k], 0.0f, 0.0f, 0.0f);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 32-value block formats (QK = 32, one chunk per block).
struct rf_q4_0 {
    static constexpr int BLOCK_VALUES = 32, BLOCK_BYTES = 18, QB_PER_CHUNK = 1;
    static constexpr bool SCALE16 = false, HAS_MIN = false, HAS_MW = false;
    static RF_MEMBER void unpack(const rf_u8* b, int, rf_qb* o) {
        rf_u32 ws[4];
        rf_ld_words_a2<4>(b + 2, ws);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            rf_u32 w = ws[i];
            o[0].q[i] = rf_sub_bytes(w & 0x0f0f0f0fu, 8);
            o[0].q[4 + i] = rf_sub_bytes((w >> 4) & 0x0f0f0f0fu, 8);
        }
        rf_qb_scale(o[0], rf_f16_bits(rf_ld_u16(b)), 0.0f, 0.0f);
    }
};

struct rf_q4_1 {
    static constexpr int BLOCK_VALUES = 32, BLOCK_BYTES = 20, QB_PER_CHUNK = 1;
    static constexpr bool SCALE16 = false, HAS_MIN = false, HAS_MW = true;
    static RF_MEMBER void unpack(const rf_u8* b, int, rf_qb* o) {
        rf_u32 dm = rf_ld_u32(b);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            rf_u32 w = rf_ld_u32(b + 4 + 4 * i);
            o[0].q[i] = (int)(w & 0x0f0f0f0fu);
            o[0].q[4 + i] = (int)((w >> 4) & 0x0f0f0f0fu);
        }
        rf_qb_scale(o[0], rf_f16_bits(dm & 0xffffu), 0.0f, rf_f16_bits(dm >> 16));
    }
};

struct rf_q5_0 {
    static constexpr int BLOCK_VALUES = 32, BLOCK_BYTES = 22, QB_PER_CHUNK = 1;
    static constexpr bool SCALE16 = false, HAS_MIN = false, HAS_MW = false;
    static RF_MEMBER void unpack(const rf_u8* b, int, rf_qb* o) {
        rf_u32 ws[5];
        rf_ld_words_a2<5>(b + 2, ws);
        const rf_u32 qh = ws[0];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            rf_u32 w = ws[1 + i];
            rf_u32 lo = (w & 0x0f0f0f0fu) | rf_spread4(qh >> (4 * i), 4);
            rf_u32 hi = ((w >> 4) & 0x0f0f0f0fu) | rf_spread4(qh >> (16 + 4 * i), 4);
            o[0].q[i] = rf_sub_bytes(lo, 16);
            o[0].q[4 + i] = rf_sub_bytes(hi, 16);
        }
        rf_qb_scale(o[0], rf_f16_bits(rf_ld_u16(b)), 0.0f, 0.0f);
    }
};

struct rf_q5_1 {
    static constexpr int BLOCK_VALUES = 32, BLOCK_BYTES = 24, QB_PER_CHUNK = 1;
    static constexpr bool SCALE16 = false, HAS_MIN = false, HAS_MW = true;
    static RF_MEMBER void unpack(const rf_u8* b, int, rf_qb* o) {
        rf_u32 dm = rf_ld_u32(b);
        rf_u32 qh = rf_ld_u32(b + 4);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            rf_u32 w = rf_ld_u32(b + 8 + 4 * i);
            o[0].q[i] = (int)((w & 0x0f0f0f0fu) | rf_spread4(qh >> (4 * i), 4));
            o[0].q[4 + i] = (int)(((w >> 4) & 0x0f0f0f0fu) | rf_spread4(qh >> (16 + 4 * i), 4));
        }
        rf_qb_scale(o[0], rf_f16_bits(dm & 0xffffu), 0.0f, rf_f16_bits(dm >> 16));
    }
};

struct rf_q8_0 {
    static constexpr int BLOCK_VALUES = 32, BLOCK_BYTES = 34, QB_PER_CHUNK = 1;
    static constexpr bool SCALE16 = false, HAS_MIN = false, HAS_MW = false;
    static RF_MEMBER void unpack(const rf_u8* b, int, rf_qb* o) {
        rf_ld_words_a2<8>(b + 2, (rf_u32*)o[0].q);
        rf_qb_scale(o[0], rf_f16_bits(rf_ld_u16(b)), 0.0f, 0.0f);
    }
};

// Four table lookups at once: byte k of the result is entry (byte k of `nibbles4`, 0..15) of a
// table of 16 signed bytes held four per word in t0..t3.
RF_DEVICE int rf_lookup4(rf_u32 nibbles4, rf_u32 t0, rf_u32 t1, rf_u32 t2, rf_u32 t3) {
    rf_u32 r = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        rf_u32 idx = (nibbles4 >> (8 * k)) & 15u;
        rf_u32 word = idx < 8 ? (idx < 4 ? t0 : t1) : (idx < 12 ? t2 : t3);
        r |= ((word >> (8 * (idx & 3))) & 0xffu) << (8 * k);
    }
    return (int)r;
}

// The 16 signed values of ggml's kvalues_iq4nl, four per word.
RF_DEVICE int rf_iq4_lookup4(rf_u32 nibbles4) {
    // nibbles4: four 4-bit indices, one per byte.
    return rf_lookup4(nibbles4, 0xbfad9881u, 0xf6eaddcfu, 0x26190d01u, 0x71594535u);
}

struct rf_iq4_nl {
    static constexpr int BLOCK_VALUES = 32, BLOCK_BYTES = 18, QB_PER_CHUNK = 1;
    static constexpr bool SCALE16 = false, HAS_MIN = false, HAS_MW = false;
    static RF_MEMBER void unpack(const rf_u8* b, int, rf_qb* o) {
        rf_u32 ws[4];
        rf_ld_words_a2<4>(b + 2, ws);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            rf_u32 w = ws[i];
            o[0].q[i] = rf_iq4_lookup4(w & 0x0f0f0f0fu);
            o[0].q[4 + i] = rf_iq4_lookup4((w >> 4) & 0x0f0f0f0fu);
        }
        rf_qb_scale(o[0], rf_f16_bits(rf_ld_u16(b)), 0.0f, 0.0f);
    }
};

// N words from a byte-aligned address: aligned word loads funnel-shifted into place. The last
// aligned word is read only when the run is not word-aligned, and then it holds at least one
// byte of the run (an aligned word never straddles an allocation's end).
template <int N>
RF_DEVICE void rf_ld_words_a1(const rf_u8* p, rf_u32* w) {
    const rf_u32* base = (const rf_u32*)((rf_u64)p & ~(rf_u64)3);
    const rf_u32 sh = ((rf_u32)(rf_u64)p & 3u) * 8u;
    rf_u32 cur = base[0];
#pragma unroll
    for (int i = 0; i < N; ++i) {
        const rf_u32 next = (i + 1 < N || sh) ? base[i + 1] : 0u;
        w[i] = (rf_u32)((((rf_u64)next << 32) | cur) >> sh);
        cur = next;
    }
}

// E8M0 scale byte e to half its value, 2^(e - 128) (ggml's ggml_e8m0_to_fp32_half: MXFP4's
// table values are doubled).
RF_DEVICE float rf_e8m0_half(rf_u32 e) {
    const rf_u32 bits = e < 2u ? 0x00200000u << e : (e - 1u) << 23;
    return __builtin_bit_cast(float, bits);
}

// MXFP4 (gpt-oss's experts): 17 bytes per 32 values, e (E8M0) then 16 bytes of FP4 E2M1 codes
// ordered as Q4_0's; value = kvalues_mxfp4[code] * 2^(e - 128) with the doubled E2M1 table
// {0, 1, 2, 3, 4, 6, 8, 12, -0, -1, -2, -3, -4, -6, -8, -12}. Blocks are byte-aligned.
struct rf_mxfp4 {
    static constexpr int BLOCK_VALUES = 32, BLOCK_BYTES = 17, QB_PER_CHUNK = 1;
    static constexpr bool SCALE16 = false, HAS_MIN = false, HAS_MW = false;
    static RF_MEMBER void unpack(const rf_u8* b, int, rf_qb* o) {
        rf_u32 ws[4];
        rf_ld_words_a1<4>(b + 1, ws);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const rf_u32 w = ws[i];
            o[0].q[i] = rf_lookup4(w & 0x0f0f0f0fu, 0x03020100u, 0x0c080604u, 0xfdfeff00u,
                                   0xf4f8fafcu);
            o[0].q[4 + i] = rf_lookup4((w >> 4) & 0x0f0f0f0fu, 0x03020100u, 0x0c080604u,
                                       0xfdfeff00u, 0xf4f8fafcu);
        }
        rf_qb_scale(o[0], rf_e8m0_half(b[0]), 0.0f, 0.0f);
    }
};

// ---------------------------------------------------------------------------------------------
// 256-value super-block formats.

// Scale and min of sub-block j (0..8) of Q4_K / Q5_K from the 12 scale bytes (as 3 words).
RF_DEVICE void rf_scale_min_k4(int j, const rf_u32* s, int* sc, int* m) {
    if (j < 4) {
        *sc = (int)((s[0] >> (8 * j)) & 63u);  // q[j]
        *m = (int)((s[1] >> (8 * j)) & 63u);   // q[j + 4]
    } else {
        const rf_u8 qj8 = (rf_u8)(s[2] >> (8 * (j - 4)));   // q[j + 4]
        const rf_u8 qjm4 = (rf_u8)(s[0] >> (8 * (j - 4)));  // q[j - 4]
        const rf_u8 qj = (rf_u8)(s[1] >> (8 * (j - 4)));    // q[j]
        *sc = (qj8 & 0x0f) | ((qjm4 >> 6) << 4);
        *m = (qj8 >> 4) | ((qj >> 6) << 4);
    }
}

struct rf_q4_k {
    static constexpr int BLOCK_VALUES = 256, BLOCK_BYTES = 144, QB_PER_CHUNK = 2;
    static constexpr bool SCALE16 = false, HAS_MIN = true, HAS_MW = false;
    static RF_MEMBER void unpack(const rf_u8* b, int sub, rf_qb* o) {
        rf_u32 w[8];
        rf_ld_8w_a16(b + 16 + 32 * sub, w);
        rf_u32x4 head = *(const rf_u32x4*)b;  // d, dmin, scales[12]
        const rf_u32 s[3] = {head.y, head.z, head.w};
        const float d = rf_f16_bits(head.x & 0xffffu), dmin = rf_f16_bits(head.x >> 16);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            o[0].q[i] = (int)(w[i] & 0x0f0f0f0fu);
            o[1].q[i] = (int)((w[i] >> 4) & 0x0f0f0f0fu);
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            int sc, m;
            rf_scale_min_k4(2 * sub + h, s, &sc, &m);
            rf_qb_scale(o[h], d * (float)sc, dmin * (float)m, 0.0f);
        }
    }
};

struct rf_q5_k {
    static constexpr int BLOCK_VALUES = 256, BLOCK_BYTES = 176, QB_PER_CHUNK = 2;
    static constexpr bool SCALE16 = false, HAS_MIN = true, HAS_MW = false;
    static RF_MEMBER void unpack(const rf_u8* b, int sub, rf_qb* o) {
        rf_u32 w[8], qh[8];
        rf_ld_8w_a16(b + 48 + 32 * sub, w);
        rf_ld_8w_a16(b + 16, qh);
        rf_u32x4 head = *(const rf_u32x4*)b;
        const rf_u32 s[3] = {head.y, head.z, head.w};
        const float d = rf_f16_bits(head.x & 0xffffu), dmin = rf_f16_bits(head.x >> 16);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            rf_u32 h = qh[i] >> (2 * sub);
            o[0].q[i] = (int)((w[i] & 0x0f0f0f0fu) | ((h & 0x01010101u) << 4));
            o[1].q[i] = (int)(((w[i] >> 4) & 0x0f0f0f0fu) | (((h >> 1) & 0x01010101u) << 4));
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            int sc, m;
            rf_scale_min_k4(2 * sub + h, s, &sc, &m);
            rf_qb_scale(o[h], d * (float)sc, dmin * (float)m, 0.0f);
        }
    }
};

struct rf_q6_k {
    static constexpr int BLOCK_VALUES = 256, BLOCK_BYTES = 210, QB_PER_CHUNK = 4;
    static constexpr bool SCALE16 = true, HAS_MIN = false, HAS_MW = false;
    static RF_MEMBER void unpack(const rf_u8* b, int sub, rf_qb* o) {
        const rf_u8* ql = b + 64 * sub;
        const rf_u8* qh = b + 128 + 32 * sub;
        const rf_u8* sc = b + 192 + 8 * sub;
        const float d = rf_f16_bits(rf_ld_u16(b + 208));
        rf_u32 lw[16], hw[8];
        rf_ld_words_a2<16>(ql, lw);
        rf_ld_words_a2<8>(qh, hw);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            rf_u32 a = lw[i], c = lw[8 + i];
            rf_u32 h = hw[i];
            o[0].q[i] = rf_sub_bytes((a & 0x0f0f0f0fu) | ((h & 0x03030303u) << 4), 32);
            o[1].q[i] = rf_sub_bytes((c & 0x0f0f0f0fu) | (((h >> 2) & 0x03030303u) << 4), 32);
            o[2].q[i] = rf_sub_bytes(((a >> 4) & 0x0f0f0f0fu) | (((h >> 4) & 0x03030303u) << 4), 32);
            o[3].q[i] = rf_sub_bytes(((c >> 4) & 0x0f0f0f0fu) | (((h >> 6) & 0x03030303u) << 4), 32);
        }
        rf_u32 sw[2];
        rf_ld_words_a2<2>(sc, sw);
        const rf_u32 s01 = sw[0], s23 = sw[1];
#pragma unroll
        for (int g = 0; g < 4; ++g) {
            rf_u32 word = g < 2 ? s01 : s23;
            int lo = (int)(signed char)(word >> (16 * (g & 1)));
            int hi = (int)(signed char)(word >> (16 * (g & 1) + 8));
            o[g].a0 = d * (float)lo;
            o[g].a1 = d * (float)hi;
            o[g].m0 = 0.0f; o[g].m1 = 0.0f; o[g].mw = 0.0f;
        }
    }
};

// Q6_K in 64-value chunks (QB_PER_CHUNK = 2) for the kernels that keep several rows' chunks in
// registers at once (mmvq.hip's multi-row variants): chunk `sub` (0..3) is half sub / 2 of the
// block, its low (sub even) or high (sub odd) nibbles: pieces 0-1 or 2-3 of rf_q6_k's unpack of
// that half, with the same arithmetic. Both chunks of a half read the same 96 bytes.
struct rf_q6_k64 {
    static constexpr int BLOCK_VALUES = 256, BLOCK_BYTES = 210, QB_PER_CHUNK = 2;
    static constexpr bool SCALE16 = true, HAS_MIN = false, HAS_MW = false;
    static RF_MEMBER void unpack(const rf_u8* b, int sub, rf_qb* o) {
        const int half = sub >> 1, part = sub & 1;
        const rf_u8* ql = b + 64 * half;
        const rf_u8* qh = b + 128 + 32 * half;
        const rf_u8* sc = b + 192 + 8 * half + 4 * part;
        const float d = rf_f16_bits(rf_ld_u16(b + 208));
        const int shift = 4 * part;
        rf_u32 lw[16], hw[8];
        rf_ld_words_a2<16>(ql, lw);
        rf_ld_words_a2<8>(qh, hw);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            rf_u32 a = lw[i] >> shift, c = lw[8 + i] >> shift;
            rf_u32 h = hw[i] >> shift;
            o[0].q[i] = rf_sub_bytes((a & 0x0f0f0f0fu) | ((h & 0x03030303u) << 4), 32);
            o[1].q[i] = rf_sub_bytes((c & 0x0f0f0f0fu) | (((h >> 2) & 0x03030303u) << 4), 32);
        }
        rf_u32 sw[1];
        rf_ld_words_a2<1>(sc, sw);
#pragma unroll
        for (int g = 0; g < 2; ++g) {
            int lo = (int)(signed char)(sw[0] >> (16 * g));
            int hi = (int)(signed char)(sw[0] >> (16 * g + 8));
            o[g].a0 = d * (float)lo;
            o[g].a1 = d * (float)hi;
            o[g].m0 = 0.0f; o[g].m1 = 0.0f; o[g].mw = 0.0f;
        }
    }
};

struct rf_q2_k {
    static constexpr int BLOCK_VALUES = 256, BLOCK_BYTES = 84, QB_PER_CHUNK = 4;
    static constexpr bool SCALE16 = true, HAS_MIN = true, HAS_MW = false;
    static RF_MEMBER void unpack(const rf_u8* b, int sub, rf_qb* o) {
        rf_u32 w[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) w[i] = rf_ld_u32(b + 16 + 32 * sub + 4 * i);
        const rf_u32 dm = rf_ld_u32(b + 80);
        const float d = rf_f16_bits(dm & 0xffffu), dmin = rf_f16_bits(dm >> 16);
        const rf_u32 s0 = rf_ld_u32(b + 8 * sub), s1 = rf_ld_u32(b + 8 * sub + 4);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
#pragma unroll
            for (int i = 0; i < 8; ++i) o[j].q[i] = (int)((w[i] >> (2 * j)) & 0x03030303u);
            rf_u32 word = j < 2 ? s0 : s1;
            rf_u32 sa = (word >> (16 * (j & 1))) & 0xffu, sb = (word >> (16 * (j & 1) + 8)) & 0xffu;
            o[j].a0 = d * (float)(sa & 15u);
            o[j].a1 = d * (float)(sb & 15u);
            o[j].m0 = dmin * (float)(sa >> 4);
            o[j].m1 = dmin * (float)(sb >> 4);
            o[j].mw = 0.0f;
        }
    }
};

// The 6-bit scale j (0..16) of Q3_K, before subtracting 32, from the 12 scale bytes (3 words).
RF_DEVICE int rf_q3k_scale(int j, const rf_u32* s) {
    rf_u32 low = j < 8 ? (s[j / 4] >> (8 * (j % 4))) & 0x0fu : (s[(j - 8) / 4] >> (8 * ((j - 8) % 4) + 4)) & 0x0fu;
    rf_u32 high = (s[2] >> (8 * (j % 4) + 2 * (j / 4))) & 3u;
    return (int)(low | (high << 4));
}

struct rf_q3_k {
    static constexpr int BLOCK_VALUES = 256, BLOCK_BYTES = 110, QB_PER_CHUNK = 4;
    static constexpr bool SCALE16 = true, HAS_MIN = false, HAS_MW = false;
    static RF_MEMBER void unpack(const rf_u8* b, int sub, rf_qb* o) {
        rf_u32 w[8], hm[8];
        rf_ld_words_a2<8>(b + 32 + 32 * sub, w);
        rf_ld_words_a2<8>(b, hm);
        rf_u32 s[3];
        rf_ld_words_a2<3>(b + 96, s);
        const float d = rf_f16_bits(rf_ld_u16(b + 108));
#pragma unroll
        for (int j = 0; j < 4; ++j) {
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                rf_u32 low = (w[i] >> (2 * j)) & 0x03030303u;
                rf_u32 hb = (hm[i] >> (4 * sub + j)) & 0x01010101u;
                o[j].q[i] = rf_sub_bytes(low | (hb << 2), 4);
            }
            o[j].a0 = d * (float)(rf_q3k_scale(8 * sub + 2 * j, s) - 32);
            o[j].a1 = d * (float)(rf_q3k_scale(8 * sub + 2 * j + 1, s) - 32);
            o[j].m0 = 0.0f; o[j].m1 = 0.0f; o[j].mw = 0.0f;
        }
    }
};

struct rf_iq4_xs {
    static constexpr int BLOCK_VALUES = 256, BLOCK_BYTES = 136, QB_PER_CHUNK = 1;
    static constexpr bool SCALE16 = false, HAS_MIN = false, HAS_MW = false;
    static RF_MEMBER void unpack(const rf_u8* b, int sub, rf_qb* o) {
        const rf_u32 head = rf_ld_u32(b), sl = rf_ld_u32(b + 4);
        const float d = rf_f16_bits(head & 0xffffu);
        const rf_u32 scales_h = head >> 16;
        const rf_u8* qs = b + 8 + 16 * sub;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            rf_u32 w = rf_ld_u32(qs + 4 * i);
            o[0].q[i] = rf_iq4_lookup4(w & 0x0f0f0f0fu);
            o[0].q[4 + i] = rf_iq4_lookup4((w >> 4) & 0x0f0f0f0fu);
        }
        rf_u32 lo = (sl >> (8 * (sub / 2) + 4 * (sub % 2))) & 0x0fu;
        rf_u32 hi = (scales_h >> (2 * sub)) & 3u;
        rf_qb_scale(o[0], d * (float)((int)(lo | (hi << 4)) - 32), 0.0f, 0.0f);
    }
};

// Loads q8_1 activation block `blk` of a token: qs at `qs + 32 * blk` (16-byte aligned), (d, s)
// at `ds[2 * blk]`.
RF_DEVICE void rf_load_q8(const rf_i8* qs, const float* ds, rf_u64 blk, rf_q8& a) {
    rf_ld_8w_a16((const rf_u8*)(qs + 32 * blk), (rf_u32*)a.q);
    a.d = ds[2 * blk];
    a.s = ds[2 * blk + 1];
}
