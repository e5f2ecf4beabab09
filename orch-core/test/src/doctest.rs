//! Doc tests, run the way cargo runs them: one `cargo test --doc
//! --no-fail-fast -p a -p b ...` (the test build's features, so nothing is
//! rebuilt) through the same process layer as every other child: its own
//! process group, a guard, deadlines. Rustdoc compiles them (merged into one
//! binary on edition 2024) and runs each in a process of its own, so a
//! crashing doc test fails alone.
//!
//! Why cargo and not rustdoc directly: rustdoc needs every `--extern`, `-L`,
//! `--cfg` and edition flag cargo would give it, and keeping its doc-test
//! binaries (`--persist-doctests`) is unstable. Cargo's stdout is libtest's
//! output of the doc-test runs, read as it arrives: with `--test-threads=1`
//! (unless the arguments set it) each result line ends one test and starts
//! the next, which gives every doc test its own time, and a test that prints
//! no result for `test.timeout` is the one that hangs: the run is killed and
//! that test reported timed out. The packages that had not run yet then run
//! in a new cargo run; the hung package's doc tests after it are lost.
//!
//! Limits that come from cargo: test arguments reach rustdoc split at
//! spaces, so a retry (`--retries`) reruns the doc tests of the failed
//! tests' items (filter `double` for `src/lib.rs - double (line 5)`) and
//! keeps the results of the failed ones.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use orch_cargo::cargo_output::first_error;
use orch_cargo::invocation::{PackageIndex, cargo_program, forget_parent_package};
use orch_config::workspace::Workspace;

use super::args::LibtestArgs;
use super::doc_clock::Clock;
use super::exec::execute;
use super::libtest::{self, Status, failure_message};
use super::model::{CaseKind, Cause, Failure, Outcome, Retry, TestCase};
use super::progress::Mark;
use super::runner::{Env, cap};

/// The doc tests of some packages, with one set of arguments.
#[derive(Debug, Clone)]
pub struct DocRequest {
    /// The packages (each has a library with doc tests).
    pub packages: Vec<String>,
    /// Libtest arguments (after `--`, then the modules' `test.args`).
    pub args: Vec<String>,
    /// `(package, feature)` of the test build.
    pub features: Vec<(String, String)>,
    /// How long one doc test may run (`None`: `--no-timeout`).
    pub timeout: Option<Duration>,
    /// How long rustdoc may compile, between tests (`timeouts.build`).
    pub build_timeout: Duration,
    /// How many times failed doc tests run again.
    pub retries: u32,
}

/// One doc test's result, with its package and libtest's full name.
struct DocResult {
    package: String,
    full_name: String,
    case: TestCase,
}

/// What one cargo run gave.
#[derive(Default)]
struct Invocation {
    results: Vec<DocResult>,
    /// The doc test that was running when the run was killed.
    hung: Option<String>,
    /// Why the run failed when no doc test says so.
    error: Option<Failure>,
}

/// Runs doc tests.
pub struct DocRunner<'a> {
    workspace: &'a Workspace,
    index: PackageIndex,
    env: Env<'a>,
}

impl<'a> DocRunner<'a> {
    /// Doc tests of `workspace`'s packages.
    pub fn new(workspace: &'a Workspace, env: Env<'a>) -> Self {
        Self {
            workspace,
            index: PackageIndex::new(workspace),
            env,
        }
    }

    /// The doc tests of `request.packages`, by package, in the order rustdoc
    /// reported them.
    pub fn run(&self, request: &DocRequest) -> BTreeMap<String, Vec<TestCase>> {
        let mut by_package: BTreeMap<String, Vec<TestCase>> = BTreeMap::new();
        let mut full_names: HashMap<(String, String), String> = HashMap::new();
        let mut pending = request.packages.clone();
        // Each round after a hang leaves out at least the hung package.
        for _ in 0..request.packages.len() {
            let ran = self.invoke(request, &pending, &[], request.retries > 0);
            let mut seen: HashSet<String> = HashSet::new();
            for result in ran.results {
                seen.insert(result.package.clone());
                full_names.insert(
                    (result.package.clone(), result.case.name.clone()),
                    result.full_name,
                );
                by_package
                    .entry(result.package)
                    .or_default()
                    .push(result.case);
            }
            if let Some(error) = ran.error {
                for package in pending.iter().filter(|p| !seen.contains(*p)) {
                    let case = TestCase::new(
                        "doc tests",
                        CaseKind::DocTest,
                        Outcome::Failed(error.clone()),
                        Duration::ZERO,
                    );
                    by_package.entry(package.clone()).or_default().push(case);
                }
                break;
            }
            if ran.hung.is_none() {
                break;
            }
            pending.retain(|p| !seen.contains(p));
            if pending.is_empty() {
                break;
            }
        }
        for retry in 1..=request.retries {
            let more = retry < request.retries;
            if !self.retry(request, &mut by_package, &full_names, more) {
                break;
            }
        }
        by_package
    }

