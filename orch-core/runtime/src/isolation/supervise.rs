//! The restart policy of an isolated module, OTP-like: each crash is followed
//! by a restart after an exponential back-off (100 ms doubling up to 5 s), unless
//! the policy says otherwise or the module already restarted more than
//! `max_restarts` times within `restart_window`: then it gives up. Time is
//! passed in, so the rules are tested without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use orch_config::{RestartPolicy, Supervision};

/// The first back-off.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What ended a child host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// It exited with code 0 on its own.
    Clean,
    /// A signal, an abort, a non-zero exit, or killed for missing heartbeats.
    Failure,
}

/// What to do after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this back-off.
    Restart(Duration),
    /// Too many restarts within the window (or `restart: never` after a
    /// failure): it stays down, `module.failed`.
    GiveUp,
    /// A clean exit the policy does not restart: it stays down quietly.
    StayDown,
}

/// Counts the restarts of one module within its window.
#[derive(Debug)]
pub struct RestartTracker {
    policy: Supervision,
    restarts: VecDeque<Instant>,
}

impl RestartTracker {
    /// A tracker for `policy`.
    pub fn new(policy: Supervision) -> Self {
        Self {
            policy,
            restarts: VecDeque::new(),
        }
    }

    /// Decides what follows an exit of kind `kind` at `now`, and counts the
    /// restart when there is one.
    pub fn on_exit(&mut self, kind: ExitKind, now: Instant) -> Decision {
        match (self.policy.restart, kind) {
            (RestartPolicy::Never, ExitKind::Failure) => return Decision::GiveUp,
            (RestartPolicy::Never | RestartPolicy::OnFailure, ExitKind::Clean) => {
                return Decision::StayDown;
            }
            _ => {}
        }
        let window = self.policy.restart_window;
        while self
            .restarts
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= window)
        {
            self.restarts.pop_front();
        }
        let recent = u32::try_from(self.restarts.len()).unwrap_or(u32::MAX);
        if recent >= self.policy.max_restarts {
            return Decision::GiveUp;
        }
        self.restarts.push_back(now);
        Decision::Restart(backoff(recent))
    }

    /// Restarts counted within the window so far.
    pub fn recent(&self) -> usize {
        self.restarts.len()
    }
}

/// The back-off before restart number `n + 1` within the window.
pub fn backoff(n: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(2u32.saturating_pow(n.min(16)))
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(restart: RestartPolicy, max: u32, window_s: u64) -> Supervision {
        Supervision {
            restart,
            max_restarts: max,
            restart_window: Duration::from_secs(window_s),
            ..Supervision::default()
        }
    }

    #[test]
    fn backoff_doubles_from_100ms_up_to_5s() {
        let steps: Vec<u128> = (0..10).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(
            steps,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]
        );
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn more_than_max_restarts_within_the_window_gives_up() {
        let mut t = RestartTracker::new(policy(RestartPolicy::OnFailure, 3, 60));
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(
            t.on_exit(ExitKind::Failure, at(0)),
            Decision::Restart(backoff(0))
        );
        assert_eq!(
            t.on_exit(ExitKind::Failure, at(1)),
            Decision::Restart(backoff(1))
        );
        assert_eq!(
            t.on_exit(ExitKind::Failure, at(2)),
            Decision::Restart(backoff(2))
        );
        assert_eq!(t.on_exit(ExitKind::Failure, at(3)), Decision::GiveUp);
    }

    #[test]
    fn restarts_older_than_the_window_are_forgotten_and_backoff_resets() {
        let mut t = RestartTracker::new(policy(RestartPolicy::Always, 2, 10));
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(
            t.on_exit(ExitKind::Failure, at(0)),
            Decision::Restart(backoff(0))
        );
        assert_eq!(
            t.on_exit(ExitKind::Failure, at(5)),
            Decision::Restart(backoff(1))
        );
        // Both restarts have left the window: a fresh start.
        assert_eq!(
            t.on_exit(ExitKind::Failure, at(16)),
            Decision::Restart(backoff(0))
        );
        assert_eq!(t.recent(), 1);
    }

    #[test]
    fn policies_decide_which_exits_restart() {
        let now = Instant::now();
        let mut never = RestartTracker::new(policy(RestartPolicy::Never, 5, 60));
        assert_eq!(never.on_exit(ExitKind::Failure, now), Decision::GiveUp);
        assert_eq!(never.on_exit(ExitKind::Clean, now), Decision::StayDown);
        let mut on_failure = RestartTracker::new(policy(RestartPolicy::OnFailure, 5, 60));
        assert_eq!(on_failure.on_exit(ExitKind::Clean, now), Decision::StayDown);
        assert!(matches!(
            on_failure.on_exit(ExitKind::Failure, now),
            Decision::Restart(_)
        ));
        let mut always = RestartTracker::new(policy(RestartPolicy::Always, 5, 60));
        assert!(matches!(
            always.on_exit(ExitKind::Clean, now),
            Decision::Restart(_)
        ));
    }
}
