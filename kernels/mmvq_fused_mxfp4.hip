// The one-launch decode matvec kernels (kernels/include/rf_mmvq_fused.h) for mxfp4 weights: its own
// family, so a GPU that compiles PTX at load time compiles only the weight types a model uses.
#include "rf_mmvq_fused.h"

RF_MMVQS_KERNEL(mxfp4, rf_mxfp4)
