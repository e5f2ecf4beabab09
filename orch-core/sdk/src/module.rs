//! The safe trait a module implements.

use crate::{Config, Context, Event, Result};

/// A hot-reloadable module. One instance lives on one host thread (its actor):
/// every callback gets `&mut self`, one at a time, so module state needs no locks.
///
/// All callbacks but [`Module::initialize`] have a default that does nothing.
/// Errors and panics are caught at the boundary and reported by the host with the
/// module's name and the phase; they never reach a publisher or another module.
pub trait Module: Send + 'static {
    /// Reads the module's `config` from `config/modules.yaml` and subscribes
    /// (`ctx.subscribe`). Publishing is refused here: every module is initialized
    /// before any starts, so no subscriber can miss an event. After a reload,
    /// `ctx.restored_state()` holds what the previous generation saved.
    fn initialize(&mut self, ctx: &mut Context, config: &Config) -> Result<()>;

    /// Called once every module is initialized: the module may now publish and set
    /// timers (`ctx.every`).
    fn start(&mut self, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }

    /// Handles one event delivered to the module's mailbox: a subscribed topic or
    /// one of its own timers.
    fn on_event(&mut self, _ctx: &mut Context, _event: &Event) -> Result<()> {
        Ok(())
    }

    /// Before a reload: returns what the next generation should start from.
    fn save_state(&mut self, _ctx: &mut Context) -> Result<Option<serde_json::Value>> {
        Ok(None)
    }

    /// Stops the module. The host drops its subscriptions and timers afterwards.
    fn shutdown(&mut self, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }
}
