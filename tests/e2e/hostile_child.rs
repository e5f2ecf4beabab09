//! Children that lie about what they may send (fixture-liar, isolated): the
//! real binary must hold their frames to the rules an in-process module
//! meets. Timer failures paced and escaped, nothing published or asked
//! before start, no answer to another module's request, frames only the
//! orchestrator sends killed as protocol errors, a ring freed a byte at a
//! time killed within its heartbeat. Each test is bounded in time.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use orch_e2e::{OrchProcess, Scenario, wait_until};

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(15);

const PRODUCER: &str = "  - name: mod-dummy-producer\n    config:\n      publish_interval: 50ms\n";

/// `fixture-liar`, isolated, lying with `lie`; `extra` is more of its entry.
fn liar(lie: &str, extra: &str) -> String {
    format!(
        "  - name: fixture-liar\n    isolation: process\n{extra}    config:\n      \
         lie: \"{lie}\"\n"
    )
}

/// Runs the orchestrator on `scenario`; `pipe` makes every frame travel
/// through the child's pipes (`ORCH_ISOLATION_TRANSPORT=pipe`), where the
/// liar finds the one it writes to.
fn start(scenario: &Scenario, pipe: bool) -> OrchProcess {
    let mut command = scenario.command(&["run"]);
    command.env(
        "ORCH_E2E_MARKER",
        format!("orch-hostile-{}-{:?}", std::process::id(), Instant::now()),
    );
    if pipe {
        command.env("ORCH_ISOLATION_TRANSPORT", "pipe");
    }
    OrchProcess::spawn(command).expect("spawn cargo-orch")
}

fn stop(orch: &mut OrchProcess) {
    orch.signal(Signal::SIGINT).expect("SIGINT");
    orch.wait_exit(Duration::from_secs(30)).expect("exit");
}

/// Waits until `module` has logged `more` pings beyond what it had.
fn receives_more(orch: &mut OrchProcess, module: &str, more: usize) {
    let before = orch.pings_received(module).len();
    wait_until(&format!("{module} gets pings"), SHORT, || {
        orch.collect_for(Duration::from_millis(100));
        orch.pings_received(module).len() >= before + more
    });
}

/// 3 s of 5,000 forged `TimerFailed` frames a second, each a forged log line
/// with an escape code and 3 KB long, plus one 20 KB log line: the failures
/// are reported at most 10 a second (log and `module.error` alike), the
/// refusals counted, every message escaped and cut, the long line cut with a
/// note, and no escape code reaches the console or the log file.
#[test]
fn a_flood_of_forged_timer_failures_is_paced_escaped_and_cut() {
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n{PRODUCER}{}",
        liar("timer-flood", "")
    ));
    let mut orch = start(&scenario, true);
    orch.wait_for("LIAR writes timer-flood", BUILD).unwrap();
    let began = Instant::now();
    orch.wait_for("LIAR wrote", SHORT).unwrap();
    // The count of the last second's refusals comes with the next report.
    orch.collect_for(Duration::from_millis(1500));
    let seconds = began.elapsed().as_secs() + 2;
    let logged = orch.lines_with("failed handling 'liar.tick'");
    let published: Vec<String> = orch
        .lines_with("EVENT module.error")
        .into_iter()
        .filter(|l| l.contains("liar.tick"))
        .collect();
    let most = usize::try_from(10 * seconds).unwrap();
    assert!(
        (10..=most).contains(&logged.len()),
        "{} failure lines in about {seconds} s",
        logged.len()
    );
    assert!(
        (10..=most).contains(&published.len()),
        "{} module.error events in about {seconds} s",
        published.len()
    );
    assert!(
        !orch
            .lines_with("timer failure reports refused in the last second")
            .is_empty(),
        "the refusals are counted\n{}",
        orch.output()
    );
    for line in &logged {
        assert!(
            line.contains(
                "boom\\n2026-01-01T00:00:00Z ERROR [fixture-event-log] forged line\\u{1b}[31m red"
            ),
            "escaped: {line:.300}"
        );
        assert!(
            line.contains("more bytes of this line cut]") && line.len() < 2 * 1024 + 400,
            "cut: {} bytes",
            line.len()
        );
    }
    let output = orch.output();
    assert!(
        !output
            .lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z") || l.starts_with(" red")),
        "a forged line of its own"
    );
    let long = orch.lines_with("LIAR long line");
    assert_eq!(long.len(), 1, "{long:?}");
    assert!(
        long[0].contains("LIAR long line \\u{1b}[31myyy")
            && long[0].contains("more bytes of this line cut]")
            && long[0].len() < 8 * 1024 + 300,
        "{} bytes: {:.200}",
        long[0].len(),
        long[0]
    );
    assert_eq!(
        orch.lines_with_escapes(),
        Vec::<String>::new(),
        "raw escapes"
    );
    assert!(orch.lines_with("[CRASH]").is_empty(), "paced, not killed");
    stop(&mut orch);
    let file = std::fs::read(scenario.log_file()).expect("log file");
    assert!(!file.contains(&0x1b), "an escape code in the log file");
}

