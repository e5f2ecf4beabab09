//! The ring to the orchestrator (shared-memory transport) and what waits
//! before it: replies wake the orchestrator in batches (every
//! [`REPLY_BATCH`] or a quarter of the orchestrator's in-flight window if
//! less, before this child sleeps, and before a handler once
//! [`REPLY_DELAY`] passed), and a run of events handled without error goes
//! as one `Handled` frame instead of a `Reply` each. Everything else is
//! written at once (the held run first: the replies stay in order) and wakes
//! the orchestrator at once.

use std::time::{Duration, Instant};

use orch_wire::protocol::{Frame, keep_small};
use orch_wire::shm::{Producer, Wake, WriteFailed, write_all};

/// How long a full ring to the orchestrator may block a send before it
/// fails (the orchestrator always drains it; a stuck one is gone soon).
const UP_STALL: Duration = Duration::from_secs(60);

/// Replies that wake the orchestrator together at most: a quarter of the
/// largest window of events in flight (1,024; a quarter of a smaller one),
/// so the host has room to send more long before its window is full, and
/// each of its wake-ups brings many. Measured against 32 (one run of 1,000,000 events, medians of 4-5
/// interleaved): 1 KB +9%, 43 B +6%; 512 was slower than 256.
const REPLY_BATCH: u32 = 256;

/// The longest a reply waits for its wake-up while this child keeps busy.
const REPLY_DELAY: Duration = Duration::from_millis(1);

/// The ring to the orchestrator and the replies not yet woken for.
pub(crate) struct UpRing {
    ring: Producer,
    /// The frame written last (its allocation reused).
    frame: Vec<u8>,
    /// Replies written since the orchestrator was last woken.
    replies: u32,
    /// When it was last woken.
    signalled: Instant,
    /// Replies that wake it together at most (and the longest run).
    batch: u32,
    /// Events handled without error whose replies are not written yet.
    run: Option<HandledRun>,
}

/// Consecutive replies to events handled without error.
#[derive(Debug, Clone, Copy)]
struct HandledRun {
    first: u64,
    count: u32,
    nanos: u64,
}

impl UpRing {
    /// The ring, for an orchestrator that keeps `window` events in flight.
    pub(crate) fn new(ring: Producer, window: u32) -> Self {
        Self {
            ring,
            frame: Vec::new(),
            replies: 0,
            signalled: Instant::now(),
            batch: (window / 4).clamp(1, REPLY_BATCH),
            run: None,
        }
    }

    /// Writes `frame` after the held run; a reply waits for its wake-up,
    /// anything else wakes the orchestrator. `false` once it is gone.
    pub(crate) fn send(&mut self, frame: &Frame, gone: &dyn Fn() -> bool) -> bool {
        if !self.write_run(gone) {
            return false;
        }
        let is_reply = matches!(frame, Frame::Reply { .. });
        let wake = if is_reply { Wake::Later } else { Wake::Now };
        if !self.write(frame, gone, wake) {
            return false;
        }
        if is_reply {
            self.replied(1);
        } else {
            self.replies = 0;
            self.signalled = Instant::now();
        }
        true
    }

    /// Reply `seq` answers an event handled without error in `nanos`: held
    /// in the run, written with it (at the latest after [`REPLY_BATCH`]), and
    /// noted in the segment at once, so the orchestrator counts it handled
    /// even if this child dies before the run is written.
    pub(crate) fn handled(&mut self, seq: u64, nanos: u64, gone: &dyn Fn() -> bool) -> bool {
        self.ring.note_handled(seq);
        match &mut self.run {
            Some(run) if run.first + u64::from(run.count) == seq && run.count < self.batch => {
                run.count += 1;
                run.nanos = run.nanos.saturating_add(nanos);
            }
            _ => {
                if !self.write_run(gone) {
                    return false;
                }
                self.run = Some(HandledRun {
                    first: seq,
                    count: 1,
                    nanos,
                });
            }
        }
        if self.run.is_some_and(|run| run.count >= self.batch) {
            return self.write_run(gone);
        }
        true
    }

    /// Wakes the orchestrator for what waits (the held run written first),
    /// if `due`.
    pub(crate) fn signal_if(&mut self, due: impl FnOnce(&Self) -> bool, gone: &dyn Fn() -> bool) {
        if (self.replies > 0 || self.run.is_some()) && due(self) && self.write_run(gone) {
            self.signal();
        }
    }

