//! No orphans among build processes: cargo runs in a process group of its own
//! (with every rustc and build script under it), and a small guard process
//! (`cargo-orch __group-guard PGID`) holds a pipe from the orchestrator. When
//! the orchestrator dies in any way, SIGKILL included, the pipe closes and the
//! guard kills the whole group; when the build ends normally the orchestrator
//! says so first and the guard leaves quietly. One guard can follow many
//! groups (`cargo orch test`'s test processes: one guard for the whole run).

use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::host::host_program;

/// The first argument that starts the binary as a group guard.
pub const GUARD_MODE_ARG: &str = "__group-guard";

/// A running guard of process groups; [`GroupGuard::release`] ends it
/// without killing anything. It speaks lines on the guard's stdin: `+PGID`
/// and `-PGID` add and remove a group, `done` releases; the end of the pipe
/// (this process died) kills every group still on its list.
pub struct GroupGuard {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl GroupGuard {
    /// Starts a guard of process group `pgid`, when this process is
    /// `cargo-orch` (or `$ORCH_MODULE_HOST` names it); `None` otherwise.
    pub fn start(pgid: u32) -> Option<Self> {
        Self::watching(&[pgid])
    }

    /// Starts a guard of `pgids` (maybe none yet: see [`GroupGuard::add`]).
    pub fn watching(pgids: &[u32]) -> Option<Self> {
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
            .args(pgids.iter().map(u32::to_string))
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

    /// Guards group `pgid` too.
    pub fn add(&mut self, pgid: u32) {
        self.say(&format!("+{pgid}\n"));
    }

    /// Group `pgid` ended: no longer guarded.
    pub fn remove(&mut self, pgid: u32) {
        self.say(&format!("-{pgid}\n"));
    }

    fn say(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(line.as_bytes());
        }
    }

    /// The groups ended normally: the guard leaves without killing anything.
    pub fn release(mut self) {
        self.say("done\n");
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// The guard's main: follows the orchestrator's list of groups until it
/// says `done`, or kills what is on the list when its pipe ends.
pub fn guard_main(args: &[String]) -> ExitCode {
    let mut groups = std::collections::BTreeSet::new();
    for arg in args {
        let Ok(pgid) = arg.parse::<i32>() else {
            return ExitCode::from(2);
        };
        groups.insert(pgid);
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line.starts_with("done") {
            return ExitCode::SUCCESS;
        }
        if let Some(pgid) = line.strip_prefix('+').and_then(|n| n.parse::<i32>().ok())
            && pgid > 0
        {
            groups.insert(pgid);
        } else if let Some(pgid) = line.strip_prefix('-').and_then(|n| n.parse::<i32>().ok()) {
            groups.remove(&pgid);
        }
    }
    for pgid in groups {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    ExitCode::SUCCESS
}
