//! The report as JSON (`cargo orch test --json`): the same data as the table,
//! JUnit file and failure sections, for scripts.
//!
//! ```json
//! { "summary": "5 passed, 1 failed, 1 flaky, 1 skipped", "success": false,
//!   "passed": 5, "failed": 1, "flaky": 1, "ignored": 1, "time": 2.31,
//!   "started": "2025-01-31T23:59:58.123+00:00",
//!   "modules": [ { "module": "mod-a", "package": "mod-a",
//!                  "passed": 2, "failed": 1, "flaky": 1, "ignored": 1, "time": 0.05,
//!                  "tests": [ { "name": "tests::aborts", "kind": "test", "status": "failed",
//!                               "time": 0.01, "started": "...", "attempts": 1,
//!                               "cause": "crashed", "signal": 6, "signal_name": "SIGABRT",
//!                               "message": "...", "output": "...",
//!                               "stdout": "...", "stderr": "..." } ] } ] }
//! ```
//!
//! `kind` is `test`, `doc-test`, `binary`, `build` or `load-check`;
//! `status` is `passed`, `flaky` (passed on a retry), `failed` or `ignored`;
//! times are seconds. A failed entry has `cause` (`failed`, `crashed` with
//! `signal` and `signal_name`, `timed-out` with `timeout`), `message`,
//! `output` (stdout then stderr) and both streams; an ignored one may have
//! `reason`; a retried one lists its failed attempts in `retries`.

use serde_json::{Map, Value, json};

use super::model::{Cause, Counts, Failure, ModuleReport, Outcome, TestCase, TestReport};
use super::timestamp::iso8601;

/// `report` as a JSON value.
pub fn to_json(report: &TestReport) -> Value {
    let counts = report.counts();
    let mut object = Map::new();
    object.insert("summary".into(), counts.summary_line().into());
    object.insert("success".into(), report.success().into());
    insert_counts(&mut object, counts);
    object.insert("time".into(), json!(report.duration.as_secs_f64()));
    if let Some(started) = report.started {
        object.insert("started".into(), iso8601(started).into());
    }
    object.insert(
        "modules".into(),
        report.modules.iter().map(module).collect::<Vec<_>>().into(),
    );
    Value::Object(object)
}

/// `report` as pretty-printed JSON text, ending with a newline.
pub fn render(report: &TestReport) -> String {
    // Serializing a `Value` cannot fail: its map keys are strings.
    let mut text = serde_json::to_string_pretty(&to_json(report)).unwrap_or_default();
    text.push('\n');
    text
}

fn module(module: &ModuleReport) -> Value {
    let mut object = Map::new();
    object.insert("module".into(), module.module.clone().into());
    object.insert("package".into(), module.package.clone().into());
    insert_counts(&mut object, module.counts());
    object.insert("time".into(), json!(module.duration.as_secs_f64()));
    object.insert(
        "tests".into(),
        module.tests.iter().map(test).collect::<Vec<_>>().into(),
    );
    Value::Object(object)
}

fn test(test: &TestCase) -> Value {
    let mut object = Map::new();
    object.insert("name".into(), test.name.clone().into());
    object.insert("kind".into(), test.kind.as_str().into());
    object.insert("status".into(), test.status().as_str().into());
    object.insert("time".into(), json!(test.duration.as_secs_f64()));
    if let Some(started) = test.started {
        object.insert("started".into(), iso8601(started).into());
    }
    object.insert("attempts".into(), test.attempts().into());
    match &test.outcome {
        Outcome::Passed => {}
        Outcome::Failed(failure) => insert_failure(&mut object, failure),
        Outcome::Ignored { reason } => {
            if let Some(reason) = reason {
                object.insert("reason".into(), reason.clone().into());
            }
        }
    }
    if !test.retries.is_empty() {
        let retries: Vec<Value> = test
            .retries
            .iter()
            .map(|retry| {
                let mut object = Map::new();
                object.insert("time".into(), json!(retry.duration.as_secs_f64()));
                insert_failure(&mut object, &retry.failure);
                Value::Object(object)
            })
            .collect();
        object.insert("retries".into(), retries.into());
    }
    Value::Object(object)
}

