// rf_platform.h — the one header that makes a kernel source build for AMD and NVIDIA.
//
// Three ways a kernel is compiled (see xtask/src/kernels.rs):
//   1. AMD, clang (or hipcc) with -x hip -nogpuinc -nogpulib: no HIP headers at all, so this header
//      supplies the attributes, thread indices, barriers, shuffles and types itself (clang builtins).
//   2. NVIDIA, nvcc: the CUDA headers are there; this header maps our names onto them.
//   3. NVIDIA, clang -x cuda -nocudainc -nocudalib (PTX built without nvcc): as 1, with NVPTX builtins.
//
// Kernels use only the RF_* names below (never threadIdx/__shfl_* directly), are declared with
// RF_KERNEL(max_threads_per_block) so they get C linkage, and are named <op>_<dtype>.
// RF_WARP_SIZE is a compile-time constant: 64 on gfx9 (CDNA: gfx90a, gfx942), 32 on RDNA
// (gfx1100, gfx1201) and on NVIDIA. Never write 32 where the warp size is meant.
#pragma once

#if defined(__AMDGCN__) || (defined(__HIP__) && !defined(__CUDA__))
#define RF_AMD 1
#elif defined(__NVCC__)
#define RF_NVCC 1
#elif defined(__CUDA__) && defined(__clang__)
#define RF_CLANG_NVPTX 1
#else
#error "rf_platform.h: unknown compiler (expected clang -x hip, nvcc, or clang -x cuda)"
#endif

typedef unsigned int rf_u32;
typedef unsigned long long rf_u64;
typedef int rf_i32;

// ---------------------------------------------------------------------------------------------
// Attributes
#if defined(RF_AMD) || defined(RF_CLANG_NVPTX)
#ifndef __global__
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __host__ __attribute__((host))
#define __shared__ __attribute__((shared))
#define __constant__ __attribute__((constant))
#endif
#endif

#if defined(RF_AMD)
#define RF_LAUNCH_BOUNDS(n) __attribute__((amdgpu_flat_work_group_size(1, n)))
#else
#define RF_LAUNCH_BOUNDS(n) __launch_bounds__(n)
#ifndef __launch_bounds__
#define __launch_bounds__(n) __attribute__((launch_bounds(n)))
#endif
#endif

#define RF_KERNEL(max_threads) extern "C" __global__ RF_LAUNCH_BOUNDS(max_threads)
#define RF_DEVICE static __device__ inline __attribute__((always_inline))
#define RF_DYNAMIC_SHARED(type, name) extern __shared__ type name[]

// ---------------------------------------------------------------------------------------------
// Programmatic dependent launch (NVIDIA sm_90 and later, nvcc images only). A kernel the host
// launches as dependent (rocmforge-hip's `LaunchArgs::dependent`) may start while the kernel
// before it on the stream still runs: before RF_GRID_DEP_WAIT() it may read only data no kernel
// writes (weights) and must write nothing; after it, everything the earlier kernels wrote is
// visible. RF_GRID_DEP_LAUNCH() lets the next dependent kernel start (its blocks then wait in
// RF_GRID_DEP_WAIT until this kernel has finished). Both are no-ops elsewhere (AMD, PTX for
// older GPUs), and the module-level `rf_grid_dependency` symbol tells the host that the image's
// kernels wait: the host launches dependent only kernels of images that have it.
#if defined(RF_NVCC) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define RF_GRID_DEP_WAIT() asm volatile("griddepcontrol.wait;" ::: "memory")
#define RF_GRID_DEP_LAUNCH() asm volatile("griddepcontrol.launch_dependents;" ::: "memory")
extern "C" __device__ __attribute__((used)) int rf_grid_dependency = 1;
#else
#define RF_GRID_DEP_WAIT() ((void)0)
#define RF_GRID_DEP_LAUNCH() ((void)0)
#endif
// Both at once, at the top of a kernel that reads its inputs from the start.
#define RF_GRID_DEP_BEGIN() \
    do {                     \
        RF_GRID_DEP_WAIT();  \
        RF_GRID_DEP_LAUNCH(); \
    } while (0)

// ---------------------------------------------------------------------------------------------
// Warp size
#if defined(RF_AMD)
#if defined(__AMDGCN_WAVEFRONT_SIZE__)
#define RF_WARP_SIZE __AMDGCN_WAVEFRONT_SIZE__
#elif defined(__GFX9__)
#define RF_WARP_SIZE 64
#else
#define RF_WARP_SIZE 32
#endif
#else
#define RF_WARP_SIZE 32
#endif

