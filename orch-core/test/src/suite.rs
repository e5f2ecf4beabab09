//! One `cargo orch test` run: build every module's tests in one cargo run,
//! then at the same time run the test binaries ([`schedule`]: each test in a
//! process of its own, or each binary once with `--fast`), the doc tests
//! ([`doctest`]) and a scratch-host load check of each module, and gather
//! everything into a [`TestReport`], one row per module.
//!
//! [`schedule`]: super::schedule
//! [`doctest`]: super::doctest

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::compile::{TestBuild, TestBuildRequest, TestCompiler};
use super::doctest::{DocRequest, DocRunner};
use super::model::{CaseKind, ModuleReport, Outcome, TestCase, TestReport};
use super::progress::Progress;
use super::runner::{self, BinaryJob, Env};
use super::schedule::{self, Mode};
use orch_cargo::{BuildRequest, Builder};
use orch_config::workspace::Workspace;
use orch_config::{ModuleSpec, Timeouts};
use orch_process::ProcessGroups;

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Arguments for every test binary (given after `--`), before each
    /// module's own `test.args`.
    pub test_args: Vec<String>,
    /// The phase timeouts of the load checks, `build` for the cargo runs and
    /// `test`, one test's, unless a module sets its own `test.timeout`.
    pub timeouts: Timeouts,
    /// How many test processes may run at once (at least 1).
    pub jobs: usize,
    /// Each test in a process of its own, or each binary once (`--fast`).
    pub mode: Mode,
    /// How many times a failing test runs again (`--retries`).
    pub retries: u32,
    /// No test is ever stopped (`--no-timeout`, for debugging).
    pub no_timeout: bool,
    /// Whether the doc tests run (`--no-doc` turns them off).
    pub doc: bool,
    /// Show progress on stderr (a bar on a terminal, lines elsewhere).
    pub progress: bool,
}

impl SuiteOptions {
    /// No extra arguments, the given timeouts, one test per core, each in a
    /// process of its own, doc tests included, no retries, no progress.
    pub fn new(timeouts: Timeouts) -> Self {
        Self {
            test_args: Vec::new(),
            timeouts,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mode: Mode::PerTest,
            retries: 0,
            no_timeout: false,
            doc: true,
            progress: false,
        }
    }

    /// How long one test of `module` may run.
    fn timeout(&self, module: &ModuleSpec) -> Option<Duration> {
        (!self.no_timeout).then(|| module.test.timeout.unwrap_or(self.timeouts.test))
    }
}

/// Runs the tests of modules of one workspace.
pub struct Suite<'a> {
    workspace: &'a Workspace,
    children: ProcessGroups,
    builder: Builder,
}

/// The name of a module's load-check entry.
pub const LOAD_CHECK: &str = "load check";
/// The name of the entry of a module whose tests do not compile.
pub const BUILD: &str = "build";

impl<'a> Suite<'a> {
    /// A suite for `workspace`; `children` lets another thread end its cargo
    /// runs and test processes (see also [`Suite::builder`]).
    pub fn new(workspace: &'a Workspace, children: ProcessGroups) -> Self {
        Self {
            workspace,
            children,
            builder: Builder::new(workspace),
        }
    }

    /// The builder of the `cdylib`s the test build did not produce; cancel it
    /// with [`Builder::cancel`].
    pub fn builder(&self) -> &Builder {
        &self.builder
    }

    /// Tests `modules`, in their order.
    pub fn run(&self, modules: &[&ModuleSpec], options: &SuiteOptions) -> TestReport {
        let started = Instant::now();
        let started_at = SystemTime::now();
        let packages = orch_config::packages_of(modules.iter().copied());
        let features = features(modules);
        let compiler = TestCompiler::new(self.workspace, self.children.clone());
        let build = compiler.build(&TestBuildRequest {
            packages: packages.clone(),
            features: features.clone(),
            timeout: options.timeouts.build,
        });
        let libraries = self.libraries(&packages, &features, &build, options.timeouts.build);
        let jobs = binary_jobs(modules, &build, options);
        let docs = doc_requests(modules, &build, &features, options);
        let progress = if options.progress {
            Progress::on_stderr()
        } else {
            Progress::silent()
        };
        let env = Env {
            children: &self.children,
            progress: &progress,
        };

        let (runs, doc_tests, load_checks) = std::thread::scope(|scope| {
            let checks = scope.spawn(|| self.load_checks(modules, &build, &libraries, options));
            let doc_tests = scope.spawn(|| {
                let runner = DocRunner::new(self.workspace, env);
                docs.iter()
                    .flat_map(|request| runner.run(request))
                    .collect::<BTreeMap<String, Vec<TestCase>>>()
            });
            let jobs_only: Vec<BinaryJob> = jobs.iter().map(|(_, job)| job.clone()).collect();
            let runs = schedule::run_binaries(&jobs_only, options.mode, options.jobs, env);
            let doc_tests = doc_tests.join().unwrap_or_default();
            let checks = checks.join().unwrap_or_else(|_| {
                modules
                    .iter()
                    .map(|_| {
                        Some(load_case(
                            Outcome::failed("the load check panicked", ""),
                            Duration::ZERO,
                            None,
                        ))
                    })
                    .collect()
            });
            (runs, doc_tests, checks)
        });
        progress.done();

        let mut reports: Vec<ModuleReport> = modules
            .iter()
            .map(|module| ModuleReport {
                module: module.name.clone(),
                package: module.package.clone(),
                tests: Vec::new(),
                duration: Duration::ZERO,
            })
            .collect();
        for (report, module) in reports.iter_mut().zip(modules) {
            if let Some(error) = build.failures.get(&module.package) {
                report.tests.push(TestCase::new(
                    BUILD,
                    CaseKind::Build,
                    Outcome::failed(
                        format!("the tests of package `{}` did not build", module.package),
                        error.clone(),
                    ),
                    Duration::ZERO,
                ));
            }
        }
        for ((index, _), cases) in jobs.iter().zip(runs) {
            reports[*index].tests.extend(cases);
        }
        for (report, check) in reports.iter_mut().zip(load_checks) {
            if let Some(cases) = doc_tests.get(&report.package) {
                report.tests.extend(cases.iter().cloned());
            }
            report.tests.extend(check);
            report.duration = report.tests.iter().map(|t| t.duration).sum();
        }
        TestReport {
            modules: reports,
            duration: started.elapsed(),
            started: Some(started_at),
        }
    }

