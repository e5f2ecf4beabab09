//! `cargo xtask demo`: the scripted end-to-end validation of the product.
//!
//! It builds the orchestrator and the demo modules, runs `cargo orch run` from the
//! workspace root, and checks its output: the modules load, initialize and exchange
//! `test.ping` events, and SIGINT shuts everything down cleanly and in reverse order.
//! Each check prints `[OK] <check>` or `[FAIL] <check>: <why>`; a failure is followed
//! by the last lines the orchestrator printed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use nix::sys::signal::Signal;
use xshell::{Shell, cmd};

use crate::tally::Tally;
use orch_e2e::watched::{Line, WaitError, WatchedChild};

/// The demo modules, in the order the shipped configuration starts them.
const MODULES: [&str; 3] = [
    "mod-test-module",
    "mod-dummy-producer",
    "mod-dummy-consumer",
];

/// The module whose initialization and event delivery the demo times.
const CONSUMER: &str = "mod-dummy-consumer";

/// From the spawn until every module has loaded (the spawn may compile the binary).
const LOAD_DEADLINE: Duration = Duration::from_secs(60);

/// From the first `loaded in` line until the consumer has initialized.
const INIT_DEADLINE: Duration = Duration::from_secs(5);

/// From the first `loaded in` line until the subscription, the first ping and
/// `app.started` have been logged.
const SETTLE_DEADLINE: Duration = Duration::from_secs(10);

/// From `app.started` until the consumer has received a ping.
const RECEIVE_DEADLINE: Duration = Duration::from_secs(10);

/// From SIGINT until the process has exited.
const EXIT_DEADLINE: Duration = Duration::from_secs(15);

/// How many of the child's last lines a failed check shows.
const TAIL_LINES: usize = 40;

/// What `cargo xtask demo` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How many times to run the demo (at least 1).
    pub repeat: u32,
    /// Only this part (all of them when `None`).
    pub only: Option<Part>,
}

/// Runs one part of the demo from the workspace root.
type PartRun = fn(&Path) -> Result<Tally>;

/// A part of the demo, to run alone (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// The main story: run, edit, reload (`--repeat` times).
    Core,
    /// `cargo orch test`.
    Test,
    /// `cargo orch new`.
    New,
    /// The watcher.
    Watch,
    /// Process isolation.
    Isolation,
    /// Two orchestrators through NATS.
    Bridge,
    /// Three nodes: presence, shared work, a singleton.
    Cluster,
    /// Three nodes from NATS: a good rollout, a crashing one reverted.
    Rollout,
}

/// Runs the demo `options.repeat` times; `Ok(true)` when every check of every run
/// passed. Errors are reserved for problems that stop the demo itself, such as a
/// failed build.
pub fn run(options: Options) -> Result<bool> {
    let root = workspace_root()?;
    let cargo = cargo_program();
    build(&root, &cargo)?;

    let mut tally = Tally::default();
    let wanted = |part: Part| options.only.is_none_or(|only| only == part);
    if wanted(Part::Core) {
        for run in 1..=options.repeat {
            println!("=== demo run {run}/{} ===", options.repeat);
            run_once(&root, &cargo, &mut tally)?;
        }
    }
    let parts: [(Part, PartRun); 7] = [
        (Part::Test, crate::demo_test::run),
        (Part::New, |_| crate::demo_new::run()),
        (Part::Watch, |_| crate::demo_watch::run()),
        (Part::Isolation, |_| crate::demo_isolation::run()),
        (Part::Bridge, |_| crate::demo_bridge::run()),
        (Part::Cluster, |_| crate::demo_cluster::run()),
        (Part::Rollout, |_| crate::demo_rollout::run()),
    ];
    for (part, run) in parts {
        if wanted(part) {
            tally.add(run(&root)?);
        }
    }
    println!(
        "demo: {} runs, {} checks passed, {} failed",
        options.repeat, tally.passed, tally.failed
    );
    Ok(tally.failed == 0)
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("{} has no parent directory", manifest_dir.display()))
}

