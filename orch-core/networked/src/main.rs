//! `orch-networked`: the `cargo orch` command line with the network parts
//! that the `cargo-orch` binary leaves out, the NATS bridge (orch-bridge),
//! the metrics endpoint and webhook alerts (orch-monitor). `cargo orch run`
//! builds it on demand and hands over to it when main.yaml has a `bridge:`,
//! `metrics:` or `notify.webhook:` section, and for bundles through NATS
//! (`push`, `run --from-nats`); it takes every other command too.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cargo_orch::network::{BridgeSetup, Network, RunningBridge};
use cargo_orch::release::{
    BundleToPush, FetchedRelease, FollowEvent, FollowSetup, OperatorRequest, Pushed, ReleaseServer,
    Releases, RolloutReport, RolloutRequest,
};
use orch_bridge::Bridge;
use orch_bridge::releases::{self, ReleaseClient, ReleaseError, rollout};
use orch_config::WebhookSettings;
use orch_monitor::metrics::{MetricsServer, MetricsSources};
use orch_monitor::webhook::Webhook;
use orch_runtime::bus::Bus;
use orch_runtime::status::{BridgeStatus, StatusBoard};

/// The hosts' allocator, as in cargo-orch's `main.rs` (which says why).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

    fn releases(&self, server: &ReleaseServer) -> anyhow::Result<Box<dyn Releases>> {
        let client = ReleaseClient::connect(
            &releases::ReleaseServer {
                url: server.url.clone(),
                creds: server.creds.clone(),
                name: server.name.clone(),
            },
            Duration::from_secs(10),
        )
        .map_err(explained)?;
        Ok(Box::new(NatsReleases(client)))
    }
}

/// A release error as the command line prints it: the message and its hint.
fn explained(error: ReleaseError) -> anyhow::Error {
    anyhow::anyhow!("{}; hint: {}", error.message, error.hint)
}

/// The releases on a NATS server, as orch-bridge keeps them.
struct NatsReleases(ReleaseClient);

/// A rollout's state as the command line shows it.
fn rollout_report(state: &rollout::RolloutState, handed_to: Option<String>) -> RolloutReport {
    RolloutReport {
        phase: state.phase.as_str().to_owned(),
        summary: state.summary(),
        state: serde_json::to_value(state).unwrap_or_default(),
        handed_to,
    }
}

/// A downloaded release as the command line takes it.
fn fetched(fetched: releases::Fetched) -> FetchedRelease {
    FetchedRelease {
        path: fetched.path,
        version: fetched.record.version,
        digest: fetched.record.digest,
        source: fetched.source,
    }
}

/// A release the follower refused, as the main loop takes it.
fn refused(pointer: &releases::Pointer, error: &ReleaseError) -> FollowEvent {
    FollowEvent::Refused {
        version: pointer.version.clone(),
        digest: pointer.digest.clone(),
        reason: error.message.clone(),
    }
}

impl Releases for NatsReleases {
    fn push(&self, bundle: BundleToPush) -> anyhow::Result<Pushed> {
        let outcome = self
            .0
            .push(&releases::PushRequest {
                app: bundle.app,
                version: bundle.version,
                digest: bundle.digest,
                archive_sha256: bundle.archive_sha256,
                bytes: bundle.bytes,
                signed_by: bundle.signed_by,
                make_current: bundle.make_current,
                presence_bucket: bundle.presence_bucket,
            })
            .map_err(explained)?;
        Ok(Pushed {
            stored: outcome.stored,
            current: outcome.current,
            previous_current: outcome.previous_current,
        })
    }

    fn fetch(&self, app: &str, node: &str, dir: &Path) -> anyhow::Result<Option<FetchedRelease>> {
        let Some(wanted) = self.0.wanted(app, node).map_err(explained)? else {
            return Ok(None);
        };
        let downloaded = self.0.download(wanted, dir).map_err(explained)?;
        Ok(Some(fetched(downloaded)))
    }

    fn rollout(
        &self,
        request: &RolloutRequest,
        report: &(dyn Fn(&str) + Sync),
    ) -> anyhow::Result<RolloutReport> {
        let start = rollout::controller::Start {
            app: request.app.clone(),
            version: request.version.clone(),
            options: rollout::RolloutOptions {
                canary: request.canary,
                max_unavailable: request.max_unavailable,
                min_healthy: request.min_healthy,
                healthy_deadline: request.healthy_deadline,
                auto_revert: request.auto_revert,
            },
            presence_bucket: request.presence_bucket.clone(),
            request: request.operator.map(|asked| match asked {
                OperatorRequest::Pause => rollout::Request::Pause,
                OperatorRequest::Resume => rollout::Request::Resume,
                OperatorRequest::Abort => rollout::Request::Abort,
            }),
            holder: request.holder.clone(),
        };
        Ok(match self.0.rollout(start, report).map_err(explained)? {
            rollout::controller::Driven::Finished(state) => rollout_report(&state, None),
            rollout::controller::Driven::Requested(state, holder) => {
                rollout_report(&state, Some(holder))
            }
        })
    }

    fn rollout_state(&self, app: &str) -> anyhow::Result<Option<RolloutReport>> {
        Ok(self
            .0
            .rollout_state(app)
            .map_err(explained)?
            .map(|state| rollout_report(&state, None)))
    }

    fn follow(self: Box<Self>, setup: FollowSetup) -> anyhow::Result<Box<dyn Send>> {
        let follower = self
            .0
            .follow(releases::Follow {
                app: setup.app,
                node: setup.node,
                dir: setup.dir,
                running: setup.running,
                deliver: setup.deliver,
                into: |release| FollowEvent::Fetched(fetched(release)),
                refusal: refused,
                settled: |_| FollowEvent::Settled,
            })
            .map_err(explained)?;
        Ok(Box::new(follower))
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
