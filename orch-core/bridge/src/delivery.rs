//! Handing imported events to the local bus, in order. The bridge's runtime
//! offers each event to the mailboxes itself, never waiting
//! ([`Bus::offer_imported`]); only when a full `block` mailbox would have
//! to be waited for does the event go on to a delivery thread of the
//! bridge's own, fed through a bounded queue, which waits (never the
//! runtime). The events after it follow it there until the thread has
//! caught up, so no subscriber sees two imported events out of order. The
//! common case thus costs no hand-over between threads, and no wake-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use orch_runtime::bus::{Bus, BusError, BusEvent, Offered, Unsettled};
use tokio::sync::mpsc;

use crate::refusal::{Refusal, Refusals};
use crate::stats::ImportStats;

/// Deliveries waiting for the delivery thread, at most (in batches of at
/// most [`crate::import::BATCH`]).
const THREAD_QUEUE: usize = 4;

/// One message on its way to the local bus.
pub(crate) struct Delivery {
    /// The event.
    pub(crate) event: Arc<BusEvent>,
    /// Told when the local bus refused it, with why (JetStream).
    pub(crate) refused: Option<Box<dyn FnOnce(Refused) + Send>>,
    /// A shared-work job: one no local subscriber took is refused (for
    /// now: another node may have one), never dropped as handled. Its
    /// counter of jobs on their way to a mailbox goes down once the bus
    /// had it.
    pub(crate) job: Option<Arc<AtomicUsize>>,
}

/// A delivery the local bus refused: what the bus said, and what becomes
/// of it.
pub(crate) struct Refused {
    /// The bus's error.
    pub(crate) error: BusError,
    /// A lasting refusal or a passing one.
    pub(crate) refusal: Refusal,
}

/// A delivery handed to the thread, with what is left of it if the
/// runtime offered it already.
struct Handed {
    delivery: Delivery,
    unsettled: Option<Unsettled>,
}

/// What telling the outcome of a delivery needs.
#[derive(Clone)]
struct Outcomes {
    stats: Arc<ImportStats>,
    refusals: Arc<Refusals>,
}

/// Delivers imported events from the runtime, with a delivery thread for
/// what must wait. One per import (each keeps its own order).
pub(crate) struct Deliverer {
    bus: Bus,
    outcomes: Outcomes,
    thread: mpsc::Sender<Vec<Handed>>,
    /// Deliveries handed to the thread and not finished yet: while there
    /// are any, the next ones go there too (behind them, in order).
    behind: Arc<AtomicUsize>,
}

/// The delivery thread is gone: nothing more can be delivered.
#[derive(Debug)]
pub(crate) struct Stopped;

