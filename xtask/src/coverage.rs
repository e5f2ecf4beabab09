//! `cargo xtask coverage`: the line coverage of the library crates under
//! `orch-core/`, measured by cargo-llvm-cov over the default lane (`cargo
//! test --workspace`, the end-to-end tests included: the binaries they run
//! are built instrumented too). It provisions what it needs on first use
//! (rustup's `llvm-tools` component and `cargo install cargo-llvm-cov`),
//! prints a table per crate and writes `target/bench/coverage.json`. The
//! design the project descends from set 80% as its target; nothing is
//! asserted.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

/// The design's target, in percent of lines.
const TARGET: f64 = 80.0;

/// Measures; `Ok(true)` when the instrumented run passed.
pub fn run(root: &Path) -> Result<bool> {
    provision()?;
    let out = orch_e2e::target_dir().join("coverage");
    std::fs::create_dir_all(&out)?;
    let report = out.join("coverage.json");
    let status = orch_e2e::cargo()
        .current_dir(root)
        .args(["llvm-cov", "--workspace", "--json", "--summary-only"])
        .arg("--output-path")
        .arg(&report)
        .status()
        .context("cannot run cargo llvm-cov")?;
    let passed = status.success();
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("cargo llvm-cov wrote no {}", report.display()))?;
    let llvm: Value = serde_json::from_str(&text)?;
    let rows = per_crate(root, &llvm);
    print_table(&rows);
    let bench = crate::bench_dir();
    std::fs::create_dir_all(&bench)?;
    std::fs::write(
        bench.join("coverage.json"),
        serde_json::to_string_pretty(&json!({ "target_percent": TARGET, "crates": rows }))?,
    )?;
    Ok(passed)
}

/// `cargo llvm-cov` and the LLVM tools it reads profiles with.
fn provision() -> Result<()> {
    if Command::new("cargo")
        .args(["llvm-cov", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["component", "add", "llvm-tools"])
        .status()
        .context("cannot run rustup (needed for the llvm-tools component)")?;
    ensure!(status.success(), "rustup component add llvm-tools failed");
    let status = Command::new("cargo")
        .args(["install", "--locked", "cargo-llvm-cov"])
        .status()
        .context("cannot run cargo install")?;
    ensure!(status.success(), "cargo install cargo-llvm-cov failed");
    Ok(())
}

/// Lines covered and counted per crate under `orch-core/`, from llvm-cov's
/// per-file summary.
fn per_crate(root: &Path, llvm: &Value) -> Vec<Value> {
    let core = root.join("orch-core");
    let mut crates: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let files = llvm["data"][0]["files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for file in files {
        let Some(name) = file["filename"].as_str() else {
            continue;
        };
        let Ok(relative) = Path::new(name).strip_prefix(&core) else {
            continue;
        };
        let Some(krate) = relative.components().next() else {
            continue;
        };
        let lines = &file["summary"]["lines"];
        let entry = crates
            .entry(format!("orch-{}", krate.as_os_str().to_string_lossy()))
            .or_default();
        entry.0 += lines["covered"].as_u64().unwrap_or(0);
        entry.1 += lines["count"].as_u64().unwrap_or(0);
    }
    let total = crates
        .values()
        .fold((0, 0), |(c, n), (cc, nn)| (c + cc, n + nn));
    crates
        .into_iter()
        .chain(std::iter::once(("all library crates".to_owned(), total)))
        .map(|(name, (covered, count))| {
            let percent = if count == 0 {
                0.0
            } else {
                (covered as f64 * 1000.0 / count as f64).round() / 10.0
            };
            json!({ "crate": name, "lines": count, "covered": covered, "percent": percent })
        })
        .collect()
}

fn print_table(rows: &[Value]) {
    println!("\nline coverage of the library crates (target {TARGET}%)");
    println!("{:<22} {:>8} {:>8} {:>7}", "crate", "lines", "covered", "%");
    for row in rows {
        println!(
            "{:<22} {:>8} {:>8} {:>6.1}%",
            row["crate"].as_str().unwrap_or_default(),
            row["lines"].as_u64().unwrap_or_default(),
            row["covered"].as_u64().unwrap_or_default(),
            row["percent"].as_f64().unwrap_or_default(),
        );
    }
}
