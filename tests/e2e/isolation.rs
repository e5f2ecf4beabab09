//! `isolation: process` end to end: the real binary runs a module in a child
//! host process of its own; real faults (segfault, abort, stack overflow, an
//! endless handler, random exits) and real signals (SIGKILL of the child or of
//! the orchestrator) must leave the other modules exchanging events without loss.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orch_e2e::{OrchProcess, Scenario, module_hosts, processes_with_env, wait_until};

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(15);

const PRODUCER: &str = "  - name: mod-dummy-producer\n    config:\n      publish_interval: 50ms\n";

/// A marker in the environment of the orchestrator and of every child it starts.
fn marker() -> String {
    format!(
        "ORCH_E2E_MARKER=orch-isolation-{}-{:?}",
        std::process::id(),
        Instant::now()
    )
}

fn start(scenario: &Scenario, marker: &str) -> OrchProcess {
    let mut command = scenario.command(&["run"]);
    let (key, value) = marker.split_once('=').expect("KEY=value");
    command.env(key, value);
    OrchProcess::spawn(command).expect("spawn cargo-orch")
}

fn stop_cleanly(orch: &mut OrchProcess) {
    orch.signal(Signal::SIGINT).expect("SIGINT");
    let status = orch.wait_exit(Duration::from_secs(30)).expect("exit");
    assert_eq!(status.code(), Some(0), "clean exit\n{}", orch.output());
}

/// The sequence numbers `module` logged as received, in order.
fn received(orch: &OrchProcess, module: &str) -> Vec<u64> {
    orch.pings_received(module)
}

/// Every ping from the first received one on arrived once, in order.
fn assert_no_loss(orch: &OrchProcess, module: &str) -> usize {
    let seqs = received(orch, module);
    assert!(seqs.len() > 5, "{module} received pings\n{}", orch.output());
    let first = seqs[0];
    let expected: Vec<u64> = (first..first + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "{module} lost or repeated pings");
    seqs.len()
}

/// Waits until `module` has logged `more` pings beyond what it had.
fn receives_more(orch: &mut OrchProcess, module: &str, more: usize) {
    let before = received(orch, module).len();
    wait_until(&format!("{module} gets pings again"), SHORT, || {
        orch.collect_for(Duration::from_millis(100));
        received(orch, module).len() >= before + more
    });
}

fn kill_pid(pid: u32, signal: Signal) {
    let pid = i32::try_from(pid).expect("pid fits");
    kill(Pid::from_raw(pid), signal).expect("kill");
}

#[test]
fn an_isolated_consumer_gets_every_ping_and_dies_with_a_sigkilled_orchestrator() {
    let marker = marker();
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n{PRODUCER}  - name: mod-dummy-consumer\n    \
         isolation: process\n"
    ));
    let mut orch = start(&scenario, &marker);
    orch.wait_for(
        "[mod-dummy-consumer] Received test.ping: hello (seq 10)",
        BUILD,
    )
    .unwrap();
    let hosts = module_hosts(&marker, "mod-dummy-consumer");
    assert_eq!(hosts.len(), 1, "one child host: {hosts:?}");
    assert_ne!(hosts[0], orch.pid(), "the consumer runs in another process");
    assert_no_loss(&orch, "mod-dummy-consumer");

    orch.signal(Signal::SIGKILL).expect("SIGKILL");
    orch.wait_exit(SHORT).expect("killed");
    wait_until("no process of the run survives", SHORT, || {
        processes_with_env(&marker).is_empty()
    });
}

#[test]
fn an_isolated_module_shuts_down_in_order_and_its_logs_are_tagged() {
    let marker = marker();
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n{PRODUCER}  - name: mod-dummy-consumer\n    isolation: process\n"
    ));
    let mut orch = start(&scenario, &marker);
    orch.wait_for(
        "[mod-dummy-consumer] Received test.ping: hello (seq 10)",
        BUILD,
    )
    .unwrap();
    orch.wait_for(
        "EVENT module.loaded {\"config\":{},\"name\":\"mod-dummy-consumer\"}",
        SHORT,
    )
    .unwrap();
    orch.wait_for("[mod-dummy-consumer] Subscribed to event: test.ping", SHORT)
        .unwrap();
    stop_cleanly(&mut orch);
    orch.wait_for("[mod-dummy-consumer] Consumer received", SHORT)
        .unwrap();
    orch.wait_for("module 'mod-dummy-consumer' unloaded", SHORT)
        .unwrap();
    assert_no_loss(&orch, "mod-dummy-consumer");
    assert!(processes_with_env(&marker).is_empty());
}

