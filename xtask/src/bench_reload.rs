//! `cargo xtask bench reload`: how long a saved edit takes to run, measured
//! against its floor in the same run.
//!
//! In a throw-away copy of the workspace, `cargo orch run --watch` runs the
//! template-like `mod-test-module`; the benchmark edits it N times (one log line
//! per edit) and measures, for each edit, the time from the write to the
//! orchestrator's `[TIMING] reload ...` line, with the orchestrator's own split
//! (debounce, build, swap). Then, with the orchestrator stopped, it makes the same
//! kind of edit N times and times a plain `cargo build -p mod-test-module`: the
//! floor. It also reads the process's resident memory, threads and open files
//! before and after the reloads, to show they do not grow with reloads. Last,
//! it reloads a module that leaves a thread running (`fixture-thread-leak`) N
//! times: each such generation's library stays loaded for good, and the
//! memory that costs per reload is measured.
//! Prints a table and writes it as JSON to `target/bench/reload.json`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use nix::sys::signal::Signal;
use orch_e2e::{OrchProcess, ScratchWorkspace};
use serde_json::json;

use crate::stats::{cores, ms, percentile};

const MODULE: &str = "mod-test-module";
const SOURCE: &str = "modules-backend/mod-test-module/src/lib.rs";
const ORIGINAL: &str = "\"Test module started\"";
const DEADLINE: Duration = Duration::from_secs(120);
/// Quiet time between edits, so each edit is its own reload.
const PAUSE: Duration = Duration::from_millis(300);

/// What `cargo xtask bench reload` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How many edits to time (each way).
    pub edits: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self { edits: 20 }
    }
}

/// One reload as the orchestrator reported it, plus the externally measured time.
#[derive(Debug, Clone, Copy)]
struct Sample {
    save_to_running: Duration,
    debounce: Duration,
    build: Duration,
    swap: Duration,
}

