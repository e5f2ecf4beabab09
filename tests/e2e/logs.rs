//! `cargo orch logs` end to end: a real run of the shipped modules writes
//! its log file; `logs MODULE` prints only that module's lines, `--level`
//! filters, and `--follow` prints lines as the running orchestrator writes
//! them.

use std::time::Duration;

use orch_e2e::{OrchProcess, Scenario};

const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(20);

const MODULES: &str = "modules:\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 100ms\n  \
     - name: mod-dummy-consumer\n";

fn logs(scenario: &Scenario, args: &[&str]) -> String {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    let output = scenario.command(&all).output().expect("cargo orch logs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn logs_prints_one_module_filters_by_level_and_follows() {
    let scenario = Scenario::new(MODULES);
    let mut run = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    run.wait_for("Received test.ping", BUILD).unwrap();
    let mut follow =
        OrchProcess::spawn(scenario.command(&["logs", "mod-dummy-consumer", "--follow"]))
            .expect("spawn logs --follow");
    // Lines written after `logs --follow` started reach it.
    let line = follow
        .wait_for_match(
            |t| t.contains("[mod-dummy-consumer] Received test.ping"),
            "a followed consumer line",
            SHORT,
        )
        .unwrap();
    assert!(line.text.contains("(seq "), "{}", line.text);
    run.collect_for(Duration::from_millis(500));

    let consumer = logs(&scenario, &["mod-dummy-consumer"]);
    assert!(
        consumer.contains("[mod-dummy-consumer] Received test.ping"),
        "{consumer}"
    );
    assert!(
        !consumer.contains("[mod-dummy-producer]") && !consumer.contains("supervisor"),
        "only the consumer's own lines:\n{consumer}"
    );
    let everything = logs(&scenario, &[]);
    assert!(
        everything.contains("[mod-dummy-producer] Published test.ping")
            && everything.contains("app.started"),
        "{everything}"
    );
    let warnings = logs(&scenario, &["--level", "warn", "--since", "1h"]);
    assert!(
        !warnings.contains(" INFO "),
        "no info line passes --level warn:\n{warnings}"
    );
    follow
        .signal(nix::sys::signal::Signal::SIGINT)
        .expect("SIGINT");
    run.stop_cleanly();
}
