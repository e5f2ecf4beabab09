//! This node as a NATS service (the `micro` protocol, async-nats's
//! `service` feature): it answers `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS`
//! (so `nats micro ls` / `nats micro stats <name>` list the nodes that
//! serve requests, with their counts), with one endpoint per served topic.
//!
//! An endpoint is a queue subscription on the topic's request subject,
//! held only while a module of this node subscribes to the topic: NATS then
//! says "no responders" at once when no node can answer, and spreads the
//! requests over those that can.
//!
//! - service name: the subject prefix with `.` written `-` (every node of
//!   one application shares it; each instance has its own id), version:
//!   this crate's, metadata: `node`;
//! - endpoint subject and queue group: `orch-req.<prefix>.<topic>`,
//!   metadata `topic`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use async_nats::Client;
use async_nats::service::{Request, ServiceExt};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::node::Identity;

/// The error code of the answer "this node has no local subscriber for it
/// (any more)": the requester tries another node.
pub const NOT_SERVED: usize = 503;

/// The service's name for subject prefix `prefix`: letters, digits, `-`
/// and `_` (what the protocol takes).
pub fn name(prefix: &str) -> String {
    prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// How long a change of subscriptions waits for the server, at most,
/// before it is said (while disconnected it is sent on reconnecting).
const FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// One endpoint that takes requests now.
struct Held {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The node's service and its endpoints.
pub(crate) struct Service {
    service: async_nats::service::Service,
    client: Client,
    prefix: String,
    topics: Vec<String>,
    held: HashMap<usize, Held>,
}

impl Service {
    /// Registers the service (no endpoint is held yet).
    pub(crate) async fn start(
        client: &Client,
        prefix: &str,
        me: &Identity,
        topics: &[String],
    ) -> Result<Self, async_nats::Error> {
        let service = client
            .service_builder()
            .description(format!(
                "cargo-orch node '{}': requests on {}",
                me.name,
                topics.join(", ")
            ))
            .metadata(HashMap::from([("node".to_owned(), me.name.clone())]))
            .start(name(prefix), env!("CARGO_PKG_VERSION"))
            .await?;
        Ok(Self {
            service,
            client: client.clone(),
            prefix: prefix.to_owned(),
            topics: topics.to_vec(),
            held: HashMap::new(),
        })
    }

    /// Holds the endpoint of each topic `wanted` says a local module
    /// subscribes to, and lets go of the others. Each held endpoint's
    /// requests go to `arrived` with the topic's index.
    pub(crate) async fn reconcile(
        &mut self,
        wanted: &[bool],
        arrived: &mpsc::Sender<(usize, Request)>,
    ) {
        for (index, &want) in wanted.iter().enumerate() {
            let Some(topic) = self.topics.get(index) else {
                continue;
            };
            match (want, self.held.contains_key(&index)) {
                (true, false) => {
                    let subject = crate::envelope::request_subject(&self.prefix, topic);
                    let added = self
                        .service
                        .endpoint_builder()
                        .queue_group(subject.clone())
                        .metadata(HashMap::from([("topic".to_owned(), topic.clone())]))
                        .add(subject.clone())
                        .await;
                    match added {
                        Ok(endpoint) => {
                            // Said once the server has the subscription.
                            let _ = tokio::time::timeout(FLUSH, self.client.flush()).await;
                            tracing::info!(
                                "[BRIDGE] serving requests on '{topic}' from other nodes ({subject})"
                            );
                            self.held
                                .insert(index, hold(index, endpoint, arrived.clone()));
                        }
                        Err(e) => {
                            tracing::error!("[BRIDGE] cannot take requests on '{subject}': {e}")
                        }
                    }
                }
                (false, true) => {
                    if let Some(held) = self.held.remove(&index) {
                        let _ = held.stop.send(());
                        let _ = held.task.await;
                        let _ = tokio::time::timeout(FLUSH, self.client.flush()).await;
                        tracing::info!(
                            "[BRIDGE] no local subscriber of '{topic}' left: requests from \
                             other nodes go elsewhere"
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

/// Forwards the requests of `endpoint` until told to stop, then
/// unsubscribes (before the task ends, so none is taken after).
fn hold(
    index: usize,
    mut endpoint: async_nats::service::endpoint::Endpoint,
    arrived: mpsc::Sender<(usize, Request)>,
) -> Held {
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        loop {
            // The stop first: once it is told, no further request is taken.
            let next = std::future::poll_fn(|cx| {
                if Pin::new(&mut stopped).poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                endpoint.poll_next_unpin(cx)
            })
            .await;
            let Some(request) = next else { break };
            if arrived.send((index, request)).await.is_err() {
                break;
            }
        }
        let _ = endpoint.stop().await;
    });
    Held { stop, task }
}
