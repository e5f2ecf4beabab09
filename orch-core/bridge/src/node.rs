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

/// Message ids `<node>-<sequence>` for `Nats-Msg-Id`. The sequence starts at
/// the microseconds since the Unix epoch when the bridge started, so an
/// orchestrator restarted with the same node id never reuses an id the
/// stream's duplicate window still remembers.
pub struct MessageIds {
    node: String,
    next: AtomicU64,
}

impl MessageIds {
    /// Ids for `node`, starting now.
    pub fn new(node: &str) -> Self {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        Self {
            node: node.to_owned(),
            next: AtomicU64::new(start),
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
        let first = MessageIds::new("a");
        let one = first.next();
        let two = first.next();
        assert_ne!(one, two);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let restarted = MessageIds::new("a");
        let seq = |id: &str| id.rsplit('-').next().and_then(|n| n.parse::<u64>().ok());
        assert!(seq(&restarted.next()) > seq(&two));
    }
}
