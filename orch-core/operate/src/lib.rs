//! cargo-orch's operator side, for a running orchestrator:
//!
//! - [`server`]: the control socket (`cargo orch status`, `reload`, `restart`,
//!   `stop`, `start`), [`client`] its CLI side, [`protocol`] the JSON lines
//!   they exchange and [`registry`] where running orchestrators are found.
//!
//! The metrics endpoint and webhook alerts, which reach the network, are
//! orch-monitor's: nothing here compiles an HTTP or TLS stack.
//!
//! **Never** builds, loads or supervises: it reads the runtime's status board
//! and hands actions to the orchestrator's main loop.

pub mod client;
pub mod protocol;
pub mod registry;
pub mod server;
