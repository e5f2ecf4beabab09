//! What the host does for one module: [`ModuleHostCtx`] serves its publishes,
//! requests, subscriptions, timers, hand-overs and logs, checked against its
//! rights; `table.rs` is the C ABI the module reaches it through.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orch_config::{Contract, ModuleLimits};

use crate::bus::{Bus, EventSink, SubscriberId};
use crate::rate_limit::RateLimiter;
use crate::requests::{Requester, Requests};
use crate::timers::TimerService;

/// The host's services that every module's context uses: the bus, the
/// timers and the table of pending requests. Cheap to clone.
#[derive(Clone)]
pub struct HostServices {
    /// The event bus.
    pub bus: Bus,
    /// The host-owned timers.
    pub timers: TimerService,
    /// Requests waiting for their answer.
    pub requests: Requests,
}

impl HostServices {
    /// Services over `bus` and `timers`, with a request table of their own.
    pub fn new(bus: Bus, timers: TimerService) -> Self {
        let requests = Requests::new(bus.clone(), timers.clone());
        Self {
            bus,
            timers,
            requests,
        }
    }
}

/// What the host knows of one module while it runs: its name, its subscriber id
/// on the bus, its own mailbox (for timer events) and whether it may publish yet.
/// Shared by all generations of the module.
pub struct ModuleHostCtx {
    /// The module's name in `config/modules.yaml`.
    pub name: Arc<str>,
    /// Its subscriber id (stable across reloads).
    pub id: SubscriberId,
    bus: Bus,
    timers: TimerService,
    requests: Requests,
    mailbox: Arc<dyn EventSink>,
    /// The id the module's next request gets (never reused while the
    /// module's context lives: see [`ModuleHostCtx::set_request_id_base`]).
    next_request_id: AtomicU64,
    may_publish: AtomicBool,
    active_generation: AtomicU32,
    /// `timeouts.shutdown`, told to each generation (it joins its threads within).
    shutdown_timeout_ms: AtomicU64,
    /// What `modules.yaml` lets it publish and subscribe to.
    contract: std::sync::RwLock<Contract>,
    /// Bumped at every change of the contract (its checked routes are stale).
    contract_version: AtomicU64,
    /// The topics it publishes on, checked and resolved once (see `routes.rs`).
    routes: std::sync::Mutex<routes::Routes>,
    uplink: OnceLock<Arc<dyn Uplink>>,
    swap: std::sync::Mutex<Option<Swap>>,
    /// Descriptors a generation handed over to the next (`ctx.hand_over_fd`).
    handed_over: std::sync::Mutex<HashMap<String, OwnedFd>>,
    /// Its log lines per second (all generations, its child host's too).
    log_limit: std::sync::Mutex<RateLimiter>,
    /// Its traffic counters on the status board (set once, right after creation).
    counters: OnceLock<Arc<crate::status::ModuleCounters>>,
    /// What `limits:` lets it take.
    limits: std::sync::RwLock<ModuleLimits>,
}

/// Where the publishes and subscriptions of a module go when it runs in a child
/// host process: to the orchestrator, which owns every subscription.
pub trait Uplink: Send + Sync {
    /// Forwards a publish (the topic is valid).
    fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), String>;
    /// Forwards a subscription (the pattern is valid).
    fn subscribe(&self, pattern: &str) -> Result<(), String>;
    /// Forwards an unsubscription.
    fn unsubscribe(&self, pattern: &str);
    /// Forwards request `id` (the topic is valid).
    fn request(
        &self,
        id: u64,
        topic: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(), String>;
    /// Forwards the answer to request `id` of module `reply_to`.
    fn reply(&self, reply_to: &str, id: u64, payload: &[u8]) -> Result<(), String>;
}

impl ModuleHostCtx {
    /// The context of module `name`, registered on the services' bus as `id`
    /// with `mailbox`.
    pub fn new(
        name: Arc<str>,
        id: SubscriberId,
        services: HostServices,
        mailbox: Arc<dyn EventSink>,
    ) -> Self {
        let HostServices {
            bus,
            timers,
            requests,
        } = services;
        Self {
            name,
            id,
            bus,
            timers,
            requests,
            mailbox,
            next_request_id: AtomicU64::new(0),
            may_publish: AtomicBool::new(false),
            active_generation: AtomicU32::new(1),
            shutdown_timeout_ms: AtomicU64::new(5_000),
            contract: std::sync::RwLock::default(),
            contract_version: AtomicU64::new(0),
            routes: std::sync::Mutex::default(),
            uplink: OnceLock::new(),
            swap: std::sync::Mutex::new(None),
            handed_over: std::sync::Mutex::default(),
            log_limit: std::sync::Mutex::new(RateLimiter::new(ModuleLimits::default().log_rate)),
            limits: std::sync::RwLock::default(),
            counters: OnceLock::new(),
        }
    }