/// A `Publish` and a `Request` written from `initialize()`: refused as an
/// in-process module's would be; nobody gets the event, and the child's
/// module is told at once why its request will not be answered.
#[test]
fn a_child_cannot_publish_or_ask_before_start() {
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n    config: {{also: [\"liar.>\"]}}\n{}",
        liar("early", "")
    ));
    let mut orch = start(&scenario, true);
    orch.wait_for("LIAR writes early", BUILD).unwrap();
    let refused = orch
        .wait_for("may not publish 'liar.early' yet", SHORT)
        .unwrap();
    assert!(
        refused
            .text
            .contains("module 'fixture-liar' published on 'liar.early'"),
        "{}",
        refused.text
    );
    // 1 << 40 | 777, the id the liar gave its request.
    let told = orch
        .wait_for("LIAR heard kind=Timeout id=1099511628553", SHORT)
        .unwrap();
    assert!(
        told.text.contains("\"refused\"")
            && told.text.contains("may not publish 'liar.early-ask' yet"),
        "{}",
        told.text
    );
    orch.wait_for("app.started", SHORT).unwrap();
    orch.collect_for(Duration::from_millis(500));
    assert!(
        orch.lines_with("EVENT liar.early").is_empty(),
        "the early publish went out\n{}",
        orch.output()
    );
    assert!(orch.lines_with("[CRASH]").is_empty());
    stop(&mut orch);
}

/// For 3 s the liar answers every likely id of two other modules' requests:
/// one asks a real responder, one a silent one. No forged answer is taken
/// (each is refused, naming the liar and the request); the real answers
/// keep arriving and the silent requests time out.
#[test]
fn a_forged_answer_to_another_modules_request_is_refused() {
    let asker = |name: &str, ask: &str| {
        format!(
            "  - name: {name}\n    package: fixture-requester\n    config:\n      \
             ask: {ask}\n      label: {name}\n"
        )
    };
    let scenario = Scenario::new(&format!(
        "modules:\n{PRODUCER}  - name: fixture-responder\n{}{}{}",
        asker("stats-asker", "responder.stats"),
        asker("silent-asker", "responder.silent"),
        liar("forge-answers", "")
    ));
    let mut orch = start(&scenario, true);
    orch.wait_for("LIAR writes forge-answers", BUILD).unwrap();
    let before = orch.lines_with("ANSWER stats-asker kind=Reply").len();
    orch.wait_for("LIAR wrote", SHORT).unwrap();
    orch.collect_for(Duration::from_millis(500));
    let real = orch.lines_with("ANSWER stats-asker kind=Reply");
    assert!(
        real.len() >= before + 10,
        "real answers arrived meanwhile: {} then {}",
        before,
        real.len()
    );
    assert!(
        real.iter().all(|l| l.contains("from=fixture-responder")),
        "{real:?}"
    );
    assert!(
        !orch
            .lines_with("ANSWER silent-asker kind=Timeout")
            .is_empty()
    );
    assert_eq!(orch.lines_with("from=fixture-liar"), Vec::<String>::new());
    assert_eq!(orch.lines_with("STRAY"), Vec::<String>::new());
    let refusals = orch.lines_with("module 'fixture-liar' may not answer request");
    assert!(
        refusals.iter().any(|l| l.contains(
            "of 'silent-asker' on 'responder.silent': the request was not delivered to it"
        )),
        "{refusals:?}"
    );
    assert!(orch.lines_with("[CRASH]").is_empty());
    stop(&mut orch);
}

/// A frame only the orchestrator sends, from the child: killed as a
/// protocol error naming it, restarted, and the others go on.
fn a_parent_frame_kills_the_child(lie: &str, pipe: bool, expected: &str) {
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n{PRODUCER}  - name: mod-dummy-consumer\n{}",
        liar(lie, "")
    ));
    let mut orch = start(&scenario, pipe);
    orch.wait_for(&format!("LIAR writes {lie}"), BUILD).unwrap();
    let crash = orch
        .wait_for("[CRASH] module 'fixture-liar' (isolated)", SHORT)
        .unwrap();
    assert!(crash.text.contains(expected), "{}", crash.text);
    orch.wait_for("EVENT module.restarted", SHORT).unwrap();
    receives_more(&mut orch, "mod-dummy-consumer", 3);
    stop(&mut orch);
}

