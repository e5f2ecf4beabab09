//! The report for people: one table (module, passed, failed, ignored, a
//! `flaky` column when a test passed only on a retry, time), the total line
//! CI reads (`N passed, N failed`, then `, N flaky` and `, N skipped` when
//! there are some), the flaky tests, then each failure with its captured
//! output (a crash or a timeout says so first), and the total line again as
//! the closing line when there were failures. Colour only when asked (the
//! caller checks for a terminal and `NO_COLOR`).

use std::fmt::Write as _;
use std::time::Duration;

use super::model::{Counts, TestReport};

const RED: &str = "\u{1b}[31m";
const GREEN: &str = "\u{1b}[32m";
const YELLOW: &str = "\u{1b}[33m";
const BOLD: &str = "\u{1b}[1m";
const RESET: &str = "\u{1b}[0m";

/// The whole human report: table, total line, failures.
pub fn render(report: &TestReport, color: bool) -> String {
    let paint = Paint(color);
    let mut text = render_table(report, color);
    let summary = summary(report.counts(), paint);
    let _ = writeln!(text, "\n{summary}");
    let flaky: Vec<_> = report.flaky().collect();
    if !flaky.is_empty() {
        let _ = writeln!(
            text,
            "\n{}",
            paint.apply(YELLOW, "flaky (passed on a retry):")
        );
        for (module, test) in flaky {
            let first = test
                .retries
                .first()
                .map_or("", |retry| retry.failure.message.as_str());
            let _ = writeln!(
                text,
                "  {}: {} (passed on attempt {}; first failure: {first})",
                module.module,
                test.name,
                test.attempts(),
            );
        }
    }
    let failures: Vec<_> = report.failures().collect();
    if failures.is_empty() {
        return text;
    }
    let _ = writeln!(text, "\n{}", paint.apply(BOLD, "failures:"));
    for (module, test) in failures {
        let header = format!("---- {}: {} ----", module.module, test.name);
        let _ = writeln!(text, "\n{}", paint.apply(RED, &header));
        if let Some(failure) = test.outcome.failure() {
            let _ = writeln!(text, "{}", failure.report());
            if !test.retries.is_empty() {
                let _ = writeln!(text, "(failed all {} attempts)", test.attempts());
            }
        }
    }
    let _ = writeln!(text, "\n{summary}");
    text
}

/// The table alone: a row per module and a total row.
pub fn render_table(report: &TestReport, color: bool) -> String {
    let paint = Paint(color);
    let width = report
        .modules
        .iter()
        .map(|m| m.module.chars().count())
        .chain(["module".len(), "total".len()])
        .max()
        .unwrap_or(6);
    let flaky = report.counts().flaky > 0;
    let mut text = String::new();
    let mut header = format!(
        "{:<width$}  {:>6}  {:>6}  {:>7}",
        "module", "passed", "failed", "ignored"
    );
    if flaky {
        header.push_str(&format!("  {:>5}", "flaky"));
    }
    header.push_str(&format!("  {:>8}", "time"));
    let _ = writeln!(text, "{}", paint.apply(BOLD, &header));
    for module in &report.modules {
        let counts = module.counts();
        let name = format!("{:<width$}", module.module);
        let name = if counts.failed > 0 {
            paint.apply(RED, &name)
        } else {
            paint.apply(GREEN, &name)
        };
        let _ = writeln!(
            text,
            "{name}{}",
            numbers(counts, module.duration, flaky, paint)
        );
    }
    let total = format!("{:<width$}", "total");
    let _ = writeln!(
        text,
        "{}{}",
        paint.apply(BOLD, &total),
        numbers(report.counts(), report.duration, flaky, paint)
    );
    text
}

/// The counts and time columns of a row (`flaky`: with that column).
fn numbers(counts: Counts, duration: Duration, flaky: bool, paint: Paint) -> String {
    let failed = format!("{:>6}", counts.failed);
    let ignored = format!("{:>7}", counts.ignored);
    let mut row = format!(
        "  {:>6}  {}  {}",
        counts.passed,
        if counts.failed > 0 {
            paint.apply(RED, &failed)
        } else {
            failed
        },
        if counts.ignored > 0 {
            paint.apply(YELLOW, &ignored)
        } else {
            ignored
        },
    );
    if flaky {
        let column = format!("{:>5}", counts.flaky);
        let column = if counts.flaky > 0 {
            paint.apply(YELLOW, &column)
        } else {
            column
        };
        row.push_str(&format!("  {column}"));
    }
    row.push_str(&format!(
        "  {:>8}",
        format!("{:.2}s", duration.as_secs_f64())
    ));
    row
}

