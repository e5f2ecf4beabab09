//! The circuit breaker of one module's event handler: after `fail_max`
//! consecutive failed (or overrun) `on_event` calls it opens, and the module's
//! events go to `module.dead_letter` instead of its handler; after
//! `reset_timeout` one event is tried (half-open): a success closes it, a
//! failure opens it again.

use std::time::{Duration, Instant};

use orch_config::CircuitBreakerSettings;

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Events reach the handler.
    Closed,
    /// Events are dead-lettered until the instant given.
    Open {
        /// When one event may be tried again.
        until: Instant,
    },
    /// One event is being tried.
    HalfOpen,
}

/// What to do with the next event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Hand it to the handler.
    Deliver,
    /// Hand it to the handler as the half-open trial.
    Trial,
    /// Dead-letter it: the circuit is open (or a trial is running).
    Refuse,
}

/// What a handler's outcome changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing to report.
    None,
    /// The circuit opened (or opened again after a failed trial).
    Opened {
        /// Consecutive failures that opened it.
        failures: u32,
    },
    /// A trial succeeded: the circuit is closed again.
    Closed,
}

/// The breaker of one generation of a module.
#[derive(Debug)]
pub struct Breaker {
    settings: CircuitBreakerSettings,
    state: State,
    failures: u32,
    /// The event tried while half-open: only its outcome decides (an
    /// isolated module's older events may still be acknowledged meanwhile).
    trial: Option<u64>,
}

impl Breaker {
    /// A closed breaker with `settings`.
    pub fn new(settings: CircuitBreakerSettings) -> Self {
        Self {
            settings,
            state: State::Closed,
            failures: 0,
            trial: None,
        }
    }

    /// Where it stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// The reset timeout.
    pub fn reset_timeout(&self) -> Duration {
        self.settings.reset_timeout
    }

    /// Whether event `id` goes to the handler. Reads the clock only while the
    /// circuit is open. While a trial runs, further events wait their turn as
    /// refused ones (dead-lettered) until its outcome is known.
    pub fn admit(&mut self, id: u64) -> Admit {
        match self.state {
            State::Closed => Admit::Deliver,
            State::HalfOpen => Admit::Refuse,
            State::Open { until } if Instant::now() >= until => {
                self.state = State::HalfOpen;
                self.trial = Some(id);
                Admit::Trial
            }
            State::Open { .. } => Admit::Refuse,
        }
    }

    /// Whether the outcome of event `id` counts now: in a closed circuit every
    /// outcome does, half-open only the trial's, open none (the events of
    /// before it opened).
    fn counts(&self, id: u64) -> bool {
        match self.state {
            State::Closed => true,
            State::HalfOpen => self.trial == Some(id),
            State::Open { .. } => false,
        }
    }

    /// Notes that event `id`'s handler returned `Ok` in time.
    pub fn success(&mut self, id: u64) -> Change {
        if !self.counts(id) {
            return Change::None;
        }
        self.failures = 0;
        match self.state {
            State::HalfOpen => {
                self.state = State::Closed;
                self.trial = None;
                Change::Closed
            }
            _ => Change::None,
        }
    }

    /// Notes that event `id`'s handler failed, panicked or overran
    /// `timeouts.event`.
    pub fn failure(&mut self, id: u64) -> Change {
        if !self.counts(id) {
            return Change::None;
        }
        self.failures = self.failures.saturating_add(1);
        let trip = match self.state {
            State::HalfOpen => true,
            State::Closed => self.failures >= self.settings.fail_max,
            State::Open { .. } => false,
        };
        self.trial = None;
        if !trip {
            return Change::None;
        }
        self.state = State::Open {
            until: Instant::now() + self.settings.reset_timeout,
        };
        Change::Opened {
            failures: self.failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(fail_max: u32, reset_ms: u64) -> Breaker {
        Breaker::new(CircuitBreakerSettings {
            fail_max,
            reset_timeout: Duration::from_millis(reset_ms),
        })
    }

    #[test]
    fn opens_after_fail_max_consecutive_failures_only() {
        let mut b = breaker(3, 60_000);
        assert_eq!(b.failure(1), Change::None);
        assert_eq!(b.failure(2), Change::None);
        assert_eq!(b.success(3), Change::None, "a success resets the count");
        assert_eq!(b.failure(4), Change::None);
        assert_eq!(b.failure(5), Change::None);
        assert_eq!(b.failure(6), Change::Opened { failures: 3 });
        assert_eq!(b.admit(7), Admit::Refuse);
        assert_eq!(b.failure(7), Change::None, "late outcomes do not count");
    }

    #[test]
    fn half_opens_after_the_reset_timeout_and_a_trial_decides() {
        let mut b = breaker(1, 10);
        assert_eq!(b.failure(1), Change::Opened { failures: 1 });
        assert_eq!(b.admit(2), Admit::Refuse);
        std::thread::sleep(Duration::from_millis(15));
        assert_eq!(b.admit(3), Admit::Trial);
        assert_eq!(b.admit(4), Admit::Refuse, "one trial at a time");
        assert_eq!(b.failure(1), Change::None, "an older event's outcome");
        assert_eq!(
            b.failure(3),
            Change::Opened { failures: 2 },
            "a failed trial"
        );
        assert_eq!(b.admit(5), Admit::Refuse);
        std::thread::sleep(Duration::from_millis(15));
        assert_eq!(b.admit(6), Admit::Trial);
        assert_eq!(b.success(5), Change::None, "not the trial");
        assert_eq!(b.success(6), Change::Closed);
        assert_eq!(b.admit(7), Admit::Deliver);
        assert_eq!(b.state(), State::Closed);
    }
}