    /// Whether the replies waited [`REPLY_DELAY`] for their wake-up by `now`.
    pub(crate) fn stale_at(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.signalled) >= REPLY_DELAY
    }

    /// Writes the held run as one `Handled` frame, if there is one.
    fn write_run(&mut self, gone: &dyn Fn() -> bool) -> bool {
        let Some(run) = self.run.take() else {
            return true;
        };
        let frame = Frame::Handled {
            first: run.first,
            count: run.count,
            nanos: run.nanos,
        };
        if !self.write(&frame, gone, Wake::Later) {
            return false;
        }
        self.replied(run.count);
        true
    }

    /// `count` more replies written: the orchestrator is woken for a batch.
    fn replied(&mut self, count: u32) {
        self.replies = self.replies.saturating_add(count);
        if self.replies >= self.batch {
            self.signal();
        }
    }

    fn signal(&mut self) {
        self.ring.signal();
        self.replies = 0;
        self.signalled = Instant::now();
    }

    fn write(&mut self, frame: &Frame, gone: &dyn Fn() -> bool, wake: Wake) -> bool {
        frame.encode_into(&mut self.frame);
        let written = write_all(&mut self.ring, &self.frame, UP_STALL, gone, wake);
        keep_small(&mut self.frame);
        match written {
            Ok(()) => true,
            Err(WriteFailed::Stalled) => {
                eprintln!("the orchestrator stopped reading this child's ring for 60 s");
                false
            }
            Err(WriteFailed::Closed) => false,
            Err(WriteFailed::Corrupt(e)) => {
                eprintln!("the orchestrator's ring is broken: {e}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_wire::protocol::Status;
    use orch_wire::shm::{Consumer, RingReader, loopback};

    fn never_gone() -> bool {
        false
    }

    /// Every whole frame written so far.
    fn frames(up: &mut Consumer) -> Vec<Frame> {
        let mut frames = Vec::new();
        while up.available().is_ok_and(|n| n > 0) {
            let mut reader = RingReader::new(up, || true);
            match Frame::read_from(&mut reader) {
                Ok(Some(frame)) => frames.push(frame),
                other => panic!("not a frame: {other:?}"),
            }
        }
        frames
    }

    fn handled(first: u64, count: u32, nanos: u64) -> Frame {
        Frame::Handled {
            first,
            count,
            nanos,
        }
    }

    #[test]
    fn a_run_of_handled_events_goes_as_one_frame_a_batch_at_a_time() {
        let (ring, mut up) = loopback("up-ring-runs").unwrap();
        let mut ring = UpRing::new(ring, 1024);
        for seq in 1..=300 {
            assert!(ring.handled(seq, 10, &never_gone));
        }
        assert_eq!(frames(&mut up), [handled(1, 256, 2_560)], "written at 256");
        ring.signal_if(|_| true, &never_gone);
        assert_eq!(
            frames(&mut up),
            [handled(257, 44, 440)],
            "the rest on a signal"
        );
        ring.signal_if(|_| true, &never_gone);
        assert_eq!(frames(&mut up), [], "nothing held");
    }

    #[test]
    fn a_small_window_makes_short_runs() {
        let (ring, mut up) = loopback("up-ring-window").unwrap();
        let mut ring = UpRing::new(ring, 40);
        for seq in 1..=25 {
            assert!(ring.handled(seq, 1, &never_gone));
        }
        assert_eq!(
            frames(&mut up),
            [handled(1, 10, 10), handled(11, 10, 10)],
            "a quarter of the window"
        );
    }

    #[test]
    fn any_other_frame_goes_after_the_run_before_it() {
        let (ring, mut up) = loopback("up-ring-order").unwrap();
        let mut ring = UpRing::new(ring, 1024);
        assert!(ring.handled(1, 5, &never_gone));
        assert!(ring.handled(2, 5, &never_gone));
        let publish = Frame::Publish {
            topic: "a.b".into(),
            payload: b"{}".to_vec(),
        };
        assert!(ring.send(&publish, &never_gone));
        let failed = Frame::Reply {
            seq: 4,
            status: Status::Error,
            data: b"no".to_vec(),
        };
        assert!(ring.handled(3, 7, &never_gone));
        assert!(ring.send(&failed, &never_gone));
        // A gap in the numbers (a reply went another way) starts a new run.
        assert!(ring.handled(6, 1, &never_gone));
        assert!(ring.handled(8, 1, &never_gone));
        ring.signal_if(|_| true, &never_gone);
        assert_eq!(
            frames(&mut up),
            [
                handled(1, 2, 10),
                publish,
                handled(3, 1, 7),
                failed,
                handled(6, 1, 1),
                handled(8, 1, 1)
            ]
        );
    }

    #[test]
    fn each_handled_event_is_noted_in_the_segment_before_its_run_is_written() {
        let (ring, mut up) = loopback("up-ring-note").unwrap();
        let note = ring.handled_note();
        let mut ring = UpRing::new(ring, 1024);
        assert_eq!(note.read(), 0);
        for seq in 2..=4 {
            assert!(ring.handled(seq, 1, &never_gone));
            assert_eq!(note.read(), seq, "noted at once");
        }
        assert_eq!(frames(&mut up), [], "the run is still held");
    }

    #[test]
    fn replies_wait_for_their_wake_up_only_while_fresh() {
        let (ring, _up) = loopback("up-ring-stale").unwrap();
        let mut ring = UpRing::new(ring, 1024);
        let now = Instant::now();
        assert!(!ring.stale_at(now));
        assert!(ring.stale_at(now + REPLY_DELAY));
        assert!(ring.handled(1, 1, &never_gone));
        ring.signal_if(
            |ring| ring.stale_at(Instant::now() + REPLY_DELAY),
            &never_gone,
        );
        assert!(!ring.stale_at(Instant::now()), "signalled just now");
    }
}
