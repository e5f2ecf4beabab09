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

/// What an unread message holds beside its bytes on the wire (the message,
/// its header map's table and strings), counted against its queue's bound.
const MESSAGE_OVERHEAD: usize = 512;

/// What an event holds beside its payload (the event, its share of the
/// names), counted against the backlog's bound.
const EVENT_OVERHEAD: usize = 256;

/// Payloads this large or larger are held unread as copies of their own:
/// the client's payload is a slice of its read buffer, which it keeps
/// whole (with the start of the next messages).
const OWN_COPY_FROM: usize = 16 * 1024;

/// The payload bytes of one batch handed to the bus, at most (after its
/// first event): the batches waiting for the delivery thread, a few, stay
/// small next to the backlog.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The longest stretch the loop judges and hands on before the client (and
/// the runtime's other tasks: exports, presence) have a turn.
const STRETCH: Duration = Duration::from_millis(5);

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
    let intake = Intake {
        subscriptions,
        unread: Bounded::new(
            UNREAD_BYTES,
            "messages not judged yet",
            Arc::clone(&importer.stats),
        ),
        backlog: Bounded::new(
            BACKLOG_BYTES,
            "events not delivered yet",
            Arc::clone(&importer.stats),
        ),
        open: true,
        importer: &importer,
    };
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
        while !intake.backlog.is_empty() && Instant::now() < stretch {
            let batch = next_batch(&mut intake.backlog);
            if intake.deliver(deliverer, batch).await.is_err() {
                return;
            }
            intake.judge(stretch);
        }
        if !intake.unread.is_empty() || !intake.backlog.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }
        if !intake.open {
            return;
        }
        std::future::poll_fn(|cx| intake.until_read(cx)).await;
    }
}

/// Up to [`BATCH`] events of `backlog`, and no more than [`BATCH_BYTES`]
/// of payload after the first.
fn next_batch(backlog: &mut Bounded<Delivery>) -> Vec<Delivery> {
    let mut bytes = 0;
    std::iter::from_fn(|| {
        if bytes >= BATCH_BYTES {
            return None;
        }
        let delivery = backlog.pop()?;
        bytes += delivery.event.payload().len();
        Some(delivery)
    })
    .take(BATCH)
    .collect()
}

/// The subscriptions, and what the import holds of what they brought.
struct Intake<'i> {
    subscriptions: Vec<Subscriber>,
    /// Messages read and not judged yet.
    unread: Bounded<Message>,
    /// Events judged and not delivered yet.
    backlog: Bounded<Delivery>,
    /// Whether any subscription is still open.
    open: bool,
    importer: &'i Importer,
}

impl Intake<'_> {
    /// Moves every message ready on the subscriptions into the unread
    /// queue (which drops what passes its bound).
    fn read(&mut self, cx: &mut Context<'_>) {
        let mut ended = 0;
        for index in 0..self.subscriptions.len() {
            loop {
                match self.subscriptions[index].poll_next_unpin(cx) {
                    Poll::Ready(Some(message)) => self.keep(message),
                    Poll::Ready(None) => {
                        ended += 1;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        self.open = ended < self.subscriptions.len();
    }

    /// Ready once a message was read or every subscription ended.
    fn until_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.read(cx);
        if self.unread.is_empty() && self.open {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// Keeps `message` unread, if there is room.
    fn keep(&mut self, mut message: Message) {
        let cost = message.length.saturating_add(MESSAGE_OVERHEAD);
        if self.unread.has_room(cost) && message.payload.len() >= OWN_COPY_FROM {
            message.payload = bytes::Bytes::copy_from_slice(&message.payload);
        }
        self.unread.push(message, cost);
    }

    /// Judges unread messages into the backlog while it has room, until
    /// `stretch` is over.
    fn judge(&mut self, stretch: Instant) {
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
            if let Verdict::Deliver { event, .. } = verdict {
                let cost = event.payload().len() + EVENT_OVERHEAD;
                let delivery = Delivery {
                    event: Arc::new(event),
                    refused: None,
                    job: None,
                };
                self.backlog.push(delivery, cost);
            }
        }
    }

    /// Delivers `batch`, reading what the client brings meanwhile (a full
    /// `block` mailbox may hold the delivery up for long). `Err` once the
    /// deliverer stopped.
    async fn deliver(
        &mut self,
        deliverer: &Deliverer,
        batch: Vec<Delivery>,
    ) -> Result<(), Stopped> {
        let mut delivering = std::pin::pin!(deliverer.deliver_all(batch));
        std::future::poll_fn(|cx| {
            if let Poll::Ready(delivered) = delivering.as_mut().poll(cx) {
                return Poll::Ready(delivered);
            }
            if self.open {
                self.read(cx);
            }
            Poll::Pending
        })
        .await
    }
}
