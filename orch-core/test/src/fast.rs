//! `--fast`: each test binary in one process, as `cargo test` runs it, its
//! libtest output read line by line (`test NAME ... ok|FAILED|ignored`, the
//! captured output of each failure). One process start per binary instead
//! of one per test, at a price: a crash takes the whole binary down (the
//! report names the binary, and the tests it left unfinished), tests have no
//! time of their own, and the timeout is "no test finished for
//! `test.timeout`" rather than a limit per test. Failed tests still run again
//! alone with `--retries`.

use std::time::{Duration, Instant};

use super::exec::{Watch, execute};
use super::libtest;
use super::model::{CaseKind, Outcome, Retry, TestCase};
use super::per_test;
use super::progress::Mark;
use super::runner::{self, BinaryJob, Env, binary_case};
use super::verdict::interpret;

/// Stops a binary when no test finished for its timeout.
struct Inactivity {
    timeout: Option<Duration>,
    last: Instant,
}

impl Watch for Inactivity {
    fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|t| self.last + t)
    }

    fn wants_lines(&self) -> bool {
        self.timeout.is_some()
    }

    fn line(&mut self, line: &str, at: Instant) {
        if libtest::is_result_line(line) {
            self.last = at;
        }
    }
}

/// Runs `job`'s binary once, then each failed test alone while retries are
/// left; the entries and the binary's time.
pub fn run(job: &BinaryJob, env: Env<'_>) -> (Vec<TestCase>, Duration) {
    let label = format!(
        "{} {}",
        job.module,
        runner::binary_case(&job.binary, Outcome::Passed, Duration::ZERO).name
    );
    let ticket = env.progress.start(&label);
    let mut command = runner::command(&job.binary, &job.args);
    let mut watch = Inactivity {
        timeout: job.timeout,
        last: Instant::now(),
    };
    let (cases, duration) = match execute(&mut command, env.children, &mut watch, false) {
        Ok(done) => (interpret(job, &done), done.duration),
        Err(error) => (
            vec![binary_case(
                &job.binary,
                Outcome::failed(
                    format!("cannot run {}: {error}", job.binary.path.display()),
                    "",
                ),
                Duration::ZERO,
            )],
            Duration::ZERO,
        ),
    };
    let failed = cases.iter().any(TestCase::is_failure);
    let mark = if failed { Mark::Fail } else { Mark::Pass };
    env.progress.finish(ticket, mark, duration, &label, "");
    if job.retries == 0 {
        return (cases, duration);
    }
    let cases = cases
        .into_iter()
        .map(|case| match (&case.outcome, case.kind) {
            (Outcome::Failed(failure), CaseKind::Test) => {
                let name = case
                    .name
                    .strip_prefix(&format!("{}::", job.binary.target))
                    .filter(|_| !job.binary.is_lib)
                    .unwrap_or(&case.name)
                    .to_owned();
                let first = Retry {
                    failure: failure.clone(),
                    duration: case.duration,
                    started: case.started,
                };
                per_test::run_test(job, &name, false, vec![first], env)
            }
            _ => case,
        })
        .collect();
    (cases, duration)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::SystemTime;

    use orch_process::{ExitReason, ProcessGroups};

    use super::*;
    use crate::exec::Execution;
    use crate::model::Cause;
    use crate::progress::Progress;

    fn job(is_lib: bool) -> BinaryJob {
        BinaryJob {
            module: "mod-a".into(),
            binary: runner::fake_binary(is_lib),
            args: Vec::new(),
            timeout: Some(Duration::from_secs(5)),
            retries: 0,
        }
    }

    fn done(stdout: &str, stderr: &str, exit: ExitReason) -> Execution {
        Execution {
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            dropped: 0,
            exit,
            timed_out: false,
            leaked: false,
            started: SystemTime::now(),
            duration: Duration::from_millis(5),
        }
    }

    fn names(cases: &[TestCase]) -> Vec<(&str, &str)> {
        cases
            .iter()
            .map(|c| (c.name.as_str(), c.outcome.as_str()))
            .collect()
    }

    #[test]
    fn integration_tests_are_prefixed_with_their_target() {
        let stdout = "running 2 tests\ntest round_trip ... ok\ntest slow ... ignored\n\n\
                      test result: ok. 1 passed; 0 failed; 1 ignored\n";
        let cases = interpret(&job(false), &done(stdout, "", ExitReason::Code(0)));
        assert_eq!(
            names(&cases),
            [("api::round_trip", "passed"), ("api::slow", "ignored")]
        );
        let cases = interpret(&job(true), &done(stdout, "", ExitReason::Code(0)));
        assert_eq!(names(&cases)[0], ("round_trip", "passed"));
    }

    #[test]
    fn a_failed_test_keeps_its_output_and_panic_message() {
        let stdout = "running 1 test\ntest t ... FAILED\n\nfailures:\n\n---- t stdout ----\n\
                      printed\nthread 't' panicked at src/lib.rs:1:1:\nno good\n\n\
                      failures:\n    t\n\ntest result: FAILED. 0 passed; 1 failed; 0 ignored\n";
        let cases = interpret(&job(true), &done(stdout, "", ExitReason::Code(101)));
        assert_eq!(cases.len(), 1, "no extra entry for the binary");
        assert_eq!(
            cases[0].outcome,
            Outcome::failed(
                "no good",
                "printed\nthread 't' panicked at src/lib.rs:1:1:\nno good"
            )
        );
    }

    #[test]
    fn a_crash_is_a_failure_of_the_binary_with_its_signal() {
        let stdout = "running 2 tests\ntest first ... ok\n";
        let cases = interpret(
            &job(true),
            &done(
                stdout,
                "fatal runtime error: stack overflow",
                ExitReason::Signal(6),
            ),
        );
        assert_eq!(
            names(&cases),
            [("first", "passed"), ("unit tests (test binary)", "failed")]
        );
        let failure = cases[1].outcome.failure().expect("failed");
        assert_eq!(
            failure.message,
            "the test binary was killed by signal 6 (SIGABRT: abort) before it finished"
        );
        assert_eq!(failure.cause, Cause::Crashed { signal: 6 });
        assert!(
            failure
                .output()
                .ends_with("--- stderr ---\nfatal runtime error: stack overflow"),
            "{}",
            failure.output()
        );
        assert_eq!(cases[1].kind, CaseKind::Binary);
    }

    #[test]
    fn a_test_left_unfinished_by_a_timeout_fails_as_timed_out() {
        let mut killed = done(
            "running 1 test\ntest hangs ... ",
            "",
            ExitReason::Signal(15),
        );
        killed.timed_out = true;
        let cases = interpret(&job(false), &killed);
        assert_eq!(names(&cases), [("api::hangs", "failed")]);
        let failure = cases[0].outcome.failure().expect("failed");
        assert_eq!(
            failure.message,
            "did not finish: timed out: no test finished for 5.00 s (test.timeout)"
        );
        assert!(matches!(failure.cause, Cause::TimedOut { .. }));
    }

    #[test]
    fn a_binary_without_libtest_passes_or_fails_by_its_exit_code() {
        let cases = interpret(
            &job(false),
            &done("custom main ran\n", "", ExitReason::Code(0)),
        );
        assert_eq!(names(&cases), [("api (test binary)", "passed")]);
        assert_eq!(cases[0].duration, Duration::from_millis(5));
        let cases = interpret(
            &job(false),
            &done("", "assertion failed", ExitReason::Code(1)),
        );
        let failure = cases[0].outcome.failure().expect("failed");
        assert_eq!(failure.message, "the test binary exited with code 1");
        assert_eq!(failure.output(), "assertion failed");
    }

    #[test]
    fn runs_real_processes_and_stops_one_where_no_test_finishes() {
        // `sh -c` stands in for a test binary: it prints libtest's format.
        let job = |script: &str| BinaryJob {
            binary: crate::compile::TestBinary {
                path: PathBuf::from("/bin/sh"),
                manifest_dir: std::env::temp_dir(),
                ..runner::fake_binary(true)
            },
            args: vec!["-c".into(), script.into()],
            timeout: Some(Duration::from_millis(300)),
            ..job(true)
        };
        let (children, progress) = (ProcessGroups::default(), Progress::silent());
        let env = Env {
            children: &children,
            progress: &progress,
        };
        let (cases, duration) = run(
            &job(
                "printf 'running 2 tests\\ntest a ... ok\\n'; sleep 0.1; printf 'test b ... ok\\n'",
            ),
            env,
        );
        assert_eq!(names(&cases), [("a", "passed"), ("b", "passed")]);
        assert!(duration > Duration::ZERO);
        let (cases, _) = run(
            &job("printf 'running 2 tests\\ntest a ... ok\\n'; sleep 60"),
            env,
        );
        assert_eq!(
            names(&cases),
            [("a", "passed"), ("unit tests (test binary)", "failed")]
        );
    }
}
