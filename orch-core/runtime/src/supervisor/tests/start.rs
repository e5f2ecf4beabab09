//! Start-up: order, failures and timeouts of load, initialize and start;
//! what a running module's handler failures and stuck handlers do.

use std::time::Instant;

use super::{Harness, LIMIT, SOON, lifecycle_and_announcements, only};
use crate::error::{Cause, Phase};
use crate::status::ModuleState;
use crate::testing::{Act, Call, Entry, Gate, Script};

#[test]
fn modules_start_in_order_and_all_subscribe_before_any_publishes() {
    let mut h = Harness::new();
    h.script("a", 1, Script::new().publishes_in_start("a.hello"));
    h.script("b", 1, Script::new().publishes_in_initialize("b.early"));
    h.script("c", 1, Script::new().subscribes("a.hello"));
    let report = h.start(&["a", "b", "c"]);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.running, ["a", "b", "c"]);
    assert!(!report.cancelled);
    assert_eq!(
        h.journal.lines(lifecycle_and_announcements),
        [
            "a#1 open /fake/a-v1.so",
            "b#1 open /fake/b-v1.so",
            "c#1 open /fake/c-v1.so",
            "a#1 initialize",
            "b#1 initialize",
            "b#1 publish b.early refused",
            "c#1 initialize",
            "bus module.loaded a",
            "bus module.loaded b",
            "bus module.loaded c",
            "a#1 start",
            "a#1 publish a.hello",
            "b#1 start",
            "c#1 start",
            "bus app.started",
        ]
    );
    let refusal = h.journal.entries().into_iter().find_map(|e| match e {
        Entry::Call {
            call: Call::Publish { refused, .. },
            ..
        } => refused,
        _ => None,
    });
    let refusal = refusal.expect("b's early publish refused");
    assert!(
        refusal.contains("may not publish 'b.early' yet"),
        "{refusal}"
    );
    assert_eq!(
        h.journal.bus("app.started")[0]["modules"],
        serde_json::json!(["a", "b", "c"])
    );
    // c subscribed before a published: a's event waited in c's mailbox
    // until c had started.
    h.wait_handled("c", 1);
    let lines = h.journal.lines(|_| true);
    let position = |line: &str| lines.iter().position(|l| l == line).expect(line);
    assert!(position("c#1 start") < position("c#1 event a.hello {}"));
    assert_eq!(
        h.supervisor.status().state_of("c"),
        Some(ModuleState::Running)
    );
}

#[test]
fn a_failing_initialize_is_named_with_its_phase_and_cause_and_the_others_start() {
    let mut h = Harness::new();
    h.script(
        "b",
        1,
        Script::new()
            .subscribes("t.ping")
            .on_initialize(Act::error("no 'port' in its config")),
    );
    let report = h.start(&["a", "b", "c"]);
    assert_eq!(report.running, ["a", "c"]);
    let failure = only(&report.failures);
    assert_eq!(failure.module, "b");
    assert_eq!(failure.phase, Phase::Initialize);
    assert_eq!(
        failure.cause,
        Cause::Error("no 'port' in its config".into())
    );
    let text = failure.to_string();
    assert!(
        text.starts_with(
            "module 'b' failed in phase initialize: returned an error: no 'port' in its config"
        ),
        "{text}"
    );
    assert!(
        text.contains("hint: check the module's `config` in config/modules.yaml"),
        "{text}"
    );
    let errors = h.journal.bus("module.error");
    assert_eq!(errors.len(), 1, "{}", h.journal.dump());
    assert_eq!(errors[0]["name"], "b");
    assert_eq!(errors[0]["phase"], "initialize");
    assert_eq!(
        errors[0]["error"],
        "returned an error: no 'port' in its config"
    );
    // Left out: never started, its generation destroyed, its subscription gone.
    assert_eq!(
        h.journal.lifecycle("b"),
        ["b#1 open /fake/b-v1.so", "b#1 initialize", "b#1 retire"]
    );
    assert_eq!(h.publish("t.ping", "{}"), 0);
    assert_eq!(
        h.supervisor.status().state_of("b"),
        Some(ModuleState::Failed)
    );
    assert!(
        !h.journal
            .bus("module.loaded")
            .iter()
            .any(|e| e["name"] == "b")
    );
}

#[test]
fn a_panic_in_start_is_reported_with_its_message_and_the_others_run() {
    let mut h = Harness::new();
    h.script(
        "b",
        1,
        Script::new().on_start(Act::Panic("boom at src/lib.rs:7:9".into())),
    );
    let report = h.start(&["a", "b", "c"]);
    assert_eq!(report.running, ["a", "c"]);
    let failure = only(&report.failures);
    assert_eq!(
        (failure.module.as_str(), failure.phase),
        ("b", Phase::Start)
    );
    assert_eq!(
        failure.cause,
        Cause::Panic("panicked: boom at src/lib.rs:7:9".into())
    );
    assert!(
        failure
            .to_string()
            .contains("hint: fix the panic in the module's start"),
        "{failure}"
    );
    assert_eq!(
        h.journal.lifecycle("b"),
        [
            "b#1 open /fake/b-v1.so",
            "b#1 initialize",
            "b#1 start",
            "b#1 retire"
        ]
    );
    assert_eq!(h.journal.bus("module.error")[0]["phase"], "start");
}

