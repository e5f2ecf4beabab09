//! cargo-orch's operator side, for a running orchestrator:
//!
//! - [`server`]: the control socket (`cargo orch status`, `reload`, `restart`,
//!   `stop`, `start`), [`client`] its CLI side, [`protocol`] the JSON lines
//!   they exchange and [`registry`] where running orchestrators are found;
//! - [`metrics`]: `/metrics` (Prometheus text), `/healthz` and `/readyz`;
//! - [`webhook`]: alerts POSTed for chosen host events, with retries.
//!
//! **Never** builds, loads or supervises: it reads the runtime's status board
//! and hands actions to the orchestrator's main loop.

pub mod client;
pub mod metrics;
pub mod protocol;
pub mod registry;
pub mod server;
pub mod webhook;
