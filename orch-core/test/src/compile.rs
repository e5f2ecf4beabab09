//! Building the modules' test binaries: one `cargo test --no-run
//! --message-format=json -p a -p b ...` for every package, the executables read
//! from the compiler-artifact messages with `cargo_metadata` and attributed to
//! their package by manifest path (as `orch_cargo::Builder` does), through the
//! same cargo invocation (`orch_cargo::invocation`): process group, guard,
//! deadline.
//!
//! Cargo stops the whole build at the first package that does not compile, so
//! when it fails the packages at fault are found (from the compiler's error
//! messages and the `could not compile` lines) and the build is retried without
//! them: the other modules' tests still build and run. A failure that names no
//! package (a bad feature, say) falls back to one build per package.
//!
//! The same build also yields a package's `cdylib` when its library is
//! `["cdylib", "rlib"]` (cargo compiles the library itself for the doc tests):
//! it is the very unit `cargo build` would compile, so a load check can use it
//! without another cargo run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cargo_metadata::diagnostic::DiagnosticLevel;
use cargo_metadata::{Message, TargetKind};
use orch_cargo::cargo_output::{failed_packages, first_error, stderr_wants_color, strip_ansi};
use orch_cargo::invocation::{CargoInvocation, PackageIndex, cdylib_of, run_cargo};
use orch_config::workspace::Workspace;
use orch_process::ProcessGroups;

/// One test executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestBinary {
    /// The package it tests.
    pub package: String,
    /// The cargo target: the library's crate name, or an integration test's name.
    pub target: String,
    /// Whether it holds the unit tests of the package's library.
    pub is_lib: bool,
    /// The executable.
    pub path: PathBuf,
    /// The package's folder (test binaries run there, as under `cargo test`).
    pub manifest_dir: PathBuf,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct TestBuildRequest {
    /// The packages (`-p`).
    pub packages: Vec<String>,
    /// `(package, feature)` pairs, passed as `--features package/feature`.
    pub features: Vec<(String, String)>,
    /// Kill a cargo run that takes longer than this.
    pub timeout: Duration,
}

/// The outcome of [`TestCompiler::build`].
#[derive(Debug, Clone, Default)]
pub struct TestBuild {
    /// The test executables of the packages that compiled.
    pub binaries: Vec<TestBinary>,
    /// The `cdylib` of each package whose build produced one.
    pub cdylibs: HashMap<String, PathBuf>,
    /// The packages whose library has doc tests (cargo built the library
    /// itself for them: an `rlib`, doc tests not turned off).
    pub doc_packages: HashSet<String>,
    /// The packages whose tests did not compile, each with the compiler's first
    /// error (or why the build stopped).
    pub failures: BTreeMap<String, String>,
    /// Wall time of every cargo run together.
    pub duration: Duration,
}

/// Builds test binaries with cargo.
pub struct TestCompiler {
    root: PathBuf,
    packages: PackageIndex,
    /// Workspace dependencies of each package.
    dependencies: HashMap<String, Vec<String>>,
    children: ProcessGroups,
}

/// One cargo run.
#[derive(Default)]
struct Attempt {
    binaries: Vec<TestBinary>,
    cdylibs: HashMap<String, PathBuf>,
    doc_packages: HashSet<String>,
    success: bool,
    /// First error message per package, as rendered.
    errors: HashMap<String, String>,
    /// Packages of the `error: could not compile `x`` lines.
    could_not_compile: Vec<String>,
    /// The first `error:` block of cargo's own output, when no package is named.
    general_error: Option<String>,
    /// Why the run stopped when it was not a compile error (timeout, interrupt).
    stopped: Option<String>,
}

impl TestCompiler {
    /// A compiler for the packages of `workspace`, its children registered in
    /// `children`.
    pub fn new(workspace: &Workspace, children: ProcessGroups) -> Self {
        let dependencies = workspace
            .packages
            .iter()
            .map(|p| (p.name.clone(), p.workspace_dependencies.clone()))
            .collect();
        Self {
            root: workspace.root.clone(),
            packages: PackageIndex::new(workspace),
            dependencies,
            children,
        }
    }

