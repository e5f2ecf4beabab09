//! One cargo run with JSON messages, written once for every caller (`cargo
//! build` of the modules, `cargo test --no-run` of `cargo orch test`): cargo
//! leads a process group of its own (registered in a [`ProcessGroups`], so a
//! cancel ends it with every rustc and build script), a [`GroupGuard`] kills
//! that group if this process dies, a [`Deadline`] bounds it, and its stderr is
//! relayed as cargo renders it while a spinner shows what it compiles.

use std::ffi::OsString;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cargo_metadata::Message;
use indicatif::ProgressBar;
use orch_process::{Deadline, ExitReason, GroupGuard, ProcessGroups};

use crate::cargo_output::{relay_stderr, spinner};

/// What to run: `cargo <args>` in `root`.
pub struct CargoInvocation<'a> {
    /// The workspace folder cargo runs in.
    pub root: &'a Path,
    /// The arguments after `cargo`.
    pub args: Vec<OsString>,
    /// Kill cargo's whole group after this long.
    pub timeout: Duration,
    /// The spinner's label (`cargo build`).
    pub label: &'a str,
    /// stderr lines (without colour) that are kept but not shown.
    pub hide: fn(&str) -> bool,
}

/// How a cargo run ended.
#[derive(Debug)]
pub struct CargoOutcome {
    /// How the cargo process ended; `None` when it never started or could not
    /// be waited for (see [`CargoOutcome::spawn_error`]).
    pub exit: Option<ExitReason>,
    /// cargo could not be started (or waited for): why.
    pub spawn_error: Option<String>,
    /// The run passed its deadline and its group was killed.
    pub timed_out: bool,
    /// The run was cancelled through its [`ProcessGroups`].
    pub cancelled: bool,
    /// Every stderr line, without colour codes.
    pub stderr: Vec<String>,
}

impl CargoOutcome {
    /// cargo exited with code 0.
    pub fn succeeded(&self) -> bool {
        self.exit.is_some_and(ExitReason::is_success)
    }

    /// Why the run stopped when it was not cargo's own failure: `what` (`cargo
    /// build`) did not start, passed `timeout`, or was interrupted.
    pub fn stop_reason(&self, what: &str, timeout: Duration) -> Option<String> {
        if let Some(error) = &self.spawn_error {
            Some(format!("cannot run cargo: {error}; is cargo on PATH?"))
        } else if self.timed_out {
            Some(format!(
                "{what} did not finish within {} (timeouts.build in config/main.yaml)",
                orch_sdk::duration::human(timeout)
            ))
        } else if self.cancelled || matches!(self.exit, Some(ExitReason::Signal(_))) {
            Some(format!("{what} was interrupted"))
        } else {
            None
        }
    }
}

