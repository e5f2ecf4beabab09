//! The rows of `bench bus`: for each payload and subscriber count, the
//! unbounded floor, the bounded (fair) floor and the real bus, their
//! throughput runs interleaved and repeated, each about `ROW_SECONDS` long
//! (calibrated per path), the median kept; latency for evenly spaced events
//! and for the first event of each burst; then one isolated consumer per
//! transport beside an in-process consumer with the same count, in the same
//! run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use orch_config::Isolation;
use orch_config::workspace::Workspace;
use orch_runtime::isolation::{Transport, set_transport};
use serde_json::{Value, json};

use super::floor::{Channel, run_floor};
use super::{Pace, run_bus};

/// Each throughput run lasts about this long (its events are calibrated).
const ROW_SECONDS: f64 = 1.5;
/// Throughput runs per path; the median counts (this machine is noisy).
const RUNS: usize = 5;
/// Latency is measured at this rate (events/s), below saturation.
pub const LATENCY_RATE: u64 = 10_000;
/// Events per burst for the first-of-burst latency (one burst a millisecond).
const BURST: u64 = 10;
/// Events of a latency run: 2 s at `LATENCY_RATE`.
const LATENCY_EVENTS: u64 = 20_000;
/// What an unbounded floor may queue at most, in bytes: caps its events.
const FLOOR_BYTES: u64 = 512 * 1024 * 1024;
/// A module's mailbox capacity (the default): the fair floor's bound.
pub const MAILBOX: usize = 10_000;

/// How big a run is: a full one, or the smoke run's few events.
#[derive(Clone, Copy)]
pub struct Size {
    /// The smoke run: `events` as given, one run, no calibration.
    pub quick: bool,
    /// Events given on the command line.
    pub events: u64,
}

impl Size {
    fn runs(self) -> usize {
        if self.quick { 1 } else { RUNS }
    }

    fn latency_events(self) -> u64 {
        if self.quick {
            self.events.min(2_000)
        } else {
            LATENCY_EVENTS
        }
    }

    /// The events a run of `measure` needs to last `ROW_SECONDS`, at most
    /// `cap`, from a first run of a few.
    fn calibrated(
        self,
        subscribers: usize,
        cap: u64,
        mut measure: impl FnMut(u64) -> Result<Duration, String>,
    ) -> Result<u64, String> {
        let probe = (self.events / subscribers as u64).max(100);
        if self.quick {
            return Ok(probe);
        }
        let took = measure(probe)?.as_secs_f64().max(1e-6);
        let wanted = (probe as f64 / took * ROW_SECONDS) as u64;
        Ok(wanted.clamp(probe, cap))
    }
}

