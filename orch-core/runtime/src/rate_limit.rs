//! A one-second window that admits at most so many things a second (log
//! lines, a child's publishes) and counts the rest, so the caller can sum
//! them up in one line when the next window opens.

use std::time::{Duration, Instant};

/// What to do with one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Admit,
    /// Let it through, after reporting the `n` refused in the last window.
    AdmitAfterRefusals(u64),
    /// Count it, refuse it.
    Refuse,
}

/// At most `per_second` admitted in each one-second window.
#[derive(Debug)]
pub struct RateLimiter {
    window: Instant,
    admitted: u32,
    refused: u64,
    per_second: u32,
}

impl RateLimiter {
    /// A limiter admitting `per_second` (at least 1) a second.
    pub fn new(per_second: u32) -> Self {
        Self {
            window: Instant::now(),
            admitted: 0,
            refused: 0,
            per_second: per_second.max(1),
        }
    }

    /// The rate it admits.
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// How many were refused in the current window so far.
    pub fn refused_in_window(&self) -> u64 {
        self.refused
    }

    /// Changes the rate from now on (a module's limits were edited).
    pub fn set_rate(&mut self, per_second: u32) {
        self.per_second = per_second.max(1);
    }

    /// Whether the next one goes through.
    pub fn admit(&mut self) -> Verdict {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.admitted = 0;
            let refused = std::mem::take(&mut self.refused);
            if refused > 0 {
                self.admitted = 1;
                return Verdict::AdmitAfterRefusals(refused);
            }
        }
        if self.admitted >= self.per_second {
            self.refused += 1;
            return Verdict::Refuse;
        }
        self.admitted += 1;
        Verdict::Admit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_at_the_rate_and_counted_for_the_next_window() {
        let mut limiter = RateLimiter::new(1_000);
        let admitted = (0..1_500)
            .filter(|_| limiter.admit() == Verdict::Admit)
            .count();
        assert_eq!(admitted, 1_000);
        limiter.window -= Duration::from_secs(1);
        assert_eq!(limiter.admit(), Verdict::AdmitAfterRefusals(500));
        assert_eq!(limiter.admit(), Verdict::Admit);
        limiter.set_rate(2);
        assert_eq!(limiter.admit(), Verdict::Refuse);
    }
}
