//! JetStream imports: this node's durable consumer on the stream, filtered on
//! the imported subjects. A message is acknowledged once every local handler
//! let go of it (so a crash before that gets it delivered again); one that
//! never can be delivered (see [`crate::refusal`]) is terminated at once,
//! never offered again; one a local mailbox refused for now is asked for
//! again after a back-off that grows with its deliveries, at most
//! [`MAX_DELIVER`] times in all.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{AckKind, Message, stream::Stream as JetStreamStream};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::delivery::{Deliverer, Delivery, Refused};
use crate::envelope;
use crate::held::{HELD_BYTES, HeldBytes, HeldShare, MESSAGE_OVERHEAD};
use crate::import::{BATCH, Importer, Tracked, Verdict, lock};
use crate::refusal::Refusal;

/// Unacknowledged messages the server hands this node at most: the bound on
/// what waits in local mailboxes for its acknowledgement.
const MAX_ACK_PENDING: i64 = 1_000;

/// How long the stream waits for a message's acknowledgement before it
/// delivers it again: also how late a message comes that was on its way to
/// this node when the server holding the consumer died (the new leader sends
/// it again once this passed). A local handler slower than this makes a
/// repeat, which the window of recent ids drops.
pub const ACK_WAIT: Duration = Duration::from_secs(10);

/// Deliveries of one message to this node at most (every redelivery counts:
/// after an acknowledgement that did not come within [`ACK_WAIT`], or a
/// refusal). With the back-off of [`retry_delay`], a message a local
/// mailbox keeps refusing is offered for about 14 minutes, then no more.
pub const MAX_DELIVER: i64 = 20;

/// How long a message a local mailbox refused waits before it is offered
/// again, after its `delivered`-th delivery: 1 s, doubling up to a minute.
pub fn retry_delay(delivered: i64) -> Duration {
    let doublings = u32::try_from(delivered.clamp(1, 7) - 1).unwrap_or(0);
    Duration::from_secs(1 << doublings).min(Duration::from_secs(60))
}

/// Bytes one pull asks the server for at most (never less than twice the
/// largest message the server takes: a pull smaller than a stored message
/// is refused, and the consumer would stall on it).
fn pull_bytes(max_payload: usize) -> usize {
    (8 * 1024 * 1024).max(max_payload.saturating_mul(2))
}

/// A message delivered locally and not acknowledged yet, with its share of
/// the bytes held.
struct Unacked {
    message: Message,
    _held: HeldShare,
}

/// What the acknowledging task is told.
enum Ack {
    /// Every local handler let go of it.
    Handled(Unacked, Option<Tracked>),
    /// The local bus refused it.
    Refused(Unacked, Option<Tracked>, Refused),
}

/// The consumer's configuration.
fn consumer_config(durable: &str, filters: Vec<String>) -> pull::Config {
    pull::Config {
        durable_name: Some(durable.to_owned()),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: ACK_WAIT,
        max_ack_pending: MAX_ACK_PENDING,
        max_deliver: MAX_DELIVER,
        filter_subjects: filters,
        ..Default::default()
    }
}

