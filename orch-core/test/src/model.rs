//! The combined report of `cargo orch test`: every module, its tests, and the
//! totals. Rendering lives beside it ([`super::table`], [`super::junit`],
//! [`super::json`]); this file only holds the data and the counting.

use std::time::{Duration, SystemTime};

/// Why a test failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// It failed on its own: a panic, a failed assertion, a non-zero exit.
    Failed,
    /// Its process was killed by a signal it did not handle (SIGSEGV,
    /// SIGABRT, ...), with the signal's number as the wait status gave it.
    Crashed {
        /// The signal number.
        signal: i32,
    },
    /// It ran past its timeout and was killed.
    TimedOut {
        /// The timeout it ran past.
        after: Duration,
    },
}

impl Cause {
    /// `failed`, `crashed` or `timed-out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Crashed { .. } => "crashed",
            Self::TimedOut { .. } => "timed-out",
        }
    }

    /// The signal's name (`SIGSEGV`) of a crash by a known signal.
    pub fn signal_name(self) -> Option<&'static str> {
        match self {
            Self::Crashed { signal } => orch_process::ExitReason::Signal(signal).signal_name(),
            _ => None,
        }
    }
}

/// A failed run of a test (or a failed build or load check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Why it failed.
    pub cause: Cause,
    /// One line saying why, for summaries and JUnit's `message` attribute.
    pub message: String,
    /// What it printed on stdout (libtest's captured output in `--fast`
    /// mode), or the compiler's first error, or the load check's failure.
    pub stdout: String,
    /// What it printed on stderr (the panic message, a backtrace).
    pub stderr: String,
}

impl Failure {
    /// A plain failure with `message`, its output all in `stdout`.
    pub fn new(message: impl Into<String>, output: impl Into<String>) -> Self {
        Self {
            cause: Cause::Failed,
            message: message.into(),
            stdout: output.into(),
            stderr: String::new(),
        }
    }

    /// Stdout, then stderr after a `--- stderr ---` line when both hold
    /// something: everything it printed, for people.
    pub fn output(&self) -> String {
        let stdout = self.stdout.trim_end();
        let stderr = self.stderr.trim_end();
        match (stdout.is_empty(), stderr.is_empty()) {
            (_, true) => stdout.to_owned(),
            (true, false) => stderr.to_owned(),
            (false, false) => format!("{stdout}\n--- stderr ---\n{stderr}"),
        }
    }

    /// What a report shows of it: a crash or a timeout's message first
    /// (`CRASHED: ...`, `TIMED OUT: ...`), then the output; the message alone
    /// when there is no output.
    pub fn report(&self) -> String {
        let output = self.output();
        let word = match self.cause {
            Cause::Crashed { .. } => "CRASHED",
            Cause::TimedOut { .. } => "TIMED OUT",
            Cause::Failed if output.trim().is_empty() => return self.message.clone(),
            Cause::Failed => return output,
        };
        let head = format!("{word}: {}", self.message);
        if output.trim().is_empty() {
            head
        } else {
            format!("{head}\n{output}")
        }
    }
}

/// How one test ended, its last attempt when it was retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It failed.
    Failed(Failure),
    /// It was not run (`#[ignore]`), with libtest's reason when one was given.
    Ignored {
        /// `#[ignore = "reason"]`.
        reason: Option<String>,
    },
}

impl Outcome {
    /// A plain failure with `message` and `output`.
    pub fn failed(message: impl Into<String>, output: impl Into<String>) -> Self {
        Self::Failed(Failure::new(message, output))
    }

    /// `passed`, `failed` or `ignored`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed(_) => "failed",
            Self::Ignored { .. } => "ignored",
        }
    }

    /// The failure, when it failed.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Self::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

/// What a report entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseKind {
    /// One `#[test]` of the module's library or integration tests.
    Test,
    /// One doc test of the module's library.
    DocTest,
    /// A whole test binary, when its tests cannot be told apart (a custom
    /// harness, or a `--fast` binary that crashed).
    Binary,
    /// Compiling the module's tests (failed: they do not compile).
    Build,
    /// Loading the module in a scratch host: ABI, initialize, start, shutdown.
    LoadCheck,
}

impl CaseKind {
    /// `test`, `doc-test`, `binary`, `build` or `load-check`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::DocTest => "doc-test",
            Self::Binary => "binary",
            Self::Build => "build",
            Self::LoadCheck => "load-check",
        }
    }
}

/// A failed attempt of a test that was run again (`--retries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// How the attempt failed.
    pub failure: Failure,
    /// How long it took.
    pub duration: Duration,
    /// When it started.
    pub started: Option<SystemTime>,
}

/// Where a test stands in the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Passed at its first attempt.
    Passed,
    /// Failed, then passed on a retry: reported, never counted as a pass.
    Flaky,
    /// Failed every attempt.
    Failed,
    /// Not run.
    Ignored,
}

impl Status {
    /// `passed`, `flaky`, `failed` or `ignored`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Flaky => "flaky",
            Self::Failed => "failed",
            Self::Ignored => "ignored",
        }
    }
}