    /// The `cdylib` of each package that compiled, or why there is none. The
    /// test build's own is used when it made one with no test features; the
    /// others come from a normal `cargo build -p ...` (retried without the
    /// packages that do not compile).
    fn libraries(
        &self,
        packages: &[String],
        features: &[(String, String)],
        build: &TestBuild,
        timeout: Duration,
    ) -> HashMap<String, Result<PathBuf, String>> {
        let mut libraries = HashMap::new();
        let mut wanted = Vec::new();
        for package in packages.iter().filter(|p| !build.failures.contains_key(*p)) {
            let has_features = features.iter().any(|(p, _)| p == package);
            match build.cdylibs.get(package) {
                Some(path) if !has_features => {
                    libraries.insert(package.clone(), Ok(path.clone()));
                }
                _ => wanted.push(package.clone()),
            }
        }
        while !wanted.is_empty() {
            let request = BuildRequest {
                packages: wanted.clone(),
                release: false,
                timeout,
            };
            match self.builder.build(&request) {
                Ok(output) => {
                    for package in wanted.drain(..) {
                        let library = output.artifacts.get(&package).cloned().ok_or_else(|| {
                            format!("cargo built no cdylib for package `{package}`")
                        });
                        libraries.insert(package, library);
                    }
                }
                Err(error) => {
                    let failed: Vec<String> = wanted
                        .iter()
                        .filter(|p| error.failed_packages.contains(p))
                        .cloned()
                        .collect();
                    let blame: Vec<String> = if failed.is_empty() {
                        std::mem::take(&mut wanted)
                    } else {
                        wanted.retain(|p| !failed.contains(p));
                        failed
                    };
                    for package in blame {
                        libraries.insert(package, Err(error.to_string()));
                    }
                }
            }
        }
        libraries
    }

    /// The load-check entry of each module (`None` for a module whose tests
    /// did not compile: its `build` entry already fails it), one at a time.
    fn load_checks(
        &self,
        modules: &[&ModuleSpec],
        build: &TestBuild,
        libraries: &HashMap<String, Result<PathBuf, String>>,
        options: &SuiteOptions,
    ) -> Vec<Option<TestCase>> {
        modules
            .iter()
            .map(|module| {
                if build.failures.contains_key(&module.package) {
                    return None;
                }
                let started = Instant::now();
                let started_at = SystemTime::now();
                let outcome = match libraries.get(&module.package) {
                    Some(Ok(library)) => match orch_runtime::load_check::run(
                        module,
                        library,
                        &self.workspace.target_dir,
                        options.timeouts,
                    ) {
                        Ok(_) => Outcome::Passed,
                        Err(failure) => Outcome::failed(
                            format!("failed in phase {}: {}", failure.phase, failure.cause),
                            failure.to_string(),
                        ),
                    },
                    Some(Err(error)) => {
                        Outcome::failed("the module's library did not build", error.clone())
                    }
                    None => Outcome::failed("the module's library was not built", ""),
                };
                Some(load_case(outcome, started.elapsed(), Some(started_at)))
            })
            .collect()
    }
}

fn load_case(outcome: Outcome, duration: Duration, started: Option<SystemTime>) -> TestCase {
    let mut case = TestCase::new(LOAD_CHECK, CaseKind::LoadCheck, outcome, duration);
    case.started = started;
    case
}

