//! Delivering the broker's messages to local subscribers: the origin check
//! (a node never gets its own events back), a window of recent message ids
//! (a repeat is delivered once), then the local bus, from a delivery thread
//! of the bridge's own fed through a bounded queue (a full `block` mailbox
//! waits there, never in the runtime, and messages are not held up one by
//! one behind each other's hand-over).
//! On JetStream a message is acknowledged only once every local mailbox took
//! it and every handler let go of it (so a crash of this node before that
//! gets it delivered again), and the window of handled ids is kept in a file
//! (so the redelivery of one handled before a crash is skipped); a refusal
//! asks the stream to deliver it again a little later.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{AckKind, stream::Stream as JetStreamStream};
use async_nats::{Client, HeaderMap, Message, Subscriber};
use futures_util::StreamExt;
use orch_runtime::bus::{Bus, BusEvent};
use tokio::sync::mpsc;

use crate::dedup::RecentIds;
use crate::envelope::{self, Skip};
use crate::names::Names;
use crate::node::Identity;
use crate::pace::Pacer;

/// How often, at most, a namesake (another orchestrator with this node's
/// id) is warned about.
pub const NAMESAKE_SAID_EVERY: Duration = Duration::from_secs(10);

/// How many recent message ids are remembered, at most.
pub const RECENT_IDS: usize = 100_000;

/// How many bytes of recent message ids are remembered, at most (each id
/// with its origin and a newline, as in the window's file): 8 MiB, room for
/// the [`RECENT_IDS`] ids of this bridge's own (about 60 bytes each) and for
/// 43,000 ids at the caps. The file grows to twice this before it is
/// compacted, and at most that much of it is read at start.
pub const RECENT_ID_BYTES: usize = 8 * 1024 * 1024;

/// Counters of the import side.
#[derive(Default)]
pub struct ImportStats {
    /// Messages delivered to the local bus.
    pub delivered: AtomicU64,
    /// Repeats dropped by the id window.
    pub repeats: AtomicU64,
    /// This node's own events, come back from the stream.
    pub own: AtomicU64,
    /// Messages of another orchestrator with this node's id, dropped as
    /// this node's own.
    pub namesakes: AtomicU64,
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
    pub me: Identity,
    /// Counters.
    pub stats: Arc<ImportStats>,
    /// Recent message ids (with their origins): handled, so a redelivery
    /// is skipped.
    pub recent: Arc<Mutex<RecentIds>>,
    /// Message ids (`<origin> <id>`) delivered and not yet handled: a
    /// redelivery meanwhile is not delivered again (the first one's
    /// completion acknowledges). At most `MAX_ACK_PENDING` of them.
    pub pending: Arc<Mutex<HashSet<String>>>,
    /// The names and topics messages keep repeating.
    pub names: Mutex<Names>,
    /// Paces the warning about a namesake.
    pub namesake_said: Pacer,
}

/// Messages waiting for the delivery thread, at most.
const DELIVERY_QUEUE: usize = 1_024;

/// Messages taken from the broker at once, at most.
const BATCH: usize = 256;

/// One message on its way to the local bus.
struct Delivery {
    event: Arc<BusEvent>,
    /// Told when a local mailbox refused it.
    refused: Option<Box<dyn FnOnce(String) + Send>>,
}

