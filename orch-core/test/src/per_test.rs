//! Each test in a process of its own, as cargo-nextest runs them: a binary's
//! tests are listed (`--list --format terse`, then with `--ignored` to know
//! the ignored ones), then each runs alone as `BINARY --exact NAME
//! --nocapture`, several at once. A crash or an abort takes down one test,
//! named, every test has its own time, a test past its timeout is killed
//! with its process group, and a failing test can run again (`--retries`).
//!
//! A test's result is its process's real exit status: 0 passed, a signal
//! crashed, anything else failed. Its output is what the process printed,
//! read from its own pipes, without libtest's lines around it; lines a test
//! prints that look like libtest's change nothing.

use std::collections::HashMap;
use std::time::Duration;

use super::args::{Ignored, LibtestArgs};
use super::exec::{Execution, Fixed, execute};
use super::libtest::{self, Status, failure_message, parse_list, strip_harness};
use super::model::{CaseKind, Cause, Failure, Outcome, Retry, TestCase};
use super::progress::Mark;
use super::runner::{self, BinaryJob, Env, cap, signal_words};
use super::verdict;

/// Listing a binary may take this long when no test timeout applies.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);

/// What a binary's listing says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The tests to run: name, and whether it is ignored (then it runs with
    /// `--include-ignored`).
    pub run: Vec<(String, bool)>,
    /// Ignored tests that are not run, reported with libtest's reason.
    pub ignored: Vec<TestCase>,
    /// The binary's entries when it cannot be listed (no libtest harness, or
    /// it failed): the listing run stands for the binary's run.
    pub whole: Option<Vec<TestCase>>,
}

/// Lists the tests of `job`'s binary that its arguments select.
pub fn list(job: &BinaryJob, env: Env<'_>) -> Listing {
    let args = LibtestArgs::parse(&job.args);
    let timeout = job.timeout.unwrap_or(LIST_TIMEOUT);
    let mut all_args = vec!["--list".to_owned(), "--format".into(), "terse".into()];
    all_args.extend(args.selection.iter().cloned());
    let all = match run_listing(job, &all_args, timeout, env) {
        Ok(names) => names,
        Err(whole) => {
            return Listing {
                whole: Some(whole),
                ..Listing::default()
            };
        }
    };
    all_args.push("--ignored".into());
    let ignored: Vec<String> = match run_listing(job, &all_args, timeout, env) {
        Ok(names) => names,
        Err(whole) => {
            return Listing {
                whole: Some(whole),
                ..Listing::default()
            };
        }
    };
    let ignored_names: std::collections::HashSet<&String> = ignored.iter().collect();
    let is_ignored = |name: &String| ignored_names.contains(name);
    let mut listing = Listing::default();
    match args.ignored {
        Ignored::Skip => {
            listing.run = all
                .iter()
                .filter(|n| !is_ignored(n))
                .map(|n| (n.clone(), false))
                .collect();
            listing.ignored = ignored_cases(job, &ignored, env);
        }
        Ignored::Include => {
            listing.run = all.iter().map(|n| (n.clone(), is_ignored(n))).collect();
        }
        Ignored::Only => listing.run = ignored.iter().map(|n| (n.clone(), true)).collect(),
    }
    listing
}

/// One listing run: the names, or the binary's entries when its output is
/// not a listing.
fn run_listing(
    job: &BinaryJob,
    args: &[String],
    timeout: Duration,
    env: Env<'_>,
) -> Result<Vec<String>, Vec<TestCase>> {
    let mut command = runner::command(&job.binary, args);
    match execute(
        &mut command,
        env.children,
        &mut Fixed::after(Some(timeout)),
        false,
    ) {
        Ok(done) => match parse_list(&done.stdout_text()) {
            Some(names) if done.exit.is_success() => Ok(names),
            _ => Err(verdict::interpret(job, &done)),
        },
        Err(error) => Err(vec![runner::binary_case(
            &job.binary,
            Outcome::failed(
                format!("cannot run {}: {error}", job.binary.path.display()),
                "",
            ),
            Duration::ZERO,
        )]),
    }
}

