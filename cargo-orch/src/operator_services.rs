//! What a running orchestrator offers its operator, started before the
//! modules load and stopped after they shut down: the control socket, the
//! metrics endpoint (`metrics:`) and webhook alerts (`notify.webhook`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::Sender;
use orch_operate::protocol::StatusReport;
use orch_operate::server::{ControlServer, Pending, ServerSetup, StatusSource};
use orch_runtime::status::BridgeStatus;
use orch_runtime::supervisor::Supervisor;

use crate::cli::RunArgs;
use crate::network::Network;
use crate::session::Session;

/// The running operator services; dropping it stops them and removes the socket.
pub struct OperatorServices {
    _webhook: Option<Box<dyn Send>>,
    _metrics: Option<Box<dyn Send>>,
    _control: Option<ControlServer>,
}

impl OperatorServices {
    /// Starts the control socket, the metrics endpoint and the webhook, as
    /// the flags and main.yaml ask.
    pub fn start(
        session: &Session,
        args: &RunArgs,
        supervisor: &Supervisor,
        network: &dyn Network,
        bridge: Option<Arc<dyn BridgeStatus>>,
        actions: Sender<Pending>,
        process_start: Instant,
    ) -> anyhow::Result<Self> {
        let config = &session.config;
        let board = supervisor.status().clone();
        let status: StatusSource = {
            let board = board.clone();
            let bridge = bridge.clone();
            let app = config.main.app.clone();
            let environment = config.environment.clone();
            Arc::new(move || StatusReport {
                app: app.name.clone(),
                version: app.version.clone(),
                pid: std::process::id(),
                environment: environment.clone(),
                uptime_secs: process_start.elapsed().as_secs_f64(),
                ready: board.is_ready(),
                modules: board.snapshot(),
                bridge: bridge.as_ref().map(|bridge| bridge.snapshot()),
                bundle: board.deployment(),
            })
        };
        let timeouts = &config.main.timeouts;
        let control = ControlServer::start(ServerSetup {
            target_dir: session.workspace.target_dir.clone(),
            socket: args.control_socket.clone(),
            app: config.main.app.name.clone(),
            config_dir: config.config_dir.clone(),
            environment: config.environment.clone(),
            status,
            actions,
            action_deadline: timeouts.build
                + timeouts.reload
                + timeouts.shutdown
                + Duration::from_secs(30),
            tap: Some(orch_operate::server::TapSetup {
                bus: supervisor.bus().clone(),
                scrubber: session.scrubber.clone(),
            }),
        });
        let control = match control {
            Ok(control) => {
                tracing::info!(
                    "[CONTROL] control socket {} (cargo orch status | reload | restart | stop | start)",
                    control.socket().display()
                );
                Some(control)
            }
            Err(e) if args.control_socket.is_some() => {
                return Err(e).context("cannot listen on --control-socket");
            }
            Err(e) => {
                tracing::warn!(
                    "[CONTROL] no control socket: {e}; cargo orch status will not find this \
                     orchestrator (pass --control-socket PATH)"
                );
                None
            }
        };
        let metrics = match &config.main.metrics {
            Some(settings) => {
                let (address, server) = network.start_metrics(settings.listen, board, bridge)?;
                tracing::info!(
                    "[METRICS] serving http://{address}/metrics (also /healthz and /readyz)"
                );
                Some(server)
            }
            None => None,
        };
        let webhook = match &config.main.notify.webhook {
            Some(settings) => Some(
                network
                    .start_webhook(settings, &config.main.app.name, supervisor.bus())
                    .context("cannot start the webhook sender")?,
            ),
            None => None,
        };
        Ok(Self {
            _webhook: webhook,
            _metrics: metrics,
            _control: control,
        })
    }
}
