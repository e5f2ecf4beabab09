use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::segment::{Counter, Segment, Side, Word};
use super::stream::{RingReader, Wake, WriteFailed, write_all};
use super::{Consumer, Producer};
use crate::protocol::{EventFrame, Frame};

fn segment(cap: usize) -> Arc<Segment> {
    Arc::new(Segment::create("test", cap).expect("memfd").0)
}

fn event(n: usize, payload: usize) -> Frame {
    Frame::Event(EventFrame {
        topic: format!("t.{n}"),
        payload: vec![u8::try_from(n % 251).unwrap_or(0); payload],
        id: n as u64,
        source: "producer".into(),
        published_at_ms: 0,
        delivery_count: 1,
        kind: orch_sdk::EventKind::Publish,
        request_id: 0,
        reply_to: String::new(),
    })
}

/// Frames of every size, some larger than the whole ring, cross it in order
/// and intact while both sides wait on each other.
#[test]
fn frames_of_any_size_stream_through_a_small_ring_in_order() {
    let segment = segment(4096);
    let mut producer = Producer::new(Arc::clone(&segment), Side::Down);
    let mut consumer = Consumer::new(Arc::clone(&segment), Side::Down);
    let sizes = [0, 1, 100, 4000, 4096, 10_000, 3, 70_000];
    let frames = 2_000;
    let writer = std::thread::spawn(move || {
        for n in 0..frames {
            let bytes = event(n, sizes[n % sizes.len()]).encode();
            if n % 97 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            write_all(
                &mut producer,
                &bytes,
                Duration::from_secs(30),
                &|| false,
                Wake::Now,
            )
            .expect("the reader keeps up");
        }
        producer.written()
    });
    let mut reader = RingReader::new(&mut consumer, || false);
    for n in 0..frames {
        if n % 89 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let frame = Frame::read_from(&mut reader)
            .expect("valid")
            .expect("a frame");
        assert_eq!(frame, event(n, sizes[n % sizes.len()]), "frame {n}");
    }
    let written = writer.join().expect("writer");
    assert!(
        written > 20 * 4096,
        "the ring wrapped many times ({written} bytes)"
    );
}

#[test]
fn a_write_counter_that_goes_backwards_or_past_one_ring_is_refused() {
    let segment = segment(4096);
    let mut producer = Producer::new(Arc::clone(&segment), Side::Up);
    let mut consumer = Consumer::new(Arc::clone(&segment), Side::Up);
    producer.write_some(&[7; 100]).expect("fits");
    assert_eq!(consumer.available(), Ok(100));
    let tail = segment.counter(Side::Up, Counter::Tail);
    tail.store(50, Ordering::SeqCst);
    let backwards = consumer.available().expect_err("backwards");
    assert!(backwards.0.contains("write counter"), "{backwards}");
    tail.store(4096 + 1, Ordering::SeqCst);
    assert!(consumer.available().is_err(), "more than one ring of bytes");
    tail.store(u64::MAX, Ordering::SeqCst);
    assert!(consumer.read_some(&mut [0; 16]).is_err());
}

#[test]
fn a_read_counter_past_what_was_written_or_backwards_is_refused() {
    let segment = segment(4096);
    let mut producer = Producer::new(Arc::clone(&segment), Side::Down);
    producer.write_some(&[1; 10]).expect("fits");
    let head = segment.counter(Side::Down, Counter::Head);
    head.store(11, Ordering::SeqCst);
    let ahead = producer.free().expect_err("read more than written");
    assert!(ahead.0.contains("read counter"), "{ahead}");
    head.store(10, Ordering::SeqCst);
    assert_eq!(producer.free(), Ok(4096));
    head.store(5, Ordering::SeqCst);
    assert!(producer.free().is_err(), "backwards");
}

