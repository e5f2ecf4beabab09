//! Reload as a transaction: hand-over and `module.reloaded` on success;
//! rollback to the old generation and `module.reload_failed` on any failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Harness, LIMIT, artifact, lifecycle_and_announcements};
use crate::error::{Cause, ModuleFailure, Phase};
use crate::status::ModuleState;
use crate::supervisor::ReloadReport;
use crate::testing::{Act, Call, Gate, Script};

/// `a` (and `b`, untouched) running, `a` subscribed to `t.ping` and after
/// handling pings 1 to 3; `scripts` for `a`'s generations.
fn running_after_three_pings(scripts: &[(u32, Script)]) -> Harness {
    let mut h = Harness::new();
    h.script("a", 1, Script::new().subscribes("t.ping"));
    for (generation, script) in scripts {
        h.script("a", *generation, script.clone());
    }
    h.start(&["a", "b"]);
    for seq in 1..=3 {
        h.publish("t.ping", &seq.to_string());
    }
    h.wait_handled("a", 3);
    h
}

/// Reloads `a` from its library version `version`.
fn reload(h: &mut Harness, version: u32) -> Result<ReloadReport, ModuleFailure> {
    h.supervisor
        .reload("a", &artifact("a", version), None, Duration::from_millis(7))
}

/// The journal's lines from the first `save_state` of `a` on.
fn from_the_reload(h: &Harness) -> Vec<String> {
    let lines = h.journal.lines(lifecycle_and_announcements);
    let at = lines
        .iter()
        .position(|l| l.starts_with("a#1 save_state"))
        .expect("a reload began");
    lines[at..]
        .iter()
        .filter(|l| !l.starts_with("b#") && !l.ends_with(" b"))
        .cloned()
        .collect()
}

#[test]
fn a_reload_hands_the_state_over_and_the_new_generation_serves() {
    let mut h = running_after_three_pings(&[(2, Script::new().subscribes("t.ping"))]);
    let report = reload(&mut h, 2).expect("reloaded");
    assert_eq!(report.generation, 2);
    assert_eq!(
        from_the_reload(&h),
        [
            "a#1 save_state 3",
            "a#1 shutdown 3",
            "a#2 open /fake/a-v2.so",
            "a#2 initialize state=3",
            "a#2 start",
            "a#1 retire",
            "bus module.reloaded a",
        ]
    );
    let reloaded = &h.journal.bus("module.reloaded")[0];
    assert_eq!(reloaded["generation"], 2);
    assert_eq!(reloaded["build_ms"], 7.0);
    assert!(reloaded["swap_ms"].as_f64().is_some());
    for seq in 4..=5 {
        h.publish("t.ping", &seq.to_string());
    }
    h.wait_handled("a", 5);
    assert_eq!(
        h.journal.handled("a"),
        [(1, "1"), (1, "2"), (1, "3"), (2, "4"), (2, "5")].map(|(g, p)| (g, p.to_string()))
    );
    assert!(h.supervisor.shutdown("test over").is_empty());
    assert!(
        h.journal
            .lifecycle("a")
            .contains(&"a#2 shutdown 5".to_string())
    );
    assert_eq!(
        h.supervisor.status().state_of("a"),
        Some(ModuleState::Stopped)
    );
}

