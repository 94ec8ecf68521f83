//! Graphs: capture the work queued on a stream once, replay it many times.

use super::{RawHandle, amd_call, api, cuda_call};
use crate::error::HipResult;
use crate::loader::Api;
use crate::sys::cuda::CUstreamCaptureMode;
use crate::sys::hip;

/// Starts capturing `stream` (thread-local mode: other threads' calls are not affected).
pub fn begin_capture(stream: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: `stream` is a live, non-default stream.
        Api::Amd(h) => unsafe {
            amd_call!(
                rt,
                h,
                hipStreamBeginCapture(
                    stream.cast(),
                    hip::hipStreamCaptureMode_hipStreamCaptureModeThreadLocal
                )
            )
        },
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe {
            cuda_call!(
                rt,
                cu,
                cuStreamBeginCapture_v2(
                    stream.cast(),
                    CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
                )
            )
        },
    }
}

/// Ends the capture and returns the graph.
pub fn end_capture(stream: RawHandle) -> HipResult<RawHandle> {
    let (rt, api) = api()?;
    let mut graph = core::ptr::null_mut();
    match api {
        // SAFETY: `stream` is capturing; `graph` is a valid out-pointer.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipStreamEndCapture(stream.cast(), &mut graph)) }?,
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe {
            cuda_call!(
                rt,
                cu,
                cuStreamEndCapture(stream.cast(), (&raw mut graph).cast())
            )
        }?,
    }
    Ok(graph.cast())
}

/// Turns a graph into an executable graph.
pub fn instantiate(graph: RawHandle) -> HipResult<RawHandle> {
    let (rt, api) = api()?;
    let mut exec = core::ptr::null_mut();
    match api {
        // SAFETY: `graph` is live; error-node and log outputs are optional (null, 0).
        Api::Amd(h) => unsafe {
            amd_call!(
                rt,
                h,
                hipGraphInstantiate(
                    &mut exec,
                    graph.cast(),
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                    0
                )
            )
        }?,
        // SAFETY: `graph` is live; flags 0.
        Api::Nvidia(cu) => unsafe {
            cuda_call!(
                rt,
                cu,
                cuGraphInstantiateWithFlags((&raw mut exec).cast(), graph.cast(), 0)
            )
        }?,
    }
    Ok(exec.cast())
}

/// Queues one replay of `exec` on `stream`.
pub fn launch(exec: RawHandle, stream: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: both handles are live.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipGraphLaunch(exec.cast(), stream.cast())) },
        // SAFETY: as above.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuGraphLaunch(exec.cast(), stream.cast())) },
    }
}

/// Destroys a graph.
///
/// # Safety
/// `graph` came from [`end_capture`] and is destroyed once.
pub unsafe fn destroy(graph: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: guaranteed by the caller.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipGraphDestroy(graph.cast())) },
        // SAFETY: guaranteed by the caller.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuGraphDestroy(graph.cast())) },
    }
}

/// Destroys an executable graph.
///
/// # Safety
/// `exec` came from [`instantiate`], is destroyed once, and no replay of it is still queued.
pub unsafe fn destroy_exec(exec: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: guaranteed by the caller.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipGraphExecDestroy(exec.cast())) },
        // SAFETY: guaranteed by the caller.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuGraphExecDestroy(exec.cast())) },
    }
}
