//! Building one of cargo-orch's own programs on demand (`orch-networked`):
//! `cargo build --manifest-path <its Cargo.toml> --bin <name>` into a given
//! target folder, the executable read from cargo's messages. The same cargo
//! run as the modules' builds (process group, deadline, stderr relayed).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cargo_metadata::Message;
use orch_process::ProcessGroups;

use crate::BuildError;
use crate::cargo_output::first_error;
use crate::invocation::{CargoInvocation, run_cargo};

/// Which program to build, and where.
#[derive(Debug, Clone)]
pub struct ProgramBuild<'a> {
    /// The package's `Cargo.toml`.
    pub manifest: &'a Path,
    /// The binary target's name.
    pub bin: &'a str,
    /// The target folder (`CARGO_TARGET_DIR` of the build).
    pub target_dir: &'a Path,
    /// `--release`.
    pub release: bool,
    /// Kill the build after this long.
    pub timeout: Duration,
}

/// Builds the program and returns its executable.
pub fn build_program(
    build: &ProgramBuild<'_>,
    groups: &ProcessGroups,
) -> Result<PathBuf, BuildError> {
    let mut args: Vec<OsString> = vec![
        "build".into(),
        "--message-format=json-render-diagnostics".into(),
        if crate::cargo_output::stderr_wants_color() {
            "--color=always".into()
        } else {
            "--color=never".into()
        },
        "--manifest-path".into(),
        build.manifest.into(),
        "--bin".into(),
        build.bin.into(),
        "--target-dir".into(),
        build.target_dir.into(),
    ];
    if build.release {
        args.push("--release".into());
    }
    let root = build.manifest.parent().unwrap_or(Path::new("."));
    let invocation = CargoInvocation {
        root,
        args,
        timeout: build.timeout,
        label: "cargo build",
        hide: |_| false,
    };
    let mut executable = None;
    let mut success = false;
    let outcome = run_cargo(&invocation, groups, |message, _| match message {
        Message::CompilerArtifact(artifact) if artifact.target.name == build.bin => {
            executable = artifact.executable.map(|e| e.into_std_path_buf());
        }
        Message::BuildFinished(finished) => success = finished.success,
        _ => {}
    });
    match executable {
        Some(path) if success && outcome.succeeded() => Ok(path),
        _ => Err(BuildError {
            // Not modules: the packages that failed are cargo-orch's own,
            // named in the first error.
            failed_packages: Vec::new(),
            first_error: first_error(&outcome.stderr),
            reason: Some(
                outcome
                    .stop_reason("cargo build", build.timeout)
                    .unwrap_or_else(|| {
                        format!(
                            "cargo could not build the program '{}' of {}",
                            build.bin,
                            build.manifest.display()
                        )
                    }),
            ),
            interrupted: outcome.cancelled,
        }),
    }
}
