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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::context::{Host, PublishSink, Publisher, TimerId};
use crate::threads::{ModuleThreads, ThreadBody};
use crate::{Config, Context, Event, Module, topic};

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

/// Records what a module asks of its host.
#[derive(Default)]
pub struct TestHost {
    /// Shared with the module's [`Publisher`]s, which may publish from threads.
    published: Arc<Recorded>,
    subscriptions: RefCell<Vec<String>>,
    timers: RefCell<Vec<RecordedTimer>>,
    next_timer: Cell<u64>,
    threads: RefCell<ModuleThreads>,
}

/// What was published, and whether publishing is allowed yet.
#[derive(Default)]
struct Recorded {
    events: Mutex<Vec<(String, serde_json::Value)>>,
    allowed: AtomicBool,
}

impl Recorded {
    fn events(&self) -> std::sync::MutexGuard<'_, Vec<(String, serde_json::Value)>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PublishSink for Recorded {
    fn publish(&self, topic: &str, payload: &[u8]) -> crate::Result<()> {
        topic::validate_module_topic(topic)?;
        if !self.allowed.load(Ordering::SeqCst) {
            return Err("publishing is not allowed before start: every module is \
                        initialized before any starts; publish from start() or later"
                .into());
        }
        let value = if payload.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(payload)?
        };
        self.events().push((topic.to_owned(), value));
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
}

impl Host for TestHost {
    fn publish(&self, topic: &str, payload: &[u8]) -> crate::Result<()> {
        self.published.publish(topic, payload)
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
    fn publisher(&self) -> Publisher {
        Publisher::new(Arc::clone(&self.published) as Arc<dyn PublishSink>)
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
        if !self.host.is_subscribed(topic) {
            return Ok(false);
        }
        let payload = serde_json::to_vec(data)?;
        self.module.on_event(
            &mut Context::new(&self.host, None),
            &Event::new(topic, &payload),
        )?;
        Ok(true)
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