    /// Runs the failed doc tests again; false when none had failed.
    fn retry(
        &self,
        request: &DocRequest,
        by_package: &mut BTreeMap<String, Vec<TestCase>>,
        full_names: &HashMap<(String, String), String>,
        more: bool,
    ) -> bool {
        // (package, report name, libtest's name) of each failed doc test.
        let failed: Vec<(String, String, String)> = by_package
            .iter()
            .flat_map(|(p, cases)| cases.iter().map(move |c| (p, c)))
            .filter(|(_, c)| c.is_failure())
            .filter_map(|(p, c)| {
                let full = full_names.get(&(p.clone(), c.name.clone()))?;
                Some((p.clone(), c.name.clone(), full.clone()))
            })
            .collect();
        if failed.is_empty() {
            return false;
        }
        let mut packages: Vec<String> = failed.iter().map(|(p, _, _)| p.clone()).collect();
        packages.dedup();
        let items: Option<Vec<String>> = failed.iter().map(|(_, _, f)| item_of(f)).collect();
        let again = self.invoke(request, &packages, &items.unwrap_or_default(), more);
        let mut fresh: HashMap<String, TestCase> = again
            .results
            .into_iter()
            .map(|r| (r.full_name, r.case))
            .collect();
        for (package, name, full) in &failed {
            let Some(mut new) = fresh.remove(full) else {
                continue;
            };
            let Some(case) = by_package
                .get_mut(package)
                .and_then(|cases| cases.iter_mut().find(|c| &c.name == name))
            else {
                continue;
            };
            if let Outcome::Failed(failure) = &case.outcome {
                let mut retries = std::mem::take(&mut case.retries);
                retries.push(Retry {
                    failure: failure.clone(),
                    duration: case.duration,
                    started: case.started,
                });
                new.retries = retries;
                *case = new;
            }
        }
        true
    }

