//! Where a module's events come from, per sender and topic: the edges that
//! `cargo orch graph --live` draws with their counts.
//!
//! The module's thread counts each event it hands to the handler through an
//! [`EdgeTally`]: the cell of the last (sender, topic) is checked first, then
//! the cells this thread has seen, so a steady stream costs one comparison
//! and one relaxed add; the shared [`EdgeTable`]'s lock is taken only for a
//! pair never seen before. The table holds at most [`MAX_EDGES`] pairs; the
//! events of any further pair are counted as `others`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::bus::BusEvent;

/// The most (sender, topic) pairs one module's table keeps.
pub const MAX_EDGES: usize = 64;

/// Who sent events to a module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Sender {
    /// A module of this orchestrator.
    Module {
        /// Its name.
        name: String,
    },
    /// The host itself (timers, `module.*` events, `cargo orch emit`).
    Host,
    /// The NATS bridge: an event imported from orchestrator `node`.
    Bridge {
        /// The node it came from.
        node: String,
    },
}

impl Sender {
    /// Who sent `event`.
    pub fn of(event: &BusEvent) -> Self {
        match (&event.origin, event.source()) {
            (Some(node), _) => Self::Bridge {
                node: node.to_string(),
            },
            (None, Some(name)) => Self::Module {
                name: name.to_string(),
            },
            (None, None) => Self::Host,
        }
    }

    fn sent(&self, event: &BusEvent) -> bool {
        match self {
            Self::Bridge { node } => event.origin.as_deref() == Some(node.as_str()),
            Self::Module { name } => {
                event.origin.is_none() && event.source() == Some(name.as_str())
            }
            Self::Host => event.origin.is_none() && event.source().is_none(),
        }
    }
}

/// Events from one sender on one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeCount {
    /// Who sent them.
    pub from: Sender,
    /// The topic.
    pub topic: String,
    /// How many the module's handler was given.
    pub events: u64,
}

/// One (sender, topic) pair and its count.
struct Cell {
    from: Sender,
    topic: Box<str>,
    events: Arc<AtomicU64>,
}

impl Cell {
    fn holds(&self, event: &BusEvent) -> bool {
        *self.topic == *event.topic() && self.from.sent(event)
    }
}

/// One module's counts per (sender, topic), shared by its generations.
#[derive(Default)]
pub struct EdgeTable {
    cells: Mutex<Vec<Cell>>,
    /// Events of pairs past [`MAX_EDGES`].
    others: AtomicU64,
}

impl std::fmt::Debug for EdgeTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeTable")
            .field("edges", &self.snapshot().0.len())
            .finish_non_exhaustive()
    }
}

impl EdgeTable {
    /// The counter of `event`'s pair, made if new; `None` when the table is full.
    fn cell_of(&self, event: &BusEvent) -> Option<Arc<AtomicU64>> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cell) = cells.iter().find(|c| c.holds(event)) {
            return Some(Arc::clone(&cell.events));
        }
        if cells.len() >= MAX_EDGES {
            return None;
        }
        let events = Arc::new(AtomicU64::new(0));
        cells.push(Cell {
            from: Sender::of(event),
            topic: event.topic().into(),
            events: Arc::clone(&events),
        });
        Some(events)
    }

    /// Every pair's count, sorted, and the events of pairs not kept.
    pub fn snapshot(&self) -> (Vec<EdgeCount>, u64) {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts: Vec<EdgeCount> = cells
            .iter()
            .map(|c| EdgeCount {
                from: c.from.clone(),
                topic: c.topic.to_string(),
                events: c.events.load(Ordering::Relaxed),
            })
            .collect();
        drop(cells);
        counts.sort_by(|a, b| (&a.from, &a.topic).cmp(&(&b.from, &b.topic)));
        (counts, self.others.load(Ordering::Relaxed))
    }
}

/// What one module thread keeps to count into an [`EdgeTable`] cheaply.
pub struct EdgeTally {
    table: Arc<EdgeTable>,
    /// The pairs this thread has counted, with their table cells.
    seen: Vec<(Sender, Box<str>, Arc<AtomicU64>)>,
    /// The index in `seen` of the last pair counted.
    last: usize,
    /// The shared names of the last event counted (held, so their
    /// addresses stay theirs): the next event with the very same ones is
    /// the same pair, known without comparing a byte.
    hot: Option<Names>,
    /// The table said it is full: new pairs go to `others` without its lock.
    full: bool,
    /// Events of the pair `seen[last]` not yet added to its cell.
    pending: u64,
}

/// The most events of one pair a tally holds before adding them to its
/// cell (the table's readers see counts at most this far behind while
/// events flow, exact once [`EdgeTally::flush`] ran).
const FLUSH_EVERY: u64 = 16;

impl EdgeTally {
    /// A tally into `table`.
    pub fn new(table: Arc<EdgeTable>) -> Self {
        Self {
            table,
            seen: Vec::new(),
            last: 0,
            hot: None,
            full: false,
            pending: 0,
        }
    }

    /// Adds what this tally holds back to the table.
    pub fn flush(&mut self) {
        if self.pending > 0
            && let Some(entry) = self.seen.get(self.last)
        {
            entry.2.fetch_add(self.pending, Ordering::Relaxed);
        }
        self.pending = 0;
    }

    /// Counts `event` for its sender and topic.
    pub fn count(&mut self, event: &BusEvent) {
        if self.hot.as_ref().is_some_and(|hot| hot.are_those_of(event))
            && self.last < self.seen.len()
        {
            self.pending += 1;
            if self.pending >= FLUSH_EVERY {
                self.flush();
            }
            return;
        }
        self.flush();
        let kept = self.count_by_name(event);
        self.hot = kept.then(|| Names::of(event));
    }

