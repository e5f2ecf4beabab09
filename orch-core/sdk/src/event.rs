//! Events as a module sees them.

use serde::de::DeserializeOwned;

/// One delivered event: a topic and its JSON payload, borrowed for the
/// callback, and the envelope the host set when it was published: an id, the
/// source module (or `host`) and the publish time.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    topic: &'a str,
    payload: &'a [u8],
    id: u64,
    source: &'a str,
    published_at_ms: u64,
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
        }
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
