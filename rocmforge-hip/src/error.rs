//! The crate's one error type.

use std::fmt;

/// Which GPU runtime a [`crate::HipBackend`] drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// AMD GPUs through `libamdhip64.so` (ROCm / HIP).
    Amd,
    /// NVIDIA GPUs through the CUDA driver (`libcuda.so.1`), HIP's NVIDIA platform mapping.
    Nvidia,
}

impl Platform {
    /// Lower-case name, as accepted by `ROCMFORGE_PLATFORM`.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Amd => "amd",
            Platform::Nvidia => "nvidia",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong in rocmforge-hip. No call in this crate panics instead.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HipError {
    /// No runtime library could be opened.
    #[error("no GPU runtime library could be loaded (tried: {tried}); {hint}")]
    LibraryNotFound {
        /// Every library name tried, with the loader's reason for each.
        tried: String,
        /// What to install or set.
        hint: String,
    },
    /// The runtime library lacks a symbol this call needs.
    #[error("{library} lacks the symbol {symbol}: {reason}")]
    MissingSymbol {
        /// The library that was opened.
        library: String,
        /// The symbol looked up.
        symbol: &'static str,
        /// The loader's message.
        reason: String,
    },
    /// A runtime call returned an error code.
    #[error("{call} failed with {platform} error {code} ({name}): {message}")]
    Api {
        /// The API call, e.g. `hipMalloc` or `cuMemAlloc_v2`.
        call: &'static str,
        /// The platform whose runtime answered.
        platform: Platform,
        /// The numeric code returned.
        code: u32,
        /// The symbolic name of the code, from the runtime.
        name: String,
        /// The runtime's own description of the code.
        message: String,
    },
    /// The runtime loaded but reports no device.
    #[error("no GPU device found on the {platform} platform: {detail}")]
    NoDevice {
        /// The platform asked.
        platform: Platform,
        /// The runtime's answer.
        detail: String,
    },
    /// A device index past the number of devices.
    #[error(
        "device index {index} is out of range: the {platform} runtime reports {count} device(s)"
    )]
    InvalidDevice {
        /// The index asked for.
        index: usize,
        /// Devices present.
        count: usize,
        /// The platform asked.
        platform: Platform,
    },
    /// A device allocation that did not fit.
    #[error("out of device memory: requested {requested} bytes, {free} bytes free")]
    OutOfMemory {
        /// Bytes asked for.
        requested: usize,
        /// Bytes the device reported free right after the failure.
        free: usize,
    },
    /// `ROCMFORGE_PLATFORM` holds something else than amd, nvidia or auto.
    #[error("ROCMFORGE_PLATFORM={0:?} is not one of amd, nvidia, auto")]
    InvalidPlatform(String),
    /// Two buffers (or a buffer and a slice) of different lengths were paired.
    #[error("{op}: length mismatch, expected {expected} elements, got {actual}")]
    LengthMismatch {
        /// The operation.
        op: &'static str,
        /// Elements expected.
        expected: usize,
        /// Elements given.
        actual: usize,
    },
    /// A size computation overflowed `usize`.
    #[error("{op}: {len} elements of {elem_size} bytes overflow usize")]
    SizeOverflow {
        /// The operation.
        op: &'static str,
        /// Elements asked for.
        len: usize,
        /// Bytes per element.
        elem_size: usize,
    },
    /// A name passed to the runtime contains a NUL byte.
    #[error("{what} {name:?} contains a NUL byte")]
    InvalidName {
        /// What the name names (kernel, module, ...).
        what: &'static str,
        /// The name.
        name: String,
    },
    /// No compiled kernel image for this device.
    #[error(
        "no kernel image `{name}` for {platform} {arch} (looked for: {searched}); to get it: {command}"
    )]
    KernelImageNotFound {
        /// Kernel family (file stem), e.g. `test_kernels`.
        name: String,
        /// Platform of the device.
        platform: Platform,
        /// Architecture of the device (gfx942, sm_90, ...).
        arch: String,
        /// Every path tried.
        searched: String,
        /// What to do: the packages to install and the commands that build it.
        command: String,
    },
    /// An embedded kernel image did not unpack (a damaged binary).
    #[error(
        "the embedded kernel image `{name}` for {arch} does not unpack ({message}); reinstall rocmforge"
    )]
    EmbeddedImage {
        /// Kernel family.
        name: String,
        /// Target of the image.
        arch: String,
        /// What zlib reported.
        message: String,
    },
    /// Compiling a kernel family at run time (hiprtc) failed.
    #[error("compiling the GPU kernel family `{family}` for {arch} with hiprtc failed: {detail}")]
    RuntimeCompile {
        /// Kernel family.
        family: String,
        /// The AMD target compiled for.
        arch: String,
        /// What failed: the hiprtc call with the compiler's log, or why no compile could start.
        detail: String,
    },
    /// Reading a file failed.
    #[error("reading {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// A graph or launch was used in a way the runtime cannot do.
    #[error("{0}")]
    InvalidUse(String),
}

/// `Result` with [`HipError`].
pub type HipResult<T> = Result<T, HipError>;
