//! `HipStream`: an ordered queue of device work.

use std::sync::Arc;

use crate::backend::HipBackend;
use crate::buffer::DeviceBuffer;
use crate::error::{HipError, HipResult};
use crate::event::HipEvent;
use crate::graph::HipGraph;
use crate::launch::LaunchArgs;
use crate::module::HipFunction;
use crate::pinned::PinnedHostBuffer;
use crate::repr::DeviceRepr;
use crate::result::{self, RawHandle};

/// A stream (`hipStream_t` / `CUstream`), destroyed on drop (queued work still completes).
#[derive(Debug)]
pub struct HipStream {
    raw: RawHandle,
    owned: bool,
    backend: Arc<HipBackend>,
}

// SAFETY: stream handles may be used from any thread by both runtimes.
unsafe impl Send for HipStream {}
// SAFETY: as above; the runtimes serialise concurrent submissions to one stream.
unsafe impl Sync for HipStream {}

fn same_len(op: &'static str, a: usize, b: usize) -> HipResult<()> {
    if a == b {
        Ok(())
    } else {
        Err(HipError::LengthMismatch {
            op,
            expected: a,
            actual: b,
        })
    }
}

/// Fails unless `n` elements fit both a source of `src` and a destination of `dst` elements.
fn prefix_fits(op: &'static str, n: usize, src: usize, dst: usize) -> HipResult<()> {
    if n <= src && n <= dst {
        Ok(())
    } else {
        Err(HipError::LengthMismatch {
            op,
            expected: n,
            actual: src.min(dst),
        })
    }
}

impl HipStream {
    pub(crate) fn create(backend: &Arc<HipBackend>) -> HipResult<Self> {
        backend.bind()?;
        Ok(HipStream {
            raw: result::stream::create()?,
            owned: true,
            backend: Arc::clone(backend),
        })
    }

    pub(crate) fn default_for(backend: &Arc<HipBackend>) -> Self {
        HipStream {
            raw: std::ptr::null_mut(),
            owned: false,
            backend: Arc::clone(backend),
        }
    }

    /// The raw handle (null for the default stream).
    pub fn raw(&self) -> RawHandle {
        self.raw
    }

    /// The backend the stream belongs to.
    pub fn backend(&self) -> &Arc<HipBackend> {
        &self.backend
    }

    /// Waits until everything queued so far has run.
    pub fn synchronize(&self) -> HipResult<()> {
        self.backend.bind()?;
        result::stream::synchronize(self.raw)
    }

    /// Records `event` here (same as `event.record(self)`).
    pub fn record(&self, event: &HipEvent) -> HipResult<()> {
        event.record(self)
    }

    /// Makes later work on this stream wait until `event` has happened.
    pub fn wait_event(&self, event: &HipEvent) -> HipResult<()> {
        self.backend.bind()?;
        result::stream::wait_event(self.raw, event.raw())
    }

    /// Queues a host-to-device copy.
    ///
    /// # Safety
    /// `src` must not be dropped or written, and `dst` not dropped, until the stream has reached
    /// the copy (synchronise the stream or an event recorded after it).
    pub unsafe fn memcpy_htod_async<T: DeviceRepr>(
        &self,
        src: &PinnedHostBuffer<T>,
        dst: &mut DeviceBuffer<T>,
    ) -> HipResult<()> {
        same_len("memcpy_htod_async", dst.len(), src.len())?;
        self.backend.bind()?;
        // SAFETY: lengths checked; lifetimes until completion are the caller's promise.
        unsafe {
            result::memory::htod(
                dst.device_ptr().0,
                src.as_raw().cast(),
                dst.num_bytes(),
                Some(self.raw),
            )
        }
    }

