//! `cargo orch emit` and `tap` end to end: one event into a running orchestrator of
//! the shipped modules reaches the consumer; a reserved topic, a payload
//! that is not JSON and a source that names a module are refused.

use std::time::Duration;

use orch_e2e::{OrchProcess, Scenario};

const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(20);

const MODULES: &str = "modules:\n  - name: mod-dummy-consumer\n";

#[test]
fn an_emitted_event_reaches_its_subscriber_and_forgeries_are_refused() {
    let scenario = Scenario::new(MODULES);
    let mut run = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    run.wait_for("app.started", BUILD).unwrap();
    let pid = run.pid().to_string();
    let emit = |args: &[&str]| {
        let mut all = vec!["emit"];
        all.extend_from_slice(args);
        all.extend(["--pid", pid.as_str()]);
        scenario.command(&all).output().expect("cargo orch emit")
    };
    let output = emit(&["test.ping", r#"{"message":"from emit","seq":4242}"#]);
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{output:?}");
    assert!(said.contains("to 1 subscriber(s)"), "{said}");
    run.wait_for("Received test.ping: from emit (seq 4242)", SHORT)
        .unwrap();
    for (args, names) in [
        (
            vec!["module.failed", r#"{"name":"mod-dummy-consumer"}"#],
            "reserved namespace",
        ),
        (vec!["test.ping", "{not json"], "not JSON"),
        (
            vec![
                "test.ping",
                r#"{"message":"x","seq":1}"#,
                "--source",
                "mod-dummy-consumer",
            ],
            "declared module",
        ),
    ] {
        let output = emit(&args);
        let text = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(names) && text.contains("hint:"), "{text}");
    }
    run.collect_for(Duration::from_millis(300));
    assert_eq!(
        run.lines_with("Received test.ping").len(),
        1,
        "only the one good event was published:\n{}",
        run.output()
    );
    run.stop_cleanly();
}

/// `cargo orch tap` follows the pings with their source, as JSON too, counts
/// them per second with `--rate`, and refuses a bad pattern.
#[test]
fn tap_follows_the_pings_as_lines_json_and_rates() {
    let scenario = Scenario::new(
        "modules:\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 50ms\n  \
         - name: mod-dummy-consumer\n",
    );
    let mut run = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    run.wait_for("Received test.ping", BUILD).unwrap();
    let pid = run.pid().to_string();
    let tap = |args: &[&str]| {
        let mut all = vec!["tap"];
        all.extend_from_slice(args);
        all.extend(["--pid", pid.as_str()]);
        scenario.command(&all).output().expect("cargo orch tap")
    };
    let lines = tap(&["test.>", "--count", "3"]);
    let text = String::from_utf8_lossy(&lines.stdout).into_owned();
    assert!(lines.status.success(), "{lines:?}");
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines()
            .all(|l| l.contains(" test.ping [mod-dummy-producer] #") && l.contains("\"seq\"")),
        "{text}"
    );
    let json = tap(&["test.ping", "--json", "--count", "2"]);
    assert!(json.status.success(), "{json:?}");
    for line in String::from_utf8_lossy(&json.stdout).lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(event["topic"], "test.ping");
        assert_eq!(event["source"], "mod-dummy-producer");
        assert_eq!(event["dropped"], 0);
    }
    let mut rate = OrchProcess::spawn(scenario.command(&["tap", ">", "--rate", "--pid", &pid]))
        .expect("spawn tap --rate");
    rate.wait_for_match(
        |t| t.contains("test.ping: ") && t.contains("/s"),
        "a rate line",
        SHORT,
    )
    .unwrap();
    rate.signal(nix::sys::signal::Signal::SIGINT)
        .expect("SIGINT");
    let bad = tap(&["test.>.x"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("hint:"));
    // The consumer went on receiving all along: the taps slowed nothing.
    let before = run.lines_with("Received test.ping").len();
    run.collect_for(Duration::from_millis(500));
    assert!(run.lines_with("Received test.ping").len() > before);
    run.stop_cleanly();
}
