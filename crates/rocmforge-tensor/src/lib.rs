//! Tensors and ops on CPU and HIP (being built: see issue 4).
