//! Raw bindings of HIP's runtime compiler (hiprtc), written by hand from `hiprtc.h` (the eight
//! calls below are all that is used), resolved at run time with libloading.
//!
//! ROCm 6 ships them in `libhiprtc.so.6`; ROCm 5 (and Debian 12's `libamdhip64-5`) exports them
//! from `libamdhip64.so` itself. Each symbol is resolved on its own, so a missing one is an error
//! only when it is called.

use core::ffi::{c_char, c_int};

/// `hiprtcResult` (0 = `HIPRTC_SUCCESS`).
pub type HiprtcResult = c_int;
/// `HIPRTC_SUCCESS`.
pub const HIPRTC_SUCCESS: HiprtcResult = 0;
/// `hiprtcProgram`, an opaque handle.
pub type HiprtcProgram = *mut core::ffi::c_void;

/// Declares [`Hiprtc`]: one `Result` field per symbol and the constructor that resolves them.
macro_rules! hiprtc_table {
    ($( $(#[$doc:meta])* $name:ident : fn($($arg:ty),*) $(-> $ret:ty)?; )*) => {
        /// The hiprtc calls used, each resolved on its own.
        #[allow(non_snake_case)]
        pub struct Hiprtc {
            _library: libloading::Library,
            $(
                $(#[$doc])*
                pub $name: Result<unsafe extern "C" fn($($arg),*) $(-> $ret)?, libloading::Error>,
            )*
        }

        impl Hiprtc {
            /// Resolves the table in `library` (libhiprtc, or a libamdhip64 that exports hiprtc).
            ///
            /// # Safety
            /// `library` must be HIP's hiprtc, so that each symbol has the signature declared here.
            #[allow(non_snake_case)]
            pub unsafe fn from_library(library: libloading::Library) -> Self {
                $(
                    // SAFETY: the caller guarantees the library is hiprtc, whose symbol has this type.
                    let $name = unsafe {
                        library
                            .get::<unsafe extern "C" fn($($arg),*) $(-> $ret)?>(stringify!($name).as_bytes())
                            .map(|symbol| *symbol)
                    };
                )*
                Self { _library: library, $($name,)* }
            }
        }
    };
}

hiprtc_table! {
    /// `hiprtcVersion(int* major, int* minor)`
    hiprtcVersion: fn(*mut c_int, *mut c_int) -> HiprtcResult;
    /// `hiprtcGetErrorString(hiprtcResult) -> const char*`
    hiprtcGetErrorString: fn(HiprtcResult) -> *const c_char;
    /// `hiprtcCreateProgram(hiprtcProgram*, const char* src, const char* name, int numHeaders,
    /// const char** headers, const char** includeNames)`
    hiprtcCreateProgram: fn(
        *mut HiprtcProgram,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char
    ) -> HiprtcResult;
    /// `hiprtcCompileProgram(hiprtcProgram, int numOptions, const char** options)`
    hiprtcCompileProgram: fn(HiprtcProgram, c_int, *const *const c_char) -> HiprtcResult;
    /// `hiprtcGetProgramLogSize(hiprtcProgram, size_t*)`
    hiprtcGetProgramLogSize: fn(HiprtcProgram, *mut usize) -> HiprtcResult;
    /// `hiprtcGetProgramLog(hiprtcProgram, char*)`
    hiprtcGetProgramLog: fn(HiprtcProgram, *mut c_char) -> HiprtcResult;
    /// `hiprtcGetCodeSize(hiprtcProgram, size_t*)`
    hiprtcGetCodeSize: fn(HiprtcProgram, *mut usize) -> HiprtcResult;
    /// `hiprtcGetCode(hiprtcProgram, char*)`
    hiprtcGetCode: fn(HiprtcProgram, *mut c_char) -> HiprtcResult;
    /// `hiprtcDestroyProgram(hiprtcProgram*)`
    hiprtcDestroyProgram: fn(*mut HiprtcProgram) -> HiprtcResult;
}

impl core::fmt::Debug for Hiprtc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Hiprtc { .. }")
    }
}
