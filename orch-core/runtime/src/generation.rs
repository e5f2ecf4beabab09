//! One generation of a module as its actor drives it. The actor, the
//! supervisor and the reload transaction see one trait, [`Generation`], and
//! never which kind they hold: a library loaded into this process
//! ([`ModuleInstance`]), a child host process running it (`isolation:
//! process`, [`IsolatedModule`]), or, in this crate's tests, a scripted fake.
//! What opens a generation is the supervisor's `Opener`.

use std::sync::Arc;
use std::time::Duration;

use crate::bus::BusEvent;
use crate::error::Cause;
use crate::isolation::IsolatedModule;
use crate::loader::{ModuleInstance, Unloaded};

/// A module generation: the calls its actor, the supervisor and the reload
/// transaction make. Every call runs on the generation's actor thread, one at
/// a time; none may unwind (a module's panic comes back as [`Cause::Panic`]).
pub trait Generation: Send {
    /// The generation number (1 for the first load, one more per attempt).
    fn generation(&self) -> u32;

    /// The package name and SDK version the module declares.
    fn declared(&self) -> (String, String);

    /// `Module::initialize` with its config (a JSON object) and the state the
    /// previous generation saved.
    fn initialize(&mut self, config_json: &[u8], state: Option<&[u8]>) -> Result<(), Cause>;

    /// `Module::start`.
    fn start(&mut self) -> Result<(), Cause>;

    /// `Module::on_event`. Final for a local generation; an isolated one
    /// returns at once and reports the outcome later ([`Generation::take_outcomes`]).
    fn on_event(&mut self, event: &Arc<BusEvent>) -> Result<(), Cause>;

    /// Whether it runs in this process: its `on_event` outcome is final and
    /// its handler time is measured by the actor.
    fn is_local(&self) -> bool;

    /// Takes what arrived meanwhile without waiting (an isolated child's
    /// acknowledgements, or its death); its outcomes then come from
    /// [`Generation::take_outcomes`].
    fn settle(&mut self) {}

    /// The actor is about to wait for its next message (an isolated child is
    /// woken for the events written to it without a wake-up).
    fn before_wait(&mut self) {}

    /// The outcomes of events acknowledged since the last call, oldest first,
    /// by event id (`Err` with the failure); always empty for a local one.
    fn take_outcomes(&mut self) -> Vec<(u64, Result<(), String>)> {
        Vec::new()
    }

    /// `Module::save_state`: `None` when the module keeps no state.
    fn save_state(&mut self) -> Result<Option<Vec<u8>>, Cause>;

    /// `Module::shutdown`.
    fn shutdown(&mut self) -> Result<(), Cause>;

    /// Ends a stopped generation for good, within `timeout`: destroys the
    /// instance and unloads its library, or lets its child host exit.
    fn retire(self: Box<Self>, timeout: Duration) -> Retired;
}

/// What retiring a generation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retired {
    /// Nothing of it is left in this process (an isolated child was told to
    /// exit, killed if it lingered).
    Released,
    /// Its instance was destroyed and its library unloaded, as said.
    Unloaded(Unloaded),
    /// Its instance was not destroyed within the timeout: its library stays
    /// loaded, as its code may still run.
    NotDestroyed,
}

impl Generation for ModuleInstance {
    fn generation(&self) -> u32 {
        ModuleInstance::generation(self)
    }

    fn declared(&self) -> (String, String) {
        ModuleInstance::declared(self)
    }

    fn initialize(&mut self, config_json: &[u8], state: Option<&[u8]>) -> Result<(), Cause> {
        ModuleInstance::initialize(self, config_json, state)
    }

    fn start(&mut self) -> Result<(), Cause> {
        ModuleInstance::start(self)
    }

    fn on_event(&mut self, event: &Arc<BusEvent>) -> Result<(), Cause> {
        ModuleInstance::on_event(self, event.delivery())
    }

    fn is_local(&self) -> bool {
        true
    }

    fn save_state(&mut self) -> Result<Option<Vec<u8>>, Cause> {
        ModuleInstance::save_state(self)
    }

    fn shutdown(&mut self) -> Result<(), Cause> {
        ModuleInstance::shutdown(self)
    }

    fn retire(self: Box<Self>, timeout: Duration) -> Retired {
        match ModuleInstance::retire(*self, timeout) {
            Some(library) => Retired::Unloaded(library.unload()),
            None => Retired::NotDestroyed,
        }
    }
}

impl Generation for IsolatedModule {
    fn generation(&self) -> u32 {
        IsolatedModule::generation(self)
    }

    fn declared(&self) -> (String, String) {
        IsolatedModule::declared(self)
    }

    fn initialize(&mut self, config_json: &[u8], state: Option<&[u8]>) -> Result<(), Cause> {
        IsolatedModule::initialize(self, config_json, state)
    }

    fn start(&mut self) -> Result<(), Cause> {
        IsolatedModule::start(self)
    }

    fn on_event(&mut self, event: &Arc<BusEvent>) -> Result<(), Cause> {
        IsolatedModule::on_event(self, event)
    }

    fn is_local(&self) -> bool {
        false
    }

    fn settle(&mut self) {
        self.poll_child();
    }

    fn before_wait(&mut self) {
        self.wake_child();
    }

    fn take_outcomes(&mut self) -> Vec<(u64, Result<(), String>)> {
        IsolatedModule::take_outcomes(self)
    }

    fn save_state(&mut self) -> Result<Option<Vec<u8>>, Cause> {
        IsolatedModule::save_state(self)
    }

    fn shutdown(&mut self) -> Result<(), Cause> {
        IsolatedModule::shutdown(self)
    }

    fn retire(self: Box<Self>, _timeout: Duration) -> Retired {
        // Dropping it tells its child host to exit (killed if it lingers)
        // and removes its copy of the library.
        drop(self);
        Retired::Released
    }
}
