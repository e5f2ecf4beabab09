//! The measuring half of `cargo xtask bench work` (run in release by the
//! xtask against a nats-server it started; prints one JSON document).
//!
//! `bench_work <nats-url> [--jobs J] [--handler-ms H] [--nodes 1,2,3]`:
//! shared work (`bridge.nats.work`, JetStream) spread over 1, 2 and 3 nodes.
//! Each node is a bus and a bridge in this process (`w1..wN`, one work group
//! `bench` on `bench.job`, `max_in_flight: 32`, a stream and subject prefix
//! of its own per row) with one worker: a real runtime `Mailbox` (256,
//! `block`) whose sink is on the bus, so the bridge pulls no more than its
//! free room, drained by a thread that sleeps `H` ms per job (default 2) and
//! then drops it (the bridge then records and acknowledges the job). Node
//! `w1` publishes `J × N` jobs (default J = 1,000: a row lasts about
//! `J × H` ms at the ideal rate). Measured: first publish to last job
//! handled, jobs/s, each node's share, and the ideal `N × 1000 / H` jobs/s.
//!
//! In process (not `cargo orch run` per node) so that what is measured is
//! the bridge's shared work, not process start-up, module loading or the
//! module ABI; every node still talks to the broker through its own
//! connection, as separate machines would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};
use orch_bridge::{Bridge, NodeInfo};
use orch_config::{
    JetStreamSettings, MailboxSettings, NatsAuth, NatsSettings, Overflow, WorkGroup,
};
use orch_runtime::bus::{Bus, SubscriberId};
use orch_runtime::mailbox::{Mailbox, Next, Work};
use orch_runtime::status::StatusBoard;
use orch_runtime::timers::TimerService;
use serde_json::{Value, json};

/// The work topic.
const TOPIC: &str = "bench.job";
/// The work group.
const GROUP: &str = "bench";
/// Jobs one node holds at most.
const MAX_IN_FLIGHT: usize = 32;
/// The worker's mailbox.
const MAILBOX: usize = 256;
/// How long a publish into a full `block` mailbox waits.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// What the command line asks for.
struct Options {
    url: String,
    /// Jobs per node in a row (a row of N nodes publishes `jobs × N`).
    jobs: u64,
    handler: Duration,
    nodes: Vec<usize>,
}

/// The hosts' allocator (see cargo-orch's main.rs); the floor runs on it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    match options().and_then(|options| bench(&options)) {
        Ok(value) => println!("{value}"),
        Err(error) => {
            eprintln!("bench_work: {error}");
            std::process::exit(1);
        }
    }
}

fn options() -> Result<Options, String> {
    const USAGE: &str = "usage: bench_work <nats-url> [--jobs J] [--handler-ms H] [--nodes 1,2,3]";
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or(USAGE)?;
    let mut options = Options {
        url,
        jobs: 1_000,
        handler: Duration::from_millis(2),
        nodes: vec![1, 2, 3],
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(USAGE)?;
        let number = |v: &str| v.parse::<u64>().ok().filter(|n| *n > 0).ok_or(USAGE);
        match flag.as_str() {
            "--jobs" => options.jobs = number(&value)?,
            "--handler-ms" => options.handler = Duration::from_millis(number(&value)?),
            "--nodes" => {
                options.nodes = value
                    .split(',')
                    .map(|n| number(n).map(|n| n as usize))
                    .collect::<Result<_, _>>()?;
            }
            _ => return Err(USAGE.into()),
        }
    }
    Ok(options)
}

fn bench(options: &Options) -> Result<Value, String> {
    // A fresh stream and subject prefix per row, even against a broker an
    // earlier run used.
    let run = std::process::id();
    let mut rows = Vec::new();
    for &n in &options.nodes {
        let row = measure(options, n, run)?;
        eprintln!(
            "bench_work: {n} node(s): {:.0} jobs/s (ideal {:.0})",
            row["jobs_per_s"].as_f64().unwrap_or(0.0),
            row["ideal_jobs_per_s"].as_f64().unwrap_or(0.0)
        );
        rows.push(row);
    }
    Ok(json!({
        "benchmark": "work",
        "handler_ms": options.handler.as_secs_f64() * 1e3,
        "jobs_per_node": options.jobs,
        "max_in_flight": MAX_IN_FLIGHT,
        "mailbox": MAILBOX,
        "rows": rows,
    }))
}

