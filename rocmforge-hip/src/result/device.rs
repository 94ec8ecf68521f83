//! Device queries: name, memory, attributes, architecture.

use core::ffi::{c_char, c_int};

use super::{amd_call, api, cuda_call};
use crate::error::{HipError, HipResult};
use crate::loader::Api;
use crate::sys::cuda::CUdevice_attribute as CuAttr;
use crate::sys::hip;

/// Attributes read with `hipDeviceGetAttribute` / `cuDeviceGetAttribute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAttr {
    /// Compute units (AMD) / streaming multiprocessors (NVIDIA).
    ComputeUnits,
    /// Threads per wavefront / warp.
    WarpSize,
    /// Shared (LDS) memory a block may use without opting in, bytes.
    MaxSharedMemPerBlock,
    /// Shared memory a block may use after opting in, bytes (AMD: same as above).
    MaxSharedMemPerBlockOptin,
    /// Threads per block.
    MaxThreadsPerBlock,
    /// L2 cache, bytes.
    L2CacheBytes,
    /// Peak core clock, kHz.
    ClockKhz,
    /// Peak memory clock, kHz.
    MemoryClockKhz,
    /// Memory bus width, bits.
    MemoryBusWidth,
    /// Compute capability major (NVIDIA) / gfx major on AMD as the runtime reports it.
    ComputeCapabilityMajor,
    /// Compute capability minor.
    ComputeCapabilityMinor,
}

impl DeviceAttr {
    fn amd(self) -> hip::hipDeviceAttribute_t {
        match self {
            DeviceAttr::ComputeUnits => {
                hip::hipDeviceAttribute_t_hipDeviceAttributeMultiprocessorCount
            }
            DeviceAttr::WarpSize => hip::hipDeviceAttribute_t_hipDeviceAttributeWarpSize,
            DeviceAttr::MaxSharedMemPerBlock | DeviceAttr::MaxSharedMemPerBlockOptin => {
                hip::hipDeviceAttribute_t_hipDeviceAttributeMaxSharedMemoryPerBlock
            }
            DeviceAttr::MaxThreadsPerBlock => {
                hip::hipDeviceAttribute_t_hipDeviceAttributeMaxThreadsPerBlock
            }
            DeviceAttr::L2CacheBytes => hip::hipDeviceAttribute_t_hipDeviceAttributeL2CacheSize,
            DeviceAttr::ClockKhz => hip::hipDeviceAttribute_t_hipDeviceAttributeClockRate,
            DeviceAttr::MemoryClockKhz => {
                hip::hipDeviceAttribute_t_hipDeviceAttributeMemoryClockRate
            }
            DeviceAttr::MemoryBusWidth => {
                hip::hipDeviceAttribute_t_hipDeviceAttributeMemoryBusWidth
            }
            DeviceAttr::ComputeCapabilityMajor => {
                hip::hipDeviceAttribute_t_hipDeviceAttributeComputeCapabilityMajor
            }
            DeviceAttr::ComputeCapabilityMinor => {
                hip::hipDeviceAttribute_t_hipDeviceAttributeComputeCapabilityMinor
            }
        }
    }

    fn nvidia(self) -> CuAttr {
        match self {
            DeviceAttr::ComputeUnits => CuAttr::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            DeviceAttr::WarpSize => CuAttr::CU_DEVICE_ATTRIBUTE_WARP_SIZE,
            DeviceAttr::MaxSharedMemPerBlock => {
                CuAttr::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK
            }
            DeviceAttr::MaxSharedMemPerBlockOptin => {
                CuAttr::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
            }
            DeviceAttr::MaxThreadsPerBlock => CuAttr::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
            DeviceAttr::L2CacheBytes => CuAttr::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE,
            DeviceAttr::ClockKhz => CuAttr::CU_DEVICE_ATTRIBUTE_CLOCK_RATE,
            DeviceAttr::MemoryClockKhz => CuAttr::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE,
            DeviceAttr::MemoryBusWidth => CuAttr::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH,
            DeviceAttr::ComputeCapabilityMajor => {
                CuAttr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
            }
            DeviceAttr::ComputeCapabilityMinor => {
                CuAttr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
            }
        }
    }
}

fn ordinal(index: usize) -> HipResult<c_int> {
    c_int::try_from(index).map_err(|_| HipError::InvalidDevice {
        index,
        count: crate::loader::device_count().unwrap_or(0),
        platform: crate::loader::platform().unwrap_or(crate::Platform::Amd),
    })
}

/// Checks that `index` names a device and returns the runtime's device handle for it.
pub fn get(index: usize) -> HipResult<c_int> {
    let count = crate::loader::device_count()?;
    if index >= count {
        return Err(HipError::InvalidDevice {
            index,
            count,
            platform: crate::loader::platform()?,
        });
    }
    let ord = ordinal(index)?;
    let (rt, api) = api()?;
    match api {
        Api::Amd(_) => Ok(ord),
        Api::Nvidia(cu) => {
            let mut dev = 0;
            // SAFETY: `dev` is a valid out-pointer; `ord` was checked against the count.
            unsafe { cuda_call!(rt, cu, cuDeviceGet(&mut dev, ord)) }?;
            Ok(dev)
        }
    }
}

