// The batched-decode tile matmul (include/rf_mmqt.h) for iq4_nl weights: its own family, so a
// GPU that compiles PTX at load time compiles only the weight types a model uses.
#include "rf_mmqt.h"

RF_MMQT_TYPE(iq4_nl, rf_iq4_nl)
