//! The NATS part of `cargo xtask demo`: two orchestrators, each from a config
//! folder of this workspace (`config/bridge-demo/producer` and `.../consumer`),
//! exchange pings through a real nats-server with JetStream; the broker is
//! restarted mid-stream, and the consumer's sequence must have no gap and no
//! repeat.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use nix::sys::signal::Signal;
use orch_e2e::{NatsServer, OrchProcess, orch_bin, workspace_root};

use crate::tally::Tally;

const START_DEADLINE: Duration = Duration::from_secs(180);
const DEADLINE: Duration = Duration::from_secs(20);

fn orchestrator(side: &str, url: &str) -> Result<OrchProcess> {
    let mut command = std::process::Command::new(orch_bin());
    command
        .current_dir(workspace_root())
        .args(["orch", "run", "--config-dir"])
        .arg(workspace_root().join("config/bridge-demo").join(side))
        .env("ORCH_NATS_URL", url)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    OrchProcess::spawn(command).map_err(|e| anyhow!("spawning the {side}: {e}"))
}

/// The sequence numbers the consumer logged, in order.
fn received(orch: &OrchProcess) -> Vec<u64> {
    orch.pings_received("mod-dummy-consumer")
}

fn wait_for_more(orch: &mut OrchProcess, more: usize) -> Result<()> {
    let target = received(orch).len() + more;
    let deadline = Instant::now() + DEADLINE;
    while received(orch).len() < target {
        ensure!(
            Instant::now() < deadline,
            "fewer than {more} new pings within {DEADLINE:?}"
        );
        orch.collect_for(Duration::from_millis(100));
    }
    Ok(())
}

fn stop(orch: &mut OrchProcess) -> Result<()> {
    orch.signal(Signal::SIGINT).map_err(|e| anyhow!(e))?;
    let status = orch
        .wait_exit(Duration::from_secs(30))
        .map_err(|e| anyhow!(e))?;
    ensure!(status.code() == Some(0), "exit status {status}");
    Ok(())
}

/// Runs the steps; errors are reserved for what stops the demo itself.
pub fn run() -> Result<Tally> {
    println!("=== demo: two orchestrators through NATS (JetStream) ===");
    let mut tally = Tally::default();
    let mut server = NatsServer::start()?;
    let url = server.url();
    let mut consumer = orchestrator("consumer", &url)?;
    let mut producer = orchestrator("producer", &url)?;

    let flowing = consumer
        .wait_for("[mod-dummy-consumer] Received test.ping", START_DEADLINE)
        .map_err(|e| anyhow!(e))
        .and_then(|_| wait_for_more(&mut consumer, 10))
        .map(|()| format!("through {url}"));
    tally.record(
        "the consumer's orchestrator receives the producer's pings through NATS",
        flowing,
    );

    server.stop();
    let away = producer
        .wait_for("[BRIDGE] lost NATS", DEADLINE)
        .map_err(|e| anyhow!(e))
        .map(|_| {
            // The producer goes on; its pings wait in the bridge's outbox.
            producer.collect_for(Duration::from_secs(2));
        });
    let back = away.and_then(|()| {
        let before = received(&consumer).len();
        server.restart()?;
        wait_for_more(&mut consumer, 30)?;
        Ok(format!(
            "{} pings after the restart",
            received(&consumer).len() - before
        ))
    });
    tally.record(
        "the broker restarts mid-stream: both reconnect and the pings go on",
        back,
    );

    let stopped = stop(&mut producer).and_then(|()| {
        consumer.collect_for(Duration::from_secs(1));
        stop(&mut consumer)
    });
    let sequence = stopped.and_then(|()| {
        let seqs = received(&consumer);
        ensure!(seqs.len() > 40, "only {} pings", seqs.len());
        let first = seqs[0];
        let gaps: Vec<(u64, u64)> = seqs
            .windows(2)
            .filter(|w| w[1] != w[0] + 1)
            .map(|w| (w[0], w[1]))
            .collect();
        ensure!(gaps.is_empty(), "gaps or repeats at {gaps:?}");
        let sent = producer.lines_with("Published test.ping").len() as u64;
        ensure!(
            first == 1 && seqs.len() as u64 >= sent.saturating_sub(2),
            "{} of {sent} pings arrived, from seq {first}",
            seqs.len()
        );
        Ok(format!("seq 1..{} in order", seqs.len()))
    });
    tally.record(
        "across the restart the consumer's sequence has no gap and no repeat",
        sequence,
    );
    Ok(tally)
}
