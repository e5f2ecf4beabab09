//! The child processes of a test run (cargo, test binaries), each in a process
//! group of its own, so a timeout or Ctrl-C ends them and everything they
//! started.

use std::collections::HashSet;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The running children of a test run; clones share them.
#[derive(Clone, Default)]
pub struct ChildGroups {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    cancelled: bool,
    groups: HashSet<u32>,
}

impl ChildGroups {
    /// Spawns `command` as the leader of a new process group and remembers it;
    /// refused once [`ChildGroups::cancel`] was called.
    pub fn spawn(&self, command: &mut Command) -> io::Result<Child> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.cancelled {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the test run was interrupted",
            ));
        }
        let child = command.process_group(0).spawn()?;
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

    /// Whether [`ChildGroups::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.lock().cancelled
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends SIGTERM to the process group led by `pid`.
pub(crate) fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

/// Kills the process group of `pid` if it still runs after `timeout`; dropping
/// the returned guard disarms it. [`Deadline::fired`] says whether it fired.
pub(crate) struct Deadline {
    _disarm: crossbeam_channel::Sender<()>,
    fired: Arc<Mutex<bool>>,
}

impl Deadline {
    pub(crate) fn arm(pid: u32, timeout: Duration) -> Self {
        let (disarm, disarmed) = crossbeam_channel::bounded::<()>(0);
        let fired = Arc::new(Mutex::new(false));
        let flag = Arc::clone(&fired);
        std::thread::spawn(move || {
            if let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                disarmed.recv_timeout(timeout)
            {
                *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
                kill_group(pid);
            }
        });
        Self {
            _disarm: disarm,
            fired,
        }
    }

    pub(crate) fn fired(&self) -> bool {
        *self.fired.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_ends_running_children_and_refuses_new_ones() {
        let children = ChildGroups::default();
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

    #[test]
    fn a_deadline_kills_only_when_it_passes() {
        let children = ChildGroups::default();
        let mut quick = children.spawn(&mut Command::new("true")).expect("runs");
        let deadline = Deadline::arm(quick.id(), Duration::from_secs(30));
        assert!(quick.wait().expect("waited").success());
        assert!(!deadline.fired());
        drop(deadline);

        let mut slow = children
            .spawn(Command::new("sleep").arg("30"))
            .expect("runs");
        let deadline = Deadline::arm(slow.id(), Duration::from_millis(50));
        assert!(!slow.wait().expect("waited").success());
        assert!(deadline.fired());
    }
}
