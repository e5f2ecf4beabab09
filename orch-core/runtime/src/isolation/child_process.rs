//! One running child host and the threads that serve it: the writer (frames
//! to the child, see [`super::writer`]), the reader (the child's frames:
//! replies to the actor, publishes and subscriptions to the bus, logs to the
//! host's log, and its death), the stderr reader (its last words for the crash
//! report) and the heartbeat (kills a child whose module thread stops
//! answering).

use std::cell::Cell;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use nix::sys::signal::Signal;
use orch_process::ExitReason;
use orch_process::host::{host_program, spawn_from_stable_thread as spawn};
use orch_wire::protocol::{EventRef, Frame, Status};
use orch_wire::shm::{self, HostRings, Producer, Transport, Wake, WriteFailed, write_all};
use tracing::level_filters::LevelFilter;

use super::HOST_MODE_ARG;
use super::setup::RemoteSetup;
use super::supervise::ExitKind;
use super::transport::transport;
use crate::error::Cause;
use writer::FrameWriter;

mod ending;
mod heartbeat;
mod metrics;
mod outbound;
mod reader;
mod rings;
mod rules;
mod stderr;
mod writer;

use heartbeat::spawn_heartbeat;
use orch_process::child_env::child_environment;
use outbound::Outbound;
use reader::{ReaderSetup, bad_frame, child_ended, dispatch, spawn_reader};
use rings::{spawn_control_reader, spawn_ring_reader};
use stderr::spawn_stderr_reader;

/// What the reader thread hands to the module's actor.
pub(super) enum Incoming {
    Reply(Status, Vec<u8>),
    /// A run of events handled without error: how many, and the handlers'
    /// time together in nanoseconds (a `Handled` frame).
    Handled(u32, u64),
    Dead,
}

/// State shared with a child's threads.
pub(super) struct Shared {
    process: Mutex<Child>,
    /// How the child ended, once the reader thread has reaped it.
    exit: Mutex<Option<ExitReason>>,
    killed_for: Mutex<Option<String>>,
    /// A write to the child failed: it is dead or dying. Named in the reason only
    /// if it was our kill that ended it, not when it died of its own fault.
    pipe_broke: AtomicBool,
    last_words: Mutex<Option<String>>,
    epoch: Instant,
    last_pong_ms: AtomicU64,
    /// How long the module's thread had been in its current call at the last
    /// `Pong`.
    busy_ms: AtomicU64,
    /// Frames sent that expect a reply (the load counts as the first).
    requests_sent: AtomicU64,
    /// Replies received.
    replies_seen: AtomicU64,
    /// Since when (ms since `epoch`) the child owes a reply it has not sent:
    /// set when a request goes out to a child that owed none, and at each
    /// reply. Measured here, whatever the child says of itself in its `Pong`.
    owing_since_ms: AtomicU64,
    /// Its control pipe ended (shared-memory transport): it is gone once
    /// its ring is drained.
    control_closed: AtomicBool,
    /// It was sent `Start`: until then its publishes, requests and answers
    /// are refused, as an in-process module's are before start.
    started: AtomicBool,
}

impl Shared {
    /// The state of the just started `child`, whose load is its first request.
    pub(super) fn new(child: Child) -> Self {
        Self {
            process: Mutex::new(child),
            exit: Mutex::new(None),
            killed_for: Mutex::new(None),
            pipe_broke: AtomicBool::new(false),
            last_words: Mutex::new(None),
            epoch: Instant::now(),
            last_pong_ms: AtomicU64::new(0),
            busy_ms: AtomicU64::new(0),
            requests_sent: AtomicU64::new(1),
            replies_seen: AtomicU64::new(0),
            owing_since_ms: AtomicU64::new(0),
            control_closed: AtomicBool::new(false),
            started: AtomicBool::new(false),
        }
    }

