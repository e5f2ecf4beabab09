//! A work group on JetStream: the group's work-queue stream, the shared
//! durable consumer every node pulls from, and this node's pulling, bounded
//! at every request by `min(max_in_flight, mailbox capacity) - held` and by
//! the mailboxes' free slots.
//!
//! A job is held from the moment it arrives until its handlers let go (then
//! recorded as handled and acknowledged) or a local mailbox refused it
//! (then offered again after a back-off, or, on its last delivery, sent to
//! the dead letters). Held jobs get a progress acknowledgement every third
//! of [`super::ACK_WAIT`], so only a node that died or froze loses them to
//! the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{self, Stream};
use async_nats::jetstream::{self, AckKind, Message, kv};
use futures_util::StreamExt;
use orch_config::WorkGroup;
use orch_runtime::pace::Pacer;
use tokio::sync::{Notify, mpsc};

use super::dead::DeadLetters;
use super::{WorkStats, handled};
use crate::delivery::{Deliverer, Delivery, Refused};
use crate::import::{Importer, Tracked, Verdict, lock};
use crate::refusal::Refusal;

/// How long a pull request waits for jobs before it is made again with the
/// room of that moment.
const PULL_WAIT: Duration = Duration::from_millis(500);

/// How often the room is looked at again while there is none (no local
/// subscriber, full mailboxes, `max_in_flight` jobs held).
const IDLE: Duration = Duration::from_millis(100);

/// What pulling one group needs.
pub struct Puller {
    /// The JetStream context.
    pub context: jetstream::Context,
    /// The events stream's name (the group's stream and bucket are named
    /// after it).
    pub events_stream: String,
    /// Stream replicas.
    pub replicas: usize,
    /// The group.
    pub group: WorkGroup,
    /// Reads each job (its prefix is the group's subject prefix).
    pub importer: Arc<Importer>,
    /// The group's counters.
    pub stats: Arc<WorkStats>,
    /// Where jobs given up go.
    pub dead: DeadLetters,
}

/// The jobs this node holds, by a key of its own.
#[derive(Default)]
struct Held {
    jobs: Mutex<HashMap<u64, Message>>,
    /// Held jobs not yet in a mailbox (on their way through the delivery
    /// thread): the mailboxes' free room does not count them yet.
    on_the_way: Arc<AtomicUsize>,
    next: AtomicU64,
    /// Told when a job is let go.
    freed: Notify,
}

impl Held {
    fn len(&self) -> usize {
        lock(&self.jobs).len()
    }

    fn hold(&self, message: Message) -> u64 {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.jobs).insert(key, message);
        key
    }

    fn release(&self, key: u64) -> Option<Message> {
        let message = lock(&self.jobs).remove(&key);
        self.freed.notify_one();
        message
    }
}

/// What becomes of a held job.
enum Settle {
    /// Its handlers let go.
    Handled(u64, Option<Tracked>),
    /// A local mailbox refused it, on its `delivered`-th delivery.
    Refused(u64, Option<Tracked>, Refused, i64),
}

