//! Each loaded module is an actor: a mailbox and a host thread that delivers to
//! it one envelope at a time.
//!
//! Events and ordinary lifecycle calls share the mailbox, so a call queued after
//! some events runs after them (that is how shutdown drains a mailbox). Each
//! generation of a module gets a thread of its own, reading the same mailbox: on a
//! reload the old thread retires after its last call, events wait in the mailbox
//! while the new generation is booted through the priority control channel, and
//! the new thread resumes delivery where the old one stopped, so no event is lost
//! or delivered twice. A thread per generation also lets the dynamic loader really
//! unload an old library: its thread-local destructors run when its thread ends.

use orch_sdk::events;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};

use crate::breaker::{Admit, Breaker, Change};
use crate::bus::{Bus, BusEvent, DeadLetter};
use crate::error::{Cause, ModuleFailure, Phase};
use crate::generation::Generation;
use crate::mailbox::{Next, Work};
use crate::status::{EdgeTally, HandlerClock, ModuleCounters};
use orch_config::CircuitBreakerSettings;

/// A step run on an actor's thread, with its state.
pub type ActorCall = Box<dyn FnOnce(&mut ActorState) + Send>;

/// A unit of work for an actor: an event for `on_event`, a step
/// ([`ActorCall`]) or the order to leave the loop and hand the state back.
pub type Envelope = Work<ActorCall>;

/// A module's mailbox, whose calls are the actor's steps.
pub type Mailbox = crate::mailbox::Mailbox<ActorCall>;

/// The sink of a module's mailbox.
pub type MailboxSink = crate::mailbox::MailboxSink<ActorCall>;

/// What an actor thread owns: the module's generation.
pub struct ActorState {
    /// The module's name.
    pub name: Arc<str>,
    /// The loaded generation, if any.
    pub instance: Option<Box<dyn Generation>>,
    /// While paused the thread reads only its control channel: events wait.
    pub paused: bool,
    /// Set by a call to end the thread right after that call.
    pub retire: bool,
    /// The circuit breaker of this generation's handler.
    pub breaker: Breaker,
    /// The module's traffic counters on the status board.
    pub counters: Option<Arc<ModuleCounters>>,
    /// Counts its events per sender and topic into the counters' table.
    edges: Option<EdgeTally>,
}

impl ActorState {
    /// The state of a thread for module `name`.
    pub fn new(name: Arc<str>, instance: Option<Box<dyn Generation>>, paused: bool) -> Self {
        Self {
            name,
            instance,
            paused,
            retire: false,
            breaker: Breaker::new(CircuitBreakerSettings::default()),
            counters: None,
            edges: None,
        }
    }

    /// The same state counting events into `counters`.
    pub fn with_counters(mut self, counters: Arc<ModuleCounters>) -> Self {
        self.edges = Some(EdgeTally::new(Arc::clone(counters.edges())));
        self.counters = Some(counters);
        self
    }

    /// The same state with the module's `circuit_breaker` settings.
    pub fn with_circuit_breaker(mut self, settings: CircuitBreakerSettings) -> Self {
        self.breaker = Breaker::new(settings);
        self
    }
}

/// What the actor is doing right now, read by the watchdog. Cheap on the hot
/// path: two plain stores and two loads per event (its thread alone writes
/// them), the topic's lock only when the topic changes, no clock read and
/// no allocation. The watchdog notices a handler that stays on the same
/// event across its ticks and times it itself.
#[derive(Default)]
pub struct Activity {
    /// Events begun plus events ended: odd while a handler runs. Written by
    /// the actor's thread alone.
    seq: AtomicU64,
    /// The topic of the event begun last (set only when it changes).
    topic: Mutex<Option<Arc<str>>>,
    watch: Mutex<Watch>,
    /// Set by the watchdog when the running handler overran `timeouts.event`.
    overran: AtomicBool,
    /// The module's mailbox, suspended while a handler is stuck.
    mailbox: Option<Mailbox>,
}

/// The watchdog's own view of one actor.
#[derive(Default)]
struct Watch {
    seq: u64,
    since: Option<Instant>,
    reported: bool,
}

impl Activity {
    fn new(mailbox: Mailbox) -> Self {
        Self {
            mailbox: Some(mailbox),
            ..Self::default()
        }
    }