/// The ignored tests as entries, with the reasons libtest gives when asked
/// to run them without `--include-ignored` (one process for all).
fn ignored_cases(job: &BinaryJob, names: &[String], env: Env<'_>) -> Vec<TestCase> {
    if names.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["--exact".to_owned()];
    args.extend(names.iter().cloned());
    let mut command = runner::command(&job.binary, &args);
    let timeout = job.timeout.unwrap_or(LIST_TIMEOUT);
    let reasons: HashMap<String, Option<String>> = execute(
        &mut command,
        env.children,
        &mut Fixed::after(Some(timeout)),
        false,
    )
    .map(|done| {
        libtest::parse(&done.stdout_text())
            .tests
            .into_iter()
            .filter_map(|t| match t.status {
                Status::Ignored(reason) => Some((t.name, reason)),
                _ => None,
            })
            .collect()
    })
    .unwrap_or_default();
    names
        .iter()
        .map(|name| {
            let reason = reasons.get(name).cloned().flatten();
            env.progress.add(1);
            env.progress
                .line(Mark::Skip, Duration::ZERO, &job.label(name), "");
            TestCase::test(
                runner::test_name(&job.binary, name),
                Outcome::Ignored { reason },
            )
        })
        .collect()
}

/// Runs test `name` of `job`'s binary alone, again after a failure while
/// retries are left; `earlier` holds attempts that already failed (a
/// `--fast` run's), counted against `job.retries`.
pub fn run_test(
    job: &BinaryJob,
    name: &str,
    ignored: bool,
    mut earlier: Vec<Retry>,
    env: Env<'_>,
) -> TestCase {
    let label = job.label(name);
    let attempts = job.retries as usize + 1;
    loop {
        let ticket = env.progress.start(&label);
        let (outcome, duration, started) = run_once(job, name, ignored, env);
        let mut case = TestCase::new(
            runner::test_name(&job.binary, name),
            CaseKind::Test,
            outcome,
            duration,
        );
        case.started = started;
        let Outcome::Failed(failure) = &case.outcome else {
            case.retries = earlier;
            let mark = if case.retries.is_empty() {
                Mark::Pass
            } else {
                Mark::Flaky
            };
            env.progress.finish(ticket, mark, duration, &label, "");
            return case;
        };
        let last = earlier.len() + 1 >= attempts;
        let mark = match (last, failure.cause) {
            (false, _) => Mark::Retry,
            (true, Cause::Crashed { .. }) => Mark::Crash,
            (true, Cause::TimedOut { .. }) => Mark::Timeout,
            (true, Cause::Failed) => Mark::Fail,
        };
        env.progress
            .finish(ticket, mark, duration, &label, &failure.message);
        if last {
            case.retries = earlier;
            return case;
        }
        earlier.push(Retry {
            failure: failure.clone(),
            duration,
            started: case.started,
        });
    }
}

/// One attempt: its outcome, time and start.
fn run_once(
    job: &BinaryJob,
    name: &str,
    ignored: bool,
    env: Env<'_>,
) -> (Outcome, Duration, Option<std::time::SystemTime>) {
    let mut args = vec!["--exact".to_owned(), name.to_owned(), "--nocapture".into()];
    if ignored {
        args.push("--include-ignored".into());
    }
    args.extend(LibtestArgs::parse(&job.args).passthrough);
    let mut command = runner::command(&job.binary, &args);
    match execute(
        &mut command,
        env.children,
        &mut Fixed::after(job.timeout),
        false,
    ) {
        Ok(done) => (
            outcome(name, &done, job.timeout),
            done.duration,
            Some(done.started),
        ),
        Err(error) => (
            Outcome::failed(format!("cannot run the test binary: {error}"), ""),
            Duration::ZERO,
            None,
        ),
    }
}

