//! Secrets never leave the process unscrubbed, end to end: a real module
//! that prints its secret config values every way it can (stdout, stderr
//! with Debug escaping, a JSON log line, a helper process, a panic on its own
//! thread, a URL with a password), its `module.loaded` event, the log file,
//! `cargo orch check`'s report, and a secret added by a live edit of
//! modules.yaml.

use std::time::Duration;

use nix::sys::signal::Signal;
use orch_e2e::{OrchProcess, Scenario};

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(20);

/// A secret with a quote and a backslash, so its JSON and Debug forms differ
/// from it.
const PASSWORD: &str = r#"pa"ss\wd-Secret-1"#;
const URL_PASSWORD: &str = "url-Pass-9";
const SECOND: &str = "second-Secret-2";

fn modules_yaml(password: &str, extra: &str) -> String {
    format!(
        "modules:\n  - name: fixture-event-log\n  - name: fixture-leak\n    config:\n      \
         password: '{password}'\n      url: postgres://app:{URL_PASSWORD}@db/x\n{extra}"
    )
}

fn assert_no_secret(text: &str, what: &str) {
    for secret in [PASSWORD, URL_PASSWORD, SECOND, r#"pa\"ss\\wd-Secret-1"#] {
        assert!(!text.contains(secret), "{what} leaks {secret}:\n{text}");
    }
}

#[test]
fn every_way_a_module_prints_a_secret_is_scrubbed_and_live_edits_add_theirs() {
    let scenario = Scenario::new(&modules_yaml(PASSWORD, ""));
    let mut command = scenario.command(&["run", "--watch"]);
    command.env("RUST_BACKTRACE", "0");
    let mut orch = OrchProcess::spawn(command).expect("spawn cargo-orch");
    orch.wait_for("LEAK done 1", BUILD).unwrap();
    orch.wait_for("app.started", SHORT).unwrap();
    for expected in [
        "LEAK stdout ***",
        r#"LEAK stderr "***""#,
        r#"LEAK json {"password":"***"}"#,
        "LEAK url postgres://app:***@db/x",
        "LEAK helper ***",
        "LEAK panic ***",
    ] {
        orch.wait_for(expected, SHORT).unwrap();
    }
    // The event log may print the module.loaded events after app.started:
    // wait for the leaky module's, with its config scrubbed.
    orch.wait_for_match(
        |l| {
            l.contains("EVENT module.loaded")
                && l.contains("fixture-leak")
                && l.contains("postgres://app:***@db/x")
        },
        "fixture-leak's module.loaded event, its URL scrubbed",
        SHORT,
    )
    .unwrap();
    // A live edit brings a new secret: scrubbed from the first line on.
    orch.wait_for("[WATCH] watching", SHORT).unwrap();
    std::fs::write(
        scenario.config_dir().join("modules.yaml"),
        modules_yaml(SECOND, ""),
    )
    .expect("edit modules.yaml");
    orch.wait_for("re-initialized with its new config (generation 2)", SHORT)
        .unwrap();
    orch.collect_for(Duration::from_millis(300));
    assert_eq!(orch.lines_with("LEAK done 1").len(), 2, "{}", orch.output());
    orch.signal(Signal::SIGINT).expect("SIGINT");
    let status = orch.wait_exit(Duration::from_secs(30)).expect("exit");
    assert_eq!(status.code(), Some(0), "{}", orch.output());
    assert_eq!(
        orch.lines_with("LEAK stdout ***").len(),
        2,
        "{}",
        orch.output()
    );
    assert_no_secret(&orch.output(), "the console");
    let log = std::fs::read_to_string(scenario.log_file()).expect("log file");
    assert!(log.contains("LEAK json"), "{log}");
    assert_no_secret(&log, "the log file");
}

#[test]
fn check_reports_a_failing_initialize_without_its_secrets() {
    let scenario = Scenario::new(&modules_yaml(PASSWORD, "      fail: true\n"));
    let output = scenario
        .command(&["check"])
        .output()
        .expect("run cargo orch check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cannot connect to postgres://app:***@db/x with password ***"),
        "{text}"
    );
    assert_no_secret(&text, "cargo orch check");
}