#[test]
fn a_phase_that_hangs_times_out_by_module_and_phase_and_the_others_start() {
    for phase in [Phase::Load, Phase::Initialize, Phase::Start] {
        let mut h = Harness::new();
        let gate = Gate::new();
        let hang = Act::Hang(gate.clone());
        let script = match phase {
            Phase::Load => Script::new().on_open(Phase::Load, hang),
            Phase::Initialize => Script::new().on_initialize(hang),
            _ => Script::new().on_start(hang),
        };
        h.script("b", 1, script);
        let began = Instant::now();
        let report = h.start(&["a", "b", "c"]);
        let took = began.elapsed();
        assert_eq!(report.running, ["a", "c"], "{phase}");
        let failure = only(&report.failures);
        assert_eq!((failure.module.as_str(), failure.phase), ("b", phase));
        assert_eq!(failure.cause, Cause::Timeout(LIMIT), "{phase}");
        let text = failure.to_string();
        assert!(
            text.contains(&format!(
                "module 'b' failed in phase {phase}: did not return within"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("hint: the module's {phase} is stuck or slow"))
                && text.contains(&format!("raise `timeouts.{}`", phase.timeout_key())),
            "{text}"
        );
        assert!(took >= LIMIT && took < 10 * LIMIT, "{phase}: {took:?}");
        // The stuck thread is abandoned, never told to go on.
        let calls = h.journal.lifecycle("b");
        assert!(!calls.iter().any(|c| c.ends_with("retire")), "{calls:?}");
        gate.open();
    }
}

#[test]
fn a_child_that_dies_during_start_is_named_and_the_others_run() {
    let mut h = Harness::new();
    h.script(
        "b",
        1,
        Script::new()
            .isolated()
            .on_start(Act::Crash("killed by SIGKILL".into())),
    );
    let report = h.start(&["a", "b", "c"]);
    assert_eq!(report.running, ["a", "c"]);
    let failure = only(&report.failures);
    assert_eq!(
        (failure.module.as_str(), failure.phase),
        ("b", Phase::Start)
    );
    assert_eq!(
        failure.cause,
        Cause::Host("its child host process died: killed by SIGKILL".into())
    );
}

#[test]
fn a_library_refused_when_opened_is_never_called_and_the_others_start() {
    let mut h = Harness::new();
    let refusal = "built for ABI v999, this host speaks ABI v4";
    h.script(
        "b",
        1,
        Script::new().on_open(Phase::AbiCheck, Act::Fail(Cause::Host(refusal.into()))),
    );
    let report = h.start(&["a", "b", "c"]);
    assert_eq!(report.running, ["a", "c"]);
    let failure = only(&report.failures);
    assert_eq!(
        (failure.module.as_str(), failure.phase),
        ("b", Phase::AbiCheck)
    );
    assert_eq!(failure.cause, Cause::Host(refusal.into()));
    assert_eq!(h.journal.lifecycle("b"), ["b#1 open /fake/b-v1.so"]);
    let error = &h.journal.bus("module.error")[0];
    assert_eq!(
        (error["name"].as_str(), error["phase"].as_str()),
        (Some("b"), Some("abi-check"))
    );
}

#[test]
fn a_missing_library_is_a_build_failure_of_that_module_alone() {
    let mut h = Harness::new();
    let specs = [super::spec("a"), super::spec("b")];
    let artifacts = [("a".to_string(), super::artifact("a", 1))].into();
    let report = h.supervisor.start(&[&specs[0], &specs[1]], &artifacts);
    assert_eq!(report.running, ["a"]);
    let failure = only(&report.failures);
    assert_eq!(
        (failure.module.as_str(), failure.phase),
        ("b", Phase::Build)
    );
    assert!(failure.hint.contains("crate-type"), "{failure}");
    assert!(h.journal.lifecycle("b").is_empty());
}

#[test]
fn a_generation_that_unwinds_ends_its_thread_and_is_reported_as_gone() {
    // No real generation unwinds (the ABI boundary catches every panic); if
    // one did, its module would be named and left out, the others unharmed.
    let mut h = Harness::new();
    h.script(
        "b",
        1,
        Script::new().on_initialize(Act::Unwind("a bug in the host side".into())),
    );
    let report = h.start(&["a", "b", "c"]);
    assert_eq!(report.running, ["a", "c"]);
    let failure = only(&report.failures);
    assert_eq!(
        (failure.module.as_str(), failure.phase),
        ("b", Phase::Initialize)
    );
    assert_eq!(
        failure.cause,
        Cause::Host("the module's thread has ended".into())
    );
}

#[test]
fn handler_errors_and_panics_are_reported_and_every_module_goes_on() {
    let mut h = Harness::new();
    h.script(
        "b",
        1,
        Script::new().subscribes("t.ping").on_events(vec![
            Act::error("refuses odd pings"),
            Act::Panic("panics on even pings".into()),
        ]),
    );
    h.script("c", 1, Script::new().subscribes("t.ping"));
    h.start(&["a", "b", "c"]);
    for seq in 1..=4 {
        assert_eq!(h.publish("t.ping", &seq.to_string()), 2, "b and c get it");
    }
    h.wait_handled("c", 4);
    h.wait_handled("b", 4);
    h.journal
        .wait_until("four errors", SOON, |j| j.bus("module.error").len() == 4);
    let errors = h.journal.bus("module.error");
    for (n, error) in errors.iter().enumerate() {
        assert_eq!(error["name"], "b");
        assert_eq!(error["phase"], "on_event");
        assert_eq!(error["topic"], "t.ping");
        let expected = if n % 2 == 0 {
            "returned an error: refuses odd pings"
        } else {
            "panicked: panics on even pings"
        };
        assert_eq!(error["error"], expected);
    }
    let payloads = |module| -> Vec<String> {
        h.journal
            .handled(module)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    };
    assert_eq!(payloads("c"), ["1", "2", "3", "4"]);
    assert_eq!(payloads("b"), ["1", "2", "3", "4"]);
    assert_eq!(h.supervisor.running(), ["a", "b", "c"]);
}

#[test]
fn a_handler_that_never_returns_is_named_its_events_go_to_dead_letters_and_shutdown_is_bounded() {
    let mut h = Harness::new();
    let gate = Gate::new();
    h.script(
        "b",
        1,
        Script::new()
            .subscribes("t.ping")
            .on_event(Act::Hang(gate.clone())),
    );
    h.script("c", 1, Script::new().subscribes("t.ping"));
    h.start(&["a", "b", "c"]);
    h.publish("t.ping", "1");
    h.journal.wait_until("the watchdog's report", SOON, |j| {
        !j.bus("module.error").is_empty()
    });
    let error = &h.journal.bus("module.error")[0];
    assert_eq!(error["name"], "b");
    assert_eq!(error["phase"], "on_event");
    assert_eq!(error["topic"], "t.ping");
    // The others go on; the stuck module's events go to the dead letters
    // instead of piling up.
    h.publish("t.ping", "2");
    h.wait_handled("c", 2);
    let dead = h.journal.bus("module.dead_letter");
    assert!(
        dead.iter()
            .any(|d| d["name"] == "b" && d["reason"] == "stuck-handler"),
        "{}",
        h.journal.dump()
    );
    let began = Instant::now();
    let failures = h.supervisor.shutdown("test over");
    assert!(began.elapsed() < 10 * LIMIT, "{:?}", began.elapsed());
    let failure = only(&failures);
    assert_eq!(
        (failure.module.as_str(), failure.phase),
        ("b", Phase::Shutdown)
    );
    assert_eq!(failure.cause, Cause::Timeout(LIMIT));
    gate.open();
}

#[test]
fn an_isolated_child_that_dies_while_idle_is_settled_on_its_actor_thread() {
    // The crash itself (report, restart per policy, replay) is the isolated
    // generation's own business (`isolation/isolated_module/restart.rs`); the host's
    // part is to give it its thread at once, without waiting for an event.
    let mut h = Harness::new();
    h.script("a", 1, Script::new().isolated());
    h.start(&["a"]);
    h.opener.child_died("a");
    h.journal.wait_until("a settles", SOON, |j| {
        j.lines(|e| {
            matches!(
                e,
                Entry::Call {
                    call: Call::Settle,
                    ..
                }
            )
        }) == ["a#1 settle"]
    });
    assert!(h.journal.handled("a").is_empty());
}

#[test]
fn an_isolated_generations_late_failures_open_its_circuit() {
    let mut h = Harness::new();
    h.script(
        "a",
        1,
        Script::new()
            .isolated()
            .subscribes("t.ping")
            .on_event(Act::error("always fails")),
    );
    h.start(&["a"]);
    // The default breaker opens after 5 failures in a row; the outcomes
    // reach the actor with the next events.
    for seq in 1..=7 {
        h.publish("t.ping", &seq.to_string());
    }
    h.journal.wait_until("the circuit opens", SOON, |j| {
        !j.bus("module.circuit_open").is_empty()
    });
    let open = &h.journal.bus("module.circuit_open")[0];
    assert_eq!(open["name"], "a");
    assert_eq!(open["failures"], 5);
    assert_eq!(open["error"], "returned an error: always fails");
}
