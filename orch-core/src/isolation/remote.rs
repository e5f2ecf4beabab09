//! The orchestrator's side of an isolated module: a [`RemoteModule`] stands in
//! the module's actor where a loaded library would, and turns each lifecycle
//! call into a request frame to the child host, bounded by the same timeouts,
//! and each event into an event frame (up to [`WINDOW`] in flight, each kept
//! until acknowledged). A reader thread forwards the child's publishes and subscriptions to
//! the real bus (which owns every subscription), its logs to the host's log, and
//! notices its death (end of stream, then `waitpid` for the reason). A heartbeat
//! thread kills a child whose module thread stops answering. After a crash the
//! actor's own thread restarts the child under the module's policy, so events
//! published meanwhile wait in the mailbox; the event being handled when it
//! crashed is lost for that module only.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, BufWriter};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use orch_sdk::duration::human;
use serde_json::json;
use tracing::level_filters::LevelFilter;

use super::protocol::{Frame, Status};
use super::supervise::{Decision, ExitKind, RestartTracker};
use super::{HOST_MODE_ARG, describe_exit, host_program, spawn};
use crate::actor::{ActorState, Envelope};
use crate::bus::Bus;
use crate::config::{RestartPolicy, Supervision, Timeouts};
use crate::error::{Cause, ModuleFailure, Phase};
use crate::host_api::ModuleHostCtx;
use crate::instance::Instance;

/// What a [`RemoteModule`] needs to start and restart its child host.
pub struct RemoteSetup {
    /// The module's name.
    pub name: Arc<str>,
    /// Its context on the orchestrator's bus (subscriber id, generation gate).
    pub ctx: Arc<ModuleHostCtx>,
    /// The orchestrator's bus.
    pub bus: Bus,
    /// This generation's copy of the library (removed when the module is dropped).
    pub library: PathBuf,
    /// Where the child keeps its own copies.
    pub copies_dir: PathBuf,
    /// The generation.
    pub generation: u32,
    /// Restart policy and heartbeat.
    pub supervision: Supervision,
    /// Phase timeouts.
    pub timeouts: Timeouts,
    /// The module's mailbox: a child's death wakes the actor through it.
    pub mailbox: Sender<Envelope>,
    /// Set when the orchestrator shuts down: no restart begins after that.
    pub stopping: Arc<AtomicBool>,
}

/// What the reader thread hands to the module's actor.
enum Incoming {
    Reply(Status, Vec<u8>),
    Dead,
}

/// State shared with a child's threads.
struct Shared {
    process: Mutex<Child>,
    exit: Mutex<Option<(String, ExitKind)>>,
    killed_for: Mutex<Option<String>>,
    /// A write to the child failed: it is dead or dying. Named in the reason only
    /// if it was our kill that ended it, not when it died of its own fault.
    pipe_broke: AtomicBool,
    last_words: Mutex<Option<String>>,
    epoch: Instant,
    last_pong_ms: AtomicU64,
}

impl Shared {
    fn kill(&self, reason: String) {
        let mut killed_for = self.killed_for.lock().unwrap_or_else(|e| e.into_inner());
        if killed_for.is_none() {
            *killed_for = Some(reason);
        }
        drop(killed_for);
        // std's kill never signals a reaped (possibly reused) pid.
        let _ = self
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .kill();
    }

    /// A write to the child failed: make sure it is gone, and let its exit
    /// status tell why.
    fn pipe_broke(&self) {
        self.pipe_broke.store(true, Ordering::SeqCst);
        let _ = self
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .kill();
    }

    fn since_epoch_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One running child host.
struct ChildLink {
    pid: u32,
    input: Arc<Mutex<BufWriter<ChildStdin>>>,
    replies: Receiver<Incoming>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    stop_heartbeat: Option<Sender<()>>,
}

impl ChildLink {
    fn send(&self, frame: &Frame) -> bool {
        let mut input = self.input.lock().unwrap_or_else(|e| e.into_inner());
        frame.write_to(&mut *input).is_ok()
    }

    /// Ends it (if it still runs) and its threads, and says why it ended: the
    /// reason it was killed for, or its exit status, with its notable last words
    /// on stderr (a panic or runtime message), read to the end first.
    fn end(self) -> (String, ExitKind) {
        let shared = Arc::clone(&self.shared);
        self.finish(false);
        Self::reason(&shared)
    }

