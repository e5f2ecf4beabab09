//! The floor of the bus benchmark: the same traffic between threads of this
//! binary over bare crossbeam channels, doing the same payload work as the
//! bench modules (the producer formats the JSON, checks it as
//! `publish_json_bytes` does and copies topic and payload into one shared
//! buffer, as the bus does; each consumer reads the `t` and `i` fields as
//! fixture-bench-consumer does), over an unbounded channel and over one
//! bounded like a module's mailbox.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use orch_process::clock::monotonic_ns as now_ns;
use serde_json::Value;

use super::{Pace, summary};

/// The floor's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Unbounded: the producer never waits.
    Unbounded,
    /// Bounded to this many events, like a module's mailbox.
    Bounded(usize),
}

/// An event of the floor: topic and payload in one shared buffer.
type Event = Arc<[u8]>;

impl Channel {
    fn make(self) -> (Sender<Event>, Receiver<Event>) {
        match self {
            Self::Unbounded => unbounded(),
            Self::Bounded(capacity) => bounded(capacity),
        }
    }
}

/// The topic the floor's events carry, as the bench modules' do.
const TOPIC: &[u8] = b"bench.event";

/// The digits after `key` at the start of `bytes`, and the rest (as
/// fixture-bench-consumer reads them).
fn number_after<'a>(bytes: &'a [u8], key: &[u8]) -> Option<(u64, &'a [u8])> {
    let digits = bytes.strip_prefix(key)?;
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    let value = std::str::from_utf8(&digits[..end]).ok()?.parse().ok()?;
    Some((value, &digits[end..]))
}

/// One run over the floor: the subscribers' reports and the wall time.
pub fn run_floor(
    events: u64,
    payload: usize,
    subscribers: usize,
    pace: Pace,
    channel: Channel,
) -> (Vec<Value>, Duration) {
    let burst_filter = pace.burst();
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..subscribers {
        let (tx, rx) = channel.make();
        senders.push(tx);
        handles.push(std::thread::spawn(move || {
            let mut latencies = Vec::with_capacity(events as usize);
            let (mut first, mut last, mut seen) = (0, 0, 0u64);
            for message in rx.iter().take(events as usize) {
                let now = now_ns();
                if seen == 0 {
                    first = now;
                }
                last = now;
                seen += 1;
                let body = &message[TOPIC.len()..];
                let Some((sent, rest)) = number_after(body, b"{\"t\":") else {
                    continue;
                };
                let index = number_after(rest, b",\"i\":").map_or(0, |(i, _)| i);
                if index.is_multiple_of(burst_filter) {
                    latencies.push(now.saturating_sub(sent));
                }
            }
            summary(latencies, first, last)
        }));
    }
    let started = Instant::now();
    let mut buffer: Vec<u8> = Vec::with_capacity(payload + 64);
    let mut send = |index: u64| {
        buffer.clear();
        let _ = write!(buffer, "{{\"t\":{},\"i\":{index},\"pad\":\"", now_ns());
        let padding = payload.saturating_sub(buffer.len() + 2);
        buffer.resize(buffer.len() + padding, b'x');
        buffer.extend_from_slice(b"\"}");
        // What `publish_json_bytes` checks before the payload leaves a module.
        if serde_json::from_slice::<serde::de::IgnoredAny>(&buffer).is_err() {
            return;
        }
        // Topic and payload in one shared buffer, as a bus event holds them.
        let mut event = Vec::with_capacity(TOPIC.len() + buffer.len());
        event.extend_from_slice(TOPIC);
        event.extend_from_slice(&buffer);
        let event: Event = event.into();
        for tx in &senders {
            let _ = tx.send(Arc::clone(&event));
        }
    };
    match pace.schedule() {
        None => (0..events).for_each(&mut send),
        Some((burst, every)) => {
            let mut tick = Instant::now();
            let mut index = 0;
            while index < events {
                for _ in 0..burst.min(events - index) {
                    send(index);
                    index += 1;
                }
                tick += every;
                if let Some(wait) = tick.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }
    }
    let reports = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    (reports, started.elapsed())
}
