//! The ids of the messages imported lately, so a message the broker delivers
//! again (JetStream redelivers what was not acknowledged in time) reaches the
//! local subscribers once.

use std::collections::{HashSet, VecDeque};

/// A bounded window of recent ids: the oldest is forgotten first.
pub struct RecentIds {
    seen: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl RecentIds {
    /// A window of `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::with_capacity(capacity.min(1 << 16)),
            order: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity: capacity.max(1),
        }
    }

    /// Whether `id` is in the window.
    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    /// Remembers `id`, forgetting the oldest past the capacity.
    pub fn insert(&mut self, id: &str) {
        if !self.seen.insert(id.to_owned()) {
            return;
        }
        self.order.push_back(id.to_owned());
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }

    /// How many ids it holds.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_bounded_and_forgets_the_oldest() {
        let mut ids = RecentIds::new(3);
        for id in ["a", "b", "c", "a", "d"] {
            ids.insert(id);
        }
        assert_eq!(ids.len(), 3);
        assert!(!ids.contains("a"), "the oldest went first");
        assert!(ids.contains("b") && ids.contains("c") && ids.contains("d"));
    }
}
