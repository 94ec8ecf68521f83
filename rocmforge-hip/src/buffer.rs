//! `DeviceBuffer<T>`: device memory owned by a Rust value, freed on drop.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::backend::HipBackend;
use crate::error::{HipError, HipResult};
use crate::repr::{DevicePtr, DeviceRepr};
use crate::result;

/// `len` elements of `T` in device memory. Copies here are synchronous with respect to the host
/// and ordered after the default stream; queue asynchronous work through [`crate::HipStream`].
#[derive(Debug)]
pub struct DeviceBuffer<T: DeviceRepr> {
    ptr: u64,
    len: usize,
    backend: Arc<HipBackend>,
    _marker: PhantomData<T>,
}

pub(crate) fn byte_len<T>(op: &'static str, len: usize) -> HipResult<usize> {
    len.checked_mul(size_of::<T>())
        .ok_or(HipError::SizeOverflow {
            op,
            len,
            elem_size: size_of::<T>(),
        })
}

fn check_len(op: &'static str, expected: usize, actual: usize) -> HipResult<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(HipError::LengthMismatch {
            op,
            expected,
            actual,
        })
    }
}

impl<T: DeviceRepr> DeviceBuffer<T> {
    pub(crate) fn alloc(backend: &Arc<HipBackend>, len: usize) -> HipResult<Self> {
        let bytes = byte_len::<T>("alloc", len)?;
        backend.bind()?;
        // Zero bytes: no allocation (cuMemAlloc rejects 0); the null address is never dereferenced.
        let ptr = if bytes == 0 {
            0
        } else {
            result::memory::malloc(bytes)?
        };
        Ok(DeviceBuffer {
            ptr,
            len,
            backend: Arc::clone(backend),
            _marker: PhantomData,
        })
    }

    /// Elements held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held.
    pub fn num_bytes(&self) -> usize {
        self.len * size_of::<T>()
    }

    /// The device address of element 0, for kernel arguments.
    pub fn device_ptr(&self) -> DevicePtr {
        DevicePtr(self.ptr)
    }

    /// The device address of element `index` (which may equal `len`, one past the end).
    pub fn device_ptr_at(&self, index: usize) -> HipResult<DevicePtr> {
        if index > self.len {
            return Err(HipError::LengthMismatch {
                op: "device_ptr_at",
                expected: self.len,
                actual: index,
            });
        }
        Ok(DevicePtr(self.ptr + (index * size_of::<T>()) as u64))
    }

    /// The backend that owns the memory.
    pub fn backend(&self) -> &Arc<HipBackend> {
        &self.backend
    }

    /// Overwrites the buffer with `src` (same length).
    pub fn copy_from_host(&mut self, src: &[T]) -> HipResult<()> {
        check_len("copy_from_host", self.len, src.len())?;
        if self.len == 0 {
            return Ok(());
        }
        self.backend.bind()?;
        // SAFETY: both ranges hold num_bytes bytes; the copy is synchronous.
        unsafe { result::memory::htod(self.ptr, src.as_ptr().cast(), self.num_bytes(), None) }
    }

    /// Copies the buffer into `dst` (same length).
    pub fn copy_to_host(&self, dst: &mut [T]) -> HipResult<()> {
        check_len("copy_to_host", self.len, dst.len())?;
        if self.len == 0 {
            return Ok(());
        }
        self.backend.bind()?;
        // SAFETY: both ranges hold num_bytes bytes; the copy is synchronous, and every bit
        // pattern is a valid `T` (DeviceRepr).
        unsafe { result::memory::dtoh(dst.as_mut_ptr().cast(), self.ptr, self.num_bytes(), None) }
    }

    /// Copies elements `start..start + dst.len()` of the buffer into `dst` (synchronous).
    pub fn copy_range_to_host(&self, start: usize, dst: &mut [T]) -> HipResult<()> {
        let end = start.checked_add(dst.len()).filter(|&e| e <= self.len);
        let Some(_) = end else {
            return Err(HipError::LengthMismatch {
                op: "copy_range_to_host",
                expected: self.len,
                actual: start.saturating_add(dst.len()),
            });
        };
        if dst.is_empty() {
            return Ok(());
        }
        self.backend.bind()?;
        let src = self.ptr + (start * size_of::<T>()) as u64;
        // SAFETY: elements start..start + dst.len() lie inside the allocation (checked above),
        // `dst` holds as many writable `T`s, the copy is synchronous, and every bit pattern is
        // a valid `T` (DeviceRepr).
        unsafe {
            result::memory::dtoh(
                dst.as_mut_ptr().cast(),
                src,
                std::mem::size_of_val(dst),
                None,
            )
        }
    }

    /// The buffer's contents as a `Vec`.
    pub fn to_vec(&self) -> HipResult<Vec<T>> {
        let mut out = Vec::with_capacity(self.len);
        let spare = &mut out.spare_capacity_mut()[..self.len];
        if self.len > 0 {
            self.backend.bind()?;
            // SAFETY: `spare` holds len uninitialised `T`s; the synchronous copy writes all of them.
            unsafe {
                result::memory::dtoh(spare.as_mut_ptr().cast(), self.ptr, self.num_bytes(), None)
            }?;
        }
        // SAFETY: the copy above initialised exactly `len` elements (DeviceRepr: any bits valid).
        unsafe { out.set_len(self.len) };
        Ok(out)
    }

    /// Overwrites the buffer with another device buffer's contents (same length).
    pub fn copy_from_device(&mut self, src: &DeviceBuffer<T>) -> HipResult<()> {
        check_len("copy_from_device", self.len, src.len)?;
        if self.len == 0 {
            return Ok(());
        }
        self.backend.bind()?;
        // SAFETY: both allocations hold num_bytes bytes and outlive the (host-synchronous) call.
        unsafe { result::memory::dtod(self.ptr, src.ptr, self.num_bytes(), None) }?;
        result::stream::synchronize(std::ptr::null_mut())
    }

    /// Sets every byte to zero.
    pub fn memset_zero(&mut self) -> HipResult<()> {
        self.memset_bytes(0)
    }

    /// Sets every byte to `value` (e.g. 0xFF to poison an output before a kernel writes it).
    pub fn memset_bytes(&mut self, value: u8) -> HipResult<()> {
        if self.len == 0 {
            return Ok(());
        }
        self.backend.bind()?;
        // SAFETY: the allocation holds num_bytes bytes.
        unsafe { result::memory::memset_d8(self.ptr, value, self.num_bytes(), None) }?;
        result::stream::synchronize(std::ptr::null_mut())
    }
}

impl<T: DeviceRepr> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        if self.ptr == 0 || self.backend.bind().is_err() {
            return;
        }
        // SAFETY: the pointer came from malloc and is freed once, here. Both runtimes wait for
        // queued work that uses it before releasing the memory (hipFree / cuMemFree synchronise).
        let _ = unsafe { result::memory::free(self.ptr) };
    }
}
