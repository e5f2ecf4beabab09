//! The lifecycle, in a fixed order: load every module, initialize every one
//! (they subscribe), then start every one (only now may they publish), then
//! `app.started`; on shutdown `app.shutdown`, then `shutdown` in reverse order,
//! mailboxes drained, libraries unloaded. Every step is bounded by its timeout: a
//! module that fails or hangs is reported by name and phase and left out, and the
//! others run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use orch_sdk::duration::human;
use orch_sdk::events::{AppStarted, ModuleError, ModuleLoaded};

use crate::actor::{Actor, ActorState, Envelope, Mailbox};
use crate::bus::Bus;
use crate::error::{Cause, ModuleFailure, Phase};
use crate::generation::Retired;
use crate::host_api::{HostServices, ModuleHostCtx};
use crate::loader::{Loader, Unloaded};
use crate::status::{ModuleState, StatusBoard};
use crate::timers::TimerService;
pub use control::Control;
use orch_config::{ModuleSpec, Timeouts};

mod control;
mod open;
mod reload;
mod stop;
mod types;
mod watchdog;

#[cfg(test)]
mod tests;

pub use open::{LibraryOpener, Opener, Site};
pub use reload::ReloadReport;

/// A module that is loaded and running.
struct RunningModule {
    spec: ModuleSpec,
    ctx: Arc<ModuleHostCtx>,
    mailbox: Mailbox,
    actor: Actor,
    generation: u32,
    /// The highest generation number ever tried (attempts, not successes): a
    /// failed or stuck attempt's number, copy and thread name are never reused.
    attempts: u32,
}

/// How long each startup phase took, summed over modules.
#[derive(Debug, Clone, Copy, Default)]
pub struct PhaseTimings {
    /// Copy, dlopen, ABI check and create.
    pub load: Duration,
    /// `initialize` of every module.
    pub initialize: Duration,
    /// `start` of every module.
    pub start: Duration,
}

/// The outcome of [`Supervisor::start`].
#[derive(Debug, Default)]
pub struct StartupReport {
    /// The modules now running, in startup order.
    pub running: Vec<String>,
    /// The modules left out, each with its phase and cause.
    pub failures: Vec<ModuleFailure>,
    /// Time per phase.
    pub timings: PhaseTimings,
    /// A signal cancelled the start-up: nothing was started, no `app.started`.
    pub cancelled: bool,
}

type Watched = Arc<Mutex<Vec<(Arc<str>, Arc<crate::actor::Activity>)>>>;

/// Owns the running modules and drives their lifecycle.
pub struct Supervisor {
    bus: Bus,
    /// The timers and pending requests every module's context shares.
    services: HostServices,
    /// Opens each generation (the real [`LibraryOpener`] unless a test's).
    opener: Arc<dyn Opener>,
    timeouts: Timeouts,
    running: Vec<RunningModule>,
    /// Actors stuck in module code: never unloaded (their code may still run).
    stuck: Vec<Actor>,
    watched: Watched,
    watchdog: Option<(Sender<()>, JoinHandle<()>)>,
    warned_unmapped: bool,
    /// Set when shutdown begins: isolated modules then stop restarting.
    stopping: Arc<AtomicBool>,
    /// Cancels a start-up; tells the signal thread the current step.
    control: Control,
    /// What `cargo orch status` and the metrics read.
    board: StatusBoard,
    /// The running modules' topic types (see [`types`]).
    types: types::TypeBook,
}

impl Supervisor {
    /// A supervisor publishing on `bus`, loading with `loader`.
    pub fn new(bus: Bus, loader: Loader, timeouts: Timeouts) -> Self {
        Self::with_opener(bus, Arc::new(LibraryOpener::new(loader)), timeouts)
    }

    /// A supervisor publishing on `bus` whose generations `opener` opens.
    pub fn with_opener(bus: Bus, opener: Arc<dyn Opener>, timeouts: Timeouts) -> Self {
        let watched: Watched = Arc::default();
        let watchdog = watchdog::spawn(bus.clone(), Arc::clone(&watched), timeouts.event);
        let board = StatusBoard::new();
        board.follow_bus(&bus);
        let follower = bus.register(board.sink());
        for pattern in StatusBoard::followed_topics() {
            if let Err(e) = bus.subscribe(follower, pattern) {
                tracing::warn!("the status board cannot follow '{pattern}': {e}");
            }
        }
        Self {
            board,
            services: HostServices::new(bus.clone(), TimerService::new()),
            bus,
            opener,
            timeouts,
            running: Vec::new(),
            stuck: Vec::new(),
            watched,
            watchdog,
            warned_unmapped: false,
            types: types::TypeBook::default(),
            stopping: Arc::default(),
            control: Control::default(),
        }
    }

