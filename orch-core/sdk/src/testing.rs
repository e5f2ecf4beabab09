//! Unit-testing a module without a host: [`ModuleHarness`] drives the real module
//! code through its lifecycle against a [`TestHost`] that records what the module
//! asked for and applies the host's rules (no publishing before `start`, delivery
//! only to subscribed topics).
//!
//! ```
//! use orch_sdk::prelude::*;
//! use orch_sdk::testing::ModuleHarness;
//!
//! #[derive(Default)]
//! struct Echo;
//! impl Module for Echo {
//!     fn initialize(&mut self, ctx: &mut Context, _: &Config) -> Result<()> {
//!         ctx.subscribe("in")
//!     }
//!     fn on_event(&mut self, ctx: &mut Context, event: &Event) -> Result<()> {
//!         ctx.publish("out", &event.json()?)
//!     }
//! }
//!
//! let mut harness = ModuleHarness::new(Echo);
//! harness.initialize(serde_json::json!({})).unwrap();
//! harness.start().unwrap();
//! harness.deliver("in", &serde_json::json!({"n": 1})).unwrap();
//! assert_eq!(harness.host().published_on("out"), vec![serde_json::json!({"n": 1})]);
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::context::{Host, PublishSink, Publisher, TimerId};
use crate::threads::{ModuleThreads, ThreadBody};
use crate::{Config, Context, Event, EventKind, Exchange, Module, RequestId, topic};

/// A timer a module set through the test host.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedTimer {
    /// Its id.
    pub id: TimerId,
    /// The topic it delivers.
    pub topic: String,
    /// Interval (or delay for a one-shot timer).
    pub interval: Duration,
    /// Whether it repeats.
    pub repeat: bool,
}

/// A request the module made through the test host.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The id the module got back.
    pub id: RequestId,
    /// The request's topic.
    pub topic: String,
    /// Its payload.
    pub data: serde_json::Value,
    /// How long the module would wait for the answer.
    pub timeout: Duration,
}

/// An answer the module gave to a request delivered with
/// [`ModuleHarness::deliver_request`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedReply {
    /// The module that asked.
    pub reply_to: String,
    /// The request answered.
    pub id: RequestId,
    /// The answer.
    pub data: serde_json::Value,
}

/// Records what a module asks of its host.
#[derive(Default)]
pub struct TestHost {
    /// Shared with the module's [`Publisher`]s, which may publish from threads.
    published: Arc<Recorded>,
    subscriptions: RefCell<Vec<String>>,
    timers: RefCell<Vec<RecordedTimer>>,
    next_timer: Cell<u64>,
    threads: RefCell<ModuleThreads>,
    handed_over: RefCell<HashMap<String, OwnedFd>>,
    metrics: Arc<TestMetrics>,
}

/// The module's metrics as a test sees them: name, kind, value.
#[derive(Default)]
struct TestMetrics(Mutex<Vec<(String, crate::MetricKind, f64)>>);

impl crate::MetricSink for TestMetrics {
    fn register(&self, kind: crate::MetricKind, name: &str, _help: &str) -> crate::Result<u64> {
        let mut metrics = lock(&self.0);
        if let Some(index) = metrics.iter().position(|(n, _, _)| n == name) {
            if metrics[index].1 != kind {
                return Err(
                    format!("metric '{name}' is already registered as another kind").into(),
                );
            }
            return Ok(index as u64);
        }
        metrics.push((name.to_owned(), kind, 0.0));
        Ok((metrics.len() - 1) as u64)
    }

    fn update(&self, id: u64, set: bool, value: f64) {
        let mut metrics = lock(&self.0);
        let Some((_, kind, current)) = usize::try_from(id).ok().and_then(|i| metrics.get_mut(i))
        else {
            return;
        };
        match (*kind, set) {
            (crate::MetricKind::Counter, false) if value >= 0.0 => *current += value,
            (crate::MetricKind::Counter, _) => {}
            (crate::MetricKind::Gauge, true) => *current = value,
            (crate::MetricKind::Gauge, false) => *current += value,
        }
    }
}

/// What was published, requested and answered, and whether publishing is
/// allowed yet.
#[derive(Default)]
struct Recorded {
    events: Mutex<Vec<(String, serde_json::Value)>>,
    requests: Mutex<Vec<RecordedRequest>>,
    replies: Mutex<Vec<RecordedReply>>,
    /// Requests delivered to the module and not answered yet.
    awaiting_reply: Mutex<HashSet<(String, RequestId)>>,
    next_request: AtomicU64,
    allowed: AtomicBool,
}

/// Locks `mutex`, whatever a panicking test thread left in it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A payload as JSON (`null` when empty).
fn json_of(payload: &[u8]) -> crate::Result<serde_json::Value> {
    if payload.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    Ok(serde_json::from_slice(payload)?)
}

