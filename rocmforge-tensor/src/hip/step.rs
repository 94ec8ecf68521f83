//! [`StepScalars`]: a few u32 values (token id, position, KV row, ...) that a captured graph
//! reads from device memory, uploaded before each replay without a host-side wait.
//!
//! The values go through pinned host memory with asynchronous copies on the ops' stream. An
//! event recorded after the copies is waited for before the pinned memory is written again, so
//! a queued copy never reads a value being overwritten; dropping waits for it as well.

use rocmforge_hip::{DeviceBuffer, HipEvent, PinnedHostBuffer};

use super::HipOps;
use crate::error::TensorResult;

/// `N` device-resident u32 values, one buffer each (kernels take them by address).
#[derive(Debug)]
pub struct StepScalars<const N: usize> {
    device: Vec<DeviceBuffer<u32>>,
    host: Vec<PinnedHostBuffer<u32>>,
    /// Recorded after the last queued copies.
    copied: HipEvent,
    /// Whether copies were queued since `copied` was last waited for.
    pending: bool,
}

impl<const N: usize> StepScalars<N> {
    /// Zeroed values on the ops' device.
    pub fn new(ops: &HipOps) -> TensorResult<Self> {
        let dev = ops.backend();
        let mut device = Vec::with_capacity(N);
        let mut host = Vec::with_capacity(N);
        for _ in 0..N {
            device.push(dev.alloc_zeros::<u32>(1)?);
            host.push(dev.alloc_pinned::<u32>(1)?);
        }
        Ok(StepScalars {
            device,
            host,
            copied: dev.new_event()?,
            pending: false,
        })
    }

    /// The device buffers, in order (what kernels read).
    pub fn buffers(&self) -> &[DeviceBuffer<u32>] {
        &self.device
    }

    /// Queues the copies of `values` to the device on the ops' stream: work queued after this
    /// call reads them.
    pub fn upload(&mut self, ops: &HipOps, values: [u32; N]) -> TensorResult<()> {
        if self.pending {
            self.copied.synchronize()?;
            self.pending = false;
        }
        for ((host, dev), v) in self.host.iter_mut().zip(&mut self.device).zip(values) {
            host[0] = v;
            // SAFETY: `host` and `dev` are owned by `self`; the pinned memory is written again
            // only after the event recorded below has completed (waited for above, and in Drop),
            // so the queued copy reads `v`, and `dev` outlives the copy for the same reason.
            unsafe { ops.stream().memcpy_htod_async(host, dev)? };
        }
        self.copied.record(ops.stream())?;
        self.pending = true;
        Ok(())
    }
}

impl<const N: usize> Drop for StepScalars<N> {
    fn drop(&mut self) {
        if self.pending {
            // A failed wait leaves nothing better to do than free the memory.
            let _ = self.copied.synchronize();
        }
    }
}
