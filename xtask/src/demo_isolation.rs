//! The process-isolation part of `cargo xtask demo`: the shipped consumer runs
//! with `isolation: process` beside the in-process producer; the demo kills the
//! consumer's child host with SIGKILL, sees `module.crashed`, the restart, and
//! pings arriving again, then stops the run and checks no process is left.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orch_e2e::{OrchProcess, Scenario, module_hosts, processes_with_env};

use crate::tally::Tally;

const MODULES: &str = "modules:\n  - name: fixture-event-log\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 100ms\n  - name: mod-dummy-consumer\n    isolation: process\n";
const START_DEADLINE: Duration = Duration::from_secs(180);
const DEADLINE: Duration = Duration::from_secs(15);

/// Runs the steps; errors are reserved for what stops the demo itself.
pub fn run() -> Result<Tally> {
    println!("=== demo: isolation: process ===");
    let mut tally = Tally::default();
    let marker = format!("orch-demo-isolation-{}", std::process::id());
    let scenario = Scenario::new(MODULES);
    let mut command = scenario.command(&["run"]);
    command.env("ORCH_E2E_MARKER", &marker);
    let marker = format!("ORCH_E2E_MARKER={marker}");
    let mut orch =
        OrchProcess::spawn(command).map_err(|e| anyhow!("spawning cargo orch run: {e}"))?;

    let started = orch
        .wait_for(
            "[mod-dummy-consumer] Received test.ping: hello (seq 3)",
            START_DEADLINE,
        )
        .map_err(|e| anyhow!(e))
        .and_then(|_| {
            let hosts = module_hosts(&marker, "mod-dummy-consumer");
            ensure!(hosts.len() == 1, "one child host expected: {hosts:?}");
            Ok(format!("consumer in child process {}", hosts[0]))
        });
    tally.record(
        "the isolated consumer runs in its own process and receives pings",
        started,
    );

    let killed = module_hosts(&marker, "mod-dummy-consumer")
        .first()
        .copied()
        .ok_or_else(|| anyhow!("no child host to kill"))
        .and_then(|pid| {
            let raw = i32::try_from(pid)?;
            kill(Pid::from_raw(raw), Signal::SIGKILL)?;
            let at = Instant::now();
            orch.wait_for(
                "EVENT module.crashed {\"generation\":1,\"name\":\"mod-dummy-consumer\"",
                DEADLINE,
            )
            .and_then(|_| {
                orch.wait_for(
                    "EVENT module.restarted {\"name\":\"mod-dummy-consumer\"",
                    DEADLINE,
                )
            })
            .map_err(|e| anyhow!(e))?;
            Ok((pid, at))
        });
    let back = killed.and_then(|(old, at)| {
        let seen = received(&orch);
        let deadline = Instant::now() + DEADLINE;
        while received(&orch) < seen + 3 {
            ensure!(Instant::now() < deadline, "no ping after the restart");
            orch.collect_for(Duration::from_millis(100));
        }
        let hosts = module_hosts(&marker, "mod-dummy-consumer");
        ensure!(
            hosts.len() == 1 && hosts[0] != old,
            "a new child host: {hosts:?}"
        );
        Ok(format!(
            "back in process {} after {} ms",
            hosts[0],
            at.elapsed().as_millis()
        ))
    });
    tally.record(
        "SIGKILL of the consumer's process: module.crashed, restart, pings again",
        back,
    );

    let stopped = orch
        .signal(Signal::SIGINT)
        .and_then(|()| orch.wait_exit(Duration::from_secs(20)))
        .map_err(|e| anyhow!(e))
        .and_then(|status| {
            ensure!(status.code() == Some(0), "exit status {status}");
            let left = processes_with_env(&marker);
            ensure!(left.is_empty(), "processes left: {left:?}");
            Ok(String::new())
        });
    tally.record(
        "SIGINT ends the run with exit code 0 and no child left",
        stopped,
    );
    Ok(tally)
}

/// How many pings the isolated consumer has logged.
fn received(orch: &OrchProcess) -> usize {
    orch.lines_with("[mod-dummy-consumer] Received test.ping")
        .len()
}