/// One entry of a module's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// The test's path (`tests::parses`; `api::round_trip` for a test of the
    /// integration test `tests/api.rs`; `src/lib.rs - double (line 5)` for a
    /// doc test), or `build` / `load check`.
    pub name: String,
    /// What the entry stands for.
    pub kind: CaseKind,
    /// How its last attempt ended.
    pub outcome: Outcome,
    /// How long its last attempt took (zero when it was not run).
    pub duration: Duration,
    /// When its last attempt started, when it ran.
    pub started: Option<SystemTime>,
    /// Its earlier, failed attempts, oldest first (`--retries`).
    pub retries: Vec<Retry>,
}

impl TestCase {
    /// A `#[test]` that took no time of its own.
    pub fn test(name: impl Into<String>, outcome: Outcome) -> Self {
        Self::new(name, CaseKind::Test, outcome, Duration::ZERO)
    }

    /// An entry of `kind`.
    pub fn new(
        name: impl Into<String>,
        kind: CaseKind,
        outcome: Outcome,
        duration: Duration,
    ) -> Self {
        Self {
            name: name.into(),
            kind,
            outcome,
            duration,
            started: None,
            retries: Vec::new(),
        }
    }

    /// Where it stands: a pass after failed attempts is flaky.
    pub fn status(&self) -> Status {
        match (&self.outcome, self.retries.is_empty()) {
            (Outcome::Passed, true) => Status::Passed,
            (Outcome::Passed, false) => Status::Flaky,
            (Outcome::Failed(_), _) => Status::Failed,
            (Outcome::Ignored { .. }, _) => Status::Ignored,
        }
    }

    /// Whether it failed (every attempt).
    pub fn is_failure(&self) -> bool {
        self.status() == Status::Failed
    }

    /// Whether it passed only on a retry.
    pub fn is_flaky(&self) -> bool {
        self.status() == Status::Flaky
    }

    /// How many times it ran (0 when ignored).
    pub fn attempts(&self) -> usize {
        match self.outcome {
            Outcome::Ignored { .. } => 0,
            _ => self.retries.len() + 1,
        }
    }
}

/// One module's row: its tests, its load check, and the time they took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleReport {
    /// The module's name in `config/modules.yaml`.
    pub module: String,
    /// Its cargo package.
    pub package: String,
    /// Its entries, in the order they ran.
    pub tests: Vec<TestCase>,
    /// The time of its entries, added up (they run in parallel with each
    /// other and with other modules', so the rows can add up to more than
    /// the wall time).
    pub duration: Duration,
}

impl ModuleReport {
    /// How many of its entries passed, failed, were flaky and were ignored.
    pub fn counts(&self) -> Counts {
        Counts::of(&self.tests)
    }

    /// When its first entry started.
    pub fn started(&self) -> Option<SystemTime> {
        self.tests.iter().filter_map(|t| t.started).min()
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestReport {
    /// One report per module, in the order they were asked for.
    pub modules: Vec<ModuleReport>,
    /// Wall time of the whole run, builds included.
    pub duration: Duration,
    /// When the run started.
    pub started: Option<SystemTime>,
}

impl TestReport {
    /// The totals over every module.
    pub fn counts(&self) -> Counts {
        self.modules
            .iter()
            .map(ModuleReport::counts)
            .fold(Counts::default(), Counts::plus)
    }

    /// True when nothing failed (ignored and flaky tests do not count
    /// against it).
    pub fn success(&self) -> bool {
        self.counts().failed == 0
    }

    /// Every failed entry with its module, in report order.
    pub fn failures(&self) -> impl Iterator<Item = (&ModuleReport, &TestCase)> {
        self.entries().filter(|(_, t)| t.is_failure())
    }

    /// Every flaky entry with its module, in report order.
    pub fn flaky(&self) -> impl Iterator<Item = (&ModuleReport, &TestCase)> {
        self.entries().filter(|(_, t)| t.is_flaky())
    }

    fn entries(&self) -> impl Iterator<Item = (&ModuleReport, &TestCase)> {
        self.modules
            .iter()
            .flat_map(|m| m.tests.iter().map(move |t| (m, t)))
    }
}

/// Passed, failed, flaky and ignored counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Entries that passed at their first attempt.
    pub passed: usize,
    /// Entries that failed every attempt.
    pub failed: usize,
    /// Entries that failed, then passed on a retry.
    pub flaky: usize,
    /// Entries not run (`#[ignore]`).
    pub ignored: usize,
}

impl Counts {
    /// The counts of `tests`.
    pub fn of(tests: &[TestCase]) -> Self {
        let mut counts = Self::default();
        for test in tests {
            match test.status() {
                Status::Passed => counts.passed += 1,
                Status::Failed => counts.failed += 1,
                Status::Flaky => counts.flaky += 1,
                Status::Ignored => counts.ignored += 1,
            }
        }
        counts
    }