    fn reason(shared: &Shared) -> (String, ExitKind) {
        let (status, kind) = shared
            .exit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| ("ended".into(), ExitKind::Failure));
        let killed_for = shared
            .killed_for
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let last_words = shared
            .last_words
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut reason = match killed_for {
            Some(why) => format!("{why}; {status}"),
            None if shared.pipe_broke.load(Ordering::SeqCst) && status.contains("SIGKILL") => {
                format!("its input pipe broke; {status}")
            }
            None => status,
        };
        if let Some(words) = last_words {
            reason.push_str(&format!(": {words}"));
        }
        let kind = if killed_for_any(shared) {
            ExitKind::Failure
        } else {
            kind
        };
        (reason, kind)
    }

    /// Waits (bounded) until the reader has seen the end and reaped the child.
    fn wait_dead(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .replies
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Incoming::Dead) | Err(RecvTimeoutError::Disconnected) => return true,
                Ok(Incoming::Reply(..)) => {}
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    /// Ends the child (asking first when `polite`) and its threads.
    fn finish(mut self, polite: bool) {
        let dead = polite && self.send(&Frame::Exit) && self.wait_dead(Duration::from_secs(2));
        let reaped = self
            .shared
            .exit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if !dead && !reaped {
            self.shared.kill("stopped by the orchestrator".into());
            self.wait_dead(Duration::from_secs(2));
        }
        drop(self.stop_heartbeat.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn killed_for_any(shared: &Shared) -> bool {
    shared
        .killed_for
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some()
}

/// Why a request got no reply.
enum Failed {
    Cause(Cause),
    Died,
    Down,
}

/// An isolated module generation: its child host process and its supervision.
pub struct RemoteModule {
    setup: RemoteSetup,
    child: Option<ChildLink>,
    tracker: RestartTracker,
    declared: (String, String),
    last_init: Option<(Vec<u8>, Option<Vec<u8>>)>,
    started: bool,
    down: bool,
    restarts: u32,
    inflight: VecDeque<(String, Vec<u8>)>,
}

/// Events sent to a child before the first is acknowledged, at most.
pub const WINDOW: usize = 64;

fn cause_of(status: Status, data: &[u8]) -> Cause {
    let message = String::from_utf8_lossy(data).into_owned();
    match status {
        Status::Error => Cause::Error(message),
        Status::Panic => Cause::Panic(message),
        _ => Cause::Host(message),
    }
}

impl RemoteModule {
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
            inflight: VecDeque::new(),
        };
        match module.spawn_child() {
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
    pub fn shutdown(&mut self) -> Result<(), Cause> {
        self.started = false;
        if self.down {
            return Ok(());
        }
        let timeout = self.setup.timeouts.shutdown;
        self.lifecycle(Frame::Shutdown, timeout).map(drop)
    }

    /// `Module::on_event` in the child. A crash while handling it is reported,
    /// the child restarted per policy, and the event lost for this module only.
    ///
    /// Up to [`WINDOW`] events are in flight: each is kept until the child
    /// acknowledges it, errors are reported with their own topic, and after a
    /// crash the unacknowledged events but the first (the one it was handling)
    /// are delivered again to the restarted child, in order.
    pub fn on_event(&mut self, topic: &str, payload: &[u8]) -> Result<(), Cause> {
        if !self.absorb() {
            return Ok(());
        }
        let Some(link) = self.child.as_ref() else {
            return Ok(());
        };
        let frame = Frame::Event {
            topic: topic.into(),
            payload: payload.to_vec(),
        };
        let sent = link.send(&frame);
        if let Frame::Event { topic, payload } = frame {
            self.inflight.push_back((topic, payload));
        }
        if !sent {
            link.shared.pipe_broke();
        }
        self.drain(if sent { WINDOW - 1 } else { 0 });
        Ok(())
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
                Ok(Incoming::Dead) | Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.recover();
                    return false;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => return true,
            }
        }
    }

    /// Waits for acknowledgements until at most `keep` events are in flight;
    /// `false` if the child died meanwhile (and was recovered from).
    fn drain(&mut self, keep: usize) -> bool {
        while self.inflight.len() > keep {
            let Some(link) = self.child.as_ref() else {
                return false;
            };
            match link.replies.recv() {
                Ok(Incoming::Reply(status, data)) => self.acknowledge(status, &data),
                Ok(Incoming::Dead) | Err(_) => {
                    self.recover();
                    return false;
                }
            }
        }
        true
    }

    /// The oldest event in flight was handled; reports its failure if any.
    fn acknowledge(&mut self, status: Status, data: &[u8]) {
        let Some((topic, _)) = self.inflight.pop_front() else {
            return;
        };
        if status != Status::Ok {
            let cause = cause_of(status, data);
            crate::actor::report_event_failure(&self.setup.name, &topic, &cause, &self.setup.bus);
        }
    }

    /// A lifecycle call, after the events in flight: a death during the call is
    /// that call's failure (no restart here).
    fn lifecycle(&mut self, frame: Frame, timeout: Duration) -> Result<Vec<u8>, Cause> {
        self.drain(0);
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
        match incoming {
            Ok(Incoming::Reply(Status::Ok, data)) => Ok(data),
            Ok(Incoming::Reply(status, data)) => Err(Failed::Cause(cause_of(status, &data))),
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

    /// Reports the crash and restarts the child as the policy says, or gives up.
    fn recover(&mut self) {
        let Some(link) = self.child.take() else {
            return;
        };
        let (reason, mut kind) = link.end();
        let name = Arc::clone(&self.setup.name);
        let lost = self
            .inflight
            .pop_front()
            .map(|(topic, _)| format!("; the '{topic}' event it was handling is lost for it"))
            .unwrap_or_default();
        let replay: Vec<(String, Vec<u8>)> = self.inflight.drain(..).collect();
        tracing::error!("[CRASH] module '{name}' (isolated) {reason}{lost}");
        self.setup.bus.publish_json(
            "module.crashed",
            &json!({ "name": &*name, "reason": reason, "generation": self.setup.generation }),
        );
        let policy = self.setup.supervision;
        loop {
            match self.tracker.on_exit(kind, Instant::now()) {
                Decision::Restart(delay) => {
                    tracing::warn!(
                        "[RESTART] module '{name}' restarts in {} ({} of at most {} restarts within {})",
                        human(delay),
                        self.tracker.recent(),
                        policy.max_restarts,
                        human(policy.restart_window)
                    );
                    if !self.back_off(delay) {
                        self.down = true;
                        tracing::warn!(
                            "module '{name}' is not restarted: the orchestrator is shutting down"
                        );
                        return;
                    }
                    match self.respawn() {
                        Ok(()) => {
                            self.restarts += 1;
                            tracing::info!(
                                "[RESTART] module '{name}' is running again (pid {}, restart {})",
                                self.pid().unwrap_or_default(),
                                self.restarts
                            );
                            self.setup.bus.publish_json(
                                "module.restarted",
                                &json!({ "name": &*name, "restarts": self.restarts }),
                            );
                            for (topic, payload) in replay {
                                let _ = self.on_event(&topic, &payload);
                            }
                            return;
                        }
                        Err(cause) => {
                            tracing::error!("[RESTART] module '{name}' failed to restart: {cause}");
                            kind = ExitKind::Failure;
                        }
                    }
                }
                Decision::GiveUp => {
                    self.down = true;
                    self.setup.ctx.drop_subscriptions_and_timers();
                    let why = if policy.restart == RestartPolicy::Never {
                        "restart: never".to_owned()
                    } else {
                        format!(
                            "more than {} restarts within {}",
                            policy.max_restarts,
                            human(policy.restart_window)
                        )
                    };
                    tracing::error!(
                        "[FAILED] module '{name}' stays down ({why}); the other modules go on"
                    );
                    self.setup.bus.publish_json(
                        "module.failed",
                        &json!({ "name": &*name, "reason": reason, "restarts": self.restarts }),
                    );
                    return;
                }
                Decision::StayDown => {
                    self.down = true;
                    self.setup.ctx.drop_subscriptions_and_timers();
                    tracing::warn!(
                        "module '{name}' exited cleanly and is not restarted (restart: {})",
                        if policy.restart == RestartPolicy::Never {
                            "never"
                        } else {
                            "on-failure"
                        }
                    );
                    return;
                }
            }
        }
    }

    /// Sleeps `delay`; `false` as soon as the orchestrator begins shutting down.
    fn back_off(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        while !self.setup.stopping.load(Ordering::Acquire) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
        false
    }

    /// A new child for the same generation, initialized with the last config and
    /// state and started if the module was.
    fn respawn(&mut self) -> Result<(), Cause> {
        let (link, declared) = self.spawn_child()?;
        self.child = Some(link);
        self.declared = declared;
        let step = |this: &mut Self, frame, timeout| match this.request(frame, Some(timeout)) {
            Ok(_) => Ok(()),
            Err(Failed::Cause(cause)) => {
                if let Some(link) = this.child.take() {
                    link.finish(false);
                }
                Err(cause)
            }
            Err(_) => {
                let reason = this.child.take().map(|link| link.end().0);
                Err(Cause::Host(format!(
                    "its child host process died: {}",
                    reason.unwrap_or_default()
                )))
            }
        };
        if let Some((config, state)) = self.last_init.clone() {
            let timeout = self.setup.timeouts.initialize;
            step(self, Frame::Initialize { config, state }, timeout)?;
        }
        if self.started {
            let timeout = self.setup.timeouts.start;
            step(self, Frame::Start, timeout)?;
        }
        Ok(())
    }

    /// Starts a child host process and waits for its load reply.
    fn spawn_child(&self) -> Result<(ChildLink, (String, String)), Cause> {
        let s = &self.setup;
        let program = host_program()
            .map_err(|e| Cause::Host(format!("cannot find the child host program: {e}")))?;
        let mut command = Command::new(&program);
        command
            .arg(HOST_MODE_ARG)
            .arg(&*s.name)
            .arg(&s.library)
            .arg(s.generation.to_string())
            .arg(std::process::id().to_string())
            .arg(&s.copies_dir)
            .arg(LevelFilter::current().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C on the terminal reaches the
            // orchestrator, which shuts the module down in order; the child dies
            // with the orchestrator anyway (PR_SET_PDEATHSIG).
            .process_group(0);
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
        let shared = Arc::new(Shared {
            process: Mutex::new(child),
            exit: Mutex::new(None),
            killed_for: Mutex::new(None),
            pipe_broke: AtomicBool::new(false),
            last_words: Mutex::new(None),
            epoch: Instant::now(),
            last_pong_ms: AtomicU64::new(0),
        });
        let (replies_tx, replies) = unbounded();
        let mut threads = Vec::new();
        let stderr_thread = spawn_stderr_reader(Arc::clone(&s.name), stderr, Arc::clone(&shared));
        threads.extend(stderr_thread);
        let reader = spawn_reader(self.reader_setup(), stdout, Arc::clone(&shared), replies_tx);
        threads.extend(reader);
        let mut link = ChildLink {
            pid,
            input: Arc::new(Mutex::new(BufWriter::new(stdin))),
            replies,
            shared,
            threads,
            stop_heartbeat: None,
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
        let (stop, stopped) = bounded::<()>(0);
        link.stop_heartbeat = Some(stop);
        let heartbeat = spawn_heartbeat(
            &s.name,
            Arc::clone(&link.input),
            Arc::clone(&link.shared),
            s.supervision.heartbeat,
            stopped,
        );
        link.threads.extend(heartbeat);
        Ok((link, declared))
    }

    fn reader_setup(&self) -> ReaderSetup {
        ReaderSetup {
            name: Arc::clone(&self.setup.name),
            ctx: Arc::clone(&self.setup.ctx),
            bus: self.setup.bus.clone(),
            generation: self.setup.generation,
            mailbox: self.setup.mailbox.clone(),
        }
    }
}

impl Drop for RemoteModule {
    fn drop(&mut self) {
        if let Some(link) = self.child.take() {
            link.finish(true);
        }
        let _ = std::fs::remove_file(&self.setup.library);
    }
}

/// What the reader thread needs.
struct ReaderSetup {
    name: Arc<str>,
    ctx: Arc<ModuleHostCtx>,
    bus: Bus,
    generation: u32,
    mailbox: Sender<Envelope>,
}

/// Reads the child's frames until it ends; then reaps it and tells the actor.
fn spawn_reader(
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
            loop {
                match Frame::read_from(&mut input) {
                    Ok(Some(frame)) => dispatch(&r, &shared, &replies, frame),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(
                            "module '{}': bad frame from its child host ({e}); it is stopped",
                            r.name
                        );
                        shared.kill(format!("it sent a bad frame ({e})"));
                        break;
                    }
                }
            }
            let exit = reap(&shared);
            *shared.exit.lock().unwrap_or_else(|e| e.into_inner()) = Some(exit);
            let _ = replies.send(Incoming::Dead);
            let _ = r
                .mailbox
                .send(Envelope::Call(Box::new(|state: &mut ActorState| {
                    if let Some(Instance::Remote(remote)) = state.instance.as_mut() {
                        remote.poll_child();
                    }
                })));
        })
        .ok()
}

fn dispatch(r: &ReaderSetup, shared: &Shared, replies: &Sender<Incoming>, frame: Frame) {
    let active = r.ctx.active_generation() == r.generation;
    match frame {
        Frame::Reply { status, data } => {
            let _ = replies.send(Incoming::Reply(status, data));
        }
        Frame::Publish { topic, payload } if active => {
            if let Err(e) = r.bus.publish(&topic, &payload, Some(Arc::clone(&r.name))) {
                tracing::warn!("module '{}' published on '{topic}': {e}", r.name);
            }
        }
        Frame::Subscribe(pattern) if active => {
            if let Err(e) = r.ctx.subscribe(&pattern) {
                tracing::warn!("module '{}' cannot subscribe to '{pattern}': {e}", r.name);
            }
        }
        Frame::Unsubscribe(pattern) if active => {
            r.ctx.unsubscribe(&pattern);
        }
        Frame::Log { level, message } => log(&r.name, level, &message),
        Frame::Pong(_) => shared
            .last_pong_ms
            .store(shared.since_epoch_ms(), Ordering::Release),
        Frame::TimerFailed { topic, message } => {
            crate::actor::report_event_failure(&r.name, &topic, &Cause::Host(message), &r.bus)
        }
        _ => {}
    }
}

/// Logs a line of the child, tagged with the module's name (module logs are
/// tagged already by the child's host table).
fn log(name: &str, level: u8, message: &str) {
    let tagged = message.starts_with(&format!("[{name}]"));
    let text = if tagged {
        message.to_owned()
    } else {
        format!("[{name}] {message}")
    };
    match level {
        1 => tracing::error!(target: "module", "{text}"),
        2 => tracing::warn!(target: "module", "{text}"),
        3 => tracing::info!(target: "module", "{text}"),
        4 => tracing::debug!(target: "module", "{text}"),
        _ => tracing::trace!(target: "module", "{text}"),
    }
}

/// Waits for the ended child's status (killing it if it lingers).
fn reap(shared: &Shared) -> (String, ExitKind) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = shared
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_wait();
        match status {
            Ok(Some(status)) => return describe_exit(status),
            Ok(None) if Instant::now() >= deadline => {
                shared.kill("it closed its pipe but did not exit".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return (format!("cannot tell how it ended: {e}"), ExitKind::Failure),
        }
    }
}

/// Logs the child's stderr (what the module prints, runtime messages), tagged,
/// and keeps its last notable line for the crash report.
fn spawn_stderr_reader(
    name: Arc<str>,
    stderr: std::process::ChildStderr,
    shared: Arc<Shared>,
) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("orch-stderr:{name}"))
        .spawn(move || {
            let mut best = 0;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                tracing::warn!(target: "module", "[{name}] {line}");
                // The most telling line wins: a panic or a stack overflow over
                // the runtime's generic "fatal runtime error".
                let rank = if line.contains("panicked at") || line.contains("overflowed its stack")
                {
                    2
                } else if line.contains("fatal runtime error") {
                    1
                } else {
                    0
                };
                if rank > best {
                    best = rank;
                    *shared.last_words.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(line.trim().to_owned());
                }
            }
        })
        .ok()
}

