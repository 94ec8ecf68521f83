//! Device and pinned host memory: allocation, copies, fills.

use core::ffi::c_void;

use super::{DevicePtr, RawHandle, amd_call, api, cuda_call};
use crate::error::{HipError, HipResult};
use crate::loader::Api;
use crate::sys::cuda::CUDA_ERROR_OUT_OF_MEMORY;
use crate::sys::hip;

/// (free, total) bytes of the current device.
pub fn mem_info() -> HipResult<(usize, usize)> {
    let (rt, api) = api()?;
    let (mut free, mut total) = (0usize, 0usize);
    match api {
        // SAFETY: both out-pointers are valid for the call.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipMemGetInfo(&mut free, &mut total)) }?,
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuMemGetInfo_v2(&mut free, &mut total)) }?,
    }
    Ok((free, total))
}

fn out_of_memory(err: HipError, requested: usize) -> HipError {
    match err {
        HipError::Api { code, .. }
            if code == hip::hipError_t_hipErrorOutOfMemory || code == CUDA_ERROR_OUT_OF_MEMORY =>
        {
            let free = mem_info().map(|(free, _)| free).unwrap_or(0);
            HipError::OutOfMemory { requested, free }
        }
        other => other,
    }
}

/// Allocates `bytes` on the current device. Running out is [`HipError::OutOfMemory`].
pub fn malloc(bytes: usize) -> HipResult<DevicePtr> {
    let (rt, api) = api()?;
    let result = match api {
        Api::Amd(h) => {
            let mut ptr: *mut c_void = core::ptr::null_mut();
            // SAFETY: `ptr` is a valid out-pointer.
            unsafe { amd_call!(rt, h, hipMalloc(&mut ptr, bytes)) }.map(|()| ptr as DevicePtr)
        }
        Api::Nvidia(cu) => {
            let mut ptr = 0;
            // SAFETY: `ptr` is a valid out-pointer.
            unsafe { cuda_call!(rt, cu, cuMemAlloc_v2(&mut ptr, bytes)) }.map(|()| ptr)
        }
    };
    result.map_err(|e| out_of_memory(e, bytes))
}

/// Frees memory from [`malloc`].
///
/// # Safety
/// `ptr` came from [`malloc`], is freed once, and no queued work still uses it.
pub unsafe fn free(ptr: DevicePtr) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: guaranteed by the caller.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipFree(ptr as *mut c_void)) },
        // SAFETY: guaranteed by the caller.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuMemFree_v2(ptr)) },
    }
}

/// Allocates page-locked host memory.
pub fn malloc_host(bytes: usize) -> HipResult<RawHandle> {
    let (rt, api) = api()?;
    let mut ptr: *mut c_void = core::ptr::null_mut();
    match api {
        // SAFETY: `ptr` is a valid out-pointer; flags 0 is hipHostMallocDefault.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipHostMalloc(&mut ptr, bytes, 0)) }?,
        // SAFETY: `ptr` is a valid out-pointer.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuMemAllocHost_v2(&mut ptr, bytes)) }?,
    }
    Ok(ptr)
}

/// Frees memory from [`malloc_host`].
///
/// # Safety
/// `ptr` came from [`malloc_host`], is freed once, and no queued copy still uses it.
pub unsafe fn free_host(ptr: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: guaranteed by the caller.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipHostFree(ptr)) },
        // SAFETY: guaranteed by the caller.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuMemFreeHost(ptr)) },
    }
}

/// Copies `bytes` from host to device; returns when done. With a stream, queues the copy instead.
///
/// # Safety
/// `dst` holds `bytes` device bytes, `src` `bytes` readable host bytes; with a stream, `src`
/// stays valid and unchanged until the stream reaches the copy.
pub unsafe fn htod(
    dst: DevicePtr,
    src: *const c_void,
    bytes: usize,
    stream: Option<RawHandle>,
) -> HipResult<()> {
    let (rt, api) = api()?;
    match (api, stream) {
        // SAFETY: guaranteed by the caller.
        (Api::Amd(h), None) => unsafe {
            amd_call!(
                rt,
                h,
                hipMemcpy(
                    dst as *mut c_void,
                    src,
                    bytes,
                    hip::hipMemcpyKind_hipMemcpyHostToDevice
                )
            )
        },
        // SAFETY: guaranteed by the caller.
        (Api::Amd(h), Some(s)) => unsafe {
            amd_call!(
                rt,
                h,
                hipMemcpyAsync(
                    dst as *mut c_void,
                    src,
                    bytes,
                    hip::hipMemcpyKind_hipMemcpyHostToDevice,
                    s.cast()
                )
            )
        },
        // SAFETY: guaranteed by the caller.
        (Api::Nvidia(cu), None) => unsafe { cuda_call!(rt, cu, cuMemcpyHtoD_v2(dst, src, bytes)) },
        // SAFETY: guaranteed by the caller.
        (Api::Nvidia(cu), Some(s)) => unsafe {
            cuda_call!(rt, cu, cuMemcpyHtoDAsync_v2(dst, src, bytes, s.cast()))
        },
    }
}

