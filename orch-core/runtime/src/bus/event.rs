//! One published event: its bytes, shared by every mailbox it goes to, and
//! its envelope (id, source, time, its part in a request/reply exchange).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use orch_sdk::{EventKind, Exchange};

use super::names::{EventNames, Names};

/// One published event, shared by every mailbox it is delivered to. A
/// small payload lives inside the event: one allocation per event (two for
/// a payload over [`INLINE_PAYLOAD`] bytes); a route's events point at its
/// interned names ([`Names`]): no line written by both the publisher and
/// the event's last reader besides the event's own.
pub struct BusEvent {
    names: Names,
    payload: Payload,
    /// Unique in this process, in publish order.
    pub id: u64,
    /// When it was published, in milliseconds since the Unix epoch.
    pub published_at_ms: u64,
    /// How many times this event has been delivered to this application: 1,
    /// or more when the NATS bridge delivers a shared-work job again after a
    /// node failed to acknowledge it.
    pub delivery_count: u32,
    /// What it is in a request/reply exchange ([`EventKind::Publish`] for a
    /// plain event).
    pub kind: EventKind,
    /// The request it is or answers (0 for a plain event).
    pub request_id: u64,
    /// For a request: the module waiting for the answer.
    pub reply_to: Option<Arc<str>>,
    /// The orchestrator it came from when the NATS bridge imported it;
    /// `None` for an event of this one (the bridge never exports it back).
    pub origin: Option<Arc<str>>,
    /// Called once the last holder lets go of the event: every mailbox it
    /// went to has handed it to its handler and the handler returned (or
    /// dropped it by its policy). The bridge acknowledges an imported
    /// JetStream message then.
    on_done: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl std::fmt::Debug for BusEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusEvent")
            .field("topic", &self.topic())
            .field("payload_bytes", &self.payload().len())
            .field("source", &self.source())
            .field("id", &self.id)
            .field("delivery_count", &self.delivery_count)
            .field("kind", &self.kind)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Drop for BusEvent {
    fn drop(&mut self) {
        if let Some(done) = self.on_done.take() {
            done();
        }
    }
}

/// An event as a handler receives it: its parts and the envelope the host set
/// when it was published.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The JSON payload.
    pub payload: &'a [u8],
    /// The event's id.
    pub id: u64,
    /// The publishing module; empty for the host.
    pub source: &'a str,
    /// When it was published, in milliseconds since the Unix epoch.
    pub published_at_ms: u64,
    /// How many times it has been delivered to this application (1, or more
    /// for a job the NATS bridge delivers again); see
    /// [`BusEvent::delivery_count`].
    pub delivery_count: u32,
    /// Its part in a request/reply exchange.
    pub exchange: Exchange<'a>,
}

impl<'a> Delivery<'a> {
    /// An event of the host published now, with id 0 (for tests and tools).
    pub fn from_host(topic: &'a str, payload: &'a [u8]) -> Self {
        Self {
            topic,
            payload,
            id: 0,
            source: "",
            published_at_ms: orch_process::clock::wall_ms(),
            delivery_count: 1,
            exchange: Exchange::default(),
        }
    }
}

/// Ids of published events, in publish order, unique in this process.
static NEXT_EVENT_ID: AtomicU64 = AtomicU64::new(1);

impl BusEvent {
    /// An event published now, with the next id.
    pub fn new(topic: &str, payload: &[u8], source: Option<Arc<str>>) -> Self {
        Self::named(&EventNames::new(Arc::from(topic), source).into(), payload)
    }

    /// As [`BusEvent::new`], with `names` (a route's).
    pub fn named(names: &Names, payload: &[u8]) -> Self {
        Self::published_at(names, payload, orch_process::clock::wall_ms())
    }

    /// An event with the next id, published at `published_at_ms`.
    fn published_at(names: &Names, payload: &[u8], published_at_ms: u64) -> Self {
        Self {
            names: names.clone(),
            payload: Payload::of(payload),
            id: NEXT_EVENT_ID.fetch_add(1, Ordering::Relaxed),
            published_at_ms,
            delivery_count: 1,
            kind: EventKind::Publish,
            request_id: 0,
            reply_to: None,
            origin: None,
            on_done: None,
        }
    }

    /// The same event, calling `done` once every holder has let go of it
    /// (see the field's documentation). `done` must not block.
    pub fn when_done(mut self, done: impl FnOnce() + Send + Sync + 'static) -> Self {
        self.on_done = Some(Box::new(done));
        self
    }

