//! Building modules through cargo: one `cargo build
//! --message-format=json-render-diagnostics -p ...` for the requested packages,
//! artifact paths read from cargo's messages with `cargo_metadata`, compiler errors
//! shown as cargo renders them, and an indicatif spinner while it compiles
//! (hidden when stderr is not a terminal).

use std::collections::HashMap;
use std::io::{BufReader, IsTerminal};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cargo_output::{failed_packages, first_error, relay_stderr, spinner};
use cargo_metadata::{Message, TargetKind};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::workspace::Workspace;

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
/// children) from another thread.
#[derive(Clone)]
pub struct Builder {
    workspace_root: PathBuf,
    packages: Arc<HashMap<PathBuf, String>>,
    running: Arc<Mutex<Option<u32>>>,
    cancelled: Arc<AtomicBool>,
}

impl Builder {
    /// A builder for the packages of `workspace`.
    pub fn new(workspace: &Workspace) -> Self {
        let packages = workspace
            .packages
            .iter()
            .map(|p| (p.manifest_dir.clone(), p.name.clone()))
            .collect();
        Self {
            workspace_root: workspace.root.clone(),
            packages: Arc::new(packages),
            running: Arc::default(),
            cancelled: Arc::default(),
        }
    }

    /// Kills the running build, if any (its whole process group).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(pid) = *self.running.lock().unwrap_or_else(|e| e.into_inner()) {
            kill_group(pid);
        }
    }

    /// Builds `request.packages` and returns their cdylibs.
    pub fn build(&self, request: &BuildRequest) -> Result<BuildOutput, BuildError> {
        let started = Instant::now();
        self.cancelled.store(false, Ordering::SeqCst);
        let mut command = self.command(request);
        let mut child = command.spawn().map_err(|e| BuildError {
            failed_packages: Vec::new(),
            first_error: None,
            reason: Some(format!("cannot run cargo: {e}; is cargo on PATH?")),
            interrupted: false,
        })?;
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(child.id());
        // cargo leads its own process group: if we die, the guard kills it all.
        let guard = crate::isolation::guard::GroupGuard::start(child.id());
        let timed_out = Arc::new(Mutex::new(false));
        let timer = spawn_timeout(child.id(), request.timeout, Arc::clone(&timed_out));

        let progress = spinner("cargo build");
        let stderr_lines = child.stderr.take().map(|stderr| {
            let progress = progress.clone();
            std::thread::spawn(move || relay_stderr(stderr, &progress, |_| false))
        });
        let mut artifacts = HashMap::new();
        let mut rebuilt = Vec::new();
        let mut success = false;
        if let Some(stdout) = child.stdout.take() {
            for message in Message::parse_stream(BufReader::new(stdout)).flatten() {
                match message {
                    Message::CompilerArtifact(artifact) => {
                        let Some(package) = self.package_of(artifact.manifest_path.as_std_path())
                        else {
                            continue;
                        };
                        if !request.packages.contains(&package) {
                            continue;
                        }
                        if !artifact.fresh {
                            rebuilt.push(package.clone());
                        }
                        if artifact.target.kind.contains(&TargetKind::CDyLib)
                            && let Some(path) = artifact
                                .filenames
                                .iter()
                                .find(|f| f.as_str().ends_with(std::env::consts::DLL_SUFFIX))
                        {
                            artifacts.insert(package, path.clone().into_std_path_buf());
                        }
                    }
                    Message::BuildFinished(finished) => success = finished.success,
                    _ => {}
                }
            }
        }
        let status = child.wait();
        if let Some(guard) = guard {
            guard.release();
        }
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
        drop(timer);
        let lines = stderr_lines.and_then(|h| h.join().ok()).unwrap_or_default();
        progress.finish_and_clear();

        let exited_ok = status.as_ref().is_ok_and(|s| s.success());
        if success && exited_ok {
            return Ok(BuildOutput {
                artifacts,
                duration: started.elapsed(),
                rebuilt,
            });
        }
        let reason = if *timed_out.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(format!(
                "cargo build did not finish within {} (timeouts.build in config/main.yaml)",
                orch_sdk::duration::human(request.timeout)
            ))
        } else if status.as_ref().is_ok_and(|s| s.code().is_none()) {
            Some("cargo build was interrupted".to_owned())
        } else {
            None
        };
        Err(BuildError {
            failed_packages: failed_packages(&lines),
            first_error: first_error(&lines),
            reason,
            interrupted: self.cancelled.load(Ordering::SeqCst),
        })
    }

    fn command(&self, request: &BuildRequest) -> Command {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .current_dir(&self.workspace_root)
            .arg("build")
            .arg("--message-format=json-render-diagnostics")
            .arg(
                if crate::logging::console_wants_color() && std::io::stderr().is_terminal() {
                    "--color=always"
                } else {
                    "--color=never"
                },
            );
        if request.release {
            command.arg("--release");
        }
        for package in &request.packages {
            command.arg("-p").arg(package);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: cancel() ends cargo and every rustc it runs.
            .process_group(0);
        command
    }

    fn package_of(&self, manifest_path: &Path) -> Option<String> {
        let dir = manifest_path.parent()?;
        self.packages.get(dir).cloned()
    }
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

/// Kills the build's process group if it runs past `timeout`; dropping the
/// returned sender disarms it.
fn spawn_timeout(
    pid: u32,
    timeout: Duration,
    fired: Arc<Mutex<bool>>,
) -> crossbeam_channel::Sender<()> {
    let (disarm, disarmed) = crossbeam_channel::bounded::<()>(0);
    std::thread::spawn(move || {
        if let Err(crossbeam_channel::RecvTimeoutError::Timeout) = disarmed.recv_timeout(timeout) {
            *fired.lock().unwrap_or_else(|e| e.into_inner()) = true;
            kill_group(pid);
        }
    });
    disarm
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