/// Copies `bytes` from device to host; returns when done. With a stream, queues the copy instead.
///
/// # Safety
/// `src` holds `bytes` device bytes, `dst` `bytes` writable host bytes; with a stream, `dst`
/// stays valid and unread until the stream reaches the copy.
pub unsafe fn dtoh(
    dst: *mut c_void,
    src: DevicePtr,
    bytes: usize,
    stream: Option<RawHandle>,
) -> HipResult<()> {
    let (rt, api) = api()?;
    match (api, stream) {
        // SAFETY: guaranteed by the caller.
        (Api::Amd(h), None) => unsafe {
            amd_call!(
                rt,
                h,
                hipMemcpy(
                    dst,
                    src as *const c_void,
                    bytes,
                    hip::hipMemcpyKind_hipMemcpyDeviceToHost
                )
            )
        },
        // SAFETY: guaranteed by the caller.
        (Api::Amd(h), Some(s)) => unsafe {
            amd_call!(
                rt,
                h,
                hipMemcpyAsync(
                    dst,
                    src as *const c_void,
                    bytes,
                    hip::hipMemcpyKind_hipMemcpyDeviceToHost,
                    s.cast()
                )
            )
        },
        // SAFETY: guaranteed by the caller.
        (Api::Nvidia(cu), None) => unsafe { cuda_call!(rt, cu, cuMemcpyDtoH_v2(dst, src, bytes)) },
        // SAFETY: guaranteed by the caller.
        (Api::Nvidia(cu), Some(s)) => unsafe {
            cuda_call!(rt, cu, cuMemcpyDtoHAsync_v2(dst, src, bytes, s.cast()))
        },
    }
}

/// Copies `bytes` between device buffers (synchronous for the host without a stream).
///
/// # Safety
/// Both ranges hold `bytes` device bytes and stay allocated until the copy ran.
pub unsafe fn dtod(
    dst: DevicePtr,
    src: DevicePtr,
    bytes: usize,
    stream: Option<RawHandle>,
) -> HipResult<()> {
    let (rt, api) = api()?;
    match (api, stream) {
        // SAFETY: guaranteed by the caller.
        (Api::Amd(h), None) => unsafe {
            amd_call!(
                rt,
                h,
                hipMemcpy(
                    dst as *mut c_void,
                    src as *const c_void,
                    bytes,
                    hip::hipMemcpyKind_hipMemcpyDeviceToDevice
                )
            )
        },
        // SAFETY: guaranteed by the caller.
        (Api::Amd(h), Some(s)) => unsafe {
            amd_call!(
                rt,
                h,
                hipMemcpyAsync(
                    dst as *mut c_void,
                    src as *const c_void,
                    bytes,
                    hip::hipMemcpyKind_hipMemcpyDeviceToDevice,
                    s.cast()
                )
            )
        },
        // SAFETY: guaranteed by the caller.
        (Api::Nvidia(cu), None) => unsafe { cuda_call!(rt, cu, cuMemcpyDtoD_v2(dst, src, bytes)) },
        // SAFETY: guaranteed by the caller.
        (Api::Nvidia(cu), Some(s)) => unsafe {
            cuda_call!(rt, cu, cuMemcpyDtoDAsync_v2(dst, src, bytes, s.cast()))
        },
    }
}

/// Sets `bytes` device bytes to `value`.
///
/// # Safety
/// `dst` holds `bytes` device bytes that stay allocated until the fill ran.
pub unsafe fn memset_d8(
    dst: DevicePtr,
    value: u8,
    bytes: usize,
    stream: Option<RawHandle>,
) -> HipResult<()> {
    let (rt, api) = api()?;
    match (api, stream) {
        // SAFETY: guaranteed by the caller.
        (Api::Amd(h), None) => unsafe {
            amd_call!(
                rt,
                h,
                hipMemset(dst as *mut c_void, i32::from(value), bytes)
            )
        },
        // SAFETY: guaranteed by the caller.
        (Api::Amd(h), Some(s)) => unsafe {
            amd_call!(
                rt,
                h,
                hipMemsetAsync(dst as *mut c_void, i32::from(value), bytes, s.cast())
            )
        },
        // SAFETY: guaranteed by the caller.
        (Api::Nvidia(cu), None) => unsafe { cuda_call!(rt, cu, cuMemsetD8_v2(dst, value, bytes)) },
        // SAFETY: guaranteed by the caller.
        (Api::Nvidia(cu), Some(s)) => unsafe {
            cuda_call!(rt, cu, cuMemsetD8Async(dst, value, bytes, s.cast()))
        },
    }
}
