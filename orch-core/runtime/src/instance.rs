//! One generation of a module as its actor drives it: a library loaded into this
//! process, or a child host process running it (`isolation: process`). The
//! actor, the supervisor and the reload transaction see the same calls either way.

use crate::error::Cause;
use crate::isolation::RemoteModule;
use crate::loader::ModuleInstance;

/// A module generation, in-process or isolated.
pub enum Instance {
    /// Loaded into this process.
    Local(ModuleInstance),
    /// Running in a child host process.
    Remote(Box<RemoteModule>),
}

impl Instance {
    /// The generation number.
    pub fn generation(&self) -> u32 {
        match self {
            Instance::Local(i) => i.generation(),
            Instance::Remote(r) => r.generation(),
        }
    }

    /// The package name and SDK version the module declares.
    pub fn declared(&self) -> (String, String) {
        match self {
            Instance::Local(i) => i.declared(),
            Instance::Remote(r) => r.declared(),
        }
    }

    /// `Module::initialize`.
    pub fn initialize(&mut self, config_json: &[u8], state: Option<&[u8]>) -> Result<(), Cause> {
        match self {
            Instance::Local(i) => i.initialize(config_json, state),
            Instance::Remote(r) => r.initialize(config_json, state),
        }
    }

    /// `Module::start`.
    pub fn start(&mut self) -> Result<(), Cause> {
        match self {
            Instance::Local(i) => i.start(),
            Instance::Remote(r) => r.start(),
        }
    }

    /// `Module::on_event`.
    pub fn on_event(&mut self, event: crate::bus::Delivery<'_>) -> Result<(), Cause> {
        match self {
            Instance::Local(i) => i.on_event(event),
            Instance::Remote(r) => r.on_event(event),
        }
    }

    /// Whether it runs in this process (its `on_event` outcome is final).
    pub fn is_local(&self) -> bool {
        matches!(self, Instance::Local(_))
    }

    /// Takes the acknowledgements an isolated child has sent, without waiting
    /// (their outcomes then come from [`Instance::take_outcomes`]).
    pub fn settle(&mut self) {
        if let Instance::Remote(r) = self {
            r.poll_child();
        }
    }

    /// The actor is about to wait for its next message: an isolated child is
    /// woken for the events written to it without a wake-up (batched while
    /// more were queued).
    pub fn before_wait(&mut self) {
        if let Instance::Remote(r) = self {
            r.wake_child();
        }
    }

    /// The outcomes of events an isolated child acknowledged since the last
    /// call, oldest first, by event id (`Err` with the failure); none for a
    /// local one.
    pub fn take_outcomes(&mut self) -> Vec<(u64, Result<(), String>)> {
        match self {
            Instance::Local(_) => Vec::new(),
            Instance::Remote(r) => r.take_outcomes(),
        }
    }

    /// `Module::save_state`.
    pub fn save_state(&mut self) -> Result<Option<Vec<u8>>, Cause> {
        match self {
            Instance::Local(i) => i.save_state(),
            Instance::Remote(r) => r.save_state(),
        }
    }

    /// `Module::shutdown`.
    pub fn shutdown(&mut self) -> Result<(), Cause> {
        match self {
            Instance::Local(i) => i.shutdown(),
            Instance::Remote(r) => r.shutdown(),
        }
    }
}
