//! A module's own metrics (`ctx.metrics().counter(...)`, `.gauge(...)`): kept
//! in the host, labelled with the module's name at each scrape. Values are
//! f64 in atomics; registration takes a lock, updates never do.
//!
//! In an isolated module's child the same registry collects the updates, and
//! [`CustomMetrics::take_changes`] hands what changed since the last call to
//! the parent (counters as increments, gauges as values), which
//! [`CustomMetrics::apply`]s them to its own registry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use orch_wire::metric::{MAX_METRICS_PER_MODULE, MetricKind, MetricSample};

/// The longest metric name.
const MAX_NAME: usize = 100;
/// The longest help text.
const MAX_HELP: usize = 300;

/// The kind each metric name has in this host, across modules: one name is
/// one Prometheus family, so two modules cannot give it two kinds.
#[derive(Debug, Default)]
pub struct MetricNames(Mutex<HashMap<String, MetricKind>>);

/// One module's metric.
#[derive(Debug)]
pub struct CustomMetric {
    /// Its name.
    pub name: String,
    /// Its help text (the first registration's).
    pub help: String,
    /// Counter or gauge.
    pub kind: MetricKind,
    value: AtomicU64,
    /// The value as last taken by [`CustomMetrics::take_changes`].
    taken: AtomicU64,
    changed: AtomicBool,
}

impl CustomMetric {
    /// The value now.
    pub fn value(&self) -> f64 {
        f64::from_bits(self.value.load(Ordering::Relaxed))
    }

    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
        self.changed.store(true, Ordering::Release);
    }
}

/// One module's metrics.
#[derive(Debug, Default)]
pub struct CustomMetrics {
    metrics: RwLock<Vec<Arc<CustomMetric>>>,
    names: Arc<MetricNames>,
    /// Names a child's changes were refused for (each is reported once).
    refused: Mutex<std::collections::HashSet<String>>,
}

impl CustomMetrics {
    /// A registry whose names are checked against the host's `names`.
    pub fn new(names: Arc<MetricNames>) -> Self {
        Self {
            metrics: RwLock::default(),
            names,
            refused: Mutex::default(),
        }
    }

    /// Registers `name` (or finds it: a reloaded generation gets the same
    /// metric back, its value kept); returns its id.
    pub fn register(&self, kind: MetricKind, name: &str, help: &str) -> Result<u64, String> {
        check_name(kind, name)?;
        if help.len() > MAX_HELP {
            return Err(format!(
                "the help of metric '{name}' is longer than {MAX_HELP} bytes"
            ));
        }
        let mut metrics = self.metrics.write().unwrap_or_else(|e| e.into_inner());
        if let Some(index) = metrics.iter().position(|m| m.name == name) {
            let existing = metrics[index].kind;
            return if existing == kind {
                Ok(index as u64)
            } else {
                Err(format!(
                    "metric '{name}' is already a {} of this module",
                    existing.as_str()
                ))
            };
        }
        if metrics.len() >= MAX_METRICS_PER_MODULE {
            return Err(format!(
                "a module may register at most {MAX_METRICS_PER_MODULE} metrics; '{name}' is one more"
            ));
        }
        {
            let mut names = self.names.0.lock().unwrap_or_else(|e| e.into_inner());
            match names.get(name) {
                Some(other) if *other != kind => {
                    return Err(format!(
                        "metric '{name}' is a {} of another module; one name has one kind \
                         across the application (name yours differently)",
                        other.as_str()
                    ));
                }
                Some(_) => {}
                None => {
                    names.insert(name.to_owned(), kind);
                }
            }
        }
        metrics.push(Arc::new(CustomMetric {
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
            value: AtomicU64::new(0f64.to_bits()),
            taken: AtomicU64::new(0f64.to_bits()),
            changed: AtomicBool::new(false),
        }));
        Ok((metrics.len() - 1) as u64)
    }

    /// Adds `value` to metric `id` (`set`: replaces it; gauges only). A
    /// counter never goes down: negative or non-finite increments are dropped.
    pub fn update(&self, id: u64, set: bool, value: f64) {
        if !value.is_finite() {
            return;
        }
        let metrics = self.metrics.read().unwrap_or_else(|e| e.into_inner());
        let Some(metric) = usize::try_from(id).ok().and_then(|i| metrics.get(i)) else {
            return;
        };
        match (metric.kind, set) {
            (MetricKind::Counter, false) if value >= 0.0 => metric.update(|v| v + value),
            (MetricKind::Counter, _) => {}
            (MetricKind::Gauge, true) => metric.update(|_| value),
            (MetricKind::Gauge, false) => metric.update(|v| v + value),
        }
    }

