//! Processes in groups of their own: a child spawned here leads a new process
//! group, so ending the group ends everything it started (cargo's rustc
//! children, a test binary's helpers, a module host's own children).

use std::collections::HashSet;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The running process groups of one job (a build, a test run); clones share
/// them. [`ProcessGroups::cancel`] ends them all and refuses new ones.
#[derive(Clone, Default)]
pub struct ProcessGroups {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    cancelled: bool,
    groups: HashSet<u32>,
}

impl ProcessGroups {
    /// Spawns `command` as the leader of a new process group and remembers it;
    /// refused once [`ProcessGroups::cancel`] was called.
    pub fn spawn(&self, command: &mut Command) -> io::Result<Child> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.cancelled {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the run was interrupted",
            ));
        }
        let child = spawn_in_group(command)?;
        state.groups.insert(child.id());
        Ok(child)
    }

    /// Forgets a child that has exited.
    pub fn release(&self, pid: u32) {
        self.lock().groups.remove(&pid);
    }

    /// Ends every running child's process group and refuses new ones.
    pub fn cancel(&self) {
        let mut state = self.lock();
        state.cancelled = true;
        for pid in state.groups.drain() {
            kill_group(pid);
        }
    }

    /// Whether [`ProcessGroups::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.lock().cancelled
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Spawns `command` as the leader of a new process group.
pub fn spawn_in_group(command: &mut Command) -> io::Result<Child> {
    command.process_group(0).spawn()
}

/// Sends SIGTERM to the process group led by `pid`.
pub fn kill_group(pid: u32) {
    signal_group(pid, Signal::SIGTERM);
}

/// Sends `signal` to the process group led by `pid` (gone groups are ignored).
pub fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_ends_running_children_and_refuses_new_ones() {
        let children = ProcessGroups::default();
        let mut sleeper = children
            .spawn(Command::new("sleep").arg("30"))
            .expect("sleep runs");
        children.cancel();
        let status = sleeper.wait().expect("waited");
        assert!(!status.success());
        assert!(children.is_cancelled());
        let refused = children.spawn(&mut Command::new("true"));
        assert_eq!(
            refused.err().map(|e| e.kind()),
            Some(io::ErrorKind::Interrupted)
        );
    }
}
