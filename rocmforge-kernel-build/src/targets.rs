//! Which GPUs the kernels are built for.

/// AMD targets built and embedded by default: CDNA2 (MI200: gfx90a), CDNA3 (MI300: gfx942),
/// RDNA2 (RX 6000: gfx1030), RDNA3 (RX 7000: gfx1100, gfx1101, gfx1102), RDNA4 (RX 9000: gfx1200,
/// gfx1201). An AMD code object runs only on its exact target.
pub const DEFAULT_AMD_TARGETS: &[&str] = &[
    "gfx90a", "gfx942", "gfx1030", "gfx1100", "gfx1101", "gfx1102", "gfx1200", "gfx1201",
];

/// NVIDIA targets whose PTX is embedded: PTX for sm_80 (ISA 7.5) is compiled by the driver for
/// sm_80 and every newer GPU (sm_86, sm_89, sm_90, ...), so one is enough.
pub const EMBEDDED_NVIDIA_TARGETS: &[&str] = &["sm_80"];

/// NVIDIA targets `cargo xtask kernels` builds by default (cubins with nvcc, else PTX).
pub const DEFAULT_NVIDIA_TARGETS: &[&str] = &["sm_80", "sm_90"];

/// The variable that overrides [`DEFAULT_AMD_TARGETS`] (as llama.cpp's `AMDGPU_TARGETS`):
/// `gfx1030;gfx1100` or `gfx1030,gfx1100`; an empty value builds no AMD target.
pub const AMDGPU_TARGETS_ENV: &str = "ROCMFORGE_AMDGPU_TARGETS";

/// Splits a target list written with commas, semicolons or spaces.
pub fn parse_list(text: &str) -> Vec<String> {
    text.split([',', ';', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// The AMD targets to build: `ROCMFORGE_AMDGPU_TARGETS` when set, else [`DEFAULT_AMD_TARGETS`].
pub fn amd_targets_from_env() -> Vec<String> {
    match std::env::var(AMDGPU_TARGETS_ENV) {
        Ok(list) => parse_list(&list),
        Err(_) => DEFAULT_AMD_TARGETS
            .iter()
            .map(|t| (*t).to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_and_semicolons() {
        assert_eq!(
            parse_list("gfx1030;gfx1100, gfx942"),
            ["gfx1030", "gfx1100", "gfx942"]
        );
        assert!(parse_list(" ; ").is_empty());
    }
}
