//! Every benchmark runs in a tiny configuration, so none of them can rot. No time
//! is asserted: only that each runs to the end and writes its table as JSON.
//! Its release builds make it the slow lane's (`cargo xtask ci`, which CI
//! runs after the default lane).

use std::process::Command;

use orch_e2e::{cargo, workspace_root};

fn xtask(args: &[&str], out: &std::path::Path) -> Command {
    let mut command = cargo();
    command
        .current_dir(workspace_root())
        .args(["run", "-q", "-p", "xtask", "--"])
        .args(args)
        .env("ORCH_BENCH_DIR", out)
        .env("NO_COLOR", "1");
    command
}

fn json(path: std::path::PathBuf) -> serde_json::Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
#[ignore = "slow lane (three release builds): cargo xtask ci runs it"]
fn every_benchmark_runs_in_a_tiny_configuration() {
    let out = tempfile::tempdir().unwrap();
    for args in [
        vec!["bench", "all", "--smoke"],
        vec!["bench", "reload", "--edits", "2"],
        vec!["bench", "test", "--repeat", "1"],
    ] {
        let output = xtask(&args, out.path()).output().expect("cargo xtask runs");
        assert!(
            output.status.success(),
            "{args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let reload = json(out.path().join("reload.json"));
    assert_eq!(
        reload["leaky_module"]["libraries_kept"], 2,
        "each reload of the thread-leaking module keeps its library: {reload}"
    );
    assert!(reload["leaky_module"]["rss_kib_per_reload"].is_number());
    let tap = json(out.path().join("tap.json"));
    let taps = tap["rows"].as_array().unwrap();
    assert_eq!(taps.len(), 3, "no tap, a stalled one, a reading one: {tap}");
    assert!(
        taps[1]["tap_dropped"].as_u64().unwrap() > 0,
        "the stalled tap reports its drops: {tap}"
    );
    let bus = json(out.path().join("bus.json"));
    let rows = bus["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        18,
        "two floors and orch for 2 payloads x 3 subscriber counts"
    );
    assert!(
        rows.iter()
            .filter(|r| r["path"] != "floor: unbounded channel")
            .all(|r| r["p50_us"].as_f64().is_some() && r["burst_first_p50_us"].as_f64().is_some()),
        "evenly spaced and first-of-burst latency on the bounded floor and the bus: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|r| r["events_per_s"].as_f64().unwrap() > 0.0)
    );
    let isolated = bus["isolated_rows"].as_array().unwrap();
    assert_eq!(
        isolated.len(),
        4,
        "an isolated consumer for 2 payloads, through shared memory and pipes"
    );
    assert!(
        isolated
            .iter()
            .all(|r| r["events_per_s"].as_f64().unwrap() > 0.0)
    );
    assert!(
        isolated
            .iter()
            .all(|r| r["reference_events_per_s"].as_f64().unwrap_or(0.0) > 0.0),
        "each isolated row has its in-process reference from the same run: {isolated:?}"
    );
    let paths: Vec<&str> = isolated.iter().filter_map(|r| r["path"].as_str()).collect();
    assert!(
        paths.contains(&"orch bus (isolated, shm)") && paths.contains(&"orch bus (isolated, pipe)"),
        "{paths:?}"
    );
    let idle = bus["idle_child"].as_array().unwrap();
    assert_eq!(idle.len(), 2, "an idle child per transport: {idle:?}");
    assert!(
        idle.iter().all(|i| i["cpu_ms"].as_f64().is_some()),
        "{idle:?}"
    );
    assert!(
        json(out.path().join("startup.json"))["median_ms"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let memory = json(out.path().join("memory.json"));
    let rows = memory["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8, "idle, load, storm and flood rows: {rows:?}");
    assert!(
        rows.iter().all(|r| r["rss_kib"].as_u64().unwrap_or(0) > 0),
        "{rows:?}"
    );
    let bridge = json(out.path().join("bridge.json"));
    let rows = bridge["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        14,
        "2 floors and orch for core and JetStream x 2 payloads, and the in-process bus: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|r| r["events_per_s"].as_f64().unwrap() > 0.0)
    );
    let reload = json(out.path().join("reload.json"));
    assert_eq!(reload["edits"], 2);
    assert!(reload["ratio_to_floor"].as_f64().unwrap() > 0.0);
    assert!(out.path().join("test.json").exists());
}

/// `bench work` on its own (a release build of one example and a
/// nats-server): tiny, so it checks only that each row runs to the end and
/// that every job was handled once.
#[test]
#[ignore = "slow lane (a release build and a nats-server): cargo xtask ci runs it"]
fn the_shared_work_benchmark_runs_in_a_tiny_configuration() {
    let out = tempfile::tempdir().unwrap();
    let args = ["bench", "work", "--jobs", "50", "--handler-ms", "1"];
    let output = xtask(&args, out.path()).output().expect("cargo xtask runs");
    assert!(
        output.status.success(),
        "{args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let work = json(out.path().join("work.json"));
    let rows = work["rows"].as_array().unwrap();
    let nodes: Vec<u64> = rows.iter().filter_map(|r| r["nodes"].as_u64()).collect();
    assert_eq!(nodes, [1, 2, 3], "{work}");
    for row in rows {
        assert_eq!(row["handled"], row["jobs"], "every job handled once: {row}");
        assert_eq!(row["jobs"].as_u64(), row["nodes"].as_u64().map(|n| n * 50));
        assert!(row["jobs_per_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["ratio_to_one"].as_f64().unwrap() > 0.0, "{row}");
    }
}
