//! Timing a module's handlers with few clock reads: while events follow one
//! another, one read per span of events, the span's time shared out evenly
//! among them. The histogram's count and sum stay exact; its buckets see
//! each span's mean. Spans are long only while handlers are fast (under
//! the first bucket's bound, 10 µs), where a clock read per event would cost
//! a noticeable share of the handler; a slower handler is timed alone.

use std::time::{Duration, Instant};

use super::ModuleCounters;

/// The most events one span times together (fast handlers).
const FAST_SPAN: u32 = 32;

/// A handler at least this long on average is timed alone from then on.
const SLOW: Duration = Duration::from_micros(10);

/// The clock of one actor thread's handlers.
#[derive(Debug)]
pub struct HandlerClock {
    /// When the open span began (no span open: `None`).
    since: Option<Instant>,
    /// Handlers ended in the open span.
    ended: u32,
    /// How many handlers a span holds now (1 or [`FAST_SPAN`]).
    span: u32,
}

impl Default for HandlerClock {
    fn default() -> Self {
        Self {
            since: None,
            ended: 0,
            span: 1,
        }
    }
}

impl HandlerClock {
    /// A handler begins (opens a span unless one is open).
    pub fn begin(&mut self) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
        }
    }

    /// The handler begun last ended; a full span is counted into `counters`
    /// and the next span starts where it ended.
    pub fn ended(&mut self, counters: &ModuleCounters) {
        self.ended += 1;
        if self.ended >= self.span {
            self.close(counters, true);
        }
    }

    /// Nothing follows at once (the thread may wait, or runs a host call):
    /// counts the open span, if any, and opens none.
    pub fn pause(&mut self, counters: &ModuleCounters) {
        self.close(counters, false);
    }

    fn close(&mut self, counters: &ModuleCounters, go_on: bool) {
        let (since, ended) = (self.since.take(), std::mem::take(&mut self.ended));
        let Some(since) = since.filter(|_| ended > 0) else {
            return;
        };
        let now = Instant::now();
        let took = now.saturating_duration_since(since);
        let mean = took / ended;
        counters.handled_many(mean, ended, took);
        self.span = if mean < SLOW { FAST_SPAN } else { 1 };
        if go_on {
            self.since = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handler_is_counted_and_the_time_is_all_there() {
        let counters = ModuleCounters::default();
        let mut clock = HandlerClock::default();
        let started = Instant::now();
        for _ in 0..21 {
            clock.begin();
            clock.ended(&counters);
        }
        clock.pause(&counters);
        let spent = started.elapsed();
        let snapshot = counters.handler_time();
        assert_eq!(snapshot.count, 21);
        assert!(snapshot.sum_seconds <= spent.as_secs_f64() + 1e-9);
        // Paused: the next handler opens a span of its own.
        clock.pause(&counters);
        clock.begin();
        std::thread::sleep(Duration::from_millis(2));
        clock.ended(&counters);
        clock.pause(&counters);
        let snapshot = counters.handler_time();
        assert_eq!(snapshot.count, 22);
        let at = |bound: f64| snapshot.buckets.iter().find(|b| b.0 == bound).map(|b| b.1);
        assert_eq!(at(0.001), Some(21), "the slow one is in its own bucket");
        assert!(snapshot.sum_seconds >= 0.002);
    }

    #[test]
    fn a_slow_handler_is_timed_alone() {
        let counters = ModuleCounters::default();
        let mut clock = HandlerClock::default();
        for pause in [3, 0, 0] {
            clock.begin();
            std::thread::sleep(Duration::from_millis(pause));
            clock.ended(&counters);
        }
        // The slow one closed its span at once, and so did the next (spans
        // stay one handler long after a slow one); the third is in an open
        // span of fast handlers.
        let snapshot = counters.handler_time();
        assert_eq!(snapshot.count, 2, "{snapshot:?}");
        let at = |bound: f64| snapshot.buckets.iter().find(|b| b.0 == bound).map(|b| b.1);
        assert_eq!(at(0.001), Some(1), "the fast one: {snapshot:?}");
        assert_eq!(at(0.5), Some(2), "3 ms counted as 3 ms: {snapshot:?}");
        clock.pause(&counters);
        assert_eq!(counters.handler_time().count, 3);
    }
}
