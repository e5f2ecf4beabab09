//! Bounded under load, end to end: real cdylibs that flood the bus, run by the
//! real host for 30 s each while its resident memory is sampled. The bound
//! asserted is the one the configured capacities imply, not a time.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use orch_e2e::{OrchProcess, Scenario};

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
/// How long each load runs in the default lane.
const LOAD: Duration = Duration::from_secs(10);
/// How long each load runs in the slow lane (the issue that asked for these
/// tests said at least 30 s).
const LONG_LOAD: Duration = Duration::from_secs(30);

/// The host's resident memory in KiB (Linux /proc).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Runs `orch` under load for `load`, sampling its memory every 250 ms;
/// returns the resident memory when the load began and the highest seen.
fn sample_memory(orch: &mut OrchProcess, load: Duration) -> (u64, u64) {
    // Let the first seconds fill the queues before the baseline.
    orch.collect_for(Duration::from_secs(2));
    let start = rss_kib(orch.pid());
    let mut peak = start;
    let until = Instant::now() + load;
    while Instant::now() < until {
        orch.collect_for(Duration::from_millis(250));
        peak = peak.max(rss_kib(orch.pid()));
    }
    (start, peak)
}

/// What the capacities allow the queues to hold, with the allocator's slack:
/// `events` events of about `event_bytes` each, plus 48 MiB for everything
/// else that may grow (allocator arenas per thread, log buffers).
fn bound_kib(events: u64, event_bytes: u64) -> u64 {
    events * event_bytes / 1024 + 48 * 1024
}

fn stop(orch: &mut OrchProcess) {
    orch.signal(Signal::SIGINT).expect("SIGINT");
    let status = orch.wait_exit(Duration::from_secs(30)).expect("exit");
    assert_eq!(status.code(), Some(0), "{}", orch.output());
}

/// The last `<word>=<n>` of the last line containing `needle`.
fn last_count(orch: &OrchProcess, needle: &str, word: &str) -> u64 {
    orch.lines_with(needle)
        .last()
        .and_then(|line| line.split(&format!("{word}=")).nth(1).map(str::to_owned))
        .and_then(|rest| rest.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// A module that publishes two events for each one it receives, its own
/// included (before: about 400 MB after 30 s, still growing): its mailbox
/// holds 2,000 events and drops the newest; the drops are reported. The
/// event log listens to the reports only: tens of thousands of dead letters a
/// second would fill its own mailbox (where a report is not waited for) and
/// its share of the log, and hide the report this test looks for.
#[test]
fn an_event_storm_stays_within_what_the_mailbox_capacity_implies() {
    event_storm(LOAD);
}

/// The storm above for 30 s.
#[test]
#[ignore = "slow lane (a 30 s load): cargo xtask ci runs it"]
fn an_event_storm_of_thirty_seconds_stays_within_what_the_capacity_implies() {
    event_storm(LONG_LOAD);
}

fn event_storm(load: Duration) {
    let scenario = Scenario::new(
        "modules:\n  - name: fixture-event-log\n    config: {topics: [module.overflow]}\n  \
         - name: fixture-storm\n    mailbox: {capacity: 2000, overflow: drop-newest}\n",
    );
    let mut orch = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    orch.wait_for("app.started: 2 of 2 modules running", BUILD)
        .unwrap();
    let (start, peak) = sample_memory(&mut orch, load);
    // The storm's mailbox and the event log's (10,000 by default, which gets
    // only the reports): ~300 bytes an event, envelope and queue slot included.
    let bound = bound_kib(2_000 + 10_000, 512);
    assert!(
        peak <= start + bound,
        "resident memory grew from {start} KiB to {peak} KiB (bound {bound} KiB over the start)"
    );
    let handled = last_count(&orch, "STORM handled=", "handled");
    assert!(handled > 10_000, "the storm ran: {handled} events handled");
    let overflow = orch
        .wait_for("EVENT module.overflow ", Duration::from_secs(5))
        .unwrap();
    assert!(
        overflow.text.contains(r#""name":"fixture-storm""#)
            && overflow.text.contains(r#""policy":"drop-newest""#),
        "{}",
        overflow.text
    );
    stop(&mut orch);
    eprintln!("storm: {start} -> {peak} KiB over {load:?}, {handled} events handled");
}

/// A producer thread publishing as fast as it can into a consumer that takes
/// 1 ms per event (before: about 630 MB after 30 s): the consumer's mailbox
/// holds 1,000 events and blocks the producer (`block`, the default policy),
/// so the producer runs at the consumer's pace and memory stays flat.
#[test]
fn a_slow_consumer_holds_a_fast_producer_back_within_its_capacity() {
    slow_consumer(LOAD);
}

/// The slow consumer above for 30 s.
#[test]
#[ignore = "slow lane (a 30 s load): cargo xtask ci runs it"]
fn a_slow_consumer_holds_a_fast_producer_back_for_thirty_seconds() {
    slow_consumer(LONG_LOAD);
}

fn slow_consumer(load: Duration) {
    let scenario = Scenario::new(
        "modules:\n  - name: fixture-slow-consumer\n    mailbox: {capacity: 1000}\n  - name: fixture-flood\n",
    );
    let mut orch = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    orch.wait_for("app.started: 2 of 2 modules running", BUILD)
        .unwrap();
    let (start, peak) = sample_memory(&mut orch, load);
    let bound = bound_kib(1_000, 512);
    assert!(
        peak <= start + bound,
        "resident memory grew from {start} KiB to {peak} KiB (bound {bound} KiB over the start)"
    );
    let sent = last_count(&orch, "FLOOD sent=", "sent");
    let got = last_count(&orch, "SLOW got=", "got");
    assert!(got > 1_000, "the consumer worked: {got} events");
    // Back-pressure: the producer got at most a mailbox ahead of the consumer
    // (plus what each reported in its last second).
    assert!(
        sent <= got + 1_000 + 2 * 1_000,
        "the producer ran ahead: sent {sent}, consumed {got}"
    );
    stop(&mut orch);
    eprintln!("slow consumer: {start} -> {peak} KiB over {load:?}, sent {sent}, got {got}");
}

/// A module that logs every publish (thousands of lines a second, each with a
/// newline in it): the host logs at most 1,000 of its lines a second, sums up
/// the rest, and escapes the newline, so no forged line reaches the log.
#[test]
fn a_log_flood_is_cut_to_the_rate_limit_and_cannot_forge_lines() {
    let scenario = Scenario::new(
        "modules:\n  - name: fixture-slow-consumer\n    config: {delay_ms: 0}\n  - name: fixture-flood\n    config: {log_each: true}\n",
    );
    let mut orch = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    orch.wait_for("app.started: 2 of 2 modules running", BUILD)
        .unwrap();
    orch.wait_for(
        "log lines suppressed in the last second",
        Duration::from_secs(10),
    )
    .unwrap();
    let started = Instant::now();
    orch.collect_for(Duration::from_secs(3));
    let seconds = started.elapsed().as_secs_f64() + 2.0;
    let lines = orch.lines_with("FLOODLOG").len() as f64;
    assert!(
        lines <= 1_000.0 * (seconds + 2.0),
        "{lines} flood lines in about {seconds:.1} s"
    );
    assert!(
        orch.lines_with("forged line")
            .iter()
            .all(|l| l.contains("FLOODLOG")),
        "a newline from a module started a line of its own"
    );
    stop(&mut orch);
}
