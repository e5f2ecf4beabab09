//! What the child's main thread works on next: its local queue (timers, the
//! end of the parent's pipe) and, with shared memory, the orchestrator's ring,
//! read directly on the main thread (no thread hop per event). It sleeps on
//! the ring's futex when both are empty; local work rings the same doorbell.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};
use orch_wire::protocol::{EventRef, Frame};
use orch_wire::shm::{Consumer, RingReader};

use crate::Work;

/// The longest sleep of an idle child: only a backstop, every piece of work
/// wakes it at once.
const IDLE_WAIT: Duration = Duration::from_secs(10);

/// What the main thread takes next.
pub(crate) enum Next<'a> {
    /// Work from its queue, or a frame of the orchestrator other than an
    /// event.
    Work(Work),
    /// An event from the ring, its bytes borrowed from the inbox (decoded
    /// without a copy) until the next call.
    Event(EventRef<'a>),
}

/// The main thread's sources of work.
pub(crate) struct Inbox {
    queue: Receiver<Work>,
    ring: Option<Consumer>,
    /// The parent's pipe ended.
    gone: Arc<AtomicBool>,
    /// The body of the frame read last (its allocation reused).
    body: Vec<u8>,
}

impl Inbox {
    /// Work from `queue` alone (pipe transport), or from `queue` and `ring`.
    pub(crate) fn new(
        queue: Receiver<Work>,
        ring: Option<Consumer>,
        gone: Arc<AtomicBool>,
    ) -> Self {
        Self {
            queue,
            ring,
            gone,
            body: Vec::new(),
        }
    }

    /// The next piece of work; waits without spinning, calling
    /// `before_sleep` first. `waited` is set when it may have waited (the
    /// work did not follow the last at once).
    pub(crate) fn next(&mut self, before_sleep: &dyn Fn(), waited: &mut bool) -> Next<'_> {
        let Some(ring) = self.ring.as_mut() else {
            *waited = true;
            return Next::Work(self.queue.recv().unwrap_or(Work::ParentGone));
        };
        // The last frame's body is no longer borrowed.
        orch_wire::protocol::keep_small(&mut self.body);
        let gone = || self.gone.load(Ordering::Acquire);
        loop {
            match self.queue.try_recv() {
                Ok(work) => return Next::Work(work),
                Err(TryRecvError::Disconnected) => return Next::Work(Work::ParentGone),
                Err(TryRecvError::Empty) => {}
            }
            let waiting = match ring.available() {
                Ok(0) => {
                    *waited = true;
                    before_sleep();
                    ring.wait_for_data(IDLE_WAIT, || !self.queue.is_empty() || gone())
                }
                Ok(_) => {
                    let mut reader = RingReader::new(ring, gone);
                    return match Frame::read_body(&mut reader, &mut self.body) {
                        Ok(true) => decode(&self.body),
                        Ok(false) => Next::Work(Work::ParentGone),
                        Err(e) => bad_frame(&e),
                    };
                }
                Err(e) => Err(e),
            };
            if let Err(e) = waiting {
                eprintln!("the orchestrator's ring is broken: {e}");
                return Next::Work(Work::ParentGone);
            }
        }
    }
}

/// The frame `body` read from the ring: an event borrowed, anything else
/// decoded.
fn decode(body: &[u8]) -> Next<'_> {
    match EventRef::decode(body) {
        Ok(Some(event)) => Next::Event(event),
        Ok(None) => match Frame::decode(body) {
            Ok(frame) => Next::Work(Work::Request(frame)),
            Err(e) => bad_frame(&e),
        },
        Err(e) => bad_frame(&e),
    }
}

fn bad_frame(e: &impl std::fmt::Display) -> Next<'static> {
    eprintln!("bad frame in the orchestrator's ring: {e}");
    Next::Work(Work::ParentGone)
}