#[test]
fn a_child_sending_a_ping_is_killed_as_a_protocol_error() {
    a_parent_frame_kills_the_child(
        "parent-ping",
        false,
        "it sent a Ping frame, which only the orchestrator sends",
    );
}

#[test]
fn a_child_sending_a_shutdown_is_killed_as_a_protocol_error() {
    a_parent_frame_kills_the_child(
        "parent-shutdown",
        true,
        "it sent a Shutdown frame, which only the orchestrator sends",
    );
}

/// The liar answers its heartbeat itself (never busy), keeps its module
/// thread in one call and frees one byte of its ring every 20 ms while a
/// flood of 64 KB events fills it: the actor's write used to wait for ever;
/// now the child is killed within about its heartbeat (1 s).
#[test]
fn a_child_that_frees_its_ring_a_byte_at_a_time_is_killed_within_its_heartbeat() {
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n    \
         config: {{topics: [module.crashed, module.restarted]}}\n  - name: fixture-flood\n    \
         config: {{pad_bytes: 65536}}\n{}",
        liar(
            "ring-trickle",
            "    heartbeat: 1s\n    mailbox: {capacity: 200, overflow: drop-oldest}\n",
        )
        .replace("config:\n", "config:\n      topic: flood.tick\n")
    ));
    let mut orch = start(&scenario, false);
    let trickling = orch.wait_for("LIAR trickles its ring", BUILD).unwrap();
    let crash = orch
        .wait_for("[CRASH] module 'fixture-liar' (isolated)", SHORT)
        .unwrap();
    assert!(
        crash
            .text
            .contains("stopped reading its input: its shared ring stayed full for 1")
            && crash.text.contains("it took no whole frame from it"),
        "{}\n{}",
        crash.text,
        orch.output()
    );
    let took = crash.at.duration_since(trickling.at);
    assert!(took < Duration::from_secs(6), "killed after {took:?}");
    orch.wait_for("EVENT module.restarted", SHORT).unwrap();
    stop(&mut orch);
}

/// The liar answers its heartbeat itself, saying it is idle, while its
/// module thread never returns from its first event: the orchestrator no
/// longer takes its word for it, and kills it once it answered none of the
/// calls it owes for twice its heartbeat (the actor's wait for
/// acknowledgements used to have no end).
#[test]
fn a_child_that_says_it_is_idle_but_answers_nothing_is_killed() {
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-event-log\n    \
         config: {{topics: [module.crashed]}}\n{PRODUCER}{}",
        liar("idle-lie", "    heartbeat: 1s\n    restart: never\n")
    ));
    let mut orch = start(&scenario, false);
    let lying = orch.wait_for("LIAR lies that it is idle", BUILD).unwrap();
    let crash = orch
        .wait_for("[CRASH] module 'fixture-liar' (isolated)", SHORT)
        .unwrap();
    assert!(
        crash
            .text
            .contains("answered none of the calls it was sent for"),
        "{}\n{}",
        crash.text,
        orch.output()
    );
    let took = crash.at.duration_since(lying.at);
    assert!(took < Duration::from_secs(8), "killed after {took:?}");
    stop(&mut orch);
}