    /// One `cargo test --doc` of `packages`, `filters` added to the
    /// arguments; `retried`: its failures run again (progress says so).
    fn invoke(
        &self,
        request: &DocRequest,
        packages: &[String],
        filters: &[String],
        retried: bool,
    ) -> Invocation {
        let mut command = Command::new(cargo_program());
        forget_parent_package(&mut command);
        command
            .current_dir(&self.workspace.root)
            .args(cargo_args(request, packages, filters));
        let ticket = self
            .env
            .progress
            .start(&format!("doc tests of {}", packages.join(", ")));
        let label = |full_name: &str| {
            let (package, name) = self.attribute(full_name, packages);
            format!("{package} {name}")
        };
        let mut clock = Clock::new(
            request.timeout,
            request.build_timeout,
            self.env.progress,
            &label,
            retried,
        );
        let done = execute(&mut command, self.env.children, &mut clock, true);
        self.env.progress.stop(ticket);
        let done = match done {
            Ok(done) => done,
            Err(error) => {
                return Invocation {
                    error: Some(Failure::new(format!("cannot run cargo: {error}"), "")),
                    ..Invocation::default()
                };
            }
        };
        let parsed = libtest::parse(&done.stdout_text());
        let hung = done
            .timed_out
            .then(|| parsed.unfinished.first().cloned())
            .flatten();
        let mut results: Vec<DocResult> = parsed
            .tests
            .into_iter()
            .map(|test| {
                let (duration, started) = clock
                    .times
                    .get(&test.name)
                    .map_or((Duration::ZERO, None), |(took, at)| (*took, Some(*at)));
                let outcome = match test.status {
                    Status::Passed => Outcome::Passed,
                    Status::Ignored(reason) => Outcome::Ignored { reason },
                    Status::Failed => {
                        let output = test.output.unwrap_or_default();
                        let cause = crash_signal(&output)
                            .map_or(Cause::Failed, |signal| Cause::Crashed { signal });
                        Outcome::Failed(Failure {
                            cause,
                            message: failure_message(&output),
                            stdout: cap(&output),
                            stderr: String::new(),
                        })
                    }
                };
                self.result(&test.name, outcome, duration, started, packages)
            })
            .collect();
        if let Some(name) = &hung {
            let after = request.timeout.unwrap_or_default();
            let package = self.attribute(name, packages).0;
            let failure = Failure {
                cause: Cause::TimedOut { after },
                message: format!(
                    "timed out after {} (test.timeout) and was killed; the doc tests of `{package}` \
                     after it did not run",
                    orch_sdk::duration::human(after)
                ),
                stdout: String::new(),
                stderr: String::new(),
            };
            let since = clock.last_started();
            let result = self.result(name, Outcome::Failed(failure), after, Some(since), packages);
            let mark = if retried { Mark::Retry } else { Mark::Timeout };
            let detail = &result
                .case
                .outcome
                .failure()
                .map(|f| f.message.clone())
                .unwrap_or_default();
            self.env.progress.line(mark, after, &label(name), detail);
            results.push(result);
        }
        let failed_test = results.iter().any(|r| r.case.is_failure());
        let error = if done.timed_out && hung.is_none() {
            Some(Failure {
                cause: Cause::TimedOut {
                    after: request.build_timeout,
                },
                message: format!(
                    "cargo test --doc did not finish within {} (timeouts.build)",
                    orch_sdk::duration::human(request.build_timeout)
                ),
                stdout: String::new(),
                stderr: cap(&done.stderr_text()),
            })
        } else if !done.exit.is_success() && !failed_test && hung.is_none() {
            let lines: Vec<String> = done.stderr_text().lines().map(str::to_owned).collect();
            let why = first_error(&lines).unwrap_or_else(|| format!("cargo {}", done.exit));
            Some(Failure::new(
                format!(
                    "cargo test --doc failed: {}",
                    why.lines().next().unwrap_or_default()
                ),
                cap(&done.stderr_text()),
            ))
        } else {
            None
        };
        Invocation {
            results,
            hung,
            error,
        }
    }

    fn result(
        &self,
        full_name: &str,
        outcome: Outcome,
        duration: Duration,
        started: Option<SystemTime>,
        packages: &[String],
    ) -> DocResult {
        let (package, name) = self.attribute(full_name, packages);
        let mut case = TestCase::new(name, CaseKind::DocTest, outcome, duration);
        case.started = started;
        DocResult {
            package,
            full_name: full_name.to_owned(),
            case,
        }
    }

    /// The package of a doc test (from its path, relative to the workspace
    /// root) and its name for the report (the path relative to the package).
    fn attribute(&self, full_name: &str, packages: &[String]) -> (String, String) {
        let (path, rest) = full_name.split_once(" - ").unwrap_or((full_name, ""));
        let absolute = self.workspace.root.join(path);
        let package = self
            .index
            .package_of(&absolute)
            .map(str::to_owned)
            .or_else(|| packages.first().cloned())
            .unwrap_or_default();
        let relative = self
            .workspace
            .package(&package)
            .and_then(|p| absolute.strip_prefix(&p.manifest_dir).ok())
            .map_or_else(|| Path::new(path).to_path_buf(), Path::to_path_buf);
        let name = if rest.is_empty() {
            relative.display().to_string()
        } else {
            format!("{} - {rest}", relative.display())
        };
        (package, name)
    }
}

/// `test --doc --no-fail-fast --color=never -p ... --features ... -- ARGS`.
fn cargo_args(request: &DocRequest, packages: &[String], filters: &[String]) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["test", "--doc", "--no-fail-fast", "--color=never"]
        .map(OsString::from)
        .to_vec();
    for package in packages {
        args.push("-p".into());
        args.push(package.into());
    }
    for (package, feature) in &request.features {
        if packages.contains(package) {
            args.push("--features".into());
            args.push(format!("{package}/{feature}").into());
        }
    }
    args.push("--".into());
    args.extend(request.args.iter().map(OsString::from));
    if !LibtestArgs::parse(&request.args).test_threads {
        args.push("--test-threads=1".into());
    }
    args.extend(filters.iter().map(OsString::from));
    args
}

