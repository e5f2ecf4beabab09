//! The ask side: requests no local module takes, sent to NATS.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap, RequestErrorKind};
use bytes::Bytes;
use orch_runtime::bus::{Bus, BusEvent};
use orch_runtime::pace::Pacer;
use orch_runtime::requests::{Asked, RemoteAsk, RemoteRequests, Requests};
use orch_sdk::EventKind;
use tokio::sync::mpsc;

use super::{DROPPED_SAID_EVERY, MAX_ASKED, RequestStats, TIMEOUT_HEADER};
use crate::connection::Link;
use crate::node::Identity;
use crate::service::NOT_SERVED;
use crate::{caps, envelope};

/// How often one request is sent again after a responder said it has no
/// local subscriber left (it stopped meanwhile), at most.
const MAX_TRIES: u32 = 3;

/// Whether `topic` matches one of `patterns`.
fn matches_any(patterns: &[String], topic: &str) -> bool {
    patterns.iter().any(|p| orch_sdk::topic::matches(p, topic))
}

/// One request on its way to NATS.
pub(super) struct Ask {
    event: Arc<BusEvent>,
    deadline: Instant,
    /// Counts it in flight until dropped.
    _slot: Slot,
}

/// One place among [`MAX_ASKED`]: given back when dropped (answered, or the
/// bridge's runtime went away).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the request table offers requests to (`ask`).
pub(super) struct Asker {
    pub(super) patterns: Vec<String>,
    pub(super) link: Arc<Link>,
    pub(super) in_flight: Arc<AtomicUsize>,
    pub(super) queue: mpsc::Sender<Ask>,
    pub(super) stats: Arc<RequestStats>,
}

impl RemoteRequests for Asker {
    fn ask(&self, ask: RemoteAsk) -> Asked {
        if !matches_any(&self.patterns, ask.event.topic()) || !self.link.is_connected() {
            return Asked::NotMine;
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_ASKED {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.stats.ask_refused.fetch_add(1, Ordering::Relaxed);
            return Asked::Refused(format!(
                "{MAX_ASKED} requests to other nodes wait for their answer already; wait for \
                 their replies or timeouts before asking again"
            ));
        }
        let ask = Ask {
            deadline: Instant::now() + ask.timeout,
            event: ask.event,
            _slot: Slot(Arc::clone(&self.in_flight)),
        };
        match self.queue.try_send(ask) {
            Ok(()) => Asked::Sent,
            // The queue holds MAX_ASKED: only a closed one (the bridge
            // stopping) refuses.
            Err(_) => Asked::NotMine,
        }
    }
}

/// Sends every request offered, each in a task of its own.
pub(super) async fn ask_loop(
    client: Client,
    prefix: String,
    me: Identity,
    mut asks: mpsc::Receiver<Ask>,
    requests: Requests,
    bus: Bus,
    stats: Arc<RequestStats>,
) {
    let shared = Arc::new(Asking {
        client,
        prefix,
        me,
        requests,
        bus,
        stats,
        subjects: Mutex::default(),
        dropped_said: Pacer::new(DROPPED_SAID_EVERY),
    });
    while let Some(ask) = asks.recv().await {
        tokio::spawn(Arc::clone(&shared).send(ask));
    }
}

/// What sending a request needs.
struct Asking {
    client: Client,
    prefix: String,
    me: Identity,
    requests: Requests,
    bus: Bus,
    stats: Arc<RequestStats>,
    /// The subject of each topic asked, made once (bounded by the topics
    /// modules may request, as checked by their contracts).
    subjects: Mutex<HashMap<Box<str>, async_nats::Subject>>,
    dropped_said: Pacer,
}

/// What a responder's message says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer<'a> {
    /// The reply of module `from` (`None`: a plain NATS client's).
    Reply {
        /// The module that answered, on its node.
        from: Option<&'a str>,
    },
    /// The node it reached has no local subscriber (left): try another.
    Unserved,
    /// It breaks the caps.
    Malformed(String),
}