/// Pings the child; kills it when no answer came within `limit`.
fn spawn_heartbeat(
    name: &str,
    input: Arc<Mutex<BufWriter<ChildStdin>>>,
    shared: Arc<Shared>,
    limit: Duration,
    stopped: Receiver<()>,
) -> Option<JoinHandle<()>> {
    let tick = (limit / 5).clamp(Duration::from_millis(20), Duration::from_secs(1));
    shared
        .last_pong_ms
        .store(shared.since_epoch_ms(), Ordering::Release);
    std::thread::Builder::new()
        .name(format!("orch-heartbeat:{name}"))
        .spawn(move || {
            let mut n = 0u64;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                if shared
                    .exit
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_some()
                {
                    return;
                }
                let silent = Duration::from_millis(
                    shared
                        .since_epoch_ms()
                        .saturating_sub(shared.last_pong_ms.load(Ordering::Acquire)),
                );
                if silent > limit {
                    shared.kill(format!(
                        "answered no heartbeat for {} (heartbeat: {}; a handler may loop forever)",
                        human(silent),
                        human(limit)
                    ));
                    return;
                }
                n += 1;
                let mut input = input.lock().unwrap_or_else(|e| e.into_inner());
                if Frame::Ping(n).write_to(&mut *input).is_err() {
                    return;
                }
            }
        })
        .ok()
}
