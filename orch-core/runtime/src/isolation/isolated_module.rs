//! The orchestrator's side of an isolated module: a [`IsolatedModule`] stands in
//! the module's actor where a loaded library would, and turns each lifecycle
//! call into a request frame to the child host, bounded by the same timeouts,
//! and each event into an event frame (up to `MAX_IN_FLIGHT` in flight, no more
//! than its mailbox holds, each kept until acknowledged). A reader thread forwards the child's publishes and subscriptions to
//! the real bus (which owns every subscription), its logs to the host's log, and
//! notices its death (end of stream, then `waitpid` for the reason). A heartbeat
//! thread kills a child whose module thread stops answering. After a crash the
//! actor's own thread restarts the child under the module's policy, so events
//! published meanwhile wait in the mailbox; the event being handled when it
//! crashed is lost for that module only.

mod restart;

use std::sync::Arc;
use std::time::Duration;

use orch_sdk::duration::human;
use orch_wire::protocol::{Frame, Status};
use orch_wire::shm::Wake;

use super::child_process::{ChildProcess, Incoming};
use super::in_flight::{InFlight, MAX_IN_FLIGHT, window_for};
use super::setup::RemoteSetup;
use super::supervise::RestartTracker;
use crate::bus::BusEvent;
use crate::error::{Cause, ModuleFailure, Phase};

/// Why a request got no reply.
enum Failed {
    Cause(Cause),
    Died,
    Down,
}

/// An isolated module generation: its child host process and its supervision.
pub struct IsolatedModule {
    setup: RemoteSetup,
    child: Option<ChildProcess>,
    tracker: RestartTracker,
    declared: (String, String),
    last_init: Option<(Vec<u8>, Option<Vec<u8>>)>,
    started: bool,
    down: bool,
    restarts: u32,
    inflight: InFlight,
    /// Outcomes acknowledged and not yet taken by the actor (bounded).
    outcomes: Vec<(u64, Result<(), String>)>,
}

fn cause_of(status: Status, data: &[u8]) -> Cause {
    let message = String::from_utf8_lossy(data).into_owned();
    match status {
        Status::Error => Cause::Error(message),
        Status::Panic => Cause::Panic(message),
        _ => Cause::Host(message),
    }
}

impl IsolatedModule {
    /// Starts the child host and waits (up to `timeouts.load`) until it has
    /// loaded the library and checked its ABI.
    pub fn spawn(setup: RemoteSetup) -> Result<Self, ModuleFailure> {
        let tracker = RestartTracker::new(setup.supervision);
        let mut module = Self {
            setup,
            child: None,
            tracker,
            declared: (String::new(), String::new()),
            last_init: None,
            started: false,
            down: false,
            restarts: 0,
            inflight: InFlight::default(),
            outcomes: Vec::new(),
        };
        match ChildProcess::spawn(&module.setup) {
            Ok((link, declared)) => {
                module.child = Some(link);
                module.declared = declared;
                Ok(module)
            }
            Err(cause) => Err(ModuleFailure::new(&*module.setup.name, Phase::Load, cause)
                .with_hint("the module runs in a child host process (isolation: process)")),
        }
    }

    /// The generation number.
    pub fn generation(&self) -> u32 {
        self.setup.generation
    }

    /// The package and SDK version the module declares.
    pub fn declared(&self) -> (String, String) {
        self.declared.clone()
    }