/// One attribute of device `dev` (a handle from [`get`]).
pub fn attribute(dev: c_int, attr: DeviceAttr) -> HipResult<i32> {
    let (rt, api) = api()?;
    let mut value: c_int = 0;
    match api {
        Api::Amd(h) => {
            // SAFETY: `value` is a valid out-pointer; `dev` came from `get`.
            unsafe { amd_call!(rt, h, hipDeviceGetAttribute(&mut value, attr.amd(), dev)) }?
        }
        Api::Nvidia(cu) => {
            // SAFETY: as above.
            unsafe { cuda_call!(rt, cu, cuDeviceGetAttribute(&mut value, attr.nvidia(), dev)) }?
        }
    }
    Ok(value)
}

/// The device's marketing name.
pub fn name(dev: c_int) -> HipResult<String> {
    let (rt, api) = api()?;
    let mut buf = [0 as c_char; 256];
    let len = buf.len() as c_int - 1;
    match api {
        // SAFETY: the buffer holds `len + 1` bytes and the runtime writes at most `len` plus NUL.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipDeviceGetName(buf.as_mut_ptr(), len, dev)) }?,
        Api::Nvidia(cu) => {
            // SAFETY: as above.
            unsafe { cuda_call!(rt, cu, cuDeviceGetName(buf.as_mut_ptr(), len, dev)) }?
        }
    }
    Ok(c_buf_to_string(&buf))
}

fn c_buf_to_string(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Total device memory in bytes.
pub fn total_mem(dev: c_int) -> HipResult<usize> {
    let (rt, api) = api()?;
    let mut bytes: usize = 0;
    match api {
        // SAFETY: `bytes` is a valid out-pointer.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipDeviceTotalMem(&mut bytes, dev)) }?,
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuDeviceTotalMem_v2(&mut bytes, dev)) }?,
    }
    Ok(bytes)
}

/// The architecture name the kernels are compiled for: `gfx942` (feature suffixes such as
/// `:sramecc+:xnack-` removed) or `sm_90`.
pub fn arch(dev: c_int) -> HipResult<String> {
    let (rt, api) = api()?;
    match api {
        Api::Amd(h) => {
            // hipDeviceGetAttribute has no string attributes in every ROCm release, so the name
            // comes from the properties struct. The buffer is far larger than any release's
            // struct, so a newer runtime writing a larger layout stays inside it.
            let mut storage = vec![0u64; 8192];
            let props = storage.as_mut_ptr().cast::<hip::hipDeviceProp_t>();
            // SAFETY: `props` points to 64 KiB of zeroed, 8-byte-aligned memory, larger than
            // hipDeviceProp_t of any ROCm release.
            unsafe { amd_call!(rt, h, hipGetDeviceProperties(props, dev)) }?;
            // SAFETY: the struct was filled by the runtime; gcnArchName is a char array inside it.
            let raw = unsafe { (*props).gcnArchName };
            let full = c_buf_to_string(&raw);
            if full.starts_with("gfx") {
                return Ok(full.split(':').next().unwrap_or_default().to_string());
            }
            // A runtime whose struct layout differs from the bindings' (the struct changed in
            // ROCm 6): find the architecture string wherever it was written.
            // SAFETY: `storage` is plain initialised memory; viewing it as bytes is always valid.
            let bytes = unsafe {
                std::slice::from_raw_parts(storage.as_ptr().cast::<u8>(), storage.len() * 8)
            };
            find_gfx_name(bytes).ok_or_else(|| {
                HipError::InvalidUse(format!(
                    "hipGetDeviceProperties gave no gfx architecture name for device {dev}"
                ))
            })
        }
        Api::Nvidia(_) => {
            let major = attribute(dev, DeviceAttr::ComputeCapabilityMajor)?;
            let minor = attribute(dev, DeviceAttr::ComputeCapabilityMinor)?;
            Ok(format!("sm_{major}{minor}"))
        }
    }
}

/// The first NUL-terminated `gfx<hex digits>` string in `bytes` (feature suffixes removed).
fn find_gfx_name(bytes: &[u8]) -> Option<String> {
    let mut i = 0;
    while i + 4 < bytes.len() {
        let at_start = i == 0 || bytes[i - 1] == 0;
        if at_start && bytes[i..].starts_with(b"gfx") {
            let rest = &bytes[i + 3..];
            let digits = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            let end = rest.get(digits).copied();
            if digits > 0 && matches!(end, Some(0) | Some(b':')) {
                return Some(String::from_utf8_lossy(&bytes[i..i + 3 + digits]).into_owned());
            }
        }
        i += 1;
    }
    None
}

/// The driver version as the runtime encodes it (CUDA: 1000·major + 10·minor).
pub fn driver_version() -> HipResult<i32> {
    let (rt, api) = api()?;
    let mut v: c_int = 0;
    match api {
        // SAFETY: `v` is a valid out-pointer.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipDriverGetVersion(&mut v)) }?,
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuDriverGetVersion(&mut v)) }?,
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::find_gfx_name;

    #[test]
    fn finds_the_architecture_string_anywhere() {
        let mut bytes = vec![0u8; 600];
        bytes[10..29].copy_from_slice(b"AMD Instinct MI300X");
        bytes[300..322].copy_from_slice(b"gfx942:sramecc+:xnack-");
        assert_eq!(find_gfx_name(&bytes).as_deref(), Some("gfx942"));
        assert_eq!(find_gfx_name(b"\0gfx\0gfxzz\0"), None);
        assert_eq!(find_gfx_name(b"\0gfx1100\0").as_deref(), Some("gfx1100"));
    }
}
