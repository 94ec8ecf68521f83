//! Our block formats against an independent implementation: the PyPI package `gguf==0.19.0`
//! (`gguf.quants`), driven by `tools/gguf_oracle.py`.
//!
//! For every type we dequantize, blocks of random bytes (f16/f32 scale fields forced finite) and
//! edge cases (zero, negative, largest and subnormal scales; all-zero, all-one and alternating
//! codes) are dequantized by both sides. Both compute each value with the same f32 operations in
//! the same order, so the results must be bitwise equal (two NaNs count as equal, whatever their
//! payload). For the types gguf can quantize (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4) the
//! bytes our quantizer writes must equal gguf's.
//!
//! Python: `$ROCMFORGE_PYTHON`, else `<repo>/.venv/bin/python`. Missing Python or gguf is a
//! failure, never a skip: `cargo xtask test` creates the venv.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rocmforge_gguf::{GgmlType, quants};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    match std::env::var_os("ROCMFORGE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join(".venv/bin/python"),
    }
}

/// Runs `tools/gguf_oracle.py <cmd> <dir>`, failing the test with set-up advice if it can't.
fn run_oracle(cmd: &str, dir: &Path) -> String {
    let py = python();
    let script = repo_root().join("tools/gguf_oracle.py");
    let advice = "run `cargo xtask test` (it creates the venv) or \
                  `python3 -m venv .venv && .venv/bin/pip install gguf==0.19.0` in the repo root, \
                  or point ROCMFORGE_PYTHON at a Python that has gguf 0.19.0";
    let out = Command::new(&py)
        .arg(&script)
        .arg(cmd)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {advice}", py.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {} {cmd} failed ({}):\n{}{}\n{advice}",
        py.display(),
        script.display(),
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A fresh scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("rocmforge-oracle-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }
}

/// Byte offsets of the f16 scale fields of each block (Q8_K's f32 scale is handled apart).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL | IQ4_XS => &[0],
        Q4_1 | Q5_1 | Q8_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        _ => &[],
    }
}

/// A finite f16 with a random sign and an exponent spread over the whole range.
fn finite_f16(rng: &mut Rng) -> u16 {
    let bits = rng.next() as u16;
    if bits & 0x7c00 == 0x7c00 {
        bits & !0x4000
    } else {
        bits
    }
}

/// Scale values (as f32) for the edge-case blocks.
const EDGE_SCALES: [f32; 8] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    65504.0,
    -65504.0,
    5.960_464_5e-8,
    -0.5,
];
/// Fill bytes for the code fields of the edge-case blocks.
const EDGE_FILLS: [u8; 4] = [0x00, 0xff, 0x55, 0xaa];

fn set_scales(ty: GgmlType, block: &mut [u8], scale: Option<f32>, rng: &mut Rng) {
    for &off in f16_fields(ty) {
        let bits = match scale {
            Some(s) => half::f16::from_f32(s).to_bits(),
            None => finite_f16(rng),
        };
        block[off..off + 2].copy_from_slice(&bits.to_le_bytes());
    }
    if ty == GgmlType::Q8_K {
        let d = match scale {
            Some(s) => s * 1e3,
            None => f32::from_bits(rng.next() as u32 & 0x80ff_ffff | 0x3000_0000),
        };
        block[0..4].copy_from_slice(&d.to_le_bytes());
    }
}

/// Random and edge-case data for `ty`.
fn test_blocks(ty: GgmlType, rng: &mut Rng) -> Vec<u8> {
    let ts = ty.type_size();
    if !ty.is_quantized() {
        let mut data = rng.bytes(4096 * ts);
        let specials: &[u32] = match ty {
            GgmlType::F32 => &[
                0,
                0x8000_0000,
                1,
                0x7f7f_ffff,
                0x7f80_0000,
                0xff80_0000,
                0x7fc0_0000,
            ],
            _ => &[
                0, 0x8000, 1, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x7f80, 0xff80, 0x7fc0,
            ],
        };
        for (i, &s) in specials.iter().enumerate() {
            data[i * ts..(i + 1) * ts].copy_from_slice(&s.to_le_bytes()[..ts]);
        }
        return data;
    }
    let n_random = if ty.block_size() == 32 { 512 } else { 128 };
    let mut data = Vec::new();
    for _ in 0..n_random {
        let mut b = rng.bytes(ts);
        set_scales(ty, &mut b, None, rng);
        data.extend_from_slice(&b);
    }
    for fill in EDGE_FILLS {
        for scale in EDGE_SCALES {
            let mut b = vec![fill; ts];
            set_scales(ty, &mut b, Some(scale), rng);
            data.extend_from_slice(&b);
        }
    }
    data
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn dequantization_equals_gguf_py_for_every_type() {
    let dir = TempDir::new("dequant");
    let mut rng = Rng(0x0dd_ba11);
    let types: Vec<GgmlType> = GgmlType::ALL
        .into_iter()
        .filter(|t| quants::can_dequantize(*t))
        .collect();
    assert_eq!(
        types.len(),
        18,
        "every float and block type is dequantizable"
    );
    let mut inputs = Vec::new();
    for &ty in &types {
        let data = test_blocks(ty, &mut rng);
        std::fs::write(dir.0.join(format!("{}.blocks", ty.name())), &data).unwrap();
        inputs.push((ty, data));
    }
    let log = run_oracle("dequantize", &dir.0);
    let mut table = String::from("type     blocks  values  mismatches  max_abs_diff\n");
    let mut failures = Vec::new();
    for (ty, data) in &inputs {
        let ours = quants::dequantize_to_vec(*ty, data).unwrap();
        let raw = std::fs::read(dir.0.join(format!("{}.f32", ty.name())))
            .unwrap_or_else(|e| panic!("{ty}: oracle wrote no output ({e}); log:\n{log}"));
        let theirs: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(ours.len(), theirs.len(), "{ty}: value count differs");
        let mut mismatches = 0usize;
        let mut max_abs = 0.0f64;
        let mut first = None;
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            if !same(*a, *b) {
                mismatches += 1;
                first.get_or_insert((i, *a, *b));
                let d = (f64::from(*a) - f64::from(*b)).abs();
                if d.is_finite() && d > max_abs {
                    max_abs = d;
                }
            }
        }
        let blocks = data.len() / ty.type_size();
        table += &format!(
            "{:<8} {blocks:>6}  {:>6}  {mismatches:>10}  {max_abs:e}\n",
            ty.name(),
            ours.len()
        );
        if let Some((i, a, b)) = first {
            failures.push(format!(
                "{ty}: {mismatches} values differ, first at {i}: ours {a:e}, gguf {b:e}"
            ));
        }
    }
    println!("{log}\n{table}");
    assert!(failures.is_empty(), "{failures:#?}\n{table}");
}