    /// Counts this module's traffic into `counters` (the status board's).
    pub fn set_counters(&self, counters: Arc<crate::status::ModuleCounters>) {
        counters.set_subscriber(self.id);
        let _ = self.counters.set(counters);
    }

    /// Its counters on the status board, once set.
    pub fn counters(&self) -> Option<Arc<crate::status::ModuleCounters>> {
        self.counters.get().cloned()
    }

    /// Registers (or finds) the module's own metric `name`; its id.
    pub fn register_metric(
        &self,
        kind: crate::status::MetricKind,
        name: &str,
        help: &str,
    ) -> Result<u64, String> {
        let counters = self
            .counters
            .get()
            .ok_or_else(|| format!("module '{}' has no metrics registry", self.name))?;
        counters
            .custom()
            .register(kind, name, help)
            .map_err(|e| format!("module '{}': {e}", self.name))
    }

    /// Adds to (or sets) the module's metric `id`.
    pub fn update_metric(&self, id: u64, set: bool, value: f64) {
        if let Some(counters) = self.counters.get() {
            counters.custom().update(id, set, value);
        }
    }

    /// Counts one event the module published.
    pub fn count_published(&self) {
        if let Some(counters) = self.counters.get() {
            counters.event_out();
        }
    }

    /// Records the pid of the module's child host (0: none).
    pub fn set_child_pid(&self, pid: u32) {
        if let Some(counters) = self.counters.get() {
            counters.set_pid(pid);
        }
    }

