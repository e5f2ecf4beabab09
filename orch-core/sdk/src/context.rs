//! What a module can ask of its host while a callback runs.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Identifies a timer set with [`Context::every`] or [`Context::after`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(pub u64);

/// The host side of a [`Context`]: the real host across the C ABI, or the
/// recording host of [`crate::testing`] in a module's unit tests.
pub trait Host {
    /// Publishes JSON bytes on a topic.
    fn publish(&self, topic: &str, payload: &[u8]) -> crate::Result<()>;
    /// Subscribes to a topic or pattern.
    fn subscribe(&self, topic: &str) -> crate::Result<()>;
    /// Removes a subscription.
    fn unsubscribe(&self, topic: &str) -> crate::Result<()>;
    /// Schedules a timer event to the module's own mailbox.
    fn schedule_timer(
        &self,
        topic: &str,
        interval: Duration,
        repeat: bool,
    ) -> crate::Result<TimerId>;
    /// Cancels a timer.
    fn cancel_timer(&self, id: TimerId) -> crate::Result<()>;
}

/// The module's handle on the host during one callback.
pub struct Context<'a> {
    host: &'a dyn Host,
    restored_state: Option<&'a [u8]>,
}

impl<'a> Context<'a> {
    /// A context over `host`; `restored_state` is the previous generation's state.
    pub fn new(host: &'a dyn Host, restored_state: Option<&'a [u8]>) -> Self {
        Self {
            host,
            restored_state,
        }
    }

    /// Publishes `data` serialized as JSON on `topic` (dot-separated tokens).
    pub fn publish<T: Serialize + ?Sized>(&mut self, topic: &str, data: &T) -> crate::Result<()> {
        let payload = serde_json::to_vec(data)?;
        self.host.publish(topic, &payload)
    }

    /// Publishes payload bytes that are already JSON.
    pub fn publish_json_bytes(&mut self, topic: &str, payload: &[u8]) -> crate::Result<()> {
        self.host.publish(topic, payload)
    }

    /// Subscribes to `topic`; `*` matches one token and `>` all the remaining ones
    /// (`module.*`, `sensor.>`).
    pub fn subscribe(&mut self, topic: &str) -> crate::Result<()> {
        self.host.subscribe(topic)
    }

    /// Removes a subscription made with [`Context::subscribe`].
    pub fn unsubscribe(&mut self, topic: &str) -> crate::Result<()> {
        self.host.unsubscribe(topic)
    }

    /// Delivers an event on `topic` to this module every `interval`; the host owns
    /// the timer and removes it when the module stops.
    pub fn every(&mut self, interval: Duration, topic: &str) -> crate::Result<TimerId> {
        self.host.schedule_timer(topic, interval, true)
    }

    /// Delivers one event on `topic` to this module after `delay`.
    pub fn after(&mut self, delay: Duration, topic: &str) -> crate::Result<TimerId> {
        self.host.schedule_timer(topic, delay, false)
    }

    /// Cancels a timer.
    pub fn cancel_timer(&mut self, id: TimerId) -> crate::Result<()> {
        self.host.cancel_timer(id)
    }

    /// In `initialize` after a reload: the state the previous generation returned
    /// from `save_state`, deserialized; `None` on a first start.
    pub fn restored_state<T: DeserializeOwned>(&self) -> crate::Result<Option<T>> {
        match self.restored_state {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(bytes)
                .map(Some)
                .map_err(|e| format!("restored state does not fit: {e}").into()),
        }
    }
}