/// The cargo that runs xtask (`$CARGO`), else `cargo` from `PATH`.
fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// Builds the orchestrator and the demo modules, so no run times a cold compile.
///
/// Two invocations, not one: cargo unifies dependency features across the packages
/// of one build, so building the modules together with `cargo-orch` gives them other
/// artifact hashes than the orchestrator's own `cargo build -p <modules>`, which would
/// then compile them again inside the timed run.
fn build(root: &Path, cargo: &OsString) -> Result<()> {
    let sh = Shell::new().context("creating a shell")?;
    sh.change_dir(root);
    let started = Instant::now();
    cmd!(sh, "{cargo} build -p cargo-orch")
        .run()
        .context("building the orchestrator")?;
    let modules = MODULES.iter().flat_map(|module| ["-p", module]);
    cmd!(sh, "{cargo} build {modules...}")
        .run()
        .context("building the demo modules")?;
    println!("demo: built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Prints and counts the checks of one run.
struct Checks<'a> {
    tally: &'a mut Tally,
    /// How many output lines had been received when the last tail was printed, so an
    /// unchanged tail is not printed twice.
    tail_printed_at: Option<usize>,
}

impl<'a> Checks<'a> {
    /// Starts a run's checks, counting into `tally`.
    fn new(tally: &'a mut Tally) -> Self {
        Self {
            tally,
            tail_printed_at: None,
        }
    }

    /// Prints and counts the outcome of check `name`: `Ok` holds details for the
    /// `[OK]` line, `Err` the reason for the `[FAIL]` line, which is followed by the
    /// last lines of the child's output.
    fn record(&mut self, child: &mut WatchedChild, name: &str, outcome: Result<String>) {
        match outcome {
            Ok(details) if details.is_empty() => {
                self.tally.passed += 1;
                println!("[OK] {name}");
            }
            Ok(details) => {
                self.tally.passed += 1;
                println!("[OK] {name} ({details})");
            }
            Err(why) => {
                self.tally.failed += 1;
                println!("[FAIL] {name}: {why:#}");
                self.print_tail(child);
            }
        }
    }

    /// Prints the child's last [`TAIL_LINES`] lines, unless nothing changed since the
    /// last time.
    fn print_tail(&mut self, child: &mut WatchedChild) {
        child.poll();
        let received = child.lines().len();
        if self.tail_printed_at == Some(received) {
            println!("    (no new output since the last failure)");
            return;
        }
        self.tail_printed_at = Some(received);
        let tail = child.tail(TAIL_LINES);
        if tail.is_empty() {
            println!("    (`{}` printed nothing)", child.name());
            return;
        }
        println!(
            "    last {} of {received} output lines of `{}` (pid {}):",
            tail.len(),
            child.name(),
            child.pid()
        );
        for line in tail {
            println!("    {}", child.format_line(line));
        }
    }
}

/// `[TIMING] module '<module>' <phase> in`.
fn timing(module: &str, phase: &str) -> String {
    format!("[TIMING] module '{module}' {phase} in")
}

/// The module name of a `[TIMING] module '<name>' <phase> in` line.
fn timing_module<'t>(text: &'t str, phase: &str) -> Option<&'t str> {
    let rest = &text[text.find("[TIMING] module '")? + "[TIMING] module '".len()..];
    let (name, rest) = rest.split_once('\'')?;
    rest.strip_prefix(' ')?
        .strip_prefix(phase)?
        .starts_with(" in")
        .then_some(name)
}

