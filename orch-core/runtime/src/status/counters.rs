//! The counters a module's hot paths bump: events in and out, handler time,
//! the child's pid. Lock-free, shared by every generation of the module.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::custom::{CustomMetrics, MetricNames};

/// Upper bounds of the handler-duration buckets, in seconds (Prometheus
/// `le` labels; the last bucket, `+Inf`, is implied).
pub const HANDLER_BUCKETS: [f64; 12] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// [`HANDLER_BUCKETS`] in nanoseconds, for the hot path (no float math).
const HANDLER_BUCKET_NANOS: [u64; HANDLER_BUCKETS.len()] = [
    10_000,
    50_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
];

/// One module's counters.
#[derive(Debug, Default)]
pub struct ModuleCounters {
    events_in: AtomicU64,
    events_out: AtomicU64,
    pid: AtomicU32,
    handler: Histogram,
    custom: CustomMetrics,
    /// Where its events come from, per sender and topic.
    edges: Arc<super::EdgeTable>,
    /// Its subscriber id on the bus plus one (0: not known yet).
    subscriber: AtomicU64,
}

impl ModuleCounters {
    /// Counters whose module metrics share the host's `names`.
    pub fn with_names(names: Arc<MetricNames>) -> Self {
        Self {
            custom: CustomMetrics::new(names),
            ..Self::default()
        }
    }

    /// The module's own metrics (`ctx.metrics()`).
    pub fn custom(&self) -> &CustomMetrics {
        &self.custom
    }

    /// `count` events handed to the module's handler.
    pub fn events_in_many(&self, count: u64) {
        self.events_in.fetch_add(count, Ordering::Relaxed);
    }

    /// One event the module published.
    pub fn event_out(&self) {
        self.events_out.fetch_add(1, Ordering::Relaxed);
    }

    /// How long one `on_event` took.
    pub fn handled(&self, took: Duration) {
        self.handler.observe(took);
    }

    /// `count` handlers that took `total` together, each counted as `mean`
    /// (see [`super::HandlerClock`]).
    pub fn handled_many(&self, mean: Duration, count: u32, total: Duration) {
        self.handler.observe_many(mean, count, total);
    }

    /// Where its events come from (counted by its thread: see
    /// [`EdgeTally`](super::EdgeTally)).
    pub fn edges(&self) -> &Arc<super::EdgeTable> {
        &self.edges
    }

    /// Notes the module's subscriber id on the bus (its subscriptions are
    /// listed in its status from there).
    pub fn set_subscriber(&self, id: crate::bus::SubscriberId) {
        self.subscriber
            .store(id.0.saturating_add(1), Ordering::Relaxed);
    }

    /// Its subscriber id on the bus, once known.
    pub fn subscriber(&self) -> Option<crate::bus::SubscriberId> {
        match self.subscriber.load(Ordering::Relaxed) {
            0 => None,
            id => Some(crate::bus::SubscriberId(id - 1)),
        }
    }

    /// The child host's pid of an isolated module (0: none).
    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
    }

    /// Events handed to the handler so far.
    pub fn events_in(&self) -> u64 {
        self.events_in.load(Ordering::Relaxed)
    }

    /// Events published so far.
    pub fn events_out(&self) -> u64 {
        self.events_out.load(Ordering::Relaxed)
    }

    /// The child host's pid, if the module is isolated and has one.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|&pid| pid != 0)
    }

    /// The handler-duration histogram as it is now.
    pub fn handler_time(&self) -> HistogramSnapshot {
        self.handler.snapshot()
    }
}

/// A fixed-bucket histogram of durations that many threads may observe into.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; HANDLER_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Counts one observation.
    pub fn observe(&self, took: Duration) {
        self.observe_many(took, 1, took);
    }

    /// Counts `count` observations of `mean` each, `total` together.
    pub fn observe_many(&self, mean: Duration, count: u32, total: Duration) {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let index = HANDLER_BUCKET_NANOS.partition_point(|&bound| bound < nanos(mean));
        // The count is the buckets' sum: two adds per observation.
        self.buckets[index].fetch_add(u64::from(count), Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos(total), Ordering::Relaxed);
    }

    /// The counts now, cumulative per bucket as Prometheus wants them.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = HANDLER_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(&bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (bound, cumulative)
            })
            .collect();
        let count = cumulative + self.buckets[HANDLER_BUCKETS.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A histogram read at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or below it)`, cumulative.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation, `+Inf` included.
    pub count: u64,
    /// The sum of the observations, in seconds.
    pub sum_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_last_is_inf() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(5));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(9));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 3);
        assert_eq!(snapshot.buckets[0], (0.000_01, 1));
        let at = |bound: f64| snapshot.buckets.iter().find(|b| b.0 == bound).map(|b| b.1);
        assert_eq!(at(0.001), Some(1));
        assert_eq!(at(0.005), Some(2));
        assert_eq!(at(5.0), Some(2));
        assert!((snapshot.sum_seconds - 9.003_005).abs() < 1e-6);
    }

    #[test]
    fn the_bucket_bounds_in_nanoseconds_are_the_published_ones() {
        for (nanos, seconds) in HANDLER_BUCKET_NANOS.iter().zip(HANDLER_BUCKETS) {
            assert_eq!(*nanos, (seconds * 1e9).round() as u64);
        }
        // On a bound: in that bucket (`le`).
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(10));
        assert_eq!(histogram.snapshot().buckets[0], (0.000_01, 1));
    }

    #[test]
    fn no_pid_reads_as_none() {
        let counters = ModuleCounters::default();
        assert_eq!(counters.pid(), None);
        counters.set_pid(42);
        assert_eq!(counters.pid(), Some(42));
    }
}
