//! The publish/subscribe event bus.
//!
//! Subscribers are sinks (a module's mailbox, a host observer, later a process
//! bridge) registered under a [`SubscriberId`]; the bus owns every subscription, so
//! removing a subscriber removes all of its subscriptions at once. `publish` wraps
//! the payload once in an [`Arc`] and hands the same bytes to every matching sink:
//! it never runs subscriber code, so a slow, failing or panicking subscriber cannot
//! reach the publisher.

use orch_sdk::events::SystemEvent;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use crossbeam_channel::{Receiver, Sender, bounded};

use orch_sdk::topic;

mod dead_letters;
mod event;
mod names;
mod offer;
mod outcome;
mod recipients;
mod route;
mod sink;
mod work;

pub use event::{BusEvent, Delivery};
pub use names::{EventNames, Names};
pub use offer::{Offered, Unsettled};
pub use outcome::BusError;
use outcome::DeliveryReport;
pub use recipients::Recipients;
pub use route::Route;
pub use sink::{Admission, DeadLetter, Delivered, EventSink, Room};

/// How many dropped events wait to be published as dead letters; more are
/// only counted (in `module.overflow`).
const DEAD_LETTER_QUEUE: usize = 1024;

/// Identifies one subscriber (a module keeps its id across reloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberId(pub u64);

type Target = (SubscriberId, Arc<dyn EventSink>);

#[derive(Default)]
struct Registry {
    sinks: HashMap<SubscriberId, Arc<dyn EventSink>>,
    /// Exact topics: the common case, one hash lookup per publish.
    exact: HashMap<Box<str>, Vec<Target>>,
    /// Wildcard patterns, scanned on every publish (usually few).
    patterns: Vec<(Box<str>, Target)>,
    /// Shared-work patterns and the sink their local publishes go to
    /// alone (see [`Bus::divert`]).
    diverted: Vec<(Box<str>, SubscriberId)>,
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
    /// Bumped under the registry's write lock at every change (see [`Route`]).
    version: AtomicU64,
    next_id: AtomicU64,
    max_event_bytes: AtomicU64,
    dead_letters: (Sender<DeadLetter>, Receiver<DeadLetter>),
    /// Scrubs the host's own events (a crash reason may quote a secret).
    scrubber: std::sync::OnceLock<crate::logging::SecretScrubber>,
    /// Told after every change of subscriptions (see [`Bus::watch_subscriptions`]).
    watchers: RwLock<Vec<Watcher>>,
}

/// Told that subscriptions changed: never waits, never calls into the bus.
type Watcher = Arc<dyn Fn() + Send + Sync>;

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

