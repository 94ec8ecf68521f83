// Activations to q8_1 blocks for the quantized matmuls (see rf_quant_blocks.h for the layout).
//
// quantize_q8_1_f32: x [n][cols] (cols a multiple of 32) → qs [n][cols] signed bytes and
// ds [n][cols / 32] pairs (d, s): d = amax / 127 and q = round(x * (1 / d)) (half away from
// zero, as the CPU backend's quantizer), then d and s = d * sum(q) rounded through f16.
// One thread per value, 32 consecutive threads per block; launch with 256-thread blocks over
// `total` = n * cols values.
#include "rf_platform.h"

RF_KERNEL(256) void quantize_q8_1_f32(const float* x, signed char* qs, float* ds, rf_u64 total) {
    RF_GRID_DEP_BEGIN();
    const rf_u64 i = RF_GLOBAL_ID_X;
    // total is a multiple of 32, so each group of 32 lanes is either wholly in range or out.
    if (i >= total) return;
    const float v = x[i];
    float amax = v < 0.0f ? -v : v;
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) {
        const float o = rf_shfl_xor_f32(amax, m);
        amax = o > amax ? o : amax;
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float scaled = v * id;
    // roundf: half away from zero.
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

// y = x rounded through f16 (mode 1) or bf16 (mode 2, nearest even), widened back to f32: the
// activations of the F16 / BF16 matvec kernels, rounded once instead of once per weight row.
RF_KERNEL(256) void round_act_f32(const float* x, float* y, rf_u64 n, rf_u32 mode) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) {
        const float v = x[i];
        y[i] = mode == 1 ? rf_half_to_f32(rf_f32_to_half(v)) : rf_bf16_to_f32(rf_f32_to_bf16(v));
    }
}
