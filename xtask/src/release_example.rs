//! A benchmark that is an example of a library crate, run in release: its
//! last line of output is its JSON report.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow, ensure};
use orch_e2e::cargo;
use serde_json::Value;

/// Runs `example` of `package` in release with `args` and reads the JSON
/// document it prints last.
pub fn json(root: &Path, package: &str, example: &str, args: &[String]) -> Result<Value> {
    let output = cargo()
        .current_dir(root)
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            package,
            "--example",
            example,
            "--",
        ])
        .args(args)
        .output()
        .with_context(|| format!("running the {example} example"))?;
    ensure!(
        output.status.success(),
        "{example} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .last()
        .ok_or_else(|| anyhow!("{example} printed nothing"))?;
    serde_json::from_str(last).with_context(|| format!("reading {example}'s output"))
}