    /// A handler begins on `event`; `shown` is the id of the names whose
    /// topic this thread last set (the lock is taken only when they change).
    fn begin(&self, event: &BusEvent, shown: &mut u64) {
        if *shown != event.names_id() {
            *shown = event.names_id();
            *self.topic.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::from(event.topic()));
        }
        self.step();
    }

    /// Counts a beginning or an end: a plain store, this thread alone writes.
    fn step(&self) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Release);
    }

    /// The handler returned; whether the watchdog saw it overrun.
    fn end(&self) -> bool {
        self.step();
        let overran =
            self.overran.load(Ordering::Acquire) && self.overran.swap(false, Ordering::AcqRel);
        if overran && let Some(mailbox) = &self.mailbox {
            mailbox.set_suspended(false);
        }
        overran
    }

    /// If one event handler has run for longer than `limit` (as seen by the
    /// watchdog's successive calls) and was not reported yet: its topic and how
    /// long it has run (reported once per event).
    pub fn overdue(&self, limit: Duration) -> Option<(String, Duration)> {
        let seq = self.seq.load(Ordering::Acquire);
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        let busy = !seq.is_multiple_of(2);
        if !busy || seq != watch.seq {
            *watch = Watch {
                seq,
                since: busy.then(Instant::now),
                reported: false,
            };
            return None;
        }
        let running = watch.since.map_or(Duration::ZERO, |since| since.elapsed());
        if running < limit || watch.reported {
            return None;
        }
        watch.reported = true;
        // It counts as a failure when it returns; meanwhile its events go to
        // the dead letters instead of holding publishers up.
        self.overran.store(true, Ordering::Release);
        if let Some(mailbox) = &self.mailbox {
            mailbox.set_suspended(true);
        }
        let topic = self.topic.lock().unwrap_or_else(|e| e.into_inner());
        Some((topic.as_deref().unwrap_or_default().to_owned(), running))
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

/// The handle on one generation's thread.
pub struct Actor {
    name: Arc<str>,
    mailbox: Mailbox,
    control: Sender<Envelope>,
    done: Receiver<ActorState>,
    thread: Option<std::thread::JoinHandle<()>>,
    activity: Arc<Activity>,
}

impl Actor {
    /// Starts a thread for module `name` with `state`, reading `mailbox` (unless
    /// paused) and a control channel of its own. Errors and panics of `on_event`
    /// are logged and published as `module.error` on `bus`.
    pub fn spawn(mailbox: &Mailbox, state: ActorState, bus: Bus) -> std::io::Result<Self> {
        let name = Arc::clone(&state.name);
        let (control, control_rx) = unbounded();
        let (done_tx, done) = bounded(1);
        let activity = Arc::new(Activity::new(mailbox.clone()));
        let thread_activity = Arc::clone(&activity);
        let thread_mailbox = mailbox.clone();
        let thread = std::thread::Builder::new()
            .name(format!("module:{name}"))
            .spawn(move || {
                let state = run(state, &thread_mailbox, &control_rx, &bus, &thread_activity);
                let _ = done_tx.send(state);
            })?;
        Ok(Self {
            name,
            mailbox: mailbox.clone(),
            control,
            done,
            thread: Some(thread),
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
        let (envelope, reply) = Self::call_envelope(f);
        self.mailbox.post(envelope);
        Self::wait(reply, timeout)
    }

    /// Runs `f` on the actor thread before any waiting event (also while paused).
    pub fn control<R: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut ActorState) -> R + Send + 'static,
    ) -> Result<R, CallError> {
        let (envelope, reply) = Self::call_envelope(f);
        self.control.send(envelope).map_err(|_| CallError::Gone)?;
        self.mailbox.wake();
        Self::wait(reply, timeout)
    }

    /// The envelope that runs `f` and the channel its result comes back on.
    fn call_envelope<R: Send + 'static>(
        f: impl FnOnce(&mut ActorState) -> R + Send + 'static,
    ) -> (Envelope, Receiver<R>) {
        let (reply_tx, reply) = bounded(1);
        let envelope = Envelope::Call(Box::new(move |state| {
            let _ = reply_tx.send(f(state));
        }));
        (envelope, reply)
    }

    fn wait<R>(reply: Receiver<R>, timeout: Duration) -> Result<R, CallError> {
        reply.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => CallError::Timeout,
            RecvTimeoutError::Disconnected => CallError::Gone,
        })
    }

    /// Calls a module hook in mailbox order, bounded by `timeout`, and turns every
    /// way it can fail into a [`ModuleFailure`] for `phase`.
    pub fn call_module(
        &self,
        phase: Phase,
        timeout: Duration,
        f: impl FnOnce(&mut dyn Generation) -> Result<(), Cause> + Send + 'static,
    ) -> Result<(), ModuleFailure> {
        let outcome = self.call(timeout, move |state| with_instance(state, f));
        self.failure_of(phase, timeout, outcome)
    }

    /// As [`Actor::call_module`], through the priority control channel.
    pub fn control_module(
        &self,
        phase: Phase,
        timeout: Duration,
        f: impl FnOnce(&mut dyn Generation) -> Result<(), Cause> + Send + 'static,
    ) -> Result<(), ModuleFailure> {
        let outcome = self.control(timeout, move |state| with_instance(state, f));
        self.failure_of(phase, timeout, outcome)
    }

    fn failure_of(
        &self,
        phase: Phase,
        timeout: Duration,
        outcome: Result<Result<(), Cause>, CallError>,
    ) -> Result<(), ModuleFailure> {
        let cause = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(cause)) => cause,
            Err(CallError::Timeout) => Cause::Timeout(timeout),
            Err(CallError::Gone) => Cause::Host("the module's thread has ended".into()),
        };
        Err(ModuleFailure::new(&*self.name, phase, cause))
    }

    /// Waits for the thread to end (after a call that set `retire`, or a stop) and
    /// returns its state; `None` if it does not end within `timeout`. On success
    /// the thread has fully ended, thread-local destructors included, so the
    /// module's library may be unloaded.
    pub fn join(&mut self, timeout: Duration) -> Option<ActorState> {
        let state = self.done.recv_timeout(timeout).ok()?;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        Some(state)
    }

    /// Stops the thread after what is in its mailbox and returns its state, or
    /// `Err(self)` if it does not stop within `timeout` (it is stuck in module code;
    /// its library must then stay loaded).
    pub fn stop(mut self, timeout: Duration) -> Result<ActorState, Self> {
        self.mailbox.post(Envelope::Stop);
        self.join(timeout).ok_or(self)
    }

    /// Stops a paused thread at once, through its control channel.
    pub fn stop_now(mut self, timeout: Duration) -> Result<ActorState, Self> {
        let _ = self.control.send(Envelope::Stop);
        self.mailbox.wake();
        self.join(timeout).ok_or(self)
    }
}

