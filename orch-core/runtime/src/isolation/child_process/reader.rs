//! The pipe transport's reader thread, and what every reader of a child's
//! frames shares: dispatching a frame (replies to the actor, publishes and
//! subscriptions to the bus, logs, heartbeat answers, metrics), naming a bad
//! frame, and reaping the child once its stream ended.

use std::io::BufReader;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use nix::sys::signal::Signal;
use orch_process::ExitReason;
use orch_wire::protocol::Frame;

use super::rules::{Admit, Quotas, timer_failure};
use super::{Incoming, Shared, metrics};
use crate::bus::Bus;
use crate::error::Cause;
use crate::host_api::ModuleHostCtx;
use crate::isolation::setup::RemoteSetup;
use crate::requests::ReplyRefused;

impl ReaderSetup {
    pub(super) fn of(s: &RemoteSetup) -> Self {
        Self {
            name: Arc::clone(&s.name),
            ctx: Arc::clone(&s.ctx),
            bus: s.bus.clone(),
            generation: s.generation,
            child_ended: Arc::clone(&s.child_ended),
            metric_frames: metrics::FrameLimit::default(),
        }
    }
}

/// What the reader thread needs.
pub(super) struct ReaderSetup {
    pub(super) name: Arc<str>,
    pub(super) ctx: Arc<ModuleHostCtx>,
    pub(super) bus: Bus,
    pub(super) generation: u32,
    /// Wakes the module's owner to poll the child once its stream ended.
    pub(super) child_ended: Arc<dyn Fn() + Send + Sync>,
    pub(super) metric_frames: metrics::FrameLimit,
}

/// Reads the child's frames until it ends; then reaps it and tells the actor.
pub(super) fn spawn_reader(
    r: ReaderSetup,
    stdout: std::process::ChildStdout,
    shared: Arc<Shared>,
    replies: Sender<Incoming>,
) -> Option<JoinHandle<()>> {
    let thread_name = format!("orch-link:{}", r.name);
    std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            let mut input = BufReader::new(stdout);
            let mut quotas = Quotas::of(&r);
            loop {
                match Frame::read_from(&mut input) {
                    Ok(Some(frame)) => {
                        if dispatch(&r, &shared, &replies, &mut quotas, frame).is_break() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        bad_frame(&r, &shared, &e);
                        break;
                    }
                }
            }
            child_ended(&r, &shared, &replies);
        })
        .ok()
}

/// The child sent a frame that does not decode: a protocol error.
pub(super) fn bad_frame(r: &ReaderSetup, shared: &Shared, e: &orch_wire::protocol::ProtocolError) {
    tracing::error!(
        "module '{}': bad frame from its child host ({e}); it is stopped",
        r.name
    );
    shared.kill(format!("it sent a bad frame ({e})"));
}

/// The child's stream ended: reaps it, kills what it left in its group and
/// tells the actor.
pub(super) fn child_ended(r: &ReaderSetup, shared: &Shared, replies: &Sender<Incoming>) {
    {
        let exit = reap(shared);
        // Helpers the module started stay in the child's process group:
        // they go with it (the group outlives its reaped leader while they
        // run, so its id is not anyone else's).
        let pid = shared
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .id();
        orch_process::group::signal_group(pid, Signal::SIGKILL);
        *shared.exit.lock().unwrap_or_else(|e| e.into_inner()) = Some(exit);
        let _ = replies.send(Incoming::Dead);
        (r.child_ended)();
    }
}

/// The child broke the protocol (`why`): it is killed, and its reader stops.
pub(super) fn protocol_error(r: &ReaderSetup, shared: &Shared, why: &str) -> ControlFlow<()> {
    tracing::error!(
        "module '{}': {why}: a protocol error; it is stopped",
        r.name
    );
    shared.kill(why.to_owned());
    ControlFlow::Break(())
}

