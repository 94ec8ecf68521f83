// Numerically stable softmax of each row in place, one block per row: subtract the row
// maximum, exp in f32, sum in f64, multiply by the f32 reciprocal of the sum (the CPU op's
// numerics). -inf entries (masked) give exactly 0; an all -inf row gives all zeros.
#include "rf_platform.h"

#define SOFTMAX_THREADS 256

RF_DEVICE double sm_warp_sum_f64(double v) {
#pragma unroll
    for (int m = RF_WARP_SIZE / 2; m > 0; m >>= 1) {
        rf_u64 bits = __builtin_bit_cast(rf_u64, v);
        int lo = rf_shfl_xor_i32((int)(bits & 0xffffffffu), m);
        int hi = rf_shfl_xor_i32((int)(bits >> 32), m);
        v += __builtin_bit_cast(double, ((rf_u64)(rf_u32)hi << 32) | (rf_u64)(rf_u32)lo);
    }
    return v;
}

RF_DEVICE float block_max_f32(float v, float* scratch) {
    const rf_u32 lane = RF_TID_X % RF_WARP_SIZE, warp = RF_TID_X / RF_WARP_SIZE;
    const rf_u32 n_warps = RF_BDIM_X / RF_WARP_SIZE;
    v = rf_warp_max_f32(v);
    rf_sync_block();
    if (lane == 0) scratch[warp] = v;
    rf_sync_block();
    v = lane < n_warps ? scratch[lane] : -__builtin_huge_valf();
    return rf_warp_max_f32(v);
}

RF_KERNEL(SOFTMAX_THREADS) void softmax_f32(float* x, rf_u32 n) {
    RF_GRID_DEP_BEGIN();
    __shared__ float fscratch[SOFTMAX_THREADS / RF_WARP_SIZE];
    __shared__ double dscratch[SOFTMAX_THREADS / RF_WARP_SIZE];
    float* row = x + (rf_u64)RF_BID_X * n;
    float mx = -__builtin_huge_valf();
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) mx = row[i] > mx ? row[i] : mx;
    mx = block_max_f32(mx, fscratch);
    if (mx == -__builtin_huge_valf()) {
        for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) row[i] = 0.0f;
        return;
    }
    double sum = 0.0;
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) {
        float e = rf_expf(row[i] - mx);
        row[i] = e;
        sum += (double)e;
    }
    {
        const rf_u32 lane = RF_TID_X % RF_WARP_SIZE, warp = RF_TID_X / RF_WARP_SIZE;
        sum = sm_warp_sum_f64(sum);
        if (lane == 0) dscratch[warp] = sum;
        rf_sync_block();
        sum = lane < RF_BDIM_X / RF_WARP_SIZE ? dscratch[lane] : 0.0;
        sum = sm_warp_sum_f64(sum);
    }
    float inv = (float)(1.0 / sum);
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) row[i] = row[i] * inv;
}
