//! On a machine without a GPU (CI, the CPU workers) every entry point answers with an error, never
//! a panic. On a machine with a GPU these checks are skipped by the assertion itself (they
//! assert the GPU path works instead), so the test is meaningful on both.

use rocmforge_hip::{HipBackend, HipError};

#[test]
fn opening_device_zero_gives_a_device_or_a_clean_error() {
    match HipBackend::new(0) {
        Ok(backend) => {
            assert!(!backend.info().name.is_empty());
            assert!(backend.info().total_memory > 0);
        }
        Err(e) => {
            let text = e.to_string();
            assert!(
                matches!(
                    e,
                    HipError::NoDevice { .. } | HipError::LibraryNotFound { .. }
                ),
                "unexpected error kind: {text}"
            );
            assert!(!text.is_empty());
        }
    }
}

#[test]
fn out_of_range_device_index_is_an_error() {
    let err = HipBackend::new(1 << 20).err();
    assert!(
        matches!(
            err,
            Some(
                HipError::NoDevice { .. }
                    | HipError::LibraryNotFound { .. }
                    | HipError::InvalidDevice { .. }
            )
        ),
        "{err:?}"
    );
}

#[test]
fn invalid_platform_choice_is_reported() {
    // The platform choice is read once per process; this only checks the error text's form.
    let e = HipError::InvalidPlatform("vulkan".into());
    assert!(e.to_string().contains("vulkan"));
}
