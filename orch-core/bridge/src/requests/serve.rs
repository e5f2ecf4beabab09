//! The serve side: requests from other nodes, handed to the local modules.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap, HeaderValue};
use bytes::Bytes;
use orch_runtime::bus::{Admission, Bus, BusEvent, Delivered, EventSink, SubscriberId};
use orch_runtime::pace::Pacer;
use orch_runtime::requests::{MAX_REQUEST_TIMEOUT, Requester, Requests};
use orch_sdk::EventKind;
use tokio::sync::mpsc;

use super::{DEFAULT_SERVED_TIMEOUT, MAX_SERVED, MAX_SERVED_BYTES, RequestStats, TIMEOUT_HEADER};
use crate::node::Identity;
use crate::service::{NOT_SERVED, Service};
use crate::{caps, envelope};

/// Where the local answers to served requests arrive: a subscriber of the
/// bus that subscribes to nothing (answers are delivered to it by id).
pub(super) struct AnswerSink(pub(super) mpsc::Sender<Arc<BusEvent>>);

impl EventSink for AnswerSink {
    fn deliver(&self, event: &Arc<BusEvent>, _: Admission) -> Delivered {
        match self.0.try_send(Arc::clone(event)) {
            Ok(()) => Delivered::Accepted,
            Err(mpsc::error::TrySendError::Full(_)) => Delivered::Dropped,
            Err(mpsc::error::TrySendError::Closed(_)) => Delivered::Gone,
        }
    }
}

/// One served request on its way to the local modules.
pub(super) struct Job {
    requester: Arc<str>,
    id: u64,
    topic: String,
    payload: Bytes,
    deadline: Instant,
}

/// The request thread: hands served requests to the local modules (a full
/// `block` mailbox may wait here, never in the bridge's runtime). A request
/// no one took, or with no time left, is told back at once.
pub(super) fn hand_over(
    queue: &crossbeam_channel::Receiver<Job>,
    requests: &Requests,
    sink: SubscriberId,
    answers: &mpsc::Sender<Arc<BusEvent>>,
    stats: &RequestStats,
) {
    while let Ok(job) = queue.recv() {
        let requester = Requester {
            name: Arc::clone(&job.requester),
            id: sink,
        };
        let left = job.deadline.saturating_duration_since(Instant::now());
        let refused = if left < Duration::from_millis(1) {
            stats.expired.fetch_add(1, Ordering::Relaxed);
            Some(EventKind::Timeout)
        } else {
            stats.served.fetch_add(1, Ordering::Relaxed);
            requests
                .request(&requester, job.id, &job.topic, &job.payload, left)
                .err()
                .map(|e| {
                    tracing::debug!(
                        "[BRIDGE] a request from {} on '{}': {e}",
                        job.requester,
                        job.topic
                    );
                    EventKind::NoResponders
                })
        };
        if let Some(kind) = refused {
            let notice = BusEvent::new(&job.topic, b"null", None).in_exchange(kind, job.id, None);
            if answers.blocking_send(Arc::new(notice)).is_err() {
                return;
            }
        }
    }
}

/// A served request waiting for its local answer.
pub(super) struct Waiting {
    request: async_nats::service::Request,
    deadline: Instant,
    /// Its message's length on arrival, counted against
    /// [`MAX_SERVED_BYTES`] (the payload, handed on meanwhile, is freed
    /// once the local bus has its own copy: counted until the answer).
    bytes: usize,
}

/// What a waiting request holds beside its payload: its message (subject,
/// reply subject, headers), its place in the table.
const WAITING_OVERHEAD: usize = 512;

/// The served requests waiting for their local answers, at most
/// [`MAX_SERVED`] of them and [`MAX_SERVED_BYTES`] of their messages.
#[derive(Default)]
pub(super) struct WaitingRequests {
    by_id: HashMap<u64, Waiting>,
    bytes: usize,
}

impl WaitingRequests {
    /// Whether a request whose message is `length` bytes long has room.
    fn has_room(&self, length: usize) -> bool {
        self.by_id.len() < MAX_SERVED
            && self.bytes.saturating_add(length + WAITING_OVERHEAD) <= MAX_SERVED_BYTES
    }

