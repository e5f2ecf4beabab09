//! How the outside watches a running orchestrator:
//!
//! - [`metrics`]: `/metrics` (Prometheus text), `/healthz` and `/readyz`;
//! - [`webhook`]: alerts POSTed for chosen host events, with retries.
//!
//! Both reach the network (hyper and tokio, ureq and rustls), so they live
//! apart from the control socket (orch-operate): the lean `cargo-orch`
//! binary never compiles them, and `orch-networked` links them in when
//! main.yaml has a `metrics:` or `notify.webhook:` section.
//!
//! **Never** builds, loads or supervises: it reads the runtime's status board
//! and subscribes to the bus.

pub mod metrics;
pub mod webhook;
