//! The HIP runtime in Rust (being built: see issue 3).