/// Starts the thread that hands imported events to the local bus, in order.
fn spawn_delivery(bus: Bus, stats: Arc<ImportStats>) -> mpsc::Sender<Vec<Delivery>> {
    let (queue, mut batches) = mpsc::channel::<Vec<Delivery>>(DELIVERY_QUEUE / BATCH);
    let spawned = std::thread::Builder::new()
        .name("orch-bridge-deliver".into())
        .spawn(move || {
            while let Some(batch) = batches.blocking_recv() {
                for delivery in batch {
                    let topic = delivery.event.topic().to_owned();
                    match bus.publish_imported(delivery.event) {
                        Ok(_) => {
                            stats.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            stats.refused.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                "[BRIDGE] '{topic}' from another node was not taken here: {e}"
                            );
                            if let Some(refused) = delivery.refused {
                                refused(e.to_string());
                            }
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("[BRIDGE] cannot start the delivery thread: {e}; nothing is imported");
    }
    queue
}

/// What the envelope and the id window say of one message.
enum Verdict {
    /// Not for this node, or already handled here: acknowledge it now.
    Done,
    /// Its first delivery is still being handled: leave it.
    InHand,
    /// Deliver it.
    Deliver {
        /// The event for the local bus.
        event: BusEvent,
        /// Its origin and message id, when it has one (`track`).
        tracked: Option<Tracked>,
    },
}

/// A delivered message's place in the window of ids: `<origin> <id>`.
type Tracked = String;

impl Importer {
    /// Counts a message not for this bus, and says why for every hundredth.
    fn skip(&self, why: &str) {
        let skipped = self.stats.skipped.fetch_add(1, Ordering::Relaxed);
        if skipped.is_multiple_of(100) {
            tracing::warn!("[BRIDGE] not delivered here: {why}");
        }
    }

    /// Counts a message of a namesake and says so, at first and then at most
    /// every [`NAMESAKE_SAID_EVERY`].
    fn namesake(&self, subject: &str) {
        let seen = self.stats.namesakes.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.namesake_said.due() {
            return;
        }
        tracing::warn!(
            "[BRIDGE] another orchestrator publishes as node '{}' ({subject}; {seen} message(s) \
             so far): its events are dropped here as this node's own, and with JetStream the \
             two may share a durable consumer, each getting part of the stream; give each \
             orchestrator its own \
             `bridge.nats.node` (for example `node: ${{ORCH_NODE:-}}` with ORCH_NODE set apart)",
            self.me.name
        );
    }

    /// Reads one message (`track`: checks and marks its id, JetStream) and
    /// makes its event.
    fn judge(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
        track: bool,
    ) -> Verdict {
        let mut names = lock(&self.names);
        let arrived = envelope::arrived(subject, headers, &self.prefix, &self.me, |topic| {
            names.check_topic(topic)
        });
        let arrived = match arrived {
            Ok(arrived) => arrived,
            Err(Skip::OwnEvent) => {
                self.stats.own.fetch_add(1, Ordering::Relaxed);
                return Verdict::Done;
            }
            Err(Skip::Namesake) => {
                self.namesake(subject);
                return Verdict::Done;
            }
            Err(Skip::Foreign(why) | Skip::Malformed(why)) => {
                self.skip(&why);
                return Verdict::Done;
            }
        };
        // Local subscribers may count on one JSON value (`event.data()`): a
        // module's SDK checks that when it publishes, and here it is checked
        // for what another NATS client sent.
        if !arrived.enveloped
            && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(payload)
        {
            self.skip(&format!(
                "subject '{subject}' came from outside an orchestrator (no {}) with a \
                 payload that is not JSON ({e})",
                envelope::ENVELOPE
            ));
            return Verdict::Done;
        }
        let mut tracked = None;
        if track && let Some(id) = arrived.message_id {
            if lock(&self.recent).contains(arrived.origin, id) {
                self.stats.repeats.fetch_add(1, Ordering::Relaxed);
                return Verdict::Done;
            }
            let key = format!("{} {id}", arrived.origin);
            if !lock(&self.pending).insert(key.clone()) {
                self.stats.repeats.fetch_add(1, Ordering::Relaxed);
                return Verdict::InHand;
            }
            tracked = Some(key);
        }
        let event = BusEvent::imported(
            arrived.topic,
            payload,
            arrived.source.map(|source| names.shared(source)),
            names.shared(arrived.origin),
            arrived.published_at_ms,
        );
        Verdict::Deliver { event, tracked }
    }

    /// Once an event's handlers are done: remembers its id with its origin
    /// (so a redelivery is skipped, after a crash too) and lets go of its
    /// pending mark.
    fn handled(&self, tracked: Option<&str>) {
        if let Some(key) = tracked {
            if let Some((origin, id)) = key.split_once(' ') {
                lock(&self.recent).insert(origin, id);
            }
            lock(&self.pending).remove(key);
        }
    }

    /// Lets go of the pending mark of a refused delivery.
    fn refused(&self, tracked: Option<&str>) {
        if let Some(key) = tracked {
            lock(&self.pending).remove(key);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Core NATS: one subscription per imported pattern, at most once (a
/// refused delivery is not asked for again).
pub async fn run_core(client: Client, patterns: Vec<String>, importer: Importer) {
    let deliveries = spawn_delivery(importer.bus.clone(), Arc::clone(&importer.stats));
    let mut subscriptions = Vec::new();
    for pattern in &patterns {
        let subject = envelope::subject(&importer.prefix, pattern);
        match client.subscribe(subject.clone()).await {
            Ok(subscription) => subscriptions.push(subscription),
            Err(e) => tracing::error!("[BRIDGE] cannot subscribe to '{subject}': {e}"),
        }
    }
    let mut messages = Vec::with_capacity(BATCH);
    while next_batch(&mut subscriptions, &mut messages).await {
        let batch: Vec<Delivery> = messages
            .drain(..)
            .filter_map(|message| {
                let verdict = importer.judge(
                    message.subject.as_str(),
                    message.headers.as_ref(),
                    &message.payload,
                    false,
                );
                match verdict {
                    Verdict::Deliver { event, .. } => Some(Delivery {
                        event: Arc::new(event),
                        refused: None,
                    }),
                    Verdict::Done | Verdict::InHand => None,
                }
            })
            .collect();
        if !batch.is_empty() && deliveries.send(batch).await.is_err() {
            return;
        }
    }
}

/// Waits for messages on any of `subscriptions` and moves into `batch`
/// what is ready, up to [`BATCH`], starting with a different subscription
/// each time (none starves the others); `false` once all of them ended.
/// (Cheaper than `select_all`, which allocates a task for every message.)
async fn next_batch(subscriptions: &mut [Subscriber], batch: &mut Vec<Message>) -> bool {
    let mut first = 0;
    std::future::poll_fn(|cx| {
        let mut ended = 0;
        let count = subscriptions.len();
        for n in 0..count {
            let subscription = &mut subscriptions[(first + n) % count];
            while batch.len() < BATCH {
                match subscription.poll_next_unpin(cx) {
                    Poll::Ready(Some(message)) => batch.push(message),
                    Poll::Ready(None) => {
                        ended += 1;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        first = first.wrapping_add(1);
        if !batch.is_empty() {
            Poll::Ready(true)
        } else if ended == count {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Unacknowledged messages the server hands this node at most: the bound on
/// what waits in local mailboxes for its acknowledgement.
const MAX_ACK_PENDING: i64 = 1_000;

/// How long the stream waits for a message's acknowledgement before it
/// delivers it again: also how late a message comes that was on its way to
/// this node when the server holding the consumer died (the new leader sends
/// it again once this passed). A local handler slower than this makes a
/// repeat, which the window of recent ids drops.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// What the acknowledging task is told.
enum Ack {
    /// Every local handler let go of it.
    Handled(async_nats::jetstream::Message, Option<String>),
    /// A local mailbox refused it: ask for it again later.
    Refused(async_nats::jetstream::Message, Option<String>),
}

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
    let deliveries = spawn_delivery(importer.bus.clone(), Arc::clone(&importer.stats));
    // Bounded by MAX_ACK_PENDING: the server hands out no more unacknowledged.
    let (acks, mut to_ack) = mpsc::unbounded_channel::<Ack>();
    {
        let importer = Arc::clone(&importer);
        let durable = durable.clone();
        tokio::spawn(async move {
            while let Some(ack) = to_ack.recv().await {
                match ack {
                    Ack::Handled(message, id) => {
                        importer.handled(id.as_deref());
                        acknowledge(&message, AckKind::Ack, &durable).await;
                    }
                    Ack::Refused(message, id) => {
                        importer.refused(id.as_deref());
                        let later = AckKind::Nak(Some(Duration::from_secs(1)));
                        acknowledge(&message, later, &durable).await;
                    }
                }
            }
        });
    }
    let filters: Vec<String> = patterns
        .iter()
        .map(|p| envelope::subject(&importer.prefix, p))
        .collect();
    let config = pull::Config {
        durable_name: Some(durable.clone()),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: ACK_WAIT,
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
            Ok(messages) => messages.ready_chunks(BATCH),
            Err(e) => {
                tracing::warn!(
                    "[BRIDGE] cannot read the durable consumer '{durable}': {e}; trying again"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(chunk) = messages.next().await {
            let mut batch = Vec::with_capacity(chunk.len());
            for message in chunk {
                let message = match message {
                    Ok(message) => message,
                    Err(e) => {
                        tracing::debug!("[BRIDGE] consumer '{durable}': {e}");
                        continue;
                    }
                };
                let verdict = importer.judge(
                    message.subject.as_str(),
                    message.headers.as_ref(),
                    &message.payload,
                    true,
                );
                let (event, id) = match verdict {
                    Verdict::Done => {
                        acknowledge(&message, AckKind::Ack, &durable).await;
                        continue;
                    }
                    Verdict::InHand => continue,
                    Verdict::Deliver { event, tracked } => (event, tracked),
                };
                let message = Arc::new(std::sync::Mutex::new(Some(message)));
                let on_done = {
                    let (acks, message, id) = (acks.clone(), Arc::clone(&message), id.clone());
                    move || {
                        if let Some(message) = lock(&message).take() {
                            let _ = acks.send(Ack::Handled(message, id));
                        }
                    }
                };
                let on_refused = {
                    let (acks, message) = (acks.clone(), Arc::clone(&message));
                    move |_why: String| {
                        if let Some(message) = lock(&message).take() {
                            let _ = acks.send(Ack::Refused(message, id));
                        }
                    }
                };
                let event = event.when_done(on_done);
                batch.push(Delivery {
                    event: Arc::new(event),
                    refused: Some(Box::new(on_refused)),
                });
            }
            if !batch.is_empty() && deliveries.send(batch).await.is_err() {
                return;
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
