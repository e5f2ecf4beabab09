//! The names an event carries (its topic and the module that published it)
//! and how events hold them. A publish route's names are interned for the
//! life of the process while few have been made: its events point at them
//! without a reference count. A shared count would be written by the
//! publisher and by the event's last reader for every event, a cache line
//! passed between their cores.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A topic and the module that publishes on it.
#[derive(Debug)]
pub struct EventNames {
    /// Unique in this process: events with the same id have these names.
    id: u64,
    topic: Arc<str>,
    source: Option<Arc<str>>,
}

/// Ids of the sets of names made, unique in this process.
static NEXT_NAMES_ID: AtomicU64 = AtomicU64::new(1);

/// Sets of names interned at most: kept for the life of the process (about
/// 130 bytes each with usual names, 360 with a 256-byte topic: 1.5 MiB at
/// the very most); a module that publishes on ever new topics gets counted
/// names past this.
const MAX_INTERNED: usize = 4_096;

/// The interned names, by topic and source.
type Interned = HashMap<(Arc<str>, Option<Arc<str>>), &'static EventNames>;

static INTERNED: Mutex<Option<Interned>> = Mutex::new(None);

impl EventNames {
    /// `topic` (valid: the caller checked it) published by `source` (`None`
    /// for the host).
    pub fn new(topic: Arc<str>, source: Option<Arc<str>>) -> Arc<Self> {
        Arc::new(Self::made(topic, source))
    }

    fn made(topic: Arc<str>, source: Option<Arc<str>>) -> Self {
        Self {
            id: NEXT_NAMES_ID.fetch_add(1, Ordering::Relaxed),
            topic,
            source,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The publishing module, `None` for the host.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The id: sets with the same id are the same set.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// How an event or a route holds its names.
#[derive(Debug, Clone)]
pub enum Names {
    /// Interned for the life of the process: no count per event.
    Interned(&'static EventNames),
    /// Shared with a reference count.
    Counted(Arc<EventNames>),
}

impl Names {
    /// The names of a route: `topic` from `source`, interned while fewer
    /// than [`MAX_INTERNED`] sets are, counted otherwise.
    pub fn for_route(topic: &str, source: Option<Arc<str>>) -> Self {
        let mut interned = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
        let interned = interned.get_or_insert_with(HashMap::new);
        let topic: Arc<str> = Arc::from(topic);
        let key = (topic, source);
        if let Some(names) = interned.get(&key) {
            return Self::Interned(names);
        }
        if interned.len() >= MAX_INTERNED {
            return Self::Counted(EventNames::new(key.0, key.1));
        }
        // Kept for the life of the process, on purpose (bounded above).
        let names: &'static EventNames = Box::leak(Box::new(EventNames::made(
            Arc::clone(&key.0),
            key.1.clone(),
        )));
        interned.insert(key, names);
        Self::Interned(names)
    }

    /// The names.
    pub fn get(&self) -> &EventNames {
        match self {
            Self::Interned(names) => names,
            Self::Counted(names) => names,
        }
    }
}

impl From<Arc<EventNames>> for Names {
    fn from(names: Arc<EventNames>) -> Self {
        Self::Counted(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_s_names_are_interned_once_and_read_back_as_given() {
        let first = Names::for_route("names.test.once", Some(Arc::from("p")));
        let again = Names::for_route("names.test.once", Some(Arc::from("p")));
        let host = Names::for_route("names.test.once", None);
        assert!(matches!(first, Names::Interned(_)));
        assert_eq!(first.get().id(), again.get().id(), "the same set");
        assert_ne!(first.get().id(), host.get().id(), "another source");
        assert_eq!(first.get().topic(), "names.test.once");
        assert_eq!(first.get().source(), Some("p"));
        assert_eq!(host.get().source(), None);
    }
}
