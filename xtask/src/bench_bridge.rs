//! `cargo xtask bench bridge`: events from a producer module on node A to a
//! consumer module on node B through a real nats-server (started here, on
//! loopback, with a temporary JetStream store), core NATS and JetStream, next
//! to a bare async-nats publisher and subscriber in the same run (the floor)
//! and the in-process bus. orch-bridge's `bench_bridge` example measures; this
//! prints the table with the ratios and writes `target/bench/bridge.json`.

use anyhow::{Context as _, Result};
use orch_e2e::NatsServer;
use serde_json::{Value, json};
use std::path::Path;

use crate::stats::cores;

/// Runs the benchmark with `events` per configuration.
pub fn run(root: &Path, events: u64) -> Result<Value> {
    let server = NatsServer::start().context("starting nats-server")?;
    let args = [server.url(), events.to_string(), "release".to_owned()];
    let mut value = crate::release_example::json(root, "orch-bridge", "bench_bridge", &args)?;
    value["cores"] = json!(cores());
    value["nats_server"] = json!(orch_e2e::nats::NATS_SERVER_VERSION);
    print(&value);
    Ok(value)
}

fn print(result: &Value) {
    println!(
        "bench bridge ({} cores, nats-server {}; events/s at full throttle, median of 5; \
         latency = publish on node A to handler on node B at {} events/s)",
        cores(),
        result["nats_server"].as_str().unwrap_or("?"),
        result["latency_rate_per_s"]
    );
    println!(
        "{:<32} {:>9} {:>7} {:>15} {:>11} {:>9} {:>9} {:>9}",
        "path", "mode", "payload", "received", "events/s", "p50 µs", "p99 µs", "p99.9 µs"
    );
    let rows = result["rows"].as_array().cloned().unwrap_or_default();
    let get = |r: &Value, key: &str| r[key].as_f64().unwrap_or(0.0);
    for row in &rows {
        println!(
            "{:<32} {:>9} {:>7} {:>15} {:>11.0} {:>9.1} {:>9.1} {:>9.1}",
            row["path"].as_str().unwrap_or(""),
            row["mode"].as_str().unwrap_or(""),
            row["payload_bytes"],
            format!("{}/{}", row["received"], row["events"]),
            get(row, "events_per_s"),
            get(row, "p50_us"),
            get(row, "p99_us"),
            get(row, "p999_us"),
        );
        if !row["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("orch bridge"))
        {
            continue;
        }
        let mut slower = Vec::new();
        for (label, floor_path) in [
            ("  ratio orch / floor", "floor: bare async-nats"),
            (
                "  ... / floor with headers",
                "floor, with the envelope headers",
            ),
        ] {
            let floor = rows.iter().find(|f| {
                f["path"] == floor_path
                    && f["mode"] == row["mode"]
                    && f["payload_bytes"] == row["payload_bytes"]
            });
            if let Some(floor) = floor {
                let ratio = get(floor, "events_per_s") / get(row, "events_per_s").max(1e-9);
                slower.push(ratio);
                println!(
                    "{label:<32} throughput {ratio:.2}x slower, p50 {:.2}x",
                    get(row, "p50_us") / get(floor, "p50_us").max(1e-9)
                );
            }
        }
        if let Some(beside) = row.get("beside_bare") {
            println!(
                "  beside a bare subscriber: at full throttle node B got {} of {}, a bare \
                 subscriber of the same messages {}",
                beside["node_b"], row["events"], beside["bare"]
            );
        }
        if let [plain, same_envelope] = slower[..] {
            println!(
                "{}",
                target_line(
                    row["mode"].as_str(),
                    plain,
                    same_envelope,
                    get(row, "events_per_s"),
                    row.get("beside_bare"),
                )
            );
        }
    }
}

/// Whether a bridge row meets its target: core NATS within 1.2x of the bare
/// client sending the same messages (the envelope headers the bridge must
/// send) and, at full throttle, losing no more than a bare subscriber of
/// the same messages beside node B; JetStream at 50,000 events/s or more
/// and within 1.5x of the bare JetStream publisher with the same window of
/// outstanding acknowledgements (plain, the stricter floor).
fn target_line(
    mode: Option<&str>,
    plain: f64,
    same_envelope: f64,
    events_per_s: f64,
    beside_bare: Option<&Value>,
) -> String {
    let verdict = |met: bool| if met { "met" } else { "missed" };
    if mode == Some("jetstream") {
        format!(
            "  target: 50,000 events/s and within 1.5x of a bare JetStream publisher with the \
             same window: {} ({events_per_s:.0} events/s, {plain:.2}x)",
            verdict(events_per_s >= 50_000.0 && plain <= 1.5)
        )
    } else {
        let lost_no_more = beside_bare.is_some_and(|beside| {
            beside["node_b"].as_u64().unwrap_or(0) >= beside["bare"].as_u64().unwrap_or(u64::MAX)
        });
        format!(
            "  target: within 1.2x of the bare client sending the same envelope: {} \
             ({same_envelope:.2}x; {plain:.2}x of one sending no headers); losing no more than \
             the bare subscriber beside it: {}",
            verdict(same_envelope <= 1.2),
            verdict(lost_no_more)
        )
    }
}
