//! `HipBackend`: one device and its context, usable from any thread.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::{Arc, Mutex, Weak};

use crate::buffer::DeviceBuffer;
use crate::device_info::DeviceInfo;
use crate::error::{HipError, HipResult, Platform};
use crate::event::HipEvent;
use crate::module::HipModule;
use crate::pinned::PinnedHostBuffer;
use crate::repr::DeviceRepr;
use crate::result::{self, RawHandle};
use crate::stream::HipStream;

thread_local! {
    /// What this thread last made current: AMD device ordinal + 1, or the NVIDIA context address.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// One GPU and its context (the primary context on NVIDIA). `Send + Sync`: every method makes the
/// device current on the calling thread first, so one `Arc<HipBackend>` serves many threads.
#[derive(Debug)]
pub struct HipBackend {
    device: c_int,
    context: RawHandle,
    info: DeviceInfo,
    modules: Mutex<HashMap<String, Weak<HipModule>>>,
}

// SAFETY: the context handle is a process-wide runtime object that both runtimes allow to be made
// current on any thread; the rest of the struct is Send + Sync.
unsafe impl Send for HipBackend {}
// SAFETY: as above; shared access only reads the handle.
unsafe impl Sync for HipBackend {}

impl HipBackend {
    /// Opens device `device_index` of the platform chosen by `ROCMFORGE_PLATFORM`.
    pub fn new(device_index: usize) -> HipResult<Arc<HipBackend>> {
        let device = result::device::get(device_index)?;
        let context = result::context::retain_primary(device)?;
        let key = current_key(device, context);
        result::context::set_current(device, context)?;
        CURRENT.with(|c| c.set(key));
        let info = match DeviceInfo::query(device_index, device) {
            Ok(info) => info,
            Err(e) => {
                let _ = result::context::release_primary(device);
                return Err(e);
            }
        };
        Ok(Arc::new(HipBackend {
            device,
            context,
            info,
            modules: Mutex::new(HashMap::new()),
        }))
    }

    /// Makes this device current on the calling thread (cheap when it already is).
    pub fn bind(&self) -> HipResult<()> {
        let key = current_key(self.device, self.context);
        if CURRENT.with(Cell::get) == key {
            return Ok(());
        }
        result::context::set_current(self.device, self.context)?;
        CURRENT.with(|c| c.set(key));
        Ok(())
    }

    /// The platform of this device.
    pub fn platform(&self) -> Platform {
        self.info.platform
    }

    /// Index of the device among the platform's devices.
    pub fn device_index(&self) -> usize {
        self.info.index
    }

    /// Attributes read when the backend was opened (`free_memory` as of then).
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Architecture the kernels are built for: `gfx942`, `sm_90`, ...
    pub fn arch(&self) -> &str {
        &self.info.arch
    }

    /// Threads per wavefront / warp (64 on CDNA, 32 on RDNA and NVIDIA).
    pub fn warp_size(&self) -> u32 {
        self.info.warp_size
    }

    /// `(free, total)` device memory in bytes, now.
    pub fn mem_info(&self) -> HipResult<(usize, usize)> {
        self.bind()?;
        result::memory::mem_info()
    }

    /// Waits until all work queued on this device, on every stream, has run.
    pub fn synchronize(&self) -> HipResult<()> {
        self.bind()?;
        result::context::synchronize()
    }

    /// Allocates `len` elements; their contents are unspecified until written.
    pub fn alloc<T: DeviceRepr>(self: &Arc<Self>, len: usize) -> HipResult<DeviceBuffer<T>> {
        DeviceBuffer::alloc(self, len)
    }

    /// Allocates `len` elements set to all-zero bytes.
    pub fn alloc_zeros<T: DeviceRepr>(self: &Arc<Self>, len: usize) -> HipResult<DeviceBuffer<T>> {
        let mut buf = DeviceBuffer::alloc(self, len)?;
        buf.memset_zero()?;
        Ok(buf)
    }

    /// Copies a host slice into a new device buffer (synchronous).
    pub fn htod<T: DeviceRepr>(self: &Arc<Self>, data: &[T]) -> HipResult<DeviceBuffer<T>> {
        let mut buf = DeviceBuffer::alloc(self, data.len())?;
        buf.copy_from_host(data)?;
        Ok(buf)
    }

    /// Copies a device buffer into a new `Vec` (synchronous; waits for the default stream).
    pub fn dtoh<T: DeviceRepr>(&self, buf: &DeviceBuffer<T>) -> HipResult<Vec<T>> {
        buf.to_vec()
    }

    /// Allocates page-locked host memory, zeroed, for fast and asynchronous copies.
    pub fn alloc_pinned<T: DeviceRepr>(
        self: &Arc<Self>,
        len: usize,
    ) -> HipResult<PinnedHostBuffer<T>> {
        PinnedHostBuffer::alloc(self, len)
    }

    /// Creates a stream.
    pub fn new_stream(self: &Arc<Self>) -> HipResult<HipStream> {
        HipStream::create(self)
    }

    /// The default (null) stream of this device. It cannot be captured into a graph.
    pub fn default_stream(self: &Arc<Self>) -> HipStream {
        HipStream::default_for(self)
    }

    /// Creates a timing event.
    pub fn new_event(self: &Arc<Self>) -> HipResult<HipEvent> {
        HipEvent::create(self)
    }

    /// Loads a module from image bytes (AMD code object; NVIDIA cubin, fatbin or PTX text).
    pub fn load_module(self: &Arc<Self>, image: &[u8]) -> HipResult<Arc<HipModule>> {
        HipModule::load(self, image, "<memory>")
    }

    /// Loads (once while any user holds it, then from a cache) the compiled kernel family `name`, e.g. `test_kernels`, for
    /// this device's architecture; see [`crate::kernel_images`] for where it is looked for.
    pub fn load_kernels(self: &Arc<Self>, name: &str) -> HipResult<Arc<HipModule>> {
        let mut cache = self
            .modules
            .lock()
            .map_err(|_| HipError::InvalidUse("module cache poisoned".into()))?;
        if let Some(module) = cache.get(name).and_then(Weak::upgrade) {
            return Ok(module);
        }
        let image = crate::kernel_images::find(self.platform(), self.arch(), name)?;
        let origin = image.origin.to_string();
        let module = HipModule::load(self, &image.bytes, &format!("{name} from {origin}"))?;
        tracing::info!(
            family = name,
            arch = self.arch(),
            source = %origin,
            "loaded GPU kernel image"
        );
        cache.insert(name.to_string(), Arc::downgrade(&module));
        Ok(module)
    }
}

fn current_key(device: c_int, context: RawHandle) -> usize {
    if context.is_null() {
        usize::try_from(device).unwrap_or(0) + 1
    } else {
        context as usize
    }
}

impl Drop for HipBackend {
    fn drop(&mut self) {
        let _ = result::context::release_primary(self.device);
        CURRENT.with(|c| {
            if c.get() == current_key(self.device, self.context) {
                c.set(0);
            }
        });
    }
}