// ---------------------------------------------------------------------------------------------
// Thread and block indices
#if defined(RF_AMD)
#define RF_TID_X ((rf_u32)__builtin_amdgcn_workitem_id_x())
#define RF_TID_Y ((rf_u32)__builtin_amdgcn_workitem_id_y())
#define RF_TID_Z ((rf_u32)__builtin_amdgcn_workitem_id_z())
#define RF_BID_X ((rf_u32)__builtin_amdgcn_workgroup_id_x())
#define RF_BID_Y ((rf_u32)__builtin_amdgcn_workgroup_id_y())
#define RF_BID_Z ((rf_u32)__builtin_amdgcn_workgroup_id_z())
#define RF_BDIM_X ((rf_u32)__builtin_amdgcn_workgroup_size_x())
#define RF_BDIM_Y ((rf_u32)__builtin_amdgcn_workgroup_size_y())
#define RF_BDIM_Z ((rf_u32)__builtin_amdgcn_workgroup_size_z())
#define RF_GDIM_X ((rf_u32)(__builtin_amdgcn_grid_size_x() / __builtin_amdgcn_workgroup_size_x()))
#define RF_GDIM_Y ((rf_u32)(__builtin_amdgcn_grid_size_y() / __builtin_amdgcn_workgroup_size_y()))
#define RF_GDIM_Z ((rf_u32)(__builtin_amdgcn_grid_size_z() / __builtin_amdgcn_workgroup_size_z()))
#elif defined(RF_CLANG_NVPTX)
#define RF_TID_X ((rf_u32)__nvvm_read_ptx_sreg_tid_x())
#define RF_TID_Y ((rf_u32)__nvvm_read_ptx_sreg_tid_y())
#define RF_TID_Z ((rf_u32)__nvvm_read_ptx_sreg_tid_z())
#define RF_BID_X ((rf_u32)__nvvm_read_ptx_sreg_ctaid_x())
#define RF_BID_Y ((rf_u32)__nvvm_read_ptx_sreg_ctaid_y())
#define RF_BID_Z ((rf_u32)__nvvm_read_ptx_sreg_ctaid_z())
#define RF_BDIM_X ((rf_u32)__nvvm_read_ptx_sreg_ntid_x())
#define RF_BDIM_Y ((rf_u32)__nvvm_read_ptx_sreg_ntid_y())
#define RF_BDIM_Z ((rf_u32)__nvvm_read_ptx_sreg_ntid_z())
#define RF_GDIM_X ((rf_u32)__nvvm_read_ptx_sreg_nctaid_x())
#define RF_GDIM_Y ((rf_u32)__nvvm_read_ptx_sreg_nctaid_y())
#define RF_GDIM_Z ((rf_u32)__nvvm_read_ptx_sreg_nctaid_z())
#else
#define RF_TID_X ((rf_u32)threadIdx.x)
#define RF_TID_Y ((rf_u32)threadIdx.y)
#define RF_TID_Z ((rf_u32)threadIdx.z)
#define RF_BID_X ((rf_u32)blockIdx.x)
#define RF_BID_Y ((rf_u32)blockIdx.y)
#define RF_BID_Z ((rf_u32)blockIdx.z)
#define RF_BDIM_X ((rf_u32)blockDim.x)
#define RF_BDIM_Y ((rf_u32)blockDim.y)
#define RF_BDIM_Z ((rf_u32)blockDim.z)
#define RF_GDIM_X ((rf_u32)gridDim.x)
#define RF_GDIM_Y ((rf_u32)gridDim.y)
#define RF_GDIM_Z ((rf_u32)gridDim.z)
#endif

// Global x index and grid-wide stride, 64-bit so that large tensors index correctly.
#define RF_GLOBAL_ID_X ((rf_u64)RF_BID_X * RF_BDIM_X + RF_TID_X)
#define RF_GRID_STRIDE_X ((rf_u64)RF_BDIM_X * RF_GDIM_X)

// ---------------------------------------------------------------------------------------------
// Barriers and lanes
#if defined(RF_AMD)
RF_DEVICE void rf_sync_block() {
    __builtin_amdgcn_fence(__ATOMIC_RELEASE, "workgroup");
    __builtin_amdgcn_s_barrier();
    __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "workgroup");
}
RF_DEVICE rf_u32 rf_lane_id() {
#if RF_WARP_SIZE == 64
    return __builtin_amdgcn_mbcnt_hi(~0u, __builtin_amdgcn_mbcnt_lo(~0u, 0u));
#else
    return __builtin_amdgcn_mbcnt_lo(~0u, 0u);
#endif
}
#elif defined(RF_CLANG_NVPTX)
RF_DEVICE void rf_sync_block() { __nvvm_barrier_sync(0); }
RF_DEVICE rf_u32 rf_lane_id() { return (rf_u32)__nvvm_read_ptx_sreg_laneid(); }
#else
RF_DEVICE void rf_sync_block() { __syncthreads(); }
RF_DEVICE rf_u32 rf_lane_id() { return threadIdx.x % 32u; }
#endif