#[test]
fn under_load_each_reload_hands_over_the_last_state_and_no_event_is_lost_or_doubled() {
    const RELOADS: u32 = 10;
    let mut h = Harness::new();
    for generation in 1..=RELOADS + 1 {
        h.script("a", generation, Script::new().subscribes("t.ping"));
    }
    h.start(&["a"]);
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (bus, stop) = (h.bus.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(Ordering::Acquire) {
                seq += 1;
                bus.publish("t.ping", seq.to_string(), None)
                    .expect("the mailbox takes it");
                // As fast as the bus takes them, with a breath now and then
                // for the supervisor's thread on a machine of two cores.
                if seq.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            seq
        })
    };
    for version in 2..=RELOADS + 1 {
        h.wait_handled("a", 100 * version as usize);
        let report = reload(&mut h, version).expect("reloaded");
        assert_eq!(report.generation, version);
    }
    stop.store(true, Ordering::Release);
    let published = publisher.join().expect("the publisher ends");
    h.wait_handled("a", published as usize);
    // Every ping exactly once, in order, whichever generation had it.
    let handled: Vec<u64> = h
        .journal
        .handled("a")
        .into_iter()
        .map(|(_, p)| p.parse().expect("a number"))
        .collect();
    assert_eq!(handled, (1..=published).collect::<Vec<_>>());
    // What each generation saved is what it had at shutdown (no event in
    // between), all it and the generations before it handled, and what the
    // next one started from.
    let calls = h.journal.calls("a");
    let of = |generation: u32, pick: &dyn Fn(&Call) -> Option<u64>| {
        calls
            .iter()
            .filter(|(g, _)| *g == generation)
            .find_map(|(_, call)| pick(call))
    };
    for generation in 1..=RELOADS {
        let so_far = h
            .journal
            .handled("a")
            .iter()
            .filter(|(g, _)| *g <= generation)
            .count() as u64;
        assert!(so_far >= 100 * u64::from(generation), "under load");
        let saved = of(generation, &|c| match c {
            Call::SaveState { handled } => Some(*handled),
            _ => None,
        });
        let shut = of(generation, &|c| match c {
            Call::Shutdown { handled } => Some(*handled),
            _ => None,
        });
        let restored = of(generation + 1, &|c| match c {
            Call::Initialize { state } => *state,
            _ => None,
        });
        assert_eq!(
            (saved, shut, restored),
            (Some(so_far), Some(so_far), Some(so_far)),
            "saved, shut down with and restored after generation {generation}"
        );
    }
}

#[test]
fn a_new_generation_that_fails_is_rolled_back_and_the_old_one_serves() {
    let cases = [
        (
            Phase::Initialize,
            Act::error("refused by the edit"),
            Cause::Error("refused by the edit".into()),
        ),
        (
            Phase::Start,
            Act::error("refused by the edit"),
            Cause::Error("refused by the edit".into()),
        ),
        (
            Phase::Initialize,
            Act::Panic("new code panics".into()),
            Cause::Panic("panicked: new code panics".into()),
        ),
        (
            Phase::Start,
            Act::Crash("killed by SIGSEGV".into()),
            Cause::Host("its child host process died: killed by SIGSEGV".into()),
        ),
    ];
    for (phase, act, cause) in cases {
        let new = Script::new().subscribes("t.ping").subscribes("t.new");
        let new = match phase {
            Phase::Initialize => new.on_initialize(act),
            _ => new.on_start(act),
        };
        let mut h = running_after_three_pings(&[(2, new)]);
        let failure = reload(&mut h, 2).expect_err("rolled back");
        assert_eq!((failure.module.as_str(), failure.phase), ("a", phase));
        assert_eq!(failure.cause, cause);
        let mut expected = vec![
            "a#1 save_state 3",
            "a#1 shutdown 3",
            "a#2 open /fake/a-v2.so",
            "a#2 initialize state=3",
        ];
        if phase == Phase::Start {
            expected.push("a#2 start");
        }
        expected.extend([
            "a#2 retire",
            "a#1 initialize state=3",
            "a#1 start",
            "bus module.reload_failed a",
        ]);
        assert_eq!(from_the_reload(&h), expected, "{phase}");
        let event = &h.journal.bus("module.reload_failed")[0];
        assert_eq!(event["phase"], phase.as_str());
        assert_eq!(event["error"], cause.to_string());
        assert!(event["hint"].as_str().is_some_and(|h| !h.is_empty()));
        // The old generation serves, from its own state; what the failed one
        // subscribed to is gone.
        h.publish("t.ping", "4");
        h.wait_handled("a", 4);
        assert_eq!(h.journal.handled("a")[3], (1, "4".to_string()));
        assert_eq!(h.publish("t.new", "{}"), 0, "{phase}");
        assert_eq!(h.supervisor.running(), ["a", "b"]);
        assert_eq!(
            h.supervisor.status().state_of("a"),
            Some(ModuleState::Running)
        );
        h.supervisor.shutdown("test over");
        assert!(
            h.journal
                .lifecycle("a")
                .contains(&"a#1 shutdown 4".to_string())
        );
    }
}