impl Recorded {
    fn events(&self) -> std::sync::MutexGuard<'_, Vec<(String, serde_json::Value)>> {
        lock(&self.events)
    }

    /// The host's rules for anything a module sends: a topic of its own, and
    /// not before `start`.
    fn check_may_publish(&self, topic: &str) -> crate::Result<()> {
        topic::validate_module_topic(topic)?;
        if !self.allowed.load(Ordering::SeqCst) {
            return Err("publishing is not allowed before start: every module is \
                        initialized before any starts; publish from start() or later"
                .into());
        }
        Ok(())
    }
}

impl PublishSink for Recorded {
    fn publish(&self, topic: &str, payload: &[u8]) -> crate::Result<()> {
        self.check_may_publish(topic)?;
        let value = json_of(payload)?;
        self.events().push((topic.to_owned(), value));
        Ok(())
    }

    fn request(&self, topic: &str, payload: &[u8], timeout: Duration) -> crate::Result<RequestId> {
        self.check_may_publish(topic)?;
        if timeout.is_zero() {
            return Err("a request timeout must be greater than zero".into());
        }
        let id = RequestId(self.next_request.fetch_add(1, Ordering::SeqCst) + 1);
        lock(&self.requests).push(RecordedRequest {
            id,
            topic: topic.to_owned(),
            data: json_of(payload)?,
            timeout,
        });
        Ok(id)
    }

    fn reply(&self, reply_to: &str, id: RequestId, payload: &[u8]) -> crate::Result<()> {
        if !lock(&self.awaiting_reply).remove(&(reply_to.to_owned(), id)) {
            return Err(format!(
                "request {id} of '{reply_to}' was already answered or has timed out"
            )
            .into());
        }
        lock(&self.replies).push(RecordedReply {
            reply_to: reply_to.to_owned(),
            id,
            data: json_of(payload)?,
        });
        Ok(())
    }
}

impl TestHost {
    /// Everything published so far, as (topic, JSON payload).
    pub fn published(&self) -> Vec<(String, serde_json::Value)> {
        self.published.events().clone()
    }

    /// The payloads published on `topic`.
    pub fn published_on(&self, topic: &str) -> Vec<serde_json::Value> {
        self.published
            .events()
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Forgets what was published so far.
    pub fn clear_published(&self) {
        self.published.events().clear();
    }

    /// The module's current subscriptions.
    pub fn subscriptions(&self) -> Vec<String> {
        self.subscriptions.borrow().clone()
    }

    /// Whether an event on `topic` would be delivered to the module.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.subscriptions
            .borrow()
            .iter()
            .any(|pattern| topic::matches(pattern, topic))
    }

    /// The timers the module set and has not cancelled.
    pub fn timers(&self) -> Vec<RecordedTimer> {
        self.timers.borrow().clone()
    }

    /// The requests the module made, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.published.requests).clone()
    }

    /// The keys of the descriptors the module handed over, sorted.
    pub fn handed_over(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.handed_over.borrow().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The value of the module's metric `name` (`ctx.metrics()`), if registered.
    pub fn metric(&self, name: &str) -> Option<f64> {
        lock(&self.metrics.0)
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, value)| *value)
    }

    /// The answers the module gave, oldest first.
    pub fn replies(&self) -> Vec<RecordedReply> {
        lock(&self.published.replies).clone()
    }
}

impl Host for TestHost {
    fn publish(&self, topic: &str, payload: &[u8]) -> crate::Result<()> {
        self.published.publish(topic, payload)
    }

    fn request(&self, topic: &str, payload: &[u8], timeout: Duration) -> crate::Result<RequestId> {
        self.published.request(topic, payload, timeout)
    }

    fn reply(&self, reply_to: &str, id: RequestId, payload: &[u8]) -> crate::Result<()> {
        self.published.reply(reply_to, id, payload)
    }

    fn subscribe(&self, topic: &str) -> crate::Result<()> {
        topic::validate_pattern(topic)?;
        let mut subscriptions = self.subscriptions.borrow_mut();
        if !subscriptions.iter().any(|t| t == topic) {
            subscriptions.push(topic.to_owned());
        }
        Ok(())
    }

    fn unsubscribe(&self, topic: &str) -> crate::Result<()> {
        self.subscriptions.borrow_mut().retain(|t| t != topic);
        Ok(())
    }

    fn schedule_timer(
        &self,
        topic: &str,
        interval: Duration,
        repeat: bool,
    ) -> crate::Result<TimerId> {
        topic::validate_topic(topic)?;
        if interval.is_zero() {
            return Err("a timer interval must be greater than zero".into());
        }
        let id = TimerId(self.next_timer.get() + 1);
        self.next_timer.set(id.0);
        self.timers.borrow_mut().push(RecordedTimer {
            id,
            topic: topic.to_owned(),
            interval,
            repeat,
        });
        Ok(id)
    }

