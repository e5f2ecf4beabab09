//! {{crate_name}}: publishes a numbered event on a timer.
//!
//! The host drives every module through the same steps, in a fixed order:
//!
//! 1. `initialize`: read the settings (and subscribe, if the module listens to
//!    anything). Publishing is refused here: every module is initialized before
//!    any starts, so no subscriber can miss the first event.
//! 2. `start`: publishing and timers are allowed. This module publishes its
//!    first event at once and asks the host for a timer: the host owns it and
//!    delivers `{{crate_name}}.timer` to this module's mailbox every `interval`,
//!    so the module needs no thread of its own.
//! 3. `on_event`: one event at a time, with `&mut self`. Here: the timer.
//! 4. `save_state` before a hot reload (the next generation reads it back in
//!    `initialize`), `shutdown` on exit; the host then drops the timer.

use std::time::Duration;

use orch_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// What the module publishes: serialized to JSON once, delivered to every subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// 1 for the first event, then +1; carried across hot reloads.
    pub seq: u64,
    /// The configured message.
    pub message: String,
}

/// The topic of the module's own timer (delivered only to this module).
pub const TIMER_TOPIC: &str = "{{crate_name}}.timer";

/// The default topic it publishes on (`topic` in its config).
pub const DEFAULT_TOPIC: &str = "{{crate_name}}.tick";

/// Publishes a [`Tick`] every `interval`.
#[derive(Debug)]
pub struct {{type_name}} {
    interval: Duration,
    topic: String,
    message: String,
    seq: u64,
}

impl Default for {{type_name}} {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            topic: DEFAULT_TOPIC.to_owned(),
            message: "tick".to_owned(),
            seq: 0,
        }
    }
}

impl {{type_name}} {
    /// The configured interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The topic it publishes on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn publish_next(&mut self, ctx: &mut Context) -> Result<()> {
        self.seq += 1;
        let tick = Tick {
            seq: self.seq,
            message: self.message.clone(),
        };
        ctx.publish(&self.topic, &tick)?;
        tracing::info!("published {} #{}", self.topic, tick.seq);
        Ok(())
    }
}

impl Module for {{type_name}} {
    // Step 1: settings from config/modules.yaml; errors name the key.
    fn initialize(&mut self, ctx: &mut Context, config: &Config) -> Result<()> {
        if let Some(interval) = config.duration("interval")? {
            if interval.is_zero() {
                return Err("config key 'interval' must be greater than zero".into());
            }
            self.interval = interval;
        }
        if let Some(topic) = config.get::<String>("topic")? {
            self.topic = topic;
        }
        if let Some(message) = config.get::<String>("message")? {
            self.message = message;
        }
        // After a hot reload, continue the sequence where the old generation stopped.
        if let Some(seq) = ctx.restored_state::<u64>()? {
            self.seq = seq;
        }
        // `tracing` reaches the host's log, tagged with the module's name.
        tracing::info!("will publish {} every {:?}", self.topic, self.interval);
        Ok(())
    }

    // Step 2: now it may publish; the timer belongs to the host.
    fn start(&mut self, ctx: &mut Context) -> Result<()> {
        ctx.every(self.interval, TIMER_TOPIC)?;
        self.publish_next(ctx)
    }

    // Step 3: the module's own timer.
    fn on_event(&mut self, ctx: &mut Context, event: &Event) -> Result<()> {
        if event.topic() == TIMER_TOPIC {
            self.publish_next(ctx)?;
        }
        Ok(())
    }

    // Before a hot reload: the next generation continues from here.
    fn save_state(&mut self, _ctx: &mut Context) -> Result<Option<serde_json::Value>> {
        Ok(Some(serde_json::json!(self.seq)))
    }

    // Step 4: the host removes the timer afterwards.
    fn shutdown(&mut self, _ctx: &mut Context) -> Result<()> {
        tracing::info!("shutting down after {} events", self.seq);
        Ok(())
    }
}

// Generates the versioned C entry point the host loads; no `unsafe` to write.
orch_sdk::export_module!({{type_name}});
