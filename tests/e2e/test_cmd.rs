//! `cargo orch test` end to end: the real binary, real `cargo test --no-run`
//! builds of fixture modules, real test binaries and real load checks.
//!
//! The fixtures fail only when asked: `fixture-t-failing`'s test fails when
//! `ORCH_FIXTURE_FAIL_TEST` is set, `fixture-compile-error` does not compile
//! when `ORCH_FIXTURE_BREAK_BUILD` is set, `fixture-t-unruly`'s tests abort,
//! segfault, hang and fail a doc test when `ORCH_FIXTURE_UNRULY` is set and
//! flake with `ORCH_FIXTURE_FLAKY_FILE`, so `cargo test --workspace` stays green.
//!
//! The JUnit files are read back twice: with roxmltree (the exact elements)
//! and with junitparser, a real consumer CI tools build on.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use orch_e2e::{
    Scenario, orch_bin, processes_with_env, python_package, run_python, wait_until, workspace_root,
};
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

/// `N passed, N failed`, then optionally `, N flaky` and `, N skipped`, and
/// nothing else.
fn is_summary_line(line: &str) -> bool {
    let words: Vec<&str> = line
        .split(", ")
        .map(|part| match part.split_once(' ') {
            Some((n, word)) if n.parse::<u32>().is_ok() => word,
            _ => "",
        })
        .collect();
    matches!(
        words[..],
        ["passed", "failed"]
            | ["passed", "failed", "flaky"]
            | ["passed", "failed", "skipped"]
            | ["passed", "failed", "flaky", "skipped"]
    )
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
        .env_remove("ORCH_FIXTURE_BREAK_BUILD")
        .env_remove("ORCH_FIXTURE_UNRULY")
        .env_remove("ORCH_FIXTURE_FLAKY_FILE");
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
        "--fast",
        "--retries",
        "--no-timeout",
        "--no-doc",
        "TEST_ARGS",
        "--config-dir",
        "Doc tests run by default",
    ] {
        assert!(text.contains(flag), "{flag} documented: {text}");
    }
}

/// The `fixture-t-unruly` scenario: its tests get `timeout` each.
fn unruly(timeout: &str) -> Scenario {
    Scenario::new(&format!(
        "modules:\n  - name: fixture-t-unruly\n    test:\n      timeout: {timeout}\n"
    ))
}

/// The JUnit file as junitparser reads it: per suite its counts, time,
/// timestamp and hostname, and per case its result kinds, message, type,
/// time and streams (as JSON).
fn junitparser_view(path: &Path) -> Value {
    const SCRIPT: &str = r#"
import json, sys
from junitparser import JUnitXml
xml = JUnitXml.fromstring(sys.stdin.read())
suites = {}
for suite in xml:
    cases = {}
    for case in suite:
        results = list(case.result)
        cases[case.name] = {
            "results": [type(r).__name__ for r in results],
            "messages": [r.message for r in results],
            "types": [r.type for r in results],
            "time": case.time,
            "classname": case.classname,
            "system_out": case.system_out,
            "system_err": case.system_err,
        }
    suites[suite.name] = {
        "tests": suite.tests, "failures": suite.failures, "errors": suite.errors,
        "skipped": suite.skipped, "time": suite.time, "timestamp": suite.timestamp,
        "hostname": suite.hostname, "cases": cases,
    }
print(json.dumps(suites))
"#;
    let reader = python_package("junitparser", "3.2.0").expect("junitparser");
    let xml = read_junit(path);
    let output = run_python(SCRIPT, &[reader], xml.as_bytes()).expect("python3 runs");
    assert!(
        output.status.success(),
        "junitparser could not read {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script's JSON")
}

