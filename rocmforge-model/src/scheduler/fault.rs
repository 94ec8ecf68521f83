//! Test-only step-fault injection, so the server's error paths can be tested on the CPU.
//!
//! Compiled only with the `fault-injection` feature (off by default) and in this crate's own unit
//! tests: a release build has no trace of it. With the feature, `ROCMFORGE_INJECT_STEP_FAULT=N`
//! (N >= 1) in the environment makes every N-th batched step of an engine fail as a kernel error
//! would (its sequences get `EngineEvent::Failed`; the engine keeps running), and
//! `ROCMFORGE_INJECT_STEP_FAULT=device` makes the first step fail as a lost device does (a runtime
//! error: the engine fails everything and stops, so `Engine::is_healthy` turns false);
//! `ROCMFORGE_INJECT_STEP_FAULT=oom:N` makes step N run out of device memory once, and
//! `ROCMFORGE_INJECT_STEP_FAULT=kernel:N` queues a *real* device fault (an out-of-bounds store,
//! `rocmforge_tensor::ops::inject_device_fault`) before step N, so the GPU's own error reaches
//! the engine as after a kernel bug. Unset or invalid, nothing is injected. Unit tests set a [`StepFaults`] on the worker directly, without
//! the environment.

use crate::error::ModelError;

/// The environment variable read (with the `fault-injection` feature) when an engine starts.
pub(crate) const FAULT_ENV: &str = "ROCMFORGE_INJECT_STEP_FAULT";

/// Which steps fail, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepFault {
    /// Every N-th step (N >= 1) fails as a kernel error would.
    Every(u64),
    /// Every step fails as a lost device does (the engine stops after the first).
    Device,
    /// Step N (counted from 1) fails as running out of device memory does.
    OutOfMemoryAt(u64),
    /// Before step N (counted from 1) a faulting kernel is queued on the device: the step
    /// itself then fails with the device's error.
    KernelAt(u64),
}

impl StepFault {
    /// Parses a value of [`FAULT_ENV`]: `device`, `oom:N` (step N runs out of device memory),
    /// `kernel:N` (a real device fault before step N), or N >= 1; anything else is no fault.
    pub(crate) fn parse(value: &str) -> Option<StepFault> {
        let step = |n: &str| n.parse::<u64>().ok().filter(|&n| n >= 1);
        if value == "device" {
            Some(StepFault::Device)
        } else if let Some(n) = value.strip_prefix("oom:") {
            step(n).map(StepFault::OutOfMemoryAt)
        } else if let Some(n) = value.strip_prefix("kernel:") {
            step(n).map(StepFault::KernelAt)
        } else {
            step(value).map(StepFault::Every)
        }
    }
}

/// What a step gets from the injector.
#[derive(Debug)]
pub(crate) enum Injected {
    /// Nothing: the step runs.
    None,
    /// The step fails with this error without running.
    Error(ModelError),
    /// A faulting kernel is queued on the device, then the step runs (and fails).
    Kernel,
}

/// A worker's fault injector: the fault, if any, and the steps it has counted.
#[derive(Debug)]
pub(crate) struct StepFaults {
    fault: Option<StepFault>,
    steps: u64,
}

impl StepFaults {
    /// An injector of `fault` (none: every step runs).
    pub(crate) fn new(fault: Option<StepFault>) -> StepFaults {
        StepFaults { fault, steps: 0 }
    }

    /// The injector an engine starts with: [`FAULT_ENV`] with the `fault-injection` feature,
    /// none without it (this crate's unit tests, which set their own).
    pub(crate) fn from_env() -> StepFaults {
        #[cfg(feature = "fault-injection")]
        let fault = std::env::var(FAULT_ENV)
            .ok()
            .and_then(|v| StepFault::parse(&v));
        #[cfg(not(feature = "fault-injection"))]
        let fault = None;
        StepFaults::new(fault)
    }

    /// Steps counted so far (by the periodic and out-of-memory faults).
    #[cfg(test)]
    pub(crate) fn counted(&self) -> u64 {
        self.steps
    }

    /// What this step gets: an injected error, a real device fault to queue first
    /// ([`Injected::Kernel`]), or nothing.
    pub(crate) fn next(&mut self) -> Injected {
        if let Some(StepFault::KernelAt(n)) = self.fault {
            self.steps += 1;
            return if self.steps == n {
                Injected::Kernel
            } else {
                Injected::None
            };
        }
        match self.next_error() {
            Some(e) => Injected::Error(e),
            None => Injected::None,
        }
    }

    /// The injected error of this step, if any.
    fn next_error(&mut self) -> Option<ModelError> {
        match self.fault? {
            StepFault::Every(n) => {
                self.steps += 1;
                (self.steps % n == 0)
                    .then(|| ModelError::InvalidInput(format!("injected step fault ({FAULT_ENV})")))
            }
            StepFault::OutOfMemoryAt(n) => {
                self.steps += 1;
                (self.steps == n).then(|| {
                    ModelError::Tensor(rocmforge_tensor::TensorError::OutOfDeviceMemory {
                        tensor: "injected activations".to_string(),
                        needed: 1 << 30,
                        free: 0,
                    })
                })
            }
            StepFault::KernelAt(_) => None,
            StepFault::Device => Some(ModelError::Tensor(rocmforge_tensor::TensorError::Hip(
                rocmforge_hip::HipError::Api {
                    call: "cuLaunchKernel",
                    platform: rocmforge_hip::Platform::Nvidia,
                    code: 700,
                    name: "CUDA_ERROR_ILLEGAL_ADDRESS".to_string(),
                    message: format!("injected device fault ({FAULT_ENV}=device)"),
                },
            ))),
        }
    }
}
