//! Making a device current on the calling thread.
//!
//! HIP keeps a current device per thread (`hipSetDevice`); the CUDA driver keeps a current context
//! per thread (`cuCtxSetCurrent`). rocmforge-hip uses the device's primary context on NVIDIA, which
//! is what HIP's NVIDIA platform does too.

use core::ffi::c_int;

use super::{RawHandle, amd_call, api, cuda_call};
use crate::error::HipResult;
use crate::loader::Api;

/// Retains the primary context of `dev` (NVIDIA); on AMD there is none and this returns null.
pub fn retain_primary(dev: c_int) -> HipResult<RawHandle> {
    let (rt, api) = api()?;
    match api {
        Api::Amd(_) => Ok(core::ptr::null_mut()),
        Api::Nvidia(cu) => {
            let mut ctx = core::ptr::null_mut();
            // SAFETY: `ctx` is a valid out-pointer and `dev` a device handle from `device::get`.
            unsafe { cuda_call!(rt, cu, cuDevicePrimaryCtxRetain(&mut ctx, dev)) }?;
            Ok(ctx.cast())
        }
    }
}

/// Releases what [`retain_primary`] retained.
pub fn release_primary(dev: c_int) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        Api::Amd(_) => Ok(()),
        // SAFETY: called once per successful retain, by the owner of that retain.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuDevicePrimaryCtxRelease_v2(dev)) },
    }
}

/// Makes `dev` (AMD) or `ctx` (NVIDIA) current on the calling thread.
pub fn set_current(dev: c_int, ctx: RawHandle) -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: `dev` is a valid device ordinal.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipSetDevice(dev)) },
        // SAFETY: `ctx` is a retained primary context, alive while its owner lives.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuCtxSetCurrent(ctx.cast())) },
    }
}

/// Waits for all work on the current device.
pub fn synchronize() -> HipResult<()> {
    let (rt, api) = api()?;
    match api {
        // SAFETY: no arguments; waits for the current device.
        Api::Amd(h) => unsafe { amd_call!(rt, h, hipDeviceSynchronize()) },
        // SAFETY: as above, for the current context.
        Api::Nvidia(cu) => unsafe { cuda_call!(rt, cu, cuCtxSynchronize()) },
    }
}
