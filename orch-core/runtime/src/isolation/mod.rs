//! `isolation: process`, the orchestrator's side: a module runs in a child
//! host process (the same `cargo-orch` binary in a hidden mode, served by the
//! `orch-child` crate) connected to the orchestrator by a shared-memory ring
//! each way carrying the bus's own bytes in frames, and by pipes for
//! heartbeats, logs and metrics (or everything, with the pipe transport). A
//! crash there is detected, reported as `module.crashed` and followed by a
//! restart under an OTP-like policy. The frames and the rings are the
//! `orch-wire` crate's.
//!
//! - [`IsolatedModule`]: the orchestrator's side, driven by the module's actor
//!   (`isolated_module/restart.rs`: its restart loop);
//! - `child_process`: one running child host and its reader, stderr and
//!   heartbeat threads;
//! - `in_flight`: the events sent and not yet acknowledged (replay after a crash);
//! - `event_frame`: the bus's deliveries as the wire's event frames and back;
//! - `transport`: shared memory or pipes for the next child;
//! - `supervise`: the restart policy, back-off and intensity;

mod child_process;
mod event_frame;
mod in_flight;
mod isolated_module;
mod lines;
mod setup;
mod supervise;
mod transport;

use std::path::{Path, PathBuf};

pub use orch_process::host::{HOST_MODE_ARG, HOST_PROGRAM_ENV, host_program, set_host_program};
pub use orch_wire::shm::Transport;

pub use isolated_module::IsolatedModule;
pub use setup::RemoteSetup;
pub use transport::{set_transport, transport};

/// The folder in `copies_dir` where the child host `pid` keeps its copy of
/// the library (the orchestrator removes it once that child has ended).
pub fn child_copies_dir(copies_dir: &Path, pid: u32) -> PathBuf {
    copies_dir.join(format!("child-{pid}"))
}