    /// Queues a host-to-device copy of the first `n` elements of `src` over the first `n` of
    /// `dst`.
    ///
    /// # Safety
    /// As [`HipStream::memcpy_htod_async`]: `src` must not be dropped or written, and `dst` not
    /// dropped, until the stream has reached the copy.
    pub unsafe fn memcpy_htod_prefix_async<T: DeviceRepr>(
        &self,
        src: &PinnedHostBuffer<T>,
        dst: &mut DeviceBuffer<T>,
        n: usize,
    ) -> HipResult<()> {
        prefix_fits("memcpy_htod_prefix_async", n, src.len(), dst.len())?;
        if n == 0 {
            return Ok(());
        }
        self.backend.bind()?;
        // SAFETY: n elements fit both buffers (checked); lifetimes until completion are the
        // caller's promise.
        unsafe {
            result::memory::htod(
                dst.device_ptr().0,
                src.as_raw().cast(),
                n * std::mem::size_of::<T>(),
                Some(self.raw),
            )
        }
    }

    /// Queues a copy of the first `n` elements of `src` over the first `n` of `dst` (device to
    /// device, both of this stream's device). Safe: dropping either buffer waits for the work
    /// queued before it.
    pub fn memcpy_dtod_prefix<T: DeviceRepr>(
        &self,
        src: &DeviceBuffer<T>,
        dst: &mut DeviceBuffer<T>,
        n: usize,
    ) -> HipResult<()> {
        prefix_fits("memcpy_dtod_prefix", n, src.len(), dst.len())?;
        if n == 0 {
            return Ok(());
        }
        self.backend.bind()?;
        let bytes = n * std::mem::size_of::<T>();
        // SAFETY: n elements fit both allocations (checked); they outlive the copy because
        // dropping a DeviceBuffer waits for the work queued before it.
        unsafe {
            result::memory::dtod(
                dst.device_ptr().0,
                src.device_ptr().0,
                bytes,
                Some(self.raw),
            )
        }
    }

    /// Queues a copy of `n` elements of `src` from element `src_at` over those of `dst` from
    /// element `dst_at` (device to device, both of this stream's device). Safe: both ranges are
    /// checked to lie inside their buffers, and dropping either buffer waits for the work queued
    /// before it. Within one buffer, see [`HipStream::memcpy_dtod_within`].
    pub fn memcpy_dtod_range<T: DeviceRepr>(
        &self,
        src: &DeviceBuffer<T>,
        src_at: usize,
        dst: &mut DeviceBuffer<T>,
        dst_at: usize,
        n: usize,
    ) -> HipResult<()> {
        let fits = |at: usize, len: usize| at.checked_add(n).is_some_and(|end| end <= len);
        if !fits(src_at, src.len()) || !fits(dst_at, dst.len()) {
            return Err(HipError::LengthMismatch {
                op: "memcpy_dtod_range",
                expected: n,
                actual: src
                    .len()
                    .saturating_sub(src_at)
                    .min(dst.len().saturating_sub(dst_at)),
            });
        }
        if n == 0 {
            return Ok(());
        }
        self.backend.bind()?;
        let size = std::mem::size_of::<T>();
        // SAFETY: both ranges lie inside their allocations (checked above), so the offsets stay
        // inside them; the allocations outlive the copy because dropping a DeviceBuffer waits
        // for the work queued before it.
        unsafe {
            result::memory::dtod(
                dst.device_ptr().0 + (dst_at * size) as u64,
                src.device_ptr().0 + (src_at * size) as u64,
                n * size,
                Some(self.raw),
            )
        }
    }

