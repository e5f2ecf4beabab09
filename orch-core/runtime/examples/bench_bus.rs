//! The measuring half of `cargo xtask bench bus|startup|memory` (run in release
//! by the xtask; prints one JSON document on stdout).
//!
//! `bus`: a producer module publishes through the real bus to 1, 4 or 16
//! consumer modules, all real cdylibs loaded by the host, for a bare and a
//! 1 KB payload; beside it the floor, the same traffic and payload work
//! between threads of this binary over crossbeam channels, unbounded and
//! bounded like a mailbox ([`floor`], [`rows`]). `isolated_rows`: one consumer
//! with `isolation: process` (a child host), through its shared-memory rings
//! and through pipes, beside an in-process consumer with the same count; and
//! the CPU time an idle isolated child uses over 10 s (`idle_child`).
//! `memory`: resident memory of the host idle with 3 and 20 modules, under an
//! event storm and a flood into a slow consumer (bounded mailboxes), and while
//! 20 modules take 100,000 events/s. Times are on the monotonic clock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use orch_cargo::{BuildRequest, Builder};
use orch_config::workspace::Workspace;
use orch_config::{Isolation, MailboxSettings, ModuleSpec, Overflow, Timeouts};
use orch_runtime::bus::{Bus, BusEvent};
use orch_runtime::isolation::Transport;
use orch_runtime::loader::Loader;
use orch_runtime::supervisor::Supervisor;
use serde_json::{Value, json};

/// The hosts' allocator (see cargo-orch's main.rs): what the bus costs in
/// `cargo orch run`; the floor runs on it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "bench_bus/floor.rs"]
mod floor;
#[path = "bench_bus/idle.rs"]
mod idle;
#[path = "bench_bus/rows.rs"]
mod rows;

use idle::{IDLE, idle_child};

const PRODUCER: &str = "fixture-bench-producer";
const CONSUMER: &str = "fixture-bench-consumer";
/// Publishes two events for each one it receives, its own included.
const STORM: &str = "fixture-storm";
/// Publishes from a thread of its own as fast as the bus takes it.
const FLOOD: &str = "fixture-flood";
/// Takes 1 ms per event.
const SLOW: &str = "fixture-slow-consumer";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("bus");
    let events: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    // `debug` as third argument: modules in the dev profile (the smoke test).
    let release = args.get(2).is_none_or(|a| a != "debug");
    let result = match what {
        "bus" => bus(events, release),
        "memory" => memory(events, release),
        // The isolated rows alone, for tuning the child transports:
        // `isolated <events> <release> [shm|pipe]`.
        "isolated" => artifacts(release).and_then(|(workspace, artifacts)| {
            let only = args.get(3).map(String::as_str);
            orch_runtime::isolation::set_host_program(host_binary(&workspace, release)?);
            let size = rows::Size {
                quick: !release || events < 100_000,
                events,
            };
            rows::isolated(&workspace, &artifacts, size, only)
                .map(|rows| json!({ "isolated_rows": rows }))
        }),
        // One flood (for profilers and before/after runs):
        // `one <events> <release> <subscribers> <payload> [floor|shm|pipe]`,
        // through the bus or, with `floor`, through the bounded floor, or
        // to isolated consumers over shared memory or pipes.
        "one" => one(
            events,
            release,
            args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1),
            args.get(4).and_then(|a| a.parse().ok()).unwrap_or(0),
            args.get(5).map(String::as_str),
        ),
        other => Err(format!("unknown measurement {other}; use bus or memory")),
    };
    match result {
        Ok(value) => println!("{value}"),
        Err(error) => {
            eprintln!("bench_bus: {error}");
            std::process::exit(1);
        }
    }
}

/// How the producer paces its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// As fast as the bus takes them.
    Flood,
    /// Evenly spaced at this rate (events/s).
    Even(u64),
    /// At this rate, this many at a time (the bursts evenly spaced).
    Bursts(u64, u64),
}

impl Pace {
    /// The producer's `rate` and `burst`.
    fn config(self) -> (Option<u64>, Option<u64>) {
        match self {
            Self::Flood => (None, None),
            Self::Even(rate) => (Some(rate), Some(1)),
            Self::Bursts(rate, burst) => (Some(rate), Some(burst)),
        }
    }