/// The cargo program: `$CARGO` (set when running under cargo), else `cargo`.
pub fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Removes the variables cargo set for the program that runs us (`cargo
/// orch` through `cargo run`: `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, ...): a
/// build script that reads one (ring's does) would otherwise make its crate
/// another unit than in a plain `cargo build`, compiled a second time.
pub fn forget_parent_package(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("CARGO_BIN_")
            || matches!(
                key,
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR"
            )
        {
            command.env_remove(key);
        }
    }
}

/// Runs `invocation`, handing every JSON message on stdout to `on_message`
/// (with the spinner, for printing above it).
pub fn run_cargo(
    invocation: &CargoInvocation<'_>,
    groups: &ProcessGroups,
    mut on_message: impl FnMut(Message, &ProgressBar),
) -> CargoOutcome {
    let mut command = Command::new(cargo_program());
    forget_parent_package(&mut command);
    command
        .current_dir(invocation.root)
        .args(&invocation.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut outcome = CargoOutcome {
        exit: None,
        spawn_error: None,
        timed_out: false,
        cancelled: false,
        stderr: Vec::new(),
    };
    let mut child = match groups.spawn(&mut command) {
        Ok(child) => child,
        Err(error) => {
            outcome.cancelled = groups.is_cancelled();
            if !outcome.cancelled {
                outcome.spawn_error = Some(error.to_string());
            }
            return outcome;
        }
    };
    let pid = child.id();
    // cargo leads its own process group: if we die, the guard kills it all.
    let guard = GroupGuard::start(pid);
    let deadline = Deadline::arm(pid, invocation.timeout);
    let progress = spinner(invocation.label);
    let hide = invocation.hide;
    let stderr = child.stderr.take().map(|stderr| {
        let progress = progress.clone();
        std::thread::spawn(move || relay_stderr(stderr, &progress, hide))
    });
    if let Some(stdout) = child.stdout.take() {
        for message in Message::parse_stream(BufReader::new(stdout)).flatten() {
            on_message(message, &progress);
        }
    }
    match child.wait() {
        Ok(status) => outcome.exit = Some(ExitReason::from_status(status)),
        Err(error) => outcome.spawn_error = Some(format!("waiting for cargo failed: {error}")),
    }
    groups.release(pid);
    if let Some(guard) = guard {
        guard.release();
    }
    outcome.timed_out = deadline.fired();
    outcome.cancelled = groups.is_cancelled();
    outcome.stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    progress.finish_and_clear();
    outcome
}

/// Maps paths (manifests, source files) to the workspace package whose folder
/// holds them; a package nested in another's folder wins.
#[derive(Debug, Clone, Default)]
pub struct PackageIndex {
    /// Package name by manifest folder, longest folder first.
    dirs: Vec<(PathBuf, String)>,
}

impl PackageIndex {
    /// The index of `workspace`'s packages.
    pub fn new(workspace: &orch_config::workspace::Workspace) -> Self {
        let mut dirs: Vec<(PathBuf, String)> = workspace
            .packages
            .iter()
            .map(|p| (p.manifest_dir.clone(), p.name.clone()))
            .collect();
        dirs.sort_by_key(|(dir, _)| std::cmp::Reverse(dir.as_os_str().len()));
        Self { dirs }
    }

    /// The package whose folder holds `path`.
    pub fn package_of(&self, path: &Path) -> Option<&str> {
        self.dirs
            .iter()
            .find(|(dir, _)| path.starts_with(dir))
            .map(|(_, name)| name.as_str())
    }
}

/// The `cdylib` file of a compiler-artifact message, if it built one.
pub fn cdylib_of(artifact: &cargo_metadata::Artifact) -> Option<PathBuf> {
    if !artifact
        .target
        .kind
        .contains(&cargo_metadata::TargetKind::CDyLib)
    {
        return None;
    }
    artifact
        .filenames
        .iter()
        .find(|f| f.as_str().ends_with(std::env::consts::DLL_SUFFIX))
        .map(|f| f.clone().into_std_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_config::workspace::{Workspace, WorkspacePackage};

    fn package(name: &str, dir: &str) -> WorkspacePackage {
        WorkspacePackage {
            name: name.into(),
            manifest_dir: PathBuf::from(dir),
            is_cdylib: true,
            lib_name: None,
            workspace_dependencies: Vec::new(),
        }
    }

    #[test]
    fn a_nested_package_wins_over_the_one_around_it() {
        let workspace = Workspace {
            root: "/w".into(),
            target_dir: "/w/target".into(),
            packages: vec![
                package("outer", "/w/outer"),
                package("inner", "/w/outer/inner"),
            ],
        };
        let index = PackageIndex::new(&workspace);
        assert_eq!(
            index.package_of(Path::new("/w/outer/inner/Cargo.toml")),
            Some("inner")
        );
        assert_eq!(
            index.package_of(Path::new("/w/outer/src/lib.rs")),
            Some("outer")
        );
        assert_eq!(index.package_of(Path::new("/w/other/Cargo.toml")), None);
        // `/w/outer` must not claim `/w/outer-x`.
        assert_eq!(index.package_of(Path::new("/w/outer-x/src/lib.rs")), None);
    }
}
