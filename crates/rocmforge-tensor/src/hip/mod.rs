//! GPU ops through `rocmforge-hip`: kernel launches with the same semantics as the CPU ops in
//! [`crate::cpu`].

pub mod matmul;
pub mod quantize_act;