#[test]
fn a_new_generation_refused_when_opened_is_rolled_back() {
    let refusal = "has no symbol `orch_module_v1`";
    let new = Script::new().on_open(Phase::AbiCheck, Act::Fail(Cause::Host(refusal.into())));
    let mut h = running_after_three_pings(&[(2, new)]);
    let failure = reload(&mut h, 2).expect_err("rolled back");
    assert_eq!(failure.phase, Phase::AbiCheck);
    assert_eq!(
        from_the_reload(&h),
        [
            "a#1 save_state 3",
            "a#1 shutdown 3",
            "a#2 open /fake/a-v2.so",
            "a#1 initialize state=3",
            "a#1 start",
            "bus module.reload_failed a",
        ]
    );
    let event = &h.journal.bus("module.reload_failed")[0];
    assert_eq!(event["phase"], "abi-check");
    assert_eq!(event["error"], refusal);
    h.publish("t.ping", "4");
    h.wait_handled("a", 4);
    assert_eq!(h.journal.handled("a")[3].0, 1);
}

#[test]
fn a_new_generation_that_hangs_times_out_and_the_next_attempt_gets_a_new_number() {
    let gate = Gate::new();
    let mut h = running_after_three_pings(&[
        (2, Script::new().on_initialize(Act::Hang(gate.clone()))),
        (3, Script::new().subscribes("t.ping")),
    ]);
    let failure = reload(&mut h, 2).expect_err("timed out");
    assert_eq!(failure.phase, Phase::Initialize);
    assert_eq!(failure.cause, Cause::Timeout(LIMIT));
    assert!(
        failure.to_string().contains("raise `timeouts.initialize`"),
        "{failure}"
    );
    h.publish("t.ping", "4");
    h.wait_handled("a", 4);
    assert_eq!(h.journal.handled("a")[3].0, 1, "the old generation serves");
    // The stuck attempt keeps its number: the fix is generation 3.
    let report = reload(&mut h, 3).expect("reloaded");
    assert_eq!(report.generation, 3);
    assert!(
        h.journal
            .lifecycle("a")
            .contains(&"a#3 initialize state=4".to_string())
    );
    h.publish("t.ping", "5");
    h.wait_handled("a", 5);
    assert_eq!(h.journal.handled("a")[4].0, 3);
    gate.open();
}

#[test]
fn a_failed_save_state_leaves_the_old_generation_untouched() {
    let old = Script::new()
        .subscribes("t.ping")
        .on_save_state(Act::error("cannot serialize"));
    let mut h = running_after_three_pings(&[(1, old)]);
    let failure = reload(&mut h, 2).expect_err("no state");
    assert_eq!(failure.phase, Phase::SaveState);
    assert_eq!(failure.cause, Cause::Error("cannot serialize".into()));
    assert_eq!(
        from_the_reload(&h),
        ["a#1 save_state 3", "bus module.reload_failed a"]
    );
    assert_eq!(
        h.journal.bus("module.reload_failed")[0]["phase"],
        "save_state"
    );
    h.publish("t.ping", "4");
    h.wait_handled("a", 4);
    assert_eq!(h.journal.handled("a")[3].0, 1);
}

#[test]
fn an_old_generation_stuck_in_shutdown_takes_the_module_out() {
    let mut h = Harness::new();
    let gate = Gate::new();
    h.script(
        "a",
        1,
        Script::new()
            .subscribes("t.ping")
            .on_shutdown(Act::Hang(gate.clone())),
    );
    h.start(&["a", "b"]);
    let failure = reload(&mut h, 2).expect_err("stuck");
    assert_eq!(
        (failure.phase, failure.cause.clone()),
        (Phase::Shutdown, Cause::Timeout(LIMIT))
    );
    assert_eq!(h.supervisor.running(), ["b"]);
    assert_eq!(
        h.supervisor.status().state_of("a"),
        Some(ModuleState::Failed)
    );
    assert_eq!(
        h.journal.bus("module.reload_failed")[0]["phase"],
        "shutdown"
    );
    assert_eq!(h.publish("t.ping", "{}"), 0, "its subscriptions are gone");
    assert!(
        !h.journal
            .lifecycle("a")
            .iter()
            .any(|l| l.starts_with("a#2"))
    );
    gate.open();
}
