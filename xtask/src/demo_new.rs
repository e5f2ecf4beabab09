//! The `cargo orch new` part of `cargo xtask demo`: a module from nothing to
//! running, in a throw-away copy of the workspace ([`ScratchWorkspace`]: the
//! repository is never modified, even if the demo fails or is interrupted).
//!
//! 1. `cargo orch new mod-demo-listener --template consumer` creates the module
//!    and declares it in `config/modules.yaml`.
//! 2. `cargo orch check` builds it and load-checks it with the shipped modules.
//! 3. `cargo orch run` loads it next to the shipped modules; it receives the
//!    shipped producer's `test.ping`; SIGINT ends the run with exit code 0.
//! 4. `cargo orch list --json` shows it declared and up to date.
//!
//! Each check prints `[OK] <check>` or `[FAIL] <check>: <why>`, like the rest of
//! the demo, and is counted in the returned [`Tally`].

use std::process::Output;
use std::time::Duration;

use crate::tally::Tally;
use anyhow::{Context as _, Result, anyhow, ensure};
use nix::sys::signal::Signal;
use orch_e2e::{OrchProcess, ScratchWorkspace};
use serde_json::Value;

/// The module the demo scaffolds.
const MODULE: &str = "mod-demo-listener";

/// The modules the repository ships, which must run next to it.
const SHIPPED: [&str; 3] = [
    "mod-test-module",
    "mod-dummy-producer",
    "mod-dummy-consumer",
];

/// From the spawn of `cargo orch run` until every module has started (it may
/// compile the new module).
const START_DEADLINE: Duration = Duration::from_secs(120);

/// From `app.started` until the new module has received a ping.
const RECEIVE_DEADLINE: Duration = Duration::from_secs(10);

/// From SIGINT until the process has exited.
const EXIT_DEADLINE: Duration = Duration::from_secs(15);

/// Runs the steps; errors are reserved for what stops the demo itself (no
/// scratch copy could be made).
pub fn run() -> Result<Tally> {
    println!("=== demo: cargo orch new ===");
    let mut tally = Tally::default();
    let scratch = ScratchWorkspace::copy_of_repo().context("copying the workspace")?;

    let created = scratch
        .orch(&["new", MODULE, "--template", "consumer"])
        .output()
        .context("running `cargo orch new`");
    let created = created.and_then(|output| {
        succeeded(&output)?;
        let entry = format!("- name: {MODULE}");
        ensure!(
            scratch.read("config/modules.yaml").contains(&entry),
            "config/modules.yaml has no `{entry}`"
        );
        ensure!(
            scratch
                .path(format!("modules-backend/{MODULE}/src/lib.rs"))
                .is_file(),
            "modules-backend/{MODULE}/src/lib.rs was not created"
        );
        Ok(format!(
            "modules-backend/{MODULE}, declared in config/modules.yaml"
        ))
    });
    let created_ok = created.is_ok();
    tally.record(
        &format!("cargo orch new {MODULE} --template consumer"),
        created,
    );
    if !created_ok {
        return Ok(tally);
    }

    let checked = scratch
        .orch(&["check"])
        .output()
        .context("running `cargo orch check`")
        .and_then(|output| {
            let stdout = succeeded(&output)?;
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&format!("ok    {MODULE}")))
                .ok_or_else(|| anyhow!("no `ok` line for {MODULE}:\n{stdout}"))?;
            Ok(line
                .split_whitespace()
                .skip(2)
                .collect::<Vec<_>>()
                .join(" "))
        });
    tally.record("cargo orch check builds and load-checks it", checked);

    run_it(&scratch, &mut tally);

    let listed = scratch
        .orch(&["list", "--json"])
        .output()
        .context("running `cargo orch list --json`")
        .and_then(|output| {
            let stdout = succeeded(&output)?;
            let report: Value = serde_json::from_str(&stdout).context("parsing the JSON")?;
            let module = report["modules"]
                .as_array()
                .and_then(|modules| modules.iter().find(|m| m["name"] == MODULE))
                .ok_or_else(|| anyhow!("{MODULE} is not listed:\n{stdout}"))?;
            ensure!(
                module["built"] == "up-to-date",
                "listed as {}, expected up-to-date",
                module["built"]
            );
            Ok(format!(
                "{}, up to date",
                module["path"].as_str().unwrap_or_default()
            ))
        });
    tally.record("cargo orch list shows it built and up to date", listed);
    Ok(tally)
}

/// `cargo orch run` in the copy: the new module runs next to the shipped ones
/// and receives pings; SIGINT gives exit code 0.
fn run_it(scratch: &ScratchWorkspace, tally: &mut Tally) {
    let mut orch = match OrchProcess::spawn(scratch.orch(&["run"])) {
        Ok(orch) => orch,
        Err(error) => {
            tally.record(
                "cargo orch run loads it next to the shipped modules",
                Err(anyhow!("cannot spawn `cargo orch run`: {error}")),
            );
            return;
        }
    };
    let all = SHIPPED.len() + 1;
    let started = orch
        .wait_for(
            &format!("app.started: {all} of {all} modules running"),
            START_DEADLINE,
        )
        .map_err(|e| anyhow!(e))
        .and_then(|line| {
            for module in SHIPPED.iter().chain([&MODULE]) {
                ensure!(
                    line.text.contains(module),
                    "{module} is not running: {}",
                    line.text
                );
            }
            Ok(format!("{MODULE} and {}", SHIPPED.join(", ")))
        });
    tally.record(
        "cargo orch run loads it next to the shipped modules",
        started,
    );

    let received = orch
        .wait_for(
            &format!("[{MODULE}] received test.ping #2"),
            RECEIVE_DEADLINE,
        )
        .map(|_| String::new())
        .map_err(|e| anyhow!(e));
    tally.record("it receives the shipped producer's test.ping", received);

    let stopped = orch
        .signal(Signal::SIGINT)
        .map_err(|e| anyhow!("cannot send SIGINT: {e}"))
        .and_then(|()| orch.wait_exit(EXIT_DEADLINE).map_err(|e| anyhow!(e)))
        .and_then(|status| {
            ensure!(status.code() == Some(0), "exited with {status}");
            let shut_down = format!("[TIMING] module '{MODULE}' shut down");
            ensure!(orch.output().contains(&shut_down), "no `{shut_down}` line");
            Ok(String::new())
        });
    tally.record("SIGINT shuts it down with the others, exit code 0", stopped);
}

/// Exit code 0, or an error with the output; returns stdout.
fn succeeded(output: &Output) -> Result<String> {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}
