//! The core NATS import loop: one subscription per imported pattern, at
//! most once (a refused delivery is not asked for again).
//!
//! At every turn it moves all the client read into its own queue of
//! unread messages, judges them into events for a stretch, and hands the
//! events to the local bus; while a full `block` mailbox holds a delivery
//! up it goes on reading. Both queues are bounded in bytes
//! ([`crate::backlog`]): the client's own buffer, bounded in messages only,
//! never fills, and the server, which cuts off a client that falls 64 MB
//! behind, never waits for this node; what passes the bounds is dropped
//! and counted.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_nats::{Client, Message, Subscriber};
use futures_util::StreamExt;

use crate::backlog::{BACKLOG_BYTES, Bounded, UNREAD_BYTES};
use crate::delivery::{Deliverer, Delivery, Stopped};
use crate::envelope;
use crate::import::{BATCH, Importer, Verdict};
use crate::stats::WorkStats;

/// What an unread message holds beside its bytes on the wire (the message,
/// its header map's table and strings), counted against its queue's bound.
const MESSAGE_OVERHEAD: usize = 512;

/// What an event holds beside its payload (the event, its share of the
/// names), counted against the backlog's bound.
const EVENT_OVERHEAD: usize = 256;

/// The payload bytes of one batch handed to the bus, at most (after its
/// first event): the batches waiting for the delivery thread, a few, stay
/// small next to the backlog.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The longest stretch the loop judges and hands on before the client (and
/// the runtime's other tasks: exports, presence) have a turn.
pub(crate) const STRETCH: Duration = Duration::from_millis(5);

/// Runs the core import of `patterns` until every subscription ended or the
/// delivery thread is gone.
pub async fn run(client: Client, patterns: Vec<String>, importer: Importer) {
    let deliverer = Deliverer::start(
        importer.bus.clone(),
        Arc::clone(&importer.stats),
        Arc::clone(&importer.refusals),
    );
    let mut subscriptions = Vec::new();
    for pattern in &patterns {
        let subject = envelope::subject(&importer.prefix, pattern);
        match client.subscribe(subject.clone()).await {
            Ok(subscription) => subscriptions.push(subscription),
            Err(e) => tracing::error!("[BRIDGE] cannot subscribe to '{subject}': {e}"),
        }
    }
    let intake = Intake::new(&importer, subscriptions, None);
    // The runtime's fair share (a budget of channel reads per turn) would
    // leave most of what the client read in its buffer: the loop reads it
    // all, and yields after each stretch instead.
    tokio::task::unconstrained(import(intake, &deliverer)).await;
}

/// The loop: reads, judges and hands on a stretch at a time, and waits for
/// the client once nothing is left.
async fn import(mut intake: Intake<'_>, deliverer: &Deliverer) {
    loop {
        let stretch = Instant::now() + STRETCH;
        std::future::poll_fn(|cx| {
            intake.read(cx);
            Poll::Ready(())
        })
        .await;
        intake.judge(stretch);
        while intake.has_judged() && Instant::now() < stretch {
            let batch = intake.next_batch();
            let mut delivering = std::pin::pin!(deliverer.deliver_all(batch));
            let waited = intake.wait_reading(delivering.as_mut(), usize::MAX).await;
            if !matches!(waited, Some(Ok(()))) {
                return;
            }
            intake.judge(stretch);
        }
        if intake.holds_any() {
            tokio::task::yield_now().await;
            continue;
        }
        if !intake.is_open() {
            return;
        }
        std::future::poll_fn(|cx| intake.until_read(cx)).await;
    }
}

/// Subscriptions, and what the import holds of what they brought: the
/// messages read and not judged yet, the events judged and not delivered
/// yet, each bounded in bytes. Serves the core imports and the core work
/// queues.
pub(crate) struct Intake<'i> {
    subscriptions: Vec<Subscriber>,
    /// Messages read and not judged yet.
    unread: Bounded<Message>,
    /// Events judged and not delivered yet.
    backlog: Bounded<Delivery>,
    importer: &'i Importer,
    /// A work group's counters: its messages are jobs (taken as read,
    /// held from judged until handled).
    jobs: Option<Arc<WorkStats>>,
}

impl<'i> Intake<'i> {
    /// An intake of `subscriptions` judged by `importer`; of jobs counted
    /// in `jobs`, for a work group.
    pub(crate) fn new(
        importer: &'i Importer,
        subscriptions: Vec<Subscriber>,
        jobs: Option<Arc<WorkStats>>,
    ) -> Self {
        let what = if jobs.is_some() {
            ("jobs not judged yet", "jobs not handed on yet")
        } else {
            ("messages not judged yet", "events not delivered yet")
        };
        Self {
            subscriptions,
            unread: Bounded::new(UNREAD_BYTES, what.0, Arc::clone(&importer.stats)),
            backlog: Bounded::new(BACKLOG_BYTES, what.1, Arc::clone(&importer.stats)),
            importer,
            jobs,
        }
    }

