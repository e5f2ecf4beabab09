//! Delivering the broker's messages to local subscribers: the origin check
//! (a node never gets its own events back), a window of recent message ids
//! (a repeat is delivered once), then the local bus through
//! [`crate::delivery`] (from the runtime where the mailboxes have room, a
//! full `block` mailbox waited for on a thread of the bridge's own).
//! On JetStream a message is acknowledged only once every local mailbox took
//! it and every handler let go of it (so a crash of this node before that
//! gets it delivered again), and the window of handled ids is kept in a file
//! (so the redelivery of one handled before a crash is skipped); see
//! [`crate::durable`]; on core NATS the loop is [`crate::core_import`].
//! What is refused is told apart and reported by [`crate::refusal`].

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use orch_runtime::bus::{Bus, BusEvent};

use crate::dedup::RecentIds;
use crate::envelope::{self, Skip};
use crate::names::Names;
use crate::node::Identity;
use crate::refusal::{Permanent, Refusals};
use crate::stats::ImportStats;
use orch_runtime::pace::Pacer;

/// The most singleton modules whose highest fence an importer remembers.
pub const MAX_FENCED_MODULES: usize = 1024;

/// How often, at most, a namesake (another orchestrator with this node's
/// id) is warned about.
pub const NAMESAKE_SAID_EVERY: Duration = Duration::from_secs(10);

/// How many recent message ids are remembered, at most.
pub const RECENT_IDS: usize = 100_000;

/// How many bytes of recent message ids are remembered, at most (each id
/// with its origin and a newline, as in the window's file): 8 MiB, room for
/// the [`RECENT_IDS`] ids of this bridge's own (about 60 bytes each) and for
/// 43,000 ids at the caps. The file grows to twice this before it is
/// compacted, and at most that much of it is read at start.
pub const RECENT_ID_BYTES: usize = 8 * 1024 * 1024;

/// What one import needs.
pub struct Importer {
    /// The local bus.
    pub bus: Bus,
    /// The subject prefix.
    pub prefix: String,
    /// This node.
    pub me: Identity,
    /// Counters.
    pub stats: Arc<ImportStats>,
    /// Recent message ids (with their origins): handled, so a redelivery
    /// is skipped.
    pub recent: Arc<Mutex<RecentIds>>,
    /// Message ids (`<origin> <id>`) delivered and not yet handled: a
    /// redelivery meanwhile is not delivered again (the first one's
    /// completion acknowledges). At most `MAX_ACK_PENDING` of them.
    pub pending: Arc<Mutex<HashSet<Arc<str>>>>,
    /// The names and topics messages keep repeating.
    pub names: Mutex<Names>,
    /// Paces the warning about a namesake.
    pub namesake_said: Pacer,
    /// The highest fence seen per singleton module (at most
    /// [`MAX_FENCED_MODULES`] modules).
    pub fences_seen: Mutex<std::collections::HashMap<String, u64>>,
    /// The fences of the singletons this node runs: an imported event of
    /// one of them with a lower fence is a stale holder's.
    pub local_fences: orch_runtime::lease::Fences,
    /// Counts and reports refusals.
    pub refusals: Arc<Refusals>,
    /// Shared work: this node's own events are jobs like any other.
    pub jobs: bool,
}

/// Messages taken from the broker at once, at most.
pub(crate) const BATCH: usize = 256;

/// What the envelope and the id window say of one message.
#[allow(
    clippy::large_enum_variant,
    reason = "a return value moved once into the bus; boxing would add an allocation per message"
)]
pub(crate) enum Verdict {
    /// This node's own, or already handled here: acknowledge it now.
    Done,
    /// It never can be delivered (counted and reported): terminate it.
    Refuse,
    /// Its first delivery is still being handled: leave it.
    InHand,
    /// Deliver it.
    Deliver {
        /// The event for the local bus.
        event: BusEvent,
        /// Its origin and message id, when it has one (`track`).
        tracked: Option<Tracked>,
    },
}

/// A delivered message's place in the window of ids: `<origin> <id>`.
pub(crate) type Tracked = Arc<str>;

impl Importer {
    /// Counts a message refused for good and reports it (paced).
    fn refuse(&self, why: Permanent, subject: &str, reason: impl FnOnce() -> String) -> Verdict {
        self.refusals.permanent(why, subject, reason);
        Verdict::Refuse
    }

    /// Counts a message of a namesake and says so, at first and then at most
    /// every [`NAMESAKE_SAID_EVERY`].
    fn namesake(&self, subject: &str) {
        let seen = self.stats.namesakes.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.namesake_said.due() {
            return;
        }
        tracing::warn!(
            "[BRIDGE] another orchestrator publishes as node '{}' ({subject}; {seen} message(s) \
             so far): its events are dropped here as this node's own, and with JetStream the \
             two may share a durable consumer, each getting part of the stream; give each \
             orchestrator its own \
             `bridge.nats.node` (for example `node: ${{ORCH_NODE:-}}` with ORCH_NODE set apart)",
            self.me.name
        );
    }