    /// The module's `limits:` (enforced from now on).
    pub fn set_limits(&self, limits: ModuleLimits) {
        self.log_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_rate(limits.log_rate);
        *self.limits.write().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    /// The module's `limits:`.
    pub fn limits(&self) -> ModuleLimits {
        *self.limits.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a new subscription past `limits.subscriptions`.
    fn check_subscription_count(&self, pattern: &str) -> Result<(), String> {
        let max = self.limits().subscriptions as usize;
        let held = match self.swap_state().as_ref() {
            Some(swap) => swap.renewed.len(),
            None => self.bus.subscriptions_of(self.id).len(),
        };
        if held >= max
            && !self
                .bus
                .subscriptions_of(self.id)
                .iter()
                .any(|p| p == pattern)
        {
            return Err(format!(
                "module '{}' holds {held} subscriptions, its limit: `limits.subscriptions: {max}` \
                 in modules.yaml; unsubscribe from some, use a pattern (`sensor.*`) for many \
                 topics, or raise the limit",
                self.name
            ));
        }
        Ok(())
    }

    /// Sends the module's publishes and subscriptions through `uplink` instead of
    /// the local bus (a child module host). Set once.
    pub fn set_uplink(&self, uplink: Arc<dyn Uplink>) {
        let _ = self.uplink.set(uplink);
    }

    /// Makes the module's request ids start above `base`. A child host, which
    /// lives for one generation, sets `generation << 40`, so the ids of its
    /// requests never repeat those of an earlier child of the same module
    /// whose requests may still be pending in the orchestrator.
    pub fn set_request_id_base(&self, base: u64) {
        self.next_request_id.store(base, Ordering::Release);
    }

    /// The id for the module's next request.
    fn next_request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Makes `generation` the one whose calls the host serves; calls from any
    /// other generation (an abandoned one that came back to life) are refused.
    pub fn set_active_generation(&self, generation: u32) {
        self.active_generation.store(generation, Ordering::Release);
    }

    /// The module's `timeouts.shutdown` (default 5 s): the generations loaded
    /// afterwards stop their threads within it.
    pub fn set_shutdown_timeout(&self, timeout: Duration) {
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.shutdown_timeout_ms.store(millis, Ordering::Release);
    }

    /// The topics the module declared in `modules.yaml` (enforced from now on).
    pub fn set_contract(&self, contract: Contract) {
        *self.contract.write().unwrap_or_else(|e| e.into_inner()) = contract;
        self.contract_version.fetch_add(1, Ordering::AcqRel);
    }

    /// The topics the module declared.
    pub fn contract(&self) -> Contract {
        self.contract
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Refuses a publish on `topic` that the module's contract does not list.
    pub fn check_publish(&self, topic: &str) -> Result<(), String> {
        let contract = self.contract.read().unwrap_or_else(|e| e.into_inner());
        match &contract.publishes {
            Some(allowed) if !allowed.iter().any(|p| orch_sdk::topic::matches(p, topic)) => {
                Err(format!(
                    "module '{}' may not publish '{topic}': its `publishes` in modules.yaml \
                     ({}) does not list it; add the topic or a pattern there",
                    self.name,
                    allowed.join(", ")
                ))
            }
            _ => Ok(()),
        }
    }

    /// Refuses a subscription to `pattern` that the module's contract does not cover.
    pub fn check_subscribe(&self, pattern: &str) -> Result<(), String> {
        let contract = self.contract.read().unwrap_or_else(|e| e.into_inner());
        match &contract.subscribes {
            Some(allowed) if !allowed.iter().any(|p| orch_sdk::topic::covers(p, pattern)) => {
                Err(format!(
                    "module '{}' may not subscribe to '{pattern}': its `subscribes` in \
                     modules.yaml ({}) does not cover it; add the topic or a pattern there",
                    self.name,
                    allowed.join(", ")
                ))
            }
            _ => Ok(()),
        }
    }

    /// The generation whose calls the host serves.
    pub fn active_generation(&self) -> u32 {
        self.active_generation.load(Ordering::Acquire)
    }

    /// Allows or refuses publishing: refused until every module is initialized.
    pub fn set_may_publish(&self, allowed: bool) {
        self.may_publish.store(allowed, Ordering::Release);
    }

    /// Removes every subscription and timer of the module.
    pub fn drop_subscriptions_and_timers(&self) -> (usize, usize) {
        let subscriptions = self.bus.subscriptions_of(self.id).len();
        self.bus.clear_subscriptions(self.id);
        let timers = self.timers.cancel_owner(self.id);
        (subscriptions, timers)
    }

    /// Publishes for `generation` (which was active when the call began).
    fn publish(&self, generation: u32, topic: &str, payload: &[u8]) -> Result<(), String> {
        if let Some(uplink) = self.uplink.get() {
            self.check_may_send(generation, topic)?;
            return uplink.publish(topic, payload);
        }
        self.publish_as_of(generation, true, topic, payload)
    }

    /// Publishes for `generation` on the bus, under the rule of
    /// [`Self::check_may_send_as`], through the module's remembered route
    /// of `topic` when it has one.
    fn publish_as_of(
        &self,
        generation: u32,
        started: bool,
        topic: &str,
        payload: &[u8],
    ) -> Result<(), String> {
        // Another thread of the module publishing at the same time takes
        // the full path: the routes are never waited for.
        let mut routes = match self.routes.try_lock() {
            Ok(routes) => routes,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                self.check_may_send_as(generation, topic, started)?;
                return self
                    .bus
                    .publish(topic, payload, Some(Arc::clone(&self.name)))
                    .map(|_| self.count_published())
                    .map_err(|e| e.to_string());
            }
        };
        let contract_version = self.contract_version.load(Ordering::Acquire);
        let index = match routes.find(topic, contract_version) {
            Some(index) => {
                self.check_may_send_now(generation, topic, started)?;
                index
            }
            None => {
                self.check_may_send_as(generation, topic, started)?;
                let source = Some(Arc::clone(&self.name));
                let route = self.bus.route(topic, source).map_err(|e| e.to_string())?;
                routes.insert(route)
            }
        };
        let route = routes
            .get_mut(index)
            .ok_or_else(|| format!("module '{}': its route of '{topic}' is gone", self.name))?;
        self.bus
            .publish_on(route, payload)
            .map(|_| self.count_published())
            .map_err(|e| e.to_string())
    }

    /// Publishes for `generation` as its host table would: the scripted fake
    /// generations of the crate's tests reach the host through this.
    #[cfg(test)]
    pub(crate) fn publish_as(
        &self,
        generation: u32,
        topic: &str,
        payload: &[u8],
    ) -> Result<(), String> {
        self.publish(generation, topic, payload)
    }

    /// Publishes a request of `generation`; returns its id.
    fn request(
        &self,
        generation: u32,
        topic: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<u64, String> {
        self.check_may_send(generation, topic)?;
        let id = self.next_request_id();
        if let Some(uplink) = self.uplink.get() {
            uplink.request(id, topic, payload, timeout)?;
            return Ok(id);
        }
        self.requests
            .request(&self.requester(), id, topic, payload, timeout)
            .map(|()| id)
    }

    /// Answers request `id` of `reply_to` for `generation`.
    fn reply(
        &self,
        generation: u32,
        reply_to: &str,
        id: u64,
        payload: &[u8],
    ) -> Result<(), String> {
        self.check_may_answer(generation)?;
        if let Some(uplink) = self.uplink.get() {
            return uplink.reply(reply_to, id, payload);
        }
        self.deliver_reply(reply_to, id, payload)
    }

    /// Delivers the module's answer to request `id` of `reply_to` (it must
    /// be one of the modules the request went to).
    fn deliver_reply(&self, reply_to: &str, id: u64, payload: &[u8]) -> Result<(), String> {
        self.requests
            .reply(&self.requester(), reply_to, id, payload)
            .map_err(|e| e.to_string())
    }

    /// The module as the request table knows it.
    fn requester(&self) -> Requester {
        Requester {
            name: Arc::clone(&self.name),
            id: self.id,
        }
    }

    /// Refuses a publish or request on `topic` that the module may not send now.
    fn check_may_send(&self, generation: u32, topic: &str) -> Result<(), String> {
        self.check_may_send_as(generation, topic, true)
    }

    /// The rule of [`Self::check_may_send`], with `started` false for a child
    /// host not yet told to start (a restarted child is initialized again
    /// while publishing is open for the module).
    fn check_may_send_as(&self, generation: u32, topic: &str, started: bool) -> Result<(), String> {
        orch_sdk::topic::validate_module_topic(topic)
            .map_err(|e| format!("module '{}' may not publish: {e}", self.name))?;
        self.check_publish(topic)?;
        self.check_may_send_now(generation, topic, started)
    }

    /// The part of [`Self::check_may_send_as`] that changes over time:
    /// whether publishing is open, for this generation.
    fn check_may_send_now(
        &self,
        generation: u32,
        topic: &str,
        started: bool,
    ) -> Result<(), String> {
        if !started || !self.may_publish.load(Ordering::Acquire) {
            // A reload retires the old generation before it closes publishing
            // (Release/Acquire order): a caller whose generation has just been
            // retired learns that, not that publishing has not begun.
            if self.active_generation() != generation {
                return Err(format!(
                    "generation {generation} of '{}' has stopped",
                    self.name
                ));
            }
            return Err(format!(
                "module '{}' may not publish '{topic}' yet: every module is initialized \
                 (and subscribed) before any starts; publish from start() or later",
                self.name
            ));
        }
        Ok(())
    }

    /// Refuses an answer while the module may not send (before start, or once
    /// `generation` was retired).
    fn check_may_answer(&self, generation: u32) -> Result<(), String> {
        self.check_may_answer_as(generation, true)
    }

    /// The rule of [`Self::check_may_answer`], with `started` as for
    /// [`Self::check_may_send_as`].
    fn check_may_answer_as(&self, generation: u32, started: bool) -> Result<(), String> {
        if started && self.may_publish.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.active_generation() != generation {
            return Err(format!(
                "generation {generation} of '{}' has stopped",
                self.name
            ));
        }
        Err(format!(
            "module '{}' may not reply yet: publish and reply from start() or later",
            self.name
        ))
    }

    /// Subscribes the module (through the uplink in a child host).
    pub(crate) fn subscribe(&self, pattern: &str) -> Result<(), String> {
        self.check_subscribe(pattern)?;
        if let Some(uplink) = self.uplink.get() {
            orch_sdk::topic::validate_pattern(pattern)?;
            return uplink.subscribe(pattern);
        }
        self.check_subscription_count(pattern)?;
        self.bus
            .subscribe(self.id, pattern)
            .map_err(|e| e.to_string())?;
        if let Some(swap) = self.swap_state().as_mut() {
            swap.renewed.push(pattern.to_owned());
        }
        tracing::debug!(module = %self.name, "subscribed to {pattern}");
        Ok(())
    }

    /// Removes one subscription of the module (through the uplink in a child host).
    pub(crate) fn unsubscribe(&self, pattern: &str) {
        if let Some(uplink) = self.uplink.get() {
            return uplink.unsubscribe(pattern);
        }
        self.bus.unsubscribe(self.id, pattern);
        if let Some(swap) = self.swap_state().as_mut() {
            swap.renewed.retain(|p| p != pattern);
        }
    }

    fn schedule(&self, topic: &str, interval: Duration, repeat: bool) -> Result<u64, String> {
        self.timers
            .schedule(self.id, Arc::clone(&self.mailbox), topic, interval, repeat)
    }

    fn cancel(&self, id: u64) -> Result<(), String> {
        if self.timers.cancel(self.id, id) {
            Ok(())
        } else {
            Err(format!("module '{}' has no timer {id}", self.name))
        }
    }
}

mod child;
mod log;
mod routes;
mod swap;

use swap::Swap;

use log::log_as;
mod table;

#[cfg(test)]
use table::GenerationCtx;
pub use table::HostTable;

#[cfg(test)]
mod tests;