/// A hostile peer scribbling over every word and byte of the segment while
/// the orchestrator's end reads: only protocol errors, never a panic, never
/// an allocation above the frame limit.
#[test]
fn a_peer_scribbling_over_the_whole_segment_only_causes_protocol_errors() {
    let segment = segment(4096);
    let stop = Arc::new(AtomicBool::new(false));
    let scribbler = {
        let (segment, stop) = (Arc::clone(&segment), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let side = if x & 1 == 0 { Side::Up } else { Side::Down };
                match (x >> 1) % 4 {
                    0 => segment
                        .counter(side, Counter::Tail)
                        .store(x >> 8, Ordering::Relaxed),
                    1 => {
                        segment
                            .counter(side, Counter::Tail)
                            .fetch_add(x % 64, Ordering::Relaxed);
                    }
                    2 => segment
                        .word(side, Word::DataSeq)
                        .store(x as u32, Ordering::Relaxed),
                    _ => {
                        let bytes = x.to_le_bytes();
                        segment.copy_in(side, (x >> 20) as usize, &bytes);
                    }
                }
            }
        })
    };
    let mut errors = 0;
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while errors < 100 && std::time::Instant::now() < until {
        let mut consumer = Consumer::new(Arc::clone(&segment), Side::Up);
        let mut reader = RingReader::new(&mut consumer, || true);
        if Frame::read_from(&mut reader).is_err() {
            errors += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    scribbler.join().expect("scribbler");
    assert!(errors > 0, "the scribbles were noticed");
}

#[test]
fn a_full_ring_that_nobody_reads_stalls_the_writer_within_its_deadline() {
    let segment = segment(4096);
    let mut producer = Producer::new(Arc::clone(&segment), Side::Down);
    let started = std::time::Instant::now();
    let stalled = write_all(
        &mut producer,
        &[0; 10_000],
        Duration::from_millis(300),
        &|| false,
        Wake::Now,
    );
    assert!(matches!(stalled, Err(WriteFailed::Stalled)), "{stalled:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(producer.written(), 4096, "it filled the ring first");
    let closed = write_all(
        &mut producer,
        &[0; 10],
        Duration::from_secs(10),
        &|| true,
        Wake::Now,
    );
    assert!(matches!(closed, Err(WriteFailed::Closed)), "{closed:?}");
}

/// Frees `step` bytes of the ring every `every` until `stop`, reading them
/// as the consumer would (a trickle, or an honest slow reader).
fn read_slowly(
    mut consumer: Consumer,
    step: usize,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut read = 0u64;
        let mut buf = vec![0; step];
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(every);
            read += consumer.read_some(&mut buf).expect("sound ring") as u64;
        }
        read
    })
}

/// A consumer that frees one byte at a time made the writer wait as long
/// as it liked (any progress reset the deadline). Now only whole frames (or
/// a quarter ring) count: the writer gives up within its deadline.
#[test]
fn a_consumer_that_frees_one_byte_at_a_time_stalls_the_writer_within_its_deadline() {
    let segment = segment(4096);
    let mut producer = Producer::new(Arc::clone(&segment), Side::Down);
    let consumer = Consumer::new(Arc::clone(&segment), Side::Down);
    let stall = Duration::from_millis(300);
    write_all(&mut producer, &[1; 4000], stall, &|| false, Wake::Now).expect("fits");
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = read_slowly(consumer, 1, Duration::from_millis(2), Arc::clone(&stop));
    let started = std::time::Instant::now();
    let stalled = write_all(&mut producer, &[2; 4000], stall, &|| false, Wake::Now);
    let took = started.elapsed();
    stop.store(true, Ordering::Release);
    let freed = trickle.join().expect("trickler");
    assert!(matches!(stalled, Err(WriteFailed::Stalled)), "{stalled:?}");
    assert!(took >= stall, "{took:?}");
    assert!(took < stall * 3, "within about its deadline: {took:?}");
    assert!(freed > 20, "it did trickle ({freed} bytes freed)");
    assert!(producer.written() > 4000, "and each byte freed was written");
}

/// An honest reader that takes one whole frame now and then keeps the
/// writer going, however long the whole write takes.
#[test]
fn a_slow_reader_taking_whole_frames_keeps_the_writer_going_past_its_deadline() {
    let segment = segment(4096);
    let mut producer = Producer::new(Arc::clone(&segment), Side::Down);
    let consumer = Consumer::new(Arc::clone(&segment), Side::Down);
    let stall = Duration::from_millis(300);
    for _ in 0..8 {
        write_all(&mut producer, &[1; 500], stall, &|| false, Wake::Now).expect("fits");
    }
    let stop = Arc::new(AtomicBool::new(false));
    // One 500-byte frame every 150 ms: the 3,000-byte frame needs six.
    let reader = read_slowly(consumer, 500, Duration::from_millis(150), Arc::clone(&stop));
    let started = std::time::Instant::now();
    let written = write_all(&mut producer, &[2; 3000], stall, &|| false, Wake::Now);
    let took = started.elapsed();
    stop.store(true, Ordering::Release);
    reader.join().expect("reader");
    assert!(written.is_ok(), "{written:?}");
    assert!(
        took > stall,
        "it did wait longer than the deadline: {took:?}"
    );
}

