//! `cargo orch run` end to end: the real binary, real cargo builds, real cdylibs
//! loaded with libloading, real signals.

use std::time::Duration;

use assert_cmd::Command;
use nix::sys::signal::Signal;
use orch_e2e::{OrchProcess, Scenario, processes_with_env, wait_until};
use predicates::prelude::*;
use predicates::str::contains;

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(10);

const PRODUCER_AND_CONSUMER: &str = "  - name: mod-dummy-producer\n    config:\n      publish_interval: 100ms\n  - name: mod-dummy-consumer\n";

fn start(scenario: &Scenario) -> OrchProcess {
    OrchProcess::spawn(scenario.command(&["run"])).expect("spawn cargo-orch")
}

fn stop_cleanly(orch: &mut OrchProcess, signal: Signal) {
    orch.signal(signal).expect("send signal");
    let status = orch.wait_exit(Duration::from_secs(20)).expect("exit");
    assert_eq!(status.code(), Some(0), "clean exit\n{}", orch.output());
    orch.wait_for("Shutdown complete", SHORT)
        .expect("shutdown logged");
}

fn position(orch: &OrchProcess, needle: &str) -> usize {
    let output = orch.output();
    output
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in output:\n{output}"))
}

#[test]
fn shipped_modules_load_in_order_talk_and_shut_down_in_reverse() {
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: mod-test-module\n{PRODUCER_AND_CONSUMER}"
    ));
    let mut orch = start(&scenario);
    orch.wait_for("app.started: 3 of 3 modules running", BUILD)
        .unwrap();
    orch.wait_for("Received test.ping: hello (seq 1)", SHORT)
        .unwrap();
    orch.wait_for("Received test.ping: hello (seq 3)", SHORT)
        .unwrap();

    // Every module is initialized (subscribed) before any starts (publishes).
    let last_initialized = position(&orch, "[TIMING] module 'mod-dummy-consumer' initialized");
    let first_started = position(&orch, "[TIMING] module 'mod-test-module' started");
    assert!(last_initialized < first_started, "{}", orch.output());
    assert!(
        position(&orch, "Subscribed to event: test.ping") < position(&orch, "Published test.ping")
    );
    assert!(orch.output().contains("[TIMING] startup of 3 modules took"));
    assert!(orch.output().contains("Hot-reload: disabled"));
    assert!(orch.output().contains("[RESOURCES]"));

    stop_cleanly(&mut orch, Signal::SIGINT);
    let consumer = position(&orch, "module 'mod-dummy-consumer' shut down");
    let producer = position(&orch, "module 'mod-dummy-producer' shut down");
    let test_module = position(&orch, "module 'mod-test-module' shut down");
    assert!(
        consumer < producer && producer < test_module,
        "reverse order\n{}",
        orch.output()
    );
    assert!(
        orch.output()
            .contains("[mod-test-module] Test module shutting down")
    );
    assert!(
        orch.output()
            .contains("module 'mod-dummy-consumer' unloaded")
    );

    let log = std::fs::read_to_string(scenario.log_file()).expect("log file written");
    assert!(
        log.contains("Received test.ping: hello"),
        "log file:\n{log}"
    );
}

#[test]
fn sigterm_also_shuts_down_cleanly() {
    let scenario = Scenario::new(&format!("modules:\n{PRODUCER_AND_CONSUMER}"));
    let mut orch = start(&scenario);
    orch.wait_for("Received test.ping: hello (seq 1)", BUILD)
        .unwrap();
    stop_cleanly(&mut orch, Signal::SIGTERM);
    assert!(orch.output().contains("Shutting down (SIGTERM received)"));
}

