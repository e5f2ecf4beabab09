//! # orch-runtime: the cargo-orch host runtime
//!
//! Data flows one way: a validated configuration (`orch-config`) and built
//! libraries come in; [`loader`] (copy, dlopen, ABI check) -> [`supervisor`]
//! (lifecycle, timeouts, reload transaction) -> [`bus`] (publish/subscribe into
//! each module's mailbox, delivered by its [`actor`] thread). Modules depend
//! only on the lean `orch-sdk` crate. This crate never runs cargo and never
//! edits the user's files.

pub mod actor;
pub mod breaker;
pub mod bus;
mod error;
mod event_failure;
pub mod generation;
pub mod host_api;
pub mod isolation;
pub mod lease;
pub mod load_check;
pub mod loader;
pub mod log_limit;
pub mod logging;
pub mod mailbox;
mod module_threads;
pub mod pace;
pub mod rate_limit;
pub mod requests;
pub mod resources;
mod scrubber;
pub mod status;
pub mod supervisor;
#[cfg(test)]
mod testing;
pub mod timers;
pub mod typing;

pub use error::{Cause, ModuleFailure, Phase};
pub use orch_sdk;
