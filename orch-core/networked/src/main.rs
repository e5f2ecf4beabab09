//! `orch-networked`: the `cargo orch` command line with the network parts
//! that the `cargo-orch` binary leaves out, the NATS bridge (orch-bridge),
//! the metrics endpoint and webhook alerts (orch-monitor). `cargo orch run`
//! builds it on demand and hands over to it when main.yaml has a `bridge:`,
//! `metrics:` or `notify.webhook:` section; it takes every other command too.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cargo_orch::network::{BridgeSetup, Network, RunningBridge};
use orch_bridge::Bridge;
use orch_config::WebhookSettings;
use orch_monitor::metrics::{MetricsServer, MetricsSources};
use orch_monitor::webhook::Webhook;
use orch_runtime::bus::Bus;
use orch_runtime::status::{BridgeStatus, StatusBoard};

fn main() -> ExitCode {
    cargo_orch::main(Some(&NetworkParts))
}

/// The bridge, the metrics endpoint and the webhook, as orch-bridge and
/// orch-monitor build them.
struct NetworkParts;

impl Network for NetworkParts {
    fn start_bridge(&self, setup: BridgeSetup<'_>) -> anyhow::Result<Box<dyn RunningBridge>> {
        let mut bridge = Bridge::start(
            setup.settings,
            setup.bus,
            setup.timers,
            setup.publish_timeout,
            Some(setup.state_dir),
            orch_bridge::NodeInfo {
                board: setup.board,
                app: setup.app.0,
                version: setup.app.1,
                singletons: setup.singletons,
                leases: Some(setup.leases),
                fences: setup.fences,
            },
        )?;
        bridge.serve_requests(&setup.requests)?;
        Ok(Box::new(NatsBridge(bridge)))
    }

    fn start_metrics(
        &self,
        listen: SocketAddr,
        board: StatusBoard,
        bridge: Option<Arc<dyn BridgeStatus>>,
    ) -> anyhow::Result<(SocketAddr, Box<dyn Send>)> {
        let server = MetricsServer::start(listen, MetricsSources { board, bridge })?;
        Ok((server.address(), Box::new(server)))
    }

    fn start_webhook(
        &self,
        settings: &WebhookSettings,
        app: &str,
        bus: &Bus,
    ) -> anyhow::Result<Box<dyn Send>> {
        Ok(Box::new(Webhook::start(settings, app, bus)?))
    }
}

/// The NATS bridge as the `run` command drives it.
struct NatsBridge(Bridge);

impl RunningBridge for NatsBridge {
    fn status(&self) -> Arc<dyn BridgeStatus> {
        Arc::new(self.0.probe())
    }

    fn start_import(&mut self) {
        self.0.start_import();
    }

    fn stop_import(&mut self) {
        self.0.stop_import();
    }

    fn shutdown(self: Box<Self>, grace: Duration) {
        self.0.shutdown(grace);
    }
}
