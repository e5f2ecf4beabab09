//! Publishing the outbox's events to the broker, in order: on core NATS once
//! (at most once: what the connection loses is lost), on JetStream until
//! the stream acknowledged it, each try with the same `Nats-Msg-Id`, so the
//! stream stores it once however often it is sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::Context;
use bytes::Bytes;
use orch_runtime::bus::BusEvent;
use tokio::sync::mpsc::Receiver;

use crate::envelope;
use crate::node::MessageIds;

/// Counters of the export side.
#[derive(Default)]
pub struct ExportStats {
    /// Events the broker took (JetStream: acknowledged).
    pub sent: AtomicU64,
    /// Tries that failed and were repeated (JetStream) or lost (core).
    pub failed: AtomicU64,
    /// JetStream acknowledgements that said "duplicate": a repeat the stream
    /// dropped.
    pub duplicates: AtomicU64,
    /// Events taken from the outbox and not yet published (or given up):
    /// a shutdown waits for them too.
    pub in_hand: AtomicU64,
}

/// Where the events go.
pub enum Target {
    /// Core NATS.
    Core(Client),
    /// A JetStream stream that holds the subjects.
    JetStream(Context),
}

/// Publishes every event that arrives on `batches` until the channel closes.
pub async fn run(
    mut batches: Receiver<Vec<Arc<BusEvent>>>,
    target: Target,
    prefix: String,
    node: String,
    stats: Arc<ExportStats>,
) {
    let ids = MessageIds::new(&node);
    while let Some(batch) = batches.recv().await {
        for event in batch {
            export(&event, &target, &prefix, &node, &ids, &stats).await;
            stats.in_hand.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Publishes one event.
async fn export(
    event: &BusEvent,
    target: &Target,
    prefix: &str,
    node: &str,
    ids: &MessageIds,
    stats: &ExportStats,
) {
    {
        let subject = envelope::subject(prefix, event.topic());
        let id = matches!(target, Target::JetStream(_)).then(|| ids.next());
        let headers = envelope::headers(event, node, id.as_deref());
        let payload = Bytes::copy_from_slice(event.payload());
        match target {
            Target::Core(client) => {
                match client.publish_with_headers(subject, headers, payload).await {
                    Ok(()) => stats.sent.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        tracing::warn!("[BRIDGE] cannot export '{}': {e}", event.topic());
                        stats.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            Target::JetStream(js) => {
                publish_until_stored(js, &subject, headers, payload, stats).await;
            }
        }
    }
}

/// One JetStream publish, repeated with back-off until the stream has it.
async fn publish_until_stored(
    js: &Context,
    subject: &str,
    headers: async_nats::HeaderMap,
    payload: Bytes,
    stats: &ExportStats,
) {
    let mut delay = Duration::from_millis(50);
    loop {
        let stored = match js
            .publish_with_headers(subject.to_owned(), headers.clone(), payload.clone())
            .await
        {
            Ok(ack) => ack.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(ack) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                if ack.duplicate {
                    stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Err(e) => {
                let failures = stats.failed.fetch_add(1, Ordering::Relaxed);
                if failures.is_multiple_of(20) {
                    tracing::warn!(
                        "[BRIDGE] JetStream did not store '{subject}' ({e}); trying again \
                         with the same message id"
                    );
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}
