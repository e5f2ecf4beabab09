//! # orch-sdk: write a cargo-orch module
//!
//! A module is a `cdylib` crate with one type that implements [`Module`] and one
//! call to [`export_module!`]. The author writes no `unsafe` and no `extern "C"`:
//! this crate provides the versioned C ABI ([`abi`]) and the glue that catches
//! panics at the boundary and forwards `tracing` to the host.
//!
//! ```
//! use orch_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct Consumer { received: u64 }
//!
//! impl Module for Consumer {
//!     fn initialize(&mut self, ctx: &mut Context, _config: &Config) -> Result<()> {
//!         ctx.subscribe("test.ping")?;
//!         Ok(())
//!     }
//!     fn on_event(&mut self, _ctx: &mut Context, event: &Event) -> Result<()> {
//!         let ping: serde_json::Value = event.data()?;
//!         tracing::info!("Received test.ping: {}", ping["message"]);
//!         self.received += 1;
//!         Ok(())
//!     }
//! }
//! orch_sdk::export_module!(Consumer);
//! ```
//!
//! The lifecycle, driven by the host in a fixed order: `initialize` (subscribe here;
//! publishing is refused until every module is initialized), `start` (may publish),
//! `on_event` for every delivered event (one at a time, with `&mut self`), and on a
//! reload `save_state` then `shutdown`, the new generation getting the saved state
//! through [`Context::restored_state`].

pub mod abi;
mod config;
mod context;
pub mod duration;
mod event;
pub mod events;
#[doc(hidden)]
pub mod export;
mod log_forward;
mod metrics;
mod module;
pub mod testing;
mod threads;
pub mod topic;

pub use config::Config;
pub use context::{Context, Host, PublishSink, Publisher, TimerId};
pub use event::{Event, EventKind, Exchange, HOST_SOURCE, RequestId};
pub use metrics::{Counter, Gauge, MetricKind, MetricSink, Metrics};
pub use module::Module;
pub use threads::{StopToken, ThreadBody};

/// Re-exported so that modules use the same versions as the SDK.
pub use serde_json;
/// Re-exported: `orch_sdk::tracing::info!(...)` reaches the host's log.
pub use tracing;

/// The error type of module callbacks: any error, or a message (`"...".into()`).
pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result of module callbacks.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a module usually needs: `use orch_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::events::{self, SystemEvent};
    pub use crate::{
        Config, Context, Error, Event, EventKind, Module, Publisher, RequestId, Result, StopToken,
        TimerId,
    };
    pub use crate::{serde_json, tracing};
}
