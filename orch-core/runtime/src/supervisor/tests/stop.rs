//! Shutdown, and modules taken out or added while the others run.

use std::time::{Duration, Instant};

use super::{Harness, LIMIT, artifact, lifecycle_and_announcements, spec};
use crate::error::{Cause, Phase};
use crate::testing::{Act, Gate, Script};

#[test]
fn shutdown_runs_in_reverse_order_after_the_events_already_queued() {
    let mut h = Harness::new();
    // c's first event takes a while: the others queue up behind it.
    h.script(
        "c",
        1,
        Script::new()
            .subscribes("t.ping")
            .on_events(vec![Act::Slow(Duration::from_millis(30)), Act::Succeed]),
    );
    h.start(&["a", "b", "c"]);
    for seq in 1..=3 {
        h.publish("t.ping", &seq.to_string());
    }
    assert!(h.supervisor.shutdown("test over").is_empty());
    let lines = h.journal.lines(lifecycle_and_announcements);
    let at = lines
        .iter()
        .position(|l| l == "bus app.shutdown")
        .expect("app.shutdown");
    assert_eq!(
        lines[at..],
        [
            "bus app.shutdown",
            "c#1 shutdown 3",
            "c#1 retire",
            "bus module.unloaded c",
            "b#1 shutdown 0",
            "b#1 retire",
            "bus module.unloaded b",
            "a#1 shutdown 0",
            "a#1 retire",
            "bus module.unloaded a",
        ]
    );
    assert!(h.supervisor.running().is_empty());
}

#[test]
fn a_slow_shutdown_is_waited_for_and_a_stuck_one_is_bounded_by_its_timeout() {
    let mut h = Harness::new();
    let gate = Gate::new();
    h.script("a", 1, Script::new().on_shutdown(Act::Hang(gate.clone())));
    h.script("b", 1, Script::new().on_shutdown(Act::Slow(LIMIT / 3)));
    h.script(
        "c",
        1,
        Script::new().on_shutdown(Act::Slow(Duration::from_secs(30))),
    );
    h.start(&["a", "b", "c"]);
    let began = Instant::now();
    let failures = h.supervisor.shutdown("test over");
    let took = began.elapsed();
    assert!(took < 2 * LIMIT + LIMIT * 5, "{took:?}");
    let names: Vec<(&str, Phase, &Cause)> = failures
        .iter()
        .map(|f| (f.module.as_str(), f.phase, &f.cause))
        .collect();
    assert_eq!(
        names,
        [
            ("c", Phase::Shutdown, &Cause::Timeout(LIMIT)),
            ("a", Phase::Shutdown, &Cause::Timeout(LIMIT)),
        ]
    );
    assert!(
        failures[0]
            .to_string()
            .contains("raise `timeouts.shutdown`"),
        "{}",
        failures[0]
    );
    // b, slow but in time, is shut down and unloaded; the stuck ones stay
    // loaded (their code may still run).
    let unloaded: Vec<String> = h
        .journal
        .bus("module.unloaded")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(unloaded, ["b"]);
    let errors = h.journal.bus("module.error");
    assert_eq!(errors.len(), 2, "{}", h.journal.dump());
    assert!(errors.iter().all(|e| e["phase"] == "shutdown"));
    gate.open();
}

#[test]
fn a_module_is_taken_out_and_another_added_while_the_others_run() {
    let mut h = Harness::new();
    h.script("b", 1, Script::new().subscribes("t.ping"));
    h.script("c", 1, Script::new().subscribes("t.ping"));
    h.script("e", 1, Script::new().on_start(Act::error("not today")));
    h.start(&["a", "b"]);
    assert!(matches!(h.supervisor.remove("b"), Some(Ok(()))));
    assert!(h.supervisor.remove("b").is_none(), "b is gone");
    let artifacts = [
        ("c".to_string(), artifact("c", 1)),
        ("e".to_string(), artifact("e", 1)),
    ]
    .into();
    h.supervisor.add(&spec("c"), &artifacts).expect("c added");
    let failure = h
        .supervisor
        .add(&spec("e"), &artifacts)
        .expect_err("e fails");
    assert_eq!(
        (failure.module.as_str(), failure.phase),
        ("e", Phase::Start)
    );
    assert_eq!(h.supervisor.running(), ["a", "c"]);
    assert_eq!(h.publish("t.ping", "1"), 1, "c only");
    h.wait_handled("c", 1);
    let lines = h.journal.lines(lifecycle_and_announcements);
    let at = lines
        .iter()
        .position(|l| l == "b#1 shutdown 0")
        .expect("b shut down");
    assert_eq!(
        lines[at..],
        [
            "b#1 shutdown 0",
            "b#1 retire",
            "bus module.unloaded b",
            "c#1 open /fake/c-v1.so",
            "c#1 initialize",
            "bus module.loaded c",
            "c#1 start",
            "e#1 open /fake/e-v1.so",
            "e#1 initialize",
            "bus module.loaded e",
            "e#1 start",
            "e#1 retire",
        ]
    );
}
