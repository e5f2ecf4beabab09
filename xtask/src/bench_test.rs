//! `cargo xtask bench test`: `cargo orch test` against a plain `cargo test -p a
//! -p b ...` over the same modules, in the same run.
//!
//! Both commands are run once to warm up (everything compiled, nothing timed),
//! then `repeat` times each, alternating, from the workspace root. The table
//! gives the median, minimum and maximum wall time of each; the same numbers go
//! to `target/bench/test.json`. Target: `cargo orch test` no slower than the
//! plain run, although it also loads every module in a scratch host. (The plain
//! run also runs doc tests, which `cargo orch test` leaves out.)
//!
//! No test asserts a time: the numbers are for people.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use orch_e2e::orch_bin;
use serde_json::{Value, json};

/// What `cargo xtask bench test` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Timed runs of each command (at least 1).
    pub repeat: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self { repeat: 5 }
    }
}

/// The timings of one command.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    label: String,
    runs: Vec<Duration>,
}

impl Series {
    fn median(&self) -> Duration {
        median(&self.runs)
    }

    fn to_json(&self) -> Value {
        json!({
            "command": self.label,
            "median_s": self.median().as_secs_f64(),
            "min_s": self.runs.iter().min().copied().unwrap_or_default().as_secs_f64(),
            "max_s": self.runs.iter().max().copied().unwrap_or_default().as_secs_f64(),
            "runs_s": self.runs.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        })
    }
}

