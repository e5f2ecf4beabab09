//! Request/reply between modules, without anyone waiting.
//!
//! `ctx.request(topic, data, timeout)` publishes the request like any event,
//! marked with its id and the requester's name, and records it here as
//! pending, with a one-shot host timer for its deadline. The first
//! `ctx.reply(&request, data)` takes it out of the table and hands the answer
//! straight to the requester's mailbox; the timer, if it fires first, hands it
//! a timeout notice instead. Either way exactly one answer arrives, and no
//! handler ever blocks on another module, so actors cannot deadlock each other.
//!
//! Requests are keyed by the requester's name and an id that the requester's
//! host chose (unique per module for the life of the orchestrator: see
//! `ModuleHostCtx::next_request_id`), so a child host
//! process can name its requests without a round trip. Such ids are easy to
//! guess, so the key alone never lets a module answer: each request records
//! the subscribers the bus delivered it to ([`Recipients`]), and only one of
//! them may reply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use orch_sdk::EventKind;

use crate::bus::{Admission, Bus, BusEvent, Recipients, SubscriberId};
use crate::timers::{HOST_OWNER, TimerId, TimerService};

pub mod remote;

pub use remote::{Asked, RemoteAsk, RemoteRequests};

/// How many requests one module may have waiting for an answer: a module that
/// asks in a loop and never waits is refused past this, not given memory.
pub const MAX_PENDING_PER_MODULE: usize = 10_000;

/// The longest a request may wait for its answer.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyRefused {
    /// The module may not answer this request: it was not delivered to it
    /// (or the module may not send yet). A module that answers the requests
    /// it gets never meets this: a child host that does is lying.
    #[error("{0}")]
    Forbidden(String),
    /// Anything else: answered already, timed out, or too large.
    #[error("{0}")]
    Other(String),
}

/// One request waiting for its answer.
struct Pending {
    requester: SubscriberId,
    topic: Arc<str>,
    timeout: Duration,
    timer: TimerId,
    /// The modules it was delivered to: the only ones that may answer.
    recipients: Recipients,
}

type Key = (Arc<str>, u64);

#[derive(Default)]
struct Table {
    pending: HashMap<Key, Pending>,
    per_requester: HashMap<Arc<str>, usize>,
}

impl Table {
    fn take(&mut self, key: &Key) -> Option<Pending> {
        let pending = self.pending.remove(key)?;
        if let Some(count) = self.per_requester.get_mut(&key.0) {
            *count -= 1;
            if *count == 0 {
                self.per_requester.remove(&key.0);
            }
        }
        Some(pending)
    }
}

struct Inner {
    bus: Bus,
    timers: TimerService,
    table: Mutex<Table>,
    /// Where a request no local module takes goes (the bridge's `ask`).
    remote: RwLock<Option<Arc<dyn RemoteRequests>>>,
}

/// The table of pending requests. Cheap to clone; all clones share it.
#[derive(Clone)]
pub struct Requests {
    inner: Arc<Inner>,
}

/// Who asks: the requester's name (in every answer's key) and its mailbox.
#[derive(Clone)]
pub struct Requester {
    /// The module's name.
    pub name: Arc<str>,
    /// Its subscriber id, where the answer is delivered.
    pub id: SubscriberId,
}

