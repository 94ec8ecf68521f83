// KV cache append: f32 K or V rows (one per token, n_kv_heads * head_dim values) are rounded to
// f16 (round to nearest even, as half::f16::from_f32) and stored at rows start_row.. of the cache.
#include "rf_platform.h"

RF_KERNEL(256) void kv_append_f16(const float* src, rf_half* cache, rf_u32 row_len, rf_u32 n_rows,
                                  rf_u32 start_row) {
    RF_GRID_DEP_BEGIN();
    const rf_u64 n = (rf_u64)row_len * n_rows;
    rf_half* dst = cache + (rf_u64)start_row * row_len;
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) dst[i] = rf_f32_to_half(src[i]);
}

// As kv_append_f16, with the first row read on the device (*start_row), so a captured graph
// appends at the cache's current length on every replay. Rows past `capacity` are not written.
RF_KERNEL(256) void kv_append_at_f16(const float* src, rf_half* cache, rf_u32 row_len,
                                     rf_u32 n_rows, const rf_u32* start_row, rf_u32 capacity) {
    RF_GRID_DEP_BEGIN();
    const rf_u32 first = *start_row;
    if (first >= capacity) return;
    const rf_u32 rows = capacity - first < n_rows ? capacity - first : n_rows;
    const rf_u64 n = (rf_u64)row_len * rows;
    rf_half* dst = cache + (rf_u64)first * row_len;
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) dst[i] = rf_f32_to_half(src[i]);
}

// A batch's K or V rows, each to its own sequence's cache: row r (row_len f32 values) is rounded
// to f16 and stored at dst[r] (the address of that token's row in its sequence's cache). One
// launch appends every row of a ragged batch, whatever sequences they belong to.
RF_KERNEL(256) void kv_append_rows_f16(const float* src, const rf_u64* dst, rf_u32 row_len,
                                       rf_u32 n_rows) {
    RF_GRID_DEP_BEGIN();
    const rf_u64 n = (rf_u64)row_len * n_rows;
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) {
        const rf_u64 r = i / row_len;
        rf_half* row = (rf_half*)dst[r];
        row[i - r * row_len] = rf_f32_to_half(src[i]);
    }
}