#[test]
fn a_killed_child_is_reported_restarted_and_gets_pings_again() {
    let marker = marker();
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n{PRODUCER}  - name: mod-dummy-consumer\n    isolation: process\n"
    ));
    let mut orch = start(&scenario, &marker);
    orch.wait_for(
        "[mod-dummy-consumer] Received test.ping: hello (seq 5)",
        BUILD,
    )
    .unwrap();
    let hosts = module_hosts(&marker, "mod-dummy-consumer");
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    kill_pid(hosts[0], Signal::SIGKILL);
    orch.wait_for(
        "[CRASH] module 'mod-dummy-consumer' (isolated) killed by SIGKILL",
        SHORT,
    )
    .unwrap();
    orch.wait_for("EVENT module.crashed", SHORT).unwrap();
    orch.wait_for("EVENT module.restarted", SHORT).unwrap();
    receives_more(&mut orch, "mod-dummy-consumer", 3);
    let new_hosts = module_hosts(&marker, "mod-dummy-consumer");
    assert_eq!(new_hosts.len(), 1);
    assert_ne!(new_hosts, hosts, "a new process");
    stop_cleanly(&mut orch);
}

/// A child whose handler takes 100 ms an event, with dozens of events queued
/// for it, is healthy: the heartbeat asks how long its current call has run,
/// not how long a ping waits behind the queue (before: killed at once).
#[test]
fn a_slow_handler_under_load_is_not_mistaken_for_a_stuck_one() {
    let marker = marker();
    let scenario = Scenario::new(
        "modules:\n  - name: fixture-slow-consumer\n    isolation: process\n    heartbeat: 500ms\n\
         \x20   config: {delay_ms: 100, topic: test.ping}\n\
         \x20 - name: mod-dummy-producer\n    config:\n      publish_interval: 5ms\n",
    );
    let mut orch = start(&scenario, &marker);
    orch.wait_for("[fixture-slow-consumer] SLOW got=", BUILD)
        .unwrap();
    orch.collect_for(Duration::from_secs(4));
    assert!(
        orch.lines_with("[CRASH]").is_empty(),
        "a healthy slow handler was killed:\n{}",
        orch.output()
    );
    let got: Vec<u64> = orch
        .lines_with("SLOW got=")
        .iter()
        .filter_map(|l| l.rsplit("got=").next()?.trim().parse().ok())
        .collect();
    assert!(
        got.len() >= 3 && got.windows(2).all(|w| w[0] < w[1]),
        "{got:?}"
    );
    // Its shutdown comes after the events in flight (hundreds x 100 ms), past
    // timeouts.shutdown: exit code 3 says so, naming it.
    orch.signal(Signal::SIGINT).expect("SIGINT");
    let status = orch.wait_exit(Duration::from_secs(30)).expect("exit");
    assert!(matches!(status.code(), Some(0 | 3)), "{}", orch.output());
}

/// A child stopped with SIGSTOP mid-stream (it neither reads nor answers) is
/// killed by its heartbeat, although the orchestrator's writes to it block,
/// and restarted; it then gets pings again.
#[test]
fn a_sigstopped_child_is_killed_by_its_heartbeat_and_restarted() {
    let marker = marker();
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n{PRODUCER}  - name: mod-dummy-consumer\n    isolation: process\n    heartbeat: 1s\n"
    ));
    let mut orch = start(&scenario, &marker);
    orch.wait_for(
        "[mod-dummy-consumer] Received test.ping: hello (seq 3)",
        BUILD,
    )
    .unwrap();
    let hosts = module_hosts(&marker, "mod-dummy-consumer");
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    kill_pid(hosts[0], Signal::SIGSTOP);
    let crash = orch
        .wait_for("[CRASH] module 'mod-dummy-consumer' (isolated)", SHORT)
        .unwrap();
    assert!(
        crash.text.contains("answered no heartbeat for"),
        "{}",
        crash.text
    );
    orch.wait_for("EVENT module.restarted", SHORT).unwrap();
    receives_more(&mut orch, "mod-dummy-consumer", 3);
    assert!(
        !std::path::Path::new(&format!("/proc/{}", hosts[0])).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", hosts[0]))
                .is_ok_and(|stat| stat.contains(") Z ")),
        "the stopped child is gone"
    );
    stop_cleanly(&mut orch);
}

