// Element-wise ops on f32 activations: residual add, mul, scale, SwiGLU (silu·mul) and GELU.
// Same formulas as rocmforge_tensor::cpu (ggml's): silu(x) = x / (1 + exp(-x)); GELU with tanh.
#include "rf_platform.h"

// a[i] += b[i]
RF_KERNEL(256) void add_f32(float* a, const float* b, rf_u32 n) {
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) a[i] = a[i] + b[i];
}

// a[i] *= b[i]
RF_KERNEL(256) void mul_f32(float* a, const float* b, rf_u32 n) {
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) a[i] = a[i] * b[i];
}

// a[i] *= s
RF_KERNEL(256) void scale_f32(float* a, float s, rf_u32 n) {
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) a[i] = a[i] * s;
}

// out[i] = silu(gate[i]) * up[i]
RF_KERNEL(256) void silu_mul_f32(const float* gate, const float* up, float* out, rf_u32 n) {
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) {
        float g = gate[i];
        out[i] = (g / (1.0f + rf_expf(-g))) * up[i];
    }
}

// x[i] = 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2)))
RF_KERNEL(256) void gelu_f32(float* x, rf_u32 n) {
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) {
        float t = x[i];
        x[i] = 0.5f * t * (1.0f + rf_tanhf(0.7978846f * t * (1.0f + 0.044715f * t * t)));
    }
}
