//! Delivering the broker's messages to local subscribers: the origin check
//! (a node never gets its own events back), a window of recent message ids
//! (a repeat is delivered once), then the local bus, from the runtime's
//! blocking pool (a full `block` mailbox waits there, not in the runtime).
//! On JetStream a message is acknowledged only once every local mailbox took
//! it and every handler let go of it (so a crash of this node before that
//! gets it delivered again), and the window of handled ids is kept in a file
//! (so the redelivery of one handled before a crash is skipped); a refusal
//! asks the stream to deliver it again a little later.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{AckKind, stream::Stream as JetStreamStream};
use async_nats::{Client, HeaderMap};
use futures_util::StreamExt;
use orch_runtime::bus::{Bus, BusEvent};
use tokio::sync::oneshot;

use crate::dedup::RecentIds;
use crate::envelope::{self, Skip};

/// How many recent message ids are remembered.
pub const RECENT_IDS: usize = 100_000;

/// Counters of the import side.
#[derive(Default)]
pub struct ImportStats {
    /// Messages delivered to the local bus.
    pub delivered: AtomicU64,
    /// Repeats dropped by the id window.
    pub repeats: AtomicU64,
    /// This node's own events, come back from the stream.
    pub own: AtomicU64,
    /// Messages not for this bus (foreign subjects, the host's namespaces).
    pub skipped: AtomicU64,
    /// Deliveries a local mailbox refused.
    pub refused: AtomicU64,
}

/// What one import needs.
pub struct Importer {
    /// The local bus.
    pub bus: Bus,
    /// The subject prefix.
    pub prefix: String,
    /// This node.
    pub node: String,
    /// Counters.
    pub stats: Arc<ImportStats>,
    /// Recent message ids: handled, so a redelivery is skipped.
    pub recent: Arc<Mutex<RecentIds>>,
    /// Message ids delivered and not yet handled: a redelivery meanwhile is
    /// not delivered again (the first one's completion acknowledges).
    pub pending: Arc<Mutex<HashSet<String>>>,
}

/// What became of one message.
enum Outcome {
    /// Not for this node, or already handled here: acknowledge it now.
    Done,
    /// Delivered and still being handled (the first delivery of a repeat):
    /// nothing to do now.
    InHand,
    /// Delivered; `done` resolves once every local handler let go of it.
    Delivered(oneshot::Receiver<()>, Option<String>),
    /// A local mailbox refused it: deliver it again later.
    Again,
}

impl Importer {
    /// Checks the envelope and the id window, then delivers to the local bus
    /// from the blocking pool (a full `block` mailbox waits there).
    async fn deliver(&self, subject: &str, headers: Option<&HeaderMap>, payload: &[u8]) -> Outcome {
        let arrived = match envelope::arrived(subject, headers, &self.prefix, &self.node) {
            Ok(arrived) => arrived,
            Err(Skip::OwnEvent) => {
                self.stats.own.fetch_add(1, Ordering::Relaxed);
                return Outcome::Done;
            }
            Err(Skip::Foreign(why)) => {
                if self
                    .stats
                    .skipped
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(100)
                {
                    tracing::warn!("[BRIDGE] not delivered here: {why}");
                }
                return Outcome::Done;
            }
        };
        if let Some(id) = &arrived.message_id {
            if lock(&self.recent).contains(id) {
                self.stats.repeats.fetch_add(1, Ordering::Relaxed);
                return Outcome::Done;
            }
            if !lock(&self.pending).insert(id.clone()) {
                self.stats.repeats.fetch_add(1, Ordering::Relaxed);
                return Outcome::InHand;
            }
        }
        let (done_tx, done) = oneshot::channel();
        let event = BusEvent::imported(
            &arrived.topic,
            payload,
            arrived.source.clone(),
            Arc::clone(&arrived.origin),
            arrived.published_at_ms,
        )
        .when_done(move || {
            let _ = done_tx.send(());
        });
        let bus = self.bus.clone();
        let published =
            tokio::task::spawn_blocking(move || bus.publish_imported(Arc::new(event))).await;
        let refused = match published {
            Ok(Ok(_)) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                return Outcome::Delivered(done, arrived.message_id);
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        if let Some(id) = &arrived.message_id {
            lock(&self.pending).remove(id);
        }
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "[BRIDGE] '{}' from node '{}' was not taken here: {refused}",
            arrived.topic,
            arrived.origin
        );
        Outcome::Again
    }

