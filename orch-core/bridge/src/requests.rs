//! Requests across nodes: `ctx.request` through NATS request/reply.
//!
//! - **ask** (`bridge.nats.ask`): a request on a matching topic that no
//!   local module takes is offered to the bridge by the runtime's request
//!   table ([`orch_runtime::requests::RemoteRequests`]) and sent to
//!   `orch-req.<prefix>.<topic>`. The request stays pending in the table
//!   with its own timer, so the requester gets exactly one answer, as
//!   locally: the first reply, "no responders" (NATS says no one listens,
//!   or every responder tried had no local subscriber left), or the local
//!   timeout. A reply after that is dropped (counted `late`).
//! - **serve** (`bridge.nats.serve`): while a module of this node subscribes
//!   to a served topic, the node holds a queue subscription (an endpoint of
//!   its NATS service, [`crate::service`]) on that topic's subject, so NATS
//!   spreads the requests over the nodes that can answer and says "no
//!   responders" at once when none can (during a stop, for example). A
//!   request is handed to the local modules through the same request table
//!   (so the first local reply wins and a second is refused), and the reply
//!   goes back through NATS's reply subject.
//!
//! The subjects are outside `<prefix>.>` on purpose: a JetStream stream of
//! the bridge holds `<prefix>.>`, and would store requests and answer them
//! with its own acknowledgement; an `import: [">"]` would deliver them as
//! events.
//!
//! **The deadline** travels as the time left, `Orch-Timeout: <ms>`, not as
//! an instant: the nodes' clocks need not agree (an absolute time would
//! make a request expire early or late by their skew), and the transit time
//! it leaves out is what a broker on the same network adds, milliseconds.
//! The responder counts from the moment the request reaches it, drops it
//! when no time is left before a module got it, and gives its local
//! modules only what is left (so a slow module's late reply is refused
//! there, as locally). The requester's own timer stays the authority.
//!
//! **A peer may forge** anything: the envelope (`Orch-Envelope`, checked
//! against [`crate::caps`]), the time left (digits, at most
//! [`MAX_REQUEST_TIMEOUT`]), the payload (at most `max_event_bytes`, JSON).
//! What breaks them is dropped and counted, never answered (a reply to a
//! forged reply subject would let a peer publish in this node's name).
//! Everything is bounded: [`MAX_ASKED`] requests sent and waiting, and
//! [`MAX_SERVED`] received and waiting for a local answer; past either,
//! a request is refused at once (`ctx.request` fails; a served one gets
//! the "no local subscriber" answer and the requester tries another node).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap, HeaderValue, RequestErrorKind};
use bytes::Bytes;
use orch_runtime::bus::{Admission, Bus, BusEvent, Delivered, EventSink, SubscriberId};
use orch_runtime::pace::Pacer;
use orch_runtime::requests::{
    Asked, MAX_REQUEST_TIMEOUT, RemoteAsk, RemoteRequests, Requester, Requests,
};
use orch_sdk::EventKind;
use tokio::sync::mpsc;

use crate::connection::Link;
use crate::node::Identity;
use crate::service::{NOT_SERVED, Service};
use crate::{caps, envelope};

/// The header with the time the requester still waits, in milliseconds.
pub const TIMEOUT_HEADER: &str = "Orch-Timeout";

/// Requests sent to NATS and waiting for their answer, at most.
pub const MAX_ASKED: usize = 4_096;

/// Requests received from NATS and waiting for a local answer, at most.
pub const MAX_SERVED: usize = 1_024;

/// How often one request is sent again after a responder said it has no
/// local subscriber left (it stopped meanwhile), at most.
const MAX_TRIES: u32 = 3;

/// How long a request without [`TIMEOUT_HEADER`] (from a plain NATS client)
/// may take here.
pub const DEFAULT_SERVED_TIMEOUT: Duration = Duration::from_secs(5);

/// How often, at most, a dropped request or reply is warned about.
const DROPPED_SAID_EVERY: Duration = Duration::from_secs(10);

/// Counters of requests across nodes.
#[derive(Default)]
pub struct RequestStats {
    /// Requests sent to NATS (each try).
    pub asked: AtomicU64,
    /// Replies from another node delivered to a local requester.
    pub replies: AtomicU64,
    /// "No responders" delivered to a local requester.
    pub no_responders: AtomicU64,
    /// Replies that came after the requester's answer (timeout).
    pub late: AtomicU64,
    /// Requests not sent: [`MAX_ASKED`] were waiting already.
    pub ask_refused: AtomicU64,
    /// Requests received from another node and handed to local modules.
    pub served: AtomicU64,
    /// Replies of local modules sent back.
    pub served_replies: AtomicU64,
    /// Received requests answered "no local subscriber" (none left, or
    /// [`MAX_SERVED`] waiting).
    pub unserved: AtomicU64,
    /// Received requests dropped: no time left.
    pub expired: AtomicU64,
    /// Received requests or replies dropped: they break the caps.
    pub malformed: AtomicU64,
}

