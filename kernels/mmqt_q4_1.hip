// The batched-decode tile matmul (include/rf_mmqt.h) for q4_1 weights: its own family, so a
// GPU that compiles PTX at load time compiles only the weight types a model uses.
#include "rf_mmqt.h"

RF_MMQT_TYPE(q4_1, rf_q4_1)
