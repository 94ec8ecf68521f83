// The one-launch decode matvec kernels (kernels/include/rf_mmvq_fused.h) for iq4_xs weights: its own
// family, so a GPU that compiles PTX at load time compiles only the weight types a model uses.
#include "rf_mmvq_fused.h"

RF_MMVQS_KERNEL(iq4_xs, rf_iq4_xs)
