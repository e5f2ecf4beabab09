//! One single-producer single-consumer byte ring of a [`Segment`], seen from
//! either end. Each end keeps its own counter privately and only publishes it;
//! the other end's counter is read from the segment and checked before use
//! (it may come from a hostile child): it never goes backwards and never
//! claims more than one ring of bytes. Offsets always come from the private
//! counter, so every access is in bounds by construction.
//!
//! Wake-ups are an eventcount: a side about to sleep raises its "sleeping"
//! flag, checks again, then waits on its sequence word; the other side, after
//! publishing its counter, takes the flag down and, only if it was up, bumps
//! and wakes that word. Both use sequentially consistent ordering, so one of
//! them always sees the other: no lost wake-up, no system call while both
//! are busy, and one per sleep however many wakers signal before the
//! sleeper runs again (the flag stayed up until then, and every signal of a
//! busy producer made a system call: a quarter of all events in a flood).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::Duration;

use super::segment::{Counter, Segment, Side, Word, futex_wait, futex_wake};

/// The other end broke the ring's rules: a protocol error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Corrupt(pub(crate) String);

/// The writing end of a ring.
#[derive(Debug)]
pub struct Producer {
    segment: Arc<Segment>,
    side: Side,
    /// Bytes ever written by us (published as the ring's tail).
    tail: u64,
    /// The consumer's last checked read counter.
    head: u64,
    /// Bytes were published since the consumer was last signalled.
    unsignalled: bool,
    /// Where the frames written end (write counters), oldest first, until
    /// the consumer has read past them: taking a whole frame is progress,
    /// freeing a byte is not. At most [`MAX_FRAME_ENDS`].
    ends: VecDeque<u64>,
}

/// Frame ends a producer remembers; past it new ones are not noted (their
/// progress then counts by the quarter ring, see `stream::write_all`).
const MAX_FRAME_ENDS: usize = 4096;

/// The reading end of a ring.
#[derive(Debug)]
pub struct Consumer {
    segment: Arc<Segment>,
    side: Side,
    /// Bytes ever read by us (published as the ring's head).
    head: u64,
    /// The producer's last checked write counter.
    tail: u64,
}

#[inline]
fn cap(segment: &Segment) -> u64 {
    segment.cap() as u64
}

impl Producer {
    /// The writing end of `side` (a fresh ring: nothing written yet).
    pub(crate) fn new(segment: Arc<Segment>, side: Side) -> Self {
        Self {
            segment,
            side,
            tail: 0,
            head: 0,
            unsignalled: false,
            ends: VecDeque::new(),
        }
    }