/// Reads a responder's message (its payload is checked by the caller).
pub(crate) fn answer_of(headers: Option<&HeaderMap>) -> Answer<'_> {
    let Some(headers) = headers else {
        return Answer::Reply { from: None };
    };
    if headers
        .get(async_nats::service::NATS_SERVICE_ERROR_CODE)
        .is_some_and(|code| code.as_str() == NOT_SERVED.to_string())
    {
        return Answer::Unserved;
    }
    let Some(envelope) = headers.get(envelope::ENVELOPE) else {
        return Answer::Reply { from: None };
    };
    match envelope::fields(envelope.as_str()) {
        Ok(fields) => Answer::Reply {
            from: fields.source,
        },
        Err(why) => Answer::Malformed(why),
    }
}

impl Asking {
    fn subject(&self, topic: &str) -> async_nats::Subject {
        let mut subjects = crate::import::lock(&self.subjects);
        crate::names::remembered(&mut subjects, topic, || {
            async_nats::Subject::from(envelope::request_subject(&self.prefix, topic))
        })
    }

    /// Sends one request and delivers what comes back; the local timer
    /// answers when nothing does in time.
    async fn send(self: Arc<Self>, ask: Ask) {
        let event = &ask.event;
        let (Some(requester), id) = (event.reply_to.as_deref(), event.request_id) else {
            return;
        };
        let subject = self.subject(event.topic());
        let mut headers = envelope::headers(event, &self.me, None);
        for _ in 0..MAX_TRIES {
            let left = ask.deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(1) {
                return;
            }
            let millis = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
            headers.insert(TIMEOUT_HEADER, millis.to_string());
            let request = async_nats::Request::new()
                .payload(Bytes::copy_from_slice(event.payload()))
                .headers(headers.clone())
                .timeout(Some(left));
            self.stats.asked.fetch_add(1, Ordering::Relaxed);
            let message = match self.client.send_request(subject.clone(), request).await {
                Ok(message) => message,
                Err(e) if e.kind() == RequestErrorKind::NoResponders => {
                    self.deliver(requester, id, EventKind::NoResponders, b"null", None);
                    return;
                }
                // Timed out, or the connection went: the local timer answers.
                Err(_) => return,
            };
            match answer_of(message.headers.as_ref()) {
                Answer::Unserved => continue,
                Answer::Reply { from } => {
                    if let Err(why) = self.check_reply(event.topic(), from, &message.payload) {
                        self.malformed(event.topic(), &why);
                        return;
                    }
                    let from = from.map(Arc::<str>::from);
                    self.deliver(requester, id, EventKind::Reply, &message.payload, from);
                    return;
                }
                Answer::Malformed(why) => {
                    self.malformed(event.topic(), &why);
                    return;
                }
            }
        }
        // Every node tried had lost its last subscriber meanwhile.
        self.deliver(requester, id, EventKind::NoResponders, b"null", None);
    }

    /// Whether a reply's payload may reach a module: within
    /// `max_event_bytes`, and JSON when no orchestrator sent it.
    fn check_reply(&self, topic: &str, from: Option<&str>, payload: &[u8]) -> Result<(), String> {
        self.bus
            .check_size(topic, payload)
            .map_err(|e| e.to_string())?;
        if from.is_none() && serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_err() {
            return Err("a reply from outside an orchestrator is not JSON".into());
        }
        Ok(())
    }

    fn deliver(
        &self,
        requester: &str,
        id: u64,
        kind: EventKind,
        payload: &[u8],
        from: Option<Arc<str>>,
    ) {
        if self
            .requests
            .answer_remote(requester, id, kind, payload, from)
        {
            let counter = match kind {
                EventKind::Reply => &self.stats.replies,
                _ => &self.stats.no_responders,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.late.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn malformed(&self, topic: &str, why: &str) {
        let seen = self.stats.malformed.fetch_add(1, Ordering::Relaxed) + 1;
        if self.dropped_said.due() {
            tracing::warn!(
                "[BRIDGE] a reply to a request on '{topic}' is dropped: {} ({seen} dropped so \
                 far); the requester gets its timeout",
                caps::clipped(why, 240)
            );
        }
    }
}
