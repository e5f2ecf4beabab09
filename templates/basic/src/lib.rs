//! {{crate_name}}: logs each step of its lifecycle and reacts to `app.started`.
//!
//! The host drives every module through the same steps, in a fixed order:
//!
//! 1. `initialize`: every module, one after the other. Read the settings and
//!    subscribe here. Publishing is refused until every module is initialized,
//!    so no subscriber can miss an event.
//! 2. `start`: every module, in the same order. From now on the module may
//!    publish and set timers.
//! 3. `on_event`: once per delivered event (a subscribed topic or one of the
//!    module's own timers), one at a time, with `&mut self`: no locks needed.
//! 4. `shutdown` on exit, in reverse order. Before a hot reload, `save_state`
//!    comes first, and the next generation reads the state back in `initialize`.
//!
//! An error returned (or a panic) in any step is caught at the boundary and
//! reported with the module's name and the step; the other modules go on.

use orch_sdk::events::{APP_STARTED, AppStarted};
use orch_sdk::prelude::*;

/// The module's state: owned by its host thread, so plain fields, no locks.
#[derive(Debug)]
pub struct {{type_name}} {
    greeting: String,
    started: bool,
    events: u64,
}

impl Default for {{type_name}} {
    fn default() -> Self {
        Self {
            greeting: "hello".to_owned(),
            started: false,
            events: 0,
        }
    }
}

impl {{type_name}} {
    /// The configured greeting.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// Whether `start` ran and `shutdown` did not yet.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// How many events the module has handled.
    pub fn events(&self) -> u64 {
        self.events
    }
}

impl Module for {{type_name}} {
    // Step 1: read the `config:` map of config/modules.yaml and subscribe.
    fn initialize(&mut self, ctx: &mut Context, config: &Config) -> Result<()> {
        if let Some(greeting) = config.get::<String>("greeting")? {
            self.greeting = greeting;
        }
        // After a hot reload, continue from what the previous generation saved.
        if let Some(events) = ctx.restored_state::<u64>()? {
            self.events = events;
        }
        ctx.subscribe(APP_STARTED)?;
        // `tracing` reaches the host's log, tagged with the module's name.
        tracing::info!("initialized with the greeting {:?}", self.greeting);
        Ok(())
    }

    // Step 2: every module is initialized; publishing and timers are allowed now.
    fn start(&mut self, _ctx: &mut Context) -> Result<()> {
        self.started = true;
        tracing::info!("started");
        Ok(())
    }

    // Step 3: one delivered event at a time.
    fn on_event(&mut self, _ctx: &mut Context, event: &Event) -> Result<()> {
        self.events += 1;
        if event.topic() == APP_STARTED {
            let started: AppStarted = event.data()?;
            tracing::info!("sees the application running: {:?}", started.modules);
        }
        Ok(())
    }

    // Before a hot reload: what the next generation gets in `initialize`.
    fn save_state(&mut self, _ctx: &mut Context) -> Result<Option<serde_json::Value>> {
        Ok(Some(serde_json::json!(self.events)))
    }

    // Step 4: the host drops the subscriptions and timers afterwards.
    fn shutdown(&mut self, _ctx: &mut Context) -> Result<()> {
        self.started = false;
        tracing::info!("shutting down after {} events", self.events);
        Ok(())
    }
}

// Generates the versioned C entry point the host loads; no `unsafe` to write.
orch_sdk::export_module!({{type_name}});
