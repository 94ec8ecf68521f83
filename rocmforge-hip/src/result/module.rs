//! Modules (loaded code objects / cubins / PTX), their functions, and kernel launches.

use core::ffi::{CStr, c_int, c_uint, c_void};

use super::{RawHandle, amd_call, api, cuda_call};
use crate::error::HipResult;
use crate::loader::Api;
use crate::sys::cuda::{
    CUfunction_attribute, CUlaunchAttribute, CUlaunchAttributeID, CUlaunchConfig,
};
use crate::sys::hip;

/// Loads a module from an in-memory image (AMD code object; NVIDIA cubin, fatbin or
/// NUL-terminated PTX) into the current device.
pub fn load_data(image: &[u8]) -> HipResult<RawHandle> {
    let (rt, api) = api()?;
    let mut module = core::ptr::null_mut();
    match api {
        Api::Amd(h) => {
            // SAFETY: `image` is readable for the call; the runtime copies what it keeps.
            unsafe { amd_call!(rt, h, hipModuleLoadData(&mut module, image.as_ptr().cast())) }?
        }
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe {
            cuda_call!(
                rt,
                cu,
                cuModuleLoadData((&raw mut module).cast(), image.as_ptr().cast())
            )
        }?,
    }
    Ok(module.cast())
}

/// Unloads a module.
///
/// # Safety
/// `module` came from [`load_data`], is unloaded once, and none of its functions is still queued.
pub unsafe fn unload(module: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: guaranteed by the caller.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipModuleUnload(module.cast())) },
        // SAFETY: guaranteed by the caller.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuModuleUnload(module.cast())) },
    }
}

/// Looks up a kernel by its (`extern "C"`) name.
pub fn get_function(module: RawHandle, name: &CStr) -> HipResult<RawHandle> {
    let (rt, api) = api()?;
    let mut function = core::ptr::null_mut();
    match api {
        // SAFETY: `module` is live, `name` NUL-terminated, `function` a valid out-pointer.
        Api::Amd(h) => unsafe {
            amd_call!(
                rt,
                h,
                hipModuleGetFunction(&mut function, module.cast(), name.as_ptr())
            )
        }?,
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe {
            cuda_call!(
                rt,
                cu,
                cuModuleGetFunction((&raw mut function).cast(), module.cast(), name.as_ptr())
            )
        }?,
    }
    Ok(function.cast())
}

/// Whether the module defines the global `name` (NVIDIA; always `false` on AMD, where no caller
/// needs it).
pub fn has_global(module: RawHandle, name: &CStr) -> bool {
    let Ok((_, Api::Nvidia(cu))) = api() else {
        return false;
    };
    let Ok(get) = cu.cuModuleGetGlobal_v2.as_ref() else {
        return false;
    };
    let (mut ptr, mut bytes) = (0, 0usize);
    // SAFETY: `module` is live, `name` NUL-terminated, both out-pointers valid for the call.
    let status = unsafe { get(&mut ptr, &mut bytes, module.cast(), name.as_ptr()) };
    status == crate::sys::cuda::CUDA_SUCCESS
}

/// Raises the dynamic shared memory a function may use (needed above 48 KiB on NVIDIA).
pub fn set_max_dynamic_shared(function: RawHandle, bytes: u32) -> HipResult<()> {
    let (rt, api) = api()?;
    let value = c_int::try_from(bytes).unwrap_or(c_int::MAX);
    match api {
        // SAFETY: `function` is live.
        Api::Amd(h) => unsafe {
            amd_call!(
                rt,
                h,
                hipFuncSetAttribute(
                    function.cast_const(),
                    hip::hipFuncAttribute_hipFuncAttributeMaxDynamicSharedMemorySize,
                    value
                )
            )
        },
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe {
            cuda_call!(
                rt,
                cu,
                cuFuncSetAttribute(
                    function.cast(),
                    CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    value
                )
            )
        },
    }
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchDims {
    /// Blocks in x, y, z.
    pub grid: (u32, u32, u32),
    /// Threads per block in x, y, z.
    pub block: (u32, u32, u32),
    /// Dynamic shared memory per block, bytes.
    pub shared_mem_bytes: u32,
}

/// Queues `function` on `stream`.
///
/// # Safety
/// `params` holds one pointer per kernel parameter, each to a value of the parameter's exact type
/// and size; every device address among them stays allocated until the kernel has run, and the
/// kernel's accesses stay inside those allocations.
///
/// With `dependent` (NVIDIA only; ignored on AMD), the launch allows programmatic stream
/// serialization: the kernel may start before the previous kernel on the stream has finished,
/// so it must wait for it (`griddepcontrol.wait`, `RF_GRID_DEP_WAIT` in the kernel sources)
/// before it reads anything an earlier launch writes and before it writes anything.
pub unsafe fn launch(
    function: RawHandle,
    dims: LaunchDims,
    stream: RawHandle,
    params: &mut [*mut c_void],
    dependent: bool,
) -> HipResult<()> {
    let (rt, api) = api()?;
    let (g, b) = (dims.grid, dims.block);
    let shared: c_uint = dims.shared_mem_bytes;
    let params_ptr = params.as_mut_ptr();
    match api {
        Api::Nvidia(cu) if dependent && cu.cuLaunchKernelEx.is_ok() => {
            // SAFETY: an all-zero attribute is a valid bit pattern of the C struct (a union of
            // plain data); id and value are set below.
            let mut attr: CUlaunchAttribute = unsafe { core::mem::zeroed() };
            attr.id = CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
            attr.value.programmaticStreamSerializationAllowed = 1;
            let config = CUlaunchConfig {
                gridDimX: g.0,
                gridDimY: g.1,
                gridDimZ: g.2,
                blockDimX: b.0,
                blockDimY: b.1,
                blockDimZ: b.2,
                sharedMemBytes: shared,
                hStream: stream.cast(),
                attrs: &raw mut attr,
                numAttrs: 1,
            };
            // SAFETY: as for cuLaunchKernel below; `config` and `attr` live across the call, and
            // the caller promises the kernel waits for its predecessor (`dependent`).
            unsafe {
                cuda_call!(
                    rt,
                    cu,
                    cuLaunchKernelEx(
                        &raw const config,
                        function.cast(),
                        params_ptr,
                        core::ptr::null_mut()
                    )
                )
            }
        }
        // SAFETY: guaranteed by the caller; `extra` is null as the API allows.
        Api::Amd(h) => unsafe {
            amd_call!(
                rt,
                h,
                hipModuleLaunchKernel(
                    function.cast(),
                    g.0,
                    g.1,
                    g.2,
                    b.0,
                    b.1,
                    b.2,
                    shared,
                    stream.cast(),
                    params_ptr,
                    core::ptr::null_mut()
                )
            )
        },
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe {
            cuda_call!(
                rt,
                cu,
                cuLaunchKernel(
                    function.cast(),
                    g.0,
                    g.1,
                    g.2,
                    b.0,
                    b.1,
                    b.2,
                    shared,
                    stream.cast(),
                    params_ptr,
                    core::ptr::null_mut()
                )
            )
        },
    }
}
