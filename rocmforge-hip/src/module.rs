//! `HipModule` (a loaded code object) and `HipFunction` (one kernel in it).

use std::ffi::CString;
use std::sync::Arc;

use crate::backend::HipBackend;
use crate::error::{HipError, HipResult, Platform};
use crate::result::{self, RawHandle};

/// A loaded module (`hipModule_t` / `CUmodule`), unloaded when the last handle to it goes.
#[derive(Debug)]
pub struct HipModule {
    raw: RawHandle,
    source: String,
    backend: Arc<HipBackend>,
    /// The image's kernels wait for their predecessor where they must (NVIDIA images built for
    /// sm_90 or later define `rf_grid_dependency`; see `rf_platform.h`), so launches that ask
    /// for it may be dependent.
    dependent_launch: bool,
}

/// A kernel of a module. Keeps its module loaded.
#[derive(Debug, Clone)]
pub struct HipFunction {
    raw: RawHandle,
    name: String,
    module: Arc<HipModule>,
}

// SAFETY: module and function handles may be used from any thread by both runtimes.
unsafe impl Send for HipModule {}
// SAFETY: as above.
unsafe impl Sync for HipModule {}
// SAFETY: as above.
unsafe impl Send for HipFunction {}
// SAFETY: as above.
unsafe impl Sync for HipFunction {}

/// ELF (AMD code objects, cubins) and fatbin magic numbers: binary images the loader takes as is.
fn is_binary_image(image: &[u8]) -> bool {
    image.starts_with(b"\x7fELF")
        || image.starts_with(&[0x50, 0xed, 0x55, 0xba])
        || image.starts_with(&[0xba, 0x55, 0xed, 0x50])
}

impl HipModule {
    pub(crate) fn load(
        backend: &Arc<HipBackend>,
        image: &[u8],
        source: &str,
    ) -> HipResult<Arc<Self>> {
        if image.is_empty() {
            return Err(HipError::InvalidUse(format!(
                "kernel image {source} is empty"
            )));
        }
        backend.bind()?;
        // PTX is text and must end with a NUL byte.
        let raw = if backend.platform() == Platform::Nvidia
            && !is_binary_image(image)
            && image.last() != Some(&0)
        {
            let mut text = image.to_vec();
            text.push(0);
            result::module::load_data(&text)?
        } else {
            result::module::load_data(image)?
        };
        let dependent_launch = backend.platform() == Platform::Nvidia
            && result::module::has_global(raw, c"rf_grid_dependency");
        tracing::debug!(source, dependent_launch, "kernel module loaded");
        Ok(Arc::new(HipModule {
            raw,
            source: source.to_string(),
            backend: Arc::clone(backend),
            dependent_launch,
        }))
    }

    /// Where the image came from (a path, or `<memory>`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Looks up the kernel `name` (an `extern "C"` name such as `add_f32`).
    pub fn function(self: &Arc<Self>, name: &str) -> HipResult<HipFunction> {
        let c_name = CString::new(name).map_err(|_| HipError::InvalidName {
            what: "kernel",
            name: name.to_string(),
        })?;
        self.backend.bind()?;
        let raw = result::module::get_function(self.raw, &c_name)?;
        Ok(HipFunction {
            raw,
            name: name.to_string(),
            module: Arc::clone(self),
        })
    }

    /// Whether its kernels may be launched dependent ([`crate::LaunchArgs::dependent`] takes
    /// effect): an NVIDIA image whose kernels wait for their predecessor.
    pub fn supports_dependent_launch(&self) -> bool {
        self.dependent_launch
    }

    /// The backend the module is loaded on.
    pub fn backend(&self) -> &Arc<HipBackend> {
        &self.backend
    }
}

impl HipFunction {
    /// The kernel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The module it belongs to.
    pub fn module(&self) -> &Arc<HipModule> {
        &self.module
    }

    /// Allows launches with up to `bytes` of dynamic shared memory (NVIDIA needs this above 48 KiB).
    pub fn set_max_dynamic_shared_mem(&self, bytes: u32) -> HipResult<()> {
        self.module.backend.bind()?;
        result::module::set_max_dynamic_shared(self.raw, bytes)
    }

    pub(crate) fn raw(&self) -> RawHandle {
        self.raw
    }
}

impl Drop for HipModule {
    fn drop(&mut self) {
        if self.backend.bind().is_ok() {
            // Launches of this module's kernels may still be queued: let them finish first.
            let _ = self.backend.synchronize();
            // SAFETY: from load_data, unloaded once here, with no queued launch left.
            let _ = unsafe { result::module::unload(self.raw) };
        }
    }
}
