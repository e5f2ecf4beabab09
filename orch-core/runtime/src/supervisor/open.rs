//! What opens a module's generations. The supervisor asks an [`Opener`] for
//! each generation, on the generation's own actor thread, and drives what it
//! gets through the [`Generation`] trait alone. [`LibraryOpener`] is the real
//! one (and the default, [`super::Supervisor::new`]): the built library is
//! loaded into this process, or run by a child host process for
//! `isolation: process`. The crate's tests open scripted fakes instead.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use orch_config::{Isolation, ModuleSpec, Timeouts};

use crate::bus::Bus;
use crate::error::ModuleFailure;
use crate::generation::Generation;
use crate::host_api::ModuleHostCtx;
use crate::isolation::{IsolatedModule, RemoteSetup};
use crate::loader::Loader;
use crate::mailbox::MailboxGauge;

/// Opens generations of modules. Called on the new generation's actor
/// thread, within `timeouts.load`.
pub trait Opener: Send + Sync {
    /// Opens generation `generation` of the module `site` describes from the
    /// library at `artifact`; a failure names the module, the phase (load,
    /// abi-check, create) and the cause.
    fn open(
        &self,
        site: Site,
        artifact: &Path,
        generation: u32,
    ) -> Result<Box<dyn Generation>, ModuleFailure>;
}

/// Where a generation is opened: the module's place in the host, as the
/// supervisor hands it to the [`Opener`].
pub struct Site {
    /// The module's name.
    pub name: Arc<str>,
    /// Its entry in modules.yaml, as this generation runs it (isolation,
    /// supervision).
    pub spec: ModuleSpec,
    /// Its context on the bus, shared by all its generations.
    pub ctx: Arc<ModuleHostCtx>,
    /// The host's bus.
    pub bus: Bus,
    /// The phase timeouts.
    pub timeouts: Timeouts,
    /// Its mailbox, read for its depth.
    pub mailbox: MailboxGauge,
    /// Asks the module's actor to settle its current generation
    /// ([`Generation::settle`]) on its own thread, even while it is idle: an
    /// isolated child's reader calls it when the child's stream ends.
    pub wake: Arc<dyn Fn() + Send + Sync>,
    /// Set once the host shuts down: no restart begins after that.
    pub stopping: Arc<AtomicBool>,
}

/// The real opener: loads a module's library into this process, or starts a
/// child host process for it (`isolation: process`).
pub struct LibraryOpener {
    loader: Loader,
}

impl LibraryOpener {
    /// An opener making its copies of libraries with `loader`.
    pub fn new(loader: Loader) -> Self {
        Self { loader }
    }
}

impl Opener for LibraryOpener {
    fn open(
        &self,
        site: Site,
        artifact: &Path,
        generation: u32,
    ) -> Result<Box<dyn Generation>, ModuleFailure> {
        if site.spec.isolation == Isolation::InProcess {
            return self
                .loader
                .load(&site.name, artifact, generation, site.ctx)
                .map(|instance| Box::new(instance) as Box<dyn Generation>);
        }
        let library = self
            .loader
            .copy_artifact(&site.name, artifact, generation)?;
        IsolatedModule::spawn(RemoteSetup {
            name: site.name,
            ctx: site.ctx,
            bus: site.bus,
            library,
            copies_dir: self.loader.copies_dir().to_path_buf(),
            generation,
            supervision: site.spec.supervision,
            timeouts: site.timeouts,
            mailbox: site.mailbox,
            child_ended: site.wake,
            stopping: site.stopping,
        })
        .map(|remote| Box::new(remote) as Box<dyn Generation>)
    }
}
