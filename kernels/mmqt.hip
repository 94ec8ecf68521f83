// The split-K reduction of the batched-decode tile matmul (include/rf_mmqt.h, the families
// mmqt_<type>.hip): out[i] = sum over z < splits of part[z * n + i], added in split order (the
// same result on every run). Any grid; 256 threads per block.
#include "rf_platform.h"

RF_KERNEL(256)
void mmqt_reduce_f32(const float* part, rf_u32 splits, rf_u64 n, float* out) {
    RF_GRID_DEP_BEGIN();
    for (rf_u64 i = RF_GLOBAL_ID_X; i < n; i += RF_GRID_STRIDE_X) {
        float v = 0.0f;
        for (rf_u32 z = 0; z < splits; ++z) v += part[z * n + i];
        out[i] = v;
    }
}