/// Serves one frame of the child under the rules of `rules.rs`; `Break`
/// once it broke the protocol (it is being killed: read no further).
pub(super) fn dispatch(
    r: &ReaderSetup,
    shared: &Shared,
    replies: &Sender<Incoming>,
    quotas: &mut Quotas,
    frame: Frame,
) -> ControlFlow<()> {
    let active = r.ctx.active_generation() == r.generation;
    match quotas.admit(r, &frame, active) {
        Admit::Take => {}
        Admit::Drop => {
            if let Frame::Request {
                id,
                topic,
                timeout_ms,
                ..
            } = &frame
                && active
            {
                // Its module believes the request sent: it is told at once.
                let why = quotas.request_refusal(r);
                let timeout = Duration::from_millis(*timeout_ms);
                r.ctx.refuse_request_of_child(*id, topic, timeout, &why);
            }
            return ControlFlow::Continue(());
        }
        Admit::Kill(why) => return protocol_error(r, shared, &why),
    }
    let started = shared.started.load(Ordering::Acquire);
    match frame {
        Frame::Reply { seq, status, data } => {
            let expected = shared.replies_seen.fetch_add(1, Ordering::AcqRel) + 1;
            let sent = shared.requests_sent.load(Ordering::Acquire);
            if seq != expected || seq > sent {
                return protocol_error(
                    r,
                    shared,
                    &format!(
                        "it sent an unsolicited or out-of-order reply (#{seq}, expected \
                         #{expected}, {sent} requests sent)"
                    ),
                );
            }
            shared.replied_now();
            let _ = replies.send(Incoming::Reply(status, data));
        }
        Frame::Handled {
            first,
            count,
            nanos,
        } => {
            let expected = shared.replies_seen.load(Ordering::Acquire) + 1;
            let sent = shared.requests_sent.load(Ordering::Acquire);
            let last = u64::from(count)
                .checked_sub(1)
                .and_then(|more| first.checked_add(more));
            if first != expected || last.is_none_or(|last| last > sent) {
                return protocol_error(
                    r,
                    shared,
                    &format!(
                        "it acknowledged events it was not sent or out of order ({count} from \
                         #{first}, expected #{expected}, {sent} requests sent)"
                    ),
                );
            }
            shared
                .replies_seen
                .fetch_add(u64::from(count), Ordering::AcqRel);
            shared.replied_now();
            let _ = replies.send(Incoming::Handled(count, nanos));
        }
        Frame::Publish { topic, payload } => {
            // The child checked it too; a child that lies is refused here,
            // by the rule an in-process publish meets.
            if let Err(e) = r
                .ctx
                .publish_of_child(r.generation, started, &topic, &payload)
            {
                quotas.warn(
                    r,
                    &format!("module '{}' published on '{topic}': {e}", r.name),
                );
            }
        }
        Frame::Subscribe(pattern) => {
            if let Err(e) = r.ctx.subscribe(&pattern) {
                let text = format!("module '{}' cannot subscribe to '{pattern}': {e}", r.name);
                quotas.warn(r, &text);
            }
        }
        Frame::Unsubscribe(pattern) => r.ctx.unsubscribe(&pattern),
        Frame::Request {
            id,
            topic,
            payload,
            timeout_ms,
        } => {
            let timeout = Duration::from_millis(timeout_ms);
            let asked = (id, topic.as_str());
            if let Err(e) = r
                .ctx
                .request_of_child(r.generation, started, asked, &payload, timeout)
            {
                quotas.warn(
                    r,
                    &format!("module '{}' cannot request '{topic}': {e}", r.name),
                );
                // Its module believes the request sent: it is told at once.
                r.ctx.refuse_request_of_child(id, &topic, timeout, &e);
            }
        }
        Frame::Answer {
            reply_to,
            id,
            payload,
        } => {
            match r
                .ctx
                .reply_of_child(r.generation, started, &reply_to, id, &payload)
            {
                Ok(()) => {}
                // A lie: its host only lets it answer what it was handed.
                Err(ReplyRefused::Forbidden(e)) => quotas.warn(r, &e),
                // Late answers happen to honest children too (the request
                // timed out here meanwhile): an in-process module is told
                // by an error nobody logs.
                Err(ReplyRefused::Other(e)) => tracing::debug!(
                    "module '{}' cannot answer: {}",
                    r.name,
                    crate::log_limit::escape_and_cap(&e, crate::log_limit::MAX_LINE)
                ),
            }
        }
        Frame::Log { level, message } => {
            // The child tags its module's lines already: keep them as they are.
            let text = message
                .strip_prefix(&format!("[{}] ", r.name))
                .unwrap_or(&message);
            r.ctx.log(u32::from(level), text);
        }
        Frame::Pong { busy_ms, .. } => {
            shared.busy_ms.store(busy_ms, Ordering::Release);
            shared
                .last_pong_ms
                .store(shared.since_epoch_ms(), Ordering::Release);
        }
        Frame::TimerFailed { topic, message } => match timer_failure(&topic, &message) {
            Ok(message) => {
                let cause = Cause::Host(message);
                crate::event_failure::report(&r.name, &topic, &cause, &r.bus);
            }
            Err(why) => return protocol_error(r, shared, &why),
        },
        Frame::Metrics(samples) => r.apply_metrics(&samples),
        // Refused above.
        Frame::Initialize { .. }
        | Frame::Start
        | Frame::Event(_)
        | Frame::SaveState
        | Frame::Shutdown
        | Frame::Exit
        | Frame::Ping(_) => {}
    }
    ControlFlow::Continue(())
}

/// Waits for the ended child's status (killing it if it lingers).
fn reap(shared: &Shared) -> ExitReason {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = shared
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_wait();
        match status {
            Ok(Some(status)) => return ExitReason::from_status(status),
            Ok(None) if Instant::now() >= deadline => {
                shared.kill("it closed its pipe but did not exit".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                tracing::warn!("cannot tell how a child host ended: {e}");
                return ExitReason::Unknown;
            }
        }
    }
}
