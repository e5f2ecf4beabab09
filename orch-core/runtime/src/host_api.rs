//! The host side of the C ABI: the functions a module calls (publish, subscribe,
//! timers, log), bound to one module through its [`ModuleHostCtx`].
//!
//! Every function here catches panics: a host bug never unwinds into a module.

// This file implements the C ABI between host and module.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::c_void;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use orch_sdk::abi::{
    ABI_VERSION, ByteSink, HostApi, RBytes, RStr, STATUS_ERROR, STATUS_OK, STATUS_PANIC, Status,
};
use tracing::level_filters::LevelFilter;

use orch_config::Contract;

use crate::bus::{Bus, EventSink, SubscriberId};
use crate::log_limit::{self, LogLimiter, Verdict};
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
    uplink: OnceLock<Arc<dyn Uplink>>,
    swap: std::sync::Mutex<Option<Swap>>,
    /// Descriptors a generation handed over to the next (`ctx.hand_over_fd`).
    handed_over: std::sync::Mutex<HashMap<String, OwnedFd>>,
    /// Its log lines per second (all generations, its child host's too).
    log_limit: std::sync::Mutex<LogLimiter>,
}

/// The subscriptions around a swap of generations: the previous generation's stay
/// on the bus until the next one has made its own, so no event published in
/// between is missed; then the ones it did not renew go.
#[derive(Default)]
struct Swap {
    previous: Vec<String>,
    renewed: Vec<String>,
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
            uplink: OnceLock::new(),
            swap: std::sync::Mutex::new(None),
            handed_over: std::sync::Mutex::default(),
            log_limit: std::sync::Mutex::default(),
        }
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

    fn swap_state(&self) -> std::sync::MutexGuard<'_, Option<Swap>> {
        self.swap.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a swap of generations: cancels the module's timers (each
    /// generation sets its own) and keeps its subscriptions, so events published
    /// while the next generation boots still reach the mailbox.
    pub fn begin_swap(&self) {
        self.timers.cancel_owner(self.id);
        let previous = self.bus.subscriptions_of(self.id);
        *self.swap_state() = Some(Swap {
            previous,
            renewed: Vec::new(),
        });
    }

    fn handed_over(&self) -> std::sync::MutexGuard<'_, HashMap<String, OwnedFd>> {
        self.handed_over.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `fd` under `key` for the module's next generation.
    fn hand_over_fd(&self, key: &str, fd: OwnedFd) -> Result<(), String> {
        if self.uplink.get().is_some() {
            return Err(format!(
                "module '{}' runs in a child process (isolation: process), whose \
                 descriptors end with it: the next generation opens its own",
                self.name
            ));
        }
        if key.is_empty() || key.len() > 128 {
            return Err("a hand-over key must be 1 to 128 bytes long".into());
        }
        tracing::debug!(module = %self.name, "handed over descriptor '{key}'");
        self.handed_over().insert(key.to_owned(), fd);
        Ok(())
    }

    /// Takes the descriptor handed over under `key`.
    fn take_fd(&self, key: &str) -> Option<OwnedFd> {
        self.handed_over().remove(key)
    }

    /// Ends a swap: the subscriptions of before that the generation now running
    /// did not make again are removed, and the descriptors handed over that it
    /// did not take are closed.
    pub fn finish_swap(&self) {
        let unclaimed: Vec<String> = self.handed_over().drain().map(|(key, _fd)| key).collect();
        if !unclaimed.is_empty() {
            tracing::info!(
                "module '{}': closed the descriptors its previous generation handed over \
                 and the new one did not take: {}",
                self.name,
                unclaimed.join(", ")
            );
        }
        let Some(swap) = self.swap_state().take() else {
            return;
        };
        for pattern in swap.previous {
            if !swap.renewed.contains(&pattern) {
                self.bus.unsubscribe(self.id, &pattern);
            }
        }
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
        self.check_may_send(generation, topic)?;
        if let Some(uplink) = self.uplink.get() {
            return uplink.publish(topic, payload);
        }
        self.bus
            .publish(topic, payload, Some(Arc::clone(&self.name)))
            .map(drop)
            .map_err(|e| e.to_string())
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
        let requester = Requester {
            name: Arc::clone(&self.name),
            id: self.id,
        };
        self.requests
            .request(&requester, id, topic, payload, timeout)
            .map(|()| id)
    }

    /// Serves a request that module `requester` sent from its child host
    /// process (already checked there, and checked again here: a child may lie).
    pub(crate) fn request_of_child(
        &self,
        id: u64,
        topic: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(), String> {
        orch_sdk::topic::validate_module_topic(topic)
            .map_err(|e| format!("module '{}' may not publish: {e}", self.name))?;
        self.check_publish(topic)?;
        let requester = Requester {
            name: Arc::clone(&self.name),
            id: self.id,
        };
        self.requests
            .request(&requester, id, topic, payload, timeout)
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
        self.reply_of_child(reply_to, id, payload)
    }

    /// Delivers the module's answer to request `id` of `reply_to`.
    pub(crate) fn reply_of_child(
        &self,
        reply_to: &str,
        id: u64,
        payload: &[u8],
    ) -> Result<(), String> {
        self.requests.reply(&self.name, reply_to, id, payload)
    }

    /// Refuses a publish or request on `topic` that the module may not send now.
    fn check_may_send(&self, generation: u32, topic: &str) -> Result<(), String> {
        orch_sdk::topic::validate_module_topic(topic)
            .map_err(|e| format!("module '{}' may not publish: {e}", self.name))?;
        self.check_publish(topic)?;
        if !self.may_publish.load(Ordering::Acquire) {
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
        if self.may_publish.load(Ordering::Acquire) {
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

impl ModuleHostCtx {
    /// Logs a line of the module at `level` (1 error ... 5 trace), tagged,
    /// escaped and within its rate limit.
    pub fn log(&self, level: u32, message: &str) {
        let verdict = self
            .log_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit();
        match verdict {
            Verdict::Suppress => return,
            Verdict::LogAfterSummary(n) => log_as(&self.name, 2, &log_limit::summary(n)),
            Verdict::Log => {}
        }
        log_as(&self.name, level, &log_limit::escape_controls(message));
    }
}

/// Logs `message` of module `name` at `level` (1 error ... 5 trace), tagged.
fn log_as(name: &str, level: u32, message: &str) {
    match level {
        1 => tracing::error!(target: "module", "[{name}] {message}"),
        2 => tracing::warn!(target: "module", "[{name}] {message}"),
        3 => tracing::info!(target: "module", "[{name}] {message}"),
        4 => tracing::debug!(target: "module", "[{name}] {message}"),
        _ => tracing::trace!(target: "module", "[{name}] {message}"),
    }
}

/// What a host function receives as its context: the module and the
/// generation that the calling instance belongs to.
///
/// Never freed (see [`HostTable`]): code of a retired generation (a thread the
/// module left running) may still call through it. It holds the module's
/// context weakly, so a module that is gone is told so instead of being kept
/// alive by its old generations.
struct GenerationCtx {
    module: Weak<ModuleHostCtx>,
    name: Arc<str>,
    generation: u32,
}

impl GenerationCtx {
    /// The module's context while this generation is the one the host serves.
    fn active(&self) -> Result<Arc<ModuleHostCtx>, String> {
        self.module
            .upgrade()
            .filter(|module| module.active_generation() == self.generation)
            .ok_or_else(|| {
                format!(
                    "generation {} of '{}' has stopped",
                    self.generation, self.name
                )
            })
    }
}

/// The function table handed to one module instance (one generation).
///
/// The table and its context are leaked on purpose, once per generation
/// (`size_of::<HostApi>() + size_of::<GenerationCtx>()`, under 160 bytes, plus
/// the name's reference count): module code may hold `&'static HostApi` in
/// its statics and call it from threads of its own long after its generation
/// was retired, so freeing them would be a use-after-free in the host. A call
/// of a retired generation gets an error (`generation N of 'name' has
/// stopped`), a log line is still served.
#[derive(Clone, Copy)]
pub struct HostTable {
    api: &'static HostApi,
}

impl HostTable {
    /// A table whose functions act for generation `generation` of `ctx`'s module.
    pub fn new(module: &Arc<ModuleHostCtx>, generation: u32) -> Self {
        let ctx: &'static GenerationCtx = Box::leak(Box::new(GenerationCtx {
            module: Arc::downgrade(module),
            name: Arc::clone(&module.name),
            generation,
        }));
        let api = Box::leak(Box::new(HostApi {
            abi_version: ABI_VERSION,
            ctx: (ctx as *const GenerationCtx).cast(),
            publish: host_publish,
            subscribe: host_subscribe,
            unsubscribe: host_unsubscribe,
            schedule_timer: host_schedule_timer,
            cancel_timer: host_cancel_timer,
            log: host_log,
            max_log_level: host_max_log_level,
            shutdown_timeout_ms: module.shutdown_timeout_ms.load(Ordering::Acquire),
            request: host_request,
            reply: host_reply,
            hand_over_fd: host_hand_over_fd,
            take_fd: host_take_fd,
        }));
        Self { api }
    }

    /// The table's address, valid for the rest of the process.
    pub fn as_ptr(&self) -> *const HostApi {
        self.api
    }
}

/// Runs a host function body with the module's context, catching panics and
/// writing any error message into `err`.
///
/// # Safety
/// `ctx` must be the context pointer of a [`HostTable`] (never freed).
unsafe fn with_ctx(
    ctx: *const c_void,
    err: ByteSink<'_>,
    body: impl FnOnce(&ModuleHostCtx, u32) -> Result<(), String>,
) -> Status {
    if ctx.is_null() {
        err.write(b"null host context");
        return STATUS_ERROR;
    }
    // SAFETY: per this function's contract `ctx` is the context pointer of a
    // HostTable, and those are never freed.
    let ctx = unsafe { &*ctx.cast::<GenerationCtx>() };
    let module = match ctx.active() {
        Ok(module) => module,
        Err(message) => {
            err.write(message.as_bytes());
            return STATUS_ERROR;
        }
    };
    match catch_unwind(AssertUnwindSafe(|| body(&module, ctx.generation))) {
        Ok(Ok(())) => STATUS_OK,
        Ok(Err(message)) => {
            err.write(message.as_bytes());
            STATUS_ERROR
        }
        Err(_) => {
            err.write(b"the host panicked while serving this call (a host bug)");
            STATUS_PANIC
        }
    }
}

/// Reads a borrowed string from a module, refusing invalid UTF-8.
///
/// # Safety
/// `s` must be a live borrow for the duration of the current call.
unsafe fn text<'a>(s: RStr<'a>, what: &str) -> Result<&'a str, String> {
    // SAFETY: forwarded contract.
    unsafe { s.as_str() }.map_err(|e| format!("{what} is not valid UTF-8: {e}"))
}

