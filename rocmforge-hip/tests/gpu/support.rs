//! What every GPU check shares: the context, a seeded generator, error plumbing.

use std::sync::Arc;

use rocmforge_hip::{HipBackend, HipModule, HipResult};

/// A check: `Ok(note)` (the note is printed after "ok") or `Err(why)`.
pub type TestFn = fn(&Ctx) -> Result<String, String>;

pub struct Ctx {
    pub backend: Arc<HipBackend>,
    pub module: Arc<HipModule>,
}

/// Turns a `HipResult` into the suite's error with the step named.
pub trait Step<T> {
    fn step(self, what: &str) -> Result<T, String>;
}

impl<T> Step<T> for HipResult<T> {
    fn step(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// Fails the check with a message when `cond` is false.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        {
            let holds: bool = $cond;
            if !holds {
                return Err(format!($($fmt)+));
            }
        }
    };
}
pub(crate) use ensure;

/// xorshift64*: fresh, reproducible inputs (seeded per check and per run).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng((seed ^ time) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    /// Uniform in [-1, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
    pub fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }
}

pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Largest relative difference, with NaN counted as a failure (returns infinity).
pub fn max_rel_err(got: &[f32], want: &[f32]) -> f32 {
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            if g.is_nan() || w.is_nan() {
                f32::INFINITY
            } else {
                (g - w).abs() / w.abs().max(1e-6)
            }
        })
        .fold(0.0, f32::max)
}