    /// Reads one message (`track`: checks and marks its id, JetStream) and
    /// makes its event.
    pub(crate) fn judge(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
        track: bool,
    ) -> Verdict {
        let mut names = lock(&self.names);
        let is_topic = |topic: &str| names.check_topic(topic);
        let arrived = if self.jobs {
            envelope::job(subject, headers, &self.prefix, is_topic)
        } else {
            envelope::arrived(subject, headers, &self.prefix, &self.me, is_topic)
        };
        let arrived = match arrived {
            Ok(arrived) => arrived,
            Err(Skip::OwnEvent) => {
                self.stats.own.fetch_add(1, Ordering::Relaxed);
                return Verdict::Done;
            }
            Err(Skip::Namesake) => {
                self.namesake(subject);
                return Verdict::Done;
            }
            Err(Skip::Foreign(why)) => return self.refuse(Permanent::Topic, subject, || why),
            Err(Skip::Malformed(why)) => {
                return self.refuse(Permanent::Malformed, subject, || why);
            }
        };
        if let Some(verdict) = self.fenced(subject, headers, arrived.source) {
            return verdict;
        }
        if let Err(e) = self.bus.check_size(arrived.topic, payload) {
            return self.refuse(Permanent::TooLarge, subject, || e.to_string());
        }
        // Local subscribers may count on one JSON value (`event.data()`): a
        // module's SDK checks that when it publishes, and here it is checked
        // for what another NATS client sent.
        if !arrived.enveloped
            && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(payload)
        {
            return self.refuse(Permanent::NotJson, subject, || {
                format!(
                    "it came from outside an orchestrator (no {}) with a payload that is not \
                     JSON ({e})",
                    envelope::ENVELOPE
                )
            });
        }
        let mut tracked = None;
        if track && let Some(id) = arrived.message_id {
            // Both parts are within the caps (the envelope check): the key
            // is made once, and shared by both windows.
            let key: Arc<str> = Arc::from(format!("{} {id}", arrived.origin));
            if lock(&self.recent).contains_key(&key) {
                self.stats.repeats.fetch_add(1, Ordering::Relaxed);
                return Verdict::Done;
            }
            if !lock(&self.pending).insert(Arc::clone(&key)) {
                self.stats.repeats.fetch_add(1, Ordering::Relaxed);
                return Verdict::InHand;
            }
            tracked = Some(key);
        }
        let event = BusEvent::imported_as(
            &names.event_names(arrived.topic, arrived.source),
            payload,
            names.shared(arrived.origin),
            arrived.published_at_ms,
        );
        Verdict::Deliver { event, tracked }
    }

    /// A singleton's event with a fence lower than one already seen from
    /// that module (a holder that lost its lease): dropped and counted. A
    /// fence that is not a number is malformed.
    fn fenced(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        source: Option<&str>,
    ) -> Option<Verdict> {
        let fence = headers?.get(envelope::FENCE)?.as_str();
        let Some(source) = source else {
            return Some(self.refuse(Permanent::Malformed, subject, || {
                format!("{} without a source module", envelope::FENCE)
            }));
        };
        let Ok(fence) = crate::caps::number("the fence", fence) else {
            return Some(self.refuse(Permanent::Malformed, subject, || {
                format!("{} is not a number", envelope::FENCE)
            }));
        };
        let mut seen = lock(&self.fences_seen);
        let highest = match (seen.get(source).copied(), self.local_fences.get(source)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        match highest {
            Some(highest) if fence < highest => {
                self.stats.fenced.fetch_add(1, Ordering::Relaxed);
                return Some(Verdict::Done);
            }
            Some(_) => {}
            None if seen.len() >= MAX_FENCED_MODULES => return None,
            None => {}
        }
        seen.insert(source.to_owned(), fence);
        None
    }

    /// Once an event's handlers are done: remembers its id with its origin
    /// (so a redelivery is skipped, after a crash too) and lets go of its
    /// pending mark.
    pub(crate) fn handled(&self, tracked: Option<&Tracked>) {
        self.all_handled(tracked.into_iter());
    }

    /// [`Self::handled`] for many at once: one lock of each window, the ids
    /// written to the window's file in one `write`.
    pub(crate) fn all_handled<'t>(&self, tracked: impl Iterator<Item = &'t Tracked> + Clone) {
        if tracked.clone().next().is_none() {
            return;
        }
        lock(&self.recent).insert_keys(tracked.clone());
        let mut pending = lock(&self.pending);
        for key in tracked {
            pending.remove(key);
        }
    }

    /// Lets go of the pending mark of a refused delivery.
    pub(crate) fn refused(&self, tracked: Option<&str>) {
        if let Some(key) = tracked {
            lock(&self.pending).remove(key);
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
