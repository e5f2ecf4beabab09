//! A module's own metrics as a child host reports them to the orchestrator
//! (inside a `Metrics` frame): counters as increments, gauges as values.
//! `orch-runtime` keeps the registries; this is only what crosses the wire.

/// Metrics one module may register (and so the most samples one `Metrics`
/// frame may carry).
pub const MAX_METRICS_PER_MODULE: usize = 64;

/// A counter only goes up; a gauge is set or moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic (exposed with `_total`).
    Counter,
    /// Any value.
    Gauge,
}

impl MetricKind {
    /// From the ABI code (0 counter, 1 gauge).
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Counter),
            1 => Some(Self::Gauge),
            _ => None,
        }
    }

    /// The ABI code.
    pub fn code(self) -> u32 {
        match self {
            Self::Counter => 0,
            Self::Gauge => 1,
        }
    }

    /// Its name in messages and in the exposition: `counter` or `gauge`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// One change a child reports: a counter's increment or a gauge's value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// Counter or gauge.
    pub kind: MetricKind,
    /// The metric's name.
    pub name: String,
    /// Its help text.
    pub help: String,
    /// The increment (counter) or the value (gauge).
    pub value: f64,
}
