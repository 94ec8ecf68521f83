// Element-wise ops on f32 activations: residual add, mul, scale, SwiGLU (silu·mul), GeGLU
// (gelu·mul), GELU and the tanh soft cap.
// Same formulas as rocmforge_tensor::cpu (ggml's): silu(x) = x / (1 + exp(-x)); GELU with tanh.
#include "rf_platform.h"
#include "rf_q8_1.h"

// a[i] += b[i]
RF_KERNEL(256) void add_f32(float* a, const float* b, rf_u32 n) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) a[i] = a[i] + b[i];
}

// a[i] *= b[i]
RF_KERNEL(256) void mul_f32(float* a, const float* b, rf_u32 n) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) a[i] = a[i] * b[i];
}

// a[i] *= s
RF_KERNEL(256) void scale_f32(float* a, float s, rf_u32 n) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) a[i] = a[i] * s;
}

// out[i] = silu(gate[i]) * up[i]
RF_KERNEL(256) void silu_mul_f32(const float* gate, const float* up, float* out, rf_u32 n) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) {
        float g = gate[i];
        out[i] = (g / (1.0f + rf_expf(-g))) * up[i];
    }
}

// gpt-oss's clamped SwiGLU (ggml's swiglu_oai): x = min(gate, limit), y = clamp(up, ±limit),
// out = x / (1 + exp(-alpha x)) * (y + 1)
RF_KERNEL(256) void swiglu_oai_f32(const float* gate, const float* up, float* out, rf_u32 n,
                                   float alpha, float limit) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) {
        const float x = gate[i] < limit ? gate[i] : limit;
        float y = up[i] < limit ? up[i] : limit;
        y = y > -limit ? y : -limit;
        out[i] = x / (1.0f + rf_expf(alpha * -x)) * (y + 1.0f);
    }
}

// y[i] += bias[(ids ? ids[i / cols] : 0) * cols + i % cols]: each row of cols values plus the
// bias row its id picks (llama.cpp's add_id, gpt-oss's expert biases), or the one bias row.
RF_KERNEL(256) void add_bias_f32(float* y, const float* bias, const rf_u32* ids, rf_u32 cols,
                                 rf_u32 n) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) {
        const rf_u64 r = i / cols;
        const rf_u64 b = ids ? (rf_u64)ids[r] : 0;
        y[i] = y[i] + bias[b * cols + i % cols];
    }
}

// 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2)))
RF_DEVICE float ew_gelu(float t) {
    return 0.5f * t * (1.0f + rf_tanhf(0.7978846f * t * (1.0f + 0.044715f * t * t)));
}

// x[i] = gelu(x[i])
RF_KERNEL(256) void gelu_f32(float* x, rf_u32 n) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) x[i] = ew_gelu(x[i]);
}

// out[i] = gelu(gate[i]) * up[i] (GeGLU; f32 throughout, as ggml's GPU backends)
RF_KERNEL(256) void gelu_mul_f32(const float* gate, const float* up, float* out, rf_u32 n) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) out[i] = ew_gelu(gate[i]) * up[i];
}

// Attention temperature (llama 4 / mistral3): row r of q (width values) times
// ln(floor(pos[r] / floor_len) + 1) * scale + 1.
RF_KERNEL(256) void attn_temp_f32(float* q, const rf_u32* pos, rf_u32 width, rf_u32 n, float scale,
                                  rf_u32 floor_len) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) {
        const rf_u32 p = pos[i / width];
        q[i] = q[i] * (rf_logf((float)(p / floor_len) + 1.0f) * scale + 1.0f);
    }
}

// a[i] = cap * tanh(a[i] / cap) (final logit soft-capping, as ggml: scale by 1/cap, tanh, scale)
RF_KERNEL(256) void softcap_f32(float* a, float cap, rf_u32 n) {
    RF_GRID_DEP_BEGIN();
    const float inv = 1.0f / cap;
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) a[i] = rf_tanhf(a[i] * inv) * cap;
}

// out[i] = silu(gate[i]) * up[i] as silu_mul_f32, also stored as q8_1 (qs, ds: see rf_q8_1.h)
// for the down projection. n is a multiple of 32 (checked on the host); launch 256-thread blocks
// covering n exactly rounded up to the block (no grid-stride loop: each q8_1 group must be
// handled by 32 aligned lanes at once).
RF_KERNEL(256) void silu_mul_q8_1_f32(const float* gate, const float* up, float* out,
                                      signed char* qs, float* ds, rf_u32 n) {
    RF_GRID_DEP_BEGIN();
    const rf_u64 i = RF_GLOBAL_ID_X;
    if (i >= n) return;  // n % 32 == 0: whole q8_1 groups leave together
    const float g = gate[i];
    const float y = (g / (1.0f + rf_expf(-g))) * up[i];
    out[i] = y;
    rf_store_q8_1(y, i, qs, ds);
}