/// Seconds, for details and reasons.
fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// One run: spawn `cargo orch run`, check its output, stop it with SIGINT, check the
/// shutdown.
fn run_once(root: &Path, cargo: &OsString, tally: &mut Tally) -> Result<()> {
    let mut command = Command::new(cargo);
    command
        .args(["orch", "run"])
        .current_dir(root)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    let mut child = WatchedChild::spawn(command)?;
    let mut checks = Checks::new(tally);
    let spawned = child.started();

    // 1. Every module loaded.
    let mut first_loaded: Option<Line> = None;
    for module in MODULES {
        let outcome = child.wait_for(&timing(module, "loaded"), spawned + LOAD_DEADLINE);
        if let Ok(line) = &outcome
            && first_loaded.as_ref().is_none_or(|first| line.at < first.at)
        {
            first_loaded = Some(line.clone());
        }
        let outcome = outcome
            .map(|line| format!("at {}", child.format_instant(line.at)))
            .map_err(Into::into);
        checks.record(
            &mut child,
            &format!(
                "module '{module}' loaded within {} of the spawn",
                secs(LOAD_DEADLINE)
            ),
            outcome,
        );
    }
    // Later deadlines count from the first load: compiling is not starting.
    let loaded_at = first_loaded.as_ref().map(|line| line.at);

    // 2. The consumer initialized soon after the first load.
    let outcome = match loaded_at {
        Some(loaded_at) => child
            .wait_for(&timing(CONSUMER, "initialized"), loaded_at + INIT_DEADLINE)
            .map(|line| {
                format!(
                    "{} after the first module loaded",
                    secs(line.at.saturating_duration_since(loaded_at))
                )
            })
            .map_err(Into::into),
        None => Err(anyhow!(
            "no module logged `loaded in`, so there is no start to measure from"
        )),
    };
    checks.record(
        &mut child,
        &format!(
            "module '{CONSUMER}' initialized within {} of the first load",
            secs(INIT_DEADLINE)
        ),
        outcome,
    );

    let settle_deadline = loaded_at.unwrap_or(spawned) + SETTLE_DEADLINE;

    // 3. The consumer subscribed.
    let outcome = child
        .wait_for("Subscribed to event: test.ping", settle_deadline)
        .map(|line| format!("at {}", child.format_instant(line.at)))
        .map_err(Into::into);
    checks.record(&mut child, "consumer subscribed to test.ping", outcome);

    // 4. The producer published.
    let outcome = child
        .wait_for("Published test.ping: hello (seq 1)", settle_deadline)
        .map(|line| format!("at {}", child.format_instant(line.at)))
        .map_err(Into::into);
    checks.record(&mut child, "producer published test.ping (seq 1)", outcome);

    // 5. The consumer received a ping soon after `app.started`.
    let outcome = match child.wait_for("app.started", settle_deadline) {
        Ok(started) => child
            .wait_for(
                "Received test.ping: hello (seq ",
                started.at + RECEIVE_DEADLINE,
            )
            .map(|line| {
                let delay = line.at.checked_duration_since(started.at);
                match delay {
                    Some(delay) => format!("{} after app.started", secs(delay)),
                    None => "before app.started was logged".to_owned(),
                }
            })
            .map_err(Into::into),
        Err(err) => Err(anyhow::Error::from(err).context("no `app.started` to measure from")),
    };
    checks.record(
        &mut child,
        &format!(
            "consumer received test.ping within {} of app.started",
            secs(RECEIVE_DEADLINE)
        ),
        outcome,
    );

    // 6. SIGINT, then a clean exit.
    let (outcome, sigint_at) = interrupt(&mut child);
    checks.record(
        &mut child,
        &format!(
            "SIGINT ends the process with exit code 0 within {}",
            secs(EXIT_DEADLINE)
        ),
        outcome,
    );
    // If the process is still running, everything below fails anyway; stop it now.
    if let Err(err) = child.kill() {
        println!("demo: could not stop `{}`: {err:#}", child.name());
    }

    // 7. Every shutdown hook and the end of the shutdown were logged after SIGINT.
    let shutdown_deadline = sigint_at.unwrap_or_else(Instant::now) + EXIT_DEADLINE;
    for module in MODULES {
        let waited = child.wait_for(&timing(module, "shut down"), shutdown_deadline);
        let outcome = after_sigint(&child, sigint_at, waited);
        checks.record(&mut child, &format!("module '{module}' shut down"), outcome);
    }
    let waited = child.wait_for("Shutdown complete", shutdown_deadline);
    let outcome = after_sigint(&child, sigint_at, waited);
    checks.record(&mut child, "shutdown complete", outcome);

    // 8. Shutdown in the reverse of the startup order.
    let outcome = shutdown_order(&child, sigint_at);
    checks.record(
        &mut child,
        "modules shut down in reverse startup order",
        outcome,
    );

    if child.lines().iter().any(|line| line.had_escapes) {
        println!("[NOTE] the output held ANSI escape sequences although NO_COLOR=1 was set");
    }
    Ok(())
}