/// Every test binary of every module, with the module's index.
fn binary_jobs(
    modules: &[&ModuleSpec],
    build: &TestBuild,
    options: &SuiteOptions,
) -> Vec<(usize, BinaryJob)> {
    modules
        .iter()
        .enumerate()
        .flat_map(|(index, module)| {
            build
                .binaries
                .iter()
                .filter(|b| b.package == module.package)
                .map(move |binary| {
                    let job = BinaryJob {
                        module: module.name.clone(),
                        binary: binary.clone(),
                        args: runner::job_args(&options.test_args, &module.test.args),
                        timeout: options.timeout(module),
                        retries: options.retries,
                    };
                    (index, job)
                })
        })
        .collect()
}

/// The doc-test runs: one per set of arguments and timeout, over every
/// package with doc tests whose tests compiled (each package once).
fn doc_requests(
    modules: &[&ModuleSpec],
    build: &TestBuild,
    features: &[(String, String)],
    options: &SuiteOptions,
) -> Vec<DocRequest> {
    if !options.doc {
        return Vec::new();
    }
    let mut requests: Vec<DocRequest> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for module in modules {
        let package = module.package.as_str();
        if seen.contains(&package)
            || !build.doc_packages.contains(package)
            || build.failures.contains_key(package)
        {
            continue;
        }
        seen.push(package);
        let args = runner::job_args(&options.test_args, &module.test.args);
        let timeout = options.timeout(module);
        match requests
            .iter_mut()
            .find(|r| r.args == args && r.timeout == timeout)
        {
            Some(request) => request.packages.push(package.to_owned()),
            None => requests.push(DocRequest {
                packages: vec![package.to_owned()],
                args,
                features: features.to_vec(),
                timeout,
                build_timeout: options.timeouts.build,
                retries: options.retries,
            }),
        }
    }
    requests
}

/// Every module's `test.features` as `(package, feature)`, each once.
fn features(modules: &[&ModuleSpec]) -> Vec<(String, String)> {
    let mut features: BTreeMap<(String, String), ()> = BTreeMap::new();
    for module in modules {
        for feature in &module.test.features {
            features.insert((module.package.clone(), feature.clone()), ());
        }
    }
    features.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_config::TestSettings;

    fn spec(name: &str, package: &str, features: &[&str]) -> ModuleSpec {
        ModuleSpec {
            name: name.into(),
            package: package.into(),
            enabled: true,
            config: serde_json::json!({}),
            depends_on: Vec::new(),
            test: TestSettings {
                args: Vec::new(),
                features: features.iter().map(|f| (*f).to_owned()).collect(),
                timeout: None,
            },
            line: 1,
            ..Default::default()
        }
    }

    #[test]
    fn packages_and_features_are_gathered_once_each() {
        let a = spec("a", "pkg-a", &["x", "y"]);
        let b = spec("b", "pkg-b", &[]);
        let a2 = spec("a2", "pkg-a", &["x"]);
        let modules = [&a, &b, &a2];
        assert_eq!(orch_config::packages_of(modules), ["pkg-a", "pkg-b"]);
        assert_eq!(
            features(&modules),
            [
                ("pkg-a".to_owned(), "x".to_owned()),
                ("pkg-a".to_owned(), "y".to_owned())
            ]
        );
    }

    #[test]
    fn a_module_s_own_timeout_wins_and_no_timeout_turns_all_off() {
        let mut options = SuiteOptions::new(Timeouts::default());
        let mut quick = spec("q", "pkg-q", &[]);
        quick.test.timeout = Some(Duration::from_secs(2));
        let plain = spec("p", "pkg-p", &[]);
        assert_eq!(options.timeout(&quick), Some(Duration::from_secs(2)));
        assert_eq!(options.timeout(&plain), Some(Duration::from_secs(60)));
        options.no_timeout = true;
        assert_eq!(options.timeout(&quick), None);
    }

    #[test]
    fn doc_tests_run_once_per_package_grouped_by_arguments() {
        let mut slow = spec("slow", "pkg-b", &[]);
        slow.test.args = vec!["--include-ignored".into()];
        let (a, a2, c) = (
            spec("a", "pkg-a", &[]),
            spec("a2", "pkg-a", &[]),
            spec("c", "pkg-c", &[]),
        );
        let none = spec("n", "pkg-none", &[]);
        let broken = spec("x", "pkg-x", &[]);
        let mut build = TestBuild {
            doc_packages: ["pkg-a", "pkg-b", "pkg-c", "pkg-x"]
                .map(String::from)
                .into(),
            ..TestBuild::default()
        };
        build.failures.insert("pkg-x".into(), "error".into());
        let modules = [&a, &slow, &a2, &none, &broken, &c];
        let mut options = SuiteOptions::new(Timeouts::default());
        let requests = doc_requests(&modules, &build, &[], &options);
        let packages: Vec<&Vec<String>> = requests.iter().map(|r| &r.packages).collect();
        assert_eq!(
            packages,
            [
                &vec!["pkg-a".to_owned(), "pkg-c".to_owned()],
                &vec!["pkg-b".to_owned()]
            ]
        );
        assert_eq!(requests[1].args, ["--include-ignored"]);
        options.doc = false;
        assert!(doc_requests(&modules, &build, &[], &options).is_empty());
    }
}