impl Deliverer {
    /// A deliverer onto `bus`, with its thread started.
    pub(crate) fn start(bus: Bus, stats: Arc<ImportStats>, refusals: Arc<Refusals>) -> Self {
        let outcomes = Outcomes { stats, refusals };
        let behind = Arc::new(AtomicUsize::new(0));
        let (thread, handed) = mpsc::channel::<Vec<Handed>>(THREAD_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("orch-bridge-deliver".into())
            .spawn({
                let (bus, outcomes, behind) = (bus.clone(), outcomes.clone(), Arc::clone(&behind));
                move || wait_and_deliver(&bus, &outcomes, &behind, handed)
            });
        if let Err(e) = spawned {
            tracing::error!(
                "[BRIDGE] cannot start the delivery thread: {e}; an import that finds a full \
                 `block` mailbox stops there"
            );
        }
        Self {
            bus,
            outcomes,
            thread,
            behind,
        }
    }

    /// Delivers `batch` in order: at once where every mailbox has room, the
    /// rest through the delivery thread (waiting here only while its queue
    /// is full). `Err` once the thread is gone.
    pub(crate) async fn deliver_all(&self, batch: Vec<Delivery>) -> Result<(), Stopped> {
        let mut batch = batch.into_iter();
        while let Some(delivery) = batch.next() {
            if self.behind.load(Ordering::Acquire) > 0 {
                return self.hand_over(delivery, None, batch).await;
            }
            match self.bus.offer_imported(Arc::clone(&delivery.event)) {
                Ok(Offered::Settled(published)) => self.outcomes.tell(delivery, published),
                Ok(Offered::Unsettled(unsettled)) => {
                    return self.hand_over(delivery, Some(unsettled), batch).await;
                }
                Err(error) => self.outcomes.tell(delivery, Err(error)),
            }
        }
        Ok(())
    }

    /// Hands `first` (with what is left of it) and all of `rest` to the
    /// thread, counted as behind before it can finish any of them.
    async fn hand_over(
        &self,
        first: Delivery,
        unsettled: Option<Unsettled>,
        rest: impl Iterator<Item = Delivery>,
    ) -> Result<(), Stopped> {
        let handed: Vec<Handed> = std::iter::once(Handed {
            delivery: first,
            unsettled,
        })
        .chain(rest.map(|delivery| Handed {
            delivery,
            unsettled: None,
        }))
        .collect();
        let count = handed.len();
        self.behind.fetch_add(count, Ordering::AcqRel);
        if self.thread.send(handed).await.is_err() {
            self.behind.fetch_sub(count, Ordering::AcqRel);
            return Err(Stopped);
        }
        Ok(())
    }
}

/// The delivery thread: settles what the runtime handed over, in order,
/// waiting for room as the mailboxes' policies say.
fn wait_and_deliver(
    bus: &Bus,
    outcomes: &Outcomes,
    behind: &AtomicUsize,
    mut handed: mpsc::Receiver<Vec<Handed>>,
) {
    while let Some(batch) = handed.blocking_recv() {
        for Handed {
            delivery,
            unsettled,
        } in batch
        {
            let published = match unsettled {
                Some(unsettled) => unsettled.settle(bus),
                None => bus.publish_imported(Arc::clone(&delivery.event)),
            };
            outcomes.tell(delivery, published);
            behind.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Outcomes {
    /// Counts a delivery, or tells its refusal to the delivery's `refused`
    /// (else counts and says it, paced). The event is held until then: the
    /// mailbox that refused it may have let go of it already, and its last
    /// holder's drop would otherwise report it handled (acknowledged)
    /// before the refusal could ask for it again.
    fn tell(&self, delivery: Delivery, published: Result<usize, BusError>) {
        let event = delivery.event;
        if let Some(on_the_way) = &delivery.job {
            on_the_way.fetch_sub(1, Ordering::AcqRel);
        }
        match published {
            Ok(0) if delivery.job.is_some() => {
                if let Some(refused) = delivery.refused {
                    refused(Refused {
                        error: BusError::Refused(format!(
                            "no local module subscribes to '{}' now",
                            event.topic()
                        )),
                        refusal: Refusal::Transient,
                    });
                }
            }
            Ok(_) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                let refusal = Refusal::of(&error);
                if let Some(refused) = delivery.refused {
                    refused(Refused { error, refusal });
                } else if let Refusal::Permanent(why) = refusal {
                    self.refusals
                        .permanent(why, event.topic(), || error.to_string());
                } else {
                    self.refusals.transient(event.topic(), &error, None);
                }
            }
        }
        drop(event);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use orch_config::{MailboxSettings, Overflow};
    use orch_runtime::mailbox::Mailbox;

    use super::*;

    fn mailbox(capacity: usize) -> Mailbox {
        Mailbox::new(
            "m".into(),
            MailboxSettings {
                capacity,
                overflow: Overflow::Block,
            },
            Duration::from_secs(10),
        )
    }

    fn delivery(n: usize) -> Delivery {
        Delivery {
            event: Arc::new(BusEvent::imported(
                "orders.placed",
                n.to_string().as_bytes(),
                None,
                Arc::from("node-a"),
                None,
            )),
            refused: None,
            job: None,
        }
    }

    fn payloads(mailbox: &Mailbox) -> Vec<String> {
        std::iter::from_fn(|| mailbox.try_next_event())
            .map(|e| String::from_utf8_lossy(e.payload()).into_owned())
            .collect()
    }

    /// A full `block` mailbox sends the rest through the delivery thread;
    /// what comes after waits behind it, so both subscribers get every
    /// event in order, and the runtime never waited for room.
    #[test]
    fn events_behind_a_full_block_mailbox_keep_their_order_everywhere() {
        let bus = Bus::new();
        let (slow, fast) = (mailbox(2), mailbox(100));
        for m in [&slow, &fast] {
            let id = bus.register(m.sink());
            bus.subscribe(id, "orders.>").expect("subscribes");
        }
        let stats = Arc::new(ImportStats::default());
        let refusals = Arc::new(Refusals::new(Arc::clone(&stats)));
        let deliverer = Deliverer::start(bus.clone(), Arc::clone(&stats), refusals);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime
            .block_on(deliverer.deliver_all((1..=5).map(delivery).collect()))
            .expect("delivered");
        assert_eq!(
            payloads(&fast),
            ["1", "2", "3"],
            "3 reached the mailbox with room; 4 and 5 wait behind it"
        );
        assert!(deliverer.behind.load(Ordering::Acquire) > 0);
        // Later batches follow the ones in the thread, even where the
        // mailboxes would have room now.
        let mut slow_got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while slow_got.len() < 5 && std::time::Instant::now() < deadline {
            slow_got.extend(payloads(&slow));
            std::thread::sleep(Duration::from_millis(5));
        }
        runtime
            .block_on(deliverer.deliver_all(vec![delivery(6)]))
            .expect("delivered");
        while slow_got.len() < 6 && std::time::Instant::now() < deadline {
            slow_got.extend(payloads(&slow));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(slow_got, ["1", "2", "3", "4", "5", "6"]);
        assert_eq!(payloads(&fast), ["4", "5", "6"]);
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 6);
        assert_eq!(deliverer.behind.load(Ordering::Acquire), 0);
    }
}
