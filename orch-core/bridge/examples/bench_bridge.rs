//! The measuring half of `cargo xtask bench bridge` (run in release by the
//! xtask against a nats-server it started; prints one JSON document).
//!
//! `bench_bridge <nats-url> <events> [debug]`: a producer module on node A to
//! a consumer module on node B (two buses, two supervisors and two bridges in
//! this process, real cdylibs, a real broker), core NATS and JetStream, 0 B and
//! 1 KB payloads; beside them, in the same run, a bare async-nats publisher
//! and subscriber (the floor: core, and JetStream with the same window of
//! outstanding acknowledgements the bridge uses) and the in-process bus.
//! Throughput at full throttle (median of 5, floor and bridge taking turns),
//! latency publish-to-handler at a paced rate. On core NATS one more run at
//! full throttle has a bare subscriber of node A's messages beside node B,
//! to compare what each received.
//!
//! `BENCH_BRIDGE_ONLY=<mode>-<payload>` (`core-0`, `jetstream-1024`, ...)
//! measures that configuration alone and skips the in-process rows: for
//! profiling one path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use orch_bridge::Bridge;
use orch_cargo::{BuildRequest, Builder};
use orch_config::workspace::Workspace;
use orch_config::{
    JetStreamSettings, MailboxSettings, ModuleSpec, NatsAuth, NatsSettings, Overflow, Timeouts,
};
use orch_runtime::bus::{Bus, BusEvent};
use orch_runtime::loader::Loader;
use orch_runtime::status::BridgeStatus as _;
use orch_runtime::supervisor::Supervisor;
use serde_json::{Value, json};

#[path = "bench_bridge/floor.rs"]
mod floor;

use floor::{QUIET, alongside, bare, bare_with, drop_stream};

const PRODUCER: &str = "fixture-bench-producer";
const CONSUMER: &str = "fixture-bench-consumer";
/// Latency is measured at this rate (events/s), below saturation.
const LATENCY_RATE: u64 = 2_000;
/// Events of a latency run at most.
const LATENCY_EVENTS: u64 = 4_000;
/// Core NATS and in-process runs carry this many times the events asked
/// for: at 150,000 events/s a run of 20,000 lasts a tenth of a second, too
/// short to rise above the scheduling noise of a small machine.
const CORE_EVENTS_FACTOR: u64 = 5;
/// Throughput runs per configuration; the median counts.
const FLOOD_RUNS: usize = 5;

/// The hosts' allocator (see cargo-orch's main.rs); the floor runs on it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(events)) = (args.first(), args.get(1).and_then(|a| a.parse().ok())) else {
        eprintln!("usage: bench_bridge <nats-url> <events> [debug]");
        std::process::exit(2);
    };
    let release = args.get(2).is_none_or(|a| a != "debug");
    match bench(url, events, release) {
        Ok(value) => println!("{value}"),
        Err(error) => {
            eprintln!("bench_bridge: {error}");
            std::process::exit(1);
        }
    }
}

/// The machine's monotonic clock, as the bench modules stamp their events.
fn now_ns() -> u64 {
    orch_process::clock::monotonic_ns()
}

/// Mode of a run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Core,
    JetStream,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Core => "core",
            Mode::JetStream => "jetstream",
        }
    }
}