    /// The capacity of the ring, in bytes.
    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        cap(&self.segment)
    }

    /// The consumer's read counter, as last checked.
    #[inline]
    pub(crate) fn read_counter(&self) -> u64 {
        self.head
    }

    /// Notes that a whole frame has been written (its end is the tail now).
    #[inline]
    pub(crate) fn end_frame(&mut self) {
        if self.ends.len() < MAX_FRAME_ENDS {
            self.ends.push_back(self.tail);
        }
    }

    /// How many noted frame ends the consumer's read counter (as last
    /// checked) has passed since the last call: whole frames it took.
    #[inline]
    pub(crate) fn frames_taken(&mut self) -> usize {
        let mut taken = 0;
        while self.ends.front().is_some_and(|&end| end <= self.head) {
            self.ends.pop_front();
            taken += 1;
        }
        taken
    }

    /// Free bytes, from the consumer's read counter once checked.
    #[inline]
    pub(crate) fn free(&mut self) -> Result<u64, Corrupt> {
        let head = self
            .segment
            .counter(self.side, Counter::Head)
            .load(Ordering::Acquire);
        if head < self.head || head > self.tail {
            return Err(Corrupt(format!(
                "its read counter of the {:?} ring moved to {head} (was {}, at most {} written)",
                self.side, self.head, self.tail
            )));
        }
        self.head = head;
        Ok(cap(&self.segment) - (self.tail - head))
    }

    /// Writes as much of `bytes` as fits now and publishes it (the consumer
    /// is woken by [`Producer::signal`]); returns how many bytes went in.
    #[inline]
    pub(crate) fn write_some(&mut self, bytes: &[u8]) -> Result<usize, Corrupt> {
        let free = usize::try_from(self.free()?).unwrap_or(usize::MAX);
        let n = free.min(bytes.len());
        let mut done = 0;
        while done < n {
            let offset = (self.tail + done as u64) as usize;
            done += self.segment.copy_in(self.side, offset, &bytes[done..n]);
        }
        if n > 0 {
            self.tail += n as u64;
            self.segment
                .counter(self.side, Counter::Tail)
                .store(self.tail, Ordering::Release);
            self.unsignalled = true;
        }
        Ok(n)
    }

    /// Wakes the consumer if it sleeps and something was published since the
    /// last signal. Deferring it batches wake-ups: one for many frames.
    #[inline]
    pub fn signal(&mut self) {
        if self.unsignalled {
            self.unsignalled = false;
            wake_consumer(&self.segment, self.side);
        }
    }

    /// Waits (at most `timeout`) for the consumer to free space, unless there
    /// is some already.
    pub(crate) fn wait_for_space(&mut self, timeout: Duration) -> Result<(), Corrupt> {
        let segment = Arc::clone(&self.segment);
        let words = (Word::SpaceSeq, Word::ProducerSleeping);
        sleep_unless(&segment, self.side, words, timeout, || {
            let free = self.free();
            let idle = matches!(free, Ok(0));
            (free.map(drop), idle)
        })
    }

    /// A doorbell for this end (to wake it while it waits for space).
    pub fn doorbell(&self) -> Doorbell {
        Doorbell::of(&self.segment, self.side)
    }

    /// Notes (the child's side) that every reply up to number `reply` is in
    /// the ring or answers an event handled without error: what the
    /// orchestrator counts as handled when the child dies with answers it
    /// held back (see [`HandledNote`]). One store, no system call.
    #[inline]
    pub fn note_handled(&self, reply: u64) {
        self.segment.handled_note().store(reply, Ordering::Release);
    }

    /// The child's note of the replies it handled, to read once it ended.
    pub fn handled_note(&self) -> HandledNote {
        HandledNote {
            segment: Arc::clone(&self.segment),
        }
    }

    /// Bytes written so far.
    #[cfg(test)]
    pub(crate) fn written(&self) -> u64 {
        self.tail
    }
}

impl Consumer {
    /// The reading end of `side` (a fresh ring: nothing read yet).
    pub(crate) fn new(segment: Arc<Segment>, side: Side) -> Self {
        Self {
            segment,
            side,
            head: 0,
            tail: 0,
        }
    }

    /// Bytes waiting, from the producer's write counter once checked.
    #[inline]
    pub fn available(&mut self) -> Result<u64, Corrupt> {
        let tail = self
            .segment
            .counter(self.side, Counter::Tail)
            .load(Ordering::Acquire);
        if tail < self.tail || tail - self.head > cap(&self.segment) {
            return Err(Corrupt(format!(
                "its write counter of the {:?} ring moved to {tail} (was {}, {} read, ring of {})",
                self.side,
                self.tail,
                self.head,
                cap(&self.segment)
            )));
        }
        self.tail = tail;
        Ok(tail - self.head)
    }

    /// Copies what is waiting (at most `buf.len()` bytes) out of the ring,
    /// frees it and wakes a producer waiting for space; returns how many.
    #[inline]
    pub(crate) fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, Corrupt> {
        let available = usize::try_from(self.available()?).unwrap_or(usize::MAX);
        let n = available.min(buf.len());
        let mut done = 0;
        while done < n {
            let offset = (self.head + done as u64) as usize;
            done += self.segment.copy_out(self.side, offset, &mut buf[done..n]);
        }
        if n > 0 {
            self.head += n as u64;
            self.segment
                .counter(self.side, Counter::Head)
                .store(self.head, Ordering::Release);
            wake_producer(&self.segment, self.side);
        }
        Ok(n)
    }

