//! `cargo orch tap`: a connection that follows the bus. Its subscription is
//! an observer ([`Delivered::Observed`]): it never counts as a recipient (so
//! it answers no request and changes no publish count), never waits and
//! never holds an event (a JetStream import is acknowledged when its last
//! holder lets go): at delivery it copies the topic, ids and at most
//! [`TAP_PAYLOAD_BYTES`] of the payload (all of it for a recording's full
//! tap, whose queue is also bounded in bytes) into a bounded queue, and
//! drops (and counts) what does not fit. The connection's thread scrubs and
//! writes; a client that stops reading only fills that queue.

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use orch_runtime::bus::{Admission, Bus, BusEvent, Delivered, EventSink};
use orch_runtime::logging::SecretScrubber;

use super::write_response;
use crate::protocol::{FULL_TAP_QUEUE_BYTES, Response, TAP_PAYLOAD_BYTES, TapEvent};

/// Events a tap may hold that its client has not read yet.
pub const TAP_QUEUE: usize = 1024;

/// Taps served at once (the other connections stay for status and actions).
pub const MAX_TAPS: usize = 4;

/// What a tap needs from the orchestrator.
#[derive(Clone)]
pub struct TapSetup {
    /// The bus it observes.
    pub bus: Bus,
    /// Scrubs the configuration's secrets from payloads.
    pub scrubber: SecretScrubber,
}

/// An event as copied at delivery.
struct Seen {
    topic: Box<str>,
    source: Option<Arc<str>>,
    origin: Option<Arc<str>>,
    id: u64,
    at_ms: u64,
    payload: Vec<u8>,
    payload_bytes: u64,
}

/// The observer's end on the bus.
struct TapSink {
    queue: Sender<Seen>,
    dropped: Arc<AtomicU64>,
    /// Whole payloads (a recording), bounded by `queued_bytes`.
    full: bool,
    /// Payload bytes in the queue (a full tap's bound).
    queued_bytes: Arc<AtomicUsize>,
}

impl EventSink for TapSink {
    fn deliver(&self, event: &Arc<BusEvent>, _admission: Admission) -> Delivered {
        // A stalled client's full queue costs the publisher one check, no copy.
        if self.queue.is_full() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Delivered::Observed;
        }
        let payload = event.payload();
        let kept = if self.full {
            payload.len()
        } else {
            payload.len().min(TAP_PAYLOAD_BYTES)
        };
        if self.full && self.queued_bytes.load(Ordering::Relaxed) + kept > FULL_TAP_QUEUE_BYTES {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Delivered::Observed;
        }
        let seen = Seen {
            topic: event.topic().into(),
            source: event.source().map(Arc::from),
            origin: event.origin.clone(),
            id: event.id,
            at_ms: event.published_at_ms,
            payload: payload[..kept].to_vec(),
            payload_bytes: payload.len() as u64,
        };
        match self.queue.try_send(seen) {
            Ok(()) => {
                self.queued_bytes.fetch_add(kept, Ordering::Relaxed);
                Delivered::Observed
            }
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Delivered::Observed
            }
            Err(TrySendError::Disconnected(_)) => Delivered::Gone,
        }
    }
}

/// Follows `pattern` on `stream` until the client hangs up, a write fails
/// (a client that stops reading is cut off after the write timeout), or
/// `count` events were written. The answer to a bad pattern is an error.
pub(super) fn serve(
    setup: &TapSetup,
    stream: &mut UnixStream,
    (pattern, count, full): (&str, Option<u64>, bool),
    hung_up: impl Fn(&UnixStream) -> bool,
) {
    let (queue, events): (Sender<Seen>, Receiver<Seen>) = bounded(TAP_QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let id = setup.bus.register(Arc::new(TapSink {
        queue,
        dropped: Arc::clone(&dropped),
        full,
        queued_bytes: Arc::clone(&queued_bytes),
    }));
    if let Err(e) = setup.bus.subscribe(id, pattern) {
        setup.bus.remove(id);
        let _ = write_response(
            stream,
            &Response::refused(
                format!("cannot tap '{}': {e}", pattern.escape_debug()),
                "a pattern is dot-separated tokens; `*` is one token, `>` the rest (test.>)",
            ),
        );
        return;
    }
    tracing::info!("[CONTROL] tap on '{pattern}' opened");
    let mut written = 0u64;
    loop {
        if count.is_some_and(|limit| written >= limit) {
            break;
        }
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(seen) => {
                queued_bytes.fetch_sub(seen.payload.len(), Ordering::Relaxed);
                let payload = String::from_utf8_lossy(&seen.payload);
                let event = TapEvent {
                    topic: seen.topic.into(),
                    source: seen.source.map(|s| s.to_string()),
                    origin: seen.origin.map(|s| s.to_string()),
                    id: seen.id,
                    at_ms: seen.at_ms,
                    payload: setup.scrubber.scrub(&payload).into_owned(),
                    payload_bytes: seen.payload_bytes,
                    dropped: dropped.load(Ordering::Relaxed),
                };
                if write_response(stream, &Response::Tapped(Box::new(event))).is_err() {
                    break;
                }
                written += 1;
            }
            Err(_) if hung_up(stream) => break,
            Err(_) => {}
        }
    }
    setup.bus.remove(id);
    tracing::info!(
        "[CONTROL] tap on '{pattern}' closed: {written} event(s) written, {} dropped",
        dropped.load(Ordering::Relaxed)
    );
}
