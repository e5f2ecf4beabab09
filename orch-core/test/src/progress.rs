//! What a run shows while it runs, on stderr. On a terminal: one indicatif
//! bar (tests done of total, and the test that has been running longest,
//! with its time), every test that did not simply pass printed above it.
//! Elsewhere (CI logs, pipes): one plain line per finished test, as
//! `    PASS [   0.012s] mod-a tests::parses`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// The tests running now, by ticket: label and start.
type Running = Arc<Mutex<HashMap<u64, (String, Instant)>>>;

/// A running test's handle, from [`Progress::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// How one attempt ended, as a progress line shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// `PASS`.
    Pass,
    /// `FLAKY`: passed after failed attempts.
    Flaky,
    /// `FAIL`.
    Fail,
    /// `CRASH`: killed by a signal.
    Crash,
    /// `TIMEOUT`.
    Timeout,
    /// `RETRY`: failed, will run again.
    Retry,
    /// `SKIP`: ignored.
    Skip,
}

impl Mark {
    fn word(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Flaky => "FLAKY",
            Self::Fail => "FAIL",
            Self::Crash => "CRASH",
            Self::Timeout => "TIMEOUT",
            Self::Retry => "RETRY",
            Self::Skip => "SKIP",
        }
    }

    /// Counted as a finished test (a retry is not: the test runs again).
    fn finishes(self) -> bool {
        self != Self::Retry
    }
}

/// The progress display of one run; clones share it.
#[derive(Clone)]
pub struct Progress {
    shown: Option<Shown>,
}

#[derive(Clone)]
struct Shown {
    /// The bar, on a terminal; plain lines otherwise.
    bar: Option<ProgressBar>,
    running: Running,
    next: Arc<AtomicU64>,
}

impl Progress {
    /// Shows nothing.
    pub fn silent() -> Self {
        Self { shown: None }
    }

    /// A bar on a terminal, plain lines elsewhere.
    pub fn on_stderr() -> Self {
        let running: Running = Arc::default();
        // orch-cargo's spinner knows where the real terminal is (also when the
        // console runs through the secret scrubber); it becomes the bar.
        let bar = orch_cargo::cargo_output::spinner("");
        let bar = if bar.is_hidden() {
            None
        } else {
            bar.set_length(0);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} {pos}/{len} tests {bar:20} {elapsed:>3}  {slowest}",
            ) {
                let running = Arc::clone(&running);
                bar.set_style(style.with_key(
                    "slowest",
                    move |_: &ProgressState, out: &mut dyn std::fmt::Write| {
                        slowest(&running, out);
                    },
                ));
            }
            Some(bar)
        };
        Self {
            shown: Some(Shown {
                bar,
                running,
                next: Arc::default(),
            }),
        }
    }

    /// `count` more tests to run.
    pub fn add(&self, count: usize) {
        if let Some(bar) = self.shown.as_ref().and_then(|s| s.bar.as_ref()) {
            bar.inc_length(count as u64);
        }
    }

    /// `label` started.
    pub fn start(&self, label: &str) -> Ticket {
        let Some(shown) = &self.shown else {
            return Ticket(0);
        };
        let ticket = shown.next.fetch_add(1, Ordering::Relaxed);
        shown
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ticket, (label.to_owned(), Instant::now()));
        Ticket(ticket)
    }

    /// The test of `ticket` is no longer running (no line).
    pub fn stop(&self, ticket: Ticket) {
        if let Some(shown) = &self.shown {
            shown
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&ticket.0);
        }
    }

    /// The test of `ticket` ended its attempt as `mark` after `duration`;
    /// `detail` follows on the line (why it failed).
    pub fn finish(
        &self,
        ticket: Ticket,
        mark: Mark,
        duration: Duration,
        label: &str,
        detail: &str,
    ) {
        self.stop(ticket);
        self.line(mark, duration, label, detail);
    }

    /// A test that was not started through [`Progress::start`] ended (doc
    /// tests, read from rustdoc's output).
    pub fn line(&self, mark: Mark, duration: Duration, label: &str, detail: &str) {
        let Some(shown) = &self.shown else { return };
        let mut text = format!(
            "{:>9} [{:>8.3}s] {label}",
            mark.word(),
            duration.as_secs_f64()
        );
        if !detail.is_empty() {
            let _ = write!(text, ": {detail}");
        }
        match &shown.bar {
            Some(bar) => {
                if mark.finishes() {
                    bar.inc(1);
                }
                if mark != Mark::Pass && mark != Mark::Skip {
                    bar.println(text);
                }
            }
            None => eprintln!("{text}"),
        }
    }

    /// Takes the bar off the terminal.
    pub fn done(&self) {
        if let Some(bar) = self.shown.as_ref().and_then(|s| s.bar.as_ref()) {
            bar.finish_and_clear();
        }
    }
}

/// The test running longest, with its time: `mod-a tests::slow 3.2s`.
fn slowest(running: &Running, out: &mut dyn std::fmt::Write) {
    let running = running.lock().unwrap_or_else(|e| e.into_inner());
    let count = running.len();
    if let Some((label, since)) = running.values().min_by_key(|(_, since)| *since) {
        let _ = write!(out, "{label} {:.1}s", since.elapsed().as_secs_f64());
        if count > 1 {
            let _ = write!(out, " (+{} running)", count - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_running_test_is_named_with_the_count_of_the_others() {
        let running: Running = Arc::default();
        let now = Instant::now();
        {
            let mut map = running.lock().expect("lock");
            map.insert(1, ("mod-a quick".into(), now));
            map.insert(2, ("mod-a slow".into(), now - Duration::from_secs(3)));
        }
        let mut text = String::new();
        slowest(&running, &mut text);
        assert!(text.starts_with("mod-a slow 3."), "{text}");
        assert!(text.ends_with(" (+1 running)"), "{text}");
        let mut empty = String::new();
        slowest(&Running::default(), &mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn a_silent_progress_shows_nothing_and_accepts_everything() {
        let progress = Progress::silent();
        progress.add(3);
        let ticket = progress.start("x");
        progress.finish(ticket, Mark::Fail, Duration::ZERO, "x", "boom");
        progress.line(Mark::Pass, Duration::ZERO, "y", "");
        progress.done();
        assert_eq!(Mark::Timeout.word(), "TIMEOUT");
        assert!(!Mark::Retry.finishes() && Mark::Flaky.finishes());
    }
}
