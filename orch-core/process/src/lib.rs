//! # orch-process: the one process layer of cargo-orch
//!
//! Every part that runs a process (the module builder, `cargo orch test`, the
//! isolation spawner) goes through this crate:
//!
//! - [`group`]: spawn a command as the leader of its own process group, kill
//!   the whole group, and [`ProcessGroups`], the set of running groups of one
//!   job that a Ctrl-C or a cancel ends at once;
//! - [`Deadline`]: kills a group that runs past its time;
//! - [`GroupGuard`]: a tiny guard process (`cargo-orch __group-guard PGID`) that
//!   kills a group when the orchestrator itself dies, SIGKILL included;
//! - [`ExitReason`]: how a process ended, typed (code or signal);
//! - [`console`]: the process's own stdout and stderr routed through a
//!   filter (the secret scrubber);
//! - [`host`]: which program hosts the hidden helper modes, and the long-lived
//!   thread that forks children that must die with the orchestrator;
//! - [`child_env`]: the few variables a child host keeps (not the
//!   orchestrator's secrets);
//! - [`clock`]: the machine's monotonic clock in nanoseconds (benchmarks).
//!
//! It depends on nothing of cargo-orch: the runtime may use it without
//! knowing cargo, and the cargo side without knowing the runtime.
//!
//! cargo-orch runs on Linux only (`PR_SET_PDEATHSIG` here, `memfd_create`
//! and futexes in the runtime, `/proc` throughout). Every crate that runs
//! the host depends on this one, so on another system the build stops here
//! with an error that says why.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "cargo-orch runs on Linux only: it needs PR_SET_PDEATHSIG, memfd_create, futexes \
     and /proc. Build and run it on Linux (a VM or a container will do); a module \
     crate alone (orch-sdk) builds anywhere."
);

pub mod child_env;
pub mod clock;
pub mod console;
mod deadline;
mod exit;
pub mod group;
mod guard;
pub mod host;

pub use deadline::Deadline;
pub use exit::ExitReason;
pub use group::{ProcessGroups, kill_group};
pub use guard::{GUARD_MODE_ARG, GroupGuard, guard_main};
