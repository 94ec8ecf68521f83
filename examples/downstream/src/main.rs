//! A downstream crate's view of ROCmForge: read a weight from a GGUF file (or build one), run the
//! CPU backend's quantized matmul (llama.cpp's 8-bit-activation scheme) after an RMS norm, and
//! check it against the float reference (the weight dequantized, f32 dot products).
//!
//! ```sh
//! cargo run -p rocmforge-downstream-example -- [MODEL.gguf [TENSOR]]
//! ```
//!
//! Without a file it quantizes a made-up 64×256 matrix to Q8_0. It prints one line per step and
//! `downstream: ok` last; any mismatch is an error exit.

use std::process::ExitCode;

use rocmforge_gguf::{GgmlType, GgufFile, quants};
use rocmforge_tensor::cpu::{WeightView, matmul, matmul_f32_reference, rms_norm};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The weight to multiply by: its type, bytes and shape.
struct Weight {
    label: String,
    ty: GgmlType,
    data: Vec<u8>,
    rows: usize,
    cols: usize,
}

fn from_gguf(path: &str, name: Option<&str>) -> Result<Weight> {
    let file = GgufFile::open(path)?;
    let info = match name {
        Some(n) => file
            .tensor(n)
            .ok_or_else(|| format!("{path} has no tensor {n}"))?,
        // The first matrix whose type the CPU matmul supports (blk.0.attn_q.weight or similar).
        None => file
            .tensors()
            .iter()
            .find(|t| t.dims.len() == 2 && t.name.starts_with("blk.0."))
            .ok_or_else(|| format!("{path} has no blk.0 matrix"))?,
    };
    let [cols, rows] = info.dims[..] else {
        return Err(format!("{} is not a matrix: {}", info.name, info.shape_string()).into());
    };
    Ok(Weight {
        label: format!(
            "{path}: {} {} {:?}",
            info.name,
            info.shape_string(),
            info.ty
        ),
        ty: info.ty,
        data: file.tensor_data(info).to_vec(),
        rows: usize::try_from(rows)?,
        cols: usize::try_from(cols)?,
    })
}

fn made_up() -> Result<Weight> {
    let (rows, cols) = (64, 256);
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    Ok(Weight {
        label: format!("made-up {rows}x{cols} Q8_0"),
        ty: GgmlType::Q8_0,
        data: quants::quantize(GgmlType::Q8_0, &w)?,
        rows,
        cols,
    })
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let weight = match args.first() {
        Some(path) => from_gguf(path, args.get(1).map(String::as_str))?,
        None => made_up()?,
    };
    println!("weight: {}", weight.label);
    let view = WeightView {
        ty: weight.ty,
        data: &weight.data,
        rows: weight.rows,
        cols: weight.cols,
    };
    let input: Vec<f32> = (0..weight.cols).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut x = vec![0.0f32; weight.cols];
    rms_norm(&input, &vec![1.0f32; weight.cols], 1e-5, &mut x);
    let mut fast = vec![0.0f32; weight.rows];
    matmul(&view, &x, 1, &mut fast)?;
    let mut exact = vec![0.0f32; weight.rows];
    matmul_f32_reference(&view, &x, 1, &mut exact)?;
    let scale = exact.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    let worst = fast
        .iter()
        .zip(&exact)
        .map(|(a, b)| {
            if a.is_finite() {
                (a - b).abs() / scale
            } else {
                f32::INFINITY
            }
        })
        .fold(0.0f32, f32::max);
    println!(
        "rms_norm + matmul on the CPU: {} outputs, max error {worst:.2e} of max |y| {scale:.3}",
        fast.len()
    );
    // 8-bit activations against f32 ones: llama.cpp's scheme stays within a few percent.
    if worst.is_nan() || worst >= 0.05 {
        return Err(
            format!("quantized matmul is off the reference by {worst:.3} (of max |y|)").into(),
        );
    }
    println!("downstream: ok");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("downstream: error: {e}");
            ExitCode::FAILURE
        }
    }
}
