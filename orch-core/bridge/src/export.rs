//! Publishing the outbox's events to the broker, in order: on core NATS once
//! (at most once: what the connection loses is lost), on JetStream until
//! the stream acknowledged it, each try with the same `Nats-Msg-Id`, so the
//! stream stores it once however often it is sent.
//!
//! JetStream publishes are pipelined: up to [`WINDOW`] are sent before the
//! oldest acknowledgement is awaited, and all are settled whenever the
//! outbox has nothing more to give. When an acknowledgement fails, that
//! event and every one sent after it are published again one by one, each
//! until stored, with their own message ids: what the stream had already
//! taken is dropped as a duplicate. An event counts as sent (and leaves
//! `in_hand`, which a shutdown waits for) only once acknowledged.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::context::PublishErrorKind as JetStreamPublishErrorKind;
use async_nats::{Client, PublishErrorKind, Subject};
use bytes::Bytes;
use orch_runtime::bus::BusEvent;

use crate::node::{Identity, MessageIds};
use crate::outbox::OutboxReader;
use crate::{caps, envelope, names};
use orch_runtime::pace::Pacer;

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
    /// Events larger than the server's `max_payload`: not exported.
    pub too_large: AtomicU64,
    /// Events of a module whose name breaks [`crate::caps`] (longer than
    /// `MAX_NAME`): not exported, as every importer would refuse them.
    pub bad_source: AtomicU64,
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

/// Publishes every event the outbox's `reader` gives until it is closed.
pub async fn run(
    reader: OutboxReader,
    target: Target,
    prefix: String,
    work: Vec<orch_config::WorkGroup>,
    me: Identity,
    stats: Arc<ExportStats>,
    fences: orch_runtime::lease::Fences,
) {
    let exporter = Exporter {
        fences,
        ids: MessageIds::new(&me),
        target,
        me,
        stats,
        too_large_said: Pacer::new(TOO_LARGE_SAID_EVERY),
        bad_source_said: Pacer::new(TOO_LARGE_SAID_EVERY),
    };
    let mut subjects = Subjects::new(prefix, work);
    let mut window: VecDeque<InFlight> = VecDeque::new();
    let mut batch = Vec::new();
    while reader.next_batch(&mut batch, &exporter.stats.in_hand).await {
        for event in batch.drain(..) {
            let subject = subjects.of(event.topic());
            if exporter.export(event, subject, &mut window).await {
                exporter.stats.in_hand.fetch_sub(1, Ordering::AcqRel);
            }
            if window.len() >= WINDOW {
                exporter.settle_oldest(&mut window).await;
            }
        }
        if reader.is_empty() {
            while !window.is_empty() {
                exporter.settle_oldest(&mut window).await;
            }
        }
    }
    while !window.is_empty() {
        exporter.settle_oldest(&mut window).await;
    }
}

/// JetStream publishes sent and not yet acknowledged, at most.
pub const WINDOW: usize = 256;

/// A JetStream publish awaiting its acknowledgement, with what it takes to
/// send it again.
struct InFlight {
    event: Arc<BusEvent>,
    subject: Subject,
    headers: async_nats::HeaderMap,
    payload: Bytes,
    ack: PublishAckFuture,
}

/// How often, at most, events too large for the server are warned about.
const TOO_LARGE_SAID_EVERY: Duration = Duration::from_secs(10);

/// What publishing needs, for one run of the bridge.
struct Exporter {
    /// The fences of this node's running singletons.
    fences: orch_runtime::lease::Fences,
    target: Target,
    me: Identity,
    ids: MessageIds,
    stats: Arc<ExportStats>,
    too_large_said: Pacer,
    bad_source_said: Pacer,
}

/// The payload of an event as the client's bytes, without a copy: the
/// event is held until the client has written it.
struct PayloadOf(Arc<BusEvent>);

impl AsRef<[u8]> for PayloadOf {
    fn as_ref(&self) -> &[u8] {
        self.0.payload()
    }
}

/// The subject of each exported topic, made once (a bounded memory): a
/// job's is its work group's (see [`crate::work`]).
struct Subjects {
    prefix: String,
    work: Vec<orch_config::WorkGroup>,
    made: HashMap<Box<str>, Subject>,
}

impl Subjects {
    fn new(prefix: String, work: Vec<orch_config::WorkGroup>) -> Self {
        Self {
            prefix,
            work,
            made: HashMap::new(),
        }
    }

    fn of(&mut self, topic: &str) -> Subject {
        let (prefix, work) = (&self.prefix, &self.work);
        names::remembered(&mut self.made, topic, || {
            match crate::work::group_of(work, topic) {
                Some(group) => Subject::from(crate::work::subject(prefix, &group.group, topic)),
                None => Subject::from(envelope::subject(prefix, topic)),
            }
        })
    }
}

