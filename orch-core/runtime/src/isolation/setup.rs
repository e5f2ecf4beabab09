//! What an isolated module's generation is started from: everything its
//! child host, the link's threads and the restarts need, handed down by the
//! supervisor.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use orch_config::{Supervision, Timeouts};

use crate::bus::Bus;
use crate::host_api::ModuleHostCtx;

/// What a [`super::IsolatedModule`] needs to start and restart its child host.
pub struct RemoteSetup {
    /// The module's name.
    pub name: Arc<str>,
    /// Its context on the orchestrator's bus (subscriber id, generation gate).
    pub ctx: Arc<ModuleHostCtx>,
    /// The orchestrator's bus.
    pub bus: Bus,
    /// This generation's copy of the library (removed when the module is dropped).
    pub library: PathBuf,
    /// Where the child keeps its own copies.
    pub copies_dir: PathBuf,
    /// The generation.
    pub generation: u32,
    /// Restart policy and heartbeat.
    pub supervision: Supervision,
    /// Phase timeouts.
    pub timeouts: Timeouts,
    /// The module's mailbox, read for its depth (events waiting make a batch).
    pub mailbox: crate::mailbox::MailboxGauge,
    /// Called from a reader thread once the child's stream ended: wakes the
    /// module's owner to poll the child ([`super::IsolatedModule::poll_child`])
    /// when the module is idle.
    pub child_ended: Arc<dyn Fn() + Send + Sync>,
    /// Set when the orchestrator shuts down: no restart begins after that.
    pub stopping: Arc<AtomicBool>,
}
