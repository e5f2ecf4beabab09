//! `isolation: process`: a module runs in a child host process (the same
//! `cargo-orch` binary in a hidden mode) connected to the orchestrator by framed
//! pipes carrying the bus's own bytes. A crash there is detected, reported as
//! `module.crashed` and followed by a restart under an OTP-like policy.
//!
//! - [`protocol`]: the frames and their length-prefixed encoding;
//! - [`child`]: the child host's main loop;
//! - [`RemoteModule`]: the orchestrator's side, driven by the module's actor;
//! - [`supervise`]: the restart policy, back-off and intensity;
//! - [`guard`]: kills a build's process group when the orchestrator dies.

pub mod child;
pub mod guard;
pub mod protocol;
mod remote;
pub mod supervise;

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, OnceLock};

use crossbeam_channel::{Sender, bounded, unbounded};

pub use remote::{RemoteModule, RemoteSetup};
use supervise::ExitKind;

/// The first argument that starts the binary as a child module host.
pub const HOST_MODE_ARG: &str = "__module-host";

/// Overrides the child host program (by default this process's executable, which
/// must be `cargo-orch`): tests and benchmarks that embed orch-core set it.
pub const HOST_PROGRAM_ENV: &str = "ORCH_MODULE_HOST";

static HOST_PROGRAM: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Makes `program` (a `cargo-orch` binary) the child module host of this
/// process: for programs that embed orch-core, such as benchmarks.
pub fn set_host_program(program: PathBuf) {
    *HOST_PROGRAM.lock().unwrap_or_else(|e| e.into_inner()) = Some(program);
}

/// The program started as a child module host: the one set by
/// [`set_host_program`], else `$ORCH_MODULE_HOST`, else this executable.
pub fn host_program() -> io::Result<PathBuf> {
    if let Some(program) = HOST_PROGRAM
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        return Ok(program);
    }
    match std::env::var_os(HOST_PROGRAM_ENV) {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => std::env::current_exe(),
    }
}

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Spawns `command` from one long-lived thread. A child host asks the kernel to
/// kill it when its parent dies (`PR_SET_PDEATHSIG`), and on Linux "parent"
/// means the thread that forked it: forking from a thread that ends (an actor's
/// thread of one generation) would kill the child with it.
fn spawn(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = unbounded::<SpawnRequest>();
        let started = std::thread::Builder::new()
            .name("orch-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(e) = started {
            tracing::error!("cannot start the child host spawner thread: {e}");
        }
        Mutex::new(tx)
    });
    let (reply, result) = bounded(1);
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply))
        .map_err(|_| io::Error::other("the child host spawner thread is gone"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("the child host spawner thread is gone"))?
}

/// How a child host ended, in words, and whether that counts as a failure.
pub fn describe_exit(status: ExitStatus) -> (String, ExitKind) {
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = status.signal() {
        let name = nix::sys::signal::Signal::try_from(signal)
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|_| format!("signal {signal}"));
        let what = match name.as_str() {
            "SIGSEGV" => " (segmentation fault)",
            "SIGABRT" => " (abort)",
            "SIGKILL" => " (killed)",
            "SIGBUS" => " (bus error)",
            "SIGILL" => " (illegal instruction)",
            "SIGFPE" => " (arithmetic fault)",
            _ => "",
        };
        return (format!("killed by {name}{what}"), ExitKind::Failure);
    }
    match status.code() {
        Some(0) => ("exited with code 0".into(), ExitKind::Clean),
        Some(code) => (format!("exited with code {code}"), ExitKind::Failure),
        None => ("ended for an unknown reason".into(), ExitKind::Failure),
    }
}
