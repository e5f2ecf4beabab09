//! `cargo xtask bench test`: what each way of running tests costs, measured
//! in the same run, on two suites:
//!
//! - `shipped`: the modules of the repository's `config/modules.yaml` (a
//!   few tests each, and their doc tests);
//! - `tiny`: `fixture-t-many`, 200 tests that each take microseconds, where
//!   a process per test costs the most.
//!
//! For each suite: `cargo orch test` (each test in a process of its own, doc
//! tests included), `--fast` (each binary once), both with `--no-doc`, a
//! plain `cargo test -p ...` (with and without doc tests, `--tests`) and
//! `cargo nextest run -p ...` when `cargo nextest --version` works. Every
//! command runs once to warm up (everything compiled, nothing timed), then
//! `repeat` times, in turn. The table gives the median, minimum and maximum
//! wall time of each; the same numbers go to `target/bench/test.json`, with
//! two comparisons: `--fast` against a process per test on the tiny suite
//! (why `--fast` exists), and the per-test mode against nextest (the same
//! model). They are reported, never asserted: the run fails only when a
//! command does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use orch_e2e::{Scenario, orch_bin};
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

/// The package of the tiny-tests suite.
const TINY: &str = "fixture-t-many";

/// The timings of one command.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    /// Short name (`orch`, `orch --fast`, `cargo test`, ...).
    key: String,
    /// The command line, for people.
    label: String,
    runs: Vec<Duration>,
}

impl Series {
    fn median(&self) -> Duration {
        median(&self.runs)
    }

    fn to_json(&self) -> Value {
        json!({
            "key": self.key,
            "command": self.label,
            "median_s": self.median().as_secs_f64(),
            "min_s": self.runs.iter().min().copied().unwrap_or_default().as_secs_f64(),
            "max_s": self.runs.iter().max().copied().unwrap_or_default().as_secs_f64(),
            "runs_s": self.runs.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        })
    }
}

/// One command to time, with its series.
struct Timed {
    series: Series,
    command: Box<dyn Fn() -> Command>,
}

/// Runs the benchmark from the workspace at `root`; `Ok(true)` when every
/// command ran (the comparisons are reported, not judged).
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
    let nextest = nextest_available(root);
    let tiny_config = Scenario::new(&format!("modules:\n  - name: {TINY}\n"));

    let mut shipped = commands(root, None, &packages, nextest);
    let mut tiny = commands(
        root,
        Some(tiny_config.config_dir()),
        &[TINY.to_owned()],
        nextest,
    );
    for timed in shipped.iter().chain(&tiny) {
        warm_up(&timed.command, &timed.series.label)?;
    }
    for _ in 0..options.repeat {
        for timed in shipped.iter_mut().chain(tiny.iter_mut()) {
            let elapsed = time((timed.command)())?;
            timed.series.runs.push(elapsed);
        }
    }
    let shipped: Vec<Series> = shipped.into_iter().map(|t| t.series).collect();
    let tiny: Vec<Series> = tiny.into_iter().map(|t| t.series).collect();
    let comparisons = comparisons(&shipped, &tiny);

    print!(
        "{}",
        table(
            &format!("shipped modules ({})", modules.join(", ")),
            options.repeat,
            &shipped
        )
    );
    print!(
        "{}",
        table(&format!("{TINY} (200 tiny tests)"), options.repeat, &tiny)
    );
    for (what, ratio) in &comparisons {
        println!("{what}: {ratio:.2}");
    }
    if !nextest {
        println!("cargo nextest is not installed: its rows are left out");
    }
    let path = crate::bench_dir().join("test.json");
    let document = json!({
        "benchmark": "cargo orch test: a process per test, --fast, plain cargo test, cargo nextest",
        "repetitions": options.repeat,
        "modules": modules,
        "packages": packages,
        "nextest": nextest,
        "shipped": shipped.iter().map(Series::to_json).collect::<Vec<_>>(),
        "tiny": tiny.iter().map(Series::to_json).collect::<Vec<_>>(),
        "ratios_of_medians": comparisons
            .iter()
            .map(|(what, ratio)| json!({"comparison": what, "ratio": ratio}))
            .collect::<Vec<_>>(),
    });
    write(&path, &document)?;
    println!("bench test: written to {}", path.display());
    Ok(true)
}