    /// Waits (at most `timeout`) for data, unless some is there already or
    /// `ready()` says there is other work (checked after raising the flag, so
    /// a [`Doorbell`] rung meanwhile is never missed).
    pub fn wait_for_data(
        &mut self,
        timeout: Duration,
        ready: impl Fn() -> bool,
    ) -> Result<(), Corrupt> {
        let segment = Arc::clone(&self.segment);
        let words = (Word::DataSeq, Word::ConsumerSleeping);
        sleep_unless(&segment, self.side, words, timeout, || {
            let available = self.available();
            let idle = matches!(available, Ok(0)) && !ready();
            (available.map(drop), idle)
        })
    }

    /// A doorbell for this end: other threads of this process ring it after
    /// queueing work for the consumer's thread.
    pub fn doorbell(&self) -> Doorbell {
        Doorbell::of(&self.segment, self.side)
    }
}

/// The child's [`Producer::note_handled`], read by the orchestrator after the
/// child ended: the replies past the last it read that stand for events
/// handled without error (their answers were held back, never written).
/// Written by the child: the reader bounds it by what it sent.
#[derive(Debug, Clone)]
pub struct HandledNote {
    segment: Arc<Segment>,
}

impl HandledNote {
    /// The last reply number the child noted.
    pub fn read(&self) -> u64 {
        self.segment.handled_note().load(Ordering::Acquire)
    }
}

/// The sleeping half of the eventcount: reads the sequence word, raises the
/// flag, then runs `check` (which reads the peer's counter again) and waits
/// on the sequence word only if `check` found nothing to do; a wake-up
/// between the two reads changes the word, so the wait returns at once.
fn sleep_unless<T>(
    segment: &Segment,
    side: Side,
    (seq, flag): (Word, Word),
    timeout: Duration,
    check: impl FnOnce() -> (T, bool),
) -> T {
    let (seq, flag) = (segment.word(side, seq), segment.word(side, flag));
    let seen = seq.load(Ordering::SeqCst);
    flag.store(1, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    let (result, idle) = check();
    if idle {
        futex_wait(seq, seen, timeout);
    }
    flag.store(0, Ordering::SeqCst);
    result
}

/// Wakes the consumer of a ring (for work that came another way) or its
/// producer (when the peer is gone), whether or not there is data.
#[derive(Debug, Clone)]
pub struct Doorbell {
    segment: Arc<Segment>,
    side: Side,
}

impl Doorbell {
    fn of(segment: &Arc<Segment>, side: Side) -> Self {
        Self {
            segment: Arc::clone(segment),
            side,
        }
    }

    /// Wakes the consumer if it sleeps; call after queueing the work.
    #[inline]
    pub fn ring(&self) {
        wake_consumer(&self.segment, self.side);
    }

    /// Wakes the producer if it waits for space.
    #[inline]
    pub fn ring_producer(&self) {
        wake_producer(&self.segment, self.side);
    }
}

/// The waking half of the eventcount, for a ring's consumer.
#[inline]
fn wake_consumer(segment: &Segment, side: Side) {
    wake_if_sleeping(segment, side, Word::ConsumerSleeping, Word::DataSeq);
}

/// The waking half of the eventcount, for a ring's producer.
#[inline]
fn wake_producer(segment: &Segment, side: Side) {
    wake_if_sleeping(segment, side, Word::ProducerSleeping, Word::SpaceSeq);
}

/// After a full fence (what was published or queued comes first), wakes the
/// side whose `flag` is raised; the waker that takes the flag down makes
/// the system call, later ones find it down.
#[inline]
fn wake_if_sleeping(segment: &Segment, side: Side, flag: Word, seq: Word) {
    fence(Ordering::SeqCst);
    let flag = segment.word(side, flag);
    // The load first: while nobody sleeps the line is only read.
    if flag.load(Ordering::SeqCst) != 0 && flag.swap(0, Ordering::SeqCst) != 0 {
        let seq = segment.word(side, seq);
        seq.fetch_add(1, Ordering::SeqCst);
        futex_wake(seq);
    }
}