/// One node: its bus, bridge and worker.
struct Node {
    bus: Bus,
    bridge: Bridge,
    worker: Worker,
    _timers: TimerService,
}

/// A worker sink: the mailbox on the bus and the thread that drains it.
struct Worker {
    id: SubscriberId,
    mailbox: Mailbox,
    thread: JoinHandle<()>,
    handled: Arc<AtomicU64>,
    /// Time spent in the handler (its sleeps), in ns.
    busy_ns: Arc<AtomicU64>,
}

/// What every worker of a row shares: the row's start, and when the last
/// job was handled (ns after it).
struct Clock {
    started: Instant,
    last_ns: AtomicU64,
}

fn settings(url: &str, node: &str, n: usize, run: u32, outbox: usize) -> NatsSettings {
    NatsSettings {
        servers: vec![url.to_owned()],
        node: Some(node.to_owned()),
        subject_prefix: format!("bench.w{run}.n{n}"),
        auth: NatsAuth::None,
        tls: None,
        export: Vec::new(),
        import: Vec::new(),
        jetstream: Some(JetStreamSettings {
            stream: format!("BENCH_W{run}_{n}"),
            durable: None,
            replicas: 1,
        }),
        serve: Vec::new(),
        ask: Vec::new(),
        outbox: MailboxSettings {
            capacity: outbox.clamp(1, 1_000_000),
            overflow: Overflow::Block,
        },
        presence: None,
        work: vec![WorkGroup {
            group: GROUP.into(),
            topics: vec![TOPIC.into()],
            max_in_flight: MAX_IN_FLIGHT,
        }],
    }
}

fn node(settings: &NatsSettings, handler: Duration, clock: &Arc<Clock>) -> Result<Node, String> {
    let bus = Bus::new();
    let timers = TimerService::new();
    let mut bridge = Bridge::start(
        settings,
        &bus,
        timers.clone(),
        PUBLISH_TIMEOUT,
        None,
        NodeInfo {
            board: StatusBoard::new(),
            app: "bench".into(),
            version: "0".into(),
            singletons: Vec::new(),
            leases: None,
            fences: Default::default(),
        },
    )
    .map_err(|e| e.to_string())?;
    let worker = worker(&bus, handler, Arc::clone(clock))?;
    bridge.start_import();
    Ok(Node {
        bus,
        bridge,
        worker,
        _timers: timers,
    })
}

/// Registers a worker's mailbox sink on `bus` (the bridge reads its room)
/// and starts the thread that handles its jobs.
fn worker(bus: &Bus, handler: Duration, clock: Arc<Clock>) -> Result<Worker, String> {
    let mailbox: Mailbox = Mailbox::new(
        "worker".into(),
        MailboxSettings {
            capacity: MAILBOX,
            overflow: Overflow::Block,
        },
        PUBLISH_TIMEOUT,
    );
    let id = bus.register(mailbox.sink());
    bus.subscribe(id, TOPIC).map_err(|e| e.to_string())?;
    let handled = Arc::new(AtomicU64::new(0));
    let busy_ns = Arc::new(AtomicU64::new(0));
    let thread = {
        let (mailbox, handled, busy) =
            (mailbox.clone(), Arc::clone(&handled), Arc::clone(&busy_ns));
        // Nothing is sent on it: the worker stops on `Work::Stop`.
        let (_control, control): (_, Receiver<Work>) = unbounded();
        std::thread::Builder::new()
            .name("bench-worker".into())
            .spawn(move || {
                loop {
                    match mailbox.next(&control) {
                        Next::Work(Work::Event(job)) => {
                            let began = Instant::now();
                            std::thread::sleep(handler);
                            let slept = u64::try_from(began.elapsed().as_nanos()).unwrap_or(0);
                            busy.fetch_add(slept, Ordering::AcqRel);
                            // Let go of it: the bridge records and
                            // acknowledges it.
                            drop(job);
                            let at = u64::try_from(clock.started.elapsed().as_nanos())
                                .unwrap_or(u64::MAX);
                            clock.last_ns.fetch_max(at, Ordering::AcqRel);
                            handled.fetch_add(1, Ordering::AcqRel);
                        }
                        Next::Work(Work::Call(never)) => match never {},
                        Next::Work(Work::Stop) | Next::Control => break,
                    }
                }
            })
            .map_err(|e| e.to_string())?
    };
    Ok(Worker {
        id,
        mailbox,
        thread,
        handled,
        busy_ns,
    })
}

