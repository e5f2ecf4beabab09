//! The combined report of `cargo orch test`: every module, its tests, and the
//! totals. Rendering lives beside it ([`super::table`], [`super::junit`],
//! [`super::json`]); this file only holds the data and the counting.

use std::time::Duration;

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It failed: a one-line `message` (the panic message when there is one) and
    /// the whole captured `output`.
    Failed {
        /// One line saying why, for summaries and JUnit's `message` attribute.
        message: String,
        /// Everything the test printed (libtest's captured output), the compiler's
        /// first error, or the load check's failure.
        output: String,
    },
    /// It was not run (`#[ignore]`), with libtest's reason when one was given.
    Ignored {
        /// `#[ignore = "reason"]`.
        reason: Option<String>,
    },
}

impl Outcome {
    /// A failure with `message` and `output`.
    pub fn failed(message: impl Into<String>, output: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            output: output.into(),
        }
    }

    /// `passed`, `failed` or `ignored`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed { .. } => "failed",
            Self::Ignored { .. } => "ignored",
        }
    }
}

/// What a report entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseKind {
    /// One `#[test]` of the module's library or integration tests.
    Test,
    /// A whole test binary, when its tests cannot be told apart (a custom
    /// harness, or a binary that crashed).
    Binary,
    /// Compiling the module's tests (failed: they do not compile).
    Build,
    /// Loading the module in a scratch host: ABI, initialize, start, shutdown.
    LoadCheck,
}

impl CaseKind {
    /// `test`, `binary`, `build` or `load-check`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Binary => "binary",
            Self::Build => "build",
            Self::LoadCheck => "load-check",
        }
    }
}

/// One entry of a module's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// The test's path (`tests::parses`; `api::round_trip` for a test of the
    /// integration test `tests/api.rs`), or `build` / `load check`.
    pub name: String,
    /// What the entry stands for.
    pub kind: CaseKind,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took, when known: libtest's human output gives no time per
    /// test, so a `#[test]` has zero; a binary, a build or a load check has its own.
    pub duration: Duration,
}

impl TestCase {
    /// A `#[test]` with no time of its own.
    pub fn test(name: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            name: name.into(),
            kind: CaseKind::Test,
            outcome,
            duration: Duration::ZERO,
        }
    }

    /// Whether it failed.
    pub fn is_failure(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
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
    /// The time of its test binaries and load check, added up (they run in
    /// parallel with other modules', so the rows can add up to more than the
    /// wall time).
    pub duration: Duration,
}

impl ModuleReport {
    /// How many of its entries passed, failed and were ignored.
    pub fn counts(&self) -> Counts {
        Counts::of(&self.tests)
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestReport {
    /// One report per module, in the order they were asked for.
    pub modules: Vec<ModuleReport>,
    /// Wall time of the whole run, builds included.
    pub duration: Duration,
}

impl TestReport {
    /// The totals over every module.
    pub fn counts(&self) -> Counts {
        self.modules
            .iter()
            .map(ModuleReport::counts)
            .fold(Counts::default(), |a, b| Counts {
                passed: a.passed + b.passed,
                failed: a.failed + b.failed,
                ignored: a.ignored + b.ignored,
            })
    }

    /// True when nothing failed (ignored tests do not count against it).
    pub fn success(&self) -> bool {
        self.counts().failed == 0
    }

    /// Every failed entry with its module, in report order.
    pub fn failures(&self) -> impl Iterator<Item = (&ModuleReport, &TestCase)> {
        self.modules
            .iter()
            .flat_map(|m| m.tests.iter().map(move |t| (m, t)))
            .filter(|(_, t)| t.is_failure())
    }
}

/// Passed, failed and ignored counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Entries that passed.
    pub passed: usize,
    /// Entries that failed.
    pub failed: usize,
    /// Entries not run (`#[ignore]`).
    pub ignored: usize,
}

impl Counts {
    /// The counts of `tests`.
    pub fn of(tests: &[TestCase]) -> Self {
        let mut counts = Self::default();
        for test in tests {
            match test.outcome {
                Outcome::Passed => counts.passed += 1,
                Outcome::Failed { .. } => counts.failed += 1,
                Outcome::Ignored { .. } => counts.ignored += 1,
            }
        }
        counts
    }

    /// The line CI reads: `N passed, N failed`, with `, N skipped` appended
    /// when some tests were ignored.
    pub fn summary_line(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed, self.failed);
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

    #[test]
    fn the_summary_line_has_the_exact_form_ci_reads() {
        let counts = Counts {
            passed: 12,
            failed: 0,
            ignored: 0,
        };
        assert_eq!(counts.summary_line(), "12 passed, 0 failed");
        let counts = Counts {
            passed: 3,
            failed: 1,
            ignored: 2,
        };
        assert_eq!(counts.summary_line(), "3 passed, 1 failed, 2 skipped");
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
            duration: Duration::ZERO,
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
                ignored: 0
            }
        );
    }
}