/// junitparser's counts of `module` agree with the JSON report's, and each
/// case's result kind with its status there.
fn assert_junitparser_agrees(view: &Value, report: &Value, module: &str) {
    let json_module = report["modules"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["module"] == module))
        .unwrap_or_else(|| panic!("no module {module} in {report:#}"));
    let suite = &view[module];
    let count = |key: &str| json_module[key].as_u64().unwrap_or_default();
    assert_eq!(
        suite["tests"].as_u64(),
        Some(count("passed") + count("failed") + count("flaky") + count("ignored")),
        "{suite:#}"
    );
    assert_eq!(
        suite["failures"].as_u64(),
        Some(count("failed")),
        "{suite:#}"
    );
    assert_eq!(
        suite["skipped"].as_u64(),
        Some(count("ignored")),
        "{suite:#}"
    );
    assert_eq!(suite["errors"].as_u64(), Some(0));
    assert!(
        suite["timestamp"].as_str().is_some_and(|t| t.contains('T')),
        "{suite:#}"
    );
    assert!(
        suite["hostname"].as_str().is_some_and(|h| !h.is_empty()),
        "{suite:#}"
    );
    let cases = suite["cases"].as_object().expect("cases");
    assert_eq!(
        cases.len() as u64,
        suite["tests"].as_u64().unwrap_or_default()
    );
    for test in json_module["tests"].as_array().into_iter().flatten() {
        let name = test["name"].as_str().unwrap_or_default();
        let case = &cases[name];
        let expected: &[&str] = match test["status"].as_str() {
            Some("failed") => &["Failure"],
            Some("ignored") => &["Skipped"],
            _ => &[],
        };
        assert_eq!(
            case["results"],
            serde_json::json!(expected),
            "{name}: {case:#}"
        );
        assert_eq!(case["classname"], module);
        assert_eq!(
            case["time"].as_f64(),
            test["time"].as_f64().map(|t| (t * 1000.0).round() / 1000.0)
        );
    }
}