/// How test `name` ended, from its process's exit status and output.
pub fn outcome(name: &str, done: &Execution, timeout: Option<Duration>) -> Outcome {
    let raw = done.stdout_text();
    let stdout = cap(&strip_harness(&raw, name));
    let mut stderr = cap(&done.stderr_text());
    if done.leaked {
        stderr.push_str(
            "\n[cargo orch test: processes the test started still held its output after it \
             exited; they were killed]",
        );
    }
    if done.dropped > 0 {
        stderr.push_str(&format!(
            "\n[cargo orch test: {} bytes of output past 16 MiB were not kept]",
            done.dropped
        ));
    }
    let failure = |cause: Cause, message: String| {
        Outcome::Failed(Failure {
            cause,
            message,
            stdout: stdout.clone(),
            stderr: stderr.clone(),
        })
    };
    if done.timed_out {
        let after = timeout.unwrap_or_default();
        return failure(
            Cause::TimedOut { after },
            format!(
                "timed out after {} (test.timeout) and was killed",
                orch_sdk::duration::human(after)
            ),
        );
    }
    let panic = || {
        let from_stderr = failure_message(&stderr);
        if from_stderr == "test failed" {
            failure_message(&stdout)
        } else {
            from_stderr
        }
    };
    match done.exit {
        orch_process::ExitReason::Code(0) if raw.contains("running 0 tests") => failure(
            Cause::Failed,
            format!("it did not run: the binary ran no test called `{name}`"),
        ),
        orch_process::ExitReason::Code(0) => Outcome::Passed,
        orch_process::ExitReason::Code(101) => failure(Cause::Failed, panic()),
        orch_process::ExitReason::Signal(signal) => failure(
            Cause::Crashed { signal },
            format!("the test process was {}", signal_words(done.exit)),
        ),
        exit => failure(Cause::Failed, format!("the test process {exit}")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use orch_process::ProcessGroups;

    use super::*;
    use crate::model::Status as CaseStatus;
    use crate::progress::Progress;

    /// A shell script standing in for a libtest binary: it lists its tests
    /// and runs one by `--exact NAME`, each behaving as its name says.
    const FAKE_LIBTEST: &str = r#"#!/bin/sh
case "$1" in
--list)
    for arg in "$@"; do [ "$arg" = --ignored ] && { echo "tests::later: test"; exit 0; }; done
    printf 'tests::aborts: test\ntests::fails: test\ntests::flaky: test\ntests::hangs: test\n'
    printf 'tests::later: test\ntests::passes: test\n'
    exit 0;;
--exact)
    shift
    if [ "$2" != --nocapture ]; then
        printf '\nrunning 1 test\ntest tests::later ... ignored, too slow\n\ntest result: ok.\n\n'
        exit 0
    fi
    printf '\nrunning 1 test\n'
    case "$1" in
    tests::passes) echo "test other ... FAILED"; echo "ok out"; printf 'test %s ... ok\n' "$1";;
    tests::fails) echo "printed"; echo "thread 'x' panicked at a.rs:1:1:" >&2; echo "boom" >&2
        printf 'test %s ... FAILED\n' "$1"; exit 101;;
    tests::aborts) echo "about to abort"; kill -ABRT $$;;
    tests::hangs) echo "hanging"; sleep 60 & wait;;
    tests::flaky) if [ -e "$FLAKY_FILE" ]; then printf 'test %s ... ok\n' "$1"; exit 0; fi
        : > "$FLAKY_FILE"; echo "first time" >&2; exit 101;;
    tests::later) echo "ran after all"; printf 'test %s ... ok\n' "$1";;
    esac
    printf '\ntest result: ok.\n\n';;