    /// The child's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid)
    }

    /// `Module::initialize` in the child.
    pub fn initialize(&mut self, config: &[u8], state: Option<&[u8]>) -> Result<(), Cause> {
        self.last_init = Some((config.to_vec(), state.map(<[u8]>::to_vec)));
        let frame = Frame::Initialize {
            config: config.to_vec(),
            state: state.map(<[u8]>::to_vec),
        };
        let timeout = self.setup.timeouts.initialize;
        self.lifecycle(frame, timeout).map(drop)
    }

    /// `Module::start` in the child.
    pub fn start(&mut self) -> Result<(), Cause> {
        let timeout = self.setup.timeouts.start;
        self.lifecycle(Frame::Start, timeout)?;
        self.started = true;
        Ok(())
    }

    /// `Module::save_state` in the child.
    pub fn save_state(&mut self) -> Result<Option<Vec<u8>>, Cause> {
        let timeout = self.setup.timeouts.reload;
        let state = self.lifecycle(Frame::SaveState, timeout)?;
        Ok((!state.is_empty()).then_some(state))
    }

    /// `Module::shutdown` in the child (the process stays until dropped).
    ///
    /// A module already down has nothing to shut down, and neither has one whose
    /// child died, or was doomed by the orchestrator (a bad frame, a missed
    /// heartbeat), before the call: that death is a crash, reported as one and
    /// not restarted while the orchestrator stops, not a failure of this call.
    /// A death during the call itself is.
    pub fn shutdown(&mut self) -> Result<(), Cause> {
        self.started = false;
        self.drain_all();
        let doomed = self
            .child
            .as_ref()
            .is_some_and(|link| link.shared.killed_for().is_some());
        if doomed {
            self.recover();
        }
        if self.down {
            return Ok(());
        }
        let timeout = self.setup.timeouts.shutdown;
        self.lifecycle(Frame::Shutdown, timeout).map(drop)
    }

    /// `Module::on_event` in the child. A crash while handling it is reported,
    /// the child restarted per policy, and the event lost for this module only.
    ///
    /// Up to `MAX_IN_FLIGHT` events (no more than its `mailbox.capacity`) are
    /// in flight: each is kept until the child acknowledges it, errors are reported with their own topic, and after a
    /// crash the unacknowledged events but the first (the one it was handling)
    /// are delivered again to the restarted child, in order.
    pub fn on_event(&mut self, event: &Arc<BusEvent>) -> Result<(), Cause> {
        self.send_event(Arc::clone(event));
        Ok(())
    }

    /// Sends one event to the child and keeps it in flight until acknowledged.
    fn send_event(&mut self, event: Arc<BusEvent>) {
        if !self.absorb() {
            return;
        }
        let Some(link) = self.child.as_ref() else {
            return;
        };
        // While more events are queued the child is woken once for a batch
        // (see `wake_child`): one wake-up instead of one per event.
        let wake = if self.setup.mailbox.is_empty() {
            Wake::Now
        } else {
            Wake::Later
        };
        // Encoded from the bus's own event; kept in flight as it is.
        let sent = link.send_event(&super::event_frame::event_ref(&event), wake);
        self.inflight.push(event);
        if !sent {
            link.shared.pipe_broke();
        }
        self.drain(if sent { self.window() - 1 } else { 0 });
    }

    /// How many events may be in flight to the child.
    fn window(&self) -> usize {
        window_for(self.setup.mailbox.capacity())
    }

    /// Wakes the child for events written without a wake-up.
    pub fn wake_child(&mut self) {
        if let Some(link) = self.child.as_ref() {
            link.wake();
        }
    }

    /// Handles a child that died while its module was idle (the reader thread
    /// asks the actor to call this).
    pub fn poll_child(&mut self) {
        self.absorb();
    }

    /// Takes the acknowledgements already there without waiting; `false` if the
    /// child was found dead (and recovered from, or given up).
    fn absorb(&mut self) -> bool {
        loop {
            let Some(link) = self.child.as_ref() else {
                return false;
            };
            match link.replies.try_recv() {
                Ok(Incoming::Reply(status, data)) => self.acknowledge(status, &data),
                Ok(Incoming::Handled(count, nanos)) => {
                    if !self.acknowledge_handled(count, nanos) {
                        return false;
                    }
                }
                Ok(Incoming::Dead) | Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.recover();
                    return false;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => return true,
            }
        }
    }

    /// Waits for acknowledgements until at most `keep` events are in flight
    /// (and no more than their byte bound); `false` if the child died
    /// meanwhile (and was recovered from).
    fn drain(&mut self, keep: usize) -> bool {
        if self.inflight.holds_more_than(keep) {
            self.wake_child();
        }
        while self.inflight.holds_more_than(keep) {
            let Some(link) = self.child.as_ref() else {
                return false;
            };
            match link.replies.recv() {
                Ok(Incoming::Reply(status, data)) => self.acknowledge(status, &data),
                Ok(Incoming::Handled(count, nanos)) => {
                    if !self.acknowledge_handled(count, nanos) {
                        return false;
                    }
                }
                Ok(Incoming::Dead) | Err(_) => {
                    self.recover();
                    return false;
                }
            }
        }
        true
    }

    /// Waits until no event is in flight, or no child is left: a child that
    /// dies meanwhile is restarted (as the policy says) and given the rest
    /// again, and those are waited for too, so a lifecycle call never goes
    /// out with events ahead of its reply. Ends: each death loses the event
    /// being handled, and restarts are bounded.
    fn drain_all(&mut self) {
        while self.child.is_some() && self.inflight.holds_more_than(0) {
            self.drain(0);
        }
    }

    /// The oldest event in flight was handled; reports its failure if any.
    fn acknowledge(&mut self, status: Status, data: &[u8]) {
        if let Some(link) = self.child.as_ref() {
            link.took(1);
        }
        let Some(event) = self.inflight.acknowledge_event() else {
            return;
        };
        if status == Status::Ok {
            if let (Ok(nanos), Some(counters)) =
                (<[u8; 8]>::try_from(data), self.setup.ctx.counters())
            {
                counters.handled(Duration::from_nanos(u64::from_le_bytes(nanos)));
            }
            self.push_outcome(event.id, Ok(()));
        } else {
            let cause = cause_of(status, data);
            let (name, bus) = (&self.setup.name, &self.setup.bus);
            crate::event_failure::report(name, event.topic(), &cause, bus);
            self.push_outcome(event.id, Err(cause.to_string()));
        }
    }

    /// Keeps event `id`'s outcome for the actor (the oldest dropped past two
    /// windows' worth).
    fn push_outcome(&mut self, id: u64, outcome: Result<(), String>) {
        if self.outcomes.len() >= 2 * MAX_IN_FLIGHT {
            let _ = self.outcomes.remove(0);
        }
        self.outcomes.push((id, outcome));
    }

    /// `count` events in flight were handled without error, in `nanos`
    /// together; `false` if the child claimed more than it was sent (it is
    /// killed for it and recovered from).
    fn acknowledge_handled(&mut self, count: u32, nanos: u64) -> bool {
        if let Some(link) = self.child.as_ref() {
            link.took(u64::from(count));
        }
        if !self.settle_handled(u64::from(count)) {
            if let Some(link) = self.child.as_ref() {
                link.shared.kill(
                    "it acknowledged more events than were in flight (a protocol error)".into(),
                );
            }
            self.recover();
            return false;
        }
        if let Some(counters) = self.setup.ctx.counters() {
            let total = Duration::from_nanos(nanos);
            counters.handled_many(total / count.max(1), count, total);
        }
        true
    }

    /// The `count` oldest events in flight were handled without error;
    /// `false` if fewer were in flight (those there are settled).
    pub(super) fn settle_handled(&mut self, count: u64) -> bool {
        for _ in 0..count {
            let Some(event) = self.inflight.acknowledge_event() else {
                return false;
            };
            self.push_outcome(event.id, Ok(()));
        }
        true
    }

    /// The outcomes acknowledged since the last call, by event id (at most an
    /// in-flight window's worth), for the circuit breaker.
    pub fn take_outcomes(&mut self) -> Vec<(u64, Result<(), String>)> {
        std::mem::take(&mut self.outcomes)
    }

    /// A lifecycle call, after the events in flight: a death during the call is
    /// that call's failure (no restart here).
    fn lifecycle(&mut self, frame: Frame, timeout: Duration) -> Result<Vec<u8>, Cause> {
        self.drain_all();
        match self.request(frame, Some(timeout)) {
            Ok(data) => Ok(data),
            Err(Failed::Cause(cause)) => Err(cause),
            Err(Failed::Down) => Err(Cause::Host("its child host process is down".into())),
            Err(Failed::Died) => {
                let reason = self
                    .child
                    .take()
                    .map(|link| link.end().0)
                    .unwrap_or_default();
                Err(Cause::Host(format!(
                    "its child host process died: {reason}"
                )))
            }
        }
    }

    /// Sends `frame` and waits for its reply: at most `timeout` (a little less,
    /// so the actor's own timeout does not fire first), or until the child dies.
    fn request(&mut self, frame: Frame, timeout: Option<Duration>) -> Result<Vec<u8>, Failed> {
        let Some(link) = self.child.as_ref() else {
            return Err(Failed::Down);
        };
        if !link.send(&frame) {
            link.shared.pipe_broke();
            link.wait_dead(Duration::from_secs(2));
            return Err(Failed::Died);
        }
        let incoming = match timeout {
            Some(t) => link
                .replies
                .recv_timeout(t.mul_f64(0.9))
                .map_err(|e| e.is_timeout()),
            None => link.replies.recv().map_err(|_| false),
        };
        if matches!(incoming, Ok(Incoming::Reply(..))) {
            link.took(1);
        }
        match incoming {
            Ok(Incoming::Reply(Status::Ok, data)) => Ok(data),
            Ok(Incoming::Reply(status, data)) => Err(Failed::Cause(cause_of(status, &data))),
            Ok(Incoming::Handled(..)) => {
                // Only events are acknowledged so; none is in flight now.
                link.shared.kill(
                    "it acknowledged events while a lifecycle call waited (a protocol error)"
                        .into(),
                );
                link.wait_dead(Duration::from_secs(2));
                Err(Failed::Died)
            }
            Ok(Incoming::Dead) | Err(false) => Err(Failed::Died),
            Err(true) => {
                let limit = timeout.unwrap_or_default();
                link.shared.kill(format!(
                    "it did not answer within {} (timeout)",
                    human(limit)
                ));
                link.wait_dead(Duration::from_secs(2));
                if let Some(link) = self.child.take() {
                    link.finish(false);
                }
                Err(Failed::Cause(Cause::Timeout(limit)))
            }
        }
    }
}

impl Drop for IsolatedModule {
    fn drop(&mut self) {
        if let Some(link) = self.child.take() {
            link.finish(true);
        }
        let _ = std::fs::remove_file(&self.setup.library);
    }
}
