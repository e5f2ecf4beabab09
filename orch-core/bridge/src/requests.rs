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
//! [`MAX_SERVED`] received and waiting for a local answer, holding
//! [`MAX_SERVED_BYTES`] at most; past any of them,
//! a request is refused at once (`ctx.request` fails; a served one gets
//! the "no local subscriber" answer and the requester tries another node).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::Client;
use orch_runtime::bus::{Bus, BusEvent, SubscriberId};
use orch_runtime::pace::Pacer;
use orch_runtime::requests::Requests;
use tokio::sync::mpsc;

use crate::connection::Link;
use crate::node::Identity;
use ask::{Ask, Asker, ask_loop};
use serve::{AnswerSink, Job, Server, hand_over};

/// The header with the time the requester still waits, in milliseconds.
pub const TIMEOUT_HEADER: &str = "Orch-Timeout";

/// Requests sent to NATS and waiting for their answer, at most.
pub const MAX_ASKED: usize = 4_096;

/// Requests received from NATS and waiting for a local answer, at most.
pub const MAX_SERVED: usize = 1_024;

/// Bytes of the requests received from NATS and waiting for a local
/// answer, at most (1,024 requests of the server's largest would be a
/// gigabyte or more).
pub const MAX_SERVED_BYTES: usize = 64 * 1024 * 1024;

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
            waiting: serve::WaitingRequests::default(),
            next_id: 0,
            dropped_said: Pacer::new(DROPPED_SAID_EVERY),
        };
        server.run(client, answers, changed).await;
    };
    futures_util::future::join(asking, serving).await;
}

mod ask;
mod serve;

#[cfg(test)]
mod tests;