#[test]
fn a_crash_a_segfault_a_hang_and_a_failing_doc_test_are_each_named_with_their_time() {
    let scenario = unruly("2s");
    let junit = scenario.config_dir().join("junit.xml");
    let junit_arg = junit.display().to_string();
    let out = orch_test(
        &scenario,
        &["--json", "--junit", &junit_arg],
        &[],
        &[("ORCH_FIXTURE_UNRULY", "1")],
    );
    assert_eq!(out.code, Some(1), "{}", out.show());
    let report = out.json();
    let module = "fixture-t-unruly";
    let get = |name: &str| entry(&report, module, name);

    let aborts = get("tests::crashes::aborts");
    assert_eq!(
        (aborts["status"].as_str(), aborts["cause"].as_str()),
        (Some("failed"), Some("crashed"))
    );
    assert_eq!(
        (aborts["signal"].as_i64(), aborts["signal_name"].as_str()),
        (Some(6), Some("SIGABRT"))
    );
    assert_eq!(
        aborts["message"],
        "the test process was killed by signal 6 (SIGABRT: abort)"
    );
    assert_eq!(aborts["stdout"], "about to abort");
    let segfaults = get("tests::crashes::segfaults");
    assert_eq!(
        (
            segfaults["signal"].as_i64(),
            segfaults["signal_name"].as_str()
        ),
        (Some(11), Some("SIGSEGV"))
    );
    assert_eq!(segfaults["stdout"], "about to read address 8");
    let hangs = get("tests::hangs");
    assert_eq!(hangs["cause"], "timed-out");
    assert_eq!(hangs["timeout"], 2.0);
    assert_eq!(
        hangs["stdout"], "hanging from now on",
        "its output up to the kill"
    );
    let doc = get("src/lib.rs - fails_when_asked (line 53)");
    assert_eq!(
        (doc["kind"].as_str(), doc["status"].as_str()),
        (Some("doc-test"), Some("failed"))
    );
    assert_eq!(
        doc["message"],
        "the doc test of fails_when_asked was asked to fail"
    );

    // The rest passed, each under its own name: fake libtest lines printed
    // by a test change nothing.
    for name in [
        "tests::takes_a_while",
        "tests::should_panic",
        "tests::nested::deeper::inner",
        "tests::prints_fake_libtest_lines",
        "tests::flaky",
        "api::triples_through_the_public_api",
        "src/lib.rs - (line 19)",
        "src/lib.rs - triple (line 39)",
        "src/lib.rs - hangs_when_asked (line 62)",
        "load check",
    ] {
        assert_eq!(get(name)["status"], "passed", "{name}: {}", out.show());
    }
    let ignored = get("tests::ignored");
    assert_eq!(
        (ignored["status"].as_str(), ignored["reason"].as_str()),
        (Some("ignored"), Some("never runs unless asked"))
    );
    assert_eq!(
        entries(&report, module).len(),
        15,
        "no entry made up from fake lines: {report:#}"
    );
    assert_eq!(report["summary"], "10 passed, 4 failed, 1 skipped");
    // Time was spent: each test that ran has a time of its own.
    for name in [
        "tests::takes_a_while",
        "tests::hangs",
        "tests::crashes::aborts",
        "src/lib.rs - triple (line 39)",
    ] {
        assert!(
            get(name)["time"].as_f64().is_some_and(|t| t > 0.0),
            "{name}: {}",
            get(name)
        );
    }

    // The human report on stderr names each failure and its cause.
    for section in [
        "---- fixture-t-unruly: tests::crashes::aborts ----\nCRASHED: the test process was killed by signal 6 (SIGABRT: abort)\nabout to abort",
        "---- fixture-t-unruly: tests::crashes::segfaults ----\nCRASHED: the test process was killed by signal 11 (SIGSEGV: segmentation fault)",
        "---- fixture-t-unruly: tests::hangs ----\nTIMED OUT: timed out after 2.00 s (test.timeout) and was killed\nhanging from now on",
        "---- fixture-t-unruly: src/lib.rs - fails_when_asked (line 53) ----\n",
    ] {
        assert!(out.stderr.contains(section), "{section}\n{}", out.show());
    }

    let text = read_junit(&junit);
    let doc = roxmltree::Document::parse(&text).expect("well-formed JUnit XML");
    let suite = suite(&doc, module);
    let failure = |name: &str| {
        case(suite, name)
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap_or_else(|| panic!("{name} has a <failure>"))
    };
    assert_eq!(
        failure("tests::crashes::aborts").attribute("type"),
        Some("test crash")
    );
    assert_eq!(
        failure("tests::hangs").attribute("type"),
        Some("test timeout")
    );
    let out_of = |name: &str, element: &str| {
        case(suite, name)
            .children()
            .find(|n| n.has_tag_name(element))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        out_of("tests::crashes::segfaults", "system-out"),
        "about to read address 8"
    );
    assert!(
        out_of("tests::crashes::aborts", "failure")
            .starts_with("CRASHED: the test process was killed by signal 6")
    );

    let view = junitparser_view(&junit);
    assert_junitparser_agrees(&view, &report, module);
    let cases = &view[module]["cases"];
    assert_eq!(cases["tests::crashes::aborts"]["types"][0], "test crash");
    assert_eq!(cases["tests::hangs"]["system_out"], "hanging from now on");
    assert!(
        cases["tests::takes_a_while"]["time"]
            .as_f64()
            .is_some_and(|t| t > 0.0)
    );
}

