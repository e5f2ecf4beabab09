//! A module's own metrics, kept by the host and served on its `/metrics`
//! labelled with the module's name (`metrics:` in main.yaml):
//!
//! ```
//! use orch_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct Worker { jobs: Option<orch_sdk::Counter> }
//!
//! impl Module for Worker {
//!     fn initialize(&mut self, ctx: &mut Context, _config: &Config) -> Result<()> {
//!         self.jobs = Some(ctx.metrics().counter("worker_jobs", "Jobs done")?);
//!         ctx.subscribe("jobs.new")?;
//!         Ok(())
//!     }
//!     fn on_event(&mut self, _ctx: &mut Context, _event: &Event) -> Result<()> {
//!         if let Some(jobs) = &self.jobs {
//!             jobs.inc();
//!         }
//!         Ok(())
//!     }
//! }
//! ```
//!
//! Names are Prometheus names (`[a-zA-Z_][a-zA-Z0-9_]*`, not `orch_...` or
//! `process_...`; a counter without `_total`, which the exposition adds). A
//! reloaded generation that registers the same name gets the same metric
//! back, its value kept. Handles are cheap to clone and work from the
//! module's threads; updates of a stopped generation are dropped.

use std::sync::Arc;

/// Counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Any value.
    Gauge,
}

impl MetricKind {
    /// The ABI code (0 counter, 1 gauge).
    pub fn code(self) -> u32 {
        match self {
            Self::Counter => 0,
            Self::Gauge => 1,
        }
    }
}

/// Where metric registrations and updates go: implemented by hosts.
pub trait MetricSink: Send + Sync {
    /// Registers (or finds) metric `name`; returns its id.
    fn register(&self, kind: MetricKind, name: &str, help: &str) -> crate::Result<u64>;
    /// Adds `value` to metric `id`, or sets it (`set`, gauges).
    fn update(&self, id: u64, set: bool, value: f64);
}

/// The module's metrics (get it with [`crate::Context::metrics`]).
#[derive(Clone)]
pub struct Metrics {
    sink: Arc<dyn MetricSink>,
}

impl Metrics {
    /// Metrics over `sink` (for hosts).
    pub fn new(sink: Arc<dyn MetricSink>) -> Self {
        Self { sink }
    }

    /// A counter named `name` (exposed as `name_total{module="..."}`).
    pub fn counter(&self, name: &str, help: &str) -> crate::Result<Counter> {
        let id = self.sink.register(MetricKind::Counter, name, help)?;
        Ok(Counter {
            id,
            sink: Arc::clone(&self.sink),
        })
    }

    /// A gauge named `name` (exposed as `name{module="..."}`).
    pub fn gauge(&self, name: &str, help: &str) -> crate::Result<Gauge> {
        let id = self.sink.register(MetricKind::Gauge, name, help)?;
        Ok(Gauge {
            id,
            sink: Arc::clone(&self.sink),
        })
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// A monotonic count.
#[derive(Clone)]
pub struct Counter {
    id: u64,
    sink: Arc<dyn MetricSink>,
}

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.sink.update(self.id, false, 1.0);
    }

    /// Adds `by` (negative or non-finite values are dropped: a counter
    /// never goes down).
    pub fn inc_by(&self, by: f64) {
        self.sink.update(self.id, false, by);
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counter#{}", self.id)
    }
}

/// A value that goes up and down.
#[derive(Clone)]
pub struct Gauge {
    id: u64,
    sink: Arc<dyn MetricSink>,
}

impl Gauge {
    /// Sets it to `value`.
    pub fn set(&self, value: f64) {
        self.sink.update(self.id, true, value);
    }

    /// Adds `by` (negative: subtracts).
    pub fn add(&self, by: f64) {
        self.sink.update(self.id, false, by);
    }
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gauge#{}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::testing::ModuleHarness;

    #[derive(Default)]
    struct Counting {
        seen: Option<crate::Counter>,
        depth: Option<crate::Gauge>,
    }

    impl Module for Counting {
        fn initialize(&mut self, ctx: &mut Context, _config: &Config) -> Result<()> {
            self.seen = Some(ctx.metrics().counter("seen", "Events seen")?);
            self.depth = Some(ctx.metrics().gauge("depth", "Depth")?);
            ctx.subscribe("a.b")
        }

        fn on_event(&mut self, _ctx: &mut Context, _event: &Event) -> Result<()> {
            if let (Some(seen), Some(depth)) = (&self.seen, &self.depth) {
                seen.inc();
                seen.inc_by(-3.0);
                depth.set(10.0);
                depth.add(-4.0);
            }
            Ok(())
        }
    }

    #[test]
    fn a_module_unit_test_reads_its_metrics_from_the_test_host() {
        let mut harness = ModuleHarness::new(Counting::default());
        harness
            .initialize(serde_json::json!({}))
            .expect("initialized");
        harness.start().expect("started");
        harness.deliver("a.b", &1).expect("delivered");
        harness.deliver("a.b", &2).expect("delivered");
        assert_eq!(
            harness.host().metric("seen"),
            Some(2.0),
            "negative increments dropped"
        );
        assert_eq!(harness.host().metric("depth"), Some(6.0));
        assert_eq!(harness.host().metric("nope"), None);
    }
}
