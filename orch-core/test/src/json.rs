//! The report as JSON (`cargo orch test --json`): the same data as the table,
//! JUnit file and failure sections, for scripts.
//!
//! ```json
//! { "summary": "5 passed, 1 failed, 1 skipped", "success": false,
//!   "passed": 5, "failed": 1, "ignored": 1, "time": 2.31,
//!   "modules": [ { "module": "mod-a", "package": "mod-a",
//!                  "passed": 2, "failed": 1, "ignored": 1, "time": 0.05,
//!                  "tests": [ { "name": "tests::fails", "kind": "test", "status": "failed",
//!                               "time": 0.0, "message": "boom", "output": "..." } ] } ] }
//! ```
//!
//! `kind` is `test`, `binary`, `build` or `load-check`; `status` is `passed`,
//! `failed` or `ignored`; times are seconds. A failed entry has `message` and
//! `output`, an ignored one may have `reason`.

use serde_json::{Map, Value, json};

use super::model::{Counts, ModuleReport, Outcome, TestCase, TestReport};

/// `report` as a JSON value.
pub fn to_json(report: &TestReport) -> Value {
    let counts = report.counts();
    let mut object = Map::new();
    object.insert("summary".into(), counts.summary_line().into());
    object.insert("success".into(), report.success().into());
    insert_counts(&mut object, counts);
    object.insert("time".into(), json!(report.duration.as_secs_f64()));
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
    object.insert("status".into(), test.outcome.as_str().into());
    object.insert("time".into(), json!(test.duration.as_secs_f64()));
    match &test.outcome {
        Outcome::Passed => {}
        Outcome::Failed { message, output } => {
            object.insert("message".into(), message.clone().into());
            object.insert("output".into(), output.clone().into());
        }
        Outcome::Ignored { reason } => {
            if let Some(reason) = reason {
                object.insert("reason".into(), reason.clone().into());
            }
        }
    }
    Value::Object(object)
}

fn insert_counts(object: &mut Map<String, Value>, counts: Counts) {
    object.insert("passed".into(), counts.passed.into());
    object.insert("failed".into(), counts.failed.into());
    object.insert("ignored".into(), counts.ignored.into());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn holds_the_same_data_as_the_other_renderings() {
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
                ],
                duration: Duration::from_millis(250),
            }],
            duration: Duration::from_secs(1),
        };
        let value = to_json(&report);
        assert_eq!(value["summary"], "1 passed, 1 failed, 1 skipped");
        assert_eq!(value["success"], false);
        assert_eq!(
            (value["passed"].as_u64(), value["failed"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(value["time"], 1.0);
        let module = &value["modules"][0];
        assert_eq!(module["module"], "mod-a");
        assert_eq!(module["package"], "pkg-a");
        assert_eq!(module["ignored"], 1);
        assert_eq!(module["time"], 0.25);
        assert_eq!(
            module["tests"][1],
            json!({"name": "bad", "kind": "test", "status": "failed", "time": 0.0,
                   "message": "boom", "output": "full output"})
        );
        assert_eq!(module["tests"][2]["reason"], "slow");
        assert_eq!(module["tests"][0].get("output"), None);
    }
}
