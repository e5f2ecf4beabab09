//! `cargo orch test` end to end: the real binary, real `cargo test --no-run`
//! builds of fixture modules, real test binaries and real load checks.
//!
//! The fixtures fail only when asked: `fixture-t-failing`'s test fails when
//! `ORCH_FIXTURE_FAIL_TEST` is set, `fixture-compile-error` does not compile
//! when `ORCH_FIXTURE_BREAK_BUILD` is set, so `cargo test --workspace` stays green.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use orch_e2e::{Scenario, orch_bin, processes_with_env, wait_until, workspace_root};
use serde_json::Value;

/// One `cargo orch test` at a time in this file: runs that build the same
/// fixture with other features (or another `ORCH_FIXTURE_BREAK_BUILD`) rewrite
/// its library in the shared target folder, which another run may be loading.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What one `cargo orch test` printed and how it exited.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn show(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The table row of `module`, split into its columns.
    fn row(&self, module: &str) -> Vec<String> {
        let line = self
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(module))
            .unwrap_or_else(|| panic!("no row for {module}\n{}", self.show()));
        line.split_whitespace().map(String::from).collect()
    }

    /// `[passed, failed, ignored]` of `module`'s row.
    fn counts(&self, module: &str) -> [u32; 3] {
        let row = self.row(module);
        let number = |i: usize| row[i].parse::<u32>().expect("a count");
        [number(1), number(2), number(3)]
    }

    /// The lines that are exactly a total line (`N passed, N failed[, N skipped]`).
    fn summary_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|line| is_summary_line(line))
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON alone: {e}\n{}", self.show()))
    }
}

/// `N passed, N failed` with an optional `, N skipped`, and nothing else.
fn is_summary_line(line: &str) -> bool {
    let parts: Vec<&str> = line.split(", ").collect();
    let expected = ["passed", "failed", "skipped"];
    (parts.len() == 2 || parts.len() == 3)
        && parts.iter().zip(expected).all(|(part, word)| {
            part.split_once(' ')
                .is_some_and(|(n, w)| w == word && n.parse::<u32>().is_ok())
        })
}

