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

/// Reads a ring as a stream; end of stream once `closed()` says the peer is
/// gone and everything it wrote has been read.
pub(crate) struct RingReader<'a, F: Fn() -> bool> {
    consumer: &'a mut Consumer,
    closed: F,
}

impl<'a, F: Fn() -> bool> RingReader<'a, F> {
    /// A reader of `consumer` that ends when `closed()` turns true.
    pub(crate) fn new(consumer: &'a mut Consumer, closed: F) -> Self {
        Self { consumer, closed }
    }
}

/// A broken ring as an I/O error of its own kind (`InvalidData`), so the
/// reader can name it.
pub(crate) fn corrupt_io(e: Corrupt) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The ring's own message, if `e` came from a broken ring.
pub(crate) fn as_corrupt(e: &io::Error) -> Option<&Corrupt> {
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
        }
    }
}

/// Why bytes did not go into a ring.
#[derive(Debug)]
pub(crate) enum WriteFailed {
    /// The consumer broke the ring's rules.
    Corrupt(Corrupt),
    /// The consumer is gone.
    Closed,
    /// The ring stayed full for the whole deadline: the consumer stopped
    /// reading.
    Stalled,
}

/// How a write ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Wake the consumer at once.
    Now,
    /// Leave it to a later [`Producer::signal`] (batching).
    Later,
}

/// Writes all of `bytes`, waiting for space while the consumer makes
/// progress: [`WriteFailed::Stalled`] once it freed nothing for `stall`. The
/// consumer is always signalled before a wait for space.
pub(crate) fn write_all(
    producer: &mut Producer,
    mut bytes: &[u8],
    stall: Duration,
    closed: &dyn Fn() -> bool,
    wake: Wake,
) -> Result<(), WriteFailed> {
    let mut progress = Instant::now();
    while !bytes.is_empty() {
        let n = producer.write_some(bytes).map_err(WriteFailed::Corrupt)?;
        if n > 0 {
            bytes = &bytes[n..];
            progress = Instant::now();
            continue;
        }
        if closed() {
            return Err(WriteFailed::Closed);
        }
        let waited = progress.elapsed();
        if waited >= stall {
            return Err(WriteFailed::Stalled);
        }
        producer.signal();
        producer
            .wait_for_space(SLICE.min(stall - waited))
            .map_err(WriteFailed::Corrupt)?;
    }
    if wake == Wake::Now {
        producer.signal();
    }
    Ok(())
}