    /// The child's process id (also its process group's).
    pub(super) fn pid(&self) -> u32 {
        self.process.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// Why the orchestrator killed it, if it did.
    pub(super) fn killed_for(&self) -> Option<String> {
        self.killed_for
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits (bounded) for the child's exit status, for tests.
    #[cfg(test)]
    pub(super) fn wait_exit(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut process = self.process.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(Some(status)) = process.try_wait() {
                return Some(status);
            }
            drop(process);
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub(super) fn kill(&self, reason: String) {
        let mut killed_for = self.killed_for.lock().unwrap_or_else(|e| e.into_inner());
        if killed_for.is_none() {
            *killed_for = Some(reason);
        }
        drop(killed_for);
        self.kill_group();
    }

    /// Kills the child and every process it started (its process group, which
    /// the child leads), so no helper of the module outlives it.
    fn kill_group(&self) {
        let mut process = self.process.lock().unwrap_or_else(|e| e.into_inner());
        orch_process::group::signal_group(process.id(), Signal::SIGKILL);
        // std's kill never signals a reaped (possibly reused) pid.
        let _ = process.kill();
    }

    /// A write to the child failed: make sure it is gone, and let its exit
    /// status tell why.
    pub(super) fn pipe_broke(&self) {
        self.pipe_broke.store(true, Ordering::SeqCst);
        self.kill_group();
    }

    /// Starts the clock of what the child owes anew (a reply came, or a
    /// request went out to a child that owed nothing).
    fn replied_now(&self) {
        self.owing_since_ms
            .store(self.since_epoch_ms(), Ordering::Release);
    }

    /// How long the child has owed a reply without sending any, if it owes one.
    fn owing_for(&self) -> Option<Duration> {
        let sent = self.requests_sent.load(Ordering::Acquire);
        let seen = self.replies_seen.load(Ordering::Acquire);
        (sent > seen).then(|| {
            Duration::from_millis(
                self.since_epoch_ms()
                    .saturating_sub(self.owing_since_ms.load(Ordering::Acquire)),
            )
        })
    }

    fn since_epoch_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Events written to a child without a wake-up, at most: it is woken for
/// them together.
const EVENT_BATCH: u64 = 32;

/// The orchestrator's end of the ring to a child.
struct DownRing {
    /// The ring, and the frame written last (its allocation reused).
    ring: Mutex<(Producer, Vec<u8>)>,
    /// How long it may stay full before the child counts as frozen.
    stall: Duration,
    /// Frames written since the child was last woken.
    unsignalled: AtomicU64,
}

/// One running child host.
pub(super) struct ChildProcess {
    pub(super) pid: u32,
    /// The module's name, for errors.
    name: Arc<str>,
    /// `None` once the link is ending. With shared memory it carries only
    /// heartbeat pings.
    writer: Option<FrameWriter>,
    /// The ring to the child (shared-memory transport).
    down: Option<DownRing>,
    /// The child's own copies folder, removed when it has ended.
    copies: PathBuf,
    /// Its `limits.memory_max`, named when an allocation failed.
    memory_max: Option<u64>,
    pub(super) replies: Receiver<Incoming>,
    /// Replies the actor took from `replies` (the load's included), in the
    /// child's numbering: where its note of what it handled picks up after
    /// a death (see [`ChildProcess::end_after_crash`]).
    taken: Cell<u64>,
    pub(super) shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    stop_heartbeat: Option<Sender<()>>,
}

impl ChildProcess {
    /// Starts a child host process for `s` and waits for its load reply: the
    /// package and SDK version the module declares.
    pub(super) fn spawn(s: &RemoteSetup) -> Result<(Self, (String, String)), Cause> {
        let program = host_program()
            .map_err(|e| Cause::Host(format!("cannot find the child host program: {e}")))?;
        let contract = s.ctx.contract();
        let rings = match transport() {
            Transport::Pipe => None,
            Transport::SharedMemory => match HostRings::create(&s.name, s.generation) {
                Ok(rings) => Some(rings),
                Err(e) => {
                    tracing::warn!(
                        "module '{}': no shared memory for its child host ({e}); its events \
                         travel through pipes",
                        s.name
                    );
                    None
                }
            },
        };
        let transport = if rings.is_some() {
            Transport::SharedMemory
        } else {
            Transport::Pipe
        };
        let mut command = Command::new(&program);
        command
            .arg(HOST_MODE_ARG)
            .arg(&*s.name)
            .arg(&s.library)
            .arg(s.generation.to_string())
            .arg(std::process::id().to_string())
            .arg(&s.copies_dir)
            .arg(LevelFilter::current().to_string())
            .arg(s.timeouts.shutdown.as_millis().to_string())
            .arg(serde_json::to_string(&contract.publishes).unwrap_or_default())
            .arg(serde_json::to_string(&contract.subscribes).unwrap_or_default())
            .arg(
                s.ctx
                    .limits()
                    .memory_max
                    .map_or_else(|| "none".to_owned(), |bytes| bytes.to_string()),
            )
            .arg(transport.arg())
            // The in-flight window: the child answers in runs of at most a
            // quarter of it.
            .arg(super::in_flight::window_for(s.mailbox.capacity()).to_string())
            .env_clear()
            .envs(child_environment())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C on the terminal reaches the
            // orchestrator, which shuts the module down in order; the child dies
            // with the orchestrator anyway (PR_SET_PDEATHSIG).
            .process_group(0);
        if let Some(rings) = &rings {
            shm::hand_to_child(&mut command, &rings.fd);
        }
        let mut child = spawn(command).map_err(|e| {
            Cause::Host(format!(
                "cannot start the child host {}: {e}",
                program.display()
            ))
        })?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err(Cause::Host("the child host has no pipes".into()));
        };
        let shared = Arc::new(Shared::new(child));
        let (replies_tx, replies) = unbounded();
        let mut threads = Vec::new();
        let log_rate = s.ctx.limits().log_rate;
        let stderr_thread =
            spawn_stderr_reader(Arc::clone(&s.name), stderr, Arc::clone(&shared), log_rate);
        threads.extend(stderr_thread);
        let mut down = None;
        if let Some(HostRings { down: ring, up, fd }) = rings {
            // The child has its own copy now; our mapping stays.
            drop(fd);
            let wake = [up.doorbell(), ring.doorbell()];
            let reader = spawn_ring_reader(
                ReaderSetup::of(s),
                up,
                Arc::clone(&shared),
                replies_tx.clone(),
            );
            threads.extend(reader);
            let control = spawn_control_reader(
                ReaderSetup::of(s),
                stdout,
                Arc::clone(&shared),
                replies_tx,
                wake,
            );
            threads.extend(control);
            down = Some(DownRing {
                ring: Mutex::new((ring, Vec::new())),
                stall: s.supervision.heartbeat,
                unsignalled: AtomicU64::new(0),
            });
        } else {
            let reader = spawn_reader(ReaderSetup::of(s), stdout, Arc::clone(&shared), replies_tx);
            threads.extend(reader);
        }
        let (writer, pinger, writer_thread) =
            FrameWriter::spawn(&s.name, stdin, Arc::clone(&shared), s.supervision.heartbeat);
        threads.extend(writer_thread);
        let mut link = Self {
            pid,
            name: Arc::clone(&s.name),
            writer: Some(writer),
            down,
            copies: super::child_copies_dir(&s.copies_dir, pid),
            memory_max: s.ctx.limits().memory_max,
            replies,
            shared,
            threads,
            stop_heartbeat: None,
            taken: Cell::new(1),
        };
        let loaded = link.replies.recv_timeout(s.timeouts.load.mul_f64(0.9));
        let declared = match loaded {
            Ok(Incoming::Reply(Status::Ok, data)) => {
                let text = String::from_utf8_lossy(&data).into_owned();
                let (package, sdk) = text.split_once('\n').unwrap_or((&text, ""));
                (package.to_owned(), sdk.to_owned())
            }
            Ok(Incoming::Reply(_, data)) => {
                link.finish(false);
                return Err(Cause::Host(String::from_utf8_lossy(&data).into_owned()));
            }
            Ok(Incoming::Handled(..)) => {
                link.finish(false);
                return Err(Cause::Host(
                    "its child host answered the load as if it were events (a protocol \
                     error)"
                        .into(),
                ));
            }
            Ok(Incoming::Dead) | Err(RecvTimeoutError::Disconnected) => {
                let (reason, _) = link.end();
                return Err(Cause::Host(format!(
                    "its child host process died while loading: {reason}"
                )));
            }
            Err(RecvTimeoutError::Timeout) => {
                link.finish(false);
                return Err(Cause::Timeout(s.timeouts.load));
            }
        };
        s.ctx.set_child_pid(pid);
        let (stop, stopped) = bounded::<()>(0);
        link.stop_heartbeat = Some(stop);
        let heartbeat = spawn_heartbeat(
            &s.name,
            pinger,
            Arc::clone(&link.shared),
            s.supervision.heartbeat,
            s.ctx.limits().max_processes,
            stopped,
        );
        link.threads.extend(heartbeat);
        Ok((link, declared))
    }

    /// Queues `frame` for the child; `false` if the child's input is broken or
    /// it stopped reading (then it is being killed).
    pub(super) fn send(&self, frame: &Frame) -> bool {
        self.send_waking(frame, Wake::Now)
    }

    /// Wakes the child for the frames written without a wake-up.
    pub(super) fn wake(&self) {
        if let Some(down) = &self.down {
            let mut ring = down.ring.lock().unwrap_or_else(|e| e.into_inner());
            ring.0.signal();
            down.unsignalled.store(0, Ordering::Relaxed);
        }
    }

    /// Queues `event` for the child, encoded from its borrowed bytes; with
    /// `Wake::Later` through shared memory the child is only woken by a later
    /// [`ChildProcess::wake`] (or once [`EVENT_BATCH`] frames waited, or when
    /// the ring is full). `false` as for [`ChildProcess::send`].
    pub(super) fn send_event(&self, event: &EventRef<'_>, wake: Wake) -> bool {
        self.send_waking(Outbound::Event(event), wake)
    }

    fn send_waking<'a>(&self, frame: impl Into<Outbound<'a>>, wake: Wake) -> bool {
        let frame = frame.into();
        let Some(writer) = self.writer.as_ref() else {
            return false;
        };
        if frame.expects_reply() {
            // Counted before it is written: its reply may come at once.
            let sent = self.shared.requests_sent.fetch_add(1, Ordering::AcqRel);
            if sent == self.shared.replies_seen.load(Ordering::Acquire) {
                self.shared.replied_now();
            }
        }
        if matches!(frame, Outbound::Frame(Frame::Start)) {
            // Before it is written: it may publish from its start() at once.
            self.shared.started.store(true, Ordering::Release);
        }
        match &self.down {
            Some(down) => self.send_through_ring(down, frame, wake),
            None => writer.send(frame.encode()).is_ok(),
        }
    }

    /// Writes `frame` into the child's ring, waiting while it reads; a ring
    /// from which it takes no whole frame for `stall` (full, or freed a byte
    /// at a time) means it stopped reading (killed for it).
    fn send_through_ring(&self, down: &DownRing, frame: Outbound<'_>, wake: Wake) -> bool {
        let stall = down.stall;
        let mut guard = down.ring.lock().unwrap_or_else(|e| e.into_inner());
        let (ring, encoded) = &mut *guard;
        let closed = || self.shared.control_closed.load(Ordering::Acquire);
        let wake = match wake {
            Wake::Later if down.unsignalled.fetch_add(1, Ordering::Relaxed) + 1 >= EVENT_BATCH => {
                Wake::Now
            }
            wake => wake,
        };
        if wake == Wake::Now {
            down.unsignalled.store(0, Ordering::Relaxed);
        }
        frame.encode_into(encoded);
        let written = write_all(ring, encoded, stall, &closed, wake);
        orch_wire::protocol::keep_small(encoded);
        match written {
            Ok(()) => true,
            Err(WriteFailed::Closed) => false,
            Err(WriteFailed::Stalled) => {
                self.shared.kill(format!(
                    "stopped reading its input: its shared ring stayed full for {} \
                     (it took no whole frame from it: the process is frozen, stuck, or \
                     frees the ring a byte at a time)",
                    orch_sdk::duration::human(stall)
                ));
                false
            }
            Err(WriteFailed::Corrupt(e)) => {
                tracing::error!(
                    "module '{}': it corrupted its shared memory ring ({e}): a protocol \
                     error; it is stopped",
                    self.name
                );
                self.shared
                    .kill(format!("it corrupted its shared memory ring ({e})"));
                false
            }
        }
    }

    /// The actor took `count` more replies (or events acknowledged in a run).
    pub(super) fn took(&self, count: u64) {
        self.taken.set(self.taken.get() + count);
    }
}

#[cfg(test)]
mod tests;
