//! A scripted fake generation and the opener that hands it to the supervisor.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::journal::{Call, Journal};
use crate::bus::BusEvent;
use crate::error::{Cause, ModuleFailure, Phase};
use crate::generation::{Generation, Retired};
use crate::host_api::ModuleHostCtx;
use crate::supervisor::{Opener, Site};

/// Holds a hanging call until it is opened (or forever).
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets every call waiting at the gate (and every later one) through.
    pub fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        changed.notify_all();
    }

    fn wait(&self) {
        let (open, changed) = &*self.0;
        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = changed.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What one call of a fake does.
#[derive(Debug, Clone, Default)]
pub enum Act {
    /// Returns at once, successfully.
    #[default]
    Succeed,
    /// Fails with this cause.
    Fail(Cause),
    /// Panics in module code, caught at the ABI boundary and reported as the
    /// SDK reports it (`panicked: <message>`).
    Panic(String),
    /// Unwinds out of the generation for real (no real generation does: the
    /// ABI boundary catches every panic).
    Unwind(String),
    /// Blocks until the gate opens (never, if nobody opens it), then succeeds.
    Hang(Gate),
    /// Its child host process dies: a lifecycle call fails as an isolated
    /// module's does; in `on_event` the death is noticed later, by the
    /// child's reader, which wakes the actor to settle the generation.
    Crash(String),
    /// Takes this long, then succeeds.
    Slow(Duration),
}

impl Act {
    /// Fails with the module's own error `message`.
    pub fn error(message: &str) -> Self {
        Act::Fail(Cause::Error(message.to_owned()))
    }

    /// Does what it says; `Ok` for the acts that succeed.
    fn run(&self) -> Result<(), Cause> {
        match self {
            Act::Succeed => Ok(()),
            Act::Fail(cause) => Err(cause.clone()),
            Act::Panic(message) => Err(Cause::Panic(format!("panicked: {message}"))),
            Act::Unwind(message) => std::panic::resume_unwind(Box::new(message.clone())),
            Act::Hang(gate) => {
                gate.wait();
                Ok(())
            }
            Act::Crash(reason) => Err(Cause::Host(format!(
                "its child host process died: {reason}"
            ))),
            Act::Slow(delay) => {
                std::thread::sleep(*delay);
                Ok(())
            }
        }
    }
}

/// What one generation of a fake module does in each phase. By default
/// everything succeeds, in process.
#[derive(Debug, Clone)]
pub struct Script {
    open: Act,
    open_phase: Phase,
    initialize: Act,
    start: Act,
    events: Vec<Act>,
    save_state: Act,
    shutdown: Act,
    subscribe: Vec<String>,
    publish_in_initialize: Vec<String>,
    publish_in_start: Vec<String>,
    local: bool,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            open: Act::Succeed,
            open_phase: Phase::Load,
            initialize: Act::Succeed,
            start: Act::Succeed,
            events: Vec::new(),
            save_state: Act::Succeed,
            shutdown: Act::Succeed,
            subscribe: Vec::new(),
            publish_in_initialize: Vec::new(),
            publish_in_start: Vec::new(),
            local: true,
        }
    }
}

impl Script {
    /// Everything succeeds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opening it does `act`; a failure is reported in `phase` (load,
    /// abi-check, create).
    pub fn on_open(mut self, phase: Phase, act: Act) -> Self {
        self.open_phase = phase;
        self.open = act;
        self
    }

    /// `initialize` does `act` (after subscribing and publishing as told).
    pub fn on_initialize(mut self, act: Act) -> Self {
        self.initialize = act;
        self
    }

    /// `start` does `act` (after publishing as told).
    pub fn on_start(mut self, act: Act) -> Self {
        self.start = act;
        self
    }

    /// Every `on_event` does `act`.
    pub fn on_event(self, act: Act) -> Self {
        self.on_events(vec![act])
    }

    /// The `n`th `on_event` (from 0) does `acts[n % acts.len()]`.
    pub fn on_events(mut self, acts: Vec<Act>) -> Self {
        self.events = acts;
        self
    }

    /// `save_state` does `act`.
    pub fn on_save_state(mut self, act: Act) -> Self {
        self.save_state = act;
        self
    }

    /// `shutdown` does `act`.
    pub fn on_shutdown(mut self, act: Act) -> Self {
        self.shutdown = act;
        self
    }

    /// Subscribes to `pattern` in `initialize`.
    pub fn subscribes(mut self, pattern: &str) -> Self {
        self.subscribe.push(pattern.to_owned());
        self
    }

    /// Tries to publish on `topic` in `initialize` (the host refuses it).
    pub fn publishes_in_initialize(mut self, topic: &str) -> Self {
        self.publish_in_initialize.push(topic.to_owned());
        self
    }

    /// Publishes on `topic` in `start`.
    pub fn publishes_in_start(mut self, topic: &str) -> Self {
        self.publish_in_start.push(topic.to_owned());
        self
    }

    /// Runs "in a child host process": its event outcomes come later
    /// (`take_outcomes`), and its handler time is not the actor's to measure.
    pub fn isolated(mut self) -> Self {
        self.local = false;
        self
    }
}

/// Opens [`FakeGeneration`]s as scripted, per module and generation.
#[derive(Default)]
pub struct FakeOpener {
    journal: Journal,
    scripts: Mutex<HashMap<(String, u32), Script>>,
    wakes: Mutex<HashMap<String, Arc<dyn Fn() + Send + Sync>>>,
}