/// Scrubs every string inside `value`; the JSON stays valid whatever the
/// secrets look like (a secret of digits never touches a number).
fn scrub_strings(value: &mut serde_json::Value, scrubber: &crate::logging::SecretScrubber) {
    match value {
        serde_json::Value::String(text) => {
            if let std::borrow::Cow::Owned(scrubbed) = scrubber.scrub(text) {
                *text = scrubbed;
            }
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(|v| scrub_strings(v, scrubber));
        }
        serde_json::Value::Object(map) => {
            map.values_mut().for_each(|v| scrub_strings(v, scrubber));
        }
        _ => {}
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
                version: AtomicU64::new(0),
                next_id: AtomicU64::new(0),
                max_event_bytes: AtomicU64::new(orch_config::DEFAULT_MAX_EVENT_BYTES),
                dead_letters: bounded(DEAD_LETTER_QUEUE),
                scrubber: std::sync::OnceLock::new(),
                watchers: RwLock::default(),
            }),
        }
    }

    /// A weak handle, for what the bus itself holds (a mailbox's reports).
    pub fn downgrade(&self) -> WeakBus {
        WeakBus(Arc::downgrade(&self.shared))
    }

    /// Scrubs the configuration's secrets from the host's own events
    /// (`module.failed`, `module.crashed`, ...) from now on; set once.
    pub fn set_scrubber(&self, scrubber: crate::logging::SecretScrubber) {
        let _ = self.shared.scrubber.set(scrubber);
    }

    /// The payload of a host event: its JSON with every string scrubbed.
    fn system_payload<E: SystemEvent>(&self, event: &E) -> Vec<u8> {
        let Some(scrubber) = self.shared.scrubber.get() else {
            return serde_json::to_vec(event).unwrap_or_default();
        };
        let mut value = serde_json::to_value(event).unwrap_or_default();
        scrub_strings(&mut value, scrubber);
        serde_json::to_vec(&value).unwrap_or_default()
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

    /// The registry, to change it: every route resolved before is stale.
    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        let registry = self
            .shared
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner());
        self.shared.version.fetch_add(1, Ordering::Relaxed);
        registry
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

    /// Whether a subscriber other than `except` would receive an event on
    /// `topic` (the bridge asks whether a module of this node serves it,
    /// leaving out its own outbox).
    pub fn has_subscribers_except(&self, topic: &str, except: Option<SubscriberId>) -> bool {
        let registry = self.read();
        let other = |id: SubscriberId| Some(id) != except;
        registry
            .exact
            .get(topic)
            .is_some_and(|targets| targets.iter().any(|t| other(t.0)))
            || registry
                .patterns
                .iter()
                .any(|(pattern, t)| other(t.0) && topic::matches(pattern, topic))
    }

    /// Calls `watcher` after every change of subscriptions from now on (a
    /// subscribe, an unsubscribe, a subscriber removed), on the thread that
    /// made it, after the registry's lock is let go: it must not wait.
    pub fn watch_subscriptions(&self, watcher: Arc<dyn Fn() + Send + Sync>) {
        self.shared
            .watchers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(watcher);
    }

    /// Tells the watchers that subscriptions changed.
    fn subscriptions_changed(&self) {
        let watchers = self
            .shared
            .watchers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for watcher in watchers {
            watcher();
        }
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
        drop(registry);
        self.subscriptions_changed();
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
        drop(registry);
        if removed {
            self.subscriptions_changed();
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
        drop(registry);
        self.subscriptions_changed();
    }

    /// Removes `id` and all of its subscriptions: nothing is delivered to it afterwards.
    pub fn remove(&self, id: SubscriberId) {
        self.clear_subscriptions(id);
        let mut registry = self.write();
        registry.sinks.remove(&id);
        registry.diverted.retain(|(_, d)| *d != id);
    }

    /// Removes every subscriber and subscription.
    pub fn clear(&self) {
        *self.write() = Registry::default();
        self.subscriptions_changed();
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
        self.deliver(event, Admission::Now, None).into_result()
    }

    /// Delivers an event another orchestrator published (see
    /// [`BusEvent::imported`]), waiting for full `block` mailboxes like a
    /// module's publish; an error when one refused it (its topic and size
    /// are checked too).
    /// [`Bus::offer_imported`], then waiting for what it left unsettled.
    pub fn publish_imported(&self, event: Arc<BusEvent>) -> Result<usize, BusError> {
        match self.offer_imported(event)? {
            Offered::Settled(published) => published,
            Offered::Unsettled(unsettled) => unsettled.settle(self),
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
        let payload = self.system_payload(event);
        self.publish_event(Arc::new(BusEvent::new(E::TOPIC, &payload, None)))
    }

    /// Hands `event` to subscriber `id` alone, whatever it subscribed to (the
    /// answer to one of its requests: [`Admission::Always`], never dropped; a
    /// notice that its request was refused: [`Admission::NoWait`]). Returns
    /// whether it was accepted.
    pub fn deliver_to(
        &self,
        id: SubscriberId,
        event: &Arc<BusEvent>,
        admission: Admission,
    ) -> bool {
        let sink = self.read().sinks.get(&id).cloned();
        sink.is_some_and(|sink| sink.deliver(event, admission) == Delivered::Accepted)
    }

    /// Delivers an already built event to every matching subscriber; returns
    /// how many took it.
    pub fn publish_event(&self, event: Arc<BusEvent>) -> usize {
        self.deliver(event, Admission::Now, None).delivered
    }

    /// Delivers a request like [`Bus::publish_event`], noting in `recipients`
    /// each subscriber that took it (the only modules that may answer it);
    /// returns how many did.
    pub fn publish_request(&self, event: Arc<BusEvent>, recipients: &Recipients) -> usize {
        self.deliver(event, Admission::Now, Some(recipients))
            .delivered
    }

    /// Publishes a built-in system event without ever waiting for a full
    /// mailbox (it is dropped there instead): for the timer thread, which
    /// every timer waits for.
    pub fn publish_system_nowait<E: SystemEvent>(&self, event: &E) -> usize {
        let payload = self.system_payload(event);
        let event = Arc::new(BusEvent::new(E::TOPIC, &payload, None));
        self.deliver(event, Admission::NoWait, None).delivered
    }

    /// Delivers `event` to every matching subscriber. A full `block` mailbox
    /// is waited for after the registry's lock is let go, so a slow consumer
    /// never holds up subscriptions or other publishers. Each subscriber is
    /// noted in `recipients` (if given) before its mailbox gets the event,
    /// and forgotten again if it did not take it.
    fn deliver(
        &self,
        event: Arc<BusEvent>,
        admission: Admission,
        recipients: Option<&Recipients>,
    ) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        let registry = self.read();
        if let Some((id, sink)) = Self::diverted_to(&registry, &event) {
            drop(registry);
            match sink.deliver(&event, Admission::Wait) {
                Delivered::Accepted => report.delivered += 1,
                Delivered::Refused(message) => report.refuse(message),
                _ => tracing::debug!("shared work on '{}' not taken by {id:?}", event.topic()),
            }
            return report;
        }
        let targets = Self::matching(&registry, event.topic());
        let waiting = Self::offer(targets, &event, admission, recipients, &mut report);
        drop(registry);
        self.settle(waiting, &event, recipients, &mut report);
        report
    }

    /// The subscribers of `topic` in `registry`, in delivery order: the
    /// exact ones, then those of matching patterns, each subscriber once
    /// (two of its patterns may match).
    fn matching<'r>(registry: &'r Registry, topic: &'r str) -> impl Iterator<Item = &'r Target> {
        let exact = registry.exact.get(topic);
        let patterns = &registry.patterns;
        let by_pattern = patterns
            .iter()
            .enumerate()
            .filter(move |(index, (pattern, (id, _)))| {
                let already = exact.is_some_and(|targets| targets.iter().any(|t| t.0 == *id));
                !already
                    && topic::matches(pattern, topic)
                    && !patterns[..*index]
                        .iter()
                        .any(|(p, t)| t.0 == *id && topic::matches(p, topic))
            })
            .map(|(_, (_, target))| target);
        exact.into_iter().flatten().chain(by_pattern)
    }

    /// Offers `event` to each of `targets` (under the registry's read lock)
    /// without waiting; returns the full `block` mailboxes to wait for. Each
    /// subscriber is noted in `recipients` (if given) before its mailbox
    /// gets the event, and forgotten again if it did not take it.
    fn offer<'t>(
        targets: impl Iterator<Item = &'t Target>,
        event: &Arc<BusEvent>,
        admission: Admission,
        recipients: Option<&Recipients>,
        report: &mut DeliveryReport,
    ) -> Vec<Target> {
        let mut waiting = Vec::new();
        for (id, sink) in targets {
            if let Some(recipients) = recipients {
                recipients.note(*id);
            }
            match sink.deliver(event, admission) {
                Delivered::Accepted => report.delivered += 1,
                Delivered::WouldBlock => waiting.push((*id, Arc::clone(sink))),
                other => {
                    if let Some(recipients) = recipients {
                        recipients.forget(*id);
                    }
                    if let Delivered::Refused(message) = other {
                        report.refuse(message);
                    }
                }
            }
        }
        waiting
    }

    /// Waits for the full `block` mailboxes of `waiting` (after the
    /// registry's lock is let go, so a slow consumer never holds up
    /// subscriptions or other publishers), then publishes the dead letters
    /// that piled up.
    fn settle(
        &self,
        waiting: Vec<Target>,
        event: &Arc<BusEvent>,
        recipients: Option<&Recipients>,
        report: &mut DeliveryReport,
    ) {
        for (id, sink) in waiting {
            let delivered = sink.deliver(event, Admission::Wait);
            if delivered == Delivered::Accepted {
                report.delivered += 1;
                continue;
            }
            if let Some(recipients) = recipients {
                recipients.forget(id);
            }
            if let Delivered::Refused(message) = delivered {
                report.refuse(message);
            }
        }
        self.flush_dead_letters_if_any();
    }

    /// Publishes the dead letters that piled up, if any.
    fn flush_dead_letters_if_any(&self) {
        if !self.shared.dead_letters.1.is_empty() {
            self.flush_dead_letters();
        }
    }
}

#[cfg(test)]
mod tests;