impl RequestStats {
    /// The counters now, as status and the metrics show them.
    pub fn counts(&self) -> orch_runtime::status::RequestCounts {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        orch_runtime::status::RequestCounts {
            asked: get(&self.asked),
            replies: get(&self.replies),
            no_responders: get(&self.no_responders),
            late: get(&self.late),
            ask_refused: get(&self.ask_refused),
            served: get(&self.served),
            served_replies: get(&self.served_replies),
            unserved: get(&self.unserved),
            expired: get(&self.expired),
            malformed: get(&self.malformed),
        }
    }
}

/// Whether `topic` matches one of `patterns`.
fn matches_any(patterns: &[String], topic: &str) -> bool {
    patterns.iter().any(|p| orch_sdk::topic::matches(p, topic))
}

/// One request on its way to NATS.
struct Ask {
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
struct Asker {
    patterns: Vec<String>,
    link: Arc<Link>,
    in_flight: Arc<AtomicUsize>,
    queue: mpsc::Sender<Ask>,
    stats: Arc<RequestStats>,
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

/// Where the local answers to served requests arrive: a subscriber of the
/// bus that subscribes to nothing (answers are delivered to it by id).
struct AnswerSink(mpsc::Sender<Arc<BusEvent>>);

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
struct Job {
    requester: Arc<str>,
    id: u64,
    topic: String,
    payload: Bytes,
    deadline: Instant,
}

/// What the bridge's runtime needs to serve and ask.
pub(crate) struct Setup {
    bus: Bus,
    serve: Vec<String>,
    outbox: Option<SubscriberId>,
    asks: mpsc::Receiver<Ask>,
    answers: mpsc::Receiver<Arc<BusEvent>>,
    jobs: crossbeam_channel::Sender<Job>,
    changed: mpsc::Receiver<()>,
    requests: Requests,
    stats: Arc<RequestStats>,
}

/// What stays with the [`crate::Bridge`]: undone at shutdown.
pub(crate) struct Wired {
    requests: Requests,
    bus: Bus,
    answer_sink: SubscriberId,
    asking: bool,
}

impl Wired {
    /// Sends no more requests and takes the answer sink off the bus.
    pub(crate) fn unwire(self) {
        if self.asking {
            self.requests.set_remote(None);
        }
        self.bus.remove(self.answer_sink);
    }
}

/// Wires the request table to the bridge: `ask` from now on, `serve` once
/// the runtime has the setup. Returns the setup for the runtime and what to
/// undo at shutdown.
pub(crate) fn wire(
    requests: &Requests,
    bus: &Bus,
    serve: &[String],
    ask: &[String],
    outbox: Option<SubscriberId>,
    link: &Arc<Link>,
    stats: &Arc<RequestStats>,
) -> Result<(Setup, Wired), crate::BridgeError> {
    let (asks_tx, asks) = mpsc::channel(MAX_ASKED);
    let (answers_tx, answers) = mpsc::channel(2 * MAX_SERVED);
    let answer_sink = bus.register(Arc::new(AnswerSink(answers_tx.clone())));
    let (jobs, queue) = crossbeam_channel::bounded::<Job>(MAX_SERVED);
    {
        let requests = requests.clone();
        let stats = Arc::clone(stats);
        std::thread::Builder::new()
            .name("orch-bridge-serve".into())
            .spawn(move || hand_over(&queue, &requests, answer_sink, &answers_tx, &stats))
            .map_err(|e| {
                crate::BridgeError::Runtime(format!("cannot start the request thread: {e}"))
            })?;
    }
    // One change told is enough: the runtime reads every topic again.
    let (changes, changed) = mpsc::channel(1);
    bus.watch_subscriptions(Arc::new(move || {
        let _ = changes.try_send(());
    }));
    let asking = !ask.is_empty();
    if asking {
        requests.set_remote(Some(Arc::new(Asker {
            patterns: ask.to_vec(),
            link: Arc::clone(link),
            in_flight: Arc::default(),
            queue: asks_tx,
            stats: Arc::clone(stats),
        })));
    }
    let setup = Setup {
        bus: bus.clone(),
        serve: serve.to_vec(),
        outbox,
        asks,
        answers,
        jobs,
        changed,
        requests: requests.clone(),
        stats: Arc::clone(stats),
    };
    let wired = Wired {
        requests: requests.clone(),
        bus: bus.clone(),
        answer_sink,
        asking,
    };
    Ok((setup, wired))
}

/// Requests across nodes as the [`crate::Bridge`] holds them: what the
/// configuration asks for, until wired to the request table
/// ([`crate::Bridge::serve_requests`]), then what to undo at shutdown.
pub(crate) struct Plan {
    serve: Vec<String>,
    ask: Vec<String>,
    setup: Option<tokio::sync::oneshot::Sender<Setup>>,
    wired: Option<Wired>,
    stats: Arc<RequestStats>,
}

impl Plan {
    /// The plan of `settings`, and where the bridge's runtime gets its setup.
    pub(crate) fn new(
        settings: &orch_config::NatsSettings,
    ) -> (Self, tokio::sync::oneshot::Receiver<Setup>) {
        let (setup, wait) = tokio::sync::oneshot::channel();
        let plan = Self {
            serve: settings.serve.clone(),
            ask: settings.ask.clone(),
            setup: Some(setup),
            wired: None,
            stats: Arc::default(),
        };
        (plan, wait)
    }

