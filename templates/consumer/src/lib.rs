//! {{crate_name}}: subscribes to a topic and reads each event's typed payload.
//!
//! The host drives every module through the same steps, in a fixed order:
//!
//! 1. `initialize`: read the settings and subscribe. Every module is
//!    initialized (subscribed) before any starts publishing, so this module
//!    cannot miss an event published at start.
//! 2. `start`: publishing and timers are allowed (this module only listens).
//! 3. `on_event`: one delivered event at a time, in publishing order, with
//!    `&mut self`: state needs no locks, and a slow handler never blocks the
//!    publisher or another module.
//! 4. `save_state` before a hot reload (the next generation reads it back in
//!    `initialize`), `shutdown` on exit; the host then drops the subscription.

use orch_sdk::prelude::*;
use serde::Deserialize;

/// The payload fields this module reads. Fields it does not name are ignored,
/// and `#[serde(default)]` ones may be missing; a payload that does not fit
/// (`"seq": "x"`) is an error that names the topic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Incoming {
    /// A text, when the publisher sends one.
    #[serde(default)]
    pub message: Option<String>,
    /// A sequence number, when the publisher sends one.
    #[serde(default)]
    pub seq: Option<u64>,
}

/// The default topic (`topic` in its config): what the shipped producer publishes.
pub const DEFAULT_TOPIC: &str = "test.ping";

/// Counts and logs the events it receives.
#[derive(Debug)]
pub struct {{type_name}} {
    topic: String,
    received: u64,
    last: Option<Incoming>,
}

impl Default for {{type_name}} {
    fn default() -> Self {
        Self {
            topic: DEFAULT_TOPIC.to_owned(),
            received: 0,
            last: None,
        }
    }
}

impl {{type_name}} {
    /// How many events it has received (across reloads).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The last payload it read.
    pub fn last(&self) -> Option<&Incoming> {
        self.last.as_ref()
    }
}

impl Module for {{type_name}} {
    // Step 1: settings from config/modules.yaml, then subscribe.
    fn initialize(&mut self, ctx: &mut Context, config: &Config) -> Result<()> {
        if let Some(topic) = config.get::<String>("topic")? {
            self.topic = topic;
        }
        // After a hot reload, keep counting where the old generation stopped.
        if let Some(received) = ctx.restored_state::<u64>()? {
            self.received = received;
        }
        ctx.subscribe(&self.topic)?;
        // `tracing` reaches the host's log, tagged with the module's name.
        tracing::info!("subscribed to {}", self.topic);
        Ok(())
    }

    // Step 3: one event at a time; `event.data()` deserializes the JSON payload.
    fn on_event(&mut self, _ctx: &mut Context, event: &Event) -> Result<()> {
        let incoming: Incoming = event.data()?;
        self.received += 1;
        tracing::info!(
            "received {} #{}: {}",
            event.topic(),
            self.received,
            incoming.message.as_deref().unwrap_or("(no message)")
        );
        self.last = Some(incoming);
        Ok(())
    }

    // Before a hot reload: the next generation continues from here.
    fn save_state(&mut self, _ctx: &mut Context) -> Result<Option<serde_json::Value>> {
        Ok(Some(serde_json::json!(self.received)))
    }

    // Step 4: the host removes the subscription afterwards.
    fn shutdown(&mut self, _ctx: &mut Context) -> Result<()> {
        tracing::info!("received {} events in all", self.received);
        Ok(())
    }
}

// Generates the versioned C entry point the host loads; no `unsafe` to write.
orch_sdk::export_module!({{type_name}});