    /// Which events count for latency: every `burst()`th (the first of each
    /// burst).
    pub fn burst(self) -> u64 {
        match self {
            Self::Bursts(_, burst) => burst.max(1),
            _ => 1,
        }
    }

    /// Events per tick and the time between ticks, unless flooding.
    pub fn schedule(self) -> Option<(u64, Duration)> {
        let (rate, burst) = self.config();
        let (rate, burst) = (rate?.max(1), burst.unwrap_or(1).max(1));
        Some((burst, Duration::from_nanos(burst * 1_000_000_000 / rate)))
    }
}

/// Builds the bench modules in release and returns their libraries.
fn artifacts(release: bool) -> Result<(Workspace, HashMap<String, PathBuf>), String> {
    let workspace = orch_cargo::discover_workspace(Path::new(env!("CARGO_MANIFEST_DIR")))
        .map_err(|e| e.to_string())?;
    let request = BuildRequest {
        packages: [PRODUCER, CONSUMER, STORM, FLOOD, SLOW]
            .map(String::from)
            .to_vec(),
        release,
        timeout: Duration::from_secs(900),
    };
    let output = Builder::new(&workspace)
        .build(&request)
        .map_err(|e| e.to_string())?;
    Ok((workspace, output.artifacts))
}

fn spec(name: &str, package: &str, config: Value) -> ModuleSpec {
    ModuleSpec {
        name: name.into(),
        package: package.into(),
        enabled: true,
        config,
        depends_on: Vec::new(),
        line: 0,
        test: Default::default(),
        ..Default::default()
    }
}

fn timeouts() -> Timeouts {
    Timeouts {
        event: Duration::from_secs(600),
        ..Timeouts::default()
    }
}

/// One run through the real bus: returns the consumers' reports and the wall time.
fn run_bus(
    workspace: &Workspace,
    artifacts: &HashMap<String, PathBuf>,
    events: u64,
    payload: usize,
    subscribers: usize,
    pace: Pace,
    isolation: Isolation,
) -> Result<(Vec<Value>, Duration, Option<u64>), String> {
    let (rate, burst) = pace.config();
    let bus = Bus::new();
    let loader = Loader::new(&workspace.target_dir).map_err(|e| e.to_string())?;
    let mut supervisor = Supervisor::new(bus.clone(), loader, timeouts());
    let mut specs = vec![spec(
        "bench-producer",
        PRODUCER,
        json!({ "count": events, "payload_bytes": payload, "rate": rate, "burst": burst }),
    )];
    for n in 1..=subscribers {
        let mut consumer = spec(
            &format!("bench-consumer-{n}"),
            CONSUMER,
            json!({ "expect": events, "burst": pace.burst() }),
        );
        consumer.isolation = isolation;
        specs.push(consumer);
    }
    let (tx, done) = unbounded::<Arc<BusEvent>>();
    let observer = bus.register(Arc::new(tx));
    bus.subscribe(observer, "bench.done")
        .map_err(|e| e.to_string())?;
    let refs: Vec<&ModuleSpec> = specs.iter().collect();
    let report = supervisor.start(&refs, artifacts);
    if let Some(failure) = report.failures.first() {
        return Err(failure.to_string());
    }
    let started = Instant::now();
    let sampler = rate.map(|_| spawn_rss_sampler());
    bus.publish_json("bench.go", &json!({}));
    let mut reports = Vec::new();
    for _ in 0..subscribers {
        let event = done
            .recv_timeout(Duration::from_secs(600))
            .map_err(|_| "the consumers did not finish within 600 s".to_string())?;
        reports.push(serde_json::from_slice(event.payload()).map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed();
    let peak_rss = sampler.map(|(stop, handle)| {
        drop(stop);
        handle.join().unwrap_or(0)
    });
    supervisor.shutdown("benchmark done");
    Ok((reports, elapsed, peak_rss))
}

/// `summary` of one subscriber's latencies (sorted here) and first and last
/// arrival times.
fn summary(mut latencies: Vec<u64>, first: u64, last: u64) -> Value {
    latencies.sort_unstable();
    let at = |q: f64| {
        if latencies.is_empty() {
            0
        } else {
            latencies[((latencies.len() - 1) as f64 * q).round() as usize]
        }
    };
    json!({ "count": latencies.len(), "p50_ns": at(0.5), "p99_ns": at(0.99), "p999_ns": at(0.999), "first_ns": first, "last_ns": last })
}

fn bus(events: u64, release: bool) -> Result<Value, String> {
    let (workspace, artifacts) = artifacts(release)?;
    // The smoke run (debug, or a few events) only checks that it all works.
    let size = rows::Size {
        quick: !release || events < 100_000,
        events,
    };
    let rows = rows::in_process(&workspace, &artifacts, size)?;
    orch_runtime::isolation::set_host_program(host_binary(&workspace, release)?);
    let isolated_rows = rows::isolated(&workspace, &artifacts, size, None)?;
    let idle = [Transport::SharedMemory, Transport::Pipe]
        .into_iter()
        .map(|transport| {
            let period = if release {
                IDLE
            } else {
                Duration::from_secs(1)
            };
            idle_child(&workspace, &artifacts, transport, period)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "benchmark": "bus",
        "rows": rows,
        "isolated_rows": isolated_rows,
        "idle_child": idle,
    }))
}

/// Builds `cargo-orch` (the child module host) in the modules' profile, or
/// takes `BENCH_HOST_PROGRAM` (an A/B run of two child hosts).
fn host_binary(workspace: &Workspace, release: bool) -> Result<PathBuf, String> {
    if let Some(program) = std::env::var_os("BENCH_HOST_PROGRAM") {
        return Ok(PathBuf::from(program));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.current_dir(&workspace.root).args([
        "build",
        "-q",
        "-p",
        "cargo-orch",
        "--bin",
        "cargo-orch",
    ]);
    if release {
        command.arg("--release");
    }
    let status = command.status().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("building cargo-orch failed: {status}"));
    }
    let profile = if release { "release" } else { "debug" };
    Ok(workspace.target_dir.join(profile).join("cargo-orch"))
}

