// Rotary position embedding in place on x[n_tokens][n_heads][head_dim], like the CPU op (ggml's
// rope_f32): theta of pair i = pos * theta_scale^i built by repeated f32 multiplication, divided
// by freq_factors[i] when given (Phi-3's LongRoPE factors, Llama 3's rope_freqs), times
// freq_scale, with YaRN's ramp when ext_factor != 0; cos and sin times mscale. Only the first
// n_rot values of each head rotate. mode 0: adjacent pairs (x[2i], x[2i+1]); mode 1: NeoX halves
// (x[i], x[i + n_rot/2]). One thread per (token, head, pair).
//
// The angles must round exactly as on the CPU (a 1-ulp difference in a large angle moves cos by
// 1e-4), so the f32 products and sums here are never fused into FMAs, and sin/cos of the f32 angle
// are evaluated in f64 (Cody-Waite reduction + Taylor series) and rounded once.
#include "rf_platform.h"

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

// On NVIDIA the rounding must be explicit (mul.rn / add.rn): ptxas fuses plain PTX mul + add.
#if defined(RF_NVCC)
RF_DEVICE float mul_rn(float a, float b) { return __fmul_rn(a, b); }
RF_DEVICE float add_rn(float a, float b) { return __fadd_rn(a, b); }
#elif defined(RF_CLANG_NVPTX)
RF_DEVICE float mul_rn(float a, float b) { return __nvvm_mul_rn_f(a, b); }
RF_DEVICE float add_rn(float a, float b) { return __nvvm_add_rn_f(a, b); }
#else
RF_DEVICE float mul_rn(float a, float b) { return a * b; }
RF_DEVICE float add_rn(float a, float b) { return a + b; }
#endif

// sin and cos of x (|x| < 2^40) in f64, accurate to a few ulp of f64.
RF_DEVICE void sincos_f64(double x, double* s, double* c) {
    const double two_over_pi = 0.63661977236758134308;
    const double pio2_hi = 1.57079632673412561417e+00;  // first 33 bits of pi/2
    const double pio2_lo = 6.07710050650619224932e-11;  // pi/2 - pio2_hi
    double k = __builtin_rint(x * two_over_pi);
    double r = (x - k * pio2_hi) - k * pio2_lo;
    double r2 = r * r;
    // Taylor series on |r| <= pi/4 (+ reduction slack): terms to r^17 / r^18.
    double sp = -1.0 / 355687428096000.0;  // -1/17!
    sp = sp * r2 + 1.0 / 1307674368000.0;
    sp = sp * r2 - 1.0 / 6227020800.0;
    sp = sp * r2 + 1.0 / 39916800.0;
    sp = sp * r2 - 1.0 / 362880.0;
    sp = sp * r2 + 1.0 / 5040.0;
    sp = sp * r2 - 1.0 / 120.0;
    sp = sp * r2 + 1.0 / 6.0;
    double sr = r - r * r2 * sp;
    double cp = 1.0 / 6402373705728000.0;  // 1/18!
    cp = cp * r2 - 1.0 / 20922789888000.0;
    cp = cp * r2 + 1.0 / 87178291200.0;
    cp = cp * r2 - 1.0 / 479001600.0;
    cp = cp * r2 + 1.0 / 3628800.0;
    cp = cp * r2 - 1.0 / 40320.0;
    cp = cp * r2 + 1.0 / 720.0;
    cp = cp * r2 - 1.0 / 24.0;
    cp = cp * r2 + 0.5;
    double cr = 1.0 - r2 * cp;
    long long q = (long long)k & 3;
    if (q == 0) { *s = sr; *c = cr; }
    else if (q == 1) { *s = cr; *c = -sr; }
    else if (q == 2) { *s = -sr; *c = -cr; }
    else { *s = -cr; *c = sr; }
}

// cos and sin (times mscale) of the angle of pair `pair` at position `pos`. ff: the pair's
// frequency divisor (null: 1); corr0/corr1: YaRN correction dims (host-computed); mscale:
// attn_factor (times YaRN's magnitude correction when ext_factor != 0), host-computed.
RF_DEVICE void rope_cos_sin(rf_u32 pos, rf_u32 pair, const float* ff, float theta_scale,
                            float freq_scale, float ext_factor, float corr0, float corr1,
                            float mscale, float* c, float* s) {
    float theta_extrap = (float)pos;
    for (rf_u32 i = 0; i < pair; ++i) theta_extrap = mul_rn(theta_extrap, theta_scale);
    if (ff) theta_extrap = theta_extrap / ff[pair];
    const float theta_interp = mul_rn(freq_scale, theta_extrap);
    float theta = theta_interp;
    if (ext_factor != 0.0f) {
        float den = corr1 - corr0;
        den = den > 0.001f ? den : 0.001f;
        float y = ((float)pair - corr0) / den;
        y = y < 0.0f ? 0.0f : (y > 1.0f ? 1.0f : y);
        const float mix = mul_rn(1.0f - y, ext_factor);
        theta = add_rn(mul_rn(theta_interp, 1.0f - mix), mul_rn(theta_extrap, mix));
    }
    double sd, cd;
    sincos_f64((double)theta, &sd, &cd);
    *c = mul_rn((float)cd, mscale);
    *s = mul_rn((float)sd, mscale);
}

