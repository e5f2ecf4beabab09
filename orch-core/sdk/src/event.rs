//! Events as a module sees them.

use serde::de::DeserializeOwned;

/// One delivered event: a topic and its JSON payload, borrowed for the
/// callback, and the envelope the host set when it was published: an id, the
/// source module (or `host`), the publish time and how many times it has been
/// delivered.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    topic: &'a str,
    payload: &'a [u8],
    id: u64,
    source: &'a str,
    published_at_ms: u64,
    delivery_count: u32,
    exchange: Exchange<'a>,
}

/// Identifies one request of a module, as [`crate::Context::request`] returned
/// it; the reply (or the timeout) carries the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What an event is in a request/reply exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventKind {
    /// A plain published event (no answer expected).
    #[default]
    Publish,
    /// A request: answer it with [`crate::Context::reply`].
    Request,
    /// The answer to one of this module's requests.
    Reply,
    /// The host's notice that one of this module's requests was not answered
    /// within its timeout (source `host`, payload `{"timeout_ms": N}`).
    Timeout,
    /// The host's notice that no module subscribes to the topic of one of this
    /// module's requests, sent at once instead of waiting for the timeout
    /// (source `host`, payload `null`).
    NoResponders,
}

impl EventKind {
    /// The kind's code on the C ABI (`abi::KIND_*`).
    pub fn code(self) -> u32 {
        use crate::abi::*;
        match self {
            Self::Publish => KIND_PUBLISH,
            Self::Request => KIND_REQUEST,
            Self::Reply => KIND_REPLY,
            Self::Timeout => KIND_TIMEOUT,
            Self::NoResponders => KIND_NO_RESPONDERS,
        }
    }

    /// The kind of an ABI code; `None` for a code this SDK does not know.
    pub fn from_code(code: u32) -> Option<Self> {
        use crate::abi::*;
        Some(match code {
            KIND_PUBLISH => Self::Publish,
            KIND_REQUEST => Self::Request,
            KIND_REPLY => Self::Reply,
            KIND_TIMEOUT => Self::Timeout,
            KIND_NO_RESPONDERS => Self::NoResponders,
            _ => return None,
        })
    }

    /// Whether this is an answer to a request (a reply or one of the host's
    /// notices): what arrives in the requester's mailbox.
    pub fn answers_a_request(self) -> bool {
        matches!(self, Self::Reply | Self::Timeout | Self::NoResponders)
    }
}

/// An event's part in a request/reply exchange: its kind, the request's id and,
/// for a request, who waits for the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exchange<'a> {
    /// What the event is.
    pub kind: EventKind,
    /// The request's id (0 for a plain event).
    pub request_id: u64,
    /// For a request: the module that waits for the answer (empty otherwise).
    pub reply_to: &'a str,
}

/// The [`Event::source`] of an event the host published.
pub const HOST_SOURCE: &str = "host";

impl<'a> Event<'a> {
    /// An event of the host over borrowed parts, published now, id 0 (for tests).
    pub fn new(topic: &'a str, payload: &'a [u8]) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self::with_envelope(topic, payload, 0, HOST_SOURCE, now)
    }

    /// An event with its envelope: `id`, `source` (a module's name, or
    /// [`HOST_SOURCE`]) and publish time in milliseconds since the Unix epoch.
    pub fn with_envelope(
        topic: &'a str,
        payload: &'a [u8],
        id: u64,
        source: &'a str,
        published_at_ms: u64,
    ) -> Self {
        Self {
            topic,
            payload,
            id,
            source,
            published_at_ms,
            delivery_count: 1,
            exchange: Exchange::default(),
        }
    }

    /// The same event with its part in a request/reply exchange.
    pub fn with_exchange(mut self, exchange: Exchange<'a>) -> Self {
        self.exchange = exchange;
        self
    }

    /// The same event, delivered for the `count`th time (see
    /// [`Event::delivery_count`]); a `count` of 0 counts as 1. The host sets
    /// it; a test builds a redelivered event with it.
    pub fn with_delivery_count(mut self, count: u32) -> Self {
        self.delivery_count = count.max(1);
        self
    }

    /// What the event is: a plain publish, a request to answer, or the answer
    /// (reply, timeout, no responders) to a request of this module.
    pub fn kind(&self) -> EventKind {
        self.exchange.kind
    }

    /// The request this event is (a [`EventKind::Request`]) or answers (a
    /// reply, timeout or no-responders notice); `None` for a plain event.
    pub fn request_id(&self) -> Option<RequestId> {
        (self.exchange.kind != EventKind::Publish).then_some(RequestId(self.exchange.request_id))
    }

    /// For a request: the module that waits for its answer (the answer goes to
    /// its mailbox when you call [`crate::Context::reply`]); `None` otherwise.
    pub fn reply_to(&self) -> Option<&'a str> {
        (self.exchange.kind == EventKind::Request).then_some(self.exchange.reply_to)
    }

    /// Whether this is the answer of another module to a request of this one.
    pub fn is_reply(&self) -> bool {
        self.exchange.kind == EventKind::Reply
    }

    /// Whether this is the host's notice that a request of this module timed
    /// out unanswered.
    pub fn is_timeout(&self) -> bool {
        self.exchange.kind == EventKind::Timeout
    }

    /// The event's id, unique in the orchestrator that published it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The module that published it, or `host` for the host's own events
    /// (`app.*`, `module.*`, timers).
    pub fn source(&self) -> &'a str {
        self.source
    }

    /// When it was published.
    pub fn published_at(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.published_at_ms)
    }

    /// How many times this event has been delivered to this application: 1
    /// for nearly every event, more when the NATS bridge delivers a
    /// shared-work job again after a node failed to acknowledge it.
    ///
    /// A job from a JetStream import is acknowledged only once every local
    /// handler has returned. When the node that took it dies (or stops)
    /// before that, NATS hands the same job to another node, whose handler
    /// then sees `delivery_count() == 2`, and 3 if that node fails too. The
    /// first attempt may have done part of its work, so a handler whose work
    /// must happen once checks before it repeats it:
    ///
    /// ```
    /// use orch_sdk::Event;
    ///
    /// fn charge(event: &Event) -> bool {
    ///     if event.delivery_count() > 1 {
    ///         // Delivered again: an earlier attempt may have charged already.
    ///         // Look the order up before charging (an idempotency key).
    ///         return false;
    ///     }
    ///     true
    /// }
    ///
    /// let first = Event::new("billing.charge", br#"{"order":7}"#);
    /// assert_eq!(first.delivery_count(), 1);
    /// assert!(charge(&first));
    /// let again = first.with_delivery_count(2);
    /// assert!(!charge(&again));
    /// ```
    pub fn delivery_count(&self) -> u32 {
        self.delivery_count
    }

    /// The topic, for example `test.ping`.
    pub fn topic(&self) -> &'a str {
        self.topic
    }

    /// The payload as the publisher serialized it (JSON bytes).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The payload deserialized into `T`, with an error that names the topic.
    pub fn data<T: DeserializeOwned>(&self) -> crate::Result<T> {
        serde_json::from_slice(self.payload).map_err(|e| {
            format!(
                "event '{}' has a payload that does not fit {}: {e}",
                self.topic,
                std::any::type_name::<T>()
            )
            .into()
        })
    }

    /// The payload as a JSON value (`null` for an empty payload).
    pub fn json(&self) -> crate::Result<serde_json::Value> {
        if self.payload.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        self.data()
    }
}