    /// Once the event's handlers are done: remembers its id (so a
    /// redelivery is skipped, after a crash too) and lets go of its pending
    /// mark.
    fn handled(&self, id: Option<&str>) {
        if let Some(id) = id {
            lock(&self.recent).insert(id);
            lock(&self.pending).remove(id);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Core NATS: one subscription per imported pattern, at most once.
pub async fn run_core(client: Client, patterns: Vec<String>, importer: Importer) {
    let mut subscriptions = Vec::new();
    for pattern in &patterns {
        let subject = envelope::subject(&importer.prefix, pattern);
        match client.subscribe(subject.clone()).await {
            Ok(subscription) => subscriptions.push(subscription),
            Err(e) => tracing::error!("[BRIDGE] cannot subscribe to '{subject}': {e}"),
        }
    }
    let mut messages = futures_util::stream::select_all(subscriptions);
    while let Some(message) = messages.next().await {
        // At most once: a refused delivery is not asked for again.
        if let Outcome::Delivered(_, id) = importer
            .deliver(
                message.subject.as_str(),
                message.headers.as_ref(),
                &message.payload,
            )
            .await
        {
            importer.handled(id.as_deref());
        }
    }
}

/// Unacknowledged messages the server hands this node at most: the bound on
/// what waits in local mailboxes for its acknowledgement.
const MAX_ACK_PENDING: i64 = 1_000;

/// JetStream: this node's durable consumer on the stream, filtered on the
/// imported subjects. A message is acknowledged once every local handler let
/// go of it (so a crash before that gets it delivered again), a refused one
/// is asked for again in a second.
pub async fn run_jetstream(
    stream: JetStreamStream,
    durable: String,
    patterns: Vec<String>,
    importer: Importer,
) {
    let importer = Arc::new(importer);
    let filters: Vec<String> = patterns
        .iter()
        .map(|p| envelope::subject(&importer.prefix, p))
        .collect();
    let config = pull::Config {
        durable_name: Some(durable.clone()),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: MAX_ACK_PENDING,
        filter_subjects: filters,
        ..Default::default()
    };
    loop {
        let consumer = match stream
            .get_or_create_consumer(&durable, config.clone())
            .await
        {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::warn!(
                    "[BRIDGE] cannot open the durable consumer '{durable}': {e}; trying again"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(
                    "[BRIDGE] cannot read the durable consumer '{durable}': {e}; trying again"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    tracing::debug!("[BRIDGE] consumer '{durable}': {e}");
                    continue;
                }
            };
            let outcome = importer
                .deliver(
                    message.subject.as_str(),
                    message.headers.as_ref(),
                    &message.payload,
                )
                .await;
            match outcome {
                Outcome::Done => acknowledge(&message, AckKind::Ack, &durable).await,
                Outcome::InHand => {}
                Outcome::Again => {
                    let later = AckKind::Nak(Some(Duration::from_secs(1)));
                    acknowledge(&message, later, &durable).await;
                }
                Outcome::Delivered(done, id) => {
                    let importer = Arc::clone(&importer);
                    let durable = durable.clone();
                    tokio::spawn(async move {
                        // An error: the sender was dropped without being
                        // called, which cannot be; acknowledge anyway.
                        let _ = done.await;
                        importer.handled(id.as_deref());
                        acknowledge(&message, AckKind::Ack, &durable).await;
                    });
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn acknowledge(message: &async_nats::jetstream::Message, kind: AckKind, durable: &str) {
    if let Err(e) = message.ack_with(kind).await {
        tracing::debug!("[BRIDGE] acknowledgement to '{durable}' not sent: {e}");
    }
}
