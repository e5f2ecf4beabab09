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
    /// Dead-letter it: the circuit is open.
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
}

impl Breaker {
    /// A closed breaker with `settings`.
    pub fn new(settings: CircuitBreakerSettings) -> Self {
        Self {
            settings,
            state: State::Closed,
            failures: 0,
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

    /// Whether the next event goes to the handler. Reads the clock only while
    /// the circuit is open.
    pub fn admit(&mut self) -> Admit {
        match self.state {
            State::Closed => Admit::Deliver,
            State::HalfOpen => Admit::Trial,
            State::Open { until } if Instant::now() >= until => {
                self.state = State::HalfOpen;
                Admit::Trial
            }
            State::Open { .. } => Admit::Refuse,
        }
    }

    /// Notes a handler that returned `Ok` in time.
    pub fn success(&mut self) -> Change {
        self.failures = 0;
        match self.state {
            State::HalfOpen => {
                self.state = State::Closed;
                Change::Closed
            }
            _ => Change::None,
        }
    }

    /// Notes a handler that failed, panicked or overran `timeouts.event`.
    pub fn failure(&mut self) -> Change {
        self.failures = self.failures.saturating_add(1);
        let trip = match self.state {
            State::HalfOpen => true,
            State::Closed => self.failures >= self.settings.fail_max,
            State::Open { .. } => false,
        };
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
        assert_eq!(b.failure(), Change::None);
        assert_eq!(b.failure(), Change::None);
        assert_eq!(b.success(), Change::None, "a success resets the count");
        assert_eq!(b.failure(), Change::None);
        assert_eq!(b.failure(), Change::None);
        assert_eq!(b.failure(), Change::Opened { failures: 3 });
        assert_eq!(b.admit(), Admit::Refuse);
        assert_eq!(b.admit(), Admit::Refuse);
    }

    #[test]
    fn half_opens_after_the_reset_timeout_and_a_trial_decides() {
        let mut b = breaker(1, 10);
        assert_eq!(b.failure(), Change::Opened { failures: 1 });
        assert_eq!(b.admit(), Admit::Refuse);
        std::thread::sleep(Duration::from_millis(15));
        assert_eq!(b.admit(), Admit::Trial);
        assert_eq!(
            b.failure(),
            Change::Opened { failures: 2 },
            "a failed trial"
        );
        assert_eq!(b.admit(), Admit::Refuse);
        std::thread::sleep(Duration::from_millis(15));
        assert_eq!(b.admit(), Admit::Trial);
        assert_eq!(b.success(), Change::Closed);
        assert_eq!(b.admit(), Admit::Deliver);
        assert_eq!(b.state(), State::Closed);
    }
}
