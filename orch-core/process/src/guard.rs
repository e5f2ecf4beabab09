//! No orphans among build processes: cargo runs in a process group of its own
//! (with every rustc and build script under it), and a small guard process
//! (`cargo-orch __group-guard PGID`) holds a pipe from the orchestrator. When
//! the orchestrator dies in any way, SIGKILL included, the pipe closes and the
//! guard kills the whole group; when the build ends normally the orchestrator
//! says so first and the guard leaves quietly.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::host::host_program;

/// The first argument that starts the binary as a group guard.
pub const GUARD_MODE_ARG: &str = "__group-guard";

/// A running guard of one process group; [`GroupGuard::release`] ends it
/// without killing anything.
pub struct GroupGuard {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl GroupGuard {
    /// Starts a guard of process group `pgid`, when this process is
    /// `cargo-orch` (or `$ORCH_MODULE_HOST` names it); `None` otherwise.
    pub fn start(pgid: u32) -> Option<Self> {
        let program = host_program().ok()?;
        let is_orch = program
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("cargo-orch"));
        if !is_orch {
            return None;
        }
        let mut child = Command::new(program)
            .arg(GUARD_MODE_ARG)
            .arg(pgid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Out of the terminal's group: a Ctrl-C must not end the guard.
            .process_group(0)
            .spawn()
            .ok()?;
        let stdin = child.stdin.take();
        Some(Self { child, stdin })
    }

    /// The group ended normally: the guard leaves without killing anything.
    pub fn release(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"done");
        }
        let _ = self.child.wait();
    }
}

/// The guard's main: waits for the orchestrator's word or the end of its pipe.
pub fn guard_main(args: &[String]) -> ExitCode {
    let Some(pgid) = args.first().and_then(|a| a.parse::<i32>().ok()) else {
        return ExitCode::from(2);
    };
    let mut byte = [0u8; 1];
    let released = matches!(std::io::stdin().read(&mut byte), Ok(n) if n > 0);
    if !released {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    ExitCode::SUCCESS
}