unsafe extern "C" fn host_publish(
    ctx: *const c_void,
    topic: RStr<'_>,
    payload: RBytes<'_>,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: the module passes the ctx it was given and borrows valid for the call.
    unsafe {
        with_ctx(ctx, err, |ctx, generation| {
            ctx.publish(generation, text(topic, "topic")?, payload.as_slice())
        })
    }
}

unsafe extern "C" fn host_request(
    ctx: *const c_void,
    topic: RStr<'_>,
    payload: RBytes<'_>,
    timeout_ms: u64,
    id_out: *mut u64,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish; `id_out` is checked for null before writing.
    unsafe {
        with_ctx(ctx, err, |ctx, generation| {
            if id_out.is_null() {
                return Err("null request id pointer".into());
            }
            let id = ctx.request(
                generation,
                text(topic, "topic")?,
                payload.as_slice(),
                Duration::from_millis(timeout_ms),
            )?;
            id_out.write(id);
            Ok(())
        })
    }
}

unsafe extern "C" fn host_reply(
    ctx: *const c_void,
    reply_to: RStr<'_>,
    request_id: u64,
    payload: RBytes<'_>,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish.
    unsafe {
        with_ctx(ctx, err, |ctx, generation| {
            ctx.reply(
                generation,
                text(reply_to, "reply_to")?,
                request_id,
                payload.as_slice(),
            )
        })
    }
}