    /// Builds the test binaries of `request.packages`, leaving out (and
    /// reporting) the packages that do not compile.
    pub fn build(&self, request: &TestBuildRequest) -> TestBuild {
        let started = Instant::now();
        let mut build = TestBuild::default();
        let mut remaining = request.packages.clone();
        while !remaining.is_empty() {
            let attempt = self.attempt(&remaining, &request.features, request.timeout);
            if attempt.success {
                build.collect(attempt);
                break;
            }
            if let Some(reason) = &attempt.stopped {
                for package in remaining.drain(..) {
                    build.failures.insert(package, reason.clone());
                }
                break;
            }
            let failed = self.at_fault(&attempt, &remaining);
            if failed.is_empty() {
                if remaining.len() > 1 {
                    self.one_by_one(&remaining, request, &mut build);
                } else {
                    let error = attempt.general_error.unwrap_or_else(|| {
                        "`cargo test --no-run` failed; see cargo's output above".to_owned()
                    });
                    build.failures.insert(remaining.remove(0), error);
                }
                break;
            }
            remaining.retain(|p| !failed.contains_key(p));
            build.failures.extend(failed);
        }
        // Deterministic order: by package, the library's unit tests first.
        build.binaries.sort_by(|a, b| {
            (&a.package, !a.is_lib, &a.target).cmp(&(&b.package, !b.is_lib, &b.target))
        });
        build.duration = started.elapsed();
        build
    }

    /// Builds each package alone (when a failure named no package).
    fn one_by_one(&self, packages: &[String], request: &TestBuildRequest, build: &mut TestBuild) {
        for package in packages {
            let attempt = self.attempt(
                std::slice::from_ref(package),
                &request.features,
                request.timeout,
            );
            if attempt.success {
                build.collect(attempt);
                continue;
            }
            let error = attempt
                .stopped
                .clone()
                .or_else(|| attempt.errors.get(package).cloned())
                .or(attempt.general_error)
                .unwrap_or_else(|| "`cargo test --no-run` failed; see cargo's output above".into());
            build.failures.insert(package.clone(), error);
        }
    }

    /// The packages of `remaining` a failed attempt blames, with their error: the
    /// ones that did not compile, else the ones depending on a workspace package
    /// that did not.
    fn at_fault(&self, attempt: &Attempt, remaining: &[String]) -> BTreeMap<String, String> {
        let mut failed = BTreeMap::new();
        let broken: Vec<&String> = attempt
            .errors
            .keys()
            .chain(&attempt.could_not_compile)
            .collect();
        for package in remaining {
            if broken.contains(&package) {
                let error = attempt
                    .errors
                    .get(package)
                    .or(attempt.general_error.as_ref())
                    .cloned()
                    .unwrap_or_else(|| {
                        format!("`{package}` does not compile; see cargo's output above")
                    });
                failed.insert(package.clone(), error);
            }
        }
        if !failed.is_empty() {
            return failed;
        }
        for dependency in broken.iter().filter(|p| !remaining.contains(p)) {
            let error = attempt.errors.get(*dependency).cloned().unwrap_or_default();
            for package in remaining {
                if self.depends_on(package, dependency) {
                    failed.insert(
                        package.clone(),
                        format!(
                            "its workspace dependency `{dependency}` does not compile\n{error}"
                        ),
                    );
                }
            }
        }
        failed
    }

    /// Whether `package` depends on `dependency`, directly or not, in the workspace.
    fn depends_on(&self, package: &str, dependency: &str) -> bool {
        let mut seen = HashSet::new();
        let mut stack = vec![package];
        while let Some(next) = stack.pop() {
            for dep in self.dependencies.get(next).into_iter().flatten() {
                if dep == dependency {
                    return true;
                }
                if seen.insert(dep.as_str()) {
                    stack.push(dep);
                }
            }
        }
        false
    }

