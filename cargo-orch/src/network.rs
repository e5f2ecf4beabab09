//! What a running orchestrator may reach the network with: the NATS bridge
//! (`bridge:`), the metrics endpoint (`metrics:`) and webhook alerts
//! (`notify.webhook:`). They bring tokio, hyper, rustls and the NATS client,
//! half of what a cold build compiles, so the `cargo-orch` binary leaves them
//! out: it is built with no [`Network`], and `cargo orch run` hands a
//! configuration that asks for one of them over to `orch-networked` (see
//! `networked.rs`), the same program with this trait implemented. Bundles
//! through NATS (`push`, `run --from-nats`) are there too.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orch_config::{AppConfig, NatsSettings, WebhookSettings};
use orch_runtime::bus::Bus;
use orch_runtime::requests::Requests;
use orch_runtime::status::{BridgeStatus, StatusBoard};
use orch_runtime::timers::TimerService;

use crate::release::{ReleaseServer, Releases};

/// Starts the parts that reach the network (implemented by `orch-networked`).
pub trait Network: Sync {
    /// Starts the NATS bridge: its outbox takes the exported topics at once,
    /// imports wait for [`RunningBridge::start_import`].
    fn start_bridge(&self, setup: BridgeSetup<'_>) -> anyhow::Result<Box<dyn RunningBridge>>;

    /// Serves `/metrics`, `/healthz` and `/readyz` on `listen`; returns the
    /// bound address and the server, which stops when dropped.
    fn start_metrics(
        &self,
        listen: SocketAddr,
        board: StatusBoard,
        bridge: Option<Arc<dyn BridgeStatus>>,
    ) -> anyhow::Result<(SocketAddr, Box<dyn Send>)>;

    /// Sends the chosen host events to a webhook until dropped.
    fn start_webhook(
        &self,
        settings: &WebhookSettings,
        app: &str,
        bus: &Bus,
    ) -> anyhow::Result<Box<dyn Send>>;

    /// Connects to the releases on a NATS server (`push`, `run --from-nats`).
    fn releases(&self, server: &ReleaseServer) -> anyhow::Result<Box<dyn Releases>>;
}

/// What the bridge starts from.
pub struct BridgeSetup<'a> {
    /// `bridge.nats`.
    pub settings: &'a NatsSettings,
    /// The bus it exports from and imports to.
    pub bus: &'a Bus,
    /// The supervisor's timers (the outbox's publish deadline).
    pub timers: TimerService,
    /// `timeouts.publish`.
    pub publish_timeout: Duration,
    /// Where it keeps what outlives the process.
    pub state_dir: &'a Path,
    /// The modules' states, for the presence record.
    pub board: StatusBoard,
    /// `app.name` and `app.version`.
    pub app: (String, String),
    /// The enabled singleton modules (their leases are held by the bridge).
    pub singletons: Vec<String>,
    /// Where the bridge tells the main loop about leases.
    pub leases: crossbeam_channel::Sender<orch_runtime::lease::LeaseChange>,
    /// The fences of running singletons, read by the export.
    pub fences: orch_runtime::lease::Fences,
    /// The table of pending requests (`serve` and `ask`: requests across
    /// nodes go through it).
    pub requests: Requests,
}

/// A running bridge, as the `run` command drives it.
pub trait RunningBridge: Send {
    /// Reads its state (the control socket and the metrics).
    fn status(&self) -> Arc<dyn BridgeStatus>;
    /// Delivers imported events from now on (every local subscriber is there).
    fn start_import(&mut self);
    /// Takes no more imported events (shutting down).
    fn stop_import(&mut self);
    /// Sends what the outbox holds for at most `grace`, then disconnects.
    fn shutdown(self: Box<Self>, grace: Duration);
}

/// The sections of main.yaml that need a [`Network`], as written in it.
pub fn sections_needed(config: &AppConfig) -> Vec<&'static str> {
    let main = &config.main;
    [
        main.bridge.is_some().then_some("bridge"),
        main.metrics.is_some().then_some("metrics"),
        main.notify.webhook.is_some().then_some("notify.webhook"),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// No network parts: what the `cargo-orch` binary runs with when main.yaml
/// asks for none of them. Each call fails naming the binary to use.
pub struct NoNetwork;

impl NoNetwork {
    fn missing(section: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "`{section}` needs the network parts, which this cargo-orch binary leaves out; \
             `cargo orch run` starts orch-networked for it"
        )
    }
}

impl Network for NoNetwork {
    fn start_bridge(&self, _: BridgeSetup<'_>) -> anyhow::Result<Box<dyn RunningBridge>> {
        Err(Self::missing("bridge"))
    }

    fn start_metrics(
        &self,
        _: SocketAddr,
        _: StatusBoard,
        _: Option<Arc<dyn BridgeStatus>>,
    ) -> anyhow::Result<(SocketAddr, Box<dyn Send>)> {
        Err(Self::missing("metrics"))
    }

    fn start_webhook(
        &self,
        _: &WebhookSettings,
        _: &str,
        _: &Bus,
    ) -> anyhow::Result<Box<dyn Send>> {
        Err(Self::missing("notify.webhook"))
    }

    fn releases(&self, _: &ReleaseServer) -> anyhow::Result<Box<dyn Releases>> {
        Err(Self::missing("releases through NATS"))
    }
}