// Orders a warp's shared-memory accesses (all lanes take part).
RF_DEVICE void rf_sync_warp() {
#if defined(RF_AMD)
    __builtin_amdgcn_fence(__ATOMIC_RELEASE, "wavefront");
    __builtin_amdgcn_wave_barrier();
    __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "wavefront");
#elif defined(RF_CLANG_NVPTX)
    __nvvm_bar_warp_sync(0xffffffffu);
#else
    __syncwarp();
#endif
}

// Device-wide fence: this thread's global writes before it are visible to every block of the
// grid before its global writes after it (and, on the reading side, later reads see what other
// blocks wrote before their own fence and atomic).
RF_DEVICE void rf_fence_device() {
#if defined(RF_AMD)
    __builtin_amdgcn_fence(__ATOMIC_SEQ_CST, "agent");
#elif defined(RF_CLANG_NVPTX)
    __nvvm_membar_gl();
#else
    __threadfence();
#endif
}

// Atomic add on a global u32 (device scope); returns the old value.
RF_DEVICE rf_u32 rf_atomic_add_u32(rf_u32* p, rf_u32 v) {
#if defined(RF_NVCC)
    return atomicAdd(p, v);
#else
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
#endif
}

// Butterfly shuffle: the value held by lane (lane ^ mask) of the same warp. All lanes take part.
#if defined(RF_AMD)
RF_DEVICE int rf_shfl_xor_i32(int v, int mask) {
    int src = (int)(rf_lane_id() ^ (rf_u32)mask);
    return __builtin_amdgcn_ds_bpermute(src << 2, v);
}
#elif defined(RF_CLANG_NVPTX)
RF_DEVICE int rf_shfl_xor_i32(int v, int mask) { return __nvvm_shfl_sync_bfly_i32(0xffffffffu, v, mask, 0x1f); }
#else
RF_DEVICE int rf_shfl_xor_i32(int v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask); }
#endif
RF_DEVICE float rf_shfl_xor_f32(float v, int mask) {
    return __builtin_bit_cast(float, rf_shfl_xor_i32(__builtin_bit_cast(int, v), mask));
}

// Reductions over one warp; every lane gets the result.
RF_DEVICE float rf_warp_sum_f32(float v) {
#pragma unroll
    for (int m = RF_WARP_SIZE / 2; m > 0; m >>= 1) v += rf_shfl_xor_f32(v, m);
    return v;
}
RF_DEVICE float rf_warp_max_f32(float v) {
#pragma unroll
    for (int m = RF_WARP_SIZE / 2; m > 0; m >>= 1) {
        float o = rf_shfl_xor_f32(v, m);
        v = o > v ? o : v;
    }
    return v;
}

// Sum over the whole block (blockDim.x a multiple of RF_WARP_SIZE, at most 1024 threads); every
// thread gets the result. `scratch` is __shared__ float[1024 / RF_WARP_SIZE] (or larger).
RF_DEVICE float rf_block_sum_f32(float v, float* scratch) {
    const rf_u32 lane = RF_TID_X % RF_WARP_SIZE, warp = RF_TID_X / RF_WARP_SIZE;
    const rf_u32 n_warps = RF_BDIM_X / RF_WARP_SIZE;
    v = rf_warp_sum_f32(v);
    rf_sync_block();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    rf_sync_block();
    v = lane < n_warps ? scratch[lane] : 0.0f;
    return rf_warp_sum_f32(v);
}

// ---------------------------------------------------------------------------------------------
// 16-bit floats. rf_half is IEEE binary16 (a native type); bf16 is carried as its bit pattern.
#if defined(RF_NVCC)
#include <cuda_fp16.h>
typedef __half rf_half;
RF_DEVICE float rf_half_to_f32(rf_half h) { return __half2float(h); }
RF_DEVICE rf_half rf_f32_to_half(float f) { return __float2half_rn(f); }
#else
typedef _Float16 rf_half;
RF_DEVICE float rf_half_to_f32(rf_half h) { return (float)h; }
RF_DEVICE rf_half rf_f32_to_half(float f) { return (rf_half)f; }
#endif

