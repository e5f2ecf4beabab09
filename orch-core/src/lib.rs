//! # orch-core: the cargo-orch host runtime
//!
//! Data flows one way: [`config`] -> [`builder`] (cargo) -> [`loader`] (dlopen) ->
//! [`supervisor`] (lifecycle) -> [`bus`]. Modules themselves depend only on the lean
//! `orch-sdk` crate; this crate is what the `cargo orch` binary drives.

pub mod actor;
pub mod builder;
pub mod bus;
pub mod cargo_output;
pub mod config;
pub mod error;
pub mod host_api;
pub mod hot_reload;
pub mod instance;
pub mod isolation;
pub mod loader;
pub mod logging;
pub mod resources;
pub mod scaffold;
pub mod scratch;
pub mod supervisor;
pub mod test_report;
pub mod timers;
pub mod watcher;
pub mod workspace;

pub use error::{Cause, ModuleFailure, OrchError, Phase};
pub use orch_sdk;