    /// Shares `control` with the caller's signal handling: a cancel stops a
    /// start-up before its next step; the current step names what is stuck.
    pub fn set_control(&mut self, control: Control) {
        self.control = control;
    }

    /// The host's timer service (overflow reports, request timeouts).
    pub fn timers(&self) -> crate::timers::TimerService {
        self.services.timers.clone()
    }

    /// The table of pending requests every module shares (the bridge
    /// answers and asks through it).
    pub fn requests(&self) -> crate::requests::Requests {
        self.services.requests.clone()
    }

    /// The status board: every module's state and counters.
    pub fn status(&self) -> &StatusBoard {
        &self.board
    }

    /// The bus the modules are wired to.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Names of the running modules, in startup order.
    pub fn running(&self) -> Vec<&str> {
        self.running.iter().map(|m| m.spec.name.as_str()).collect()
    }

    /// Loads, initializes and starts `modules` (already in startup order), whose
    /// libraries `artifacts` maps by package name; publishes `app.started`.
    pub fn start(
        &mut self,
        modules: &[&ModuleSpec],
        artifacts: &HashMap<String, PathBuf>,
    ) -> StartupReport {
        let started_at = Instant::now();
        let mut report = StartupReport::default();

        let phase_start = Instant::now();
        for spec in modules {
            if self.control.is_cancelled() {
                break;
            }
            let control = self.control.clone();
            match control.in_step(&spec.name, Phase::Load, || self.load(spec, artifacts)) {
                Ok(module) => self.running.push(module),
                Err(failure) => report.failures.push(failure),
            }
        }
        report.timings.load = phase_start.elapsed();

        let phase_start = Instant::now();
        self.run_phase(Phase::Initialize, &mut report.failures);
        report.timings.initialize = phase_start.elapsed();
        if self.control.is_cancelled() {
            tracing::warn!(
                "start-up cancelled by a signal: {} of {} modules loaded, none started",
                self.running.len(),
                modules.len()
            );
            report.cancelled = true;
            return report;
        }

        for module in &self.running {
            self.announce_loaded(module);
        }

        let phase_start = Instant::now();
        for module in &self.running {
            module.ctx.set_may_publish(true);
        }
        self.run_phase(Phase::Start, &mut report.failures);
        report.timings.start = phase_start.elapsed();

        report.running = self.running().into_iter().map(String::from).collect();
        let total = started_at.elapsed();
        self.bus.publish_system(&AppStarted {
            modules: report.running.clone(),
            startup_ms: total.as_secs_f64() * 1e3,
        });
        tracing::info!(
            "[TIMING] startup of {} modules took {} (load {}, initialize {}, start {})",
            report.running.len(),
            human(total),
            human(report.timings.load),
            human(report.timings.initialize),
            human(report.timings.start),
        );
        tracing::info!(
            "app.started: {} of {} modules running ({})",
            report.running.len(),
            modules.len(),
            report.running.join(", ")
        );
        if !report.failures.is_empty() {
            let names: Vec<&str> = report.failures.iter().map(|f| f.module.as_str()).collect();
            tracing::warn!(
                "{} module(s) left out: {}; see the errors above",
                report.failures.len(),
                names.join(", ")
            );
        }
        report
    }