    /// The same event, delivered to this application for the `count`th time
    /// (the NATS bridge sets it on a job it delivers again); a `count` of 0
    /// counts as 1.
    pub fn delivered_times(mut self, count: u32) -> Self {
        self.delivery_count = count.max(1);
        self
    }

    /// An event another orchestrator (`origin`) published, as the bridge
    /// imported it: its source module and publish time are kept, its id is
    /// this process's next.
    pub fn imported(
        topic: &str,
        payload: &[u8],
        source: Option<Arc<str>>,
        origin: Arc<str>,
        published_at_ms: Option<u64>,
    ) -> Self {
        let names = EventNames::new(Arc::from(topic), source).into();
        Self::imported_as(&names, payload, origin, published_at_ms)
    }

    /// As [`BusEvent::imported`], with `names` (topic and source) the
    /// importer keeps for the messages that repeat them.
    pub fn imported_as(
        names: &Names,
        payload: &[u8],
        origin: Arc<str>,
        published_at_ms: Option<u64>,
    ) -> Self {
        let at = published_at_ms.unwrap_or_else(orch_process::clock::wall_ms);
        let mut event = Self::published_at(names, payload, at);
        event.origin = Some(origin);
        event
    }

    /// The same event as part of request `request_id`'s exchange: the request
    /// itself (with the requester as `reply_to`) or an answer to it.
    pub fn in_exchange(
        mut self,
        kind: EventKind,
        request_id: u64,
        reply_to: Option<Arc<str>>,
    ) -> Self {
        self.kind = kind;
        self.request_id = request_id;
        self.reply_to = reply_to;
        self
    }

    /// The event as a handler receives it.
    pub fn delivery(&self) -> Delivery<'_> {
        Delivery {
            topic: self.topic(),
            payload: self.payload(),
            id: self.id,
            source: self.source().unwrap_or(""),
            published_at_ms: self.published_at_ms,
            delivery_count: self.delivery_count,
            exchange: Exchange {
                kind: self.kind,
                request_id: self.request_id,
                reply_to: self.reply_to.as_deref().unwrap_or(""),
            },
        }
    }

    /// The topic (`test.ping`).
    pub fn topic(&self) -> &str {
        self.names.get().topic()
    }

    /// The publishing module, `None` for the host.
    pub fn source(&self) -> Option<&str> {
        self.names.get().source()
    }

    /// The id of the set of names (topic and source) this event was made
    /// with: events with the same id have the same names (events with
    /// different ids may too). Tells names apart without comparing them.
    pub fn names_id(&self) -> u64 {
        self.names.get().id()
    }

    /// The payload as JSON bytes.
    pub fn payload(&self) -> &[u8] {
        self.payload.bytes()
    }
}

/// The largest payload kept inside the event itself (a cache line).
pub const INLINE_PAYLOAD: usize = 64;

/// An event's payload: inside the event when small, on the heap otherwise.
enum Payload {
    Inline {
        len: u8,
        bytes: [u8; INLINE_PAYLOAD],
    },
    Heap(Box<[u8]>),
}

impl Payload {
    fn of(payload: &[u8]) -> Self {
        match u8::try_from(payload.len()) {
            Ok(len) if payload.len() <= INLINE_PAYLOAD => {
                let mut bytes = [0; INLINE_PAYLOAD];
                bytes[..payload.len()].copy_from_slice(payload);
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(payload.into()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_of_every_size_read_back_as_given() {
        for size in [
            0,
            1,
            INLINE_PAYLOAD - 1,
            INLINE_PAYLOAD,
            INLINE_PAYLOAD + 1,
            4096,
        ] {
            let payload: Vec<u8> = (0..size).map(|n| (n % 251) as u8).collect();
            let event = BusEvent::new("t.x", &payload, None);
            assert_eq!(event.payload(), payload.as_slice(), "{size} bytes");
            assert_eq!(event.topic(), "t.x");
        }
    }

    #[test]
    fn names_read_back_as_given() {
        let long = "é".repeat(40);
        for (topic, source) in [
            ("t.x", None),
            ("t.x", Some("")),
            ("t.x", Some("producer")),
            ("t.é", Some(long.as_str())),
            ("b".repeat(300).as_str(), Some("m")),
        ] {
            let event = BusEvent::new(topic, b"{}", source.map(Arc::from));
            assert_eq!(event.topic(), topic);
            assert_eq!(event.source(), source, "{topic} from {source:?}");
            assert_eq!(event.delivery().source, source.unwrap_or(""));
        }
    }
}
