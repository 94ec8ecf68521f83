// The sampling chain for a batch of logit rows, one block per row: the GPU body of
// rocmforge-tensor's ops::sample_rows, following its CPU reference (cpu/sample.rs) exactly:
//
//   mask (-inf) and penalties -> NaN as -inf -> temperature <= 0 or no finite maximum: argmax
//   -> kept set = a prefix of the order (value desc by total order, then id asc) cut by top-k
//      and top-p, intersected with min-p's threshold -> draw in ascending id: the first id whose
//      cumulative weight exp((v - max) / T) (f64) exceeds u * sum.
//
// top-k of any size: radix select (8-bit digits of the 64-bit key (order key << 32 | id), shared
// histograms, integer atomics) gives the prefix without sorting. top-p: the top
// min(k, SAMPLE_CAP) are gathered and bitonic-sorted in shared memory and their cumulative mass
// walked; if it does not reach top_p inside them the row's output is SAMPLE_FINISH_ON_HOST and
// the host runs the CPU chain on that row. Every reduction has a fixed order (no float atomics):
// the same input gives the same id every time.
//
// Values that host and device could round differently come from the host: ln(min_p), each
// penalty's offset. Products are kept from fusing with the following subtraction by a volatile
// round trip (clang contracts a*b-c into an fma by default for GPU targets).
#include "rf_platform.h"

#define SAMPLE_THREADS 1024
#define SAMPLE_CAP 1024
#define SAMPLE_FINISH_ON_HOST 0xffffffffu
#define SAMPLE_NO_MASK 0xffffffffu