#[test]
fn a_module_that_panics_in_initialize_is_named_and_the_others_run() {
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-panic-init\n{PRODUCER_AND_CONSUMER}"
    ));
    let mut orch = start(&scenario);
    let error = orch
        .wait_for(
            "module 'fixture-panic-init' failed in phase initialize",
            BUILD,
        )
        .unwrap();
    assert!(
        error.text.contains("fixture exploded on purpose"),
        "{}",
        error.text
    );
    assert!(
        error.text.contains("src/lib.rs"),
        "panic location: {}",
        error.text
    );
    orch.wait_for("app.started: 2 of 3 modules running", SHORT)
        .unwrap();
    orch.wait_for("Received test.ping: hello (seq 2)", SHORT)
        .unwrap();
    stop_cleanly(&mut orch, Signal::SIGINT);
}

#[test]
fn a_module_that_hangs_in_initialize_times_out_by_name_and_the_others_run() {
    let scenario = Scenario::with_timeouts(
        &format!("modules:\n  - name: fixture-hang-init\n{PRODUCER_AND_CONSUMER}"),
        "1s",
    );
    let mut orch = start(&scenario);
    let error = orch
        .wait_for(
            "module 'fixture-hang-init' failed in phase initialize",
            BUILD,
        )
        .unwrap();
    assert!(error.text.contains("timeout"), "{}", error.text);
    assert!(
        orch.output()
            .contains("[fixture-hang-init] fixture-hang-init is about to hang")
    );
    orch.wait_for("hint: the module's initialize is stuck", SHORT)
        .unwrap();
    orch.wait_for("Received test.ping: hello (seq 2)", SHORT)
        .unwrap();
    stop_cleanly(&mut orch, Signal::SIGINT);
}

#[test]
fn a_library_without_the_entry_symbol_is_refused_with_the_reason() {
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-no-symbol\n{PRODUCER_AND_CONSUMER}"
    ));
    let mut orch = start(&scenario);
    let error = orch
        .wait_for(
            "module 'fixture-no-symbol' failed in phase abi-check",
            BUILD,
        )
        .unwrap();
    assert!(
        error.text.contains("has no symbol `orch_module_v1`"),
        "{}",
        error.text
    );
    orch.wait_for("export_module!", SHORT).unwrap();
    orch.wait_for("Received test.ping: hello (seq 1)", SHORT)
        .unwrap();
    stop_cleanly(&mut orch, Signal::SIGINT);
}

#[test]
fn a_malformed_modules_yaml_stops_before_anything_runs() {
    let scenario = Scenario::new("modules:\n  - name: mod-dummy-producer\n   enabled: true\n");
    Command::from_std(scenario.command(&["run"]))
        .assert()
        .code(2)
        .stderr(contains("modules.yaml:3:").and(contains("hint:")))
        .stdout(contains("loaded in").not());
}

#[test]
fn an_unknown_package_is_a_config_error_that_lists_the_modules() {
    let scenario = Scenario::new("modules:\n  - name: mod-does-not-exist\n");
    Command::from_std(scenario.command(&["run"]))
        .assert()
        .code(2)
        .stderr(contains("mod-does-not-exist").and(contains("mod-dummy-consumer")));
}

#[test]
fn a_handler_that_never_returns_is_named_and_shutdown_does_not_wait_forever() {
    let scenario = Scenario::with_timeouts(
        &format!("modules:\n  - name: fixture-stuck-handler\n{PRODUCER_AND_CONSUMER}"),
        "1s",
    );
    let mut orch = start(&scenario);
    let report = orch
        .wait_for(
            "[TIMEOUT] module 'fixture-stuck-handler' is stuck in on_event('test.ping')",
            BUILD,
        )
        .unwrap();
    assert!(report.text.contains("timeouts.event"), "{}", report.text);
    // The consumer goes on receiving after the stuck handler was reported.
    let next = orch.lines_with("Received test.ping").len() + 1;
    orch.wait_for(&format!("Received test.ping: hello (seq {next})"), SHORT)
        .unwrap();
    // Meanwhile the stuck module's events do not pile up in its mailbox.
    orch.wait_for(
        "module 'fixture-stuck-handler': its handler is stuck: new events go to module.dead_letter",
        SHORT,
    )
    .unwrap();
    orch.signal(Signal::SIGINT).expect("send signal");
    let status = orch.wait_exit(Duration::from_secs(20)).expect("exit");
    assert_eq!(
        status.code(),
        Some(3),
        "an unclean shutdown\n{}",
        orch.output()
    );
    assert!(
        orch.output()
            .contains("module 'fixture-stuck-handler' failed in phase shutdown"),
        "{}",
        orch.output()
    );
    orch.wait_for(
        "[SHUTDOWN] 1 module(s) did not shut down cleanly: fixture-stuck-handler (shutdown)",
        SHORT,
    )
    .unwrap();
}

