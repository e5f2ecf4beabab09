//! The publish/subscribe event bus.
//!
//! Subscribers are sinks (a module's mailbox, a host observer, later a process
//! bridge) registered under a [`SubscriberId`]; the bus owns every subscription, so
//! removing a subscriber removes all of its subscriptions at once. `publish` wraps
//! the payload once in an [`Arc`] and hands the same bytes to every matching sink:
//! it never runs subscriber code, so a slow, failing or panicking subscriber cannot
//! reach the publisher.

use orch_sdk::events::SystemEvent;
use orch_sdk::{EventKind, Exchange};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use crossbeam_channel::{Receiver, Sender, bounded};
use std::time::{SystemTime, UNIX_EPOCH};

use orch_sdk::topic;

/// One published event, shared by every mailbox it is delivered to. Topic and
/// payload live in one buffer: one allocation for the bytes, one for the `Arc`.
#[derive(Debug)]
pub struct BusEvent {
    /// The topic's bytes followed by the payload's.
    data: Box<[u8]>,
    topic_len: usize,
    /// The publishing module, `None` for the host.
    pub source: Option<Arc<str>>,
    /// Unique in this process, in publish order.
    pub id: u64,
    /// When it was published, in milliseconds since the Unix epoch.
    pub published_at_ms: u64,
    /// What it is in a request/reply exchange ([`EventKind::Publish`] for a
    /// plain event).
    pub kind: EventKind,
    /// The request it is or answers (0 for a plain event).
    pub request_id: u64,
    /// For a request: the module waiting for the answer.
    pub reply_to: Option<Arc<str>>,
}

/// An event as a handler receives it: its parts and the envelope the host set
/// when it was published.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The JSON payload.
    pub payload: &'a [u8],
    /// The event's id.
    pub id: u64,
    /// The publishing module; empty for the host.
    pub source: &'a str,
    /// When it was published, in milliseconds since the Unix epoch.
    pub published_at_ms: u64,
    /// Its part in a request/reply exchange.
    pub exchange: Exchange<'a>,
}

impl<'a> Delivery<'a> {
    /// An event of the host published now, with id 0 (for tests and tools).
    pub fn from_host(topic: &'a str, payload: &'a [u8]) -> Self {
        Self {
            topic,
            payload,
            id: 0,
            source: "",
            published_at_ms: now_ms(),
            exchange: Exchange::default(),
        }
    }
}

/// Ids of published events, in publish order, unique in this process.
static NEXT_EVENT_ID: AtomicU64 = AtomicU64::new(1);

/// The time now, in milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl BusEvent {
    /// An event published now, with the next id.
    pub fn new(topic: &str, payload: &[u8], source: Option<Arc<str>>) -> Self {
        let mut data = Vec::with_capacity(topic.len() + payload.len());
        data.extend_from_slice(topic.as_bytes());
        data.extend_from_slice(payload);
        Self {
            data: data.into_boxed_slice(),
            topic_len: topic.len(),
            source,
            id: NEXT_EVENT_ID.fetch_add(1, Ordering::Relaxed),
            published_at_ms: now_ms(),
            kind: EventKind::Publish,
            request_id: 0,
            reply_to: None,
        }
    }

    /// The same event as part of request `request_id`'s exchange: the request
    /// itself (with the requester as `reply_to`) or an answer to it.
    pub fn in_exchange(
        mut self,
        kind: EventKind,
        request_id: u64,
        reply_to: Option<Arc<str>>,
    ) -> Self {
        self.kind = kind;
        self.request_id = request_id;
        self.reply_to = reply_to;
        self
    }

    /// The event as a handler receives it.
    pub fn delivery(&self) -> Delivery<'_> {
        Delivery {
            topic: self.topic(),
            payload: self.payload(),
            id: self.id,
            source: self.source.as_deref().unwrap_or(""),
            published_at_ms: self.published_at_ms,
            exchange: Exchange {
                kind: self.kind,
                request_id: self.request_id,
                reply_to: self.reply_to.as_deref().unwrap_or(""),
            },
        }
    }

    /// The topic (`test.ping`).
    pub fn topic(&self) -> &str {
        // Always valid: the bytes were copied from a `&str` in `new`.
        std::str::from_utf8(&self.data[..self.topic_len]).unwrap_or_default()
    }

    /// The payload as JSON bytes.
    pub fn payload(&self) -> &[u8] {
        &self.data[self.topic_len..]
    }
}

