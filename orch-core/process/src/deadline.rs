//! A deadline for a process group: [`Deadline::arm`] kills the group if it
//! still runs when the time is up; dropping the deadline disarms it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::group::kill_group;

/// Kills the process group of `pid` if it still runs after `timeout`; dropping
/// the returned guard disarms it. [`Deadline::fired`] says whether it fired.
pub struct Deadline {
    _disarm: crossbeam_channel::Sender<()>,
    fired: Arc<AtomicBool>,
}

impl Deadline {
    /// Arms a deadline of `timeout` for the group led by `pid`.
    pub fn arm(pid: u32, timeout: Duration) -> Self {
        let (disarm, disarmed) = crossbeam_channel::bounded::<()>(0);
        let fired = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&fired);
        std::thread::spawn(move || {
            if let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                disarmed.recv_timeout(timeout)
            {
                flag.store(true, Ordering::SeqCst);
                kill_group(pid);
            }
        });
        Self {
            _disarm: disarm,
            fired,
        }
    }

    /// Whether the deadline passed and the group was killed.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProcessGroups;
    use std::process::Command;

    #[test]
    fn a_deadline_kills_only_when_it_passes() {
        let children = ProcessGroups::default();
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