fn bench(url: &str, events: u64, release: bool) -> Result<Value, String> {
    let (workspace, artifacts) = artifacts(release)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let latency_events = events.min(LATENCY_EVENTS);
    let mut rows = Vec::new();
    let mut run_no = 0u32;
    let mut next = || {
        run_no += 1;
        run_no
    };
    let only = std::env::var("BENCH_BRIDGE_ONLY").ok();
    for mode in [Mode::Core, Mode::JetStream] {
        let events = match mode {
            Mode::Core => events.saturating_mul(CORE_EVENTS_FACTOR),
            Mode::JetStream => events,
        };
        for payload in [0usize, 1024] {
            if only
                .as_ref()
                .is_some_and(|only| *only != format!("{}-{payload}", mode.name()))
            {
                continue;
            }
            // The floor, the floor with the bridge's five envelope headers
            // (what the protocol costs, apart from what the bridge adds) and
            // the bridge take turns, so a drift of the machine's speed
            // reaches all three alike.
            let mut floods: [Vec<Run>; 3] = Default::default();
            for _ in 0..FLOOD_RUNS {
                let n = next();
                floods[0].push(runtime.block_on(bare(url, mode, n, events, payload, None))?);
                let n = next();
                floods[1]
                    .push(runtime.block_on(bare_with(url, mode, n, events, payload, None, true))?);
                let n = next();
                floods[2].push(orch(
                    &workspace, &artifacts, url, mode, n, events, payload, None, false,
                )?);
            }
            let [plain, enveloped, bridged] = floods.map(median);
            let n = next();
            let paced = runtime.block_on(bare(
                url,
                mode,
                n,
                latency_events,
                payload,
                Some(LATENCY_RATE),
            ))?;
            rows.push(row(
                "floor: bare async-nats",
                mode,
                payload,
                events,
                plain,
                &paced,
            ));
            let n = next();
            let paced = runtime.block_on(bare_with(
                url,
                mode,
                n,
                latency_events,
                payload,
                Some(LATENCY_RATE),
                true,
            ))?;
            rows.push(row(
                "floor, with the envelope headers",
                mode,
                payload,
                events,
                enveloped,
                &paced,
            ));
            let n = next();
            let paced = orch(
                &workspace,
                &artifacts,
                url,
                mode,
                n,
                latency_events,
                payload,
                Some(LATENCY_RATE),
                false,
            )?;
            let mut orch_row = row(
                "orch bridge (node A to node B)",
                mode,
                payload,
                events,
                bridged,
                &paced,
            );
            if mode == Mode::Core {
                // One more run at full throttle with a bare subscriber of
                // the same messages beside node B (apart from the timed
                // runs: it takes its share of the cores).
                let n = next();
                let beside = orch(
                    &workspace, &artifacts, url, mode, n, events, payload, None, true,
                )?;
                orch_row["beside_bare"] = json!({
                    "node_b": beside.report["count"].as_u64().unwrap_or(0),
                    "bare": beside.alongside.unwrap_or(0),
                });
            }
            rows.push(orch_row);
        }
    }
    let events = events.saturating_mul(CORE_EVENTS_FACTOR);
    for payload in [0usize, 1024] {
        if only.is_some() {
            break;
        }
        let flood = median(
            (0..FLOOD_RUNS)
                .map(|_| in_process(&workspace, &artifacts, events, payload, None))
                .collect::<Result<_, _>>()?,
        );
        let paced = in_process(
            &workspace,
            &artifacts,
            latency_events,
            payload,
            Some(LATENCY_RATE),
        )?;
        rows.push(row(
            "orch bus, in-process",
            Mode::Core,
            payload,
            events,
            flood,
            &paced,
        ));
    }
    Ok(json!({ "benchmark": "bridge", "latency_rate_per_s": LATENCY_RATE, "rows": rows }))
}

/// One measured run: the wall time and the consumer's latency report.
struct Run {
    elapsed: Duration,
    report: Value,
    /// What a bare subscriber beside node B received of the same messages.
    alongside: Option<u64>,
}

/// The run of median throughput among `all` (events received per second:
/// on core NATS a run that lost events is slower, not faster).
fn median(mut all: Vec<Run>) -> Run {
    let rate = |run: &Run| {
        let received = run.report["count"].as_u64().unwrap_or(0) as f64;
        received / run.elapsed.as_secs_f64().max(1e-9)
    };
    all.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    all.swap_remove(all.len() / 2)
}

fn row(path: &str, mode: Mode, payload: usize, events: u64, flood: Run, paced: &Run) -> Value {
    let us = |key: &str| paced.report[key].as_u64().unwrap_or(0) as f64 / 1e3;
    let received = flood.report["count"].as_u64().unwrap_or(events);
    json!({
        "path": path,
        "mode": mode.name(),
        "payload_bytes": payload,
        "events": events,
        "received": received,
        "events_per_s": received as f64 / flood.elapsed.as_secs_f64(),
        "p50_us": us("p50_ns"),
        "p99_us": us("p99_ns"),
        "p999_us": us("p999_ns"),
    })
}

/// The payload the bench producer writes: `{"t":<ns>,"i":<n>,"pad":"xx.."}`.
fn payload_of(index: u64, size: usize) -> Vec<u8> {
    let mut bytes = format!("{{\"t\":{},\"i\":{index},\"pad\":\"", now_ns()).into_bytes();
    let padding = size.saturating_sub(bytes.len() + 2);
    bytes.resize(bytes.len() + padding, b'x');
    bytes.extend_from_slice(b"\"}");
    bytes
}

fn latency_of(payload: &[u8]) -> Option<u64> {
    let digits = payload.strip_prefix(b"{\"t\":")?;
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    let sent: u64 = std::str::from_utf8(&digits[..end]).ok()?.parse().ok()?;
    Some(now_ns().saturating_sub(sent))
}