    /// Undoes the wiring: no more requests are sent; served ones wait no more.
    pub(crate) fn unwire(&mut self) {
        self.setup = None;
        if let Some(wired) = self.wired.take() {
            wired.unwire();
        }
    }
}

impl crate::Bridge {
    /// Serves the `serve` topics' requests from other nodes with this
    /// node's modules and sends the `ask` topics' requests that no local
    /// module takes to NATS, through `requests` (the table every module's
    /// `ctx.request` and `ctx.reply` go through). Once; a no-op without
    /// `serve` and `ask`.
    pub fn serve_requests(&mut self, requests: &Requests) -> Result<(), crate::BridgeError> {
        let plan = &mut self.requests;
        if plan.serve.is_empty() && plan.ask.is_empty() {
            return Ok(());
        }
        let Some(go) = plan.setup.take() else {
            return Ok(());
        };
        let outbox = self.outbox.as_ref().map(crate::outbox::Outbox::subscriber);
        let (setup, wired) = wire(
            requests,
            &self.bus,
            &plan.serve,
            &plan.ask,
            outbox,
            &self.link,
            &plan.stats,
        )?;
        plan.wired = Some(wired);
        let _ = go.send(setup);
        tracing::info!(
            "[BRIDGE] requests: serves [{}], asks [{}]",
            plan.serve.join(", "),
            plan.ask.join(", ")
        );
        Ok(())
    }

    /// The counters of requests across nodes.
    pub fn request_stats(&self) -> &RequestStats {
        &self.requests.stats
    }

    /// The counters, shared (for the probe).
    pub(crate) fn request_stats_shared(&self) -> Arc<RequestStats> {
        Arc::clone(&self.requests.stats)
    }
}

/// The request thread: hands served requests to the local modules (a full
/// `block` mailbox may wait here, never in the bridge's runtime). A request
/// no one took, or with no time left, is told back at once.
fn hand_over(
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

/// Serves and asks until the bridge stops (or forever without a setup).
pub(crate) async fn run(
    client: Client,
    prefix: String,
    me: Identity,
    setup: tokio::sync::oneshot::Receiver<Setup>,
) {
    let Ok(setup) = setup.await else {
        return std::future::pending().await;
    };
    let Setup {
        bus,
        serve,
        outbox,
        asks,
        answers,
        jobs,
        changed,
        requests,
        stats,
    } = setup;
    let asking = ask_loop(
        client.clone(),
        prefix.clone(),
        me.clone(),
        asks,
        requests,
        bus.clone(),
        Arc::clone(&stats),
    );
    let serving = async {
        if serve.is_empty() {
            return std::future::pending().await;
        }
        let server = Server {
            bus,
            serve,
            outbox,
            prefix,
            me,
            jobs,
            stats,
            waiting: HashMap::new(),
            next_id: 0,
            dropped_said: Pacer::new(DROPPED_SAID_EVERY),
        };
        server.run(client, answers, changed).await;
    };
    futures_util::future::join(asking, serving).await;
}

/// Sends every request offered, each in a task of its own.
async fn ask_loop(
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

/// A served request waiting for its local answer.
struct Waiting {
    request: async_nats::service::Request,
    deadline: Instant,
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
struct Server {
    bus: Bus,
    serve: Vec<String>,
    outbox: Option<SubscriberId>,
    prefix: String,
    me: Identity,
    jobs: crossbeam_channel::Sender<Job>,
    stats: Arc<RequestStats>,
    waiting: HashMap<u64, Waiting>,
    next_id: u64,
    dropped_said: Pacer,
}

impl Server {
    async fn run(
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
                Next::Sweep => {
                    let now = Instant::now();
                    self.waiting
                        .retain(|_, waiting| waiting.deadline + KEPT_PAST_DEADLINE > now);
                }
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
    async fn arrived(&mut self, topic: usize, request: async_nats::service::Request) {
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
        if self.waiting.len() >= MAX_SERVED {
            self.unserved(&request).await;
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        let job = Job {
            requester: requester.into(),
            id,
            topic,
            payload: message.payload.clone(),
            deadline: Instant::now() + timeout,
        };
        let deadline = job.deadline;
        if self.jobs.try_send(job).is_err() {
            self.unserved(&request).await;
            return;
        }
        self.waiting.insert(id, Waiting { request, deadline });
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
        let Some(waiting) = self.waiting.remove(&answer.request_id) else {
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

#[cfg(test)]
mod tests;
