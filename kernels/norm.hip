// Row normalisations, one block per row: RMS norm and layer norm with a weight (and bias).
// Like the CPU op (ggml): sums accumulated in f64, each square taken in f32; mean and
// 1/sqrt(mean + eps) in f32; out = (x * scale) * weight.
#include "rf_platform.h"
#include "rf_q8_1.h"

// 1024 threads: in a decode step a row is one block, so its latency is the whole norm.
#define NORM_THREADS 1024

RF_DEVICE double warp_sum_f64(double v) {
#pragma unroll
    for (int m = RF_WARP_SIZE / 2; m > 0; m >>= 1) {
        rf_u64 bits = __builtin_bit_cast(rf_u64, v);
        int lo = rf_shfl_xor_i32((int)(bits & 0xffffffffu), m);
        int hi = rf_shfl_xor_i32((int)(bits >> 32), m);
        v += __builtin_bit_cast(double, ((rf_u64)(rf_u32)hi << 32) | (rf_u64)(rf_u32)lo);
    }
    return v;
}

// Sum over the block (blockDim.x a multiple of RF_WARP_SIZE); every thread gets the result.
RF_DEVICE double block_sum_f64(double v, double* scratch) {
    const rf_u32 lane = RF_TID_X % RF_WARP_SIZE, warp = RF_TID_X / RF_WARP_SIZE;
    const rf_u32 n_warps = RF_BDIM_X / RF_WARP_SIZE;
    v = warp_sum_f64(v);
    rf_sync_block();
    if (lane == 0) scratch[warp] = v;
    rf_sync_block();
    v = lane < n_warps ? scratch[lane] : 0.0;
    return warp_sum_f64(v);
}

RF_KERNEL(NORM_THREADS) void rms_norm_f32(const float* x, const float* weight, float* out, rf_u32 n,
                                          float eps) {
    RF_GRID_DEP_BEGIN();
    __shared__ double scratch[NORM_THREADS / RF_WARP_SIZE];
    const float* xr = x + (rf_u64)RF_BID_X * n;
    float* yr = out + (rf_u64)RF_BID_X * n;
    double sum = 0.0;
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) {
        float v = xr[i];
        float sq = v * v;
        sum += (double)sq;
    }
    sum = block_sum_f64(sum, scratch);
    float mean = (float)(sum / (double)n);
    float s = 1.0f / rf_sqrtf(mean + eps);
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) yr[i] = (xr[i] * s) * weight[i];
}

// x += delta, then out = rms_norm(x) * weight, row by row (the residual add of a block and the
// next norm in one launch). Each thread reads back only the elements it wrote.
RF_KERNEL(NORM_THREADS) void add_rms_norm_f32(float* x, const float* delta, const float* weight,
                                              float* out, rf_u32 n, float eps) {
    RF_GRID_DEP_BEGIN();
    __shared__ double scratch[NORM_THREADS / RF_WARP_SIZE];
    float* xr = x + (rf_u64)RF_BID_X * n;
    const float* dr = delta + (rf_u64)RF_BID_X * n;
    float* yr = out + (rf_u64)RF_BID_X * n;
    double sum = 0.0;
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) {
        const float v = xr[i] + dr[i];
        xr[i] = v;
        const float sq = v * v;
        sum += (double)sq;
    }
    sum = block_sum_f64(sum, scratch);
    const float mean = (float)(sum / (double)n);
    const float s = 1.0f / rf_sqrtf(mean + eps);
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) yr[i] = (xr[i] * s) * weight[i];
}

// bias may be null (has_bias = 0).
RF_KERNEL(NORM_THREADS) void layer_norm_f32(const float* x, const float* weight, const float* bias,
                                            float* out, rf_u32 n, float eps, rf_u32 has_bias) {
    RF_GRID_DEP_BEGIN();
    __shared__ double scratch[NORM_THREADS / RF_WARP_SIZE];
    const float* xr = x + (rf_u64)RF_BID_X * n;
    float* yr = out + (rf_u64)RF_BID_X * n;
    double sum = 0.0;
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) sum += (double)xr[i];
    sum = block_sum_f64(sum, scratch);
    float mean = (float)(sum / (double)n);
    double sum2 = 0.0;
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) {
        float c = xr[i] - mean;
        float sq = c * c;
        sum2 += (double)sq;
    }
    sum2 = block_sum_f64(sum2, scratch);
    float variance = (float)(sum2 / (double)n);
    float s = 1.0f / rf_sqrtf(variance + eps);
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) {
        float y = ((xr[i] - mean) * s) * weight[i];
        yr[i] = has_bias ? y + bias[i] : y;
    }
}

// Decode epilogue + prologue in one launch, one block per row: x += residual (when has_res),
// then out = rms_norm(x) * weight as rms_norm_f32 computes it, also stored as q8_1 (qs, ds: see
// rf_q8_1.h) for the quantized matvec that reads it. n is a multiple of 32 (checked on the host)
// and NORM_THREADS a multiple of 32, so each q8_1 group lies in 32 aligned lanes of one warp.
RF_KERNEL(NORM_THREADS) void add_rms_norm_q8_1_f32(float* x, const float* residual,
                                                   const float* weight, float* out,
                                                   signed char* qs, float* ds, rf_u32 n,
                                                   float eps, rf_u32 has_res) {
    RF_GRID_DEP_BEGIN();
    __shared__ double scratch[NORM_THREADS / RF_WARP_SIZE];
    float* xr = x + (rf_u64)RF_BID_X * n;
    float* yr = out + (rf_u64)RF_BID_X * n;
    double sum = 0.0;
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) {
        float v = xr[i];
        if (has_res) {
            v = v + residual[(rf_u64)RF_BID_X * n + i];
            xr[i] = v;
        }
        float sq = v * v;
        sum += (double)sq;
    }
    sum = block_sum_f64(sum, scratch);
    float mean = (float)(sum / (double)n);
    float s = 1.0f / rf_sqrtf(mean + eps);
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) {
        const float y = (xr[i] * s) * weight[i];
        yr[i] = y;
        rf_store_q8_1(y, (rf_u64)RF_BID_X * n + i, qs, ds);
    }
}
