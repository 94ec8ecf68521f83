//! Graphs: a captured stream's work, instantiated once and replayed many times (the decode step).

use std::sync::Arc;

use crate::backend::HipBackend;
use crate::error::HipResult;
use crate::result::{self, RawHandle};
use crate::stream::HipStream;

/// A captured graph (`hipGraph_t` / `CUgraph`).
#[derive(Debug)]
pub struct HipGraph {
    raw: RawHandle,
    backend: Arc<HipBackend>,
}

/// An instantiated, replayable graph (`hipGraphExec_t` / `CUgraphExec`).
#[derive(Debug)]
pub struct HipGraphExec {
    raw: RawHandle,
    backend: Arc<HipBackend>,
}

// SAFETY: graph handles may be used from any thread; the runtime serialises their use.
unsafe impl Send for HipGraph {}
// SAFETY: as above.
unsafe impl Sync for HipGraph {}
// SAFETY: as above.
unsafe impl Send for HipGraphExec {}
// SAFETY: as above.
unsafe impl Sync for HipGraphExec {}

impl HipGraph {
    pub(crate) fn from_raw(raw: RawHandle, backend: &Arc<HipBackend>) -> Self {
        HipGraph {
            raw,
            backend: Arc::clone(backend),
        }
    }

    /// Instantiates the graph for replay. The device buffers the captured work uses must outlive
    /// every replay.
    pub fn instantiate(&self) -> HipResult<HipGraphExec> {
        self.backend.bind()?;
        Ok(HipGraphExec {
            raw: result::graph::instantiate(self.raw)?,
            backend: Arc::clone(&self.backend),
        })
    }
}

impl HipGraphExec {
    /// Queues one replay on `stream`.
    pub fn launch(&self, stream: &HipStream) -> HipResult<()> {
        self.backend.bind()?;
        result::graph::launch(self.raw, stream.raw())
    }
}

impl Drop for HipGraph {
    fn drop(&mut self) {
        if self.backend.bind().is_ok() {
            // SAFETY: from end_capture, destroyed once here.
            let _ = unsafe { result::graph::destroy(self.raw) };
        }
    }
}

impl Drop for HipGraphExec {
    fn drop(&mut self) {
        if self.backend.bind().is_ok() {
            // Replays still queued must finish before the executable graph goes away.
            let _ = self.backend.synchronize();
            // SAFETY: from instantiate, destroyed once here, nothing queued any more.
            let _ = unsafe { result::graph::destroy_exec(self.raw) };
        }
    }
}