/// The item of a doc test's name (`double` in `src/lib.rs - double (line
/// 5)`): a filter without spaces that selects it; `None` for crate docs.
fn item_of(full_name: &str) -> Option<String> {
    let (_, rest) = full_name.split_once(" - ")?;
    let item = rest.split(" (line ").next()?.trim();
    (!item.is_empty() && !item.contains(' ')).then(|| item.to_owned())
}

/// The signal in rustdoc's `Test executable failed (signal: 11, SIGSEGV: ...)`.
fn crash_signal(output: &str) -> Option<i32> {
    let rest = output.split("Test executable failed (signal: ").nth(1)?;
    rest.split([',', ')']).next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use orch_config::workspace::WorkspacePackage;
    use orch_process::ProcessGroups;

    use super::*;
    use crate::progress::Progress;

    fn request() -> DocRequest {
        DocRequest {
            packages: vec!["mod-a".into(), "mod-b".into()],
            args: vec!["--include-ignored".into()],
            features: vec![
                ("mod-a".into(), "extra".into()),
                ("other".into(), "x".into()),
            ],
            timeout: Some(Duration::from_secs(5)),
            build_timeout: Duration::from_secs(600),
            retries: 0,
        }
    }

    #[test]
    fn cargo_runs_the_doc_tests_one_at_a_time_with_the_test_build_s_features() {
        let args: Vec<String> = cargo_args(&request(), &["mod-a".into()], &["double".into()])
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "test --doc --no-fail-fast --color=never -p mod-a --features mod-a/extra -- \
             --include-ignored --test-threads=1 double"
        );
        let mut own = request();
        own.args = vec!["--test-threads=4".into()];
        let args = cargo_args(&own, &["mod-b".into()], &[]);
        assert_eq!(
            args.last().map(|a| a.to_string_lossy().into_owned()),
            Some("--test-threads=4".into())
        );
    }

    #[test]
    fn names_are_read_back_to_their_item_and_crashes_to_their_signal() {
        assert_eq!(
            item_of("a/src/lib.rs - double (line 5)").as_deref(),
            Some("double")
        );
        assert_eq!(
            item_of("a/src/lib.rs - Foo::bar (line 9)").as_deref(),
            Some("Foo::bar")
        );
        assert_eq!(item_of("a/src/lib.rs - (line 3)"), None);
        assert_eq!(
            crash_signal("Test executable failed (signal: 11, SIGSEGV: invalid memory reference)."),
            Some(11)
        );
        assert_eq!(
            crash_signal("Test executable failed (exit status: 101)."),
            None
        );
    }

    #[test]
    fn doc_tests_belong_to_the_package_whose_folder_holds_them() {
        let root = PathBuf::from("/ws");
        let package = |name: &str, dir: &str| WorkspacePackage {
            name: name.into(),
            manifest_dir: root.join(dir),
            is_cdylib: true,
            lib_name: Some(name.replace('-', "_")),
            workspace_dependencies: Vec::new(),
        };
        let workspace = Workspace {
            root: root.clone(),
            target_dir: root.join("target"),
            packages: vec![
                package("mod-a", "modules/mod-a"),
                package("mod-b", "modules/mod-b"),
            ],
        };
        let (children, progress) = (ProcessGroups::default(), Progress::silent());
        let runner = DocRunner::new(
            &workspace,
            Env {
                children: &children,
                progress: &progress,
            },
        );
        let both = ["mod-a".to_owned(), "mod-b".to_owned()];
        assert_eq!(
            runner.attribute("modules/mod-b/src/lib.rs - f (line 3)", &both),
            ("mod-b".to_owned(), "src/lib.rs - f (line 3)".to_owned())
        );
        assert_eq!(
            runner.attribute("elsewhere.rs - g (line 1)", &both),
            ("mod-a".to_owned(), "elsewhere.rs - g (line 1)".to_owned())
        );
    }
}
