//! `PinnedHostBuffer<T>`: page-locked host memory, the source or target of fast and
//! asynchronous copies.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::backend::HipBackend;
use crate::buffer::byte_len;
use crate::error::HipResult;
use crate::repr::DeviceRepr;
use crate::result;

/// `len` elements of `T` in page-locked host memory, zeroed at allocation, freed on drop.
#[derive(Debug)]
pub struct PinnedHostBuffer<T: DeviceRepr> {
    ptr: *mut T,
    len: usize,
    backend: Arc<HipBackend>,
}

// SAFETY: the buffer owns its memory exclusively, like a Vec<T> of Send + Sync elements.
unsafe impl<T: DeviceRepr> Send for PinnedHostBuffer<T> {}
// SAFETY: as above; `&self` only gives shared access to the elements.
unsafe impl<T: DeviceRepr> Sync for PinnedHostBuffer<T> {}

impl<T: DeviceRepr> PinnedHostBuffer<T> {
    pub(crate) fn alloc(backend: &Arc<HipBackend>, len: usize) -> HipResult<Self> {
        let bytes = byte_len::<T>("alloc_pinned", len)?;
        if bytes == 0 {
            return Ok(PinnedHostBuffer {
                ptr: std::ptr::NonNull::dangling().as_ptr(),
                len,
                backend: Arc::clone(backend),
            });
        }
        backend.bind()?;
        let ptr = result::memory::malloc_host(bytes)?.cast::<T>();
        // SAFETY: the runtime returned `bytes` writable bytes, suitably aligned for any type.
        unsafe { std::ptr::write_bytes(ptr.cast::<u8>(), 0, bytes) };
        Ok(PinnedHostBuffer {
            ptr,
            len,
            backend: Arc::clone(backend),
        })
    }

    /// Host pointer, for asynchronous copies.
    pub(crate) fn as_raw(&self) -> *const T {
        self.ptr
    }

    /// Mutable host pointer, for asynchronous copies.
    pub(crate) fn as_raw_mut(&mut self) -> *mut T {
        self.ptr
    }
}

impl<T: DeviceRepr> Deref for PinnedHostBuffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialised elements (zeroed, then only written as `T`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: DeviceRepr> DerefMut for PinnedHostBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl<T: DeviceRepr> Drop for PinnedHostBuffer<T> {
    fn drop(&mut self) {
        if self.len == 0 || size_of::<T>() == 0 || self.backend.bind().is_err() {
            return;
        }
        // SAFETY: allocated by malloc_host and freed once; the runtime waits for copies using it.
        let _ = unsafe { result::memory::free_host(self.ptr.cast()) };
    }
}
