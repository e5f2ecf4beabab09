//! The child module host: `cargo-orch __module-host NAME LIBRARY GENERATION
//! PARENT_PID COPIES_DIR LOG_LEVEL ... TRANSPORT`. Loads one module library
//! with the same loader, host table and timers as the orchestrator, then
//! serves the parent's requests one at a time on its main thread, which owns
//! the module: from the shared ring on fd 3 (or stdin, with the pipe
//! transport). Replies, publishes and subscriptions go back through the other
//! ring, heartbeat answers, logs and metrics as frames on stdout (moved off
//! fd 1 so a module's `println!` cannot corrupt it). Timers stay local. Dies
//! with its parent (`PR_SET_PDEATHSIG`).

use std::time::Duration;

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Sender, unbounded};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

use super::answer_book::AnswerBook;
use super::protocol::{Frame, Status};
use super::shm::{ChildRings, Doorbell, Producer, Transport, Wake, WriteFailed, write_all};
use crate::bus::{Admission, Bus, BusEvent, Delivered, EventSink, SubscriberId};
use crate::error::Cause;
use crate::host_api::{HostServices, ModuleHostCtx, Uplink};
use crate::loader::{Loader, ModuleInstance};
use crate::timers::TimerService;

mod args;
mod inbox;

use args::Args;
use inbox::Inbox;

/// What the child's main thread works on.
enum Work {
    /// A frame from the parent.
    Request(Frame),
    /// A timer of the module fired.
    Timer(Arc<BusEvent>),
    /// The parent closed the pipe (or it broke).
    ParentGone,
}

/// The frames the child sends, from any thread, and the requests its module
/// still has to answer.
#[derive(Clone)]
struct Link {
    out: Arc<Mutex<BufWriter<File>>>,
    answers: Arc<Mutex<AnswerBook>>,
    /// When the module's thread began its current call (ms since `epoch`,
    /// 0 when idle): what a `Pong` reports.
    busy_since_ms: Arc<AtomicU64>,
    epoch: Instant,
    /// Replies sent so far (each carries its number).
    replies: Arc<AtomicU64>,
    /// The module's own metrics, handed to the parent with a `Pong`.
    counters: Arc<crate::status::ModuleCounters>,
    /// When they were last handed over (ms since `epoch`).
    metrics_sent_ms: Arc<AtomicU64>,
    /// The ring to the orchestrator (shared-memory transport): every frame
    /// but heartbeats, logs and metrics goes there.
    up: Option<Arc<Mutex<UpRing>>>,
    /// The orchestrator's pipe ended.
    parent_gone: Arc<AtomicBool>,
}

/// How long a full ring to the orchestrator may block a send before it
/// fails (the orchestrator always drains it; a stuck one is gone soon).
const UP_STALL: Duration = Duration::from_secs(60);

/// The ring to the orchestrator, and the replies written since it was last
/// woken: replies wake it in batches (every [`REPLY_BATCH`], before this
/// child sleeps, and before a handler once [`REPLY_DELAY`] passed), so a
/// flood costs one wake-up for many events; everything else wakes it at once.
struct UpRing {
    ring: Producer,
    replies: u32,
    signalled: Instant,
}

/// Replies that wake the orchestrator together at most.
const REPLY_BATCH: u32 = 32;
/// The longest a reply waits for its wake-up while this child keeps busy.
const REPLY_DELAY: Duration = Duration::from_millis(1);

impl UpRing {
    fn signal(&mut self) {
        self.ring.signal();
        self.replies = 0;
        self.signalled = Instant::now();
    }
}

/// The module's metrics go to the parent at most this often (with the next
/// `Pong`), however short the heartbeat.
const METRICS_EVERY_MS: u64 = 100;

impl Link {
    fn new(out: File, up: Option<Producer>) -> Self {
        Self {
            up: up.map(|ring| {
                Arc::new(Mutex::new(UpRing {
                    ring,
                    replies: 0,
                    signalled: Instant::now(),
                }))
            }),
            parent_gone: Arc::default(),
            out: Arc::new(Mutex::new(BufWriter::new(out))),
            answers: Arc::default(),
            busy_since_ms: Arc::default(),
            epoch: Instant::now(),
            replies: Arc::default(),
            counters: Arc::default(),
            metrics_sent_ms: Arc::default(),
        }
    }

