//! Jobs given up: one a local mailbox refused on its last delivery, and one
//! the server stopped offering after [`super::MAX_DELIVER`] deliveries that
//! were never acknowledged (its nodes died or froze while holding it; the
//! server says so in a `MAX_DELIVERIES` advisory, every node hears it, and
//! the one that deletes the job from the stream sends it on). Each goes to
//! `orch-dead.<prefix>.<group>.<topic>` with its headers and payload
//! unchanged, and to the local `module.dead_letter` with the reason
//! `max-deliver`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::stream::Stream;
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use futures_util::StreamExt;
use orch_runtime::bus::Bus;
use orch_runtime::pace::Pacer;

use super::WorkStats;
use crate::envelope;

/// The reason `module.dead_letter` gives for a job given up.
pub const REASON: &str = "max-deliver";

/// Where a group's dead letters go.
#[derive(Clone)]
pub struct DeadLetters {
    /// The client.
    pub client: Client,
    /// The local bus (`module.dead_letter`).
    pub bus: Bus,
    /// The bridge's subject prefix.
    pub prefix: String,
    /// The group.
    pub group: String,
    /// Its counters.
    pub stats: Arc<WorkStats>,
    /// Paces the warning.
    pub said: Arc<Pacer>,
}

impl DeadLetters {
    /// Sends one job on: to the dead-letter subject and `module.dead_letter`.
    pub async fn send(&self, subject: &str, headers: Option<&HeaderMap>, payload: Bytes) {
        let work_prefix = super::subject_prefix(&self.prefix, &self.group);
        let arrived = envelope::job(subject, headers, &work_prefix, |_| Ok(()));
        let (topic, source) = match &arrived {
            Ok(arrived) => (arrived.topic.to_owned(), arrived.source.map(str::to_owned)),
            Err(_) => (
                subject
                    .strip_prefix(work_prefix.as_str())
                    .and_then(|t| t.strip_prefix('.'))
                    .unwrap_or(subject)
                    .to_owned(),
                None,
            ),
        };
        let dead = super::dead_subject(&self.prefix, &self.group, &topic);
        let sent = match headers {
            Some(headers) => {
                self.client
                    .publish_with_headers(dead.clone(), headers.clone(), payload.clone())
                    .await
            }
            None => self.client.publish(dead.clone(), payload.clone()).await,
        };
        let total = self.stats.dead_letters.fetch_add(1, Ordering::Relaxed) + 1;
        if self.said.due() {
            let sent = match sent {
                Ok(()) => format!("sent to {dead}"),
                Err(e) => format!("not sent to {dead}: {e}"),
            };
            tracing::warn!(
                "[BRIDGE] work group '{}': a job on '{topic}' was given up after {} deliveries \
                 ({total} so far), {sent}; see module.dead_letter",
                self.group,
                super::MAX_DELIVER
            );
        }
        self.bus
            .publish_system_nowait(&orch_sdk::events::ModuleDeadLetter {
                data: serde_json::from_slice(&payload).unwrap_or_default(),
                id: 0,
                name: format!("work:{}", self.group),
                reason: REASON.to_owned(),
                source: source.unwrap_or_else(|| orch_sdk::HOST_SOURCE.to_owned()),
                topic,
            });
    }

    /// Hears the server's `MAX_DELIVERIES` advisories for the group's
    /// consumer and sends on each job this node wins (deletes from the
    /// stream) until the subscription ends.
    pub async fn watch(self, stream: Stream, stream_name: String, durable: String) {
        let advisory =
            format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream_name}.{durable}");
        let mut advisories = loop {
            match self.client.subscribe(advisory.clone()).await {
                Ok(subscription) => break subscription,
                Err(e) => {
                    tracing::debug!("[BRIDGE] cannot subscribe to {advisory}: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        while let Some(message) = advisories.next().await {
            let Some(sequence) = stream_sequence(&message.payload) else {
                continue;
            };
            let Ok(job) = stream.get_raw_message(sequence).await else {
                continue;
            };
            if matches!(stream.delete_message(sequence).await, Ok(true)) {
                self.send(job.subject.as_str(), Some(&job.headers), job.payload)
                    .await;
            }
        }
    }
}

/// The stream sequence an advisory names.
fn stream_sequence(payload: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Advisory {
        stream_seq: u64,
    }
    serde_json::from_slice::<Advisory>(payload)
        .ok()
        .map(|a| a.stream_seq)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_advisory_names_its_stream_sequence() {
        let payload = br#"{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":"S","consumer":"g","stream_seq":42,"deliveries":5}"#;
        assert_eq!(super::stream_sequence(payload), Some(42));
        assert_eq!(super::stream_sequence(b"{}"), None);
        assert_eq!(super::stream_sequence(b"not json"), None);
    }
}