/// Three stuck modules would take 3 x 2 s to shut down; `shutdown_total`
/// (1 s) ends the process first, naming the module it was stuck on, with
/// exit code 4. A signal during a start-up stuck in `initialize` cancels it
/// the same way.
#[test]
fn the_shutdown_deadline_ends_the_process_whatever_modules_do() {
    let stuck = "  - name: stuck-a\n    package: fixture-stuck-handler\n\
                 \x20 - name: stuck-b\n    package: fixture-stuck-handler\n\
                 \x20 - name: stuck-c\n    package: fixture-stuck-handler\n";
    let scenario = Scenario::with_main(
        &format!("modules:\n{stuck}{PRODUCER_AND_CONSUMER}"),
        "timeouts:\n  event: 500ms\n  shutdown: 2s\n  shutdown_total: 1s\n",
    );
    let mut orch = start(&scenario);
    orch.wait_for("[TIMEOUT] module 'stuck-c' is stuck", BUILD)
        .unwrap();
    orch.signal(Signal::SIGINT).expect("send signal");
    let status = orch.wait_exit(Duration::from_secs(20)).expect("exit");
    assert_eq!(status.code(), Some(4), "{}", orch.output());
    let deadline = orch
        .wait_for(
            "[SHUTDOWN] not done within timeouts.shutdown_total (1.00 s)",
            SHORT,
        )
        .unwrap();
    assert!(
        deadline.text.contains("module 'stuck-")
            && deadline.text.contains("(phase shutdown) is stuck"),
        "{}",
        deadline.text
    );

    // A start-up stuck in initialize: the signal cancels it.
    let scenario = Scenario::with_main(
        "modules:\n  - name: fixture-hang-init\n  - name: mod-dummy-consumer\n",
        "timeouts:\n  initialize: 60s\n  shutdown_total: 1s\n",
    );
    let mut orch = start(&scenario);
    orch.wait_for("fixture-hang-init is about to hang", BUILD)
        .unwrap();
    orch.signal(Signal::SIGTERM).expect("send signal");
    let status = orch.wait_exit(Duration::from_secs(20)).expect("exit");
    assert_eq!(status.code(), Some(4), "{}", orch.output());
    orch.wait_for(
        "module 'fixture-hang-init' (phase initialize) is stuck",
        SHORT,
    )
    .unwrap();
    assert!(
        !orch.output().contains("app.started"),
        "nothing started:\n{}",
        orch.output()
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let scenario = Scenario::new(&format!("modules:\n{PRODUCER_AND_CONSUMER}"));
    let mut command = scenario.command(&["run", "--log-format", "json"]);
    command.env_remove("NO_COLOR");
    let mut orch = OrchProcess::spawn(command).expect("spawn");
    orch.wait_for("Received test.ping: hello (seq 1)", BUILD)
        .unwrap();
    stop_cleanly(&mut orch, Signal::SIGINT);
    let log_lines: Vec<String> = orch
        .output()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(String::from)
        .collect();
    assert!(log_lines.len() > 5, "{}", orch.output());
    for line in &log_lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            value["level"].is_string() && value["fields"]["message"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn help_works_both_as_cargo_calls_it_and_for_every_verb() {
    let scenario = Scenario::new("modules: []\n");
    for args in [vec!["--help"], vec!["run", "--help"]] {
        Command::from_std(scenario.command(&args))
            .assert()
            .success()
            .stdout(contains("Usage: cargo orch").and(contains("\u{1b}[").not()));
    }
    let flags = [
        "--watch",
        "--no-watch",
        "--release",
        "--no-build",
        "--config-dir",
        "--log-format",
    ];
    let help = Command::from_std(scenario.command(&["run", "--help"]))
        .assert()
        .success();
    let text = String::from_utf8_lossy(&help.get_output().stdout).into_owned();
    for flag in flags {
        assert!(text.contains(flag), "{flag} documented: {text}");
    }
}

#[test]
fn sigint_during_the_build_ends_cargo_and_its_children() {
    let marker = format!(
        "orch-e2e-build-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let scenario = Scenario::new("modules:\n  - name: fixture-slow-build\n");
    let mut command = scenario.command(&["run"]);
    command
        .env("ORCH_E2E_MARKER", &marker)
        .env("ORCH_FIXTURE_SLOW_BUILD", format!("120:{marker}"));
    let mut orch = OrchProcess::spawn(command).expect("spawn");
    orch.wait_for("fixture-slow-build", BUILD).unwrap();
    let entry = format!("ORCH_E2E_MARKER={marker}");
    wait_until("cargo runs under the orchestrator", SHORT, || {
        processes_with_env(&entry).len() > 1
    });
    orch.signal(Signal::SIGINT).unwrap();
    let status = orch
        .wait_exit(Duration::from_secs(20))
        .expect("exits promptly");
    assert_eq!(status.code(), Some(0), "{}", orch.output());
    orch.wait_for("Build interrupted by SIGINT", SHORT).unwrap();
    wait_until("no build process survives", SHORT, || {
        processes_with_env(&entry).is_empty()
    });
}

#[test]
fn no_process_started_by_the_orchestrator_outlives_it() {
    let marker = format!(
        "orch-e2e-{}-{:?}",
        std::process::id(),
        std::time::Instant::now()
    );
    let scenario = Scenario::new(&format!("modules:\n{PRODUCER_AND_CONSUMER}"));
    let mut command = scenario.command(&["run"]);
    command.env("ORCH_E2E_MARKER", &marker);
    let mut orch = OrchProcess::spawn(command).expect("spawn");
    orch.wait_for("Received test.ping: hello (seq 1)", BUILD)
        .unwrap();
    stop_cleanly(&mut orch, Signal::SIGINT);
    let survivors = processes_with_env(&format!("ORCH_E2E_MARKER={marker}"));
    assert!(survivors.is_empty(), "still running: {survivors:?}");
}

#[test]
fn a_module_that_does_not_compile_stops_the_run_with_the_compiler_error() {
    let scenario = Scenario::new(&format!(
        "modules:\n  - name: fixture-compile-error\n{PRODUCER_AND_CONSUMER}"
    ));
    let mut command = scenario.command(&["run"]);
    command.env("ORCH_FIXTURE_BREAK_BUILD", "1");
    Command::from_std(command)
        .assert()
        .code(1)
        .stdout(
            contains("module package 'fixture-compile-error' did not compile")
                .and(contains("asked to fail its build"))
                .and(contains("loaded in").not()),
        )
        // cargo's own rendering of the compiler error
        .stderr(contains("error[E0080]"));
}

#[test]
fn runs_in_a_copy_of_the_workspace_as_in_a_fresh_clone() {
    let scratch = orch_e2e::ScratchWorkspace::copy_of_repo().expect("copy");
    scratch
        .replace(
            "modules-backend/mod-dummy-producer/src/lib.rs",
            "message: \"hello\".to_owned()",
            "message: \"hello from a copy\".to_owned()",
        )
        .expect("edit the copy");
    scratch
        .replace("config/modules.yaml", "      message: hello\n", "")
        .expect("edit the copy");
    let mut orch = OrchProcess::spawn(scratch.orch(&["run"])).expect("spawn");
    orch.wait_for("Received test.ping: hello from a copy (seq 1)", BUILD)
        .unwrap();
    stop_cleanly(&mut orch, Signal::SIGINT);
    let original = std::fs::read_to_string(
        orch_e2e::workspace_root().join("modules-backend/mod-dummy-producer/src/lib.rs"),
    )
    .unwrap();
    assert!(
        !original.contains("hello from a copy"),
        "the repository is untouched"
    );
}

/// Only the host publishes in `app.*`, `module.*` and `bridge.*`: a module that
/// tries, from a callback or from a thread of its own, in process or
/// isolated, gets an error naming the reserved namespace, and no forged event
/// reaches anyone.
#[test]
fn a_module_cannot_publish_the_hosts_events() {
    for isolation in ["", "    isolation: process\n"] {
        let scenario = Scenario::new(&format!(
            "modules:\n  - name: fixture-event-log\n  - name: fixture-forger\n{isolation}"
        ));
        let mut orch = start(&scenario);
        orch.wait_for("forge forger.done: ok", BUILD).unwrap();
        for topic in ["app.shutdown", "module.crashed", "module.failed (thread)"] {
            let line = orch.wait_for(&format!("forge {topic}: "), SHORT).unwrap();
            assert!(
                line.text.contains("may not publish") && line.text.contains("reserved namespace"),
                "{isolation:?}: {}",
                line.text
            );
        }
        orch.collect_for(Duration::from_millis(300));
        for forged in [
            "EVENT app.shutdown",
            "EVENT module.crashed",
            "EVENT module.failed",
        ] {
            assert!(
                orch.lines_with(forged).is_empty(),
                "{isolation:?}: a forged {forged} got through:\n{}",
                orch.output()
            );
        }
        stop_cleanly(&mut orch, Signal::SIGINT);
    }
}

/// Every event carries the envelope the host set: a unique id in publish
/// order, the source module (or `host`) and the publish time, the same for
/// an in-process and an isolated receiver.
#[test]
fn events_carry_their_id_source_and_time() {
    for isolation in ["", "    isolation: process\n"] {
        let scenario = Scenario::new(&format!(
            "modules:\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 50ms\n  - name: fixture-envelope\n{isolation}"
        ));
        let mut orch = start(&scenario);
        let started = orch.wait_for("ENVELOPE app.started ", BUILD).unwrap();
        assert!(started.text.contains(" source=host "), "{}", started.text);
        let mut ids = Vec::new();
        for _ in 0..5 {
            let seen = ids.len();
            let line = orch
                .wait_for_match(
                    |text| {
                        text.contains("ENVELOPE test.ping ")
                            && !ids
                                .iter()
                                .any(|id: &u64| text.contains(&format!(" id={id} ")))
                    },
                    "a new test.ping envelope",
                    SHORT,
                )
                .unwrap();
            assert!(
                line.text.contains(" source=mod-dummy-producer "),
                "{isolation:?}: {}",
                line.text
            );
            let field = |name: &str| -> u64 {
                line.text
                    .split(&format!("{name}="))
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|value| value.parse().ok())
                    .unwrap_or_else(|| panic!("no {name} in {}", line.text))
            };
            assert_eq!(
                field("delivered"),
                1,
                "{isolation:?}: a new event: {}",
                line.text
            );
            let age = field("age_ms");
            assert!(
                age < 60_000,
                "published {age} ms before it arrived: {}",
                line.text
            );
            ids.push(field("id"));
            assert_eq!(ids.len(), seen + 1);
        }
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "{isolation:?}: ids grow in publish order: {ids:?}"
        );
        stop_cleanly(&mut orch, Signal::SIGINT);
    }
}

/// `publishes:` and `subscribes:` in modules.yaml are a contract the host
/// enforces, in process and isolated: what it does not list is refused with
/// an error that names the module, the topic and the list.
#[test]
fn a_module_contract_is_enforced_and_violations_are_named() {
    for isolation in ["", "    isolation: process\n"] {
        let scenario = Scenario::new(&format!(
            "modules:\n  - name: fixture-event-log\n  - name: fixture-contract\n    publishes: [contract.allowed]\n    subscribes: [\"test.*\"]\n{isolation}"
        ));
        let mut orch = start(&scenario);
        orch.wait_for("contract publish contract.denied: ", BUILD)
            .unwrap();
        let answer = |orch: &mut OrchProcess, what: &str| {
            orch.wait_for(&format!("contract {what}: "), SHORT)
                .unwrap()
                .text
        };
        assert!(answer(&mut orch, "subscribe test.ping").ends_with(": ok"));
        assert!(answer(&mut orch, "publish contract.allowed").ends_with(": ok"));
        let refused = answer(&mut orch, "subscribe secret.>");
        assert!(
            refused.contains("may not subscribe to 'secret.>'")
                && refused.contains("`subscribes` in modules.yaml (test.*)"),
            "{isolation:?}: {refused}"
        );
        let refused = answer(&mut orch, "publish contract.denied");
        assert!(
            refused.contains("module 'fixture-contract' may not publish 'contract.denied'")
                && refused.contains("(contract.allowed)"),
            "{isolation:?}: {refused}"
        );
        stop_cleanly(&mut orch, Signal::SIGINT);
        let list = scenario
            .command(&["list"])
            .output()
            .expect("cargo orch list");
        let table = String::from_utf8_lossy(&list.stdout);
        let row = table
            .lines()
            .find(|line| line.starts_with("fixture-contract "))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(
            row.contains("publishes contract.allowed; subscribes test.*"),
            "cargo orch list shows the contract: {row}"
        );
    }
}

/// A contract entry that is not a topic pattern, or that claims the host's
/// namespace, is a configuration error with its file and line.
#[test]
fn a_bad_contract_is_a_config_error_with_its_line() {
    let scenario = Scenario::new(
        "modules:\n  - name: fixture-contract\n    publishes: [\"app.started\"]\n    subscribes: [\"a..b\"]\n",
    );
    let output = scenario.command(&["run"]).output().expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("modules.yaml:3"), "{stderr}");
    assert!(
        stderr.contains("`publishes` entry 'app.started' is in the host's namespace"),
        "{stderr}"
    );
    assert!(stderr.contains("modules.yaml:4"), "{stderr}");
    assert!(
        stderr.contains("`subscribes` entry 'a..b' is not a topic pattern"),
        "{stderr}"
    );
}

/// Request/reply through the host, with nobody waiting: a reply reaches the
/// requester's mailbox with the request's id, a second answer is refused, an
/// unanswered request times out once, and a request nobody subscribes to is
/// told so at once. The same with the responder, then the requester, in a
/// child process.
#[test]
fn requests_are_answered_timed_out_or_told_nobody_listens() {
    const ISOLATED: &str = "    isolation: process\n";
    for (responder, asker) in [("", ""), (ISOLATED, ""), ("", ISOLATED)] {
        let scenario = Scenario::new(&format!(
            "modules:\n  - name: fixture-responder\n{responder}\
             \x20 - name: asker-stats\n    package: fixture-requester\n{asker}\
             \x20   config: {{label: stats, ask: responder.stats, every: 50ms}}\n\
             \x20 - name: asker-silent\n    package: fixture-requester\n\
             \x20   config: {{label: silent, ask: responder.silent, every: 200ms, timeout: 100ms}}\n\
             \x20 - name: asker-nobody\n    package: fixture-requester\n\
             \x20   config: {{label: nobody, ask: nobody.listens, every: 200ms}}\n"
        ));
        let case = format!("responder {responder:?}, asker {asker:?}");
        let mut orch = start(&scenario);
        orch.wait_for("app.started: 4 of 4 modules running", BUILD)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        for _ in 0..3 {
            let seen = orch.lines_with("ANSWER stats kind=Reply").len();
            wait_until(&format!("{case}: another reply"), SHORT, || {
                orch.collect_for(Duration::from_millis(20));
                orch.lines_with("ANSWER stats kind=Reply").len() > seen
            });
        }
        for reply in orch.lines_with("ANSWER stats kind=Reply") {
            assert!(
                reply.contains(" from=fixture-responder ")
                    && reply.contains(r#""to":"asker-stats""#),
                "{case}: {reply}"
            );
        }
        let timeout = orch
            .wait_for("ANSWER silent kind=Timeout", SHORT)
            .unwrap_or_else(|e| panic!("{case}: {e}\n{}", orch.output()));
        assert!(
            timeout.text.contains(r#"data={"timeout_ms":100}"#)
                && timeout.text.contains(" from=host "),
            "{case}: {}",
            timeout.text
        );
        orch.wait_for("ANSWER nobody kind=NoResponders", SHORT)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let refused = orch
            .wait_for("SECOND ANSWER REFUSED: ", SHORT)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(
            refused
                .text
                .contains("of 'asker-stats' was already answered or has timed out"),
            "{case}: {}",
            refused.text
        );
        orch.collect_for(Duration::from_millis(300));
        assert!(
            orch.lines_with("STRAY ").is_empty(),
            "{case}: an answer to a request never made, or a second one:\n{}",
            orch.output()
        );
        let asked = orch.lines_with("ASKED stats ").len();
        let answered = orch.lines_with("ANSWER stats ").len();
        assert!(
            answered + 2 >= asked && answered <= asked,
            "{case}: {asked} asked, {answered} answered"
        );
        stop_cleanly(&mut orch, Signal::SIGINT);
    }
}

/// A handler that fails on every event is put behind its circuit breaker:
/// after 3 failures in a row its events go to `module.dead_letter` for
/// 500 ms, then one is tried; once the handler works again (from ping 10
/// on) a trial closes the circuit and its events flow again.
#[test]
fn a_failing_handler_opens_its_circuit_and_a_good_trial_closes_it() {
    for isolation in ["", "    isolation: process\n"] {
        let scenario = Scenario::new(&format!(
            "modules:\n  - name: fixture-event-log\n  - name: fixture-faulty-consumer\n{isolation}\
             \x20   config: {{heal_after: 10}}\n\
             \x20   circuit_breaker: {{fail_max: 3, reset_timeout: 500ms}}\n\
             \x20 - name: mod-dummy-producer\n    config:\n      publish_interval: 100ms\n",
        ));
        let mut orch = start(&scenario);
        let opened = orch.wait_for("EVENT module.circuit_open ", BUILD).unwrap();
        assert!(
            opened.text.contains(r#""failures":3"#)
                && opened.text.contains(r#""name":"fixture-faulty-consumer""#)
                && opened.text.contains(r#""reset_ms":500"#),
            "{}",
            opened.text
        );
        let failures_when_opened = orch.lines_with("failed handling 'test.ping'").len();
        assert_eq!(failures_when_opened, 3, "{isolation:?}: {}", orch.output());
        let dead = orch.wait_for(r#""reason":"circuit-open""#, SHORT).unwrap();
        assert!(
            dead.text.contains("EVENT module.dead_letter ")
                && dead.text.contains(r#""topic":"test.ping""#),
            "{}",
            dead.text
        );
        orch.wait_for("EVENT module.circuit_closed ", SHORT)
            .unwrap();
        // Closed: every ping reaches the handler again, one after the other.
        let healed = |orch: &OrchProcess| -> Vec<u64> {
            orch.lines_with("HEALED ping ")
                .iter()
                .filter_map(|l| l.rsplit("HEALED ping ").next()?.trim().parse().ok())
                .collect()
        };
        let closed_at = healed(&orch).len();
        wait_until(
            &format!("{isolation:?}: pings after the close"),
            SHORT,
            || {
                orch.collect_for(Duration::from_millis(50));
                healed(&orch).len() >= closed_at + 3
            },
        );
        let after = healed(&orch);
        let tail = &after[closed_at..];
        assert!(
            tail.windows(2).all(|w| w[1] == w[0] + 1),
            "{isolation:?}: pings missed after the close: {after:?}"
        );
        stop_cleanly(&mut orch, Signal::SIGINT);
    }
}
