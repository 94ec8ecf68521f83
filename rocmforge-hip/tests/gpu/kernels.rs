//! Every test kernel launched and checked against a CPU result; outputs poisoned first.

use rocmforge_hip::{DeviceBuffer, DeviceRepr, HipError, LaunchConfig};

use crate::support::{Ctx, Rng, Step, ensure, max_rel_err};

fn poisoned<T: DeviceRepr>(ctx: &Ctx, n: usize) -> Result<DeviceBuffer<T>, String> {
    let mut buf = ctx.backend.alloc::<T>(n).step("alloc")?;
    buf.memset_bytes(0xFF).step("poison")?; // NaN for floats, all-ones for integers
    Ok(buf)
}

/// Sizes that are not multiples of the block size, plus one that needs the grid-stride loop.
const SIZES: [usize; 4] = [1, 1000, 257 * 1024 + 3, 3 << 20];

pub fn fill_f32(ctx: &Ctx) -> Result<String, String> {
    let f = ctx.module.function("fill_f32").step("function")?;
    let stream = ctx.backend.new_stream().step("stream")?;
    let mut rng = Rng::new(10);
    for n in SIZES {
        let mut out = poisoned::<f32>(ctx, n)?;
        let value = rng.next_f32();
        let n32 = n as u32;
        let mut cfg = LaunchConfig::for_num_elems(n32);
        cfg.grid_dim.0 = cfg.grid_dim.0.min(1024); // exercise the grid-stride loop
        // SAFETY: fill_f32(float* out, float value, u32 n) writes out[0..n).
        unsafe {
            stream
                .launch_builder(&f)
                .arg(&mut out)
                .arg(&value)
                .arg(&n32)
                .launch(cfg)
        }
        .step("launch")?;
        stream.synchronize().step("sync")?;
        let got = out.to_vec().step("dtoh")?;
        ensure!(
            got.iter().all(|x| *x == value),
            "fill_f32 n={n}: not every element is {value}"
        );
    }
    Ok(String::new())
}

pub fn add_f32(ctx: &Ctx) -> Result<String, String> {
    let f = ctx.module.function("add_f32").step("function")?;
    let stream = ctx.backend.new_stream().step("stream")?;
    let mut rng = Rng::new(11);
    for n in SIZES {
        let (a, b) = (rng.f32s(n), rng.f32s(n));
        let (da, db) = (
            ctx.backend.htod(&a).step("htod")?,
            ctx.backend.htod(&b).step("htod")?,
        );
        let mut out = poisoned::<f32>(ctx, n)?;
        let n32 = n as u32;
        // SAFETY: add_f32(const float*, const float*, float*, u32) reads/writes [0..n).
        unsafe {
            stream
                .launch_builder(&f)
                .arg(&da)
                .arg(&db)
                .arg(&mut out)
                .arg(&n32)
                .launch(LaunchConfig::for_num_elems(n32))
        }
        .step("launch")?;
        stream.synchronize().step("sync")?;
        let got = out.to_vec().step("dtoh")?;
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        ensure!(
            got == want,
            "add_f32 n={n}: max rel err {}",
            max_rel_err(&got, &want)
        );
    }
    Ok(String::new())
}

pub fn reduce_sum_f32(ctx: &Ctx) -> Result<String, String> {
    let f = ctx.module.function("reduce_sum_f32").step("function")?;
    let stream = ctx.backend.new_stream().step("stream")?;
    let mut rng = Rng::new(12);
    let mut worst = 0f64;
    for n in SIZES {
        let x = rng.f32s(n);
        let dx = ctx.backend.htod(&x).step("htod")?;
        let blocks = 120u32;
        let mut partials = poisoned::<f32>(ctx, blocks as usize)?;
        let mut total = poisoned::<f32>(ctx, 1)?;
        let n32 = n as u32;
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: reduce_sum_f32(const float* x, float* partials, u32 n): partials has gridDim.x slots.
        unsafe {
            stream
                .launch_builder(&f)
                .arg(&dx)
                .arg(&mut partials)
                .arg(&n32)
                .launch(cfg)
        }
        .step("launch 1")?;
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: second pass over the `blocks` partials into one slot.
        unsafe {
            stream
                .launch_builder(&f)
                .arg(&partials)
                .arg(&mut total)
                .arg(&blocks)
                .launch(one)
        }
        .step("launch 2")?;
        stream.synchronize().step("sync")?;
        let got = f64::from(total.to_vec().step("dtoh")?[0]);
        let want: f64 = x.iter().map(|v| f64::from(*v)).sum();
        let abs_sum: f64 = x.iter().map(|v| f64::from(v.abs())).sum();
        let err = (got - want).abs() / abs_sum.max(1e-30);
        ensure!(
            got.is_finite() && err < 1e-5,
            "reduce_sum_f32 n={n}: got {got}, want {want} (err {err:e})"
        );
        worst = worst.max(err);
    }
    Ok(format!("[max error / sum|x| = {worst:.1e}]"))
}