    fn insert(&mut self, id: u64, request: async_nats::service::Request, deadline: Instant) {
        let bytes = request.message.length + WAITING_OVERHEAD;
        self.bytes += bytes;
        if let Some(replaced) = self.by_id.insert(
            id,
            Waiting {
                request,
                deadline,
                bytes,
            },
        ) {
            self.bytes -= replaced.bytes;
        }
    }

    fn remove(&mut self, id: u64) -> Option<Waiting> {
        let waiting = self.by_id.remove(&id)?;
        self.bytes -= waiting.bytes;
        Some(waiting)
    }

    /// Lets go of the requests kept past their deadline.
    fn sweep(&mut self, now: Instant) {
        let bytes = &mut self.bytes;
        self.by_id.retain(|_, waiting| {
            let keep = waiting.deadline + KEPT_PAST_DEADLINE > now;
            if !keep {
                *bytes -= waiting.bytes;
            }
            keep
        });
    }
}

/// What the serving side does next.
enum Next {
    /// Subscriptions changed on the bus.
    Changed,
    /// A request from NATS on the topic of this index.
    Arrived(usize, Box<async_nats::service::Request>),
    /// A local answer (or the notice that none comes).
    Answered(Arc<BusEvent>),
    /// Time to let go of waiting requests whose answer was lost.
    Sweep,
}

/// How long past its deadline a served request keeps its place at most
/// (its answer, a timeout at the latest, always comes before).
const KEPT_PAST_DEADLINE: Duration = Duration::from_secs(5);

/// The serving side, on the bridge's runtime.
pub(super) struct Server {
    pub(super) bus: Bus,
    pub(super) serve: Vec<String>,
    pub(super) outbox: Option<SubscriberId>,
    pub(super) prefix: String,
    pub(super) me: Identity,
    pub(super) jobs: crossbeam_channel::Sender<Job>,
    pub(super) stats: Arc<RequestStats>,
    pub(super) waiting: WaitingRequests,
    pub(super) next_id: u64,
    pub(super) dropped_said: Pacer,
}

impl Server {
    pub(super) async fn run(
        mut self,
        client: Client,
        mut answers: mpsc::Receiver<Arc<BusEvent>>,
        mut changed: mpsc::Receiver<()>,
    ) {
        let mut service = match Service::start(&client, &self.prefix, &self.me, &self.serve).await {
            Ok(service) => service,
            Err(e) => {
                tracing::error!(
                    "[BRIDGE] cannot register the NATS service: {e}; requests from other \
                     nodes are not served"
                );
                return std::future::pending().await;
            }
        };
        let (arrived_tx, mut arrived) = mpsc::channel(crate::import::BATCH);
        service.reconcile(&self.wanted(), &arrived_tx).await;
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        loop {
            // Answers first: they free places.
            let next = std::future::poll_fn(|cx| {
                if let Poll::Ready(Some(answer)) = answers.poll_recv(cx) {
                    return Poll::Ready(Next::Answered(answer));
                }
                if let Poll::Ready(Some(())) = changed.poll_recv(cx) {
                    return Poll::Ready(Next::Changed);
                }
                if let Poll::Ready(Some((topic, request))) = arrived.poll_recv(cx) {
                    return Poll::Ready(Next::Arrived(topic, Box::new(request)));
                }
                if sweep.poll_tick(cx).is_ready() {
                    return Poll::Ready(Next::Sweep);
                }
                Poll::Pending
            })
            .await;
            match next {
                Next::Answered(answer) => self.answered(&answer).await,
                Next::Changed => service.reconcile(&self.wanted(), &arrived_tx).await,
                Next::Arrived(topic, request) => self.arrived(topic, *request).await,
                Next::Sweep => self.waiting.sweep(Instant::now()),
            }
        }
    }

    /// Which served topics a module of this node subscribes to now.
    fn wanted(&self) -> Vec<bool> {
        self.serve
            .iter()
            .map(|topic| self.bus.has_subscribers_except(topic, self.outbox))
            .collect()
    }

