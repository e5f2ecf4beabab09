//! The measuring half of `cargo xtask bench tap` (run in release; prints one
//! JSON document): events through the real bus to one subscriber, with no
//! tap, with a real tap through the control socket whose client never reads
//! (stalled), and with one that reads every line; the runs interleaved, each
//! repeated, the median kept. A stalled tap must cost the bus nothing but the
//! copy into its bounded queue: its drops are counted and reported.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use orch_operate::protocol::{Response, StatusReport};
use orch_operate::server::{ControlServer, ServerSetup, TapSetup};
use orch_runtime::bus::{Bus, BusEvent};
use orch_runtime::logging::SecretScrubber;
use serde_json::json;

/// Each mode runs this many times, interleaved; the median is reported.
const REPEATS: usize = 5;

#[derive(Clone, Copy, PartialEq)]
enum Tap {
    None,
    Stalled,
    Reading,
}

impl Tap {
    fn name(self) -> &'static str {
        match self {
            Self::None => "no tap",
            Self::Stalled => "a stalled tap (never reads)",
            Self::Reading => "a tap that reads",
        }
    }
}

fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    match measure(events) {
        Ok(value) => println!("{value}"),
        Err(error) => {
            eprintln!("bench_tap: {error}");
            std::process::exit(1);
        }
    }
}

fn measure(events: u64) -> Result<serde_json::Value, String> {
    let target = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bus = Bus::new();
    let (actions, _pending) = bounded(1);
    let report = || StatusReport {
        app: "bench".into(),
        version: "0".into(),
        pid: std::process::id(),
        environment: None,
        uptime_secs: 0.0,
        ready: true,
        modules: Vec::new(),
        bridge: None,
        bundle: None,
    };
    let server = ControlServer::start(ServerSetup {
        target_dir: target.path().to_path_buf(),
        socket: None,
        app: "bench".into(),
        config_dir: "config".into(),
        environment: None,
        status: Arc::new(report),
        actions,
        action_deadline: Duration::from_secs(5),
        tap: Some(TapSetup {
            bus: bus.clone(),
            scrubber: SecretScrubber::default(),
        }),
    })
    .map_err(|e| format!("the control socket: {e}"))?;
    let mut seconds: Vec<(Tap, Vec<f64>, u64)> = [Tap::None, Tap::Stalled, Tap::Reading]
        .into_iter()
        .map(|t| (t, Vec::new(), 0))
        .collect();
    for _ in 0..REPEATS {
        for (tap, runs, dropped) in &mut seconds {
            let (took, drops) = run(&bus, server.socket(), *tap, events)?;
            runs.push(took.as_secs_f64());
            *dropped = (*dropped).max(drops);
        }
    }
    let rows: Vec<serde_json::Value> = seconds
        .into_iter()
        .map(|(tap, mut runs, dropped)| {
            runs.sort_by(f64::total_cmp);
            let median = runs[runs.len() / 2];
            json!({
                "tap": tap.name(),
                "events": events,
                "runs": runs.len(),
                "events_per_s": events as f64 / median,
                "tap_dropped": dropped,
            })
        })
        .collect();
    Ok(json!({ "rows": rows }))
}

/// One run: `events` published to one subscriber that drains them on its own
/// thread, with `tap` on `>`; the time until the subscriber had them all, and
/// what the tap said it dropped.
fn run(
    bus: &Bus,
    socket: &std::path::Path,
    tap: Tap,
    events: u64,
) -> Result<(Duration, u64), String> {
    let (tx, rx) = bounded::<Arc<BusEvent>>(10_000);
    let subscriber = bus.register(Arc::new(tx));
    bus.subscribe(subscriber, "bench.>")
        .map_err(|e| e.to_string())?;
    let client = match tap {
        Tap::None => None,
        _ => Some(open_tap(bus, socket)?),
    };
    let reader = match (tap, &client) {
        (Tap::Reading, Some(stream)) => {
            let stream = stream.try_clone().map_err(|e| e.to_string())?;
            Some(std::thread::spawn(move || {
                let mut dropped = 0;
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    dropped = dropped.max(dropped_in(&line));
                }
                dropped
            }))
        }
        _ => None,
    };
    let drain = std::thread::spawn(move || {
        for _ in 0..events {
            if rx.recv_timeout(Duration::from_secs(60)).is_err() {
                return false;
            }
        }
        true
    });
    let payload =
        br#"{"seq":1,"message":"a bench event of about a hundred bytes, as modules send them"}"#;
    let source: Arc<str> = "bench-producer".into();
    let started = Instant::now();
    for _ in 0..events {
        bus.publish("bench.tick", payload, Some(Arc::clone(&source)))
            .map_err(|e| e.to_string())?;
    }
    let complete = drain.join().unwrap_or(false);
    let took = started.elapsed();
    bus.remove(subscriber);
    if !complete {
        return Err("the subscriber did not get every event within 60 s".into());
    }
    let mut dropped = 0;
    if let Some(stream) = client {
        if tap == Tap::Stalled {
            // Read late: the lines queued before the stall, then ones that
            // carry the drop count.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let reading = stream.try_clone().map_err(|e| e.to_string())?;
            for line in BufReader::new(reading)
                .lines()
                .map_while(Result::ok)
                .take(3_000)
            {
                dropped = dropped.max(dropped_in(&line));
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    if let Some(reader) = reader {
        dropped = reader.join().unwrap_or(0);
    }
    Ok((took, dropped))
}

/// Opens a tap on every topic and waits until the bus has it.
fn open_tap(bus: &Bus, socket: &std::path::Path) -> Result<UnixStream, String> {
    let before = bus.has_subscribers("tap.probe");
    let mut stream = UnixStream::connect(socket).map_err(|e| e.to_string())?;
    stream
        .write_all(b"{\"command\":\"tap\",\"pattern\":\">\"}\n")
        .map_err(|e| e.to_string())?;
    let until = Instant::now() + Duration::from_secs(5);
    while bus.has_subscribers("tap.probe") == before && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(stream)
}

/// The `dropped` count of one tapped line.
fn dropped_in(line: &str) -> u64 {
    match serde_json::from_str::<Response>(line) {
        Ok(Response::Tapped(event)) => event.dropped,
        _ => 0,
    }
}
