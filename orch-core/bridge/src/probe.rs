//! The bridge's state for operators (`cargo orch status`, the metrics),
//! read from any thread without touching the bridge's own.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use orch_runtime::mailbox::Mailbox;

use crate::connection::Link;
use crate::export::ExportStats;
use crate::stats::ImportStats;

/// Reads a running bridge's state from any thread.
#[derive(Clone)]
pub struct BridgeProbe {
    pub(crate) node: String,
    pub(crate) link: Arc<Link>,
    pub(crate) outbox: Option<Mailbox>,
    pub(crate) exported: Arc<ExportStats>,
    pub(crate) imported: Arc<ImportStats>,
}

/// The bridge's state at one moment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BridgeSnapshot {
    /// This orchestrator's node id.
    pub node: String,
    /// Whether a connection is up.
    pub connected: bool,
    /// The server of the current or last connection (`host:port`), if any.
    pub server: Option<String>,
    /// Connections made after the first one.
    pub reconnects: u64,
    /// Events the broker took.
    pub exported: u64,
    /// Publishes that failed (repeated with JetStream, lost with core NATS).
    pub export_failures: u64,
    /// Events larger than the server's `max_payload`, kept on this node.
    #[serde(default)]
    pub export_too_large: u64,
    /// Messages delivered to the local bus.
    pub imported: u64,
    /// Repeats dropped by the window of recent ids.
    pub import_repeats: u64,
    /// Messages of another orchestrator with this node's id (a mistake in
    /// the configuration), dropped as this node's own.
    #[serde(default)]
    pub import_namesakes: u64,
    /// Messages whose envelope or message id broke the caps (length,
    /// characters) or could not be read: refused for good.
    #[serde(default)]
    pub import_malformed: u64,
    /// Messages refused for good otherwise: over `max_event_bytes`, not
    /// JSON from outside an orchestrator, or on a subject not for this bus.
    #[serde(default)]
    pub import_rejected: u64,
    /// Deliveries a local mailbox refused for now (each try; JetStream asks
    /// for them again).
    #[serde(default)]
    pub import_refused: u64,
    /// Exported events waiting for the broker.
    pub outbox_depth: usize,
    /// The outbox's capacity.
    pub outbox_capacity: usize,
}

impl BridgeProbe {
    /// The state now.
    pub fn snapshot(&self) -> BridgeSnapshot {
        let server = self.link.server();
        let in_hand = self.exported.in_hand.load(Ordering::Acquire);
        BridgeSnapshot {
            node: self.node.clone(),
            connected: self.link.is_connected(),
            server: Some(server).filter(|s| !s.is_empty()),
            reconnects: self.link.connects().saturating_sub(1),
            exported: self.exported.sent.load(Ordering::Relaxed),
            export_failures: self.exported.failed.load(Ordering::Relaxed),
            export_too_large: self.exported.too_large.load(Ordering::Relaxed),
            imported: self.imported.delivered.load(Ordering::Relaxed),
            import_repeats: self.imported.repeats.load(Ordering::Relaxed),
            import_namesakes: self.imported.namesakes.load(Ordering::Relaxed),
            import_malformed: self.imported.malformed.load(Ordering::Relaxed),
            import_rejected: self.imported.rejected(),
            import_refused: self.imported.refused.load(Ordering::Relaxed),
            outbox_depth: self.outbox.as_ref().map_or(0, Mailbox::len)
                + usize::try_from(in_hand).unwrap_or(0),
            outbox_capacity: self.outbox.as_ref().map_or(0, Mailbox::capacity),
        }
    }
}
