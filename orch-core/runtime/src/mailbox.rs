//! A module's mailbox: bounded for events, unbounded for the host's own calls.
//!
//! Events wait in a queue of `mailbox.capacity`; when it is full the module's
//! `mailbox.overflow` policy decides: `block` makes the publisher wait up to
//! `timeouts.publish` and then fails its publish, `drop-oldest` and
//! `drop-newest` drop an event, `fail` takes the module off the bus. A dropped
//! event goes to `module.dead_letter` and is counted in a `module.overflow`
//! report (at most one a second per module).
//!
//! The host's calls (lifecycle steps, a dead child's wake-up, stop) and the
//! answers to the module's requests go in a second queue, unbounded because
//! each is bounded elsewhere (one call at a time per caller, 10,000 pending
//! requests per module). A call leaves a mark in the event queue, behind the
//! events queued before it, and runs when the reader reaches the mark, so a
//! call queued after some events runs after them (that is how shutdown
//! drains a mailbox). Neither side counts anything for that: the queue's own
//! order keeps it.
//!
//! The mailbox knows nothing of what reads it: the calls are of its owner's
//! type `C` (the actor's steps; none for the bridge's outbox, [`NoCall`]),
//! and what others read of it (depth, capacity, drops) is a [`MailboxGauge`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};
use orch_config::{MailboxSettings, Overflow};
use orch_sdk::events;

use crate::bus::{
    Admission, Bus, BusEvent, DeadLetter, Delivered, EventSink, SubscriberId, WeakBus,
};
use crate::timers::TimerService;
use queue::{EventQueue, Taken};

mod queue;

/// How often, at most, a module's overflows are reported.
pub const OVERFLOW_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What a mailbox hands its reader, in order: an event, or a call of its
/// owner's type `C`, or the owner's stop.
pub enum Work<C = NoCall> {
    /// An event for the module's `on_event`.
    Event(Arc<BusEvent>),
    /// A step its owner queued.
    Call(C),
    /// Leave the reading loop.
    Stop,
}

/// The calls of a mailbox whose owner queues none (the bridge's outbox).
pub enum NoCall {}

/// The module's mailbox; cheap to clone, shared by all its generations.
pub struct Mailbox<C = NoCall> {
    shared: Arc<Shared<C>>,
}

impl<C> Clone for Mailbox<C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<C> {
    name: Arc<str>,
    settings: MailboxSettings,
    publish_timeout: Duration,
    events: EventQueue,
    calls_tx: Sender<Work<C>>,
    calls_rx: Receiver<Work<C>>,
    /// Calls whose marks were taken out of the queue by someone other than
    /// [`Mailbox::next`] (a `drop-oldest` publisher, a batch reader): due
    /// now, before the next event.
    due: AtomicUsize,
    /// Set by the `fail` policy: nothing is delivered any more.
    failed: AtomicBool,
    /// Set while the module's handler is stuck past `timeouts.event`: its
    /// events go to the dead letters instead of filling the mailbox.
    suspended: AtomicBool,
    overflow: OverflowCount,
    reporting: OnceLock<Reporting>,
}

/// Drops since the last report.
#[derive(Default)]
struct OverflowCount {
    dropped: AtomicU64,
    total: AtomicU64,
    report_scheduled: AtomicBool,
}

/// Where overflows are reported: the bus (held weakly: the bus holds the
/// mailbox's sink) and the timer thread that sends the reports.
struct Reporting {
    bus: WeakBus,
    timers: TimerService,
    subscriber: SubscriberId,
}

/// What the reader gets next.
pub enum Next<C> {
    /// An event or a call, in order.
    Work(Work<C>),
    /// Something waits on the control channel.
    Control,
}

/// What others read of a mailbox (the status board, an isolated module's
/// batching): its depth, capacity and drops, whatever its calls are.
#[derive(Clone)]
pub struct MailboxGauge(Arc<dyn Levels>);

trait Levels: Send + Sync {
    fn len(&self) -> usize;
    fn capacity(&self) -> usize;
    fn dropped_total(&self) -> u64;
}

impl<C: Send> Levels for Shared<C> {
    fn len(&self) -> usize {
        self.events.len()
    }

    fn capacity(&self) -> usize {
        self.settings.capacity
    }

    fn dropped_total(&self) -> u64 {
        self.overflow.total.load(Ordering::Relaxed)
    }
}

impl MailboxGauge {
    /// How many events wait.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// The events it can hold.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// Events dropped (or refused) since it was made.
    pub fn dropped_total(&self) -> u64 {
        self.0.dropped_total()
    }
}

