//! A real device fault on purpose (the `fault-injection` feature only): `fault_store_u32` of
//! `kernels/test_kernels.hip` stores far outside any allocation, so the context fails as after a
//! kernel bug (CUDA_ERROR_ILLEGAL_ADDRESS on NVIDIA; a memory access fault on AMD) at the next
//! synchronisation. Used to show that an engine turns such a fault into failed requests and an
//! unhealthy status instead of a hang.

use rocmforge_hip::LaunchConfig;

use super::HipOps;
use crate::error::TensorResult;

/// Queues the faulting store on the ops' stream; the error surfaces at the next synchronisation.
pub fn inject_device_fault(ops: &HipOps) -> TensorResult<()> {
    let f = ops.function("test_kernels", "fault_store_u32")?;
    let target = ops.backend().alloc_zeros::<u32>(1)?;
    // 1 TiB past a 4-byte allocation: unmapped on every device this runs on.
    let offset: u64 = 1 << 38;
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (64, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut l = ops.stream().launch_builder(&f);
    l.arg(&target).arg(&offset);
    // SAFETY: (u32* p, u64 offset) matches fault_store_u32. The store is out of bounds on
    // purpose: it can only fault this process's device context (the point of this function),
    // never touch host memory. `target` is leaked (4 bytes), so it is never freed while the
    // kernel may still run.
    unsafe { l.launch(cfg)? };
    std::mem::forget(target);
    Ok(())
}