fn with_instance(
    state: &mut ActorState,
    f: impl FnOnce(&mut dyn Generation) -> Result<(), Cause>,
) -> Result<(), Cause> {
    match state.instance.as_deref_mut() {
        Some(instance) => f(instance),
        None => Err(Cause::Host("no module generation is loaded".into())),
    }
}

fn run(
    mut state: ActorState,
    mailbox: &Mailbox,
    control: &Receiver<Envelope>,
    bus: &Bus,
    activity: &Activity,
) -> ActorState {
    let mut watched = Watched::default();
    loop {
        // Control first; otherwise the mailbox in order (it returns as soon as
        // a control message arrives) or, while paused, the control channel alone.
        let next = if let Ok(envelope) = control.try_recv() {
            envelope
        } else if state.paused {
            watched.pause(&mut state);
            match control.recv() {
                Ok(envelope) => envelope,
                Err(_) => break,
            }
        } else {
            let next = match mailbox.try_next(control) {
                Some(next) => next,
                None => {
                    // It may wait now: the handlers' time so far is counted.
                    watched.pause(&mut state);
                    if let Some(instance) = state.instance.as_mut() {
                        instance.before_wait();
                    }
                    mailbox.next(control)
                }
            };
            match next {
                Next::Work(work) => work,
                Next::Control => continue,
            }
        };
        match next {
            Envelope::Event(event) => deliver(&mut state, &event, bus, activity, &mut watched),
            Envelope::Call(call) => {
                // What was handed to an isolated child goes before the call.
                watched.pause(&mut state);
                if let Some(instance) = state.instance.as_mut() {
                    instance.before_wait();
                }
                call(&mut state);
            }
            Envelope::Stop => break,
        }
        if state.retire {
            break;
        }
    }
    watched.pause(&mut state);
    state
}

/// What an actor thread keeps between events to watch its handler cheaply.
#[derive(Default)]
struct Watched {
    /// Times the handlers, a span of events at a time while they follow one
    /// another (the host's hand-over between two counted with them).
    clock: HandlerClock,
    /// The id of the names whose topic was last shown to the watchdog (0:
    /// none yet).
    topic: u64,
    /// Events handled and not yet added to the module's counters.
    handled: u64,
}

/// The most events an actor handles before adding them to its module's
/// counters (a scrape sees the count at most this far behind while events
/// flow, exact once the actor pauses).
const COUNT_EVERY: u64 = 16;

impl Watched {
    /// One more event handled: counted in `counters` a few at a time.
    fn handled(&mut self, counters: &ModuleCounters) {
        self.handled += 1;
        if self.handled >= COUNT_EVERY {
            counters.events_in_many(std::mem::take(&mut self.handled));
        }
    }

    /// No handler follows at once: the handler time and the events so far
    /// are counted.
    fn pause(&mut self, state: &mut ActorState) {
        if let Some(counters) = &state.counters {
            self.clock.pause(counters);
            if self.handled > 0 {
                counters.events_in_many(std::mem::take(&mut self.handled));
            }
        }
        if let Some(edges) = &mut state.edges {
            edges.flush();
        }
    }
}

