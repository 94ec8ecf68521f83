// The one-launch decode matvec kernels (kernels/include/rf_mmvq_fused.h) for q2_k weights: its own
// family, so a GPU that compiles PTX at load time compiles only the weight types a model uses.
#include "rf_mmvq_fused.h"

RF_MMVQS_KERNEL(q2_k, rf_q2_k)
