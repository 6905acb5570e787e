//! Helpers shared by the integration tests that drive the `vitrina` binary.

use std::process::{Command, Output};

/// Runs the binary under test.
pub fn vitrina(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(args)
        .output()
        .unwrap()
}

/// The hits of a successful `search --json`, failing with its stderr otherwise.
pub fn json_hits(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
