//! Timer events of the module, into the main thread's queue: timers stay
//! local to the child, and fire on its main thread like any other work.

use std::sync::Arc;

use crossbeam_channel::Sender;
use orch_runtime::bus::{Admission, BusEvent, Delivered, EventSink};
use orch_wire::shm::Doorbell;

use crate::Work;

/// Timer events into the main thread's queue (and a ring of its doorbell,
/// with shared memory).
pub(crate) struct TimerSink(pub(crate) Sender<Work>, pub(crate) Option<Doorbell>);

impl EventSink for TimerSink {
    fn deliver(&self, event: &Arc<BusEvent>, _admission: Admission) -> Delivered {
        // Unbounded, yet bounded by the timers: one tick per timer waits at most.
        match self.0.send(Work::Timer(Arc::clone(event))) {
            Ok(()) => {
                if let Some(doorbell) = &self.1 {
                    doorbell.ring();
                }
                Delivered::Accepted
            }
            Err(_) => Delivered::Gone,
        }
    }
}
