//! The program behind the hidden helper modes (`cargo-orch __module-host`,
//! `cargo-orch __group-guard`), and the one long-lived thread that forks
//! children which must die with the orchestrator.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock};

use crossbeam_channel::{Sender, bounded};

/// Overrides the helper program (by default this process's executable, which
/// must be `cargo-orch`): tests and benchmarks that embed the runtime set it.
pub const HOST_PROGRAM_ENV: &str = "ORCH_MODULE_HOST";

/// The first argument that starts the binary as a child module host.
pub const HOST_MODE_ARG: &str = "__module-host";

static HOST_PROGRAM: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Makes `program` (a `cargo-orch` binary) the helper program of this process:
/// for programs that embed the runtime, such as benchmarks.
pub fn set_host_program(program: PathBuf) {
    *HOST_PROGRAM.lock().unwrap_or_else(|e| e.into_inner()) = Some(program);
}

/// The helper program: the one set by [`set_host_program`], else
/// `$ORCH_MODULE_HOST`, else this executable.
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

/// How many spawn requests may wait for the spawner thread.
const SPAWN_QUEUE: usize = 64;

/// Spawns `command` from one long-lived thread. A child that asks the kernel to
/// kill it when its parent dies (`PR_SET_PDEATHSIG`) is tied, on Linux, to the
/// *thread* that forked it: forking from a thread that ends (an actor's thread
/// of one generation) would kill the child with it.
pub fn spawn_from_stable_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = bounded::<SpawnRequest>(SPAWN_QUEUE);
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
