//! Publishing the outbox's events to the broker, in order: on core NATS once
//! (at most once: what the connection loses is lost), on JetStream until
//! the stream acknowledged it, each try with the same `Nats-Msg-Id`, so the
//! stream stores it once however often it is sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::{Client, Subject};
use bytes::Bytes;
use orch_runtime::bus::BusEvent;
use tokio::sync::mpsc::Receiver;

use crate::node::MessageIds;
use crate::{envelope, names};

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
    let mut subjects = Subjects::new(prefix);
    while let Some(batch) = batches.recv().await {
        for event in batch {
            let subject = subjects.of(event.topic());
            export(event, subject, &target, &node, &ids, &stats).await;
            stats.in_hand.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The payload of an event as the client's bytes, without a copy: the
/// event is held until the client has written it.
struct PayloadOf(Arc<BusEvent>);

impl AsRef<[u8]> for PayloadOf {
    fn as_ref(&self) -> &[u8] {
        self.0.payload()
    }
}

/// The subject of each exported topic, made once (a bounded memory).
struct Subjects {
    prefix: String,
    made: HashMap<Box<str>, Subject>,
}

impl Subjects {
    fn new(prefix: String) -> Self {
        Self {
            prefix,
            made: HashMap::new(),
        }
    }

    fn of(&mut self, topic: &str) -> Subject {
        let prefix = &self.prefix;
        names::remembered(&mut self.made, topic, || {
            Subject::from(envelope::subject(prefix, topic))
        })
    }
}

/// Publishes one event.
async fn export(
    event: Arc<BusEvent>,
    subject: Subject,
    target: &Target,
    node: &str,
    ids: &MessageIds,
    stats: &ExportStats,
) {
    {
        let id = matches!(target, Target::JetStream(_)).then(|| ids.next());
        let headers = envelope::headers(&event, node, id);
        let payload = Bytes::from_owner(PayloadOf(Arc::clone(&event)));
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
                publish_until_stored(js, subject, headers, payload, stats).await;
            }
        }
    }
}

/// One JetStream publish, repeated with back-off until the stream has it.
async fn publish_until_stored(
    js: &Context,
    subject: Subject,
    headers: async_nats::HeaderMap,
    payload: Bytes,
    stats: &ExportStats,
) {
    let mut delay = Duration::from_millis(50);
    loop {
        let stored = match js
            .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
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
