// The batched-decode tile matmul (include/rf_mmqt.h) for q8_0 weights: its own family, so a
// GPU that compiles PTX at load time compiles only the weight types a model uses.
#include "rf_mmqt.h"

RF_MMQT_TYPE(q8_0, rf_q8_0)