esac
"#;

    fn fake_binary(dir: &Path) -> PathBuf {
        let path = dir.join("fake-libtest");
        runner::write_script(&path, FAKE_LIBTEST);
        path
    }

    fn job(dir: &Path, args: &[&str], timeout: Duration, retries: u32) -> BinaryJob {
        BinaryJob {
            module: "mod-a".into(),
            binary: crate::compile::TestBinary {
                path: fake_binary(dir),
                manifest_dir: dir.to_path_buf(),
                ..runner::fake_binary(true)
            },
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            timeout: Some(timeout),
            retries,
        }
    }

    fn env<'a>(children: &'a ProcessGroups, progress: &'a Progress) -> Env<'a> {
        Env { children, progress }
    }

    #[test]
    fn the_listing_splits_ignored_tests_off_with_their_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (children, progress) = (ProcessGroups::default(), Progress::silent());
        let job = job(dir.path(), &[], Duration::from_secs(30), 0);
        let listing = list(&job, env(&children, &progress));
        let names: Vec<&str> = listing.run.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "tests::aborts",
                "tests::fails",
                "tests::flaky",
                "tests::hangs",
                "tests::passes"
            ]
        );
        assert_eq!(
            listing.ignored,
            [TestCase::test(
                "tests::later",
                Outcome::Ignored {
                    reason: Some("too slow".into())
                }
            )]
        );
        assert!(listing.whole.is_none());

        let include = BinaryJob {
            args: vec!["--include-ignored".into()],
            ..job.clone()
        };
        let listing = list(&include, env(&children, &progress));
        assert!(listing.run.contains(&("tests::later".to_owned(), true)));
        assert!(listing.ignored.is_empty());
        let case = run_test(
            &include,
            "tests::later",
            true,
            Vec::new(),
            env(&children, &progress),
        );
        assert_eq!(case.status(), CaseStatus::Passed);
    }

    #[test]
    fn each_test_is_judged_by_its_own_process() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (children, progress) = (ProcessGroups::default(), Progress::silent());
        let job = job(dir.path(), &[], Duration::from_millis(300), 0);
        let run = |name: &str| run_test(&job, name, false, Vec::new(), env(&children, &progress));

        let passes = run("tests::passes");
        assert_eq!(
            passes.outcome,
            Outcome::Passed,
            "a fake FAILED line changes nothing"
        );
        assert!(passes.duration > Duration::ZERO && passes.started.is_some());

        let fails = run("tests::fails");
        let failure = fails.outcome.failure().expect("failed");
        assert_eq!(
            (failure.cause, failure.message.as_str()),
            (Cause::Failed, "boom")
        );
        assert_eq!(failure.stdout, "printed");
        assert!(failure.stderr.ends_with("boom"), "{}", failure.stderr);

        let aborts = run("tests::aborts");
        let failure = aborts.outcome.failure().expect("crashed");
        assert_eq!(failure.cause, Cause::Crashed { signal: 6 });
        assert_eq!(
            failure.message,
            "the test process was killed by signal 6 (SIGABRT: abort)"
        );
        assert_eq!(failure.stdout, "about to abort");

        let hangs = run("tests::hangs");
        let failure = hangs.outcome.failure().expect("timed out");
        assert_eq!(
            failure.cause,
            Cause::TimedOut {
                after: Duration::from_millis(300)
            }
        );
        assert_eq!(
            failure.message,
            "timed out after 300.0 ms (test.timeout) and was killed"
        );
        assert_eq!(failure.stdout, "hanging");
    }

    #[test]
    fn a_test_that_passes_on_a_retry_is_flaky() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (children, progress) = (ProcessGroups::default(), Progress::silent());
        let memory = dir.path().join("flaky-memory");
        let mut job = job(dir.path(), &[], Duration::from_secs(30), 0);
        job.binary.path = {
            let wrapper = dir.path().join("with-memory");
            let script = format!(
                "#!/bin/sh\nFLAKY_FILE='{}' exec '{}' \"$@\"\n",
                memory.display(),
                job.binary.path.display()
            );
            runner::write_script(&wrapper, &script);
            wrapper
        };
        let once = run_test(
            &job,
            "tests::flaky",
            false,
            Vec::new(),
            env(&children, &progress),
        );
        assert_eq!(
            once.status(),
            CaseStatus::Failed,
            "no retries: a plain failure"
        );

        std::fs::remove_file(&memory).expect("forget");
        job.retries = 2;
        let flaky = run_test(
            &job,
            "tests::flaky",
            false,
            Vec::new(),
            env(&children, &progress),
        );
        assert_eq!(flaky.status(), CaseStatus::Flaky);
        assert_eq!(flaky.attempts(), 2, "it stopped at the first pass");
        assert_eq!(flaky.retries[0].failure.stderr, "first time");

        let fails = run_test(
            &job,
            "tests::fails",
            false,
            Vec::new(),
            env(&children, &progress),
        );
        assert_eq!((fails.status(), fails.attempts()), (CaseStatus::Failed, 3));
    }

    #[test]
    fn a_binary_without_a_listing_is_reported_whole_from_that_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (children, progress) = (ProcessGroups::default(), Progress::silent());
        let mut job = job(dir.path(), &[], Duration::from_secs(30), 0);
        job.binary.path = PathBuf::from("/bin/echo");
        job.binary.is_lib = false;
        let listing = list(&job, env(&children, &progress));
        let whole = listing.whole.expect("whole");
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].name, "mod_a (test binary)");
        assert_eq!(whole[0].outcome, Outcome::Passed);
    }
}