/// The JSON bytes a payload of `payload` really is (the bench modules' object
/// with its time and index, padded): `0` is about 45 bytes, not nothing.
fn json_bytes(payload: usize) -> usize {
    let bare = format!(
        "{{\"t\":{},\"i\":{},\"pad\":\"\"}}",
        u64::MAX / 1000,
        100_000
    );
    payload.max(bare.len())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn worst(reports: &[Value], key: &str) -> f64 {
    reports
        .iter()
        .filter_map(|r| r[key].as_u64())
        .max()
        .unwrap_or(0) as f64
        / 1e3
}

/// One row: throughput (median of `times` over `events`), the latency of
/// evenly spaced events and of the first of each burst (worst subscriber).
fn row(
    path: &str,
    (payload, subscribers): (usize, usize),
    (events, times): (u64, Vec<Duration>),
    latency: Option<(&[Value], &[Value])>,
) -> Value {
    let runs = times.len();
    let took = median(times).as_secs_f64().max(1e-9);
    let mut row = json!({
        "path": path,
        "payload_bytes": payload,
        "json_bytes": json_bytes(payload),
        "subscribers": subscribers,
        "events": events,
        "runs": runs,
        "seconds": took,
        "events_per_s": events as f64 / took,
        "deliveries_per_s": (events * subscribers as u64) as f64 / took,
    });
    if let Some((even, bursts)) = latency {
        row["latency_rate_per_s"] = json!(LATENCY_RATE);
        row["p50_us"] = json!(worst(even, "p50_ns"));
        row["p99_us"] = json!(worst(even, "p99_ns"));
        row["p999_us"] = json!(worst(even, "p999_ns"));
        row["burst"] = json!(BURST);
        row["burst_first_p50_us"] = json!(worst(bursts, "p50_ns"));
        row["burst_first_p99_us"] = json!(worst(bursts, "p99_ns"));
    }
    row
}

/// The in-process rows: floors and bus for 0 B and 1 KB, 1, 4, 16 subscribers.
pub fn in_process(
    workspace: &Workspace,
    artifacts: &HashMap<String, PathBuf>,
    size: Size,
) -> Result<Vec<Value>, String> {
    let bus = |n: u64, payload: usize, subscribers: usize, pace: Pace| {
        run_bus(
            workspace,
            artifacts,
            n,
            payload,
            subscribers,
            pace,
            Isolation::InProcess,
        )
    };
    let mut rows = Vec::new();
    for payload in [0usize, 1024] {
        for subscribers in [1usize, 4, 16] {
            let cap = FLOOR_BYTES / (json_bytes(payload) as u64 + 64);
            let floor_n = size.calibrated(subscribers, cap, |n| {
                Ok(run_floor(
                    n,
                    payload,
                    subscribers,
                    Pace::Flood,
                    Channel::Bounded(MAILBOX),
                )
                .1)
            })?;
            let bus_n = size.calibrated(subscribers, 20_000_000, |n| {
                bus(n, payload, subscribers, Pace::Flood).map(|r| r.1)
            })?;
            let mut times: [Vec<Duration>; 3] = Default::default();
            for _ in 0..size.runs() {
                times[0].push(
                    run_floor(
                        floor_n,
                        payload,
                        subscribers,
                        Pace::Flood,
                        Channel::Unbounded,
                    )
                    .1,
                );
                times[1].push(
                    run_floor(
                        floor_n,
                        payload,
                        subscribers,
                        Pace::Flood,
                        Channel::Bounded(MAILBOX),
                    )
                    .1,
                );
                times[2].push(bus(bus_n, payload, subscribers, Pace::Flood)?.1);
            }
            let [unbounded, fair, orch] = times;
            let n = size.latency_events();
            let even = Pace::Even(LATENCY_RATE);
            let bursts = Pace::Bursts(LATENCY_RATE, BURST);
            let floor_even = run_floor(n, payload, subscribers, even, Channel::Bounded(MAILBOX)).0;
            let floor_bursts =
                run_floor(n, payload, subscribers, bursts, Channel::Bounded(MAILBOX)).0;
            let bus_even = bus(n, payload, subscribers, even)?.0;
            let bus_bursts = bus(n, payload, subscribers, bursts)?.0;
            let shape = (payload, subscribers);
            rows.push(row(
                "floor: unbounded channel",
                shape,
                (floor_n, unbounded),
                None,
            ));
            rows.push(row(
                "floor: bounded like a mailbox",
                shape,
                (floor_n, fair),
                Some((&floor_even, &floor_bursts)),
            ));
            rows.push(row(
                "orch bus (cdylib to cdylib)",
                shape,
                (bus_n, orch),
                Some((&bus_even, &bus_bursts)),
            ));
        }
    }
    Ok(rows)
}

/// One consumer in a child host process (`isolation: process`), per
/// transport and payload, beside one in-process consumer with the same
/// count in the same run.
pub fn isolated(
    workspace: &Workspace,
    artifacts: &HashMap<String, PathBuf>,
    size: Size,
    only: Option<&str>,
) -> Result<Vec<Value>, String> {
    let mut rows = Vec::new();
    for (transport, name, path) in [
        (Transport::SharedMemory, "shm", "orch bus (isolated, shm)"),
        (Transport::Pipe, "pipe", "orch bus (isolated, pipe)"),
    ] {
        if only.is_some_and(|only| only != name) {
            continue;
        }
        set_transport(transport);
        for payload in [0usize, 1024] {
            let run = |n: u64, pace: Pace, isolation: Isolation| {
                run_bus(workspace, artifacts, n, payload, 1, pace, isolation)
            };
            let n = size.calibrated(1, 2_000_000, |n| {
                run(n, Pace::Flood, Isolation::Process).map(|r| r.1)
            })?;
            let (mut remote, mut local) = (Vec::new(), Vec::new());
            for _ in 0..size.runs() {
                remote.push(run(n, Pace::Flood, Isolation::Process)?.1);
                local.push(run(n, Pace::Flood, Isolation::InProcess)?.1);
            }
            let latency = size.latency_events();
            let even = run(latency, Pace::Even(LATENCY_RATE), Isolation::Process)?.0;
            let bursts = run(
                latency,
                Pace::Bursts(LATENCY_RATE, BURST),
                Isolation::Process,
            )?
            .0;
            let reference = row(
                "orch bus (in-process reference)",
                (payload, 1),
                (n, local),
                None,
            );
            let mut isolated = row(path, (payload, 1), (n, remote), Some((&even, &bursts)));
            isolated["reference_events_per_s"] = reference["events_per_s"].clone();
            rows.push(isolated);
        }
    }
    set_transport(Transport::SharedMemory);
    Ok(rows)
}
