//! What operators see of a bridge between this orchestrator and others (the
//! NATS bridge lives in orch-bridge): its counters as data, and the trait it
//! is read through, so the control socket and the metrics never depend on it.

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

/// Reads a running bridge's state from any thread (orch-bridge's probe).
pub trait BridgeStatus: Send + Sync {
    /// The state now.
    fn snapshot(&self) -> BridgeSnapshot;
}
