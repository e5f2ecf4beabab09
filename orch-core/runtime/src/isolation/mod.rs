//! `isolation: process`: a module runs in a child host process (the same
//! `cargo-orch` binary in a hidden mode) connected to the orchestrator by a
//! shared-memory ring each way carrying the bus's own bytes in frames, and by
//! pipes for heartbeats, logs and metrics (or everything, with the pipe
//! transport). A crash there is detected, reported as
//! `module.crashed` and followed by a restart under an OTP-like policy.
//!
//! - [`protocol`]: the frames and their length-prefixed encoding;
//! - [`child`]: the child host's main loop;
//! - [`RemoteModule`]: the orchestrator's side, driven by the module's actor
//!   (`remote/restart.rs`: its restart loop);
//! - `link`: one running child host and its reader, stderr and heartbeat threads;
//! - `window`: the in-flight window (acknowledged events, replay after a crash);
//! - `shm`: the shared-memory rings that carry events and replies;
//! - [`supervise`]: the restart policy, back-off and intensity;

mod answer_book;
pub mod child;
mod lines;
mod link;
mod protocol;
mod remote;
mod setup;
mod shm;
mod supervise;
mod window;

pub use orch_process::host::{HOST_PROGRAM_ENV, host_program, set_host_program};

pub use remote::RemoteModule;
pub use setup::RemoteSetup;
pub use shm::{Transport, set_transport, transport};

/// The first argument that starts the binary as a child module host.
pub const HOST_MODE_ARG: &str = "__module-host";
