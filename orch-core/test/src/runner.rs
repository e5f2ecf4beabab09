//! Running test binaries, several at once (up to the number of cores), and
//! turning each one's libtest output into report entries.
//!
//! A binary runs as `cargo test` would run it: in its package's folder, with
//! `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME` and friends set, and the arguments
//! given after `--` (then the module's `test.args`).

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::compile::TestBinary;
use super::libtest::{self, Status, failure_message, strip_ansi};
use super::model::{CaseKind, Outcome, TestCase};
use orch_process::{ExitReason, ProcessGroups};

/// The most captured output kept for one failure (its end is kept).
const MAX_OUTPUT: usize = 64 * 1024;

/// One binary to run with its arguments.
#[derive(Debug, Clone)]
pub struct BinaryJob {
    /// The executable and what it tests.
    pub binary: TestBinary,
    /// Arguments for libtest (filters, `--include-ignored`, ...).
    pub args: Vec<String>,
}

/// What one binary reported.
#[derive(Debug, Clone)]
pub struct BinaryRun {
    /// Its entries.
    pub tests: Vec<TestCase>,
    /// Its wall time.
    pub duration: Duration,
}

/// Runs every job, at most `workers` at a time; the runs come back in job order.
pub fn run_all(jobs: &[BinaryJob], workers: usize, children: &ProcessGroups) -> Vec<BinaryRun> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<BinaryRun>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, jobs.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(index) else {
                        break;
                    };
                    let run = run_one(job, children);
                    results.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(run);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(jobs)
        .map(|(run, job)| {
            run.unwrap_or_else(|| BinaryRun {
                tests: vec![binary_case(
                    &job.binary,
                    Outcome::failed("the test binary did not run", ""),
                    Duration::ZERO,
                )],
                duration: Duration::ZERO,
            })
        })
        .collect()
}

/// Runs one binary and reads its results.
pub fn run_one(job: &BinaryJob, children: &ProcessGroups) -> BinaryRun {
    let started = Instant::now();
    let binary = &job.binary;
    let mut command = command(job);
    let child = match children.spawn(&mut command) {
        Ok(child) => child,
        Err(error) => {
            let outcome =
                Outcome::failed(format!("cannot run {}: {error}", binary.path.display()), "");
            return BinaryRun {
                tests: vec![binary_case(binary, outcome, Duration::ZERO)],
                duration: started.elapsed(),
            };
        }
    };
    let pid = child.id();
    let output = child.wait_with_output();
    children.release(pid);
    let duration = started.elapsed();
    let tests = match output {
        Ok(output) => interpret(
            binary,
            &String::from_utf8_lossy(&output.stdout),
            &String::from_utf8_lossy(&output.stderr),
            ExitReason::from_status(output.status),
            duration,
        ),
        Err(error) => vec![binary_case(
            binary,
            Outcome::failed(format!("cannot read the test binary's output: {error}"), ""),
            duration,
        )],
    };
    BinaryRun { tests, duration }
}

fn command(job: &BinaryJob) -> Command {
    let binary = &job.binary;
    let mut command = Command::new(&binary.path);
    command
        .args(&job.args)
        .current_dir(&binary.manifest_dir)
        .env("CARGO_MANIFEST_DIR", &binary.manifest_dir)
        .env(
            "CARGO_MANIFEST_PATH",
            binary.manifest_dir.join("Cargo.toml"),
        )
        .env("CARGO_PKG_NAME", &binary.package)
        .env("CARGO_CRATE_NAME", binary.target.replace('-', "_"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cargo) = std::env::var_os("CARGO") {
        command.env("CARGO", cargo);
    }
    // As cargo does: the build's library folders first, for dynamic libraries.
    if let Some(deps) = binary.path.parent() {
        let mut paths: Vec<std::path::PathBuf> = vec![deps.to_path_buf()];
        paths.extend(deps.parent().map(std::path::Path::to_path_buf));
        if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH") {
            paths.extend(std::env::split_paths(&existing));
        }
        if let Ok(joined) = std::env::join_paths(paths) {
            command.env("LD_LIBRARY_PATH", joined);
        }
    }
    command
}

