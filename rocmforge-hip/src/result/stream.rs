//! Streams: ordered queues of device work.

use super::{RawHandle, amd_call, api, cuda_call};
use crate::error::HipResult;
use crate::loader::Api;

/// Creates a stream on the current device. It orders itself after the default stream's work, like
/// `hipStreamDefault` / `CU_STREAM_DEFAULT`, so synchronous copies see its results once it is
/// synchronised; two such streams still run side by side.
pub fn create() -> HipResult<RawHandle> {
    let (rt, api) = api()?;
    let mut stream = core::ptr::null_mut();
    match api {
        // SAFETY: `stream` is a valid out-pointer; flags 0 is hipStreamDefault.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipStreamCreateWithFlags(&mut stream, 0)) }?,
        Api::Nvidia(cu) => {
            // SAFETY: as above; flags 0 is CU_STREAM_DEFAULT.
            unsafe { cuda_call!(rt, cu, cuStreamCreate((&raw mut stream).cast(), 0)) }?
        }
    }
    Ok(stream.cast())
}

/// Destroys a stream from [`create`] (queued work still completes).
///
/// # Safety
/// `stream` came from [`create`] and is destroyed once.
pub unsafe fn destroy(stream: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: guaranteed by the caller.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipStreamDestroy(stream.cast())) },
        // SAFETY: guaranteed by the caller.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuStreamDestroy_v2(stream.cast())) },
    }
}

/// Waits until all work queued on `stream` has run.
pub fn synchronize(stream: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: `stream` is a live stream (or null, the default stream).
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipStreamSynchronize(stream.cast())) },
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuStreamSynchronize(stream.cast())) },
    }
}

/// Makes later work on `stream` wait for `event`.
pub fn wait_event(stream: RawHandle, event: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: both handles are live; flags must be 0.
        Api::Amd(h) => unsafe {
            amd_call!(rt, h, hipStreamWaitEvent(stream.cast(), event.cast(), 0))
        },
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe {
            cuda_call!(rt, cu, cuStreamWaitEvent(stream.cast(), event.cast(), 0))
        },
    }
}