    /// Counts `event`, finding its pair by comparing names; whether its
    /// pair is kept (it is then `seen[last]`).
    fn count_by_name(&mut self, event: &BusEvent) -> bool {
        let holds = |(from, topic, _): &(Sender, Box<str>, Arc<AtomicU64>)| {
            **topic == *event.topic() && from.sent(event)
        };
        if let Some(entry) = self.seen.get(self.last).filter(|e| holds(e)) {
            entry.2.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if let Some(index) = self.seen.iter().position(holds) {
            self.last = index;
            self.seen[index].2.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let cell = if self.full {
            None
        } else {
            self.table.cell_of(event)
        };
        match cell {
            Some(events) => {
                events.fetch_add(1, Ordering::Relaxed);
                self.seen
                    .push((Sender::of(event), event.topic().into(), events));
                self.last = self.seen.len() - 1;
                true
            }
            None => {
                self.full = true;
                self.table.others.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// The names of one event: the id of its topic and source, its origin.
struct Names {
    id: u64,
    origin: Option<Arc<str>>,
}

impl Names {
    fn of(event: &BusEvent) -> Self {
        Self {
            id: event.names_id(),
            origin: event.origin.clone(),
        }
    }

    /// Whether `event` has these very names (the same set of topic and
    /// source, the same origin).
    fn are_those_of(&self, event: &BusEvent) -> bool {
        self.id == event.names_id() && self.origin.as_deref() == event.origin.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::EventNames;

    fn from(source: Option<&str>, origin: Option<&str>, topic: &str) -> BusEvent {
        let mut event = BusEvent::new(topic, b"{}", source.map(Arc::from));
        event.origin = origin.map(Arc::from);
        event
    }

    #[test]
    fn counts_per_sender_and_topic_and_keeps_senders_apart() {
        let table = Arc::new(EdgeTable::default());
        let mut tally = EdgeTally::new(Arc::clone(&table));
        for _ in 0..3 {
            tally.count(&from(Some("producer"), None, "test.ping"));
        }
        tally.count(&from(None, None, "test.ping"));
        // The same module name on another node is the bridge, not the module.
        tally.count(&from(Some("producer"), Some("node-b"), "test.ping"));
        tally.count(&from(Some("producer"), None, "test.other"));
        tally.count(&from(Some("producer"), None, "test.ping"));
        tally.flush();
        let (counts, others) = table.snapshot();
        let module = |name: &str| Sender::Module { name: name.into() };
        let seen: Vec<(Sender, &str, u64)> = counts
            .iter()
            .map(|c| (c.from.clone(), c.topic.as_str(), c.events))
            .collect();
        assert_eq!(
            seen,
            vec![
                (module("producer"), "test.other", 1),
                (module("producer"), "test.ping", 4),
                (Sender::Host, "test.ping", 1),
                (
                    Sender::Bridge {
                        node: "node-b".into()
                    },
                    "test.ping",
                    1
                ),
            ]
        );
        assert_eq!(others, 0);
    }

    #[test]
    fn events_sharing_their_names_count_for_their_own_pair() {
        let table = Arc::new(EdgeTable::default());
        let mut tally = EdgeTally::new(Arc::clone(&table));
        let topic: Arc<str> = Arc::from("test.ping");
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let on = |source: &Arc<str>| {
            BusEvent::named(
                &EventNames::new(Arc::clone(&topic), Some(Arc::clone(source))).into(),
                b"{}",
            )
        };
        for source in [&a, &a, &b, &a, &b, &b] {
            tally.count(&on(source));
        }
        // The same names in new allocations: still the same pairs.
        tally.count(&from(Some("a"), None, "test.ping"));
        tally.flush();
        let (counts, _) = table.snapshot();
        let events: Vec<u64> = counts.iter().map(|c| c.events).collect();
        assert_eq!(events, [4, 3]);
    }

    #[test]
    fn a_run_of_one_pair_is_held_back_a_little_and_flushed_exactly() {
        let table = Arc::new(EdgeTable::default());
        let mut tally = EdgeTally::new(Arc::clone(&table));
        let names = EventNames::new(Arc::from("test.ping"), Some(Arc::from("p"))).into();
        let events = 3 * FLUSH_EVERY + 5;
        for _ in 0..events {
            tally.count(&BusEvent::named(&names, b"{}"));
        }
        let counted = |table: &EdgeTable| table.snapshot().0.first().map_or(0, |c| c.events);
        let seen = counted(&table);
        assert!(
            seen <= events && events - seen <= FLUSH_EVERY,
            "{seen} of {events} counted"
        );
        // Another pair flushes the run before it; so does an explicit flush.
        tally.count(&from(Some("q"), None, "test.ping"));
        assert_eq!(counted(&table), events);
        tally.flush();
        let (counts, _) = table.snapshot();
        assert_eq!(counts.iter().map(|c| c.events).sum::<u64>(), events + 1);
    }

    #[test]
    fn a_second_thread_shares_the_cells_and_the_table_stays_bounded() {
        let table = Arc::new(EdgeTable::default());
        let mut first = EdgeTally::new(Arc::clone(&table));
        let mut second = EdgeTally::new(Arc::clone(&table));
        first.count(&from(Some("p"), None, "t.a"));
        second.count(&from(Some("p"), None, "t.a"));
        for i in 0..MAX_EDGES + 10 {
            first.count(&from(Some("p"), None, &format!("t.n{i}")));
        }
        first.flush();
        second.flush();
        let (counts, others) = table.snapshot();
        assert_eq!(counts.len(), MAX_EDGES);
        assert_eq!(
            counts.iter().find(|c| c.topic == "t.a").map(|c| c.events),
            Some(2)
        );
        assert_eq!(others, 11, "pairs past the bound are counted, not kept");
    }
}
