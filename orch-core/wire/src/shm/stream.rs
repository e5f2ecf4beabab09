//! The rings as byte streams carrying the protocol's frames unchanged: a
//! blocking [`RingReader`] (`io::Read`, so `Frame::read_from` and its checks
//! are reused) and [`write_all`], which waits for space in bounded slices. A
//! frame larger than the ring streams through in pieces.

use std::io;
use std::time::{Duration, Instant};

use super::ring::{Consumer, Corrupt, Producer};

/// The longest single wait: a peer that never wakes us costs latency, never
/// a hung thread.
const SLICE: Duration = Duration::from_millis(100);

/// Wake-ups that find nothing, paced: one within this long of the last is
/// followed by a pause as long, so a peer that rings the futex in a loop
/// gets at most a thousand wake-ups a second out of us.
const EMPTY_WAKE_PACE: Duration = Duration::from_millis(1);

/// Counts the wake-ups that found nothing to do and paces them.
struct WakePace {
    last_empty: Option<Instant>,
    empty: u64,
}

impl WakePace {
    fn new() -> Self {
        Self {
            last_empty: None,
            empty: 0,
        }
    }

    /// A wait ended and there was still nothing: pause if the last such
    /// wake-up was moments ago (a peer spamming its futex word).
    fn found_nothing(&mut self) {
        self.empty += 1;
        let now = Instant::now();
        if self
            .last_empty
            .is_some_and(|last| now.duration_since(last) < EMPTY_WAKE_PACE)
        {
            std::thread::sleep(EMPTY_WAKE_PACE);
        }
        self.last_empty = Some(now);
    }
}

/// Reads a ring as a stream; end of stream once `closed()` says the peer is
/// gone and everything it wrote has been read.
pub struct RingReader<'a, F: Fn() -> bool> {
    consumer: &'a mut Consumer,
    closed: F,
    pace: WakePace,
}

impl<'a, F: Fn() -> bool> RingReader<'a, F> {
    /// A reader of `consumer` that ends when `closed()` turns true.
    pub fn new(consumer: &'a mut Consumer, closed: F) -> Self {
        Self {
            consumer,
            closed,
            pace: WakePace::new(),
        }
    }

    /// Wake-ups so far that found nothing to read.
    #[cfg(test)]
    pub(crate) fn empty_wakeups(&self) -> u64 {
        self.pace.empty
    }
}

/// A broken ring as an I/O error of its own kind (`InvalidData`), so the
/// reader can name it.
#[inline]
pub(crate) fn corrupt_io(e: Corrupt) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The ring's own message, if `e` came from a broken ring.
pub fn as_corrupt(e: &io::Error) -> Option<&Corrupt> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Corrupt>())
}

impl<F: Fn() -> bool> io::Read for RingReader<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.consumer.read_some(buf).map_err(corrupt_io)?;
            if n > 0 {
                return Ok(n);
            }
            if (self.closed)() {
                // What it wrote before it went still counts.
                return self.consumer.read_some(buf).map_err(corrupt_io);
            }
            self.consumer
                .wait_for_data(SLICE, &self.closed)
                .map_err(corrupt_io)?;
            if self.consumer.available().map_err(corrupt_io)? == 0 && !(self.closed)() {
                self.pace.found_nothing();
            }
        }
    }
}

/// Why bytes did not go into a ring.
#[derive(Debug)]
pub enum WriteFailed {
    /// The consumer broke the ring's rules.
    Corrupt(Corrupt),
    /// The consumer is gone.
    Closed,
    /// The consumer made no progress for the whole deadline (the ring
    /// stayed full, or it freed a byte now and then): it stopped reading.
    Stalled,
}

/// How a write ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Wake the consumer at once.
    Now,
    /// Leave it to a later [`Producer::signal`] (batching).
    Later,
}

/// What counts as progress of the consumer while a write waits for space:
/// it took a whole frame (read past the end of one this producer wrote), or
/// it freed a quarter of the ring (a frame larger than the ring streams
/// through). Freeing a byte now and then is not progress: a consumer that
/// trickles cannot hold the writer past its deadline.
struct Progress {
    /// When the writer began to wait since the consumer's last progress (or
    /// the write's start): read only once it has to wait, so a write that
    /// finds room reads no clock.
    since: Option<Instant>,
    /// Its read counter then.
    read: u64,
    quarter: u64,
}

impl Progress {
    fn new(producer: &mut Producer) -> Self {
        // What it took before this write is no progress of this write's.
        producer.frames_taken();
        Self {
            since: None,
            read: producer.read_counter(),
            quarter: (producer.capacity() / 4).max(1),
        }
    }

    /// Notes progress made since the last look (from the read counter the
    /// producer last checked).
    fn look(&mut self, producer: &mut Producer) {
        let read = producer.read_counter();
        if producer.frames_taken() > 0 || read - self.read >= self.quarter {
            self.since = None;
            self.read = read;
        }
    }

    /// How long the writer has waited without progress (the wait starts
    /// now if it had not).
    fn waited(&mut self) -> Duration {
        self.since.get_or_insert_with(Instant::now).elapsed()
    }
}

/// Writes all of `bytes` (one frame), waiting for space while the consumer
/// makes progress: [`WriteFailed::Stalled`] once it made none for `stall`
/// (see `Progress`: it must take whole frames, not free a byte now and
/// then). The consumer is always signalled before a wait for space.
#[inline]
pub fn write_all(
    producer: &mut Producer,
    mut bytes: &[u8],
    stall: Duration,
    closed: &dyn Fn() -> bool,
    wake: Wake,
) -> Result<(), WriteFailed> {
    let mut progress = Progress::new(producer);
    let mut pace = WakePace::new();
    while !bytes.is_empty() {
        let n = producer.write_some(bytes).map_err(WriteFailed::Corrupt)?;
        progress.look(producer);
        if n > 0 {
            bytes = &bytes[n..];
            continue;
        }
        if closed() {
            return Err(WriteFailed::Closed);
        }
        let waited = progress.waited();
        if waited >= stall {
            return Err(WriteFailed::Stalled);
        }
        producer.signal();
        producer
            .wait_for_space(SLICE.min(stall - waited))
            .map_err(WriteFailed::Corrupt)?;
        if producer.free().map_err(WriteFailed::Corrupt)? == 0 {
            pace.found_nothing();
        }
    }
    producer.end_frame();
    if wake == Wake::Now {
        producer.signal();
    }
    Ok(())
}
