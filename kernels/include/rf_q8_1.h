// rf_q8_1.h — quantization of f32 activations to q8_1 inside a producer kernel (fused epilogue),
// with exactly the arithmetic of quantize_q8_1_f32 (kernels/quantize_act.hip): the buffers it
// writes are read by the quantized matvec kernels in place of a separate quantization launch.
#pragma once
#include "rf_platform.h"

// Stores value v of element i (a flat index over rows of a multiple-of-32 length) as q8_1:
// qs[i] = round(v / d) and, from the group's first lane, ds[2 * (i / 32)] = d and
// ds[2 * (i / 32) + 1] = d * sum(q), both rounded through f16, d = amax / 127 over the 32 values.
// The 32 values of a group must be held by 32 consecutive lanes of one warp, aligned to 32
// (lane % 32 == i % 32), and all 32 must call this together.
RF_DEVICE void rf_store_q8_1(float v, rf_u64 i, signed char* qs, float* ds) {
    float amax = v < 0.0f ? -v : v;
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) {
        const float o = rf_shfl_xor_f32(amax, m);
        amax = o > amax ? o : amax;
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float scaled = v * id;
#if defined(RF_NVCC)
    const int q = (int)roundf(scaled);
#else
    const int q = (int)__builtin_roundf(scaled);
#endif
    qs[i] = (signed char)q;
    int sum = q;
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) sum += rf_shfl_xor_i32(sum, m);
    if ((i & 31) == 0) {
        const rf_u64 b = i / 32;
        ds[2 * b] = rf_half_to_f32(rf_f32_to_half(d));
        ds[2 * b + 1] = rf_half_to_f32(rf_f32_to_half((float)sum * d));
    }
}