/// The group's work-queue stream, created if missing; waits for the broker
/// as long as it takes.
pub async fn open_stream(
    context: &jetstream::Context,
    name: String,
    subjects: String,
    replicas: usize,
) -> Stream {
    let said = Pacer::new(Duration::from_secs(30));
    loop {
        let config = stream::Config {
            name: name.clone(),
            description: Some("cargo-orch shared work: one group's jobs".into()),
            subjects: vec![format!("{subjects}.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            max_messages: super::MAX_QUEUED,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        };
        match context.get_or_create_stream(config).await {
            Ok(stream) => return stream,
            Err(e) => {
                if said.due() {
                    tracing::warn!(
                        "[BRIDGE] cannot open the work stream '{name}': {e}; trying again"
                    );
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The shared durable consumer's configuration.
fn consumer_config(group: &str) -> pull::Config {
    pull::Config {
        durable_name: Some(group.to_owned()),
        description: Some("cargo-orch shared work: every node of the group pulls".into()),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: super::ACK_WAIT,
        max_deliver: super::MAX_DELIVER,
        max_ack_pending: super::MAX_ACK_PENDING,
        ..Default::default()
    }
}

impl Puller {
    /// Pulls the group's jobs for as long as the bridge runs.
    pub async fn run(self) {
        let group = self.group.group.clone();
        let stream_name = super::stream_name(&self.events_stream, &group);
        let stream = open_stream(
            &self.context,
            stream_name.clone(),
            self.importer.prefix.clone(),
            self.replicas,
        )
        .await;
        let bucket = super::handled_bucket(&self.events_stream, &group);
        let handled = match handled::open(&self.context, &bucket).await {
            Ok(store) => Some(store),
            Err(e) => {
                tracing::warn!(
                    "[BRIDGE] work group '{group}': {e}; a job delivered again after a node \
                     died may be handled twice"
                );
                None
            }
        };
        tokio::spawn(
            self.dead
                .clone()
                .watch(stream.clone(), stream_name.clone(), group.clone()),
        );
        let held = Arc::new(Held::default());
        tokio::spawn(keep_alive(Arc::clone(&held)));
        // Bounded by the held jobs (at most max_in_flight): one message each.
        let (settle, to_settle) = mpsc::unbounded_channel();
        tokio::spawn(settle_all(
            to_settle,
            Arc::clone(&held),
            handled.clone(),
            Arc::clone(&self.importer),
            Arc::clone(&self.stats),
            self.dead.clone(),
        ));
        let importer = &self.importer;
        let deliverer = Deliverer::start(
            importer.bus.clone(),
            Arc::clone(&importer.stats),
            Arc::clone(&importer.refusals),
        );
        let said = Pacer::new(Duration::from_secs(30));
        loop {
            match stream
                .get_or_create_consumer(&group, consumer_config(&group))
                .await
            {
                Ok(consumer) => {
                    let pulled = self
                        .pull(&consumer, &held, &settle, &deliverer, handled.as_ref())
                        .await;
                    if let Err(e) = pulled {
                        if e.is_empty() {
                            return;
                        }
                        if said.due() {
                            tracing::warn!(
                                "[BRIDGE] work group '{group}': cannot pull: {e}; trying again"
                            );
                        }
                    }
                }
                Err(e) => {
                    if said.due() {
                        tracing::warn!(
                            "[BRIDGE] work group '{group}': cannot open the consumer: {e}; \
                             trying again"
                        );
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Pulls while the consumer answers: `Err` with why it stopped (empty:
    /// the delivery thread is gone, the bridge stops).
    async fn pull(
        &self,
        consumer: &PullConsumer,
        held: &Arc<Held>,
        settle: &mpsc::UnboundedSender<Settle>,
        deliverer: &Deliverer,
        handled: Option<&kv::Store>,
    ) -> Result<(), String> {
        loop {
            let Some(room) = super::room(&self.importer.bus, &self.group) else {
                tokio::time::sleep(IDLE).await;
                continue;
            };
            // Held jobs count against the capacity wherever they are (on
            // their way, waiting, in a handler): a small mailbox is never
            // handed more jobs than it can hold, whatever else it holds.
            let held_now = held.len();
            let free = room
                .free
                .saturating_sub(held.on_the_way.load(Ordering::Acquire));
            let want = self
                .group
                .max_in_flight
                .min(room.capacity)
                .saturating_sub(held_now)
                .min(free);
            if want == 0 {
                let _ = tokio::time::timeout(IDLE, held.freed.notified()).await;
                continue;
            }
            let mut batch = consumer
                .batch()
                .max_messages(want)
                .expires(PULL_WAIT)
                .messages()
                .await
                .map_err(|e| e.to_string())?;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| e.to_string())?;
                if let Some(delivery) = self.take(message, held, settle, handled).await
                    && deliverer.deliver_all(vec![delivery]).await.is_err()
                {
                    return Err(String::new());
                }
            }
        }
    }

    /// Reads one job: acknowledged or terminated at once (a repeat, this
    /// node's own duplicate, a malformed one), left (its first delivery is
    /// in hand here), or held and handed over for delivery.
    async fn take(
        &self,
        message: Message,
        held: &Arc<Held>,
        settle: &mpsc::UnboundedSender<Settle>,
        handled: Option<&kv::Store>,
    ) -> Option<Delivery> {
        let delivered = message.info().map_or(1, |info| info.delivered);
        self.stats.taken.fetch_add(1, Ordering::Relaxed);
        if delivered > 1 {
            self.stats.redelivered.fetch_add(1, Ordering::Relaxed);
        }
        let verdict = self.importer.judge(
            message.subject.as_str(),
            message.headers.as_ref(),
            &message.payload,
            true,
        );
        let (event, tracked) = match verdict {
            Verdict::Done => {
                self.stats.repeats.fetch_add(1, Ordering::Relaxed);
                acknowledge(&message, AckKind::Ack).await;
                return None;
            }
            Verdict::Refuse => {
                acknowledge(&message, AckKind::Term).await;
                return None;
            }
            Verdict::InHand => return None,
            Verdict::Deliver { event, tracked } => (event, tracked),
        };
        if delivered > 1
            && let (Some(store), Some(key)) = (handled, tracked.as_ref())
            && handled::seen(store, key).await
        {
            self.importer.handled(Some(key));
            self.stats.repeats.fetch_add(1, Ordering::Relaxed);
            acknowledge(&message, AckKind::Ack).await;
            return None;
        }
        let key = held.hold(message);
        self.stats.hold();
        let settled = Arc::new(AtomicBool::new(false));
        let on_done = {
            let (settle, settled, tracked) =
                (settle.clone(), Arc::clone(&settled), tracked.clone());
            move || {
                if !settled.swap(true, Ordering::AcqRel) {
                    let _ = settle.send(Settle::Handled(key, tracked));
                }
            }
        };
        let on_refused = {
            let settle = settle.clone();
            move |refused: Refused| {
                if !settled.swap(true, Ordering::AcqRel) {
                    let _ = settle.send(Settle::Refused(key, tracked, refused, delivered));
                }
            }
        };
        let times = u32::try_from(delivered).unwrap_or(u32::MAX);
        held.on_the_way.fetch_add(1, Ordering::AcqRel);
        Some(Delivery {
            event: Arc::new(event.delivered_times(times).when_done(on_done)),
            refused: Some(Box::new(on_refused)),
            job: Some(Arc::clone(&held.on_the_way)),
        })
    }
}

/// Acknowledges, records and gives up held jobs as their ends arrive.
async fn settle_all(
    mut to_settle: mpsc::UnboundedReceiver<Settle>,
    held: Arc<Held>,
    handled: Option<kv::Store>,
    importer: Arc<Importer>,
    stats: Arc<WorkStats>,
    dead: DeadLetters,
) {
    let not_marked = Arc::new(Pacer::new(Duration::from_secs(30)));
    while let Some(settle) = to_settle.recv().await {
        match settle {
            Settle::Handled(key, tracked) => {
                let Some(message) = held.release(key) else {
                    continue;
                };
                stats.release();
                stats.handled.fetch_add(1, Ordering::Relaxed);
                importer.handled(tracked.as_ref());
                let (handled, not_marked) = (handled.clone(), Arc::clone(&not_marked));
                stats.acking.fetch_add(1, Ordering::AcqRel);
                let acked = Arc::clone(&stats);
                tokio::spawn(async move {
                    if let (Some(store), Some(key)) = (handled, tracked)
                        && let Err(e) = handled::mark(&store, &key).await
                        && not_marked.due()
                    {
                        tracing::warn!(
                            "[BRIDGE] a handled job is not recorded ({e}): if its \
                             acknowledgement is lost too, it may be handled again"
                        );
                    }
                    acknowledge(&message, AckKind::Ack).await;
                    acked.acking.fetch_sub(1, Ordering::AcqRel);
                });
            }
            Settle::Refused(key, tracked, refused, delivered) => {
                let Some(message) = held.release(key) else {
                    continue;
                };
                stats.release();
                stats.refused.fetch_add(1, Ordering::Relaxed);
                importer.refused(tracked.as_deref());
                match refused.refusal {
                    Refusal::Permanent(why) => {
                        let error = &refused.error;
                        importer
                            .refusals
                            .permanent(why, &message.subject, || error.to_string());
                        acknowledge(&message, AckKind::Term).await;
                    }
                    Refusal::Transient if delivered >= super::MAX_DELIVER => {
                        acknowledge(&message, AckKind::Term).await;
                        dead.send(
                            message.subject.as_str(),
                            message.headers.as_ref(),
                            message.payload.clone(),
                        )
                        .await;
                    }
                    Refusal::Transient => {
                        let topic = message
                            .subject
                            .as_str()
                            .strip_prefix(importer.prefix.as_str())
                            .and_then(|t| t.strip_prefix('.'))
                            .unwrap_or(message.subject.as_str());
                        importer.refusals.transient(
                            topic,
                            &refused.error,
                            Some((delivered, super::MAX_DELIVER)),
                        );
                        acknowledge(&message, AckKind::Nak(Some(super::retry_delay(delivered))))
                            .await;
                    }
                }
            }
        }
    }
}

/// Sends a progress acknowledgement for every held job every third of the
/// ack wait, so none is offered to another node while this one lives.
async fn keep_alive(held: Arc<Held>) {
    loop {
        tokio::time::sleep(super::ACK_WAIT / 3).await;
        let jobs: Vec<Message> = lock(&held.jobs).values().cloned().collect();
        for job in jobs {
            acknowledge(&job, AckKind::Progress).await;
        }
    }
}

async fn acknowledge(message: &Message, kind: AckKind) {
    if let Err(e) = message.ack_with(kind).await {
        tracing::debug!("[BRIDGE] work acknowledgement not sent: {e}");
    }
}
