//! A work group on core NATS: a queue subscription on the group's
//! subjects, held only while a local module subscribes to one of its topics
//! (so the server never hands this node a job nobody here takes) and while
//! this node keeps up: once more than [`LET_GO_ABOVE`] bytes of jobs wait
//! unread behind its workers, it unsubscribes, so the server hands the next
//! jobs to the group's other nodes, and takes jobs again once it is down to
//! [`TAKE_AGAIN_BELOW`]. What it holds is bounded in bytes as a core
//! import's is ([`crate::core_import::Intake`]). At most once: a job in the
//! hands of a node that stops or dies is lost, and so is one past the
//! bounds (counted with the import's drops).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::Client;
use orch_config::WorkGroup;
use orch_runtime::pace::Pacer;

use super::WorkStats;
use crate::backlog::UNREAD_BYTES;
use crate::core_import::{Intake, STRETCH};
use crate::delivery::Deliverer;
use crate::import::Importer;

/// How often the subscription is looked at again (held or let go).
const CHECK: Duration = Duration::from_millis(200);

/// Unread jobs past which the node lets go of the queue subscription.
pub const LET_GO_ABOVE: usize = UNREAD_BYTES / 2;

/// Unread jobs below which the node takes jobs again.
pub const TAKE_AGAIN_BELOW: usize = UNREAD_BYTES / 8;

/// The node says it let go at most this often.
const LET_GO_SAID_EVERY: Duration = Duration::from_secs(10);

/// Takes the group's jobs through a queue group for as long as the bridge
/// runs.
pub async fn run(client: Client, group: WorkGroup, importer: Arc<Importer>, stats: Arc<WorkStats>) {
    let deliverer = Deliverer::start(
        importer.bus.clone(),
        Arc::clone(&importer.stats),
        Arc::clone(&importer.refusals),
    );
    let queue = Queue {
        subject: format!("{}.>", importer.prefix),
        client,
        group,
        intake: Intake::new(&importer, Vec::new(), Some(stats)),
        held: false,
        said: Pacer::new(LET_GO_SAID_EVERY),
    };
    // As the core import: the loop reads all the client holds at each turn
    // and yields after each stretch.
    tokio::task::unconstrained(queue.run(&deliverer)).await;
}

/// One group's queue subscription and the jobs it brought.
struct Queue<'i> {
    subject: String,
    client: Client,
    group: WorkGroup,
    intake: Intake<'i>,
    /// Whether the intake's subscription is subscribed (not let go and
    /// still being read to its end).
    held: bool,
    /// Paces the warning that the node let go.
    said: Pacer,
}

impl Queue<'_> {
    async fn run(mut self, deliverer: &Deliverer) {
        loop {
            self.hold_or_let_go().await;
            let stretch = Instant::now() + STRETCH;
            std::future::poll_fn(|cx| {
                self.intake.read(cx);
                std::task::Poll::Ready(())
            })
            .await;
            self.intake.judge(stretch);
            while self.intake.has_judged() && Instant::now() < stretch {
                let batch = self.intake.next_batch();
                let mut delivering = std::pin::pin!(deliverer.deliver_all(batch));
                loop {
                    let until = if self.held { LET_GO_ABOVE } else { usize::MAX };
                    match self.intake.wait_reading(delivering.as_mut(), until).await {
                        Some(Ok(())) => break,
                        Some(Err(_)) => return,
                        // Held up with too much unread: let go meanwhile.
                        None => self.fall_behind().await,
                    }
                }
                self.intake.judge(stretch);
            }
            if self.intake.holds_any() {
                tokio::task::yield_now().await;
            } else if !self.intake.is_open() {
                tokio::time::sleep(CHECK).await;
            } else {
                let intake = &mut self.intake;
                let read = std::future::poll_fn(|cx| intake.until_read(cx));
                let _ = tokio::time::timeout(CHECK, read).await;
            }
        }
    }

    /// Takes jobs while a local module subscribes and the node keeps up;
    /// lets go otherwise.
    async fn hold_or_let_go(&mut self) {
        let subscribed = super::room(&self.intake.importer().bus, &self.group).is_some();
        let unread = self.intake.unread_bytes();
        if self.held && !subscribed {
            self.let_go().await;
        } else if self.held && unread > LET_GO_ABOVE {
            self.fall_behind().await;
        } else if !self.held
            && subscribed
            && unread < TAKE_AGAIN_BELOW
            // The subscription let go is read to its end first.
            && !self.intake.is_open()
        {
            match self
                .client
                .queue_subscribe(self.subject.clone(), self.group.group.clone())
                .await
            {
                Ok(subscription) => {
                    self.intake.add(subscription);
                    self.held = true;
                }
                Err(e) => tracing::warn!(
                    "[BRIDGE] work group '{}': cannot subscribe to {}: {e}",
                    self.group.group,
                    self.subject
                ),
            }
        }
    }

    /// Lets go, and says so now and then: too many jobs wait unread.
    async fn fall_behind(&mut self) {
        self.let_go().await;
        if self.said.due() {
            tracing::warn!(
                "[BRIDGE] work group '{}': {} MiB of jobs wait behind this node's workers; it \
                 takes no more until they are down to {} MiB (the group's other nodes take the \
                 next ones; give the workers a larger mailbox or more time)",
                self.group.group,
                self.intake.unread_bytes() >> 20,
                TAKE_AGAIN_BELOW >> 20
            );
        }
    }

    /// Unsubscribes: the server hands the next jobs to the group's other
    /// nodes; what the client received already is still taken.
    async fn let_go(&mut self) {
        self.intake.unsubscribe_all().await;
        self.held = false;
    }
}