    /// The importer judging the messages.
    pub(crate) fn importer(&self) -> &'i Importer {
        self.importer
    }

    /// Reads from `subscription` too.
    pub(crate) fn add(&mut self, subscription: Subscriber) {
        self.subscriptions.push(subscription);
    }

    /// Unsubscribes from every subscription: the server sends no more, and
    /// what the client read already is still read here until each ends
    /// (what was on the wire meanwhile is lost: at most once).
    pub(crate) async fn unsubscribe_all(&mut self) {
        for subscription in &mut self.subscriptions {
            if let Err(e) = subscription.drain().await {
                tracing::debug!("[BRIDGE] cannot unsubscribe: {e}");
            }
        }
    }

    /// Whether any subscription is still open (or still has messages the
    /// client received before it ended).
    pub(crate) fn is_open(&self) -> bool {
        !self.subscriptions.is_empty()
    }

    /// Bytes of messages read and not judged yet, by the costs counted.
    pub(crate) fn unread_bytes(&self) -> usize {
        self.unread.bytes()
    }

    /// Whether events wait to be handed on.
    pub(crate) fn has_judged(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Whether messages or events are held.
    pub(crate) fn holds_any(&self) -> bool {
        !self.unread.is_empty() || !self.backlog.is_empty()
    }

    /// Moves every message ready on the subscriptions into the unread
    /// queue (which drops what passes its bound); lets go of the ended
    /// subscriptions.
    pub(crate) fn read(&mut self, cx: &mut Context<'_>) {
        let mut index = 0;
        while index < self.subscriptions.len() {
            let ended = loop {
                match self.subscriptions[index].poll_next_unpin(cx) {
                    Poll::Ready(Some(message)) => self.keep(message),
                    Poll::Ready(None) => break true,
                    Poll::Pending => break false,
                }
            };
            if ended {
                self.subscriptions.swap_remove(index);
            } else {
                index += 1;
            }
        }
    }

    /// Ready once a message was read or every subscription ended.
    pub(crate) fn until_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.read(cx);
        if self.unread.is_empty() && self.is_open() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// Keeps `message` unread, if there is room.
    fn keep(&mut self, mut message: Message) {
        if let Some(jobs) = &self.jobs {
            jobs.taken
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let cost = message.length.saturating_add(MESSAGE_OVERHEAD);
        if self.unread.has_room(cost) {
            message.payload = crate::backlog::detached(std::mem::take(&mut message.payload));
        }
        self.unread.push(message, cost);
    }

    /// Up to [`BATCH`] judged events, and no more than [`BATCH_BYTES`] of
    /// payload after the first.
    pub(crate) fn next_batch(&mut self) -> Vec<Delivery> {
        let mut bytes = 0;
        std::iter::from_fn(|| {
            if bytes >= BATCH_BYTES {
                return None;
            }
            let delivery = self.backlog.pop()?;
            bytes += delivery.event.payload().len();
            Some(delivery)
        })
        .take(BATCH)
        .collect()
    }

    /// Judges unread messages into the backlog while it has room, until
    /// `stretch` is over.
    pub(crate) fn judge(&mut self, stretch: Instant) {
        // The clock is read every 64 messages or 64 KiB (a large payload
        // may take long to check).
        let mut since_look = (0_usize, 0_usize);
        while let Some(cost) = self.unread.front_cost() {
            let wire = cost - MESSAGE_OVERHEAD;
            if !self.backlog.has_room(wire + EVENT_OVERHEAD) {
                return;
            }
            if since_look.0 >= 64 || since_look.1 >= 64 * 1024 {
                if Instant::now() >= stretch {
                    return;
                }
                since_look = (0, 0);
            }
            let Some(message) = self.unread.pop() else {
                return;
            };
            since_look = (since_look.0 + 1, since_look.1 + wire);
            let verdict = self.importer.judge(
                message.subject.as_str(),
                message.headers.as_ref(),
                &message.payload,
                false,
            );
            if let Verdict::Deliver { mut event, .. } = verdict {
                let cost = event.payload().len() + EVENT_OVERHEAD;
                if let Some(jobs) = &self.jobs {
                    event = held_job(event, jobs);
                }
                let delivery = Delivery {
                    event: Arc::new(event),
                    refused: None,
                    job: None,
                };
                self.backlog.push(delivery, cost);
            }
        }
    }

    /// Waits for `delivering`, reading what the client brings meanwhile (a
    /// full `block` mailbox may hold a delivery up for long): its outcome,
    /// or `None` as soon as more than `until_unread` bytes are unread
    /// (`delivering` may be waited for again).
    pub(crate) async fn wait_reading<F>(
        &mut self,
        mut delivering: std::pin::Pin<&mut F>,
        until_unread: usize,
    ) -> Option<Result<(), Stopped>>
    where
        F: Future<Output = Result<(), Stopped>>,
    {
        std::future::poll_fn(|cx| {
            if let Poll::Ready(delivered) = delivering.as_mut().poll(cx) {
                return Poll::Ready(Some(delivered));
            }
            self.read(cx);
            if self.unread.bytes() > until_unread {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }
}

/// `event`, a job of the group counted in `jobs`: held from now until its
/// handlers let go.
fn held_job(
    event: orch_runtime::bus::BusEvent,
    jobs: &Arc<WorkStats>,
) -> orch_runtime::bus::BusEvent {
    jobs.hold();
    let done = Arc::clone(jobs);
    event.when_done(move || {
        done.release();
        done.handled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
}
