//! What the bus hands events to: a sink, how it may treat a full mailbox,
//! and what became of a delivery.

use std::sync::Arc;

use super::BusEvent;

/// How a delivery may treat a full mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Never waits: a full mailbox whose policy is `block` answers
    /// [`Delivered::WouldBlock`] (the bus then waits outside its lock).
    Now,
    /// May wait up to `timeouts.publish` for room (`block`).
    Wait,
    /// Never waits: with `block`, a full mailbox drops the event (timer ticks).
    NoWait,
    /// Always accepted: the answer to one of the module's requests (bounded
    /// by the request table, never dropped).
    Always,
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// The event waits in the mailbox.
    Accepted,
    /// A full mailbox dropped it (or an older event) as its policy says.
    Dropped,
    /// Full, and the policy is `block`: ask again with [`Admission::Wait`].
    WouldBlock,
    /// Full past `timeouts.publish`: the publish fails with this message.
    Refused(String),
    /// The sink is gone for good.
    Gone,
    /// An observer (`cargo orch tap`) saw it: never a recipient (it answers
    /// no request) and never counted as delivered.
    Observed,
}

/// Somewhere events are delivered: never runs subscriber code, and never
/// waits unless asked to with [`Admission::Wait`].
pub trait EventSink: Send + Sync {
    /// Hands over one event.
    fn deliver(&self, event: &Arc<BusEvent>, admission: Admission) -> Delivered;

    /// As [`EventSink::deliver`], handing over the publisher's own
    /// reference (no count taken and given back on a line the readers
    /// write); a full `block` mailbox (`WouldBlock`) gives it back as
    /// `Err`.
    fn deliver_owned(
        &self,
        event: Arc<BusEvent>,
        admission: Admission,
    ) -> Result<Delivered, Arc<BusEvent>> {
        match self.deliver(&event, admission) {
            Delivered::WouldBlock => Err(event),
            delivered => Ok(delivered),
        }
    }

    /// Room for more events, for a sink that handles them (a module's
    /// mailbox); `None` for one that only watches or forwards (an observer,
    /// the bridge's outbox). Shared work is taken from the broker only as
    /// far as the handling sinks have room.
    fn room(&self) -> Option<Room> {
        None
    }
}

/// A handling sink's room: free slots now, and all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Events it can take now.
    pub free: usize,
    /// Events it can hold at most.
    pub capacity: usize,
}

impl EventSink for crossbeam_channel::Sender<Arc<BusEvent>> {
    fn deliver(&self, event: &Arc<BusEvent>, _admission: Admission) -> Delivered {
        match self.send(Arc::clone(event)) {
            Ok(()) => Delivered::Accepted,
            Err(_) => Delivered::Gone,
        }
    }
}

/// An event a module did not get, on its way to `module.dead_letter`.
pub struct DeadLetter {
    /// The module that did not get it.
    pub module: Arc<str>,
    /// Why: an overflow policy, `circuit-open` or `stuck-handler`.
    pub reason: &'static str,
    /// The event.
    pub event: Arc<BusEvent>,
}
