//! The GPUs of this machine, for the layers above (the CLI's `rocmforge devices`): the runtime
//! platform in use, its library and each device with its attributes.
//!
//! Re-exported from `rocmforge-hip`, so that nothing above this crate imports the runtime layer to
//! list devices. No runtime library or no device is an error value, never a panic:
//!
//! ```
//! use rocmforge_tensor::devices;
//!
//! match devices::list_devices() {
//!     Ok(list) => {
//!         for d in list {
//!             println!("{}: {} ({}, {})", d.index, d.name, d.arch, d.platform.name());
//!         }
//!     }
//!     Err(e) => println!("no GPU device: {e}"),
//! }
//! ```

/// What a device is and what it can do (index, name, architecture, memory, compute units, ...).
pub use rocmforge_hip::DeviceInfo;
/// A runtime error; [`HipError::NoDevice`] when the runtime reports no device.
pub use rocmforge_hip::HipError;
/// The result of a runtime query.
pub use rocmforge_hip::HipResult;
/// The GPU platform: AMD (HIP) or NVIDIA (CUDA).
pub use rocmforge_hip::Platform;
/// Where GPU kernel images come from: the targets embedded in this build
/// (`kernel_images::embedded::summary()`) and the source serving a device
/// (`kernel_images::describe(platform, arch)`).
pub use rocmforge_hip::kernel_images;
/// The library file of the runtime in use, e.g. `libamdhip64.so.5` (opening it if needed).
pub use rocmforge_hip::library_name;
/// Every device of the platform, with its attributes; no device is [`HipError::NoDevice`].
pub use rocmforge_hip::list_devices;
/// The platform of the runtime this process uses (opening it if needed).
pub use rocmforge_hip::platform;
