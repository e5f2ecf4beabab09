//! Presence: every node keeps a record of itself (its id, incarnation,
//! version, bundle digest, readiness, each module's state and generation)
//! in one JetStream key-value bucket whose entries expire after the TTL, and
//! watches everyone else's.
//!
//! - The record is written every third of the TTL; a clean stop deletes it
//!   ([`delete_own`]).
//! - A node seen for the first time (or with a new incarnation) is announced
//!   on the local bus as `bridge.node_joined`; one whose record is deleted,
//!   or which this node has not heard of for a whole TTL (by its own
//!   monotonic clock, not the peer's), as `bridge.node_lost`. The bucket's
//!   `max_age` removes a silent node's record on the server too.
//! - A peer's record is input like any other: its size is capped, its
//!   fields bounded ([`NodeRecord::check`]), and its key must be the node it
//!   names; anything else is dropped and counted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt as _;
use orch_config::PresenceSettings;
use orch_runtime::bus::Bus;
use orch_runtime::pace::Pacer;
use orch_runtime::status::{ClusterNode, NodeModule, NodeRecord, StatusBoard};
use orch_sdk::events::{BridgeNodeJoined, BridgeNodeLost};

/// The largest record accepted from a peer (and written).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Who this node is in the bucket.
#[derive(Debug, Clone)]
pub struct Me {
    /// The node id (the record's key).
    pub node: String,
    /// This start of it.
    pub incarnation: String,
}

/// The nodes this one sees: shared with the probe (status, metrics).
#[derive(Debug, Default)]
pub struct View {
    nodes: BTreeMap<String, Seen>,
    /// Peer records dropped as malformed or forged.
    pub refused: u64,
}

#[derive(Debug, Clone)]
struct Seen {
    record: NodeRecord,
    last_seen: Instant,
}

impl View {
    /// Every node, sorted by id.
    pub fn nodes(&self) -> Vec<ClusterNode> {
        self.nodes
            .values()
            .map(|seen| ClusterNode {
                record: seen.record.clone(),
                last_seen_ms: u64::try_from(seen.last_seen.elapsed().as_millis())
                    .unwrap_or(u64::MAX),
            })
            .collect()
    }

    /// Takes a record read at `now`; the event to announce, if any.
    fn saw(&mut self, record: NodeRecord, now: Instant) -> Option<BridgeNodeJoined> {
        let joined = match self.nodes.get(&record.node) {
            Some(seen) => seen.record.incarnation != record.incarnation,
            None => true,
        }
        .then(|| BridgeNodeJoined {
            node: record.node.clone(),
            incarnation: record.incarnation.clone(),
            version: record.version.clone(),
        });
        self.nodes.insert(
            record.node.clone(),
            Seen {
                record,
                last_seen: now,
            },
        );
        joined
    }

    /// `node` deleted its record (a clean stop).
    fn stopped(&mut self, node: &str) -> Option<BridgeNodeLost> {
        self.nodes.remove(node).map(|seen| BridgeNodeLost {
            node: node.to_owned(),
            incarnation: seen.record.incarnation,
            reason: "stopped".into(),
        })
    }

    /// Nodes other than `me` not heard of for `ttl` by `now`: removed.
    fn expire(&mut self, me: &str, ttl: Duration, now: Instant) -> Vec<BridgeNodeLost> {
        let silent: Vec<String> = self
            .nodes
            .iter()
            .filter(|(node, seen)| {
                node.as_str() != me && now.saturating_duration_since(seen.last_seen) >= ttl
            })
            .map(|(node, _)| node.clone())
            .collect();
        silent
            .into_iter()
            .filter_map(|node| {
                self.nodes.remove(&node).map(|seen| BridgeNodeLost {
                    node,
                    incarnation: seen.record.incarnation,
                    reason: "expired".into(),
                })
            })
            .collect()
    }
}

/// This node's record now.
pub fn own_record(me: &Me, board: &StatusBoard, app: &str, version: &str) -> NodeRecord {
    let deployment = board.deployment();
    NodeRecord {
        node: me.node.clone(),
        incarnation: me.incarnation.clone(),
        app: deployment
            .as_ref()
            .map_or_else(|| app.to_owned(), |d| d.app.clone()),
        version: deployment
            .as_ref()
            .map_or_else(|| version.to_owned(), |d| d.version.clone()),
        bundle_digest: deployment.map(|d| d.digest),
        ready: board.is_ready(),
        health: board.health(),
        refused: board.refused_release(),
        modules: board
            .snapshot()
            .into_iter()
            .map(|m| NodeModule {
                name: m.name,
                state: m.state.as_str().to_owned(),
                generation: m.generation,
            })
            .collect(),
    }
}