/// The total line, green when nothing failed, red otherwise.
fn summary(counts: Counts, paint: Paint) -> String {
    let colour = match (counts.failed, counts.flaky) {
        (0, 0) => GREEN,
        (0, _) => YELLOW,
        _ => RED,
    };
    paint.apply(colour, &counts.summary_line())
}

#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn apply(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("{code}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cause, Failure, ModuleReport, Outcome, Retry, TestCase};

    fn report(failing: bool) -> TestReport {
        let mut tests = vec![
            TestCase::test("tests::ok", Outcome::Passed),
            TestCase::test("tests::later", Outcome::Ignored { reason: None }),
        ];
        if failing {
            tests.push(TestCase::test(
                "tests::fails",
                Outcome::failed("boom", "captured line\nthread panicked: boom\n"),
            ));
        }
        TestReport {
            modules: vec![
                ModuleReport {
                    module: "mod-a".into(),
                    package: "mod-a".into(),
                    tests,
                    duration: Duration::from_millis(40),
                },
                ModuleReport {
                    module: "mod-longer-name".into(),
                    package: "mod-longer-name".into(),
                    tests: vec![TestCase::test("load check", Outcome::Passed)],
                    duration: Duration::from_millis(5),
                },
            ],
            duration: Duration::from_millis(1234),
            started: None,
        }
    }

    #[test]
    fn a_green_report_is_a_table_and_the_total_line() {
        let text = render(&report(false), false);
        assert_eq!(
            text,
            "\
module           passed  failed  ignored      time
mod-a                 1       0        1     0.04s
mod-longer-name       1       0        0     0.01s
total                 2       0        1     1.23s

2 passed, 0 failed, 1 skipped
"
        );
    }

    #[test]
    fn failures_follow_with_their_output_and_the_total_line_closes() {
        let text = render(&report(true), false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.contains(&"mod-a                 1       1        1     0.04s"),
            "{text}"
        );
        assert!(text.contains("\n\nfailures:\n\n---- mod-a: tests::fails ----\ncaptured line\nthread panicked: boom\n"), "{text}");
        let summaries: Vec<&&str> = lines
            .iter()
            .filter(|l| **l == "2 passed, 1 failed, 1 skipped")
            .collect();
        assert_eq!(summaries.len(), 2, "{text}");
        assert_eq!(lines.last(), Some(&"2 passed, 1 failed, 1 skipped"));
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn flaky_tests_get_a_column_and_a_line_crashes_and_timeouts_say_so() {
        let mut report = report(false);
        let mut flaky = TestCase::test("tests::sometimes", Outcome::Passed);
        flaky.retries.push(Retry {
            failure: Failure::new("first time", ""),
            duration: Duration::ZERO,
            started: None,
        });
        let crash = Failure {
            cause: Cause::Crashed { signal: 6 },
            message: "the test process was killed by signal 6 (SIGABRT: abort)".into(),
            stdout: "before".into(),
            stderr: String::new(),
        };
        let hang = Failure {
            cause: Cause::TimedOut {
                after: Duration::from_secs(1),
            },
            ..Failure::new("timed out after 1.00 s", "")
        };
        report.modules[0].tests.extend([
            flaky,
            TestCase::test("tests::aborts", Outcome::Failed(crash)),
            TestCase::test("tests::hangs", Outcome::Failed(hang)),
        ]);
        let text = render(&report, false);
        assert!(
            text.starts_with(
                "module           passed  failed  ignored  flaky      time\n\
                 mod-a                 1       2        1      1     0.04s\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\n2 passed, 2 failed, 1 flaky, 1 skipped\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "flaky (passed on a retry):\n  mod-a: tests::sometimes (passed on attempt 2; \
                 first failure: first time)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "---- mod-a: tests::aborts ----\nCRASHED: the test process was killed by signal 6 \
                 (SIGABRT: abort)\nbefore\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("---- mod-a: tests::hangs ----\nTIMED OUT: timed out after 1.00 s\n"),
            "{text}"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let text = render(&report(true), true);
        assert!(
            text.contains(&format!("{RED}2 passed, 1 failed, 1 skipped{RESET}")),
            "{text}"
        );
        assert!(text.contains(&format!("{RED}mod-a")), "{text}");
        let green = render(&report(false), true);
        assert!(green.contains(&format!("{GREEN}2 passed, 0 failed, 1 skipped{RESET}")));
    }
}
