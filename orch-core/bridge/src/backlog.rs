//! What a core NATS import holds for the local bus, bounded in bytes: the
//! messages the client read and the import has not judged yet, and the
//! events it judged and has not delivered yet. The client keeps up to
//! 65,536 messages per subscription whatever their size (gigabytes of a
//! peer's 1 MiB messages), so the import never leaves them there: it moves
//! all the client read into its own queues at every turn, also while a full
//! `block` mailbox holds its delivery up, and drops what would pass their
//! bounds, counted and said now and then. Core NATS is at most once: a
//! node that falls behind drops, as the server does with a client that
//! falls behind it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use orch_runtime::pace::Pacer;

use crate::stats::ImportStats;

/// Bytes of messages one core import holds unjudged, at most.
pub const UNREAD_BYTES: usize = 64 * 1024 * 1024;

/// Bytes of judged events one core import holds for the local bus, at most.
pub const BACKLOG_BYTES: usize = 32 * 1024 * 1024;

/// Payloads this large or larger are kept as copies of their own (see
/// [`detached`]).
const OWN_COPY_FROM: usize = 16 * 1024;

/// `payload`, a slice of the client's read buffer, as one the node may
/// keep for long: a large one copied out (the slice would keep the whole
/// buffer alive, with the start of the next messages), a small one as it
/// is (a copy would cost more than it frees).
pub(crate) fn detached(payload: bytes::Bytes) -> bytes::Bytes {
    if payload.len() >= OWN_COPY_FROM {
        bytes::Bytes::copy_from_slice(&payload)
    } else {
        payload
    }
}

/// Drops are said at most this often.
const DROPS_SAID_EVERY: Duration = Duration::from_secs(5);

/// Items in order, at most `limit` bytes of them by the cost each is given.
pub(crate) struct Bounded<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    limit: usize,
    drops: Drops,
}

impl<T> Bounded<T> {
    /// An empty queue of at most `limit` bytes of `what` (as its drops are
    /// said), counting its drops in `stats`.
    pub(crate) fn new(limit: usize, what: &'static str, stats: Arc<ImportStats>) -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            limit,
            drops: Drops {
                what,
                stats,
                said: Pacer::new(DROPS_SAID_EVERY),
            },
        }
    }

    /// Whether an item of `cost` bytes fits. One larger than the bound fits
    /// when nothing else is held: the client took it, the bus's own size
    /// check has the last word.
    pub(crate) fn has_room(&self, cost: usize) -> bool {
        self.items.is_empty() || self.bytes.saturating_add(cost) <= self.limit
    }

    /// Keeps `item` of `cost` bytes at the end, or drops it (counted, said
    /// now and then) when it does not fit.
    pub(crate) fn push(&mut self, item: T, cost: usize) {
        if !self.has_room(cost) {
            self.drops.one(self.limit);
            return;
        }
        self.bytes += cost;
        self.items.push_back((item, cost));
    }

    /// The oldest item held.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let (item, cost) = self.items.pop_front()?;
        self.bytes -= cost;
        Some(item)
    }

    /// The oldest item's cost.
    pub(crate) fn front_cost(&self) -> Option<usize> {
        self.items.front().map(|(_, cost)| *cost)
    }

    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The bytes held, by the costs given.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Counts and says what the queues drop.
struct Drops {
    what: &'static str,
    stats: Arc<ImportStats>,
    said: Pacer,
}

impl Drops {
    fn one(&self, limit: usize) {
        let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // The pacer (a lock and a clock read) is asked once per 1,024
        // drops, and at the first.
        if (dropped == 1 || dropped.is_multiple_of(1_024)) && self.said.due() {
            tracing::warn!(
                "[BRIDGE] this node's import fell behind the broker: {dropped} message(s) \
                 dropped so far past the {} MiB of {} it holds for the local bus (core NATS \
                 is at most once; use JetStream where nothing may be lost, or give slow \
                 subscribers a larger mailbox or `overflow: drop-oldest`)",
                limit >> 20,
                self.what
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounded(limit: usize) -> (Bounded<u32>, Arc<ImportStats>) {
        let stats = Arc::new(ImportStats::default());
        (Bounded::new(limit, "items", Arc::clone(&stats)), stats)
    }

    #[test]
    fn holds_in_order_within_its_bound_and_counts_what_it_drops() {
        let (mut queue, stats) = bounded(3_000);
        for n in 0..5 {
            queue.push(n, 1_000);
        }
        assert_eq!(queue.bytes(), 3_000);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(queue.front_cost(), Some(1_000));
        let kept: Vec<u32> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(kept, [0, 1, 2]);
        assert_eq!(queue.bytes(), 0);
        assert!(queue.is_empty());
        // Room again once it was taken out.
        assert!(queue.has_room(3_000));
        queue.push(9, 1_000);
        assert_eq!(queue.bytes(), 1_000);
    }

    #[test]
    fn an_item_over_the_bound_goes_on_alone() {
        let (mut queue, stats) = bounded(4_096);
        queue.push(0, 10_000);
        queue.push(1, 10);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(queue.pop(), Some(0));
        assert!(queue.pop().is_none());
    }
}
