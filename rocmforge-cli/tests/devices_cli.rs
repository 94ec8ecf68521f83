//! `rocmforge devices` runs to completion on any machine: with a GPU it lists it, without one it
//! says "no GPU device" and still exits 0 (CI runs this against Debian's libamdhip64 with no GPU).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn devices(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .arg("devices")
        .args(args)
        .output()
        .expect("run rocmforge");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn devices_reports_a_device_or_no_device_cleanly() {
    let (ok, stdout, stderr) = devices(&[]);
    assert!(ok, "exit status not 0; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stdout.contains("device 0: ") || stdout.contains("no GPU device: "),
        "{stdout}"
    );
}

#[test]
fn devices_json_is_valid_and_consistent() {
    let (ok, stdout, stderr) = devices(&["--json"]);
    assert!(ok, "exit status not 0; stderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    let n = v["devices"]
        .as_array()
        .map(Vec::len)
        .expect("devices array");
    assert_eq!(n == 0, v["error"].is_string(), "{stdout}");
}