#[test]
fn quantization_equals_gguf_py_where_gguf_quantizes() {
    let dir = TempDir::new("quant");
    let mut rng = Rng(0xfeed);
    let types = [
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::MXFP4,
    ];
    // Normal-ish values with a varying scale, plus a few blocks of constant, zero and tiny data.
    let mut x: Vec<f32> = (0..32 * 1024)
        .map(|i| {
            let u = (0..4)
                .map(|_| (rng.next() >> 40) as f32 / 16_777_216.0)
                .sum::<f32>()
                - 2.0;
            u * (0.001 + (i / 32 % 17) as f32 * 0.3)
        })
        .collect();
    x[..32].fill(0.0);
    x[32..64].fill(-1.5);
    x[64..96]
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = i as f32 * 1e-6);
    for ty in types {
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.0.join(format!("{}.src", ty.name())), bytes).unwrap();
    }
    let log = run_oracle("quantize", &dir.0);
    let mut table = String::from("type     blocks  differing_blocks\n");
    let mut failures = Vec::new();
    for ty in types {
        let ours = quants::quantize(ty, &x).unwrap();
        let theirs = std::fs::read(dir.0.join(format!("{}.quant", ty.name()))).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{ty}: byte count differs");
        let ts = ty.type_size();
        let differing: Vec<usize> = ours
            .chunks(ts)
            .zip(theirs.chunks(ts))
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i)
            .collect();
        table += &format!(
            "{:<8} {:>6}  {:>6}\n",
            ty.name(),
            ours.len() / ts,
            differing.len()
        );
        if let Some(&i) = differing.first() {
            failures.push(format!(
                "{ty}: {} blocks differ, first {i}: ours {:02x?} gguf {:02x?}",
                differing.len(),
                &ours[i * ts..(i + 1) * ts],
                &theirs[i * ts..(i + 1) * ts]
            ));
        }
    }
    println!("{log}\n{table}");
    assert!(failures.is_empty(), "{failures:#?}\n{table}");
}

#[test]
fn real_model_tensors_dequantize_like_gguf_py() {
    let path = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models` to fetch the test model",
        path.display()
    );
    let file = rocmforge_gguf::GgufFile::open(&path).unwrap();
    // Every tensor dequantizes to finite values; the first tensor of each type goes to gguf.
    let dir = TempDir::new("smollm2");
    let mut picked: Vec<(GgmlType, String, Vec<f32>)> = Vec::new();
    for t in file.tensors() {
        let data = file.tensor_data(t);
        let y = quants::dequantize_to_vec(t.ty, data).unwrap();
        assert_eq!(y.len() as u64, t.n_elements(), "{}", t.name);
        assert!(
            y.iter().all(|v| v.is_finite()),
            "{}: non-finite value",
            t.name
        );
        if !picked.iter().any(|(ty, _, _)| *ty == t.ty) {
            std::fs::write(dir.0.join(format!("{}.blocks", t.ty.name())), data).unwrap();
            picked.push((t.ty, t.name.clone(), y));
        }
    }
    assert_eq!(picked.len(), 3, "Q4_1, Q8_0 and F32 tensors");
    let log = run_oracle("dequantize", &dir.0);
    for (ty, name, ours) in &picked {
        let raw = std::fs::read(dir.0.join(format!("{}.f32", ty.name()))).unwrap();
        let theirs = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let differing = ours
            .iter()
            .zip(theirs)
            .filter(|(a, b)| !same(**a, *b))
            .count();
        println!(
            "{ty} tensor {name}: {} values, {differing} differ",
            ours.len()
        );
        assert_eq!(
            differing, 0,
            "{ty} tensor {name} differs from gguf-py\n{log}"
        );
    }
}