/// One flood through the real bus, for profiling.
fn one(
    events: u64,
    release: bool,
    subscribers: usize,
    payload: usize,
    path: Option<&str>,
) -> Result<Value, String> {
    if path == Some("floor") {
        let bound = floor::Channel::Bounded(rows::MAILBOX);
        let (_, elapsed) = floor::run_floor(events, payload, subscribers, Pace::Flood, bound);
        return Ok(json!({ "events_per_s": events as f64 / elapsed.as_secs_f64() }));
    }
    let (workspace, artifacts) = artifacts(release)?;
    let isolation = match path {
        Some(transport @ ("shm" | "pipe")) => {
            orch_runtime::isolation::set_host_program(host_binary(&workspace, release)?);
            orch_runtime::isolation::set_transport(if transport == "shm" {
                Transport::SharedMemory
            } else {
                Transport::Pipe
            });
            Isolation::Process
        }
        _ => Isolation::InProcess,
    };
    let (_, elapsed, _) = run_bus(
        &workspace,
        &artifacts,
        events,
        payload,
        subscribers,
        Pace::Flood,
        isolation,
    )?;
    Ok(json!({ "events_per_s": events as f64 / elapsed.as_secs_f64() }))
}

/// Resident memory of this process in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples RSS every 50 ms until the sender is dropped; returns the peak.
fn spawn_rss_sampler() -> (crossbeam_channel::Sender<()>, std::thread::JoinHandle<u64>) {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let handle = std::thread::spawn(move || {
        let mut peak = rss_kib();
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
            stopped.recv_timeout(Duration::from_millis(50))
        {
            peak = peak.max(rss_kib());
        }
        peak.max(rss_kib())
    });
    (stop, handle)
}

