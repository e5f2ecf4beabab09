//! `cargo xtask bench bus|startup|memory|all`: the performance benchmarks, in
//! release builds, each printed as a table and written as JSON to `target/bench/`.
//!
//! - `bus`: events from a producer module to consumer modules through the real
//!   bus across the real module boundary, next to the same traffic over bare
//!   crossbeam channels (the floor), with the ratio (orch-runtime's `bench_bus`
//!   example does the measuring).
//! - `startup`: 20 modules, already built, from process start to `app.started`,
//!   median of repeated runs, with the share of each phase.
//! - `memory`: resident memory of the host idle with 3 and 20 modules and with 20
//!   modules under 100,000 events/s.
//!
//! - `tap`: the bus with no tap, a stalled `cargo orch tap` (a client that never
//!   reads) and a reading one, through the real control socket (orch-operate's
//!   `bench_tap` example).
//!
//! Benchmarks are commands, not tests: nothing here asserts a time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use nix::sys::signal::Signal;
use orch_e2e::OrchProcess;
use serde_json::{Value, json};

use crate::stats::{cores, ms};

/// Which benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Bus throughput and latency.
    Bus,
    /// Start-up of 20 modules.
    Startup,
    /// Resident memory.
    Memory,
    /// Across two orchestrators through NATS.
    Bridge,
    /// The bus with a stalled `cargo orch tap`, and with a reading one.
    Tap,
    /// All of them.
    All,
}

/// What `cargo xtask bench <which>` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Which benchmark.
    pub which: Which,
    /// Events per bus configuration (divided by the subscriber count).
    pub events: u64,
    /// Start-up runs.
    pub runs: u32,
}

impl Options {
    /// The defaults for `which`.
    pub fn new(which: Which) -> Self {
        Self {
            which,
            events: 200_000,
            runs: 10,
        }
    }
}

