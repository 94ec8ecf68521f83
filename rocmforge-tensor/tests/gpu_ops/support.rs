//! Shared pieces of the GPU op suite: the two backends, a seeded random source, poisoned
//! outputs, the relative-error measure and the results table.

use std::sync::Mutex;

use rocmforge_tensor::{Backend, Tensor, TensorResult};

/// Both backends and the collected error table.
pub struct Ctx {
    pub cpu: Backend,
    pub gpu: Backend,
    pub rng: Mutex<Rng>,
    pub rows: Mutex<Vec<Row>>,
}

/// One line of the error table.
pub struct Row {
    pub op: String,
    pub size: String,
    pub max_rel: f64,
    pub bound: f64,
}

pub type TestFn = fn(&Ctx) -> Result<(), String>;

/// xorshift64*: small, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

impl Ctx {
    /// `n` values uniform in [-scale, scale).
    pub fn randn(&self, n: usize, scale: f32) -> Vec<f32> {
        let mut r = self.rng.lock().unwrap();
        (0..n).map(|_| r.uniform() * scale).collect()
    }

    pub fn below(&self, n: u64) -> u64 {
        self.rng.lock().unwrap().below(n)
    }

    /// An F32 tensor on the GPU filled with NaN (0xFF bytes), so unwritten outputs show.
    pub fn poisoned_gpu(&self, shape: Vec<usize>) -> TensorResult<Tensor> {
        let n = shape.iter().product::<usize>();
        let mut t = self.gpu.from_f32(shape, &vec![0.0; n])?;
        t.hip_mut("poison")?.fill_bytes(0xFF)?;
        Ok(t)
    }

    /// Compares `gpu` with `cpu`, records a table row, and fails above `bound`.
    pub fn check(
        &self,
        op: &str,
        size: &str,
        cpu: &[f32],
        gpu: &[f32],
        bound: f64,
    ) -> Result<(), String> {
        self.check_scaled(op, size, cpu, gpu, bound, 0.0)
    }

    /// As [`Ctx::check`], with errors measured against `max(max |cpu|, floor)`. GELU passes
    /// `floor = max |input|`: where its output is tiny (x << 0), `1 + tanh` cancels in f32 on
    /// the CPU and the GPU alike, so only the input's scale is meaningful there.
    pub fn check_scaled(
        &self,
        op: &str,
        size: &str,
        cpu: &[f32],
        gpu: &[f32],
        bound: f64,
        floor: f64,
    ) -> Result<(), String> {
        let err = max_rel_err(cpu, gpu, floor);
        self.rows.lock().unwrap().push(Row {
            op: op.to_string(),
            size: size.to_string(),
            max_rel: err,
            bound,
        });
        if err.is_nan() || err > bound {
            let first_bad = cpu.iter().zip(gpu).position(|(c, g)| {
                g.is_nan() != c.is_nan() || ((g - c).abs() as f64) > bound * 1e-3
            });
            return Err(format!(
                "{op} {size}: max relative error {err:e} > {bound:e} (first differing index {first_bad:?}: cpu {:?} gpu {:?})",
                first_bad.map(|i| cpu[i]),
                first_bad.map(|i| gpu[i])
            ));
        }
        Ok(())
    }
}

/// max |gpu - cpu| / max(max |cpu|, floor) (1 if that is 0).
/// A length mismatch, or a NaN in gpu where cpu has none, gives infinity: NaN never passes.
/// Equal infinities (masked entries) count as exact.
pub fn max_rel_err(cpu: &[f32], gpu: &[f32], floor: f64) -> f64 {
    if cpu.len() != gpu.len() {
        return f64::INFINITY;
    }
    let scale = cpu
        .iter()
        .filter(|v| v.is_finite())
        .fold(floor, |m, &v| m.max(v.abs() as f64));
    let scale = if scale == 0.0 { 1.0 } else { scale };
    let mut worst = 0.0f64;
    for (&c, &g) in cpu.iter().zip(gpu) {
        if c.is_nan() && g.is_nan() {
            continue;
        }
        if g.is_nan() || c.is_nan() {
            return f64::INFINITY;
        }
        if c == g {
            continue;
        }
        let d = (g as f64 - c as f64).abs() / scale;
        worst = worst.max(if d.is_nan() { f64::INFINITY } else { d });
    }
    worst
}

pub fn table(rows: &[Row]) {
    println!();
    println!(
        "{:<28} {:<34} {:>12} {:>10}",
        "op", "size", "max rel err", "bound"
    );
    for r in rows {
        println!(
            "{:<28} {:<34} {:>12.3e} {:>10.0e}",
            r.op, r.size, r.max_rel, r.bound
        );
    }
    println!();
}

pub fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}
