//! One scrape: the status board's rows, the bridge and the process, encoded
//! as metric families labelled with the module's name.

use std::fmt;

use orch_runtime::status::{CustomMetric, HistogramSnapshot, MetricKind, ModuleStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::MetricsSources;

/// Reads the host's state at each scrape.
pub struct HostCollector {
    sources: MetricsSources,
}

impl HostCollector {
    /// `orch_bundle_info` and `orch_module_library_info` of a bundle run:
    /// gauges of 1 whose labels say what runs.
    fn encode_bundle(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(bundle) = self.sources.board.deployment() else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            "orch_bundle_info",
            "The bundle this orchestrator runs (cargo orch run --bundle): 1, labelled with its \
             app, version, commit, digest (SHA-256 of its manifest) and signing key id.",
            None,
            MetricType::Gauge,
        )?;
        let signed_by = bundle
            .signed_by
            .clone()
            .unwrap_or_else(|| "unsigned".into());
        let labels = [
            ("app", bundle.app.as_str()),
            ("version", bundle.version.as_str()),
            ("commit", bundle.commit.as_str()),
            ("digest", bundle.digest.as_str()),
            ("signed_by", signed_by.as_str()),
        ];
        family.encode_family(&labels)?.encode_gauge(&1i64)?;
        let mut family = encoder.encode_descriptor(
            "orch_module_library_info",
            "Each module's library in the running bundle: 1, labelled with its SHA-256.",
            None,
            MetricType::Gauge,
        )?;
        for (module, sha256) in &bundle.libraries {
            let labels = [("module", module.as_str()), ("sha256", sha256.as_str())];
            family.encode_family(&labels)?.encode_gauge(&1i64)?;
        }
        Ok(())
    }

    /// A collector over `sources`.
    pub fn new(sources: MetricsSources) -> Self {
        Self { sources }
    }
}

impl fmt::Debug for HostCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostCollector")
    }
}

/// One module's row and histograms at the scrape.
struct Row {
    status: ModuleStatus,
    handler: HistogramSnapshot,
    build: HistogramSnapshot,
    swap: HistogramSnapshot,
    custom: Vec<std::sync::Arc<CustomMetric>>,
}

type Counter = fn(&ModuleStatus) -> u64;
type Gauge = fn(&ModuleStatus) -> f64;
type HistogramOf = fn(&Row) -> &HistogramSnapshot;

/// The per-module counters: name (without `_total`), help, value.
const MODULE_COUNTERS: &[(&str, &str, Counter)] = &[
    (
        "orch_module_events_received",
        "Events handed to the module's handler.",
        |m| m.events_in,
    ),
    (
        "orch_module_events_published",
        "Events the module published.",
        |m| m.events_out,
    ),
    (
        "orch_module_overflows",
        "Events its mailbox dropped or refused when full.",
        |m| m.overflows,
    ),
    (
        "orch_module_dead_letters",
        "Events the module did not get (module.dead_letter).",
        |m| m.dead_letters,
    ),
    ("orch_module_reloads", "Successful hot reloads.", |m| {
        m.reloads
    }),
    (
        "orch_module_reload_failures",
        "Failed reloads, build errors included.",
        |m| m.reload_failures,
    ),
    (
        "orch_module_crashes",
        "Deaths of the module's child host (isolated modules).",
        |m| m.crashes,
    ),
    (
        "orch_module_restarts",
        "Restarts: of a crashed child host, or by an operator.",
        |m| m.restarts,
    ),
];

/// The per-module gauges.
const MODULE_GAUGES: &[(&str, &str, Gauge)] = &[
    (
        "orch_module_mailbox_depth",
        "Events waiting in the module's mailbox.",
        |m| m.mailbox_depth as f64,
    ),
    (
        "orch_module_mailbox_capacity",
        "The capacity of the module's mailbox.",
        |m| m.mailbox_capacity as f64,
    ),
    (
        "orch_module_circuit_open",
        "1 while the module's circuit breaker is open.",
        |m| f64::from(u8::from(m.circuit_open)),
    ),
    (
        "orch_module_up",
        "1 while the module runs (running or reloading).",
        |m| {
            f64::from(u8::from(matches!(
                m.state,
                orch_runtime::status::ModuleState::Running
                    | orch_runtime::status::ModuleState::Reloading
            )))
        },
    ),
    (
        "orch_module_generation",
        "The generation the module runs.",
        |m| f64::from(m.generation),
    ),
];

