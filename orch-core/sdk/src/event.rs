//! Events as a module sees them.

use serde::de::DeserializeOwned;

/// One delivered event: a topic and its JSON payload, borrowed for the callback.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    topic: &'a str,
    payload: &'a [u8],
}

impl<'a> Event<'a> {
    /// An event over borrowed parts (used by the boundary glue and by tests).
    pub fn new(topic: &'a str, payload: &'a [u8]) -> Self {
        Self { topic, payload }
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
