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
    /// Events of a singleton dropped for a lower fence than one seen (sent
    /// by a holder that had lost its lease).
    #[serde(default)]
    pub import_fenced: u64,
    /// Core NATS messages dropped because this node fell behind the broker
    /// (its import backlog or the client's buffer was full): at most once.
    #[serde(default)]
    pub import_dropped: u64,
    /// Exported events waiting for the broker.
    pub outbox_depth: usize,
    /// The outbox's capacity.
    pub outbox_capacity: usize,
    /// With `presence:`: every node of the cluster this node sees, itself
    /// included, sorted by node id.
    #[serde(default)]
    pub nodes: Vec<ClusterNode>,
    /// Requests across nodes (`serve`, `ask`).
    #[serde(default)]
    pub requests: RequestCounts,
    /// Shared work (`work:`), one entry per group.
    #[serde(default)]
    pub work: Vec<WorkCounts>,
}

/// What one shared-work group did on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkCounts {
    /// The group's name.
    pub group: String,
    /// JetStream (at least once) or a core NATS queue group (at most once).
    pub durable: bool,
    /// Jobs taken from the broker.
    pub taken: u64,
    /// Jobs whose handlers let go (acknowledged).
    pub handled: u64,
    /// Jobs taken on a second or later delivery.
    pub redelivered: u64,
    /// Redeliveries of jobs already handled (here or on another node): not
    /// handled again.
    pub repeats: u64,
    /// Jobs a local mailbox refused (each try; offered again later).
    pub refused: u64,
    /// Jobs given up after their last delivery, sent to the dead-letter
    /// subject.
    pub dead_letters: u64,
    /// Jobs held now: taken and not yet handled.
    pub in_flight: u64,
    /// The most jobs held at once.
    pub in_flight_peak: u64,
    /// `max_in_flight`.
    pub max_in_flight: u64,
}

impl WorkCounts {
    /// The counters with their names, for the metrics.
    pub fn named(&self) -> [(&'static str, u64); 6] {
        [
            ("taken", self.taken),
            ("handled", self.handled),
            ("redelivered", self.redelivered),
            ("repeats", self.repeats),
            ("refused", self.refused),
            ("dead_letters", self.dead_letters),
        ]
    }
}

/// The counters of requests across nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestCounts {
    /// Requests sent to NATS (each try).
    pub asked: u64,
    /// Replies from another node delivered to a local requester.
    pub replies: u64,
    /// "No responders" delivered to a local requester.
    pub no_responders: u64,
    /// Replies that came after the requester's answer.
    pub late: u64,
    /// Requests not sent: too many waited already.
    pub ask_refused: u64,
    /// Requests from other nodes handed to local modules.
    pub served: u64,
    /// Replies of local modules sent back.
    pub served_replies: u64,
    /// Requests from other nodes answered "no local subscriber".
    pub unserved: u64,
    /// Requests from other nodes dropped with no time left.
    pub expired: u64,
    /// Requests or replies dropped as breaking the caps.
    pub malformed: u64,
}

impl RequestCounts {
    /// Every counter with its name, for the metrics.
    pub fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("asked", self.asked),
            ("replies", self.replies),
            ("no_responders", self.no_responders),
            ("late", self.late),
            ("ask_refused", self.ask_refused),
            ("served", self.served),
            ("served_replies", self.served_replies),
            ("unserved", self.unserved),
            ("expired", self.expired),
            ("malformed", self.malformed),
        ]
    }
}

/// A node's presence record: what every node writes about itself in the
/// presence bucket. Read from peers, so bounded by [`NodeRecord::check`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeRecord {
    /// The node's id (its key in the bucket).
    pub node: String,
    /// Changes at every start of the node.
    pub incarnation: String,
    /// `app.name`.
    pub app: String,
    /// `app.version`.
    pub version: String,
    /// The digest of the bundle it runs, for a bundle run.
    #[serde(default)]
    pub bundle_digest: Option<String>,
    /// Ready: `app.started` and no module failed.
    pub ready: bool,
    /// Its modules.
    pub modules: Vec<NodeModule>,
    /// Counts of what went wrong since it started (a rollout's health gate).
    #[serde(default)]
    pub health: NodeHealth,
    /// The last release it was told to run and refused, until it runs
    /// another (a node run from NATS).
    #[serde(default)]
    pub refused: Option<RefusedRelease>,
}