/// Turns a binary's output and exit into report entries: one per test libtest
/// reported; a failed entry for a test it started but never finished; and one
/// for the binary itself when it failed without a failed test to show for it
/// (a crash) or does not use libtest at all (`harness = false`).
pub fn interpret(
    binary: &TestBinary,
    stdout: &str,
    stderr: &str,
    exit: ExitReason,
    duration: Duration,
) -> Vec<TestCase> {
    let parsed = libtest::parse(stdout);
    if !parsed.harness_seen {
        let outcome = if exit.is_success() {
            Outcome::Passed
        } else {
            Outcome::failed(
                format!("the test binary {}", exit.with_number()),
                combined(stdout, stderr),
            )
        };
        return vec![binary_case(binary, outcome, duration)];
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
    for name in parsed.unfinished {
        let outcome = if exit.is_success() {
            Outcome::Passed
        } else {
            Outcome::failed(
                format!("did not finish: the test binary {}", exit.with_number()),
                combined(stdout, stderr),
            )
        };
        cases.push(TestCase::test(test_name(binary, &name), outcome));
    }
    if !exit.is_success() && !cases.iter().any(TestCase::is_failure) {
        let message = if parsed.finished {
            format!(
                "the test binary {} although no test failed",
                exit.with_number()
            )
        } else {
            format!("the test binary {} before it finished", exit.with_number())
        };
        cases.push(binary_case(
            binary,
            Outcome::failed(message, combined(stdout, stderr)),
            duration,
        ));
    }
    cases
}

/// The report name of test `name` of `binary`: as is for the library's unit
/// tests, prefixed with the target for integration tests (`api::round_trip`).
fn test_name(binary: &TestBinary, name: &str) -> String {
    if binary.is_lib {
        name.to_owned()
    } else {
        format!("{}::{name}", binary.target)
    }
}

/// An entry standing for a whole binary.
fn binary_case(binary: &TestBinary, outcome: Outcome, duration: Duration) -> TestCase {
    let name = if binary.is_lib {
        "unit tests (test binary)".to_owned()
    } else {
        format!("{} (test binary)", binary.target)
    };
    TestCase {
        name,
        kind: CaseKind::Binary,
        outcome,
        duration,
    }
}

/// Stdout then stderr, without colour codes, capped.
fn combined(stdout: &str, stderr: &str) -> String {
    let mut text = strip_ansi(stdout.trim_end());
    let stderr = strip_ansi(stderr.trim_end());
    if !stderr.is_empty() {
        if !text.is_empty() {
            text.push_str("\n--- stderr ---\n");
        }
        text.push_str(&stderr);
    }
    cap(&text)
}

/// `text`, or its last [`MAX_OUTPUT`] bytes (at a character boundary) with a note.
fn cap(text: &str) -> String {
    if text.len() <= MAX_OUTPUT {
        return text.to_owned();
    }
    let mut start = text.len() - MAX_OUTPUT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[... {start} bytes cut ...]\n{}", &text[start..])
}

/// The arguments of a job: the ones given to everything, then the module's own.
pub fn job_args(common: &[String], module: &[String]) -> Vec<String> {
    common.iter().chain(module).cloned().collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn binary(is_lib: bool) -> TestBinary {
        TestBinary {
            package: "mod-a".into(),
            target: if is_lib { "mod_a" } else { "api" }.into(),
            is_lib,
            path: PathBuf::from("/nowhere/mod_a-123"),
            manifest_dir: PathBuf::from("/nowhere"),
        }
    }

    fn ok() -> ExitReason {
        ExitReason::Code(0)
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
        let cases = interpret(&binary(false), stdout, "", ok(), Duration::ZERO);
        assert_eq!(
            names(&cases),
            [("api::round_trip", "passed"), ("api::slow", "ignored")]
        );
        let cases = interpret(&binary(true), stdout, "", ok(), Duration::ZERO);
        assert_eq!(names(&cases)[0], ("round_trip", "passed"));
    }

    #[test]
    fn a_failed_test_keeps_its_output_and_panic_message() {
        let stdout = "running 1 test\ntest t ... FAILED\n\nfailures:\n\n---- t stdout ----\n\
                      printed\nthread 't' panicked at src/lib.rs:1:1:\nno good\n\n\
                      failures:\n    t\n\ntest result: FAILED. 0 passed; 1 failed; 0 ignored\n";
        let cases = interpret(
            &binary(true),
            stdout,
            "",
            ExitReason::Code(101),
            Duration::ZERO,
        );
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
    fn a_crash_is_a_failure_of_the_binary() {
        let stdout = "running 2 tests\ntest first ... ok\n";
        let cases = interpret(
            &binary(true),
            stdout,
            "fatal runtime error: stack overflow",
            ExitReason::Signal(6),
            Duration::from_millis(5),
        );
        assert_eq!(
            names(&cases),
            [("first", "passed"), ("unit tests (test binary)", "failed")]
        );
        let Outcome::Failed { message, output } = &cases[1].outcome else {
            panic!("failed");
        };
        assert_eq!(
            message,
            "the test binary was killed by signal 6 (SIGABRT) before it finished"
        );
        assert!(
            output.ends_with("--- stderr ---\nfatal runtime error: stack overflow"),
            "{output}"
        );
        assert_eq!(cases[1].kind, CaseKind::Binary);
    }

    #[test]
    fn a_test_left_unfinished_by_a_crash_fails() {
        let stdout = "running 1 test\ntest hangs ... ";
        let cases = interpret(
            &binary(false),
            stdout,
            "",
            ExitReason::Signal(15),
            Duration::ZERO,
        );
        assert_eq!(names(&cases), [("api::hangs", "failed")]);
    }

    #[test]
    fn a_binary_without_libtest_passes_or_fails_by_its_exit_code() {
        let cases = interpret(
            &binary(false),
            "custom main ran\n",
            "",
            ok(),
            Duration::from_millis(3),
        );
        assert_eq!(names(&cases), [("api (test binary)", "passed")]);
        assert_eq!(cases[0].duration, Duration::from_millis(3));
        let cases = interpret(
            &binary(false),
            "",
            "assertion failed",
            ExitReason::Code(1),
            Duration::ZERO,
        );
        assert_eq!(
            cases[0].outcome,
            Outcome::failed("the test binary exited with code 1", "assertion failed")
        );
    }

    #[test]
    fn long_output_keeps_its_end() {
        let long = format!("{}END", "é".repeat(MAX_OUTPUT));
        let capped = cap(&long);
        assert!(capped.starts_with("[... "), "{}", &capped[..20]);
        assert!(capped.ends_with("END"));
        assert!(capped.len() < MAX_OUTPUT + 40);
    }

    #[test]
    fn runs_real_processes_in_parallel_and_keeps_job_order() {
        // `sh -c` stands in for a test binary: it prints libtest's format.
        let job = |name: &str, code: i32| BinaryJob {
            binary: TestBinary {
                path: PathBuf::from("/bin/sh"),
                manifest_dir: std::env::temp_dir(),
                ..binary(true)
            },
            args: job_args(
                &["-c".into()],
                &[format!(
                    "sleep 0.1; printf 'running 1 test\\ntest {name} ... {}\\n'; exit {code}",
                    if code == 0 { "ok" } else { "FAILED" }
                )],
            ),
        };
        let runs = run_all(
            &[job("first", 0), job("second", 101), job("third", 0)],
            3,
            &ProcessGroups::default(),
        );
        let all: Vec<Vec<(&str, &str)>> = runs.iter().map(|r| names(&r.tests)).collect();
        assert_eq!(
            all,
            [
                vec![("first", "passed")],
                vec![("second", "failed")],
                vec![("third", "passed")]
            ]
        );
        assert!(
            runs.iter()
                .all(|r| r.duration >= Duration::from_millis(100))
        );
    }
}