typedef unsigned short rf_bf16;
RF_DEVICE float rf_bf16_to_f32(rf_bf16 b) { return __builtin_bit_cast(float, ((rf_u32)b) << 16); }
RF_DEVICE rf_bf16 rf_f32_to_bf16(float f) {  // round to nearest even; NaN stays NaN
    rf_u32 u = __builtin_bit_cast(rf_u32, f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (rf_bf16)((u >> 16) | 0x40u);
    return (rf_bf16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// ---------------------------------------------------------------------------------------------
// Math (fast single-precision forms available on every target without device libraries).
#if defined(RF_CLANG_NVPTX)
RF_DEVICE float rf_exp2f(float x) { return __nvvm_ex2_approx_f(x); }
RF_DEVICE float rf_log2f(float x) { return __nvvm_lg2_approx_f(x); }
RF_DEVICE float rf_sqrtf(float x) { return __nvvm_sqrt_rn_f(x); }
RF_DEVICE float rf_rsqrtf(float x) { return __nvvm_rsqrt_approx_f(x); }
RF_DEVICE float rf_sinf(float x) { return __nvvm_sin_approx_f(x); }
RF_DEVICE float rf_cosf(float x) { return __nvvm_cos_approx_f(x); }
#elif defined(RF_NVCC)
RF_DEVICE float rf_exp2f(float x) { return exp2f(x); }
RF_DEVICE float rf_log2f(float x) { return log2f(x); }
RF_DEVICE float rf_sqrtf(float x) { return sqrtf(x); }
RF_DEVICE float rf_rsqrtf(float x) { return rsqrtf(x); }
RF_DEVICE float rf_sinf(float x) { return sinf(x); }
RF_DEVICE float rf_cosf(float x) { return cosf(x); }
#else
// __builtin_amdgcn_exp2f / _logf (the bare v_exp_f32 / v_log_f32) came with LLVM 18; an older
// compiler (ROCm 5's comgr, LLVM 15, behind hiprtc) gets the generic builtins, which it lowers
// to those same instructions. (Only AMD compiles reach this branch: nvcc never sees
// __has_builtin.)
#if __has_builtin(__builtin_amdgcn_exp2f)
RF_DEVICE float rf_exp2f(float x) { return __builtin_amdgcn_exp2f(x); }
#else
RF_DEVICE float rf_exp2f(float x) { return __builtin_exp2f(x); }
#endif
#if __has_builtin(__builtin_amdgcn_logf)
RF_DEVICE float rf_log2f(float x) { return __builtin_amdgcn_logf(x); }
#else
RF_DEVICE float rf_log2f(float x) { return __builtin_log2f(x); }
#endif
RF_DEVICE float rf_sqrtf(float x) { return __builtin_sqrtf(x); }
RF_DEVICE float rf_rsqrtf(float x) { return __builtin_amdgcn_rsqf(x); }
RF_DEVICE float rf_sinf(float x) { return __builtin_amdgcn_sinf(x * 0.15915494309189535f); }
RF_DEVICE float rf_cosf(float x) { return __builtin_amdgcn_cosf(x * 0.15915494309189535f); }
#endif
RF_DEVICE float rf_expf(float x) { return rf_exp2f(x * 1.4426950408889634f); }
RF_DEVICE float rf_logf(float x) { return rf_log2f(x) * 0.6931471805599453f; }
RF_DEVICE float rf_powf(float x, float y) { return rf_exp2f(y * rf_log2f(x)); }  // x > 0
RF_DEVICE float rf_tanhf(float x) {
    float e = rf_expf(-2.0f * (x < 0.0f ? -x : x));
    float t = (1.0f - e) / (1.0f + e);
    return x < 0.0f ? -t : t;
}

// ---------------------------------------------------------------------------------------------
// A free-running device clock (units differ between targets; compare deltas on one device only).
#if defined(RF_AMD)
#if __has_builtin(__builtin_readsteadycounter)
RF_DEVICE rf_u64 rf_clock() { return __builtin_readsteadycounter(); }
#else  // LLVM before 18 (ROCm 5's comgr): the shader cycle counter
RF_DEVICE rf_u64 rf_clock() { return __builtin_readcyclecounter(); }
#endif
#elif defined(RF_CLANG_NVPTX)
RF_DEVICE rf_u64 rf_clock() { return __nvvm_read_ptx_sreg_globaltimer(); }
#else
RF_DEVICE rf_u64 rf_clock() {
    rf_u64 t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
#endif
