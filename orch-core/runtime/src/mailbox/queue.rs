//! The events waiting for one module: at most `capacity`, in publish order,
//! memory taken as events arrive (an idle mailbox costs a few bytes, not its
//! capacity), and a publisher that must wait for room is woken as soon as the
//! module takes an event.
//!
//! The reader gives the room it makes back a few events at a time (see
//! [`EventQueue::take`]): one read-modify-write of the count publishers write
//! per batch instead of per event. While events flow the queue therefore
//! counts up to `release_every - 1` events the reader already took, and may
//! refuse (or make a publisher wait for) that many early; it never holds more
//! than its capacity.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use crossbeam_utils::CachePadded;

use crate::bus::BusEvent;

/// What the queue's channel carries: events (counted), and beside them,
/// uncounted, the marks of host calls and bare wake-ups.
enum Slot {
    Event(Arc<BusEvent>),
    Mark,
    Wake,
}

/// What the reader takes out of the queue.
pub(crate) enum Taken {
    /// The next event.
    Event(Arc<BusEvent>),
    /// A host call's mark: the events queued before the call are all taken.
    Mark,
}

/// The most events the reader takes before it gives their room back.
const RELEASE_EVERY_MAX: usize = 16;

/// A bounded queue of events, many publishers, one reader at a time. The
/// channel also carries the marks of host calls (each behind the events
/// queued before its call) and wake-ups, neither counted: the reader blocks
/// on this channel alone, and whoever queues it other work drops a wake-up
/// here.
pub(crate) struct EventQueue {
    tx: Sender<Slot>,
    rx: Receiver<Slot>,
    capacity: usize,
    /// Waiting publishers are woken once the queue is down to this many: a
    /// batch of room at a time, not a wake-up (and a context switch) per event.
    low_water: usize,
    /// Events in the queue, or about to be: a slot is taken before the send
    /// (never past `capacity`), and given back when an event is taken (by
    /// the reader, a batch at a time).
    /// Written by both sides: on a cache line of its own.
    queued: CachePadded<AtomicUsize>,
    /// Events the reader took and has not yet given back to `queued`.
    /// Written by the reader alone (there is one at a time), with plain
    /// loads and stores.
    unreleased: CachePadded<AtomicUsize>,
    /// The reader gives room back once it holds this many (at most 16, and
    /// at most an eighth of the capacity, the low-water mark's distance: a
    /// waiting publisher is woken at most `release_every - 1` takes later
    /// than the mark alone would).
    release_every: usize,
    /// Publishers waiting for room, and where they wait. The flag under
    /// the lock says the sleepers were already told since they last went
    /// to sleep: one wake-up (a futex call) per back-pressure cycle, not
    /// one per event taken while they wake.
    waiting: AtomicUsize,
    room: Mutex<bool>,
    freed: Condvar,
}

