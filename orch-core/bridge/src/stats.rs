//! The import side's counters, read by the status report and the metrics.

use std::sync::atomic::{AtomicU64, Ordering};

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
