//! What imported messages keep repeating, remembered: the names they carry
//! (nodes, modules) as one shared `Arc<str>` each, the topics they arrive
//! on, checked once, and the events' names (topic and source together),
//! instead of allocations and a check for every message. Both are bounded in count and in bytes: a name is at most
//! [`crate::caps::MAX_NAME`] bytes (a longer one is never remembered), a
//! topic at most [`orch_sdk::topic::MAX_TOPIC_BYTES`] (a longer one is
//! refused), [`REMEMBERED`] of each.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Entries a memory holds at most: past that it starts anew (the broker,
/// or an export pattern, may carry any number of names and topics).
pub(crate) const REMEMBERED: usize = 1_024;

/// The value remembered for `key` in `memory`, made by `make` the first
/// time (the memory bounded by [`REMEMBERED`]).
pub(crate) fn remembered<V: Clone>(
    memory: &mut HashMap<Box<str>, V>,
    key: &str,
    make: impl FnOnce() -> V,
) -> V {
    if let Some(value) = memory.get(key) {
        return value.clone();
    }
    if memory.len() >= REMEMBERED {
        memory.clear();
    }
    let value = make();
    memory.insert(key.into(), value.clone());
    value
}

/// The remembered names and topics.
#[derive(Default)]
pub struct Names {
    names: HashMap<Box<str>, Arc<str>>,
    topics: HashSet<Box<str>>,
    /// The events' names, by topic and source (see [`Names::event_names`]).
    events: HashMap<Box<str>, orch_runtime::bus::Names>,
    /// The key of the last lookup in `events` (its allocation reused).
    key: String,
}

impl Names {
    /// `name`, shared (remembered if it keeps the cap: the names take at
    /// most [`REMEMBERED`] times [`crate::caps::MAX_NAME`] bytes).
    pub fn shared(&mut self, name: &str) -> Arc<str> {
        if name.len() > crate::caps::MAX_NAME {
            return Arc::from(name);
        }
        remembered(&mut self.names, name, || Arc::from(name))
    }

    /// The names (a checked `topic` and `source`) of an imported event,
    /// shared by the events that repeat them.
    pub fn event_names(&mut self, topic: &str, source: Option<&str>) -> orch_runtime::bus::Names {
        let source_arc = source.map(|s| self.shared(s));
        let make =
            || orch_runtime::bus::EventNames::new(Arc::from(topic), source_arc.clone()).into();
        if source.is_some_and(|s| s.len() > crate::caps::MAX_NAME) {
            return make();
        }
        self.key.clear();
        self.key.push_str(topic);
        // A topic never holds a space; "no source" is told from an empty one.
        match source {
            Some(source) => {
                self.key.push(' ');
                self.key.push_str(source);
            }
            None => self.key.push('\n'),
        }
        remembered(&mut self.events, &self.key, make)
    }

    /// Whether `topic` is one a module may receive (only the topics that
    /// are get remembered: a refusal is rare and says why each time).
    pub fn check_topic(&mut self, topic: &str) -> Result<(), String> {
        if self.topics.contains(topic) {
            return Ok(());
        }
        orch_sdk::topic::validate_module_topic(topic)?;
        if self.topics.len() >= REMEMBERED {
            self.topics.clear();
        }
        self.topics.insert(topic.into());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_s_names_are_shared_by_the_events_that_repeat_them() {
        let mut names = Names::default();
        let one = names.event_names("test.ping", Some("producer"));
        let again = names.event_names("test.ping", Some("producer"));
        assert_eq!(one.get().id(), again.get().id());
        for (topic, source) in [
            ("test.ping", None),
            ("test.ping", Some("")),
            ("test.pong", Some("producer")),
        ] {
            let other = names.event_names(topic, source);
            assert_ne!(other.get().id(), one.get().id(), "{topic} {source:?}");
            assert_eq!(other.get().topic(), topic);
            assert_eq!(other.get().source(), source);
        }
        for n in 0..REMEMBERED * 2 {
            names.event_names(&format!("test.n{n}"), None);
        }
        assert!(names.events.len() <= REMEMBERED);
    }

    #[test]
    fn a_name_is_shared_and_the_memory_stays_bounded() {
        let mut names = Names::default();
        let one = names.shared("node-a");
        assert!(Arc::ptr_eq(&one, &names.shared("node-a")));
        for n in 0..REMEMBERED * 3 {
            names.shared(&format!("node-{n}"));
        }
        assert!(names.names.len() <= REMEMBERED);
        assert_eq!(&*names.shared("node-a"), "node-a");
        let long = "n".repeat(60_000);
        assert_eq!(&*names.shared(&long), long);
        assert!(names.names.keys().all(|k| k.len() <= crate::caps::MAX_NAME));
    }

    #[test]
    fn long_topics_are_refused_and_the_memory_bounded_in_bytes() {
        let mut names = Names::default();
        let long = format!("t.{}", "x".repeat(4_000));
        assert!(names.check_topic(&long).is_err());
        for n in 0..REMEMBERED * 2 {
            let topic = format!("t{n}.{}", "x".repeat(200));
            assert!(names.check_topic(&topic).is_ok());
        }
        let bytes: usize = names.topics.iter().map(|t| t.len()).sum();
        assert!(
            bytes <= REMEMBERED * orch_sdk::topic::MAX_TOPIC_BYTES,
            "{bytes}"
        );
    }

    #[test]
    fn topics_are_checked_and_only_good_ones_remembered() {
        let mut names = Names::default();
        assert!(names.check_topic("test.ping").is_ok());
        assert!(names.topics.contains("test.ping"));
        let refused = names
            .check_topic("module.failed")
            .expect_err("host namespace");
        assert!(!refused.is_empty());
        assert!(!names.topics.contains("module.failed"));
        for n in 0..REMEMBERED * 2 {
            assert!(names.check_topic(&format!("t.n{n}")).is_ok());
        }
        assert!(names.topics.len() <= REMEMBERED);
    }
}
