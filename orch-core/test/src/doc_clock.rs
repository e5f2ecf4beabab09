//! The clock of a doc-test run: reads cargo's stdout as it arrives (libtest's
//! output of the doc tests, run one at a time), gives each doc test the time
//! from the end of the one before (or the `running N tests` line) to its
//! result, shows each on the progress display, and says when the run must be
//! stopped: `test.timeout` after the last result while a test runs, else
//! (rustdoc compiling) `timeouts.build` after the start.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use super::exec::Watch;
use super::libtest::{self, Status};
use super::progress::{Mark, Progress};

/// Times the doc tests from cargo's stdout and says when to stop it.
pub struct Clock<'p> {
    origin: (Instant, SystemTime),
    timeout: Option<Duration>,
    /// When the whole run must be stopped.
    pub overall: Instant,
    /// Between `running N tests` and its `test result:` line.
    in_block: bool,
    /// In the failure sections at the end of a block (no test runs).
    in_report: bool,
    /// When the last test ended (or the block began).
    pub last: Instant,
    /// Each finished doc test's time and start, by libtest's name.
    pub times: HashMap<String, (Duration, SystemTime)>,
    progress: &'p Progress,
    /// What progress lines call a doc test.
    label: &'p dyn Fn(&str) -> String,
    /// Failures run again: progress shows them as retries.
    retried: bool,
}

impl<'p> Clock<'p> {
    /// A clock for one run of doc tests that may each take `timeout` and be
    /// compiled within `build_timeout`; `label` names a doc test for
    /// progress lines; `retried`: failures will run again.
    pub fn new(
        timeout: Option<Duration>,
        build_timeout: Duration,
        progress: &'p Progress,
        label: &'p dyn Fn(&str) -> String,
        retried: bool,
    ) -> Self {
        let now = Instant::now();
        Self {
            origin: (now, SystemTime::now()),
            timeout,
            overall: now + build_timeout,
            in_block: false,
            in_report: false,
            last: now,
            times: HashMap::new(),
            progress,
            label,
            retried,
        }
    }

    fn wall(&self, at: Instant) -> SystemTime {
        self.origin.1 + at.saturating_duration_since(self.origin.0)
    }

    /// When the test that is running now started.
    pub fn last_started(&self) -> SystemTime {
        self.wall(self.last)
    }
}

impl Watch for Clock<'_> {
    fn deadline(&self) -> Option<Instant> {
        match self.timeout {
            Some(timeout) if self.in_block && !self.in_report => {
                Some((self.last + timeout).min(self.overall))
            }
            _ => Some(self.overall),
        }
    }

    fn wants_lines(&self) -> bool {
        true
    }

    fn line(&mut self, line: &str, at: Instant) {
        let line = libtest::strip_ansi(line);
        if libtest::is_running_line(&line) {
            (self.in_block, self.in_report, self.last) = (true, false, at);
            return;
        }
        if line.starts_with("test result: ") {
            (self.in_block, self.in_report) = (false, false);
            return;
        }
        if !self.in_block || self.in_report {
            return;
        }
        if line == "failures:" || libtest::section_header(&line).is_some() {
            self.in_report = true;
            return;
        }
        if let Some((name, status)) = libtest::result_of(&line) {
            let took = at.saturating_duration_since(self.last);
            self.times
                .insert(name.clone(), (took, self.wall(self.last)));
            let mark = match status {
                Status::Passed => Mark::Pass,
                Status::Failed if self.retried => Mark::Retry,
                Status::Failed => Mark::Fail,
                Status::Ignored(_) => Mark::Skip,
            };
            if mark != Mark::Retry {
                self.progress.add(1);
            }
            self.progress.line(mark, took, &(self.label)(&name), "");
            self.last = at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_times_each_test_and_watches_only_inside_a_block() {
        let progress = Progress::silent();
        let label = |name: &str| name.to_owned();
        let mut clock = Clock::new(
            Some(Duration::from_secs(5)),
            Duration::from_secs(600),
            &progress,
            &label,
            false,
        );
        let start = clock.last;
        assert_eq!(
            clock.deadline(),
            Some(clock.overall),
            "compiling: timeouts.build"
        );
        let at = |ms: u64| start + Duration::from_millis(ms);
        clock.line("running 3 tests", at(1000));
        assert_eq!(
            clock.deadline(),
            Some(at(6000)),
            "a test runs: test.timeout"
        );
        clock.line("test a/src/lib.rs - f (line 3) ... ok", at(1200));
        clock.line(
            "test a/src/lib.rs - g (line 9) - should panic ... ok",
            at(1500),
        );
        clock.line("test a/src/lib.rs - h (line 12) ... FAILED", at(1600));
        clock.line("failures:", at(1601));
        clock.line("test fake ... ok", at(1700));
        assert_eq!(
            clock.deadline(),
            Some(clock.overall),
            "the report: no test runs"
        );
        clock.line("test result: FAILED. 2 passed; 1 failed", at(1702));
        let took = |name: &str| clock.times.get(name).map(|t| t.0);
        assert_eq!(
            took("a/src/lib.rs - f (line 3)"),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            took("a/src/lib.rs - g (line 9)"),
            Some(Duration::from_millis(300))
        );
        assert_eq!(
            took("a/src/lib.rs - h (line 12)"),
            Some(Duration::from_millis(100))
        );
        assert_eq!(took("fake"), None, "lines in the failure report are output");
    }
}