impl Collector for HostCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut rows = Vec::new();
        self.sources
            .board
            .for_each_module(|status, counters, reloads| {
                rows.push(Row {
                    status: status.clone(),
                    handler: counters.handler_time(),
                    build: reloads.build.snapshot(),
                    swap: reloads.swap.snapshot(),
                    custom: counters.custom().all(),
                });
            });
        for (name, help, value) in MODULE_COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for row in &rows {
                let labels = [("module", row.status.name.as_str())];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&value(&row.status), None)?;
            }
        }
        for (name, help, value) in MODULE_GAUGES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for row in &rows {
                let labels = [("module", row.status.name.as_str())];
                family
                    .encode_family(&labels)?
                    .encode_gauge(&value(&row.status))?;
            }
        }
        let histograms: [(&str, &str, HistogramOf); 3] = [
            (
                "orch_module_handler_duration_seconds",
                "Time in the module's on_event (an isolated module's as its child measures it, successful calls).",
                |r| &r.handler,
            ),
            (
                "orch_module_reload_build_seconds",
                "The build before each successful reload.",
                |r| &r.build,
            ),
            (
                "orch_module_reload_swap_seconds",
                "The swap of each successful reload.",
                |r| &r.swap,
            ),
        ];
        for (name, help, histogram) in histograms {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for row in &rows {
                let labels = [("module", row.status.name.as_str())];
                encode_histogram(family.encode_family(&labels)?, histogram(row))?;
            }
        }
        encode_module_metrics(&mut encoder, &rows)?;
        self.encode_bridge(&mut encoder)?;
        self.encode_bundle(&mut encoder)?;
        let (resident, threads) = super::process::resident_and_threads();
        gauge(
            &mut encoder,
            "process_resident_memory_bytes",
            "Resident memory of the orchestrator process.",
            resident as f64,
        )?;
        gauge(
            &mut encoder,
            "process_threads",
            "Threads of the orchestrator process.",
            threads as f64,
        )?;
        let ready = f64::from(u8::from(self.sources.board.is_ready()));
        gauge(
            &mut encoder,
            "orch_ready",
            "1 once app.started was published and no module is failed.",
            ready,
        )
    }
}

