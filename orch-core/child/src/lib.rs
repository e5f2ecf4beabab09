//! # orch-child: the child module host
//!
//! `cargo-orch __module-host NAME LIBRARY GENERATION PARENT_PID COPIES_DIR
//! LOG_LEVEL ... TRANSPORT` (the binary dispatches its hidden mode to
//! [`main`]). Loads one module library with the same loader, host table and
//! timers as the orchestrator (`orch-runtime`), then serves the parent's
//! requests one at a time on its main thread, which owns the module: from the
//! shared ring on fd 3 (or stdin, with the pipe transport). Replies, publishes
//! and subscriptions go back through the other ring, heartbeat answers, logs
//! and metrics as frames on stdout (moved off fd 1 so a module's `println!`
//! cannot corrupt it). Timers stay local. Dies with its parent
//! (`PR_SET_PDEATHSIG`). The frames and rings are `orch-wire`'s.
//!
//! - `args`: the command line, as the orchestrator writes it;
//! - `pipes`: the protocol's pipes, kept out of the module's reach;
//! - `outgoing`: every frame the child sends;
//! - `unanswered`: the requests its module still has to answer;
//! - `inbox`: where the main thread takes its next piece of work;
//! - `timer_sink`, `log_forward`: the module's timers and the child's logs.

mod args;
mod inbox;
mod log_forward;
mod outgoing;
mod pipes;
mod timer_sink;
mod unanswered;
mod up_ring;

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::unbounded;
use orch_runtime::Cause;
use orch_runtime::bus::{Bus, BusEvent, Delivery, SubscriberId};
use orch_runtime::host_api::{HostServices, ModuleHostCtx};
use orch_runtime::isolation::{HOST_MODE_ARG, child_copies_dir};
use orch_runtime::loader::{Loader, ModuleInstance};
use orch_runtime::timers::TimerService;
use orch_wire::protocol::{EventRef, Frame, Status};
use orch_wire::shm::{ChildRings, Consumer, Transport};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

use args::Args;
use inbox::{Inbox, Next};
use log_forward::LogForward;
use outgoing::Outgoing;
use pipes::protocol_pipes;
use timer_sink::TimerSink;

/// What the child's main thread works on.
enum Work {
    /// A frame from the parent.
    Request(Frame),
    /// A timer of the module fired.
    Timer(Arc<BusEvent>),
    /// The parent closed the pipe (or it broke).
    ParentGone,
}

/// Describe mode (`--describe LIBRARY`): prints the library's topic types
/// document (nothing for a module that types nothing) and exits; the
/// orchestrator reads it (see `orch_runtime::typing::read`).
fn describe(library: &std::path::Path) -> ExitCode {
    use std::io::Write as _;
    // Die with the orchestrator, even on SIGKILL.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    // The document goes to a private copy of stdout; whatever the library
    // prints (its initializers, a logger) goes to stderr instead.
    let Ok(document_out) = nix::unistd::dup(std::io::stdout()) else {
        return ExitCode::from(1);
    };
    if nix::unistd::dup2_stdout(std::io::stderr()).is_err() {
        return ExitCode::from(1);
    }
    let mut out = std::fs::File::from(document_out);
    match orch_runtime::typing::describe::in_this_process(library) {
        Ok(document) => {
            let written = out
                .write_all(&document.unwrap_or_else(|| b"{\"version\":1}".to_vec()))
                .and_then(|()| out.flush());
            if written.is_err() {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}

/// Runs the child host with `args` (the arguments after the mode argument).
pub fn main(args: &[String]) -> ExitCode {
    if let [mode, library] = args
        && mode == orch_runtime::typing::read::DESCRIBE_ARG
    {
        return describe(std::path::Path::new(library));
    }
    let Some(args) = Args::parse(args) else {
        eprintln!(
            "usage: cargo-orch {} NAME LIBRARY GENERATION PARENT_PID COPIES_DIR LOG_LEVEL \
             (started by the orchestrator, not by hand)",
            HOST_MODE_ARG
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
    let link = Outgoing::new(out, up, args.window);
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

fn serve(args: &Args, link: &Outgoing, input: File, down: Option<Consumer>) -> ExitCode {
    let (work, queue) = unbounded::<Work>();
    let doorbell = down.as_ref().map(Consumer::doorbell);
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
    let loader = match Loader::in_dir(child_copies_dir(&args.copies_dir, std::process::id())) {
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
    // When the last handler ended, if the next work followed at once.
    let mut handler_ended = None;
    loop {
        let mut waited = false;
        let item = inbox.next(&|| link.signal_replies(), &mut waited);
        // One clock read for the wake-up's pacing, the heartbeat's view and
        // the handler's time; none while events follow one another: a
        // handler begins where the last ended (the hand-over between them
        // counted with it, as the orchestrator's own handler clock does).
        let began = match handler_ended.take() {
            Some(ended) if !waited => ended,
            _ => Instant::now(),
        };
        link.signal_stale_replies(began);
        link.busy_from(began);
        let work = match item {
            Next::Event(event) => {
                handler_ended = handle_event(event, &mut instance, link, began);
                link.idle();
                continue;
            }
            Next::Work(work) => work,
        };
        match work {
            Work::Request(Frame::Exit) | Work::ParentGone => break,
            Work::Request(frame) => handle(frame, &mut instance, &ctx, link, began),
            Work::Timer(event) => {
                if let Err(cause) = instance.on_event(event.delivery()) {
                    link.send(&Frame::TimerFailed {
                        topic: event.topic().into(),
                        message: cause.to_string(),
                    });
                }
            }
        }
        link.idle();
    }
    timers.stop();
    drop(instance);
    link.flush();
    ExitCode::SUCCESS
}

/// Runs one request of the orchestrator, which began at `began`.
fn handle(
    frame: Frame,
    instance: &mut ModuleInstance,
    ctx: &ModuleHostCtx,
    link: &Outgoing,
    began: Instant,
) {
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
            let _ = handle_event(EventRef::from(&event), instance, link, began);
            return;
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
        Err(cause) => failure_reply(link.next_reply(), cause),
    };
    link.send(&frame);
}

/// Runs the module's handler on `event`, which began at `began`, and
/// answers: handled, with how long it took, in a run of such answers (see
/// `UpRing`), or its failure. When it was handled: the time it ended.
fn handle_event(
    event: EventRef<'_>,
    instance: &mut ModuleInstance,
    link: &Outgoing,
    began: Instant,
) -> Option<Instant> {
    if event.kind == orch_sdk::EventKind::Request {
        link.answers().expect(event.reply_to, event.request_id);
    }
    match instance.on_event(Delivery::from(event)) {
        Ok(()) => {
            let ended = Instant::now();
            let nanos = u64::try_from(ended.saturating_duration_since(began).as_nanos())
                .unwrap_or(u64::MAX);
            link.handled(nanos);
            Some(ended)
        }
        Err(cause) => {
            link.send(&failure_reply(link.next_reply(), cause));
            None
        }
    }
}

/// The reply `seq` for a request that failed with `cause`.
fn failure_reply(seq: u64, cause: Cause) -> Frame {
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
        seq,
        status,
        data: data.into_bytes(),
    }
}

fn reply_err(link: &Outgoing, status: Status, message: &str) {
    link.send(&Frame::Reply {
        seq: link.next_reply(),
        status,
        data: message.as_bytes().to_vec(),
    });
}