    /// Spawns the actor of `spec` and loads its first generation on it.
    fn load(
        &mut self,
        spec: &ModuleSpec,
        artifacts: &HashMap<String, PathBuf>,
    ) -> Result<RunningModule, ModuleFailure> {
        let name: Arc<str> = spec.name.as_str().into();
        let Some(artifact) = artifacts.get(&spec.package).cloned() else {
            let failure = ModuleFailure::new(
                &*name,
                Phase::Build,
                Cause::Host(format!(
                    "cargo produced no cdylib for package '{}'",
                    spec.package
                )),
            )
            .with_hint("check that the package's [lib] has crate-type = [\"cdylib\", \"rlib\"]");
            self.report_failure(&failure);
            return Err(failure);
        };
        let types = match self.types_for_load(&name, &artifact) {
            Ok(types) => types,
            Err(failure) => {
                self.report_failure(&failure);
                return Err(failure);
            }
        };
        let mailbox = Mailbox::new(Arc::clone(&name), spec.mailbox, self.timeouts.publish);
        let sink = mailbox.sink();
        let id = self.bus.register(sink.clone());
        mailbox.report_to(&self.bus, self.services.timers.clone(), id);
        let ctx = Arc::new(ModuleHostCtx::new(
            Arc::clone(&name),
            id,
            self.services.clone(),
            sink,
        ));
        let counters = self
            .board
            .starting(&spec.name, spec.isolation, mailbox.gauge());
        ctx.set_counters(Arc::clone(&counters));
        ctx.set_shutdown_timeout(self.timeouts.shutdown);
        ctx.set_contract(spec.contract.clone());
        ctx.set_limits(spec.limits);
        // Paused until its start returns: a module gets no event before `start`.
        let state = ActorState::new(Arc::clone(&name), None, true)
            .with_circuit_breaker(spec.circuit_breaker)
            .with_counters(counters);
        let actor = Actor::spawn(&mailbox, state, self.bus.clone()).map_err(|e| {
            ModuleFailure::new(
                &*name,
                Phase::Load,
                Cause::Host(format!("cannot start its thread: {e}")),
            )
        });
        let actor = match actor {
            Ok(actor) => actor,
            Err(failure) => {
                self.bus.remove(id);
                self.report_failure(&failure);
                return Err(failure);
            }
        };
        let module = RunningModule {
            spec: spec.clone(),
            ctx,
            mailbox,
            actor,
            generation: 1,
            attempts: 1,
        };
        let started = Instant::now();
        let opener = Arc::clone(&self.opener);
        let site = self.site(&module, spec);
        let outcome = module.actor.control(self.timeouts.load, move |state| {
            let instance = opener.open(site, &artifact, 1)?;
            let declared = instance.declared();
            state.instance = Some(instance);
            Ok(declared)
        });
        match outcome {
            Ok(Ok((package, sdk))) => {
                tracing::info!(
                    "[TIMING] module '{name}' loaded in {} (package {package}, orch-sdk {sdk}, generation 1)",
                    human(started.elapsed())
                );
                self.watch(&name, module.actor.activity());
                self.set_types(&name, types);
                Ok(module)
            }
            Ok(Err(failure)) => {
                self.discard(module, &failure);
                Err(failure)
            }
            Err(_) => {
                let failure =
                    ModuleFailure::new(&*name, Phase::Load, Cause::Timeout(self.timeouts.load));
                self.discard(module, &failure);
                Err(failure)
            }
        }
    }

    /// Runs `initialize` or `start` on every running module in order; a module
    /// that fails is reported and removed, the others go on.
    fn run_phase(&mut self, phase: Phase, failures: &mut Vec<ModuleFailure>) {
        for module in std::mem::take(&mut self.running) {
            if self.control.is_cancelled() {
                self.running.push(module);
                continue;
            }
            let name = module.spec.name.clone();
            match self
                .control
                .in_step(&name, phase, || self.step(&module, phase))
            {
                Ok(()) => {
                    if phase == Phase::Start {
                        self.board.running(&module.spec.name, module.generation);
                    }
                    self.running.push(module);
                }
                Err(failure) => {
                    self.discard(module, &failure);
                    failures.push(failure);
                }
            }
        }
    }

    /// Runs `initialize` (with the module's config) or `start` (then resumes
    /// its delivery) on one module, within the phase's timeout.
    fn step(&self, module: &RunningModule, phase: Phase) -> Result<(), ModuleFailure> {
        let timeout = phase.timeout(&self.timeouts);
        let started = Instant::now();
        let (outcome, verb) = if phase == Phase::Initialize {
            let config = serde_json::to_vec(&module.spec.config).unwrap_or_default();
            let outcome = module
                .actor
                .control_module(phase, timeout, move |m| m.initialize(&config, None));
            (outcome, "initialized")
        } else {
            let outcome = module
                .actor
                .control_module(phase, timeout, |m| m.start())
                .and_then(|()| resume(&module.actor, timeout));
            (outcome, "started")
        };
        if outcome.is_ok() {
            tracing::info!(
                "[TIMING] module '{}' {verb} in {}",
                module.spec.name,
                human(started.elapsed())
            );
        }
        outcome
    }