#[test]
fn a_test_that_passes_on_a_retry_is_flaky_never_a_plain_pass() {
    let scenario = unruly("60s");
    let memory = scenario.config_dir().join("flaky-memory");
    let memory_arg = memory.display().to_string();
    let flaky = [("ORCH_FIXTURE_FLAKY_FILE", memory_arg.as_str())];

    let once = orch_test(&scenario, &["--json", "--no-doc"], &["flaky"], &flaky);
    assert_eq!(
        once.code,
        Some(1),
        "without retries it fails\n{}",
        once.show()
    );
    assert_eq!(
        entry(&once.json(), "fixture-t-unruly", "tests::flaky")["status"],
        "failed"
    );

    std::fs::remove_file(&memory).expect("the first run left its memory");
    let junit = scenario.config_dir().join("flaky.xml");
    let junit_arg = junit.display().to_string();
    let out = orch_test(
        &scenario,
        &["--retries", "2", "--no-doc", "--junit", &junit_arg],
        &["flaky"],
        &flaky,
    );
    assert_eq!(
        out.code,
        Some(0),
        "a flaky test does not fail the run\n{}",
        out.show()
    );
    assert_eq!(
        out.row("module")[1..],
        ["passed", "failed", "ignored", "flaky", "time"]
    );
    assert_eq!(
        out.row("fixture-t-unruly")[1..5],
        ["1", "0", "0", "1"],
        "the load check passed; the test is flaky"
    );
    assert_eq!(
        out.summary_lines(),
        ["1 passed, 0 failed, 1 flaky"],
        "{}",
        out.show()
    );
    assert!(
        out.stdout.contains("fixture-t-unruly: tests::flaky (passed on attempt 2; first failure: flaky: fails the first time)"),
        "{}",
        out.show()
    );
    assert!(
        out.stderr.contains("FLAKY ["),
        "progress says so: {}",
        out.show()
    );

    let text = read_junit(&junit);
    let doc = roxmltree::Document::parse(&text).expect("well-formed JUnit XML");
    let flaky_case = case(suite(&doc, "fixture-t-unruly"), "tests::flaky");
    let detail = flaky_case
        .children()
        .find(|n| n.has_tag_name("flakyFailure"))
        .expect("a <flakyFailure>");
    assert_eq!(
        detail.attribute("message"),
        Some("flaky: fails the first time")
    );
    assert!(!flaky_case.children().any(|n| n.has_tag_name("failure")));
    let view = junitparser_view(&junit);
    assert_eq!(view["fixture-t-unruly"]["failures"], 0);
    assert_eq!(
        view["fixture-t-unruly"]["cases"]["tests::flaky"]["results"],
        serde_json::json!([])
    );
}

#[test]
fn fast_mode_runs_each_binary_once_and_names_the_binary_that_crashed() {
    let scenario = unruly("60s");
    let green = orch_test(&scenario, &["--fast", "--json"], &[], &[]);
    assert_eq!(green.code, Some(0), "{}", green.show());
    let per_test = orch_test(&scenario, &["--json"], &[], &[]);
    assert_eq!(per_test.code, Some(0), "{}", per_test.show());
    let mut fast_entries = entries(&green.json(), "fixture-t-unruly");
    let mut slow_entries = entries(&per_test.json(), "fixture-t-unruly");
    fast_entries.sort();
    slow_entries.sort();
    assert_eq!(
        fast_entries, slow_entries,
        "both modes report the same tests"
    );
    assert_eq!(per_test.json()["summary"], "14 passed, 0 failed, 1 skipped");

    // Asked to misbehave, the unit-test binary dies of whichever crash comes
    // first; fast mode can only name the binary.
    let red = orch_test(
        &scenario,
        &["--fast", "--json", "--no-doc"],
        &["crashes"],
        &[("ORCH_FIXTURE_UNRULY", "1")],
    );
    assert_eq!(red.code, Some(1), "{}", red.show());
    let red_report = red.json();
    let binary = entry(&red_report, "fixture-t-unruly", "unit tests (test binary)");
    assert_eq!(
        (binary["kind"].as_str(), binary["cause"].as_str()),
        (Some("binary"), Some("crashed"))
    );
    assert!(
        [Some(6), Some(11)].contains(&binary["signal"].as_i64()),
        "SIGABRT or SIGSEGV: {binary}"
    );
}

