//! `HipEvent`: a marker in a stream, for ordering streams and timing device work.

use std::sync::Arc;

use crate::backend::HipBackend;
use crate::error::HipResult;
use crate::result::{self, RawHandle};
use crate::stream::HipStream;

/// A timing event (`hipEvent_t` / `CUevent`).
#[derive(Debug)]
pub struct HipEvent {
    raw: RawHandle,
    backend: Arc<HipBackend>,
}

// SAFETY: event handles may be used from any thread by both runtimes.
unsafe impl Send for HipEvent {}
// SAFETY: as above.
unsafe impl Sync for HipEvent {}

impl HipEvent {
    pub(crate) fn create(backend: &Arc<HipBackend>) -> HipResult<Self> {
        backend.bind()?;
        Ok(HipEvent {
            raw: result::event::create()?,
            backend: Arc::clone(backend),
        })
    }

    /// Records the event at the current end of `stream`.
    pub fn record(&self, stream: &HipStream) -> HipResult<()> {
        self.backend.bind()?;
        result::event::record(self.raw, stream.raw())
    }

    /// Waits until the work recorded before the event has run.
    pub fn synchronize(&self) -> HipResult<()> {
        self.backend.bind()?;
        result::event::synchronize(self.raw)
    }

    /// Milliseconds from this event to `end` (both recorded; waits for `end`).
    pub fn elapsed_ms(&self, end: &HipEvent) -> HipResult<f32> {
        end.synchronize()?;
        result::event::elapsed_ms(self.raw, end.raw)
    }

    pub(crate) fn raw(&self) -> RawHandle {
        self.raw
    }
}

impl Drop for HipEvent {
    fn drop(&mut self) {
        if self.backend.bind().is_ok() {
            // SAFETY: created by event::create, destroyed once here.
            let _ = unsafe { result::event::destroy(self.raw) };
        }
    }
}
