//! Events: markers in a stream, for ordering and timing.

use super::{RawHandle, amd_call, api, cuda_call};
use crate::error::HipResult;
use crate::loader::Api;

/// Creates an event that records timing.
pub fn create() -> HipResult<RawHandle> {
    let (rt, api) = api()?;
    let mut event = core::ptr::null_mut();
    match api {
        // SAFETY: `event` is a valid out-pointer.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipEventCreate(&mut event)) }?,
        Api::Nvidia(cu) => {
            // SAFETY: `event` is a valid out-pointer; flags 0 is CU_EVENT_DEFAULT (timing on).
            unsafe { cuda_call!(rt, cu, cuEventCreate((&raw mut event).cast(), 0)) }?
        }
    }
    Ok(event.cast())
}

/// Destroys an event from [`create`].
///
/// # Safety
/// `event` came from [`create`] and is destroyed once.
pub unsafe fn destroy(event: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: guaranteed by the caller.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipEventDestroy(event.cast())) },
        // SAFETY: guaranteed by the caller.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuEventDestroy_v2(event.cast())) },
    }
}

/// Records `event` at the current end of `stream`.
pub fn record(event: RawHandle, stream: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: both handles are live.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipEventRecord(event.cast(), stream.cast())) },
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe {
            cuda_call!(rt, cu, cuEventRecord(event.cast(), stream.cast()))
        },
    }
}

/// Waits until `event` has happened.
pub fn synchronize(event: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: `event` is live.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipEventSynchronize(event.cast())) },
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuEventSynchronize(event.cast())) },
    }
}

/// Milliseconds between two recorded events.
pub fn elapsed_ms(start: RawHandle, end: RawHandle) -> HipResult<f32> {
    let (rt, api) = api()?;
    let mut ms = 0f32;
    match api {
        // SAFETY: both events are live; `ms` is a valid out-pointer.
        Api::Amd(h) => unsafe {
            amd_call!(
                rt,
                h,
                hipEventElapsedTime(&mut ms, start.cast(), end.cast())
            )
        }?,
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe {
            cuda_call!(
                rt,
                cu,
                cuEventElapsedTime(&mut ms, start.cast(), end.cast())
            )
        }?,
    }
    Ok(ms)
}
