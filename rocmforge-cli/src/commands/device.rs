//! `--device` for every command that runs a model (generate, chat, bench, serve, predict,
//! perplexity), and loading the one [`Model`] on it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rocmforge_gguf::GgufFile;
use rocmforge_model::Model;
use rocmforge_model::engine::EngineDevice;
use rocmforge_tensor::Backend;

use crate::progress::BytesBar;

/// The device `arg` names: an explicit GPU that cannot be opened is an error; without
/// `--device`, GPU 0 when one is usable, else the CPU. Says on stderr which device runs.
pub fn select_device(arg: Option<&str>) -> anyhow::Result<EngineDevice> {
    let device = match arg {
        None => {
            return Ok(match Backend::hip(0) {
                Ok(_) => {
                    eprintln!("device: gpu:0");
                    EngineDevice::Gpu(0)
                }
                Err(e) => {
                    eprintln!("device: cpu (no usable GPU: {e})");
                    EngineDevice::Cpu
                }
            });
        }
        Some("cpu") => EngineDevice::Cpu,
        Some("gpu") => EngineDevice::Gpu(0),
        Some(other) => match other.strip_prefix("gpu:").map(str::parse::<usize>) {
            Some(Ok(n)) => EngineDevice::Gpu(n),
            _ => bail!("unknown device '{other}' (expected cpu, gpu or gpu:N)"),
        },
    };
    if let EngineDevice::Gpu(n) = device {
        if let Err(e) = Backend::hip(n) {
            bail!("device gpu:{n}: the GPU backend is not available: {e}");
        }
        eprintln!("device: gpu:{n}");
    } else {
        eprintln!("device: cpu");
    }
    Ok(device)
}

/// "cpu" or "gpu:N".
pub fn device_name(device: EngineDevice) -> String {
    match device {
        EngineDevice::Cpu => "cpu".to_string(),
        EngineDevice::Gpu(n) => format!("gpu:{n}"),
    }
}

/// Loads the model of `file` (opened from `path`) on `device`, under a progress bar while a
/// GPU receives its weights (hidden with `quiet` or when stderr is not a terminal).
pub fn load_model(
    path: &Path,
    file: Arc<GgufFile>,
    device: EngineDevice,
    quiet: bool,
) -> anyhow::Result<Model> {
    let backend = device.backend()?;
    let bar = BytesBar::new(
        "loading weights",
        quiet || matches!(device, EngineDevice::Cpu),
    );
    let model = Model::from_file_with_progress(file, backend, &mut |done, total| {
        bar.update(done, total);
    });
    bar.finish();
    model.with_context(|| format!("loading {} on {}", path.display(), device_name(device)))
}

/// Opens `path` and loads its model on `device` (see [`load_model`]).
pub fn open_model(path: &Path, device: EngineDevice, quiet: bool) -> anyhow::Result<Model> {
    let file = GgufFile::open(path).with_context(|| format!("opening model {}", path.display()))?;
    load_model(path, Arc::new(file), device, quiet)
}