fn insert_failure(object: &mut Map<String, Value>, failure: &Failure) {
    object.insert("cause".into(), failure.cause.as_str().into());
    match failure.cause {
        Cause::Crashed { signal } => {
            object.insert("signal".into(), signal.into());
            if let Some(name) = failure.cause.signal_name() {
                object.insert("signal_name".into(), name.into());
            }
        }
        Cause::TimedOut { after } => {
            object.insert("timeout".into(), json!(after.as_secs_f64()));
        }
        Cause::Failed => {}
    }
    object.insert("message".into(), failure.message.clone().into());
    object.insert("output".into(), failure.output().into());
    object.insert("stdout".into(), failure.stdout.clone().into());
    object.insert("stderr".into(), failure.stderr.clone().into());
}

fn insert_counts(object: &mut Map<String, Value>, counts: Counts) {
    object.insert("passed".into(), counts.passed.into());
    object.insert("failed".into(), counts.failed.into());
    object.insert("flaky".into(), counts.flaky.into());
    object.insert("ignored".into(), counts.ignored.into());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::Retry;

    #[test]
    fn holds_the_same_data_as_the_other_renderings() {
        let mut flaky = TestCase::test("sometimes", Outcome::Passed);
        flaky.retries.push(Retry {
            failure: Failure::new("first try", "out"),
            duration: Duration::from_millis(500),
            started: None,
        });
        let crash = Failure {
            cause: Cause::Crashed { signal: 11 },
            message: "killed".into(),
            stdout: "so far".into(),
            stderr: "oops".into(),
        };
        let report = TestReport {
            modules: vec![ModuleReport {
                module: "mod-a".into(),
                package: "pkg-a".into(),
                tests: vec![
                    TestCase::test("ok", Outcome::Passed),
                    TestCase::test("bad", Outcome::failed("boom", "full output")),
                    TestCase::test(
                        "later",
                        Outcome::Ignored {
                            reason: Some("slow".into()),
                        },
                    ),
                    flaky,
                    TestCase::test("segv", Outcome::Failed(crash)),
                ],
                duration: Duration::from_millis(250),
            }],
            duration: Duration::from_secs(1),
            started: None,
        };
        let value = to_json(&report);
        assert_eq!(value["summary"], "1 passed, 2 failed, 1 flaky, 1 skipped");
        assert_eq!(value["success"], false);
        assert_eq!(
            (
                value["passed"].as_u64(),
                value["failed"].as_u64(),
                value["flaky"].as_u64()
            ),
            (Some(1), Some(2), Some(1))
        );
        assert_eq!(value["time"], 1.0);
        let module = &value["modules"][0];
        assert_eq!(module["module"], "mod-a");
        assert_eq!(module["package"], "pkg-a");
        assert_eq!(module["ignored"], 1);
        assert_eq!(module["time"], 0.25);
        assert_eq!(
            module["tests"][1],
            json!({"name": "bad", "kind": "test", "status": "failed", "time": 0.0, "attempts": 1,
                   "cause": "failed", "message": "boom", "output": "full output",
                   "stdout": "full output", "stderr": ""})
        );
        assert_eq!(module["tests"][2]["reason"], "slow");
        assert_eq!(module["tests"][2]["attempts"], 0);
        assert_eq!(module["tests"][0].get("output"), None);
        let flaky = &module["tests"][3];
        assert_eq!(
            (flaky["status"].as_str(), flaky["attempts"].as_u64()),
            (Some("flaky"), Some(2))
        );
        assert_eq!(flaky["retries"][0]["message"], "first try");
        assert_eq!(flaky["retries"][0]["time"], 0.5);
        let segv = &module["tests"][4];
        assert_eq!(
            (
                segv["cause"].as_str(),
                segv["signal"].as_i64(),
                segv["signal_name"].as_str()
            ),
            (Some("crashed"), Some(11), Some("SIGSEGV"))
        );
        assert_eq!(segv["output"], "so far\n--- stderr ---\noops");
    }
}
