//! What may be copied to the device and passed to a kernel by value.

/// Plain data with the same layout on the host and the device.
///
/// # Safety
/// Implement only for `Copy` types without pointers to host memory, without padding bytes whose
/// value matters, and for which every bit pattern the device may write is a valid value (integers,
/// floats, `#[repr(C)]` structs of those). `bool` is left out because a kernel may write other bytes.
pub unsafe trait DeviceRepr: Copy + Send + Sync + 'static {}

macro_rules! device_repr {
    ($($t:ty),* $(,)?) => {
        // SAFETY: primitive integers and floats: every bit pattern is valid, no pointers.
        $(unsafe impl DeviceRepr for $t {})*
    };
}

device_repr!(
    u8,
    i8,
    u16,
    i16,
    u32,
    i32,
    u64,
    i64,
    usize,
    isize,
    f32,
    f64,
    half::f16,
    half::bf16
);

// SAFETY: an array of device-representable values is device-representable.
unsafe impl<T: DeviceRepr, const N: usize> DeviceRepr for [T; N] {}

/// A device address, as passed to kernels (`T*` on the device side).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DevicePtr(pub u64);

impl DevicePtr {
    /// The address `bytes` further on (wrapping never happens for real allocations; checked anyway).
    pub fn byte_offset(self, bytes: usize) -> Option<DevicePtr> {
        self.0
            .checked_add(u64::try_from(bytes).ok()?)
            .map(DevicePtr)
    }
}

// SAFETY: a 64-bit device address; the kernel side receives it as a pointer of the same size.
unsafe impl DeviceRepr for DevicePtr {}
