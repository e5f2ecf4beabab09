//! A test binary's run judged: its libtest output and its exit turned into
//! report entries. Shared by `--fast` (a binary's whole run) and the per-test
//! mode (a test whose run did not end as one test should).

use super::exec::Execution;
use super::libtest::{self, Status, failure_message};
use super::model::{Cause, Failure, Outcome, TestCase};
use super::runner::{BinaryJob, binary_case, cap, signal_words, test_name};

/// Turns a binary's output and exit into report entries: one per test libtest
/// reported; a failed entry for a test it started but never finished; and one
/// for the binary itself when it failed without a failed test to show for it
/// (a crash, a timeout) or does not use libtest at all (`harness = false`).
pub fn interpret(job: &BinaryJob, done: &Execution) -> Vec<TestCase> {
    let binary = &job.binary;
    let stdout = done.stdout_text();
    let stderr = done.stderr_text();
    let exit = done.exit;
    let why = || {
        if done.timed_out {
            format!(
                "timed out: no test finished for {} (test.timeout)",
                orch_sdk::duration::human(job.timeout.unwrap_or_default())
            )
        } else {
            format!("the test binary {}", exit.with_number())
        }
    };
    let cause = if done.timed_out {
        Cause::TimedOut {
            after: job.timeout.unwrap_or_default(),
        }
    } else if let orch_process::ExitReason::Signal(signal) = exit {
        Cause::Crashed { signal }
    } else {
        Cause::Failed
    };
    let broken = |message: String| {
        Outcome::Failed(Failure {
            cause,
            message,
            stdout: cap(&stdout),
            stderr: cap(&stderr),
        })
    };
    let parsed = libtest::parse(&stdout);
    if !parsed.harness_seen {
        let outcome = if exit.is_success() && !done.timed_out {
            Outcome::Passed
        } else {
            broken(why())
        };
        return vec![binary_case(binary, outcome, done.duration)];
    }
    let mut cases: Vec<TestCase> = parsed
        .tests
        .into_iter()
        .map(|test| {
            let outcome = match test.status {
                Status::Passed => Outcome::Passed,
                Status::Ignored(reason) => Outcome::Ignored { reason },
                Status::Failed => {
                    let output = test.output.unwrap_or_default();
                    Outcome::failed(failure_message(&output), cap(&output))
                }
            };
            TestCase::test(test_name(binary, &test.name), outcome)
        })
        .collect();
    // libtest prints results as tests finish; the report lists them by name.
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    let ended = !exit.is_success() || done.timed_out;
    for name in parsed.unfinished {
        let outcome = if ended {
            broken(format!("did not finish: {}", why()))
        } else {
            Outcome::Passed
        };
        cases.push(TestCase::test(test_name(binary, &name), outcome));
    }
    if ended && !cases.iter().any(TestCase::is_failure) {
        let message = if done.timed_out {
            why()
        } else if parsed.finished {
            format!("{} although no test failed", why())
        } else if let orch_process::ExitReason::Signal(_) = exit {
            format!(
                "the test binary was {} before it finished",
                signal_words(exit)
            )
        } else {
            format!("{} before it finished", why())
        };
        cases.push(binary_case(binary, broken(message), done.duration));
    }
    cases
}