/// `cargo-orch orch --config-dir <scenario> test <args> [-- <test_args>]` in the
/// workspace root, with plain output and no fixture switch set unless `env` sets it.
fn orch_test(
    scenario: &Scenario,
    args: &[&str],
    test_args: &[&str],
    env: &[(&str, &str)],
) -> Outcome {
    let mut command = Command::new(orch_bin());
    command
        .current_dir(workspace_root())
        .arg("orch")
        .arg("--config-dir")
        .arg(scenario.config_dir())
        .arg("test")
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("ORCH_FIXTURE_FAIL_TEST")
        .env_remove("ORCH_FIXTURE_BREAK_BUILD");
    if !test_args.is_empty() {
        command.arg("--").args(test_args);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let output = {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        command.output().expect("cargo-orch runs")
    };
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The entries of `module` in a `--json` report, as `(name, status)`.
fn entries(report: &Value, module: &str) -> Vec<(String, String)> {
    let module = report["modules"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["module"] == module))
        .unwrap_or_else(|| panic!("no module {module} in {report:#}"));
    module["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default().to_owned(),
                t["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn entry<'a>(report: &'a Value, module: &str, name: &str) -> &'a Value {
    report["modules"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["module"] == module))
        .and_then(|m| m["tests"].as_array())
        .and_then(|t| t.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no entry {module} / {name} in {report:#}"))
}

fn read_junit(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn suite<'a, 'i>(doc: &'a roxmltree::Document<'i>, module: &str) -> roxmltree::Node<'a, 'i> {
    doc.root_element()
        .children()
        .find(|n| n.has_tag_name("testsuite") && n.attribute("name") == Some(module))
        .unwrap_or_else(|| panic!("no testsuite {module}"))
}

fn case<'a, 'i>(suite: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
    suite
        .children()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no testcase {name}"))
}

#[test]
fn every_enabled_module_passes_with_a_row_each_and_a_junit_file() {
    let scenario = Scenario::new(
        "modules:\n  - name: mod-test-module\n  - name: mod-dummy-consumer\n  \
         - name: fixture-t-failing\n  - name: mod-dummy-producer\n    enabled: false\n",
    );
    let junit = scenario.config_dir().join("reports/ci/junit.xml");
    let junit_arg = junit.display().to_string();
    let out = orch_test(&scenario, &["--junit", &junit_arg], &[], &[]);
    assert_eq!(out.code, Some(0), "{}", out.show());

    assert_eq!(
        out.row("module")[1..],
        ["passed", "failed", "ignored", "time"]
    );
    // 2 unit tests, 1 integration test and the load check pass; 1 is ignored.
    assert_eq!(out.counts("fixture-t-failing"), [4, 0, 1]);
    for module in ["mod-test-module", "mod-dummy-consumer"] {
        let [passed, failed, _] = out.counts(module);
        assert!(passed >= 2 && failed == 0, "{}", out.show());
    }
    assert!(
        !out.stdout.contains("mod-dummy-producer"),
        "a disabled module is not tested by default\n{}",
        out.show()
    );
    let summaries = out.summary_lines();
    assert_eq!(summaries.len(), 1, "{}", out.show());
    assert!(
        summaries[0].ends_with(" passed, 0 failed, 1 skipped"),
        "{}",
        out.show()
    );
    assert!(!out.stdout.contains("failures:"));

    let text = read_junit(&junit);
    let doc = roxmltree::Document::parse(&text).expect("well-formed JUnit XML");
    let root = doc.root_element();
    assert!(root.has_tag_name("testsuites"));
    assert_eq!(root.attribute("failures"), Some("0"));
    let suites: Vec<&str> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert_eq!(
        suites,
        ["mod-test-module", "mod-dummy-consumer", "fixture-t-failing"]
    );
    for name in &suites {
        let suite = suite(&doc, name);
        let cases = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .count();
        assert_eq!(suite.attribute("tests"), Some(cases.to_string().as_str()));
        assert_eq!(
            case(suite, "load check").attribute("classname"),
            Some(*name)
        );
    }
    let fixture = suite(&doc, "fixture-t-failing");
    assert_eq!(fixture.attribute("skipped"), Some("1"));
    let skipped = case(fixture, "tests::ignored_unless_asked")
        .children()
        .find(|n| n.has_tag_name("skipped"))
        .expect("a <skipped/> element");
    assert_eq!(
        skipped.attribute("message"),
        Some("runs only with --include-ignored")
    );
    case(fixture, "api::doubles_through_the_public_api");
    assert!(case(fixture, "tests::passes").attribute("time").is_some());
}

#[test]
fn a_failing_test_fails_the_run_and_is_named_in_the_report_and_the_junit_file() {
    let scenario =
        Scenario::new("modules:\n  - name: fixture-t-failing\n  - name: mod-dummy-consumer\n");
    let junit = scenario.config_dir().join("junit.xml");
    let junit_arg = junit.display().to_string();
    let out = orch_test(
        &scenario,
        &["--junit", &junit_arg],
        &[],
        &[("ORCH_FIXTURE_FAIL_TEST", "1")],
    );
    assert_eq!(out.code, Some(1), "{}", out.show());
    assert_eq!(out.counts("fixture-t-failing"), [3, 1, 1]);
    assert_eq!(out.counts("mod-dummy-consumer")[1], 0);

    let section = out
        .stdout
        .split("---- fixture-t-failing: tests::fails_when_asked ----\n")
        .nth(1)
        .unwrap_or_else(|| panic!("the failure is named\n{}", out.show()));
    assert!(
        section.starts_with("captured <output> & \"quotes\" of the failing test"),
        "{}",
        out.show()
    );
    assert!(
        section.contains("fixture-t-failing was asked to fail"),
        "{}",
        out.show()
    );
    // The total line comes right after the table and closes the report.
    let summaries = out.summary_lines();
    assert_eq!(summaries.len(), 2, "{}", out.show());
    assert!(
        summaries[0].contains(" passed, 1 failed, 1 skipped"),
        "{}",
        out.show()
    );
    assert_eq!(out.stdout.lines().last(), Some(summaries[0]));

    let text = read_junit(&junit);
    let doc = roxmltree::Document::parse(&text).expect("well-formed JUnit XML");
    assert_eq!(doc.root_element().attribute("failures"), Some("1"));
    let fixture = suite(&doc, "fixture-t-failing");
    assert_eq!(fixture.attribute("failures"), Some("1"));
    let failure = case(fixture, "tests::fails_when_asked")
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("a <failure> element");
    assert_eq!(
        failure.attribute("message"),
        Some("fixture-t-failing was asked to fail (ORCH_FIXTURE_FAIL_TEST is set)")
    );
    let output = failure.text().unwrap_or_default();
    assert!(
        output.contains("captured <output> & \"quotes\" of the failing test"),
        "{output}"
    );
    assert_eq!(
        suite(&doc, "mod-dummy-consumer").attribute("failures"),
        Some("0")
    );
}

#[test]
fn a_module_whose_tests_do_not_compile_is_a_failed_row_and_the_others_still_run() {
    let scenario =
        Scenario::new("modules:\n  - name: fixture-compile-error\n  - name: mod-dummy-consumer\n");
    let out = orch_test(
        &scenario,
        &["--json"],
        &[],
        &[("ORCH_FIXTURE_BREAK_BUILD", "1")],
    );
    assert_eq!(out.code, Some(1), "{}", out.show());
    let report = out.json();
    assert_eq!(
        entries(&report, "fixture-compile-error"),
        [("build".to_owned(), "failed".to_owned())]
    );
    let build = entry(&report, "fixture-compile-error", "build");
    let error = build["output"].as_str().unwrap_or_default();
    assert!(
        error.contains("asked to fail its build"),
        "the compiler's first error: {error}"
    );
    assert!(error.starts_with("error"), "{error}");

    let consumer = entries(&report, "mod-dummy-consumer");
    assert!(consumer.len() >= 2, "{consumer:?}");
    assert!(
        consumer.iter().all(|(_, status)| status == "passed"),
        "{consumer:?}"
    );
    assert!(consumer.contains(&("load check".to_owned(), "passed".to_owned())));
    assert_eq!(report["failed"], 1);
    assert_eq!(report["success"], false);
    assert!(is_summary_line(
        report["summary"].as_str().unwrap_or_default()
    ));
    // The human report goes to stderr when stdout carries the JSON.
    assert!(
        out.stderr.contains("fixture-compile-error"),
        "{}",
        out.show()
    );
}

#[test]
fn a_module_that_cannot_load_fails_the_report_though_its_tests_pass() {
    let scenario =
        Scenario::new("modules:\n  - name: fixture-t-no-load\n  - name: mod-test-module\n");
    let out = orch_test(&scenario, &[], &[], &[]);
    assert_eq!(out.code, Some(1), "{}", out.show());
    assert_eq!(out.counts("fixture-t-no-load"), [1, 1, 0]);
    assert_eq!(out.counts("mod-test-module")[1], 0);
    let section = out
        .stdout
        .split("---- fixture-t-no-load: load check ----\n")
        .nth(1)
        .unwrap_or_else(|| panic!("the load check failure is shown\n{}", out.show()));
    assert!(
        section.contains("failed in phase abi-check"),
        "{}",
        out.show()
    );
    assert!(
        section.contains("has no symbol `orch_module_v1`"),
        "{}",
        out.show()
    );
    assert_eq!(out.summary_lines().len(), 2, "{}", out.show());
}

#[test]
fn modules_are_chosen_by_name_and_unknown_names_are_usage_errors() {
    let scenario = Scenario::new(
        "modules:\n  - name: mod-test-module\n  - name: mod-dummy-consumer\n  \
         - name: mod-dummy-producer\n    enabled: false\n",
    );
    let out = orch_test(&scenario, &["mod-dummy-producer"], &[], &[]);
    assert_eq!(out.code, Some(0), "{}", out.show());
    assert!(
        out.counts("mod-dummy-producer")[0] >= 2,
        "a named module runs even if disabled"
    );
    assert!(!out.stdout.contains("mod-test-module") && !out.stdout.contains("mod-dummy-consumer"));

    let out = orch_test(&scenario, &["--all", "--json"], &[], &[]);
    assert_eq!(out.code, Some(0), "{}", out.show());
    let modules: Vec<String> = out.json()["modules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["module"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        modules,
        [
            "mod-test-module",
            "mod-dummy-consumer",
            "mod-dummy-producer"
        ]
    );

    let out = orch_test(&scenario, &["mod-test-module", "mod-nope"], &[], &[]);
    assert_eq!(out.code, Some(2), "{}", out.show());
    assert!(
        out.stderr.contains("unknown module `mod-nope`"),
        "{}",
        out.show()
    );
    assert!(
        out.stderr
            .contains("mod-test-module, mod-dummy-consumer, mod-dummy-producer (disabled)"),
        "lists the known modules\n{}",
        out.show()
    );
    assert!(out.stdout.is_empty(), "nothing ran\n{}", out.show());
}

#[test]
fn module_test_settings_and_test_args_reach_the_build_and_the_binaries() {
    let scenario = Scenario::new(
        "modules:\n  - name: fixture-t-failing\n    test:\n      args: [--include-ignored]\n      \
         features: [extra]\n",
    );
    // The failing test is asked to fail, and skipped by the `-- --skip` filter.
    let out = orch_test(
        &scenario,
        &["--json"],
        &["--skip", "fails_when_asked"],
        &[("ORCH_FIXTURE_FAIL_TEST", "1")],
    );
    assert_eq!(out.code, Some(0), "{}", out.show());
    let report = out.json();
    let mut tests = entries(&report, "fixture-t-failing");
    tests.sort();
    let expected: Vec<(String, String)> = [
        "api::doubles_through_the_public_api",
        "load check",
        "tests::ignored_unless_asked",
        "tests::only_with_extra",
        "tests::passes",
    ]
    .iter()
    .map(|n| ((*n).to_owned(), "passed".to_owned()))
    .collect();
    assert_eq!(tests, expected, "{}", out.show());
    assert_eq!(report["summary"], "5 passed, 0 failed");
}

#[test]
fn configuration_errors_are_usage_errors_and_help_lists_the_options() {
    let scenario =
        Scenario::new("modules:\n  - name: fixture-t-failing\n    test:\n      argz: []\n");
    let out = orch_test(&scenario, &[], &[], &[]);
    assert_eq!(out.code, Some(2), "{}", out.show());
    assert!(
        out.stderr.contains("modules.yaml:4:7: unknown key `argz`"),
        "{}",
        out.show()
    );
    assert!(
        out.stderr.contains("did you mean `args`?"),
        "{}",
        out.show()
    );

    let output = scenario
        .command(&["test", "--help"])
        .output()
        .expect("help");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    for flag in [
        "--all",
        "--junit",
        "--json",
        "TEST_ARGS",
        "--config-dir",
        "Doc tests",
    ] {
        assert!(text.contains(flag), "{flag} documented: {text}");
    }
}

/// `cargo orch test` of the fixture whose build script sleeps 120 s, every
/// process it starts marked with `ORCH_E2E_MARKER=<marker>` (returned, with the
/// scenario that must outlive the run).
fn slow_build_test(what: &str) -> (String, Scenario, Command) {
    let marker = format!(
        "orch-e2e-test-{what}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let scenario = Scenario::new("modules:\n  - name: fixture-slow-build\n");
    let mut command = Command::new(orch_bin());
    command
        .current_dir(workspace_root())
        .arg("orch")
        .arg("--config-dir")
        .arg(scenario.config_dir())
        .arg("test")
        .env("NO_COLOR", "1")
        .env("ORCH_E2E_MARKER", &marker)
        .env("ORCH_FIXTURE_SLOW_BUILD", format!("120:{marker}"));
    (marker, scenario, command)
}

#[test]
fn sigint_during_the_build_ends_cargo_and_everything_it_started() {
    let (marker, _scenario, command) = slow_build_test("build");
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut orch = orch_e2e::OrchProcess::spawn(command).expect("spawn");
    orch.wait_for("fixture-slow-build", Duration::from_secs(240))
        .unwrap();
    let entry = format!("ORCH_E2E_MARKER={marker}");
    wait_until(
        "cargo runs under cargo orch test",
        Duration::from_secs(15),
        || processes_with_env(&entry).len() > 1,
    );
    orch.signal(nix::sys::signal::Signal::SIGINT).unwrap();
    let status = orch
        .wait_exit(Duration::from_secs(20))
        .expect("exits promptly");
    assert_eq!(status.code(), Some(130), "{}", orch.output());
    orch.wait_for("SIGINT received; test run stopped", Duration::from_secs(5))
        .unwrap();
    wait_until("no build process survives", Duration::from_secs(15), || {
        processes_with_env(&entry).is_empty()
    });
}

/// SIGKILL of `cargo orch test` in the middle of building the tests leaves no
/// cargo, rustc or build script running: its cargo runs go through the same
/// process layer as `cargo orch run`'s builds, with a guard that kills cargo's
/// whole process group when `cargo orch test` dies, however it dies.
#[test]
fn sigkill_during_the_test_build_leaves_no_build_process() {
    let (marker, _scenario, command) = slow_build_test("kill");
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut orch = orch_e2e::OrchProcess::spawn(command).expect("spawn");
    let entry = format!("ORCH_E2E_MARKER={marker}");
    let build_script_runs = || {
        processes_with_env(&entry).into_iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("build-script-build"))
        })
    };
    wait_until(
        "cargo runs the slow build script",
        Duration::from_secs(240),
        build_script_runs,
    );
    orch.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    orch.wait_exit(Duration::from_secs(15)).expect("killed");
    wait_until(
        "no cargo, rustc or build script survives the SIGKILL",
        Duration::from_secs(15),
        || processes_with_env(&entry).is_empty(),
    );
}