/// Whether `cargo nextest --version` works here.
fn nextest_available(root: &Path) -> bool {
    Command::new(cargo())
        .current_dir(root)
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The commands of one suite: `config_dir` for `cargo orch test` (the
/// repository's own when `None`), `packages` for cargo's.
fn commands(
    root: &Path,
    config_dir: Option<&Path>,
    packages: &[String],
    nextest: bool,
) -> Vec<Timed> {
    let mut list = Vec::new();
    for (key, flags) in [
        ("orch", &[][..]),
        ("orch --fast", &["--fast"][..]),
        ("orch --no-doc", &["--no-doc"][..]),
        ("orch --fast --no-doc", &["--fast", "--no-doc"][..]),
    ] {
        let root = root.to_path_buf();
        let config: Option<PathBuf> = config_dir.map(Path::to_path_buf);
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        let label = std::iter::once("cargo orch test")
            .chain(flags.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        list.push(Timed {
            series: series(key, &label),
            command: Box::new(move || {
                let mut command = Command::new(orch_bin());
                command.current_dir(&root).arg("orch");
                if let Some(config) = &config {
                    command.arg("--config-dir").arg(config);
                }
                command
                    .arg("test")
                    .args(&flags)
                    .env("NO_COLOR", "1")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                command
            }),
        });
    }
    let with_packages = |first: &[&str]| -> Vec<String> {
        first
            .iter()
            .map(|a| (*a).to_owned())
            .chain(packages.iter().flat_map(|p| ["-p".to_owned(), p.clone()]))
            .collect()
    };
    let mut cargo_runs = vec![
        ("cargo test", with_packages(&["test"])),
        ("cargo test --tests", with_packages(&["test", "--tests"])),
    ];
    if nextest {
        cargo_runs.push(("cargo nextest run", with_packages(&["nextest", "run"])));
    }
    for (key, args) in cargo_runs {
        let root = root.to_path_buf();
        let label = format!("cargo {}", args.join(" "));
        list.push(Timed {
            series: series(key, &label),
            command: Box::new(move || {
                let mut command = Command::new(cargo());
                command
                    .current_dir(&root)
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                command
            }),
        });
    }
    list
}

fn series(key: &str, label: &str) -> Series {
    Series {
        key: key.to_owned(),
        label: label.to_owned(),
        runs: Vec::new(),
    }
}

/// Runs `command` once, untimed; it must pass.
fn warm_up(command: &dyn Fn() -> Command, label: &str) -> Result<()> {
    let output = command()
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running `{label}`"))?;
    ensure!(
        output.status.success(),
        "`{label}` fails:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The ratios of medians worth reading: what `--fast` saves on tiny tests,
/// what doc tests cost, and the per-test mode against nextest.
fn comparisons(shipped: &[Series], tiny: &[Series]) -> Vec<(String, f64)> {
    let find = |list: &[Series], key: &str| list.iter().find(|s| s.key == key).map(Series::median);
    let mut out = Vec::new();
    let mut push = |what: &str, a: Option<Duration>, b: Option<Duration>| {
        if let (Some(a), Some(b)) = (a, b) {
            out.push((what.to_owned(), a.as_secs_f64() / b.as_secs_f64().max(1e-9)));
        }
    };
    push(
        "tiny: per test / --fast (both --no-doc)",
        find(tiny, "orch --no-doc"),
        find(tiny, "orch --fast --no-doc"),
    );
    push(
        "tiny: per test --no-doc / cargo nextest run",
        find(tiny, "orch --no-doc"),
        find(tiny, "cargo nextest run"),
    );
    push(
        "tiny: --fast --no-doc / cargo test --tests",
        find(tiny, "orch --fast --no-doc"),
        find(tiny, "cargo test --tests"),
    );
    push(
        "shipped: cargo orch test / plain cargo test (both with doc tests)",
        find(shipped, "orch"),
        find(shipped, "cargo test"),
    );
    push(
        "shipped: per test --no-doc / cargo nextest run",
        find(shipped, "orch --no-doc"),
        find(shipped, "cargo nextest run"),
    );
    out
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

fn table(suite: &str, repeat: u32, series: &[Series]) -> String {
    let width = series.iter().map(|s| s.label.len()).max().unwrap_or(10);
    let mut text = format!(
        "bench test: {suite}, {repeat} timed runs each\n{:<width$}  {:>8}  {:>8}  {:>8}\n",
        "command", "median", "min", "max"
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

    fn timed(key: &str, runs: &[u64]) -> Series {
        Series {
            runs: ms(runs),
            ..series(key, &format!("run {key}"))
        }
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
    fn the_table_shows_medians() {
        let ours = timed("orch", &[100, 120, 110]);
        let theirs = timed("cargo test", &[200, 190, 210]);
        let text = table("shipped", 3, &[ours.clone(), theirs]);
        assert!(
            text.starts_with("bench test: shipped, 3 timed runs each\n"),
            "{text}"
        );
        assert!(text.contains("run orch          0.110s"), "{text}");
        assert_eq!(ours.to_json()["runs_s"], json!([0.1, 0.12, 0.11]));
        assert_eq!(ours.to_json()["key"], "orch");
    }

    #[test]
    fn comparisons_need_both_sides() {
        let tiny = [
            timed("orch --no-doc", &[500]),
            timed("orch --fast --no-doc", &[250]),
            timed("cargo test --tests", &[200]),
        ];
        let shipped = [timed("orch", &[700]), timed("cargo test", &[350])];
        let found = comparisons(&shipped, &tiny);
        let keys: Vec<(&str, String)> = found
            .iter()
            .map(|(what, ratio)| (what.as_str(), format!("{ratio:.2}")))
            .collect();
        assert_eq!(
            keys,
            [
                ("tiny: per test / --fast (both --no-doc)", "2.00".to_owned()),
                (
                    "tiny: --fast --no-doc / cargo test --tests",
                    "1.25".to_owned()
                ),
                (
                    "shipped: cargo orch test / plain cargo test (both with doc tests)",
                    "2.00".to_owned()
                ),
            ],
            "no nextest rows, no nextest ratios"
        );
    }
}
