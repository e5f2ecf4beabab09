//! `cargo xtask bench work`: shared work (`bridge.nats.work`, JetStream)
//! through a real nats-server (started here, on loopback, with a temporary
//! JetStream store) spread over 1, 2 and 3 nodes, each with one worker whose
//! handler sleeps a fixed time per job. orch-bridge's `bench_work` example
//! measures; this prints the table, each row's throughput as a ratio to one
//! node's in the same run and to the ideal, and writes `target/bench/work.json`.
//! No time is asserted.

use anyhow::{Context as _, Result};
use orch_e2e::NatsServer;
use serde_json::{Value, json};
use std::path::Path;

use crate::stats::cores;

/// What `cargo xtask bench work` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Jobs per node in a row (the row of N nodes publishes `jobs × N`).
    pub jobs: u64,
    /// The handler's sleep per job, in ms.
    pub handler_ms: u64,
}

/// Runs the benchmark, prints its table and writes `work.json`.
pub fn run(root: &Path, options: Options) -> Result<bool> {
    let out = crate::bench_dir();
    std::fs::create_dir_all(&out)?;
    let server = NatsServer::start().context("starting nats-server")?;
    let args = [
        server.url(),
        "--jobs".to_owned(),
        options.jobs.to_string(),
        "--handler-ms".to_owned(),
        options.handler_ms.to_string(),
    ];
    let mut value = crate::release_example::json(root, "orch-bridge", "bench_work", &args)?;
    drop(server);
    value["cores"] = json!(cores());
    value["nats_server"] = json!(orch_e2e::nats::NATS_SERVER_VERSION);
    add_ratios(&mut value);
    print(&value);
    let path = out.join("work.json");
    std::fs::write(&path, serde_json::to_string_pretty(&value)?)?;
    println!("written to {}", path.display());
    Ok(true)
}

/// Each row's throughput as a ratio to the one-node row of the same run
/// (`ratio_to_one`).
fn add_ratios(value: &mut Value) {
    let Some(rows) = value["rows"].as_array_mut() else {
        return;
    };
    let one = rows
        .iter()
        .find(|r| r["nodes"] == 1)
        .and_then(|r| r["jobs_per_s"].as_f64());
    for row in rows {
        if let (Some(one), Some(this)) = (one, row["jobs_per_s"].as_f64()) {
            row["ratio_to_one"] = json!(this / one.max(1e-9));
        }
    }
}

fn print(result: &Value) {
    println!(
        "bench work ({} cores, nats-server {}; one work group on JetStream, max_in_flight {}, \
         a worker per node whose handler sleeps {} ms per job; {} jobs per node; time = first \
         publish to last job handled; busy = the workers' time in their handlers over the \
         time they had; handler ms = a job's mean time in the handler)",
        cores(),
        result["nats_server"].as_str().unwrap_or("?"),
        result["max_in_flight"],
        result["handler_ms"],
        result["jobs_per_node"],
    );
    println!(
        "{:>5} {:>7} {:>8} {:>8} {:>7} {:>8} {:>9} {:>6} {:>10}  share per node",
        "nodes", "jobs", "time s", "jobs/s", "ideal", "of ideal", "vs 1 node", "busy", "handler ms"
    );
    let get = |r: &Value, key: &str| r[key].as_f64().unwrap_or(0.0);
    for row in result["rows"].as_array().into_iter().flatten() {
        let shares: Vec<String> = row["share"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| format!("{:.0}%", s.as_f64().unwrap_or(0.0) * 100.0))
            .collect();
        println!(
            "{:>5} {:>7} {:>8.2} {:>8.0} {:>7.0} {:>7.1}% {:>8.2}x {:>5.1}% {:>10.3}  {}",
            row["nodes"].as_u64().unwrap_or(0),
            row["jobs"].as_u64().unwrap_or(0),
            get(row, "elapsed_s"),
            get(row, "jobs_per_s"),
            get(row, "ideal_jobs_per_s"),
            get(row, "of_ideal") * 100.0,
            get(row, "ratio_to_one"),
            get(row, "busy") * 100.0,
            get(row, "handler_mean_ms"),
            shares.join(" / "),
        );
    }
    for row in result["rows"].as_array().into_iter().flatten() {
        let nodes = row["nodes"].as_u64().unwrap_or(0);
        if nodes > 1 {
            println!(
                "  {nodes} nodes: {:.2}x of one (ideal {nodes}x)",
                get(row, "ratio_to_one")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_compared_with_the_one_node_row() {
        let mut value = json!({ "rows": [
            { "nodes": 1, "jobs_per_s": 400.0 },
            { "nodes": 2, "jobs_per_s": 760.0 },
        ]});
        add_ratios(&mut value);
        assert_eq!(value["rows"][0]["ratio_to_one"], 1.0);
        assert_eq!(value["rows"][1]["ratio_to_one"], 1.9);
    }
}