/// Sends SIGINT and waits for the exit; also returns when SIGINT was sent.
fn interrupt(child: &mut WatchedChild) -> (Result<String>, Option<Instant>) {
    match child.try_status() {
        Ok(Some(status)) => {
            return (
                Err(anyhow!(
                    "the process had already exited ({status}) before SIGINT"
                )),
                None,
            );
        }
        Ok(None) => {}
        Err(err) => return (Err(anyhow!(err).context("checking on the process")), None),
    }
    // Taken before sending: the child may answer before `send_signal` returns.
    let sent = Instant::now();
    if let Err(err) = child.send_signal(Signal::SIGINT) {
        return (Err(err), None);
    }
    let outcome = match child.wait_exit(sent + EXIT_DEADLINE) {
        Ok(status) => {
            let after = child
                .exited_at()
                .unwrap_or_else(Instant::now)
                .saturating_duration_since(sent);
            if status.code() == Some(0) {
                Ok(format!("exited {} after SIGINT", secs(after)))
            } else {
                Err(anyhow!(
                    "it ended with {status}, {} after SIGINT",
                    secs(after)
                ))
            }
        }
        Err(WaitError::TimedOut { .. }) => Err(anyhow!(
            "still running {} after SIGINT; killing it",
            secs(sent.elapsed())
        )),
        Err(err) => Err(err.into()),
    };
    (outcome, Some(sent))
}

/// Turns the result of waiting for a shutdown line into a check outcome: the line
/// must have been printed after SIGINT.
fn after_sigint(
    child: &WatchedChild,
    sigint_at: Option<Instant>,
    waited: Result<Line, WaitError>,
) -> Result<String> {
    let line = waited?;
    let Some(sigint_at) = sigint_at else {
        bail!("logged although no SIGINT was sent: {:?}", line.text);
    };
    match line.at.checked_duration_since(sigint_at) {
        Some(after) => Ok(format!("{} after SIGINT", secs(after))),
        None => Err(anyhow!(
            "logged at {}, before SIGINT was sent: {:?}",
            child.format_instant(line.at),
            line.text
        )),
    }
}

/// Checks that the `shut down` lines after SIGINT name the modules in the reverse
/// order of their first `initialized` lines, and come before `Shutdown complete`.
fn shutdown_order(child: &WatchedChild, sigint_at: Option<Instant>) -> Result<String> {
    let mut startup: Vec<&str> = Vec::new();
    let mut shutdown: Vec<&str> = Vec::new();
    for line in child.lines() {
        if let Some(name) = timing_module(&line.text, "initialized")
            && !startup.contains(&name)
        {
            startup.push(name);
        }
        if let Some(name) = timing_module(&line.text, "shut down")
            && sigint_at.is_some_and(|sigint_at| line.at >= sigint_at)
        {
            shutdown.push(name);
        }
    }
    let missing_startup: Vec<&str> = MODULES
        .into_iter()
        .filter(|module| !startup.contains(module))
        .collect();
    if !missing_startup.is_empty() {
        bail!(
            "no `initialized in` line for {}, so the startup order is unknown",
            missing_startup.join(", ")
        );
    }
    let expected: Vec<&str> = startup.iter().rev().copied().collect();
    if shutdown != expected {
        bail!(
            "shut down [{}] after SIGINT, expected [{}] (startup order [{}])",
            shutdown.join(", "),
            expected.join(", "),
            startup.join(", ")
        );
    }
    if let Some(complete) = child.find("Shutdown complete")
        && let Some(last_hook) = child
            .lines()
            .iter()
            .rfind(|line| timing_module(&line.text, "shut down").is_some())
        && complete.index < last_hook.index
    {
        bail!(
            "`Shutdown complete` (line {}) came before the last shutdown hook (line {})",
            complete.index + 1,
            last_hook.index + 1
        );
    }
    Ok(expected.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timing_lines() {
        let text = "2025-01-01T00:00:00Z  INFO orch: [TIMING] module 'mod-a' shut down in 3ms";
        assert_eq!(timing_module(text, "shut down"), Some("mod-a"));
        assert_eq!(timing_module(text, "initialized"), None);
        assert_eq!(
            timing_module("[TIMING] module 'b' initialized in 1 ms", "initialized"),
            Some("b")
        );
        assert_eq!(timing_module("no timing here", "initialized"), None);
        assert_eq!(
            timing(CONSUMER, "loaded"),
            "[TIMING] module 'mod-dummy-consumer' loaded in"
        );
    }
}
