//! The typed launch builder: `stream.launch_builder(&f).arg(&x).arg(&mut y).launch(cfg)`.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::sync::OnceLock;

use crate::buffer::DeviceBuffer;
use crate::error::{HipError, HipResult};
use crate::module::HipFunction;
use crate::repr::DeviceRepr;
use crate::result::{self, module::LaunchDims};
use crate::stream::HipStream;

/// Grid, block and dynamic shared memory of a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks in x, y, z.
    pub grid_dim: (u32, u32, u32),
    /// Threads per block in x, y, z.
    pub block_dim: (u32, u32, u32),
    /// Dynamic shared memory per block, bytes.
    pub shared_mem_bytes: u32,
}

impl LaunchConfig {
    /// One thread per element, 256 threads per block (a multiple of both warp sizes).
    pub fn for_num_elems(n: u32) -> Self {
        LaunchConfig {
            grid_dim: (n.div_ceil(256).max(1), 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

/// Something that can be a kernel argument: `&T` for `T: DeviceRepr` (passed by value),
/// `&DeviceBuffer<T>` and `&mut DeviceBuffer<T>` (passed as the device address).
pub trait KernelArg {
    /// Appends the bytes the kernel receives for this argument.
    fn push_arg(&self, args: &mut ArgValues);
}

/// The bytes of a launch's arguments, each in its own 8-byte-aligned slot.
#[derive(Debug, Default)]
pub struct ArgValues {
    slots: Vec<Box<[u64]>>,
}

impl ArgValues {
    /// Appends a copy of `value`.
    pub fn push<T: DeviceRepr>(&mut self, value: &T) {
        let words = size_of::<T>().div_ceil(8).max(1);
        let mut slot = vec![0u64; words].into_boxed_slice();
        // SAFETY: the slot holds at least size_of::<T>() bytes, is 8-byte aligned (enough for any
        // kernel argument type), and `T: Copy` may be duplicated bytewise.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (value as *const T).cast::<u8>(),
                slot.as_mut_ptr().cast::<u8>(),
                size_of::<T>(),
            )
        };
        self.slots.push(slot);
    }
}

impl<T: DeviceRepr> KernelArg for &T {
    fn push_arg(&self, args: &mut ArgValues) {
        args.push(*self);
    }
}

impl<T: DeviceRepr> KernelArg for &DeviceBuffer<T> {
    fn push_arg(&self, args: &mut ArgValues) {
        args.push(&self.device_ptr());
    }
}

/// A buffer the kernel writes: `.arg(&mut y)` also keeps `y` exclusively borrowed until launch.
impl<T: DeviceRepr> KernelArg for &mut DeviceBuffer<T> {
    fn push_arg(&self, args: &mut ArgValues) {
        args.push(&self.device_ptr());
    }
}

/// A launch being built; see [`HipStream::launch_builder`]. Borrows every argument until launched.
#[derive(Debug)]
pub struct LaunchArgs<'a> {
    stream: &'a HipStream,
    function: &'a HipFunction,
    values: ArgValues,
    dependent: bool,
    _borrows: PhantomData<&'a ()>,
}

/// Whether dependent launches are allowed: `ROCMFORGE_PDL=0` turns them off (for A/B timing and
/// for ruling them out when a result looks wrong).
fn dependent_launch_allowed() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| std::env::var("ROCMFORGE_PDL").map_or(true, |v| v.trim() != "0"))
}

impl<'a> LaunchArgs<'a> {
    pub(crate) fn new(stream: &'a HipStream, function: &'a HipFunction) -> Self {
        LaunchArgs {
            stream,
            function,
            values: ArgValues::default(),
            dependent: false,
            _borrows: PhantomData,
        }
    }

    /// Appends the next kernel parameter: a scalar (`&n`) or a device buffer (`&x` read, `&mut y`
    /// written; the kernel receives its device address). Borrows last until the builder is gone.
    pub fn arg<A: KernelArg + 'a>(&mut self, value: A) -> &mut Self {
        value.push_arg(&mut self.values);
        self
    }

    /// Launches the kernel dependent on the previous kernel of the stream (NVIDIA's
    /// programmatic dependent launch) where its image supports it
    /// ([`crate::HipModule::supports_dependent_launch`]) and `ROCMFORGE_PDL` is not `0`: it may
    /// then start, and read constant data such as weights, while that kernel still runs, which
    /// hides the launch latency between the small kernels of a decode step. Elsewhere (AMD,
    /// images without the waits) a normal launch. Part of [`Self::launch`]'s safety promise:
    /// the kernel calls `RF_GRID_DEP_WAIT` (`rf_platform.h`) before it reads anything an
    /// earlier launch writes and before it writes anything.
    pub fn dependent(&mut self) -> &mut Self {
        self.dependent = true;
        self
    }

    /// Queues the kernel on the stream.
    ///
    /// # Safety
    /// The arguments must match the kernel's parameters in number, order and type (the runtime
    /// cannot check them), and the kernel must stay inside the buffers it is given for every
    /// thread of `cfg`. Buffers must not be freed while the kernel may still run (dropping a
    /// buffer waits for queued work, so safe code cannot do that).
    pub unsafe fn launch(&mut self, cfg: LaunchConfig) -> HipResult<()> {
        let (g, b) = (cfg.grid_dim, cfg.block_dim);
        if [g.0, g.1, g.2, b.0, b.1, b.2].contains(&0) {
            return Err(HipError::InvalidUse(format!(
                "launch of {}: grid {g:?} and block {b:?} must have no zero dimension",
                self.function.name()
            )));
        }
        let mut pointers: Vec<*mut c_void> = self
            .values
            .slots
            .iter_mut()
            .map(|s| s.as_mut_ptr().cast::<c_void>())
            .collect();
        self.stream.backend().bind()?;
        let dims = LaunchDims {
            grid: g,
            block: b,
            shared_mem_bytes: cfg.shared_mem_bytes,
        };
        let dependent = self.dependent
            && self.function.module().supports_dependent_launch()
            && dependent_launch_allowed();
        // SAFETY: each pointer addresses one argument slot alive for the call; matching the
        // kernel's signature, staying in bounds and (when dependent) waiting for the previous
        // kernel before touching its data are the caller's promise.
        unsafe {
            result::module::launch(
                self.function.raw(),
                dims,
                self.stream.raw(),
                &mut pointers,
                dependent,
            )
        }
    }
}
