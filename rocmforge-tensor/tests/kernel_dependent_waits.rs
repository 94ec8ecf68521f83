//! The tensor crate launches the decode path's kernels dependent (`LaunchArgs::dependent`: on
//! NVIDIA sm_90 images such a kernel may start before the kernel before it has finished; the
//! tiled GEMMs, prefill attention, dequant and softmax launch normally, measured faster so),
//! which is only correct when the kernel waits for its predecessor (`RF_GRID_DEP_WAIT`,
//! `rf_platform.h`) before it reads an earlier launch's output or writes anything. Every kernel
//! waits, so any launch site may be made dependent: this test reads the kernel sources and
//! fails for any kernel whose body does not begin with `RF_GRID_DEP_BEGIN()` or go through one
//! of the staged matvec bodies that wait after their first weight loads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

fn kernel_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kernels")
}

/// The bodies of the `RF_KERNEL` functions of `src`: (name, body text).
fn kernels(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(k) = src[at..].find("RF_KERNEL(") {
        let start = at + k;
        at = start + "RF_KERNEL(".len();
        // Skip the macro's own definition in rf_platform.h and mentions in comments.
        let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
        let before = src[line_start..start].trim();
        if before.starts_with("//") || before.starts_with("#define") {
            continue;
        }
        let Some(void) = src[at..].find("void ") else {
            break;
        };
        let name_start = at + void + "void ".len();
        let name_len = src[name_start..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '#'))
            .unwrap_or(0);
        let name = src[name_start..name_start + name_len].to_string();
        let Some(open) = src[name_start..].find('{') else {
            break;
        };
        let open = name_start + open;
        let mut depth = 0usize;
        let mut end = open;
        for (i, c) in src[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push((name, src[open + 1..end].to_string()));
        at = end;
    }
    out
}

/// Whether a kernel body waits before anything else: `RF_GRID_DEP_BEGIN()` as its first
/// statement, or one of the staged matvec bodies (which wait after their first weight loads).
fn waits(body: &str) -> bool {
    let first = body
        .lines()
        .map(|l| l.trim().trim_end_matches('\\').trim())
        .find(|l| !l.is_empty() && !l.starts_with("//"));
    first == Some("RF_GRID_DEP_BEGIN();")
        || body.contains("rf_mmvq_staged<")
        || body.contains("rf_mmvf_staged<")
}

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "hip" || x == "h"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_launched_kernel_waits_for_its_predecessor() {
    let dir = kernel_dir();
    let mut files = sources(&dir);
    files.extend(sources(&dir.join("include")));
    let mut checked = 0;
    let mut missing = Vec::new();
    for file in files {
        // Test-only kernels are launched by the hip crate's own tests, never dependent.
        if file.file_name().is_some_and(|n| n == "test_kernels.hip") {
            continue;
        }
        let src = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (name, body) in kernels(&src) {
            checked += 1;
            if !waits(&body) {
                missing.push(format!("{}: {name}", file.display()));
            }
        }
    }
    assert!(
        checked > 40,
        "found only {checked} kernels: the scan is broken"
    );
    assert!(
        missing.is_empty(),
        "kernels without RF_GRID_DEP_BEGIN(): {missing:#?}"
    );
}

#[test]
fn staged_matvecs_wait_before_reading_activations() {
    let src = fs::read_to_string(kernel_dir().join("include/rf_mmvq_fused.h"))
        .unwrap_or_else(|e| panic!("rf_mmvq_fused.h: {e}"));
    for (body_start, stage) in [
        ("RF_DEVICE void rf_mmvq_staged(", "rf_stage_q8_1<"),
        ("RF_DEVICE void rf_mmvf_staged(", "rf_stage_round16<"),
    ] {
        let from = src
            .find(body_start)
            .unwrap_or_else(|| panic!("{body_start} not found"));
        let body = &src[from..];
        let wait = body.find("RF_GRID_DEP_").unwrap_or(usize::MAX);
        let staging = body.find(stage).unwrap_or(0);
        let first_store = body.find("*o =").unwrap_or(usize::MAX);
        assert!(
            wait < staging,
            "{body_start}: waits after staging the activations"
        );
        assert!(
            wait < first_store,
            "{body_start}: waits after its first store"
        );
    }
}

#[test]
fn the_scan_sees_a_kernel_without_the_wait() {
    let src = "RF_KERNEL(256) void good(float* x) {\n    RF_GRID_DEP_BEGIN();\n    x[0] = 1.0f;\n}\n\
               RF_KERNEL(256) void bad(float* x) {\n    x[0] = 1.0f;\n    RF_GRID_DEP_BEGIN();\n}\n";
    let found: Vec<(String, bool)> = kernels(src)
        .into_iter()
        .map(|(n, b)| (n, waits(&b)))
        .collect();
    assert_eq!(
        found,
        vec![("good".to_string(), true), ("bad".to_string(), false)]
    );
}