/// A child that writes replies nobody asked for into its protocol pipe is
/// stopped as a protocol error, named, and restarted; the others go on.
/// Runs fixture-liar isolated with `lie` beside a producer and an in-process
/// consumer: the lie is caught as a protocol error named `expected`, the child
/// is killed and restarted, and the others go on.
fn a_lying_child_is_stopped_and_restarted(lie: &str, expected: &str) {
    let marker = marker();
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n{PRODUCER}  - name: mod-dummy-consumer\n\
         \x20 - name: fixture-liar\n    isolation: process\n    config:\n      lie: \"{lie}\"\n"
    ));
    let mut orch = start(&scenario, &marker);
    orch.wait_for("[fixture-liar] LIAR writes", BUILD).unwrap();
    let crash = orch
        .wait_for("[CRASH] module 'fixture-liar' (isolated)", SHORT)
        .unwrap();
    assert!(crash.text.contains(expected), "{}", crash.text);
    orch.wait_for("EVENT module.restarted", SHORT).unwrap();
    receives_more(&mut orch, "mod-dummy-consumer", 3);
    orch.signal(Signal::SIGINT).expect("SIGINT");
    orch.wait_exit(Duration::from_secs(30)).expect("exit");
}

/// Replies on the control pipe: with shared memory, only heartbeats, logs
/// and metrics may travel there.
#[test]
fn a_child_that_sends_replies_on_its_control_pipe_is_stopped_as_a_protocol_error() {
    a_lying_child_is_stopped_and_restarted("", "Reply frame on its control pipe");
}

#[test]
fn a_child_that_writes_unsolicited_replies_into_its_ring_is_stopped() {
    a_lying_child_is_stopped_and_restarted("ring-replies", "unsolicited or out-of-order reply");
}

/// A flood into an isolated module that aborts mid-stream: the child holds
/// the answers of events it handled back (a run not yet written) when it
/// dies; those events are not delivered again to its successor (each is
/// recorded once), and the one it was handling is the one lost.
#[test]
fn events_a_crashed_child_handled_are_not_delivered_again() {
    let marker = marker();
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("handled.txt");
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-flood\n    config:\n      pad_bytes: 0\n  \
         - name: fixture-crash\n    isolation: process\n    config:\n      topic: flood.tick\n      \
         fault: abort\n      crash_after: 5000\n      record: \"{}\"\n",
        record.display()
    ));
    let mut orch = start(&scenario, &marker);
    orch.wait_for("[CRASH] module 'fixture-crash' (isolated)", BUILD)
        .unwrap();
    orch.wait_for("[RESTART] module 'fixture-crash' is running again", SHORT)
        .unwrap();
    let lines = || {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    wait_until("the restarted child records events", SHORT, || {
        orch.collect_for(Duration::from_millis(100));
        lines().len() > 10_000
    });
    stop_cleanly(&mut orch);
    let recorded = lines();
    let mut seen = std::collections::HashSet::new();
    let repeated: Vec<&String> = recorded.iter().filter(|l| !seen.insert(*l)).collect();
    assert!(
        repeated.is_empty(),
        "{} of {} events were delivered again after the crash, e.g. {:?}",
        repeated.len(),
        recorded.len(),
        repeated.first()
    );
}

#[test]
fn a_child_that_acknowledges_events_it_was_not_sent_is_stopped() {
    a_lying_child_is_stopped_and_restarted(
        "ring-handled",
        "it acknowledged events it was not sent or out of order (1000000 from #1",
    );
}

#[test]
fn a_child_that_moves_its_ring_counter_past_the_ring_is_stopped() {
    a_lying_child_is_stopped_and_restarted(
        "ring-counter",
        "it corrupted its shared memory ring (its write counter of the Up ring moved",
    );
}

