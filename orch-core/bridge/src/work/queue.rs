//! A work group on core NATS: a queue subscription on the group's
//! subjects, held only while a local module subscribes to one of its topics
//! (so the server never hands this node a job nobody here takes). At most
//! once: a job in the hands of a node that stops or dies is lost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::{Client, Subscriber};
use futures_util::StreamExt;
use orch_config::WorkGroup;

use super::WorkStats;
use crate::delivery::{Deliverer, Delivery};
use crate::import::{Importer, Verdict};

/// How often the subscription is looked at again (held or let go).
const CHECK: Duration = Duration::from_millis(200);

/// Takes the group's jobs through a queue group for as long as the bridge
/// runs.
pub async fn run(client: Client, group: WorkGroup, importer: Arc<Importer>, stats: Arc<WorkStats>) {
    let deliverer = Deliverer::start(
        importer.bus.clone(),
        Arc::clone(&importer.stats),
        Arc::clone(&importer.refusals),
    );
    let subject = format!("{}.>", importer.prefix);
    let mut subscription: Option<Subscriber> = None;
    loop {
        let wanted = super::room(&importer.bus, &group).is_some();
        match (&mut subscription, wanted) {
            (None, true) => {
                match client
                    .queue_subscribe(subject.clone(), group.group.clone())
                    .await
                {
                    Ok(subscribed) => subscription = Some(subscribed),
                    Err(e) => tracing::warn!(
                        "[BRIDGE] work group '{}': cannot subscribe to {subject}: {e}",
                        group.group
                    ),
                }
            }
            (Some(held), false) => {
                let _ = held.unsubscribe().await;
                subscription = None;
            }
            _ => {}
        }
        let Some(held) = subscription.as_mut() else {
            tokio::time::sleep(CHECK).await;
            continue;
        };
        let Ok(next) = tokio::time::timeout(CHECK, held.next()).await else {
            continue;
        };
        let Some(message) = next else {
            subscription = None;
            continue;
        };
        stats.taken.fetch_add(1, Ordering::Relaxed);
        let verdict = importer.judge(
            message.subject.as_str(),
            message.headers.as_ref(),
            &message.payload,
            false,
        );
        let Verdict::Deliver { event, .. } = verdict else {
            continue;
        };
        stats.hold();
        let done = Arc::clone(&stats);
        let event = event.when_done(move || {
            done.release();
            done.handled.fetch_add(1, Ordering::Relaxed);
        });
        let delivery = Delivery {
            event: Arc::new(event),
            refused: None,
            job: None,
        };
        if deliverer.deliver_all(vec![delivery]).await.is_err() {
            return;
        }
    }
}
