// Embedding lookup: out[t][c] = table[ids[t]][c], dequantized to f32 inside the kernel. The table
// stays in its GGUF block format (ggml-common.h layouts). One block of threads per token id;
// ids are range-checked on the host. Kernels: embedding_<type>.
#include "rf_platform.h"

typedef unsigned char rf_u8;

RF_DEVICE float ld_f16(const rf_u8* p) {
    unsigned short u = (unsigned short)(p[0] | (p[1] << 8));
#if defined(RF_NVCC)
    return __half2float(__ushort_as_half(u));
#else
    return (float)__builtin_bit_cast(rf_half, u);
#endif
}

RF_DEVICE float deq_f32(const rf_u8* row, rf_u32 j) { return ((const float*)row)[j]; }
RF_DEVICE float deq_f16(const rf_u8* row, rf_u32 j) { return ld_f16(row + 2 * j); }
RF_DEVICE float deq_bf16(const rf_u8* row, rf_u32 j) {
    return rf_bf16_to_f32((rf_bf16)(row[2 * j] | (row[2 * j + 1] << 8)));
}

// q8_0: { f16 d; i8 qs[32] } = 34 bytes
RF_DEVICE float deq_q8_0(const rf_u8* row, rf_u32 j) {
    const rf_u8* b = row + (j / 32) * 34;
    return ld_f16(b) * (float)(signed char)b[2 + j % 32];
}

// q4_0: { f16 d; u8 qs[16] } = 18 bytes; element l < 16 is the low nibble of qs[l], l >= 16 the high
// nibble of qs[l - 16]; value (q - 8) * d.
RF_DEVICE float deq_q4_0(const rf_u8* row, rf_u32 j) {
    const rf_u8* b = row + (j / 32) * 18;
    const rf_u32 l = j % 32;
    const int q = l < 16 ? (b[2 + l] & 0xF) : (b[2 + l - 16] >> 4);
    return (float)(q - 8) * ld_f16(b);
}

// q4_1: { f16 d; f16 m; u8 qs[16] } = 20 bytes; value q * d + m.
RF_DEVICE float deq_q4_1(const rf_u8* row, rf_u32 j) {
    const rf_u8* b = row + (j / 32) * 20;
    const rf_u32 l = j % 32;
    const int q = l < 16 ? (b[4 + l] & 0xF) : (b[4 + l - 16] >> 4);
    return (float)q * ld_f16(b) + ld_f16(b + 2);
}

RF_DEVICE rf_u32 ld_u32(const rf_u8* p) {
    return (rf_u32)p[0] | ((rf_u32)p[1] << 8) | ((rf_u32)p[2] << 16) | ((rf_u32)p[3] << 24);
}

// The 5-bit value of element l of a q5_0/q5_1 block: nibble from qs, 5th bit from qh.
RF_DEVICE int q5_value(const rf_u8* qs, rf_u32 qh, rf_u32 l) {
    if (l < 16) return (qs[l] & 0xF) | (((qh >> l) << 4) & 0x10);
    return (qs[l - 16] >> 4) | ((qh >> (l - 16 + 12)) & 0x10);
}

// q5_0: { f16 d; u8 qh[4]; u8 qs[16] } = 22 bytes; value (q - 16) * d.
RF_DEVICE float deq_q5_0(const rf_u8* row, rf_u32 j) {
    const rf_u8* b = row + (j / 32) * 22;
    return (float)(q5_value(b + 6, ld_u32(b + 2), j % 32) - 16) * ld_f16(b);
}

// q5_1: { f16 d; f16 m; u8 qh[4]; u8 qs[16] } = 24 bytes; value q * d + m.
RF_DEVICE float deq_q5_1(const rf_u8* row, rf_u32 j) {
    const rf_u8* b = row + (j / 32) * 24;
    return (float)q5_value(b + 8, ld_u32(b + 4), j % 32) * ld_f16(b) + ld_f16(b + 2);
}

// 6-bit scale and min of sub-block `is` (0..7) of a q4_K/q5_K block (ggml's get_scale_min_k4).
RF_DEVICE void scale_min_k4(rf_u32 is, const rf_u8* q, int* sc, int* m) {
    if (is < 4) {
        *sc = q[is] & 63;
        *m = q[is + 4] & 63;
    } else {
        *sc = (q[is + 4] & 0xF) | ((q[is - 4] >> 6) << 4);
        *m = (q[is + 4] >> 4) | ((q[is] >> 6) << 4);
    }
}

// q4_K: { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] } = 144 bytes per 256 values. Values come in
// 4 chunks of 64: the low nibbles of qs[32c..32c+32] (sub-block 2c), then their high nibbles
// (sub-block 2c+1); value d * sc * q - dmin * m.
RF_DEVICE float deq_q4_k(const rf_u8* row, rf_u32 j) {
    const rf_u8* b = row + (j / 256) * 144;
    const rf_u32 l = j % 256, chunk = l / 64, within = l % 64, is = 2 * chunk + within / 32;
    int sc, m;
    scale_min_k4(is, b + 4, &sc, &m);
    const rf_u8 byte = b[16 + 32 * chunk + within % 32];
    const int q = within < 32 ? (byte & 0xF) : (byte >> 4);
    const float d1 = ld_f16(b) * (float)sc, m1 = ld_f16(b + 2) * (float)m;
    return d1 * (float)q - m1;
}