    /// One `cargo test --no-run` of `packages`.
    fn attempt(
        &self,
        packages: &[String],
        features: &[(String, String)],
        timeout: Duration,
    ) -> Attempt {
        let invocation = CargoInvocation {
            root: &self.root,
            args: Self::args(packages, features, stderr_wants_color()),
            timeout,
            label: "cargo test --no-run",
            // The `Executable ...` list: `cargo orch test` runs the binaries itself.
            hide: |line| line.starts_with("Executable "),
        };
        let mut attempt = Attempt::default();
        let outcome = run_cargo(&invocation, &self.children, |message, progress| {
            self.read_message(message, packages, progress, &mut attempt);
        });
        attempt.success &= outcome.succeeded();
        if attempt.success {
            return attempt;
        }
        attempt.could_not_compile = failed_packages(&outcome.stderr);
        attempt.general_error = first_error(&outcome.stderr);
        attempt.stopped = outcome.stop_reason("building the tests", timeout);
        attempt
    }

    fn args(packages: &[String], features: &[(String, String)], color: bool) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "test".into(),
            "--no-run".into(),
            if color {
                "--message-format=json-diagnostic-rendered-ansi"
            } else {
                "--message-format=json"
            }
            .into(),
            if color {
                "--color=always"
            } else {
                "--color=never"
            }
            .into(),
        ];
        for package in packages {
            args.push("-p".into());
            args.push(package.into());
        }
        for (package, feature) in features {
            if packages.contains(package) {
                args.push("--features".into());
                args.push(format!("{package}/{feature}").into());
            }
        }
        args
    }

    fn read_message(
        &self,
        message: Message,
        packages: &[String],
        progress: &indicatif::ProgressBar,
        attempt: &mut Attempt,
    ) {
        match message {
            Message::CompilerArtifact(artifact) => {
                let Some(package) = self
                    .packages
                    .package_of(artifact.manifest_path.as_std_path())
                    .filter(|p| packages.iter().any(|r| r == p))
                    .map(str::to_owned)
                else {
                    return;
                };
                let manifest_dir = artifact
                    .manifest_path
                    .parent()
                    .map(|p| p.as_std_path().to_path_buf())
                    .unwrap_or_default();
                if artifact.profile.test {
                    if let Some(path) = artifact.executable {
                        attempt.binaries.push(TestBinary {
                            package,
                            is_lib: artifact.target.kind.iter().any(is_library),
                            target: artifact.target.name.clone(),
                            path: path.into_std_path_buf(),
                            manifest_dir,
                        });
                    }
                } else {
                    if artifact.target.doctest && artifact.target.kind.iter().any(is_rust_library) {
                        attempt.doc_packages.insert(package.clone());
                    }
                    if let Some(path) = cdylib_of(&artifact) {
                        attempt.cdylibs.insert(package, path);
                    }
                }
            }
            Message::CompilerMessage(message) => {
                let rendered = message.message.rendered.clone().unwrap_or_default();
                if !rendered.is_empty() {
                    progress.suspend(|| eprint!("{rendered}"));
                }
                let is_error = matches!(
                    message.message.level,
                    DiagnosticLevel::Error | DiagnosticLevel::Ice
                );
                if is_error
                    && let Some(package) = self
                        .packages
                        .package_of(message.target.src_path.as_std_path())
                {
                    attempt
                        .errors
                        .entry(package.to_owned())
                        .or_insert_with(|| strip_ansi(rendered.trim_end()));
                }
            }
            Message::BuildFinished(finished) => attempt.success = finished.success,
            _ => {}
        }
    }
}

impl TestBuild {
    fn collect(&mut self, attempt: Attempt) {
        self.binaries.extend(attempt.binaries);
        self.cdylibs.extend(attempt.cdylibs);
        self.doc_packages.extend(attempt.doc_packages);
    }
}