#[test]
fn a_child_that_writes_garbage_into_its_ring_is_stopped() {
    a_lying_child_is_stopped_and_restarted("ring-garbage", "it sent a bad frame (bad frame length");
}

/// Runs fixture-crash isolated with `fault`, beside a producer and an
/// in-process consumer: the crash is named, restarts follow with back-off, the
/// module ends in `module.failed`, and the consumer lost nothing meanwhile.
fn crash_scenario(fault: &str, expected_reason: &str, extra: &str) -> String {
    let marker = marker();
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n{PRODUCER}  - name: mod-dummy-consumer\n  \
         - name: fixture-crash\n    isolation: process\n    max_restarts: 2\n{extra}    \
         config:\n      fault: {fault}\n"
    ));
    let mut orch = start(&scenario, &marker);
    orch.wait_for("app.started", BUILD).unwrap();
    let is_crash = |line: &str| {
        line.contains("[CRASH] module 'fixture-crash' (isolated)") && line.contains(expected_reason)
    };
    orch.wait_for_match(is_crash, expected_reason, SHORT)
        .unwrap();
    orch.wait_for(
        "EVENT module.crashed {\"generation\":1,\"name\":\"fixture-crash\"",
        SHORT,
    )
    .unwrap();
    orch.wait_for(
        "[RESTART] module 'fixture-crash' restarts in 100.0 ms",
        SHORT,
    )
    .unwrap();
    orch.wait_for(
        "[RESTART] module 'fixture-crash' restarts in 200.0 ms",
        SHORT,
    )
    .unwrap();
    orch.wait_for(
        "[FAILED] module 'fixture-crash' stays down",
        Duration::from_secs(30),
    )
    .unwrap();
    orch.wait_for("EVENT module.failed {\"name\":\"fixture-crash\"", SHORT)
        .unwrap();
    let crashes = orch
        .lines_with("[CRASH] module 'fixture-crash' (isolated)")
        .into_iter()
        .filter(|l| is_crash(l))
        .count();
    assert_eq!(crashes, 3, "{}", orch.output());
    // Everything else keeps running: more pings after the failure.
    let before = received(&orch, "mod-dummy-consumer").len();
    orch.collect_for(Duration::from_millis(600));
    assert!(received(&orch, "mod-dummy-consumer").len() > before + 3);
    assert!(
        module_hosts(&marker, "fixture-crash").is_empty(),
        "stays down"
    );
    assert_eq!(
        child_copies(orch.pid()),
        Vec::<String>::new(),
        "the library copies of crashed children are removed"
    );
    stop_cleanly(&mut orch);
    assert_no_loss(&orch, "mod-dummy-consumer");
    assert!(processes_with_env(&marker).is_empty());
    orch.output()
}

/// The child hosts' copy folders (`child-<pid>`) left in the copies folders of
/// the orchestrator `pid`.
fn child_copies(pid: u32) -> Vec<String> {
    let loaded = orch_e2e::workspace_root().join("target/orch/loaded");
    let mut found = Vec::new();
    for dir in std::fs::read_dir(loaded).into_iter().flatten().flatten() {
        let ours = dir
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&format!("{pid}-")));
        if !ours {
            continue;
        }
        for entry in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("child-") {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn a_segfaulting_module_is_restarted_then_given_up_while_the_others_run() {
    crash_scenario("segfault", "killed by SIGSEGV (segmentation fault)", "");
}

#[test]
fn an_aborting_module_is_restarted_then_given_up_while_the_others_run() {
    crash_scenario("abort", "killed by SIGABRT (abort)", "");
}

#[test]
fn a_stack_overflow_is_named() {
    let output = crash_scenario(
        "stack_overflow",
        "killed by SIGABRT (abort): thread 'main'",
        "",
    );
    assert!(
        output.contains("has overflowed its stack; the 'test.ping' event it was handling is lost")
    );
}

#[test]
fn an_endless_handler_misses_heartbeats_and_is_killed() {
    crash_scenario("loop", "has been in one call for", "    heartbeat: 1s\n");
}

#[test]
fn restart_never_gives_up_at_the_first_crash() {
    let marker = marker();
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n{PRODUCER}  - name: fixture-crash\n    \
         isolation: process\n    restart: never\n    config:\n      fault: exit\n"
    ));
    let mut orch = start(&scenario, &marker);
    orch.wait_for(
        "[CRASH] module 'fixture-crash' (isolated) exited with code 3",
        BUILD,
    )
    .unwrap();
    orch.wait_for("EVENT module.failed {\"name\":\"fixture-crash\"", SHORT)
        .unwrap();
    assert!(
        orch.lines_with("[RESTART] module 'fixture-crash'")
            .is_empty()
    );
    stop_cleanly(&mut orch);
}