    /// Queues a copy of `n` elements of `buf` from element `src_at` over those from `dst_at`
    /// (ranges inside the buffer that do not overlap, both checked).
    pub fn memcpy_dtod_within<T: DeviceRepr>(
        &self,
        buf: &mut DeviceBuffer<T>,
        src_at: usize,
        dst_at: usize,
        n: usize,
    ) -> HipResult<()> {
        let end = |at: usize| at.checked_add(n).filter(|&e| e <= buf.len());
        let (Some(src_end), Some(dst_end)) = (end(src_at), end(dst_at)) else {
            return Err(HipError::LengthMismatch {
                op: "memcpy_dtod_within",
                expected: n,
                actual: buf.len().saturating_sub(src_at.max(dst_at)),
            });
        };
        if n == 0 {
            return Ok(());
        }
        if src_at < dst_end && dst_at < src_end {
            return Err(HipError::LengthMismatch {
                op: "memcpy_dtod_within (overlapping ranges)",
                expected: n,
                actual: src_at.abs_diff(dst_at),
            });
        }
        self.backend.bind()?;
        let size = std::mem::size_of::<T>();
        let base = buf.device_ptr().0;
        // SAFETY: both ranges lie inside the allocation and do not overlap (checked above); the
        // allocation outlives the copy because dropping a DeviceBuffer waits for queued work.
        unsafe {
            result::memory::dtod(
                base + (dst_at * size) as u64,
                base + (src_at * size) as u64,
                n * size,
                Some(self.raw),
            )
        }
    }

    /// Queues a device-to-host copy.
    ///
    /// # Safety
    /// `dst` must not be dropped, read or written until the stream has reached the copy.
    pub unsafe fn memcpy_dtoh_async<T: DeviceRepr>(
        &self,
        src: &DeviceBuffer<T>,
        dst: &mut PinnedHostBuffer<T>,
    ) -> HipResult<()> {
        same_len("memcpy_dtoh_async", src.len(), dst.len())?;
        self.backend.bind()?;
        // SAFETY: lengths checked; lifetimes until completion are the caller's promise.
        unsafe {
            result::memory::dtoh(
                dst.as_raw_mut().cast(),
                src.device_ptr().0,
                src.num_bytes(),
                Some(self.raw),
            )
        }
    }

    /// Queues a device-to-device copy of the whole buffer.
    pub fn memcpy_dtod_async<T: DeviceRepr>(
        &self,
        src: &DeviceBuffer<T>,
        dst: &mut DeviceBuffer<T>,
    ) -> HipResult<()> {
        same_len("memcpy_dtod_async", dst.len(), src.len())?;
        if src.is_empty() {
            return Ok(());
        }
        self.backend.bind()?;
        // SAFETY: both allocations hold num_bytes bytes; freeing either waits for queued work.
        unsafe {
            result::memory::dtod(
                dst.device_ptr().0,
                src.device_ptr().0,
                src.num_bytes(),
                Some(self.raw),
            )
        }
    }

    /// Queues setting every byte of `dst` to `value`.
    pub fn memset_async<T: DeviceRepr>(
        &self,
        dst: &mut DeviceBuffer<T>,
        value: u8,
    ) -> HipResult<()> {
        if dst.is_empty() {
            return Ok(());
        }
        self.backend.bind()?;
        // SAFETY: the allocation holds num_bytes bytes; freeing it waits for queued work.
        unsafe {
            result::memory::memset_d8(dst.device_ptr().0, value, dst.num_bytes(), Some(self.raw))
        }
    }

    /// Starts building a launch of `function` on this stream.
    pub fn launch_builder<'a>(&'a self, function: &'a HipFunction) -> LaunchArgs<'a> {
        LaunchArgs::new(self, function)
    }

    /// Starts capturing: work queued on this stream (by this thread) is recorded, not run, until
    /// [`HipStream::end_capture`].
    pub fn begin_capture(&self) -> HipResult<()> {
        if !self.owned {
            return Err(HipError::InvalidUse(
                "the default stream cannot be captured; use backend.new_stream()".into(),
            ));
        }
        self.backend.bind()?;
        result::graph::begin_capture(self.raw)
    }

    /// Ends the capture and returns what was recorded.
    pub fn end_capture(&self) -> HipResult<HipGraph> {
        self.backend.bind()?;
        let raw = result::graph::end_capture(self.raw)?;
        Ok(HipGraph::from_raw(raw, &self.backend))
    }
}

impl Drop for HipStream {
    fn drop(&mut self) {
        if self.owned && self.backend.bind().is_ok() {
            // SAFETY: created by stream::create, destroyed once here.
            let _ = unsafe { result::stream::destroy(self.raw) };
        }
    }
}