/// A release a node refused: which, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefusedRelease {
    /// Its version.
    pub version: String,
    /// Its bundle digest, as its release names it.
    pub digest: String,
    /// Why (cut to [`MAX_REFUSAL_TEXT`] bytes).
    pub reason: String,
}

/// The longest reason a refused release carries.
pub const MAX_REFUSAL_TEXT: usize = 1024;

impl RefusedRelease {
    /// A refusal, its reason cut at a character boundary.
    pub fn new(version: &str, digest: &str, reason: &str) -> Self {
        let mut end = reason.len().min(MAX_REFUSAL_TEXT);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            version: version.to_owned(),
            digest: digest.to_owned(),
            reason: reason.get(..end).unwrap_or_default().to_owned(),
        }
    }
}

/// How often a node's modules crashed, failed a reload or opened their
/// circuit since the node started: counts that only grow, so a reader
/// compares two records to see what happened between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeHealth {
    /// `module.crashed` events.
    #[serde(default)]
    pub crashes: u64,
    /// `module.reload_failed` events.
    #[serde(default)]
    pub reload_failures: u64,
    /// `module.circuit_open` events.
    #[serde(default)]
    pub circuit_opens: u64,
}

impl NodeHealth {
    /// What `later` counts beyond `self`, as words (`2 crashes`), or `None`.
    pub fn worse_in(&self, later: &Self) -> Option<String> {
        let grew: Vec<String> = [
            (later.crashes.saturating_sub(self.crashes), "module.crashed"),
            (
                later.reload_failures.saturating_sub(self.reload_failures),
                "module.reload_failed",
            ),
            (
                later.circuit_opens.saturating_sub(self.circuit_opens),
                "module.circuit_open",
            ),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        (!grew.is_empty()).then(|| grew.join(", "))
    }
}

/// One module of a node's record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeModule {
    /// The module's name.
    pub name: String,
    /// Its state (`running`, `failed`, ...).
    pub state: String,
    /// The generation it runs.
    pub generation: u32,
}

/// A node as this one sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterNode {
    /// Its last record.
    #[serde(flatten)]
    pub record: NodeRecord,
    /// Milliseconds since this node last heard of it.
    pub last_seen_ms: u64,
}

/// The most modules a record may list.
pub const MAX_RECORD_MODULES: usize = 1_000;
/// The longest text field of a record.
pub const MAX_RECORD_TEXT: usize = 256;

impl NodeRecord {
    /// Refuses a record whose fields break the bounds (a peer's record is
    /// input like any other).
    pub fn check(&self) -> Result<(), String> {
        let texts = [
            ("node", &self.node),
            ("incarnation", &self.incarnation),
            ("app", &self.app),
            ("version", &self.version),
        ];
        for (field, text) in texts {
            if text.len() > MAX_RECORD_TEXT {
                return Err(format!("{field} longer than {MAX_RECORD_TEXT} bytes"));
            }
        }
        if self
            .bundle_digest
            .as_ref()
            .is_some_and(|d| d.len() > MAX_RECORD_TEXT)
        {
            return Err("bundle_digest too long".into());
        }
        if self.refused.as_ref().is_some_and(|r| {
            r.version.len() > MAX_RECORD_TEXT
                || r.digest.len() > MAX_RECORD_TEXT
                || r.reason.len() > MAX_REFUSAL_TEXT
        }) {
            return Err("a refused release's field too long".into());
        }
        if self.modules.len() > MAX_RECORD_MODULES {
            return Err(format!("more than {MAX_RECORD_MODULES} modules"));
        }
        if self
            .modules
            .iter()
            .any(|m| m.name.len() > MAX_RECORD_TEXT || m.state.len() > MAX_RECORD_TEXT)
        {
            return Err(format!(
                "a module field longer than {MAX_RECORD_TEXT} bytes"
            ));
        }
        Ok(())
    }
}

/// Reads a running bridge's state from any thread (orch-bridge's probe).
pub trait BridgeStatus: Send + Sync {
    /// The state now.
    fn snapshot(&self) -> BridgeSnapshot;
}