/// The soak below for 10 s.
#[test]
fn random_kills_of_isolated_modules_lose_no_event_of_a_healthy_module() {
    random_kills_soak(10);
}

/// The soak below for `ORCH_ISOLATION_SOAK_SECS` seconds (default 120).
#[test]
#[ignore = "slow lane (a two-minute soak): cargo xtask ci runs it"]
fn random_kills_for_two_minutes_lose_no_event_of_a_healthy_module() {
    let seconds: u64 = std::env::var("ORCH_ISOLATION_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    random_kills_soak(seconds);
}

/// Under load (a ping every 20 ms), isolated modules are killed at random
/// (SIGKILL from outside, random exits from inside) for `seconds`: the
/// healthy modules, one in-process and one isolated, lose no ping and get
/// none twice; the victims keep coming back, never see a ping twice, and
/// lose at most the ping being handled per crash (the unacknowledged ones
/// after it are delivered again).
fn random_kills_soak(seconds: u64) {
    let marker = marker();
    let restart = "    isolation: process\n    max_restarts: 1000\n    restart_window: 1s\n";
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 20ms\n  \
         - name: mod-dummy-consumer\n  \
         - name: healthy-isolated\n    package: mod-dummy-consumer\n    isolation: process\n  \
         - name: victim\n    package: mod-dummy-consumer\n{restart}  \
         - name: fixture-crash\n{restart}    config:\n      fault: random\n      chance: 0.02\n"
    ));
    let mut orch = start(&scenario, &marker);
    orch.wait_for(
        "[healthy-isolated] Received test.ping: hello (seq 5)",
        BUILD,
    )
    .unwrap();
    orch.wait_for("[victim] Received test.ping", SHORT).unwrap();
    let mut seed = u64::from(std::process::id()) | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut kills = 0;
    while Instant::now() < end {
        orch.collect_for(Duration::from_millis(200 + next() % 1300));
        if let Some(&pid) = module_hosts(&marker, "victim").first() {
            kill_pid(pid, Signal::SIGKILL);
            kills += 1;
        }
    }
    orch.collect_for(Duration::from_secs(1));
    let victim_before = received(&orch, "victim").len();
    orch.collect_for(Duration::from_secs(2));
    stop_cleanly(&mut orch);

    let healthy = assert_no_loss(&orch, "mod-dummy-consumer");
    let isolated = assert_no_loss(&orch, "healthy-isolated");
    assert!(healthy > (seconds as usize) * 20, "load: {healthy} pings");
    assert!(isolated + 10 >= healthy, "{isolated} vs {healthy}");
    assert!(kills >= seconds / 2, "{kills} kills");
    // A kill that lands while the victim is being restarted shows as a failed
    // restart rather than a crash of a running module.
    let crashes = orch.lines_with("[CRASH] module 'victim'").len()
        + orch
            .lines_with("[RESTART] module 'victim' failed to restart")
            .len();
    assert!(
        crashes >= kills as usize,
        "{crashes} crashes or failed restarts for {kills} kills"
    );
    assert!(orch.lines_with("[FAILED]").is_empty(), "nobody gave up");
    let victim = received(&orch, "victim");
    assert!(
        victim.len() > victim_before,
        "the victim is back after the kills"
    );
    assert!(victim.windows(2).all(|w| w[0] < w[1]), "no ping twice");
    let span = victim.last().unwrap_or(&0) - victim.first().unwrap_or(&0) + 1;
    assert!(
        victim.len() as u64 + crashes as u64 >= span,
        "at most the ping being handled is lost per crash: {} of {span} with {crashes} crashes",
        victim.len()
    );
    assert!(processes_with_env(&marker).is_empty());
}