/// Runs the benchmark from the workspace at `root`; `Ok(true)` when `cargo orch
/// test` was no slower than the plain run (by median).
pub fn run(root: &Path, options: Options) -> Result<bool> {
    let orch = orch_bin().to_path_buf();
    // The warm-up run also tells which modules (and packages) the report covers.
    let warm = Command::new(&orch)
        .current_dir(root)
        .args(["orch", "test", "--json"])
        .env("NO_COLOR", "1")
        .stderr(Stdio::inherit())
        .output()
        .context("running `cargo orch test`")?;
    ensure!(
        warm.status.success(),
        "`cargo orch test` does not pass here (exit {:?}); fix that before benchmarking",
        warm.status.code()
    );
    let report: Value =
        serde_json::from_slice(&warm.stdout).context("reading `cargo orch test --json`")?;
    let (modules, packages) = modules_and_packages(&report)?;

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let with_packages = |first: &[&str]| -> Vec<String> {
        first
            .iter()
            .map(|a| (*a).to_owned())
            .chain(packages.iter().flat_map(|p| ["-p".to_owned(), p.clone()]))
            .collect()
    };
    let plain_args = with_packages(&["test"]);
    let no_doc_args = with_packages(&["test", "--tests"]);
    let cargo_test = |args: &[String]| {
        let mut command = Command::new(&cargo);
        command
            .current_dir(root)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let orch_test = || {
        let mut command = Command::new(&orch);
        command
            .current_dir(root)
            .args(["orch", "test"])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    for args in [&plain_args, &no_doc_args] {
        let warm = Command::new(&cargo)
            .current_dir(root)
            .args(args)
            .output()
            .context("running cargo test")?;
        ensure!(
            warm.status.success(),
            "`cargo {}` fails:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&warm.stderr)
        );
    }

    let series = |label: String| Series {
        label,
        runs: Vec::new(),
    };
    let mut ours = series("cargo orch test".to_owned());
    let mut plain = series(format!("cargo {}", plain_args.join(" ")));
    let mut no_doc = series(format!("cargo {}", no_doc_args.join(" ")));
    for _ in 0..options.repeat {
        ours.runs.push(time(orch_test())?);
        plain.runs.push(time(cargo_test(&plain_args))?);
        no_doc.runs.push(time(cargo_test(&no_doc_args))?);
    }

    let ratio = ratio(&ours, &plain);
    let ratio_no_doc = self::ratio(&ours, &no_doc);
    let met = ratio <= 1.0;
    print!(
        "{}",
        table(&modules, options.repeat, &[&ours, &plain, &no_doc], ratio)
    );
    println!("ratio of medians (orch / the same tests without doc tests): {ratio_no_doc:.2}");
    let path = crate::bench_dir(root).join("test.json");
    let document = json!({
        "benchmark": "cargo orch test vs plain cargo test",
        "repetitions": options.repeat,
        "modules": modules,
        "packages": packages,
        "orch_test": ours.to_json(),
        "plain_cargo_test": plain.to_json(),
        "cargo_test_without_doc_tests": no_doc.to_json(),
        "ratio_of_medians": ratio,
        "ratio_of_medians_without_doc_tests": ratio_no_doc,
        "target": "cargo orch test no slower than the plain run (ratio <= 1)",
        "target_met": met,
    });
    write(&path, &document)?;
    println!("bench test: written to {}", path.display());
    Ok(met)
}

/// Median of `a` over median of `b`.
fn ratio(a: &Series, b: &Series) -> f64 {
    a.median().as_secs_f64() / b.median().as_secs_f64().max(1e-9)
}

/// Wall time of `command`, which must succeed.
fn time(mut command: Command) -> Result<Duration> {
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    let elapsed = started.elapsed();
    ensure!(status.success(), "{command:?} failed ({status})");
    Ok(elapsed)
}

/// The module names and their distinct packages, in report order.
fn modules_and_packages(report: &Value) -> Result<(Vec<String>, Vec<String>)> {
    let modules = report["modules"]
        .as_array()
        .ok_or_else(|| anyhow!("the report has no `modules` list"))?;
    let mut names = Vec::new();
    let mut packages: Vec<String> = Vec::new();
    for module in modules {
        let name = module["module"].as_str().unwrap_or_default().to_owned();
        let package = module["package"].as_str().unwrap_or_default().to_owned();
        ensure!(
            !name.is_empty() && !package.is_empty(),
            "a module without a name: {module}"
        );
        names.push(name);
        if !packages.contains(&package) {
            packages.push(package);
        }
    }
    ensure!(
        !names.is_empty(),
        "no module is enabled in config/modules.yaml"
    );
    Ok((names, packages))
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(runs: &[Duration]) -> Duration {
    let mut sorted = runs.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

fn table(modules: &[String], repeat: u32, series: &[&Series], ratio: f64) -> String {
    let width = series.iter().map(|s| s.label.len()).max().unwrap_or(10);
    let mut text = format!(
        "bench test: {repeat} timed runs each, modules {}\n{:<width$}  {:>8}  {:>8}  {:>8}\n",
        modules.join(", "),
        "command",
        "median",
        "min",
        "max"
    );
    for s in series {
        let min = s.runs.iter().min().copied().unwrap_or_default();
        let max = s.runs.iter().max().copied().unwrap_or_default();
        text.push_str(&format!(
            "{:<width$}  {:>7.3}s  {:>7.3}s  {:>7.3}s\n",
            s.label,
            s.median().as_secs_f64(),
            min.as_secs_f64(),
            max.as_secs_f64()
        ));
    }
    text.push_str(&format!(
        "ratio of medians (orch / plain): {ratio:.2}, target <= 1.00: {}\n",
        if ratio <= 1.0 { "met" } else { "NOT met" }
    ));
    text
}

/// Writes `value` as pretty JSON, creating the folder.
fn write(path: &PathBuf, value: &Value) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value).context("rendering the JSON")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(list: &[u64]) -> Vec<Duration> {
        list.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn the_median_is_the_middle_run() {
        assert_eq!(median(&ms(&[30, 10, 20])), Duration::from_millis(20));
        assert_eq!(median(&ms(&[40, 10, 20, 30])), Duration::from_millis(25));
        assert_eq!(median(&[]), Duration::ZERO);
    }

    #[test]
    fn modules_and_packages_come_from_the_report() {
        let report = json!({"modules": [
            {"module": "a", "package": "pkg"},
            {"module": "b", "package": "pkg"},
            {"module": "c", "package": "other"}
        ]});
        let (modules, packages) = modules_and_packages(&report).expect("read");
        assert_eq!(modules, ["a", "b", "c"]);
        assert_eq!(packages, ["pkg", "other"]);
        assert!(modules_and_packages(&json!({"modules": []})).is_err());
    }

    #[test]
    fn the_table_shows_medians_and_the_verdict() {
        let ours = Series {
            label: "cargo orch test".into(),
            runs: ms(&[100, 120, 110]),
        };
        let theirs = Series {
            label: "cargo test -p a".into(),
            runs: ms(&[200, 190, 210]),
        };
        let text = table(&["a".into()], 3, &[&ours, &theirs], 0.55);
        assert!(text.contains("cargo orch test    0.110s"), "{text}");
        assert!(text.contains("target <= 1.00: met"), "{text}");
        assert_eq!(ours.to_json()["runs_s"], json!([0.1, 0.12, 0.11]));
    }
}
