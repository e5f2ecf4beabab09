//! `cargo xtask bench suite`: how long the README's test command takes, the
//! time every contributor pays. A warm run (everything compiled, no source
//! changed: `cargo test --workspace --no-run` first) is timed here; a cold
//! one (an empty target folder) either here in a target folder of its own
//! (`--cold`) or as measured by the caller (`--cold-seconds`, what `.ci/run`
//! passes for its own first run on a fresh clone). The targets are the
//! design's: 12 minutes cold, 4 warm. The table and
//! `target/bench/suite.json` report them; nothing is asserted.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

/// What `cargo xtask bench suite` was asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Options {
    /// Time a cold run in an empty target folder of its own.
    pub cold: bool,
    /// A cold run's seconds, measured by the caller.
    pub cold_seconds: Option<f64>,
}

/// The design's targets.
const COLD_TARGET: Duration = Duration::from_secs(12 * 60);
const WARM_TARGET: Duration = Duration::from_secs(4 * 60);

/// Runs the benchmark; `Ok(true)` when every timed run passed.
pub fn run(root: &Path, options: Options) -> Result<bool> {
    let mut rows = Vec::new();
    let mut passed = true;
    if options.cold {
        let target = orch_e2e::target_dir().join("bench-suite-cold");
        let _ = std::fs::remove_dir_all(&target);
        let (took, ok) = timed(root, Some(&target))?;
        let _ = std::fs::remove_dir_all(&target);
        passed &= ok;
        rows.push(row("cold (an empty target folder)", took, COLD_TARGET, ok));
    } else if let Some(seconds) = options.cold_seconds {
        ensure!(seconds >= 0.0, "--cold-seconds must not be negative");
        let took = Duration::from_secs_f64(seconds);
        rows.push(row(
            "cold (measured by the caller)",
            took,
            COLD_TARGET,
            true,
        ));
    }
    let status = orch_e2e::cargo()
        .current_dir(root)
        .args(["test", "--workspace", "--no-run", "-q"])
        .status()
        .context("cannot run cargo")?;
    ensure!(status.success(), "cargo test --workspace --no-run failed");
    let (took, ok) = timed(root, None)?;
    passed &= ok;
    rows.push(row("warm (built, no change)", took, WARM_TARGET, ok));
    print_table(&rows);
    let out = crate::bench_dir();
    std::fs::create_dir_all(&out)?;
    let report = json!({ "cores": crate::stats::cores(), "rows": rows });
    std::fs::write(
        out.join("suite.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(passed)
}

/// Times `cargo test --workspace` (in `target` when given); whether it passed.
fn timed(root: &Path, target: Option<&Path>) -> Result<(Duration, bool)> {
    let mut command: Command = orch_e2e::cargo();
    command.current_dir(root).args(["test", "--workspace"]);
    if let Some(target) = target {
        command.env("CARGO_TARGET_DIR", target);
    }
    let began = Instant::now();
    let status = command.status().context("cannot run cargo test")?;
    Ok((began.elapsed(), status.success()))
}

fn row(lane: &str, took: Duration, target: Duration, passed: bool) -> Value {
    json!({
        "run": lane,
        "seconds": (took.as_secs_f64() * 10.0).round() / 10.0,
        "target_seconds": target.as_secs(),
        "meets_target": took <= target,
        "passed": passed,
    })
}

fn print_table(rows: &[Value]) {
    println!("\ncargo test --workspace ({} cores)", crate::stats::cores());
    println!("{:<32} {:>9} {:>9}  verdict", "run", "seconds", "target");
    for row in rows {
        let verdict = match (row["passed"].as_bool(), row["meets_target"].as_bool()) {
            (Some(false), _) => "FAILED",
            (_, Some(true)) => "meets the target",
            _ => "misses the target",
        };
        println!(
            "{:<32} {:>9.1} {:>9}  {verdict}",
            row["run"].as_str().unwrap_or_default(),
            row["seconds"].as_f64().unwrap_or_default(),
            row["target_seconds"].as_u64().unwrap_or_default(),
        );
    }
}