unsafe extern "C" fn host_hand_over_fd(
    ctx: *const c_void,
    key: RStr<'_>,
    fd: i32,
    err: ByteSink<'_>,
) -> Status {
    if fd < 0 {
        err.write(b"not a file descriptor (negative)");
        return STATUS_ERROR;
    }
    // SAFETY: per the ABI the module gives up `fd`, an open descriptor it
    // owned, with this call: the host owns it now and closes it on any error.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: as in host_publish.
    unsafe { with_ctx(ctx, err, |ctx, _| ctx.hand_over_fd(text(key, "key")?, fd)) }
}

unsafe extern "C" fn host_take_fd(
    ctx: *const c_void,
    key: RStr<'_>,
    fd_out: *mut i32,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish; `fd_out` is checked for null before writing.
    unsafe {
        with_ctx(ctx, err, |ctx, _| {
            if fd_out.is_null() {
                return Err("null descriptor pointer".into());
            }
            let fd = ctx.take_fd(text(key, "key")?);
            fd_out.write(fd.map_or(-1, IntoRawFd::into_raw_fd));
            Ok(())
        })
    }
}

unsafe extern "C" fn host_subscribe(
    ctx: *const c_void,
    topic: RStr<'_>,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish.
    unsafe { with_ctx(ctx, err, |ctx, _| ctx.subscribe(text(topic, "topic")?)) }
}