    /// A request from NATS on served `topic` (an index into `serve`).
    async fn arrived(&mut self, topic: usize, mut request: async_nats::service::Request) {
        let Some(topic) = self.serve.get(topic).cloned() else {
            return;
        };
        let message = &request.message;
        let judged = judge(message.headers.as_ref(), &message.payload, |payload| {
            self.bus
                .check_size(&topic, payload)
                .map_err(|e| e.to_string())
        });
        let (requester, timeout) = match judged {
            Ok(judged) => judged,
            Err(Refusal::Expired) => {
                self.stats.expired.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(Refusal::Malformed(why)) => {
                let seen = self.stats.malformed.fetch_add(1, Ordering::Relaxed) + 1;
                if self.dropped_said.due() {
                    tracing::warn!(
                        "[BRIDGE] a request on '{topic}' is dropped: {} ({seen} dropped so far)",
                        caps::clipped(&why, 240)
                    );
                }
                return;
            }
        };
        if !self.waiting.has_room(message.length) {
            self.unserved(&request).await;
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        // The waiting request keeps its reply subject, not its payload,
        // which goes on alone (a large one as a copy of its own: the
        // client's is a slice of its read buffer, kept whole).
        let payload = crate::backlog::detached(std::mem::take(&mut request.message.payload));
        let job = Job {
            requester: requester.into(),
            id,
            topic,
            payload,
            deadline: Instant::now() + timeout,
        };
        let deadline = job.deadline;
        if self.jobs.try_send(job).is_err() {
            self.unserved(&request).await;
            return;
        }
        self.waiting.insert(id, request, deadline);
    }

    /// Tells the requester this node cannot take its request: it tries
    /// another one.
    async fn unserved(&self, request: &async_nats::service::Request) {
        self.stats.unserved.fetch_add(1, Ordering::Relaxed);
        let error = async_nats::service::error::Error {
            status: "no local subscriber".into(),
            code: NOT_SERVED,
        };
        let _ = request.respond(Err(error)).await;
    }

    /// A local answer to served request `answer.request_id`.
    async fn answered(&mut self, answer: &BusEvent) {
        let Some(waiting) = self.waiting.remove(answer.request_id) else {
            return;
        };
        match answer.kind {
            EventKind::Reply => {
                let headers = envelope::headers(answer, &self.me, None);
                let payload = Bytes::copy_from_slice(answer.payload());
                if waiting
                    .request
                    .respond_with_headers(Ok(payload), headers)
                    .await
                    .is_ok()
                {
                    self.stats.served_replies.fetch_add(1, Ordering::Relaxed);
                }
            }
            EventKind::NoResponders => self.unserved(&waiting.request).await,
            // Timed out here: the requester's own timer answers it.
            _ => {}
        }
    }
}

/// Why a received request is not handed to the local modules.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No time left.
    Expired,
    /// It breaks the caps.
    Malformed(String),
}

/// Reads a received request: who asks (`<node>/<module>`, `nats/client`
/// for a plain NATS client) and how long it may take here.
pub(crate) fn judge(
    headers: Option<&HeaderMap>,
    payload: &[u8],
    check_size: impl FnOnce(&[u8]) -> Result<(), String>,
) -> Result<(String, Duration), Refusal> {
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(HeaderValue::as_str);
    let fields = header(envelope::ENVELOPE)
        .map(envelope::fields)
        .transpose()
        .map_err(Refusal::Malformed)?;
    let timeout = match header(TIMEOUT_HEADER) {
        Some(millis) => {
            let millis = caps::number("the time left", millis)
                .map_err(|e| Refusal::Malformed(format!("{TIMEOUT_HEADER}: {e}")))?;
            if millis == 0 {
                return Err(Refusal::Expired);
            }
            Duration::from_millis(millis).min(MAX_REQUEST_TIMEOUT)
        }
        None => DEFAULT_SERVED_TIMEOUT,
    };
    check_size(payload).map_err(Refusal::Malformed)?;
    let requester = match &fields {
        Some(fields) => format!("{}/{}", fields.origin, fields.source.unwrap_or("host")),
        None => {
            serde_json::from_slice::<serde::de::IgnoredAny>(payload).map_err(|e| {
                Refusal::Malformed(format!(
                    "it came from outside an orchestrator (no {}) with a payload that is not \
                     JSON ({e})",
                    envelope::ENVELOPE
                ))
            })?;
            "nats/client".to_owned()
        }
    };
    Ok((requester, timeout))
}
