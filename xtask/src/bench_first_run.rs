//! `cargo xtask bench first-run`: a newcomer's first run, timed. A fresh
//! clone of this repository's HEAD (`git clone`, so uncommitted changes are
//! not in it) with an empty target folder runs the README's first command,
//! `cargo orch run --watch`, until the consumer receives its first ping.
//! The design's target is 45 s on a 2-core machine; the table and
//! `target/bench/first-run.json` report it, nothing is asserted. The crates
//! cargo downloads are not counted: they come from cargo's own cache.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use nix::sys::signal::Signal;
use orch_e2e::OrchProcess;
use serde_json::json;

/// The design's target.
const TARGET: Duration = Duration::from_secs(45);
/// How long the run may take before it counts as failed.
const GIVE_UP: Duration = Duration::from_secs(15 * 60);
/// The consumer's line for the producer's first ping.
const FIRST_PING: &str = "Received test.ping: hello (seq 1)";

/// Runs the benchmark; `Ok(true)` when the run reached the first ping.
pub fn run(root: &Path) -> Result<bool> {
    let scratch = tempfile::Builder::new()
        .prefix("orch-first-run-")
        .tempdir()
        .context("cannot create a temporary folder")?;
    let clone = scratch.path().join("cargo-orch");
    let status = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(root)
        .arg(&clone)
        .status()
        .context("cannot run git clone")?;
    ensure!(status.success(), "git clone of {} failed", root.display());

    let mut command = orch_e2e::cargo();
    command
        .current_dir(&clone)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUST_LOG")
        .args(["orch", "run", "--watch"]);
    let began = Instant::now();
    let mut orch = OrchProcess::spawn(command).context("cannot start cargo orch run")?;
    let reached = orch.wait_for(FIRST_PING, GIVE_UP);
    let took = began.elapsed();
    let _ = orch.signal(Signal::SIGINT);
    let _ = orch.wait_exit(Duration::from_secs(30));
    let passed = match &reached {
        Ok(line) => {
            let took = line.at.saturating_duration_since(began);
            report(took, true)?;
            true
        }
        Err(output) => {
            eprintln!("the first run did not reach the first ping:\n{output}");
            report(took, false)?;
            false
        }
    };
    Ok(passed)
}

fn report(took: Duration, passed: bool) -> Result<()> {
    let seconds = (took.as_secs_f64() * 10.0).round() / 10.0;
    let verdict = match (passed, took <= TARGET) {
        (false, _) => "FAILED",
        (true, true) => "meets the target",
        (true, false) => "misses the target",
    };
    println!(
        "\nfirst run: fresh clone, empty target folder, `cargo orch run --watch` to the first ping ({} cores)",
        crate::stats::cores()
    );
    println!("{:<32} {:>9} {:>9}  verdict", "run", "seconds", "target");
    println!(
        "{:<32} {:>9.1} {:>9}  {verdict}",
        "first run (cold)",
        seconds,
        TARGET.as_secs()
    );
    let out = crate::bench_dir();
    std::fs::create_dir_all(&out)?;
    let report = json!({
        "cores": crate::stats::cores(),
        "rows": [{
            "run": "first run (cold)",
            "seconds": seconds,
            "target_seconds": TARGET.as_secs(),
            "meets_target": took <= TARGET,
            "passed": passed,
        }],
    });
    std::fs::write(
        out.join("first-run.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(())
}