/// RSS with `modules` modules loaded and idle.
fn idle_rss(
    workspace: &Workspace,
    artifacts: &HashMap<String, PathBuf>,
    modules: usize,
) -> Result<u64, String> {
    let loader = Loader::new(&workspace.target_dir).map_err(|e| e.to_string())?;
    let mut supervisor = Supervisor::new(Bus::new(), loader, timeouts());
    let specs: Vec<ModuleSpec> = (1..=modules)
        .map(|n| spec(&format!("idle-{n}"), CONSUMER, json!({ "expect": 1 })))
        .collect();
    let refs: Vec<&ModuleSpec> = specs.iter().collect();
    let report = supervisor.start(&refs, artifacts);
    if let Some(failure) = report.failures.first() {
        return Err(failure.to_string());
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss = rss_kib();
    supervisor.shutdown("measured");
    Ok(rss)
}

/// Resident memory when `specs` start, and the peak over the `seconds` after.
fn under_load(
    workspace: &Workspace,
    artifacts: &HashMap<String, PathBuf>,
    specs: &[ModuleSpec],
    seconds: u64,
) -> Result<(u64, u64), String> {
    let loader = Loader::new(&workspace.target_dir).map_err(|e| e.to_string())?;
    let mut supervisor = Supervisor::new(Bus::new(), loader, timeouts());
    let start = rss_kib();
    let refs: Vec<&ModuleSpec> = specs.iter().collect();
    let report = supervisor.start(&refs, artifacts);
    if let Some(failure) = report.failures.first() {
        return Err(failure.to_string());
    }
    let (stop, sampler) = spawn_rss_sampler();
    std::thread::sleep(Duration::from_secs(seconds));
    drop(stop);
    let peak = sampler.join().unwrap_or(0);
    supervisor.shutdown("measured");
    Ok((start, peak))
}

/// A module with `capacity` and `overflow` for its mailbox.
fn bounded(name: &str, package: &str, capacity: usize, overflow: Overflow) -> ModuleSpec {
    ModuleSpec {
        mailbox: MailboxSettings { capacity, overflow },
        ..spec(name, package, json!({}))
    }
}

fn memory(events: u64, release: bool) -> Result<Value, String> {
    let (workspace, artifacts) = artifacts(release)?;
    let base = rss_kib();
    let three = idle_rss(&workspace, &artifacts, 3)?;
    let twenty = idle_rss(&workspace, &artifacts, 20)?;
    // 19 consumers + 1 producer at 100,000 events/s.
    let (_, elapsed, peak) = run_bus(
        &workspace,
        &artifacts,
        events,
        64,
        19,
        Pace::Bursts(100_000, 100),
        Isolation::InProcess,
    )?;
    // The loads of the bounded-queues issue, for a few seconds (1 in a tiny run).
    let seconds = if events < 100_000 { 1 } else { 10 };
    let storm = [bounded("storm", STORM, 2_000, Overflow::DropNewest)];
    let (storm_start, storm_peak) = under_load(&workspace, &artifacts, &storm, seconds)?;
    let slow = [
        bounded("slow", SLOW, 1_000, Overflow::Block),
        bounded("flood", FLOOD, 10_000, Overflow::Block),
    ];
    let (slow_start, slow_peak) = under_load(&workspace, &artifacts, &slow, seconds)?;
    Ok(json!({
        "benchmark": "memory",
        "rows": [
            { "state": "host process before loading modules", "rss_kib": base },
            { "state": "3 modules, idle", "rss_kib": three },
            { "state": "20 modules, idle", "rss_kib": twenty },
            { "state": format!("20 modules, {events} events at 100,000 events/s (peak)"), "rss_kib": peak.unwrap_or(0), "seconds": elapsed.as_secs_f64() },
            { "state": "event storm: 2 events per event, mailbox 2,000 drop-newest, before", "rss_kib": storm_start },
            { "state": format!("event storm after {seconds} s (peak)"), "rss_kib": storm_peak, "seconds": seconds },
            { "state": "flood into a 1 ms consumer, mailbox 1,000 block, before", "rss_kib": slow_start },
            { "state": format!("flood into a 1 ms consumer after {seconds} s (peak)"), "rss_kib": slow_peak, "seconds": seconds },
        ]
    }))
}