fn summary(mut latencies: Vec<u64>) -> Value {
    latencies.sort_unstable();
    let at = |q: f64| {
        if latencies.is_empty() {
            0
        } else {
            latencies[((latencies.len() - 1) as f64 * q).round() as usize]
        }
    };
    json!({ "count": latencies.len(), "p50_ns": at(0.5), "p99_ns": at(0.99), "p999_ns": at(0.999) })
}

/// Paces a producer: waits so that `sent` events took `sent / rate` seconds.
async fn pace(started: Instant, sent: u64, rate: Option<u64>) {
    if let Some(rate) = rate {
        let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Builds the bench modules and returns their libraries.
fn artifacts(release: bool) -> Result<(Workspace, HashMap<String, PathBuf>), String> {
    let workspace = orch_cargo::discover_workspace(Path::new(env!("CARGO_MANIFEST_DIR")))
        .map_err(|e| e.to_string())?;
    let request = BuildRequest {
        packages: vec![PRODUCER.into(), CONSUMER.into()],
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
        ..Default::default()
    }
}

fn timeouts() -> Timeouts {
    Timeouts {
        event: Duration::from_secs(600),
        publish: Duration::from_secs(60),
        ..Timeouts::default()
    }
}

/// A node: a bus, a supervisor with `modules`, and a bridge.
struct Node {
    supervisor: Supervisor,
    bridge: Bridge,
}

fn node(
    workspace: &Workspace,
    artifacts: &HashMap<String, PathBuf>,
    nats: &NatsSettings,
    modules: &[ModuleSpec],
) -> Result<Node, String> {
    let bus = Bus::new();
    let loader = Loader::new(&workspace.target_dir).map_err(|e| e.to_string())?;
    let mut supervisor = Supervisor::new(bus, loader, timeouts());
    let mut bridge = Bridge::start(
        nats,
        supervisor.bus(),
        supervisor.timers(),
        timeouts().publish,
        None,
        orch_bridge::NodeInfo {
            board: supervisor.status().clone(),
            app: "bench".into(),
            version: "0".into(),
            singletons: Vec::new(),
            leases: None,
            fences: Default::default(),
        },
    )
    .map_err(|e| e.to_string())?;
    let refs: Vec<&ModuleSpec> = modules.iter().collect();
    let report = supervisor.start(&refs, artifacts);
    if let Some(failure) = report.failures.first() {
        return Err(failure.to_string());
    }
    bridge.start_import();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bridge.is_connected() {
        if Instant::now() > deadline {
            return Err(format!("no connection to {:?}", nats.servers));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Node { supervisor, bridge })
}

#[allow(clippy::too_many_arguments)]
fn orch(
    workspace: &Workspace,
    artifacts: &HashMap<String, PathBuf>,
    url: &str,
    mode: Mode,
    run: u32,
    events: u64,
    payload: usize,
    rate: Option<u64>,
    with_bare: bool,
) -> Result<Run, String> {
    let settings = |node: &str, export: bool| NatsSettings {
        servers: vec![url.to_owned()],
        node: Some(node.to_owned()),
        subject_prefix: format!("bench.r{run}"),
        auth: NatsAuth::None,
        tls: None,
        export: if export {
            vec!["bench.event".into()]
        } else {
            Vec::new()
        },
        import: if export {
            Vec::new()
        } else {
            vec!["bench.event".into()]
        },
        presence: None,
        work: Vec::new(),
        serve: Vec::new(),
        ask: Vec::new(),
        jetstream: (mode == Mode::JetStream).then(|| JetStreamSettings {
            stream: format!("BENCH_R{run}"),
            durable: None,
            replicas: 1,
        }),
        outbox: MailboxSettings {
            capacity: usize::try_from(events)
                .unwrap_or(usize::MAX)
                .clamp(1, 1_000_000),
            overflow: Overflow::Block,
        },
    };
    let consumer = node(
        workspace,
        artifacts,
        &settings("bench-b", false),
        &[spec(
            "bench-consumer",
            CONSUMER,
            json!({ "expect": events }),
        )],
    )?;
    let (tx, done) = unbounded::<Arc<BusEvent>>();
    let observer = consumer.supervisor.bus().register(Arc::new(tx));
    consumer
        .supervisor
        .bus()
        .subscribe(observer, "bench.done")
        .map_err(|e| e.to_string())?;
    let bare = with_bare
        .then(|| alongside(url, format!("bench.r{run}.bench.event"), events))
        .transpose()?;
    let producer = node(
        workspace,
        artifacts,
        &settings("bench-a", true),
        &[spec(
            "bench-producer",
            PRODUCER,
            json!({ "count": events, "payload_bytes": payload, "rate": rate }),
        )],
    )?;
    if mode == Mode::JetStream {
        // Both ends have their stream and consumer before the first event.
        std::thread::sleep(Duration::from_millis(300));
    }
    let started_ns = now_ns();
    producer
        .supervisor
        .bus()
        .publish_json("bench.go", &json!({}));
    let report = until_done(&done, &consumer, events, mode)?;
    let report: Value = serde_json::from_slice(report.payload()).map_err(|e| e.to_string())?;
    let last_ns = report["last_ns"].as_u64().unwrap_or(started_ns);
    let elapsed = Duration::from_nanos(last_ns.saturating_sub(started_ns));
    let seen = consumer.bridge.probe().snapshot();
    let ours = consumer.bridge.imported().dropped.load(Ordering::Relaxed);
    eprintln!(
        "bench_bridge: node B imported {}, dropped {} ({} by the client)",
        seen.imported,
        seen.import_dropped,
        seen.import_dropped.saturating_sub(ours)
    );
    for Node {
        mut supervisor,
        bridge,
    } in [producer, consumer]
    {
        bridge.shutdown(Duration::from_secs(1));
        supervisor.shutdown("benchmark done");
    }
    let alongside = bare.map(|thread| thread.join().unwrap_or(0));
    if mode == Mode::JetStream {
        let stream = format!("BENCH_R{run}");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(async {
                match async_nats::connect(url).await {
                    Ok(client) => drop_stream(&client, &stream).await,
                    Err(e) => eprintln!("bench_bridge: cannot delete the stream {stream}: {e}"),
                }
            });
    }
    Ok(Run {
        elapsed,
        report,
        alongside,
    })
}

/// Waits for the consumer's `bench.done`. On core NATS, once node B has
/// imported nothing new for [`QUIET`], the rest was lost on the way: the
/// consumer is asked for what it got.
fn until_done(
    done: &crossbeam_channel::Receiver<Arc<BusEvent>>,
    consumer: &Node,
    events: u64,
    mode: Mode,
) -> Result<Arc<BusEvent>, String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut imported = 0;
    let mut changed = Instant::now();
    while Instant::now() < deadline {
        if let Ok(report) = done.recv_timeout(Duration::from_millis(100)) {
            return Ok(report);
        }
        let now = consumer.bridge.imported().delivered.load(Ordering::Relaxed);
        if now != imported {
            (imported, changed) = (now, Instant::now());
        } else if mode == Mode::Core && imported > 0 && changed.elapsed() > QUIET {
            eprintln!(
                "bench_bridge: node B imported {imported} of {events} events (core NATS drops \
                 what a slow subscriber cannot take)"
            );
            consumer
                .supervisor
                .bus()
                .publish_json("bench.report", &json!({}));
            return done
                .recv_timeout(QUIET)
                .map_err(|_| "node B's consumer did not report".to_string());
        }
    }
    Err(format!(
        "node B did not get {events} events ({})",
        mode.name()
    ))
}

fn in_process(
    workspace: &Workspace,
    artifacts: &HashMap<String, PathBuf>,
    events: u64,
    payload: usize,
    rate: Option<u64>,
) -> Result<Run, String> {
    let bus = Bus::new();
    let loader = Loader::new(&workspace.target_dir).map_err(|e| e.to_string())?;
    let mut supervisor = Supervisor::new(bus.clone(), loader, timeouts());
    let specs = [
        spec(
            "bench-producer",
            PRODUCER,
            json!({ "count": events, "payload_bytes": payload, "rate": rate }),
        ),
        spec("bench-consumer", CONSUMER, json!({ "expect": events })),
    ];
    let (tx, done) = unbounded::<Arc<BusEvent>>();
    let observer = bus.register(Arc::new(tx));
    bus.subscribe(observer, "bench.done")
        .map_err(|e| e.to_string())?;
    let refs: Vec<&ModuleSpec> = specs.iter().collect();
    let report = supervisor.start(&refs, artifacts);
    if let Some(failure) = report.failures.first() {
        return Err(failure.to_string());
    }
    let started_ns = now_ns();
    bus.publish_json("bench.go", &json!({}));
    let report = done
        .recv_timeout(Duration::from_secs(300))
        .map_err(|_| "the in-process consumer did not finish".to_string())?;
    let report: Value = serde_json::from_slice(report.payload()).map_err(|e| e.to_string())?;
    let last_ns = report["last_ns"].as_u64().unwrap_or(started_ns);
    let elapsed = Duration::from_nanos(last_ns.saturating_sub(started_ns));
    supervisor.shutdown("benchmark done");
    Ok(Run {
        elapsed,
        report,
        alongside: None,
    })
}