/// Parses a peer's entry: the record, or why it is refused.
pub fn parse_record(key: &str, value: &[u8]) -> Result<NodeRecord, String> {
    if value.len() > MAX_RECORD_BYTES {
        return Err(format!(
            "{} bytes, more than {MAX_RECORD_BYTES}",
            value.len()
        ));
    }
    let record: NodeRecord =
        serde_json::from_slice(value).map_err(|e| format!("not a presence record: {e}"))?;
    record.check()?;
    if record.node != key {
        return Err(format!(
            "stored under key '{key}' but names node '{}'",
            record.node.escape_debug()
        ));
    }
    Ok(record)
}

/// What presence needs to run.
pub struct Presence {
    /// `bridge.nats.presence`.
    pub settings: PresenceSettings,
    /// This node.
    pub me: Me,
    /// Its modules' states.
    pub board: StatusBoard,
    /// `app.name` and `app.version` (a bundle's win).
    pub app: (String, String),
    /// Where node_joined / node_lost go.
    pub bus: Bus,
    /// What this node sees.
    pub view: Arc<Mutex<View>>,
}

fn lock(view: &Mutex<View>) -> std::sync::MutexGuard<'_, View> {
    view.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens the bucket, creating it when missing.
pub async fn open_bucket(
    context: &jetstream::Context,
    settings: &PresenceSettings,
) -> Result<kv::Store, String> {
    if let Ok(store) = context.get_key_value(&settings.bucket).await {
        return Ok(store);
    }
    context
        .create_key_value(kv::Config {
            bucket: settings.bucket.clone(),
            description: "cargo-orch presence: one record per node".into(),
            history: 1,
            max_age: settings.ttl,
            max_value_size: i32::try_from(MAX_RECORD_BYTES).unwrap_or(i32::MAX),
            storage: jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .map_err(|e| {
            format!(
                "cannot open or create the presence bucket '{}': {e}",
                settings.bucket
            )
        })
}

impl Presence {
    /// Writes this node's record, watches the others' and expires the silent
    /// ones, until dropped. Retries (paced) while the bucket cannot be used.
    pub async fn run(self, context: jetstream::Context) {
        let every = (self.settings.ttl / 3).max(Duration::from_millis(200));
        let said = Pacer::new(Duration::from_secs(30));
        loop {
            match open_bucket(&context, &self.settings).await {
                Ok(store) => {
                    self.serve(store, every).await;
                }
                Err(e) => {
                    if said.due() {
                        tracing::warn!(
                            "[BRIDGE] presence: {e}; trying again (the server needs JetStream)"
                        );
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    async fn serve(&self, store: kv::Store, every: Duration) {
        let watch = match store.watch_with_history(">").await {
            Ok(watch) => watch,
            Err(e) => {
                tracing::warn!("[BRIDGE] presence: cannot watch the bucket: {e}");
                return;
            }
        };
        tracing::info!(
            "[BRIDGE] presence: node '{}' in bucket '{}' (ttl {} ms)",
            self.me.node,
            self.settings.bucket,
            self.settings.ttl.as_millis()
        );
        let write = self.write_loop(&store, every);
        let read = self.read_loop(watch);
        futures_util::future::select(Box::pin(write), Box::pin(read)).await;
    }

    async fn write_loop(&self, store: &kv::Store, every: Duration) {
        let said = Pacer::new(Duration::from_secs(30));
        loop {
            let record = own_record(&self.me, &self.board, &self.app.0, &self.app.1);
            if let Ok(bytes) = serde_json::to_vec(&record) {
                match store.put(&self.me.node, bytes.into()).await {
                    Ok(_) => {
                        lock(&self.view).saw(record, Instant::now());
                    }
                    Err(e) if said.due() => {
                        tracing::warn!("[BRIDGE] presence: cannot write this node's record: {e}");
                    }
                    Err(_) => {}
                }
            }
            let lost = lock(&self.view).expire(&self.me.node, self.settings.ttl, Instant::now());
            for event in lost {
                tracing::warn!(
                    "[BRIDGE] node '{}' lost: no presence record for {} ms",
                    event.node,
                    self.settings.ttl.as_millis()
                );
                self.bus.publish_system_nowait(&event);
            }
            tokio::time::sleep(every).await;
        }
    }

    async fn read_loop(&self, mut watch: kv::Watch) {
        let said = Pacer::new(Duration::from_secs(30));
        while let Some(entry) = watch.next().await {
            let Ok(entry) = entry else {
                continue;
            };
            if entry.key == self.me.node {
                self.own_key(&entry);
                continue;
            }
            match entry.operation {
                kv::Operation::Put => match parse_record(&entry.key, &entry.value) {
                    Ok(record) => {
                        let joined = lock(&self.view).saw(record, Instant::now());
                        if let Some(event) = joined {
                            tracing::info!(
                                "[BRIDGE] node '{}' joined (version {})",
                                event.node,
                                event.version
                            );
                            self.bus.publish_system_nowait(&event);
                        }
                    }
                    Err(cause) => {
                        lock(&self.view).refused += 1;
                        if said.due() {
                            tracing::warn!(
                                "[BRIDGE] presence: record under key '{}' refused: {cause}",
                                entry.key.escape_debug()
                            );
                        }
                    }
                },
                kv::Operation::Delete | kv::Operation::Purge => {
                    let lost = lock(&self.view).stopped(&entry.key);
                    if let Some(event) = lost {
                        tracing::info!("[BRIDGE] node '{}' left (stopped)", event.node);
                        self.bus.publish_system_nowait(&event);
                    }
                }
            }
        }
    }

    /// Our own key written by someone else: another orchestrator was given
    /// this node's id.
    fn own_key(&self, entry: &kv::Entry) {
        if entry.operation != kv::Operation::Put {
            return;
        }
        if let Ok(record) = parse_record(&entry.key, &entry.value)
            && record.incarnation != self.me.incarnation
        {
            tracing::warn!(
                "[BRIDGE] presence: another orchestrator writes node '{}' too (incarnation {}): \
                 give each its own bridge.nats.node",
                self.me.node,
                record.incarnation.escape_debug()
            );
        }
    }
}

/// Deletes this node's record (a clean stop), within `timeout`.
pub async fn delete_own(
    context: &jetstream::Context,
    settings: &PresenceSettings,
    node: &str,
    timeout: Duration,
) {
    let delete = async {
        let store = context.get_key_value(&settings.bucket).await.ok()?;
        store.delete(node).await.ok()
    };
    if tokio::time::timeout(timeout, delete)
        .await
        .ok()
        .flatten()
        .is_none()
    {
        tracing::warn!(
            "[BRIDGE] presence: could not delete this node's record; the others will see it \
             expire after {} ms",
            settings.ttl.as_millis()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(node: &str, incarnation: &str) -> NodeRecord {
        NodeRecord {
            node: node.into(),
            incarnation: incarnation.into(),
            app: "a".into(),
            version: "1".into(),
            bundle_digest: None,
            ready: true,
            modules: vec![],
            health: Default::default(),
            refused: None,
        }
    }

    #[test]
    fn joins_once_per_incarnation_and_expires_by_local_silence() {
        let mut view = View::default();
        let t0 = Instant::now();
        assert!(view.saw(record("b", "1"), t0).is_some());
        assert!(
            view.saw(record("b", "1"), t0).is_none(),
            "a refresh is no join"
        );
        assert!(
            view.saw(record("b", "2"), t0).is_some(),
            "a restart joins again"
        );
        view.saw(record("me", "1"), t0);
        let ttl = Duration::from_secs(3);
        assert!(
            view.expire("me", ttl, t0 + Duration::from_secs(2))
                .is_empty()
        );
        let lost = view.expire("me", ttl, t0 + ttl);
        assert_eq!(lost.len(), 1, "only the other node expires");
        assert_eq!(
            (lost[0].node.as_str(), lost[0].reason.as_str()),
            ("b", "expired")
        );
        assert!(view.stopped("b").is_none(), "lost once");
        assert_eq!(view.stopped("me").map(|l| l.reason), Some("stopped".into()));
    }

    #[test]
    fn forged_oversized_or_malformed_records_are_refused() {
        let good = serde_json::to_vec(&record("b", "1")).expect("json");
        assert!(parse_record("b", &good).is_ok());
        assert!(parse_record("c", &good).unwrap_err().contains("names node"));
        assert!(parse_record("b", b"{not json").is_err());
        assert!(parse_record("b", &vec![b' '; MAX_RECORD_BYTES + 1]).is_err());
        let mut long = record("b", "1");
        long.version = "x".repeat(10_000);
        let long = serde_json::to_vec(&long).expect("json");
        assert!(parse_record("b", &long).is_err());
    }
}
