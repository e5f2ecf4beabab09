//! The threads of a child whose events travel through shared memory: the
//! ring reader (replies, publishes, subscriptions, requests, answers, in the
//! order the child wrote them) and the control reader (its pipe: `Pong`,
//! logs and metrics, and the end of file that says it is gone).

use std::io::BufReader;
use std::process::ChildStdout;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use orch_wire::protocol::{Frame, ProtocolError};
use orch_wire::shm::{Consumer, Doorbell, RingReader, as_corrupt};

use super::reader::protocol_error;
use super::{Incoming, ReaderSetup, Shared, bad_frame, child_ended, dispatch, rules::Quotas};

/// Reads the child's frames from its ring until it is gone and the ring is
/// drained (what it wrote before it died still counts), or until it breaks
/// the ring's rules; then reaps it and tells the actor.
pub(super) fn spawn_ring_reader(
    r: ReaderSetup,
    mut up: Consumer,
    shared: Arc<Shared>,
    replies: Sender<Incoming>,
) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("orch-link:{}", r.name))
        .spawn(move || {
            let mut quotas = Quotas::of(&r);
            loop {
                let mut input =
                    RingReader::new(&mut up, || shared.control_closed.load(Ordering::Acquire));
                match Frame::read_from(&mut input) {
                    Ok(Some(frame)) if frame.is_control() => {
                        let why = format!(
                            "it sent a {} frame into its shared ring, where heartbeats, logs \
                             and metrics never go",
                            frame.kind_name()
                        );
                        let _ = protocol_error(&r, &shared, &why);
                        break;
                    }
                    Ok(Some(frame)) => {
                        if dispatch(&r, &shared, &replies, &mut quotas, frame).is_break() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let why = match &e {
                            ProtocolError::Io(io) => as_corrupt(io)
                                .map(|c| format!("it corrupted its shared memory ring ({c})")),
                            _ => None,
                        }
                        .unwrap_or_else(|| format!("it sent a bad frame ({e})"));
                        tracing::error!(
                            "module '{}': {why}: a protocol error; it is stopped",
                            r.name
                        );
                        shared.kill(why);
                        break;
                    }
                }
            }
            child_ended(&r, &shared, &replies);
        })
        .ok()
}

/// Reads the child's control pipe: heartbeat answers, logs and metrics. Any
/// other frame there is a protocol error (data travels through the ring). At
/// its end the ring reader and a writer waiting for space are woken.
pub(super) fn spawn_control_reader(
    r: ReaderSetup,
    stdout: ChildStdout,
    shared: Arc<Shared>,
    replies: Sender<Incoming>,
    wake: [Doorbell; 2],
) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("orch-pipe:{}", r.name))
        .spawn(move || {
            let mut input = BufReader::new(stdout);
            let mut quotas = Quotas::of(&r);
            loop {
                match Frame::read_from(&mut input) {
                    Ok(Some(frame)) if frame.is_control() => {
                        if dispatch(&r, &shared, &replies, &mut quotas, frame).is_break() {
                            break;
                        }
                    }
                    Ok(Some(other)) => {
                        let why = format!(
                            "it sent a {} frame on its control pipe, where only heartbeats, \
                             logs and metrics go",
                            other.kind_name()
                        );
                        tracing::error!("module '{}': {why}; it is stopped", r.name);
                        shared.kill(why);
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        bad_frame(&r, &shared, &e);
                        break;
                    }
                }
            }
            shared.control_closed.store(true, Ordering::Release);
            let [up, down] = wake;
            up.ring();
            down.ring_producer();
        })
        .ok()
}