pub fn cast_f32_f16(ctx: &Ctx) -> Result<String, String> {
    let f = ctx.module.function("cast_f32_f16").step("function")?;
    let stream = ctx.backend.new_stream().step("stream")?;
    let mut rng = Rng::new(13);
    let n = 1 << 20;
    // Wide range: normal, subnormal and overflowing f16 values, and exact ties.
    let x: Vec<f32> = (0..n)
        .map(|i| rng.next_f32() * [1.0, 1e-6, 7e4, 1000.0][i % 4])
        .collect();
    let dx = ctx.backend.htod(&x).step("htod")?;
    let mut out = poisoned::<half::f16>(ctx, n)?;
    let n32 = n as u32;
    // SAFETY: cast_f32_f16(const float*, half*, u32).
    unsafe {
        stream
            .launch_builder(&f)
            .arg(&dx)
            .arg(&mut out)
            .arg(&n32)
            .launch(LaunchConfig::for_num_elems(n32))
    }
    .step("launch")?;
    stream.synchronize().step("sync")?;
    let got = out.to_vec().step("dtoh")?;
    let bad = got
        .iter()
        .zip(&x)
        .filter(|(g, v)| g.to_bits() != half::f16::from_f32(**v).to_bits())
        .count();
    ensure!(
        bad == 0,
        "{bad} of {n} f16 conversions differ from round-to-nearest-even"
    );
    Ok(String::new())
}

pub fn cast_f32_bf16(ctx: &Ctx) -> Result<String, String> {
    let f = ctx.module.function("cast_f32_bf16").step("function")?;
    let stream = ctx.backend.new_stream().step("stream")?;
    let mut rng = Rng::new(14);
    let n = 1 << 20;
    let x: Vec<f32> = (0..n)
        .map(|i| rng.next_f32() * [1.0, 1e-30, 3e38, 1000.0][i % 4])
        .collect();
    let dx = ctx.backend.htod(&x).step("htod")?;
    let mut out = poisoned::<half::bf16>(ctx, n)?;
    let n32 = n as u32;
    // SAFETY: cast_f32_bf16(const float*, u16*, u32).
    unsafe {
        stream
            .launch_builder(&f)
            .arg(&dx)
            .arg(&mut out)
            .arg(&n32)
            .launch(LaunchConfig::for_num_elems(n32))
    }
    .step("launch")?;
    stream.synchronize().step("sync")?;
    let got = out.to_vec().step("dtoh")?;
    let bad = got
        .iter()
        .zip(&x)
        .filter(|(g, v)| g.to_bits() != half::bf16::from_f32(**v).to_bits())
        .count();
    ensure!(
        bad == 0,
        "{bad} of {n} bf16 conversions differ from round-to-nearest-even"
    );
    Ok(String::new())
}

pub fn warp_size_u32(ctx: &Ctx) -> Result<String, String> {
    let f = ctx.module.function("warp_size_u32").step("function")?;
    let stream = ctx.backend.new_stream().step("stream")?;
    let mut out = poisoned::<u32>(ctx, 2)?;
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: warp_size_u32(u32* out) writes out[0..2).
    unsafe { stream.launch_builder(&f).arg(&mut out).launch(cfg) }.step("launch")?;
    stream.synchronize().step("sync")?;
    let got = out.to_vec().step("dtoh")?;
    let device = ctx.backend.warp_size();
    ensure!(
        got == [device, device],
        "kernel saw warp size {} and {} lanes; device reports {device}",
        got[0],
        got[1]
    );
    Ok(format!("[RF_WARP_SIZE = {device}]"))
}

pub fn copy_u32x4(ctx: &Ctx) -> Result<String, String> {
    let f = ctx.module.function("copy_u32x4").step("function")?;
    let stream = ctx.backend.new_stream().step("stream")?;
    let mut rng = Rng::new(15);
    let n = (8 << 20) + 12; // u32 count, a multiple of 4
    let x: Vec<u32> = (0..n).map(|_| rng.next_u32()).collect();
    let dx = ctx.backend.htod(&x).step("htod")?;
    let mut out = poisoned::<u32>(ctx, n)?;
    let vecs = (n / 4) as u64;
    let cfg = LaunchConfig {
        grid_dim: (1024, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: copy_u32x4(const uint4*, uint4*, u64 n) copies n 16-byte vectors; both hold n*4 u32.
    unsafe {
        stream
            .launch_builder(&f)
            .arg(&dx)
            .arg(&mut out)
            .arg(&vecs)
            .launch(cfg)
    }
    .step("launch")?;
    stream.synchronize().step("sync")?;
    ensure!(out.to_vec().step("dtoh")? == x, "copy_u32x4 output differs");
    Ok(String::new())
}

pub fn launch_errors(ctx: &Ctx) -> Result<String, String> {
    match ctx.module.function("no_such_kernel") {
        Err(HipError::Api { call, .. }) => {
            ensure!(call.contains("GetFunction"), "wrong call named: {call}")
        }
        other => return Err(format!("missing kernel gave {other:?}")),
    }
    let f = ctx.module.function("fill_f32").step("function")?;
    let stream = ctx.backend.new_stream().step("stream")?;
    let mut out = poisoned::<f32>(ctx, 4)?;
    let zero = LaunchConfig {
        grid_dim: (0, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let n = 4u32;
    // SAFETY: rejected before reaching the runtime (zero grid).
    let r = unsafe {
        stream
            .launch_builder(&f)
            .arg(&mut out)
            .arg(&1.0f32)
            .arg(&n)
            .launch(zero)
    };
    ensure!(
        matches!(r, Err(HipError::InvalidUse(_))),
        "zero grid gave {r:?}"
    );
    let huge = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (4096, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the runtime rejects a 4096-thread block before running anything.
    let r = unsafe {
        stream
            .launch_builder(&f)
            .arg(&mut out)
            .arg(&1.0f32)
            .arg(&n)
            .launch(huge)
    };
    ensure!(
        matches!(r, Err(HipError::Api { .. })),
        "4096-thread block gave {r:?}"
    );
    let bad_image = ctx.backend.load_module(b"\x7fELF not really a code object");
    ensure!(bad_image.is_err(), "a corrupt image loaded");
    stream.synchronize().step("stream still usable")?;
    Ok(String::new())
}