impl<C: Send + 'static> Mailbox<C> {
    /// An empty mailbox of module `name` with `settings`; `block` waits up to
    /// `publish_timeout`.
    pub fn new(name: Arc<str>, settings: MailboxSettings, publish_timeout: Duration) -> Self {
        let (calls_tx, calls_rx) = unbounded();
        Self {
            shared: Arc::new(Shared {
                name,
                settings,
                publish_timeout,
                events: EventQueue::new(settings.capacity),
                calls_tx,
                calls_rx,
                due: AtomicUsize::new(0),
                failed: AtomicBool::new(false),
                suspended: AtomicBool::new(false),
                overflow: OverflowCount::default(),
                reporting: OnceLock::new(),
            }),
        }
    }

    /// A mailbox with the default settings, for tests and tools.
    pub fn with_defaults(name: &str) -> Self {
        Self::new(
            name.into(),
            MailboxSettings::default(),
            Duration::from_secs(1),
        )
    }

    /// Reports overflows on `bus` (through `timers`); a `fail` takes
    /// `subscriber`'s subscriptions off the bus. Set once.
    pub fn report_to(&self, bus: &Bus, timers: TimerService, subscriber: SubscriberId) {
        let _ = self.shared.reporting.set(Reporting {
            bus: bus.downgrade(),
            timers,
            subscriber,
        });
    }

    /// The sink the bus, the timers and the request table deliver into.
    pub fn sink(&self) -> Arc<MailboxSink<C>> {
        Arc::new(MailboxSink(self.clone()))
    }

    /// Its depth, capacity and drops, for readers that need nothing else.
    pub fn gauge(&self) -> MailboxGauge {
        MailboxGauge(Arc::clone(&self.shared) as Arc<dyn Levels>)
    }

    /// Queues a host call after the events queued so far.
    pub fn post(&self, envelope: Work<C>) {
        // The call first: whoever reaches its mark finds it queued.
        let _ = self.shared.calls_tx.send(envelope);
        self.shared.events.mark();
    }

    /// Wakes the reader: something waits for it on its control channel.
    pub fn wake(&self) {
        self.shared.events.wake();
    }

    /// The next waiting event without waiting, unless a host call is due
    /// first (then `None`: [`Mailbox::next`] takes it). For a reader that
    /// takes events in batches, such as the bridge's outbox.
    pub fn try_next_event(&self) -> Option<Arc<BusEvent>> {
        let s = &*self.shared;
        if s.due.load(Ordering::Acquire) > 0 {
            return None;
        }
        match s.events.take()? {
            Taken::Event(event) => Some(event),
            Taken::Mark => {
                s.due.fetch_add(1, Ordering::AcqRel);
                None
            }
        }
    }

    /// How many events wait.
    pub fn len(&self) -> usize {
        self.shared.events.len()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.shared.events.len() == 0
    }

    /// Whether anything waits: an event, a call or an answer.
    pub fn has_waiting(&self) -> bool {
        let s = &*self.shared;
        s.events.len() > 0 || !s.calls_rx.is_empty() || s.due.load(Ordering::Acquire) > 0
    }

    /// The events it can hold.
    pub fn capacity(&self) -> usize {
        self.shared.settings.capacity
    }

    /// Events dropped (or refused) since it was made.
    pub fn dropped_total(&self) -> u64 {
        self.shared.overflow.total.load(Ordering::Relaxed)
    }

    /// Suspends delivery while the module's handler is stuck (the watchdog
    /// saw it overrun `timeouts.event`): new events go to the dead letters
    /// instead of filling the mailbox and holding publishers up. Resumed
    /// when the handler returns.
    pub fn set_suspended(&self, suspended: bool) {
        if self.shared.suspended.swap(suspended, Ordering::AcqRel) != suspended {
            tracing::warn!(
                "module '{}': {}",
                self.shared.name,
                if suspended {
                    "its handler is stuck: new events go to module.dead_letter until it returns"
                } else {
                    "its handler returned: events are delivered again"
                }
            );
        }
    }

    /// Whether the `fail` policy took the module off the bus.
    pub fn has_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// The next event or call in order, waiting for one; [`Next::Control`] as
    /// soon as something waits on `control` instead.
    pub fn next(&self, control: &Receiver<Work<C>>) -> Next<C> {
        loop {
            if let Some(next) = self.try_next(control) {
                return next;
            }
            // Nothing ready: wait for an event or a mark; a control message
            // drops a wake-up in the same channel.
            if let Some(next) = self.shared.events.wait().and_then(|t| self.work_of(t)) {
                return Next::Work(next);
            }
        }
    }

    /// As [`Mailbox::next`], without waiting: `None` when nothing is ready.
    pub fn try_next(&self, control: &Receiver<Work<C>>) -> Option<Next<C>> {
        let s = &*self.shared;
        loop {
            if !control.is_empty() {
                // The reader turns to its owner's steps (a pause, a reload):
                // what it holds back of the queue's room goes back first.
                s.events.release_held();
                return Some(Next::Control);
            }
            // A call whose mark someone else took out is due first.
            if s.due.load(Ordering::Acquire) > 0 {
                s.due.fetch_sub(1, Ordering::AcqRel);
                if let Ok(call) = s.calls_rx.try_recv() {
                    return Some(Next::Work(call));
                }
            }
            if let Some(next) = self.work_of(s.events.take()?) {
                return Some(Next::Work(next));
            }
        }
    }

    /// The work `taken` out of the queue stands for: the event, or at a
    /// mark the call it marks (every event queued before the call is
    /// taken: its turn; queued before its mark, the call is there).
    fn work_of(&self, taken: Taken) -> Option<Work<C>> {
        match taken {
            Taken::Event(event) => Some(Work::Event(event)),
            Taken::Mark => self.shared.calls_rx.try_recv().ok(),
        }
    }

    /// Hands `event` over as `admission` allows, applying the policy when the
    /// queue is full; gives it back when it would wait for room (`block`,
    /// [`Admission::Now`]).
    fn admit(
        &self,
        event: Arc<BusEvent>,
        admission: Admission,
    ) -> Result<Delivered, Arc<BusEvent>> {
        let s = &*self.shared;
        if s.failed.load(Ordering::Acquire) {
            self.drop_event(&event);
            return Ok(Delivered::Dropped);
        }
        if s.suspended.load(Ordering::Acquire) && admission != Admission::Always {
            self.dead_letter(&event, "stuck-handler");
            return Ok(Delivered::Dropped);
        }
        if admission == Admission::Always {
            // An answer to the module's own request: bounded by the request
            // table, never dropped; in order with the events before it.
            self.post(Work::Event(event));
            return Ok(Delivered::Accepted);
        }
        let event = match s.events.try_push(event) {
            Ok(()) => return Ok(Delivered::Accepted),
            Err(event) => event,
        };
        Ok(match s.settings.overflow {
            Overflow::Block if admission == Admission::Now => return Err(event),
            Overflow::Block if admission == Admission::Wait => {
                match s.events.push_timeout(event, s.publish_timeout) {
                    Ok(()) => Delivered::Accepted,
                    Err(event) => {
                        self.drop_event(&event);
                        Delivered::Refused(format!(
                            "module '{}' did not take the event on '{}' within {} ms: its \
                             mailbox is full ({} events, overflow: block); it is too slow \
                             for this rate, or raise its `mailbox.capacity`",
                            s.name,
                            event.topic(),
                            s.publish_timeout.as_millis(),
                            s.settings.capacity
                        ))
                    }
                }
            }
            Overflow::Block | Overflow::DropNewest => {
                self.drop_event(&event);
                Delivered::Dropped
            }
            Overflow::DropOldest => self.replace_oldest(event),
            Overflow::Fail => {
                self.drop_event(&event);
                if !s.failed.swap(true, Ordering::AcqRel) {
                    self.schedule_failure();
                }
                Delivered::Dropped
            }
        })
    }

    /// Drops the oldest waiting event to make room for `event` (a few tries
    /// against concurrent publishers, then `event` itself is dropped).
    fn replace_oldest(&self, mut event: Arc<BusEvent>) -> Delivered {
        let s = &*self.shared;
        for _ in 0..8 {
            match s.events.try_pop() {
                Some(Taken::Event(oldest)) => self.drop_event(&oldest),
                // A call's turn came: the reader takes it next (woken, in
                // case it waits for exactly this).
                Some(Taken::Mark) => {
                    s.due.fetch_add(1, Ordering::AcqRel);
                    s.events.wake();
                }
                None => {}
            }
            match s.events.try_push(event) {
                Ok(()) => return Delivered::Accepted,
                Err(back) => event = back,
            }
        }
        self.drop_event(&event);
        Delivered::Dropped
    }

    /// Counts a dropped event, sends it to the dead letters and makes sure an
    /// overflow report follows.
    fn drop_event(&self, event: &Arc<BusEvent>) {
        let s = &*self.shared;
        s.overflow.dropped.fetch_add(1, Ordering::AcqRel);
        s.overflow.total.fetch_add(1, Ordering::Relaxed);
        self.dead_letter(event, s.settings.overflow.as_str());
        let Some(reporting) = s.reporting.get() else {
            return;
        };
        if !s.overflow.report_scheduled.swap(true, Ordering::AcqRel) {
            let mailbox = Arc::downgrade(&self.shared);
            let scheduled = reporting.timers.call_after(
                OVERFLOW_REPORT_INTERVAL,
                Box::new(move || {
                    if let Some(shared) = mailbox.upgrade() {
                        Mailbox { shared }.report_overflow();
                    }
                }),
            );
            if scheduled.is_err() {
                s.overflow.report_scheduled.store(false, Ordering::Release);
            }
        }
    }

    /// Sends `event` to the dead letters, with `reason`.
    fn dead_letter(&self, event: &Arc<BusEvent>, reason: &'static str) {
        let s = &*self.shared;
        if let Some(bus) = s.reporting.get().and_then(|r| r.bus.upgrade()) {
            bus.dead_letter(DeadLetter {
                module: Arc::clone(&s.name),
                reason,
                event: Arc::clone(event),
            });
        }
    }

    /// Publishes `module.overflow` for the drops since the last report.
    fn report_overflow(&self) {
        let s = &*self.shared;
        s.overflow.report_scheduled.store(false, Ordering::Release);
        let dropped = s.overflow.dropped.swap(0, Ordering::AcqRel);
        let Some(bus) = s.reporting.get().and_then(|r| r.bus.upgrade()) else {
            return;
        };
        if dropped == 0 {
            return;
        }
        tracing::warn!(
            "module '{}': {dropped} events dropped in the last {} s: its mailbox is full \
             ({} events, overflow: {}); they went to {}",
            s.name,
            OVERFLOW_REPORT_INTERVAL.as_secs(),
            s.settings.capacity,
            s.settings.overflow.as_str(),
            events::MODULE_DEAD_LETTER
        );
        bus.publish_system_nowait(&events::ModuleOverflow {
            capacity: s.settings.capacity as u64,
            dropped,
            name: s.name.to_string(),
            policy: s.settings.overflow.as_str().to_owned(),
        });
    }

    /// `fail`: takes the module off the bus, from the timer thread (never
    /// from inside a publish).
    fn schedule_failure(&self) {
        let Some(reporting) = self.shared.reporting.get() else {
            return;
        };
        let mailbox = Arc::downgrade(&self.shared);
        let _ = reporting.timers.call_after(
            Duration::from_millis(1),
            Box::new(move || {
                let Some(shared) = mailbox.upgrade() else {
                    return;
                };
                let Some(reporting) = shared.reporting.get() else {
                    return;
                };
                let Some(bus) = reporting.bus.upgrade() else {
                    return;
                };
                bus.clear_subscriptions(reporting.subscriber);
                let reason = format!(
                    "its mailbox overflowed ({} events, overflow: fail): it receives no \
                     more events; save an edit (or restart it) to bring it back",
                    shared.settings.capacity
                );
                tracing::error!("module '{}' failed: {reason}", shared.name);
                bus.publish_system_nowait(&events::ModuleFailed {
                    name: shared.name.to_string(),
                    reason,
                    restarts: 0,
                });
            }),
        );
    }
}

/// The mailbox as the bus, the timers and the request table see it.
pub struct MailboxSink<C = NoCall>(Mailbox<C>);

impl<C> MailboxSink<C> {
    /// The mailbox behind the sink.
    pub fn mailbox(&self) -> &Mailbox<C> {
        &self.0
    }
}

impl<C: Send + 'static> EventSink for MailboxSink<C> {
    fn deliver(&self, event: &Arc<BusEvent>, admission: Admission) -> Delivered {
        self.0
            .admit(Arc::clone(event), admission)
            .unwrap_or(Delivered::WouldBlock)
    }

    fn deliver_owned(
        &self,
        event: Arc<BusEvent>,
        admission: Admission,
    ) -> Result<Delivered, Arc<BusEvent>> {
        self.0.admit(event, admission)
    }

    fn room(&self) -> Option<crate::bus::Room> {
        let capacity = self.0.capacity();
        Some(crate::bus::Room {
            free: capacity.saturating_sub(self.0.len()),
            capacity,
        })
    }
}

#[cfg(test)]
mod tests;
