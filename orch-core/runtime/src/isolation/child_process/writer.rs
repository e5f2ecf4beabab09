//! Writes frames to a child host from a thread of its own, so a child that
//! stops reading its input can never block the module's actor or the
//! heartbeat: frames wait in a bounded queue, a full queue waits at most a
//! deadline (then the child is killed as frozen), and heartbeat pings go
//! ahead of queued events without ever waiting.

use std::io::{BufWriter, Write};
use std::process::ChildStdin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError, bounded, select};
use orch_sdk::duration::human;
use orch_wire::protocol::Frame;

use super::Shared;
use crate::isolation::in_flight::MAX_IN_FLIGHT;

/// Frames queued for the child, at most: the actor's in-flight window and its
/// lifecycle requests and answers fit with room to spare.
const QUEUE: usize = 2 * MAX_IN_FLIGHT;

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// The writer ended: the child's input broke.
    Closed,
    /// The queue stayed full for the whole deadline: the child stopped reading
    /// (it was killed for it).
    Frozen,
}

/// The actor's sending side.
pub(super) struct FrameWriter {
    frames: Sender<Vec<u8>>,
    /// How long a full queue may block the actor before the child counts as
    /// frozen.
    deadline: Duration,
    shared: Arc<Shared>,
}

impl FrameWriter {
    /// Starts the writer thread for `input`; it ends once the [`FrameWriter`]
    /// and the [`Pinger`] are dropped and the queue is written, or when the
    /// pipe broke.
    pub(super) fn spawn(
        name: &str,
        input: ChildStdin,
        shared: Arc<Shared>,
        deadline: Duration,
    ) -> (Self, Pinger, Option<JoinHandle<()>>) {
        let (frames, queued) = bounded(QUEUE);
        let (pings, pinged) = bounded(1);
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("orch-writer:{name}"))
                .spawn(move || write_until_closed(BufWriter::new(input), &queued, &pinged, &shared))
                .ok()
        };
        let writer = Self {
            frames,
            deadline,
            shared,
        };
        (writer, Pinger(pings), thread)
    }

    /// Queues a frame's `bytes` (length prefix included); waits at most the
    /// deadline when the queue is full, then kills the child as one that
    /// stopped reading.
    pub(super) fn send(&self, bytes: Vec<u8>) -> Result<(), Refused> {
        match self.frames.send_timeout(bytes, self.deadline) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Disconnected(_)) => Err(Refused::Closed),
            Err(SendTimeoutError::Timeout(_)) => {
                self.shared.kill(format!(
                    "stopped reading its input: {QUEUE} frames waited for {} \
                     (the process is frozen or stuck)",
                    human(self.deadline)
                ));
                Err(Refused::Frozen)
            }
        }
    }
}

/// The heartbeat's sending side.
pub(super) struct Pinger(Sender<Vec<u8>>);

impl Pinger {
    /// Queues a heartbeat ping ahead of the events, never waiting: a ping still
    /// unsent is as good as a new one.
    pub(super) fn ping(&self, n: u64) -> Result<(), Refused> {
        match self.0.try_send(Frame::Ping(n).encode()) {
            Ok(()) | Err(TrySendError::Full(_)) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err(Refused::Closed),
        }
    }
}

/// The writer thread: pings first, then frames in order, each batch flushed
/// once; a broken pipe ends it and lets the child's exit status tell why.
fn write_until_closed(
    mut output: BufWriter<ChildStdin>,
    queued: &Receiver<Vec<u8>>,
    pinged: &Receiver<Vec<u8>>,
    shared: &Shared,
) {
    let mut pings_open = true;
    loop {
        let bytes = match pinged.try_recv() {
            Ok(ping) => ping,
            Err(_) if pings_open => select! {
                recv(pinged) -> ping => match ping {
                    Ok(ping) => ping,
                    Err(_) => {
                        pings_open = false;
                        continue;
                    }
                },
                recv(queued) -> frame => match frame {
                    Ok(frame) => frame,
                    Err(_) => break,
                },
            },
            Err(_) => match queued.recv() {
                Ok(frame) => frame,
                Err(_) => break,
            },
        };
        let mut written = output.write_all(&bytes);
        // What else is waiting goes out in the same flush.
        while written.is_ok()
            && let Ok(more) = pinged.try_recv().or_else(|_| queued.try_recv())
        {
            written = output.write_all(&more);
        }
        if written.and_then(|()| output.flush()).is_err() {
            shared.pipe_broke();
            return;
        }
    }
    // The link is ending and everything queued (a polite `Exit` among it) is
    // written: the child reads its end of stream.
    let _ = output.flush();
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use super::*;
    use orch_wire::protocol::EventFrame;

    /// A real process that never reads its input: the actor's sends block at
    /// most the deadline, and the child is killed as frozen.
    #[test]
    fn a_child_that_stops_reading_is_killed_within_the_deadline() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("sleep runs");
        let stdin = child.stdin.take().expect("piped");
        let shared = Arc::new(Shared::new(child));
        let deadline = Duration::from_millis(200);
        let (writer, pinger, thread) =
            FrameWriter::spawn("frozen", stdin, Arc::clone(&shared), deadline);
        let event = Frame::Event(EventFrame {
            topic: "t".into(),
            payload: vec![b'7'; 64 * 1024],
            id: 1,
            source: String::new(),
            published_at_ms: 0,
            delivery_count: 1,
            kind: orch_sdk::EventKind::Publish,
            request_id: 0,
            reply_to: String::new(),
        });
        let started = Instant::now();
        let mut sent = 0;
        let refused = loop {
            match writer.send(event.encode()) {
                Ok(()) => sent += 1,
                Err(refused) => break refused,
            }
            assert!(sent < 10_000, "the queue is unbounded");
        };
        assert_eq!(refused, Refused::Frozen);
        assert!(started.elapsed() < Duration::from_secs(10));
        // The pipe holds a few frames, the queue the rest.
        assert!(sent <= QUEUE + 4, "{sent} frames accepted");
        // A ping never waits: queued, or refused at once when the writer
        // already ended with its killed child.
        let ping = pinger.ping(1);
        assert!(matches!(ping, Ok(()) | Err(Refused::Closed)), "{ping:?}");
        let killed = shared.killed_for().expect("killed");
        assert!(killed.contains("stopped reading its input"), "{killed}");
        let status = shared.wait_exit(Duration::from_secs(5)).expect("it ended");
        assert!(!status.success());
        drop((writer, pinger));
        let thread = thread.expect("writer thread");
        let until = Instant::now() + Duration::from_secs(5);
        while !thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            thread.is_finished(),
            "the writer ends once its child is gone"
        );
    }
}
