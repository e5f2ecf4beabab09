//! Who this orchestrator is on the broker, and the ids of its messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// This orchestrator's id when `bridge.nats.node` is not set: its host name
/// and process id (`edge-box-4711`), letters, digits, `-` and `_` only.
pub fn default_node() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let host = if host.is_empty() { "orch" } else { &host };
    format!("{host}-{}", std::process::id())
}

/// This orchestrator on the broker: its node id, and the moment its bridge
/// started, which tells its events from those of another orchestrator that
/// was given the same node id by mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The node id (`bridge.nats.node`, or [`default_node`]).
    pub name: String,
    /// Microseconds since the Unix epoch when this bridge started.
    pub incarnation: u64,
}

impl Identity {
    /// Node `name`, starting now.
    pub fn new(name: String) -> Self {
        let incarnation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        Self { name, incarnation }
    }

    /// When this bridge started, in milliseconds since the Unix epoch.
    pub fn started_ms(&self) -> u64 {
        self.incarnation / 1_000
    }
}

/// Message ids `<node>-<sequence>` for `Nats-Msg-Id`. The sequence starts at
/// the node's incarnation (microseconds since the Unix epoch when the bridge
/// started), so an orchestrator restarted with the same node id never reuses
/// an id the stream's duplicate window still remembers.
pub struct MessageIds {
    node: String,
    next: AtomicU64,
}

impl MessageIds {
    /// Ids for `me`, from its incarnation on.
    pub fn new(me: &Identity) -> Self {
        Self {
            node: me.name.clone(),
            next: AtomicU64::new(me.incarnation),
        }
    }

    /// The next id.
    pub fn next(&self) -> String {
        format!(
            "{}-{}",
            self.node,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_node_is_a_plain_token_with_the_pid() {
        let node = default_node();
        assert!(
            node.ends_with(&format!("-{}", std::process::id())),
            "{node}"
        );
        assert!(
            node.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{node}"
        );
    }

    #[test]
    fn ids_never_repeat_across_restarts_of_one_node() {
        let first = MessageIds::new(&Identity::new("a".into()));
        let one = first.next();
        let two = first.next();
        assert_ne!(one, two);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let restarted = MessageIds::new(&Identity::new("a".into()));
        let seq = |id: &str| id.rsplit('-').next().and_then(|n| n.parse::<u64>().ok());
        assert!(seq(&restarted.next()) > seq(&two));
    }
}