// Integer atomics on shared memory (the only atomics here: counts, never float sums).
#if defined(RF_NVCC)
RF_DEVICE rf_u32 sh_add(rf_u32* p, rf_u32 v) { return atomicAdd(p, v); }
RF_DEVICE void sh_min(rf_u32* p, rf_u32 v) { atomicMin(p, v); }
RF_DEVICE void sh_max(rf_u32* p, rf_u32 v) { atomicMax(p, v); }
#else
RF_DEVICE rf_u32 sh_add(rf_u32* p, rf_u32 v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
RF_DEVICE void sh_min(rf_u32* p, rf_u32 v) { __atomic_fetch_min(p, v, __ATOMIC_RELAXED); }
RF_DEVICE void sh_max(rf_u32* p, rf_u32 v) { __atomic_fetch_max(p, v, __ATOMIC_RELAXED); }
#endif

// ---------------------------------------------------------------------------------------------
// f64 exp without device libraries: Cody-Waite reduction by ln 2, degree-13 Taylor polynomial on
// |r| <= ln(2)/2, scaled by 2^k in two steps (subnormal results included). Error ~1 ulp.
RF_DEVICE double pow2_i(int k) {  // -1022 <= k <= 1023
    return __builtin_bit_cast(double, (rf_u64)(k + 1023) << 52);
}

RF_DEVICE double sample_exp(double x) {
    if (!(x > -745.2)) return 0.0;  // also -inf
    if (x > 709.7) return __builtin_huge_val();
    const double k = __builtin_rint(x * 1.4426950408889634);
    const double r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const int ki = (int)k;
    const int k1 = ki / 2;
    return p * pow2_i(k1) * pow2_i(ki - k1);
}

// ---------------------------------------------------------------------------------------------
// Keys. The order key of a value ascends with f32::total_cmp; the 64-bit sort key ascends with
// the chain's order (larger value first, then lower id).
RF_DEVICE float clean(float x) { return x == x ? x : -__builtin_huge_valf(); }

RF_DEVICE rf_u64 sort_key(float v, rf_u32 id) {
    const rf_u32 b = __builtin_bit_cast(rf_u32, v);
    const rf_u32 k = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return ((rf_u64)(~k) << 32) | id;
}

RF_DEVICE float key_value(rf_u64 key) {
    const rf_u32 k = ~(rf_u32)(key >> 32);
    const rf_u32 b = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    return __builtin_bit_cast(float, b);
}

// A prefix of the order: keys whose masked bits are <= p (mask 0, p 0: every key).
struct Prefix {
    rf_u64 p;
    rf_u64 mask;
};

RF_DEVICE bool in_prefix(rf_u64 key, Prefix b) { return (key & b.mask) <= b.p; }

struct Shared {
    rf_u32 hist[256];
    rf_u32 count;
    rf_u32 first;
    rf_u64 sel_p, sel_mask, sel_rank;
    rf_u32 sel_done;
    float rv[SAMPLE_THREADS];
    rf_u32 ri[SAMPLE_THREADS];
    double d[SAMPLE_THREADS];
    rf_u64 cand[SAMPLE_CAP];
};

// Sum of one double per thread, fixed tree order; every thread gets it.
RF_DEVICE double block_sum_f64(double v, Shared& sh) {
    const rf_u32 t = RF_TID_X;
    rf_sync_block();
    sh.d[t] = v;
    rf_sync_block();
    for (rf_u32 s = RF_BDIM_X / 2; s > 0; s >>= 1) {
        if (t < s) sh.d[t] += sh.d[t + s];
        rf_sync_block();
    }
    const double r = sh.d[0];
    rf_sync_block();
    return r;
}

// Inclusive prefix sum over the block's threads (Hillis-Steele, fixed order).
RF_DEVICE double block_scan_f64(double v, Shared& sh) {
    const rf_u32 t = RF_TID_X;
    rf_sync_block();
    sh.d[t] = v;
    rf_sync_block();
    for (rf_u32 s = 1; s < RF_BDIM_X; s <<= 1) {
        const double add = t >= s ? sh.d[t - s] : 0.0;
        rf_sync_block();
        sh.d[t] += add;
        rf_sync_block();
    }
    const double r = sh.d[t];
    rf_sync_block();
    return r;
}

// The first `rank` keys of the order (1 <= rank < n) as a prefix, by radix select from the top
// digit; stops as soon as the chosen bucket is taken whole.
RF_DEVICE Prefix select_prefix(const float* s, rf_u32 n, rf_u64 rank, Shared& sh) {
    const rf_u32 t = RF_TID_X;
    rf_u32 id_bits = 0;
    while (id_bits < 32 && ((n - 1) >> id_bits) != 0) id_bits += 8;
    Prefix b = {0, 0};
    for (int shift = 56; shift >= 0; shift -= 8) {
        if (shift < 32 && (rf_u32)shift >= id_bits) continue;  // id digits that are always 0
        for (rf_u32 i = t; i < 256; i += RF_BDIM_X) sh.hist[i] = 0;
        rf_sync_block();
        for (rf_u32 i = t; i < n; i += RF_BDIM_X) {
            const rf_u64 key = sort_key(clean(s[i]), i);
            if ((key & b.mask) == b.p) sh_add(&sh.hist[(key >> shift) & 255u], 1u);
        }
        rf_sync_block();
        if (t == 0) {
            rf_u64 below = 0;
            rf_u32 sel = 255;
            for (rf_u32 d = 0; d < 256; ++d) {
                if (below + sh.hist[d] >= rank) {
                    sel = d;
                    break;
                }
                below += sh.hist[d];
            }
            const rf_u64 left = rank - below;
            sh.sel_p = b.p | ((rf_u64)sel << shift);
            sh.sel_mask = b.mask | ((rf_u64)255 << shift);
            sh.sel_rank = left;
            sh.sel_done = sh.hist[sel] == left ? 1u : 0u;
        }
        rf_sync_block();
        b.p = sh.sel_p;
        b.mask = sh.sel_mask;
        rank = sh.sel_rank;
        const bool done = sh.sel_done != 0;
        rf_sync_block();
        if (done) break;
    }
    return b;
}

// Row r of logits -> out[r]. Scratch holds the row after mask and penalties.
RF_KERNEL(SAMPLE_THREADS) void sample_rows_f32(
    const float* logits, rf_u32 n, float* scratch,
    const float* fparams,       // [rows][4]: temperature, top_p, ln(min_p) (-inf: off), repeat penalty
    const rf_u32* uparams,      // [rows][4]: top_k, first penalty, penalty count, mask word offset
    const double* uniforms,     // [rows]
    const rf_u32* pen_tokens,   // penalty tokens of every row, concatenated
    const float* pen_offsets,   // their offsets (count * frequency + presence)
    const rf_u32* masks,        // allowed-token bit masks, ceil(n / 32) words per masked row
    rf_u32* out) {
    RF_GRID_DEP_BEGIN();
    __shared__ Shared sh;
    const rf_u32 t = RF_TID_X, B = RF_BDIM_X, r = RF_BID_X;
    const float* row = logits + (rf_u64)r * n;
    float* s = scratch + (rf_u64)r * n;
    const float temperature = fparams[4 * r + 0];
    const float top_p = fparams[4 * r + 1];
    const float ln_min_p = fparams[4 * r + 2];
    const float repeat = fparams[4 * r + 3];
    const rf_u32 top_k = uparams[4 * r + 0];
    const rf_u32 pen_first = uparams[4 * r + 1];
    const rf_u32 pen_count = uparams[4 * r + 2];
    const rf_u32 mask_at = uparams[4 * r + 3];

    // 1. The row with its mask, then its penalties (distinct tokens: one writer each).
    for (rf_u32 i = t; i < n; i += B) {
        float x = row[i];
        if (mask_at != SAMPLE_NO_MASK && ((masks[(rf_u64)mask_at + i / 32] >> (i % 32)) & 1u) == 0)
            x = -__builtin_huge_valf();
        s[i] = x;
    }
    rf_sync_block();
    for (rf_u32 j = t; j < pen_count; j += B) {
        const rf_u32 tok = pen_tokens[pen_first + j];
        if (tok >= n) continue;
        volatile float* slot = s + tok;
        const float x = *slot;
        *slot = x > 0.0f ? x / repeat : x * repeat;
        const float scaled = *slot;
        *slot = scaled - pen_offsets[pen_first + j];
    }
    rf_sync_block();

    // 2. Argmax (first on ties) and the maximum.
    float bv = -__builtin_huge_valf();
    rf_u32 bi = 0xffffffffu;
    for (rf_u32 i = t; i < n; i += B) {
        const float x = clean(s[i]);
        if (x > bv || (x == bv && i < bi)) {
            bv = x;
            bi = i;
        }
    }
    sh.rv[t] = bv;
    sh.ri[t] = bi;
    rf_sync_block();
    for (rf_u32 st = B / 2; st > 0; st >>= 1) {
        if (t < st) {
            const float ov = sh.rv[t + st];
            const rf_u32 oi = sh.ri[t + st];
            if (ov > sh.rv[t] || (ov == sh.rv[t] && oi < sh.ri[t])) {
                sh.rv[t] = ov;
                sh.ri[t] = oi;
            }
        }
        rf_sync_block();
    }
    const float max_v = sh.rv[0];
    const rf_u32 arg = sh.ri[0] == 0xffffffffu ? 0u : sh.ri[0];
    rf_sync_block();
    if (!(temperature > 0.0f) || !(max_v - max_v == 0.0f)) {
        if (t == 0) out[r] = arg;
        return;
    }
    const double max64 = (double)max_v;

    // 3. top-k: the first k of the order.
    const rf_u32 k = (top_k == 0 || top_k >= n) ? n : top_k;
    Prefix bound = {0, 0};
    if (k < n) bound = select_prefix(s, n, k, sh);

    // 4. top-p on the sorted first min(k, SAMPLE_CAP) of the top-k set.
    if (top_p < 1.0f) {
        double part = 0.0;
        for (rf_u32 i = t; i < n; i += B) {
            const float x = clean(s[i]);
            if (in_prefix(sort_key(x, i), bound)) part += sample_exp((double)x - max64);
        }
        const double sum = block_sum_f64(part, sh);
        const rf_u32 m = k < SAMPLE_CAP ? k : SAMPLE_CAP;
        const Prefix head = m < k ? select_prefix(s, n, m, sh) : bound;
        if (t == 0) sh.count = 0;
        rf_sync_block();
        for (rf_u32 i = t; i < n; i += B) {
            const rf_u64 key = sort_key(clean(s[i]), i);
            if (in_prefix(key, head)) {
                const rf_u32 slot = sh_add(&sh.count, 1u);
                if (slot < SAMPLE_CAP) sh.cand[slot] = key;
            }
        }
        rf_sync_block();
        rf_u32 size = 1;
        while (size < m) size <<= 1;
        for (rf_u32 i = m + t; i < size; i += B) sh.cand[i] = ~(rf_u64)0;
        rf_sync_block();
        for (rf_u32 kk = 2; kk <= size; kk <<= 1) {
            for (rf_u32 j = kk >> 1; j > 0; j >>= 1) {
                for (rf_u32 i = t; i < size; i += B) {
                    const rf_u32 o = i ^ j;
                    if (o > i) {
                        const rf_u64 a = sh.cand[i], c = sh.cand[o];
                        const bool up = (i & kk) == 0;
                        if ((a > c) == up) {
                            sh.cand[i] = c;
                            sh.cand[o] = a;
                        }
                    }
                }
                rf_sync_block();
            }
        }
        // Cumulative mass in sorted order; the first position reaching top_p ends the prefix.
        if (t == 0) sh.first = 0xffffffffu;
        const double pr = t < m ? sample_exp((double)key_value(sh.cand[t]) - max64) / sum : 0.0;
        const double cum = block_scan_f64(pr, sh);
        if (t < m && cum >= (double)top_p) sh_min(&sh.first, t);
        rf_sync_block();
        rf_u32 keep = sh.first;
        if (keep == 0xffffffffu) {
            if (m < k) {
                if (t == 0) out[r] = SAMPLE_FINISH_ON_HOST;
                return;
            }
            keep = m - 1;
        }
        bound.p = sh.cand[keep];
        bound.mask = ~(rf_u64)0;
        rf_sync_block();
    }

    // 5. min-p threshold (f32, as the host), then the draw over ids in ascending order: thread t
    // owns the contiguous ids [t * chunk, (t + 1) * chunk).
    const float threshold = max_v + ln_min_p;
    const double t64 = (double)temperature;
    const rf_u32 chunk = (n + B - 1) / B;
    const rf_u32 lo = t * chunk < n ? t * chunk : n;
    const rf_u32 hi = lo + chunk < n ? lo + chunk : n;
    double mine = 0.0;
    for (rf_u32 i = lo; i < hi; ++i) {
        const float x = clean(s[i]);
        if (x >= threshold && in_prefix(sort_key(x, i), bound))
            mine += sample_exp(((double)x - max64) / t64);
    }
    const double incl = block_scan_f64(mine, sh);
    if (t == B - 1) sh.d[0] = incl;
    rf_sync_block();
    const double total = sh.d[0];
    if (t == 0) sh.first = 0xffffffffu;
    rf_sync_block();
    const double target = uniforms[r] * total;
    const double before = incl - mine;
    if (mine > 0.0 && incl > target) sh_min(&sh.first, t);
    rf_sync_block();
    rf_u32 owner = sh.first;
    if (owner == 0xffffffffu) {
        // Rounding put the target past the total: the last thread with weight.
        if (t == 0) sh.first = 0;
        rf_sync_block();
        if (mine > 0.0) sh_max(&sh.first, t);
        rf_sync_block();
        owner = sh.first;
    }
    if (t == owner) {
        double c = before;
        rf_u32 pick = SAMPLE_FINISH_ON_HOST, last = arg;
        for (rf_u32 i = lo; i < hi; ++i) {
            const float x = clean(s[i]);
            if (!(x >= threshold && in_prefix(sort_key(x, i), bound))) continue;
            const double w = sample_exp(((double)x - max64) / t64);
            if (w > 0.0) {
                c += w;
                last = i;
                if (c > target) {
                    pick = i;
                    break;
                }
            }
        }
        out[r] = pick == SAMPLE_FINISH_ON_HOST ? last : pick;
    }
}