/// How a delivery may treat a full mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Never waits: a full mailbox whose policy is `block` answers
    /// [`Delivered::WouldBlock`] (the bus then waits outside its lock).
    Now,
    /// May wait up to `timeouts.publish` for room (`block`).
    Wait,
    /// Never waits: with `block`, a full mailbox drops the event (timer ticks).
    NoWait,
    /// Always accepted: the answer to one of the module's requests (bounded
    /// by the request table, never dropped).
    Always,
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// The event waits in the mailbox.
    Accepted,
    /// A full mailbox dropped it (or an older event) as its policy says.
    Dropped,
    /// Full, and the policy is `block`: ask again with [`Admission::Wait`].
    WouldBlock,
    /// Full past `timeouts.publish`: the publish fails with this message.
    Refused(String),
    /// The sink is gone for good.
    Gone,
}

/// Somewhere events are delivered: never runs subscriber code, and never
/// waits unless asked to with [`Admission::Wait`].
pub trait EventSink: Send + Sync {
    /// Hands over one event.
    fn deliver(&self, event: &Arc<BusEvent>, admission: Admission) -> Delivered;
}

impl EventSink for crossbeam_channel::Sender<Arc<BusEvent>> {
    fn deliver(&self, event: &Arc<BusEvent>, _admission: Admission) -> Delivered {
        match self.send(Arc::clone(event)) {
            Ok(()) => Delivered::Accepted,
            Err(_) => Delivered::Gone,
        }
    }
}

/// An event a module did not get, on its way to `module.dead_letter`.
pub struct DeadLetter {
    /// The module that did not get it.
    pub module: Arc<str>,
    /// Why: an overflow policy, `circuit-open` or `stuck-handler`.
    pub reason: &'static str,
    /// The event.
    pub event: Arc<BusEvent>,
}

/// How many dropped events wait to be published as dead letters; more are
/// only counted (in `module.overflow`).
const DEAD_LETTER_QUEUE: usize = 1024;

/// What one publish came to.
#[derive(Default)]
struct DeliveryReport {
    delivered: usize,
    refused: Option<String>,
}

impl DeliveryReport {
    fn refuse(&mut self, message: String) {
        match &mut self.refused {
            Some(first) => {
                first.push_str("; ");
                first.push_str(&message);
            }
            None => self.refused = Some(message),
        }
    }
}

/// Identifies one subscriber (a module keeps its id across reloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberId(pub u64);

/// Errors of bus operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The topic or pattern is malformed.
    #[error("{0}")]
    InvalidTopic(String),
    /// The subscriber was removed.
    #[error("subscriber {0:?} is not registered (it was unloaded)")]
    UnknownSubscriber(SubscriberId),
    /// The payload is larger than `max_event_bytes`.
    #[error(
        "the payload on '{topic}' is {size} bytes, more than max_event_bytes ({limit}); \
         send large data by reference (a path, a URL) or raise max_event_bytes in config/main.yaml"
    )]
    TooLarge {
        /// The topic.
        topic: String,
        /// The payload's size.
        size: usize,
        /// The limit.
        limit: u64,
    },
    /// A full mailbox with `overflow: block` did not make room in time.
    #[error("{0}")]
    Refused(String),
}

type Target = (SubscriberId, Arc<dyn EventSink>);

#[derive(Default)]
struct Registry {
    sinks: HashMap<SubscriberId, Arc<dyn EventSink>>,
    /// Exact topics: the common case, one hash lookup per publish.
    exact: HashMap<Box<str>, Vec<Target>>,
    /// Wildcard patterns, scanned on every publish (usually few).
    patterns: Vec<(Box<str>, Target)>,
}

/// The event bus. Cheap to clone; all clones share one registry. Thread-safe.
#[derive(Clone)]
pub struct Bus {
    shared: Arc<Shared>,
}

/// A bus held weakly (by the mailboxes it holds): see [`Bus::downgrade`].
#[derive(Clone)]
pub struct WeakBus(Weak<Shared>);