// positions[t]: the position of token t; freq_factors: null or n_rot/2 divisors.
RF_KERNEL(256) void rope_f32(float* x, const rf_u32* positions, const float* freq_factors,
                             rf_u32 n_tokens, rf_u32 n_heads,
                             rf_u32 head_dim, rf_u32 n_rot, rf_u32 mode, float theta_scale,
                             float freq_scale, float ext_factor, float corr0, float corr1,
                             float mscale) {
    RF_GRID_DEP_BEGIN();
    const rf_u32 half = n_rot / 2;
    const rf_u64 total = (rf_u64)n_tokens * n_heads * half;
    for (rf_u64 idx = RF_GLOBAL_ID_X; idx < total; idx += RF_GRID_STRIDE_X) {
        const rf_u32 pair = (rf_u32)(idx % half);
        const rf_u64 th = idx / half;  // token * n_heads + head
        const rf_u32 token = (rf_u32)(th / n_heads);
        float c, s;
        rope_cos_sin(positions[token], pair, freq_factors, theta_scale, freq_scale, ext_factor,
                     corr0, corr1, mscale, &c, &s);
        float* h = x + th * head_dim;
        const rf_u32 a = mode == 0 ? 2 * pair : pair;
        const rf_u32 b = mode == 0 ? 2 * pair + 1 : pair + half;
        const float x0 = h[a], x1 = h[b];
        h[a] = x0 * c - x1 * s;
        h[b] = x0 * s + x1 * c;
    }
}

// The attention prologue of a ragged batch in one launch: the q/k/v biases added (each may be
// null), RoPE on q in place (as rope_f32), RoPE on k written straight to its f16 cache row, v
// written to its f16 cache row. Row t of the batch writes K at k_dst[t] and V at v_dst[t] (device
// addresses of its sequence's cache rows, from the batch's tables). q: [n_tokens][n_heads]
// [head_dim], k and v: [n_tokens][n_kv_heads][head_dim] f32; biases [n_heads * head_dim] and
// [n_kv_heads * head_dim]. Per token the work items are: per query head half rotated pairs + the
// (head_dim - n_rot) unrotated values, the same per KV head, then the V row.
RF_DEVICE void rkv_head_item(const float* h, const float* bias, float* out_f32, rf_half* out_f16,
                             rf_u32 e, rf_u32 half, rf_u32 n_rot, rf_u32 mode, rf_u32 pos,
                             const float* ff, float theta_scale, float freq_scale,
                             float ext_factor, float corr0, float corr1, float mscale) {
    if (e >= half) {  // past the rotated dimensions: bias added, copied
        const rf_u32 d = n_rot + (e - half);
        const float x = bias ? h[d] + bias[d] : h[d];
        if (out_f32) out_f32[d] = x; else out_f16[d] = rf_f32_to_half(x);
        return;
    }
    float c, s;
    rope_cos_sin(pos, e, ff, theta_scale, freq_scale, ext_factor, corr0, corr1, mscale, &c, &s);
    const rf_u32 a = mode == 0 ? 2 * e : e;
    const rf_u32 b = mode == 0 ? 2 * e + 1 : e + half;
    const float x0 = bias ? h[a] + bias[a] : h[a];
    const float x1 = bias ? h[b] + bias[b] : h[b];
    const float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
    if (out_f32) {
        out_f32[a] = y0;
        out_f32[b] = y1;
    } else {
        out_f16[a] = rf_f32_to_half(y0);
        out_f16[b] = rf_f32_to_half(y1);
    }
}

RF_KERNEL(256) void rope_kv_append_rows_f32(
    float* q, const float* k, const float* v, const float* bq, const float* bk, const float* bv,
    const rf_u32* positions, const float* freq_factors, const rf_u64* k_dst, const rf_u64* v_dst,
    rf_u32 n_tokens,
    rf_u32 n_heads, rf_u32 n_kv_heads, rf_u32 head_dim, rf_u32 n_rot, rf_u32 mode,
    float theta_scale, float freq_scale, float ext_factor, float corr0, float corr1,
    float mscale) {
    RF_GRID_DEP_BEGIN();
    const rf_u32 half = n_rot / 2;
    const rf_u32 per_head = half + (head_dim - n_rot);
    const rf_u32 q_items = n_heads * per_head;
    const rf_u32 k_items = n_kv_heads * per_head;
    const rf_u32 row_len = n_kv_heads * head_dim;
    const rf_u32 per_token = q_items + k_items + row_len;
    const rf_u64 total = (rf_u64)n_tokens * per_token;
    for (rf_u64 idx = RF_GLOBAL_ID_X; idx < total; idx += RF_GRID_STRIDE_X) {
        const rf_u32 token = (rf_u32)(idx / per_token);
        rf_u32 item = (rf_u32)(idx % per_token);
        const rf_u32 pos = positions[token];
        if (item < q_items) {
            const rf_u32 head = item / per_head, e = item % per_head;
            float* h = q + ((rf_u64)token * n_heads + head) * head_dim;
            rkv_head_item(h, bq ? bq + (rf_u64)head * head_dim : 0, h, 0, e, half, n_rot, mode,
                          pos, freq_factors, theta_scale, freq_scale, ext_factor, corr0, corr1,
                          mscale);
            continue;
        }
        item -= q_items;
        if (item < k_items) {
            const rf_u32 head = item / per_head, e = item % per_head;
            const float* h = k + ((rf_u64)token * n_kv_heads + head) * head_dim;
            rf_half* dst = (rf_half*)k_dst[token] + (rf_u64)head * head_dim;
            rkv_head_item(h, bk ? bk + (rf_u64)head * head_dim : 0, 0, dst, e, half, n_rot, mode,
                          pos, freq_factors, theta_scale, freq_scale, ext_factor, corr0, corr1,
                          mscale);
            continue;
        }
        item -= k_items;
        const float x = v[(rf_u64)token * row_len + item];
        ((rf_half*)v_dst[token])[item] = rf_f32_to_half(bv ? x + bv[item] : x);
    }
}
