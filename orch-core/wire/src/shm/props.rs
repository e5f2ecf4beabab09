//! Property tests of the orchestrator's ends of a segment: whatever a peer
//! writes into its side (counters, wake-up words, bytes), reading refuses it
//! as an error or reads a frame, never panics, never returns more than the
//! ring holds, and never asks for a buffer beyond the frame limit.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use proptest::collection::vec;
use proptest::prelude::*;

use super::segment::{Counter, Segment, Side, Word};
use super::stream::RingReader;
use super::{Consumer, Producer};
use crate::protocol::{Frame, MAX_FRAME};

const CAP: usize = 4096;

/// One thing a hostile peer does to the segment.
#[derive(Debug, Clone)]
enum Scribble {
    /// Stores a counter of a ring.
    Set(bool, bool, u64),
    /// Moves a counter of a ring forward.
    Add(bool, bool, u64),
    /// Stores a wake-up word.
    Word(bool, u8, u32),
    /// Writes bytes into a ring's data at an offset.
    Bytes(bool, u64, Vec<u8>),
    /// Writes a well-formed frame as an honest child would.
    Frame(Vec<u8>),
}

fn side(up: bool) -> Side {
    if up { Side::Up } else { Side::Down }
}

fn scribble() -> impl Strategy<Value = Scribble> {
    let big = prop_oneof![any::<u64>(), 0u64..3 * CAP as u64];
    prop_oneof![
        (any::<bool>(), any::<bool>(), big).prop_map(|(u, t, n)| Scribble::Set(u, t, n)),
        (any::<bool>(), any::<bool>(), 0u64..2 * CAP as u64)
            .prop_map(|(u, t, n)| Scribble::Add(u, t, n)),
        (any::<bool>(), 0u8..4, any::<u32>()).prop_map(|(u, w, n)| Scribble::Word(u, w, n)),
        (any::<bool>(), any::<u64>(), vec(any::<u8>(), 1..64))
            .prop_map(|(u, at, b)| Scribble::Bytes(u, at, b)),
        vec(any::<u8>(), 0..200).prop_map(|payload| {
            let frame = Frame::Publish {
                topic: "liar.out".into(),
                payload,
            };
            Scribble::Frame(frame.encode())
        }),
    ]
}

fn apply(segment: &Segment, child: &mut Producer, scribble: &Scribble) {
    match scribble {
        Scribble::Set(up, tail, n) => {
            let counter = if *tail { Counter::Tail } else { Counter::Head };
            segment
                .counter(side(*up), counter)
                .store(*n, Ordering::SeqCst);
        }
        Scribble::Add(up, tail, n) => {
            let counter = if *tail { Counter::Tail } else { Counter::Head };
            segment
                .counter(side(*up), counter)
                .fetch_add(*n, Ordering::SeqCst);
        }
        Scribble::Word(up, word, n) => {
            let word = match word {
                0 => Word::DataSeq,
                1 => Word::ConsumerSleeping,
                2 => Word::SpaceSeq,
                _ => Word::ProducerSleeping,
            };
            segment.word(side(*up), word).store(*n, Ordering::SeqCst);
        }
        Scribble::Bytes(up, at, bytes) => {
            let at = usize::try_from(*at % (4 * CAP as u64)).unwrap_or(0);
            let copied = segment.copy_in(side(*up), at, bytes);
            assert!(copied <= bytes.len() && copied <= CAP, "copied {copied}");
        }
        Scribble::Frame(bytes) => {
            let _ = child.write_some(bytes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Scribbles interleaved with the orchestrator's reads of the up ring and
    /// writes into the down ring: every outcome is a frame, an end or an
    /// error, and every amount it reports stays within the ring.
    #[test]
    fn whatever_the_peer_writes_the_orchestrator_reads_frames_or_errors(
        scribbles in vec(scribble(), 1..40),
    ) {
        let segment = Arc::new(Segment::create("props", CAP).expect("memfd").0);
        let mut child = Producer::new(Arc::clone(&segment), Side::Up);
        let mut up = Consumer::new(Arc::clone(&segment), Side::Up);
        let mut down = Producer::new(Arc::clone(&segment), Side::Down);
        let mut broken_up = false;
        let mut broken_down = false;
        for scribble in &scribbles {
            apply(&segment, &mut child, scribble);
            if !broken_up {
                match up.available() {
                    Ok(n) => prop_assert!(n <= CAP as u64, "{} available", n),
                    Err(_) => broken_up = true,
                }
                let mut probe = Probe { reader: RingReader::new(&mut up, || true), largest: 0 };
                match Frame::read_from(&mut probe) {
                    Ok(_) => {}
                    Err(_) => broken_up = true,
                }
                prop_assert!(probe.largest <= MAX_FRAME);
            }
            if !broken_down {
                match down.free() {
                    Ok(n) => prop_assert!(n <= CAP as u64, "{} free", n),
                    Err(_) => broken_down = true,
                }
                match down.write_some(&[7; 100]) {
                    Ok(n) => prop_assert!(n <= 100),
                    Err(_) => broken_down = true,
                }
            }
        }
    }
}

proptest! {
    /// What an honest peer writes is read back whole and in order (so the
    /// scribbles above do reach real frames).
    #[test]
    fn an_honest_peers_frames_are_read_back_in_order(
        payloads in vec(vec(any::<u8>(), 0..300), 1..12),
    ) {
        let segment = Arc::new(Segment::create("props", CAP).expect("memfd").0);
        let mut child = Producer::new(Arc::clone(&segment), Side::Up);
        let mut up = Consumer::new(Arc::clone(&segment), Side::Up);
        for payload in payloads {
            let frame = Frame::Publish { topic: "liar.out".into(), payload };
            let bytes = frame.encode();
            prop_assert_eq!(child.write_some(&bytes), Ok(bytes.len()));
            let read = Frame::read_from(&mut RingReader::new(&mut up, || true));
            prop_assert_eq!(read.expect("valid"), Some(frame));
        }
    }
}

/// A reader that remembers the largest buffer it was asked to fill.
struct Probe<R> {
    reader: R,
    largest: usize,
}

impl<R: std::io::Read> std::io::Read for Probe<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.largest = self.largest.max(buf.len());
        let n = self.reader.read(buf)?;
        assert!(n <= buf.len() && n <= CAP, "read {n} into {}", buf.len());
        Ok(n)
    }
}