impl WeakBus {
    /// The bus, while it exists.
    pub fn upgrade(&self) -> Option<Bus> {
        self.0.upgrade().map(|shared| Bus { shared })
    }
}

struct Shared {
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    max_event_bytes: AtomicU64,
    dead_letters: (Sender<DeadLetter>, Receiver<DeadLetter>),
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    /// Set while this thread publishes dead letters: no nested flush.
    static FLUSHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Bus {
    /// An empty bus, with the default `max_event_bytes`.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                registry: RwLock::default(),
                next_id: AtomicU64::new(0),
                max_event_bytes: AtomicU64::new(orch_config::DEFAULT_MAX_EVENT_BYTES),
                dead_letters: bounded(DEAD_LETTER_QUEUE),
            }),
        }
    }

    /// A weak handle, for what the bus itself holds (a mailbox's reports).
    pub fn downgrade(&self) -> WeakBus {
        WeakBus(Arc::downgrade(&self.shared))
    }

    /// Sets `max_event_bytes`: larger payloads are refused by [`Bus::publish`].
    pub fn set_max_event_bytes(&self, limit: u64) {
        self.shared.max_event_bytes.store(limit, Ordering::Relaxed);
    }

    /// Refuses a payload larger than `max_event_bytes`.
    pub fn check_size(&self, topic: &str, payload: &[u8]) -> Result<(), BusError> {
        let limit = self.shared.max_event_bytes.load(Ordering::Relaxed);
        if payload.len() as u64 > limit {
            return Err(BusError::TooLarge {
                topic: topic.to_owned(),
                size: payload.len(),
                limit,
            });
        }
        Ok(())
    }

    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-updated in
        // a way that matters (each operation is a single insert or retain).
        self.shared
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.shared
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an event a full mailbox dropped, for `module.dead_letter`
    /// (published after the current publish lets go of the registry).
    pub fn dead_letter(&self, letter: DeadLetter) {
        if letter.event.topic() != orch_sdk::events::MODULE_DEAD_LETTER {
            let _ = self.shared.dead_letters.0.try_send(letter);
        }
    }

    /// Publishes the queued dead letters, if any module subscribes to them.
    fn flush_dead_letters(&self) {
        if FLUSHING.with(std::cell::Cell::get) {
            return;
        }
        FLUSHING.with(|f| f.set(true));
        let topic = orch_sdk::events::MODULE_DEAD_LETTER;
        let wanted = self.has_subscribers(topic);
        for _ in 0..DEAD_LETTER_QUEUE {
            let Ok(letter) = self.shared.dead_letters.1.try_recv() else {
                break;
            };
            if !wanted {
                continue;
            }
            let event = &letter.event;
            // Best effort, and never waiting: dead letters may be published
            // from the timer thread.
            self.publish_system_nowait(&orch_sdk::events::ModuleDeadLetter {
                data: serde_json::from_slice(event.payload()).unwrap_or_default(),
                id: event.id,
                name: letter.module.to_string(),
                reason: letter.reason.to_owned(),
                source: event
                    .source
                    .as_deref()
                    .unwrap_or(orch_sdk::HOST_SOURCE)
                    .to_owned(),
                topic: event.topic().to_owned(),
            });
        }
        FLUSHING.with(|f| f.set(false));
    }

    /// Whether any subscriber would receive an event on `topic`.
    pub fn has_subscribers(&self, topic: &str) -> bool {
        let registry = self.read();
        registry.exact.contains_key(topic)
            || registry
                .patterns
                .iter()
                .any(|(pattern, _)| topic::matches(pattern, topic))
    }

    /// Registers a sink and returns its id; it receives nothing until it subscribes.
    pub fn register(&self, sink: Arc<dyn EventSink>) -> SubscriberId {
        let id = SubscriberId(self.shared.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        self.write().sinks.insert(id, sink);
        id
    }

    /// Replaces the sink of a registered subscriber, keeping its subscriptions.
    pub fn replace_sink(&self, id: SubscriberId, sink: Arc<dyn EventSink>) -> Result<(), BusError> {
        let mut registry = self.write();
        let slot = registry
            .sinks
            .get_mut(&id)
            .ok_or(BusError::UnknownSubscriber(id))?;
        *slot = Arc::clone(&sink);
        for targets in registry.exact.values_mut() {
            for target in targets.iter_mut().filter(|t| t.0 == id) {
                target.1 = Arc::clone(&sink);
            }
        }
        for (_, target) in registry.patterns.iter_mut().filter(|(_, t)| t.0 == id) {
            target.1 = Arc::clone(&sink);
        }
        Ok(())
    }

    /// Subscribes `id` to a topic or pattern (`*` one token, `>` the rest).
    /// Subscribing twice to the same pattern is a no-op.
    pub fn subscribe(&self, id: SubscriberId, pattern: &str) -> Result<(), BusError> {
        topic::validate_pattern(pattern).map_err(BusError::InvalidTopic)?;
        let mut registry = self.write();
        let sink = registry
            .sinks
            .get(&id)
            .cloned()
            .ok_or(BusError::UnknownSubscriber(id))?;
        if topic::is_pattern(pattern) {
            if !registry
                .patterns
                .iter()
                .any(|(p, t)| t.0 == id && **p == *pattern)
            {
                registry.patterns.push((pattern.into(), (id, sink)));
            }
        } else {
            let targets = registry.exact.entry(pattern.into()).or_default();
            if !targets.iter().any(|t| t.0 == id) {
                targets.push((id, sink));
            }
        }
        Ok(())
    }

    /// Removes one subscription of `id`. Returns whether it existed.
    pub fn unsubscribe(&self, id: SubscriberId, pattern: &str) -> bool {
        let mut registry = self.write();
        let before = registry.patterns.len();
        registry
            .patterns
            .retain(|(p, t)| !(t.0 == id && **p == *pattern));
        let mut removed = registry.patterns.len() != before;
        if let Some(targets) = registry.exact.get_mut(pattern) {
            let before = targets.len();
            targets.retain(|t| t.0 != id);
            removed |= targets.len() != before;
            if targets.is_empty() {
                registry.exact.remove(pattern);
            }
        }
        removed
    }

    /// Removes every subscription of `id` but keeps it registered.
    pub fn clear_subscriptions(&self, id: SubscriberId) {
        let mut registry = self.write();
        registry.patterns.retain(|(_, t)| t.0 != id);
        registry.exact.retain(|_, targets| {
            targets.retain(|t| t.0 != id);
            !targets.is_empty()
        });
    }

    /// Removes `id` and all of its subscriptions: nothing is delivered to it afterwards.
    pub fn remove(&self, id: SubscriberId) {
        self.clear_subscriptions(id);
        self.write().sinks.remove(&id);
    }

    /// Removes every subscriber and subscription.
    pub fn clear(&self) {
        *self.write() = Registry::default();
    }

    /// The patterns `id` is subscribed to, sorted.
    pub fn subscriptions_of(&self, id: SubscriberId) -> Vec<String> {
        let registry = self.read();
        let mut topics: Vec<String> = registry
            .exact
            .iter()
            .filter(|(_, targets)| targets.iter().any(|t| t.0 == id))
            .map(|(topic, _)| topic.to_string())
            .chain(
                registry
                    .patterns
                    .iter()
                    .filter(|(_, t)| t.0 == id)
                    .map(|(p, _)| p.to_string()),
            )
            .collect();
        topics.sort();
        topics
    }

    /// Publishes `payload` (JSON bytes) on `topic`; returns how many subscribers it
    /// was handed to. Each subscriber gets it once even if several of its patterns
    /// match. Fails for a payload over `max_event_bytes`, and when a full
    /// mailbox with `overflow: block` did not make room within
    /// `timeouts.publish` (the others got the event).
    pub fn publish(
        &self,
        topic: &str,
        payload: impl AsRef<[u8]>,
        source: Option<Arc<str>>,
    ) -> Result<usize, BusError> {
        topic::validate_topic(topic).map_err(BusError::InvalidTopic)?;
        self.check_size(topic, payload.as_ref())?;
        let event = Arc::new(BusEvent::new(topic, payload.as_ref(), source));
        let report = self.deliver(event, Admission::Now);
        match report.refused {
            Some(message) => Err(BusError::Refused(message)),
            None => Ok(report.delivered),
        }
    }

    /// Publishes a host event serialized from `data`. Host events have fixed,
    /// valid topics and serializable payloads, so this cannot fail.
    pub fn publish_json(&self, topic: &str, data: &serde_json::Value) -> usize {
        let payload = serde_json::to_vec(data).unwrap_or_default();
        self.publish_event(Arc::new(BusEvent::new(topic, &payload, None)))
    }

    /// Publishes a built-in system event on its own topic.
    pub fn publish_system<E: SystemEvent>(&self, event: &E) -> usize {
        let payload = serde_json::to_vec(event).unwrap_or_default();
        self.publish_event(Arc::new(BusEvent::new(E::TOPIC, &payload, None)))
    }

    /// Hands `event` to subscriber `id` alone, whatever it subscribed to (the
    /// answer to one of its requests, never dropped). Returns whether it was
    /// accepted.
    pub fn deliver_to(&self, id: SubscriberId, event: &Arc<BusEvent>) -> bool {
        let sink = self.read().sinks.get(&id).cloned();
        sink.is_some_and(|sink| sink.deliver(event, Admission::Always) == Delivered::Accepted)
    }

    /// Delivers an already built event to every matching subscriber; returns
    /// how many took it.
    pub fn publish_event(&self, event: Arc<BusEvent>) -> usize {
        self.deliver(event, Admission::Now).delivered
    }

    /// Publishes a built-in system event without ever waiting for a full
    /// mailbox (it is dropped there instead): for the timer thread, which
    /// every timer waits for.
    pub fn publish_system_nowait<E: SystemEvent>(&self, event: &E) -> usize {
        let payload = serde_json::to_vec(event).unwrap_or_default();
        let event = Arc::new(BusEvent::new(E::TOPIC, &payload, None));
        self.deliver(event, Admission::NoWait).delivered
    }

    /// Delivers `event` to every matching subscriber. A full `block` mailbox
    /// is waited for after the registry's lock is let go, so a slow consumer
    /// never holds up subscriptions or other publishers.
    fn deliver(&self, event: Arc<BusEvent>, admission: Admission) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        let mut waiting: Vec<Arc<dyn EventSink>> = Vec::new();
        {
            let registry = self.read();
            let mut hand_over = |sink: &Arc<dyn EventSink>| match sink.deliver(&event, admission) {
                Delivered::Accepted => report.delivered += 1,
                Delivered::WouldBlock => waiting.push(Arc::clone(sink)),
                Delivered::Refused(message) => report.refuse(message),
                Delivered::Dropped | Delivered::Gone => {}
            };
            let exact = registry.exact.get(event.topic());
            if let Some(targets) = exact {
                for (_, sink) in targets {
                    hand_over(sink);
                }
            }
            for (pattern, (id, sink)) in &registry.patterns {
                let already = exact.is_some_and(|targets| targets.iter().any(|t| t.0 == *id));
                if !already && topic::matches(pattern, event.topic()) {
                    // Two patterns of one subscriber may both match: deliver once.
                    let earlier_match = registry
                        .patterns
                        .iter()
                        .take_while(|(p, t)| !(t.0 == *id && p == pattern))
                        .any(|(p, t)| t.0 == *id && topic::matches(p, event.topic()));
                    if !earlier_match {
                        hand_over(sink);
                    }
                }
            }
        }
        for sink in waiting {
            match sink.deliver(&event, Admission::Wait) {
                Delivered::Accepted => report.delivered += 1,
                Delivered::Refused(message) => report.refuse(message),
                _ => {}
            }
        }
        if !self.shared.dead_letters.1.is_empty() {
            self.flush_dead_letters();
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{Receiver, unbounded};

    fn observer(bus: &Bus) -> (SubscriberId, Receiver<Arc<BusEvent>>) {
        let (tx, rx) = unbounded::<Arc<BusEvent>>();
        (bus.register(Arc::new(tx)), rx)
    }

    fn topics(rx: &Receiver<Arc<BusEvent>>) -> Vec<String> {
        rx.try_iter().map(|e| e.topic().to_string()).collect()
    }

    #[test]
    fn delivers_to_exact_and_pattern_subscribers_once_each() {
        let bus = Bus::new();
        let (a, rx_a) = observer(&bus);
        let (b, rx_b) = observer(&bus);
        bus.subscribe(a, "test.ping").unwrap();
        bus.subscribe(a, "test.*").unwrap();
        bus.subscribe(a, "test.>").unwrap();
        bus.subscribe(b, "test.*").unwrap();
        assert_eq!(bus.publish("test.ping", b"{}", None), Ok(2));
        assert_eq!(bus.publish("test.pong", b"{}", None), Ok(2));
        assert_eq!(bus.publish("other.ping", b"{}", None), Ok(0));
        assert_eq!(topics(&rx_a), vec!["test.ping", "test.pong"]);
        assert_eq!(topics(&rx_b), vec!["test.ping", "test.pong"]);
    }

    #[test]
    fn keeps_publish_order_per_mailbox_across_threads() {
        let bus = Bus::new();
        let (id, rx) = observer(&bus);
        bus.subscribe(id, "seq.>").unwrap();
        let publishers: Vec<_> = (0..4)
            .map(|p| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    for n in 0..500u32 {
                        let payload = serde_json::to_vec(&(p, n)).unwrap();
                        bus.publish(&format!("seq.p{p}"), payload, None).unwrap();
                    }
                })
            })
            .collect();
        for handle in publishers {
            handle.join().unwrap();
        }
        let mut last = [None::<u32>; 4];
        let mut count = 0;
        for event in rx.try_iter() {
            let (p, n): (usize, u32) = serde_json::from_slice(event.payload()).unwrap();
            assert!(
                last[p].is_none_or(|prev| prev + 1 == n),
                "publisher {p} out of order"
            );
            last[p] = Some(n);
            count += 1;
        }
        assert_eq!(count, 2000);
    }

    #[test]
    fn unsubscribe_and_remove_stop_delivery() {
        let bus = Bus::new();
        let (id, rx) = observer(&bus);
        bus.subscribe(id, "a.b").unwrap();
        bus.subscribe(id, "a.*").unwrap();
        assert!(bus.unsubscribe(id, "a.b"));
        assert!(!bus.unsubscribe(id, "a.b"), "second unsubscribe is a no-op");
        bus.publish("a.b", b"", None).unwrap();
        assert_eq!(topics(&rx), vec!["a.b"], "still matched by a.*");
        bus.remove(id);
        assert_eq!(bus.publish("a.b", b"", None), Ok(0));
        assert!(rx.try_recv().is_err(), "no delivery after removal");
        assert_eq!(
            bus.subscribe(id, "a.c"),
            Err(BusError::UnknownSubscriber(id))
        );
    }

    #[test]
    fn clear_drops_everything() {
        let bus = Bus::new();
        let (id, rx) = observer(&bus);
        bus.subscribe(id, "x").unwrap();
        bus.clear();
        assert_eq!(bus.publish("x", b"", None), Ok(0));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn rejects_bad_topics_with_a_reason() {
        let bus = Bus::new();
        let (id, _rx) = observer(&bus);
        let err = bus.publish("test.*", vec![], None).unwrap_err();
        assert!(err.to_string().contains("wildcard"), "{err}");
        let err = bus.subscribe(id, "a..b").unwrap_err();
        assert!(err.to_string().contains("empty token"), "{err}");
    }

    #[test]
    fn a_sink_that_is_gone_does_not_stop_the_others() {
        let bus = Bus::new();
        let (gone, rx_gone) = observer(&bus);
        let (alive, rx_alive) = observer(&bus);
        bus.subscribe(gone, "t").unwrap();
        bus.subscribe(alive, "t").unwrap();
        drop(rx_gone);
        assert_eq!(bus.publish("t", b"", None), Ok(1));
        assert_eq!(topics(&rx_alive), vec!["t"]);
    }

    #[test]
    fn replace_sink_keeps_subscriptions() {
        let bus = Bus::new();
        let (id, old_rx) = observer(&bus);
        bus.subscribe(id, "t").unwrap();
        bus.subscribe(id, "u.*").unwrap();
        let (tx, new_rx) = unbounded::<Arc<BusEvent>>();
        bus.replace_sink(id, Arc::new(tx)).unwrap();
        bus.publish("t", b"", None).unwrap();
        bus.publish("u.v", b"", None).unwrap();
        assert!(old_rx.try_recv().is_err());
        assert_eq!(topics(&new_rx), vec!["t", "u.v"]);
        assert_eq!(bus.subscriptions_of(id), vec!["t", "u.*"]);
    }
}