/// Runs the chosen benchmarks.
pub fn run(root: &Path, options: Options) -> Result<bool> {
    let out = crate::bench_dir();
    std::fs::create_dir_all(&out)?;
    if matches!(options.which, Which::Bus | Which::All) {
        let result = harness(root, "bus", options.events)?;
        print_bus(&result);
        write(&out.join("bus.json"), &result)?;
    }
    if matches!(options.which, Which::Startup | Which::All) {
        let result = startup(root, options.runs)?;
        write(&out.join("startup.json"), &result)?;
    }
    if matches!(options.which, Which::Tap | Which::All) {
        // Ten times the bus rows' events: each run lasts about a second.
        let args = [(options.events * 10).to_string()];
        let mut result = crate::release_example::json(root, "orch-operate", "bench_tap", &args)?;
        result["cores"] = json!(cores());
        print_tap(&result);
        write(&out.join("tap.json"), &result)?;
    }
    if matches!(options.which, Which::Memory | Which::All) {
        let result = harness(root, "memory", options.events)?;
        print_memory(&result);
        write(&out.join("memory.json"), &result)?;
    }
    if matches!(options.which, Which::Bridge | Which::All) {
        // JetStream rows carry this many events (core NATS five times
        // more): about a second and a half each on a small machine, where
        // 20,000 (before publishes were pipelined) lasted a third of one.
        let result = crate::bench_bridge::run(root, options.events.min(100_000))?;
        write(&out.join("bridge.json"), &result)?;
    }
    Ok(true)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs orch-runtime's `bench_bus` example in release and reads its JSON.
fn harness(root: &Path, what: &str, events: u64) -> Result<Value> {
    let args = [what.to_owned(), events.to_string(), "release".to_owned()];
    let mut value = crate::release_example::json(root, "orch-runtime", "bench_bus", &args)?;
    value["cores"] = json!(cores());
    Ok(value)
}

fn print_tap(result: &Value) {
    println!(
        "bench tap ({} cores; events/s through the bus to one subscriber, median of interleaved runs)",
        cores()
    );
    println!(
        "{:<30} {:>10} {:>13} {:>9} {:>14}",
        "with", "events", "events/s", "vs none", "tap dropped"
    );
    let rows = result["rows"].as_array().cloned().unwrap_or_default();
    let base = rows
        .first()
        .and_then(|r| r["events_per_s"].as_f64())
        .unwrap_or(0.0);
    for row in &rows {
        let rate = row["events_per_s"].as_f64().unwrap_or(0.0);
        println!(
            "{:<30} {:>10} {:>13.0} {:>8.2}x {:>14}",
            row["tap"].as_str().unwrap_or("?"),
            row["events"].as_u64().unwrap_or(0),
            rate,
            rate / base.max(1e-9),
            row["tap_dropped"].as_u64().unwrap_or(0)
        );
    }
}

fn print_bus(result: &Value) {
    println!(
        "bench bus ({} cores). events/s: full throttle, median of interleaved runs of about \
         1.5 s each; p50/p99 µs: publish to handler for events evenly spaced at 10,000/s, \
         worst subscriber; burst p50 µs: the first event of each burst of 10 a millisecond; \
         payload: the JSON bytes on the bus",
        cores()
    );
    println!(
        "{:<32} {:>7} {:>4} {:>11} {:>5} {:>13} {:>8} {:>8} {:>10}",
        "path", "payload", "subs", "events", "runs", "events/s", "p50 µs", "p99 µs", "burst p50"
    );
    let rows = result["rows"].as_array().cloned().unwrap_or_default();
    let get = |r: &Value, key: &str| r[key].as_f64().unwrap_or(0.0);
    println!(
        "targets (issue 29): orch bus within 1.3x of the bounded floor's events/s, and its p50 within 1.2x"
    );
    for triple in rows.chunks(3) {
        for row in triple {
            print_row(row);
        }
        if let [_, fair, orch] = triple {
            let slower = get(fair, "events_per_s") / get(orch, "events_per_s").max(1e-9);
            let p50 = get(orch, "p50_us") / get(fair, "p50_us").max(1e-9);
            println!(
                "{:<32} throughput {slower:.2}x ({}), p50 {p50:.2}x ({})",
                "  orch / bounded floor",
                verdict(slower <= 1.3),
                verdict(p50 <= 1.2)
            );
        }
    }
    print_isolated(result);
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// One row of the bus table.
fn print_row(row: &Value) {
    let micros = |key: &str| {
        row[key]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
    };
    println!(
        "{:<32} {:>7} {:>4} {:>11} {:>5} {:>13.0} {:>8} {:>8} {:>10}",
        row["path"].as_str().unwrap_or(""),
        row["json_bytes"].as_u64().unwrap_or(0),
        row["subscribers"],
        row["events"].as_u64().unwrap_or(0),
        row["runs"].as_u64().unwrap_or(0),
        row["events_per_s"].as_f64().unwrap_or(0.0),
        micros("p50_us"),
        micros("p99_us"),
        micros("burst_first_p50_us"),
    );
}

/// The isolated consumer's rows (shared memory, then pipes), each against
/// an in-process consumer with the same count in the same run, checked
/// against the targets of the shared-memory path; then an idle child's CPU.
fn print_isolated(result: &Value) {
    let get = |r: &Value, key: &str| r[key].as_f64().unwrap_or(0.0);
    println!(
        "targets (issue 29), shared memory: p50 under 20 µs for evenly spaced events; 1 KB \
         throughput within 1.5x of in-process"
    );
    for row in result["isolated_rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        print_row(&row);
        let slower = get(&row, "reference_events_per_s") / get(&row, "events_per_s").max(1e-9);
        let shm = row["path"].as_str().is_some_and(|p| p.contains("shm"));
        let targets = if shm {
            let throughput = if row["payload_bytes"].as_u64() == Some(1024) {
                format!("; within 1.5x: {}", verdict(slower <= 1.5))
            } else {
                String::new()
            };
            format!(
                " (p50 under 20 µs: {}{throughput})",
                verdict(get(&row, "p50_us") < 20.0)
            )
        } else {
            String::new()
        };
        println!(
            "{:<32} throughput {slower:.2}x slower than in-process ({:.0}/s, same run){targets}",
            "  isolated / in-process",
            get(&row, "reference_events_per_s")
        );
    }
    for idle in result["idle_child"].as_array().cloned().unwrap_or_default() {
        println!(
            "idle isolated child ({}): {:.1} ms of CPU in {:.0} s",
            idle["transport"].as_str().unwrap_or(""),
            get(&idle, "cpu_ms"),
            get(&idle, "seconds")
        );
    }
}

fn print_memory(result: &Value) {
    println!("bench memory ({} cores)", cores());
    for row in result["rows"].as_array().cloned().unwrap_or_default() {
        println!(
            "{:<60} {:>8.1} MiB",
            row["state"].as_str().unwrap_or(""),
            row["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0
        );
    }
}

/// The command line of one start-up run: the release libraries of the last
/// build, the benchmark's own configuration.
fn startup_args(config_dir: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> =
        ["orch", "run", "--no-build", "--release", "--config-dir"]
            .map(Into::into)
            .to_vec();
    args.push(config_dir.into());
    args
}

/// 20 modules from process start to `app.started`, `runs` times.
fn startup(root: &Path, runs: u32) -> Result<Value> {
    let status = cargo()
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "cargo-orch",
            "-p",
            "mod-test-module",
        ])
        .status()?;
    ensure!(status.success(), "cargo build --release failed");
    // Where cargo put it: `CARGO_TARGET_DIR` may move the target folder.
    let binary = orch_e2e::target_dir().join("release").join("cargo-orch");
    let config = tempfile::tempdir()?;
    let modules: String = (1..=20)
        .map(|n| format!("  - name: startup-{n:02}\n    package: mod-test-module\n"))
        .collect();
    std::fs::write(
        config.path().join("modules.yaml"),
        format!("modules:\n{modules}"),
    )?;
    std::fs::write(
        config.path().join("main.yaml"),
        format!(
            "logging:\n  dir: {}\n",
            config.path().join("logs").display()
        ),
    )?;
    let mut totals = Vec::new();
    let mut phases: Vec<[f64; 3]> = Vec::new();
    for _ in 0..runs {
        let mut command = Command::new(&binary);
        command
            .current_dir(root)
            .args(startup_args(config.path()))
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        let spawned = Instant::now();
        let mut orch = OrchProcess::spawn(command)?;
        let line = orch
            .wait_for("app.started:", Duration::from_secs(60))
            .map_err(|e| anyhow!(e))?;
        totals.push(line.at.saturating_duration_since(spawned));
        let timing = orch
            .wait_for("[TIMING] startup of 20 modules took", Duration::ZERO)
            .map_err(|e| anyhow!(e))?;
        phases.push(phase_split(&timing.text));
        orch.signal(Signal::SIGINT).map_err(|e| anyhow!(e))?;
        orch.wait_exit(Duration::from_secs(30))
            .map_err(|e| anyhow!(e))?;
    }
    totals.sort();
    let median = totals[totals.len() / 2];
    let mean_phase =
        |i: usize| phases.iter().map(|p| p[i]).sum::<f64>() / phases.len().max(1) as f64;
    let (load, init, start) = (mean_phase(0), mean_phase(1), mean_phase(2));
    let total_ms = median.as_secs_f64() * 1e3;
    println!(
        "bench startup: 20 modules, {runs} runs, {} cores (release, --no-build)",
        cores()
    );
    println!(
        "process start to app.started: median {total_ms:.1} ms (min {:.1}, max {:.1})",
        ms(totals[0]),
        ms(totals[totals.len() - 1])
    );
    println!(
        "  load {load:.1} ms ({:.0}%), initialize {init:.1} ms ({:.0}%), start {start:.1} ms ({:.0}%), rest (process, config, logging) {:.1} ms",
        100.0 * load / total_ms,
        100.0 * init / total_ms,
        100.0 * start / total_ms,
        total_ms - load - init - start
    );
    Ok(json!({
        "benchmark": "startup",
        "cores": cores(),
        "modules": 20,
        "runs": runs,
        "median_ms": total_ms,
        "min_ms": ms(totals[0]),
        "max_ms": ms(totals[totals.len() - 1]),
        "phases_ms": { "load": load, "initialize": init, "start": start },
    }))
}

/// `(load X, initialize X, start X)` of a `[TIMING] startup` line, in ms.
fn phase_split(line: &str) -> [f64; 3] {
    let value = |label: &str| -> f64 {
        let Some(rest) = line.split(&format!("{label} ")).nth(1) else {
            return 0.0;
        };
        let mut words = rest.split([' ', ',', ')']).filter(|w| !w.is_empty());
        let number: f64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0.0);
        match words.next() {
            Some("s") => number * 1e3,
            _ => number,
        }
    };
    [value("load"), value("initialize"), value("start")]
}

fn write(path: &Path, value: &Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)?)?;
    println!("written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_phase_split() {
        let line = "[TIMING] startup of 20 modules took 12.0 ms (load 9.5 ms, initialize 1.25 s, start 0.4 ms)";
        assert_eq!(phase_split(line), [9.5, 1250.0, 0.4]);
    }
}
