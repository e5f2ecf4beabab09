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
//! [`crate::host_api::ModuleHostCtx::next_request_id`]), so a child host
//! process can name its requests without a round trip.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use orch_sdk::EventKind;

use crate::bus::{Bus, BusEvent, SubscriberId};
use crate::timers::{HOST_OWNER, TimerId, TimerService};

/// How many requests one module may have waiting for an answer: a module that
/// asks in a loop and never waits is refused past this, not given memory.
pub const MAX_PENDING_PER_MODULE: usize = 10_000;

/// The longest a request may wait for its answer.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// One request waiting for its answer.
struct Pending {
    requester: SubscriberId,
    topic: Arc<str>,
    timeout: Duration,
    timer: TimerId,
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
            }),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.inner.table.lock().unwrap_or_else(|e| e.into_inner())
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
        if self.inner.bus.publish_event(Arc::new(event)) == 0 {
            self.answer(&key, EventKind::NoResponders, b"null", None);
        }
        Ok(())
    }

    /// Answers request `id` of module `reply_to` on behalf of `responder`:
    /// the first answer goes to the requester's mailbox, any later one is
    /// refused.
    pub fn reply(
        &self,
        responder: &Arc<str>,
        reply_to: &str,
        id: u64,
        payload: &[u8],
    ) -> Result<(), String> {
        let key: Key = (reply_to.into(), id);
        let topic = self.table().pending.get(&key).map(|p| Arc::clone(&p.topic));
        if let Some(topic) = topic {
            self.inner
                .bus
                .check_size(&topic, payload)
                .map_err(|e| e.to_string())?;
        }
        if self.answer(&key, EventKind::Reply, payload, Some(Arc::clone(responder))) {
            Ok(())
        } else {
            Err(format!(
                "request {id} of '{reply_to}' was already answered or has timed out \
                 (only the first answer to a request counts)"
            ))
        }
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
            .deliver_to(pending.requester, &Arc::new(event))
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
mod tests {
    use super::*;
    use crossbeam_channel::{Receiver, unbounded};

    struct World {
        bus: Bus,
        timers: TimerService,
        requests: Requests,
    }

    fn world() -> World {
        let bus = Bus::new();
        let timers = TimerService::new();
        let requests = Requests::new(bus.clone(), timers.clone());
        World {
            bus,
            timers,
            requests,
        }
    }

    fn module(world: &World, name: &str) -> (Requester, Receiver<Arc<BusEvent>>) {
        let (tx, rx) = unbounded::<Arc<BusEvent>>();
        let id = world.bus.register(Arc::new(tx));
        let requester = Requester {
            name: name.into(),
            id,
        };
        (requester, rx)
    }

    fn next(rx: &Receiver<Arc<BusEvent>>) -> Arc<BusEvent> {
        rx.recv_timeout(Duration::from_secs(5)).expect("an event")
    }

    #[test]
    fn the_first_reply_reaches_the_requester_and_a_second_is_refused() {
        let w = world();
        let (client, client_rx) = module(&w, "client");
        let (server, server_rx) = module(&w, "server");
        w.bus.subscribe(server.id, "server.stats").unwrap();
        w.requests
            .request(&client, 7, "server.stats", b"{}", Duration::from_secs(60))
            .unwrap();
        let request = next(&server_rx);
        assert_eq!(request.kind, EventKind::Request);
        assert_eq!(request.request_id, 7);
        assert_eq!(request.reply_to.as_deref(), Some("client"));
        assert_eq!(request.source.as_deref(), Some("client"));

        w.requests
            .reply(&server.name, "client", 7, b"{\"n\":1}")
            .unwrap();
        let reply = next(&client_rx);
        assert_eq!(reply.kind, EventKind::Reply);
        assert_eq!(
            (reply.topic(), reply.payload()),
            ("server.stats", &b"{\"n\":1}"[..])
        );
        assert_eq!(reply.source.as_deref(), Some("server"));
        assert_eq!(reply.request_id, 7);

        let again = w
            .requests
            .reply(&server.name, "client", 7, b"2")
            .unwrap_err();
        assert!(
            again.contains("already answered or has timed out"),
            "{again}"
        );
        assert_eq!(w.requests.pending(), 0);
        assert_eq!(
            w.timers.count_of(HOST_OWNER),
            0,
            "the timeout was cancelled"
        );
        w.timers.stop();
    }

    #[test]
    fn an_unanswered_request_times_out_once_and_no_responder_is_said_at_once() {
        let w = world();
        let (client, client_rx) = module(&w, "client");
        let (server, _server_rx) = module(&w, "server");
        w.bus.subscribe(server.id, "server.slow").unwrap();
        w.requests
            .request(&client, 1, "server.slow", b"{}", Duration::from_millis(20))
            .unwrap();
        w.requests
            .request(&client, 2, "nobody.home", b"{}", Duration::from_secs(60))
            .unwrap();
        let first = next(&client_rx);
        assert_eq!((first.kind, first.request_id), (EventKind::NoResponders, 2));
        assert_eq!(first.topic(), "nobody.home");
        let second = next(&client_rx);
        assert_eq!((second.kind, second.request_id), (EventKind::Timeout, 1));
        assert_eq!(second.payload(), b"{\"timeout_ms\":20}");
        assert_eq!(second.source, None, "the host says so");
        assert!(w.requests.reply(&server.name, "client", 1, b"{}").is_err());
        assert!(client_rx.recv_timeout(Duration::from_millis(50)).is_err());
        w.timers.stop();
    }

    #[test]
    fn pending_requests_are_bounded_per_module_and_forgotten_with_it() {
        let w = world();
        let (client, _client_rx) = module(&w, "client");
        let (server, _server_rx) = module(&w, "server");
        w.bus.subscribe(server.id, "s.x").unwrap();
        for id in 0..MAX_PENDING_PER_MODULE as u64 {
            w.requests
                .request(&client, id, "s.x", b"1", Duration::from_secs(60))
                .unwrap();
        }
        let refused = w
            .requests
            .request(&client, u64::MAX, "s.x", b"1", Duration::from_secs(60))
            .unwrap_err();
        assert!(refused.contains("10000 requests waiting"), "{refused}");
        let duplicate = w
            .requests
            .request(&client, 3, "s.x", b"1", Duration::from_secs(60))
            .unwrap_err();
        assert!(
            duplicate.contains("already has a pending request 3"),
            "{duplicate}"
        );
        assert!(
            w.requests
                .request(&client, 1 << 50, "s.x", b"1", Duration::ZERO)
                .is_err()
        );
        assert_eq!(w.requests.forget("client"), MAX_PENDING_PER_MODULE);
        assert_eq!(w.requests.pending(), 0);
        assert_eq!(w.timers.count_of(HOST_OWNER), 0);
        w.timers.stop();
    }
}