unsafe extern "C" fn host_unsubscribe(
    ctx: *const c_void,
    topic: RStr<'_>,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish.
    unsafe {
        with_ctx(ctx, err, |ctx, _| {
            ctx.unsubscribe(text(topic, "topic")?);
            Ok(())
        })
    }
}

unsafe extern "C" fn host_schedule_timer(
    ctx: *const c_void,
    topic: RStr<'_>,
    interval_ms: u64,
    repeat: bool,
    id_out: *mut u64,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish; `id_out` is checked for null before writing.
    unsafe {
        with_ctx(ctx, err, |ctx, _| {
            if id_out.is_null() {
                return Err("null timer id pointer".into());
            }
            let id = ctx.schedule(
                text(topic, "timer topic")?,
                Duration::from_millis(interval_ms),
                repeat,
            )?;
            id_out.write(id);
            Ok(())
        })
    }
}

unsafe extern "C" fn host_cancel_timer(ctx: *const c_void, id: u64, err: ByteSink<'_>) -> Status {
    // SAFETY: as in host_publish.
    unsafe { with_ctx(ctx, err, |ctx, _| ctx.cancel(id)) }
}

unsafe extern "C" fn host_log(
    ctx: *const c_void,
    level: u32,
    _target: RStr<'_>,
    message: RStr<'_>,
) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: the module passes the ctx of its HostTable (never freed) and a
    // message borrowed for the call. Logging is served for any generation (a
    // retiring generation may still log from its drop, a thread it left
    // running from anywhere); panics are contained.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
        let ctx = &*ctx.cast::<GenerationCtx>();
        let text = String::from_utf8_lossy(message.as_bytes());
        match ctx.module.upgrade() {
            Some(module) => module.log(level, &text),
            // The module is gone (a thread it left running): still tagged.
            None => log_as(&ctx.name, level, &log_limit::escape_controls(&text)),
        }
    }));
}

unsafe extern "C" fn host_max_log_level(_ctx: *const c_void) -> u32 {
    match LevelFilter::current() {
        LevelFilter::OFF => 0,
        LevelFilter::ERROR => 1,
        LevelFilter::WARN => 2,
        LevelFilter::INFO => 3,
        LevelFilter::DEBUG => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_generation_leaks_stays_small() {
        // The table and its context are leaked once per generation (a reload).
        let leaked = std::mem::size_of::<HostApi>() + std::mem::size_of::<GenerationCtx>();
        assert!(leaked <= 160, "{leaked} bytes per generation");
    }

    #[test]
    fn a_retired_or_gone_generation_is_told_it_has_stopped() {
        let timers = TimerService::new();
        let bus = Bus::new();
        let mailbox = crate::actor::Mailbox::with_defaults("sensor");
        let sink: Arc<dyn EventSink> = mailbox.sink();
        let module = Arc::new(ModuleHostCtx::new(
            "sensor".into(),
            SubscriberId(9),
            HostServices::new(bus, timers),
            sink,
        ));
        let first = GenerationCtx {
            module: Arc::downgrade(&module),
            name: "sensor".into(),
            generation: 1,
        };
        assert!(first.active().is_ok());
        module.set_active_generation(2);
        assert_eq!(
            first.active().err().as_deref(),
            Some("generation 1 of 'sensor' has stopped")
        );
        let second = GenerationCtx {
            module: Arc::downgrade(&module),
            name: "sensor".into(),
            generation: 2,
        };
        drop(module);
        assert_eq!(
            second.active().err().as_deref(),
            Some("generation 2 of 'sensor' has stopped")
        );
    }
}
