// Logit helpers: argmax and top-k of one row, with the CPU op's ordering: larger value first, NaN
// counted as -inf and placed after every number, equal values by smaller index. One block of
// ARGMAX_THREADS threads (a multiple of every warp size).
#include "rf_platform.h"

#define ARGMAX_THREADS 1024

// Sort key of an element: (value with NaN as -inf, not-NaN, index); "better" = earlier in the order.
struct Key {
    float v;
    rf_u32 finite_class;  // 1: a number (incl. +-inf), 0: NaN
    rf_u32 idx;
    rf_u32 valid;         // 0: no element
};

RF_DEVICE Key make_key(float x, rf_u32 i) {
    Key k;
    k.finite_class = x == x ? 1u : 0u;
    k.v = k.finite_class ? x : -__builtin_huge_valf();
    k.idx = i;
    k.valid = 1;
    return k;
}

RF_DEVICE bool better(Key a, Key b) {
    if (!a.valid) return false;
    if (!b.valid) return true;
    if (a.v != b.v) return a.v > b.v;
    if (a.finite_class != b.finite_class) return a.finite_class > b.finite_class;
    return a.idx < b.idx;
}

// The best key of the block (every thread gets it). Keys live in shared arrays of ARGMAX_THREADS.
RF_DEVICE Key block_best(Key k, float* sv, rf_u32* sc, rf_u32* si, rf_u32* sok) {
    const rf_u32 t = RF_TID_X;
    rf_sync_block();
    sv[t] = k.v; sc[t] = k.finite_class; si[t] = k.idx; sok[t] = k.valid;
    rf_sync_block();
    for (rf_u32 stride = RF_BDIM_X / 2; stride > 0; stride >>= 1) {
        if (t < stride) {
            Key a = {sv[t], sc[t], si[t], sok[t]};
            Key b = {sv[t + stride], sc[t + stride], si[t + stride], sok[t + stride]};
            if (better(b, a)) { sv[t] = b.v; sc[t] = b.finite_class; si[t] = b.idx; sok[t] = b.valid; }
        }
        rf_sync_block();
    }
    Key r = {sv[0], sc[0], si[0], sok[0]};
    return r;
}

// out[0] = index of the largest non-NaN value (first on ties); 0 when every value is NaN or n = 0.
RF_KERNEL(ARGMAX_THREADS) void argmax_f32(const float* x, rf_u32 n, rf_u32* out) {
    RF_GRID_DEP_BEGIN();
    __shared__ float sv[ARGMAX_THREADS];
    __shared__ rf_u32 sc[ARGMAX_THREADS], si[ARGMAX_THREADS], sok[ARGMAX_THREADS];
    Key best = {0.0f, 0u, 0u, 0u};
    for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) {
        Key k = make_key(x[i], i);
        if (k.finite_class && better(k, best)) best = k;
    }
    best = block_best(best, sv, sc, si, sok);
    if (RF_TID_X == 0) out[0] = best.valid ? best.idx : 0u;
}

// out[r] = argmax of row r of x ([n_rows][row_len]), one block per row (grid.x = n_rows), with
// argmax_f32's order.
RF_KERNEL(ARGMAX_THREADS) void argmax_rows_f32(const float* x, rf_u32 row_len, rf_u32* out) {
    RF_GRID_DEP_BEGIN();
    __shared__ float sv[ARGMAX_THREADS];
    __shared__ rf_u32 sc[ARGMAX_THREADS], si[ARGMAX_THREADS], sok[ARGMAX_THREADS];
    const float* row = x + (rf_u64)RF_BID_X * row_len;
    Key best = {0.0f, 0u, 0u, 0u};
    for (rf_u32 i = RF_TID_X; i < row_len; i += RF_BDIM_X) {
        Key k = make_key(row[i], i);
        if (k.finite_class && better(k, best)) best = k;
    }
    best = block_best(best, sv, sc, si, sok);
    if (RF_TID_X == 0) out[RF_BID_X] = best.valid ? best.idx : 0u;
}

// The k best entries in order: out_idx[r], out_val[r] for r < k (k <= n, checked by the host).
// Round r picks the best key strictly after round r-1's pick in the order.
RF_KERNEL(ARGMAX_THREADS) void top_k_f32(const float* x, rf_u32 n, rf_u32 k, rf_u32* out_idx,
                                         float* out_val) {
    RF_GRID_DEP_BEGIN();
    __shared__ float sv[ARGMAX_THREADS];
    __shared__ rf_u32 sc[ARGMAX_THREADS], si[ARGMAX_THREADS], sok[ARGMAX_THREADS];
    Key prev = {0.0f, 0u, 0u, 0u};
    for (rf_u32 r = 0; r < k; ++r) {
        Key best = {0.0f, 0u, 0u, 0u};
        for (rf_u32 i = RF_TID_X; i < n; i += RF_BDIM_X) {
            Key c = make_key(x[i], i);
            if ((!prev.valid || better(prev, c)) && better(c, best)) best = c;
        }
        best = block_best(best, sv, sc, si, sok);
        if (RF_TID_X == 0) {
            out_idx[r] = best.idx;
            out_val[r] = x[best.idx];
        }
        prev = best;
    }
}
