//! Building modules through cargo: one `cargo build
//! --message-format=json-render-diagnostics -p ...` for the requested packages,
//! artifact paths read from cargo's messages with `cargo_metadata`, compiler errors
//! shown as cargo renders them, and an indicatif spinner while it compiles
//! (hidden when stderr is not a terminal).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cargo_metadata::Message;
use orch_config::workspace::Workspace;
use orch_process::ProcessGroups;

use crate::cargo_output::{failed_packages, first_error};
use crate::invocation::{CargoInvocation, PackageIndex, cdylib_of, run_cargo};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The packages (`-p`), each a module's cdylib.
    pub packages: Vec<String>,
    /// `--release`.
    pub release: bool,
    /// Kill the build after this long.
    pub timeout: Duration,
}

/// A successful build.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// The cdylib of each requested package.
    pub artifacts: HashMap<String, PathBuf>,
    /// Wall time of the cargo invocation.
    pub duration: Duration,
    /// Packages cargo actually recompiled (not fresh).
    pub rebuilt: Vec<String>,
}

/// A failed build: which packages did not compile and the first compiler error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct BuildError {
    /// The packages cargo reported as not compiling.
    pub failed_packages: Vec<String>,
    /// The first `error` block cargo printed, as rendered.
    pub first_error: Option<String>,
    /// Why the build stopped, when it was not a compile error.
    pub reason: Option<String>,
    /// The build was cancelled ([`Builder::cancel`]), not failed.
    pub interrupted: bool,
}

impl BuildError {
    fn describe(&self) -> String {
        let mut text = if let Some(reason) = &self.reason {
            format!("build failed (phase build): {reason}")
        } else if self.failed_packages.is_empty() {
            "build failed (phase build): cargo build did not succeed".to_owned()
        } else {
            format!(
                "build failed (phase build): {} did not compile",
                self.failed_packages
                    .iter()
                    .map(|p| format!("module package '{p}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        if let Some(first) = &self.first_error {
            text.push_str("\nfirst error:\n");
            text.push_str(first);
        }
        text.push_str(
            "\n  hint: fix the error shown above (cargo's full output is printed before this message)",
        );
        text
    }
}

/// Runs cargo builds; [`Builder::cancel`] ends a running one (and its rustc
/// children) from another thread and refuses later ones.
#[derive(Clone)]
pub struct Builder {
    workspace_root: PathBuf,
    packages: Arc<PackageIndex>,
    groups: ProcessGroups,
}

impl Builder {
    /// A builder for the packages of `workspace`.
    pub fn new(workspace: &Workspace) -> Self {
        Self {
            workspace_root: workspace.root.clone(),
            packages: Arc::new(PackageIndex::new(workspace)),
            groups: ProcessGroups::default(),
        }
    }

    /// Kills the running build, if any (its whole process group); later builds
    /// fail as interrupted.
    pub fn cancel(&self) {
        self.groups.cancel();
    }

    /// Builds `request.packages` and returns their cdylibs.
    pub fn build(&self, request: &BuildRequest) -> Result<BuildOutput, BuildError> {
        let started = Instant::now();
        let mut artifacts = HashMap::new();
        let mut rebuilt = Vec::new();
        let mut success = false;
        let invocation = CargoInvocation {
            root: &self.workspace_root,
            args: self.args(request),
            timeout: request.timeout,
            label: "cargo build",
            hide: |_| false,
        };
        let outcome = run_cargo(&invocation, &self.groups, |message, _| match message {
            Message::CompilerArtifact(artifact) => {
                let Some(package) = self
                    .packages
                    .package_of(artifact.manifest_path.as_std_path())
                    .filter(|p| request.packages.iter().any(|r| r == p))
                else {
                    return;
                };
                if !artifact.fresh {
                    rebuilt.push(package.to_owned());
                }
                if let Some(path) = cdylib_of(&artifact) {
                    artifacts.insert(package.to_owned(), path);
                }
            }
            Message::BuildFinished(finished) => success = finished.success,
            _ => {}
        });
        if success && outcome.succeeded() {
            return Ok(BuildOutput {
                artifacts,
                duration: started.elapsed(),
                rebuilt,
            });
        }
        Err(BuildError {
            failed_packages: failed_packages(&outcome.stderr),
            first_error: first_error(&outcome.stderr),
            reason: outcome.stop_reason("cargo build", request.timeout),
            interrupted: outcome.cancelled,
        })
    }

    fn args(&self, request: &BuildRequest) -> Vec<OsString> {
        let color = if crate::cargo_output::stderr_wants_color() {
            "--color=always"
        } else {
            "--color=never"
        };
        let mut args: Vec<OsString> = vec![
            "build".into(),
            "--message-format=json-render-diagnostics".into(),
            color.into(),
        ];
        if request.release {
            args.push("--release".into());
        }
        for package in &request.packages {
            args.push("-p".into());
            args.push(package.into());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_the_packages_and_the_phase() {
        let error = BuildError {
            failed_packages: vec!["mod-x".into()],
            first_error: Some("error: boom".into()),
            reason: None,
            interrupted: false,
        };
        let text = error.to_string();
        assert!(
            text.contains("module package 'mod-x' did not compile"),
            "{text}"
        );
        assert!(text.contains("phase build"));
        assert!(text.contains("hint:"));
    }
}
