//! One `cargo orch test` run: build every module's tests in one cargo run, run
//! the test binaries in parallel, load each module in a scratch host at the same
//! time, and gather everything into a [`TestReport`], one row per module.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::compile::{TestBuild, TestBuildRequest, TestCompiler};
use super::model::{CaseKind, ModuleReport, Outcome, TestCase, TestReport};
use super::runner::{self, BinaryJob};
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
    /// The phase timeouts of the load checks, and `build` for the cargo runs.
    pub timeouts: Timeouts,
    /// How many test binaries may run at once (at least 1).
    pub jobs: usize,
}

impl SuiteOptions {
    /// No extra arguments, the given timeouts, one binary per core.
    pub fn new(timeouts: Timeouts) -> Self {
        Self {
            test_args: Vec::new(),
            timeouts,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
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
    /// runs and test binaries (see also [`Suite::builder`]).
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
        let packages = orch_config::packages_of(modules.iter().copied());
        let features = features(modules);
        let compiler = TestCompiler::new(self.workspace, self.children.clone());
        let build = compiler.build(&TestBuildRequest {
            packages: packages.clone(),
            features: features.clone(),
            timeout: options.timeouts.build,
        });
        let libraries = self.libraries(&packages, &features, &build, options.timeouts.build);

        let jobs: Vec<(usize, BinaryJob)> = modules
            .iter()
            .enumerate()
            .flat_map(|(index, module)| {
                build
                    .binaries
                    .iter()
                    .filter(|b| b.package == module.package)
                    .map(move |binary| {
                        let args = runner::job_args(&options.test_args, &module.test.args);
                        (
                            index,
                            BinaryJob {
                                binary: binary.clone(),
                                args,
                            },
                        )
                    })
            })
            .collect();
        let binary_jobs: Vec<BinaryJob> = jobs.iter().map(|(_, job)| job.clone()).collect();

        let (runs, load_checks) = std::thread::scope(|scope| {
            let checks = scope.spawn(|| self.load_checks(modules, &build, &libraries, options));
            let runs = runner::run_all(&binary_jobs, options.jobs, &self.children);
            let checks = checks.join().unwrap_or_else(|_| {
                modules
                    .iter()
                    .map(|_| {
                        Some(load_case(
                            Outcome::failed("the load check panicked", ""),
                            Duration::ZERO,
                        ))
                    })
                    .collect()
            });
            (runs, checks)
        });

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
                report.tests.push(TestCase {
                    name: BUILD.to_owned(),
                    kind: CaseKind::Build,
                    outcome: Outcome::failed(
                        format!("the tests of package `{}` did not build", module.package),
                        error.clone(),
                    ),
                    duration: Duration::ZERO,
                });
            }
        }
        for ((index, _), run) in jobs.iter().zip(runs) {
            let report = &mut reports[*index];
            report.duration += run.duration;
            report.tests.extend(run.tests);
        }
        for (report, check) in reports.iter_mut().zip(load_checks) {
            if let Some(check) = check {
                report.duration += check.duration;
                report.tests.push(check);
            }
        }
        TestReport {
            modules: reports,
            duration: started.elapsed(),
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
                let outcome = match libraries.get(&module.package) {
                    Some(Ok(library)) => match orch_runtime::scratch::load_check(
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
                Some(load_case(outcome, started.elapsed()))
            })
            .collect()
    }
}

fn load_case(outcome: Outcome, duration: Duration) -> TestCase {
    TestCase {
        name: LOAD_CHECK.to_owned(),
        kind: CaseKind::LoadCheck,
        outcome,
        duration,
    }
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
}
