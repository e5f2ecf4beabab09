//! Imported events offered without waiting: the bridge hands them to the
//! mailboxes from its own runtime, and only what a full `block` mailbox
//! holds up goes on to a thread that may wait.

use std::sync::Arc;

use super::{Admission, Bus, BusError, BusEvent, DeliveryReport, Target};

/// What became of an event offered with [`Bus::offer_imported`].
pub enum Offered {
    /// Every subscriber took it or let it go as its policy says: how many
    /// took it, or the refusal of one.
    Settled(Result<usize, BusError>),
    /// Some `block` mailbox is full: [`Unsettled::settle`] waits for it (on
    /// a thread that may wait). The other subscribers have the event
    /// already.
    Unsettled(Unsettled),
}

/// An imported event that some full `block` mailbox has not taken yet.
pub struct Unsettled {
    event: Arc<BusEvent>,
    /// The mailboxes still to wait for; `None`: the whole delivery is still
    /// to be made (a topic diverted to one sink, which is always waited for).
    waiting: Option<Vec<Target>>,
    report: DeliveryReport,
}

impl Unsettled {
    /// Waits (up to `timeouts.publish` each) for the mailboxes that were
    /// full, as [`Bus::publish_imported`] would have: how many subscribers
    /// took the event in all, or the refusal of one.
    pub fn settle(self, bus: &Bus) -> Result<usize, BusError> {
        let Self {
            event,
            waiting,
            mut report,
        } = self;
        match waiting {
            None => bus.deliver(event, Admission::Now, None).into_result(),
            Some(waiting) => {
                bus.settle(waiting, &event, None, &mut report);
                report.into_result()
            }
        }
    }
}

impl Bus {
    /// [`Bus::publish_imported`] without waiting: the event goes to every
    /// subscriber whose mailbox takes it now; if a full `block` mailbox
    /// would have to be waited for, the rest of the delivery is returned to
    /// be settled elsewhere (never waited for here: the bridge calls this
    /// from its runtime, which must not stall).
    pub fn offer_imported(&self, event: Arc<BusEvent>) -> Result<Offered, BusError> {
        orch_sdk::topic::validate_topic(event.topic()).map_err(BusError::InvalidTopic)?;
        self.check_size(event.topic(), event.payload())?;
        let mut report = DeliveryReport::default();
        let registry = self.read();
        if Self::diverted_to(&registry, &event).is_some() {
            drop(registry);
            return Ok(Offered::Unsettled(Unsettled {
                event,
                waiting: None,
                report,
            }));
        }
        let targets = Self::matching(&registry, event.topic());
        let waiting = Self::offer(targets, &event, Admission::Now, None, &mut report);
        drop(registry);
        if !waiting.is_empty() {
            return Ok(Offered::Unsettled(Unsettled {
                event,
                waiting: Some(waiting),
                report,
            }));
        }
        if !self.shared.dead_letters.1.is_empty() {
            self.flush_dead_letters();
        }
        Ok(Offered::Settled(report.into_result()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::mailbox::Mailbox;
    use orch_config::{MailboxSettings, Overflow};

    fn block_mailbox(capacity: usize) -> Mailbox {
        Mailbox::new(
            "slow".into(),
            MailboxSettings {
                capacity,
                overflow: Overflow::Block,
            },
            Duration::from_secs(5),
        )
    }

    fn imported(n: u8) -> Arc<BusEvent> {
        Arc::new(BusEvent::imported(
            "orders.placed",
            &[b'0' + n],
            None,
            Arc::from("node-a"),
            None,
        ))
    }

    #[test]
    fn a_full_block_mailbox_is_left_to_settle_and_the_others_have_the_event_at_once() {
        let bus = Bus::new();
        let slow = block_mailbox(1);
        let fast = block_mailbox(10);
        for mailbox in [&slow, &fast] {
            let id = bus.register(mailbox.sink());
            bus.subscribe(id, "orders.>").expect("subscribes");
        }
        let first = bus.offer_imported(imported(1)).expect("offered");
        assert!(matches!(first, Offered::Settled(Ok(2))));
        let Offered::Unsettled(second) = bus.offer_imported(imported(2)).expect("offered") else {
            panic!("the slow mailbox is full: the second event must wait for it");
        };
        assert_eq!(fast.len(), 2, "the other mailbox took it without waiting");
        assert_eq!(slow.len(), 1);
        let settling = std::thread::spawn({
            let bus = bus.clone();
            move || second.settle(&bus)
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!settling.is_finished(), "it waits for room");
        let taken = slow.try_next_event().expect("the first event");
        assert_eq!(taken.payload(), b"1");
        let settled = settling.join().expect("no panic");
        assert_eq!(settled.expect("delivered"), 2, "both subscribers in all");
        let next = slow.try_next_event().expect("the second event");
        assert_eq!(next.payload(), b"2");
    }

    #[test]
    fn an_offer_checks_the_topic_and_size_as_a_publish_does() {
        let bus = Bus::new();
        bus.set_max_event_bytes(4);
        let big = Arc::new(BusEvent::imported(
            "orders.placed",
            b"12345",
            None,
            Arc::from("node-a"),
            None,
        ));
        assert!(matches!(
            bus.offer_imported(big),
            Err(BusError::TooLarge { .. })
        ));
    }
}