/// A library other crates link (what rustdoc can run doc tests against).
fn is_rust_library(kind: &TargetKind) -> bool {
    matches!(
        kind,
        TargetKind::Lib | TargetKind::RLib | TargetKind::DyLib | TargetKind::ProcMacro
    )
}

fn is_library(kind: &TargetKind) -> bool {
    matches!(
        kind,
        TargetKind::Lib
            | TargetKind::RLib
            | TargetKind::DyLib
            | TargetKind::CDyLib
            | TargetKind::StaticLib
            | TargetKind::ProcMacro
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_config::workspace::WorkspacePackage;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    fn compiler() -> TestCompiler {
        let package = |name: &str, deps: &[&str]| WorkspacePackage {
            name: name.into(),
            manifest_dir: PathBuf::from("/ws").join(name),
            is_cdylib: true,
            lib_name: Some(name.replace('-', "_")),
            workspace_dependencies: deps.iter().map(|d| (*d).to_owned()).collect(),
        };
        let workspace = Workspace {
            root: PathBuf::from("/ws"),
            target_dir: PathBuf::from("/ws/target"),
            packages: vec![
                package("helper", &[]),
                package("mod-a", &["helper"]),
                package("mod-b", &[]),
                package("mod-c", &["mod-a"]),
                WorkspacePackage {
                    name: "nested".into(),
                    manifest_dir: PathBuf::from("/ws/mod-b/nested"),
                    is_cdylib: false,
                    lib_name: None,
                    workspace_dependencies: Vec::new(),
                },
            ],
        };
        TestCompiler::new(&workspace, ProcessGroups::default())
    }

    #[test]
    fn reads_cargo_s_failure_lines() {
        let output = lines(
            "   Compiling mod-x v0.1.0\n\
             error: could not compile `mod-x` (lib test) due to 1 previous error\n\
             warning: build failed, waiting for other jobs to finish...\n\
             error: could not compile `mod-x` (lib) due to 1 previous error\n\
             error: could not compile `mod-y` (test \"api\") due to 2 previous errors\n",
        );
        assert_eq!(failed_packages(&output), ["mod-x", "mod-y"]);
        assert_eq!(first_error(&output), None);
        let output = lines(
            "error: the package 'mod-a' does not contain this feature: nope\n\
             help: package with the missing feature: mod-a\n\nmore\n",
        );
        assert_eq!(
            first_error(&output).as_deref(),
            Some(
                "error: the package 'mod-a' does not contain this feature: nope\n\
                 help: package with the missing feature: mod-a"
            )
        );
    }

    #[test]
    fn blames_the_packages_that_failed_or_else_their_dependents() {
        let compiler = compiler();
        let remaining: Vec<String> = ["mod-a", "mod-b", "mod-c"].map(String::from).to_vec();
        let attempt = Attempt {
            errors: HashMap::from([(
                "mod-b".to_owned(),
                "error[E0308]: mismatched types".to_owned(),
            )]),
            could_not_compile: vec!["mod-b".into()],
            ..Attempt::default()
        };
        let failed = compiler.at_fault(&attempt, &remaining);
        assert_eq!(
            failed.into_iter().collect::<Vec<_>>(),
            [(
                "mod-b".to_owned(),
                "error[E0308]: mismatched types".to_owned()
            )]
        );

        let attempt = Attempt {
            errors: HashMap::from([("helper".to_owned(), "error: boom".to_owned())]),
            could_not_compile: vec!["helper".into()],
            ..Attempt::default()
        };
        let failed = compiler.at_fault(&attempt, &remaining);
        assert_eq!(failed.keys().collect::<Vec<_>>(), ["mod-a", "mod-c"]);
        assert!(failed["mod-c"].contains("dependency `helper` does not compile\nerror: boom"));

        assert!(
            compiler
                .at_fault(&Attempt::default(), &remaining)
                .is_empty()
        );
    }
}
