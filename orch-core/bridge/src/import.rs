//! Delivering the broker's messages to local subscribers: the origin check
//! (a node never gets its own events back), a window of recent message ids
//! (a repeat is delivered once), then the local bus, from the runtime's
//! blocking pool (a full `block` mailbox waits there, not in the runtime).
//! On JetStream a message is acknowledged only once every local mailbox took
//! it; a refusal asks the stream to deliver it again a little later.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{AckKind, stream::Stream as JetStreamStream};
use async_nats::{Client, HeaderMap};
use futures_util::StreamExt;
use orch_runtime::bus::{Bus, BusEvent};

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
    /// Recent message ids.
    pub recent: RecentIds,
}

/// What became of one message.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Delivered, or not for this node: acknowledge it.
    Done,
    /// A local mailbox refused it: deliver it again later.
    Again,
}

impl Importer {
    async fn deliver(
        &mut self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) -> Outcome {
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
        if let Some(id) = &arrived.message_id
            && self.recent.contains(id)
        {
            self.stats.repeats.fetch_add(1, Ordering::Relaxed);
            return Outcome::Done;
        }
        let event = Arc::new(BusEvent::imported(
            &arrived.topic,
            payload,
            arrived.source.clone(),
            Arc::clone(&arrived.origin),
            arrived.published_at_ms,
        ));
        let bus = self.bus.clone();
        let published = tokio::task::spawn_blocking(move || bus.publish_imported(event)).await;
        match published {
            Ok(Ok(_)) => {
                if let Some(id) = &arrived.message_id {
                    self.recent.insert(id);
                }
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                Outcome::Done
            }
            Ok(Err(e)) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "[BRIDGE] '{}' from node '{}' was not taken here: {e}",
                    arrived.topic,
                    arrived.origin
                );
                Outcome::Again
            }
            Err(e) => {
                tracing::error!("[BRIDGE] the delivery of '{}' failed: {e}", arrived.topic);
                Outcome::Again
            }
        }
    }
}

/// Core NATS: one subscription per imported pattern, at most once.
pub async fn run_core(client: Client, patterns: Vec<String>, mut importer: Importer) {
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
        let _ = importer
            .deliver(
                message.subject.as_str(),
                message.headers.as_ref(),
                &message.payload,
            )
            .await;
    }
}

/// JetStream: this node's durable consumer on the stream, filtered on the
/// imported subjects; acknowledged after delivery.
pub async fn run_jetstream(
    stream: JetStreamStream,
    durable: String,
    patterns: Vec<String>,
    mut importer: Importer,
) {
    let filters: Vec<String> = patterns
        .iter()
        .map(|p| envelope::subject(&importer.prefix, p))
        .collect();
    let config = pull::Config {
        durable_name: Some(durable.clone()),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: Duration::from_secs(30),
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
            let ack = match outcome {
                Outcome::Done => message.ack().await,
                Outcome::Again => {
                    message
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await
                }
            };
            if let Err(e) = ack {
                tracing::debug!("[BRIDGE] acknowledgement to '{durable}' not sent: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
