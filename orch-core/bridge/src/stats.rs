//! The import side's counters and each work group's, read by the status
//! report and the metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use orch_config::WorkGroup;
use orch_runtime::status::WorkCounts;

/// Counters of the import side.
#[derive(Default)]
pub struct ImportStats {
    /// Messages delivered to the local bus.
    pub delivered: AtomicU64,
    /// Repeats dropped by the id window.
    pub repeats: AtomicU64,
    /// This node's own events, come back from the stream.
    pub own: AtomicU64,
    /// Messages of another orchestrator with this node's id, dropped as
    /// this node's own.
    pub namesakes: AtomicU64,
    /// Messages whose envelope or message id breaks the caps
    /// ([`crate::caps`]) or cannot be read: refused for good.
    pub malformed: AtomicU64,
    /// Messages over this node's `max_event_bytes`: refused for good.
    pub too_large: AtomicU64,
    /// Messages from outside an orchestrator whose payload is not JSON:
    /// refused for good.
    pub not_json: AtomicU64,
    /// Messages on a subject that is no topic for this bus (not under the
    /// prefix, not a valid topic, the host's namespaces): refused for good.
    pub off_topic: AtomicU64,
    /// Deliveries a local mailbox refused for now (each try).
    pub refused: AtomicU64,
    /// Events of a singleton dropped for a fence lower than one seen: sent
    /// by a holder that had lost its lease.
    pub fenced: AtomicU64,
    /// Core NATS messages dropped because this node fell behind the broker
    /// (its backlog, [`crate::backlog`], was full).
    pub dropped: AtomicU64,
}

impl ImportStats {
    /// Messages refused for good with a well-formed envelope: too large,
    /// not JSON or on a subject not for this bus.
    pub fn rejected(&self) -> u64 {
        [&self.too_large, &self.not_json, &self.off_topic]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// One group's counters on this node.
#[derive(Default)]
pub struct WorkStats {
    /// JetStream (true) or core NATS.
    pub durable: bool,
    /// `max_in_flight`.
    pub max_in_flight: u64,
    /// Jobs taken from the broker.
    pub taken: AtomicU64,
    /// Jobs whose handlers let go.
    pub handled: AtomicU64,
    /// Jobs taken on a second or later delivery.
    pub redelivered: AtomicU64,
    /// Redeliveries of jobs handled already: not handled again.
    pub repeats: AtomicU64,
    /// Jobs a local mailbox refused (each try).
    pub refused: AtomicU64,
    /// Jobs given up (dead letters).
    pub dead_letters: AtomicU64,
    /// Jobs held now.
    pub in_flight: AtomicU64,
    /// The most jobs held at once.
    pub in_flight_peak: AtomicU64,
    /// Handled jobs whose record and acknowledgement are on their way (a
    /// shutdown waits for them).
    pub acking: AtomicU64,
}

impl WorkStats {
    /// New counters for `group`.
    pub fn new(group: &WorkGroup, durable: bool) -> Self {
        Self {
            durable,
            max_in_flight: u64::try_from(group.max_in_flight).unwrap_or(u64::MAX),
            ..Self::default()
        }
    }

    /// One more job held.
    pub fn hold(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.in_flight_peak.fetch_max(now, Ordering::AcqRel);
    }

    /// One job held no more.
    pub fn release(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Jobs held or being acknowledged: what a clean stop waits for.
    pub fn unsettled(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire) + self.acking.load(Ordering::Acquire)
    }

    /// The counters as the status report shows them.
    pub fn counts(&self, group: &str) -> WorkCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkCounts {
            group: group.to_owned(),
            durable: self.durable,
            taken: get(&self.taken),
            handled: get(&self.handled),
            redelivered: get(&self.redelivered),
            repeats: get(&self.repeats),
            refused: get(&self.refused),
            dead_letters: get(&self.dead_letters),
            in_flight: get(&self.in_flight),
            in_flight_peak: get(&self.in_flight_peak),
            max_in_flight: self.max_in_flight,
        }
    }
}