fn deliver(
    state: &mut ActorState,
    event: &Arc<BusEvent>,
    bus: &Bus,
    activity: &Activity,
    watched: &mut Watched,
) {
    let Some(instance) = state.instance.as_mut() else {
        return;
    };
    // What an isolated child acknowledged meanwhile decides first: a
    // half-open circuit's trial may have succeeded.
    instance.settle();
    for (id, outcome) in instance.take_outcomes() {
        apply_outcome(&state.name, &mut state.breaker, id, outcome, bus);
    }
    if state.breaker.admit(event.id) == Admit::Refuse {
        watched.pause(state);
        bus.dead_letter(DeadLetter {
            module: Arc::clone(&state.name),
            reason: "circuit-open",
            event: Arc::clone(event),
        });
        return;
    }
    // An isolated module's handler time comes with its child's acknowledgement.
    let timed = state.counters.is_some() && instance.is_local();
    if timed {
        watched.clock.begin();
    }
    activity.begin(event, &mut watched.topic);
    let result = instance.on_event(event);
    let overran = activity.end();
    if let Some(counters) = &state.counters {
        watched.handled(counters);
        if let Some(edges) = &mut state.edges {
            edges.count(event);
        }
        if timed {
            watched.clock.ended(counters);
        }
    }
    // An isolated module's outcomes arrive later, as the child acknowledges.
    let outcomes = instance.take_outcomes();
    match (&result, instance.is_local()) {
        (Err(cause), _) => {
            crate::event_failure::report(&state.name, event.topic(), cause, bus);
            let change = state.breaker.failure(event.id);
            report_circuit(&state.name, change, &cause.to_string(), &state.breaker, bus);
        }
        (Ok(()), true) => {
            let change = if overran {
                state.breaker.failure(event.id)
            } else {
                state.breaker.success(event.id)
            };
            let why = "its handler overran timeouts.event";
            report_circuit(&state.name, change, why, &state.breaker, bus);
        }
        (Ok(()), false) => {}
    }
    for (id, outcome) in outcomes {
        apply_outcome(&state.name, &mut state.breaker, id, outcome, bus);
    }
}

/// Feeds an isolated child's acknowledged outcome of event `id` to the breaker.
fn apply_outcome(
    name: &str,
    breaker: &mut Breaker,
    id: u64,
    outcome: Result<(), String>,
    bus: &Bus,
) {
    let change = match &outcome {
        Ok(()) => breaker.success(id),
        Err(_) => breaker.failure(id),
    };
    let why = outcome.err().unwrap_or_default();
    report_circuit(name, change, &why, breaker, bus);
}

/// Logs and publishes what a handler's outcome did to the circuit.
fn report_circuit(name: &str, change: Change, error: &str, breaker: &Breaker, bus: &Bus) {
    match change {
        Change::None => {}
        Change::Opened { failures } => {
            let reset = breaker.reset_timeout();
            tracing::error!(
                "[CIRCUIT] module '{name}' failed {failures} times in a row (last: {error}): \
                 its events go to {} for {}, then one is tried",
                events::MODULE_DEAD_LETTER,
                orch_sdk::duration::human(reset)
            );
            bus.publish_system(&events::ModuleCircuitOpen {
                error: error.to_owned(),
                failures,
                name: name.to_owned(),
                reset_ms: u64::try_from(reset.as_millis()).unwrap_or(u64::MAX),
            });
        }
        Change::Closed => {
            tracing::info!(
                "[CIRCUIT] module '{name}' handled a trial event: its events flow again"
            );
            bus.publish_system(&events::ModuleCircuitClosed {
                name: name.to_owned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_reports_a_handler_stuck_on_one_event_once() {
        let activity = Activity::new(Mailbox::with_defaults("watched"));
        let event = Arc::new(BusEvent::new("test.ping", b"{}", None));
        let mut shown = 0;
        assert_eq!(activity.overdue(Duration::ZERO), None, "idle");
        activity.begin(&event, &mut shown);
        // First sight of this event: the watchdog starts timing it.
        assert_eq!(activity.overdue(Duration::ZERO), None);
        let (topic, _) = activity.overdue(Duration::ZERO).expect("still on it");
        assert_eq!(topic, "test.ping");
        assert_eq!(activity.overdue(Duration::ZERO), None, "reported once");
        activity.end();
        activity.begin(&event, &mut shown);
        assert_eq!(activity.overdue(Duration::ZERO), None, "a new event");
        assert!(
            activity.overdue(Duration::from_secs(3600)).is_none(),
            "not yet"
        );
        activity.end();
        assert_eq!(activity.overdue(Duration::ZERO), None, "idle again");
    }
}