    /// Reports `failure` and takes the module out: its subscriptions and timers go;
    /// its library is unloaded unless its thread is stuck in module code.
    fn discard(&mut self, module: RunningModule, failure: &ModuleFailure) {
        self.report_failure(failure);
        // The error itself reaches the board scrubbed, as module.error.
        self.board.out(&module.spec.name, ModuleState::Failed, None);
        module.ctx.drop_subscriptions_and_timers();
        self.services.requests.forget(&module.spec.name);
        self.bus.remove(module.ctx.id);
        self.unwatch(&module.spec.name);
        if matches!(failure.cause, Cause::Timeout(_)) {
            tracing::warn!(
                "module '{}' is stuck in {}; its thread is abandoned and its library stays loaded",
                module.spec.name,
                failure.phase
            );
            self.stuck.push(module.actor);
            return;
        }
        match module.actor.stop_now(self.timeouts.shutdown) {
            Ok(state) => self.retire(state),
            Err(actor) => self.stuck.push(actor),
        }
    }

    /// Where a generation of `module` is opened, as `spec` says.
    fn site(&self, module: &RunningModule, spec: &ModuleSpec) -> Site {
        let mailbox = module.mailbox.clone();
        let wake = Arc::new(move || {
            mailbox.post(Envelope::Call(Box::new(|state: &mut ActorState| {
                if let Some(instance) = state.instance.as_mut() {
                    instance.settle();
                }
            })));
        });
        Site {
            name: Arc::clone(&module.ctx.name),
            spec: spec.clone(),
            ctx: Arc::clone(&module.ctx),
            bus: self.bus.clone(),
            timeouts: self.timeouts,
            mailbox: module.mailbox.gauge(),
            wake,
            stopping: Arc::clone(&self.stopping),
        }
    }

    /// Destroys a stopped generation's instance and unloads its library, so that
    /// the dynamic loader can really unmap it; says so once if it cannot. An
    /// isolated generation's child host is asked to exit (killed if it lingers).
    fn retire(&mut self, state: ActorState) {
        let Some(instance) = state.instance else {
            return;
        };
        let generation = instance.generation();
        match instance.retire(self.timeouts.shutdown) {
            Retired::Released => {}
            Retired::Unloaded(unloaded) => match unloaded {
                Unloaded::Unmapped => {}
                Unloaded::KeptForThreads(count) => tracing::warn!(
                    "module '{}' generation {generation} left {count} thread{} running: its \
                     library stays loaded; stop the module's threads in its shutdown",
                    state.name,
                    if count == 1 { "" } else { "s" }
                ),
                Unloaded::StillMapped if !self.warned_unmapped => {
                    self.warned_unmapped = true;
                    tracing::warn!(
                        "[RELOAD] the dynamic loader kept generation {generation} of module '{}' \
                         mapped after unloading (thread-local destructors pin it); each reload \
                         of such a module keeps its old code in memory",
                        state.name
                    );
                }
                Unloaded::StillMapped => {}
            },
            Retired::NotDestroyed => tracing::warn!(
                "module '{}' did not finish dropping generation {generation} within {}; \
                 its library stays loaded",
                state.name,
                human(self.timeouts.shutdown)
            ),
        }
    }

    fn report_failure(&self, failure: &ModuleFailure) {
        tracing::error!("{failure}");
        self.bus.publish_system(&ModuleError {
            name: failure.module.clone(),
            phase: failure.phase.as_str().to_owned(),
            topic: None,
            error: failure.cause.to_string(),
            hint: Some(failure.hint.clone()),
        });
    }

    /// Publishes `module.loaded` for a module that initialized.
    fn announce_loaded(&self, module: &RunningModule) {
        self.bus.publish_system(&ModuleLoaded {
            name: module.spec.name.clone(),
            config: module.spec.redacted_config(),
        });
    }

    /// Lets the watchdog see `activity` as module `name`'s (replacing an older one).
    fn watch(&self, name: &Arc<str>, activity: &Arc<crate::actor::Activity>) {
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        watched.retain(|(n, _)| n != name);
        watched.push((Arc::clone(name), Arc::clone(activity)));
    }

    fn unwatch(&self, name: &str) {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(n, _)| &**n != name);
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown("supervisor dropped");
    }
}

/// Lets a started module's thread deliver the events waiting in its mailbox.
fn resume(actor: &Actor, timeout: Duration) -> Result<(), ModuleFailure> {
    actor
        .control(timeout, |state| state.paused = false)
        .map_err(|_| {
            ModuleFailure::new(
                &**actor.name(),
                Phase::Start,
                Cause::Host("the module's thread did not resume delivery".into()),
            )
        })
}