/// The seals: the child (or anyone with the fd) cannot shrink or grow the
/// segment, which would make the orchestrator's reads fault.
#[test]
fn the_segment_cannot_be_resized_by_anyone_holding_it() {
    let (_segment, fd) = Segment::create("sealed", 4096).expect("memfd");
    let shrunk = nix::unistd::ftruncate(&fd, 0);
    assert_eq!(shrunk, Err(nix::errno::Errno::EPERM));
    let grown = nix::unistd::ftruncate(&fd, 1 << 30);
    assert_eq!(grown, Err(nix::errno::Errno::EPERM));
    let link = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .expect("fd link");
    assert!(
        link.to_string_lossy()
            .starts_with("/memfd:orch-ring:sealed"),
        "nameless memfd, never a /dev/shm file: {}",
        link.display()
    );
}

/// Many short bursts with the consumer asleep between them: a lost wake-up
/// would show as a wait running into its (long) timeout.
#[test]
fn no_wake_up_is_lost_between_bursts() {
    let segment = segment(4096);
    let mut producer = Producer::new(Arc::clone(&segment), Side::Up);
    let mut consumer = Consumer::new(Arc::clone(&segment), Side::Up);
    let rounds = 3_000u64;
    let writer = std::thread::spawn(move || {
        for n in 0..rounds {
            if n % 7 == 0 {
                std::thread::yield_now();
            }
            write_all(
                &mut producer,
                &n.to_le_bytes(),
                Duration::from_secs(30),
                &|| false,
                Wake::Now,
            )
            .expect("written");
        }
    });
    let mut longest = Duration::ZERO;
    for n in 0..rounds {
        let mut word = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            got += consumer.read_some(&mut word[got..]).expect("valid");
            if got < 8 {
                let began = std::time::Instant::now();
                consumer
                    .wait_for_data(Duration::from_secs(5), || false)
                    .expect("valid");
                longest = longest.max(began.elapsed());
            }
        }
        assert_eq!(u64::from_le_bytes(word), n);
    }
    writer.join().expect("writer");
    assert!(
        longest < Duration::from_secs(5),
        "a wait ran into its timeout: a wake-up was lost"
    );
}

/// A peer ringing the reader's futex in a loop: the reader's empty
/// wake-ups are paced (at most about a thousand a second), so the spam costs
/// the orchestrator's thread almost nothing.
#[test]
fn a_peer_spamming_wake_ups_gets_at_most_a_thousand_a_second() {
    let segment = segment(4096);
    let mut consumer = Consumer::new(Arc::clone(&segment), Side::Up);
    let stop = Arc::new(AtomicBool::new(false));
    let spammer = {
        let (segment, stop) = (Arc::clone(&segment), Arc::clone(&stop));
        std::thread::spawn(move || {
            let doorbell = Consumer::new(segment, Side::Up).doorbell();
            while !stop.load(Ordering::Relaxed) {
                doorbell.ring();
            }
        })
    };
    let finish = {
        let (segment, stop) = (Arc::clone(&segment), Arc::clone(&stop));
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            stop.store(true, Ordering::Relaxed);
            // Then the one frame the reader waits for.
            let mut producer = Producer::new(segment, Side::Up);
            write_all(
                &mut producer,
                &[9; 8],
                Duration::from_secs(5),
                &|| false,
                Wake::Now,
            )
            .expect("written");
        })
    };
    let mut reader = RingReader::new(&mut consumer, || false);
    let mut word = [0u8; 8];
    std::io::Read::read_exact(&mut reader, &mut word).expect("the frame comes");
    let empty = reader.empty_wakeups();
    finish.join().expect("finisher");
    spammer.join().expect("spammer");
    assert_eq!(word, [9; 8]);
    assert!(empty <= 1_000, "{empty} empty wake-ups in half a second");
}

#[test]
#[ignore = "measurement"]
fn wake_latency() {
    let segment = segment(1 << 16);
    let mut producer = Producer::new(Arc::clone(&segment), Side::Down);
    let mut consumer = Consumer::new(Arc::clone(&segment), Side::Down);
    let reader = std::thread::spawn(move || {
        let mut lat = Vec::new();
        let mut buf = [0u8; 16];
        for _ in 0..20_000 {
            let mut got = 0;
            while got < 16 {
                let n = consumer.read_some(&mut buf[got..]).unwrap();
                got += n;
                if n == 0 {
                    consumer
                        .wait_for_data(Duration::from_secs(1), || false)
                        .unwrap();
                }
            }
            let sent = u128::from_le_bytes(buf);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            lat.push(now - sent);
        }
        lat.sort();
        lat
    });
    for _ in 0..20_000 {
        std::thread::sleep(Duration::from_micros(100));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        write_all(
            &mut producer,
            &now.to_le_bytes(),
            Duration::from_secs(1),
            &|| false,
            Wake::Now,
        )
        .unwrap();
    }
    let lat = reader.join().unwrap();
    eprintln!(
        "p50 {} ns p99 {} ns",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
}