impl Requests {
    /// A table that publishes requests on `bus` and times them out with `timers`.
    pub fn new(bus: Bus, timers: TimerService) -> Self {
        Self {
            inner: Arc::new(Inner {
                bus,
                timers,
                table: Mutex::default(),
                remote: RwLock::default(),
            }),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.inner.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers the requests no local module takes to `remote` from now on
    /// (`None`: answered "no responders" at once again).
    pub fn set_remote(&self, remote: Option<Arc<dyn RemoteRequests>>) {
        *self.inner.remote.write().unwrap_or_else(|e| e.into_inner()) = remote;
    }

    /// The answer of another orchestrator to request `id` of module
    /// `requester`, offered through [`RemoteRequests`]: delivered like a
    /// local one (`kind` [`EventKind::Reply`] from module `from`, or
    /// [`EventKind::NoResponders`]) when the request still waits; `false`
    /// when it was answered or timed out already (a late answer is dropped).
    pub fn answer_remote(
        &self,
        requester: &str,
        id: u64,
        kind: EventKind,
        payload: &[u8],
        from: Option<Arc<str>>,
    ) -> bool {
        self.answer(&(requester.into(), id), kind, payload, from)
    }

    /// How many requests wait for an answer.
    pub fn pending(&self) -> usize {
        self.table().pending.len()
    }

    /// Publishes request `id` of `requester` on `topic` (already checked
    /// against the requester's rights) and waits for its answer up to
    /// `timeout`, without blocking anyone. When no module subscribes to the
    /// topic the requester is told at once ([`EventKind::NoResponders`]).
    pub fn request(
        &self,
        requester: &Requester,
        id: u64,
        topic: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(), String> {
        orch_sdk::topic::validate_topic(topic)?;
        self.inner
            .bus
            .check_size(topic, payload)
            .map_err(|e| e.to_string())?;
        if timeout.is_zero() || timeout > MAX_REQUEST_TIMEOUT {
            return Err(format!(
                "a request timeout must be between 1 ms and {} s (got {} ms)",
                MAX_REQUEST_TIMEOUT.as_secs(),
                timeout.as_millis()
            ));
        }
        let key: Key = (Arc::clone(&requester.name), id);
        let topic: Arc<str> = topic.into();
        let recipients = Recipients::default();
        {
            let mut table = self.table();
            if table.pending.contains_key(&key) {
                return Err(format!(
                    "module '{}' already has a pending request {id}",
                    requester.name
                ));
            }
            let waiting = table.per_requester.get(&requester.name).copied();
            if waiting.unwrap_or(0) >= MAX_PENDING_PER_MODULE {
                return Err(format!(
                    "module '{}' has {MAX_PENDING_PER_MODULE} requests waiting for an answer \
                     already; wait for their replies or timeouts before asking again",
                    requester.name
                ));
            }
            let timer = self.schedule_timeout(key.clone(), timeout)?;
            table.pending.insert(
                key.clone(),
                Pending {
                    requester: requester.id,
                    topic: Arc::clone(&topic),
                    timeout,
                    timer,
                    recipients: recipients.clone(),
                },
            );
            *table
                .per_requester
                .entry(Arc::clone(&requester.name))
                .or_default() += 1;
        }
        let event = BusEvent::new(&topic, payload, Some(Arc::clone(&requester.name))).in_exchange(
            EventKind::Request,
            id,
            Some(Arc::clone(&requester.name)),
        );
        let event = Arc::new(event);
        if self
            .inner
            .bus
            .publish_request(Arc::clone(&event), &recipients)
            == 0
        {
            let remote = self
                .inner
                .remote
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let asked = remote.map_or(Asked::NotMine, |remote| {
                remote.ask(RemoteAsk { event, timeout })
            });
            match asked {
                Asked::Sent => {}
                Asked::NotMine => {
                    self.answer(&key, EventKind::NoResponders, b"null", None);
                }
                Asked::Refused(why) => {
                    if let Some(pending) = self.table().take(&key) {
                        self.inner.timers.cancel(HOST_OWNER, pending.timer);
                    }
                    return Err(why);
                }
            }
        }
        Ok(())
    }

    /// Answers request `id` of module `reply_to` on behalf of `responder`,
    /// which must be one of the modules the request was delivered to: the
    /// first answer goes to the requester's mailbox, any later one is
    /// refused, and so is one from a module the request never reached.
    pub fn reply(
        &self,
        responder: &Requester,
        reply_to: &str,
        id: u64,
        payload: &[u8],
    ) -> Result<(), ReplyRefused> {
        let key: Key = (reply_to.into(), id);
        let pending = self
            .table()
            .pending
            .get(&key)
            .map(|p| (Arc::clone(&p.topic), p.recipients.clone()));
        if let Some((topic, recipients)) = pending {
            if !recipients.contains(responder.id) {
                return Err(ReplyRefused::Forbidden(format!(
                    "module '{}' may not answer request {id} of '{reply_to}' on '{topic}': \
                     the request was not delivered to it (only a module it went to may answer)",
                    responder.name
                )));
            }
            self.inner
                .bus
                .check_size(&topic, payload)
                .map_err(|e| ReplyRefused::Other(e.to_string()))?;
        }
        let from = Some(Arc::clone(&responder.name));
        if self.answer(&key, EventKind::Reply, payload, from) {
            Ok(())
        } else {
            Err(ReplyRefused::Other(format!(
                "request {id} of '{reply_to}' was already answered or has timed out \
                 (only the first answer to a request counts)"
            )))
        }
    }

    /// Tells `requester` at once that its request `id` on `topic` was refused
    /// (`why`), with the notice it would otherwise have waited for in vain:
    /// kind [`EventKind::Timeout`], from the host, payload `{"timeout_ms": N,
    /// "refused": why}`. For a child host's request, which its module
    /// believes sent (an in-process module learns the same from the error
    /// `ctx.request` returns). Never waits: the notice is held to the
    /// mailbox's capacity like any event. Nothing is sent while a request
    /// `id` of `requester` is pending (a duplicate id must not answer the
    /// original). Returns whether the notice was delivered.
    pub fn refuse(
        &self,
        requester: &Requester,
        id: u64,
        topic: &str,
        timeout: Duration,
        why: &str,
    ) -> bool {
        let key: Key = (Arc::clone(&requester.name), id);
        if self.table().pending.contains_key(&key) {
            return false;
        }
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let payload = serde_json::json!({ "timeout_ms": millis, "refused": why }).to_string();
        let event = BusEvent::new(topic, payload.as_bytes(), None).in_exchange(
            EventKind::Timeout,
            id,
            None,
        );
        self.inner
            .bus
            .deliver_to(requester.id, &Arc::new(event), Admission::NoWait)
    }

    /// Forgets every pending request of `requester` (the module was removed):
    /// no answer will be delivered.
    pub fn forget(&self, requester: &str) -> usize {
        let mut table = self.table();
        let keys: Vec<Key> = table
            .pending
            .keys()
            .filter(|(name, _)| &**name == requester)
            .cloned()
            .collect();
        for key in &keys {
            if let Some(pending) = table.take(key) {
                self.inner.timers.cancel(HOST_OWNER, pending.timer);
            }
        }
        keys.len()
    }

    /// Takes request `key` out of the table and delivers an answer of `kind`
    /// to its requester. Returns whether it was still pending.
    fn answer(&self, key: &Key, kind: EventKind, payload: &[u8], from: Option<Arc<str>>) -> bool {
        let Some(pending) = self.table().take(key) else {
            return false;
        };
        // A no-op for the timeout's own timer, which has fired.
        self.inner.timers.cancel(HOST_OWNER, pending.timer);
        let event = BusEvent::new(&pending.topic, payload, from).in_exchange(kind, key.1, None);
        if !self
            .inner
            .bus
            .deliver_to(pending.requester, &Arc::new(event), Admission::Always)
        {
            tracing::debug!(
                "the answer to request {} of '{}' found no mailbox (the module is gone)",
                key.1,
                key.0
            );
        }
        true
    }

    fn schedule_timeout(&self, key: Key, timeout: Duration) -> Result<TimerId, String> {
        let requests: Weak<Inner> = Arc::downgrade(&self.inner);
        self.inner.timers.call_after(
            timeout,
            Box::new(move || {
                let Some(inner) = requests.upgrade() else {
                    return;
                };
                let requests = Requests { inner };
                let millis = requests
                    .table()
                    .pending
                    .get(&key)
                    .map(|p| u64::try_from(p.timeout.as_millis()).unwrap_or(u64::MAX));
                if let Some(millis) = millis {
                    let payload = serde_json::json!({ "timeout_ms": millis }).to_string();
                    requests.answer(&key, EventKind::Timeout, payload.as_bytes(), None);
                }
            }),
        )
    }
}

#[cfg(test)]
mod tests;