/// Runs the benchmark; `Ok(true)` when every edit reloaded.
pub fn run(options: Options) -> Result<bool> {
    let scratch = ScratchWorkspace::copy_of_repo().context("copying the workspace")?;
    scratch.write(
        "config/modules.yaml",
        &format!("modules:\n  - name: {MODULE}\n"),
    )?;
    let mut orch = OrchProcess::spawn(scratch.orch(&["run", "--watch"]))?;
    orch.wait_for("[WATCH] watching", DEADLINE)
        .map_err(|e| anyhow!(e))?;
    let before = ProcessUsage::read(orch.pid());

    let mut samples = Vec::new();
    let mut previous = ORIGINAL.to_owned();
    for edit in 1..=options.edits {
        std::thread::sleep(PAUSE);
        let next = format!("\"Test module started (edit {edit})\"");
        scratch.replace(SOURCE, &previous, &next)?;
        let written = Instant::now();
        previous = next;
        let line = orch
            .wait_for(
                &format!("[TIMING] reload of '{MODULE}' to generation {}", edit + 1),
                DEADLINE,
            )
            .map_err(|e| anyhow!(e))?;
        let mut sample =
            parse_timing(&line.text).with_context(|| format!("reading {}", line.text))?;
        sample.save_to_running = line.at.saturating_duration_since(written);
        samples.push(sample);
        eprint!("\rreload {edit}/{}", options.edits);
    }
    eprintln!();
    std::thread::sleep(Duration::from_millis(500));
    let after = ProcessUsage::read(orch.pid());
    let kept_mapped = orch.output().contains("kept generation");
    orch.signal(Signal::SIGINT).map_err(|e| anyhow!(e))?;
    let status = orch
        .wait_exit(Duration::from_secs(30))
        .map_err(|e| anyhow!(e))?;
    ensure!(status.success(), "cargo orch run exited with {status}");

    let mut floor = Vec::new();
    for edit in 1..=options.edits {
        let next = format!("\"Test module started (floor {edit})\"");
        scratch.replace(SOURCE, &previous, &next)?;
        previous = next;
        let started = Instant::now();
        let output = scratch.cargo(&["build", "-q", "-p", MODULE]).output()?;
        ensure!(
            output.status.success(),
            "cargo build failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        floor.push(started.elapsed());
        eprint!("\rfloor {edit}/{}", options.edits);
    }
    eprintln!();

    let leak = leaky_reloads(&scratch, options.edits)?;
    let report = Report::new(&samples, &floor, before, after, kept_mapped, leak);
    report.print();
    report.write(&crate::bench_dir().join("reload.json"))?;
    Ok(true)
}

/// The module that leaves a thread running in every generation.
const LEAKY: &str = "fixture-thread-leak";
const LEAKY_SOURCE: &str = "tests/fixtures/fixture-thread-leak/src/lib.rs";

/// Memory before and after `reloads` reloads of [`LEAKY`].
#[derive(Debug, Clone, Copy)]
struct LeakPhase {
    reloads: u32,
    before: ProcessUsage,
    after: ProcessUsage,
    kept: usize,
}

impl LeakPhase {
    fn per_reload_kib(&self) -> f64 {
        (self.after.rss_kib as f64 - self.before.rss_kib as f64) / f64::from(self.reloads.max(1))
    }
}

/// Reloads [`LEAKY`] `reloads` times under `cargo orch run --watch` and reads
/// the process's memory before and after.
fn leaky_reloads(scratch: &ScratchWorkspace, reloads: u32) -> Result<LeakPhase> {
    scratch.write(
        "config/modules.yaml",
        &format!("modules:\n  - name: {LEAKY}\n"),
    )?;
    let mut orch = OrchProcess::spawn(scratch.orch(&["run", "--watch"]))?;
    orch.wait_for("leaked thread v0 alive", DEADLINE)
        .map_err(|e| anyhow!(e))?;
    std::thread::sleep(PAUSE);
    let before = ProcessUsage::read(orch.pid());
    for n in 1..=reloads {
        scratch.replace(
            LEAKY_SOURCE,
            &format!("MARK: &str = \"v{}\"", n - 1),
            &format!("MARK: &str = \"v{n}\""),
        )?;
        orch.wait_for(
            &format!("[TIMING] reload of '{LEAKY}' to generation {}", n + 1),
            DEADLINE,
        )
        .map_err(|e| anyhow!(e))?;
        eprint!("\rleaky reload {n}/{reloads}");
        std::thread::sleep(PAUSE);
    }
    eprintln!();
    let after = ProcessUsage::read(orch.pid());
    let kept = orch
        .lines_with("left 1 thread running: its library stays loaded")
        .len();
    orch.signal(Signal::SIGINT).map_err(|e| anyhow!(e))?;
    let status = orch
        .wait_exit(Duration::from_secs(30))
        .map_err(|e| anyhow!(e))?;
    ensure!(status.success(), "cargo orch run exited with {status}");
    // Put the source back, so the copy could run the benchmark again.
    scratch.replace(
        LEAKY_SOURCE,
        &format!("MARK: &str = \"v{reloads}\""),
        "MARK: &str = \"v0\"",
    )?;
    Ok(LeakPhase {
        reloads,
        before,
        after,
        kept,
    })
}

/// `save-to-running X (debounce X, build X, swap X)` from a `[TIMING] reload` line.
fn parse_timing(line: &str) -> Option<Sample> {
    let part = |label: &str| -> Option<Duration> {
        let rest = line.split(&format!("{label} ")).nth(1)?;
        let mut words = rest.split([' ', ',', ')']).filter(|w| !w.is_empty());
        let value: f64 = words.next()?.parse().ok()?;
        let seconds = match words.next()? {
            "ms" => value / 1e3,
            "s" => value,
            _ => return None,
        };
        Some(Duration::from_secs_f64(seconds))
    };
    Some(Sample {
        save_to_running: part("save-to-running")?,
        debounce: part("debounce")?,
        build: part("build")?,
        swap: part("swap")?,
    })
}

/// Resident memory, threads and open files of a process (Linux /proc).
#[derive(Debug, Clone, Copy, Default)]
struct ProcessUsage {
    rss_kib: u64,
    threads: usize,
    fds: usize,
}

impl ProcessUsage {
    fn read(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let count = |dir: String| std::fs::read_dir(dir).map_or(0, |d| d.count());
        Self {
            rss_kib: field("VmRSS:"),
            threads: count(format!("/proc/{pid}/task")),
            fds: count(format!("/proc/{pid}/fd")),
        }
    }
}

struct Report {
    rows: Vec<(&'static str, Duration, Duration)>,
    ratio: f64,
    edits: usize,
    before: ProcessUsage,
    after: ProcessUsage,
    kept_mapped: bool,
    leak: LeakPhase,
}

impl Report {
    fn new(
        samples: &[Sample],
        floor: &[Duration],
        before: ProcessUsage,
        after: ProcessUsage,
        kept_mapped: bool,
        leak: LeakPhase,
    ) -> Self {
        let stat = |values: Vec<Duration>| (percentile(&values, 0.5), percentile(&values, 0.95));
        let total = stat(samples.iter().map(|s| s.save_to_running).collect());
        let floor_stat = stat(floor.to_vec());
        let rows = vec![
            ("save-to-running (write to [TIMING] line)", total.0, total.1),
            (
                "  debounce",
                stat(samples.iter().map(|s| s.debounce).collect()).0,
                stat(samples.iter().map(|s| s.debounce).collect()).1,
            ),
            (
                "  cargo build inside the orchestrator",
                stat(samples.iter().map(|s| s.build).collect()).0,
                stat(samples.iter().map(|s| s.build).collect()).1,
            ),
            (
                "  swap (save_state..start)",
                stat(samples.iter().map(|s| s.swap).collect()).0,
                stat(samples.iter().map(|s| s.swap).collect()).1,
            ),
            (
                "floor: plain cargo build -p (same edit)",
                floor_stat.0,
                floor_stat.1,
            ),
        ];
        Self {
            rows,
            ratio: total.0.as_secs_f64() / floor_stat.0.as_secs_f64().max(1e-9),
            edits: samples.len(),
            before,
            after,
            kept_mapped,
            leak,
        }
    }

    fn print(&self) {
        println!(
            "bench reload: {} edits of {MODULE}, {} cores",
            self.edits,
            cores()
        );
        println!("{:<44} {:>10} {:>10}", "", "median", "p95");
        for (name, median, p95) in &self.rows {
            println!("{name:<44} {:>7.1} ms {:>7.1} ms", ms(*median), ms(*p95));
        }
        println!("ratio save-to-running / floor (medians): {:.2}", self.ratio);
        println!(
            "process before -> after the reloads: RSS {} -> {} KiB ({:+.1} KiB per reload), threads {} -> {}, open files {} -> {}",
            self.before.rss_kib,
            self.after.rss_kib,
            (self.after.rss_kib as f64 - self.before.rss_kib as f64) / self.edits.max(1) as f64,
            self.before.threads,
            self.after.threads,
            self.before.fds,
            self.after.fds
        );
        println!(
            "old generations unmapped by the dynamic loader: {}",
            if self.kept_mapped {
                "no (see the [RELOAD] warning)"
            } else {
                "yes"
            }
        );
        println!(
            "{} reloads of {LEAKY} (a thread left running each time, {} libraries kept): RSS {} -> {} KiB ({:+.1} KiB per reload), threads {} -> {}",
            self.leak.reloads,
            self.leak.kept,
            self.leak.before.rss_kib,
            self.leak.after.rss_kib,
            self.leak.per_reload_kib(),
            self.leak.before.threads,
            self.leak.after.threads
        );
    }

    fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|(name, median, p95)| json!({ "name": name.trim(), "median_ms": ms(*median), "p95_ms": ms(*p95) }))
            .collect();
        let document = json!({
            "benchmark": "reload",
            "module": MODULE,
            "edits": self.edits,
            "cores": cores(),
            "rows": rows,
            "ratio_to_floor": self.ratio,
            "rss_kib": { "before": self.before.rss_kib, "after": self.after.rss_kib },
            "threads": { "before": self.before.threads, "after": self.after.threads },
            "open_files": { "before": self.before.fds, "after": self.after.fds },
            "old_generations_unmapped": !self.kept_mapped,
            "leaky_module": {
                "module": LEAKY,
                "reloads": self.leak.reloads,
                "libraries_kept": self.leak.kept,
                "rss_kib": { "before": self.leak.before.rss_kib, "after": self.leak.after.rss_kib },
                "rss_kib_per_reload": self.leak.per_reload_kib(),
                "threads": { "before": self.leak.before.threads, "after": self.leak.after.threads },
            },
        });
        std::fs::write(path, serde_json::to_string_pretty(&document)?)?;
        println!("written to {}", path.display());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_timing_line() {
        let line = "INFO [TIMING] reload of 'm' to generation 2: save-to-running 360.0 ms (debounce 38.9 ms, build 1.25 s, swap 3.7 ms)";
        let sample = parse_timing(line).unwrap();
        assert_eq!(sample.debounce, Duration::from_secs_f64(0.0389));
        assert_eq!(sample.build, Duration::from_secs_f64(1.25));
        assert_eq!(sample.swap, Duration::from_secs_f64(0.0037));
    }
}