/// Runs this node's durable consumer until the stream ends (it is opened
/// again after a failure); `max_payload` is the server's.
pub async fn run_jetstream(
    stream: JetStreamStream,
    durable: String,
    patterns: Vec<String>,
    importer: Importer,
    max_payload: usize,
) {
    let importer = Arc::new(importer);
    let deliverer = Deliverer::start(
        importer.bus.clone(),
        Arc::clone(&importer.stats),
        Arc::clone(&importer.refusals),
    );
    // Bounded by MAX_ACK_PENDING: the server hands out no more unacknowledged.
    let (acks, to_ack) = mpsc::unbounded_channel::<Ack>();
    // And by their bytes: no more is read while the bound is held.
    let held = HeldBytes::new(HELD_BYTES);
    tokio::spawn(acknowledge_all(
        to_ack,
        Arc::clone(&importer),
        durable.clone(),
    ));
    let filters: Vec<String> = patterns
        .iter()
        .map(|p| envelope::subject(&importer.prefix, p))
        .collect();
    let config = consumer_config(&durable, filters);
    loop {
        let consumer = match open_consumer(&stream, &durable, &config).await {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::warn!(
                    "[BRIDGE] cannot open the durable consumer '{durable}': {e}; trying again"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let pulling = consumer
            .stream()
            .max_bytes_per_batch(pull_bytes(max_payload))
            .messages();
        let mut messages = match pulling.await {
            Ok(messages) => messages.ready_chunks(BATCH),
            Err(e) => {
                tracing::warn!(
                    "[BRIDGE] cannot read the durable consumer '{durable}': {e}; trying again"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            held.room().await;
            let Some(chunk) = messages.next().await else {
                break;
            };
            let mut batch = Vec::with_capacity(chunk.len());
            for message in chunk {
                let message = match message {
                    Ok(message) => message,
                    Err(e) => {
                        tracing::debug!("[BRIDGE] consumer '{durable}': {e}");
                        continue;
                    }
                };
                if let Some(delivery) = judge(&importer, message, &acks, &held, &durable).await {
                    batch.push(delivery);
                }
            }
            if !batch.is_empty() && deliverer.deliver_all(batch).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The durable consumer, created if missing; one made by an earlier version
/// (without [`MAX_DELIVER`], or on other subjects) is brought up to date.
async fn open_consumer(
    stream: &JetStreamStream,
    durable: &str,
    config: &pull::Config,
) -> Result<async_nats::jetstream::consumer::PullConsumer, async_nats::Error> {
    let mut consumer = stream
        .get_or_create_consumer(durable, config.clone())
        .await?;
    let held = &consumer.cached_info().config;
    if held.max_deliver != config.max_deliver || held.filter_subjects != config.filter_subjects {
        match stream.update_consumer(config.clone()).await {
            Ok(updated) => consumer = updated,
            Err(e) => tracing::warn!(
                "[BRIDGE] cannot bring the durable consumer '{durable}' up to date (max_deliver \
                 {MAX_DELIVER}, the imported subjects): {e}; it is used as it is"
            ),
        }
    }
    Ok(consumer)
}

/// Reads one message: acknowledged or terminated at once, left (its first
/// delivery is in hand), or handed over for delivery with what to do once
/// it is handled or refused.
async fn judge(
    importer: &Arc<Importer>,
    message: Message,
    acks: &mpsc::UnboundedSender<Ack>,
    held: &Arc<HeldBytes>,
    durable: &str,
) -> Option<Delivery> {
    let verdict = importer.judge(
        message.subject.as_str(),
        message.headers.as_ref(),
        &message.payload,
        true,
    );
    let (event, tracked) = match verdict {
        Verdict::Done => {
            acknowledge(&message, AckKind::Ack, durable).await;
            return None;
        }
        Verdict::Refuse => {
            acknowledge(&message, AckKind::Term, durable).await;
            return None;
        }
        Verdict::InHand => return None,
        Verdict::Deliver { event, tracked } => (event, tracked),
    };
    // The payload twice: the message's, and the event's copy.
    let share = held.hold(2 * message.payload.len() + MESSAGE_OVERHEAD);
    let message = Arc::new(std::sync::Mutex::new(Some(Unacked {
        message,
        _held: share,
    })));
    let on_done = {
        let (acks, message, tracked) = (acks.clone(), Arc::clone(&message), tracked.clone());
        move || {
            if let Some(message) = lock(&message).take() {
                let _ = acks.send(Ack::Handled(message, tracked));
            }
        }
    };
    let on_refused = {
        let (acks, message) = (acks.clone(), Arc::clone(&message));
        move |refused: Refused| {
            if let Some(message) = lock(&message).take() {
                let _ = acks.send(Ack::Refused(message, tracked, refused));
            }
        }
    };
    Some(Delivery {
        event: Arc::new(event.when_done(on_done)),
        refused: Some(Box::new(on_refused)),
        job: None,
    })
}

/// Acknowledgements taken at once, at most: the handled ones among them are
/// remembered together (one lock, one `write` of the window's file) before
/// any of them is sent.
const ACK_BATCH: usize = 256;

/// Sends the acknowledgements the local handlers' ends call for, in order,
/// a batch of those waiting at a time.
async fn acknowledge_all(
    mut to_ack: mpsc::UnboundedReceiver<Ack>,
    importer: Arc<Importer>,
    durable: String,
) {
    let mut batch = Vec::with_capacity(ACK_BATCH);
    while to_ack.recv_many(&mut batch, ACK_BATCH).await > 0 {
        // Remembered as handled before the broker hears of it: a crash in
        // between skips the redelivery instead of handling it twice.
        importer.all_handled(batch.iter().filter_map(|ack| match ack {
            Ack::Handled(_, tracked) => tracked.as_ref(),
            Ack::Refused(..) => None,
        }));
        for ack in batch.drain(..) {
            acknowledge_one(ack, &importer, &durable).await;
        }
    }
}

/// Sends one acknowledgement (a handled message's id is remembered already).
async fn acknowledge_one(ack: Ack, importer: &Importer, durable: &str) {
    match ack {
        Ack::Handled(unacked, _) => {
            acknowledge(&unacked.message, AckKind::Ack, durable).await;
        }
        Ack::Refused(unacked, tracked, refused) => {
            let message = &unacked.message;
            importer.refused(tracked.as_deref());
            let topic = message.subject.as_str();
            let topic = topic
                .strip_prefix(importer.prefix.as_str())
                .and_then(|t| t.strip_prefix('.'))
                .unwrap_or(topic);
            let kind = match refused.refusal {
                Refusal::Permanent(why) => {
                    let error = &refused.error;
                    importer
                        .refusals
                        .permanent(why, &message.subject, || error.to_string());
                    AckKind::Term
                }
                Refusal::Transient => {
                    let delivered = message.info().map_or(1, |info| info.delivered);
                    importer.refusals.transient(
                        topic,
                        &refused.error,
                        Some((delivered, MAX_DELIVER)),
                    );
                    AckKind::Nak(Some(retry_delay(delivered)))
                }
            };
            acknowledge(message, kind, durable).await;
        }
    }
}

async fn acknowledge(message: &Message, kind: AckKind, durable: &str) {
    if let Err(e) = message.ack_with(kind).await {
        tracing::debug!("[BRIDGE] acknowledgement to '{durable}' not sent: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_message_waits_longer_each_time_and_is_not_tried_for_ever() {
        assert_eq!(retry_delay(0), Duration::from_secs(1));
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(6), Duration::from_secs(32));
        assert_eq!(retry_delay(7), Duration::from_secs(60));
        assert_eq!(retry_delay(i64::MAX), Duration::from_secs(60));
        let total: Duration = (1..MAX_DELIVER).map(retry_delay).sum();
        assert!(
            total > Duration::from_secs(10 * 60) && total < Duration::from_secs(20 * 60),
            "{total:?}"
        );
        let config = consumer_config("b", vec!["orch.>".into()]);
        assert_eq!(config.max_deliver, MAX_DELIVER);
        assert_eq!(config.ack_wait, ACK_WAIT);
        assert!(
            config.backoff.is_empty(),
            "ACK_WAIT keeps its fail-over meaning"
        );
    }
}