    /// Both counts added up.
    pub fn plus(self, other: Self) -> Self {
        Self {
            passed: self.passed + other.passed,
            failed: self.failed + other.failed,
            flaky: self.flaky + other.flaky,
            ignored: self.ignored + other.ignored,
        }
    }

    /// Every entry counted.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.flaky + self.ignored
    }

    /// The line CI reads: `N passed, N failed`, then `, N flaky` when some
    /// passed only on a retry and `, N skipped` when some were ignored.
    pub fn summary_line(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed, self.failed);
        if self.flaky > 0 {
            line.push_str(&format!(", {} flaky", self.flaky));
        }
        if self.ignored > 0 {
            line.push_str(&format!(", {} skipped", self.ignored));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str, outcomes: &[Outcome]) -> ModuleReport {
        ModuleReport {
            module: name.into(),
            package: name.into(),
            tests: outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| TestCase::test(format!("t{i}"), o.clone()))
                .collect(),
            duration: Duration::ZERO,
        }
    }

    fn retry(message: &str) -> Retry {
        Retry {
            failure: Failure::new(message, ""),
            duration: Duration::from_millis(3),
            started: None,
        }
    }

    #[test]
    fn the_summary_line_has_the_exact_form_ci_reads() {
        let counts = Counts {
            passed: 12,
            ..Counts::default()
        };
        assert_eq!(counts.summary_line(), "12 passed, 0 failed");
        let counts = Counts {
            passed: 3,
            failed: 1,
            flaky: 0,
            ignored: 2,
        };
        assert_eq!(counts.summary_line(), "3 passed, 1 failed, 2 skipped");
        let counts = Counts { flaky: 1, ..counts };
        assert_eq!(
            counts.summary_line(),
            "3 passed, 1 failed, 1 flaky, 2 skipped"
        );
        assert_eq!(counts.total(), 7);
        assert_eq!(Counts::default().summary_line(), "0 passed, 0 failed");
    }

    #[test]
    fn counts_add_up_over_modules_and_ignored_tests_do_not_fail_the_run() {
        let ignored = Outcome::Ignored { reason: None };
        let green = TestReport {
            modules: vec![
                module("a", &[Outcome::Passed, ignored.clone()]),
                module("b", &[Outcome::Passed]),
            ],
            ..TestReport::default()
        };
        assert_eq!(
            green.counts().summary_line(),
            "2 passed, 0 failed, 1 skipped"
        );
        assert!(green.success());
        assert_eq!(green.failures().count(), 0);

        let mut red = green.clone();
        red.modules[1]
            .tests
            .push(TestCase::test("boom", Outcome::failed("x", "y")));
        assert!(!red.success());
        let failures: Vec<_> = red
            .failures()
            .map(|(m, t)| (m.module.as_str(), t.name.as_str()))
            .collect();
        assert_eq!(failures, [("b", "boom")]);
        assert_eq!(
            red.modules[1].counts(),
            Counts {
                passed: 1,
                failed: 1,
                ..Counts::default()
            }
        );
    }

    #[test]
    fn a_pass_after_a_failed_attempt_is_flaky_never_a_plain_pass() {
        let mut case = TestCase::test("sometimes", Outcome::Passed);
        assert_eq!((case.status(), case.attempts()), (Status::Passed, 1));
        case.retries.push(retry("first try failed"));
        assert_eq!((case.status(), case.attempts()), (Status::Flaky, 2));
        let report = TestReport {
            modules: vec![ModuleReport {
                tests: vec![case.clone()],
                ..module("a", &[])
            }],
            ..TestReport::default()
        };
        assert!(report.success(), "flaky tests do not fail the run");
        assert_eq!(
            report.counts().summary_line(),
            "0 passed, 0 failed, 1 flaky"
        );
        assert_eq!(report.flaky().count(), 1);

        case.outcome = Outcome::failed("still broken", "");
        assert_eq!((case.status(), case.attempts()), (Status::Failed, 2));
        let ignored = TestCase::test("later", Outcome::Ignored { reason: None });
        assert_eq!(ignored.attempts(), 0);
    }

    #[test]
    fn a_failure_s_output_is_stdout_then_stderr() {
        let mut failure = Failure::new("boom", "printed\n");
        assert_eq!(failure.output(), "printed");
        failure.stderr = "panicked\n".into();
        assert_eq!(failure.output(), "printed\n--- stderr ---\npanicked");
        failure.stdout.clear();
        assert_eq!(failure.output(), "panicked");
        assert_eq!(failure.report(), "panicked");
        failure.cause = Cause::TimedOut {
            after: Duration::from_secs(1),
        };
        assert_eq!(failure.report(), "TIMED OUT: boom\npanicked");
        failure.stderr.clear();
        assert_eq!(failure.report(), "TIMED OUT: boom");
        let crash = Cause::Crashed { signal: 11 };
        assert_eq!(
            (crash.as_str(), crash.signal_name()),
            ("crashed", Some("SIGSEGV"))
        );
        assert_eq!(Cause::Failed.signal_name(), None);
    }
}