fn measure(options: &Options, n: usize, run: u32) -> Result<Value, String> {
    let jobs = options.jobs.saturating_mul(n as u64);
    let outbox = usize::try_from(jobs).unwrap_or(usize::MAX);
    let clock = Arc::new(Clock {
        started: Instant::now(),
        last_ns: AtomicU64::new(0),
    });
    let mut nodes = Vec::new();
    for i in 1..=n {
        let settings = settings(&options.url, &format!("w{i}"), n, run, outbox);
        nodes.push(node(&settings, options.handler, &clock)?);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nodes.iter().all(|node| node.bridge.is_connected()) {
        if Instant::now() > deadline {
            return Err(format!("no connection to {}", options.url));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Every node has its work stream, consumer and pull going before the
    // first job (an early node would otherwise get a head start).
    std::thread::sleep(Duration::from_secs(1));
    let source: Arc<str> = Arc::from("bench-producer");
    let started = Instant::now();
    let started_ns = u64::try_from(started.duration_since(clock.started).as_nanos()).unwrap_or(0);
    for i in 0..jobs {
        let payload = format!("{{\"i\":{i}}}");
        nodes[0]
            .bus
            .publish(TOPIC, payload, Some(Arc::clone(&source)))
            .map_err(|e| format!("publishing job {i}: {e}"))?;
    }
    let published = started.elapsed();
    let handled = |nodes: &[Node]| -> u64 {
        nodes
            .iter()
            .map(|node| node.worker.handled.load(Ordering::Acquire))
            .sum()
    };
    // Ten times the ideal, and at least a minute.
    let ideal_s = jobs as f64 * options.handler.as_secs_f64() / n as f64;
    let deadline = started + Duration::from_secs_f64((ideal_s * 10.0).max(60.0));
    while handled(&nodes) < jobs {
        if Instant::now() > deadline {
            return Err(format!(
                "{n} node(s): {} of {jobs} jobs handled in {:.0} s",
                handled(&nodes),
                started.elapsed().as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = Duration::from_nanos(
        clock
            .last_ns
            .load(Ordering::Acquire)
            .saturating_sub(started_ns),
    );
    let per_node: Vec<u64> = nodes
        .iter()
        .map(|node| node.worker.handled.load(Ordering::Acquire))
        .collect();
    let busy_s = nodes
        .iter()
        .map(|node| node.worker.busy_ns.load(Ordering::Acquire) as f64 / 1e9)
        .sum::<f64>();
    shutdown(nodes);
    let ideal = n as f64 * 1e3 / (options.handler.as_secs_f64() * 1e3);
    let jobs_per_s = jobs as f64 / elapsed.as_secs_f64().max(1e-9);
    Ok(json!({
        "nodes": n,
        "jobs": jobs,
        "handled": per_node.iter().sum::<u64>(),
        "elapsed_s": elapsed.as_secs_f64(),
        "publish_s": published.as_secs_f64(),
        "jobs_per_s": jobs_per_s,
        "ideal_jobs_per_s": ideal,
        "of_ideal": jobs_per_s / ideal,
        // The workers' time in their handlers over the time they had: below
        // 1, they waited for jobs; the rest of `of_ideal`'s gap is the
        // handler's sleep overshooting.
        "busy": busy_s / (n as f64 * elapsed.as_secs_f64()).max(1e-9),
        "handler_mean_ms": busy_s * 1e3 / jobs as f64,
        "per_node": per_node,
        "share": per_node.iter().map(|h| *h as f64 / jobs as f64).collect::<Vec<_>>(),
    }))
}

/// Stops every node: imports first (nothing more is pulled), then each
/// bridge, then its worker.
fn shutdown(nodes: Vec<Node>) {
    let mut nodes = nodes;
    for node in &mut nodes {
        node.bridge.stop_import();
    }
    for Node {
        bus,
        bridge,
        worker,
        _timers,
    } in nodes
    {
        bridge.shutdown(Duration::from_secs(1));
        bus.remove(worker.id);
        worker.mailbox.post(Work::Stop);
        let _ = worker.thread.join();
    }
}
