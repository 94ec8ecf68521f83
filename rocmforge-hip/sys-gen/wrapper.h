// Input of sys-gen/regenerate.sh: the HIP runtime API, AMD platform, host side only.
#include <hip/hip_runtime_api.h>