impl FakeOpener {
    /// An opener recording into `journal`.
    pub fn new(journal: &Journal) -> Arc<Self> {
        Arc::new(Self {
            journal: journal.clone(),
            ..Self::default()
        })
    }

    /// Generation `generation` of `module` follows `script` (others succeed).
    pub fn script(&self, module: &str, generation: u32, script: Script) {
        self.scripts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((module.to_owned(), generation), script);
    }

    /// The child host of `module`'s current generation dies while it is idle:
    /// its reader wakes the module's actor, as a real one does.
    pub fn child_died(&self, module: &str) {
        let wake = self
            .wakes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(module)
            .cloned()
            .expect("the module was opened");
        wake();
    }
}

impl Opener for FakeOpener {
    fn open(
        &self,
        site: Site,
        artifact: &Path,
        generation: u32,
    ) -> Result<Box<dyn Generation>, ModuleFailure> {
        let name = site.name.to_string();
        self.journal.record(
            &name,
            generation,
            Call::Open {
                artifact: artifact.to_path_buf(),
            },
        );
        let script = self
            .scripts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(name.clone(), generation))
            .cloned()
            .unwrap_or_default();
        script
            .open
            .run()
            .map_err(|cause| ModuleFailure::new(&name, script.open_phase, cause))?;
        self.wakes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), Arc::clone(&site.wake));
        Ok(Box::new(FakeGeneration {
            name,
            generation,
            script,
            journal: self.journal.clone(),
            ctx: site.ctx,
            wake: site.wake,
            handled: 0,
            events: 0,
            outcomes: Vec::new(),
        }))
    }
}

/// A module generation that does what its [`Script`] says and records every
/// call. Its state is the number of events it handled (handed over on reload).
pub struct FakeGeneration {
    name: String,
    generation: u32,
    script: Script,
    journal: Journal,
    ctx: Arc<ModuleHostCtx>,
    wake: Arc<dyn Fn() + Send + Sync>,
    handled: u64,
    events: usize,
    outcomes: Vec<(u64, Result<(), String>)>,
}

impl FakeGeneration {
    fn record(&self, call: Call) {
        self.journal.record(&self.name, self.generation, call);
    }

    fn publish(&self, topics: &[String]) {
        for topic in topics {
            let refused = self.ctx.publish_as(self.generation, topic, b"{}").err();
            self.record(Call::Publish {
                topic: topic.clone(),
                refused,
            });
        }
    }
}

impl Generation for FakeGeneration {
    fn generation(&self) -> u32 {
        self.generation
    }

    fn declared(&self) -> (String, String) {
        (self.name.clone(), "0.0.0-fake".to_owned())
    }

    fn initialize(&mut self, _config_json: &[u8], state: Option<&[u8]>) -> Result<(), Cause> {
        let state = state.map(|s| {
            std::str::from_utf8(s)
                .ok()
                .and_then(|s| s.parse().ok())
                .expect("a fake's own state")
        });
        self.record(Call::Initialize { state });
        self.handled = state.unwrap_or(0);
        for pattern in &self.script.subscribe {
            self.ctx.subscribe(pattern).map_err(Cause::Error)?;
        }
        self.publish(&self.script.publish_in_initialize);
        self.script.initialize.run()
    }

    fn start(&mut self) -> Result<(), Cause> {
        self.record(Call::Start);
        self.publish(&self.script.publish_in_start);
        self.script.start.run()
    }

    fn on_event(&mut self, event: &Arc<BusEvent>) -> Result<(), Cause> {
        let event = event.delivery();
        self.record(Call::Event {
            topic: event.topic.to_owned(),
            payload: String::from_utf8_lossy(event.payload).into_owned(),
        });
        let act = match self.script.events.len() {
            0 => Act::Succeed,
            n => self.script.events[self.events % n].clone(),
        };
        self.events += 1;
        if let Act::Crash(_) = act {
            // The child died with the event: lost for this module; its
            // reader notices and wakes the actor.
            (self.wake)();
            return Ok(());
        }
        let outcome = act.run();
        if outcome.is_ok() {
            self.handled += 1;
        }
        if self.script.local {
            return outcome;
        }
        self.outcomes
            .push((event.id, outcome.map_err(|cause| cause.to_string())));
        Ok(())
    }

    fn is_local(&self) -> bool {
        self.script.local
    }

    fn settle(&mut self) {
        // A local generation has nothing to settle (the actor calls this
        // before every event all the same).
        if !self.script.local {
            self.record(Call::Settle);
        }
    }

    fn take_outcomes(&mut self) -> Vec<(u64, Result<(), String>)> {
        std::mem::take(&mut self.outcomes)
    }

    fn save_state(&mut self) -> Result<Option<Vec<u8>>, Cause> {
        self.record(Call::SaveState {
            handled: self.handled,
        });
        self.script.save_state.run()?;
        Ok(Some(self.handled.to_string().into_bytes()))
    }

    fn shutdown(&mut self) -> Result<(), Cause> {
        self.record(Call::Shutdown {
            handled: self.handled,
        });
        self.script.shutdown.run()
    }

    fn retire(self: Box<Self>, _timeout: Duration) -> Retired {
        self.record(Call::Retire);
        Retired::Released
    }
}