#[test]
fn doc_tests_are_in_the_report_unless_no_doc_is_given() {
    let scenario = unruly("60s");
    let with = orch_test(&scenario, &["--json"], &["triple"], &[]);
    assert_eq!(with.code, Some(0), "{}", with.show());
    let docs: Vec<(String, String)> = entries(&with.json(), "fixture-t-unruly")
        .into_iter()
        .filter(|(name, _)| name.starts_with("src/lib.rs - "))
        .collect();
    assert_eq!(
        docs,
        [(
            "src/lib.rs - triple (line 39)".to_owned(),
            "passed".to_owned()
        )],
        "filters reach the doc tests too"
    );
    let without = orch_test(&scenario, &["--json", "--no-doc"], &[], &[]);
    assert_eq!(without.code, Some(0), "{}", without.show());
    let report = without.json();
    let module = report["modules"][0]["tests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!module.is_empty());
    assert!(module.iter().all(|t| t["kind"] != "doc-test"), "{report:#}");
}

#[test]
fn a_doc_test_that_hangs_is_killed_and_named() {
    let scenario = unruly("2s");
    let out = orch_test(
        &scenario,
        &["--json"],
        &["when_asked"],
        &[("ORCH_FIXTURE_DOC_HANG", "1")],
    );
    assert_eq!(out.code, Some(1), "{}", out.show());
    let report = out.json();
    let hung = entry(
        &report,
        "fixture-t-unruly",
        "src/lib.rs - hangs_when_asked (line 62)",
    );
    assert_eq!(
        (
            hung["kind"].as_str(),
            hung["cause"].as_str(),
            hung["timeout"].as_f64()
        ),
        (Some("doc-test"), Some("timed-out"), Some(2.0))
    );
    assert!(
        hung["message"]
            .as_str()
            .is_some_and(|m| m.contains("the doc tests of `fixture-t-unruly` after it did not run")),
        "{hung}"
    );
    // The doc test before it (by name) ran and passed; the run ended there.
    assert_eq!(
        entry(
            &report,
            "fixture-t-unruly",
            "src/lib.rs - fails_when_asked (line 53)"
        )["status"],
        "passed"
    );
    assert!(
        out.stderr.contains("TIMEOUT ["),
        "the progress line names it\n{}",
        out.show()
    );
}

/// Runs `cargo orch test` of the fixture's test that hangs (its timeout far
/// off), every process of the run marked; once the test runs, `stop` ends the
/// run, and then no marked process may survive.
fn hanging_test_run(what: &str, stop: impl FnOnce(&mut orch_e2e::OrchProcess)) {
    let marker = format!(
        "orch-e2e-test-{what}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let scenario = unruly("10m");
    let mut command = Command::new(orch_bin());
    command
        .current_dir(workspace_root())
        .arg("orch")
        .arg("--config-dir")
        .arg(scenario.config_dir())
        .args(["test", "--no-doc", "--", "hangs"])
        .env("NO_COLOR", "1")
        .env("ORCH_FIXTURE_UNRULY", "1")
        .env("ORCH_E2E_MARKER", &marker);
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut orch = orch_e2e::OrchProcess::spawn(command).expect("spawn");
    let entry = format!("ORCH_E2E_MARKER={marker}");
    let hanging_test = || {
        processes_with_env(&entry).into_iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("tests::hangs"))
        })
    };
    wait_until(
        "the hanging test runs in a process of its own",
        Duration::from_secs(240),
        hanging_test,
    );
    stop(&mut orch);
    wait_until("no test process survives", Duration::from_secs(15), || {
        processes_with_env(&entry).is_empty()
    });
}

/// SIGINT while a test hangs ends the test's process and everything in its
/// group: nothing of the run survives it.
#[test]
fn sigint_while_a_test_hangs_ends_its_process_group() {
    hanging_test_run("hang", |orch| {
        orch.signal(nix::sys::signal::Signal::SIGINT).unwrap();
        let status = orch
            .wait_exit(Duration::from_secs(20))
            .expect("exits promptly");
        assert_eq!(status.code(), Some(130), "{}", orch.output());
    });
}

/// `cargo orch test` SIGKILLed while a test hangs: the one guard process of
/// the run kills the test's process group (nothing is left running).
#[test]
fn a_sigkilled_run_leaves_no_test_process_behind() {
    hanging_test_run("kill", |orch| {
        // No chance to clean up: the run's guard process must end the test.
        orch.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
        orch.wait_exit(Duration::from_secs(20)).expect("killed");
    });
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