    /// The number of the next reply: 1 for the first (the load's).
    fn next_reply(&self) -> u64 {
        self.replies.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Notes that the module's thread begins (`true`) or ends a call.
    fn set_busy(&self, busy: bool) {
        let since = if busy { self.now_ms() } else { 0 };
        self.busy_since_ms.store(since, Ordering::Release);
    }

    /// Answers ping `n` from the reader thread: the module's thread may be
    /// busy for good reason (a slow handler), and says for how long. The
    /// module's metrics that changed go first (at most every
    /// [`METRICS_EVERY_MS`]).
    fn pong(&self, n: u64) -> bool {
        let since = self.busy_since_ms.load(Ordering::Acquire);
        let busy_ms = if since == 0 {
            0
        } else {
            self.now_ms().saturating_sub(since)
        };
        let now = self.now_ms();
        let last = self.metrics_sent_ms.load(Ordering::Acquire);
        if now.saturating_sub(last) >= METRICS_EVERY_MS {
            self.metrics_sent_ms.store(now, Ordering::Release);
            let changes = self.counters.custom().take_changes();
            if !changes.is_empty() && !self.send(&Frame::Metrics(changes)) {
                return false;
            }
        }
        self.send(&Frame::Pong { n, busy_ms })
    }

    fn send(&self, frame: &Frame) -> bool {
        if let Some(up) = self.up.as_ref()
            && !frame.is_control()
        {
            let mut up = up.lock().unwrap_or_else(|e| e.into_inner());
            let gone = || self.parent_gone.load(Ordering::Acquire);
            let is_reply = matches!(frame, Frame::Reply { .. });
            let wake = if is_reply { Wake::Later } else { Wake::Now };
            return match write_all(&mut up.ring, &frame.encode(), UP_STALL, &gone, wake) {
                Ok(()) => {
                    if is_reply {
                        up.replies += 1;
                        if up.replies >= REPLY_BATCH {
                            up.signal();
                        }
                    } else {
                        up.replies = 0;
                        up.signalled = Instant::now();
                    }
                    true
                }
                Err(WriteFailed::Stalled) => {
                    eprintln!("the orchestrator stopped reading this child's ring for 60 s");
                    false
                }
                Err(WriteFailed::Closed) => false,
                Err(WriteFailed::Corrupt(e)) => {
                    eprintln!("the orchestrator's ring is broken: {e}");
                    false
                }
            };
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        frame.write_to(&mut *out).is_ok()
    }

    /// Wakes the orchestrator for the replies it was not woken for yet
    /// (before this child sleeps); with `stale_only`, only once they waited
    /// [`REPLY_DELAY`] (before a handler, which may take long).
    fn signal_replies(&self, stale_only: bool) {
        if let Some(up) = self.up.as_ref() {
            let mut up = up.lock().unwrap_or_else(|e| e.into_inner());
            if up.replies > 0 && (!stale_only || up.signalled.elapsed() >= REPLY_DELAY) {
                up.signal();
            }
        }
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, AnswerBook> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flush(&self) {
        self.signal_replies(false);
        let _ = self.out.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }
}

impl Uplink for Link {
    fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), String> {
        self.send(&Frame::Publish {
            topic: topic.into(),
            payload: payload.to_vec(),
        })
        .then_some(())
        .ok_or_else(gone)
    }

    fn subscribe(&self, pattern: &str) -> Result<(), String> {
        self.send(&Frame::Subscribe(pattern.into()))
            .then_some(())
            .ok_or_else(gone)
    }

    fn unsubscribe(&self, pattern: &str) {
        self.send(&Frame::Unsubscribe(pattern.into()));
    }

    fn request(
        &self,
        id: u64,
        topic: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(), String> {
        self.send(&Frame::Request {
            id,
            topic: topic.into(),
            payload: payload.to_vec(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        })
        .then_some(())
        .ok_or_else(gone)
    }

    fn reply(&self, reply_to: &str, id: u64, payload: &[u8]) -> Result<(), String> {
        if !self.answers().take(reply_to, id) {
            return Err(format!(
                "request {id} of '{reply_to}' was already answered or has timed out \
                 (only the first answer to a request counts)"
            ));
        }
        self.send(&Frame::Answer {
            reply_to: reply_to.into(),
            id,
            payload: payload.to_vec(),
        })
        .then_some(())
        .ok_or_else(gone)
    }
}

/// Why a frame to the orchestrator could not be sent.
fn gone() -> String {
    "the orchestrator is gone".into()
}

/// Timer events into the main thread's queue (and a ring of its doorbell,
/// with shared memory).
struct TimerSink(Sender<Work>, Option<Doorbell>);

impl EventSink for TimerSink {
    fn deliver(&self, event: &Arc<BusEvent>, _admission: Admission) -> Delivered {
        // Unbounded, yet bounded by the timers: one tick per timer waits at most.
        match self.0.send(Work::Timer(Arc::clone(event))) {
            Ok(()) => {
                if let Some(doorbell) = &self.1 {
                    doorbell.ring();
                }
                Delivered::Accepted
            }
            Err(_) => Delivered::Gone,
        }
    }
}

/// Forwards every log event of the child to the parent as a `Log` frame.
struct LogForward(Link);

impl<S: tracing::Subscriber> Layer<S> for LogForward {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                if field.name() == "message" {
                    let _ = write!(self.0, "{value:?}");
                } else {
                    let _ = write!(self.0, " {}={value:?}", field.name());
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => 1,
            tracing::Level::WARN => 2,
            tracing::Level::INFO => 3,
            tracing::Level::DEBUG => 4,
            tracing::Level::TRACE => 5,
        };
        self.0.send(&Frame::Log {
            level,
            message: message.0,
        });
    }
}

/// Runs the child host with `args` (the arguments after the mode argument).
pub fn main(args: &[String]) -> ExitCode {
    let Some(args) = Args::parse(args) else {
        eprintln!(
            "usage: cargo-orch {} NAME LIBRARY GENERATION PARENT_PID COPIES_DIR LOG_LEVEL \
             (started by the orchestrator, not by hand)",
            super::HOST_MODE_ARG
        );
        return ExitCode::from(2);
    };
    // Die with the orchestrator, even on SIGKILL; if it is already gone, go now.
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err()
        || nix::unistd::getppid().as_raw() != args.parent
    {
        return ExitCode::from(3);
    }
    let (input, out) = match protocol_pipes() {
        Ok(pipes) => pipes,
        Err(e) => {
            eprintln!("cannot set up the protocol pipes: {e}");
            return ExitCode::from(3);
        }
    };
    let rings = match args.transport {
        Transport::Pipe => None,
        Transport::SharedMemory => match ChildRings::open() {
            Ok(rings) => Some(rings),
            Err(e) => {
                eprintln!("cannot map the shared memory ring on fd 3: {e}");
                return ExitCode::from(3);
            }
        },
    };
    let (down, up) = rings.map_or((None, None), |r| (Some(r.down), Some(r.up)));
    let link = Link::new(out, up);
    let subscriber =
        tracing_subscriber::registry().with(LogForward(link.clone()).with_filter(args.level));
    let _ = tracing::subscriber::set_global_default(subscriber);
    if let Some(bytes) = args.memory_max {
        // Before the module's code is loaded: from here on an allocation past
        // the limit fails ("memory allocation of N bytes failed") and the
        // process aborts, a crash the orchestrator reports and restarts.
        let limited =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_DATA, bytes, bytes);
        if let Err(e) = limited {
            reply_err(
                &link,
                Status::Host,
                &format!("cannot set limits.memory_max ({bytes} bytes, RLIMIT_DATA): {e}"),
            );
            return ExitCode::from(3);
        }
    }
    serve(&args, &link, input, down)
}

/// The folder in `copies_dir` where the child host `pid` keeps its copy of the
/// library (the orchestrator removes it once that child has ended).
pub(super) fn copies_of(copies_dir: &std::path::Path, pid: u32) -> PathBuf {
    copies_dir.join(format!("child-{pid}"))
}

/// The protocol's own copies of fd 0 and fd 1, close-on-exec, so that a
/// process the module starts never holds the protocol pipes (it would keep a
/// crash from being seen, or read the frames); fd 0 then reads /dev/null and
/// fd 1 writes to stderr, so whatever the module prints reaches the log.
fn protocol_pipes() -> std::io::Result<(File, File)> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let keep = |fd: std::os::fd::OwnedFd| -> std::io::Result<File> {
        fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        Ok(File::from(fd))
    };
    let input = keep(nix::unistd::dup(std::io::stdin())?)?;
    let output = keep(nix::unistd::dup(std::io::stdout())?)?;
    nix::unistd::dup2_stdin(File::open("/dev/null")?)?;
    nix::unistd::dup2_stdout(std::io::stderr())?;
    Ok((input, output))
}

fn serve(args: &Args, link: &Link, input: File, down: Option<super::shm::Consumer>) -> ExitCode {
    let (work, queue) = unbounded::<Work>();
    let doorbell = down.as_ref().map(super::shm::Consumer::doorbell);
    let reader_work = work.clone();
    let reader_link = link.clone();
    let reader_doorbell = doorbell.clone();
    let reader = std::thread::Builder::new()
        .name("orch-child-reader".into())
        .spawn(move || {
            let mut input = BufReader::new(input);
            while let Ok(Some(frame)) = Frame::read_from(&mut input) {
                if let Frame::Ping(n) = frame {
                    if !reader_link.pong(n) {
                        return;
                    }
                    continue;
                }
                if reader_work.send(Work::Request(frame)).is_err() {
                    return;
                }
            }
            reader_link.parent_gone.store(true, Ordering::Release);
            let _ = reader_work.send(Work::ParentGone);
            if let Some(doorbell) = reader_doorbell {
                doorbell.ring();
            }
        });
    if reader.is_err() {
        return ExitCode::from(3);
    }
    let timers = TimerService::new();
    let ctx = Arc::new(ModuleHostCtx::new(
        Arc::clone(&args.name),
        SubscriberId(0),
        HostServices::new(Bus::new(), timers.clone()),
        Arc::new(TimerSink(work, doorbell)),
    ));
    ctx.set_uplink(Arc::new(link.clone()));
    ctx.set_counters(Arc::clone(&link.counters));
    ctx.set_active_generation(args.generation);
    // This child serves one generation: its request ids start in a range of
    // their own, so they never repeat an earlier child's still pending ones.
    ctx.set_request_id_base(u64::from(args.generation) << 40);
    ctx.set_shutdown_timeout(args.shutdown_timeout);
    ctx.set_contract(args.contract.clone());
    let loader = match Loader::in_dir(copies_of(&args.copies_dir, std::process::id())) {
        Ok(loader) => loader,
        Err(e) => {
            reply_err(
                link,
                Status::Host,
                &format!("cannot create its copies folder: {e}"),
            );
            return ExitCode::from(3);
        }
    };
    let mut instance =
        match loader.load(&args.name, &args.library, args.generation, Arc::clone(&ctx)) {
            Ok(instance) => instance,
            Err(failure) => {
                reply_err(link, Status::Host, &failure.cause.to_string());
                return ExitCode::from(4);
            }
        };
    let (package, sdk) = instance.declared();
    link.send(&Frame::Reply {
        seq: link.next_reply(),
        status: Status::Ok,
        data: format!("{package}\n{sdk}").into_bytes(),
    });
    let mut inbox = Inbox::new(queue, down, Arc::clone(&link.parent_gone));
    loop {
        let item = inbox.next(&|| link.signal_replies(false));
        link.signal_replies(true);
        link.set_busy(true);
        match item {
            Work::Request(Frame::Exit) | Work::ParentGone => break,
            Work::Request(frame) => handle(frame, &mut instance, &ctx, link),
            Work::Timer(event) => {
                if let Err(cause) = instance.on_event(event.delivery()) {
                    link.send(&Frame::TimerFailed {
                        topic: event.topic().into(),
                        message: cause.to_string(),
                    });
                }
            }
        }
        link.set_busy(false);
    }
    timers.stop();
    drop(instance);
    link.flush();
    ExitCode::SUCCESS
}

fn handle(frame: Frame, instance: &mut ModuleInstance, ctx: &ModuleHostCtx, link: &Link) {
    let outcome = match frame {
        Frame::Initialize { config, state } => {
            ctx.set_may_publish(false);
            instance
                .initialize(&config, state.as_deref())
                .map(|()| Vec::new())
        }
        Frame::Start => {
            ctx.set_may_publish(true);
            instance.start().map(|()| Vec::new())
        }
        Frame::Event(event) => {
            if event.kind == orch_sdk::EventKind::Request {
                link.answers().expect(&event.reply_to, event.request_id);
            }
            // A handled event's reply carries how long the handler took (ns).
            let began = Instant::now();
            instance.on_event(event.delivery()).map(|()| {
                let nanos = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
                nanos.to_le_bytes().to_vec()
            })
        }
        Frame::SaveState => instance.save_state().map(Option::unwrap_or_default),
        Frame::Shutdown => instance.shutdown().map(|()| Vec::new()),
        Frame::Ping(n) => {
            link.pong(n);
            return;
        }
        other => Err(Cause::Host(format!(
            "unexpected frame from the orchestrator: {other:?}"
        ))),
    };
    let frame = match outcome {
        Ok(data) => Frame::Reply {
            seq: link.next_reply(),
            status: Status::Ok,
            data,
        },
        Err(cause) => {
            let status = match cause {
                Cause::Error(_) => Status::Error,
                Cause::Panic(_) => Status::Panic,
                _ => Status::Host,
            };
            let data = match cause {
                Cause::Error(m) | Cause::Panic(m) | Cause::Host(m) => m,
                Cause::Timeout(_) => cause.to_string(),
            };
            Frame::Reply {
                seq: link.next_reply(),
                status,
                data: data.into_bytes(),
            }
        }
    };
    link.send(&frame);
}

fn reply_err(link: &Link, status: Status, message: &str) {
    link.send(&Frame::Reply {
        seq: link.next_reply(),
        status,
        data: message.as_bytes().to_vec(),
    });
}