impl EventQueue {
    /// An empty queue of `capacity` events (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        let (tx, rx) = unbounded();
        let capacity = capacity.max(1);
        Self {
            tx,
            rx,
            capacity,
            low_water: capacity.saturating_sub((capacity / 8).max(1)),
            queued: CachePadded::new(AtomicUsize::new(0)),
            unreleased: CachePadded::new(AtomicUsize::new(0)),
            release_every: (capacity / 8).clamp(1, RELEASE_EVERY_MAX),
            waiting: AtomicUsize::new(0),
            room: Mutex::new(false),
            freed: Condvar::new(),
        }
    }

    /// Queues `event` if there is room; gives it back otherwise.
    pub(crate) fn try_push(&self, event: Arc<BusEvent>) -> Result<(), Arc<BusEvent>> {
        // Never over the capacity, even for a moment: the reader decides
        // whether to wake a waiting publisher from the level it leaves, and
        // a level raised by a failed try would hide the room it made (the
        // publisher would sleep until its deadline).
        let capacity = self.capacity;
        let slot = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued < capacity).then_some(queued + 1)
            });
        if slot.is_err() {
            return Err(event);
        }
        // Cannot fail: the queue holds its own receiver.
        let _ = self.tx.send(Slot::Event(event));
        Ok(())
    }

    /// Wakes the reader if it waits in [`Self::wait`].
    pub(crate) fn wake(&self) {
        let _ = self.tx.send(Slot::Wake);
    }

    /// Marks the place of a host call: behind every event queued so far
    /// (the reader takes the call when it reaches the mark). Wakes the
    /// reader too.
    pub(crate) fn mark(&self) {
        let _ = self.tx.send(Slot::Mark);
    }

    /// Queues `event`, waiting up to `timeout` for room.
    pub(crate) fn push_timeout(
        &self,
        mut event: Arc<BusEvent>,
        timeout: Duration,
    ) -> Result<(), Arc<BusEvent>> {
        let deadline = Instant::now() + timeout;
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let mut guard = self.room.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = loop {
            match self.try_push(event) {
                Ok(()) => break Ok(()),
                Err(back) => event = back,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(event);
            }
            // Going to sleep: the next event taken must wake us.
            *guard = false;
            guard = self
                .freed
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        drop(guard);
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        outcome
    }

    /// Takes the oldest event or mark (skipping wake-ups), giving its room
    /// back at once: for a publisher making room (`drop-oldest`). The
    /// reader takes with [`Self::take`].
    pub(crate) fn try_pop(&self) -> Option<Taken> {
        loop {
            match self.rx.try_recv() {
                Ok(Slot::Event(event)) => {
                    self.release(1);
                    return Some(Taken::Event(event));
                }
                Ok(Slot::Mark) => return Some(Taken::Mark),
                Ok(Slot::Wake) => {}
                Err(_) => return None,
            }
        }
    }

    /// The reader's [`Self::try_pop`]: gives room back a batch at a time,
    /// and all it holds back when the queue is empty or at a mark (before
    /// the reader may wait, or run a call).
    pub(crate) fn take(&self) -> Option<Taken> {
        loop {
            match self.rx.try_recv() {
                Ok(Slot::Event(event)) => return Some(Taken::Event(self.taken(event))),
                Ok(Slot::Mark) => {
                    self.release_held();
                    return Some(Taken::Mark);
                }
                Ok(Slot::Wake) => {}
                Err(_) => {
                    self.release_held();
                    return None;
                }
            }
        }
    }

    /// The reader waits for the next event or mark, or a wake-up (`None`).
    /// It holds no room back: it waits after [`Self::take`] found nothing.
    pub(crate) fn wait(&self) -> Option<Taken> {
        self.release_held();
        match self.rx.recv() {
            Ok(Slot::Event(event)) => Some(Taken::Event(self.taken(event))),
            Ok(Slot::Mark) => {
                self.release_held();
                Some(Taken::Mark)
            }
            _ => None,
        }
    }

    /// The reader took `event`: its room goes back with the batch.
    fn taken(&self, event: Arc<BusEvent>) -> Arc<BusEvent> {
        let held = self.unreleased.load(Ordering::Relaxed) + 1;
        if held < self.release_every {
            self.unreleased.store(held, Ordering::Relaxed);
        } else {
            self.unreleased.store(0, Ordering::Relaxed);
            self.release(held);
        }
        event
    }

    /// Gives back the room of the events the reader holds back (the reader,
    /// before it turns to other work).
    pub(crate) fn release_held(&self) {
        let held = self.unreleased.load(Ordering::Relaxed);
        if held > 0 {
            self.unreleased.store(0, Ordering::Relaxed);
            self.release(held);
        }
    }

    /// Gives `taken` events' room back, waking a waiting publisher once the
    /// queue is down to its low-water mark.
    fn release(&self, taken: usize) {
        let left = self.queued.fetch_sub(taken, Ordering::AcqRel) - taken;
        if left <= self.low_water && self.waiting.load(Ordering::Acquire) > 0 {
            // Under the lock: a publisher between its full check and its wait
            // cannot miss this. Told already (and not asleep again since):
            // no second wake-up.
            let mut told = self.room.lock().unwrap_or_else(|e| e.into_inner());
            if !*told {
                *told = true;
                self.freed.notify_all();
            }
        }
    }

    /// How many events wait (exact in the reader's thread; elsewhere a
    /// gauge, as the reader takes events meanwhile).
    pub(crate) fn len(&self) -> usize {
        let queued = self.queued.load(Ordering::Acquire);
        queued.saturating_sub(self.unreleased.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u8) -> Arc<BusEvent> {
        Arc::new(BusEvent::new("t.x", &[b'0' + n], None))
    }

    impl EventQueue {
        /// The next event, past any mark (the tests queue none).
        fn try_pop_event(&self) -> Option<Arc<BusEvent>> {
            std::iter::from_fn(|| self.try_pop()).find_map(|taken| match taken {
                Taken::Event(event) => Some(event),
                Taken::Mark => None,
            })
        }
    }

    #[test]
    fn holds_capacity_events_in_order_and_wakes_a_waiting_publisher() {
        let queue = Arc::new(EventQueue::new(2));
        assert!(queue.try_push(event(1)).is_ok());
        assert!(queue.try_push(event(2)).is_ok());
        assert!(queue.try_push(event(3)).is_err(), "full");
        assert!(
            queue
                .push_timeout(event(3), Duration::from_millis(20))
                .is_err()
        );
        let reader = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                queue.try_pop_event()
            })
        };
        assert!(
            queue
                .push_timeout(event(3), Duration::from_secs(30))
                .is_ok()
        );
        assert_eq!(reader.join().unwrap().unwrap().payload(), b"1");
        let rest: Vec<Vec<u8>> = std::iter::from_fn(|| queue.try_pop_event())
            .map(|e| e.payload().to_vec())
            .collect();
        assert_eq!(rest, [b"2".to_vec(), b"3".to_vec()]);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn the_reader_gives_room_back_a_batch_at_a_time_and_all_when_empty() {
        // Capacity 64: room goes back 8 events at a time.
        let queue = EventQueue::new(64);
        for n in 0..64 {
            assert!(queue.try_push(event(n % 10)).is_ok());
        }
        for _ in 0..7 {
            assert!(matches!(queue.take(), Some(Taken::Event(_))));
        }
        assert_eq!(queue.len(), 57, "the reader's own count is exact");
        assert!(queue.try_push(event(0)).is_err(), "7 taken, held back");
        assert!(matches!(queue.take(), Some(Taken::Event(_))));
        for _ in 0..8 {
            assert!(queue.try_push(event(0)).is_ok(), "the 8th gave 8 back");
        }
        assert!(queue.try_push(event(0)).is_err());
        // Drained to the end: everything given back, none held.
        let mut taken = 0;
        while let Some(Taken::Event(_)) = queue.take() {
            taken += 1;
        }
        assert_eq!(taken, 64);
        assert_eq!(queue.len(), 0);
        for _ in 0..64 {
            assert!(queue.try_push(event(0)).is_ok(), "all the room is back");
        }
    }

    #[test]
    fn room_held_back_goes_back_at_a_mark_and_before_the_reader_waits() {
        let queue = Arc::new(EventQueue::new(64));
        for _ in 0..64 {
            assert!(queue.try_push(event(1)).is_ok());
        }
        queue.mark();
        for _ in 0..3 {
            assert!(matches!(queue.take(), Some(Taken::Event(_))));
        }
        assert!(queue.try_push(event(2)).is_err(), "3 held back");
        // A publisher waits for room while the reader reaches the mark.
        let publisher = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || queue.push_timeout(event(3), Duration::from_secs(30)))
        };
        for _ in 3..64 {
            assert!(matches!(queue.take(), Some(Taken::Event(_))));
        }
        assert!(matches!(queue.take(), Some(Taken::Mark)));
        assert!(
            publisher.join().unwrap().is_ok(),
            "woken by the room given back"
        );
        // The reader waits: what it held is back before it sleeps.
        assert!(matches!(queue.take(), Some(Taken::Event(_))));
        queue.wake();
        assert!(queue.wait().is_none(), "a bare wake-up");
        assert_eq!(queue.queued.load(Ordering::Acquire), 0, "nothing held back");
    }

    #[test]
    fn a_publisher_that_sleeps_again_is_woken_again() {
        // Capacity 1: every event is a whole back-pressure cycle. Beside the
        // waiting publisher, another only tries (as a `drop-newest` or
        // `Admission::Now` publish does): its failed tries must not hide
        // the room the reader makes.
        let queue = Arc::new(EventQueue::new(1));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 200 {
                    match queue.try_pop_event() {
                        Some(event) if event.payload()[0] != u8::MAX => {
                            got.push(event.payload()[0]);
                        }
                        Some(_) => {}
                        None => std::thread::yield_now(),
                    }
                }
                got
            })
        };
        let prober = {
            let (queue, done) = (Arc::clone(&queue), Arc::clone(&done));
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    let _ = queue.try_push(Arc::new(BusEvent::new("t.x", &[u8::MAX], None)));
                }
            })
        };
        // Far longer than any wake-up takes: a push that used it all was
        // never woken (its last try at the deadline would still succeed).
        let deadline = Duration::from_secs(20);
        for n in 0..200u8 {
            let began = Instant::now();
            let pushed = queue.push_timeout(Arc::new(BusEvent::new("t.x", &[n], None)), deadline);
            assert!(pushed.is_ok(), "event {n} waited for room in vain");
            assert!(began.elapsed() < deadline, "event {n}: a wake-up was lost");
        }
        done.store(true, Ordering::Release);
        prober.join().unwrap();
        let got = reader.join().unwrap();
        assert_eq!(got, (0..200u8).collect::<Vec<_>>());
    }
}