/// A saved edit of an isolated module swaps in a new child host (generation 2);
/// a new generation that fails to initialize is discarded and the old child,
/// re-initialized from its saved state, keeps receiving.
#[test]
fn an_isolated_module_hot_reloads_into_a_new_child_and_rolls_back_on_failure() {
    const CONSUMER: &str = "modules-backend/mod-dummy-consumer/src/lib.rs";
    let marker = marker();
    let scratch = orch_e2e::ScratchWorkspace::copy_of_repo().expect("copy the workspace");
    scratch
        .write(
            "config/modules.yaml",
            &format!(
                "modules:\n  - name: fixture-event-log\n{PRODUCER}  - name: mod-dummy-consumer\n    isolation: process\n"
            ),
        )
        .expect("write modules.yaml");
    let mut command = scratch.orch(&["run", "--watch"]);
    let (key, value) = marker.split_once('=').expect("KEY=value");
    command.env(key, value);
    let mut orch = OrchProcess::spawn(command).expect("spawn");
    orch.wait_for("[WATCH] watching", BUILD).unwrap();
    orch.wait_for(
        "[mod-dummy-consumer] Received test.ping: hello (seq 2)",
        BUILD,
    )
    .unwrap();
    let first = module_hosts(&marker, "mod-dummy-consumer");
    assert_eq!(first.len(), 1, "{first:?}");

    scratch
        .replace(
            CONSUMER,
            "\"Received test.ping: {} (seq {})\"",
            "\"New code got test.ping: {} (seq {})\"",
        )
        .expect("edit");
    orch.wait_for(
        "[mod-dummy-consumer] New code got test.ping: hello",
        Duration::from_secs(90),
    )
    .unwrap();
    let reloaded = orch.wait_for("EVENT module.reloaded", SHORT).unwrap();
    assert!(
        reloaded.text.contains("\"generation\":2"),
        "{}",
        reloaded.text
    );
    let second = module_hosts(&marker, "mod-dummy-consumer");
    assert_eq!(second.len(), 1, "the old child has exited: {second:?}");
    assert_ne!(second, first, "generation 2 runs in a new child");

    scratch
        .replace(
            CONSUMER,
            "ctx.subscribe(PING_TOPIC)?;",
            "ctx.subscribe(PING_TOPIC)?;\n        if ctx.restored_state::<u64>()?.is_some() { return Err(\"refused by the edit\".into()); }",
        )
        .expect("edit");
    let failed = orch
        .wait_for("EVENT module.reload_failed", Duration::from_secs(90))
        .unwrap();
    assert!(
        failed.text.contains("refused by the edit"),
        "{}",
        failed.text
    );
    let seen = orch.lines_with("[mod-dummy-consumer] New code got").len();
    orch.collect_for(Duration::from_millis(800));
    assert!(
        orch.lines_with("[mod-dummy-consumer] New code got").len() > seen + 3,
        "the rolled-back child keeps receiving"
    );
    assert_eq!(module_hosts(&marker, "mod-dummy-consumer"), second);
    stop_cleanly(&mut orch);
    assert!(processes_with_env(&marker).is_empty());
}

/// SIGKILL of the orchestrator in the middle of a build leaves no cargo, rustc
/// or build script running: a guard process kills cargo's whole process group.
#[test]
fn sigkill_during_a_build_leaves_no_build_process() {
    let marker = marker();
    let (key, value) = marker.split_once('=').expect("KEY=value");
    let scenario = Scenario::new("modules:\n  - name: fixture-slow-build\n");
    let mut command = scenario.command(&["run"]);
    command
        .env(key, value)
        .env("ORCH_FIXTURE_SLOW_BUILD", format!("120:{value}"));
    let mut orch = OrchProcess::spawn(command).expect("spawn");
    orch.wait_for("fixture-slow-build", BUILD).unwrap();
    let build_script = || {
        processes_with_env(&marker).into_iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("build-script-build"))
        })
    };
    wait_until("cargo runs the slow build script", BUILD, build_script);
    orch.signal(Signal::SIGKILL).expect("SIGKILL");
    orch.wait_exit(SHORT).expect("killed");
    wait_until("no build process survives", SHORT, || {
        processes_with_env(&marker).is_empty()
    });
}

