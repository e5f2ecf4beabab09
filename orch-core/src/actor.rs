//! Each loaded module is an actor: a mailbox and one host thread that delivers to
//! it one envelope at a time. Events and lifecycle calls share the mailbox, so a
//! call queued after some events runs after them (that is how shutdown drains a
//! mailbox, and how a reload pauses delivery without losing or repeating events).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};

use crate::bus::{Bus, BusEvent, EventSink};
use crate::error::{Cause, ModuleFailure, Phase};
use crate::loader::ModuleInstance;

/// A unit of work for an actor.
pub enum Envelope {
    /// Deliver an event to the module's `on_event`.
    Event(Arc<BusEvent>),
    /// Run a lifecycle step on the actor's thread.
    Call(Box<dyn FnOnce(&mut ActorState) + Send>),
    /// Leave the loop and hand the state back.
    Stop,
}

/// The mailbox as the bus and the timers see it.
pub struct MailboxSink(pub Sender<Envelope>);

impl EventSink for MailboxSink {
    fn deliver(&self, event: &Arc<BusEvent>) -> bool {
        self.0.send(Envelope::Event(Arc::clone(event))).is_ok()
    }
}

/// What the actor thread owns: the module's current generation.
pub struct ActorState {
    /// The module's name.
    pub name: Arc<str>,
    /// The loaded generation, if any.
    pub instance: Option<ModuleInstance>,
}

/// What the actor is doing right now, read by the watchdog.
#[derive(Default)]
pub struct Activity {
    /// Milliseconds since `epoch` when the current event started; 0 when idle.
    started_ms: AtomicU64,
    topic: Mutex<Option<Box<str>>>,
    reported: AtomicBool,
    epoch: Option<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            epoch: Some(Instant::now()),
            ..Self::default()
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch
            .map_or(0, |e| {
                u64::try_from(e.elapsed().as_millis()).unwrap_or(u64::MAX)
            })
            .max(1)
    }

    fn begin(&self, topic: &str) {
        *self.topic.lock().unwrap_or_else(|e| e.into_inner()) = Some(topic.into());
        self.reported.store(false, Ordering::Relaxed);
        self.started_ms.store(self.now_ms(), Ordering::Release);
    }

    fn end(&self) {
        self.started_ms.store(0, Ordering::Release);
    }

    /// If an event handler has run for longer than `limit` and was not reported
    /// yet: its topic and how long it has run (reported once per event).
    pub fn overdue(&self, limit: Duration) -> Option<(String, Duration)> {
        let started = self.started_ms.load(Ordering::Acquire);
        if started == 0 {
            return None;
        }
        let running = Duration::from_millis(self.now_ms().saturating_sub(started));
        if running < limit || self.reported.swap(true, Ordering::AcqRel) {
            return None;
        }
        let topic = self.topic.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Some((topic.map(String::from).unwrap_or_default(), running))
    }
}

/// Why a call to an actor did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// No reply within the timeout: the actor is stuck in module code.
    Timeout,
    /// The actor thread is gone.
    Gone,
}

/// The handle on one actor thread.
pub struct Actor {
    name: Arc<str>,
    sender: Sender<Envelope>,
    done: Receiver<ActorState>,
    activity: Arc<Activity>,
}

impl Actor {
    /// Creates the mailbox; the actor thread starts with [`Actor::spawn`].
    pub fn mailbox() -> (Sender<Envelope>, Receiver<Envelope>) {
        unbounded()
    }

    /// Starts the thread of module `name`, reading `mailbox`. Errors and panics of
    /// `on_event` are logged and published as `module.error` on `bus`.
    pub fn spawn(
        name: Arc<str>,
        sender: Sender<Envelope>,
        mailbox: Receiver<Envelope>,
        bus: Bus,
    ) -> std::io::Result<Self> {
        let (done_tx, done) = bounded(1);
        let activity = Arc::new(Activity::new());
        let state = ActorState {
            name: Arc::clone(&name),
            instance: None,
        };
        let thread_activity = Arc::clone(&activity);
        std::thread::Builder::new()
            .name(format!("module:{name}"))
            .spawn(move || {
                let state = run(state, &mailbox, &bus, &thread_activity);
                let _ = done_tx.send(state);
            })?;
        Ok(Self {
            name,
            sender,
            done,
            activity,
        })
    }