impl Exporter {
    /// Publishes one event; `false` when it waits in `window` for its
    /// JetStream acknowledgement (it leaves `in_hand` when settled).
    async fn export(
        &self,
        event: Arc<BusEvent>,
        subject: Subject,
        window: &mut VecDeque<InFlight>,
    ) -> bool {
        if let Some(source) = event.source()
            && let Err(e) = caps::name("the module name", source)
        {
            let seen = self.stats.bad_source.fetch_add(1, Ordering::Relaxed) + 1;
            if self.bad_source_said.due() {
                tracing::warn!(
                    "[BRIDGE] '{}' from module '{}' is not exported: {e}, and every other \
                     node would refuse it ({seen} event(s) so far); give the module a \
                     shorter name",
                    event.topic(),
                    caps::shown(source)
                );
            }
            return true;
        }
        let id = matches!(self.target, Target::JetStream(_)).then(|| self.ids.next());
        let mut headers = envelope::headers(&event, &self.me, id);
        if let Some(fence) = event.source().and_then(|s| self.fences.get(s)) {
            headers.insert(envelope::FENCE, fence.to_string().as_str());
        }
        let payload = Bytes::from_owner(PayloadOf(Arc::clone(&event)));
        match &self.target {
            Target::Core(client) => {
                match client.publish_with_headers(subject, headers, payload).await {
                    Ok(()) => {
                        self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                        self.too_large(&event, &e);
                    }
                    Err(e) => {
                        tracing::warn!("[BRIDGE] cannot export '{}': {e}", event.topic());
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Target::JetStream(js) => {
                match js
                    .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                    .await
                {
                    Ok(ack) => {
                        window.push_back(InFlight {
                            event,
                            subject,
                            headers,
                            payload,
                            ack,
                        });
                        return false;
                    }
                    Err(e) if e.kind() == JetStreamPublishErrorKind::MaxPayloadExceeded => {
                        self.too_large(&event, &e);
                    }
                    Err(_) => {
                        // The connection is in trouble: settle (and resend) what is in
                        // flight first, then this one, in order.
                        while !window.is_empty() {
                            self.settle_oldest(window).await;
                        }
                        self.publish_until_stored(js, &event, subject, headers, payload)
                            .await;
                    }
                }
            }
        }
        true
    }

    /// Awaits the oldest acknowledgement in `window`. When it failed, that
    /// event and every later one are published again one by one, each until
    /// stored (repeats are dropped by the stream as duplicates).
    async fn settle_oldest(&self, window: &mut VecDeque<InFlight>) {
        let Some(InFlight {
            event,
            subject,
            headers,
            payload,
            ack,
        }) = window.pop_front()
        else {
            return;
        };
        match ack.await {
            Ok(ack) => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                if ack.duplicate {
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                self.stats.in_hand.fetch_sub(1, Ordering::AcqRel);
            }
            Err(e) => {
                let failures = self.stats.failed.fetch_add(1, Ordering::Relaxed);
                if failures.is_multiple_of(20) {
                    tracing::warn!(
                        "[BRIDGE] JetStream did not acknowledge '{subject}' ({e}); sending it \
                         and the {} after it again, with the same message ids",
                        window.len()
                    );
                }
                let Target::JetStream(js) = &self.target else {
                    return;
                };
                self.publish_until_stored(js, &event, subject, headers, payload)
                    .await;
                self.stats.in_hand.fetch_sub(1, Ordering::AcqRel);
                let rest: Vec<InFlight> = window.drain(..).collect();
                for item in rest {
                    self.publish_until_stored(
                        js,
                        &item.event,
                        item.subject,
                        item.headers,
                        item.payload,
                    )
                    .await;
                    self.stats.in_hand.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
    }

    /// One JetStream publish, repeated with back-off until the stream has it,
    /// unless it can never be sent (larger than the server takes).
    async fn publish_until_stored(
        &self,
        js: &Context,
        event: &BusEvent,
        subject: Subject,
        headers: async_nats::HeaderMap,
        payload: Bytes,
    ) {
        let stats = &self.stats;
        let mut delay = Duration::from_millis(50);
        loop {
            let stored = match js
                .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                .await
            {
                Ok(ack) => ack.await.map_err(|e| e.to_string()),
                Err(e) if e.kind() == JetStreamPublishErrorKind::MaxPayloadExceeded => {
                    self.too_large(event, &e);
                    return;
                }
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

    /// An event larger than the server takes: it stays on this node (a try
    /// again would fail the same way and hold up every event behind it).
    fn too_large(&self, event: &BusEvent, e: &dyn std::fmt::Display) {
        let seen = self.stats.too_large.fetch_add(1, Ordering::Relaxed) + 1;
        if self.too_large_said.due() {
            tracing::warn!(
                "[BRIDGE] '{}' from {} is not exported: {e} ({seen} event(s) so far); it stays \
                 on this node. Raise `max_payload` in nats-server's configuration or publish \
                 smaller events",
                event.topic(),
                event
                    .source()
                    .map_or_else(|| "the host".to_owned(), |m| format!("module '{m}'")),
            );
        }
    }
}