/// An isolated module that starts a helper process: the helper gets none of
/// the protocol pipes (close-on-exec), so killing the child host is seen as a
/// crash at once and the module restarts; the helper goes with its child host
/// (the child's whole process group is killed), and nothing of the run
/// survives the orchestrator.
#[test]
fn a_helper_process_neither_hides_a_crash_nor_outlives_its_module() {
    let marker = marker();
    let scenario = Scenario::new(
        "modules:\n  - name: fixture-event-log\n  - name: fixture-helper\n    isolation: process\n",
    );
    let mut orch = start(&scenario, &marker);
    let started = orch.wait_for("helper started ", BUILD).unwrap();
    let helper: u32 = started
        .text
        .rsplit(' ')
        .next()
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{}", started.text));
    // The helper starts in the module's `start`: a kill before that returned
    // is a failed start (left out), not a crash of a running module.
    orch.wait_for("app.started:", SHORT).unwrap();
    let hosts = module_hosts(&marker, "fixture-helper");
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    kill_pid(hosts[0], Signal::SIGKILL);
    orch.wait_for(
        "[CRASH] module 'fixture-helper' (isolated) killed by SIGKILL",
        SHORT,
    )
    .unwrap();
    orch.wait_for("EVENT module.restarted", SHORT).unwrap();
    wait_until(
        "the first helper is gone with its child host",
        SHORT,
        || {
            !std::path::Path::new(&format!("/proc/{helper}")).exists()
                || std::fs::read_to_string(format!("/proc/{helper}/stat"))
                    .is_ok_and(|stat| stat.contains(") Z "))
        },
    );
    orch.wait_for_match(
        |line| line.contains("helper started ") && !line.ends_with(&format!(" {helper}")),
        "a second helper",
        SHORT,
    )
    .unwrap();
    stop_cleanly(&mut orch);
    wait_until("no process of the run survives", SHORT, || {
        processes_with_env(&marker).is_empty()
    });
}

/// The `memfd:orch-ring` mappings of process `pid` (its shared rings).
fn ring_mappings(pid: u32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("memfd:orch-ring"))
        .map(str::to_owned)
        .collect()
}

/// The entries of `/dev/shm` (named shared memory of any process).
fn dev_shm() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Events reach an isolated child through a nameless shared segment that the
/// child and the orchestrator map once each; a restarted child gets a fresh
/// one and the old one is unmapped; no fd of it stays open in the
/// orchestrator, and nothing ever appears in `/dev/shm`, even when the
/// orchestrator is SIGKILLed.
#[test]
fn shared_rings_are_nameless_and_go_with_their_child() {
    let before = dev_shm();
    let marker = marker();
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n{PRODUCER}  - name: mod-dummy-consumer\n    \
         isolation: process\n"
    ));
    let mut orch = start(&scenario, &marker);
    orch.wait_for("[mod-dummy-consumer] Received test.ping", BUILD)
        .unwrap();
    let child = module_hosts(&marker, "mod-dummy-consumer");
    assert_eq!(child.len(), 1, "{child:?}");
    let mapped = ring_mappings(child[0]);
    assert_eq!(
        mapped.len(),
        1,
        "the child maps its segment once: {mapped:?}"
    );
    assert!(
        mapped[0].contains("rw-s") && mapped[0].contains("memfd:orch-ring:mod-dummy-consumer:1"),
        "{mapped:?}"
    );
    assert_eq!(
        ring_mappings(orch.pid()).len(),
        1,
        "and so does the orchestrator"
    );
    let open_fds = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/fd", orch.pid()))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .map(|target| target.to_string_lossy().into_owned())
            .filter(|target| target.contains("orch-ring"))
            .collect()
    };
    assert_eq!(
        open_fds(),
        Vec::<String>::new(),
        "the orchestrator closed its fd"
    );
    kill_pid(child[0], Signal::SIGKILL);
    orch.wait_for("EVENT module.restarted", SHORT).unwrap();
    receives_more(&mut orch, "mod-dummy-consumer", 3);
    let restarted = module_hosts(&marker, "mod-dummy-consumer");
    assert_eq!(restarted.len(), 1);
    assert_ne!(restarted, child);
    assert_eq!(ring_mappings(restarted[0]).len(), 1);
    wait_until("the dead child's segment is unmapped", SHORT, || {
        ring_mappings(orch.pid()).len() == 1
    });
    kill_pid(orch.pid(), Signal::SIGKILL);
    orch.wait_exit(SHORT).expect("killed");
    wait_until("the child dies with the orchestrator", SHORT, || {
        module_hosts(&marker, "mod-dummy-consumer").is_empty()
    });
    let after = dev_shm();
    let new: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
    assert!(new.is_empty(), "left in /dev/shm: {new:?}");
}

