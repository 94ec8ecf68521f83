//! Device attributes, read with `hipDeviceGetAttribute` / `cuDeviceGetAttribute`.

use std::ffi::c_int;

use crate::error::{HipResult, Platform};
use crate::result::device::{self, DeviceAttr};

/// What a device is and what it can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Index among the platform's devices.
    pub index: usize,
    /// The runtime that drives it.
    pub platform: Platform,
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3` or `AMD Instinct MI300X`.
    pub name: String,
    /// Architecture the kernels are compiled for: `gfx942`, `gfx1100`, `sm_90`, ...
    pub arch: String,
    /// Device memory, bytes.
    pub total_memory: usize,
    /// Free device memory when queried, bytes.
    pub free_memory: usize,
    /// Compute units (AMD) / streaming multiprocessors (NVIDIA).
    pub compute_units: u32,
    /// Threads per wavefront / warp.
    pub warp_size: u32,
    /// Shared (LDS) memory per block without opt-in, bytes.
    pub max_shared_mem_per_block: u32,
    /// Shared memory per block with opt-in (NVIDIA above 48 KiB), bytes.
    pub max_shared_mem_per_block_optin: u32,
    /// Threads per block.
    pub max_threads_per_block: u32,
    /// L2 cache, bytes.
    pub l2_cache_bytes: u32,
    /// Peak memory clock, kHz.
    pub memory_clock_khz: u32,
    /// Memory bus width, bits.
    pub memory_bus_width: u32,
}

fn attr(dev: c_int, a: DeviceAttr) -> HipResult<u32> {
    Ok(u32::try_from(device::attribute(dev, a)?).unwrap_or(0))
}

impl DeviceInfo {
    /// Reads every attribute; the device must be current on this thread (for free memory).
    pub(crate) fn query(index: usize, dev: c_int) -> HipResult<DeviceInfo> {
        let (free_memory, _) = crate::result::memory::mem_info()?;
        Ok(DeviceInfo {
            index,
            platform: crate::loader::platform()?,
            name: device::name(dev)?,
            arch: device::arch(dev)?,
            total_memory: device::total_mem(dev)?,
            free_memory,
            compute_units: attr(dev, DeviceAttr::ComputeUnits)?,
            warp_size: attr(dev, DeviceAttr::WarpSize)?,
            max_shared_mem_per_block: attr(dev, DeviceAttr::MaxSharedMemPerBlock)?,
            max_shared_mem_per_block_optin: attr(dev, DeviceAttr::MaxSharedMemPerBlockOptin)?,
            max_threads_per_block: attr(dev, DeviceAttr::MaxThreadsPerBlock)?,
            l2_cache_bytes: attr(dev, DeviceAttr::L2CacheBytes)?,
            memory_clock_khz: attr(dev, DeviceAttr::MemoryClockKhz)?,
            memory_bus_width: attr(dev, DeviceAttr::MemoryBusWidth)?,
        })
    }

    /// Peak memory bandwidth from clock and bus width, bytes per second (0 when unknown). HBM and
    /// GDDR transfer twice per clock.
    pub fn peak_bandwidth_bytes_per_s(&self) -> f64 {
        2.0 * f64::from(self.memory_clock_khz) * 1e3 * f64::from(self.memory_bus_width) / 8.0
    }
}

/// Every device of the platform, with its attributes. No device is [`crate::HipError::NoDevice`].
pub fn list_devices() -> HipResult<Vec<DeviceInfo>> {
    let count = crate::loader::device_count()?;
    (0..count)
        .map(|i| crate::HipBackend::new(i).map(|b| b.info().clone()))
        .collect()
}