    fn cancel_timer(&self, id: TimerId) -> crate::Result<()> {
        self.timers.borrow_mut().retain(|t| t.id != id);
        Ok(())
    }
    fn hand_over_fd(&self, key: &str, fd: OwnedFd) -> crate::Result<()> {
        if key.is_empty() {
            return Err("a hand-over key must not be empty".into());
        }
        self.handed_over.borrow_mut().insert(key.to_owned(), fd);
        Ok(())
    }

    fn take_fd(&self, key: &str) -> crate::Result<Option<OwnedFd>> {
        Ok(self.handed_over.borrow_mut().remove(key))
    }

    fn publisher(&self) -> Publisher {
        Publisher::new(Arc::clone(&self.published) as Arc<dyn PublishSink>)
    }

    fn metrics(&self) -> crate::Metrics {
        crate::Metrics::new(Arc::clone(&self.metrics) as Arc<dyn crate::MetricSink>)
    }

    fn spawn(&self, name: &str, body: ThreadBody) -> crate::Result<()> {
        let publisher = self.publisher();
        self.threads.borrow_mut().spawn(name, publisher, body)
    }
}

/// Drives a module through its lifecycle in a unit test.
pub struct ModuleHarness<M: Module> {
    module: M,
    host: TestHost,
}

impl<M: Module> ModuleHarness<M> {
    /// A harness around `module`.
    pub fn new(module: M) -> Self {
        Self {
            module,
            host: TestHost::default(),
        }
    }

    /// The module under test.
    pub fn module(&self) -> &M {
        &self.module
    }
    /// The module under test, to take or change its state.
    pub fn module_mut(&mut self) -> &mut M {
        &mut self.module
    }

    /// What the module asked of the host.
    pub fn host(&self) -> &TestHost {
        &self.host
    }

    /// As a hot reload does: moves what this module handed over
    /// ([`Context::hand_over_fd`]) to `next`, the harness of its next
    /// generation.
    pub fn hand_over_to<N: Module>(&self, next: &ModuleHarness<N>) {
        let handed = std::mem::take(&mut *self.host.handed_over.borrow_mut());
        next.host.handed_over.borrow_mut().extend(handed);
    }

    /// Calls `initialize` with `config` (a JSON object).
    pub fn initialize(&mut self, config: serde_json::Value) -> crate::Result<()> {
        self.initialize_with_state(config, None)
    }

    /// Calls `initialize` as after a reload, with the previous generation's state.
    pub fn initialize_with_state(
        &mut self,
        config: serde_json::Value,
        state: Option<serde_json::Value>,
    ) -> crate::Result<()> {
        self.host.published.allowed.store(false, Ordering::SeqCst);
        let state_bytes = state.map(|s| serde_json::to_vec(&s)).transpose()?;
        let mut ctx = Context::new(&self.host, state_bytes.as_deref());
        self.module.initialize(&mut ctx, &Config::new(config))
    }

    /// Calls `start`; from now on the module may publish.
    pub fn start(&mut self) -> crate::Result<()> {
        self.host.published.allowed.store(true, Ordering::SeqCst);
        self.module.start(&mut Context::new(&self.host, None))
    }

    /// Delivers an event as the host would: only if the module subscribed to it.
    /// Returns `Ok(false)` when it was not delivered.
    pub fn deliver<T: Serialize + ?Sized>(&mut self, topic: &str, data: &T) -> crate::Result<bool> {
        self.redeliver(topic, data, 1)
    }

    /// As [`ModuleHarness::deliver`], with the event's
    /// [`Event::delivery_count`] set to `delivery_count` (as when the NATS
    /// bridge delivers a shared-work job again), to test that a handler is
    /// idempotent. Returns `Ok(false)` when it was not delivered.
    ///
    /// ```
    /// use orch_sdk::prelude::*;
    /// use orch_sdk::testing::ModuleHarness;
    ///
    /// #[derive(Default)]
    /// struct Jobs;
    /// impl Module for Jobs {
    ///     fn initialize(&mut self, ctx: &mut Context, _: &Config) -> Result<()> {
    ///         ctx.subscribe("jobs.run")
    ///     }
    ///     fn on_event(&mut self, ctx: &mut Context, event: &Event) -> Result<()> {
    ///         let attempt = event.delivery_count();
    ///         ctx.publish("jobs.attempt", &serde_json::json!({ "attempt": attempt }))
    ///     }
    /// }
    ///
    /// let mut harness = ModuleHarness::new(Jobs);
    /// harness.initialize(serde_json::json!({})).unwrap();
    /// harness.start().unwrap();
    /// harness.deliver("jobs.run", &serde_json::json!({})).unwrap();
    /// harness.redeliver("jobs.run", &serde_json::json!({}), 2).unwrap();
    /// assert_eq!(
    ///     harness.host().published_on("jobs.attempt"),
    ///     vec![serde_json::json!({"attempt": 1}), serde_json::json!({"attempt": 2})]
    /// );
    /// ```
    pub fn redeliver<T: Serialize + ?Sized>(
        &mut self,
        topic: &str,
        data: &T,
        delivery_count: u32,
    ) -> crate::Result<bool> {
        if !self.host.is_subscribed(topic) {
            return Ok(false);
        }
        let payload = serde_json::to_vec(data)?;
        self.module.on_event(
            &mut Context::new(&self.host, None),
            &Event::new(topic, &payload).with_delivery_count(delivery_count),
        )?;
        Ok(true)
    }