    /// The module's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// What the actor is doing, for the watchdog.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// Runs `f` on the actor thread after everything already in the mailbox, and
    /// waits for its result up to `timeout`.
    pub fn call<R: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut ActorState) -> R + Send + 'static,
    ) -> Result<R, CallError> {
        let (reply_tx, reply) = bounded(1);
        let envelope = Envelope::Call(Box::new(move |state| {
            let _ = reply_tx.send(f(state));
        }));
        self.sender.send(envelope).map_err(|_| CallError::Gone)?;
        reply.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => CallError::Timeout,
            RecvTimeoutError::Disconnected => CallError::Gone,
        })
    }

    /// Calls a module hook on the actor thread, bounded by `timeout`, and turns
    /// every way it can fail into a [`ModuleFailure`] for `phase`.
    pub fn call_module(
        &self,
        phase: Phase,
        timeout: Duration,
        f: impl FnOnce(&mut ModuleInstance) -> Result<(), Cause> + Send + 'static,
    ) -> Result<(), ModuleFailure> {
        let outcome = self.call(timeout, move |state| match state.instance.as_mut() {
            Some(instance) => f(instance),
            None => Err(Cause::Host("no module generation is loaded".into())),
        });
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(cause)) => Err(ModuleFailure::new(&*self.name, phase, cause)),
            Err(CallError::Timeout) => Err(ModuleFailure::new(
                &*self.name,
                phase,
                Cause::Timeout(timeout),
            )),
            Err(CallError::Gone) => Err(ModuleFailure::new(
                &*self.name,
                phase,
                Cause::Host("the module's thread has ended".into()),
            )),
        }
    }

    /// Stops the thread after what is in its mailbox and returns its state, or
    /// `Err(self)` if it does not stop within `timeout` (it is stuck in module code;
    /// its library must then stay loaded).
    pub fn stop(self, timeout: Duration) -> Result<ActorState, Self> {
        if self.sender.send(Envelope::Stop).is_err() {
            return self.done.recv_timeout(timeout).map_err(|_| self);
        }
        match self.done.recv_timeout(timeout) {
            Ok(state) => Ok(state),
            Err(_) => Err(self),
        }
    }
}

fn run(
    mut state: ActorState,
    mailbox: &Receiver<Envelope>,
    bus: &Bus,
    activity: &Activity,
) -> ActorState {
    while let Ok(envelope) = mailbox.recv() {
        match envelope {
            Envelope::Event(event) => deliver(&mut state, &event, bus, activity),
            Envelope::Call(call) => call(&mut state),
            Envelope::Stop => break,
        }
    }
    state
}

fn deliver(state: &mut ActorState, event: &BusEvent, bus: &Bus, activity: &Activity) {
    let Some(instance) = state.instance.as_mut() else {
        return;
    };
    activity.begin(&event.topic);
    let result = instance.on_event(&event.topic, &event.payload);
    activity.end();
    if let Err(cause) = result {
        report_event_failure(&state.name, &event.topic, &cause, bus);
    }
}

/// Logs a failed `on_event` and publishes `module.error {name, phase, topic, error}`
/// (except for failures while handling `module.error` itself: no loops).
pub fn report_event_failure(name: &str, topic: &str, cause: &Cause, bus: &Bus) {
    tracing::error!(
        "module '{name}' failed handling '{topic}' (phase on_event): {cause}; \
         the event was dropped for this module, the others are unaffected"
    );
    if topic != "module.error" {
        bus.publish_json(
            "module.error",
            &serde_json::json!({
                "name": name,
                "phase": Phase::Event.as_str(),
                "topic": topic,
                "error": cause.to_string(),
            }),
        );
    }
}
