//! Shared work on the bus: topics whose local publishes go to one sink
//! alone (the NATS bridge's outbox, which hands them to the cluster's work
//! queue) instead of this node's subscribers, and how much room those
//! subscribers have for jobs the bridge takes from the queue.

use orch_sdk::topic;

use super::{Bus, BusError, BusEvent, Room, SubscriberId};

impl Bus {
    /// From now on, an event this node publishes on a topic matching
    /// `pattern` goes to `id` alone: not to the local subscribers (they get
    /// it, or not, when the work queue hands it back as an imported event,
    /// which is never diverted). Requests, replies and imported events pass
    /// as usual. Diversions end with [`Bus::remove`] of `id`.
    pub fn divert(&self, id: SubscriberId, pattern: &str) -> Result<(), BusError> {
        topic::validate_pattern(pattern).map_err(BusError::InvalidTopic)?;
        let mut registry = self.write();
        if !registry.sinks.contains_key(&id) {
            return Err(BusError::UnknownSubscriber(id));
        }
        if !registry
            .diverted
            .iter()
            .any(|(p, d)| *d == id && **p == *pattern)
        {
            registry.diverted.push((pattern.into(), id));
        }
        Ok(())
    }

    /// The least room (free slots, and capacity) among the sinks that
    /// handle events (see [`super::EventSink::room`]) subscribed to anything
    /// `pattern` may match; `None` when none is subscribed (this node takes
    /// no jobs).
    pub fn room_for(&self, pattern: &str) -> Option<Room> {
        let registry = self.read();
        let exact = registry
            .exact
            .iter()
            .filter(|(t, _)| topic::matches(pattern, t))
            .flat_map(|(_, targets)| targets.iter());
        let patterns = registry
            .patterns
            .iter()
            .filter(|(p, _)| overlaps(p, pattern))
            .map(|(_, target)| target);
        exact
            .chain(patterns)
            .filter_map(|(_, sink)| sink.room())
            .reduce(|a, b| Room {
                free: a.free.min(b.free),
                capacity: a.capacity.min(b.capacity),
            })
    }

    /// The sink a local publish of `event` is diverted to, if any.
    pub(super) fn diverted_to(
        registry: &super::Registry,
        event: &BusEvent,
    ) -> Option<super::Target> {
        if registry.diverted.is_empty()
            || event.origin.is_some()
            || event.kind != orch_sdk::EventKind::Publish
        {
            return None;
        }
        let (_, id) = registry
            .diverted
            .iter()
            .find(|(p, _)| topic::matches(p, event.topic()))?;
        registry
            .sinks
            .get(id)
            .map(|sink| (*id, std::sync::Arc::clone(sink)))
    }
}

/// Whether two topic patterns (`*` one token, `>` the rest) match some topic
/// in common.
pub(super) fn overlaps(a: &str, b: &str) -> bool {
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (Some(">"), _) | (_, Some(">")) => return true,
            (None, None) => return true,
            (Some(x), Some(y)) if x == y || x == "*" || y == "*" => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crossbeam_channel::unbounded;

    use super::*;
    use crate::bus::{Admission, Delivered, EventSink};

    #[test]
    fn patterns_overlap_when_some_topic_matches_both() {
        for (a, b) in [
            ("jobs.a", "jobs.a"),
            ("jobs.*", "jobs.a"),
            ("jobs.>", "jobs.a.b"),
            ("*.a", "jobs.*"),
            (">", "x"),
        ] {
            assert!(overlaps(a, b) && overlaps(b, a), "{a} {b}");
        }
        for (a, b) in [("jobs.a", "jobs.b"), ("jobs.*", "jobs.a.b"), ("a", "a.b")] {
            assert!(!overlaps(a, b) && !overlaps(b, a), "{a} {b}");
        }
    }

    /// A handling sink with a fixed room that counts what it gets.
    struct Worker(Room, crossbeam_channel::Sender<Arc<BusEvent>>);

    impl EventSink for Worker {
        fn deliver(&self, event: &Arc<BusEvent>, admission: Admission) -> Delivered {
            self.1.deliver(event, admission)
        }
        fn room(&self) -> Option<Room> {
            Some(self.0)
        }
    }

    #[test]
    fn a_diverted_publish_reaches_the_diverter_alone_and_imports_pass() {
        let bus = Bus::new();
        let (worker_tx, worker_rx) = unbounded();
        let (outbox_tx, outbox_rx) = unbounded();
        let room = Room {
            free: 7,
            capacity: 9,
        };
        let worker = bus.register(Arc::new(Worker(room, worker_tx)));
        let outbox = bus.register(Arc::new(outbox_tx));
        bus.subscribe(worker, "jobs.>").expect("subscribe");
        bus.subscribe(outbox, "jobs.>").expect("subscribe");
        assert_eq!(bus.room_for("jobs.resize"), Some(room));
        assert_eq!(bus.room_for("mail.send"), None, "nobody handles it");
        bus.divert(outbox, "jobs.>").expect("divert");
        bus.publish("jobs.resize", b"1", None).expect("publish");
        assert_eq!(outbox_rx.try_iter().count(), 1);
        assert_eq!(worker_rx.try_iter().count(), 0, "not handled locally");
        let imported = BusEvent::imported("jobs.resize", b"1", None, "n2".into(), None);
        bus.publish_imported(Arc::new(imported)).expect("import");
        assert_eq!(worker_rx.try_iter().count(), 1, "a job from the queue");
        bus.publish("other.topic", b"1", None).expect("publish");
        bus.remove(outbox);
        bus.publish("jobs.resize", b"1", None).expect("publish");
        assert_eq!(worker_rx.try_iter().count(), 1, "diversion ends with it");
    }
}
