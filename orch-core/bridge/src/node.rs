//! Who this orchestrator is on the broker, and the ids of its messages.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// This orchestrator's id when `bridge.nats.node` is not set: its host name
/// and process id (`edge-box-4711`), letters, digits, `-` and `_` only, the
/// host name cut so that the whole fits in [`crate::caps::MAX_NAME`].
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
    let pid = std::process::id().to_string();
    // Every character is ASCII now: any byte is a boundary.
    let room = crate::caps::MAX_NAME.saturating_sub(pid.len() + 1);
    format!("{}-{pid}", &host[..host.len().min(room)])
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

/// Message ids `<node>-<sequence>-<tag>` for `Nats-Msg-Id`.
///
/// Unique: the sequence starts at the node's incarnation (microseconds since
/// the Unix epoch when the bridge started) and counts up, so an orchestrator
/// restarted with the same node id never reuses an id the stream's duplicate
/// window (or an importer's window) still remembers.
///
/// Unpredictable: the tag is 16 hex digits of a keyed hash of the sequence,
/// under a key drawn for this incarnation from std's [`RandomState`]
/// (SipHash, today SipHash-1-3, keyed with 128 bits the OS's random source
/// gave the process). Another client that saw any number of this node's
/// ids cannot tell the next one's tag without the key (SipHash is a keyed
/// pseudo-random function: seen outputs say nothing of unseen ones), and a
/// blind guess is right once in 2^64. So a peer cannot claim an id before
/// this node uses it: JetStream's duplicate window, keyed by `Nats-Msg-Id`
/// alone, would otherwise drop this node's real event as the repeat of the
/// peer's. (No crate for random numbers is needed: std's keys come from
/// the OS, and this is all the randomness the ids need.)
pub struct MessageIds {
    node: String,
    next: AtomicU64,
    key: RandomState,
}

impl MessageIds {
    /// Ids for `me`, from its incarnation on.
    pub fn new(me: &Identity) -> Self {
        Self {
            node: me.name.clone(),
            next: AtomicU64::new(me.incarnation),
            key: RandomState::new(),
        }
    }

    /// The next id.
    pub fn next(&self) -> String {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        let tag = self.key.hash_one(sequence);
        format!("{}-{sequence}-{tag:016x}", self.node)
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

    /// The sequence of an id.
    fn seq(id: &str) -> Option<u64> {
        id.rsplit('-').nth(1).and_then(|n| n.parse::<u64>().ok())
    }

    /// The tag of an id.
    fn tag(id: &str) -> u64 {
        id.rsplit('-')
            .next()
            .and_then(|t| u64::from_str_radix(t, 16).ok())
            .unwrap_or_else(|| panic!("a tag in {id}"))
    }

    #[test]
    fn ids_never_repeat_across_restarts_of_one_node() {
        let first = MessageIds::new(&Identity::new("a".into()));
        let mut seen = std::collections::HashSet::new();
        let mut last = String::new();
        for _ in 0..100_000 {
            last = first.next();
            assert!(seen.insert(last.clone()), "{last} twice");
        }
        // The promise holds for a node that sent fewer than one id per
        // microsecond (a million a second; the bridge sends a tenth of
        // that): the loop above is faster, so the restart comes once the
        // clock has passed the last sequence, as it would have at that rate.
        let passed = |id: &str| Identity::new("a".into()).incarnation > seq(id).unwrap_or(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !passed(&last) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let restarted = MessageIds::new(&Identity::new("a".into()));
        let again = restarted.next();
        assert!(seq(&again) > seq(&last), "{again} after {last}");
        assert!(!seen.contains(&again));
    }

    #[test]
    fn ids_keep_the_caps_even_for_the_longest_node_id() {
        let longest = "n".repeat(crate::caps::MAX_NAME);
        let id = MessageIds::new(&Identity::new(longest)).next();
        assert!(crate::caps::message_id(&id).is_ok(), "{id}");
        assert!(crate::caps::name("node", &default_node()).is_ok());
    }

    #[test]
    fn the_next_id_cannot_be_told_from_the_ones_seen() {
        let me = Identity::new("node-a".into());
        let ids = MessageIds::new(&me);
        let seen: Vec<String> = (0..1_000).map(|_| ids.next()).collect();
        let next = ids.next();
        // The old scheme's guess, `<node>-<sequence>`, is never an id.
        let sequence = seq(&next).expect("a sequence");
        assert_ne!(next, format!("node-a-{sequence}"));
        // Nor is the seen tag carried over, or moved on by a fixed step:
        // the differences between neighbours' tags are all unlike.
        let tags: Vec<u64> = seen.iter().map(|id| tag(id)).collect();
        assert!(!tags.contains(&tag(&next)));
        let steps: std::collections::HashSet<u64> =
            tags.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        assert!(steps.len() > 990, "{} distinct steps", steps.len());
        let flips: std::collections::HashSet<u64> = tags.windows(2).map(|w| w[1] ^ w[0]).collect();
        assert!(flips.len() > 990, "{} distinct xors", flips.len());
        // About half the bits of a tag are set, as for random numbers.
        let ones: u32 = tags.iter().map(|t| t.count_ones()).sum();
        let mean = f64::from(ones) / tags.len() as f64;
        assert!((28.0..36.0).contains(&mean), "{mean} bits set on average");
        // Another run of the same node, even with the same incarnation (the
        // same sequence numbers), gets other tags: the key is its own.
        let twin = MessageIds::new(&me);
        let first = |ids: &[String]| ids[0].clone();
        assert_eq!(seq(&twin.next()), seq(&first(&seen)));
        let twin_tags: Vec<u64> = (0..1_000).map(|_| tag(&twin.next())).collect();
        let alike = twin_tags
            .iter()
            .zip(&tags[1..])
            .filter(|(a, b)| a == b)
            .count();
        assert_eq!(alike, 0);
    }
}
