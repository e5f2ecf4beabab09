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
    /// Kills the groups still running if this process dies (SIGKILL included).
    guard: Option<crate::GroupGuard>,
}

impl ProcessGroups {
    /// Groups that one guard process kills if this process dies in any way
    /// (without one, when this is not `cargo-orch`, they are only ended by
    /// [`ProcessGroups::cancel`]).
    pub fn guarded() -> Self {
        let groups = Self::default();
        groups.lock().guard = crate::GroupGuard::watching(&[]);
        groups
    }

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
        if let Some(guard) = state.guard.as_mut() {
            guard.add(child.id());
        }
        Ok(child)
    }

    /// Forgets a child that has exited.
    pub fn release(&self, pid: u32) {
        let mut state = self.lock();
        state.groups.remove(&pid);
        if let Some(guard) = state.guard.as_mut() {
            guard.remove(pid);
        }
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

/// How many live processes are in the process group `pgid` (read from
/// `/proc/<pid>/stat`; zombies, already dead, are not counted).
pub fn group_size(pgid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| group_of(stat).is_some_and(|(state, group)| group == pgid && state != "Z"))
        .count()
}

/// The state and process group in a `/proc/<pid>/stat` line. The command
/// name in parentheses may hold spaces and parentheses itself, so the fields
/// are read after its last `)`.
fn group_of(stat: &str) -> Option<(&str, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let group = fields.next()?.parse().ok()?;
    Some((state, group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_live_members_of_a_group() {
        let mut leader =
            spawn_in_group(Command::new("sh").args(["-c", "sleep 30 & sleep 30 & wait"]))
                .expect("sh runs");
        let group = leader.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while group_size(group) < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(group_size(group), 3, "sh and its two sleeps");
        signal_group(group, Signal::SIGKILL);
        let _ = leader.wait();
        assert_eq!(group_of("12 (a) b) (c) S 1 77 77 0"), Some(("S", 77)));
    }

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
