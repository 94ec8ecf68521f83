// Kernels that rocmforge-hip's GPU suite uses to test itself: fill, vector add, reduction, 16-bit
// conversions, the warp size, a spin kernel for stream-overlap tests, and a faulting store.
#include "rf_platform.h"

RF_KERNEL(256) void fill_f32(float* out, float value, rf_u32 n) {
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) out[i] = value;
}

RF_KERNEL(256) void add_f32(const float* a, const float* b, float* out, rf_u32 n) {
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) out[i] = a[i] + b[i];
}

// partials[blockIdx.x] = sum of this block's grid-stride share of x. Run again with one block over
// the partials for the total.
RF_KERNEL(1024) void reduce_sum_f32(const float* x, float* partials, rf_u32 n) {
    __shared__ float scratch[1024 / RF_WARP_SIZE];
    float acc = 0.0f;
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) acc += x[i];
    acc = rf_block_sum_f32(acc, scratch);
    if (RF_TID_X == 0) partials[RF_BID_X] = acc;
}

RF_KERNEL(256) void cast_f32_f16(const float* x, rf_half* out, rf_u32 n) {
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) out[i] = rf_f32_to_half(x[i]);
}

RF_KERNEL(256) void cast_f32_bf16(const float* x, rf_bf16* out, rf_u32 n) {
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) out[i] = rf_f32_to_bf16(x[i]);
}

// out[0] = the compile-time warp size; out[1] = how many lanes of warp 0 took part in a butterfly sum.
RF_KERNEL(1024) void warp_size_u32(rf_u32* out) {
    float lanes = rf_warp_sum_f32(1.0f);
    if (RF_GLOBAL_ID_X == 0) {
        out[0] = RF_WARP_SIZE;
        out[1] = (rf_u32)lanes;
    }
}

// Thread 0 of block 0 spins until the device clock advanced by `ticks`, then writes the ticks seen.
RF_KERNEL(64) void spin_u64(rf_u64* out, rf_u64 ticks) {
    if (RF_GLOBAL_ID_X != 0) return;
    rf_u64 start = rf_clock(), now = start;
    while (now - start < ticks) now = rf_clock();
    out[0] = now - start;
}

// out[i] = in[i], 16 bytes per thread per step: the device-to-device copy benchmark's kernel.
struct __attribute__((aligned(16))) rf_u32x4 {
    rf_u32 x, y, z, w;
};
RF_KERNEL(256) void copy_u32x4(const rf_u32x4* in, rf_u32x4* out, rf_u64 n) {
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) out[i] = in[i];
}

// Stores through p + offset: with a wild offset, a real device fault (an illegal address) for the
// engine's fault-handling check (rocmforge-tensor's `fault-injection` feature, never in a release
// build's path).
RF_KERNEL(64) void fault_store_u32(rf_u32* p, rf_u64 offset) {
    if (RF_GLOBAL_ID_X == 0) p[offset] = 1u;
}
