//! The hot-reload part of `cargo xtask demo`, in a throw-away copy of the
//! workspace ([`ScratchWorkspace`]: the repository is never modified, even if the
//! demo fails or is interrupted).
//!
//! 1. `cargo orch run --watch` with the shipped producer and consumer (and a
//!    fixture module that logs every `module.*` event, so the demo sees the bus).
//! 2. An edit of the producer's code: the consumer receives the new text, and
//!    `module.reloaded` is published.
//! 3. A compile error in the producer: `module.reload_failed` is published and
//!    pings keep arriving from the old generation.
//! 4. The error fixed: the producer reloads again.
//! 5. The save-to-running times of the reloads, from the `[TIMING]` lines.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, ensure};
use nix::sys::signal::Signal;
use orch_e2e::{OrchProcess, ScratchWorkspace};

use crate::tally::Tally;

const PRODUCER: &str = "modules-backend/mod-dummy-producer/src/lib.rs";
const MODULES: &str = "modules:\n  - name: fixture-event-log\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 100ms\n  - name: mod-dummy-consumer\n";
/// The producer's ping construction, as shipped.
const ORIGINAL: &str = "message: self.message.clone(),";
const EDITED: &str = "message: format!(\"{} from the edited producer\", self.message),";
const BROKEN: &str = "message: format!(\"{} from the edited producer\", self.message) +,";

const START_DEADLINE: Duration = Duration::from_secs(180);
const RELOAD_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the steps; errors are reserved for what stops the demo itself.
pub fn run() -> Result<Tally> {
    println!("=== demo: cargo orch run --watch ===");
    let mut tally = Tally::default();
    let scratch = ScratchWorkspace::copy_of_repo().context("copying the workspace")?;
    scratch
        .write("config/modules.yaml", MODULES)
        .context("writing modules.yaml in the copy")?;
    let mut orch = OrchProcess::spawn(scratch.orch(&["run", "--watch"]))
        .context("spawning cargo orch run --watch")?;

    let started = orch
        .wait_for("[WATCH] watching", START_DEADLINE)
        .and_then(|_| orch.wait_for("Received test.ping: hello (seq 2)", START_DEADLINE));
    tally.record(
        "cargo orch run --watch starts and the consumer receives pings",
        started.map(|_| String::new()).map_err(|e| anyhow!(e)),
    );

    let edited = scratch
        .replace(PRODUCER, ORIGINAL, EDITED)
        .map_err(|e| anyhow!(e))
        .and_then(|()| {
            orch.wait_for(
                "Received test.ping: hello from the edited producer",
                RELOAD_DEADLINE,
            )
            .map_err(|e| anyhow!(e))
        });
    tally.record(
        "an edit of the producer's code reaches the consumer",
        edited.map(|_| String::new()),
    );
    let reloaded = orch
        .wait_for("EVENT module.reloaded {\"build_ms\"", RELOAD_DEADLINE)
        .map_err(|e| anyhow!(e))
        .and_then(|line| {
            ensure!(
                line.text.contains("\"name\":\"mod-dummy-producer\""),
                "{}",
                line.text
            );
            ensure!(line.text.contains("\"generation\":2"), "{}", line.text);
            Ok(String::new())
        });
    tally.record("module.reloaded is published for generation 2", reloaded);

    let failed = scratch
        .replace(PRODUCER, EDITED, BROKEN)
        .map_err(|e| anyhow!(e))
        .and_then(|()| {
            orch.wait_for("EVENT module.reload_failed", RELOAD_DEADLINE)
                .map_err(|e| anyhow!(e))
        })
        .and_then(|line| {
            ensure!(line.text.contains("\"phase\":\"build\""), "{}", line.text);
            Ok(String::new())
        });
    tally.record("a compile error publishes module.reload_failed", failed);
    let keeps_going = last_seq(&orch).and_then(|seq| {
        let next = format!(
            "Received test.ping: hello from the edited producer (seq {})",
            seq + 3
        );
        orch.wait_for(&next, RELOAD_DEADLINE)
            .map_err(|e| anyhow!(e))
    });
    tally.record(
        "pings keep arriving from the old generation meanwhile",
        keeps_going.map(|_| String::new()),
    );

    let fixed = scratch
        .replace(PRODUCER, BROKEN, ORIGINAL)
        .map_err(|e| anyhow!(e))
        .and_then(|()| {
            orch.wait_for(
                "[TIMING] reload of 'mod-dummy-producer' to generation 3",
                RELOAD_DEADLINE,
            )
            .map_err(|e| anyhow!(e))
        });
    tally.record(
        "fixing the error reloads the producer",
        fixed.map(|_| String::new()),
    );

    let times: Vec<String> = orch
        .lines_with("[TIMING] reload of")
        .iter()
        .filter_map(|l| {
            l.split("save-to-running ")
                .nth(1)
                .map(|t| t.split(' ').take(2).collect::<Vec<_>>().join(" "))
        })
        .collect();
    println!(
        "       save-to-running of the reloads: {}",
        times.join(", ")
    );

    let stopped = orch
        .signal(Signal::SIGINT)
        .and_then(|()| orch.wait_exit(Duration::from_secs(20)))
        .map_err(|e| anyhow!(e))
        .and_then(|status| {
            ensure!(status.code() == Some(0), "exit status {status}");
            Ok(String::new())
        });
    tally.record("SIGINT ends the watching run with exit code 0", stopped);
    Ok(tally)
}

/// The highest sequence number the consumer has logged so far.
fn last_seq(orch: &OrchProcess) -> Result<u64> {
    orch.lines_with("Received test.ping")
        .iter()
        .filter_map(|line| line.rsplit("(seq ").next()?.split(')').next()?.parse().ok())
        .max()
        .ok_or_else(|| anyhow!("the consumer logged no ping"))
}
