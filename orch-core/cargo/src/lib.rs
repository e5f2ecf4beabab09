//! # orch-cargo: everything of cargo-orch that knows cargo
//!
//! - [`discover_workspace`]: the workspace, read once with `cargo metadata`;
//! - [`Builder`]: `cargo build --message-format=json-render-diagnostics -p ...`
//!   of the module packages, their cdylibs read from cargo's messages;
//! - [`invocation`]: one cargo run (process group, guard, deadline, stderr
//!   relayed), shared by the builder and `cargo orch test`;
//! - [`program`]: one of cargo-orch's own programs built on demand
//!   (`orch-networked`, when main.yaml asks for the network);
//! - [`cargo_output`]: what cargo prints on stderr (spinner, first error);
//! - [`watcher`]: "these files changed", from the folders of module packages;
//! - [`reload_plan`]: what a change means (affected modules, watch folders,
//!   `modules.yaml` differences).
//!
//! It never knows the runtime: the `run` verb joins a plan to the supervisor.

mod builder;
pub mod cargo_output;
mod discover;
pub mod invocation;
pub mod program;
pub mod reload_plan;
pub mod watcher;

pub use builder::{BuildError, BuildOutput, BuildRequest, Builder};
pub use discover::{WorkspaceError, discover_workspace};