    /// Delivers a request of module `from` on `topic`, if the module subscribed
    /// to it; returns the request's id (for [`TestHost::replies`]), or `None`
    /// when it was not delivered.
    pub fn deliver_request<T: Serialize + ?Sized>(
        &mut self,
        topic: &str,
        data: &T,
        from: &str,
    ) -> crate::Result<Option<RequestId>> {
        if !self.host.is_subscribed(topic) {
            return Ok(None);
        }
        let id = RequestId(
            self.host
                .published
                .next_request
                .fetch_add(1, Ordering::SeqCst)
                + 1,
        );
        lock(&self.host.published.awaiting_reply).insert((from.to_owned(), id));
        let payload = serde_json::to_vec(data)?;
        let event = Event::with_envelope(topic, &payload, id.0, from, 0).with_exchange(Exchange {
            kind: EventKind::Request,
            request_id: id.0,
            reply_to: from,
        });
        self.module
            .on_event(&mut Context::new(&self.host, None), &event)?;
        Ok(Some(id))
    }

    /// Delivers module `from`'s reply to the module's own request `id`.
    pub fn deliver_reply<T: Serialize + ?Sized>(
        &mut self,
        id: RequestId,
        data: &T,
        from: &str,
    ) -> crate::Result<()> {
        let payload = serde_json::to_vec(data)?;
        self.deliver_answer(id, EventKind::Reply, &payload, from)
    }

    /// Delivers the host's notice that the module's request `id` timed out.
    pub fn deliver_timeout(&mut self, id: RequestId) -> crate::Result<()> {
        let timeout = self.request_of(id)?.timeout;
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let payload = serde_json::to_vec(&serde_json::json!({ "timeout_ms": millis }))?;
        self.deliver_answer(id, EventKind::Timeout, &payload, crate::HOST_SOURCE)
    }

    fn request_of(&self, id: RequestId) -> crate::Result<RecordedRequest> {
        self.host
            .requests()
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| format!("the module made no request {id}").into())
    }

    fn deliver_answer(
        &mut self,
        id: RequestId,
        kind: EventKind,
        payload: &[u8],
        from: &str,
    ) -> crate::Result<()> {
        let request = self.request_of(id)?;
        let event =
            Event::with_envelope(&request.topic, payload, 0, from, 0).with_exchange(Exchange {
                kind,
                request_id: id.0,
                reply_to: "",
            });
        self.module
            .on_event(&mut Context::new(&self.host, None), &event)
    }

    /// Fires the module's timer on `topic` once. Errors if no such timer is set.
    pub fn fire_timer(&mut self, topic: &str) -> crate::Result<()> {
        let Some(timer) = self.host.timers().into_iter().find(|t| t.topic == topic) else {
            return Err(format!("the module set no timer on '{topic}'").into());
        };
        if !timer.repeat {
            self.host.cancel_timer(timer.id)?;
        }
        let payload = serde_json::to_vec(&serde_json::json!({ "timer": timer.id.0 }))?;
        self.module.on_event(
            &mut Context::new(&self.host, None),
            &Event::new(topic, &payload),
        )
    }

    /// Calls `save_state`.
    pub fn save_state(&mut self) -> crate::Result<Option<serde_json::Value>> {
        self.module.save_state(&mut Context::new(&self.host, None))
    }

    /// Calls `shutdown`.
    pub fn shutdown(&mut self) -> crate::Result<()> {
        self.host.published.allowed.store(false, Ordering::SeqCst);
        let outcome = self.module.shutdown(&mut Context::new(&self.host, None));
        self.stop_threads(std::time::Duration::from_secs(5));
        outcome
    }

    /// As the host does after `shutdown`: stops the threads the module started
    /// with `ctx.spawn` and joins them within `within`; returns the names of
    /// those that did not stop.
    pub fn stop_threads(&mut self, within: std::time::Duration) -> Vec<String> {
        self.host.threads.borrow_mut().stop_all(within)
    }
}