/// A child that stops consuming while a flood of 64 KB events comes for it
/// (its handler never returns): its ring fills, its in-flight window fills,
/// its mailbox drops the oldest as configured, and within its heartbeat it is
/// killed (for the full ring or the endless call, whichever is seen first)
/// and restarted; the orchestrator stays within the memory that implies and
/// the other modules lose nothing.
#[test]
fn a_child_that_stops_consuming_a_flood_is_contained() {
    let marker = marker();
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n{PRODUCER}  - name: mod-dummy-consumer\n  \
         - name: fixture-flood\n    \
         config: {{pad_bytes: 65536}}\n  - name: fixture-stuck-handler\n    \
         isolation: process\n    heartbeat: 1s\n    \
         mailbox: {{capacity: 200, overflow: drop-oldest}}\n    config: {{topic: flood.tick}}\n"
    ));
    let mut orch = start(&scenario, &marker);
    orch.wait_for("app.started", BUILD).unwrap();
    let crash = orch
        .wait_for("[CRASH] module 'fixture-stuck-handler' (isolated)", SHORT)
        .unwrap();
    assert!(
        crash
            .text
            .contains("stopped reading its input: its shared ring stayed full for 1")
            || crash.text.contains("has been in one call for"),
        "{}",
        crash.text
    );
    orch.wait_for("EVENT module.overflow {\"capacity\":200", SHORT)
        .unwrap();
    orch.wait_for("EVENT module.restarted", SHORT).unwrap();
    // 200 queued events of 64 KB, a window of 200 (its mailbox's capacity)
    // and one ring of 1 MiB each way: well under 256 MiB however long the
    // flood goes on.
    let status = std::fs::read_to_string(format!("/proc/{}/status", orch.pid())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    assert!(
        peak_kib < 256 * 1024,
        "the orchestrator peaked at {peak_kib} KiB"
    );
    receives_more(&mut orch, "mod-dummy-consumer", 5);
    orch.signal(Signal::SIGINT).expect("SIGINT");
    orch.wait_exit(Duration::from_secs(30)).expect("exit");
    assert_no_loss(&orch, "mod-dummy-consumer");
}

/// User + system CPU time of process `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // After the name: the state is field 3, utime 14 and stime 15.
    fields[14 - 3].parse::<u64>().expect("utime") + fields[15 - 3].parse::<u64>().expect("stime")
}

/// A child with nothing to do sleeps on its ring's futex: over 3 s it uses a
/// few ticks at most (its heartbeat answers), where a spinning wait would
/// use a whole core. The bound is ten times what it needs here.
#[test]
fn an_idle_isolated_child_uses_no_cpu() {
    let marker = marker();
    let scenario =
        Scenario::new("modules:\n  - name: mod-dummy-consumer\n    isolation: process\n");
    let mut orch = start(&scenario, &marker);
    orch.wait_for("app.started", BUILD).unwrap();
    let child = module_hosts(&marker, "mod-dummy-consumer");
    assert_eq!(child.len(), 1, "{child:?}");
    orch.collect_for(Duration::from_millis(500));
    let before = cpu_ticks(child[0]);
    orch.collect_for(Duration::from_secs(3));
    let used = cpu_ticks(child[0]) - before;
    // Clock ticks are 10 ms each on Linux.
    assert!(used <= 30, "the idle child used {used} ticks of CPU in 3 s");
    stop_cleanly(&mut orch);
}
