//! Warnings that may repeat with every message, said at first and then at
//! most once per interval, so a log stays readable under a flood.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tells when a repeating warning is due.
pub struct Pacer {
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl Pacer {
    /// Due at first, then at most once per `every`.
    pub const fn new(every: Duration) -> Self {
        Self {
            every,
            last: Mutex::new(None),
        }
    }

    /// Whether to say it now (and, if so, counts this as said).
    pub fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < self.every) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_at_first_then_once_per_interval() {
        let pacer = Pacer::new(Duration::from_millis(50));
        assert!(pacer.due());
        assert!(!pacer.due());
        std::thread::sleep(Duration::from_millis(60));
        assert!(pacer.due());
        assert!(!pacer.due());
    }
}