    /// Every metric, in registration order.
    pub fn all(&self) -> Vec<Arc<CustomMetric>> {
        self.metrics.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// What changed since the last call (child side).
    pub fn take_changes(&self) -> Vec<MetricSample> {
        let metrics = self.metrics.read().unwrap_or_else(|e| e.into_inner());
        metrics
            .iter()
            .filter(|m| m.changed.swap(false, Ordering::AcqRel))
            .map(|m| {
                let now = m.value();
                let before = f64::from_bits(m.taken.swap(now.to_bits(), Ordering::AcqRel));
                MetricSample {
                    kind: m.kind,
                    name: m.name.clone(),
                    help: m.help.clone(),
                    value: match m.kind {
                        MetricKind::Counter => now - before,
                        MetricKind::Gauge => now,
                    },
                }
            })
            .collect()
    }

    /// Applies a child's changes (parent side). The first refusal of a name
    /// not refused before is returned (so each is reported once).
    pub fn apply(&self, samples: &[MetricSample]) -> Result<(), String> {
        let mut first = None;
        for sample in samples {
            match self.register(sample.kind, &sample.name, &sample.help) {
                Ok(id) => self.update(id, sample.kind == MetricKind::Gauge, sample.value),
                Err(e) => {
                    let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
                    if refused.len() < MAX_METRICS_PER_MODULE && refused.insert(sample.name.clone())
                    {
                        first.get_or_insert(e);
                    }
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// A Prometheus metric name of the module's own: `[a-zA-Z_][a-zA-Z0-9_]*`,
/// outside the host's `orch_` and `process_` names, a counter without the
/// `_total` the exposition adds.
fn check_name(kind: MetricKind, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "'{name}' is not a metric name: letters, digits and '_', not starting with a digit, \
             at most {MAX_NAME} characters"
        ));
    }
    if name.starts_with("orch_") || name.starts_with("process_") {
        return Err(format!(
            "metric '{name}': the 'orch_' and 'process_' names are the host's; name yours after \
             your module"
        ));
    }
    if kind == MetricKind::Counter && name.ends_with("_total") {
        return Err(format!(
            "counter '{name}': leave out '_total', the exposition adds it ('{}')",
            name.trim_end_matches("_total")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_go_up_gauges_move_and_a_reload_gets_the_same_metric() {
        let metrics = CustomMetrics::default();
        let jobs = metrics
            .register(MetricKind::Counter, "jobs", "Jobs done")
            .expect("valid");
        let queue = metrics
            .register(MetricKind::Gauge, "queue_len", "Waiting")
            .expect("valid");
        metrics.update(jobs, false, 2.0);
        metrics.update(jobs, false, -5.0);
        metrics.update(jobs, true, 100.0);
        metrics.update(queue, true, 7.0);
        metrics.update(queue, false, -2.0);
        assert_eq!(
            metrics.register(MetricKind::Counter, "jobs", "again"),
            Ok(jobs)
        );
        let values: Vec<(String, f64)> = metrics
            .all()
            .iter()
            .map(|m| (m.name.clone(), m.value()))
            .collect();
        assert_eq!(
            values,
            [("jobs".to_owned(), 2.0), ("queue_len".to_owned(), 5.0)]
        );
    }

    #[test]
    fn bad_names_and_kind_clashes_are_refused_with_the_reason() {
        let names = Arc::new(MetricNames::default());
        let a = CustomMetrics::new(Arc::clone(&names));
        let b = CustomMetrics::new(names);
        assert!(
            a.register(MetricKind::Counter, "9lives", "")
                .unwrap_err()
                .contains("not a metric name")
        );
        assert!(
            a.register(MetricKind::Counter, "orch_mine", "")
                .unwrap_err()
                .contains("host's")
        );
        assert!(
            a.register(MetricKind::Counter, "jobs_total", "")
                .unwrap_err()
                .contains("'jobs'")
        );
        a.register(MetricKind::Gauge, "depth", "").expect("valid");
        assert!(
            b.register(MetricKind::Counter, "depth", "")
                .unwrap_err()
                .contains("another module")
        );
        assert!(
            a.register(MetricKind::Counter, "depth", "")
                .unwrap_err()
                .contains("already a gauge")
        );
        for n in 1..MAX_METRICS_PER_MODULE {
            a.register(MetricKind::Gauge, &format!("g{n}"), "")
                .expect("room");
        }
        assert!(
            a.register(MetricKind::Gauge, "one_more", "")
                .unwrap_err()
                .contains("at most 64")
        );
    }

    #[test]
    fn a_child_hands_over_increments_and_values_once() {
        let child = CustomMetrics::default();
        let jobs = child
            .register(MetricKind::Counter, "jobs", "Jobs")
            .expect("valid");
        let depth = child
            .register(MetricKind::Gauge, "depth", "Depth")
            .expect("valid");
        child.update(jobs, false, 3.0);
        child.update(depth, true, 9.0);
        let parent = CustomMetrics::default();
        parent.apply(&child.take_changes()).expect("applied");
        child.update(jobs, false, 2.0);
        assert_eq!(child.take_changes().len(), 1, "only what changed");
        assert!(child.take_changes().is_empty());
        parent.update(0, false, 0.0);
        let first = child_changes_applied(
            &parent,
            &[MetricSample {
                kind: MetricKind::Counter,
                name: "jobs".into(),
                help: "Jobs".into(),
                value: 2.0,
            }],
        );
        assert_eq!(first, [("jobs".to_owned(), 5.0), ("depth".to_owned(), 9.0)]);
        let lie = MetricSample {
            kind: MetricKind::Gauge,
            name: "jobs".into(),
            help: String::new(),
            value: 1.0,
        };
        assert!(
            parent
                .apply(std::slice::from_ref(&lie))
                .unwrap_err()
                .contains("already a counter")
        );
        assert_eq!(parent.apply(&[lie]), Ok(()), "reported once");
    }

    fn child_changes_applied(
        parent: &CustomMetrics,
        samples: &[MetricSample],
    ) -> Vec<(String, f64)> {
        parent.apply(samples).expect("applied");
        parent
            .all()
            .iter()
            .map(|m| (m.name.clone(), m.value()))
            .collect()
    }
}