// q5_K: { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] } = 176 bytes; as q4_K with a 5th
// bit: bit 2c (low half) or 2c+1 (high half) of qh[l % 32].
RF_DEVICE float deq_q5_k(const rf_u8* row, rf_u32 j) {
    const rf_u8* b = row + (j / 256) * 176;
    const rf_u32 l = j % 256, chunk = l / 64, within = l % 64, is = 2 * chunk + within / 32;
    int sc, m;
    scale_min_k4(is, b + 4, &sc, &m);
    const rf_u8 byte = b[48 + 32 * chunk + within % 32];
    const rf_u8 hbits = b[16 + within % 32];
    const rf_u32 hbit = within < 32 ? 2 * chunk : 2 * chunk + 1;
    const int q = (within < 32 ? (byte & 0xF) : (byte >> 4)) + (((hbits >> hbit) & 1) << 4);
    const float d1 = ld_f16(b) * (float)sc, m1 = ld_f16(b + 2) * (float)m;
    return d1 * (float)q - m1;
}

// q6_K: { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d } = 210 bytes per 256 values, two halves of
// 128; in a half, element 32*g + l (g = 0..3, l = 0..31) takes the low (g even) or high (g odd)
// nibble of ql[l + 32*(g&1)] and bits 2g..2g+1 of qh[l]; scale index l/16 + 2g; value d*sc*(q-32).
RF_DEVICE float deq_q6_k(const rf_u8* row, rf_u32 j) {
    const rf_u8* b = row + (j / 256) * 210;
    const rf_u32 l256 = j % 256, half = l256 / 128, w = l256 % 128, g = w / 32, l = w % 32;
    const rf_u8* ql = b + 64 * half;
    const rf_u8* qh = b + 128 + 32 * half;
    const signed char* sc = (const signed char*)(b + 192) + 8 * half;
    const rf_u8 lo = ql[l + 32 * (g & 1)];
    const int q = ((g < 2 ? (lo & 0xF) : (lo >> 4)) | (((qh[l] >> (2 * g)) & 3) << 4)) - 32;
    return ld_f16(b + 208) * (float)sc[l / 16 + 2 * g] * (float)q;
}

#define EMBEDDING_KERNEL(NAME, DEQ)                                                               \
    RF_KERNEL(256) void NAME(const rf_u8* table, const rf_u32* ids, float* out, rf_u32 cols,     \
                             rf_u64 row_bytes) {                                                  \
        RF_GRID_DEP_BEGIN();                                                                  \
        const rf_u8* row = table + (rf_u64)ids[RF_BID_X] * row_bytes;                             \
        float* o = out + (rf_u64)RF_BID_X * cols;                                                 \
        for (rf_u32 c = RF_TID_X; c < cols; c += RF_BDIM_X) o[c] = DEQ(row, c);                   \
    }

EMBEDDING_KERNEL(embedding_f32, deq_f32)
EMBEDDING_KERNEL(embedding_f16, deq_f16)
EMBEDDING_KERNEL(embedding_bf16, deq_bf16)
EMBEDDING_KERNEL(embedding_q8_0, deq_q8_0)
EMBEDDING_KERNEL(embedding_q4_0, deq_q4_0)
EMBEDDING_KERNEL(embedding_q4_1, deq_q4_1)
EMBEDDING_KERNEL(embedding_q5_0, deq_q5_0)
EMBEDDING_KERNEL(embedding_q5_1, deq_q5_1)
EMBEDDING_KERNEL(embedding_q4_k, deq_q4_k)
EMBEDDING_KERNEL(embedding_q5_k, deq_q5_k)
EMBEDDING_KERNEL(embedding_q6_k, deq_q6_k)

// As the kernels above, with the ids read on the device and checked there (a captured decode
// step replays with the next token id): an id >= rows writes NaN to its output row instead of
// reading outside the table. Kernels: embedding_at_<type>.
#define EMBEDDING_AT_KERNEL(NAME, DEQ)                                                            \
    RF_KERNEL(256) void NAME(const rf_u8* table, const rf_u32* ids, float* out, rf_u32 cols,     \
                             rf_u64 row_bytes, rf_u32 rows) {                                     \
        RF_GRID_DEP_BEGIN();                                                                  \
        const rf_u32 id = ids[RF_BID_X];                                                          \
        float* o = out + (rf_u64)RF_BID_X * cols;                                                 \
        if (id >= rows) {                                                                         \
            for (rf_u32 c = RF_TID_X; c < cols; c += RF_BDIM_X)                                   \
                o[c] = __builtin_bit_cast(float, 0x7fc00000u);                                    \
            return;                                                                               \
        }                                                                                         \
        const rf_u8* row = table + (rf_u64)id * row_bytes;                                        \
        for (rf_u32 c = RF_TID_X; c < cols; c += RF_BDIM_X) o[c] = DEQ(row, c);                   \
    }

EMBEDDING_AT_KERNEL(embedding_at_f32, deq_f32)
EMBEDDING_AT_KERNEL(embedding_at_f16, deq_f16)
EMBEDDING_AT_KERNEL(embedding_at_bf16, deq_bf16)
EMBEDDING_AT_KERNEL(embedding_at_q8_0, deq_q8_0)
EMBEDDING_AT_KERNEL(embedding_at_q4_0, deq_q4_0)
EMBEDDING_AT_KERNEL(embedding_at_q4_1, deq_q4_1)
EMBEDDING_AT_KERNEL(embedding_at_q5_0, deq_q5_0)
EMBEDDING_AT_KERNEL(embedding_at_q5_1, deq_q5_1)
EMBEDDING_AT_KERNEL(embedding_at_q4_k, deq_q4_k)
EMBEDDING_AT_KERNEL(embedding_at_q5_k, deq_q5_k)
EMBEDDING_AT_KERNEL(embedding_at_q6_k, deq_q6_k)