impl HostCollector {
    fn encode_bridge(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(bridge) = &self.sources.bridge else {
            return Ok(());
        };
        let b = bridge.snapshot();
        let counters = [
            (
                "orch_bridge_messages_exported",
                "Events the NATS broker took from this node.",
                b.exported,
            ),
            (
                "orch_bridge_messages_imported",
                "Messages from NATS delivered to the local bus.",
                b.imported,
            ),
            (
                "orch_bridge_export_failures",
                "Publishes to NATS that failed (repeated with JetStream).",
                b.export_failures,
            ),
            (
                "orch_bridge_export_too_large",
                "Events larger than the NATS server's max_payload, kept on this node.",
                b.export_too_large,
            ),
            (
                "orch_bridge_import_repeats",
                "Imported repeats dropped by the window of recent ids.",
                b.import_repeats,
            ),
            (
                "orch_bridge_import_namesakes",
                "Messages of another orchestrator with this node's id, dropped as this node's own.",
                b.import_namesakes,
            ),
            (
                "orch_bridge_import_malformed",
                "Imported messages whose envelope or id broke the caps, refused for good.",
                b.import_malformed,
            ),
            (
                "orch_bridge_import_rejected",
                "Imported messages refused for good: too large, not JSON, or a topic not for this bus.",
                b.import_rejected,
            ),
            (
                "orch_bridge_import_refused",
                "Imported deliveries a local mailbox refused for now (each try).",
                b.import_refused,
            ),
            (
                "orch_bridge_import_fenced",
                "Events of a singleton dropped for a fence lower than one seen (a holder that had lost its lease).",
                b.import_fenced,
            ),
            (
                "orch_bridge_import_dropped",
                "Core NATS messages dropped because this node fell behind the broker (at most once).",
                b.import_dropped,
            ),
            (
                "orch_bridge_reconnects",
                "Connections to NATS made after the first one.",
                b.reconnects,
            ),
        ];
        for (name, help, value) in counters {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        gauge(
            encoder,
            "orch_bridge_connected",
            "1 while connected to a NATS server.",
            f64::from(u8::from(b.connected)),
        )?;
        gauge(
            encoder,
            "orch_bridge_outbox_depth",
            "Exported events waiting for the broker.",
            b.outbox_depth as f64,
        )?;
        gauge(
            encoder,
            "orch_bridge_outbox_capacity",
            "The outbox's capacity.",
            b.outbox_capacity as f64,
        )?;
        let mut family = encoder.encode_descriptor(
            "orch_bridge_requests",
            "Requests across nodes, by kind: asked, replies, no_responders, late, ask_refused \
             (this node asking), served, served_replies, unserved, expired, malformed (serving).",
            None,
            MetricType::Counter,
        )?;
        for (kind, value) in b.requests.named() {
            family
                .encode_family(&[("kind", kind)])?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        if b.work.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "orch_bridge_work",
            "Shared work on this node, by group and kind: taken, handled, redelivered, repeats \
             (redeliveries of jobs handled already), refused, dead_letters.",
            None,
            MetricType::Counter,
        )?;
        for w in &b.work {
            for (kind, value) in w.named() {
                family
                    .encode_family(&[("group", w.group.as_str()), ("kind", kind)])?
                    .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "orch_bridge_work_in_flight",
            "Jobs of a work group this node holds now (taken, not yet handled).",
            None,
            MetricType::Gauge,
        )?;
        for w in &b.work {
            family
                .encode_family(&[("group", w.group.as_str())])?
                .encode_gauge(&i64::try_from(w.in_flight).unwrap_or(i64::MAX))?;
        }
        Ok(())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

fn encode_histogram(
    mut encoder: MetricEncoder,
    histogram: &HistogramSnapshot,
) -> Result<(), fmt::Error> {
    encoder.encode_histogram::<NoLabelSet>(
        histogram.sum_seconds,
        histogram.count,
        &with_inf(histogram),
        None,
    )
}

/// The buckets with the `+Inf` one that holds every observation.
fn with_inf(histogram: &HistogramSnapshot) -> Vec<(f64, u64)> {
    let mut buckets = histogram.buckets.clone();
    buckets.push((f64::INFINITY, histogram.count));
    buckets
}

/// The modules' own metrics (`ctx.metrics()`): one family per name (the host
/// keeps one kind per name), one sample per module that has it.
fn encode_module_metrics(encoder: &mut DescriptorEncoder, rows: &[Row]) -> Result<(), fmt::Error> {
    let mut families: Vec<(&CustomMetric, Vec<(&str, f64)>)> = Vec::new();
    for row in rows {
        for metric in &row.custom {
            let sample = (row.status.name.as_str(), metric.value());
            match families.iter_mut().find(|(m, _)| m.name == metric.name) {
                Some((_, samples)) => samples.push(sample),
                None => families.push((metric, vec![sample])),
            }
        }
    }
    for (metric, samples) in families {
        let kind = match metric.kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
        };
        let help = if metric.help.is_empty() {
            "A module's own metric."
        } else {
            &metric.help
        };
        let mut family = encoder.encode_descriptor(&metric.name, help, None, kind)?;
        for (module, value) in samples {
            let labels = [("module", module)];
            let mut sample = family.encode_family(&labels)?;
            match metric.kind {
                MetricKind::Counter => sample.encode_counter::<NoLabelSet, _, u64>(&value, None)?,
                MetricKind::Gauge => sample.encode_gauge(&value)?,
            }
        }
    }
    Ok(())
}
